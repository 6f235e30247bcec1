/*
 * test_store_redis.c - the Redis backend of the room store against a real
 * redis-server (Debian's, started by the test on a unix socket in a
 * temporary directory, stopped at the end): two or three store instances on
 * one libuv loop, as three rendezvous instances would be.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/redis_server.h"
#include "rooms_redis.h"
#include "rooms_redis_int.h"
#include "store_harness.h"

#define N_INST 3
#define WAIT_MS 5000
#define TTL_MS 1500

typedef struct fx {
  uv_loop_t loop;
  hp_test_redis redis;
  hp__redis_url url;
  rec r[N_INST];
  hp__store *st[N_INST];
} fx;

static int open_store(fx *f, int i, uint32_t ttl_ms) {
  hp__store_redis_opts o;
  char name[16];

  memset(&o, 0, sizeof(o));
  snprintf(name, sizeof(name), "inst%d", i);
  o.url = &f->url;
  o.instance = name;
  o.ttl_ms = ttl_ms;
  o.timeout_ms = 500;
  o.backoff_min_ms = 20;
  o.backoff_max_ms = 200;
  rec_free(&f->r[i]);
  if (hp__store_redis_create(&f->loop, &o, &rec_cbs, &f->r[i], &f->st[i]) < 0)
    return -1;
  f->r[i].st = f->st[i];
  return 0;
}

static int all_available(void *arg) {
  fx *f = arg;
  for (int i = 0; i < N_INST; i++)
    if (f->st[i] && !f->r[i].available)
      return 0;
  return 1;
}

static int none_available(void *arg) {
  fx *f = arg;
  for (int i = 0; i < N_INST; i++)
    if (f->st[i] && f->r[i].available)
      return 0;
  return 1;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  char err[256];

  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  if (hp_test_redis_start(&f->redis) < 0)
    fail_msg("cannot start redis-server (scripts/deps.sh installs it)");
  assert_int_equal(hp__redis_url_parse(f->redis.url, &f->url, err, sizeof(err)), 0);
  for (int i = 0; i < N_INST; i++)
    assert_int_equal(open_store(f, i, TTL_MS), 0);
  assert_true(run_until(&f->loop, all_available, f, WAIT_MS));
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  assert_int_equal(close_stores(&f->loop, f->st, N_INST), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* nothing may be left on the loop */
  assert_int_equal(uv_loop_close(&f->loop), 0);
  hp_test_redis_stop(&f->redis);
  for (int i = 0; i < N_INST; i++)
    rec_free(&f->r[i]);
  free(f);
  return 0;
}

/* ---- predicates ---- */

typedef struct want {
  rec *r;
  int kind;
  hp__store_ref ref;
} want;

static int has_event(void *arg) {
  want *w = arg;
  return rec_find(w->r, w->kind, w->ref, NULL) != NULL;
}

static const ev *wait_event(fx *f, rec *r, int kind, hp__store_ref ref) {
  want w = {r, kind, ref};
  (void)run_until(&f->loop, has_event, &w, WAIT_MS);
  return rec_find(r, kind, ref, NULL);
}

static hp__store_verdict join_verdict(fx *f, int inst, hp__store_ref ref, const char *room,
                                      const char *id, hp__store_mid *mid) {
  const ev *e;
  assert_int_equal(hp__store_join(f->st[inst], ref, room, id, id, strlen(id), mid), 0);
  e = wait_event(f, &f->r[inst], EV_JOIN, ref);
  if (!e)
    fail_msg("no answer to the join of %s", id);
  return e->verdict;
}

/* ---- tests ---- */

/* Two workers of a room on two instances: paired exactly once, each learns
 * it from its own instance (the waiter's through pub/sub), same session. */
