/*
 * relay.c - the relay carrier (see relay.h): an hp_bs over the relay
 * WebSocket of the rendezvous, on src/net/ws_client.
 *
 * One state per carrier (rc_state). The memory holds a uv timer (the bound
 * of the attempt, and the turn on which data held during a pause is
 * delivered) and points to the WebSocket client; it is freed in the timer's
 * close callback once both the owner is done with it (closed it, or the
 * attempt failed and ready(NULL) was delivered) and the client has ended.
 */
#include "relay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_msg.h"
#include "ws_client.h"

#define OPEN_TIMEOUT_MS 30000
#define CLOSE_BOUND_MS 2000
#define MAX_MESSAGE (256u * 1024u)    /* the relay sends frames of at most ~72 KiB */
#define HELD_MAX (2u * 1024u * 1024u) /* data received while paused (one read or so) */
#define WHY_MAX 320

typedef enum rc_state {
  RC_CONNECTING = 0, /* WebSocket opening */
  RC_JOINED,         /* join sent, waiting for ready */
  RC_OPEN,           /* ready delivered: a byte stream */
  RC_DEAD,           /* on_error or ready(NULL) delivered: no callback any more */
  RC_CLOSED          /* the owner closed it: no callback any more */
} rc_state;

typedef struct relay_bs {
  hp_bs bs; /* first member (bytestream.h) */
  uv_timer_t timer;
  hp__wsc *wsc;
  hp_bs_cbs cbs;
  void *ud;
  hp__relay_ready_cb ready;
  void *ready_arg;
  char peer_id[HP_ID_MAX + 1];
  char session[HP_SESSION_HEX + 1];
  char id[HP_ID_MAX + 1];
  char url[600];      /* for messages: host (255) + path (262) + scheme and port */
  uint8_t state;      /* rc_state */
  uint8_t owner_done; /* the owner will not touch it again */
  uint8_t shut;       /* our eof was sent */
  uint8_t got_eof;    /* the peer's eof was delivered */
  uint8_t paused;
  uint8_t above; /* queued went above HP_BS_HIGH_WATER */
  uint8_t cbs_set;
  uint8_t eof_held; /* the peer's eof came after held data: delivered after it */
  uint64_t timeout_ms;
  uint8_t *held; /* data received while paused (or before set_cbs), delivered later */
  size_t held_len, held_cap;
} relay_bs;

static const hp_bs_ops relay_ops;

static relay_bs *of(hp_bs *s) {
  return (relay_bs *)(void *)s;
}

/* ---- lifetime ---- */

static void on_timer_closed(uv_handle_t *h) {
  relay_bs *r = h->data;
  free(r->held);
  free(r);
}

