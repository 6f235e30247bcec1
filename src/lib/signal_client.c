/*
 * signal_client.c - libwebsockets client for the signaling WebSocket.
 *
 * Lifetime: one explicit state per client (sig_state below). The object
 * outlives its libwebsockets context: lws may still call back into it while
 * the context is being destroyed (closing the connection), so the memory is
 * freed only after the context's last uv handle has closed, and every
 * callback that arrives in a state that does not expect it is ignored.
 *
 *   CONNECTING --established--> CLOCK --pongs in, or 1 s--> OPEN (opened())
 *   CONNECTING | CLOCK | OPEN --error, close, bad input--> FAILING --tick--> FAILED
 *     (failed() is delivered from the timer, never inside an lws callback)
 *   any --hp__sig_close--> CLOSING (OPEN: flush the queue, then
 *     CLOSE_SENT: close frame, until the answer; bounded, 2 s in all;
 *     otherwise at once) --tick--> REAPING --context gone--> freed
 */
#include "signal_client.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clocksync.h"
#include "log.h"

#define SIG_QUEUE_MAX 8
/* Clock pings before hello (clocksync.h): this many samples, the first
 * alone, the others spaced by a third of its round trip (1..30 ms, so
 * that they see independent jitter), for at most CLOCK_BOUND_MS. */
#define SIG_CLOCK_PINGS 16
#define SIG_CLOCK_BOUND_MS 1000
#define SIG_CLOSE_BOUND_MS 2000
#define REAPER_PERIOD_MS 5
#define REAPER_TRIES 400 /* 2 s */

/* Sized from hp__url's limits, so the snprintf calls in hp__sig_open can
 * never truncate: "[" host "]:65535", base "/ws", "wss://" host_hdr path. */
#define SIG_HOST_HDR_MAX (sizeof((hp__url *)0)->host + sizeof "[]:65535" - 1)
#define SIG_PATH_MAX (sizeof((hp__url *)0)->base + sizeof "/ws" - 1)
#define SIG_URL_MAX (sizeof "wss://" - 1 + SIG_HOST_HDR_MAX - 1 + SIG_PATH_MAX)

typedef enum sig_state {
  SIG_CONNECTING, /* TCP, TLS, upgrade in progress */
  SIG_CLOCK,      /* established: clock pings, no message yet (before opened()) */
  SIG_OPEN,       /* established: messages flow both ways */
  SIG_FAILING,    /* a failure was seen; failed() goes out on the next tick */
  SIG_FAILED,     /* failed() delivered; waiting for hp__sig_close */
  SIG_CLOSING,    /* hp__sig_close: flushing the queue (bounded), then reap */
  SIG_CLOSE_SENT, /* the close frame is lws' now; waiting for the answer (same bound) */
  SIG_REAPING     /* the lws context is being destroyed; freed afterwards */
} sig_state;

struct hp__sig {
  uv_loop_t *loop;
  struct lws_context *ctx;
  struct lws *wsi; /* NULL once lws has closed it */
  hp__sig_cbs cbs;
  void *data;
  sig_state st;
  uv_timer_t timer; /* deferred failure, close bound, reaper */
  int reap_tries;
  char fail_reason[HP_REASON_MAX];
  void (*done)(void *);
  void *done_data;
  char *q[SIG_QUEUE_MAX]; /* LWS_PRE + text, owned */
  size_t qlen[SIG_QUEUE_MAX];
  size_t qn;
  char *rx; /* fragment assembly, HP_MSG_MAX cap */
  size_t rx_len;
  int close_code;
  /* Clock pings (SIG_CLOCK): send times t0 and pong times t2, µs. */
  uint64_t ck_t0[SIG_CLOCK_PINGS], ck_t2[SIG_CLOCK_PINGS];
  unsigned ck_sent, ck_got, ck_gap_ms;
  uint64_t ck_begin, ck_next;                     /* uv_now() ms */
  unsigned char ping[LWS_PRE + HP_CS_REPORT_MAX]; /* one ping to write */
  size_t ping_len;                                /* 0: none */
  char host_hdr[SIG_HOST_HDR_MAX];
  char path[SIG_PATH_MAX];
  char url[SIG_URL_MAX];
  hp__msg msg;
};

static void lws_emit(int level, const char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  /* lws reports things we report better ourselves (refused, TLS failures
   * arrive in CONNECTION_ERROR): keep its lines at debug. */
  HP_DEBUG("lws", json_pack("{s:i}", "lws_level", level), "%.*s", (int)n, line);
}

