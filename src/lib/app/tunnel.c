/*
 * tunnel.c - forward/expose over the multiplexer (tunnel.h).
 *
 * Memory: a stream is one struct (its uv_tcp_t and connect request) and a
 * slot in the mux; reads go into one buffer of the tunnel (their bytes are
 * copied by the channel's write at once), writes to a local connection are
 * copied only when the socket does not take them at once, and are bounded
 * by the stream's window. An idle stream costs well under 1 KiB.
 */
#include "tunnel_int.h"
#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "mux.h"

#define FLUSH_MS 1000 /* at most this long for the last frames at stop */

/* The tunnel's life: running; ending (streams and listener closing, the
 * channel flushing its last frames); freed when the last handle is back. */
typedef enum tstate { T_RUNNING, T_ENDING } tstate;

/* A stream's local connection: connecting (expose), open, closing. */
typedef enum lstate { L_CONNECTING, L_OPEN, L_CLOSING } lstate;
/* Local -> peer: open, or finished (local EOF, FIN sent). */
typedef enum txstate { TX_OPEN, TX_DONE } txstate;
/* Peer -> local: open; the peer's FIN came (writes still flushing); local
 * shutdown sent; done. */
typedef enum rxstate { RX_OPEN, RX_FIN, RX_SHUT, RX_DONE } rxstate;

typedef struct chunk {
  uv_write_t req;
  struct chunk *next; /* pending list while connecting */
  struct tstream *s;
  size_t n;
  uint8_t data[];
} chunk;

typedef struct tstream {
  struct hp__tunnel *t;
  struct tstream *prev, *next;
  uint32_t id;
  lstate st;
  txstate tx;
  rxstate rx;
  int reading; /* mirrors uv_read_start/stop */
  uv_tcp_t h;
  union {
    uv_connect_t conn;
    uv_shutdown_t shut;
  } req;
  chunk *pending, **pending_end; /* peer bytes that came while connecting */
} tstream;

struct hp__tunnel {
  uv_loop_t *loop;
  hp_bs *chan;
  hp__mux *mux;
  hp__tunnel_cfg cfg;
  tstate st;
  int chan_blocked; /* the channel's queue is over its high water */
  int chan_eof;     /* the peer half-closed the channel */
  uv_tcp_t listener;
  int listening;
  uv_timer_t flush;
  uint64_t flush_deadline;
  struct sockaddr_storage target;
  char target_txt[64];
  char listen_txt[64];
  tstream *streams;
  unsigned nstreams;
  int open; /* handles still to close */
  int status;
  char why[200];
  hp__tunnel_done_cb cb;
  void *ud;
  uint8_t rbuf[HP_MUX_HDR + HP_MUX_FRAME_MAX];
};

static void tunnel_end(hp__tunnel *t, int status, const char *why);
static void tunnel_unref(hp__tunnel *t);
static void update_reading(tstream *s);
static void stream_close(tstream *s, int reset);

/* ---- the channel ---- */

static int chan_send(hp__tunnel *t, const uint8_t *p, size_t n) {
  int r;

  if (!t->chan)
    return -EPIPE;
  r = hp_bs_write(t->chan, p, n);
  if (r < 0) {
    tunnel_end(t, r, "cannot send to the peer");
    return r;
  }
  if (!t->chan_blocked && hp_bs_queued(t->chan) > HP_BS_HIGH_WATER)
    t->chan_blocked = 1; /* every stream stops reading at its next read */
  return 0;
}

/* Printable copy of an RST reason (control bytes replaced). */
static void clean_reason(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t i;

  for (i = 0; i < n && i + 1 < cap; i++)
    out[i] = p[i] < 0x20 || p[i] >= 0x7f ? '?' : (char)p[i];
  out[i] = '\0';
}

/* ---- streams ---- */

