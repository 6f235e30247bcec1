/* test_mux.c - the stream multiplexer: framing, stream ids, half-close, RST,
 * limits, and the per-stream window (flow control). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mux.h"

/* Decode all of buf[0..n) into m, expecting exactly the events of types
 * want[0..nwant) (NONE events, i.e. partial or ignored frames, skipped). */
static void decode_all(hp__mux *m, const uint8_t *buf, size_t n, hp__mux_ev *evs, size_t maxev,
                       size_t *nev) {
  size_t off = 0;

  *nev = 0;
  while (off < n) {
    hp__mux_ev ev;
    long r = hp__mux_decode(m, buf + off, n - off, &ev);
    assert_true(r >= 0);
    off += (size_t)r;
    if (ev.type != HP_MUX_EV_NONE) {
      assert_true(*nev < maxev);
      evs[(*nev)++] = ev;
    } else {
      assert_true(r > 0);
    }
  }
}

static long decode1(hp__mux *m, const uint8_t *buf, size_t n, hp__mux_ev *ev) {
  return hp__mux_decode(m, buf, n, ev);
}

static void test_open_data_fin(void **state) {
  hp__mux *a = hp__mux_new(1, 0), *b = hp__mux_new(0, 0);
  uint8_t f[HP_MUX_HDR + 16], ctl[HP_MUX_CTL_MAX];
  hp__mux_ev ev;
  uint32_t id, id2;
  int x = 7;
  (void)state;

  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(hp__mux_open(a, &x, &id, f), 0);
  assert_int_equal(id, 1);
  assert_memory_equal(f, "\x01\x00\x00\x00\x00\x00\x00\x01", 8);
  assert_int_equal(decode1(b, f, 8, &ev), 8);
  assert_int_equal(ev.type, HP_MUX_EV_OPEN);
  assert_int_equal(ev.id, 1);
  assert_ptr_equal(hp__mux_ud(a, 1), &x);
  assert_int_equal(hp__mux_count(b), 1);

  /* The responder's ids are even. */
  assert_int_equal(hp__mux_open(b, NULL, &id2, ctl), 0);
  assert_int_equal(id2, 2);
  assert_int_equal(decode1(a, ctl, 8, &ev), 8);
  assert_int_equal(ev.type, HP_MUX_EV_OPEN);
  assert_int_equal(ev.id, 2);

  /* DATA: header + payload, decoded in place. */
  assert_int_equal(hp__mux_data(a, 1, 5, f), 0);
  memcpy(f + HP_MUX_HDR, "hello", 5);
  assert_memory_equal(f, "\x02\x00\x00\x05\x00\x00\x00\x01", 8);
  assert_int_equal(decode1(b, f, 13, &ev), 13);
  assert_int_equal(ev.type, HP_MUX_EV_DATA);
  assert_int_equal(ev.n, 5);
  assert_memory_equal(ev.p, "hello", 5);

  /* Half-close a -> b; b can still send, a receives. */
  assert_int_equal(hp__mux_fin(a, 1, f), 0);
  assert_int_equal(hp__mux_state(a, 1), HP_MUX_S_LOCAL_FIN);
  assert_int_equal(hp__mux_credit(a, 1), 0);
  assert_int_equal(hp__mux_data(a, 1, 1, f + 8), -EINVAL);
  assert_int_equal(decode1(b, f, 8, &ev), 8);
  assert_int_equal(ev.type, HP_MUX_EV_FIN);
  assert_int_equal(ev.closed, 0);
  assert_int_equal(hp__mux_state(b, 1), HP_MUX_S_REMOTE_FIN);
  assert_int_equal(hp__mux_data(b, 1, 3, f), 0);
  memcpy(f + 8, "abc", 3);
  assert_int_equal(decode1(a, f, 11, &ev), 11);
  assert_int_equal(ev.type, HP_MUX_EV_DATA);
  assert_ptr_equal(ev.ud, &x);
  /* b finishes too: the stream is gone on both sides. */
  assert_int_equal(hp__mux_fin(b, 1, f), 1);
  assert_int_equal(hp__mux_state(b, 1), HP_MUX_S_FREE);
  assert_int_equal(decode1(a, f, 8, &ev), 8);
  assert_int_equal(ev.type, HP_MUX_EV_FIN);
  assert_int_equal(ev.closed, 1);
  assert_int_equal(hp__mux_count(a), 1); /* stream 2 */
  assert_int_equal(hp__mux_count(b), 1);
  hp__mux_free(a);
  hp__mux_free(b);
}