void hp__lws_log_setup(void) {
  lws_set_log_level(hp__log_enabled(HP_LOG_DEBUG) ? (LLL_ERR | LLL_WARN | LLL_NOTICE) : LLL_ERR,
                    lws_emit);
}

/* ---- destroying an lws context that runs on a foreign loop ---- */

/* lws marks its static handles (idle, timer) with data == the context, and
 * closes them only after every connection handle is closed. */
typedef struct ctx_count {
  const struct lws_context *ctx;
  int left;
} ctx_count;

static void count_ctx_handles(uv_handle_t *h, void *arg) {
  ctx_count *c = arg;
  if (h->data == c->ctx)
    c->left++;
}

static int ctx_handles_left(uv_loop_t *loop, const struct lws_context *ctx) {
  ctx_count c = {ctx, 0};
  uv_walk(loop, count_ctx_handles, &c);
  return c.left;
}

typedef struct reaper {
  uv_timer_t timer;
  struct lws_context *ctx;
  int tries;
} reaper;

static void on_reaper_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_reaper(uv_timer_t *t) {
  reaper *r = t->data;
  int left = ctx_handles_left(t->loop, r->ctx);

  if (left > 0 && ++r->tries < REAPER_TRIES)
    return;
  if (left > 0)
    /* Freeing now would be a use-after-free in lws' close callbacks:
     * leak the context instead, and say so. */
    HP_WARN("lws", NULL, "libwebsockets context still closing after 2 s; not freed");
  else
    lws_context_destroy(r->ctx); /* the second call frees it */
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, on_reaper_closed);
}

void hp__lws_context_release(uv_loop_t *loop, struct lws_context *ctx) {
  reaper *r;

  if (!ctx)
    return;
  lws_context_destroy(ctx);
  r = calloc(1, sizeof *r);
  if (!r)
    return; /* the context leaks; nothing else can be done safely */
  r->ctx = ctx;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, on_reaper, REAPER_PERIOD_MS, REAPER_PERIOD_MS);
}

/* ---- the client's own lifetime ---- */

static void on_timer(uv_timer_t *t);

