/*
 * test_relay_table.c - the relay's session table and limits
 * (src/rendezvous/relay_table.c), with a clock the test moves:
 *   - exactly the two workers of a pairing are joined, each once; unknown,
 *     expired, ended sessions and wrong ids are refused with their reason;
 *   - RELAY_MAX_SESSIONS counts open sessions; the second worker of an open
 *     session is never refused for it;
 *   - entries expire (registered, ended), the table's size is capped;
 *   - RELAY_MAX_BYTES (exactly the limit passes), RELAY_RATE (token bucket:
 *     throttle and the time to resume), the idle and join deadlines.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay_table.h"

#define S1 "0123456789abcdef0123456789abcdef"
#define S2 "fedcba9876543210fedcba9876543210"
#define S3 "00000000000000000000000000000001"

static int ends[8]; /* stand-ins for the caller's endpoints */

static hp__relay_table *table(uint64_t rate, uint64_t max_bytes, unsigned max_sessions,
                              size_t max_entries) {
  hp__relay_limits lim;
  hp__relay_table *t;

  memset(&lim, 0, sizeof(lim));
  lim.rate = rate;
  lim.max_bytes = max_bytes;
  lim.max_sessions = max_sessions;
  lim.ttl_ms = 10000;
  lim.idle_ms = 5000;
  lim.max_entries = max_entries;
  t = hp__relay_table_create(&lim, 42);
  assert_non_null(t);
  return t;
}

/* Join and expect success; returns the session, *side set. */
static hp__relay_sess *join_ok(hp__relay_table *t, const char *s, const char *id, void *end,
                               uint64_t now, int *side) {
  hp__relay_sess *out = NULL;
  hp__relay_refusal why = HP_RELAY_REFUSE_COUNT;

  assert_int_equal(hp__relay_table_join(t, s, id, end, now, &out, side, &why), 0);
  assert_non_null(out);
  return out;
}

static void join_refused(hp__relay_table *t, const char *s, const char *id, uint64_t now,
                         hp__relay_refusal expect) {
  hp__relay_sess *out = (hp__relay_sess *)1;
  hp__relay_refusal why = HP_RELAY_REFUSE_COUNT;
  int side = -1;

  assert_int_equal(hp__relay_table_join(t, s, id, &ends[7], now, &out, &side, &why), -1);
  assert_null(out);
  assert_int_equal(why, expect);
}

static void test_two_workers_once(void **state) {
  hp__relay_table *t = table(0, 0, 10, 100);
  hp__relay_sess *s, *s2;
  int side = -1, side2 = -1;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "alice", "bob", 0), 0);
  assert_int_equal(hp__relay_table_count(t), 1);
  assert_int_equal(hp__relay_table_open(t), 0);
  /* b joins first: side 1, the session is open and waits. */
  s = join_ok(t, S1, "bob", &ends[1], 100, &side);
  assert_int_equal(side, 1);
  assert_int_equal(s->state, HP_RELAY_OPEN);
  assert_ptr_equal(s->end[1], &ends[1]);
  assert_int_equal(hp__relay_table_open(t), 1);
  /* A third connection as bob, and strangers: refused, nothing changes. */
  join_refused(t, S1, "bob", 200, HP_RELAY_REFUSE_IN_USE);
  join_refused(t, S1, "mallory", 200, HP_RELAY_REFUSE_NOT_IN);
  join_refused(t, S2, "alice", 200, HP_RELAY_REFUSE_UNKNOWN);
  join_refused(t, "0123456789ABCDEF0123456789ABCDEF", "alice", 200, HP_RELAY_REFUSE_UNKNOWN);
  join_refused(t, "0123", "alice", 200, HP_RELAY_REFUSE_UNKNOWN);
  assert_int_equal(s->state, HP_RELAY_OPEN);
  /* a joins: both are there. */
  s2 = join_ok(t, S1, "alice", &ends[0], 300, &side2);
  assert_ptr_equal(s2, s);
  assert_int_equal(side2, 0);
  assert_int_equal(s->state, HP_RELAY_RELAYING);
  assert_int_equal(hp__relay_table_open(t), 1);
  join_refused(t, S1, "alice", 400, HP_RELAY_REFUSE_IN_USE);
  join_refused(t, S1, "bob", 400, HP_RELAY_REFUSE_IN_USE);
  /* One leaves: the session is still open (the other is being closed). */
  hp__relay_table_leave(t, s, 0, 500);
  assert_int_equal(hp__relay_table_open(t), 1);
  join_refused(t, S1, "bob", 500, HP_RELAY_REFUSE_IN_USE);
  hp__relay_table_leave(t, s, 1, 600);
  assert_int_equal(hp__relay_table_open(t), 0);
  /* Ended: neither can join again (a reused session), until it expires. */
  join_refused(t, S1, "alice", 700, HP_RELAY_REFUSE_USED);
  join_refused(t, S1, "bob", 700, HP_RELAY_REFUSE_USED);
  assert_int_equal(hp__relay_table_count(t), 1);
  assert_int_equal(hp__relay_table_expire(t, 10000), 1);
  assert_int_equal(hp__relay_table_count(t), 0);
  join_refused(t, S1, "alice", 10001, HP_RELAY_REFUSE_UNKNOWN);
  hp__relay_table_destroy(t);
}

