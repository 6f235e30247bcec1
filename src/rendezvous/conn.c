/*
 * conn.c - one client connection of the rendezvous: HTTP requests (one at a
 * time, keep-alive), maybe an upgrade to the signaling WebSocket, the
 * timers (request line, whole request, hello, ping, idle, close linger),
 * the per-connection frame rate, and the orderly close.
 *
 * One timer per connection; its deadline follows from the state, so reads
 * only note the time (no timer operation per read).
 *
 * Lifetime: the memory holds two uv handles (stream, timer) and may be
 * referenced by a pending room operation (refs). It is freed when both
 * handles are closed and no reference is left (conn_maybe_free).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdv.h"

#define HTTP_MAX_HEADER_BYTES 8192
#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_BODY 8192
#define WRITE_QUEUE_MAX (256 * 1024) /* a client that does not read is dropped */
#define PRE_HELLO_MAX_MESSAGE 4096   /* a hello is far smaller than this */
#define MAX_FRAGMENTS 64             /* data frames per message */
#define CLOSE_LINGER_MS 5000         /* wait for the peer's close frame / FIN */
#define REFUSED_LINGER_MS 1000       /* a refused connection's 503, then FIN */
#define LINGER_MAX 32                /* refused connections answered at once */
#define FRAME_RATE 20.0              /* frames per second per WebSocket, sustained */
#define FRAME_BURST 64.0
#define RTT_PINGS 3 /* round-trip samples taken at the upgrade, one after the other */
/* A relay connection's write queue: backpressure (relay.c) stops its
 * source at 256 KiB, one read adds at most 64 KiB; the rest is headroom. */
#define RELAY_QUEUE_MAX (1024 * 1024)
#define RELAY_MAX_FRAGMENTS (1u << 30) /* relayed frames cost no memory per fragment */

static void conn_read(hp__stream *st, const uint8_t *data, size_t len);
static void conn_eof(hp__stream *st, int err);
static void conn_closed(hp__stream *st);
static void conn_drained(hp__stream *st);

static const hp__stream_cb stream_cb = {conn_read, conn_eof, conn_drained, conn_closed};

static rdv_conn *conn_of(hp__stream *st) {
  return (rdv_conn *)(void *)st; /* s is the first member */
}

static uint64_t now_ms(const rdv_conn *c) {
  return uv_now(c->srv->loop);
}

/* ---------------------------------------------------------------------- */
/* lifetime                                                               */

static void conn_maybe_free(rdv_conn *c) {
  if (c->handles || c->refs)
    return;
  free(c->clock);
  free(c);
}

static void on_timer_closed(uv_handle_t *h) {
  rdv_conn *c = h->data;
  c->handles--;
  conn_maybe_free(c);
}

void hp__rdv_conn_unref(rdv_conn *c) {
  c->refs--;
  conn_maybe_free(c);
}

static void conn_closed(hp__stream *st) {
  rdv_conn *c = conn_of(st);
  hp__rdv *s = c->srv;
  c->handles--;
  if (c->relay)
    hp__rdv_relay_free(c);
  else if (c->ws && c->sig != RDV_SIG_GONE)
    hp__rdv_sig_leave(c);
  if (c->ws) {
    HP_DEBUG(RDV_COMP,
             json_pack("{s:s,s:s,s:s}", "addr", c->observed, "peer", c->id, "room", c->room),
             "websocket closed");
    if (c->sig != RDV_SIG_NONE && s->m.connections)
      s->m.connections--;
  }
  hp__ws_destroy(c->ws);
  c->ws = NULL;
  hp__http1_destroy(c->http);
  c->http = NULL;
  c->state = RDV_CLOSED;
  if (c->admission == RDV_ADM_REFUSED) {
    s->lingering--;
  } else if (c->admission == RDV_ADM_ADMITTED) {
    hp__listener_release(c->lis ? c->lis : s->lis, c->ent);
    if (c->fwd_ent) {
      c->fwd_ent->conns--;
      hp__iptable_maybe_drop(s->ips, c->fwd_ent, s->o.max_hellos_per_minute,
                             s->o.max_hellos_per_minute, now_ms(c));
    }
    if (s->m.tcp_connections)
      s->m.tcp_connections--;
  }
  c->ent = c->fwd_ent = NULL;
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  hp__rdv_conn_gone(s, c);
}