static void on_stream_closed(uv_handle_t *h) {
  tstream *s = h->data;
  hp__tunnel *t = s->t;
  chunk *c, *next;

  for (c = s->pending; c; c = next) {
    next = c->next;
    free(c);
  }
  if (s->prev)
    s->prev->next = s->next;
  else
    t->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  t->nstreams--;
  free(s);
  tunnel_unref(t);
}

/* Close the local connection (reset: abortive, for an RST or an error),
 * and reset the mux stream if it still lives. */
static void stream_close(tstream *s, int reset) {
  hp__tunnel *t = s->t;

  if (s->st == L_CLOSING)
    return;
  if (t->mux && hp__mux_state(t->mux, s->id) != HP_MUX_S_FREE) {
    uint8_t f[HP_MUX_CTL_MAX];
    int n = hp__mux_rst(t->mux, s->id, reset ? HP_MUX_RST_ABORTED : HP_MUX_RST_OTHER,
                        reset ? "the local connection broke" : NULL, f);
    if (n > 0 && t->st == T_RUNNING)
      chan_send(t, f, (size_t)n);
  }
  s->st = L_CLOSING;
  if (reset && uv_tcp_close_reset(&s->h, on_stream_closed) == 0)
    return;
  uv_close((uv_handle_t *)&s->h, on_stream_closed);
}

static void maybe_finished(tstream *s) {
  if (s->st == L_OPEN && s->tx == TX_DONE && s->rx == RX_DONE)
    stream_close(s, 0);
}

static void on_local_shutdown(uv_shutdown_t *req, int status) {
  tstream *s = req->data;

  if (s->st != L_OPEN)
    return;
  if (status < 0) {
    stream_close(s, 1);
    return;
  }
  s->rx = RX_DONE;
  maybe_finished(s);
}

/* After the peer's FIN, once every byte went to the local socket. */
static void maybe_shutdown(tstream *s) {
  if (s->st != L_OPEN || s->rx != RX_FIN || s->h.write_queue_size > 0)
    return;
  s->rx = RX_SHUT;
  s->req.shut.data = s;
  if (uv_shutdown(&s->req.shut, (uv_stream_t *)&s->h, on_local_shutdown) < 0)
    stream_close(s, 1);
}

/* n bytes of the peer's went to the local socket: credit back. */
static void consumed(tstream *s, size_t n) {
  hp__tunnel *t = s->t;
  uint8_t f[HP_MUX_HDR + 4];
  int r;

  if (!t->mux || t->st != T_RUNNING)
    return;
  r = hp__mux_consumed(t->mux, s->id, n, f);
  if (r > 0)
    chan_send(t, f, (size_t)r);
}

static void on_local_written(uv_write_t *req, int status) {
  chunk *c = req->data;
  tstream *s = c->s;
  size_t n = c->n;

  free(c);
  if (status == UV_ECANCELED || s->st != L_OPEN)
    return;
  if (status < 0) {
    stream_close(s, 1);
    return;
  }
  consumed(s, n);
  maybe_shutdown(s);
}

static int local_write_now(tstream *s, const uint8_t *p, size_t n) {
  uv_buf_t b;
  chunk *c;
  int r;

  if (s->h.write_queue_size == 0) {
    b = uv_buf_init((char *)p, (unsigned)n);
    r = uv_try_write((uv_stream_t *)&s->h, &b, 1);
    if (r > 0) {
      consumed(s, (size_t)r);
      p += r;
      n -= (size_t)r;
    } else if (r < 0 && r != UV_EAGAIN) {
      return r;
    }
    if (n == 0)
      return 0;
  }
  c = malloc(sizeof *c + n);
  if (!c)
    return -ENOMEM;
  memcpy(c->data, p, n);
  c->s = s;
  c->n = n;
  c->req.data = c;
  b = uv_buf_init((char *)c->data, (unsigned)n);
  r = uv_write(&c->req, (uv_stream_t *)&s->h, &b, 1, on_local_written);
  if (r < 0)
    free(c);
  return r;
}

