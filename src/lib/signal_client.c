/*
 * signal_client.c - the signaling WebSocket (<base>/ws) on src/net's
 * WebSocket client (ws_client.h): protocol v1 messages over text frames.
 *
 * Lifetime: one explicit state per client (sig_state below). The
 * connection's own life (connect, TLS, upgrade, frames, the polite close
 * and its bound) is the ws_client's; this file turns its events into the
 * protocol's: a valid message, or one failure sentence.
 *
 *   CONNECTING --open--> OPEN
 *   CONNECTING | OPEN --the connection ended--> FAILED (failed() delivered)
 *   OPEN --a binary frame, an invalid message--> FAILED_CLOSING (failed()
 *     delivered; the bad connection is being closed with 1003/1002)
 *     --its end--> FAILED
 *   any --hp__sig_close--> CLOSING (OPEN: close frame 1000 after what is
 *     queued, wait for the answer, 2 s in all; otherwise the attempt is
 *     dropped) --the connection's end--> done(), freed
 *   FAILED --hp__sig_close--> done(), freed at once
 */
#include "signal_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ws_client.h"

#define SIG_CLOSE_BOUND_MS 2000
/* The session's WS_OPEN_TIMEOUT bounds the opening; this only keeps the
 * client bounded on its own. */
#define SIG_OPEN_BOUND_MS 300000
#define SIG_QUEUE_BYTES (256 * 1024)
#define SIG_MAX_FRAGMENTS 64

typedef enum sig_state {
  SIG_CONNECTING,     /* TCP, TLS, upgrade in progress */
  SIG_OPEN,           /* messages flow both ways */
  SIG_FAILED_CLOSING, /* failed() delivered; the bad connection is closing */
  SIG_FAILED,         /* failed() delivered; the connection is over */
  SIG_CLOSING         /* hp__sig_close: freed when the connection's end arrives */
} sig_state;

struct hp__sig {
  hp__wsc *wsc;
  hp__sig_cbs cbs;
  void *data;
  sig_state st;
  void (*done)(void *);
  void *done_data;
  hp__msg msg;
};

static void sig_free(hp__sig *s) {
  void (*done)(void *) = s->done;
  void *dd = s->done_data;

  hp__wsc_free(s->wsc);
  free(s);
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

  if (s->st != SIG_OPEN)
    return;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  s->st = SIG_FAILED_CLOSING;
  hp__wsc_close(s->wsc, code, NULL);
  /* The caller calls hp__sig_close, maybe from inside this callback. */
  s->cbs.failed(s->data, reason);
}

static void on_open(void *arg) {
  hp__sig *s = arg;

  if (s->st != SIG_CONNECTING)
    return;
  s->st = SIG_OPEN;
  HP_DEBUG("signal", json_pack("{s:s}", "url", hp__wsc_url(s->wsc)), "WebSocket open");
  s->cbs.opened(s->data);
}

static void on_message(void *arg, int binary, const uint8_t *data, size_t len) {
  hp__sig *s = arg;
  hp__wire_err werr;

  if (s->st != SIG_OPEN)
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
  case SIG_OPEN:
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

static const hp__wsc_cbs wsc_cbs = {on_open, on_message, NULL, on_end};

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
    free(s);
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
  s->st = SIG_CLOSING;
  hp__wsc_close(s->wsc, HP_WS_CLOSE_NORMAL, "bye");
}
