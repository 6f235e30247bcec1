/* test_wire.c - signaling messages: round trips and every class of bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define SESSION "0123456789abcdef0123456789abcdef"

static hp__msg roundtrip(const hp__msg *m) {
  hp__msg back;
  hp__wire_err err;
  size_t len = 0;
  char *s = hp__msg_encode(m, &len);

  assert_non_null(s);
  assert_int_equal(len, strlen(s));
  /* Compact: no whitespace between tokens. */
  assert_null(strstr(s, ", "));
  assert_null(strstr(s, "\": "));
  if (hp__msg_decode(s, len, &back, &err) != 0)
    fail_msg("decode of %s failed: %s %s", s, err.code, err.message);
  free(s);
  return back;
}

static void test_roundtrip_hello(void **state) {
  hp__msg m, b;
  (void)state;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_HELLO;
  m.u.hello.v = 1;
  strcpy(m.u.hello.id, "w-1.A_b");
  strcpy(m.u.hello.room, "lab");
  m.u.hello.cands.n = 2;
  m.u.hello.cands.c[0].kind = HP_CAND_HOST;
  strcpy(m.u.hello.cands.c[0].addr, "10.0.0.2:8082");
  m.u.hello.cands.c[1].kind = HP_CAND_SRFLX;
  strcpy(m.u.hello.cands.c[1].addr, "[2001:db8::1]:40000");
  b = roundtrip(&m);
  assert_int_equal(b.type, HP_MSG_HELLO);
  assert_int_equal(b.u.hello.v, 1);
  assert_string_equal(b.u.hello.id, "w-1.A_b");
  assert_string_equal(b.u.hello.room, "lab");
  assert_int_equal(b.u.hello.cands.n, 2);
  assert_int_equal(b.u.hello.cands.c[0].kind, HP_CAND_HOST);
  assert_string_equal(b.u.hello.cands.c[0].addr, "10.0.0.2:8082");
  assert_int_equal(b.u.hello.cands.c[1].kind, HP_CAND_SRFLX);
  assert_string_equal(b.u.hello.cands.c[1].addr, "[2001:db8::1]:40000");

  /* No id, no room: id stays absent, room becomes "default". */
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_HELLO;
  b = roundtrip(&m);
  assert_string_equal(b.u.hello.id, "");
  assert_string_equal(b.u.hello.room, "default");
  assert_int_equal(b.u.hello.cands.n, 0);
}

static void test_roundtrip_welcome(void **state) {
  hp__msg m, b;
  (void)state;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_WELCOME;
  strcpy(m.u.welcome.id, "abc");
  strcpy(m.u.welcome.room, "default");
  strcpy(m.u.welcome.observed, "198.51.100.2:40000");
  b = roundtrip(&m);
  assert_int_equal(b.type, HP_MSG_WELCOME);
  assert_string_equal(b.u.welcome.id, "abc");
  assert_string_equal(b.u.welcome.room, "default");
  assert_string_equal(b.u.welcome.observed, "198.51.100.2:40000");

  /* observed is optional (unknown behind a proxy). */
  m.u.welcome.observed[0] = '\0';
  b = roundtrip(&m);
  assert_string_equal(b.u.welcome.observed, "");
}

