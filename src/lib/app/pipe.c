/*
 * pipe.c - `holepunch pipe` (pipe.h): in_fd -> channel, channel -> out_fd.
 *
 * Files (and character devices such as /dev/null) are read and written with
 * uv_fs_* in libuv's thread pool, one request at a time so the bytes stay
 * in order; pipes, sockets and terminals are libuv streams. Either way one
 * buffer of PIPE_CHUNK serves the input (its bytes are copied by the
 * channel's write), and the output holds at most PIPE_OUT_HIGH bytes plus
 * one channel read before the channel is paused.
 */
#include "pipe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIPE_CHUNK (64u * 1024u)
#define PIPE_OUT_HIGH (1024u * 1024u)
#define PIPE_OUT_LOW (256u * 1024u)
#define TICK_MS 100

/* The pipe's life: running, then ending (everything closing); freed when
 * the last handle or request came back. */
typedef enum pstate { P_RUNNING, P_ENDING } pstate;
/* The input direction: reading, waiting for the channel to drain, done
 * (EOF seen and the channel half-closed). */
typedef enum in_state { IN_READING, IN_BLOCKED, IN_EOF } in_state;
/* The output direction: open, or the peer finished (flush, then done). */
typedef enum out_state { OUT_OPEN, OUT_PEER_EOF } out_state;
typedef enum kind { K_FILE, K_STREAM } kind;

typedef union shandle {
  uv_handle_t h;
  uv_stream_t s;
  uv_pipe_t pipe;
  uv_tty_t tty;
} shandle;

typedef struct chunk {
  union {
    uv_write_t w;
    uv_fs_t fs;
  } req;
  struct chunk *next;
  struct hp__pipe *p;
  size_t n, off;
  uint8_t data[];
} chunk;

struct hp__pipe {
  uv_loop_t *loop;
  hp_bs *chan;
  pstate st;
  in_state in;
  out_state out;
  kind in_kind, out_kind;
  int in_fd, out_fd;
  shandle in_h, out_h;
  uv_fs_t in_req;
  int in_busy;         /* a file read in flight */
  chunk *oq, **oq_end; /* file output waiting (head in flight when out_busy) */
  int out_busy;
  size_t out_pending; /* bytes accepted for out_fd, not yet written */
  int chan_paused;
  uv_timer_t tick;
  int progress;
  uint64_t t0, last_print, sent, received, last_total;
  int open; /* handles and requests still to come back */
  int status;
  char why[200];
  hp__pipe_done_cb cb;
  void *ud;
  uint8_t inbuf[PIPE_CHUNK];
};

static void finish(hp__pipe *p, int status, const char *why);
static void in_resume(hp__pipe *p);

/* ---- teardown ---- */

static void print_progress(hp__pipe *p, int final) {
  uint64_t now = uv_now(p->loop), total = p->sent + p->received;
  double secs = (double)(now - p->t0) / 1000.0;
  double rate = secs > 0 ? (double)total / secs / 1048576.0 : 0;

  fprintf(stderr, "\rsent %.1f MiB, received %.1f MiB, %.1f MiB/s%s", p->sent / 1048576.0,
          p->received / 1048576.0, rate, final ? "\n" : "   ");
  fflush(stderr);
}

static void complete(hp__pipe *p) {
  if (p->progress)
    print_progress(p, 1);
  if (p->cb)
    p->cb(p->status, p->why, p->sent, p->received, p->ud);
  free(p);
}

static void unref(hp__pipe *p) {
  if (--p->open == 0 && p->st == P_ENDING)
    complete(p);
}

static void on_handle_closed(uv_handle_t *h) {
  unref(h->data);
}

