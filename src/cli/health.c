/*
 * health.c - GET /healthz on PORT, on src/net's listener (admission: at most
 * HEALTH_MAX_CONNS connections) and its bounded HTTP/1.1 request reader, on
 * the worker's loop. One request per connection: the answer carries
 * "Connection: close", then the stream closes in order (FIN, read to the
 * client's FIN), bounded by a timer.
 *
 * Lifetimes: a connection holds two handles (stream, timer) and is freed
 * when both are closed; the server is freed when it was stopped and its
 * last connection is gone (connections point at it). The listener frees
 * itself; a connection releases its listener slot only while the listener
 * lives (not after hp__health_stop).
 */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "iptable.h"
#include "listener.h"
#include "log.h"
#include "stream.h"

#define BODY_MAX 1024
#define HEALTH_MAX_CONNS 32
#define REQUEST_TIMEOUT_MS 5000 /* to send a complete request */
#define FINISH_TIMEOUT_MS 2000  /* for the client to take the answer and close */
#define WRITE_QUEUE_MAX (BODY_MAX + 512)

typedef enum hconn_state {
  HC_READING,   /* waiting for a complete request (REQUEST_TIMEOUT_MS) */
  HC_FINISHING, /* answered: flush, FIN, read to the client's FIN (FINISH_TIMEOUT_MS) */
  HC_CLOSING    /* handles closing; freed when both are closed */
} hconn_state;

typedef struct hconn {
  hp__stream st; /* first: the stream callbacks find the connection from it */
  uv_timer_t timer;
  hp__health *h;
  hp__http1 *http;
  hp__ipent *ent;
  struct hconn *prev, *next;
  hconn_state state;
  int admitted; /* holds a listener slot */
  int handles;
} hconn;

struct hp__health {
  uv_loop_t *loop;
  hp__listener *lis; /* NULL once stopped */
  hp__iptable *ips;
  hp__health_fill_cb fill;
  void *data;
  hconn *conns;
  unsigned nconns;
  int stopped;
};

static void health_maybe_free(hp__health *h) {
  if (!h->stopped || h->nconns)
    return;
  hp__iptable_destroy(h->ips);
  free(h);
}

static void on_conn_handle_closed(uv_handle_t *hd) {
  hconn *c = hd->data;
  hp__health *h = c->h;

  if (--c->handles > 0)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  h->nconns--;
  hp__http1_destroy(c->http);
  free(c);
  health_maybe_free(h);
}

static void conn_close(hconn *c) {
  if (c->state == HC_CLOSING)
    return;
  c->state = HC_CLOSING;
  if (c->admitted && c->h->lis)
    hp__listener_release(c->h->lis, c->ent);
  c->admitted = 0;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  hp__stream_close(&c->st);
}

static void on_conn_timer(uv_timer_t *t) {
  conn_close(t->data);
}

/* Answer status with body (consumed) and close in order. */
static void reply(hconn *c, int status, json_t *body) {
  char head[256], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  size_t len = text ? strlen(text) : 0;
  const char *phrase = status == 200   ? "OK"
                       : status == 404 ? "Not Found"
                       : status == 503 ? "Service Unavailable"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 413 ? "Payload Too Large"
                                       : "Bad Request";
  struct iovec iov[3];
  int n;

  json_decref(body);
  if (!text || len + 1 > BODY_MAX) {
    free(text);
    conn_close(c);
    return;
  }
  n = snprintf(head, sizeof(head),
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
               status, phrase, len + 1);
  iov[0] = (struct iovec){head, (size_t)n};
  iov[1] = (struct iovec){text, len};
  iov[2] = (struct iovec){"\n", 1};
  if (hp__stream_writev(&c->st, iov, 3) < 0) {
    free(text);
    conn_close(c);
    return;
  }
  free(text);
  c->state = HC_FINISHING;
  hp__stream_finish(&c->st);
  uv_timer_start(&c->timer, on_conn_timer, FINISH_TIMEOUT_MS, 0);
}