static void test_roundtrip_peer(void **state) {
  hp__msg m, b;
  (void)state;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_PEER;
  strcpy(m.u.peer.room, "r1");
  m.u.peer.role = 'b';
  strcpy(m.u.peer.session, SESSION);
  strcpy(m.u.peer.peer_id, "other");
  strcpy(m.u.peer.peer_observed, "203.0.113.5:1234");
  m.u.peer.peer_cands.n = HP_CANDS_MAX;
  for (size_t i = 0; i < HP_CANDS_MAX; i++) {
    m.u.peer.peer_cands.c[i].kind = i % 2 ? HP_CAND_SRFLX : HP_CAND_HOST;
    snprintf(m.u.peer.peer_cands.c[i].addr, HP_ADDR_STRLEN, "10.0.0.%zu:%zu", i + 1, 1000 + i);
  }
  m.u.peer.start_in_ms = 250;
  m.u.peer.start_at_us = 9007199254740991ULL; /* 2^53 - 1: the largest allowed */
  b = roundtrip(&m);
  assert_int_equal(b.type, HP_MSG_PEER);
  assert_string_equal(b.u.peer.room, "r1");
  assert_int_equal(b.u.peer.role, 'b');
  assert_string_equal(b.u.peer.session, SESSION);
  assert_string_equal(b.u.peer.peer_id, "other");
  assert_string_equal(b.u.peer.peer_observed, "203.0.113.5:1234");
  assert_int_equal(b.u.peer.peer_cands.n, HP_CANDS_MAX);
  assert_string_equal(b.u.peer.peer_cands.c[7].addr, "10.0.0.8:1007");
  assert_int_equal(b.u.peer.peer_cands.c[7].kind, HP_CAND_SRFLX);
  assert_int_equal(b.u.peer.start_in_ms, 250);
  assert_true(b.u.peer.start_at_us == 9007199254740991ULL);
  /* Absent (0) stays absent: a version-1 peer message without it. */
  m.u.peer.start_at_us = 0;
  b = roundtrip(&m);
  assert_true(b.u.peer.start_at_us == 0);
}

static void test_roundtrip_result(void **state) {
  hp__msg m, b;
  (void)state;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_RESULT;
  m.u.result.status = HP_RESULT_DIRECT;
  strcpy(m.u.result.addr, "203.0.113.5:1234");
  m.u.result.elapsed_ms = 0;
  b = roundtrip(&m);
  assert_int_equal(b.u.result.status, HP_RESULT_DIRECT);
  assert_string_equal(b.u.result.addr, "203.0.113.5:1234");
  assert_int_equal(b.u.result.elapsed_ms, 0);
  assert_string_equal(b.u.result.reason, "");

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_RESULT;
  m.u.result.status = HP_RESULT_FAILED;
  m.u.result.elapsed_ms = -1;
  memset(m.u.result.reason, 'x', HP_REASON_MAX - 1);
  b = roundtrip(&m);
  assert_int_equal(b.u.result.status, HP_RESULT_FAILED);
  assert_string_equal(b.u.result.addr, "");
  assert_int_equal(b.u.result.elapsed_ms, -1);
  assert_int_equal(strlen(b.u.result.reason), HP_REASON_MAX - 1);

  /* Relayed (issue 8): the reason is why the direct connection failed. */
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_RESULT;
  m.u.result.status = HP_RESULT_RELAYED;
  m.u.result.elapsed_ms = 5100;
  strcpy(m.u.result.reason, "no direct connection within RELAY_AFTER (5.0 s)");
  b = roundtrip(&m);
  assert_int_equal(b.u.result.status, HP_RESULT_RELAYED);
  assert_string_equal(b.u.result.reason, m.u.result.reason);
}

static void test_roundtrip_error(void **state) {
  hp__msg m, b;
  (void)state;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_ERROR;
  strcpy(m.u.error.code, "room_full");
  strcpy(m.u.error.message, "Room \"x\" is full: \u00e9 try another.");
  b = roundtrip(&m);
  assert_int_equal(b.type, HP_MSG_ERROR);
  assert_string_equal(b.u.error.code, "room_full");
  assert_string_equal(b.u.error.message, m.u.error.message);
}

static void test_encode_exact(void **state) {
  hp__msg m;
  char *s;
  (void)state;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_HELLO;
  strcpy(m.u.hello.room, "r");
  s = hp__msg_encode(&m, NULL);
  assert_string_equal(s, "{\"type\":\"hello\",\"v\":1,\"room\":\"r\",\"candidates\":[]}");
  free(s);

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_ERROR;
  strcpy(m.u.error.code, "too_large");
  strcpy(m.u.error.message, "big");
  s = hp__msg_encode(&m, NULL);
  assert_string_equal(s, "{\"type\":\"error\",\"code\":\"too_large\",\"message\":\"big\"}");
  free(s);

  {
    hp__cands c = {.n = 1};
    c.c[0].kind = HP_CAND_SRFLX;
    strcpy(c.c[0].addr, "1.2.3.4:5");
    s = hp__cands_encode(&c, NULL);
    assert_string_equal(s, "[{\"kind\":\"srflx\",\"addr\":\"1.2.3.4:5\"}]");
    free(s);
  }
  m.type = 0; /* not a message type */
  assert_null(hp__msg_encode(&m, NULL));
}