static void test_pair_across_instances(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  const ev *ea, *eb;
  int n;

  assert_int_equal(join_verdict(f, 0, 1, "room", "wa", &a), HP_STORE_WAITING);
  assert_int_equal(hp__store_join(f->st[1], 2, "room", "wb", "wb", 2, &b), 0);
  assert_null(rec_find(&f->r[1], EV_JOIN, 2, NULL)); /* answers come in a later turn */
  eb = wait_event(f, &f->r[1], EV_JOIN, 2);
  ea = wait_event(f, &f->r[0], EV_PAIRED, 1);
  assert_non_null(ea);
  assert_non_null(eb);
  assert_int_equal(eb->verdict, HP_STORE_PAIRED);
  assert_int_equal(ea->role, 'a');
  assert_int_equal(eb->role, 'b');
  assert_string_equal(ea->peer_id, "wb");
  assert_string_equal(eb->peer_id, "wa");
  assert_string_equal(ea->payload, "wb");
  assert_string_equal(eb->payload, "wa");
  assert_string_equal(ea->peer_instance, "inst1");
  assert_string_equal(eb->peer_instance, "inst0");
  assert_string_equal(ea->session, eb->session);
  /* no second notification, on any instance */
  run_for(&f->loop, 300);
  rec_find(&f->r[0], EV_PAIRED, 1, &n);
  assert_int_equal(n, 1);
  assert_int_equal(rec_count(&f->r[1], EV_PAIRED) + rec_count(&f->r[2], EV_PAIRED), 0);
  {
    hp__store_stats s0, s1;
    hp__store_stats_get(f->st[0], &s0);
    hp__store_stats_get(f->st[1], &s1);
    assert_int_equal(s0.remote_pairings, 1);
    assert_int_equal(s1.pairings, 1);
    assert_int_equal(s0.waiting, 0);
    assert_true(s1.rtt_count > 0);
    assert_int_equal(s1.errors, 0);
  }
  /* the room is free for the next two */
  assert_int_equal(join_verdict(f, 2, 3, "room", "wc", &a), HP_STORE_WAITING);
}

/* Both on one instance: both answers in the same loop turn. */
static void test_pair_same_instance(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  const ev *ea, *eb;

  assert_int_equal(join_verdict(f, 0, 1, "solo", "wa", &a), HP_STORE_WAITING);
  assert_int_equal(hp__store_join(f->st[0], 2, "solo", "wb", "wb", 2, &b), 0);
  eb = wait_event(f, &f->r[0], EV_JOIN, 2);
  ea = rec_find(&f->r[0], EV_PAIRED, 1, NULL);
  assert_non_null(eb);
  assert_non_null(ea); /* already there when b's answer is */
  assert_string_equal(ea->session, eb->session);
  assert_string_equal(ea->peer_id, "wb");
  run_for(&f->loop, 200); /* the pub/sub echo finds it paired: no second one */
  assert_int_equal(rec_count(&f->r[0], EV_PAIRED), 1);
}

/* Duplicate ids are judged per room, across instances. */
static void test_duplicate_per_room(void **state) {
  fx *f = *state;
  hp__store_mid m1, m2, m3, m4;

  assert_int_equal(join_verdict(f, 0, 1, "r1", "same", &m1), HP_STORE_WAITING);
  assert_int_equal(join_verdict(f, 1, 2, "r1", "same", &m2), HP_STORE_DUPLICATE);
  assert_int_equal(join_verdict(f, 1, 3, "r2", "same", &m3), HP_STORE_WAITING);
  /* after the leave the id is free in r1 again; r1's waiter is gone too */
  hp__store_leave(f->st[0], m1);
  hp__store_leave(f->st[0], m1);
  run_for(&f->loop, 100);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{r1}:m:same hp:{r1}:w"), 0);
  assert_int_equal(join_verdict(f, 2, 4, "r1", "same", &m4), HP_STORE_WAITING);
  /* a paired member keeps its id */
  assert_int_equal(join_verdict(f, 0, 5, "r2", "other", &m1), HP_STORE_PAIRED);
  assert_int_equal(join_verdict(f, 2, 6, "r2", "other", &m2), HP_STORE_DUPLICATE);
}

/* A leave while the join is in flight: no callback ever, nothing left in
 * Redis. */
static void test_leave_in_flight(void **state) {
  fx *f = *state;
  hp__store_mid m;

  assert_int_equal(hp__store_join(f->st[0], 7, "fl", "x", "p", 1, &m), 0);
  hp__store_leave(f->st[0], m);
  run_for(&f->loop, 200);
  assert_int_equal(f->r[0].n, 0);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{fl}:m:x hp:{fl}:w"), 0);
  {
    hp__store_stats s;
    hp__store_stats_get(f->st[0], &s);
    assert_int_equal(s.members, 0);
  }
}

/* An instance that dies (closed without leaving) is forgotten within the
 * TTL: its waiter's keys expire, its id is free, the room pairs nobody with
 * the ghost. Before the TTL ran out, the waiter still counts. */
