/*
 * test_whoami.c - parsing of the /whoami reply (hp__whoami_parse).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "whoami.h"

typedef struct tcase {
  const char *body;
  int want; /* 0 or -EPROTO */
  const char *ip;
  int port;
} tcase;

static const tcase cases[] = {
    {"{\"ip\":\"198.51.100.2\",\"port\":40000}", 0, "198.51.100.2", 40000},
    {"{\"ip\":\"198.51.100.2\",\"port\":null}", 0, "198.51.100.2", -1},
    {"{\"ip\":\"198.51.100.2\"}", 0, "198.51.100.2", -1},
    {"{\"ip\":\"2001:db8::5\",\"port\":1}", 0, "2001:db8::5", 1},
    {"{\"ip\":\"198.51.100.2\",\"port\":0}", -EPROTO, NULL, 0},
    {"{\"ip\":\"198.51.100.2\",\"port\":65536}", -EPROTO, NULL, 0},
    {"{\"ip\":\"198.51.100.2\",\"port\":\"80\"}", -EPROTO, NULL, 0},
    {"{\"ip\":\"example.com\",\"port\":80}", -EPROTO, NULL, 0},
    {"{\"ip\":7,\"port\":80}", -EPROTO, NULL, 0},
    {"{\"port\":80}", -EPROTO, NULL, 0},
    {"[1,2]", -EPROTO, NULL, 0},
    {"not json", -EPROTO, NULL, 0},
    {"{\"ip\":\"1.2.3.4\",\"ip\":\"5.6.7.8\",\"port\":1}", -EPROTO, NULL, 0},
};

static void test_parse(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char ip[64] = "", err[256] = "";
    int port = 12345;
    int r = hp__whoami_parse(cases[i].body, strlen(cases[i].body), ip, sizeof ip, &port, err,
                             sizeof err);
    assert_int_equal(r, cases[i].want);
    if (r == 0) {
      assert_string_equal(ip, cases[i].ip);
      assert_int_equal(port, cases[i].port);
    } else {
      assert_true(strlen(err) > 0);
    }
  }
}

static void test_parse_not_nul_terminated(void **state) {
  const char body[] = "{\"ip\":\"10.0.0.1\",\"port\":5}XXXX";
  char ip[64], err[256];
  int port;
  (void)state;
  assert_int_equal(hp__whoami_parse(body, strlen(body) - 4, ip, sizeof ip, &port, err, sizeof err),
                   0);
  assert_int_equal(port, 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_not_nul_terminated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
