/* test_handshake.c - the secure channel's key exchange (src/core/handshake.h):
 * right code, wrong code, no code, a code on one side only, another session,
 * swapped roles, byte-by-byte delivery with record bytes behind, strangers
 * (HTTP), another version, a weak key, tampered HELLO and CONFIRM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "handshake.h"

static const uint8_t psk1[HP_HS_PSK_BYTES] = {1, 2, 3, 4, 5};
static const uint8_t psk2[HP_HS_PSK_BYTES] = {1, 2, 3, 4, 6};
#define SESSION "0123456789abcdef0123456789abcdef"

typedef struct side {
  hp__hs h;
  uint8_t hello[HP_HS_MSG_LEN], confirm[HP_HS_MSG_LEN];
  int have_confirm, result;
  char why[200];
} side;

static void start(side *s, char role, const uint8_t *psk, const char *session) {
  hp__hs_params p = {session, role == 'a' ? "alice" : "bob", role == 'a' ? "bob" : "alice", role,
                     psk};
  memset(s, 0, sizeof *s);
  assert_int_equal(hp__hs_init(&s->h, &p, s->hello), 0);
  assert_int_equal(s->h.st, HP_HS_WAIT_HELLO);
}

static int feed(side *s, const uint8_t *in, size_t len) {
  size_t used;
  int have = 0, r;
  uint8_t out[HP_HS_MSG_LEN];

  r = hp__hs_feed(&s->h, in, len, &used, out, &have, s->why, sizeof s->why);
  if (have) {
    memcpy(s->confirm, out, sizeof out);
    s->have_confirm = 1;
  }
  if (r >= 0 && r != HP_HS_DONE_OK)
    assert_int_equal(used, len);
  s->result = r;
  return r;
}

/* Run both sides: HELLOs cross, then CONFIRMs. */
static void run(side *a, side *b) {
  if (feed(a, b->hello, HP_HS_MSG_LEN) < 0 || feed(b, a->hello, HP_HS_MSG_LEN) < 0)
    return;
  assert_true(a->have_confirm && b->have_confirm);
  feed(a, b->confirm, HP_HS_MSG_LEN);
  feed(b, a->confirm, HP_HS_MSG_LEN);
}

static void keys_match(side *a, side *b) {
  uint8_t atx[32], arx[32], btx[32], brx[32];
  hp__hs_keys(&a->h, atx, arx);
  hp__hs_keys(&b->h, btx, brx);
  assert_memory_equal(atx, brx, 32);
  assert_memory_equal(arx, btx, 32);
  assert_memory_not_equal(atx, arx, 32);
}

static void test_right_code(void **state) {
  side a, b;
  (void)state;
  start(&a, 'a', psk1, SESSION);
  start(&b, 'b', psk1, SESSION);
  run(&a, &b);
  assert_int_equal(a.result, HP_HS_DONE_OK);
  assert_int_equal(b.result, HP_HS_DONE_OK);
  assert_int_equal(a.h.st, HP_HS_DONE);
  keys_match(&a, &b);
  /* Feeding after DONE consumes nothing. */
  assert_int_equal(feed(&a, (const uint8_t *)"xyz", 3), HP_HS_DONE_OK);
}

static void test_no_code(void **state) {
  side a, b, c;
  (void)state;
  start(&a, 'a', NULL, SESSION);
  start(&b, 'b', NULL, SESSION);
  run(&a, &b);
  assert_int_equal(a.result, HP_HS_DONE_OK);
  assert_int_equal(b.result, HP_HS_DONE_OK);
  keys_match(&a, &b);
  /* Fresh ephemeral keys every time: another run gives other keys. */
  start(&c, 'a', NULL, SESSION);
  assert_memory_not_equal(a.hello, c.hello, HP_HS_MSG_LEN);
}

static void test_wrong_code(void **state) {
  side a, b;
  (void)state;
  start(&a, 'a', psk1, SESSION);
  start(&b, 'b', psk2, SESSION);
  run(&a, &b);
  assert_int_equal(a.result, -EACCES);
  assert_int_equal(b.result, -EACCES);
  assert_string_equal(
      a.why, "the peer does not know the code: wrong code, or someone else joined the room");
  assert_int_equal(a.h.st, HP_HS_FAILED);
  /* The secrets are gone. */
  {
    static const uint8_t zero[32];
    assert_memory_equal(a.h.tx, zero, 32);
    assert_memory_equal(a.h.psk, zero, 32);
  }
  /* Failed stays failed. */
  assert_int_equal(feed(&a, b.confirm, HP_HS_MSG_LEN), -EPROTO);
}

static void test_code_on_one_side(void **state) {
  side a, b;
  (void)state;
  start(&a, 'a', psk1, SESSION);
  start(&b, 'b', NULL, SESSION);
  run(&a, &b);
  assert_int_equal(a.result, -EACCES);
  assert_non_null(strstr(a.why, "does not know the code"));
  start(&a, 'a', psk1, SESSION);
  start(&b, 'b', NULL, SESSION);
  assert_int_equal(feed(&b, a.hello, HP_HS_MSG_LEN), -EACCES);
  assert_non_null(strstr(b.why, "--code"));
}