static void test_dead_instance_ttl(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  long long pttl;

  assert_int_equal(join_verdict(f, 0, 1, "ghost", "wa", &a), HP_STORE_WAITING);
  pttl = hp_test_redis_int(&f->redis, "PTTL hp:{ghost}:m:wa");
  assert_true(pttl > 0 && pttl <= TTL_MS);
  /* the instance dies: no leave reaches Redis */
  assert_int_equal(close_stores(&f->loop, &f->st[0], 1), 0);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{ghost}:m:wa"), 1);
  assert_int_equal(join_verdict(f, 1, 2, "ghost", "wa", &b), HP_STORE_DUPLICATE);
  run_for(&f->loop, TTL_MS + 200);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{ghost}:m:wa hp:{ghost}:w"), 0);
  assert_int_equal(join_verdict(f, 1, 3, "ghost", "wb", &b), HP_STORE_WAITING);
  assert_int_equal(join_verdict(f, 2, 4, "ghost", "wa", &a), HP_STORE_PAIRED);
}

/* A live waiter outlives many TTLs: its lease is renewed. */
static void test_lease_renewed(void **state) {
  fx *f = *state;
  hp__store_mid a, b;

  assert_int_equal(join_verdict(f, 0, 1, "long", "wa", &a), HP_STORE_WAITING);
  run_for(&f->loop, 2 * TTL_MS + 300);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{long}:m:wa hp:{long}:w"), 2);
  assert_int_equal(join_verdict(f, 1, 2, "long", "wb", &b), HP_STORE_PAIRED);
  assert_non_null(wait_event(f, &f->r[0], EV_PAIRED, 1));
}

/* The waiter's instance misses the notification (its subscriber was cut):
 * the renewal recovers the pairing from Redis, exactly once. */
static void test_lost_notification_recovered(void **state) {
  fx *f = *state;
  hp__store_mid a, b;
  const ev *ea;
  int n;

  assert_int_equal(join_verdict(f, 0, 1, "lost", "wa", &a), HP_STORE_WAITING);
  /* cut every pub/sub client, then pair at once: the message goes nowhere */
  assert_true(hp_test_redis_int(&f->redis, "CLIENT KILL TYPE pubsub") >= 1);
  assert_int_equal(join_verdict(f, 1, 2, "lost", "wb", &b), HP_STORE_PAIRED);
  ea = wait_event(f, &f->r[0], EV_PAIRED, 1);
  assert_non_null(ea);
  assert_string_equal(ea->peer_id, "wb");
  assert_string_equal(ea->session, rec_find(&f->r[1], EV_JOIN, 2, NULL)->session);
  run_for(&f->loop, TTL_MS);
  rec_find(&f->r[0], EV_PAIRED, 1, &n);
  assert_int_equal(n, 1);
}

/* The notification that a waiter was paired comes on the pub/sub
 * connection, the answer to its own join on the commands connection: it may
 * come first (three rendezvous processes behind nginx showed it for about 1
 * pairing in 100). It is kept and delivered once the join's answer is in,
 * not dropped until the next renewal. The push is made by hand here, while
 * the join is in flight, so that the order is certain. */
static void test_notification_before_join_answer(void **state) {
  fx *f = *state;
  static const char session[] = "0123456789abcdef0123456789abcdef";
  redisReply e[3], top, *el[3] = {&e[0], &e[1], &e[2]};
  char msg[256];
  hp__store_mid a;
  const ev *ea;
  int n;

  assert_int_equal(hp__store_join(f->st[0], 1, "early", "wa", "pa", 2, &a), 0);
  n = snprintf(msg, sizeof(msg), "%016llx wb %s inst1 {\"x\":1}", (unsigned long long)a, session);
  memset(e, 0, sizeof(e));
  memset(&top, 0, sizeof(top));
  e[0].type = e[1].type = e[2].type = REDIS_REPLY_STRING;
  e[0].str = (char *)"message";
  e[0].len = 7;
  e[1].str = (char *)"hp:inst:inst0";
  e[1].len = strlen(e[1].str);
  e[2].str = msg;
  e[2].len = (size_t)n;
  top.type = REDIS_REPLY_ARRAY;
  top.elements = 3;
  top.element = el;
  hp__rr_on_sub_push(f->st[0], &top);
  assert_null(rec_find(&f->r[0], EV_PAIRED, 1, NULL)); /* not before its welcome */
  ea = wait_event(f, &f->r[0], EV_JOIN, 1);
  assert_non_null(ea);
  assert_int_equal(ea->verdict, HP_STORE_WAITING);
  /* Well before the first renewal (TTL/3), which would not find it
   * anyway: nobody paired it in Redis. */
  {
    want w = {&f->r[0], EV_PAIRED, 1};
    assert_true(run_until(&f->loop, has_event, &w, TTL_MS / 3 / 2));
  }
  ea = rec_find(&f->r[0], EV_PAIRED, 1, &n);
  assert_int_equal(n, 1);
  assert_string_equal(ea->peer_id, "wb");
  assert_string_equal(ea->session, session);
  assert_string_equal(ea->peer_instance, "inst1");
  assert_string_equal(ea->payload, "{\"x\":1}");
  hp__store_leave(f->st[0], a);
}

