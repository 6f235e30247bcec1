/* test_peerhello.c - the hello and nomination lines of a direct connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "peerhello.h"

#define S "0123456789abcdef0123456789abcdef"
#define S2 "0123456789abcdef0123456789abcdee"

struct check_case {
  const char *in;
  const char *expected_id; /* NULL: any */
  hp__peerhello_verdict want;
  size_t consumed; /* for OK / USE */
  const char *why; /* for BAD */
};

static const struct check_case cases[] = {
    {"HOLEPUNCH/1 " S " peer-b\n", "peer-b", HP_PH_OK, 52, NULL},
    {"HOLEPUNCH/1 " S " peer-b\nhello", "peer-b", HP_PH_OK, 52, NULL},
    {"HOLEPUNCH/1 " S " anyone\n", NULL, HP_PH_OK, 52, NULL},
    {"HOLEPUNCH/1 " S " use\n", "peer-b", HP_PH_USE, 49, NULL},
    {"HOLEPUNCH/1 " S " use\nDATA", NULL, HP_PH_USE, 49, NULL},
    /* partial lines */
    {"", "peer-b", HP_PH_NEED_MORE, 0, NULL},
    {"H", "peer-b", HP_PH_NEED_MORE, 0, NULL},
    {"HOLEPUNCH/1 ", "peer-b", HP_PH_NEED_MORE, 0, NULL},
    {"HOLEPUNCH/1 " S " peer-b", "peer-b", HP_PH_NEED_MORE, 0, NULL},
    /* strangers */
    {"GET / HTTP/1.1\r\n", "peer-b", HP_PH_BAD, 0, "not a HOLEPUNCH/1 line"},
    {"G", "peer-b", HP_PH_BAD, 0, "not a HOLEPUNCH/1 line"},
    {"HOLEPUNCH/2 " S " peer-b\n", "peer-b", HP_PH_BAD, 0, "not a HOLEPUNCH/1 line"},
    {"holepunch/1 " S " peer-b\n", "peer-b", HP_PH_BAD, 0, "not a HOLEPUNCH/1 line"},
    /* wrong secret or peer */
    {"HOLEPUNCH/1 " S2 " peer-b\n", "peer-b", HP_PH_BAD, 0, "wrong session"},
    {"HOLEPUNCH/1 " S2 " use\n", NULL, HP_PH_BAD, 0, "wrong session"},
    {"HOLEPUNCH/1 " S " peer-c\n", "peer-b", HP_PH_BAD, 0, "wrong peer id"},
    {"HOLEPUNCH/1 " S " peer-bb\n", "peer-b", HP_PH_BAD, 0, "wrong peer id"},
    {"HOLEPUNCH/1 " S " peer\n", "peer-b", HP_PH_BAD, 0, "wrong peer id"},
    /* not exactly the format */
    {"HOLEPUNCH/1 " S " peer-b\r\n", "peer-b", HP_PH_BAD, 0, "malformed peer id"},
    {"HOLEPUNCH/1 " S "  peer-b\n", "peer-b", HP_PH_BAD, 0, "malformed peer id"},
    {"HOLEPUNCH/1 " S " peer b\n", NULL, HP_PH_BAD, 0, "malformed peer id"},
    {"HOLEPUNCH/1 " S " \n", NULL, HP_PH_BAD, 0, "malformed line"},
    {"HOLEPUNCH/1 " S "\n", NULL, HP_PH_BAD, 0, "malformed line"},
    {"HOLEPUNCH/1 " S "x peer-b\n", NULL, HP_PH_BAD, 0, "malformed line"},
    {"HOLEPUNCH/1 short peer-b\n", NULL, HP_PH_BAD, 0, "malformed line"},
    {"HOLEPUNCH/1 \n", NULL, HP_PH_BAD, 0, "malformed line"},
};

static void test_check_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct check_case *c = &cases[i];
    size_t consumed = 999;
    const char *why = "unset";
    hp__peerhello_verdict v =
        hp__peerhello_check(c->in, strlen(c->in), S, c->expected_id, &consumed, &why);

    if (v != c->want)
      fail_msg("case %zu: verdict %d, want %d (why %s)", i, v, c->want, why ? why : "-");
    if (v == HP_PH_OK || v == HP_PH_USE)
      assert_int_equal(consumed, c->consumed);
    if (v == HP_PH_BAD)
      assert_string_equal(why, c->why);
    else
      assert_null(why);
  }
}

