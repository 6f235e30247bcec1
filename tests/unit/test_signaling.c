/*
 * test_signaling.c - src/rendezvous/signaling.c with the connection layer
 * replaced by stubs that record what would be sent and can make a send fail
 * or a connection unwritable: the failure paths of issue 6 item 7 that no
 * client can trigger from outside.
 *   - a waiting worker without candidates is paired (no read of a NULL
 *     candidate list; UBSan in the ASan build);
 *   - welcome to the newcomer fails after the join paired it: the worker
 *     that waited waits again, nobody gets peer;
 *   - peer to the waiter fails (or it cannot take it): the newcomer is not
 *     sent to punch it, it waits again;
 *   - a room operation whose answer arrives after the connection went away
 *     is undone.
 * The rooms are the memory store (store.h), as in the service without
 * REDIS_URL; the Redis store's answers (another instance paired the
 * worker, the store is unavailable) are fed to the callbacks directly.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "rdv.h"
#include "rooms_mem.h"

#define MAX_SENT 16

typedef struct sent {
  rdv_conn *c;
  hp__msg m;
} sent;

static sent log_[MAX_SENT];
static int nsent;
static rdv_conn *fail_send_to; /* the next send to it fails */
static int fail_send_type;     /* ...if the message is of this type */
static rdv_conn *unwritable;
static hp__rdv_err last_error[4];
static rdv_conn *last_error_conn[4];
static int nerrors;

/* --- stubs of conn.c ----------------------------------------------------- */

int hp__rdv_conn_send_text(rdv_conn *c, const char *text, size_t len) {
  hp__wire_err err;
  hp__msg m;

  if (c->state != RDV_WS)
    return -EPIPE;
  /* The service's own messages decode with the worker's decoder, except
   * error: decode what we can to see the type. */
  memset(&m, 0, sizeof(m));
  if (hp__msg_decode(text, len, &m, &err) < 0)
    m.type = HP_MSG_ERROR;
  if (c == fail_send_to && (int)m.type == fail_send_type) {
    fail_send_to = NULL;
    return -EIO;
  }
  assert_true(nsent < MAX_SENT);
  log_[nsent].c = c;
  log_[nsent].m = m;
  nsent++;
  return 0;
}

void hp__rdv_conn_fail(rdv_conn *c, hp__rdv_err code, uint16_t status, const char *fmt, ...) {
  (void)status, (void)fmt;
  if (c->state != RDV_WS)
    return;
  assert_true(nerrors < 4);
  last_error[nerrors] = code;
  last_error_conn[nerrors++] = c;
  hp__rdv_sig_leave(c);
  c->state = RDV_CLOSING;
}

int hp__rdv_conn_writable(const rdv_conn *c) {
  return c->state == RDV_WS && c != unwritable;
}

void hp__rdv_conn_registered(rdv_conn *c) {
  (void)c;
}

void hp__rdv_conn_unref(rdv_conn *c) {
  c->refs--;
}

/* relay.c: the pairing's registration for the relay is not under test here. */
void hp__rdv_relay_register(hp__rdv *s, const char *session, const char *id_a, const char *id_b) {
  (void)s, (void)session, (void)id_a, (void)id_b;
}

/* --- fixture ------------------------------------------------------------- */

typedef struct fx {
  uv_loop_t loop;
  hp__rdv s;
  rdv_conn a, b, c;
} fx;

static size_t waiting(fx *f) {
  hp__store_stats st;
  hp__store_stats_get(f->s.store, &st);
  return st.waiting;
}

