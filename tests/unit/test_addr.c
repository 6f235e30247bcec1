/* test_addr.c - "ip:port" / "[v6]:port" parsing and formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

struct parse_case {
  const char *in;
  int family;        /* 0: must be refused */
  const char *canon; /* hp__addr_format of the result */
};

static const struct parse_case cases[] = {
    {"1.2.3.4:5", AF_INET, "1.2.3.4:5"},
    {"198.51.100.2:40000", AF_INET, "198.51.100.2:40000"},
    {"0.0.0.0:65535", AF_INET, "0.0.0.0:65535"},
    {"[::1]:8082", AF_INET6, "[::1]:8082"},
    {"[2001:DB8::1]:1", AF_INET6, "[2001:db8::1]:1"},
    {"[::ffff:1.2.3.4]:80", AF_INET6, "[::ffff:1.2.3.4]:80"},
    {"[fe80::1%3]:80", AF_INET6, "[fe80::1%3]:80"},
    {"", 0, NULL},
    {":80", 0, NULL},
    {"1.2.3.4", 0, NULL},
    {"1.2.3.4:", 0, NULL},
    {"1.2.3.4:0", 0, NULL},
    {"1.2.3.4:65536", 0, NULL},
    {"1.2.3.4:99999", 0, NULL},
    {"1.2.3.4:123456", 0, NULL},
    {"1.2.3.4:+80", 0, NULL},
    {"1.2.3.4:-80", 0, NULL},
    {"1.2.3.4:080", 0, NULL},
    {"1.2.3.4:80 ", 0, NULL},
    {" 1.2.3.4:80", 0, NULL},
    {"1.2.3.4:80x", 0, NULL},
    {"1.2.3:80", 0, NULL},
    {"1.2.3.256:80", 0, NULL},
    {"01.2.3.4:80", 0, NULL},
    {"example.com:80", 0, NULL},
    {"::1:80", 0, NULL},
    {"[::1]", 0, NULL},
    {"[::1]80", 0, NULL},
    {"[::1]:", 0, NULL},
    {"[::1]:80]", 0, NULL},
    {"[]:80", 0, NULL},
    {"[1.2.3.4]:80", 0, NULL},
    {"[::1:80", 0, NULL},
    {"[fe80::1%eth0]:80", 0, NULL},
    {"[fe80::1%]:80", 0, NULL},
};

static void test_parse_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    char buf[HP_ADDR_STRLEN];
    int r = hp__addr_parse(cases[i].in, strlen(cases[i].in), &ss, &sl);

    if (cases[i].family == 0) {
      if (r != -EINVAL)
        fail_msg("\"%s\" accepted", cases[i].in);
      continue;
    }
    if (r != 0)
      fail_msg("\"%s\" refused", cases[i].in);
    assert_int_equal(ss.ss_family, cases[i].family);
    assert_int_equal(sl, cases[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                    : sizeof(struct sockaddr_in6));
    assert_int_equal(hp__addr_format((struct sockaddr *)&ss, buf, sizeof(buf)),
                     strlen(cases[i].canon));
    assert_string_equal(buf, cases[i].canon);
  }
}

static void test_parse_len(void **state) {
  struct sockaddr_storage ss;
  char big[HP_ADDR_STRLEN + 10];
  (void)state;

  /* Only len bytes are read; no NUL needed. */
  assert_int_equal(hp__addr_parse("1.2.3.4:80xyz", 10, &ss, NULL), 0);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
  /* An embedded NUL is refused. */
  assert_int_equal(hp__addr_parse("1.2.3.4:8\0", 10, &ss, NULL), -EINVAL);
  memset(big, '1', sizeof(big));
  assert_int_equal(hp__addr_parse(big, sizeof(big), &ss, NULL), -EINVAL);
  assert_int_equal(hp__addr_parse(NULL, 3, &ss, NULL), -EINVAL);
}

