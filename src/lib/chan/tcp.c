/*
 * tcp.c - the TCP carrier (tcp.h): the rules of bytestream.h on a uv_tcp_t.
 *
 * A write goes straight to the kernel (uv_try_write: no copy, no request)
 * while nothing is queued; what the kernel does not take then is copied
 * into one request (header + bytes in one block) and counted in `queued`
 * until libuv reports it written; the write queue is capped by
 * HP_BS_HARD_CAP. (uv_write would also write at once on an empty queue, but
 * only after the copy.) Half-close is uv_shutdown, which
 * libuv issues after the queued writes. Reading is uv_read_start/stop, so a
 * paused stream lets the kernel's receive window push back on the peer.
 */
#include "tcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One read buffer per stream: the bytes are valid only during on_data. */
#define TCP_READ_BUF (64u * 1024u)

/* Lifetime of the stream: one state, moving only forward. */
typedef enum tcp_state {
  T_NEW,    /* no callbacks installed yet, not reading */
  T_OPEN,   /* reading (unless paused or at EOF) and writing */
  T_FAILED, /* on_error fired; only close() remains */
  T_CLOSED  /* close() called; freed in the close callback */
} tcp_state;

/* The write direction: open, then half-closed by shutdown(). */
typedef enum tcp_wdir { W_OPEN, W_SHUT } tcp_wdir;

/* The read direction: reading, paused by the user, or ended by the peer. */
typedef enum tcp_rdir { R_READING, R_PAUSED, R_EOF } tcp_rdir;

typedef struct tcp_bs {
  hp_bs base; /* first member: hp_bs * <-> tcp_bs * */
  uv_tcp_t h;
  uv_shutdown_t shut;
  tcp_state st;
  tcp_wdir wdir;
  tcp_rdir rdir;
  int above_high; /* queued went over HP_BS_HIGH_WATER since the last on_drain */
  size_t queued;
  hp_bs_cbs cbs;
  void *ud;
  uint8_t rbuf[TCP_READ_BUF];
} tcp_bs;

typedef struct wreq {
  uv_write_t req;
  tcp_bs *t;
  size_t n;
  uint8_t data[];
} wreq;

static const hp_bs_ops tcp_ops;