/* ---------------------------------------------------------------------- */
/* timers                                                                 */

static void arm(rdv_conn *c, uint64_t at_ms);

/* The first request's line must come within REQUEST_LINE_TIMEOUT of the
 * accept, the whole request within HTTP_TIMEOUT; a keep-alive connection
 * gets HTTP_TIMEOUT from the end of its last response for the next one. */
static uint64_t http_deadline(const rdv_conn *c) {
  const hp__rdv_opts *o = &c->srv->o;
  double t = o->http_timeout;

  if (!c->requests && !(c->http && hp__http1_line_done(c->http)) && o->request_line_timeout < t)
    t = o->request_line_timeout;
  return c->t0 + (uint64_t)(t * 1000.0);
}

/* The deadline of the current state, from the times noted. */
static void rearm(rdv_conn *c) {
  const hp__rdv_opts *o = &c->srv->o;
  uint64_t at;

  switch ((rdv_conn_state)c->state) {
  case RDV_HTTP:
    at = http_deadline(c);
    break;
  case RDV_WS:
    if (c->relay) {
      at = hp__rdv_relay_deadline(c);
      if (!at) {
        uv_timer_stop(&c->timer);
        return;
      }
    } else if (c->sig == RDV_SIG_NEW)
      at = c->t0 + (uint64_t)(o->hello_timeout * 1000.0);
    else if (!c->ping_sent)
      at = c->last_rx + (uint64_t)(o->ping_interval * 1000.0);
    else
      at = c->last_rx + (uint64_t)(o->idle_timeout * 1000.0);
    break;
  default:
    return; /* closing: armed once, when the close began */
  }
  arm(c, at);
}

static void on_timer(uv_timer_t *t) {
  rdv_conn *c = t->data;
  hp__rdv *s = c->srv;
  uint64_t now = now_ms(c);

  switch ((rdv_conn_state)c->state) {
  case RDV_HTTP:
    if (now < http_deadline(c)) {
      rearm(c);
      return;
    }
    if (c->http && hp__http1_started(c->http)) {
      hp__rdv_http_error(c, 408, "request_timeout",
                         hp__http1_line_done(c->http)
                             ? "The request was not complete within HTTP_TIMEOUT."
                             : "The request line was not complete in time (REQUEST_LINE_TIMEOUT).",
                         0);
    } else {
      hp__stream_close(&c->s); /* silent (or idle keep-alive): nothing to say */
    }
    return;
  case RDV_WS:
    if (c->relay) {
      hp__rdv_relay_timer(c);
      return;
    }
    if (c->sig == RDV_SIG_NEW) {
      hp__rdv_conn_fail(c, HP_RDV_ERR_HELLO_TIMEOUT, HP_WS_CLOSE_POLICY,
                        "No hello was received within %g s of opening the WebSocket "
                        "(HELLO_TIMEOUT).",
                        s->o.hello_timeout);
      return;
    }
    if (now < c->last_rx + (uint64_t)(s->o.ping_interval * 1000.0)) {
      c->ping_sent = 0;
      rearm(c);
      return;
    }
    if (!c->ping_sent) {
      c->ping_sent = 1;
      (void)hp__ws_ping(c->ws);
      rearm(c);
      return;
    }
    HP_DEBUG(RDV_COMP, json_pack("{s:s,s:s}", "addr", c->observed, "peer", c->id),
             "websocket silent for IDLE_TIMEOUT: hanging up");
    hp__stream_close(&c->s);
    return;
  default:
    /* The linger of a close is over. */
    hp__stream_close(&c->s);
    return;
  }
}

static void arm(rdv_conn *c, uint64_t at_ms) {
  uint64_t now = now_ms(c);
  uv_timer_start(&c->timer, on_timer, at_ms > now ? at_ms - now : 0, 0);
}

/* ---------------------------------------------------------------------- */
/* closing                                                                */

/* The last words are queued: flush, FIN, wait (bounded) for the peer. */
static void conn_finish(rdv_conn *c, rdv_conn_state st, uint64_t linger_ms) {
  c->state = (uint8_t)st;
  hp__stream_finish(&c->s);
  arm(c, now_ms(c) + linger_ms);
}

void hp__rdv_conn_finish(rdv_conn *c) {
  if (c->state == RDV_HTTP || c->state == RDV_WS)
    conn_finish(c, RDV_CLOSING, CLOSE_LINGER_MS);
}

