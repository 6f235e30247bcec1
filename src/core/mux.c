/*
 * mux.c - the stream multiplexer's codec and per-stream state machine (see
 * mux.h; the frame format is docs/PROTOCOL.md section 7).
 *
 * Why credit per stream rather than one window for the connection: the
 * carrier's own backpressure (hp_bs high water) is shared by all streams, so
 * a stream whose local reader is slow would, without its own window, fill
 * the receiver with its bytes until every stream stops. With a window, the
 * slow stream's sender runs out of credit and stops reading its source; the
 * receiver never holds more than HP_MUX_WINDOW_INIT bytes of it.
 */
#include "mux.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 0x7fffffffu
/* A WINDOW frame once this much was consumed: fewer, larger frames; the
 * sender keeps at least three quarters of its credit in the meantime. */
#define WINDOW_BATCH (HP_MUX_WINDOW_INIT / 4)

typedef struct mstream {
  uint32_t id;
  hp__mux_sstate state;
  uint32_t send_credit;  /* bytes we may send */
  uint32_t recv_window;  /* bytes the peer may send */
  uint32_t recv_pending; /* received, not yet consumed by the application */
  uint32_t recv_unacked; /* consumed, not yet returned in a WINDOW frame */
  void *ud;
} mstream;

struct hp__mux {
  int initiator;
  unsigned max;
  unsigned count;
  uint32_t next_local;  /* the id of the next stream we open */
  uint32_t last_remote; /* the highest id the peer opened (0: none yet) */
  int failed;
  char err[160];
  size_t inlen; /* bytes of a partial frame in in[] */
  uint8_t in[HP_MUX_HDR + HP_MUX_FRAME_MAX];
  mstream *s; /* max slots */
};

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put_hdr(uint8_t *out, int type, uint32_t id, size_t len) {
  out[0] = (uint8_t)type;
  out[1] = 0;
  out[2] = (uint8_t)(len >> 8);
  out[3] = (uint8_t)len;
  wr32(out + 4, id);
}

