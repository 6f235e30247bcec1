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
  rdv_conn a, b;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->s.loop = &f->loop;
  f->s.rooms = hp__rooms_create(7);
  f->s.ips = hp__iptable_create(9);
  f->s.o.max_hellos_per_minute = 1000;
  f->s.o.max_message_bytes = 65536;
  for (rdv_conn *c = &f->a; c <= &f->b; c++) {
    c->srv = &f->s;
    c->state = RDV_WS;
    c->sig = RDV_SIG_NEW;
    c->peer.ss_family = AF_INET;
    c->observed_full = 1;
  }
  snprintf(f->a.observed, sizeof(f->a.observed), "198.51.100.1:1000");
  snprintf(f->b.observed, sizeof(f->b.observed), "198.51.100.2:2000");
  nsent = nerrors = 0;
  fail_send_to = unwritable = NULL;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  hp__rdv_sig_leave(&f->a);
  hp__rdv_sig_leave(&f->b);
  assert_int_equal(hp__rooms_members(f->s.rooms), 0);
  hp__rooms_destroy(f->s.rooms);
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
  assert_null(f->a.cands);
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
  assert_int_equal(f->a.m.state, HP_MEMBER_WAITING);
  assert_int_equal(f->a.ncands, 1); /* with its candidates, for the next one */
  assert_int_equal(hp__rooms_waiting(f->s.rooms), 1);
  assert_int_equal(count(&f->a, HP_MSG_PEER), 0);
  assert_int_equal(f->s.m.pairings, 0);
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
  assert_int_equal(f->b.ncands, 1);
  assert_int_equal(hp__rooms_waiting(f->s.rooms), 1);
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
  assert_int_equal(hp__rooms_waiting(f->s.rooms), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pair_without_candidates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_welcome_fails_after_pairing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peer_to_waiter_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiter_unwritable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ids_per_room, setup, teardown),
  };
  hp__log_setup(HP_LOG_ERROR, HP_LOG_TEXT);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