/* The peer's bytes for stream s. */
static void local_write(tstream *s, const uint8_t *p, size_t n) {
  chunk *c;

  if (s->st == L_CONNECTING) {
    /* Held until connected; the window bounds them. */
    c = malloc(sizeof *c + n);
    if (!c) {
      stream_close(s, 1);
      return;
    }
    memcpy(c->data, p, n);
    c->s = s;
    c->n = n;
    c->next = NULL;
    *s->pending_end = c;
    s->pending_end = &c->next;
    return;
  }
  if (s->st == L_OPEN && local_write_now(s, p, n) < 0)
    stream_close(s, 1);
}

static void on_local_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  tstream *s = h->data;
  size_t credit = s->t->mux ? hp__mux_credit(s->t->mux, s->id) : 0;
  (void)hint;

  /* One DATA frame per read, within the credit; the header goes in front.
   * Header + payload at most HP_MUX_FRAME_MAX bytes: one frame is then one
   * record of the secure channel (up to 32 KiB of plaintext), not a full one and
   * an 8-byte one. */
  if (credit > HP_MUX_FRAME_MAX - HP_MUX_HDR)
    credit = HP_MUX_FRAME_MAX - HP_MUX_HDR;
  *b = uv_buf_init((char *)s->t->rbuf + HP_MUX_HDR, (unsigned)(credit ? credit : 1));
}

static void on_local_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  tstream *s = st->data;
  hp__tunnel *t = s->t;
  (void)b;

  if (s->st != L_OPEN || t->st != T_RUNNING || n == 0)
    return;
  if (n > 0) {
    if (hp__mux_data(t->mux, s->id, (size_t)n, t->rbuf) < 0) {
      stream_close(s, 1); /* cannot happen: the buffer was the credit */
      return;
    }
    if (chan_send(t, t->rbuf, HP_MUX_HDR + (size_t)n) == 0)
      update_reading(s);
    return;
  }
  if (n == UV_EOF) {
    uint8_t f[HP_MUX_HDR];
    int r;
    s->tx = TX_DONE;
    update_reading(s);
    r = hp__mux_fin(t->mux, s->id, f);
    if (r >= 0 && chan_send(t, f, HP_MUX_HDR) < 0)
      return;
    maybe_finished(s);
    return;
  }
  stream_close(s, 1);
}

static void update_reading(tstream *s) {
  hp__tunnel *t = s->t;
  int want = s->st == L_OPEN && s->tx == TX_OPEN && t->st == T_RUNNING && !t->chan_blocked &&
             hp__mux_credit(t->mux, s->id) > 0;

  if (want == s->reading)
    return;
  if (want && uv_read_start((uv_stream_t *)&s->h, on_local_alloc, on_local_read) < 0) {
    stream_close(s, 1);
    return;
  }
  if (!want)
    uv_read_stop((uv_stream_t *)&s->h);
  s->reading = want;
}

static tstream *stream_new(hp__tunnel *t) {
  tstream *s = calloc(1, sizeof *s);

  if (!s)
    return NULL;
  if (uv_tcp_init(t->loop, &s->h) < 0) {
    free(s);
    return NULL;
  }
  s->t = t;
  s->h.data = s;
  s->pending_end = &s->pending;
  s->next = t->streams;
  if (s->next)
    s->next->prev = s;
  t->streams = s;
  t->nstreams++;
  t->open++;
  return s;
}

/* ---- expose: streams the peer opens ---- */