static void schedule(hp__sig *s, uint64_t ms) {
  uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void fail(hp__sig *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(hp__sig *s, const char *fmt, ...) {
  va_list ap;

  /* Only the first failure counts, and none after hp__sig_close. */
  if (s->st != SIG_CONNECTING && s->st != SIG_CLOCK && s->st != SIG_OPEN)
    return;
  s->st = SIG_FAILING;
  va_start(ap, fmt);
  vsnprintf(s->fail_reason, sizeof s->fail_reason, fmt, ap);
  va_end(ap);
  schedule(s, 0);
}

static void on_sig_freed(uv_handle_t *h) {
  hp__sig *s = h->data;
  for (size_t i = 0; i < s->qn; i++)
    free(s->q[i]);
  free(s->rx);
  free(s);
}

/* From the timer only (never inside an lws callback): start destroying the
 * context; the timer then polls until its handles are gone. */
static void reap_start(hp__sig *s) {
  void (*done)(void *) = s->done;

  s->st = SIG_REAPING;
  s->done = NULL;
  if (done)
    done(s->done_data);
  if (s->ctx)
    lws_context_destroy(s->ctx); /* closes the connection; callbacks are ignored now */
  uv_timer_start(&s->timer, on_timer, 0, REAPER_PERIOD_MS);
}

static void reap_step(hp__sig *s) {
  if (s->ctx) {
    int left = ctx_handles_left(s->loop, s->ctx);
    if (left > 0 && ++s->reap_tries < REAPER_TRIES)
      return;
    if (left > 0) {
      /* lws would call into s later: leak both rather than crash. */
      HP_WARN("lws", NULL, "libwebsockets context still closing after 2 s; not freed");
      uv_timer_stop(&s->timer);
      uv_close((uv_handle_t *)&s->timer, NULL);
      return;
    }
    lws_context_destroy(s->ctx); /* the second call frees it */
    s->ctx = NULL;
  }
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_sig_freed);
}

static uint64_t now_us(void) {
  return uv_hrtime() / 1000;
}

static void clock_ping(hp__sig *s, const unsigned char *p, size_t n) {
  memcpy(s->ping + LWS_PRE, p, n);
  s->ping_len = n;
  if (s->wsi)
    lws_callback_on_writable(s->wsi);
}

/* The next clock ping, or the end of sampling: the report (the smallest
 * round trip's times and the largest round trip), then opened(). */
static void clock_step(hp__sig *s) {
  uint64_t now = uv_now(s->loop), bound = s->ck_begin + SIG_CLOCK_BOUND_MS;

  if (s->ck_got == SIG_CLOCK_PINGS || now >= bound) {
    if (s->ck_got) {
      unsigned char p[HP_CS_REPORT_MAX];
      size_t n = hp__cs_encode_report(p, s->ck_t0, s->ck_t2, s->ck_sent);
      clock_ping(s, p, n);
      HP_DEBUG("signal",
               json_pack("{s:i,s:i}", "sent", (int)s->ck_sent, "answered", (int)s->ck_got),
               "clock pings done");
    }
    s->st = SIG_OPEN;
    s->cbs.opened(s->data);
    return;
  }
  if (s->ck_got && s->ck_sent < SIG_CLOCK_PINGS && !s->ping_len && now >= s->ck_next) {
    unsigned char p[HP_CS_SAMPLE_LEN];
    size_t n;
    s->ck_t0[s->ck_sent] = now_us();
    n = hp__cs_encode_sample(p, s->ck_t0[s->ck_sent]);
    clock_ping(s, p, n);
    s->ck_sent++;
    s->ck_next = now + s->ck_gap_ms;
  }
  schedule(s, s->ck_got && s->ck_sent < SIG_CLOCK_PINGS && s->ck_next < bound
                  ? (s->ck_next > now ? s->ck_next - now : 1)
                  : bound - now);
}

static void clock_pong(hp__sig *s, const void *in, size_t len) {
  hp__cs_ping p;
  uint64_t now = now_us();

  if (hp__cs_decode(in, len, &p) < 0 || p.kind != HP_CS_SAMPLE)
    return;
  for (unsigned i = 0; i < s->ck_sent; i++) {
    if (s->ck_t0[i] == p.t0 && !s->ck_t2[i] && now >= p.t0) {
      s->ck_t2[i] = now;
      if (!s->ck_got++) {
        uint64_t q = (now - p.t0) / 3000;
        s->ck_gap_ms = q < 1 ? 1 : q > 30 ? 30 : (unsigned)q;
      }
      schedule(s, 0);
      return;
    }
  }
}

static void on_timer(uv_timer_t *t) {
  hp__sig *s = t->data;

  switch (s->st) {
  case SIG_CLOCK:
    clock_step(s);
    return;
  case SIG_FAILING:
    s->st = SIG_FAILED;
    /* The caller calls hp__sig_close, maybe from inside this callback. */
    s->cbs.failed(s->data, s->fail_reason);
    return;
  case SIG_CLOSING:
  case SIG_CLOSE_SENT:
    /* Closed politely, or the bound expired, or there was nothing to close. */
    reap_start(s);
    return;
  case SIG_REAPING:
    reap_step(s);
    return;
  default:
    return;
  }
}

/* ---- the WebSocket ---- */

/* Returns -1 when the connection must be dropped (after fail()). */
static int rx_frame(hp__sig *s, struct lws *wsi, const void *in, size_t len) {
  hp__wire_err werr;
  size_t total;

  if (lws_is_first_fragment(wsi))
    s->rx_len = 0;
  if (lws_frame_is_binary(wsi)) {
    fail(s, "the rendezvous sent a binary frame (protocol v1 uses text frames only)");
    return -1;
  }
  if (len > HP_MSG_MAX - s->rx_len) {
    fail(s, "the rendezvous sent a message larger than %d bytes", HP_MSG_MAX);
    return -1;
  }
  if (!s->rx && !(s->rx = malloc(HP_MSG_MAX))) {
    fail(s, "out of memory");
    return -1;
  }
  if (len)
    memcpy(s->rx + s->rx_len, in, len);
  s->rx_len += len;
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
    return 0;
  total = s->rx_len;
  s->rx_len = 0;
  if (hp__msg_decode(s->rx, total, &s->msg, &werr) < 0) {
    fail(s, "the rendezvous broke the protocol: %s", werr.message);
    return -1;
  }
  s->cbs.message(s->data, &s->msg);
  return 0;
}

static int write_one(hp__sig *s, struct lws *wsi) {
  if (s->ping_len) {
    size_t n = s->ping_len;
    s->ping_len = 0;
    if (lws_write(wsi, s->ping + LWS_PRE, n, LWS_WRITE_PING) < (int)n) {
      fail(s, "writing to the rendezvous WebSocket failed");
      return -1;
    }
    if (s->qn || s->st == SIG_CLOSING)
      lws_callback_on_writable(wsi);
    return 0;
  }
  if (s->qn) {
    char *buf = s->q[0];
    size_t len = s->qlen[0];
    int w = lws_write(wsi, (unsigned char *)buf + LWS_PRE, len, LWS_WRITE_TEXT);
    free(buf);
    memmove(s->q, s->q + 1, (s->qn - 1) * sizeof s->q[0]);
    memmove(s->qlen, s->qlen + 1, (s->qn - 1) * sizeof s->qlen[0]);
    s->qn--;
    if (w < (int)len) {
      fail(s, "writing to the rendezvous WebSocket failed");
      return -1;
    }
    /* One write per writable callback: the next message, or the close
     * frame, goes in the next one. */
    if (s->qn || s->st == SIG_CLOSING)
      lws_callback_on_writable(wsi);
    return 0;
  }
  if (s->st == SIG_CLOSING) {
    s->st = SIG_CLOSE_SENT; /* once: a second close would drop the socket */
    /* Returning -1 here, or a timeout kill, would drop the connection
     * without a close frame (lws 4.1 takes either for a dead socket). A
     * synchronous close with a reason set goes through the WebSocket role:
     * lws sends the close frame and waits for the rendezvous' answer;
     * CLIENT_CLOSED then ends our bound early. */
    lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
  }
  return 0;
}

/* lws' CONNECTION_ERROR text, made into advice where we recognise it. */
static void connect_failed(hp__sig *s, const char *in, size_t len) {
  char why[200];

  snprintf(why, sizeof why, "%.*s", in && len ? (int)(len < 190 ? len : 190) : 17,
           in && len ? in : "connection failed");
  if (strstr(why, "not 101") || strstr(why, "upgrade"))
    fail(s,
         "cannot open the WebSocket to %s: the server did not accept the WebSocket upgrade (%s); "
         "a proxy in front of the rendezvous must pass Upgrade and Connection headers",
         s->url, why);
  else if (strstr(why, "wrong version number") || strstr(why, "packet length too long"))
    fail(s, "cannot open the WebSocket to %s: the server does not speak TLS; use http:// or ws://",
         s->url);
  else
    fail(s, "cannot open the WebSocket to %s: %s", s->url, why);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  hp__sig *s = user;

  if (!s)
    return 0;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    s->wsi = NULL;
    if (s->st == SIG_CONNECTING)
      connect_failed(s, in, len);
    break;
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (s->st != SIG_CONNECTING)
      return -1; /* closed or failed meanwhile: hang up */
    s->st = SIG_CLOCK;
    HP_DEBUG("signal", json_pack("{s:s}", "url", s->url), "WebSocket open");
    {
      /* The first clock ping; the hello follows the clock pings. */
      unsigned char p[HP_CS_SAMPLE_LEN];
      s->ck_begin = uv_now(s->loop);
      s->ck_t0[0] = now_us();
      s->ck_sent = 1;
      size_t n = hp__cs_encode_sample(p, s->ck_t0[0]);
      clock_ping(s, p, n);
      schedule(s, SIG_CLOCK_BOUND_MS);
    }
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
    if (s->st == SIG_CLOCK)
      clock_pong(s, in, len);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (s->st == SIG_OPEN || s->st == SIG_CLOCK)
      return rx_frame(s, wsi, in, len);
    /* After a failure nothing more is read; while closing, input is moot. */
    return s->st == SIG_FAILING || s->st == SIG_FAILED ? -1 : 0;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (s->st == SIG_OPEN || s->st == SIG_CLOCK || s->st == SIG_CLOSING)
      return write_one(s, wsi);
    return s->st == SIG_FAILING || s->st == SIG_FAILED ? -1 : 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (len >= 2)
      s->close_code = (((const unsigned char *)in)[0] << 8) | ((const unsigned char *)in)[1];
    break;
  case LWS_CALLBACK_CLIENT_CLOSED:
    s->wsi = NULL;
    if (s->st == SIG_CLOSING || s->st == SIG_CLOSE_SENT)
      schedule(s, 0); /* the polite close is complete */
    else if (s->close_code)
      fail(s, "the rendezvous closed the WebSocket (close code %d)", s->close_code);
    else
      fail(s, "the rendezvous closed the WebSocket without a close frame");
    break;
  case LWS_CALLBACK_WSI_DESTROY:
    if (s->wsi == wsi)
      s->wsi = NULL;
    break;
  default:
    break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"hp-signal", callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int hp__sig_open(uv_loop_t *loop, const hp__url *url, const char *ca_file, const hp__sig_cbs *cbs,
                 void *data, hp__sig **out) {
  struct lws_context_creation_info info;
  struct lws_client_connect_info ci;
  void *foreign[1] = {loop};
  const int v6 = strchr(url->host, ':') != NULL;
  const int defport = url->port == (url->tls ? 443 : 80);
  hp__sig *s = calloc(1, sizeof *s);

  if (!s)
    return -ENOMEM;
  s->loop = loop;
  s->cbs = *cbs;
  s->data = data;
  s->st = SIG_CONNECTING;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  snprintf(s->host_hdr, sizeof s->host_hdr, "%s%s%s", v6 ? "[" : "", url->host, v6 ? "]" : "");
  if (!defport) {
    size_t n = strlen(s->host_hdr);
    snprintf(s->host_hdr + n, sizeof s->host_hdr - n, ":%d", url->port);
  }
  snprintf(s->path, sizeof s->path, "%s/ws", url->base);
  snprintf(s->url, sizeof s->url, "%s://%s%s", url->tls ? "wss" : "ws", s->host_hdr, s->path);

  hp__lws_log_setup();
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.foreign_loops = foreign;
  info.gid = -1;
  info.uid = -1;
  if (ca_file && *ca_file)
    info.client_ssl_ca_filepath = ca_file;
  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    HP_ERROR("signal", NULL,
             "cannot create the libwebsockets client context (is "
             "libwebsockets-evlib-uv installed?)");
    uv_close((uv_handle_t *)&s->timer, on_sig_freed);
    return -ENOMEM;
  }

  memset(&ci, 0, sizeof ci);
  ci.context = s->ctx;
  ci.address = url->host;
  ci.port = url->port;
  ci.path = s->path;
  ci.host = s->host_hdr;
  ci.origin = s->host_hdr;
  ci.ssl_connection = url->tls ? LCCSCF_USE_SSL : 0; /* verified; no insecure flags */
  ci.local_protocol_name = "hp-signal";
  ci.ietf_version_or_minus_one = -1;
  ci.userdata = s;
  HP_DEBUG("signal", json_pack("{s:s}", "url", s->url), "opening the WebSocket");
  s->wsi = lws_client_connect_via_info(&ci);
  if (!s->wsi && s->st == SIG_CONNECTING)
    fail(s, "cannot open the WebSocket to %s", s->url);
  *out = s;
  return 0;
}

int hp__sig_send(hp__sig *s, const hp__msg *m) {
  size_t len;
  char *text, *buf;

  if (s->st != SIG_OPEN || !s->wsi)
    return -ENOTCONN;
  if (s->qn >= SIG_QUEUE_MAX)
    return -ENOBUFS;
  text = hp__msg_encode(m, &len);
  if (!text)
    return -ENOMEM;
  buf = malloc(LWS_PRE + len);
  if (!buf) {
    free(text);
    return -ENOMEM;
  }
  memcpy(buf + LWS_PRE, text, len);
  free(text);
  s->q[s->qn] = buf;
  s->qlen[s->qn] = len;
  s->qn++;
  lws_callback_on_writable(s->wsi);
  return 0;
}

void hp__sig_close(hp__sig *s, void (*done)(void *), void *done_data) {
  if (!s || s->st == SIG_CLOSING || s->st == SIG_CLOSE_SENT || s->st == SIG_REAPING)
    return;
  s->done = done;
  s->done_data = done_data;
  if (s->st == SIG_OPEN && s->wsi) {
    /* Flush the queue, then a close frame (write_one); bounded. */
    s->st = SIG_CLOSING;
    lws_callback_on_writable(s->wsi);
    schedule(s, SIG_CLOSE_BOUND_MS);
  } else {
    /* Nothing was said, or it failed: tear down on the next tick (this may
     * be inside an lws callback, where the context must not be destroyed). */
    s->st = SIG_CLOSING;
    schedule(s, 0);
  }
}
