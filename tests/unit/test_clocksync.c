/* test_clocksync.c - clock ping payloads, the rendezvous' offset estimate
 * from per-direction minima, and the start times of a pair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "clocksync.h"
#include "wire.h"

static void test_payloads(void **state) {
  uint8_t b[HP_CS_REPORT_MAX];
  uint64_t t0[3] = {1000, 2000, 3000}, t2[3] = {1500, 0, 3400};
  hp__cs_ping p;
  (void)state;

  assert_int_equal(hp__cs_encode_sample(b, 0x0102030405060708ULL), HP_CS_SAMPLE_LEN);
  assert_int_equal(hp__cs_decode(b, HP_CS_SAMPLE_LEN, &p), 0);
  assert_int_equal(p.kind, HP_CS_SAMPLE);
  assert_true(p.t0 == 0x0102030405060708ULL);
  assert_int_equal(hp__cs_decode(b, HP_CS_SAMPLE_LEN + 1, &p), -1); /* wrong length */
  assert_int_equal(hp__cs_encode_rdvping(b, 77), HP_CS_RDVPING_LEN);
  assert_int_equal(hp__cs_decode(b, HP_CS_RDVPING_LEN, &p), 0);
  assert_int_equal(p.kind, HP_CS_RDVPING);
  assert_int_equal(hp__cs_encode_report(b, t0, t2, 3), HP_CS_REPORT_HDR + 12);
  assert_int_equal(hp__cs_decode(b, HP_CS_REPORT_HDR + 12, &p), 0);
  assert_int_equal(p.kind, HP_CS_REPORT);
  assert_int_equal(p.n, 3);
  assert_int_equal(p.rtt[0], 500);
  assert_int_equal(p.rtt[1], 0); /* no pong */
  assert_int_equal(p.rtt[2], 400);
  assert_int_equal(hp__cs_decode(b, HP_CS_REPORT_HDR + 8, &p), -1); /* n says 3 */
  assert_int_equal(hp__cs_encode_report(b, t0, t2, 0), 0);
  assert_int_equal(hp__cs_encode_report(b, t0, t2, HP_CS_RING + 1), 0);
  /* Other pings (empty, anybody's payload) are not ours. */
  assert_int_equal(hp__cs_decode(b, 0, &p), -1);
  assert_int_equal(hp__cs_decode((const uint8_t *)"HPck?xxxxxxxx", 13, &p), -1);
  assert_int_equal(hp__cs_decode((const uint8_t *)"hello, world!", 13, &p), -1);
}

/* Worker clock = rdv clock - 7000 µs; up 40 ms + jitter, down 40 ms + jitter. */
static void test_offset(void **state) {
  hp__cs_clock c;
  uint64_t t0[5], t2[5];
  const uint64_t up_j[5] = {9000, 300, 12000, 5000, 20000};
  const uint64_t down_j[5] = {1000, 25000, 700, 8000, 3000};
  uint8_t b[HP_CS_REPORT_MAX];
  hp__cs_ping p;
  (void)state;

  memset(&c, 0, sizeof c);
  for (int i = 0; i < 5; i++) {
    uint64_t t1;
    t0[i] = 1000000 + 20000 * (uint64_t)i;
    t1 = t0[i] + 7000 + 40000 + up_j[i];
    t2[i] = t1 - 7000 + 40000 + down_j[i];
    hp__cs_clock_sample(&c, t0[i], t1);
  }
  hp__cs_encode_report(b, t0, t2, 5);
  assert_int_equal(hp__cs_decode(b, HP_CS_REPORT_HDR + 20, &p), 0);
  assert_int_equal(hp__cs_clock_report(&c, &p), 0);
  assert_true(c.have);
  /* min up jitter 300, min down jitter 700: error (300 - 700) / 2 = -200,
   * where the smallest round trip alone (sample 0: 10000 of jitter) would
   * err by 4000. */
  assert_int_equal((int)c.offset_us, 7000 - 200);
  assert_int_equal((int)c.rtt_us, 80000 + 10000);
  assert_int_equal((int)c.rtt_max_us, 80000 + 25300);
  /* A report about samples we never saw is refused. */
  t0[0] = 42;
  hp__cs_encode_report(b, t0, t2, 1);
  assert_int_equal(hp__cs_decode(b, HP_CS_REPORT_HDR + 4, &p), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(hp__cs_clock_report(&c, &p), -1);
  assert_false(c.have);
}

static void test_plan(void **state) {
  hp__cs_rtt ra = {0}, rb = {0};
  hp__cs_clock ca, cb;
  hp__cs_side a = {&ra, NULL}, b = {&rb, NULL};
  hp__cs_start sa, sb;
  uint64_t w;
  (void)state;

  /* Nothing measured: 0 for both, as version 1 always sent. */
  assert_true(hp__cs_plan(&a, &b, 1000000, &sa, &sb) == 0);
  assert_int_equal(sa.start_in_ms, 0);
  assert_int_equal(sb.start_in_ms, 0);
  assert_true(sa.start_at_us == 0 && sb.start_at_us == 0);

  /* Round trips only: the nearer worker waits half the difference. */
  hp__cs_rtt_add(&ra, 100000);
  hp__cs_rtt_add(&ra, 120000);
  hp__cs_rtt_add(&rb, 20000);
  assert_int_equal(ra.min_us, 100000);
  assert_int_equal(ra.max_us, 120000);
  assert_true(hp__cs_plan(&a, &b, 1000000, &sa, &sb) == 0);
  assert_int_equal(sa.start_in_ms, 0);
  assert_int_equal(sb.start_in_ms, 40);
  assert_true(sa.start_at_us == 0 && sb.start_at_us == 0);

  /* Both clocks: one instant, on each worker's own clock. */
  memset(&ca, 0, sizeof ca);
  memset(&cb, 0, sizeof cb);
  ca.have = cb.have = 1;
  ca.offset_us = 5000;   /* rdv = worker a + 5 ms */
  cb.offset_us = -30000; /* rdv = worker b - 30 ms */
  ca.rtt_us = 90000, ca.rtt_max_us = 140000;
  cb.rtt_us = 20000, cb.rtt_max_us = 22000;
  a.clock = &ca;
  b.clock = &cb;
  w = hp__cs_plan(&a, &b, 1000000, &sa, &sb);
  /* a: 140000 - 90000 / 2 = 95000 > b: 22000 - 10000; + 5 ms margin */
  assert_true(w == 95000 + HP_CS_MARGIN_US);
  assert_true(sa.start_at_us == 1000000 + w - 5000);
  assert_true(sb.start_at_us == 1000000 + w + 30000);
  assert_int_equal(sa.start_in_ms, 55); /* 100 ms - 90 / 2 */
  assert_int_equal(sb.start_in_ms, 90); /* 100 ms - 20 / 2 */

  /* Only one clock known: relative for both (an old worker reads only
   * start_in_ms, so the other must not use an instant it does not share). */
  b.clock = NULL;
  assert_true(hp__cs_plan(&a, &b, 1000000, &sa, &sb) == 0);
  assert_true(sa.start_at_us == 0 && sb.start_at_us == 0);

  /* A huge round trip is bounded by HP_CS_WAIT_MAX_US. */
  b.clock = &cb;
  ca.rtt_max_us = 9000000;
  w = hp__cs_plan(&a, &b, 1000000, &sa, &sb);
  assert_true(w == HP_CS_WAIT_MAX_US);
  assert_true(sa.start_in_ms <= HP_START_IN_MS_MAX);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_payloads),
      cmocka_unit_test(test_offset),
      cmocka_unit_test(test_plan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