static void on_target_connected(uv_connect_t *req, int status) {
  tstream *s = req->data;
  hp__tunnel *t = s->t;
  chunk *c;

  if (s->st != L_CONNECTING)
    return; /* closed meanwhile (ECANCELED) */
  if (status < 0) {
    uint8_t f[HP_MUX_CTL_MAX];
    char why[HP_MUX_REASON_MAX + 1];
    int n;
    snprintf(why, sizeof why, "cannot connect to %.64s: %.100s", t->target_txt,
             uv_strerror(status));
    HP_WARN("tunnel", json_pack("{s:i, s:s}", "stream", (int)s->id, "target", t->target_txt),
            "stream %u: %s", (unsigned)s->id, why);
    n = hp__mux_rst(t->mux, s->id,
                    status == UV_ECONNREFUSED ? HP_MUX_RST_REFUSED : HP_MUX_RST_UNREACHABLE, why,
                    f);
    if (n > 0)
      chan_send(t, f, (size_t)n);
    stream_close(s, 0);
    return;
  }
  s->st = L_OPEN;
  uv_tcp_nodelay(&s->h, 1);
  while ((c = s->pending) != NULL && s->st == L_OPEN) {
    s->pending = c->next;
    if (local_write_now(s, c->data, c->n) < 0) {
      free(c);
      stream_close(s, 1);
      return;
    }
    free(c);
  }
  s->pending_end = &s->pending;
  maybe_shutdown(s);
  update_reading(s);
}

static void peer_opened(hp__tunnel *t, uint32_t id) {
  uint8_t f[HP_MUX_CTL_MAX];
  tstream *s;
  int n, r;

  if (t->cfg.mode == HP_TUNNEL_FORWARD) {
    /* The expose side never opens streams: refuse, whatever it asks. */
    n = hp__mux_rst(t->mux, id, HP_MUX_RST_NOT_ALLOWED, "this side accepts no streams", f);
    if (n > 0)
      chan_send(t, f, (size_t)n);
    return;
  }
  s = stream_new(t);
  if (!s) {
    n = hp__mux_rst(t->mux, id, HP_MUX_RST_OTHER, "out of memory", f);
    if (n > 0)
      chan_send(t, f, (size_t)n);
    return;
  }
  s->id = id;
  s->st = L_CONNECTING;
  hp__mux_set_ud(t->mux, id, s);
  s->req.conn.data = s;
  r = uv_tcp_connect(&s->req.conn, &s->h, (const struct sockaddr *)&t->target, on_target_connected);
  if (r < 0) {
    s->st = L_OPEN; /* no connect callback will come */
    stream_close(s, 0);
  }
}

/* ---- forward: local connections become streams ---- */

static void on_local_connection(uv_stream_t *server, int status) {
  hp__tunnel *t = server->data;
  uint8_t f[HP_MUX_HDR];
  tstream *s;
  int r;

  if (status < 0 || t->st != T_RUNNING)
    return;
  s = stream_new(t);
  if (!s)
    return; /* left in the backlog; tried again at the next connection */
  s->st = L_OPEN;
  if (uv_accept(server, (uv_stream_t *)&s->h) < 0) {
    stream_close(s, 0);
    return;
  }
  r = hp__mux_open(t->mux, s, &s->id, f);
  if (r < 0) {
    HP_WARN("tunnel", json_pack("{s:i}", "streams", (int)hp__mux_count(t->mux)),
            "refusing a local connection: %s",
            r == -EAGAIN ? "too many streams at once" : "the channel failed");
    stream_close(s, 1);
    return;
  }
  uv_tcp_nodelay(&s->h, 1);
  if (chan_send(t, f, HP_MUX_HDR) == 0)
    update_reading(s);
}

/* ---- frames from the peer ---- */

static void handle_event(hp__tunnel *t, const hp__mux_ev *ev) {
  tstream *s = ev->ud;
  uint8_t f[HP_MUX_CTL_MAX];
  char why[HP_MUX_REASON_MAX + 1];
  int n;

  switch (ev->type) {
  case HP_MUX_EV_OPEN:
    peer_opened(t, ev->id);
    break;
  case HP_MUX_EV_REFUSED:
    n = hp__mux_rst_frame(ev->id, HP_MUX_RST_TOO_MANY, "too many streams at once", f);
    if (n > 0)
      chan_send(t, f, (size_t)n);
    break;
  case HP_MUX_EV_DATA:
    if (s)
      local_write(s, ev->p, ev->n);
    break;
  case HP_MUX_EV_WINDOW:
    if (s)
      update_reading(s);
    break;
  case HP_MUX_EV_FIN:
    if (s && s->rx == RX_OPEN) {
      s->rx = RX_FIN;
      maybe_shutdown(s);
    }
    break;
  case HP_MUX_EV_RST:
    clean_reason(ev->p, ev->n, why, sizeof why);
    if (s) {
      HP_WARN("tunnel", json_pack("{s:i, s:i}", "stream", (int)ev->id, "code", ev->code),
              "stream %u reset by the peer%s%s", (unsigned)ev->id, *why ? ": " : "", why);
      stream_close(s, 1);
    }
    break;
  case HP_MUX_EV_NONE:
    break;
  }
}

