/* test_config.c - the validated configuration table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

typedef struct cfg {
  const char *url;
  const char *room;
  int port;
  double timeout;
  int trust;
  int level;
} cfg;

static const char *const levels[] = {"debug", "info", "warning", "error", NULL};

static const hp__cfg_spec specs[] = {
    {"RENDEZVOUS_SERVICE_URL", "rendezvous-service-url", HP_CFG_STRING, NULL, 0, 0, NULL,
     offsetof(cfg, url), "rendezvous base URL"},
    {"ROOM", "room", HP_CFG_STRING, "default", 0, 0, NULL, offsetof(cfg, room), "room"},
    {"INTERNAL_TCP_PORT", "internal-tcp-port", HP_CFG_INT, "8082", 1, 65535, NULL,
     offsetof(cfg, port), "listen + punch port"},
    {"WS_OPEN_TIMEOUT", "ws-open-timeout", HP_CFG_SECONDS, "15.0", 0.1, 3600, NULL,
     offsetof(cfg, timeout), "s to open the WebSocket"},
    {"TRUST_PROXY", "trust-proxy", HP_CFG_BOOL, "0", 0, 0, NULL, offsetof(cfg, trust),
     "trust X-Forwarded-For"},
    {"LOG_LEVEL", "log-level", HP_CFG_ENUM, "info", 0, 0, levels, offsetof(cfg, level),
     "log level"},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

/* A fake environment: "NAME=value" strings, NULL-terminated. */
static const char *const *fake_env;

static const char *fake_getenv(const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; fake_env != NULL && fake_env[i] != NULL; i++)
    if (strncmp(fake_env[i], name, n) == 0 && fake_env[i][n] == '=')
      return fake_env[i] + n + 1;
  return NULL;
}

/* Load with env and a NULL-terminated argv (argv[0] added). */
static hp__cfg_result load(const char *const *env, const char *const *args, cfg *c, char *err,
                           size_t errlen) {
  char *argv[32] = {"prog"};
  int argc = 1;

  for (size_t i = 0; args != NULL && args[i] != NULL; i++)
    argv[argc++] = (char *)args[i];
  argv[argc] = NULL;
  fake_env = env;
  memset(c, 0x5a, sizeof(*c));
  return hp__cfg_load_env(specs, NSPECS, c, argc, argv, fake_getenv, err, errlen);
}

#define URL_ENV "RENDEZVOUS_SERVICE_URL=http://rv"

static void test_defaults(void **state) {
  const char *env[] = {URL_ENV, NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, NULL, &c, err, sizeof(err)), HP_CFG_OK);
  assert_string_equal(c.url, "http://rv");
  assert_string_equal(c.room, "default");
  assert_int_equal(c.port, 8082);
  assert_true(c.timeout == 15.0);
  assert_int_equal(c.trust, 0);
  assert_int_equal(c.level, 1);
  assert_string_equal(err, "");
}

static void test_env_values(void **state) {
  const char *env[] = {URL_ENV,
                       "ROOM=lab",
                       "INTERNAL_TCP_PORT=1",
                       "WS_OPEN_TIMEOUT=0.1",
                       "TRUST_PROXY=Yes",
                       "LOG_LEVEL=ERROR",
                       NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, NULL, &c, err, sizeof(err)), HP_CFG_OK);
  assert_string_equal(c.room, "lab");
  assert_int_equal(c.port, 1);
  assert_true(c.timeout == 0.1);
  assert_int_equal(c.trust, 1);
  assert_int_equal(c.level, 3);
}

static void test_flags_override_env(void **state) {
  const char *env[] = {URL_ENV, "INTERNAL_TCP_PORT=9", "LOG_LEVEL=debug", "TRUST_PROXY=1", NULL};
  const char *args[] = {"--internal-tcp-port",      "65535",         "--log-level=warning",
                        "--ws-open-timeout=3600",   "--trust-proxy", "off",
                        "--rendezvous-service-url", "wss://x",       NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, args, &c, err, sizeof(err)), HP_CFG_OK);
  assert_int_equal(c.port, 65535);
  assert_int_equal(c.level, 2);
  assert_true(c.timeout == 3600);
  assert_int_equal(c.trust, 0);
  assert_string_equal(c.url, "wss://x");
}

static void test_bare_bool(void **state) {
  const char *env[] = {URL_ENV, NULL};
  const char *a1[] = {"--trust-proxy", NULL};
  const char *a2[] = {"--trust-proxy", "--room", "r", NULL};
  const char *a3[] = {"--trust-proxy=false", NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, a1, &c, err, sizeof(err)), HP_CFG_OK);
  assert_int_equal(c.trust, 1);
  assert_int_equal(load(env, a2, &c, err, sizeof(err)), HP_CFG_OK);
  assert_int_equal(c.trust, 1);
  assert_string_equal(c.room, "r");
  assert_int_equal(load(env, a3, &c, err, sizeof(err)), HP_CFG_OK);
  assert_int_equal(c.trust, 0);
}

struct bad_env {
  const char *setting; /* "NAME=value" */
  const char *msg;     /* the full message */
};