/* A frame cut anywhere decodes the same as whole. */
static void test_byte_by_byte(void **state) {
  hp__mux *a = hp__mux_new(1, 0), *b = hp__mux_new(0, 0);
  uint8_t buf[4096];
  size_t n = 0, k = 0;
  hp__mux_ev evs[8];
  uint32_t id;
  (void)state;

  assert_int_equal(hp__mux_open(a, NULL, &id, buf), 0);
  n += 8;
  assert_int_equal(hp__mux_data(a, id, 1000, buf + n), 0);
  memset(buf + n + 8, 'x', 1000);
  n += 1008;
  n += (size_t)hp__mux_rst(a, id, HP_MUX_RST_ABORTED, "gone", buf + n);
  for (size_t i = 0; i < n; i++) {
    hp__mux_ev ev;
    assert_int_equal(decode1(b, buf + i, 1, &ev), 1);
    if (ev.type != HP_MUX_EV_NONE)
      evs[k++] = ev;
  }
  assert_int_equal(k, 3);
  assert_int_equal(evs[0].type, HP_MUX_EV_OPEN);
  assert_int_equal(evs[1].type, HP_MUX_EV_DATA);
  assert_int_equal(evs[1].n, 1000);
  assert_int_equal(evs[2].type, HP_MUX_EV_RST);
  assert_int_equal(evs[2].code, HP_MUX_RST_ABORTED);
  assert_int_equal(evs[2].n, 4);
  assert_memory_equal(evs[2].p, "gone", 4);
  assert_int_equal(hp__mux_count(b), 0);
  hp__mux_free(a);
  hp__mux_free(b);
}

/* The window: the sender gets HP_MUX_WINDOW_INIT of credit, no more; the
 * receiver returns credit as its application consumes. */
static void test_window(void **state) {
  hp__mux *a = hp__mux_new(1, 0), *b = hp__mux_new(0, 0);
  uint8_t *big = calloc(1, HP_MUX_HDR + HP_MUX_FRAME_MAX), f[HP_MUX_HDR + 4];
  size_t sent = 0, got = 0;
  hp__mux_ev ev;
  uint32_t id;
  int r;
  (void)state;

  assert_non_null(big);
  assert_int_equal(hp__mux_open(a, NULL, &id, f), 0);
  assert_int_equal(decode1(b, f, 8, &ev), 8);
  while (hp__mux_credit(a, id) > 0) {
    size_t c = hp__mux_credit(a, id);
    assert_true(c <= HP_MUX_FRAME_MAX);
    assert_int_equal(hp__mux_data(a, id, c, big), 0);
    assert_int_equal(decode1(b, big, HP_MUX_HDR + c, &ev), (long)(HP_MUX_HDR + c));
    assert_int_equal(ev.type, HP_MUX_EV_DATA);
    sent += c;
  }
  assert_int_equal(sent, HP_MUX_WINDOW_INIT);
  assert_int_equal(hp__mux_data(a, id, 1, big), -EINVAL);
  /* Consuming less than a quarter returns nothing yet. */
  assert_int_equal(hp__mux_consumed(b, id, HP_MUX_WINDOW_INIT / 4 - 1, f), 0);
  got += HP_MUX_WINDOW_INIT / 4 - 1;
  r = hp__mux_consumed(b, id, 1, f);
  got += 1;
  assert_int_equal(r, HP_MUX_HDR + 4);
  assert_int_equal(f[0], HP_MUX_WINDOW);
  assert_int_equal(decode1(a, f, (size_t)r, &ev), r);
  assert_int_equal(ev.type, HP_MUX_EV_WINDOW);
  assert_int_equal(hp__mux_credit(a, id), HP_MUX_FRAME_MAX);
  /* More than was received is the caller's bug. */
  assert_int_equal(hp__mux_consumed(b, id, HP_MUX_WINDOW_INIT - got + 1, f), -EINVAL);
  /* A sender that ignores the window is a protocol error at the receiver. */
  {
    hp__mux *c = hp__mux_new(0, 0);
    uint8_t o[HP_MUX_HDR];
    assert_int_equal(decode1(c, (const uint8_t *)"\x01\x00\x00\x00\x00\x00\x00\x01", 8, &ev), 8);
    memset(big, 0, HP_MUX_HDR + HP_MUX_FRAME_MAX);
    big[0] = HP_MUX_DATA;
    big[2] = HP_MUX_FRAME_MAX >> 8;
    big[3] = HP_MUX_FRAME_MAX & 0xff;
    big[7] = 1;
    for (unsigned i = 0; i < HP_MUX_WINDOW_INIT / HP_MUX_FRAME_MAX; i++)
      assert_int_equal(decode1(c, big, HP_MUX_HDR + HP_MUX_FRAME_MAX, &ev),
                       HP_MUX_HDR + HP_MUX_FRAME_MAX);
    assert_int_equal(decode1(c, big, HP_MUX_HDR + HP_MUX_FRAME_MAX, &ev), -EPROTO);
    assert_non_null(strstr(hp__mux_error(c), "beyond its window"));
    /* Every later call fails too. */
    assert_int_equal(decode1(c, f, 8, &ev), -EPROTO);
    assert_int_equal(hp__mux_open(c, NULL, &id, o), -EPROTO);
    hp__mux_free(c);
  }
  free(big);
  hp__mux_free(a);
  hp__mux_free(b);
}

