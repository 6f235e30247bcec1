/* test_url.c - the rendezvous base URL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "url.h"

struct good_case {
  const char *in;
  int tls;
  const char *host;
  int port;
  const char *base;
};

static const struct good_case good[] = {
    {"http://rv", 0, "rv", 80, ""},
    {"https://rv.example.com", 1, "rv.example.com", 443, ""},
    {"ws://198.51.100.1:8080", 0, "198.51.100.1", 8080, ""},
    {"wss://rv:1/", 1, "rv", 1, ""},
    {"HTTPS://Rv-1.a_b:65535/prefix/x//", 1, "Rv-1.a_b", 65535, "/prefix/x"},
    {"WsS://[::1]:8443/api", 1, "::1", 8443, "/api"},
    {"http://[2001:db8::1]", 0, "2001:db8::1", 80, ""},
    {"http://rv/", 0, "rv", 80, ""},
};

struct bad_case {
  const char *in;
  const char *needle; /* in the message */
};

static const struct bad_case bad[] = {
    {"", "empty"},
    {"rv:8080", "no scheme"},
    {"http:/rv:8080", "must be followed by \"://\""},
    {"https:rv", "must be followed by \"://\""},
    {"WS:/rv", "must be followed by \"://\""},
    {"ftp://rv", "scheme is not supported"},
    {"httpx://rv", "scheme is not supported"},
    {"://rv", "scheme is not supported"},
    {"http://", "no host"},
    {"http:///path", "no host"},
    {"http://:80", "no host"},
    {"http://user@rv", "user information"},
    {"http://user:pw@rv/", "user information"},
    {"http://rv/?x=1", "query"},
    {"http://rv#frag", "fragment"},
    {"http://rv:0", "port"},
    {"http://rv:65536", "port"},
    {"http://rv:123456", "port"},
    {"http://rv:", "no port"},
    {"http://rv:+80", "port"},
    {"http://rv:80x", "port"},
    {"http://rv:-1", "port"},
    {"http://r v", "space"},
    {"http://rv\t", "space"},
    {"http://r%76", "host name"},
    {"http://[::1", "closing"},
    {"http://[::1]x", "only :port"},
    {"http://[zz::1]", "IPv6"},
    {"http://[]", "IPv6"},
    {"http://h\xc3\xa9", "non-ASCII"},
};

static void test_good(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    hp__url u;
    char err[256] = "unset";

    if (hp__url_parse(good[i].in, &u, err, sizeof(err)) != 0)
      fail_msg("%s refused: %s", good[i].in, err);
    assert_string_equal(err, "");
    assert_int_equal(u.tls, good[i].tls);
    assert_string_equal(u.host, good[i].host);
    assert_int_equal(u.port, good[i].port);
    assert_string_equal(u.base, good[i].base);
  }
}

static void test_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    hp__url u;
    char err[256] = "";

    if (hp__url_parse(bad[i].in, &u, err, sizeof(err)) != -EINVAL)
      fail_msg("%s accepted", bad[i].in);
    if (strstr(err, bad[i].needle) == NULL)
      fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].in, err, bad[i].needle);
    /* Every message says what is allowed. */
    assert_non_null(strstr(err, "http://, https://, ws:// or wss://"));
  }
  assert_int_equal(hp__url_parse(NULL, NULL, NULL, 0), -EINVAL);
}

/* The fixed buffers are limits, enforced with an error rather than a cut. */
static void test_limits(void **state) {
  char in[1200], err[256];
  hp__url u;
  (void)state;

  strcpy(in, "http://");
  memset(in + 7, 'h', 255);
  in[7 + 255] = '\0';
  assert_int_equal(hp__url_parse(in, &u, err, sizeof(err)), 0);
  assert_int_equal(strlen(u.host), 255);
  memset(in + 7, 'h', 256);
  in[7 + 256] = '\0';
  assert_int_equal(hp__url_parse(in, &u, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "host is longer than 255"));

  strcpy(in, "http://rv/");
  memset(in + 10, 'p', 254);
  in[10 + 254] = '\0';
  assert_int_equal(hp__url_parse(in, &u, err, sizeof(err)), 0);
  assert_int_equal(strlen(u.base), 255);
  strcpy(in, "http://rv/");
  memset(in + 10, 'p', 255);
  in[10 + 255] = '\0';
  assert_int_equal(hp__url_parse(in, &u, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "path is longer than 255"));

  memset(in, 'a', sizeof(in) - 1);
  memcpy(in, "http://rv/", 10);
  in[sizeof(in) - 1] = '\0';
  assert_int_equal(hp__url_parse(in, &u, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "longer than 1024"));

  /* A short error buffer is cut, not overrun. */
  assert_int_equal(hp__url_parse("ftp://x", &u, err, 8), -EINVAL);
  assert_int_equal(strlen(err), 7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