/* Decoding accepted inputs: defaults and ignored extras. */
static void test_decode_accepts(void **state) {
  hp__msg m;
  hp__wire_err err;
  const char *in;
  (void)state;

  in = "{\"type\":\"hello\",\"v\":1,\"future\":{\"x\":[1,2]},\"id\":null}";
  assert_int_equal(hp__msg_decode(in, strlen(in), &m, &err), 0);
  assert_string_equal(m.u.hello.room, "default");
  assert_string_equal(m.u.hello.id, "");

  /* The length is honoured: trailing bytes after len are not read. */
  in = "{\"type\":\"hello\",\"v\":1}GARBAGE";
  assert_int_equal(hp__msg_decode(in, strlen(in) - 7, &m, &err), 0);

  in = "{\"type\":\"result\",\"status\":\"failed\",\"reason\":\"\"}";
  assert_int_equal(hp__msg_decode(in, strlen(in), &m, &err), 0);
  assert_int_equal(m.u.result.elapsed_ms, -1);
  assert_string_equal(m.u.result.reason, "");
}

struct bad_case {
  const char *in;
  const char *code;
  const char *needle; /* must appear in the message */
};

static const struct bad_case bad_cases[] = {
    /* invalid JSON, with jansson's text and position */
    {"{\"type\":", "bad_message", "not valid JSON"},
    {"{\"type\":\"hello\",}", "bad_message", "line 1, column"},
    {"", "bad_message", "not valid JSON"},
    {"{\"type\":\"hello\",\"v\":1} x", "bad_message", "not valid JSON"},
    {"{\"type\":\"hello\",\"v\":1,\"v\":1}", "bad_message", "duplicate"},
    {"{\"type\":\"hello\",\"room\":\"a\\u0000b\",\"v\":1}", "bad_message", "not valid JSON"},
    /* not an object */
    {"[1,2]", "bad_message", "must be a JSON object, not an array"},
    {"\"hello\"", "bad_message", "must be a JSON object, not a string"},
    {"42", "bad_message", "must be a JSON object"},
    {"null", "bad_message", "must be a JSON object"},
    /* type */
    {"{}", "bad_message", "no \"type\""},
    {"{\"type\":5}", "bad_message", "\"type\" must be a string, not an integer"},
    {"{\"type\":\"bye\"}", "bad_message", "type \"bye\" is not known"},
    /* hello.v */
    {"{\"type\":\"hello\"}", "bad_message", "\"v\" is missing"},
    {"{\"type\":\"hello\",\"v\":2}", "unsupported_version", "version 2"},
    {"{\"type\":\"hello\",\"v\":0}", "unsupported_version", "version 0"},
    {"{\"type\":\"hello\",\"v\":\"1\"}", "unsupported_version", "\"v\" must be the integer 1"},
    {"{\"type\":\"hello\",\"v\":1.0}", "unsupported_version", "\"v\""},
    /* hello.id, room */
    {"{\"type\":\"hello\",\"v\":1,\"id\":\"a b\"}", "bad_message",
     "id \"a b\" is not a valid name"},
    {"{\"type\":\"hello\",\"v\":1,\"id\":\"\"}", "bad_message", "id \"\" is not a valid name"},
    {"{\"type\":\"hello\",\"v\":1,\"id\":7}", "bad_message", "\"id\" must be a string"},
    {"{\"type\":\"hello\",\"v\":1,\"id\":\"use\"}", "bad_message", "reserved"},
    {"{\"type\":\"hello\",\"v\":1,\"room\":\"x/y\"}", "bad_message", "room \"x/y\" is not a valid"},
    {"{\"type\":\"hello\",\"v\":1,\"room\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
     "bad_message", "room \""},
    {"{\"type\":\"hello\",\"v\":1,\"room\":[]}", "bad_message",
     "\"room\" must be a string, not an "
     "array"},
    /* hello.candidates */
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":{}}", "bad_message",
     "\"candidates\" must be an array"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[1]}", "bad_message",
     "\"candidates[0]\" must be an object, not an integer"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":\"1.2.3.4:5\"},"
     "{\"kind\":\"host\",\"addr\":\"1.2.3.4:5\"},{\"kind\":\"host\",\"addr\":\"1.2.3.4\"}]}",
     "bad_message",
     "candidates[2].addr \"1.2.3.4\" is not an address: expected \"ip:port\" or \"[v6]:port\""},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"relay\",\"addr\":\"1.2.3.4:5\"}]}",
     "bad_message", "candidates[0].kind \"relay\" is not known"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"addr\":\"1.2.3.4:5\"}]}", "bad_message",
     "\"candidates[0].kind\" is missing"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\"}]}", "bad_message",
     "\"candidates[0].addr\" is missing"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":80}]}", "bad_message",
     "\"candidates[0].addr\" must be a string, not an integer"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{},{},{},{},{},{},{},{},{}]}", "bad_message",
     "has 9 entries; at most 8"},
    /* candidate addresses that are never a peer (issue 11, item 6) */
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":\"0.0.0.0:1\"}]}",
     "bad_message", "candidates[0].addr \"0.0.0.0:1\" is an unspecified address"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":\"1.2.3.4:5\"},"
     "{\"kind\":\"srflx\",\"addr\":\"255.255.255.255:1\"}]}",
     "bad_message", "candidates[1].addr \"255.255.255.255:1\" is a broadcast address"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":\"224.0.0.1:80\"}]}",
     "bad_message", "is a multicast address"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":\"[::]:1\"}]}",
     "bad_message", "is an unspecified address"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":\"[ff02::1]:80\"}]}",
     "bad_message", "is a multicast address"},
    {"{\"type\":\"hello\",\"v\":1,\"candidates\":[{\"kind\":\"host\",\"addr\":"
     "\"[::ffff:0.0.0.0]:80\"}]}",
     "bad_message", "is an unspecified address"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\",\"candidates\":[{\"kind\":\"host\",\"addr\":\"239.1.2.3:9\"}]},"
     "\"start_in_ms\":0}",
     "bad_message", "peer.candidates[0].addr \"239.1.2.3:9\" is a multicast address"},
    /* welcome */
    {"{\"type\":\"welcome\",\"id\":\"use\",\"room\":\"r\"}", "bad_message",
     "id \"use\" is reserved"},
    {"{\"type\":\"welcome\",\"room\":\"r\"}", "bad_message", "\"id\" is missing"},
    {"{\"type\":\"welcome\",\"id\":\"i\"}", "bad_message", "\"room\" is missing"},
    {"{\"type\":\"welcome\",\"id\":\"i\",\"room\":\"r\",\"observed\":\"x\"}", "bad_message",
     "observed \"x\" is not an address"},
    /* peer */
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"c\"}", "bad_message", "role \"c\" is not known"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"ABCDEF\"}", "bad_message",
     "session \"ABCDEF\" is not valid"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":"
     "\"0123456789ABCDEF0123456789abcdef\"}",
     "bad_message", "lowercase hex"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION "\"}", "bad_message",
     "\"peer\" is missing"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION "\",\"peer\":[]}",
     "bad_message", "\"peer\" must be an object"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\",\"candidates\":[{\"kind\":\"host\",\"addr\":\"1:2:3\"}]},"
     "\"start_in_ms\":0}",
     "bad_message", "peer.candidates[0].addr \"1:2:3\" is not an address"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"observed\":\"1.2.3.4:5\"},\"start_in_ms\":0}",
     "bad_message", "\"peer.id\" is missing"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"}}",
     "bad_message", "\"start_in_ms\" is missing"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"},\"start_in_ms\":-1}",
     "bad_message", "\"start_in_ms\" is -1"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"},\"start_in_ms\":10001}",
     "bad_message", "\"start_in_ms\" is 10001: expected an integer from 0 to 10000"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"},\"start_in_ms\":0,\"start_at_us\":0}",
     "bad_message", "\"start_at_us\" must be an integer from 1 to 2^53-1"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"},\"start_in_ms\":0,\"start_at_us\":9007199254740992}",
     "bad_message", "\"start_at_us\" must be an integer from 1 to 2^53-1"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"},\"start_in_ms\":0,\"start_at_us\":\"5\"}",
     "bad_message", "\"start_at_us\" must be an integer from 1 to 2^53-1"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"use\"},\"start_in_ms\":0}",
     "bad_message", "peer.id \"use\" is reserved"},
    {"{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
     "\",\"peer\":{\"id\":\"p\"},\"start_in_ms\":1.5}",
     "bad_message", "\"start_in_ms\" must be a non-negative integer"},
    /* result */
    {"{\"type\":\"result\"}", "bad_message", "\"status\" is missing"},
    {"{\"type\":\"result\",\"status\":\"ok\"}", "bad_message", "status \"ok\" is not known"},
    {"{\"type\":\"result\",\"status\":\"direct\",\"addr\":\"[::1]\"}", "bad_message",
     "addr \"[::1]\" is not an address"},
    {"{\"type\":\"result\",\"status\":\"direct\",\"elapsed_ms\":-5}", "bad_message",
     "\"elapsed_ms\" is -5"},
    {"{\"type\":\"result\",\"status\":\"direct\",\"elapsed_ms\":\"5\"}", "bad_message",
     "\"elapsed_ms\" must be a non-negative integer, not a string"},
    {"{\"type\":\"result\",\"status\":\"failed\",\"reason\":false}", "bad_message",
     "\"reason\" must be a string, not a boolean"},
    /* error */
    {"{\"type\":\"error\",\"message\":\"m\"}", "bad_message", "\"code\" is missing"},
    {"{\"type\":\"error\",\"code\":\"x\"}", "bad_message", "\"message\" is missing"},
    {"{\"type\":\"error\",\"code\":\"Bad Code\",\"message\":\"m\"}", "bad_message", "\"code\""},
};

