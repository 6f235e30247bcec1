/*
 * ws_client.c - WebSocket client on libuv (see ws_client.h for the
 * contract and the state diagram).
 *
 * Byte path: hp__stream (TCP) -> hp__tls (wss only) -> hp__wsu (until the
 * 101) -> hp__ws (frames). Writes go the other way through transport_writev.
 * One timer serves the open timeout, the close bound and the deferred end()
 * notification; which of them it is follows from the state.
 */
#include "ws_client.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "tls_client.h"
#include "ws_upgrade.h"

#define DEF_OPEN_TIMEOUT_MS 15000
#define DEF_CLOSE_BOUND_MS 2000
#define DEF_MAX_MESSAGE 65536
#define DEF_MAX_FRAGMENTS 64
#define DEF_MAX_QUEUED (1u << 20)
#define HOST_MAX 256
#define PATH_MAX_LEN 512
#define UA_MAX 128
#define REQ_MAX (HOST_MAX + PATH_MAX_LEN + UA_MAX + 256)

typedef enum wsc_state {
  WSC_RESOLVING,  /* getaddrinfo in the pool */
  WSC_CONNECTING, /* TCP connect to c->ai_next (a failed address: the next one) */
  WSC_TLS,        /* TLS handshake */
  WSC_UPGRADING,  /* request sent; reading the response head */
  WSC_OPEN,       /* frames both ways */
  WSC_CLOSING,    /* our close frame sent; waiting for the server's (close bound) */
  WSC_FINISHING,  /* closes exchanged: close_notify, FIN, reading to the FIN (close bound) */
  WSC_ENDING,     /* outcome decided; end() goes out from the timer */
  WSC_ENDED,      /* end() delivered; waiting for hp__wsc_free */
  WSC_FREED       /* hp__wsc_free: memory goes with the last handle */
} wsc_state;

struct hp__wsc {
  hp__stream st; /* first: the stream's callbacks find c from it */
  uv_loop_t *loop;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  int handles;     /* uv handles and requests not yet called back */
  int stream_live; /* st holds an initialised handle not yet closed */
  wsc_state state;
  hp__wsc_cbs cbs;
  void *arg;
  hp__tls *tls;
  hp__wsu *wsu;
  hp__ws *ws;
  hp__ws_env *env, *own_env;
  struct addrinfo *ai, *ai_next;
  int last_err;
  /* options */
  int port, use_tls, frames;
  uint64_t open_timeout_ms, close_bound_ms;
  size_t max_message, max_queued;
  unsigned max_fragments;
  char host[HOST_MAX];
  char host_hdr[HOST_MAX + 10];
  char path[PATH_MAX_LEN];
  char ua[UA_MAX];
  char *ca_file;
  char url[HOST_MAX + PATH_MAX_LEN + 24];
  /* the outcome */
  hp__wsc_end_kind end_kind;
  int end_err, opened;
  uint16_t end_code;
  hp__ws_fail end_ws_fail;
  char reason[HP_WSC_REASON_MAX];
};

static void on_timer(uv_timer_t *t);
static void connect_next(hp__wsc *c);

static hp__wsc *of_stream(hp__stream *s) {
  return (hp__wsc *)(void *)s;
}

static void maybe_free(hp__wsc *c) {
  if (c->state != WSC_FREED || c->handles > 0)
    return;
  hp__ws_destroy(c->ws);
  hp__ws_env_destroy(c->own_env);
  hp__tls_destroy(c->tls);
  hp__wsu_destroy(c->wsu);
  if (c->ai)
    uv_freeaddrinfo(c->ai);
  free(c->ca_file);
  free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  hp__wsc *c = h->data;
  c->handles--;
  maybe_free(c);
}

static void close_stream(hp__wsc *c) {
  if (c->stream_live)
    hp__stream_close(&c->st);
}

/* The outcome is decided: end() goes out from the timer. In CLOSING and
 * FINISHING the owner asked to close, so whatever happens now is CLOSED. */