static void test_limits_and_ids(void **state) {
  hp__mux *a = hp__mux_new(1, 2), *b = hp__mux_new(0, 2);
  uint8_t f[HP_MUX_CTL_MAX];
  hp__mux_ev ev;
  uint32_t id;
  (void)state;

  assert_null(hp__mux_new(1, HP_MUX_STREAMS_LIMIT + 1));
  assert_int_equal(hp__mux_open(a, NULL, &id, f), 0);
  assert_int_equal(decode1(b, f, 8, &ev), 8);
  assert_int_equal(hp__mux_open(a, NULL, &id, f), 0);
  assert_int_equal(decode1(b, f, 8, &ev), 8);
  assert_int_equal(hp__mux_open(a, NULL, &id, f), -EAGAIN);
  /* b at its limit refuses a third stream the peer opens (a bigger peer). */
  {
    hp__mux *big = hp__mux_new(1, 8);
    hp__mux_ev evs[4];
    size_t nev;
    uint8_t o[3 * HP_MUX_HDR];
    hp__mux *b2 = hp__mux_new(0, 2);
    for (int i = 0; i < 3; i++)
      assert_int_equal(hp__mux_open(big, NULL, &id, o + i * HP_MUX_HDR), 0);
    decode_all(b2, o, sizeof o, evs, 4, &nev);
    assert_int_equal(nev, 3);
    assert_int_equal(evs[2].type, HP_MUX_EV_REFUSED);
    assert_int_equal(evs[2].id, 5);
    assert_int_equal(hp__mux_count(b2), 2);
    /* Frames for the refused stream, already in flight, are ignored. */
    assert_int_equal(hp__mux_data(big, 5, 3, o), 0);
    memcpy(o + 8, "abc", 3);
    assert_int_equal(decode1(b2, o, 11, &ev), 11);
    assert_int_equal(ev.type, HP_MUX_EV_NONE);
    {
      uint8_t r[HP_MUX_CTL_MAX];
      assert_int_equal(hp__mux_rst_frame(5, HP_MUX_RST_TOO_MANY, "too many streams", r), 25);
    }
    hp__mux_free(big);
    hp__mux_free(b2);
  }
  /* Protocol errors, each on a fresh decoder. */
  {
    static const struct {
      const char *frame;
      size_t len;
      const char *why;
    } bad[] = {
        {"\x01\x00\x00\x00\x00\x00\x00\x02", 8, "of our parity"},
        {"\x02\x00\x00\x01\x00\x00\x00\x07", 9, "never opened"},
        {"\x09\x00\x00\x00\x00\x00\x00\x01", 8, "unknown type"},
        {"\x01\x01\x00\x00\x00\x00\x00\x01", 8, "flags"},
        {"\x01\x00\x00\x00\x00\x00\x00\x00", 8, "stream id 0"},
        {"\x01\x00\x00\x00\x80\x00\x00\x01", 8, "stream id"},
        {"\x01\x00\x00\x01\x00\x00\x00\x01", 8, "payload of 1"},
        {"\x02\x00\x00\x00\x00\x00\x00\x01", 8, "payload of 0"},
        {"\x02\x00\x40\x01\x00\x00\x00\x01", 8, "at most 16384"},
        {"\x03\x00\x00\x03\x00\x00\x00\x01", 8, "payload of 3"},
        {"\x05\x00\x00\x00\x00\x00\x00\x01", 8, "payload of 0"},
        {"\x05\x00\x00\xca\x00\x00\x00\x01", 8, "payload of 202"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      hp__mux *c = hp__mux_new(0, 0);
      assert_int_equal(decode1(c, (const uint8_t *)bad[i].frame, bad[i].len, &ev), -EPROTO);
      if (!strstr(hp__mux_error(c), bad[i].why))
        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, hp__mux_error(c), bad[i].why);
      hp__mux_free(c);
    }
  }
  /* Ids must increase; DATA after FIN, a second FIN, a window overflow. */
  {
    static const char *const seqs[][3] = {
        {"\x01\x00\x00\x00\x00\x00\x00\x03", "\x01\x00\x00\x00\x00\x00\x00\x01", "must increase"},
        {"\x01\x00\x00\x00\x00\x00\x00\x01", "\x04\x00\x00\x00\x00\x00\x00\x01", NULL},
    };
    hp__mux *c = hp__mux_new(0, 0);
    assert_int_equal(decode1(c, (const uint8_t *)seqs[0][0], 8, &ev), 8);
    assert_int_equal(decode1(c, (const uint8_t *)seqs[0][1], 8, &ev), -EPROTO);
    assert_non_null(strstr(hp__mux_error(c), seqs[0][2]));
    hp__mux_free(c);
    c = hp__mux_new(0, 0);
    assert_int_equal(decode1(c, (const uint8_t *)seqs[1][0], 8, &ev), 8);
    assert_int_equal(decode1(c, (const uint8_t *)seqs[1][1], 8, &ev), 8);
    assert_int_equal(ev.type, HP_MUX_EV_FIN);
    assert_int_equal(decode1(c, (const uint8_t *)"\x02\x00\x00\x01\x00\x00\x00\x01x", 9, &ev),
                     -EPROTO);
    assert_non_null(strstr(hp__mux_error(c), "after its FIN"));
    hp__mux_free(c);
    c = hp__mux_new(0, 0);
    assert_int_equal(decode1(c, (const uint8_t *)seqs[1][0], 8, &ev), 8);
    assert_int_equal(
        decode1(c, (const uint8_t *)"\x03\x00\x00\x04\x00\x00\x00\x01\x40\x00\x00\x00", 12, &ev),
        -EPROTO);
    assert_non_null(strstr(hp__mux_error(c), "window increment"));
    hp__mux_free(c);
  }
  hp__mux_free(a);
  hp__mux_free(b);
}

