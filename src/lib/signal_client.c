/*
 * signal_client.c - libwebsockets client for the signaling WebSocket.
 */
#include "signal_client.h"

#include <errno.h>
#include <stdarg.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SIG_QUEUE_MAX 8
#define SIG_CLOSE_BOUND_MS 2000

/* Sized from hp__url's limits, so the snprintf calls in hp__sig_open can
 * never truncate: "[" host "]:65535", base "/ws", "wss://" host_hdr path. */
#define SIG_HOST_HDR_MAX (sizeof((hp__url *)0)->host + sizeof "[]:65535" - 1)
#define SIG_PATH_MAX (sizeof((hp__url *)0)->base + sizeof "/ws" - 1)
#define SIG_URL_MAX (sizeof "wss://" - 1 + SIG_HOST_HDR_MAX - 1 + SIG_PATH_MAX)

struct hp__sig {
  uv_loop_t *loop;
  struct lws_context *ctx;
  struct lws *wsi;
  hp__sig_cbs cbs;
  void *data;
  uv_timer_t timer; /* deferred notifications and the close bound */
  int established;
  int closing;      /* hp__sig_close was called: no callbacks but done */
  int reaping;      /* context destroyed, timer closing */
  int fail_pending; /* failed() to deliver on the next timer tick */
  char fail_reason[HP_REASON_MAX];
  void (*done)(void *);
  void *done_data;
  char *q[SIG_QUEUE_MAX]; /* LWS_PRE + text, owned */
  size_t qlen[SIG_QUEUE_MAX];
  size_t qn;
  char *rx; /* fragment assembly, HP_MSG_MAX cap */
  size_t rx_len;
  int close_code;
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

typedef struct reaper {
  uv_timer_t timer;
  struct lws_context *ctx;
  int tries;
  int left;
} reaper;

#define REAPER_PERIOD_MS 5
#define REAPER_TRIES 400 /* 2 s */

/* lws marks its static handles (idle, timer) with data == the context, and
 * closes them only after every connection handle is closed. */
static void count_ctx_handles(uv_handle_t *h, void *arg) {
  reaper *r = arg;
  if (h->data == r->ctx)
    r->left++;
}

static void on_reaper_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_reaper(uv_timer_t *t) {
  reaper *r = t->data;

  r->left = 0;
  uv_walk(t->loop, count_ctx_handles, r);
  if (r->left > 0 && ++r->tries < REAPER_TRIES)
    return;
  if (r->left > 0)
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

static void on_timer(uv_timer_t *t);

static void schedule(hp__sig *s, uint64_t ms) {
  if (!s->reaping)
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void fail(hp__sig *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(hp__sig *s, const char *fmt, ...) {
  va_list ap;

  if (s->closing || s->fail_pending)
    return;
  s->fail_pending = 1;
  va_start(ap, fmt);
  vsnprintf(s->fail_reason, sizeof s->fail_reason, fmt, ap);
  va_end(ap);
  schedule(s, 0);
}

static void on_closed_handle(uv_handle_t *h) {
  hp__sig *s = h->data;
  for (size_t i = 0; i < s->qn; i++)
    free(s->q[i]);
  free(s->rx);
  free(s);
}

/* The end: lws_context_destroy is never called from inside an lws callback,
 * only from this timer. */
static void reap(hp__sig *s) {
  void (*done)(void *) = s->done;

  s->done = NULL;
  s->reaping = 1;
  uv_timer_stop(&s->timer);
  if (done)
    done(s->done_data);
  if (s->ctx) {
    hp__lws_context_release(s->loop, s->ctx);
    s->ctx = NULL;
  }
  uv_close((uv_handle_t *)&s->timer, on_closed_handle);
}

static void on_timer(uv_timer_t *t) {
  hp__sig *s = t->data;

  if (s->closing) {
    /* Closed politely, or the bound expired, or there was nothing to close. */
    reap(s);
    return;
  }
  if (s->fail_pending) {
    s->fail_pending = 0;
    s->closing = 1; /* nothing after failed() */
    s->cbs.failed(s->data, s->fail_reason);
    s->closing = 0;
    /* The caller now calls hp__sig_close (maybe it already did above). */
  }
}

static void rx_frame(hp__sig *s, struct lws *wsi, const void *in, size_t len) {
  hp__wire_err werr;

  if (lws_is_first_fragment(wsi))
    s->rx_len = 0;
  if (lws_frame_is_binary(wsi)) {
    fail(s, "the rendezvous sent a binary frame (protocol v1 uses text frames only)");
    return;
  }
  if (len > HP_MSG_MAX - s->rx_len) {
    fail(s, "the rendezvous sent a message larger than %d bytes", HP_MSG_MAX);
    return;
  }
  if (!s->rx && !(s->rx = malloc(HP_MSG_MAX))) {
    fail(s, "out of memory");
    return;
  }
  memcpy(s->rx + s->rx_len, in, len);
  s->rx_len += len;
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
    return;
  if (hp__msg_decode(s->rx, s->rx_len, &s->msg, &werr) < 0) {
    fail(s, "the rendezvous broke the protocol: %s", werr.message);
    return;
  }
  s->rx_len = 0;
  if (!s->closing && !s->fail_pending)
    s->cbs.message(s->data, &s->msg);
}

static int write_one(hp__sig *s, struct lws *wsi) {
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
    if (s->qn) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  }
  if (s->closing) {
    lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
    return -1;
  }
  return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  hp__sig *s = user;

  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (!s)
      break;
    s->wsi = NULL;
    if (s->closing)
      schedule(s, 0);
    else
      fail(s, "cannot open the WebSocket to %s: %.*s", s->url, in && len ? (int)len : 17,
           in && len ? (const char *)in : "connection failed");
    break;
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!s)
      break;
    s->established = 1;
    HP_DEBUG("signal", json_pack("{s:s}", "url", s->url), "WebSocket open");
    if (!s->closing && !s->fail_pending)
      s->cbs.opened(s->data);
    if (s->qn || s->closing)
      lws_callback_on_writable(wsi);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (s && !s->closing)
      rx_frame(s, wsi, in, len);
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (!s)
      break;
    return write_one(s, wsi);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (s && len >= 2)
      s->close_code = (((const unsigned char *)in)[0] << 8) | ((const unsigned char *)in)[1];
    break;
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (!s)
      break;
    s->wsi = NULL;
    if (s->closing) {
      schedule(s, 0);
    } else {
      fail(s, "the rendezvous closed the WebSocket (close code %d)", s->close_code);
    }
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
    s->reaping = 1;
    uv_close((uv_handle_t *)&s->timer, on_closed_handle);
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
  if (!s->wsi)
    fail(s, "cannot open the WebSocket to %s", s->url);
  *out = s;
  return 0;
}

int hp__sig_send(hp__sig *s, const hp__msg *m) {
  size_t len;
  char *text, *buf;

  if (s->closing || s->fail_pending || !s->wsi)
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
  if (s->established)
    lws_callback_on_writable(s->wsi);
  return 0;
}

void hp__sig_close(hp__sig *s, void (*done)(void *), void *done_data) {
  if (!s || s->closing)
    return;
  s->closing = 1;
  s->fail_pending = 0;
  s->done = done;
  s->done_data = done_data;
  if (s->wsi && s->established) {
    /* Flush the queue, then a close frame (write_one); bounded. */
    lws_callback_on_writable(s->wsi);
    schedule(s, SIG_CLOSE_BOUND_MS);
  } else {
    schedule(s, 0);
  }
}