/* Our own loop was busy (or the process descheduled) for longer than the
 * command timeout while Redis answered in time: libuv runs the watchdog
 * before it polls, so the answer waiting in the socket is read before a
 * timeout is declared. (Seen under a load average of 10 on the bench
 * machine: instances dropped Redis and refused workers with
 * "unavailable".) */
static void test_busy_loop_is_not_a_timeout(void **state) {
  fx *f = *state;
  hp__store_mid a;
  hp__store_stats st;
  const ev *e;

  assert_int_equal(hp__store_join(f->st[0], 1, "busy", "wa", NULL, 0, &a), 0);
  usleep(800 * 1000); /* the store's timeout is 500 ms */
  e = wait_event(f, &f->r[0], EV_JOIN, 1);
  assert_non_null(e);
  assert_int_equal(e->verdict, HP_STORE_WAITING);
  hp__store_stats_get(f->st[0], &st);
  assert_int_equal(st.timeouts, 0);
  assert_int_equal(f->r[0].available, 1);
  hp__store_leave(f->st[0], a);
}

/* Redis forgot the scripts (SCRIPT FLUSH, a failover to a replica): the
 * EVALSHA that meets NOSCRIPT is sent again as EVAL and the scripts are
 * loaded again; join, renewal and leave keep working. */
static void test_noscript_fallback(void **state) {
  fx *f = *state;
  hp__store_mid a, b;

  assert_int_equal(hp_test_redis_int(&f->redis, "SCRIPT FLUSH"), 1);
  assert_int_equal(join_verdict(f, 0, 1, "ns", "wa", &a), HP_STORE_WAITING);
  assert_int_equal(hp_test_redis_int(&f->redis, "SCRIPT FLUSH"), 1);
  hp__store_refresh(f->st[0]); /* meets NOSCRIPT too, reloads */
  run_for(&f->loop, 100);
  assert_int_equal(hp_test_redis_int(&f->redis, "SCRIPT FLUSH"), 1);
  assert_int_equal(join_verdict(f, 1, 2, "ns", "wb", &b), HP_STORE_PAIRED);
  assert_non_null(wait_event(f, &f->r[0], EV_PAIRED, 1));
  assert_int_equal(hp_test_redis_int(&f->redis, "SCRIPT FLUSH"), 1);
  hp__store_leave(f->st[0], a);
  hp__store_leave(f->st[1], b);
  run_for(&f->loop, 100);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{ns}:m:wa hp:{ns}:m:wb"), 0);
  assert_true(f->r[0].available && f->r[1].available);
}

/* Redis crashes and comes back empty: the instances say so, refuse joins at
 * once, reconnect by themselves, and the waiters that Redis forgot join
 * again and can be paired. */