void hp__rdv_conn_rearm(rdv_conn *c) {
  rearm(c);
}

void hp__rdv_conn_close_ws(rdv_conn *c, uint16_t status) {
  hp__rdv_conn_close_ws_reason(c, status, "closing");
}

void hp__rdv_conn_close_ws_reason(rdv_conn *c, uint16_t status, const char *reason) {
  if (c->state != RDV_WS)
    return;
  if (c->relay)
    hp__rdv_relay_closing(c, status);
  else
    hp__rdv_sig_leave(c);
  (void)hp__ws_close(c->ws, status, reason);
  /* Wait for the peer's close frame (then FIN), bounded. */
  c->state = RDV_CLOSING;
  arm(c, now_ms(c) + CLOSE_LINGER_MS);
}

void hp__rdv_conn_fail(rdv_conn *c, hp__rdv_err code, uint16_t status, const char *fmt, ...) {
  hp__rdv *s = c->srv;
  hp__msg m;
  va_list ap;
  char *text;
  size_t len = 0;

  if (c->state != RDV_WS)
    return;
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_ERROR;
  snprintf(m.u.error.code, sizeof(m.u.error.code), "%s", hp__rdv_err_name(code));
  va_start(ap, fmt);
  vsnprintf(m.u.error.message, sizeof(m.u.error.message), fmt, ap);
  va_end(ap);
  s->m.errors[code]++;
  HP_WARN(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:i}", "code", m.u.error.code, "addr", c->observed, "peer", c->id,
                    "close", (int)status),
          "error sent to client: %s", m.u.error.message);
  text = hp__msg_encode(&m, &len);
  /* If even the error cannot be written, the close still goes out. */
  if (text)
    (void)hp__rdv_conn_send_text(c, text, len);
  free(text);
  hp__rdv_conn_close_ws(c, status);
}

void hp__rdv_conn_shutdown(rdv_conn *c) {
  switch ((rdv_conn_state)c->state) {
  case RDV_WS:
    hp__rdv_conn_close_ws(c, HP_WS_CLOSE_GOING_AWAY);
    break;
  case RDV_HTTP:
    if (c->http && hp__http1_started(c->http))
      return; /* let the request finish, bounded by the shutdown timeout */
    hp__stream_close(&c->s);
    break;
  default:
    break;
  }
}

/* ---------------------------------------------------------------------- */
/* WebSocket                                                              */

static int ws_writev(void *arg, const struct iovec *iov, int n) {
  rdv_conn *c = arg;
  int rc = hp__stream_writev(&c->s, iov, n);

  if (rc == -ENOBUFS) {
    /* The client does not read what it asked for: drop it. */
    HP_WARN(RDV_COMP, json_pack("{s:s}", "addr", c->observed),
            "client does not read its messages (write queue over %d bytes): dropped",
            WRITE_QUEUE_MAX);
    hp__stream_close(&c->s);
  }
  return rc;
}

static void ws_message(void *arg, int binary, const uint8_t *data, size_t len) {
  rdv_conn *c = arg;

  if (c->state != RDV_WS)
    return;
  c->srv->m.bytes_received += len;
  hp__rdv_sig_message(c, binary, data, len);
}

static void ws_chunk(void *arg, int binary, int first, int fin, const uint8_t *d, size_t n) {
  rdv_conn *c = arg;

  /* HP_WS_FRAMES: only relay connections. */
  if (c->relay && c->state == RDV_WS)
    hp__rdv_relay_chunk(c, binary, first, fin, d, n);
}

static void ws_closed(void *arg, uint16_t status) {
  rdv_conn *c = arg;

  HP_DEBUG(RDV_COMP, json_pack("{s:s,s:i}", "addr", c->observed, "status", (int)status),
           "websocket close received");
  if (c->relay)
    hp__rdv_relay_ws_closed(c, status);
  else if (c->state == RDV_WS)
    hp__rdv_sig_leave(c);
  /* Both close frames are exchanged: the server closes TCP first (RFC
   * 6455 7.1.1), after its last bytes. */
  conn_finish(c, RDV_CLOSING, CLOSE_LINGER_MS);
}

