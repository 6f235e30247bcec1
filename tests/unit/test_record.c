/* test_record.c - the secure channel's records (src/core/record.h): round
 * trip in one piece and byte by byte, the FINAL record (half-close), and each
 * attack: tampered (every byte of a record), replayed, reordered, dropped,
 * truncated (no FINAL), a bad length, bytes after FINAL, another key. A bad
 * record never yields plaintext. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "record.h"

static const uint8_t key[32] = {9, 8, 7};

typedef struct wire {
  uint8_t b[8 * HP_REC_MAX_WIRE];
  size_t len;
  size_t rec_off[8], rec_len[8]; /* records after the header */
  int nrec;
} wire;

/* Header, then "one", a maximal record, "three", FINAL("end"). */
static void make(wire *w) {
  static uint8_t big[HP_REC_MAX_PLAIN];
  hp__rec_tx t;
  const char *msgs[] = {"one", NULL, "three", "end"};
  int i, n;

  memset(big, 'B', sizeof big);
  memset(w, 0, sizeof *w);
  hp__rec_tx_init(&t, key, w->b);
  w->len = HP_REC_HEADER_LEN;
  for (i = 0; i < 4; i++) {
    const uint8_t *p = msgs[i] ? (const uint8_t *)msgs[i] : big;
    size_t pl = msgs[i] ? strlen(msgs[i]) : sizeof big;
    n = hp__rec_seal(&t, p, pl, i == 3, w->b + w->len, sizeof w->b - w->len);
    assert_int_equal(n, (int)(pl + HP_REC_OVERHEAD));
    w->rec_off[w->nrec] = w->len;
    w->rec_len[w->nrec++] = (size_t)n;
    w->len += (size_t)n;
  }
  assert_int_equal(hp__rec_seal(&t, (const uint8_t *)"x", 1, 0, w->b, sizeof w->b), -EPIPE);
  hp__rec_tx_wipe(&t);
}

typedef struct got {
  uint8_t out[4 * HP_REC_MAX_PLAIN];
  size_t len;
  int records, final, err;
  const char *why;
} got;

/* Feed in chunks of `step`; stop at the first error. */
static void consume(hp__rec_rx *r, const uint8_t *in, size_t len, size_t step, got *g) {
  static uint8_t pt[HP_REC_MAX_PLAIN];
  size_t off = 0;

  while (off < len && g->err == 0) {
    size_t chunk = len - off < step ? len - off : step, used = 0;
    while (chunk > 0) {
      size_t c, ol;
      int fin, res = hp__rec_open(r, in + off, chunk, &c, pt, &ol, &fin, &g->why);
      assert_true(c <= chunk);
      if (res < 0) {
        assert_int_equal(ol, 0);
        g->err = res;
        return;
      }
      if (res == 1) {
        memcpy(g->out + g->len, pt, ol);
        g->len += ol;
        g->records++;
        g->final |= fin;
      } else {
        assert_int_equal(c, chunk);
      }
      off += c, chunk -= c, used += c;
      if (res == 0)
        break;
    }
  }
}

static void test_round_trip(void **state) {
  wire w;
  hp__rec_rx r;
  got g;
  size_t steps[] = {1, 7, 100, 1u << 20}, i;
  (void)state;

  make(&w);
  for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    memset(&g, 0, sizeof g);
    hp__rec_rx_init(&r, key);
    consume(&r, w.b, w.len, steps[i], &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.records, 4);
    assert_int_equal(g.final, 1);
    assert_int_equal(g.len, 3 + HP_REC_MAX_PLAIN + 5 + 3);
    assert_memory_equal(g.out, "one", 3);
    assert_memory_equal(g.out + 3 + HP_REC_MAX_PLAIN, "threeend", 8);
    assert_int_equal(r.st, HP_REC_RX_FINAL);
  }
  /* Anything after FINAL is an error. */
  memset(&g, 0, sizeof g);
  consume(&r, (const uint8_t *)"z", 1, 1, &g);
  assert_int_equal(g.err, -EPROTO);
}

static void test_seal_limits(void **state) {
  hp__rec_tx t;
  uint8_t hdr[HP_REC_HEADER_LEN], out[HP_REC_MAX_WIRE + 1];
  static uint8_t big[HP_REC_MAX_PLAIN + 1];
  (void)state;
  hp__rec_tx_init(&t, key, hdr);
  assert_int_equal(hp__rec_seal(&t, big, sizeof big, 0, out, sizeof out), -EINVAL);
  assert_int_equal(hp__rec_seal(&t, big, 10, 0, out, 10 + HP_REC_OVERHEAD - 1), -ENOSPC);
  assert_int_equal(hp__rec_seal(&t, NULL, 0, 1, out, sizeof out), (int)HP_REC_OVERHEAD);
}