static void on_chan_data(hp_bs *b, const uint8_t *p, size_t n, void *ud) {
  hp__tunnel *t = ud;
  (void)b;

  while (n > 0 && t->st == T_RUNNING) {
    hp__mux_ev ev;
    long r = hp__mux_decode(t->mux, p, n, &ev);
    if (r < 0) {
      char why[220];
      snprintf(why, sizeof why, "the peer broke the stream protocol: %s", hp__mux_error(t->mux));
      tunnel_end(t, -EPROTO, why);
      return;
    }
    p += r;
    n -= (size_t)r;
    handle_event(t, &ev);
  }
}

static void on_chan_eof(hp_bs *b, void *ud) {
  hp__tunnel *t = ud;
  (void)b;

  t->chan_eof = 1;
  tunnel_end(t, 0, "the peer closed the channel");
}

static void on_chan_error(hp_bs *b, int err, const char *why, void *ud) {
  hp__tunnel *t = ud;
  char msg[200];
  (void)b;

  if (t->st != T_RUNNING) { /* flushing at the end: nothing more to flush */
    hp_bs_close(t->chan);
    t->chan = NULL;
    return;
  }
  snprintf(msg, sizeof msg, "the channel to the peer failed: %s", why ? why : "");
  tunnel_end(ud, err < 0 ? err : -EIO, msg);
}

static void on_chan_drain(hp_bs *b, void *ud) {
  hp__tunnel *t = ud;
  (void)b;

  if (t->st != T_RUNNING || !t->chan_blocked)
    return;
  t->chan_blocked = 0;
  for (tstream *s = t->streams, *next; s; s = next) {
    next = s->next; /* update_reading may close s (not free it yet) */
    update_reading(s);
  }
}

/* ---- life ---- */

/* The last handle is back: report, then free. */
static void tunnel_unref(hp__tunnel *t) {
  if (--t->open > 0 || t->st != T_ENDING)
    return;
  if (t->cb)
    t->cb(t->status, t->why, t->ud);
  hp__mux_free(t->mux);
  free(t);
}

static void on_tunnel_handle_closed(uv_handle_t *h) {
  tunnel_unref(h->data);
}

/* At the end: the channel is closed once its last frames (the RSTs, the
 * FIN) went to the kernel and the peer finished too (closing earlier would
 * answer the peer's last frames with a TCP reset, which it would report as
 * a failure), or after FLUSH_MS. */
static void on_flush_tick(uv_timer_t *timer) {
  hp__tunnel *t = timer->data;

  if (t->chan &&
      ((hp_bs_queued(t->chan) == 0 && t->chan_eof) || uv_now(t->loop) >= t->flush_deadline)) {
    hp_bs_close(t->chan);
    t->chan = NULL;
  }
  if (!t->chan)
    uv_close((uv_handle_t *)timer, on_tunnel_handle_closed);
}

static void reset_all(hp__mux *m, uint32_t id, void *ud, void *arg) {
  uint8_t f[HP_MUX_CTL_MAX];
  hp__tunnel *t = arg;
  int n = hp__mux_rst(m, id, HP_MUX_RST_SHUTDOWN, "the other side is stopping", f);
  (void)ud;

  if (n > 0 && t->chan)
    hp_bs_write(t->chan, f, (size_t)n); /* best effort */
}