static void ws_failed(void *arg, hp__ws_fail why, const char *text) {
  rdv_conn *c = arg;
  hp__rdv *s = c->srv;
  size_t cap = c->sig == RDV_SIG_NEW ? PRE_HELLO_MAX_MESSAGE : s->o.max_message_bytes;

  if (cap > s->o.max_message_bytes)
    cap = s->o.max_message_bytes;
  switch (why) {
  case HP_WS_FAIL_TOO_BIG:
    hp__rdv_conn_fail(c, HP_RDV_ERR_TOO_LARGE, HP_WS_CLOSE_TOO_BIG,
                      c->sig == RDV_SIG_NEW
                          ? "The message is larger than the limit of %zu bytes before hello "
                            "(a hello is far smaller)."
                          : "The message is larger than the limit of %zu bytes "
                            "(MAX_MESSAGE_BYTES).",
                      cap);
    break;
  case HP_WS_FAIL_FRAGMENTS:
    hp__rdv_conn_fail(c, HP_RDV_ERR_TOO_LARGE, HP_WS_CLOSE_TOO_BIG,
                      "The message came in more than %d fragments.", MAX_FRAGMENTS);
    break;
  case HP_WS_FAIL_BUDGET:
    hp__rdv_conn_fail(c, HP_RDV_ERR_SERVER_FULL, HP_WS_CLOSE_TRY_AGAIN_LATER,
                      "The server's input buffers are full (INPUT_BUFFER_BUDGET); try again "
                      "later.");
    break;
  case HP_WS_FAIL_NOMEM:
    hp__rdv_conn_fail(c, HP_RDV_ERR_INTERNAL_ERROR, HP_WS_CLOSE_INTERNAL,
                      "The server could not buffer the message; please retry.");
    break;
  case HP_WS_FAIL_PROTOCOL:
  default:
    HP_WARN(RDV_COMP,
            json_pack("{s:s,s:s,s:i}", "addr", c->observed, "peer", c->id, "close",
                      HP_WS_CLOSE_PROTOCOL),
            "WebSocket protocol error from client: %s", text);
    hp__rdv_conn_close_ws(c, HP_WS_CLOSE_PROTOCOL);
    break;
  }
}

/* µs of the monotonic clock: the time base of clock pings and round trips. */
static uint64_t now_us(void) {
  return uv_hrtime() / 1000;
}

static void rtt_ping(rdv_conn *c) {
  uint8_t p[HP_CS_RDVPING_LEN];
  (void)hp__ws_ping_data(c->ws, p, hp__cs_encode_rdvping(p, now_us()));
}

/* Round-trip measurement (our pings' pongs) and the worker's clock pings. */
static void ws_control(void *arg, int pong, const uint8_t *data, size_t len) {
  rdv_conn *c = arg;
  uint64_t now = now_us();
  hp__cs_ping p;

  if (c->state != RDV_WS || hp__cs_decode(data, len, &p) < 0)
    return; /* any other ping or pong is just answered / ignored */
  if (pong) {
    if (p.kind != HP_CS_RDVPING || p.t0 > now)
      return;
    hp__cs_rtt_add(&c->rtt, now - p.t0);
    if (c->rtt.n < RTT_PINGS)
      rtt_ping(c);
    return;
  }
  if (p.kind == HP_CS_SAMPLE) {
    /* Taken at the first clock ping only: old workers never cost this. */
    if (!c->clock && !(c->clock = calloc(1, sizeof *c->clock)))
      return;
    hp__cs_clock_sample(c->clock, p.t0, now);
  } else if (p.kind == HP_CS_REPORT && c->clock && hp__cs_clock_report(c->clock, &p) == 0) {
    HP_DEBUG(RDV_COMP,
             json_pack("{s:s,s:I,s:i,s:i}", "addr", c->observed, "offset_us",
                       (json_int_t)c->clock->offset_us, "rtt_us", (int)c->clock->rtt_us,
                       "rtt_max_us", (int)c->clock->rtt_max_us),
             "clock of the worker estimated");
  }
}

static const hp__ws_ops ws_ops = {ws_writev, ws_message, ws_chunk,
                                  ws_closed, ws_failed,  ws_control};

int hp__rdv_conn_send_text(rdv_conn *c, const char *text, size_t len) {
  int rc;

  if (c->state != RDV_WS)
    return -EPIPE;
  rc = hp__ws_send(c->ws, 0, text, len);
  if (!rc)
    c->srv->m.bytes_sent += len;
  return rc;
}