static void test_decode_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    const struct bad_case *c = &bad_cases[i];
    hp__msg m;
    hp__wire_err err;
    int r = hp__msg_decode(c->in, strlen(c->in), &m, &err);

    if (r != -1)
      fail_msg("case %zu (%s): accepted", i, c->in);
    if (err.code == NULL || strcmp(err.code, c->code) != 0)
      fail_msg("case %zu (%s): code %s, want %s (%s)", i, c->in, err.code, c->code, err.message);
    if (strstr(err.message, c->needle) == NULL)
      fail_msg("case %zu (%s): message \"%s\" lacks \"%s\"", i, c->in, err.message, c->needle);
  }
}

static void test_decode_reason_too_long(void **state) {
  char in[HP_REASON_MAX + 100];
  hp__msg m;
  hp__wire_err err;
  int n;
  (void)state;

  n = snprintf(in, sizeof(in), "{\"type\":\"result\",\"status\":\"failed\",\"reason\":\"");
  memset(in + n, 'r', HP_REASON_MAX);
  strcpy(in + n + HP_REASON_MAX, "\"}");
  assert_int_equal(hp__msg_decode(in, strlen(in), &m, &err), -1);
  assert_string_equal(err.code, "bad_message");
  assert_non_null(strstr(err.message, "\"reason\" is 256 bytes long; at most 255"));
}