static size_t members(fx *f) {
  hp__store_stats st;
  hp__store_stats_get(f->s.store, &st);
  return st.members;
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->s.loop = &f->loop;
  assert_int_equal(hp__store_mem_create(&hp__rdv_store_cbs, &f->s, 7, "test", &f->s.store), 0);
  f->s.store_up = 1;
  f->s.ips = hp__iptable_create(9);
  f->s.o.max_hellos_per_minute = 1000;
  f->s.o.max_message_bytes = 65536;
  for (rdv_conn *c = &f->a; c <= &f->c; c++) {
    c->srv = &f->s;
    c->state = RDV_WS;
    c->sig = RDV_SIG_NEW;
    c->peer.ss_family = AF_INET;
    c->observed_full = 1;
  }
  snprintf(f->a.observed, sizeof(f->a.observed), "198.51.100.1:1000");
  snprintf(f->b.observed, sizeof(f->b.observed), "198.51.100.2:2000");
  snprintf(f->c.observed, sizeof(f->c.observed), "198.51.100.3:3000");
  nsent = nerrors = 0;
  fail_send_to = unwritable = NULL;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  hp__rdv_sig_leave(&f->a);
  hp__rdv_sig_leave(&f->b);
  hp__rdv_sig_leave(&f->c);
  assert_int_equal(members(f), 0);
  assert_int_equal(f->s.refs.count, 0);
  hp__store_close(f->s.store, NULL, NULL);
  hp__slots_free(&f->s.refs);
  hp__iptable_destroy(f->s.ips);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

static void say(rdv_conn *c, const char *json) {
  hp__rdv_sig_message(c, 0, (const uint8_t *)json, strlen(json));
}

static int count(rdv_conn *c, hp__msg_type t) {
  int n = 0;
  for (int i = 0; i < nsent; i++)
    n += log_[i].c == c && log_[i].m.type == t;
  return n;
}

static const hp__msg_peer *peer_of(rdv_conn *c) {
  for (int i = 0; i < nsent; i++)
    if (log_[i].c == c && log_[i].m.type == HP_MSG_PEER)
      return &log_[i].m.u.peer;
  return NULL;
}

/* --- tests --------------------------------------------------------------- */

static void test_pair_without_candidates(void **state) {
  fx *f = *state;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\"}");
  assert_int_equal(f->a.sig, RDV_SIG_WAITING);
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"b\",\"candidates\":"
             "[{\"kind\":\"host\",\"addr\":\"10.0.0.2:4000\"}]}");
  assert_int_equal(f->a.sig, RDV_SIG_PAIRED);
  assert_int_equal(f->b.sig, RDV_SIG_PAIRED);
  assert_int_equal(peer_of(&f->b)->peer_cands.n, 0);
  assert_int_equal(peer_of(&f->a)->peer_cands.n, 1);
  assert_string_equal(peer_of(&f->a)->session, peer_of(&f->b)->session);
  assert_int_equal(f->s.m.pairings, 1);
}

static void test_welcome_fails_after_pairing(void **state) {
  fx *f = *state;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\",\"candidates\":"
             "[{\"kind\":\"host\",\"addr\":\"10.0.0.1:4000\"}]}");
  fail_send_to = &f->b;
  fail_send_type = HP_MSG_WELCOME;
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"b\"}");
  /* b failed; a was not left paired out of its room: it waits again. */
  assert_int_equal(nerrors, 1);
  assert_ptr_equal(last_error_conn[0], &f->b);
  assert_int_equal(last_error[0], HP_RDV_ERR_INTERNAL_ERROR);
  assert_int_equal(f->a.sig, RDV_SIG_WAITING);
  assert_int_equal(waiting(f), 1);
  assert_int_equal(count(&f->a, HP_MSG_PEER), 0);
  assert_int_equal(f->s.m.pairings, 0);
  /* with its candidates, for the next one */
  say(&f->c, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"c\"}");
  assert_non_null(peer_of(&f->c));
  assert_string_equal(peer_of(&f->c)->peer_id, "a");
  assert_int_equal(peer_of(&f->c)->peer_cands.n, 1);
  assert_string_equal(peer_of(&f->c)->peer_cands.c[0].addr, "10.0.0.1:4000");
  assert_string_equal(peer_of(&f->a)->peer_id, "c");
  assert_int_equal(f->s.m.pairings, 1);
}

static void test_peer_to_waiter_fails(void **state) {
  fx *f = *state;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\"}");
  fail_send_to = &f->a;
  fail_send_type = HP_MSG_PEER;
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"b\",\"candidates\":"
             "[{\"kind\":\"srflx\",\"addr\":\"203.0.113.9:5000\"}]}");
  /* a failed; b is not sent to punch it, and waits again with its
   * candidates for the next worker. */
  assert_ptr_equal(last_error_conn[0], &f->a);
  assert_int_equal(count(&f->b, HP_MSG_PEER), 0);
  assert_int_equal(f->b.sig, RDV_SIG_WAITING);
  assert_int_equal(waiting(f), 1);
  /* with its candidates and observed address, for the next one */
  say(&f->c, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"c\"}");
  assert_non_null(peer_of(&f->c));
  assert_string_equal(peer_of(&f->c)->peer_id, "b");
  assert_string_equal(peer_of(&f->c)->peer_observed, "198.51.100.2:2000");
  assert_int_equal(peer_of(&f->c)->peer_cands.n, 1);
  assert_string_equal(peer_of(&f->c)->peer_cands.c[0].addr, "203.0.113.9:5000");
  assert_string_equal(peer_of(&f->b)->peer_id, "c");
}