static void test_bound_to_session_and_ids(void **state) {
  side a, b;
  hp__hs_params p = {SESSION, "bob", "mallory", 'b', psk1};
  (void)state;
  /* Another session (a replayed or relayed handshake of another pairing). */
  start(&a, 'a', psk1, SESSION);
  start(&b, 'b', psk1, "ffffffffffffffffffffffffffffffff");
  run(&a, &b);
  assert_int_equal(a.result, -EACCES);
  assert_int_equal(b.result, -EACCES);
  /* b thinks its peer is someone else. */
  start(&a, 'a', psk1, SESSION);
  memset(&b, 0, sizeof b);
  assert_int_equal(hp__hs_init(&b.h, &p, b.hello), 0);
  run(&a, &b);
  assert_int_equal(a.result, -EACCES);
  /* Both claim role a (a lying rendezvous): no agreement. */
  start(&a, 'a', psk1, SESSION);
  start(&b, 'a', psk1, SESSION);
  run(&a, &b);
  assert_true(a.result < 0 && b.result < 0);
}

static void test_bytewise_and_trailing(void **state) {
  side a, b;
  uint8_t in[HP_HS_MSG_LEN + 5];
  size_t i, used;
  int have, r = 0;
  uint8_t out[HP_HS_MSG_LEN];
  (void)state;
  start(&a, 'a', psk1, SESSION);
  start(&b, 'b', psk1, SESSION);
  for (i = 0; i < HP_HS_MSG_LEN; i++)
    assert_int_equal(feed(&a, b.hello + i, 1), HP_HS_AGAIN);
  assert_true(a.have_confirm);
  assert_int_equal(feed(&b, a.hello, HP_HS_MSG_LEN), HP_HS_AGAIN);
  /* b's CONFIRM followed by 5 record bytes: those stay with the caller. */
  memcpy(in, b.confirm, HP_HS_MSG_LEN);
  memcpy(in + HP_HS_MSG_LEN, "REC!!", 5);
  r = hp__hs_feed(&a.h, in, sizeof in, &used, out, &have, a.why, sizeof a.why);
  assert_int_equal(r, HP_HS_DONE_OK);
  assert_int_equal(used, HP_HS_MSG_LEN);
  assert_int_equal(have, 0);
}

static void test_strangers(void **state) {
  side b;
  uint8_t msg[HP_HS_MSG_LEN];
  (void)state;
  start(&b, 'b', psk1, SESSION);
  assert_int_equal(feed(&b, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), -EPROTO);
  assert_non_null(strstr(b.why, "does not speak"));
  /* Refused at the first wrong byte, not after a whole message. */
  start(&b, 'b', psk1, SESSION);
  assert_int_equal(feed(&b, (const uint8_t *)"X", 1), -EPROTO);
  /* Another version. */
  start(&b, 'b', psk1, SESSION);
  memcpy(msg, "HPS\x02", 4);
  assert_int_equal(feed(&b, msg, 4), -EPROTO);
  assert_non_null(strstr(b.why, "version"));
  /* A CONFIRM first. */
  start(&b, 'b', psk1, SESSION);
  memset(msg, 0, sizeof msg);
  memcpy(msg, "HPS\x01\x02\x01", 6);
  assert_int_equal(feed(&b, msg, sizeof msg), -EPROTO);
  /* A weak (all-zero, low-order) X25519 key. */
  start(&b, 'b', psk1, SESSION);
  memcpy(msg, "HPS\x01\x01\x01", 6);
  assert_int_equal(feed(&b, msg, sizeof msg), -EPROTO);
  assert_non_null(strstr(b.why, "X25519"));
  /* An unknown mode. */
  start(&b, 'b', psk1, SESSION);
  memcpy(msg, "HPS\x01\x01\x07", 6);
  assert_int_equal(feed(&b, msg, sizeof msg), -EPROTO);
}

static void test_tampered(void **state) {
  side a, b;
  size_t i;
  (void)state;
  /* Any bit of a HELLO's key or of a CONFIRM's MAC changed: refused. */
  for (i = 6; i < HP_HS_MSG_LEN; i += 7) {
    start(&a, 'a', psk1, SESSION);
    start(&b, 'b', psk1, SESSION);
    a.hello[i] ^= 0x10;
    run(&a, &b);
    assert_true(a.result < 0 || b.result < 0);
    assert_true(a.result != HP_HS_DONE_OK || b.result != HP_HS_DONE_OK);
    start(&a, 'a', psk1, SESSION);
    start(&b, 'b', psk1, SESSION);
    feed(&a, b.hello, HP_HS_MSG_LEN);
    feed(&b, a.hello, HP_HS_MSG_LEN);
    a.confirm[i] ^= 0x01;
    assert_int_equal(feed(&b, a.confirm, HP_HS_MSG_LEN), -EACCES);
  }
}

static void test_bad_params(void **state) {
  hp__hs h;
  uint8_t out[HP_HS_MSG_LEN];
  hp__hs_params p = {SESSION, "a", "b", 'c', NULL};
  (void)state;
  assert_int_equal(hp__hs_init(&h, &p, out), -EINVAL);
  p.role = 'a';
  p.session = NULL;
  assert_int_equal(hp__hs_init(&h, &p, out), -EINVAL);
  p.session = "0123456789abcdef0123456789abcdef0";
  assert_int_equal(hp__hs_init(&h, &p, out), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_right_code),
      cmocka_unit_test(test_no_code),
      cmocka_unit_test(test_wrong_code),
      cmocka_unit_test(test_code_on_one_side),
      cmocka_unit_test(test_bound_to_session_and_ids),
      cmocka_unit_test(test_bytewise_and_trailing),
      cmocka_unit_test(test_strangers),
      cmocka_unit_test(test_tampered),
      cmocka_unit_test(test_bad_params),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
