/*
 * test_candidates.c - ordering, filtering and deduplication of our own
 * candidates (hp__cands_build, a pure function).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "candidates.h"

#define MAXIPS 24

typedef struct tcase {
  const char *name;
  const char *srflx;
  const char *ips[MAXIPS]; /* NULL-terminated; "v6:" prefix for IPv6 */
  int port;
  int want_n;                     /* or a negative errno */
  const char *want[HP_CANDS_MAX]; /* "host 1.2.3.4:5" */
} tcase;

static const tcase cases[] = {
    {"srflx first, then hosts in interface order",
     "198.51.100.2:40000",
     {"10.0.0.2", "192.168.1.5", NULL},
     8082,
     3,
     {"srflx 198.51.100.2:40000", "host 10.0.0.2:8082", "host 192.168.1.5:8082"}},
    {"srflx equal to a host address is listed once, as host, first",
     "203.0.113.7:8082",
     {"10.0.0.2", "203.0.113.7", NULL},
     8082,
     2,
     {"host 203.0.113.7:8082", "host 10.0.0.2:8082"}},
    {"same ip as a host but another port: both",
     "10.0.0.2:9000",
     {"10.0.0.2", NULL},
     8082,
     2,
     {"srflx 10.0.0.2:9000", "host 10.0.0.2:8082"}},
    {"loopback, unspecified, link-local skipped; global and unique-local IPv6 kept",
     NULL,
     {"127.0.0.1", "127.1.2.3", "0.0.0.0", "169.254.3.4", "v6:2001:db8::1", "v6:::1", "v6:fe80::1",
      "v6:fd00::5", "v6:ff02::1", "v6:::ffff:10.0.0.1", "10.1.1.1", NULL},
     8082,
     3,
     {"host [2001:db8::1]:8082", "host [fd00::5]:8082", "host 10.1.1.1:8082"}},
    {"duplicates removed",
     "198.51.100.2:8082",
     {"10.0.0.2", "10.0.0.2", "10.0.0.3", "10.0.0.2", NULL},
     8082,
     3,
     {"srflx 198.51.100.2:8082", "host 10.0.0.2:8082", "host 10.0.0.3:8082"}},
    {"no srflx, no hosts: empty", "", {NULL}, 8082, 0, {NULL}},
    {"capped at HP_CANDS_MAX, srflx kept",
     "198.51.100.2:1",
     {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7",
      "10.0.0.8", "10.0.0.9", "10.0.0.10", NULL},
     2,
     HP_CANDS_MAX,
     {"srflx 198.51.100.2:1", "host 10.0.0.1:2", "host 10.0.0.2:2", "host 10.0.0.3:2",
      "host 10.0.0.4:2", "host 10.0.0.5:2", "host 10.0.0.6:2", "host 10.0.0.7:2"}},
    {"bad srflx", "not-an-address", {"10.0.0.2", NULL}, 8082, -EINVAL, {NULL}},
    {"srflx without port", "198.51.100.2", {NULL}, 8082, -EINVAL, {NULL}},
    {"port 0 refused", NULL, {"10.0.0.2", NULL}, 0, -EINVAL, {NULL}},
    {"port 65536 refused", NULL, {"10.0.0.2", NULL}, 65536, -EINVAL, {NULL}},
};

static size_t to_sockaddrs(const char *const *ips, struct sockaddr_storage *out) {
  size_t n = 0;
  for (; ips[n]; n++) {
    memset(&out[n], 0, sizeof out[n]);
    if (strncmp(ips[n], "v6:", 3) == 0) {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[n];
      s6->sin6_family = AF_INET6;
      assert_int_equal(inet_pton(AF_INET6, ips[n] + 3, &s6->sin6_addr), 1);
    } else {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&out[n];
      s4->sin_family = AF_INET;
      s4->sin_port = htons(1234); /* ignored by the builder */
      assert_int_equal(inet_pton(AF_INET, ips[n], &s4->sin_addr), 1);
    }
  }
  return n;
}

static void test_table(void **state) {
  (void)state;
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    const tcase *tc = &cases[t];
    struct sockaddr_storage ss[MAXIPS];
    size_t n = to_sockaddrs(tc->ips, ss);
    hp__cands out;
    int r = hp__cands_build(tc->srflx, ss, n, tc->port, &out);

    printf("# %s\n", tc->name);
    assert_int_equal(r, tc->want_n);
    if (r < 0)
      continue;
    assert_int_equal(out.n, (size_t)r);
    for (size_t i = 0; i < out.n; i++) {
      char got[HP_ADDR_STRLEN + 16];
      snprintf(got, sizeof got, "%s %s", hp__cand_kind_name(out.c[i].kind), out.c[i].addr);
      assert_string_equal(got, tc->want[i]);
    }
  }
}

static void test_gather_real_interfaces(void **state) {
  hp__cands out;
  int r;
  (void)state;

  /* Whatever the machine has: never loopback, every port 8082, srflx first. */
  r = hp__cands_gather("198.51.100.9:8082", 8082, &out);
  assert_true(r >= 1);
  assert_int_equal(out.c[0].kind == HP_CAND_SRFLX || out.c[0].kind == HP_CAND_HOST, 1);
  assert_string_equal(out.c[0].addr, "198.51.100.9:8082");
  for (size_t i = 0; i < out.n; i++) {
    assert_null(strstr(out.c[i].addr, "127."));
    assert_non_null(strstr(out.c[i].addr, ":8082"));
  }
}

static void test_describe(void **state) {
  hp__cands c = {0};
  char buf[128];
  (void)state;

  hp__cands_describe(&c, buf, sizeof buf);
  assert_string_equal(buf, "none");
  c.n = 2;
  c.c[0].kind = HP_CAND_SRFLX;
  snprintf(c.c[0].addr, sizeof c.c[0].addr, "198.51.100.2:1");
  c.c[1].kind = HP_CAND_HOST;
  snprintf(c.c[1].addr, sizeof c.c[1].addr, "10.0.0.2:2");
  hp__cands_describe(&c, buf, sizeof buf);
  assert_string_equal(buf, "srflx 198.51.100.2:1, host 10.0.0.2:2");
  hp__cands_describe(&c, buf, 8); /* truncated, still terminated */
  assert_int_equal(strlen(buf), 7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_gather_real_interfaces),
      cmocka_unit_test(test_describe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