static void test_format(void **state) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  struct sockaddr sa;
  char buf[HP_ADDR_STRLEN];
  (void)state;

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(8082);
  inet_pton(AF_INET, "10.0.0.2", &sin.sin_addr);
  assert_int_equal(hp__addr_format((struct sockaddr *)&sin, buf, sizeof(buf)), 13);
  assert_string_equal(buf, "10.0.0.2:8082");
  /* Exactly one byte short of the NUL. */
  assert_int_equal(hp__addr_format((struct sockaddr *)&sin, buf, 13), -ENOSPC);
  assert_int_equal(hp__addr_format((struct sockaddr *)&sin, buf, 14), 13);

  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(1);
  inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
  assert_int_equal(hp__addr_format((struct sockaddr *)&sin6, buf, sizeof(buf)), 15);
  assert_string_equal(buf, "[2001:db8::7]:1");

  memset(&sa, 0, sizeof(sa));
  sa.sa_family = AF_UNIX;
  assert_int_equal(hp__addr_format(&sa, buf, sizeof(buf)), -EAFNOSUPPORT);
}

static void test_join(void **state) {
  char buf[HP_ADDR_STRLEN];
  (void)state;

  assert_int_equal(hp__addr_join("198.51.100.2", 40000, buf, sizeof(buf)), 18);
  assert_string_equal(buf, "198.51.100.2:40000");
  assert_int_equal(hp__addr_join("::1", 80, buf, sizeof(buf)), 8);
  assert_string_equal(buf, "[::1]:80");
  assert_int_equal(hp__addr_join("1.2.3.4", 0, buf, sizeof(buf)), -EINVAL);
  assert_int_equal(hp__addr_join("1.2.3.4", 65536, buf, sizeof(buf)), -EINVAL);
  assert_int_equal(hp__addr_join("host.example", 80, buf, sizeof(buf)), -EINVAL);
  assert_int_equal(hp__addr_join("1.2.3.4:5", 80, buf, sizeof(buf)), -EINVAL);
  assert_int_equal(hp__addr_join("1.2.3.4", 80, buf, 5), -ENOSPC);
}

static void test_classify(void **state) {
  static const struct {
    const char *in;
    hp__addr_class want;
  } t[] = {
      {"0.0.0.0:1", HP_ADDR_UNSPECIFIED},
      {"0.1.2.3:1", HP_ADDR_UNSPECIFIED},
      {"[::]:1", HP_ADDR_UNSPECIFIED},
      {"[::ffff:0.0.0.0]:1", HP_ADDR_UNSPECIFIED},
      {"255.255.255.255:1", HP_ADDR_BROADCAST},
      {"224.0.0.1:80", HP_ADDR_MULTICAST},
      {"239.255.255.250:1900", HP_ADDR_MULTICAST},
      {"[ff02::1]:80", HP_ADDR_MULTICAST},
      {"127.0.0.1:22", HP_ADDR_LOOPBACK},
      {"127.9.9.9:22", HP_ADDR_LOOPBACK},
      {"[::1]:22", HP_ADDR_LOOPBACK},
      {"[::ffff:127.0.0.1]:22", HP_ADDR_LOOPBACK},
      {"169.254.169.254:80", HP_ADDR_LINK_LOCAL},
      {"[fe80::1%2]:80", HP_ADDR_LINK_LOCAL},
      {"10.0.1.10:8082", HP_ADDR_UNICAST},
      {"198.51.100.2:40000", HP_ADDR_UNICAST},
      {"223.255.255.255:1", HP_ADDR_UNICAST},
      {"[2001:db8::1]:80", HP_ADDR_UNICAST},
  };
  (void)state;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    struct sockaddr_storage ss;
    assert_int_equal(hp__addr_parse(t[i].in, strlen(t[i].in), &ss, NULL), 0);
    if (hp__addr_classify((struct sockaddr *)&ss) != t[i].want)
      fail_msg("%s: %s, expected %s", t[i].in,
               hp__addr_class_name(hp__addr_classify((struct sockaddr *)&ss)),
               hp__addr_class_name(t[i].want));
  }
  assert_int_equal(hp__addr_classify(NULL), HP_ADDR_UNSPECIFIED);
}