int hp__rdv_conn_writable(const rdv_conn *c) {
  return c->state == RDV_WS && c->s.state == HP_STREAM_OPEN &&
         hp__stream_queued(&c->s) < WRITE_QUEUE_MAX / 2;
}

void hp__rdv_conn_registered(rdv_conn *c) {
  hp__ws_set_max_message(c->ws, c->srv->o.max_message_bytes);
}

int hp__rdv_conn_upgrade(rdv_conn *c, int relay) {
  hp__rdv *s = c->srv;
  size_t cap = s->o.max_message_bytes < PRE_HELLO_MAX_MESSAGE ? s->o.max_message_bytes
                                                              : PRE_HELLO_MAX_MESSAGE;

  if (relay) {
    /* Data frames pass through chunk by chunk (relay.c), nothing is
     * reassembled but the short text messages, which relay.c caps. */
    if (hp__rdv_relay_attach(c) < 0)
      return -ENOMEM;
    c->ws = hp__ws_create(s->wsenv, HP_WS_SERVER, HP_WS_FRAMES, &ws_ops, c, 0, RELAY_MAX_FRAGMENTS);
    c->s.max_queued = RELAY_QUEUE_MAX;
    c->sig = RDV_SIG_NONE;
  } else {
    c->ws = hp__ws_create(s->wsenv, HP_WS_SERVER, HP_WS_MESSAGES, &ws_ops, c, cap, MAX_FRAGMENTS);
    c->sig = RDV_SIG_NEW;
  }
  if (!c->ws)
    return -ENOMEM; /* c->relay, if any, goes with the connection */
  c->state = RDV_WS;
  c->t0 = c->last_rx = now_ms(c);
  c->frame_tokens = FRAME_BURST;
  c->frame_refill_ms = c->t0;
  if (!relay)
    s->m.connections++;
  HP_DEBUG(RDV_COMP, json_pack("{s:s,s:b}", "addr", c->observed, "relay", relay), "websocket open");
  /* The first round-trip sample, behind the 101: ready by the pairing
   * (signaling WebSockets only). */
  if (!relay)
    rtt_ping(c);
  rearm(c);
  return 0;
}

