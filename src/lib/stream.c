/*
 * stream.c - the public hp_stream (holepunch.h): a thin handle around the
 * secure channel's hp_bs, so that the public header does not expose the
 * internal byte-stream interface. Each callback is passed through with the
 * public handle; after hp_stream_close nothing fires (the hp_bs rule), so
 * the handle is freed at once.
 */
#include <errno.h>
#include <stdlib.h>

#include "chan/secure.h"
#include "stream_int.h"

struct hp_stream {
  hp_bs *bs;
  hp_stream_cbs cbs;
  void *data;
};

static void t_data(hp_bs *b, const uint8_t *p, size_t n, void *ud) {
  hp_stream *s = ud;
  (void)b;
  if (s->cbs.on_data)
    s->cbs.on_data(s, p, n, s->data);
}

static void t_eof(hp_bs *b, void *ud) {
  hp_stream *s = ud;
  (void)b;
  if (s->cbs.on_eof)
    s->cbs.on_eof(s, s->data);
}

static void t_error(hp_bs *b, int err, const char *why, void *ud) {
  hp_stream *s = ud;
  (void)b;
  if (s->cbs.on_error)
    s->cbs.on_error(s, err, why, s->data);
}

static void t_drain(hp_bs *b, void *ud) {
  hp_stream *s = ud;
  (void)b;
  if (s->cbs.on_drain)
    s->cbs.on_drain(s, s->data);
}

static const hp_bs_cbs trampolines = {t_data, t_eof, t_error, t_drain};

hp_stream *hp__stream_wrap(hp_bs *b) {
  hp_stream *s;

  if (!b)
    return NULL;
  s = calloc(1, sizeof *s);
  if (!s) {
    hp_bs_close(b);
    return NULL;
  }
  s->bs = b;
  return s;
}

void hp_stream_set_cbs(hp_stream *s, const hp_stream_cbs *cbs, void *data) {
  if (!s)
    return;
  if (cbs)
    s->cbs = *cbs;
  s->data = data;
  hp_bs_set_cbs(s->bs, &trampolines, s);
}

int hp_stream_write(hp_stream *s, const void *p, size_t n) {
  if (!s || (!p && n))
    return -EINVAL;
  return hp_bs_write(s->bs, p, n);
}

size_t hp_stream_queued(const hp_stream *s) {
  return s ? hp_bs_queued(s->bs) : 0;
}

int hp_stream_shutdown(hp_stream *s) {
  return s ? hp_bs_shutdown(s->bs) : -EINVAL;
}

void hp_stream_pause(hp_stream *s, int paused) {
  if (s)
    hp_bs_pause(s->bs, paused);
}

int hp_stream_authenticated(const hp_stream *s) {
  return s ? hp__secure_authenticated(s->bs) : 0;
}

void hp_stream_close(hp_stream *s) {
  if (!s)
    return;
  hp_bs_close(s->bs);
  free(s);
}