static void test_list(void **state) {
  struct sockaddr_storage ss[4];
  char bad[96];
  (void)state;

  assert_int_equal(hp__addr_list_parse(NULL, ss, 4, bad, sizeof bad), 0);
  assert_int_equal(hp__addr_list_parse("", ss, 4, bad, sizeof bad), 0);
  assert_int_equal(hp__addr_list_parse(" , ", ss, 4, bad, sizeof bad), 0);
  assert_int_equal(hp__addr_list_parse("198.51.100.100:3478", ss, 4, bad, sizeof bad), 1);
  assert_int_equal(ss[0].ss_family, AF_INET);
  assert_int_equal(hp__addr_list_parse("198.51.100.100:3478, [2001:db8::1]:3479,203.0.113.1:1", ss,
                                       4, bad, sizeof bad),
                   3);
  assert_int_equal(ss[1].ss_family, AF_INET6);
  assert_int_equal(hp__addr_list_parse("1.2.3.4:1,stun.example:3478", ss, 4, bad, sizeof bad),
                   -EINVAL);
  assert_string_equal(bad, "stun.example:3478");
  assert_int_equal(hp__addr_list_parse("1.2.3.4", ss, 4, bad, sizeof bad), -EINVAL);
  assert_int_equal(hp__addr_list_parse("1.1.1.1:1,1.1.1.2:1,1.1.1.3:1,1.1.1.4:1,1.1.1.5:1", ss, 4,
                                       bad, sizeof bad),
                   -E2BIG);
  assert_int_equal(hp__addr_list_parse("1.2.3.4", ss, 4, NULL, 0), -EINVAL);
}

static void test_hostname(void **state) {
  char big[300];
  (void)state;

  assert_true(hp__hostname_valid("stun.example.net", 16));
  assert_true(hp__hostname_valid("a", 1));
  assert_true(hp__hostname_valid("STUN-1.Lab.test", 15));
  assert_true(hp__hostname_valid("1a.example", 10));
  assert_true(hp__hostname_valid("a.b1", 4));
  assert_false(hp__hostname_valid("", 0));
  assert_false(hp__hostname_valid(NULL, 3));
  assert_false(hp__hostname_valid("stun.example.net.", 17)); /* trailing dot */
  assert_false(hp__hostname_valid(".example", 8));
  assert_false(hp__hostname_valid("a..b", 4));
  assert_false(hp__hostname_valid("-a.b", 4));
  assert_false(hp__hostname_valid("a-.b", 4));
  assert_false(hp__hostname_valid("a.b-", 4));
  assert_false(hp__hostname_valid("a_b.c", 5));
  assert_false(hp__hostname_valid("a b.c", 5));
  assert_false(hp__hostname_valid("1.2.3", 5)); /* reads as IPv4 to a resolver */
  assert_false(hp__hostname_valid("example.123", 11));
  assert_false(hp__hostname_valid("a\0b", 3));

  /* Labels up to 63 bytes, the whole name up to 253. */
  memset(big, 'a', sizeof big);
  assert_true(hp__hostname_valid(big, 63));
  assert_false(hp__hostname_valid(big, 64));
  for (size_t i = 63; i < sizeof big; i += 64)
    big[i] = '.';
  assert_true(hp__hostname_valid(big, 253));  /* 63.63.63.61 */
  assert_false(hp__hostname_valid(big, 254)); /* one more byte */
}