/* Charge the frames received since the last call; 0 or -1 (over). */
static int frame_rate_ok(rdv_conn *c) {
  uint64_t frames = hp__ws_frames(c->ws), now = c->last_rx;
  double add = (double)(frames - c->frames_seen);

  c->frames_seen = frames;
  if (now > c->frame_refill_ms) {
    c->frame_tokens += (double)(now - c->frame_refill_ms) * FRAME_RATE / 1000.0;
    if (c->frame_tokens > FRAME_BURST)
      c->frame_tokens = FRAME_BURST;
    c->frame_refill_ms = now;
  }
  c->frame_tokens -= add;
  return c->frame_tokens < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* reading                                                                */

static void http_input(rdv_conn *c, const uint8_t *data, size_t len) {
  while (c->state == RDV_HTTP) {
    size_t used = 0;
    hp__http1_rc rc = hp__http1_feed(c->http, data, len, &used);

    data += used;
    len -= used;
    if (rc == HP_HTTP1_MORE) {
      rearm(c);
      return;
    }
    if (rc == HP_HTTP1_ERROR) {
      hp__rdv_http_error(c, hp__http1_error_status(c->http), "bad_request",
                         hp__http1_error_text(c->http), 0);
      return;
    }
    if (!hp__rdv_http_route(c, hp__http1_request(c->http)))
      break; /* upgraded, or closing */
    /* Keep-alive: the next request gets HTTP_TIMEOUT from now. */
    hp__http1_next(c->http);
    c->requests++;
    c->t0 = c->last_rx = now_ms(c);
    if (!len) {
      rearm(c);
      return;
    }
  }
  if (c->state == RDV_WS) {
    hp__http1_destroy(c->http);
    c->http = NULL;
    /* What the client sent right after its upgrade request is WebSocket. */
    if (len)
      (void)hp__ws_feed(c->ws, data, len);
  }
}

static void conn_read(hp__stream *st, const uint8_t *data, size_t len) {
  rdv_conn *c = conn_of(st);

  c->last_rx = now_ms(c);
  switch ((rdv_conn_state)c->state) {
  case RDV_HTTP:
    http_input(c, data, len);
    break;
  case RDV_WS:
  case RDV_CLOSING:
    if (!c->ws)
      break;
    c->ping_sent = 0;
    (void)hp__ws_feed(c->ws, data, len);
    if (c->relay) {
      /* Relayed data comes in many frames: no frame rate, the relay's own
       * limits instead. */
      hp__rdv_relay_after_read(c);
      break;
    }
    if (c->state == RDV_WS && frame_rate_ok(c) < 0)
      hp__rdv_conn_fail(c, HP_RDV_ERR_RATE_LIMITED, HP_WS_CLOSE_POLICY,
                        "Too many WebSocket frames (more than %g per second); slow down.",
                        FRAME_RATE);
    break;
  default:
    break; /* refused or closed: dropped */
  }
}

static void conn_eof(hp__stream *st, int err) {
  rdv_conn *c = conn_of(st);

  (void)err;
  if (c->relay)
    hp__rdv_relay_lost(c);
  else if (c->state == RDV_WS)
    hp__rdv_sig_leave(c);
  hp__stream_close(&c->s);
}

static void conn_drained(hp__stream *st) {
  rdv_conn *c = conn_of(st);

  if (c->relay)
    hp__rdv_relay_drained(c);
}

/* ---------------------------------------------------------------------- */
/* accept                                                                 */

hp__stream *hp__rdv_conn_alloc(void *arg) {
  hp__rdv *s = arg;
  rdv_conn *c = calloc(1, sizeof(*c));

  if (!c)
    return NULL;
  c->srv = s;
  if (hp__stream_init(&c->s, s->loop, &stream_cb, WRITE_QUEUE_MAX) < 0) {
    free(c);
    return NULL;
  }
  c->handles = 1;
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->handles++;
  /* Linked at once, so that a shutdown or destroy finds it whatever
   * happens next; conn_closed unlinks it. */
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  c->state = RDV_NEW;
  c->admission = RDV_ADM_NONE;
  return &c->s;
}

void hp__rdv_conn_accepted(void *arg, hp__stream *st, const struct sockaddr_storage *peer,
                           hp__ipent *ent) {
  hp__rdv *s = arg;
  rdv_conn *c = conn_of(st);
  hp__http1_limits lim = {HTTP_MAX_HEADER_BYTES, HTTP_MAX_HEADERS, HTTP_MAX_BODY};

  c->state = RDV_HTTP;
  c->admission = RDV_ADM_ADMITTED;
  if (!c->lis)
    c->lis = s->lis; /* the observer port's callback set lis2 first */
  c->ent = ent;
  c->peer = *peer;
  s->m.tcp_connections++;
  c->t0 = c->last_rx = now_ms(c);
  c->http = hp__http1_create(&lim);
  /* Small messages that answer the client (101, welcome, peer) must not
   * wait for its delayed ACK (Nagle): one setsockopt per connection. */
  (void)uv_tcp_nodelay(&c->s.tcp, 1);
  if (!c->http || hp__stream_read(&c->s, 1) < 0) {
    hp__stream_close(&c->s);
    return;
  }
  rearm(c);
}

void hp__rdv_conn_accepted2(void *arg, hp__stream *st, const struct sockaddr_storage *peer,
                            hp__ipent *ent) {
  hp__rdv *s = arg;
  rdv_conn *c = conn_of(st);

  c->lis = s->lis2; /* before anything can close it: its slot is lis2's */
  hp__rdv_conn_accepted(arg, st, peer, ent);
}

void hp__rdv_conn_refused(void *arg, hp__stream *st, hp__refusal why) {
  hp__rdv *s = arg;
  rdv_conn *c = conn_of(st);

  (void)why;
  c->state = RDV_REFUSED;
  c->admission = RDV_ADM_REFUSED;
  s->lingering++;
  s->m.errors[HP_RDV_ERR_SERVER_FULL]++;
  hp__rdv_http_refuse(c);
  if (s->lingering > LINGER_MAX) {
    hp__stream_close(&c->s); /* too many answered at once: close now */
    return;
  }
  (void)hp__stream_read(&c->s, 1); /* read and drop the request, then FIN */
  conn_finish(c, RDV_REFUSED, REFUSED_LINGER_MS);
}