static void test_decode_too_large(void **state) {
  size_t len = HP_MSG_MAX + 1;
  char *big = malloc(len);
  hp__msg m;
  hp__wire_err err;
  (void)state;

  assert_non_null(big);
  /* A valid object padded with spaces: refused on size alone. */
  memset(big, ' ', len);
  memcpy(big, "{\"type\":\"hello\",\"v\":1}", 22);
  assert_int_equal(hp__msg_decode(big, len, &m, &err), -1);
  assert_string_equal(err.code, "too_large");
  assert_non_null(strstr(err.message, "65537 bytes"));
  /* Exactly at the limit is still read. */
  assert_int_equal(hp__msg_decode(big, HP_MSG_MAX, &m, &err), 0);
  free(big);
}

static const char *const valid_inputs[] = {
    "{\"type\":\"hello\",\"v\":1,\"id\":\"w1\",\"room\":\"lab\",\"candidates\":[{\"kind\":"
    "\"host\",\"addr\":\"10.0.0.2:8082\"},{\"kind\":\"srflx\",\"addr\":\"[::1]:9\"}]}",
    "{\"type\":\"welcome\",\"id\":\"w1\",\"room\":\"lab\",\"observed\":\"1.2.3.4:5\"}",
    "{\"type\":\"peer\",\"room\":\"r\",\"role\":\"a\",\"session\":\"" SESSION
    "\",\"peer\":{\"id\":\"p\",\"observed\":\"1.2.3.4:5\",\"candidates\":[{\"kind\":\"host\","
    "\"addr\":\"1.2.3.4:5\"}]},\"start_in_ms\":10}",
    "{\"type\":\"result\",\"status\":\"direct\",\"addr\":\"1.2.3.4:5\",\"elapsed_ms\":3,"
    "\"reason\":\"r\"}",
    "{\"type\":\"error\",\"code\":\"bad_message\",\"message\":\"m\"}",
};