static void test_hostport(void **state) {
  hp__hostport h;
  char big[300];
  (void)state;

  assert_int_equal(hp__hostport_parse("stun.example.net:3478", 21, &h), 0);
  assert_string_equal(h.name, "stun.example.net");
  assert_int_equal(h.port, 3478);
  assert_int_equal(h.addr.ss_family, 0);
  /* Only len bytes count. */
  assert_int_equal(hp__hostport_parse("localhost:1,x", 11, &h), 0);
  assert_string_equal(h.name, "localhost");
  assert_int_equal(h.port, 1);

  assert_int_equal(hp__hostport_parse("198.51.100.2:3478", 17, &h), 0);
  assert_string_equal(h.name, "");
  assert_int_equal(h.addr.ss_family, AF_INET);
  assert_int_equal(h.port, 3478);
  assert_int_equal(ntohs(((struct sockaddr_in *)&h.addr)->sin_port), 3478);
  assert_int_equal(hp__hostport_parse("[2001:db8::1]:65535", 19, &h), 0);
  assert_int_equal(h.addr.ss_family, AF_INET6);
  assert_int_equal(h.port, 65535);

  {
    static const char *const refused[] = {
        "stun.example.net",
        "stun.example.net:",
        "stun.example.net:0",
        "stun.example.net:65536",
        "stun.example.net:080",
        "stun.example.net:+1",
        "stun.example.net.:3478",
        "stun_x.example:3478",
        ":3478",
        "1.2.3:3478",
        "300.1.1.1:3478",
        "1.2.3.4.5:3478",
        "::1:3478",
        "[::1]",
        "stun.example.net:3478:1",
        "a b:1",
        "[stun.example.net]:3478",
        "1.2.3.4",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
      if (hp__hostport_parse(refused[i], strlen(refused[i]), &h) != -EINVAL)
        fail_msg("accepted \"%s\"", refused[i]);
      assert_int_equal(h.port, 0);
      assert_string_equal(h.name, "");
    }
  }
  assert_int_equal(hp__hostport_parse("a\0b:1", 5, &h), -EINVAL);
  assert_int_equal(hp__hostport_parse(NULL, 3, &h), -EINVAL);

  /* A 253-byte name with a port: longer than HP_ADDR_STRLEN, accepted. */
  memset(big, 'a', sizeof big);
  for (size_t i = 63; i < 253; i += 64)
    big[i] = '.';
  memcpy(big + 253, ":3478", 5);
  assert_int_equal(hp__hostport_parse(big, 258, &h), 0);
  assert_int_equal(strlen(h.name), 253);
  big[253] = 'a';
  memcpy(big + 254, ":3478", 5);
  assert_int_equal(hp__hostport_parse(big, 259, &h), -EINVAL);
}

static void test_hostport_list(void **state) {
  hp__hostport h[4];
  char bad[96];
  (void)state;

  assert_int_equal(hp__hostport_list_parse(NULL, h, 4, bad, sizeof bad), 0);
  assert_int_equal(hp__hostport_list_parse(" , ", h, 4, bad, sizeof bad), 0);
  assert_int_equal(hp__hostport_list_parse("stun.example.net:3478, 198.51.100.1:3479,[::1]:1", h, 4,
                                           bad, sizeof bad),
                   3);
  assert_string_equal(h[0].name, "stun.example.net");
  assert_int_equal(h[0].port, 3478);
  assert_int_equal(h[1].addr.ss_family, AF_INET);
  assert_int_equal(h[1].port, 3479);
  assert_int_equal(h[2].addr.ss_family, AF_INET6);
  assert_int_equal(hp__hostport_list_parse("a.example:1,b_c.example:1", h, 4, bad, sizeof bad),
                   -EINVAL);
  assert_string_equal(bad, "b_c.example:1");
  assert_int_equal(hp__hostport_list_parse("a:1,b:1,c:1,d:1,e:1", h, 4, bad, sizeof bad), -E2BIG);
  assert_int_equal(hp__hostport_list_parse("a:1,b:1,c:1,d:1", h, 4, bad, sizeof bad), 4);
  assert_int_equal(hp__hostport_list_parse("a", h, 4, NULL, 0), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),   cmocka_unit_test(test_parse_len),
      cmocka_unit_test(test_format),        cmocka_unit_test(test_join),
      cmocka_unit_test(test_classify),      cmocka_unit_test(test_list),
      cmocka_unit_test(test_hostname),      cmocka_unit_test(test_hostport),
      cmocka_unit_test(test_hostport_list),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