static void test_tamper_every_byte(void **state) {
  static wire w, bad;
  hp__rec_rx r;
  static got g;
  size_t i;
  (void)state;

  make(&w);
  /* Every byte of the header and of the first and third records. */
  for (i = 0; i < w.rec_off[1]; i++) {
    bad = w;
    bad.b[i] ^= 0x01;
    memset(&g, 0, sizeof g);
    hp__rec_rx_init(&r, key);
    consume(&r, bad.b, bad.len, 1u << 20, &g);
    assert_true(g.err == -EBADMSG);
    assert_int_equal(g.len, 0); /* nothing of a bad record */
    assert_int_equal(r.st, HP_REC_RX_FAILED);
  }
  for (i = w.rec_off[2]; i < w.rec_off[2] + w.rec_len[2]; i++) {
    bad = w;
    bad.b[i] ^= 0x80;
    memset(&g, 0, sizeof g);
    hp__rec_rx_init(&r, key);
    consume(&r, bad.b, bad.len, 1u << 20, &g);
    /* A changed length is impossible, frames the wrong bytes, or asks for
     * more bytes than the stream has (the decoder waits: a truncation). */
    assert_true(g.err == -EBADMSG ||
                (g.err == 0 && i == w.rec_off[2] + 1 && r.st == HP_REC_RX_OPEN));
    assert_int_equal(g.final, 0);
    assert_int_equal(g.records, 2);
    assert_int_equal(g.len, 3 + HP_REC_MAX_PLAIN);
    assert_non_null(g.why);
  }
}

/* Build a stream from the header and the records in `order`. */
static size_t splice(const wire *w, const int *order, int n, uint8_t *out) {
  size_t len = HP_REC_HEADER_LEN;
  int i;
  memcpy(out, w->b, HP_REC_HEADER_LEN);
  for (i = 0; i < n; i++) {
    memcpy(out + len, w->b + w->rec_off[order[i]], w->rec_len[order[i]]);
    len += w->rec_len[order[i]];
  }
  return len;
}

static void test_replay_reorder_drop_truncate(void **state) {
  static wire w;
  static uint8_t s[sizeof w.b * 2];
  static got g;
  hp__rec_rx r;
  const int replay[] = {0, 0, 1}, reorder[] = {1, 0}, drop[] = {0, 2, 3}, cut[] = {0, 1, 2};
  size_t n;
  (void)state;

  make(&w);
  n = splice(&w, replay, 3, s);
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, key);
  consume(&r, s, n, 5000, &g);
  assert_int_equal(g.err, -EBADMSG);
  assert_int_equal(g.records, 1); /* "one", then the replay fails */
  assert_non_null(strstr(g.why, "replayed"));

  n = splice(&w, reorder, 2, s);
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, key);
  consume(&r, s, n, 5000, &g);
  assert_int_equal(g.err, -EBADMSG);
  assert_int_equal(g.records, 0);

  n = splice(&w, drop, 3, s);
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, key);
  consume(&r, s, n, 5000, &g);
  assert_int_equal(g.err, -EBADMSG);
  assert_int_equal(g.records, 1);

  /* Truncation: without the FINAL record the stream never reports its end
   * (the channel treats the carrier's EOF then as an error); cut inside a
   * record the decoder waits for the rest. */
  n = splice(&w, cut, 3, s);
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, key);
  consume(&r, s, n - 1, 5000, &g);
  assert_int_equal(g.err, 0);
  assert_int_equal(g.records, 2);
  assert_int_equal(g.final, 0);
  assert_int_equal(r.st, HP_REC_RX_OPEN);
}

static void test_bad_length_and_key(void **state) {
  static wire w;
  static got g;
  hp__rec_rx r;
  uint8_t hdr_and_len[HP_REC_HEADER_LEN + 2];
  static const uint8_t other[32] = {1};
  (void)state;

  make(&w);
  /* A length below the tag size, and one above the maximum: refused at
   * the length, before any body byte. */
  memcpy(hdr_and_len, w.b, HP_REC_HEADER_LEN);
  hdr_and_len[HP_REC_HEADER_LEN] = 0, hdr_and_len[HP_REC_HEADER_LEN + 1] = 16;
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, key);
  consume(&r, hdr_and_len, sizeof hdr_and_len, 1, &g);
  assert_int_equal(g.err, -EBADMSG);
  assert_non_null(strstr(g.why, "length"));
  hdr_and_len[HP_REC_HEADER_LEN] = 0xff, hdr_and_len[HP_REC_HEADER_LEN + 1] = 0xff;
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, key);
  consume(&r, hdr_and_len, sizeof hdr_and_len, 1, &g);
  assert_int_equal(g.err, -EBADMSG);
  /* Another key: the first record fails. */
  memset(&g, 0, sizeof g);
  hp__rec_rx_init(&r, other);
  consume(&r, w.b, w.len, 1u << 20, &g);
  assert_int_equal(g.err, -EBADMSG);
  assert_int_equal(g.len, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_seal_limits),
      cmocka_unit_test(test_tamper_every_byte),
      cmocka_unit_test(test_replay_reorder_drop_truncate),
      cmocka_unit_test(test_bad_length_and_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