static const struct bad_env bad_envs[] = {
    {"INTERNAL_TCP_PORT=abc",
     "INTERNAL_TCP_PORT=\"abc\" is not valid: expected an integer from 1 to 65535"},
    {"INTERNAL_TCP_PORT=",
     "INTERNAL_TCP_PORT=\"\" is not valid: expected an integer from 1 to 65535"},
    {"INTERNAL_TCP_PORT=0",
     "INTERNAL_TCP_PORT=\"0\" is not valid: expected an integer from 1 to 65535"},
    {"INTERNAL_TCP_PORT=65536",
     "INTERNAL_TCP_PORT=\"65536\" is not valid: expected an integer from 1 to 65535"},
    {"INTERNAL_TCP_PORT=8082x", NULL},
    {"INTERNAL_TCP_PORT= 8082", NULL},
    {"INTERNAL_TCP_PORT=8082 ", NULL},
    {"INTERNAL_TCP_PORT=+8082", NULL},
    {"INTERNAL_TCP_PORT=0x10", NULL},
    {"INTERNAL_TCP_PORT=80.0", NULL},
    {"INTERNAL_TCP_PORT=99999999999999999999999", NULL},
    {"INTERNAL_TCP_PORT=-", NULL},
    {"WS_OPEN_TIMEOUT=-1",
     "WS_OPEN_TIMEOUT=\"-1\" is not valid: expected seconds from 0.1 to 3600"},
    {"WS_OPEN_TIMEOUT=0", NULL},
    {"WS_OPEN_TIMEOUT=3600.01", NULL},
    {"WS_OPEN_TIMEOUT=nan", NULL},
    {"WS_OPEN_TIMEOUT=inf", NULL},
    {"WS_OPEN_TIMEOUT=1e3", NULL},
    {"WS_OPEN_TIMEOUT=0x1p3", NULL},
    {"WS_OPEN_TIMEOUT=.", NULL},
    {"WS_OPEN_TIMEOUT=1.5s", NULL},
    {"WS_OPEN_TIMEOUT=", NULL},
    {"TRUST_PROXY=maybe",
     "TRUST_PROXY=\"maybe\" is not valid: expected one of 1, 0, true, false, yes, no, on, off"},
    {"TRUST_PROXY=", NULL},
    {"LOG_LEVEL=verbose",
     "LOG_LEVEL=\"verbose\" is not valid: expected one of debug, info, warning, error"},
    {"ROOM=", "ROOM=\"\" is not valid: expected a non-empty value"},
};

/* HP_CFG_BYTES (the relay's limits): a uint64_t of plain digits, no sign,
 * no fraction, no exponent, within the range. */
typedef struct bcfg {
  uint64_t b;
} bcfg;

static void test_bytes(void **state) {
  static const hp__cfg_spec bspecs[] = {
      {"MAXB", "max-bytes", HP_CFG_BYTES, "10737418240", 0, 1e15, NULL, offsetof(bcfg, b), "bytes"},
  };
  static const char *const good[][2] = {
      {"MAXB=0", "0"}, {"MAXB=1000000000000000", "1000000000000000"}, {NULL, "10737418240"}};
  static const char *const bad[] = {"MAXB=-1", "MAXB=1.5", "MAXB=1e3", "MAXB=1000000000000001",
                                    "MAXB= 1", "MAXB=0x10"};
  char *argv[] = {"prog", NULL};
  char err[256];
  bcfg c;

  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    const char *env[] = {good[i][0], NULL};
    fake_env = env;
    assert_int_equal(hp__cfg_load_env(bspecs, 1, &c, 1, argv, fake_getenv, err, sizeof(err)),
                     HP_CFG_OK);
    assert_true(c.b == strtoull(good[i][1], NULL, 10));
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *env[] = {bad[i], NULL};
    fake_env = env;
    if (hp__cfg_load_env(bspecs, 1, &c, 1, argv, fake_getenv, err, sizeof(err)) != HP_CFG_ERROR)
      fail_msg("%s accepted", bad[i]);
    assert_non_null(strstr(err, "bytes, an integer from 0 to 1000000000000000"));
  }
}

static void test_bad_env(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_envs) / sizeof(bad_envs[0]); i++) {
    const char *env[] = {URL_ENV, bad_envs[i].setting, NULL};
    char err[256] = "";
    char name[64];
    cfg c;

    if (load(env, NULL, &c, err, sizeof(err)) != HP_CFG_ERROR)
      fail_msg("%s accepted", bad_envs[i].setting);
    if (bad_envs[i].msg != NULL) {
      assert_string_equal(err, bad_envs[i].msg);
      continue;
    }
    /* At least: names the variable and quotes the value. */
    snprintf(name, sizeof(name), "%.*s=\"", (int)strcspn(bad_envs[i].setting, "="),
             bad_envs[i].setting);
    if (strncmp(err, name, strlen(name)) != 0 || strstr(err, "expected") == NULL)
      fail_msg("%s: message \"%s\"", bad_envs[i].setting, err);
  }
}

