/*
 * fuzz_mux.c - hp__mux_decode (the stream multiplexer, src/core/mux.h) and
 * the state machine behind it.
 *
 * Input: one mode byte (bit 0: we are the initiator; bits 1-3: the stream
 * limit 1..8; bits 4-7: the chunk size the bytes arrive in, 1..16, 0 for
 * all at once), then the bytes the peer sent. The application consumes
 * every DATA at once and answers every REFUSED with an RST. Contract:
 * - decode returns -EPROTO (with a sentence, and for good: every later call
 *   too) or consumes 1..n bytes of a non-empty input;
 * - at most the limit of streams live; DATA carries 1..HP_MUX_FRAME_MAX
 *   bytes, never more than HP_MUX_WINDOW_INIT unreturned on one stream; an
 *   RST reason fits HP_MUX_REASON_MAX;
 * - returning consumed bytes never fails, and a WINDOW frame it makes is
 *   HP_MUX_HDR + 4 bytes;
 * - the events do not depend on how the bytes were cut: the same input fed
 *   all at once and byte by byte gives the same events, data included.
 */
#include <errno.h>

#include "fuzz.h"
#include "mux.h"

#define EV_MAX 4096

typedef struct rec {
  int type, code, closed;
  uint32_t id;
  size_t n;
  uint32_t sum; /* of the DATA bytes or the reason */
} rec;

static uint32_t sum(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

/* Feed data in chunks of `chunk` (0: all); record the events. Returns the
 * number of events, and *failed. */
static size_t run(int initiator, unsigned max, size_t chunk, const uint8_t *data, size_t size,
                  rec *out, int *failed) {
  hp__mux *m = hp__mux_new(initiator, max);
  uint8_t ctl[HP_MUX_CTL_MAX];
  size_t off = 0, nev = 0;

  FUZZ_CHECK(m != NULL);
  *failed = 0;
  while (off < size && !*failed) {
    size_t avail = size - off, n = chunk && chunk < avail ? chunk : avail;
    hp__mux_ev ev;
    long r = hp__mux_decode(m, data + off, n, &ev);

    if (r < 0) {
      FUZZ_CHECK(r == -EPROTO);
      FUZZ_CHECK(hp__mux_error(m)[0] != '\0');
      FUZZ_CHECK(hp__mux_decode(m, data + off, n, &ev) == -EPROTO);
      *failed = 1;
      break;
    }
    FUZZ_CHECK(r >= 1 && (size_t)r <= n);
    off += (size_t)r;
    FUZZ_CHECK(hp__mux_count(m) <= max);
    if (ev.type == HP_MUX_EV_NONE)
      continue;
    FUZZ_CHECK(nev < EV_MAX);
    out[nev] = (rec){(int)ev.type, ev.code, ev.closed, ev.id, ev.n, 0};
    switch (ev.type) {
    case HP_MUX_EV_DATA: {
      int w;
      FUZZ_CHECK(ev.n >= 1 && ev.n <= HP_MUX_FRAME_MAX);
      out[nev].sum = sum(ev.p, ev.n);
      w = hp__mux_consumed(m, ev.id, ev.n, ctl);
      FUZZ_CHECK(w == 0 || w == HP_MUX_HDR + 4);
      break;
    }
    case HP_MUX_EV_RST:
      FUZZ_CHECK(ev.n <= HP_MUX_REASON_MAX);
      out[nev].sum = sum(ev.p, ev.n);
      FUZZ_CHECK(hp__mux_state(m, ev.id) == HP_MUX_S_FREE);
      break;
    case HP_MUX_EV_REFUSED:
      FUZZ_CHECK(hp__mux_count(m) == max);
      FUZZ_CHECK(hp__mux_rst_frame(ev.id, HP_MUX_RST_TOO_MANY, "too many", ctl) > 0);
      break;
    case HP_MUX_EV_OPEN:
      FUZZ_CHECK(hp__mux_state(m, ev.id) == HP_MUX_S_OPEN);
      FUZZ_CHECK((ev.id & 1u) == (initiator ? 0u : 1u));
      break;
    case HP_MUX_EV_FIN:
      FUZZ_CHECK(hp__mux_state(m, ev.id) == (ev.closed ? HP_MUX_S_FREE : HP_MUX_S_REMOTE_FIN));
      break;
    case HP_MUX_EV_WINDOW:
    case HP_MUX_EV_NONE:
      break;
    }
    nev++;
  }
  hp__mux_free(m);
  return nev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static rec a[EV_MAX], b[EV_MAX];
  int initiator, fa, fb;
  unsigned max;
  size_t chunk, na, nb;

  if (size < 1)
    return 0;
  initiator = data[0] & 1;
  max = 1 + ((data[0] >> 1) & 7);
  chunk = data[0] >> 4;
  data++;
  size--;
  na = run(initiator, max, chunk, data, size, a, &fa);
  nb = run(initiator, max, 1, data, size, b, &fb);
  FUZZ_CHECK(na == nb && fa == fb);
  for (size_t i = 0; i < na; i++)
    FUZZ_CHECK(a[i].type == b[i].type && a[i].id == b[i].id && a[i].n == b[i].n &&
               a[i].code == b[i].code && a[i].closed == b[i].closed && a[i].sum == b[i].sum);
  return 0;
}