static void tunnel_end(hp__tunnel *t, int status, const char *why) {
  int flush;

  if (t->st != T_RUNNING)
    return;
  flush = status == 0 && t->chan != NULL; /* the channel still works */
  t->st = T_ENDING;
  t->status = status;
  snprintf(t->why, sizeof t->why, "%s", why ? why : "");
  if (flush)
    hp__mux_foreach(t->mux, reset_all, t);
  for (tstream *s = t->streams; s; s = s->next)
    if (s->st != L_CLOSING)
      stream_close(s, 1); /* the mux streams were reset above */
  if (t->listening) {
    t->listening = 0;
    uv_close((uv_handle_t *)&t->listener, on_tunnel_handle_closed);
  }
  if (flush)
    hp_bs_shutdown(t->chan);
  t->flush_deadline = uv_now(t->loop) + FLUSH_MS;
  if (!flush && t->chan) {
    hp_bs_close(t->chan);
    t->chan = NULL;
  }
  uv_timer_start(&t->flush, on_flush_tick, 0, 20);
}

int hp__tunnel_start(uv_loop_t *loop, hp_bs *chan, const hp__tunnel_cfg *cfg, hp__tunnel_done_cb cb,
                     void *ud, hp__tunnel **out, char *err, size_t errlen) {
  static const hp_bs_cbs cbs = {on_chan_data, on_chan_eof, on_chan_error, on_chan_drain};
  hp__tunnel *t = NULL;
  int r;

  if (!loop || !chan || !cfg) {
    r = -EINVAL;
    snprintf(err, errlen, "invalid arguments");
    goto out;
  }
  t = calloc(1, sizeof *t);
  if (!t || !(t->mux = hp__mux_new(cfg->mode == HP_TUNNEL_FORWARD, cfg->max_streams))) {
    r = -ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto out;
  }
  t->loop = loop;
  t->cfg = *cfg;
  t->cb = cb;
  t->ud = ud;
  t->st = T_RUNNING;
  if ((r = hp__tunnel_resolve(cfg, &t->target, err, errlen)) < 0)
    goto out;
  hp__addr_format((struct sockaddr *)&t->target, t->target_txt, sizeof t->target_txt);
  if (cfg->mode == HP_TUNNEL_FORWARD) {
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_init(loop, &t->listener);
    t->listener.data = t;
    t->listening = 1;
    t->open++;
    r = uv_tcp_bind(&t->listener, (struct sockaddr *)&t->target, 0);
    if (r == 0)
      r = uv_listen((uv_stream_t *)&t->listener, 128, on_local_connection);
    if (r < 0) {
      snprintf(err, errlen, "cannot listen on %s: %s", t->target_txt, uv_strerror(r));
      goto out;
    }
    if (uv_tcp_getsockname(&t->listener, (struct sockaddr *)&bound, &len) == 0)
      hp__addr_format((struct sockaddr *)&bound, t->listen_txt, sizeof t->listen_txt);
  }
  uv_timer_init(loop, &t->flush);
  t->flush.data = t;
  t->open++;
  t->chan = chan;
  chan = NULL; /* the tunnel's now */
  hp_bs_set_cbs(t->chan, &cbs, t);
  *out = t;
  t = NULL;
  r = 0;
out:
  if (chan)
    hp_bs_close(chan);
  if (t) {
    if (t->listening) {
      /* The listener is a handle: freed in its close callback, quietly. */
      t->cb = NULL;
      t->st = T_ENDING;
      t->listening = 0;
      uv_close((uv_handle_t *)&t->listener, on_tunnel_handle_closed);
    } else {
      hp__mux_free(t->mux);
      free(t);
    }
  }
  return r;
}

void hp__tunnel_stop(hp__tunnel *t) {
  if (t)
    tunnel_end(t, 0, "stopped");
}

unsigned hp__tunnel_streams(const hp__tunnel *t) {
  return t ? t->nstreams : 0;
}

const char *hp__tunnel_listen_addr(const hp__tunnel *t) {
  return t ? t->listen_txt : "";
}