static void test_bad_flag_names_flag(void **state) {
  const char *env[] = {URL_ENV, "WS_OPEN_TIMEOUT=5", NULL};
  const char *a1[] = {"--ws-open-timeout", "-1", NULL};
  const char *a2[] = {"--internal-tcp-port=abc", NULL};
  const char *a3[] = {"--log-level", NULL};
  const char *a4[] = {"--trust-proxy=maybe", NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, a1, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_string_equal(err,
                      "--ws-open-timeout \"-1\" is not valid: expected seconds from 0.1 to 3600");
  assert_int_equal(load(env, a2, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_string_equal(
      err, "--internal-tcp-port \"abc\" is not valid: expected an integer from 1 to 65535");
  assert_int_equal(load(env, a3, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_string_equal(err,
                      "--log-level needs a value: expected one of debug, info, warning, error");
  assert_int_equal(load(env, a4, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_non_null(strstr(err, "--trust-proxy \"maybe\" is not valid"));
}

static void test_flag_fixes_bad_env(void **state) {
  /* A bad variable that a flag overrides is never looked at. */
  const char *env[] = {URL_ENV, "INTERNAL_TCP_PORT=abc", NULL};
  const char *args[] = {"--internal-tcp-port", "7", NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, args, &c, err, sizeof(err)), HP_CFG_OK);
  assert_int_equal(c.port, 7);
}

static void test_required_missing(void **state) {
  const char *env[] = {NULL};
  const char *empty[] = {"RENDEZVOUS_SERVICE_URL=", NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, NULL, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_string_equal(err, "RENDEZVOUS_SERVICE_URL is required: set the environment variable or "
                           "pass --rendezvous-service-url");
  assert_int_equal(load(empty, NULL, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_string_equal(err, "RENDEZVOUS_SERVICE_URL=\"\" is not valid: expected a non-empty value");
}

static void test_unknown_and_positional(void **state) {
  const char *env[] = {URL_ENV, NULL};
  const char *a1[] = {"--bogus", "1", NULL};
  const char *a2[] = {"extra", NULL};
  const char *a3[] = {"-x", NULL};
  const char *a4[] = {"--room", "r", "--", "--room", NULL};
  const char *a5[] = {"--room-x=1", NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, a1, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_string_equal(err, "unknown option \"--bogus\": see --help for the options");
  assert_int_equal(load(env, a2, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_non_null(strstr(err, "unexpected argument \"extra\""));
  assert_non_null(strstr(err, "--help"));
  assert_int_equal(load(env, a3, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_non_null(strstr(err, "unknown option \"-x\""));
  assert_int_equal(load(env, a4, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_non_null(strstr(err, "unexpected argument \"--room\""));
  assert_int_equal(load(env, a5, &c, err, sizeof(err)), HP_CFG_ERROR);
  assert_non_null(strstr(err, "unknown option \"--room-x=1\""));
}

static void test_help_version(void **state) {
  const char *env[] = {NULL}; /* even with the required setting missing */
  const char *h1[] = {"-h", NULL};
  const char *h2[] = {"--bogus", "--help", NULL};
  const char *v1[] = {"-V", NULL};
  const char *v2[] = {"--version", NULL};
  char err[256];
  cfg c;
  (void)state;

  assert_int_equal(load(env, h1, &c, err, sizeof(err)), HP_CFG_HELP);
  assert_int_equal(load(env, h2, &c, err, sizeof(err)), HP_CFG_HELP);
  assert_int_equal(load(env, v1, &c, err, sizeof(err)), HP_CFG_VERSION);
  assert_int_equal(load(env, v2, &c, err, sizeof(err)), HP_CFG_VERSION);
}

static void test_usage(void **state) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  (void)state;

  assert_non_null(f);
  hp__cfg_usage(specs, NSPECS, "holepunch", "Punch a hole.", f);
  fclose(f);
  assert_non_null(strstr(text, "Usage: holepunch [options]\nPunch a hole.\n"));
  assert_non_null(strstr(text, "--internal-tcp-port N"));
  assert_non_null(strstr(text, "INTERNAL_TCP_PORT"));
  assert_non_null(strstr(text, "8082"));
  assert_non_null(strstr(text, "listen + punch port"));
  assert_non_null(strstr(text, "(required)"));
  assert_non_null(strstr(text, "--log-level debug|info|warning|error"));
  assert_non_null(strstr(text, "--help"));
  assert_non_null(strstr(text, "--version"));
  /* Columns line up: every row's variable column starts at the same offset. */
  {
    const char *a = strstr(text, "\n  --room TEXT");
    const char *b = strstr(text, "\n  --internal-tcp-port N");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(strstr(a, "ROOM") - a, strstr(b, "INTERNAL_TCP_PORT") - b);
  }
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_env_values),
      cmocka_unit_test(test_flags_override_env),
      cmocka_unit_test(test_bare_bool),
      cmocka_unit_test(test_bad_env),
      cmocka_unit_test(test_bad_flag_names_flag),
      cmocka_unit_test(test_flag_fixes_bad_env),
      cmocka_unit_test(test_required_missing),
      cmocka_unit_test(test_unknown_and_positional),
      cmocka_unit_test(test_help_version),
      cmocka_unit_test(test_usage),
      cmocka_unit_test(test_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