static void finish(hp__pipe *p, int status, const char *why) {
  chunk *c, *next;

  if (p->st != P_RUNNING)
    return;
  p->st = P_ENDING;
  p->status = status;
  snprintf(p->why, sizeof p->why, "%s", why ? why : "");
  hp_bs_close(p->chan);
  p->chan = NULL;
  uv_close((uv_handle_t *)&p->tick, on_handle_closed);
  if (p->in_kind == K_STREAM)
    uv_close(&p->in_h.h, on_handle_closed);
  else if (p->in_busy)
    uv_cancel((uv_req_t *)&p->in_req); /* its callback comes anyway */
  if (p->out_kind == K_STREAM) {
    uv_close(&p->out_h.h, on_handle_closed); /* pending writes: ECANCELED */
  } else {
    /* The head is in flight (its callback frees it); the rest never went. */
    for (c = p->out_busy ? p->oq->next : p->oq; c; c = next) {
      next = c->next;
      free(c);
    }
    if (p->out_busy)
      p->oq->next = NULL;
    else
      p->oq = NULL;
  }
  if (p->open == 0)
    complete(p);
}

/* Both directions done and every byte handed to the kernel? */
static void check_done(hp__pipe *p) {
  if (p->st == P_RUNNING && p->in == IN_EOF && p->out == OUT_PEER_EOF && p->out_pending == 0 &&
      hp_bs_queued(p->chan) == 0)
    finish(p, 0, NULL);
}

/* ---- output: the peer's bytes to out_fd ---- */

static void out_written(hp__pipe *p, size_t n) {
  p->out_pending -= n;
  if (p->st != P_RUNNING)
    return;
  if (p->chan_paused && p->out_pending <= PIPE_OUT_LOW) {
    p->chan_paused = 0;
    hp_bs_pause(p->chan, 0);
  }
  check_done(p);
}

static void on_stream_written(uv_write_t *req, int status) {
  chunk *c = req->data;
  hp__pipe *p = c->p;
  size_t n = c->n;

  free(c);
  if (status < 0 && p->st == P_RUNNING) {
    p->out_pending -= n;
    finish(p, status, status == UV_EPIPE ? "the output was closed" : uv_strerror(status));
    return;
  }
  out_written(p, n);
}

static void file_write_next(hp__pipe *p);

static void on_file_written(uv_fs_t *req) {
  chunk *c = req->data;
  hp__pipe *p = c->p;
  ssize_t r = req->result;

  uv_fs_req_cleanup(req);
  p->out_busy = 0;
  if (p->st != P_RUNNING) {
    p->oq = NULL; /* finish() freed the chunks after this one */
    free(c);
  } else if (r < 0) {
    p->oq = c->next; /* finish() frees them */
    if (!p->oq)
      p->oq_end = &p->oq;
    p->out_pending -= c->n - c->off;
    free(c);
    finish(p, (int)r, uv_strerror((int)r));
  } else {
    c->off += (size_t)r;
    if (c->off >= c->n) { /* else a short write: the rest goes next */
      p->oq = c->next;
      if (!p->oq)
        p->oq_end = &p->oq;
      free(c);
    }
    out_written(p, (size_t)r);
    if (p->st == P_RUNNING)
      file_write_next(p);
  }
  unref(p); /* last: may free p */
}

static void file_write_next(hp__pipe *p) {
  chunk *c = p->oq;
  uv_buf_t b;
  int r;

  if (p->out_busy || !c)
    return;
  b = uv_buf_init((char *)c->data + c->off, (unsigned)(c->n - c->off));
  c->req.fs.data = c;
  r = uv_fs_write(p->loop, &c->req.fs, p->out_fd, &b, 1, -1, on_file_written);
  if (r < 0) {
    finish(p, r, uv_strerror(r));
    return;
  }
  p->out_busy = 1;
  p->open++;
}