static long fail(hp__mux *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long fail(hp__mux *m, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(m->err, sizeof m->err, fmt, ap);
  va_end(ap);
  m->failed = 1;
  return -EPROTO;
}

hp__mux *hp__mux_new(int initiator, unsigned max_streams) {
  hp__mux *m;

  if (max_streams == 0)
    max_streams = HP_MUX_STREAMS_DEFAULT;
  if (max_streams > HP_MUX_STREAMS_LIMIT)
    return NULL;
  m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->s = calloc(max_streams, sizeof *m->s);
  if (!m->s) {
    free(m);
    return NULL;
  }
  m->initiator = initiator ? 1 : 0;
  m->max = max_streams;
  m->next_local = m->initiator ? 1 : 2;
  return m;
}

void hp__mux_free(hp__mux *m) {
  if (!m)
    return;
  free(m->s);
  free(m);
}

const char *hp__mux_error(const hp__mux *m) {
  return m->err;
}

static mstream *find(const hp__mux *m, uint32_t id) {
  if (id == 0)
    return NULL;
  for (unsigned i = 0; i < m->max; i++)
    if (m->s[i].state != HP_MUX_S_FREE && m->s[i].id == id)
      return &m->s[i];
  return NULL;
}

static mstream *alloc_slot(hp__mux *m, uint32_t id, void *ud) {
  for (unsigned i = 0; i < m->max; i++) {
    mstream *s = &m->s[i];
    if (s->state == HP_MUX_S_FREE) {
      memset(s, 0, sizeof *s);
      s->id = id;
      s->state = HP_MUX_S_OPEN;
      s->send_credit = HP_MUX_WINDOW_INIT;
      s->recv_window = HP_MUX_WINDOW_INIT;
      s->ud = ud;
      m->count++;
      return s;
    }
  }
  return NULL;
}

static void remove_stream(hp__mux *m, mstream *s) {
  memset(s, 0, sizeof *s);
  m->count--;
}

static int is_remote_id(const hp__mux *m, uint32_t id) {
  return (id & 1u) == (m->initiator ? 0u : 1u);
}

/* An id that existed (and is gone): frames for it crossed our RST or FIN. */
static int was_known(const hp__mux *m, uint32_t id) {
  return is_remote_id(m, id) ? id <= m->last_remote : id < m->next_local;
}

/* The header alone: refused before its payload arrives. */
static long check_hdr(hp__mux *m, const uint8_t *h) {
  unsigned type = h[0], len = (unsigned)h[2] << 8 | h[3];
  uint32_t id = rd32(h + 4);
  int ok;

  if (h[1] != 0)
    return fail(m, "mux frame with flags 0x%02x (must be 0)", h[1]);
  if (id == 0 || id > ID_MAX)
    return fail(m, "mux frame for stream id %u (must be 1..2^31-1)", (unsigned)id);
  if (len > HP_MUX_FRAME_MAX)
    return fail(m, "mux frame of %u bytes (at most %u)", len, HP_MUX_FRAME_MAX);
  switch (type) {
  case HP_MUX_OPEN:
  case HP_MUX_FIN:
    ok = len == 0;
    break;
  case HP_MUX_DATA:
    ok = len >= 1;
    break;
  case HP_MUX_WINDOW:
    ok = len == 4;
    break;
  case HP_MUX_RST:
    ok = len >= 1 && len <= 1 + HP_MUX_REASON_MAX;
    break;
  default:
    return fail(m, "mux frame of unknown type %u", type);
  }
  if (!ok)
    return fail(m, "mux frame of type %u with a payload of %u bytes", type, len);
  return 0;
}

/* A complete, header-checked frame. */
static long frame(hp__mux *m, const uint8_t *h, const uint8_t *pl, hp__mux_ev *ev) {
  unsigned type = h[0], len = (unsigned)h[2] << 8 | h[3];
  uint32_t id = rd32(h + 4), inc;
  mstream *s;

  ev->id = id;
  if (type == HP_MUX_OPEN) {
    if (!is_remote_id(m, id))
      return fail(m, "the peer opened stream %u, an id of our parity", (unsigned)id);
    if (id <= m->last_remote)
      return fail(m, "the peer opened stream %u after %u (ids must increase)", (unsigned)id,
                  (unsigned)m->last_remote);
    m->last_remote = id;
    if (m->count >= m->max) {
      ev->type = HP_MUX_EV_REFUSED;
      return 0;
    }
    alloc_slot(m, id, NULL); /* a free slot exists: count < max */
    ev->type = HP_MUX_EV_OPEN;
    return 0;
  }
  s = find(m, id);
  if (!s) {
    if (was_known(m, id))
      return 0; /* crossed our RST (or the stream's end): ignored */
    return fail(m, "mux frame of type %u for stream %u, which was never opened", type,
                (unsigned)id);
  }
  ev->ud = s->ud;
  switch (type) {
  case HP_MUX_DATA:
    if (s->state == HP_MUX_S_REMOTE_FIN)
      return fail(m, "data on stream %u after its FIN", (unsigned)id);
    if (len > s->recv_window)
      return fail(m, "%u bytes on stream %u beyond its window of %u", len, (unsigned)id,
                  (unsigned)s->recv_window);
    s->recv_window -= len;
    s->recv_pending += len;
    ev->type = HP_MUX_EV_DATA;
    ev->p = pl;
    ev->n = len;
    return 0;
  case HP_MUX_WINDOW:
    inc = rd32(pl);
    if (inc == 0 || inc > HP_MUX_WINDOW_MAX || s->send_credit > HP_MUX_WINDOW_MAX - inc)
      return fail(m, "window increment %u on stream %u (credit %u; at most %u in all)",
                  (unsigned)inc, (unsigned)id, (unsigned)s->send_credit, HP_MUX_WINDOW_MAX);
    s->send_credit += inc;
    ev->type = HP_MUX_EV_WINDOW;
    return 0;
  case HP_MUX_FIN:
    if (s->state == HP_MUX_S_REMOTE_FIN)
      return fail(m, "a second FIN on stream %u", (unsigned)id);
    ev->type = HP_MUX_EV_FIN;
    if (s->state == HP_MUX_S_LOCAL_FIN) {
      ev->closed = 1;
      remove_stream(m, s);
    } else {
      s->state = HP_MUX_S_REMOTE_FIN;
    }
    return 0;
  case HP_MUX_RST:
  default:
    ev->type = HP_MUX_EV_RST;
    ev->code = pl[0];
    ev->p = pl + 1;
    ev->n = len - 1;
    remove_stream(m, s);
    return 0;
  }
}

long hp__mux_decode(hp__mux *m, const uint8_t *p, size_t n, hp__mux_ev *ev) {
  size_t total, take, used = 0;
  long r;

  memset(ev, 0, sizeof *ev);
  if (m->failed)
    return -EPROTO;
  /* The whole frame in the caller's buffer: decoded in place. */
  if (m->inlen == 0 && n >= HP_MUX_HDR) {
    if ((r = check_hdr(m, p)) < 0)
      return r;
    total = HP_MUX_HDR + ((size_t)p[2] << 8 | p[3]);
    if (n >= total) {
      r = frame(m, p, p + HP_MUX_HDR, ev);
      return r < 0 ? r : (long)total;
    }
  }
  /* Otherwise gather it in in[] (at most one frame). */
  if (m->inlen < HP_MUX_HDR) {
    take = HP_MUX_HDR - m->inlen < n ? HP_MUX_HDR - m->inlen : n;
    memcpy(m->in + m->inlen, p, take);
    m->inlen += take;
    used = take;
    if (m->inlen < HP_MUX_HDR)
      return (long)used;
    if ((r = check_hdr(m, m->in)) < 0)
      return r;
  }
  total = HP_MUX_HDR + ((size_t)m->in[2] << 8 | m->in[3]);
  take = total - m->inlen < n - used ? total - m->inlen : n - used;
  memcpy(m->in + m->inlen, p + used, take);
  m->inlen += take;
  used += take;
  if (m->inlen < total)
    return (long)used;
  m->inlen = 0;
  r = frame(m, m->in, m->in + HP_MUX_HDR, ev);
  return r < 0 ? r : (long)used;
}

int hp__mux_open(hp__mux *m, void *ud, uint32_t *id, uint8_t out[HP_MUX_HDR]) {
  if (m->failed)
    return -EPROTO;
  if (m->count >= m->max || m->next_local > ID_MAX)
    return -EAGAIN;
  *id = m->next_local;
  m->next_local += 2;
  alloc_slot(m, *id, ud);
  put_hdr(out, HP_MUX_OPEN, *id, 0);
  return 0;
}

size_t hp__mux_credit(const hp__mux *m, uint32_t id) {
  const mstream *s = find(m, id);

  if (!s || s->state == HP_MUX_S_LOCAL_FIN)
    return 0;
  return s->send_credit < HP_MUX_FRAME_MAX ? s->send_credit : HP_MUX_FRAME_MAX;
}

int hp__mux_data(hp__mux *m, uint32_t id, size_t n, uint8_t out[HP_MUX_HDR]) {
  mstream *s = find(m, id);

  if (!s || s->state == HP_MUX_S_LOCAL_FIN || n == 0 || n > HP_MUX_FRAME_MAX || n > s->send_credit)
    return -EINVAL;
  s->send_credit -= (uint32_t)n;
  put_hdr(out, HP_MUX_DATA, id, n);
  return 0;
}

int hp__mux_fin(hp__mux *m, uint32_t id, uint8_t out[HP_MUX_HDR]) {
  mstream *s = find(m, id);

  if (!s || s->state == HP_MUX_S_LOCAL_FIN)
    return -EINVAL;
  put_hdr(out, HP_MUX_FIN, id, 0);
  if (s->state == HP_MUX_S_REMOTE_FIN) {
    remove_stream(m, s);
    return 1;
  }
  s->state = HP_MUX_S_LOCAL_FIN;
  return 0;
}

int hp__mux_rst_frame(uint32_t id, int code, const char *reason, uint8_t out[HP_MUX_CTL_MAX]) {
  size_t rl = reason ? strnlen(reason, HP_MUX_REASON_MAX) : 0;

  if (id == 0 || id > ID_MAX)
    return -EINVAL;
  put_hdr(out, HP_MUX_RST, id, 1 + rl);
  out[HP_MUX_HDR] = (uint8_t)code;
  if (rl)
    memcpy(out + HP_MUX_HDR + 1, reason, rl);
  return (int)(HP_MUX_HDR + 1 + rl);
}

int hp__mux_rst(hp__mux *m, uint32_t id, int code, const char *reason,
                uint8_t out[HP_MUX_CTL_MAX]) {
  mstream *s = find(m, id);

  if (!s)
    return -EINVAL;
  remove_stream(m, s);
  return hp__mux_rst_frame(id, code, reason, out);
}

int hp__mux_consumed(hp__mux *m, uint32_t id, size_t n, uint8_t out[HP_MUX_HDR + 4]) {
  mstream *s = find(m, id);

  if (!s)
    return 0; /* gone (reset, or both sides finished): nothing to return */
  if (n > s->recv_pending)
    return -EINVAL;
  s->recv_pending -= (uint32_t)n;
  if (s->state == HP_MUX_S_REMOTE_FIN)
    return 0; /* the peer sends no more: no credit to return */
  s->recv_unacked += (uint32_t)n;
  if (s->recv_unacked < WINDOW_BATCH)
    return 0;
  put_hdr(out, HP_MUX_WINDOW, id, 4);
  wr32(out + HP_MUX_HDR, s->recv_unacked);
  s->recv_window += s->recv_unacked;
  s->recv_unacked = 0;
  return HP_MUX_HDR + 4;
}

hp__mux_sstate hp__mux_state(const hp__mux *m, uint32_t id) {
  const mstream *s = find(m, id);
  return s ? s->state : HP_MUX_S_FREE;
}

void *hp__mux_ud(const hp__mux *m, uint32_t id) {
  const mstream *s = find(m, id);
  return s ? s->ud : NULL;
}

int hp__mux_set_ud(hp__mux *m, uint32_t id, void *ud) {
  mstream *s = find(m, id);

  if (!s)
    return -EINVAL;
  s->ud = ud;
  return 0;
}

unsigned hp__mux_count(const hp__mux *m) {
  return m->count;
}

void hp__mux_foreach(hp__mux *m, void (*f)(hp__mux *m, uint32_t id, void *ud, void *arg),
                     void *arg) {
  for (unsigned i = 0; i < m->max; i++)
    if (m->s[i].state != HP_MUX_S_FREE)
      f(m, m->s[i].id, m->s[i].ud, arg);
}