static void assert_refusal(const hp__wire_err *err) {
  assert_non_null(err->code);
  assert_true(strcmp(err->code, "bad_message") == 0 ||
              strcmp(err->code, "unsupported_version") == 0 || strcmp(err->code, "too_large") == 0);
  assert_true(strlen(err->message) > 10);
}

/* Every proper prefix of a valid message is refused as bad_message. */
static void test_decode_truncations(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(valid_inputs) / sizeof(valid_inputs[0]); i++) {
    const char *in = valid_inputs[i];
    hp__msg m;
    hp__wire_err err;

    assert_int_equal(hp__msg_decode(in, strlen(in), &m, &err), 0);
    for (size_t len = 0; len < strlen(in); len++) {
      if (hp__msg_decode(in, len, &m, &err) != -1)
        fail_msg("prefix %zu of %s accepted", len, in);
      assert_string_equal(err.code, "bad_message");
    }
  }
}

/*
 * Deterministic mutations (a small fuzz pass that runs in every build): any
 * byte replaced by any other gives either a valid message or a refusal with a
 * protocol code and a sentence; never a crash (run under ASan/UBSan too).
 */
static void test_decode_mutations(void **state) {
  uint32_t rng = 12345;
  static const char interesting[] = "{}[]\":,\\0123456789-.eE tnf\x00\x80\xff";
  (void)state;

  for (int round = 0; round < 20000; round++) {
    const char *in = valid_inputs[round % (sizeof(valid_inputs) / sizeof(valid_inputs[0]))];
    char buf[512];
    size_t len = strlen(in);
    hp__msg m;
    hp__wire_err err;
    int edits;

    memcpy(buf, in, len);
    rng = rng * 1103515245u + 12345u;
    edits = 1 + (int)((rng >> 16) % 3);
    for (int e = 0; e < edits; e++) {
      rng = rng * 1103515245u + 12345u;
      size_t pos = (rng >> 8) % len;
      rng = rng * 1103515245u + 12345u;
      buf[pos] = interesting[(rng >> 16) % (sizeof(interesting) - 1)];
    }
    if (hp__msg_decode(buf, len, &m, &err) != 0)
      assert_refusal(&err);
  }
}

/*
 * Regression (found by tests/fuzz/fuzz_wire.c): jansson's error text quotes
 * the input near the error, here the first byte of a 2-byte UTF-8 sequence.
 * The refusal's message is sent back in an "error" message, so it must stay
 * valid UTF-8, i.e. encodable.
 */