static void out_write(hp__pipe *p, const uint8_t *data, size_t n) {
  chunk *c;
  uv_buf_t b;
  int r;

  if (p->out_kind == K_STREAM && p->out_h.s.write_queue_size == 0) {
    b = uv_buf_init((char *)data, (unsigned)n);
    r = uv_try_write(&p->out_h.s, &b, 1);
    if (r > 0) {
      data += r;
      n -= (size_t)r;
    } else if (r < 0 && r != UV_EAGAIN) {
      finish(p, r, r == UV_EPIPE ? "the output was closed" : uv_strerror(r));
      return;
    }
    if (n == 0)
      return;
  }
  c = malloc(sizeof *c + n);
  if (!c) {
    finish(p, -ENOMEM, "out of memory");
    return;
  }
  memcpy(c->data, data, n);
  c->p = p;
  c->n = n;
  c->off = 0;
  c->next = NULL;
  p->out_pending += n;
  if (p->out_kind == K_STREAM) {
    b = uv_buf_init((char *)c->data, (unsigned)n);
    c->req.w.data = c;
    r = uv_write(&c->req.w, &p->out_h.s, &b, 1, on_stream_written);
    if (r < 0) {
      p->out_pending -= n;
      free(c);
      finish(p, r, uv_strerror(r));
      return;
    }
  } else {
    *p->oq_end = c;
    p->oq_end = &c->next;
    file_write_next(p);
  }
  if (p->st == P_RUNNING && !p->chan_paused && p->out_pending > PIPE_OUT_HIGH) {
    p->chan_paused = 1;
    hp_bs_pause(p->chan, 1);
  }
}

/* ---- input: in_fd to the peer ---- */

static void in_eof(hp__pipe *p) {
  int r;

  p->in = IN_EOF;
  if (p->in_kind == K_STREAM)
    uv_read_stop(&p->in_h.s);
  r = hp_bs_shutdown(p->chan);
  if (r < 0) {
    finish(p, r, "cannot half-close the channel");
    return;
  }
  check_done(p);
}

static void in_send(hp__pipe *p, const uint8_t *data, size_t n) {
  int r = hp_bs_write(p->chan, data, n);

  if (r < 0) {
    finish(p, r, "cannot send to the peer");
    return;
  }
  p->sent += n;
  if (hp_bs_queued(p->chan) > HP_BS_HIGH_WATER) {
    p->in = IN_BLOCKED; /* resumed by on_drain */
    if (p->in_kind == K_STREAM)
      uv_read_stop(&p->in_h.s);
  }
}

static void on_in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  hp__pipe *p = h->data;
  (void)hint;
  *b = uv_buf_init((char *)p->inbuf, sizeof p->inbuf);
}

static void on_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  hp__pipe *p = s->data;
  (void)b;

  if (p->st != P_RUNNING || n == 0)
    return;
  if (n > 0)
    in_send(p, p->inbuf, (size_t)n);
  else if (n == UV_EOF)
    in_eof(p);
  else
    finish(p, (int)n, uv_strerror((int)n));
}

static void file_read_next(hp__pipe *p);

static void on_file_read(uv_fs_t *req) {
  hp__pipe *p = req->data;
  ssize_t r = req->result;

  uv_fs_req_cleanup(req);
  p->in_busy = 0;
  if (p->st == P_RUNNING) {
    if (r > 0) {
      in_send(p, p->inbuf, (size_t)r);
      if (p->in == IN_READING)
        file_read_next(p);
    } else if (r == 0) {
      in_eof(p);
    } else {
      finish(p, (int)r, uv_strerror((int)r));
    }
  }
  unref(p);
}

static void file_read_next(hp__pipe *p) {
  uv_buf_t b = uv_buf_init((char *)p->inbuf, sizeof p->inbuf);
  int r;

  if (p->in_busy || p->st != P_RUNNING)
    return;
  p->in_req.data = p;
  r = uv_fs_read(p->loop, &p->in_req, p->in_fd, &b, 1, -1, on_file_read);
  if (r < 0) {
    finish(p, r, uv_strerror(r));
    return;
  }
  p->in_busy = 1;
  p->open++;
}

static void in_resume(hp__pipe *p) {
  int r;

  p->in = IN_READING;
  if (p->in_kind == K_FILE) {
    file_read_next(p);
    return;
  }
  r = uv_read_start(&p->in_h.s, on_in_alloc, on_in_read);
  if (r < 0)
    finish(p, r, uv_strerror(r));
}

/* ---- the channel ---- */

static void on_chan_data(hp_bs *s, const uint8_t *data, size_t n, void *ud) {
  hp__pipe *p = ud;
  (void)s;

  if (p->st != P_RUNNING)
    return;
  p->received += n;
  out_write(p, data, n);
}