static void test_waiter_unwritable(void **state) {
  fx *f = *state;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\"}");
  unwritable = &f->a;
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"b\"}");
  assert_int_equal(count(&f->b, HP_MSG_PEER), 0);
  assert_int_equal(count(&f->b, HP_MSG_WELCOME), 1);
  assert_int_equal(f->b.sig, RDV_SIG_WAITING);
  assert_int_equal(f->a.state, RDV_CLOSING);
}

static void test_result_rules(void **state) {
  fx *f = *state;
  const char *res = "{\"type\":\"result\",\"status\":\"direct\"}";
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\"}");
  say(&f->a, res); /* before peer */
  assert_int_equal(last_error[0], HP_RDV_ERR_UNEXPECTED_MESSAGE);
  assert_int_equal(f->s.m.results_direct, 0);
}

static void test_ids_per_room(void **state) {
  fx *f = *state;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"x\",\"id\":\"same\"}");
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"y\",\"id\":\"same\"}");
  assert_int_equal(nerrors, 0);
  assert_int_equal(waiting(f), 2);
  /* the same id in the same room is refused */
  say(&f->c, "{\"type\":\"hello\",\"v\":1,\"room\":\"x\",\"id\":\"same\"}");
  assert_int_equal(nerrors, 1);
  assert_ptr_equal(last_error_conn[0], &f->c);
  assert_int_equal(last_error[0], HP_RDV_ERR_DUPLICATE_ID);
  assert_int_equal(waiting(f), 2);
}

/* INSTANCE_URL: both workers of a pairing get the waiter's instance's. */
static void test_relay_url_memory(void **state) {
  fx *f = *state;
  snprintf(f->s.instance_url, sizeof(f->s.instance_url), "http://rdv-1.example:8080");
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\"}");
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\"}");
  assert_non_null(peer_of(&f->a));
  assert_non_null(peer_of(&f->b));
  assert_string_equal(peer_of(&f->a)->relay_url, "http://rdv-1.example:8080");
  assert_string_equal(peer_of(&f->b)->relay_url, "http://rdv-1.example:8080");
  assert_string_equal(peer_of(&f->a)->peer_id, f->b.id);
  assert_string_equal(peer_of(&f->b)->peer_id, f->a.id);
  assert_string_not_equal(f->a.id, f->b.id);
}

/* Without INSTANCE_URL, no relay_url. */
static void test_no_relay_url(void **state) {
  fx *f = *state;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\"}");
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\"}");
  assert_string_equal(peer_of(&f->a)->relay_url, "");
  assert_string_equal(peer_of(&f->b)->relay_url, "");
}

/* Answers as the Redis store gives them, a loop turn after the hello: the
 * peer waited on another instance, whose URL is in its payload; the
 * newcomer's instance has another URL, and the waiter's wins. */
