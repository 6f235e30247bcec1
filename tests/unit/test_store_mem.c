/* test_store_mem.c - the memory backend of the room store (store.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "rooms_mem.h"
#include "store_harness.h"

typedef struct fx {
  uv_loop_t loop;
  rec r;
  hp__store *st;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(hp__store_mem_create(&rec_cbs, &f->r, 1234, "mem1", &f->st), 0);
  f->r.st = f->st;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  assert_int_equal(close_stores(&f->loop, &f->st, 1), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* nothing may be left on the loop */
  assert_int_equal(uv_loop_close(&f->loop), 0);
  rec_free(&f->r);
  free(f);
  return 0;
}

static void test_pair(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  hp__store_stats s;
  const ev *ea, *eb, *ja;

  assert_int_equal(hp__store_join(f->st, 1, "room", "wa", "PA", 2, &a), 0);
  /* the memory backend answers inside the call */
  ja = rec_find(&f->r, EV_JOIN, 1, NULL);
  assert_non_null(ja);
  assert_int_equal(ja->verdict, HP_STORE_WAITING);
  assert_int_equal(ja->mid, a);
  hp__store_stats_get(f->st, &s);
  assert_int_equal(s.waiting, 1);
  assert_int_equal(s.available, 1);

  assert_int_equal(hp__store_join(f->st, 2, "room", "wb", "PB", 2, &b), 0);
  ea = rec_find(&f->r, EV_PAIRED, 1, NULL);
  eb = rec_find(&f->r, EV_JOIN, 2, NULL);
  assert_non_null(ea);
  assert_non_null(eb);
  assert_int_equal(eb->verdict, HP_STORE_PAIRED);
  assert_int_equal(ea->role, 'a');
  assert_int_equal(eb->role, 'b');
  assert_string_equal(ea->peer_id, "wb");
  assert_string_equal(eb->peer_id, "wa");
  assert_string_equal(ea->payload, "PB");
  assert_string_equal(eb->payload, "PA");
  assert_string_equal(ea->session, eb->session);
  assert_int_equal(strlen(ea->session), HP_SESSION_HEX);
  assert_string_equal(ea->peer_instance, "mem1");
  hp__store_stats_get(f->st, &s);
  assert_int_equal(s.waiting, 0);
  assert_int_equal(s.members, 2);
  assert_int_equal(s.pairings, 1);

  /* the next two of the room get another session */
  {
    hp__store_mid c, d;
    const ev *ec;
    assert_int_equal(hp__store_join(f->st, 3, "room", "wc", NULL, 0, &c), 0);
    assert_int_equal(hp__store_join(f->st, 4, "room", "wd", NULL, 0, &d), 0);
    ec = rec_find(&f->r, EV_PAIRED, 3, NULL);
    assert_non_null(ec);
    assert_string_not_equal(ec->session, ea->session);
    assert_string_equal(ec->payload, "");
  }
}

static void test_duplicate_and_leave(void **state) {
  fx *f = *state;
  hp__store_mid a, b, c;
  const ev *e;

  assert_int_equal(hp__store_join(f->st, 1, "r1", "x", NULL, 0, &a), 0);
  assert_int_equal(hp__store_join(f->st, 2, "r1", "x", NULL, 0, &b), 0);
  e = rec_find(&f->r, EV_JOIN, 2, NULL);
  assert_non_null(e);
  assert_int_equal(e->verdict, HP_STORE_DUPLICATE);
  /* a duplicate's mid is forgotten: leave is a no-op, not the first x */
  hp__store_leave(f->st, b);
  hp__store_leave(f->st, a);
  hp__store_leave(f->st, a); /* idempotent */
  assert_int_equal(hp__store_join(f->st, 3, "r1", "x", NULL, 0, &c), 0);
  e = rec_find(&f->r, EV_JOIN, 3, NULL);
  assert_int_equal(e->verdict, HP_STORE_WAITING);
  /* a stale mid never reaches the slot's next tenant */
  hp__store_leave(f->st, a);
  {
    hp__store_stats s;
    hp__store_stats_get(f->st, &s);
    assert_int_equal(s.waiting, 1);
  }
}

/* Ids are judged per room, as in Redis: "x" in r2 is another worker. */
static void test_duplicate_per_room(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  const ev *e;

  assert_int_equal(hp__store_join(f->st, 1, "r1", "x", NULL, 0, &a), 0);
  assert_int_equal(hp__store_join(f->st, 2, "r2", "x", NULL, 0, &b), 0);
  e = rec_find(&f->r, EV_JOIN, 2, NULL);
  assert_non_null(e);
  assert_int_equal(e->verdict, HP_STORE_WAITING);
  hp__store_leave(f->st, a);
  hp__store_leave(f->st, b);
}

/* A pairing taken back (the service could not tell one side): the other
 * side waits again with the payload given, and the next one pairs with it. */