static void on_chan_eof(hp_bs *s, void *ud) {
  hp__pipe *p = ud;
  (void)s;

  p->out = OUT_PEER_EOF;
  check_done(p);
}

static void on_chan_error(hp_bs *s, int err, const char *why, void *ud) {
  hp__pipe *p = ud;
  char msg[160];
  (void)s;

  snprintf(msg, sizeof msg, "the channel to the peer failed: %s", why ? why : "");
  finish(p, err < 0 ? err : -EIO, msg);
}

static void on_chan_drain(hp_bs *s, void *ud) {
  hp__pipe *p = ud;
  (void)s;

  if (p->st == P_RUNNING && p->in == IN_BLOCKED)
    in_resume(p);
}

static void on_tick(uv_timer_t *t) {
  hp__pipe *p = t->data;
  uint64_t now = uv_now(p->loop);

  if (p->progress && now - p->last_print >= 1000) {
    p->last_print = now;
    print_progress(p, 0);
  }
  /* The channel reports draining only below its low water after a high
   * one; the last bytes are seen here. */
  check_done(p);
}

/* ---- start ---- */

/* in_fd / out_fd as a libuv stream (pipe, socket, terminal) or a file
 * (regular file, character device: read and written in the pool). *k stays
 * K_FILE unless the stream handle is fully set up, so that finish() closes
 * only what exists. */
static int open_end(hp__pipe *p, int fd, int readable, kind *k, shandle *h) {
  uv_handle_type t = uv_guess_handle(fd);
  int r;

  *k = K_FILE;
  if (t == UV_FILE || t == UV_UNKNOWN_HANDLE)
    return 0;
  if (t == UV_TTY) {
    r = uv_tty_init(p->loop, &h->tty, fd, readable);
    if (r < 0)
      return r;
  } else {
    r = uv_pipe_init(p->loop, &h->pipe, 0);
    if (r < 0)
      return r;
    r = uv_pipe_open(&h->pipe, fd);
    if (r < 0) {
      h->h.data = p;
      p->open++;
      uv_close(&h->h, on_handle_closed);
      return r;
    }
  }
  h->h.data = p;
  p->open++;
  *k = K_STREAM;
  return 0;
}

int hp__pipe_start(uv_loop_t *loop, hp_bs *chan, int in_fd, int out_fd, int progress,
                   hp__pipe_done_cb cb, void *ud, hp__pipe **out) {
  static const hp_bs_cbs cbs = {on_chan_data, on_chan_eof, on_chan_error, on_chan_drain};
  hp__pipe *p;
  int r;

  if (!loop || !chan || in_fd < 0 || out_fd < 0) {
    if (chan)
      hp_bs_close(chan);
    return -EINVAL;
  }
  p = calloc(1, sizeof *p);
  if (!p) {
    hp_bs_close(chan);
    return -ENOMEM;
  }
  p->loop = loop;
  p->chan = chan;
  p->in_fd = in_fd;
  p->out_fd = out_fd;
  p->progress = progress;
  p->cb = cb;
  p->ud = ud;
  p->oq_end = &p->oq;
  p->st = P_RUNNING;
  uv_timer_init(loop, &p->tick);
  p->tick.data = p;
  p->open++;
  p->in_h.h.data = p->out_h.h.data = p;
  if ((r = open_end(p, in_fd, 1, &p->in_kind, &p->in_h)) < 0 ||
      (r = open_end(p, out_fd, 0, &p->out_kind, &p->out_h)) < 0) {
    /* No callback on failure: tear down what was opened, quietly. */
    p->cb = NULL;
    finish(p, r, NULL);
    return r;
  }
  p->t0 = p->last_print = uv_now(loop);
  uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
  hp_bs_set_cbs(chan, &cbs, p);
  in_resume(p);
  *out = p;
  return 0;
}

void hp__pipe_stop(hp__pipe *p) {
  if (p)
    finish(p, -ECANCELED, "stopped");
}
