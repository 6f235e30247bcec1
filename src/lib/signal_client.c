/*
 * signal_client.c - the signaling WebSocket (<base>/ws) on src/net's
 * WebSocket client (ws_client.h): protocol v1 messages over text frames.
 *
 * Lifetime: one explicit state per client (sig_state below). The
 * connection's own life (connect, TLS, upgrade, frames, the polite close
 * and its bound) is the ws_client's; this file turns its events into the
 * protocol's: a valid message, or one failure sentence.
 *
 *   CONNECTING --open--> CLOCK --pongs in, or 1 s--> OPEN (opened())
 *   CONNECTING | CLOCK | OPEN --the connection ended--> FAILED (failed()
 *     delivered)
 *   OPEN --a binary frame, an invalid message--> FAILED_CLOSING (failed()
 *     delivered; the bad connection is being closed with 1003/1002)
 *     --its end--> FAILED
 *   any --hp__sig_close--> CLOSING (OPEN: close frame 1000 after what is
 *     queued, wait for the answer, 2 s in all; otherwise the attempt is
 *     dropped) --the connection's end--> done(), freed
 *   FAILED --hp__sig_close--> done() at once
 * The memory goes with the timer's close callback (libuv close rule).
 *
 * CLOCK (synchronised start, clocksync.h): before hello, clock pings
 * (WebSocket pings carrying our send time) let the rendezvous estimate our
 * clock's offset and the path's round trip; the first goes alone, the
 * others are spaced by a third of its round trip (1..30 ms, so that they see
 * independent jitter), then a report ping with every sample, at most 1 s in
 * all. A rendezvous that does not know them answers the pings (RFC 6455) and
 * ignores their payload.
 */
#include "signal_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clocksync.h"
#include "log.h"
#include "ws_client.h"

#define SIG_CLOSE_BOUND_MS 2000
/* The session's WS_OPEN_TIMEOUT bounds the opening; this only keeps the
 * client bounded on its own. */
#define SIG_OPEN_BOUND_MS 300000
#define SIG_QUEUE_BYTES (256 * 1024)
#define SIG_MAX_FRAGMENTS 64
#define SIG_CLOCK_PINGS 16
#define SIG_CLOCK_BOUND_MS 1000

typedef enum sig_state {
  SIG_CONNECTING,     /* TCP, TLS, upgrade in progress */
  SIG_CLOCK,          /* upgraded: clock pings, no message sent yet (before opened()) */
  SIG_OPEN,           /* messages flow both ways */
  SIG_FAILED_CLOSING, /* failed() delivered; the bad connection is closing */
  SIG_FAILED,         /* failed() delivered; the connection is over */
  SIG_CLOSING         /* hp__sig_close: freed when the connection's end arrives */
} sig_state;

struct hp__sig {
  hp__wsc *wsc;
  uv_loop_t *loop;
  uv_timer_t timer; /* CLOCK: the next ping and the bound */
  /* Clock pings: send times t0 and pong times t2, µs. */
  uint64_t ck_t0[SIG_CLOCK_PINGS], ck_t2[SIG_CLOCK_PINGS];
  unsigned ck_sent, ck_got, ck_gap_ms;
  uint64_t ck_begin, ck_next; /* uv_now() ms */
  hp__sig_cbs cbs;
  void *data;
  sig_state st;
  void (*done)(void *);
  void *done_data;
  hp__msg msg;
};

static void on_timer_closed(uv_handle_t *h) {
  free(h->data);
}

/* done() now; the memory once the timer closed. */
static void sig_free(hp__sig *s) {
  void (*done)(void *) = s->done;
  void *dd = s->done_data;

  hp__wsc_free(s->wsc);
  s->wsc = NULL;
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
  if (done)
    done(dd);
}

/* A failure seen here (not by the connection): say it, close the bad
 * connection politely (bounded by ws_client). */