static void test_redis_restart(void **state) {
  fx *f = *state;
  hp__store_mid a, b, c;
  const ev *ea;

  assert_int_equal(join_verdict(f, 0, 1, "rs", "wa", &a), HP_STORE_WAITING);
  hp_test_redis_kill(&f->redis);
  assert_true(run_until(&f->loop, none_available, f, WAIT_MS));
  assert_int_equal(hp__store_join(f->st[1], 2, "rs", "wb", NULL, 0, &b), -EAGAIN);
  run_for(&f->loop, 300); /* a few failed reconnects */
  assert_int_equal(hp_test_redis_restart(&f->redis), 0);
  assert_true(run_until(&f->loop, all_available, f, WAIT_MS));
  /* the waiter is back in Redis (joined again after the renewal found it gone) */
  {
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
      ok = hp_test_redis_int(&f->redis, "EXISTS hp:{rs}:m:wa") == 1;
      if (!ok)
        run_for(&f->loop, 50);
    }
    assert_true(ok);
  }
  assert_int_equal(join_verdict(f, 1, 3, "rs", "wb", &c), HP_STORE_PAIRED);
  ea = wait_event(f, &f->r[0], EV_PAIRED, 1);
  assert_non_null(ea);
  assert_string_equal(ea->peer_id, "wb");
  {
    hp__store_stats s;
    hp__store_stats_get(f->st[1], &s);
    assert_true(s.reconnects >= 1);
  }
}

/* Redis hangs (SIGSTOP): a join in flight gets "unavailable" after the
 * timeout, the instance says so; after SIGCONT it works again. */
static void test_redis_hangs(void **state) {
  fx *f = *state;
  hp__store_mid a;
  const ev *e;

  hp_test_redis_freeze(&f->redis, 1);
  assert_int_equal(hp__store_join(f->st[0], 1, "hang", "wa", NULL, 0, &a), 0);
  e = wait_event(f, &f->r[0], EV_JOIN, 1);
  assert_non_null(e);
  assert_int_equal(e->verdict, HP_STORE_UNAVAILABLE);
  assert_int_equal(f->r[0].available, 0);
  {
    hp__store_stats s;
    hp__store_stats_get(f->st[0], &s);
    assert_true(s.timeouts >= 1);
  }
  hp_test_redis_freeze(&f->redis, 0);
  assert_true(run_until(&f->loop, all_available, f, WAIT_MS));
  assert_int_equal(join_verdict(f, 0, 2, "hang", "wb", &a), HP_STORE_WAITING);
}

/* 1,000 pairings across two instances: every waiter on instance 0, every
 * newcomer on instance 1; each gets the right partner and one session. */
#define N_PAIRS 1000

typedef struct count_want {
  rec *r;
  int kind;
  size_t n;
} count_want;

static int has_count(void *arg) {
  count_want *w = arg;
  return rec_count(w->r, w->kind) >= w->n;
}

static void test_thousand_pairings(void **state) {
  fx *f = *state;
  char room[32], id[32];
  hp__store_mid m;
  count_want w;

  for (int i = 0; i < N_PAIRS; i++) {
    snprintf(room, sizeof(room), "k%d", i);
    snprintf(id, sizeof(id), "a%d", i);
    assert_int_equal(hp__store_join(f->st[0], (hp__store_ref)i, room, id, id, strlen(id), &m), 0);
  }
  w = (count_want){&f->r[0], EV_JOIN, N_PAIRS};
  assert_true(run_until(&f->loop, has_count, &w, 20000));
  for (int i = 0; i < N_PAIRS; i++) {
    snprintf(room, sizeof(room), "k%d", i);
    snprintf(id, sizeof(id), "b%d", i);
    assert_int_equal(
        hp__store_join(f->st[1], (hp__store_ref)(10000 + i), room, id, id, strlen(id), &m), 0);
  }
  w = (count_want){&f->r[1], EV_JOIN, N_PAIRS};
  assert_true(run_until(&f->loop, has_count, &w, 20000));
  w = (count_want){&f->r[0], EV_PAIRED, N_PAIRS};
  assert_true(run_until(&f->loop, has_count, &w, 20000));
  run_for(&f->loop, 200);
  assert_int_equal(rec_count(&f->r[0], EV_PAIRED), N_PAIRS);
  assert_int_equal(rec_count(&f->r[1], EV_JOIN), N_PAIRS);
  for (int i = 0; i < N_PAIRS; i++) {
    int na, nb;
    const ev *ea = rec_find(&f->r[0], EV_PAIRED, (hp__store_ref)i, &na);
    const ev *eb = rec_find(&f->r[1], EV_JOIN, (hp__store_ref)(10000 + i), &nb);
    char want_a[32], want_b[32];
    assert_int_equal(na, 1);
    assert_int_equal(nb, 1);
    assert_int_equal(eb->verdict, HP_STORE_PAIRED);
    snprintf(want_a, sizeof(want_a), "b%d", i);
    snprintf(want_b, sizeof(want_b), "a%d", i);
    assert_string_equal(ea->peer_id, want_a);
    assert_string_equal(eb->peer_id, want_b);
    assert_string_equal(ea->payload, want_a);
    assert_string_equal(eb->payload, want_b);
    assert_string_equal(ea->session, eb->session);
    if (i > 0)
      assert_string_not_equal(ea->session,
                              rec_find(&f->r[0], EV_PAIRED, (hp__store_ref)(i - 1), NULL)->session);
  }
}