static void fail(tcp_bs *t, int err, const char *why) {
  if (t->st != T_OPEN && t->st != T_NEW)
    return;
  t->st = T_FAILED;
  uv_read_stop((uv_stream_t *)&t->h);
  if (t->cbs.on_error)
    t->cbs.on_error(&t->base, err, why, t->ud);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  tcp_bs *t = h->data;
  (void)hint;
  *b = uv_buf_init((char *)t->rbuf, sizeof t->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  tcp_bs *t = st->data;
  (void)b;

  if (t->st != T_OPEN)
    return;
  if (n > 0) {
    if (t->cbs.on_data)
      t->cbs.on_data(&t->base, t->rbuf, (size_t)n, t->ud); /* may close t */
    return;
  }
  if (n == UV_EOF) {
    t->rdir = R_EOF;
    uv_read_stop(st);
    if (t->cbs.on_eof)
      t->cbs.on_eof(&t->base, t->ud);
    return;
  }
  if (n < 0)
    fail(t, (int)n, n == UV_ECONNRESET ? "the peer reset the connection" : uv_strerror((int)n));
}

static void start_reading(tcp_bs *t) {
  int r = uv_read_start((uv_stream_t *)&t->h, on_alloc, on_read);
  if (r < 0)
    fail(t, r, "cannot read from the socket");
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  tcp_bs *t = w->t;

  t->queued -= w->n;
  free(w);
  if (t->st != T_OPEN && t->st != T_NEW)
    return; /* closing (ECANCELED) or already failed */
  if (status < 0) {
    fail(t, status, status == UV_EPIPE ? "the peer closed the connection" : uv_strerror(status));
    return;
  }
  if (t->above_high && t->queued <= HP_BS_LOW_WATER) {
    t->above_high = 0;
    if (t->cbs.on_drain)
      t->cbs.on_drain(&t->base, t->ud);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  tcp_bs *t = req->data;
  if (status < 0 && status != UV_ECANCELED)
    fail(t, status, "cannot half-close the connection");
}

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

/* ---- ops ---- */

static void tcp_set_cbs(hp_bs *s, const hp_bs_cbs *cbs, void *ud) {
  tcp_bs *t = (tcp_bs *)s;

  if (cbs)
    t->cbs = *cbs;
  else
    memset(&t->cbs, 0, sizeof t->cbs);
  t->ud = ud;
  if (t->st == T_NEW) {
    t->st = T_OPEN;
    if (t->rdir == R_READING)
      start_reading(t);
  }
}

static int tcp_write(hp_bs *s, const uint8_t *p, size_t n) {
  tcp_bs *t = (tcp_bs *)s;
  wreq *w;
  uv_buf_t b;
  int r;

  if ((t->st != T_OPEN && t->st != T_NEW) || t->wdir != W_OPEN)
    return -EPIPE;
  if (n == 0)
    return 0;
  if (n > HP_BS_HARD_CAP || t->queued > HP_BS_HARD_CAP - n)
    return -ENOBUFS;
  if (t->queued == 0) {
    /* A reader that keeps up: no copy. Errors other than a full socket
     * are left to uv_write below, which reports them via on_written. */
    b = uv_buf_init((char *)p, (unsigned)n);
    r = uv_try_write((uv_stream_t *)&t->h, &b, 1);
    if (r > 0) {
      p += r;
      n -= (size_t)r;
      if (n == 0)
        return 0;
    }
  }
  w = malloc(sizeof *w + n);
  if (!w)
    return -ENOMEM;
  w->t = t;
  w->n = n;
  memcpy(w->data, p, n);
  b = uv_buf_init((char *)w->data, (unsigned)n);
  r = uv_write(&w->req, (uv_stream_t *)&t->h, &b, 1, on_written);
  if (r < 0) {
    /* Refused by libuv (dead socket): no callback, the caller sees r. */
    free(w);
    return r;
  }
  t->queued += n;
  if (t->queued > HP_BS_HIGH_WATER)
    t->above_high = 1;
  return 0;
}

static size_t tcp_queued(const hp_bs *s) {
  return ((const tcp_bs *)s)->queued;
}

static int tcp_shutdown(hp_bs *s) {
  tcp_bs *t = (tcp_bs *)s;
  int r;

  if (t->wdir == W_SHUT)
    return 0;
  if (t->st != T_OPEN && t->st != T_NEW)
    return -EPIPE;
  t->wdir = W_SHUT;
  t->shut.data = t;
  /* libuv shuts the write side down after every queued write. */
  r = uv_shutdown(&t->shut, (uv_stream_t *)&t->h, on_shutdown);
  return r < 0 ? r : 0;
}

static void tcp_pause(hp_bs *s, int paused) {
  tcp_bs *t = (tcp_bs *)s;

  if (t->rdir == R_EOF || (paused ? t->rdir == R_PAUSED : t->rdir == R_READING))
    return;
  t->rdir = paused ? R_PAUSED : R_READING;
  if (t->st != T_OPEN)
    return; /* reading starts (or not) with set_cbs */
  if (paused)
    uv_read_stop((uv_stream_t *)&t->h);
  else
    start_reading(t);
}

static void tcp_close(hp_bs *s) {
  tcp_bs *t = (tcp_bs *)s;

  if (t->st == T_CLOSED)
    return;
  t->st = T_CLOSED;
  /* Pending writes and the shutdown get ECANCELED before on_closed. */
  uv_close((uv_handle_t *)&t->h, on_closed);
}

static const hp_bs_ops tcp_ops = {tcp_set_cbs, tcp_write, tcp_queued, tcp_shutdown,
                                  tcp_pause,   tcp_close, "tcp"};

/* ---- construction ---- */

static tcp_bs *tcp_new(uv_loop_t *loop) {
  tcp_bs *t = calloc(1, sizeof *t);

  if (!t)
    return NULL;
  t->base.ops = &tcp_ops;
  t->st = T_NEW;
  t->wdir = W_OPEN;
  t->rdir = R_READING;
  if (uv_tcp_init(loop, &t->h) < 0) {
    free(t);
    return NULL;
  }
  t->h.data = t;
  return t;
}

/* Handle initialised but unusable: close it, free in the callback. */
static void tcp_discard(tcp_bs *t) {
  t->st = T_CLOSED;
  uv_close((uv_handle_t *)&t->h, on_closed);
}

int hp__tcp_from_fd(uv_loop_t *loop, int fd, hp_bs **out) {
  tcp_bs *t;
  int r;

  if (!loop || fd < 0 || !out)
    return -EINVAL;
  t = tcp_new(loop);
  if (!t)
    return -ENOMEM;
  r = uv_tcp_open(&t->h, fd);
  if (r < 0) {
    tcp_discard(t); /* fd is not ours: uv_tcp_open failed before taking it */
    return r;
  }
  /* Records and small protocol messages go out at once. */
  uv_tcp_nodelay(&t->h, 1);
  *out = &t->base;
  return 0;
}

int hp__tcp_accept(uv_stream_t *server, hp_bs **out) {
  tcp_bs *t;
  int r;

  if (!server || !out)
    return -EINVAL;
  t = tcp_new(server->loop);
  if (!t)
    return -ENOMEM;
  r = uv_accept(server, (uv_stream_t *)&t->h);
  if (r < 0) {
    tcp_discard(t);
    return r;
  }
  uv_tcp_nodelay(&t->h, 1);
  *out = &t->base;
  return 0;
}

uv_tcp_t *hp__tcp_handle(hp_bs *s) {
  if (!s || s->ops != &tcp_ops)
    return NULL;
  return &((tcp_bs *)s)->h;
}