static void test_decode_error_text_is_utf8(void **state) {
  static const char in[] = "{\"type\":\"eli\\\"-w1\\\xd9\x8c \"}";
  hp__msg m, back;
  hp__wire_err err;
  char *enc;
  size_t len;
  (void)state;

  assert_int_equal(hp__msg_decode(in, sizeof(in) - 1, &m, &err), -1);
  assert_string_equal(err.code, "bad_message");
  assert_non_null(strstr(err.message, "invalid escape"));
  for (const char *p = err.message; *p != '\0'; p++)
    assert_true((unsigned char)*p >= ' ' && (unsigned char)*p < 0x7f);
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_ERROR;
  strcpy(m.u.error.code, err.code);
  strcpy(m.u.error.message, err.message);
  enc = hp__msg_encode(&m, &len);
  assert_non_null(enc);
  assert_int_equal(hp__msg_decode(enc, len, &back, &err), 0);
  assert_string_equal(back.u.error.message, m.u.error.message);
  free(enc);
}

/* Deep nesting is refused by the parser's depth limit, not by the stack. */
static void test_decode_deep(void **state) {
  size_t len = HP_MSG_MAX;
  char *deep = malloc(len);
  hp__msg m;
  hp__wire_err err;
  (void)state;

  assert_non_null(deep);
  memset(deep, '[', len);
  assert_int_equal(hp__msg_decode(deep, len, &m, &err), -1);
  assert_string_equal(err.code, "bad_message");
  free(deep);
}

static void test_valid_name(void **state) {
  static const struct {
    const char *s;
    int ok;
  } cases[] = {
      {"a", 1}, {"default", 1}, {"A-z_0.9", 1}, {"", 0},    {"a b", 0},
      {"ä", 0}, {"a/b", 0},     {"a:b", 0},     {"a\n", 0},
  };
  char s64[66];
  (void)state;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_int_equal(hp__wire_valid_name(cases[i].s, strlen(cases[i].s)), cases[i].ok);
  memset(s64, 'x', sizeof(s64));
  assert_int_equal(hp__wire_valid_name(s64, 64), 1);
  assert_int_equal(hp__wire_valid_name(s64, 65), 0);
  assert_int_equal(hp__wire_valid_name("ab\0c", 4), 0);
  assert_int_equal(hp__wire_valid_name(NULL, 0), 0);
}

static void test_random_hex(void **state) {
  char a[2 * 16 + 1], b[2 * 16 + 1], big[2 * 100 + 1];
  (void)state;

  assert_int_equal(hp__random_hex(a, 16), 0);
  assert_int_equal(hp__random_hex(b, 16), 0);
  assert_int_equal(strlen(a), 32);
  assert_int_equal(strspn(a, "0123456789abcdef"), 32);
  assert_string_not_equal(a, b);
  /* More than one internal chunk. */
  assert_int_equal(hp__random_hex(big, 100), 0);
  assert_int_equal(strspn(big, "0123456789abcdef"), 200);
  assert_int_equal(strlen(big), 200);
}

/* peer.relay_url (issue 10): optional, a URL, round-trips. */
static void test_peer_relay_url(void **state) {
  static const char base[] = "{\"type\":\"peer\",\"room\":\"r\",\"role\":\"b\",\"session\":"
                             "\"5f0c9a2e4b7d41c8a0e3f6b19d2c7e44\",\"peer\":{\"id\":\"p\"},"
                             "\"start_in_ms\":0";
  char buf[512];
  hp__msg m, m2;
  hp__wire_err err;
  char *t;
  size_t n = 0;
  (void)state;

  snprintf(buf, sizeof(buf), "%s}", base);
  assert_int_equal(hp__msg_decode(buf, strlen(buf), &m, &err), 0);
  assert_string_equal(m.u.peer.relay_url, "");
  t = hp__msg_encode(&m, &n);
  assert_non_null(t);
  assert_null(strstr(t, "relay_url")); /* left out when absent */
  free(t);
  snprintf(buf, sizeof(buf), "%s,\"relay_url\":\"https://rdv-1.example.org/hp\"}", base);
  assert_int_equal(hp__msg_decode(buf, strlen(buf), &m, &err), 0);
  assert_string_equal(m.u.peer.relay_url, "https://rdv-1.example.org/hp");
  t = hp__msg_encode(&m, &n);
  assert_non_null(t);
  assert_int_equal(hp__msg_decode(t, n, &m2, &err), 0);
  assert_memory_equal(&m, &m2, sizeof(m));
  free(t);
  snprintf(buf, sizeof(buf), "%s,\"relay_url\":\"ftp://x\"}", base);
  assert_int_equal(hp__msg_decode(buf, strlen(buf), &m, &err), -1);
  assert_string_equal(err.code, "bad_message");
  assert_non_null(strstr(err.message, "relay_url"));
  snprintf(buf, sizeof(buf), "%s,\"relay_url\":7}", base);
  assert_int_equal(hp__msg_decode(buf, strlen(buf), &m, &err), -1);
}