static int rec_available(void *arg) {
  return ((rec *)arg)->available;
}

/* A free loopback TCP port (bound, then released for redis-server). */
static int free_port(void) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static hp__store *open_url(fx *f, const char *url, rec *r) {
  hp__store_redis_opts o;
  hp__redis_url u;
  hp__store *st = NULL;
  char err[256];

  if (hp__redis_url_parse(url, &u, err, sizeof(err)) != 0)
    fail_msg("%s: %s", url, err);
  memset(&o, 0, sizeof(o));
  o.url = &u;
  o.timeout_ms = 500;
  o.backoff_min_ms = 20;
  o.backoff_max_ms = 100;
  assert_int_equal(hp__store_redis_create(&f->loop, &o, &rec_cbs, r, &st), 0);
  return st;
}

/* TCP on loopback (a numeric address and a host name resolved in libuv's
 * pool), a password, a database; a wrong password is an unavailable store,
 * not a crash. */
static void test_tcp_password(void **state) {
  fx *f = *state;
  hp__store *st[3] = {NULL, NULL, NULL};
  rec r[3];
  char url[160];
  int port = free_port();
  hp__store_mid a;

  memset(r, 0, sizeof(r));
  assert_true(port > 0);
  assert_int_equal(hp_test_redis_int(&f->redis, "CONFIG SET bind %s", "127.0.0.1 -::1"), 1);
  assert_int_equal(hp_test_redis_int(&f->redis, "CONFIG SET port %d", port), 1);
  assert_int_equal(hp_test_redis_int(&f->redis, "CONFIG SET requirepass %s", "s3cr@t"), 1);
  snprintf(f->redis.password, sizeof(f->redis.password), "s3cr@t");

  snprintf(url, sizeof(url), "redis://:s3cr%%40t@127.0.0.1:%d/2", port);
  st[0] = open_url(f, url, &r[0]);
  snprintf(url, sizeof(url), "redis://:s3cr%%40t@localhost:%d/2", port);
  st[1] = open_url(f, url, &r[1]);
  snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d/2", port);
  st[2] = open_url(f, url, &r[2]);
  assert_true(run_until(&f->loop, rec_available, &r[0], WAIT_MS));
  assert_true(run_until(&f->loop, rec_available, &r[1], WAIT_MS));
  assert_int_equal(hp__store_join(st[0], 1, "tcp", "wa", NULL, 0, &a), 0);
  assert_non_null(wait_event(f, &r[0], EV_JOIN, 1));
  assert_int_equal(hp__store_join(st[1], 2, "tcp", "wb", NULL, 0, &a), 0);
  assert_non_null(wait_event(f, &r[1], EV_JOIN, 2));
  assert_int_equal(rec_find(&r[1], EV_JOIN, 2, NULL)->verdict, HP_STORE_PAIRED);
  assert_non_null(wait_event(f, &r[0], EV_PAIRED, 1));
  /* database 2, not 0 */
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{tcp}:m:wa"), 0);
  assert_int_equal(hp_test_redis_int(&f->redis, "EXISTS hp:{tcp}:m:wb"), 0);
  /* the wrong password never becomes available and refuses joins at once */
  run_for(&f->loop, 300);
  assert_int_equal(r[2].available, 0);
  assert_int_equal(hp__store_join(st[2], 3, "tcp", "wc", NULL, 0, &a), -EAGAIN);
  assert_int_equal(close_stores(&f->loop, st, 3), 0);
  for (int i = 0; i < 3; i++)
    rec_free(&r[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pair_across_instances, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pair_same_instance, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_per_room, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leave_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dead_instance_ttl, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_renewed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lost_notification_recovered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_notification_before_join_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_busy_loop_is_not_a_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_noscript_fallback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redis_hangs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thousand_pairings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tcp_password, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
