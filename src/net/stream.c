/*
 * stream.c - TCP byte transport (see stream.h).
 */
#include "stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define READ_BUF 65536

/* One read buffer per thread: every read is handled before the next one
 * (the read callback consumes or copies), so connections share it. */
static _Thread_local char rbuf[READ_BUF];

typedef struct wreq {
  uv_write_t req;
  size_t len;
  char data[];
} wreq;

static hp__stream *of(uv_handle_t *h) {
  return (hp__stream *)(void *)h; /* tcp is the first member */
}

static void on_closed(uv_handle_t *h) {
  hp__stream *s = of(h);
  s->state = HP_STREAM_CLOSED;
  s->cb->closed(s);
}

void hp__stream_close(hp__stream *s) {
  if (s->state >= HP_STREAM_CLOSING)
    return;
  s->state = HP_STREAM_CLOSING;
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  b->base = rbuf;
  b->len = sizeof(rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  hp__stream *s = of((uv_handle_t *)st);

  if (n == 0)
    return;
  if (s->state == HP_STREAM_OPEN) {
    if (n > 0)
      s->cb->read(s, (const uint8_t *)b->base, (size_t)n);
    else
      s->cb->eof(s, n == UV_EOF ? 0 : (int)n);
    return;
  }
  /* Closing: input is dropped; the peer's FIN (or an error) ends it. */
  if (n < 0)
    hp__stream_close(s);
}

int hp__stream_init(hp__stream *s, uv_loop_t *loop, const hp__stream_cb *cb, size_t max_queued) {
  int rc = uv_tcp_init(loop, &s->tcp);

  s->cb = cb;
  s->queued = 0;
  s->max_queued = max_queued;
  s->state = HP_STREAM_OPEN;
  s->reading = 0;
  return rc;
}

int hp__stream_read(hp__stream *s, int on) {
  int rc = 0;

  if (s->state >= HP_STREAM_CLOSING || !!on == s->reading)
    return 0;
  if (on)
    rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  else
    rc = uv_read_stop((uv_stream_t *)&s->tcp);
  if (!rc)
    s->reading = (uint8_t) !!on;
  return rc;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  hp__stream *s = req->data;

  free(req);
  if (status < 0 || s->state != HP_STREAM_SHUTDOWN) {
    hp__stream_close(s);
    return;
  }
  /* Read (and drop) until the peer's FIN; the owner's timer bounds it. */
  s->reading = 0;
  if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0)
    hp__stream_close(s);
}

static void shutdown_now(hp__stream *s) {
  uv_shutdown_t *req = malloc(sizeof(*req));

  s->state = HP_STREAM_SHUTDOWN;
  if (!req) {
    hp__stream_close(s);
    return;
  }
  req->data = s;
  if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown) < 0) {
    free(req);
    hp__stream_close(s);
  }
}

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  hp__stream *s = req->data;

  s->queued -= w->len;
  free(w);
  if (status < 0) {
    if (status != UV_ECANCELED && s->state < HP_STREAM_CLOSING) {
      if (s->state == HP_STREAM_OPEN)
        s->cb->eof(s, status);
      else
        hp__stream_close(s);
    }
    return;
  }
  if (s->queued)
    return;
  if (s->state == HP_STREAM_FLUSHING)
    shutdown_now(s);
  else if (s->state == HP_STREAM_OPEN && s->cb->drained)
    s->cb->drained(s);
}

int hp__stream_writev(hp__stream *s, const struct iovec *iov, int iovcnt) {
  size_t total = 0, done = 0, off;
  wreq *w;
  uv_buf_t b;
  int r, i;

  if (s->state != HP_STREAM_OPEN)
    return -EPIPE;
  for (i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  if (!total)
    return 0;
  if (!s->queued) {
    /* uv_buf_t is laid out as struct iovec on Unix. */
    r = uv_try_write((uv_stream_t *)&s->tcp, (const uv_buf_t *)(const void *)iov, (unsigned)iovcnt);
    if (r < 0 && r != UV_EAGAIN)
      return r;
    done = r > 0 ? (size_t)r : 0;
    if (done == total)
      return 0;
  }
  if (s->queued + (total - done) > s->max_queued)
    return -ENOBUFS;
  w = malloc(sizeof(*w) + (total - done));
  if (!w)
    return -ENOMEM;
  w->len = total - done;
  off = 0;
  for (i = 0; i < iovcnt; i++) {
    size_t l = iov[i].iov_len;
    const char *p = iov[i].iov_base;
    if (done >= l) {
      done -= l;
      continue;
    }
    memcpy(w->data + off, p + done, l - done);
    off += l - done;
    done = 0;
  }
  w->req.data = s;
  b = uv_buf_init(w->data, (unsigned)w->len);
  r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
  if (r < 0) {
    free(w);
    return r;
  }
  s->queued += w->len;
  return 0;
}

int hp__stream_write(hp__stream *s, const void *data, size_t len) {
  struct iovec v = {(void *)(uintptr_t)data, len};
  return hp__stream_writev(s, &v, 1);
}

size_t hp__stream_queued(const hp__stream *s) {
  return s->queued;
}

void hp__stream_finish(hp__stream *s) {
  if (s->state != HP_STREAM_OPEN)
    return;
  /* The owner gets no more reads: what arrives now is dropped. */
  s->state = HP_STREAM_FLUSHING;
  if (!s->queued)
    shutdown_now(s);
}

int hp__stream_peer(const hp__stream *s, struct sockaddr_storage *ss) {
  int sl = (int)sizeof(*ss);
  int rc = uv_tcp_getpeername(&s->tcp, (struct sockaddr *)ss, &sl);

  if (rc < 0)
    return rc;
  if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      struct sockaddr_in s4;
      memset(&s4, 0, sizeof(s4));
      s4.sin_family = AF_INET;
      s4.sin_port = s6->sin6_port;
      memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
      memset(ss, 0, sizeof(*ss));
      memcpy(ss, &s4, sizeof(s4));
    }
  }
  return 0;
}