/* RST from either side: the stream is gone; frames that crossed it are
 * ignored, not errors. */
static void test_rst_crossing(void **state) {
  hp__mux *a = hp__mux_new(1, 0), *b = hp__mux_new(0, 0);
  uint8_t f[HP_MUX_CTL_MAX], d[HP_MUX_HDR + 4];
  hp__mux_ev ev;
  uint32_t id;
  int n;
  (void)state;

  assert_int_equal(hp__mux_open(a, NULL, &id, f), 0);
  assert_int_equal(decode1(b, f, 8, &ev), 8);
  /* a sends data, b resets at the same time. */
  assert_int_equal(hp__mux_data(a, id, 4, d), 0);
  memcpy(d + 8, "data", 4);
  n = hp__mux_rst(b, id, HP_MUX_RST_REFUSED, "connection refused by 127.0.0.1:9", f);
  assert_true(n > 9);
  {
    uint8_t g[HP_MUX_CTL_MAX];
    assert_int_equal(hp__mux_rst(b, id, 0, NULL, g), -EINVAL);
  }
  assert_int_equal(decode1(b, d, 12, &ev), 12);
  assert_int_equal(ev.type, HP_MUX_EV_NONE);
  assert_int_equal(decode1(a, f, (size_t)n, &ev), n);
  assert_int_equal(ev.type, HP_MUX_EV_RST);
  assert_int_equal(ev.code, HP_MUX_RST_REFUSED);
  assert_int_equal(hp__mux_count(a), 0);
  assert_int_equal(hp__mux_consumed(a, id, 0, d), 0);
  /* A long reason is cut at HP_MUX_REASON_MAX. */
  {
    char lng[400];
    memset(lng, 'r', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    assert_int_equal(hp__mux_rst_frame(9, 0, lng, f), HP_MUX_CTL_MAX);
  }
  hp__mux_free(a);
  hp__mux_free(b);
}

static void count_cb(hp__mux *m, uint32_t id, void *ud, void *arg) {
  uint8_t f[HP_MUX_CTL_MAX];
  (void)ud;
  (*(int *)arg)++;
  assert_true(hp__mux_rst(m, id, HP_MUX_RST_SHUTDOWN, "stopping", f) > 0);
}

static void test_foreach(void **state) {
  hp__mux *a = hp__mux_new(1, 0);
  uint8_t f[HP_MUX_HDR];
  uint32_t id;
  int n = 0;
  (void)state;

  for (int i = 0; i < 5; i++)
    assert_int_equal(hp__mux_open(a, NULL, &id, f), 0);
  assert_int_equal(id, 9);
  hp__mux_foreach(a, count_cb, &n);
  assert_int_equal(n, 5);
  assert_int_equal(hp__mux_count(a), 0);
  hp__mux_free(a);
  hp__mux_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_data_fin), cmocka_unit_test(test_byte_by_byte),
      cmocka_unit_test(test_window),        cmocka_unit_test(test_limits_and_ids),
      cmocka_unit_test(test_rst_crossing),  cmocka_unit_test(test_foreach),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