static void test_requeue(void **state) {
  fx *f = *state;
  hp__store_mid a, b, c;
  hp__store_stats st;
  const ev *e;

  assert_int_equal(hp__store_join(f->st, 1, "r", "wa", "PA", 2, &a), 0);
  assert_int_equal(hp__store_join(f->st, 2, "r", "wb", "PB", 2, &b), 0);
  assert_non_null(rec_find(&f->r, EV_PAIRED, 1, NULL));
  assert_int_equal(hp__store_requeue(f->st, 999, NULL, 0), -EINVAL); /* no such member */
  /* b could not be told: it leaves, a waits again */
  hp__store_leave(f->st, b);
  assert_int_equal(hp__store_requeue(f->st, a, "PA", 2), 0);
  assert_int_equal(hp__store_requeue(f->st, a, "PA", 2), -EINVAL); /* waiting already */
  hp__store_stats_get(f->st, &st);
  assert_int_equal(st.waiting, 1);
  assert_int_equal(hp__store_join(f->st, 3, "r", "wc", NULL, 0, &c), 0);
  e = rec_find(&f->r, EV_JOIN, 3, NULL);
  assert_non_null(e);
  assert_int_equal(e->verdict, HP_STORE_PAIRED);
  assert_string_equal(e->peer_id, "wa");
  assert_string_equal(e->payload, "PA");
  hp__store_leave(f->st, a);
  hp__store_leave(f->st, c);
}

static void test_bad_input(void **state) {
  fx *f = *state;
  static char big[HP_STORE_PAYLOAD_MAX + 1];
  hp__store_mid m = 0;

  assert_int_equal(hp__store_join(f->st, 1, "", "x", NULL, 0, &m), -EINVAL);
  assert_int_equal(hp__store_join(f->st, 1, "r", "a b", NULL, 0, &m), -EINVAL);
  assert_int_equal(hp__store_join(f->st, 1, "r", "x", big, sizeof(big), &m), -EINVAL);
  assert_int_equal(hp__store_join(f->st, 1, "r", "x", NULL, 3, &m), -EINVAL);
  assert_int_equal(f->r.n, 0); /* a failed call never calls back */
  assert_int_equal(hp__store_join(f->st, 1, "r", "x", big, HP_STORE_PAYLOAD_MAX, &m), 0);
}

/* The waiter leaves from inside its on_paired: the newcomer still gets the
 * waiter's payload intact (ASan watches). */
static void test_leave_inside_callback(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  const ev *eb;

  assert_int_equal(hp__store_join(f->st, 1, "r", "a", "payload-of-a", 12, &a), 0);
  f->r.leave_on_paired = a;
  assert_int_equal(hp__store_join(f->st, 2, "r", "b", "payload-of-b", 12, &b), 0);
  eb = rec_find(&f->r, EV_JOIN, 2, NULL);
  assert_non_null(eb);
  assert_string_equal(eb->payload, "payload-of-a");
  hp__store_leave(f->st, b);
  {
    hp__store_stats s;
    hp__store_stats_get(f->st, &s);
    assert_int_equal(s.members, 0);
  }
}

static void test_metrics_text(void **state) {
  fx *f = *state;
  hp__store_stats s;
  char buf[4096];

  hp__store_stats_get(f->st, &s);
  assert_true(hp__store_stats_format(&s, "memory", buf, sizeof(buf)) > 0);
  assert_non_null(strstr(buf, "holepunch_store_available{backend=\"memory\"} 1\n"));
  assert_null(strstr(buf, "redis")); /* nothing about Redis without it */
  memset(&s, 0, sizeof(s));
  hp__store_stats_rtt(&s, 0.0003);
  hp__store_stats_rtt(&s, 5.0);
  s.errors = 3;
  s.timeouts = 1;
  assert_true(hp__store_stats_format(&s, "redis", buf, sizeof(buf)) > 0);
  assert_non_null(strstr(buf, "holepunch_redis_rtt_seconds_bucket{le=\"0.00025\"} 0\n"));
  assert_non_null(strstr(buf, "holepunch_redis_rtt_seconds_bucket{le=\"0.0005\"} 1\n"));
  assert_non_null(strstr(buf, "holepunch_redis_rtt_seconds_bucket{le=\"+Inf\"} 2\n"));
  assert_non_null(strstr(buf, "holepunch_redis_rtt_seconds_count 2\n"));
  assert_non_null(strstr(buf, "holepunch_redis_errors_total{kind=\"timeout\"} 1\n"));
  assert_non_null(strstr(buf, "holepunch_redis_errors_total{kind=\"other\"} 2\n"));
  assert_int_equal(hp__store_stats_format(&s, "redis", buf, 100), -ENOSPC);
  /* a scrape between a timeout and its failed command: never negative */
  s.errors = 0;
  s.timeouts = 1;
  assert_true(hp__store_stats_format(&s, "redis", buf, sizeof(buf)) > 0);
  assert_non_null(strstr(buf, "holepunch_redis_errors_total{kind=\"other\"} 0\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pair, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_and_leave, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_per_room, setup, teardown),
      cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leave_inside_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_metrics_text, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