static void maybe_free(relay_bs *r) {
  if (r->owner_done && !r->wsc && !uv_is_closing((uv_handle_t *)&r->timer))
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

/* The attempt failed: ready(NULL) once; the owner never sees r again. */
static void attempt_failed(relay_bs *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void attempt_failed(relay_bs *r, int err, const char *fmt, ...) {
  char why[WHY_MAX];
  va_list ap;

  if (r->state != RC_CONNECTING && r->state != RC_JOINED)
    return;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  r->state = RC_DEAD;
  r->owner_done = 1;
  uv_timer_stop(&r->timer);
  if (r->wsc)
    hp__wsc_close(r->wsc, HP_WS_CLOSE_NORMAL, "giving up");
  r->ready(NULL, err, why, r->ready_arg);
  maybe_free(r);
}

/* The open stream died: on_error once. */
static void stream_failed(relay_bs *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stream_failed(relay_bs *r, int err, const char *fmt, ...) {
  char why[WHY_MAX];
  va_list ap;

  if (r->state != RC_OPEN)
    return;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  r->state = RC_DEAD;
  uv_timer_stop(&r->timer);
  if (r->wsc)
    hp__wsc_close(r->wsc, HP_WS_CLOSE_NORMAL, "failed");
  if (r->cbs.on_error)
    r->cbs.on_error(&r->bs, err, why, r->ud);
}

/* ---- input ---- */

static int hold(relay_bs *r, const uint8_t *d, size_t n) {
  if (r->held_len + n > HELD_MAX)
    return -ENOBUFS;
  if (r->held_len + n > r->held_cap) {
    size_t cap = r->held_cap ? r->held_cap : 65536;
    uint8_t *nb;
    while (cap < r->held_len + n)
      cap *= 2;
    nb = realloc(r->held, cap);
    if (!nb)
      return -ENOMEM;
    r->held = nb;
    r->held_cap = cap;
  }
  memcpy(r->held + r->held_len, d, n);
  r->held_len += n;
  return 0;
}

static void deliver_eof(relay_bs *r) {
  if (r->got_eof || r->state != RC_OPEN)
    return;
  r->got_eof = 1;
  if (r->cbs.on_eof)
    r->cbs.on_eof(&r->bs, r->ud);
}

/* Deliver held data (and a held eof) on a loop turn while not paused. */
static void on_timer(uv_timer_t *t) {
  relay_bs *r = t->data;

  if (r->state == RC_CONNECTING || r->state == RC_JOINED) {
    attempt_failed(r, -ETIMEDOUT, "relay %s: no ready within %g s", r->url,
                   (double)r->timeout_ms / 1000.0);
    return;
  }
  if (r->state != RC_OPEN || r->paused || !r->cbs_set)
    return;
  if (r->held_len) {
    uint8_t *d = r->held;
    size_t n = r->held_len;
    r->held = NULL;
    r->held_len = r->held_cap = 0;
    if (r->cbs.on_data)
      r->cbs.on_data(&r->bs, d, n, r->ud);
    free(d);
  }
  if (r->state == RC_OPEN && !r->paused && r->eof_held) {
    r->eof_held = 0;
    deliver_eof(r);
    if (!r->wsc && r->state == RC_OPEN)
      r->state = RC_DEAD; /* the connection had closed behind the eof */
  }
  if (r->state == RC_OPEN && !r->paused && r->wsc)
    (void)hp__wsc_pause(r->wsc, 0);
}

static void on_text(relay_bs *r, const uint8_t *data, size_t len) {
  hp__relay_msg m;
  hp__wire_err err;

  if (hp__relay_msg_decode((const char *)data, len, &m, &err) < 0) {
    if (r->state == RC_OPEN)
      stream_failed(r, -EPROTO, "relay %s: a message that is not valid: %s", r->url, err.message);
    else
      attempt_failed(r, -EPROTO, "relay %s: a message that is not valid: %s", r->url, err.message);
    return;
  }
  if (m.type == HP_RELAY_ERROR) {
    if (r->state == RC_OPEN)
      stream_failed(r, -ECONNABORTED, "the relay ended the session: %s: %s", m.code, m.message);
    else
      attempt_failed(r, -ECONNREFUSED, "relay %s refused us: %s: %s", r->url, m.code, m.message);
    return;
  }
  if (r->state == RC_JOINED && m.type == HP_RELAY_READY) {
    if (strcmp(m.id, r->peer_id)) {
      attempt_failed(r, -EPROTO, "relay %s joined us with \"%s\", not our peer \"%s\"", r->url,
                     m.id, r->peer_id);
      return;
    }
    r->state = RC_OPEN;
    uv_timer_stop(&r->timer);
    /* Until set_cbs, data is held: the owner installs its callbacks in ready. */
    r->ready(&r->bs, 0, NULL, r->ready_arg);
    return;
  }
  if (r->state == RC_OPEN && m.type == HP_RELAY_EOF && !r->got_eof) {
    if (r->held_len || !r->cbs_set) {
      r->eof_held = 1; /* after the data held (paused) */
      return;
    }
    deliver_eof(r);
    return;
  }
  if (r->state == RC_OPEN)
    stream_failed(r, -EPROTO, "relay %s: an unexpected message", r->url);
  else
    attempt_failed(r, -EPROTO, "relay %s: an unexpected message before ready", r->url);
}

static void wsc_open(void *arg) {
  relay_bs *r = arg;
  hp__relay_msg m;
  char buf[HP_RELAY_MSG_MAX + 1];
  int n;

  if (r->state != RC_CONNECTING)
    return;
  memset(&m, 0, sizeof(m));
  m.type = HP_RELAY_JOIN;
  memcpy(m.session, r->session, sizeof(m.session));
  memcpy(m.id, r->id, sizeof(m.id));
  n = hp__relay_msg_encode(&m, buf, sizeof(buf));
  if (n < 0 || hp__wsc_send(r->wsc, 0, buf, (size_t)n) < 0) {
    attempt_failed(r, n < 0 ? n : -EIO, "relay %s: cannot send the join", r->url);
    return;
  }
  r->state = RC_JOINED;
}

static void wsc_message(void *arg, int binary, const uint8_t *data, size_t len) {
  relay_bs *r = arg;

  if (r->state >= RC_DEAD)
    return;
  if (!binary) {
    on_text(r, data, len);
    return;
  }
  if (r->state != RC_OPEN) {
    attempt_failed(r, -EPROTO, "relay %s: binary data before ready", r->url);
    return;
  }
  if (r->got_eof || r->eof_held) {
    stream_failed(r, -EPROTO, "relay %s: data after the peer's eof", r->url);
    return;
  }
  if (!len)
    return;
  if (r->paused || !r->cbs_set || r->held_len) {
    /* The rest of a read that arrived after pause(): kept for later. */
    if (hold(r, data, len) < 0)
      stream_failed(r, -ENOBUFS, "relay %s: too much data while paused", r->url);
    return;
  }
  if (r->cbs.on_data)
    r->cbs.on_data(&r->bs, data, len, r->ud);
}

static void wsc_drained(void *arg) {
  relay_bs *r = arg;

  if (r->state != RC_OPEN || !r->above)
    return;
  r->above = 0;
  if (r->cbs.on_drain)
    r->cbs.on_drain(&r->bs, r->ud);
}

static void wsc_end(void *arg, const hp__wsc_end *e) {
  relay_bs *r = arg;

  hp__wsc_free(r->wsc);
  r->wsc = NULL;
  switch ((rc_state)r->state) {
  case RC_CONNECTING:
  case RC_JOINED:
    attempt_failed(r, e->kind == HP_WSC_END_FAILED ? -ECONNREFUSED : -ECONNRESET, "%s", e->reason);
    break;
  case RC_OPEN:
    if (e->kind == HP_WSC_END_PEER_CLOSED && e->code == HP_WS_CLOSE_NORMAL) {
      /* The peer closed normally (the relay passes its close on): its eof,
       * after what is held. */
      if (r->held_len || r->paused || !r->cbs_set || r->eof_held) {
        r->eof_held = 1;
        if (!r->paused && r->cbs_set)
          uv_timer_start(&r->timer, on_timer, 0, 0);
        break;
      }
      deliver_eof(r);
      if (r->state == RC_OPEN)
        r->state = RC_DEAD;
      break;
    }
    stream_failed(r, e->err ? e->err : -ECONNRESET, "relay %s: %s", r->url, e->reason);
    break;
  default:
    break;
  }
  maybe_free(r);
}

static const hp__wsc_cbs wsc_cbs = {
    .open = wsc_open, .message = wsc_message, .drained = wsc_drained, .end = wsc_end};

/* ---- hp_bs ---- */

static void r_set_cbs(hp_bs *s, const hp_bs_cbs *cbs, void *ud) {
  relay_bs *r = of(s);

  if (cbs)
    r->cbs = *cbs;
  else
    memset(&r->cbs, 0, sizeof(r->cbs));
  r->ud = ud;
  r->cbs_set = 1;
  if ((r->held_len || r->eof_held) && r->state == RC_OPEN)
    uv_timer_start(&r->timer, on_timer, 0, 0);
}

static size_t r_queued(const hp_bs *s) {
  const relay_bs *r = (const relay_bs *)(const void *)s;
  return r->wsc ? hp__wsc_queued(r->wsc) : 0;
}

static int r_write(hp_bs *s, const uint8_t *p, size_t n) {
  relay_bs *r = of(s);

  if (r->state != RC_OPEN || r->shut || !r->wsc || !hp__wsc_is_open(r->wsc))
    return -EPIPE;
  if (hp__wsc_queued(r->wsc) + n > HP_BS_HARD_CAP)
    return -ENOBUFS;
  while (n) {
    size_t k = n < HP_RELAY_FRAME_MAX ? n : HP_RELAY_FRAME_MAX;
    int rc = hp__wsc_send(r->wsc, 1, p, k);
    if (rc < 0)
      return rc == -ENOTCONN ? -EPIPE : rc;
    p += k;
    n -= k;
  }
  if (hp__wsc_queued(r->wsc) > HP_BS_HIGH_WATER)
    r->above = 1;
  return 0;
}

static int r_shutdown(hp_bs *s) {
  relay_bs *r = of(s);
  char buf[64];
  hp__relay_msg m;
  int n;

  if (r->shut)
    return 0;
  if (r->state != RC_OPEN || !r->wsc)
    return -EPIPE;
  memset(&m, 0, sizeof(m));
  m.type = HP_RELAY_EOF;
  n = hp__relay_msg_encode(&m, buf, sizeof(buf));
  if (n < 0)
    return n;
  r->shut = 1;
  return hp__wsc_send(r->wsc, 0, buf, (size_t)n);
}

static void r_pause(hp_bs *s, int paused) {
  relay_bs *r = of(s);

  r->paused = (uint8_t) !!paused;
  if (r->state != RC_OPEN)
    return;
  if (!r->wsc) {
    if (!paused && (r->held_len || r->eof_held))
      uv_timer_start(&r->timer, on_timer, 0, 0);
    return;
  }
  if (paused) {
    (void)hp__wsc_pause(r->wsc, 1);
    return;
  }
  /* Held data first (on the next turn), then the socket again. */
  if (r->held_len || r->eof_held)
    uv_timer_start(&r->timer, on_timer, 0, 0);
  else
    (void)hp__wsc_pause(r->wsc, 0);
}

static void r_close(hp_bs *s) {
  relay_bs *r = of(s);

  if (r->owner_done && r->state == RC_CLOSED)
    return;
  r->state = RC_CLOSED;
  r->owner_done = 1;
  uv_timer_stop(&r->timer);
  if (r->wsc)
    hp__wsc_close(r->wsc, HP_WS_CLOSE_NORMAL, "done");
  maybe_free(r);
}

static const hp_bs_ops relay_ops = {r_set_cbs, r_write, r_queued, r_shutdown,
                                    r_pause,   r_close, "relay"};

int hp__relay_open(uv_loop_t *loop, const hp__relay_opts *o, hp__relay_ready_cb ready, void *arg,
                   hp_bs **out, char *err, size_t errlen) {
  char path[sizeof(o->url->base) + sizeof "/relay"];
  hp__wsc_opts wo;
  relay_bs *r;
  int rc;

  *out = NULL;
  if (!o->url || !o->session || !hp__relay_valid_session(o->session, strlen(o->session)) ||
      !o->id || !hp__wire_valid_name(o->id, strlen(o->id)) || !o->peer_id ||
      !hp__wire_valid_name(o->peer_id, strlen(o->peer_id)) || !ready) {
    snprintf(err, errlen, "relay: a session of 32 hex digits and two ids are needed");
    return -EINVAL;
  }
  r = calloc(1, sizeof(*r));
  if (!r) {
    snprintf(err, errlen, "relay: out of memory");
    return -ENOMEM;
  }
  r->bs.ops = &relay_ops;
  r->ready = ready;
  r->ready_arg = arg;
  snprintf(r->session, sizeof(r->session), "%s", o->session);
  snprintf(r->id, sizeof(r->id), "%s", o->id);
  snprintf(r->peer_id, sizeof(r->peer_id), "%s", o->peer_id);
  snprintf(path, sizeof(path), "%s/relay", o->url->base);
  snprintf(r->url, sizeof(r->url), "%s://%s%s%s:%d%s", o->url->tls ? "wss" : "ws",
           strchr(o->url->host, ':') ? "[" : "", o->url->host, strchr(o->url->host, ':') ? "]" : "",
           o->url->port, path);
  memset(&wo, 0, sizeof(wo));
  wo.host = o->url->host;
  wo.port = o->url->port;
  wo.tls = o->url->tls;
  wo.path = path;
  wo.ca_file = o->ca_file;
  wo.user_agent = "holepunch/" HP_VERSION;
  wo.open_timeout_ms = o->open_timeout_ms ? o->open_timeout_ms : OPEN_TIMEOUT_MS;
  wo.close_bound_ms = CLOSE_BOUND_MS;
  wo.max_message = MAX_MESSAGE;
  wo.max_fragments = 1024;
  /* write() refuses beyond HP_BS_HARD_CAP; a frame header per 64 KiB on top. */
  wo.max_queued = HP_BS_HARD_CAP + 2 * HP_RELAY_FRAME_MAX;
  if (uv_timer_init(loop, &r->timer) < 0) {
    free(r);
    snprintf(err, errlen, "relay: cannot create a timer");
    return -ENOMEM;
  }
  r->timer.data = r;
  r->timeout_ms = wo.open_timeout_ms;
  rc = hp__wsc_open(loop, &wo, &wsc_cbs, r, &r->wsc, err, errlen);
  if (rc < 0) {
    r->owner_done = 1;
    r->wsc = NULL;
    maybe_free(r);
    return rc;
  }
  uv_timer_start(&r->timer, on_timer, wo.open_timeout_ms, 0);
  *out = &r->bs;
  return 0;
}