static void on_read(hp__stream *s, const uint8_t *data, size_t len) {
  hconn *c = (hconn *)(void *)s;
  const hp__http1_req *req;
  size_t used = 0;

  if (c->state != HC_READING)
    return;
  switch (hp__http1_feed(c->http, data, len, &used)) {
  case HP_HTTP1_MORE:
    return;
  case HP_HTTP1_ERROR:
    reply(c, hp__http1_error_status(c->http),
          json_pack("{s:s, s:s}", "status", "error", "error", hp__http1_error_text(c->http)));
    return;
  case HP_HTTP1_REQUEST:
    break;
  }
  req = hp__http1_request(c->http);
  if (req->get && !req->path_too_long && strcmp(req->path, "/healthz") == 0) {
    json_t *o = json_pack("{s:s}", "status", "ok");
    if (o)
      c->h->fill(o, c->h->data);
    reply(c, 200, o);
    return;
  }
  reply(c, 404, json_pack("{s:s, s:s}", "status", "error", "error", "not found"));
}

static void on_eof(hp__stream *s, int err) {
  (void)err;
  conn_close((hconn *)(void *)s);
}

static void on_stream_closed(hp__stream *s) {
  hconn *c = (hconn *)(void *)s;

  /* Closed without conn_close: the client's FIN ended the orderly close,
   * or the listener closed a connection it could not accept. */
  conn_close(c);
  on_conn_handle_closed((uv_handle_t *)&s->tcp);
}

static const hp__stream_cb conn_cbs = {on_read, on_eof, NULL, on_stream_closed};

static hp__stream *conn_alloc(void *arg) {
  hp__health *h = arg;
  hp__http1_limits lim = {4096, 32, 0};
  hconn *c = calloc(1, sizeof(*c));

  if (!c)
    return NULL;
  c->http = hp__http1_create(&lim);
  if (!c->http || hp__stream_init(&c->st, h->loop, &conn_cbs, WRITE_QUEUE_MAX) < 0) {
    hp__http1_destroy(c->http);
    free(c);
    return NULL;
  }
  c->h = h;
  c->st.tcp.data = c;
  c->handles = 2;
  uv_timer_init(h->loop, &c->timer);
  c->timer.data = c;
  c->next = h->conns;
  if (h->conns)
    h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  return &c->st;
}

static void conn_accepted(void *arg, hp__stream *s, const struct sockaddr_storage *peer,
                          hp__ipent *ent) {
  hconn *c = (hconn *)(void *)s;
  (void)arg;
  (void)peer;

  c->admitted = 1;
  c->ent = ent;
  c->state = HC_READING;
  uv_timer_start(&c->timer, on_conn_timer, REQUEST_TIMEOUT_MS, 0);
  if (hp__stream_read(s, 1) < 0)
    conn_close(c);
}

static void conn_refused(void *arg, hp__stream *s, hp__refusal why) {
  hconn *c = (hconn *)(void *)s;
  (void)arg;
  (void)why;

  c->state = HC_READING;
  reply(c, 503, json_pack("{s:s, s:s}", "status", "error", "error", "busy"));
}

static const hp__listener_ops lis_ops = {conn_alloc, conn_accepted, conn_refused};

int hp__health_start(uv_loop_t *loop, const char *bind_addr, int port, hp__health_fill_cb fill,
                     void *data, hp__health **out) {
  hp__listener_opts lo;
  hp__health *h;
  int rc;

  *out = NULL;
  h = calloc(1, sizeof(*h));
  if (!h || !(h->ips = hp__iptable_create((uint32_t)uv_hrtime()))) {
    free(h);
    return -ENOMEM;
  }
  h->loop = loop;
  h->fill = fill;
  h->data = data;
  memset(&lo, 0, sizeof(lo));
  lo.bind = bind_addr;
  lo.port = port;
  lo.max_connections = HEALTH_MAX_CONNS;
  lo.max_per_ip = 0;
  lo.hello_rate = lo.hello_burst = 1;
  lo.component = "health";
  rc = hp__listener_create(loop, &lo, h->ips, &lis_ops, h, &h->lis);
  if (rc < 0) {
    hp__iptable_destroy(h->ips);
    free(h);
    return rc;
  }
  HP_DEBUG("health", json_pack("{s:s, s:i}", "bind", bind_addr, "port", port),
           "health server on %s:%d", bind_addr, port);
  *out = h;
  return 0;
}

void hp__health_stop(hp__health *h) {
  hconn *c, *next;

  if (!h || h->stopped)
    return;
  h->stopped = 1;
  hp__listener_destroy(h->lis);
  h->lis = NULL;
  for (c = h->conns; c; c = next) {
    next = c->next;
    conn_close(c);
  }
  health_maybe_free(h);
}