static void test_register_checks(void **state) {
  hp__relay_table *t = table(0, 0, 10, 100);

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  assert_int_equal(hp__relay_table_register(t, S1, "c", "d", 0), -EEXIST);
  assert_int_equal(hp__relay_table_register(t, S2, "same", "same", 0), -EINVAL);
  assert_int_equal(hp__relay_table_register(t, S2, "a b", "c", 0), -EINVAL);
  assert_int_equal(hp__relay_table_register(t, "xyz", "a", "b", 0), -EINVAL);
  assert_int_equal(hp__relay_table_register(t, NULL, "a", "b", 0), -EINVAL);
  assert_int_equal(hp__relay_table_count(t), 1);
  hp__relay_table_destroy(t);
}

static void test_expiry(void **state) {
  hp__relay_table *t = table(0, 0, 10, 100);
  hp__relay_sess *s;
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  assert_int_equal(hp__relay_table_register(t, S2, "a", "b", 5000), 0);
  /* Nobody joined S1 within the ttl: gone. S2 is still there. */
  join_refused(t, S1, "a", 10000, HP_RELAY_REFUSE_UNKNOWN);
  assert_int_equal(hp__relay_table_count(t), 1);
  /* A joined session is held, not expired; its join deadline is the ttl. */
  s = join_ok(t, S2, "a", &ends[0], 10000, &side);
  assert_int_equal(hp__relay_deadline(t, s), 15000);
  assert_int_equal(hp__relay_table_expire(t, 20000), 0);
  assert_int_equal(hp__relay_table_count(t), 1);
  /* ... but past it the other worker cannot join any more. */
  join_refused(t, S2, "b", 15000, HP_RELAY_REFUSE_UNKNOWN);
  /* Leaving after the ttl frees the entry at once. */
  hp__relay_table_leave(t, s, 0, 20000);
  assert_int_equal(hp__relay_table_count(t), 0);
  assert_int_equal(hp__relay_table_open(t), 0);
  hp__relay_table_destroy(t);
}

static void test_max_sessions(void **state) {
  hp__relay_table *t = table(0, 0, 1, 100);
  hp__relay_sess *s;
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  assert_int_equal(hp__relay_table_register(t, S2, "c", "d", 0), 0);
  s = join_ok(t, S1, "a", &ends[0], 1, &side);
  /* A second session would be one too many... */
  join_refused(t, S2, "c", 2, HP_RELAY_REFUSE_FULL);
  /* ... but the other worker of the open one is admitted. */
  (void)join_ok(t, S1, "b", &ends[1], 3, &side);
  assert_int_equal(hp__relay_table_open(t), 1);
  hp__relay_table_leave(t, s, 0, 4);
  hp__relay_table_leave(t, s, 1, 4);
  /* Room again. The refused session was not used up by the refusal. */
  (void)join_ok(t, S2, "c", &ends[2], 5, &side);
  assert_int_equal(hp__relay_table_open(t), 1);
  hp__relay_table_destroy(t);
}

static void test_max_entries(void **state) {
  hp__relay_table *t = table(0, 0, 10, 2);
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  assert_int_equal(hp__relay_table_register(t, S2, "a", "b", 1), 0);
  /* Full: the oldest unjoined entry (S1) makes room. */
  assert_int_equal(hp__relay_table_register(t, S3, "a", "b", 2), 0);
  assert_int_equal(hp__relay_table_count(t), 2);
  join_refused(t, S1, "a", 3, HP_RELAY_REFUSE_UNKNOWN);
  /* Joined entries are never dropped: with both held, nothing can go. */
  (void)join_ok(t, S2, "a", &ends[0], 4, &side);
  (void)join_ok(t, S3, "a", &ends[1], 4, &side);
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 5), -ENOMEM);
  hp__relay_table_destroy(t);
}