static void test_paired_by_other_instance(void **state) {
  fx *f = *state;
  static const char payload[] = "{\"observed\":\"203.0.113.7:7000\",\"candidates\":[{\"kind\":"
                                "\"host\",\"addr\":\"10.1.1.1:7000\"}],\"relay_url\":"
                                "\"https://rdv-2.example\"}";
  hp__store_pairing p;
  hp__store_mid mid;

  snprintf(f->s.instance_url, sizeof(f->s.instance_url), "http://rdv-1.example:8080");
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"b\"}");
  /* The memory store made b wait; answer its join again as Redis would
   * have: paired with "w" of instance i2. */
  mid = f->b.mid;
  assert_int_equal(f->b.sig, RDV_SIG_WAITING);
  f->b.sig = RDV_SIG_JOINING;
  memset(&p, 0, sizeof(p));
  p.role = 'b';
  memset(p.session, 'e', HP_SESSION_HEX);
  snprintf(p.peer_id, sizeof(p.peer_id), "w");
  snprintf(p.peer_instance, sizeof(p.peer_instance), "i2");
  p.peer_payload = payload;
  p.peer_payload_len = sizeof(payload) - 1;
  hp__rdv_store_cbs.on_join(&f->s, f->b.ref, mid, HP_STORE_PAIRED, &p);
  assert_int_equal(f->b.sig, RDV_SIG_PAIRED);
  assert_non_null(peer_of(&f->b));
  assert_string_equal(peer_of(&f->b)->peer_id, "w");
  assert_int_equal(peer_of(&f->b)->role, 'b');
  assert_string_equal(peer_of(&f->b)->peer_observed, "203.0.113.7:7000");
  assert_int_equal(peer_of(&f->b)->peer_cands.n, 1);
  assert_string_equal(peer_of(&f->b)->relay_url, "https://rdv-2.example");
  /* A stale answer (another mid) is dropped. */
  hp__rdv_store_cbs.on_paired(&f->s, f->b.ref, mid + 1, &p);
  assert_int_equal(count(&f->b, HP_MSG_PEER), 1);
}

/* A waiter of this instance paired by another one: its peer message
 * carries this instance's URL (it is the waiter's). */
static void test_waiter_paired_remotely(void **state) {
  fx *f = *state;
  static const char payload[] = "{\"relay_url\":\"https://rdv-2.example\"}";
  hp__store_pairing p;

  snprintf(f->s.instance_url, sizeof(f->s.instance_url), "http://rdv-1.example:8080");
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\"}");
  memset(&p, 0, sizeof(p));
  p.role = 'a';
  memset(p.session, 'd', HP_SESSION_HEX);
  snprintf(p.peer_id, sizeof(p.peer_id), "n");
  p.peer_payload = payload;
  p.peer_payload_len = sizeof(payload) - 1;
  hp__rdv_store_cbs.on_paired(&f->s, f->a.ref, f->a.mid, &p);
  assert_int_equal(f->a.sig, RDV_SIG_PAIRED);
  assert_string_equal(peer_of(&f->a)->peer_id, "n");
  assert_string_equal(peer_of(&f->a)->relay_url, "http://rdv-1.example:8080");
  assert_int_equal(peer_of(&f->a)->peer_cands.n, 0);
}

/* A store that cannot be reached: the hello gets "unavailable". */
static int unavail_join(hp__store *st, hp__store_ref ref, const char *room, const char *id,
                        const void *payload, size_t len, hp__store_mid *mid) {
  (void)st, (void)ref, (void)room, (void)id, (void)payload, (void)len, (void)mid;
  return -EAGAIN;
}

static void test_store_unavailable(void **state) {
  fx *f = *state;
  hp__store_ops ops = *f->s.store->ops;
  const hp__store_ops *orig = f->s.store->ops;

  ops.join = unavail_join;
  f->s.store->ops = &ops;
  say(&f->a, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"a\"}");
  f->s.store->ops = orig;
  assert_int_equal(nerrors, 1);
  assert_int_equal(last_error[0], HP_RDV_ERR_UNAVAILABLE);
  assert_int_equal(f->a.mid, 0);
  /* the same answer a loop turn later (Redis lost the connection) */
  say(&f->b, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"id\":\"b\"}");
  f->b.sig = RDV_SIG_JOINING;
  hp__store_leave(f->s.store, f->b.mid); /* what the Redis store forgets by itself */
  hp__rdv_store_cbs.on_join(&f->s, f->b.ref, f->b.mid, HP_STORE_UNAVAILABLE, NULL);
  assert_int_equal(nerrors, 2);
  assert_int_equal(last_error[1], HP_RDV_ERR_UNAVAILABLE);
  assert_int_equal(f->b.mid, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pair_without_candidates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_welcome_fails_after_pairing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peer_to_waiter_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiter_unwritable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ids_per_room, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_url_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_relay_url, setup, teardown),
      cmocka_unit_test_setup_teardown(test_paired_by_other_instance, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiter_paired_remotely, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_unavailable, setup, teardown),
  };
  hp__log_setup(HP_LOG_ERROR, HP_LOG_TEXT);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
