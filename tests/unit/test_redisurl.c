/* test_redisurl.c - REDIS_URL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "redisurl.h"

struct good_case {
  const char *in;
  int is_unix;
  const char *host_or_path;
  int port;
  const char *user, *password;
  int db;
};

static const struct good_case good[] = {
    {"redis://127.0.0.1", 0, "127.0.0.1", 6379, "", "", 0},
    {"redis://127.0.0.1:6380/0", 0, "127.0.0.1", 6380, "", "", 0},
    {"redis://redis.internal:6379/3", 0, "redis.internal", 6379, "", "", 3},
    {"REDIS://h/", 0, "h", 6379, "", "", 0},
    {"redis://:s3cret@10.0.0.5:6379/1", 0, "10.0.0.5", 6379, "", "s3cret", 1},
    {"redis://app:p%40ss%3Aw%2Fd@h:1/65535", 0, "h", 1, "app", "p@ss:w/d", 65535},
    {"redis://:a@b@h", 0, "h", 6379, "", "a@b", 0}, /* the last '@' ends the user part */
    {"redis://[::1]:7000/2", 0, "::1", 7000, "", "", 2},
    {"redis://[2001:db8::5]", 0, "2001:db8::5", 6379, "", "", 0},
    {"unix:/run/redis/redis.sock", 1, "/run/redis/redis.sock", 0, "", "", 0},
    {"unix:///tmp/r.sock?db=4", 1, "/tmp/r.sock", 0, "", "", 4},
    {"unix:/tmp/r.sock?password=x%26y&db=2", 1, "/tmp/r.sock", 0, "", "x&y", 2},
    {"unix:/tmp/r.sock?user=hp&password=pw", 1, "/tmp/r.sock", 0, "hp", "pw", 0},
};

struct bad_case {
  const char *in;
  const char *needle; /* in the message */
};

static const struct bad_case bad[] = {
    {"", "empty"},
    {"127.0.0.1:6379", "scheme"},
    {"http://h", "scheme"},
    {"rediss://h:6380", "TLS"},
    {"redis://", "no host"},
    {"redis:///0", "no host"},
    {"redis://h:", "no port"},
    {"redis://h:0", "port"},
    {"redis://h:65536", "port"},
    {"redis://h:06379", "port"},
    {"redis://h/x", "database"},
    {"redis://h/65536", "database"},
    {"redis://h/01", "database"},
    {"redis://h/0/1", "database"},
    {"redis://h?db=1", "query"},
    {"redis://pw@h", "no ':'"},
    {"redis://:@h", "password is empty"},
    {"redis://:%zz@h", "%-escape"},
    {"redis://:%00@h", "%-escape"},
    {"redis://:%4@h", "%-escape"},
    {"redis://h st", "space"},
    {"redis://[::1", "closing"},
    {"redis://[zz]:1", "IPv6"},
    {"redis://[::1]x", "only :port"},
    {"redis://h%41", "host"},
    {"unix:", "absolute"},
    {"unix:relative.sock", "absolute"},
    {"unix://host/p.sock", "unix:///path"},
    {"unix:/", "empty"},
    {"unix:/s?", "empty"},
    {"unix:/s?db=x", "db="},
    {"unix:/s?db=1&db=2", "twice"},
    {"unix:/s?password=", "empty"},
    {"unix:/s?pass=x", "unknown"},
    {"unix:/s?password", "no '='"},
    {"unix:/s?user=u", "needs password"},
    {"unix:/s#x", "fragment"},
};

static void test_good(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    const struct good_case *g = &good[i];
    hp__redis_url u;
    char err[256];

    memset(&u, 0x55, sizeof(u));
    if (hp__redis_url_parse(g->in, &u, err, sizeof(err)) != 0)
      fail_msg("%s: refused: %s", g->in, err);
    assert_int_equal(u.is_unix, g->is_unix);
    assert_string_equal(g->is_unix ? u.path : u.host, g->host_or_path);
    if (!g->is_unix)
      assert_int_equal(u.port, g->port);
    assert_string_equal(u.user, g->user);
    assert_string_equal(u.password, g->password);
    assert_int_equal(u.db, g->db);
  }
}

static void test_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    hp__redis_url u;
    char err[256];

    memset(&u, 0, sizeof(u));
    u.port = 4242;
    assert_int_equal(hp__redis_url_parse(bad[i].in, &u, err, sizeof(err)), -EINVAL);
    if (!strstr(err, bad[i].needle))
      fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].in, err, bad[i].needle);
    assert_int_equal(u.port, 4242); /* untouched on failure */
  }
}

/* A password never appears in an error message. */
static void test_password_not_in_errors(void **state) {
  static const char *const in[] = {"redis://:TOPSECRET@h:99999", "redis://u:TOPSECRET@h/x",
                                   "unix:/s?password=TOPSECRET&bogus=1"};
  (void)state;
  for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
    hp__redis_url u;
    char err[256];
    assert_int_equal(hp__redis_url_parse(in[i], &u, err, sizeof(err)), -EINVAL);
    assert_null(strstr(err, "TOPSECRET"));
  }
}

static void test_too_long(void **state) {
  char s[HP_REDISURL_MAX + 2], err[256];
  hp__redis_url u;

  (void)state;
  memset(s, 'a', sizeof(s));
  memcpy(s, "redis://", 8);
  s[HP_REDISURL_MAX + 1] = '\0';
  assert_int_equal(hp__redis_url_parse(s, &u, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "longer than 1024"));
  /* a socket path one byte over sun_path */
  memset(s, 'p', sizeof(s));
  memcpy(s, "unix:/", 6);
  s[6 + HP_REDISURL_PATH_MAX] = '\0';
  assert_int_equal(hp__redis_url_parse(s, &u, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "107"));
  s[5 + HP_REDISURL_PATH_MAX] = '\0';
  assert_int_equal(hp__redis_url_parse(s, &u, err, sizeof(err)), 0);
}

static void test_format(void **state) {
  hp__redis_url u, v;
  char buf[512], err[256];

  (void)state;
  assert_int_equal(hp__redis_url_parse("redis://app:p%40ss@[::1]:7000/3", &u, err, sizeof(err)), 0);
  assert_true(hp__redis_url_format(&u, 1, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "redis://app:***@[::1]:7000/3");
  assert_true(hp__redis_url_format(&u, 0, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "redis://app:p%40ss@[::1]:7000/3");
  assert_int_equal(hp__redis_url_parse(buf, &v, err, sizeof(err)), 0);
  assert_memory_equal(&u, &v, sizeof(u));

  assert_int_equal(hp__redis_url_parse("unix:/tmp/r.sock?db=2&password=x", &u, err, sizeof(err)),
                   0);
  assert_true(hp__redis_url_format(&u, 1, buf, sizeof(buf)) > 0);
  assert_string_equal(buf, "unix:/tmp/r.sock?password=***&db=2");
  assert_int_equal(hp__redis_url_format(&u, 1, buf, 10), -ENOSPC);
  assert_string_equal(buf, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_password_not_in_errors),
      cmocka_unit_test(test_too_long),
      cmocka_unit_test(test_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