static void ending(hp__wsc *c) {
  c->state = WSC_ENDING;
  uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void finish(hp__wsc *c, hp__wsc_end_kind kind, int err, hp__ws_fail wf, int graceful,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void finish(hp__wsc *c, hp__wsc_end_kind kind, int err, hp__ws_fail wf, int graceful,
                   const char *fmt, ...) {
  va_list ap;

  if (c->state >= WSC_ENDING)
    return;
  if (c->state == WSC_CLOSING || c->state == WSC_FINISHING)
    kind = HP_WSC_END_CLOSED;
  c->end_kind = kind;
  c->end_err = err;
  c->end_ws_fail = wf;
  va_start(ap, fmt);
  vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
  va_end(ap);
  /* graceful: a close frame is queued; let it go out with a FIN (the
   * owner's hp__wsc_free ends that at the latest). */
  if (graceful && c->stream_live)
    hp__stream_finish(&c->st);
  else
    close_stream(c);
  ending(c);
}

/* A failure before the WebSocket was open: the sentence names the URL. */
static void open_failed(hp__wsc *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void open_failed(hp__wsc *c, int err, const char *fmt, ...) {
  char why[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  finish(c, HP_WSC_END_FAILED, err, 0, 0, "cannot open the WebSocket to %s: %s", c->url, why);
}

/* ---- writing ---- */

static int transport_writev(void *arg, const struct iovec *iov, int iovcnt) {
  hp__wsc *c = arg;

  if (!c->stream_live)
    return -EPIPE;
  if (!c->tls)
    return hp__stream_writev(&c->st, iov, iovcnt);
  for (int i = 0; i < iovcnt; i++) {
    int rc = hp__tls_write(c->tls, iov[i].iov_base, iov[i].iov_len);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int stream_writev(void *arg, const struct iovec *iov, int iovcnt) {
  hp__wsc *c = arg;
  return c->stream_live ? hp__stream_writev(&c->st, iov, iovcnt) : -EPIPE;
}

/* A write from inside a callback failed: the connection cannot go on. */
static void write_failed(hp__wsc *c, int rc) {
  if (c->state < WSC_OPEN)
    open_failed(c, rc, "writing failed: %s", strerror(-rc));
  else
    finish(c, HP_WSC_END_DROPPED, rc, 0, 0, "writing to %s failed: %s", c->url, strerror(-rc));
}

/* ---- the WebSocket ---- */

static void ws_message(void *arg, int binary, const uint8_t *data, size_t len) {
  hp__wsc *c = arg;
  if (c->state == WSC_OPEN)
    c->cbs.message(c->arg, binary, data, len);
}

static void ws_chunk(void *arg, int binary, int first, int fin, const uint8_t *data, size_t len) {
  hp__wsc *c = arg;
  if (c->state == WSC_OPEN && c->cbs.chunk)
    c->cbs.chunk(c->arg, binary, first, fin, data, len);
}

static void begin_finishing(hp__wsc *c) {
  c->state = WSC_FINISHING;
  if (c->tls)
    hp__tls_shutdown(c->tls);
  hp__stream_finish(&c->st);
  uv_timer_start(&c->timer, on_timer, c->close_bound_ms, 0);
}

static void ws_closed(void *arg, uint16_t status) {
  hp__wsc *c = arg;

  if (c->state == WSC_OPEN) {
    /* The server's close; hp__ws answered it. */
    c->end_kind = HP_WSC_END_PEER_CLOSED;
    c->end_code = status;
    snprintf(c->reason, sizeof(c->reason), "%s closed the WebSocket (close code %u)", c->url,
             status);
    begin_finishing(c);
  } else if (c->state == WSC_CLOSING) {
    c->end_kind = HP_WSC_END_CLOSED;
    c->end_code = status;
    snprintf(c->reason, sizeof(c->reason), "closed the WebSocket to %s", c->url);
    begin_finishing(c);
  }
}

static void ws_failed(void *arg, hp__ws_fail why, const char *text) {
  hp__wsc *c = arg;
  uint16_t code = why == HP_WS_FAIL_PROTOCOL                                 ? HP_WS_CLOSE_PROTOCOL
                  : why == HP_WS_FAIL_TOO_BIG || why == HP_WS_FAIL_FRAGMENTS ? HP_WS_CLOSE_TOO_BIG
                                                                             : HP_WS_CLOSE_INTERNAL;

  if (c->state != WSC_OPEN && c->state != WSC_CLOSING)
    return;
  (void)hp__ws_close(c->ws, code, NULL);
  if (why == HP_WS_FAIL_NOMEM || why == HP_WS_FAIL_BUDGET)
    finish(c, HP_WSC_END_FAILED, -ENOMEM, why, 1, "%s", text);
  else
    finish(c, HP_WSC_END_FAILED, -EPROTO, why, 1, "the server sent %s", text);
}

static void ws_control(void *arg, int pong, const uint8_t *data, size_t len) {
  hp__wsc *c = arg;

  if (pong && c->state == WSC_OPEN && c->cbs.pong)
    c->cbs.pong(c->arg, data, len);
}

static const hp__ws_ops ws_ops = {transport_writev, ws_message, ws_chunk,
                                  ws_closed,        ws_failed,  ws_control};

/* ---- reading ---- */

static void upgraded(hp__wsc *c, const uint8_t *rest, size_t len) {
  c->ws = hp__ws_create(c->env, HP_WS_CLIENT, c->frames ? HP_WS_FRAMES : HP_WS_MESSAGES, &ws_ops, c,
                        c->max_message, c->max_fragments);
  if (!c->ws) {
    open_failed(c, -ENOMEM, "out of memory");
    return;
  }
  hp__wsu_destroy(c->wsu);
  c->wsu = NULL;
  c->state = WSC_OPEN;
  c->opened = 1;
  uv_timer_stop(&c->timer);
  c->cbs.open(c->arg);
  /* The owner may have closed or freed us from open(). */
  if (len && (c->state == WSC_OPEN || c->state == WSC_CLOSING))
    (void)hp__ws_feed(c->ws, rest, len);
}

static void on_plain(hp__wsc *c, const uint8_t *data, size_t len) {
  size_t used = 0;

  switch (c->state) {
  case WSC_UPGRADING:
    switch (hp__wsu_feed(c->wsu, data, len, &used)) {
    case HP_WSU_MORE:
      return;
    case HP_WSU_ERROR:
      if (hp__wsu_failure(c->wsu) == HP_WSU_FAIL_REFUSED)
        open_failed(c, -EPROTO,
                    "%s; a proxy in front of the server must pass the Upgrade and Connection "
                    "headers",
                    hp__wsu_error(c->wsu));
      else
        open_failed(c, -EPROTO, "%s", hp__wsu_error(c->wsu));
      return;
    case HP_WSU_DONE:
      upgraded(c, data + used, len - used);
      return;
    }
    return;
  case WSC_OPEN:
  case WSC_CLOSING:
    (void)hp__ws_feed(c->ws, data, len);
    return;
  default:
    return; /* nothing is read in the other states */
  }
}

static void tls_plain(void *arg, const uint8_t *data, size_t len) {
  on_plain(arg, data, len);
}

static const hp__tls_ops tls_ops = {stream_writev, tls_plain};

static void send_upgrade(hp__wsc *c) {
  char req[REQ_MAX];
  int n = hp__wsu_request(c->wsu, c->host_hdr, c->path, c->ua[0] ? c->ua : NULL, req, sizeof(req));
  int rc;

  c->state = WSC_UPGRADING;
  if (n < 0) {
    open_failed(c, n, "the upgrade request does not fit");
    return;
  }
  rc = transport_writev(c, &(struct iovec){req, (size_t)n}, 1);
  if (rc < 0)
    write_failed(c, rc);
}

static void on_read(hp__stream *s, const uint8_t *data, size_t len) {
  hp__wsc *c = of_stream(s);

  if (!c->tls) {
    on_plain(c, data, len);
    return;
  }
  if (c->state < WSC_TLS || c->state > WSC_CLOSING)
    return;
  if (hp__tls_feed(c->tls, data, len) == HP_TLS_FAILED) {
    if (c->state == WSC_TLS)
      open_failed(c, -EPROTO, "%s", hp__tls_error(c->tls));
    else
      finish(c, HP_WSC_END_FAILED, -EPROTO, 0, 0, "%s: %s", c->url, hp__tls_error(c->tls));
    return;
  }
  if (c->state == WSC_TLS && hp__tls_get_state(c->tls) == HP_TLS_OPEN)
    send_upgrade(c);
}

static void on_eof(hp__stream *s, int err) {
  hp__wsc *c = of_stream(s);

  switch (c->state) {
  case WSC_TLS:
    open_failed(c, err, "the connection %s during the TLS handshake",
                err ? "failed" : "was closed by the server");
    return;
  case WSC_UPGRADING:
    open_failed(c, err, "the server %s before answering the WebSocket upgrade",
                err ? "reset the connection" : "closed the connection");
    return;
  case WSC_OPEN:
    finish(c, HP_WSC_END_DROPPED, err, 0, 0, "%s %s without a close frame", c->url,
           err ? "reset the connection" : "closed the connection");
    return;
  default:
    /* CLOSING: our close was not answered; the connection is over anyway. */
    close_stream(c);
    return;
  }
}

static void on_drained(hp__stream *s) {
  hp__wsc *c = of_stream(s);
  if (c->state == WSC_OPEN && c->cbs.drained)
    c->cbs.drained(c->arg);
}

static void on_stream_closed(hp__stream *s) {
  hp__wsc *c = of_stream(s);

  c->stream_live = 0;
  c->handles--;
  switch (c->state) {
  case WSC_CONNECTING:
    connect_next(c); /* that address failed; the next one */
    return;
  case WSC_CLOSING:
  case WSC_FINISHING:
    if (c->end_kind != HP_WSC_END_PEER_CLOSED) {
      c->end_kind = HP_WSC_END_CLOSED;
      if (!c->reason[0])
        snprintf(c->reason, sizeof(c->reason), "closed the WebSocket to %s", c->url);
    }
    ending(c);
    return;
  default:
    maybe_free(c);
    return;
  }
}

static const hp__stream_cb stream_cbs = {on_read, on_eof, on_drained, on_stream_closed};

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status) {
  hp__wsc *c = req->data;
  char err[HP_TLS_ERR_MAX];
  int rc;

  if (c->state != WSC_CONNECTING)
    return; /* given up meanwhile; the stream is closing */
  if (status < 0) {
    c->last_err = status;
    c->ai_next = c->ai_next->ai_next;
    hp__stream_close(&c->st); /* on_stream_closed tries the next address */
    return;
  }
  /* Small frames (clock pings, then hello) follow each other: without
   * TCP_NODELAY, Nagle holds each until the previous is acked (a delayed
   * ack: up to 40 ms), which skews the clock samples and the start plan. */
  (void)uv_tcp_nodelay(&c->st.tcp, 1);
  rc = hp__stream_read(&c->st, 1);
  if (rc < 0) {
    open_failed(c, rc, "%s", uv_strerror(rc));
    return;
  }
  if (!c->use_tls) {
    send_upgrade(c);
    return;
  }
  c->state = WSC_TLS;
  rc = hp__tls_create(c->host, c->ca_file, &tls_ops, c, &c->tls, err, sizeof(err));
  if (rc < 0) {
    open_failed(c, rc, "%s", err);
    return;
  }
  if (hp__tls_start(c->tls) < 0)
    open_failed(c, -EPROTO, "%s", hp__tls_error(c->tls));
}

static void connect_next(hp__wsc *c) {
  int rc;

  while (c->ai_next && c->ai_next->ai_family != AF_INET && c->ai_next->ai_family != AF_INET6)
    c->ai_next = c->ai_next->ai_next;
  if (!c->ai_next) {
    open_failed(c, c->last_err, "%s", c->last_err ? uv_strerror(c->last_err) : "no address");
    return;
  }
  rc = hp__stream_init(&c->st, c->loop, &stream_cbs, c->max_queued);
  if (rc < 0) {
    open_failed(c, rc, "%s", uv_strerror(rc));
    return;
  }
  c->stream_live = 1;
  c->handles++;
  c->st.data = c;
  c->creq.data = c;
  rc = uv_tcp_connect(&c->creq, &c->st.tcp, c->ai_next->ai_addr, on_connect);
  if (rc < 0) {
    c->last_err = rc;
    c->ai_next = c->ai_next->ai_next;
    hp__stream_close(&c->st); /* the next address from on_stream_closed */
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  hp__wsc *c = req->data;

  c->handles--;
  if (c->state != WSC_RESOLVING) {
    if (res)
      uv_freeaddrinfo(res);
    maybe_free(c);
    return;
  }
  if (status < 0) {
    open_failed(c, status, "cannot resolve %s: %s", c->host, uv_strerror(status));
    return;
  }
  c->ai = c->ai_next = res;
  c->state = WSC_CONNECTING;
  connect_next(c);
}

/* ---- the timer ---- */

static void on_timer(uv_timer_t *t) {
  hp__wsc *c = t->data;
  hp__wsc_end e;

  switch (c->state) {
  case WSC_RESOLVING:
  case WSC_CONNECTING:
  case WSC_TLS:
  case WSC_UPGRADING:
    if (c->state == WSC_RESOLVING)
      uv_cancel((uv_req_t *)&c->gai);
    open_failed(c, -ETIMEDOUT, "no answer within %.1f s", (double)c->open_timeout_ms / 1000.0);
    return;
  case WSC_CLOSING:
  case WSC_FINISHING:
    /* The close bound expired: drop the connection (on_stream_closed ends). */
    if (c->stream_live)
      hp__stream_close(&c->st);
    else
      ending(c);
    return;
  case WSC_ENDING:
    c->state = WSC_ENDED;
    memset(&e, 0, sizeof(e));
    e.kind = c->end_kind;
    e.opened = c->opened;
    e.code = c->end_code;
    e.ws_fail = c->end_ws_fail;
    e.err = c->end_err;
    e.reason = c->reason;
    c->cbs.end(c->arg, &e);
    return;
  default:
    return;
  }
}

/* ---- the API ---- */

int hp__wsc_open(uv_loop_t *loop, const hp__wsc_opts *o, const hp__wsc_cbs *cbs, void *arg,
                 hp__wsc **out, char *err, size_t errlen) {
  struct addrinfo hints;
  char port[8];
  const int v6 = o->host && strchr(o->host, ':') != NULL;
  const int defport = o->port == (o->tls ? 443 : 80);
  hp__wsc *c;
  int rc;

  *out = NULL;
  if (!o->host || !*o->host || strlen(o->host) >= HOST_MAX || o->port < 1 || o->port > 65535 ||
      !o->path || o->path[0] != '/' || strlen(o->path) >= PATH_MAX_LEN ||
      strpbrk(o->path, " \r\n") || strpbrk(o->host, " \r\n/") ||
      (o->user_agent && (strlen(o->user_agent) >= UA_MAX || strpbrk(o->user_agent, "\r\n")))) {
    snprintf(err, errlen,
             "a WebSocket URL needs a host (under %d bytes), a port 1..65535 and a "
             "path starting with / (no spaces)",
             HOST_MAX);
    return -EINVAL;
  }
  c = calloc(1, sizeof(*c));
  if (!c || (o->ca_file && *o->ca_file && !(c->ca_file = strdup(o->ca_file))) ||
      !(c->wsu = hp__wsu_create(0))) {
    if (c) {
      free(c->ca_file);
      free(c);
    }
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  c->env = o->env;
  if (!c->env && !(c->env = c->own_env = hp__ws_env_create(0))) {
    hp__wsu_destroy(c->wsu);
    free(c->ca_file);
    free(c);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  c->loop = loop;
  c->cbs = *cbs;
  c->arg = arg;
  c->port = o->port;
  c->use_tls = o->tls;
  c->frames = o->frames && cbs->chunk;
  c->open_timeout_ms = o->open_timeout_ms ? o->open_timeout_ms : DEF_OPEN_TIMEOUT_MS;
  c->close_bound_ms = o->close_bound_ms ? o->close_bound_ms : DEF_CLOSE_BOUND_MS;
  c->max_message = o->max_message ? o->max_message : DEF_MAX_MESSAGE;
  c->max_fragments = o->max_fragments ? o->max_fragments : DEF_MAX_FRAGMENTS;
  c->max_queued = o->max_queued ? o->max_queued : DEF_MAX_QUEUED;
  snprintf(c->host, sizeof(c->host), "%s", o->host);
  snprintf(c->host_hdr, sizeof(c->host_hdr), "%s%s%s", v6 ? "[" : "", o->host, v6 ? "]" : "");
  if (!defport) {
    size_t n = strlen(c->host_hdr);
    snprintf(c->host_hdr + n, sizeof(c->host_hdr) - n, ":%d", o->port);
  }
  snprintf(c->path, sizeof(c->path), "%s", o->path);
  if (o->user_agent)
    snprintf(c->ua, sizeof(c->ua), "%s", o->user_agent);
  snprintf(c->url, sizeof(c->url), "%s://%s%s", o->tls ? "wss" : "ws", c->host_hdr, c->path);

  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  c->state = WSC_RESOLVING;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  snprintf(port, sizeof(port), "%d", o->port);
  c->gai.data = c;
  rc = uv_getaddrinfo(loop, &c->gai, on_resolved, c->host, port, &hints);
  if (rc < 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", c->host, uv_strerror(rc));
    c->state = WSC_FREED;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    return rc;
  }
  c->handles++;
  uv_timer_start(&c->timer, on_timer, c->open_timeout_ms, 0);
  *out = c;
  return 0;
}

int hp__wsc_send(hp__wsc *c, int binary, const void *data, size_t len) {
  /* Frame header, and TLS record overhead (at most ~29 bytes per 16 KiB
   * record; 64 is generous), so that nothing is half-queued. */
  size_t need = len + 14 + (c->tls ? (len / 16384 + 1) * 64 : 0);
  int rc;

  if (c->state != WSC_OPEN)
    return -ENOTCONN;
  if (hp__stream_queued(&c->st) + need > c->max_queued)
    return -ENOBUFS;
  rc = hp__ws_send(c->ws, binary, data, len);
  if (rc < 0)
    write_failed(c, rc);
  return rc;
}

int hp__wsc_ping(hp__wsc *c) {
  int rc;

  if (c->state != WSC_OPEN)
    return -ENOTCONN;
  rc = hp__ws_ping(c->ws);
  if (rc < 0)
    write_failed(c, rc);
  return rc;
}

int hp__wsc_ping_data(hp__wsc *c, const void *data, size_t len) {
  int rc;

  if (c->state != WSC_OPEN)
    return -ENOTCONN;
  rc = hp__ws_ping_data(c->ws, data, len);
  if (rc < 0)
    write_failed(c, rc);
  return rc;
}

size_t hp__wsc_queued(const hp__wsc *c) {
  return c->stream_live ? hp__stream_queued(&c->st) : 0;
}

int hp__wsc_pause(hp__wsc *c, int paused) {
  if (!c->stream_live || c->state < WSC_TLS || c->state > WSC_CLOSING)
    return -ENOTCONN;
  return hp__stream_read(&c->st, !paused);
}

void hp__wsc_close(hp__wsc *c, uint16_t code, const char *reason) {
  int rc;

  if (!c)
    return;
  switch (c->state) {
  case WSC_OPEN:
    c->state = WSC_CLOSING;
    rc = hp__ws_close(c->ws, code, reason);
    if (rc < 0) {
      snprintf(c->reason, sizeof(c->reason), "the close frame to %s could not be sent: %s", c->url,
               strerror(-rc));
      close_stream(c); /* on_stream_closed ends it */
      return;
    }
    uv_timer_start(&c->timer, on_timer, c->close_bound_ms, 0);
    return;
  case WSC_RESOLVING:
  case WSC_CONNECTING:
  case WSC_TLS:
  case WSC_UPGRADING:
    if (c->state == WSC_RESOLVING)
      uv_cancel((uv_req_t *)&c->gai);
    finish(c, HP_WSC_END_CLOSED, 0, 0, 0, "closed before the WebSocket to %s was open", c->url);
    return;
  default:
    return; /* closing already, or over */
  }
}

void hp__wsc_free(hp__wsc *c) {
  if (!c || c->state == WSC_FREED)
    return;
  if (c->state == WSC_RESOLVING)
    uv_cancel((uv_req_t *)&c->gai);
  c->state = WSC_FREED;
  close_stream(c);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

const char *hp__wsc_url(const hp__wsc *c) {
  return c->url;
}

int hp__wsc_is_open(const hp__wsc *c) {
  return c->state == WSC_OPEN;
}
