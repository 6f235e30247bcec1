/*
 * test_relay_msg.c - the relay WebSocket's text messages (src/core/relay_msg.c):
 * each type both ways, and the refusals a worker or the service sends back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "relay_msg.h"

#define SESS "0123456789abcdef0123456789abcdef"

static int dec(const char *text, hp__relay_msg *m, hp__wire_err *e) {
  return hp__relay_msg_decode(text, strlen(text), m, e);
}

static void refused(const char *text, const char *code, const char *needle) {
  hp__relay_msg m;
  hp__wire_err e;

  assert_int_equal(dec(text, &m, &e), -1);
  assert_string_equal(e.code, code);
  assert_non_null(strstr(e.message, needle));
}

static void test_join(void **state) {
  hp__relay_msg m, m2;
  hp__wire_err e;
  char buf[HP_RELAY_MSG_MAX + 1];
  int n;

  (void)state;
  assert_int_equal(
      dec("{\"type\":\"join\",\"v\":1,\"session\":\"" SESS "\",\"id\":\"w-1\"}", &m, &e), 0);
  assert_int_equal(m.type, HP_RELAY_JOIN);
  assert_string_equal(m.session, SESS);
  assert_string_equal(m.id, "w-1");
  n = hp__relay_msg_encode(&m, buf, sizeof(buf));
  assert_true(n > 0);
  assert_string_equal(buf, "{\"type\":\"join\",\"v\":1,\"session\":\"" SESS "\",\"id\":\"w-1\"}");
  assert_int_equal(dec(buf, &m2, &e), 0);
  assert_memory_equal(&m, &m2, sizeof(m));
  refused("{\"type\":\"join\",\"v\":2,\"session\":\"" SESS "\",\"id\":\"w\"}",
          "unsupported_version", "\"v\"");
  refused("{\"type\":\"join\",\"session\":\"" SESS "\",\"id\":\"w\"}", "bad_message", "\"v\"");
  refused("{\"type\":\"join\",\"v\":1,\"session\":\"0123\",\"id\":\"w\"}", "bad_message",
          "\"session\"");
  refused(
      "{\"type\":\"join\",\"v\":1,\"session\":\"0123456789ABCDEF0123456789abcdef\",\"id\":\"w\"}",
      "bad_message", "lowercase");
  refused("{\"type\":\"join\",\"v\":1,\"session\":\"" SESS "\",\"id\":\"a b\"}", "bad_message",
          "\"id\"");
  refused("{\"type\":\"join\",\"v\":1,\"session\":\"" SESS "\"}", "bad_message",
          "\"id\" is missing");
}

static void test_others(void **state) {
  hp__relay_msg m;
  hp__wire_err e;
  char buf[HP_RELAY_MSG_MAX + 1];

  (void)state;
  assert_int_equal(dec("{\"type\":\"ready\",\"peer\":\"b-2\"}", &m, &e), 0);
  assert_int_equal(m.type, HP_RELAY_READY);
  assert_string_equal(m.id, "b-2");
  assert_int_equal(dec("{\"type\":\"eof\"}", &m, &e), 0);
  assert_int_equal(m.type, HP_RELAY_EOF);
  assert_true(hp__relay_msg_encode(&m, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "{\"type\":\"eof\"}");
  assert_int_equal(
      dec("{\"type\":\"error\",\"code\":\"relay_limit\",\"message\":\"over\"}", &m, &e), 0);
  assert_int_equal(m.type, HP_RELAY_ERROR);
  assert_string_equal(m.code, "relay_limit");
  assert_string_equal(m.message, "over");
  refused("{\"type\":\"error\",\"code\":\"Bad\",\"message\":\"x\"}", "bad_message", "a-z");
  refused("{\"type\":\"hello\"}", "bad_message", "join");
  refused("[1]", "bad_message", "object");
  refused("{\"type\":\"eof\",\"type\":\"eof\"}", "bad_message", "JSON");
  refused("{nope", "bad_message", "JSON");
}

static void test_limits(void **state) {
  char big[HP_RELAY_MSG_MAX + 2];
  hp__relay_msg m;
  hp__wire_err e;

  (void)state;
  /* {"type":"eof","pad":"aaa..."}: exactly the cap passes, one more is too_large. */
  memset(big, 'a', sizeof(big));
  memcpy(big, "{\"type\":\"eof\",\"pad\":\"", 21);
  memcpy(big + HP_RELAY_MSG_MAX - 2, "\"}", 2);
  assert_int_equal(hp__relay_msg_decode(big, HP_RELAY_MSG_MAX, &m, &e), 0);
  memcpy(big + HP_RELAY_MSG_MAX - 1, "\"}", 2);
  assert_int_equal(hp__relay_msg_decode(big, HP_RELAY_MSG_MAX + 1, &m, &e), -1);
  assert_string_equal(e.code, "too_large");
  /* Encoding refuses what it could not decode, and a small buffer. */
  memset(&m, 0, sizeof(m));
  m.type = HP_RELAY_JOIN;
  strcpy(m.session, "xyz");
  strcpy(m.id, "w");
  assert_int_equal(hp__relay_msg_encode(&m, big, sizeof(big)), -EINVAL);
  m.type = HP_RELAY_EOF;
  assert_int_equal(hp__relay_msg_encode(&m, big, 4), -ENOSPC);
  assert_true(hp__relay_valid_session(SESS, 32));
  assert_false(hp__relay_valid_session(SESS, 31));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_join),
      cmocka_unit_test(test_others),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