static void test_too_long(void **state) {
  char buf[HP_PEERHELLO_MAX + 10];
  const char *why = NULL;
  (void)state;

  memset(buf, 'x', sizeof(buf));
  memcpy(buf, "HOLEPUNCH/1 " S " ", 45);
  /* One byte short of the limit without '\n': wait. At the limit: refuse. */
  assert_int_equal(hp__peerhello_check(buf, HP_PEERHELLO_MAX - 1, S, NULL, NULL, &why),
                   HP_PH_NEED_MORE);
  assert_int_equal(hp__peerhello_check(buf, HP_PEERHELLO_MAX, S, NULL, NULL, &why), HP_PH_BAD);
  assert_string_equal(why, "line too long");
  /* A '\n' right after the limit does not help. */
  buf[HP_PEERHELLO_MAX] = '\n';
  assert_int_equal(hp__peerhello_check(buf, HP_PEERHELLO_MAX + 1, S, NULL, NULL, &why), HP_PH_BAD);
  /* A '\n' as the last byte of the limit is a complete (here: malformed) line. */
  buf[HP_PEERHELLO_MAX - 1] = '\n';
  assert_int_equal(hp__peerhello_check(buf, HP_PEERHELLO_MAX, S, NULL, NULL, &why), HP_PH_BAD);
  assert_string_equal(why, "malformed peer id");
}

static void test_longest_id(void **state) {
  char id[65], line[HP_PEERHELLO_MAX];
  size_t consumed = 0;
  int n;
  (void)state;

  memset(id, 'i', 64);
  id[64] = '\0';
  n = hp__peerhello_format(line, sizeof(line), S, id);
  assert_int_equal(n, 12 + 32 + 1 + 64 + 1);
  assert_int_equal(hp__peerhello_check(line, (size_t)n, S, id, &consumed, NULL), HP_PH_OK);
  assert_int_equal(consumed, (size_t)n);
}

static void test_format(void **state) {
  char buf[HP_PEERHELLO_MAX];
  size_t consumed = 0;
  int n;
  (void)state;

  n = hp__peerhello_format(buf, sizeof(buf), S, "w1");
  assert_int_equal(n, 48);
  assert_string_equal(buf, "HOLEPUNCH/1 " S " w1\n");
  assert_int_equal(hp__peerhello_check(buf, (size_t)n, S, "w1", &consumed, NULL), HP_PH_OK);
  assert_int_equal(consumed, 48);

  n = hp__peerhello_format_use(buf, sizeof(buf), S);
  assert_int_equal(n, 49);
  assert_string_equal(buf, "HOLEPUNCH/1 " S " use\n");
  assert_int_equal(hp__peerhello_check(buf, (size_t)n, S, "w1", &consumed, NULL), HP_PH_USE);

  assert_int_equal(hp__peerhello_format(buf, 48, S, "w1"), -ENOSPC);
  assert_int_equal(hp__peerhello_format_use(buf, 10, S), -ENOSPC);
  assert_int_equal(hp__peerhello_format(buf, sizeof(buf), "ABC", "w1"), -EINVAL);
  assert_int_equal(hp__peerhello_format(buf, sizeof(buf), S, "a b"), -EINVAL);
  assert_int_equal(hp__peerhello_format(buf, sizeof(buf), S, "use"), -EINVAL);
  assert_int_equal(hp__peerhello_format_use(buf, sizeof(buf), NULL), -EINVAL);
  /* Without a valid own session nothing is accepted. */
  assert_int_equal(hp__peerhello_check("HOLEPUNCH/1 x\n", 14, "short", NULL, NULL, NULL),
                   HP_PH_BAD);
}

/* A line arriving byte by byte: NEED_MORE for every proper prefix, then OK. */
static void test_prefixes(void **state) {
  static const char line[] = "HOLEPUNCH/1 " S " peer-b\n";
  (void)state;

  for (size_t len = 0; len < sizeof(line) - 1; len++)
    assert_int_equal(hp__peerhello_check(line, len, S, "peer-b", NULL, NULL), HP_PH_NEED_MORE);
  assert_int_equal(hp__peerhello_check(line, sizeof(line) - 1, S, "peer-b", NULL, NULL), HP_PH_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_table), cmocka_unit_test(test_too_long),
      cmocka_unit_test(test_longest_id),  cmocka_unit_test(test_format),
      cmocka_unit_test(test_prefixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