static void test_many(void **state) {
  hp__relay_table *t = table(0, 0, 100000, 100000);
  char s[HP_SESSION_HEX + 1];
  int side;

  (void)state;
  for (int i = 0; i < 20000; i++) {
    snprintf(s, sizeof(s), "%032x", i * 7919);
    assert_int_equal(hp__relay_table_register(t, s, "a", "b", 0), 0);
  }
  assert_int_equal(hp__relay_table_count(t), 20000);
  for (int i = 0; i < 20000; i += 97) {
    snprintf(s, sizeof(s), "%032x", i * 7919);
    (void)join_ok(t, s, "b", &ends[0], 1, &side);
    assert_int_equal(side, 1);
  }
  snprintf(s, sizeof(s), "%032x", 1);
  join_refused(t, s, "a", 1, HP_RELAY_REFUSE_UNKNOWN);
  hp__relay_table_destroy(t);
}

static void test_max_bytes(void **state) {
  hp__relay_table *t = table(0, 1000, 10, 100);
  hp__relay_sess *s;
  uint64_t resume = 0;
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  (void)join_ok(t, S1, "a", &ends[0], 0, &side);
  s = join_ok(t, S1, "b", &ends[1], 0, &side);
  assert_int_equal(hp__relay_charge(t, s, 600, 10, &resume), HP_RELAY_PASS);
  assert_int_equal(hp__relay_charge(t, s, 400, 20, &resume), HP_RELAY_PASS); /* exactly 1000 */
  assert_int_equal(hp__relay_charge(t, s, 1, 30, &resume), HP_RELAY_OVER_BYTES);
  assert_int_equal(s->bytes, 1000);
  hp__relay_table_destroy(t);
}

static void test_rate(void **state) {
  /* 100,000 B/s: the bucket holds a quarter second, 25,000 bytes. */
  hp__relay_table *t = table(100000, 0, 10, 100);
  hp__relay_sess *s;
  uint64_t resume = 0;
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  (void)join_ok(t, S1, "a", &ends[0], 1000, &side);
  s = join_ok(t, S1, "b", &ends[1], 1000, &side);
  /* The bucket starts full at the join (25,000), and never holds more. */
  assert_int_equal(hp__relay_charge(t, s, 20000, 1200, &resume), HP_RELAY_PASS);
  /* 5,000 left: 10,000 more is 50 ms of debt. */
  assert_int_equal(hp__relay_charge(t, s, 10000, 1200, &resume), HP_RELAY_THROTTLE);
  assert_int_equal(resume, 1250);
  assert_int_equal(s->throttled_until_ms, 1250);
  /* Idle for long: the bucket fills to its cap only (25,000). */
  assert_int_equal(hp__relay_charge(t, s, 25000, 60000, &resume), HP_RELAY_PASS);
  assert_int_equal(hp__relay_charge(t, s, 1, 60000, &resume), HP_RELAY_THROTTLE);
  assert_int_equal(resume, 60001);
  /* The byte count and the idle clock follow every charge. */
  assert_int_equal(s->bytes, 55001);
  assert_int_equal(hp__relay_deadline(t, s), 60000 + 5000);
  hp__relay_table_destroy(t);
}

static void test_small_rate(void **state) {
  /* A tiny rate still moves a read's worth of bytes at once (16 KiB bucket). */
  hp__relay_table *t = table(10, 0, 10, 100);
  hp__relay_sess *s;
  uint64_t resume = 0;
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  (void)join_ok(t, S1, "a", &ends[0], 0, &side);
  s = join_ok(t, S1, "b", &ends[1], 0, &side);
  assert_int_equal(hp__relay_charge(t, s, 16384, 1000, &resume), HP_RELAY_PASS);
  assert_int_equal(hp__relay_charge(t, s, 10, 1000, &resume), HP_RELAY_THROTTLE);
  assert_int_equal(resume, 2000);
  hp__relay_table_destroy(t);
}

static void test_idle_deadline(void **state) {
  hp__relay_table *t = table(0, 0, 10, 100);
  hp__relay_sess *s;
  uint64_t resume;
  int side;

  (void)state;
  assert_int_equal(hp__relay_table_register(t, S1, "a", "b", 0), 0);
  s = join_ok(t, S1, "a", &ends[0], 100, &side);
  assert_int_equal(hp__relay_deadline(t, s), 10000); /* waiting: the join deadline */
  (void)join_ok(t, S1, "b", &ends[1], 2000, &side);
  assert_int_equal(hp__relay_deadline(t, s), 7000); /* relaying: idle from the join */
  assert_int_equal(hp__relay_charge(t, s, 5, 3000, &resume), HP_RELAY_PASS);
  assert_int_equal(hp__relay_deadline(t, s), 8000);
  hp__relay_table_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_workers_once), cmocka_unit_test(test_register_checks),
      cmocka_unit_test(test_expiry),           cmocka_unit_test(test_max_sessions),
      cmocka_unit_test(test_max_entries),      cmocka_unit_test(test_many),
      cmocka_unit_test(test_max_bytes),        cmocka_unit_test(test_rate),
      cmocka_unit_test(test_small_rate),       cmocka_unit_test(test_idle_deadline),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