/* The room store's payload: encode, decode, limits. */
static void test_peer_payload(void **state) {
  hp__peer_payload p, q;
  hp__wire_err err;
  char *t, big[HP_PEER_PAYLOAD_MAX + 2];
  size_t n = 0;
  (void)state;

  memset(&p, 0, sizeof(p));
  t = hp__peer_payload_encode(&p, &n);
  assert_string_equal(t, "{}");
  assert_int_equal(hp__peer_payload_decode(t, n, &q, &err), 0);
  assert_memory_equal(&p, &q, sizeof(p));
  free(t);
  snprintf(p.observed, sizeof(p.observed), "198.51.100.2:40000");
  p.cands.n = 2;
  p.cands.c[0].kind = HP_CAND_SRFLX;
  snprintf(p.cands.c[0].addr, sizeof(p.cands.c[0].addr), "198.51.100.2:8082");
  p.cands.c[1].kind = HP_CAND_HOST;
  snprintf(p.cands.c[1].addr, sizeof(p.cands.c[1].addr), "[2001:db8::2]:8082");
  snprintf(p.relay_url, sizeof(p.relay_url), "ws://rdv.example:8080");
  t = hp__peer_payload_encode(&p, &n);
  assert_non_null(t);
  assert_int_equal(hp__peer_payload_decode(t, n, &q, &err), 0);
  assert_memory_equal(&p, &q, sizeof(p));
  free(t);
  /* what another instance wrote is checked like a message */
  assert_int_equal(hp__peer_payload_decode("{\"observed\":\"nowhere:1\"}", 24, &q, &err), -1);
  assert_string_equal(err.code, "bad_message");
  assert_int_equal(hp__peer_payload_decode("[]", 2, &q, &err), -1);
  assert_int_equal(hp__peer_payload_decode("{", 1, &q, &err), -1);
  memset(big, ' ', sizeof(big));
  big[0] = '{';
  big[sizeof(big) - 1] = '}';
  assert_int_equal(hp__peer_payload_decode(big, sizeof(big), &q, &err), -1);
  assert_string_equal(err.code, "too_large");
  assert_int_equal(hp__peer_payload_decode(big + 1, sizeof(big) - 2, &q, &err), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_hello),
      cmocka_unit_test(test_roundtrip_welcome),
      cmocka_unit_test(test_roundtrip_peer),
      cmocka_unit_test(test_roundtrip_result),
      cmocka_unit_test(test_roundtrip_error),
      cmocka_unit_test(test_encode_exact),
      cmocka_unit_test(test_decode_accepts),
      cmocka_unit_test(test_decode_bad),
      cmocka_unit_test(test_decode_reason_too_long),
      cmocka_unit_test(test_decode_too_large),
      cmocka_unit_test(test_decode_truncations),
      cmocka_unit_test(test_decode_mutations),
      cmocka_unit_test(test_decode_deep),
      cmocka_unit_test(test_decode_error_text_is_utf8),
      cmocka_unit_test(test_valid_name),
      cmocka_unit_test(test_random_hex),
      cmocka_unit_test(test_peer_relay_url),
      cmocka_unit_test(test_peer_payload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