static void sig_fail(hp__sig *s, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sig_fail(hp__sig *s, uint16_t code, const char *fmt, ...) {
  char reason[HP_REASON_MAX];
  va_list ap;

  if (s->st != SIG_OPEN && s->st != SIG_CLOCK)
    return;
  uv_timer_stop(&s->timer);
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  s->st = SIG_FAILED_CLOSING;
  hp__wsc_close(s->wsc, code, NULL);
  /* The caller calls hp__sig_close, maybe from inside this callback. */
  s->cbs.failed(s->data, reason);
}

static uint64_t now_us(void) {
  return uv_hrtime() / 1000;
}

static void on_timer(uv_timer_t *t);

/* Sampling is over: the report, then opened() (the caller sends hello). */
static void clock_done(hp__sig *s) {
  uv_timer_stop(&s->timer);
  if (s->ck_got) {
    uint8_t p[HP_CS_REPORT_MAX];
    size_t n = hp__cs_encode_report(p, s->ck_t0, s->ck_t2, s->ck_sent);
    if (hp__wsc_ping_data(s->wsc, p, n) < 0)
      return; /* the connection's end follows */
    HP_DEBUG("signal", json_pack("{s:i,s:i}", "sent", (int)s->ck_sent, "answered", (int)s->ck_got),
             "clock pings done");
  }
  s->st = SIG_OPEN;
  s->cbs.opened(s->data);
}

/* The next clock ping, or the end of sampling. */
static void clock_step(hp__sig *s) {
  uint64_t now = uv_now(s->loop), bound = s->ck_begin + SIG_CLOCK_BOUND_MS, delay;

  if (s->ck_got == SIG_CLOCK_PINGS || now >= bound) {
    clock_done(s);
    return;
  }
  if (s->ck_got && s->ck_sent < SIG_CLOCK_PINGS && now >= s->ck_next) {
    uint8_t p[HP_CS_SAMPLE_LEN];
    size_t n;
    s->ck_t0[s->ck_sent] = now_us();
    n = hp__cs_encode_sample(p, s->ck_t0[s->ck_sent]);
    if (hp__wsc_ping_data(s->wsc, p, n) < 0)
      return; /* the connection's end follows */
    s->ck_sent++;
    s->ck_next = now + s->ck_gap_ms;
  }
  delay = s->ck_got && s->ck_sent < SIG_CLOCK_PINGS && s->ck_next < bound
              ? (s->ck_next > now ? s->ck_next - now : 1)
              : bound - now;
  uv_timer_start(&s->timer, on_timer, delay, 0);
}

static void on_timer(uv_timer_t *t) {
  hp__sig *s = t->data;

  if (s->st == SIG_CLOCK)
    clock_step(s);
}

static void on_pong(void *arg, const uint8_t *data, size_t len) {
  hp__sig *s = arg;
  hp__cs_ping p;
  uint64_t now = now_us();

  if (s->st != SIG_CLOCK || hp__cs_decode(data, len, &p) < 0 || p.kind != HP_CS_SAMPLE)
    return;
  for (unsigned i = 0; i < s->ck_sent; i++) {
    if (s->ck_t0[i] == p.t0 && !s->ck_t2[i] && now >= p.t0) {
      s->ck_t2[i] = now;
      if (!s->ck_got++) {
        uint64_t q = (now - p.t0) / 3000;
        s->ck_gap_ms = q < 1 ? 1 : q > 30 ? 30 : (unsigned)q;
      }
      /* From the timer, not from inside the connection's callback. */
      uv_timer_start(&s->timer, on_timer, 0, 0);
      return;
    }
  }
}

static void on_open(void *arg) {
  hp__sig *s = arg;
  uint8_t p[HP_CS_SAMPLE_LEN];
  size_t n;

  if (s->st != SIG_CONNECTING)
    return;
  s->st = SIG_CLOCK;
  HP_DEBUG("signal", json_pack("{s:s}", "url", hp__wsc_url(s->wsc)), "WebSocket open");
  /* The first clock ping, alone; hello follows the clock pings. */
  s->ck_begin = uv_now(s->loop);
  s->ck_t0[0] = now_us();
  s->ck_sent = 1;
  n = hp__cs_encode_sample(p, s->ck_t0[0]);
  if (hp__wsc_ping_data(s->wsc, p, n) < 0)
    return; /* the connection's end follows */
  uv_timer_start(&s->timer, on_timer, SIG_CLOCK_BOUND_MS, 0);
}

static void on_message(void *arg, int binary, const uint8_t *data, size_t len) {
  hp__sig *s = arg;
  hp__wire_err werr;

  if (s->st != SIG_OPEN && s->st != SIG_CLOCK)
    return;
  if (binary) {
    sig_fail(s, HP_WS_CLOSE_UNSUPPORTED_DATA,
             "the rendezvous sent a binary frame (protocol v1 uses text frames only)");
    return;
  }
  if (hp__msg_decode((const char *)data, len, &s->msg, &werr) < 0) {
    sig_fail(s, HP_WS_CLOSE_POLICY, "the rendezvous broke the protocol: %s", werr.message);
    return;
  }
  s->cbs.message(s->data, &s->msg);
}

/* The connection's end, in the words the worker's tests and users know. */
static void describe(const hp__wsc_end *e, char *out, size_t cap) {
  switch (e->kind) {
  case HP_WSC_END_PEER_CLOSED:
    snprintf(out, cap, "the rendezvous closed the WebSocket (close code %u)", e->code);
    return;
  case HP_WSC_END_DROPPED:
    snprintf(out, cap, "the rendezvous closed the WebSocket without a close frame");
    return;
  case HP_WSC_END_FAILED:
    if (!e->opened)
      snprintf(out, cap, "%s", e->reason); /* "cannot open the WebSocket to URL: why" */
    else if (e->ws_fail == HP_WS_FAIL_TOO_BIG)
      snprintf(out, cap, "the rendezvous sent a message larger than %d bytes", HP_MSG_MAX);
    else if (e->ws_fail == HP_WS_FAIL_FRAGMENTS)
      snprintf(out, cap, "the rendezvous sent a message in more than %d fragments",
               SIG_MAX_FRAGMENTS);
    else if (e->ws_fail == HP_WS_FAIL_PROTOCOL)
      snprintf(out, cap, "the rendezvous broke the WebSocket protocol: %s", e->reason);
    else
      snprintf(out, cap, "the WebSocket to the rendezvous failed: %s", e->reason);
    return;
  case HP_WSC_END_CLOSED:
  default:
    snprintf(out, cap, "the WebSocket to the rendezvous was closed");
    return;
  }
}

static void on_end(void *arg, const hp__wsc_end *e) {
  hp__sig *s = arg;
  char reason[HP_REASON_MAX];

  switch (s->st) {
  case SIG_CONNECTING:
  case SIG_CLOCK:
  case SIG_OPEN:
    uv_timer_stop(&s->timer);
    describe(e, reason, sizeof(reason));
    s->st = SIG_FAILED;
    /* The caller calls hp__sig_close, maybe from here: s is not touched
     * after this. */
    s->cbs.failed(s->data, reason);
    return;
  case SIG_FAILED_CLOSING:
    s->st = SIG_FAILED;
    return;
  case SIG_CLOSING:
    HP_DEBUG("signal", json_pack("{s:s, s:i}", "url", hp__wsc_url(s->wsc), "code", e->code),
             "WebSocket closed: %s", e->reason);
    sig_free(s);
    return;
  default:
    return;
  }
}

static const hp__wsc_cbs wsc_cbs = {
    .open = on_open, .message = on_message, .pong = on_pong, .end = on_end};

int hp__sig_open(uv_loop_t *loop, const hp__url *url, const char *ca_file, const hp__sig_cbs *cbs,
                 void *data, hp__sig **out) {
  char path[sizeof(url->base) + sizeof "/ws"];
  char err[256];
  hp__wsc_opts o;
  hp__sig *s = calloc(1, sizeof(*s));
  int rc;

  if (!s)
    return -ENOMEM;
  s->cbs = *cbs;
  s->data = data;
  s->st = SIG_CONNECTING;
  s->loop = loop;
  if (uv_timer_init(loop, &s->timer) < 0) {
    free(s);
    return -ENOMEM;
  }
  s->timer.data = s;
  snprintf(path, sizeof(path), "%s/ws", url->base);
  memset(&o, 0, sizeof(o));
  o.host = url->host;
  o.port = url->port;
  o.tls = url->tls;
  o.path = path;
  o.ca_file = ca_file;
  o.user_agent = "holepunch/" HP_VERSION;
  o.open_timeout_ms = SIG_OPEN_BOUND_MS;
  o.close_bound_ms = SIG_CLOSE_BOUND_MS;
  o.max_message = HP_MSG_MAX;
  o.max_fragments = SIG_MAX_FRAGMENTS;
  o.max_queued = SIG_QUEUE_BYTES;
  rc = hp__wsc_open(loop, &o, &wsc_cbs, s, &s->wsc, err, sizeof(err));
  if (rc < 0) {
    HP_ERROR("signal", NULL, "cannot open the WebSocket: %s", err);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    return rc;
  }
  HP_DEBUG("signal", json_pack("{s:s}", "url", hp__wsc_url(s->wsc)), "opening the WebSocket");
  *out = s;
  return 0;
}

int hp__sig_send(hp__sig *s, const hp__msg *m) {
  size_t len;
  char *text;
  int rc;

  if (s->st != SIG_OPEN)
    return -ENOTCONN;
  text = hp__msg_encode(m, &len);
  if (!text)
    return -ENOMEM;
  rc = hp__wsc_send(s->wsc, 0, text, len);
  free(text);
  return rc;
}

void hp__sig_close(hp__sig *s, void (*done)(void *), void *done_data) {
  if (!s || s->st == SIG_CLOSING)
    return;
  s->done = done;
  s->done_data = done_data;
  if (s->st == SIG_FAILED) {
    sig_free(s); /* the connection is over already */
    return;
  }
  /* OPEN: close frame after what is queued, wait for the answer (bounded);
   * CONNECTING: the attempt is dropped; FAILED_CLOSING: that close goes on.
   * The connection's end frees s. */
  uv_timer_stop(&s->timer);
  s->st = SIG_CLOSING;
  hp__wsc_close(s->wsc, HP_WS_CLOSE_NORMAL, "bye");
}
