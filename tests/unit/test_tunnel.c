/* test_tunnel.c - the forward/expose argument parser (hp__tunnel_parse) and
 * the pre-punch check (hp__tunnel_check); the data path is tested between
 * processes in tests/loopback/test_app_tunnel.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "app/tunnel.h"

struct parse_case {
  hp__tunnel_mode mode;
  const char *arg;
  int ok;
  const char *host; /* when ok */
  int port;
  const char *why; /* a part of the sentence when refused */
};

static const struct parse_case cases[] = {
    {HP_TUNNEL_FORWARD, "8080", 1, "127.0.0.1", 8080, NULL},
    {HP_TUNNEL_FORWARD, "0.0.0.0:2222", 1, "0.0.0.0", 2222, NULL},
    {HP_TUNNEL_FORWARD, "[::1]:2222", 1, "::1", 2222, NULL},
    {HP_TUNNEL_FORWARD, "65535", 1, "127.0.0.1", 65535, NULL},
    {HP_TUNNEL_FORWARD, "localhost:80", 0, NULL, 0, "not an IP address to listen on"},
    {HP_TUNNEL_FORWARD, "0", 0, NULL, 0, "the port must be 1..65535"},
    {HP_TUNNEL_FORWARD, "65536", 0, NULL, 0, "the port must be 1..65535"},
    {HP_TUNNEL_FORWARD, "080", 0, NULL, 0, "the port must be 1..65535"},
    {HP_TUNNEL_FORWARD, "+80", 0, NULL, 0, "the port must be 1..65535"},
    {HP_TUNNEL_FORWARD, "80x", 0, NULL, 0, "the port must be 1..65535"},
    {HP_TUNNEL_FORWARD, ":80", 0, NULL, 0, "empty host"},
    {HP_TUNNEL_FORWARD, "", 0, NULL, 0, "missing [BIND:]PORT"},
    {HP_TUNNEL_EXPOSE, "127.0.0.1:22", 1, "127.0.0.1", 22, NULL},
    {HP_TUNNEL_EXPOSE, "db.internal:5432", 1, "db.internal", 5432, NULL},
    {HP_TUNNEL_EXPOSE, "[2001:db8::1]:443", 1, "2001:db8::1", 443, NULL},
    {HP_TUNNEL_EXPOSE, "22", 0, NULL, 0, "is not HOST:PORT"},
    {HP_TUNNEL_EXPOSE, "host:", 0, NULL, 0, "the port must be 1..65535"},
    {HP_TUNNEL_EXPOSE, "host:99999", 0, NULL, 0, "the port must be 1..65535"},
};

static void test_parse_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct parse_case *c = &cases[i];
    hp__tunnel_cfg cfg;
    char err[256] = "";
    int r = hp__tunnel_parse(c->mode, c->arg, &cfg, err, sizeof err);

    if (c->ok) {
      if (r != 0)
        fail_msg("case %zu \"%s\": refused: %s", i, c->arg, err);
      assert_string_equal(cfg.host, c->host);
      assert_int_equal(cfg.port, c->port);
      assert_int_equal(cfg.mode, c->mode);
    } else {
      assert_int_equal(r, -EINVAL);
      if (!strstr(err, c->why))
        fail_msg("case %zu \"%s\": \"%s\" lacks \"%s\"", i, c->arg, err, c->why);
    }
  }
}

static void test_host_too_long(void **state) {
  char arg[HP_TUNNEL_HOST_MAX + 16], err[256];
  hp__tunnel_cfg cfg;
  (void)state;

  memset(arg, 'h', HP_TUNNEL_HOST_MAX + 1);
  strcpy(arg + HP_TUNNEL_HOST_MAX + 1, ":80");
  assert_int_equal(hp__tunnel_parse(HP_TUNNEL_EXPOSE, arg, &cfg, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "longer than"));
  arg[HP_TUNNEL_HOST_MAX] = '\0';
  strcat(arg, ":80");
  assert_int_equal(hp__tunnel_parse(HP_TUNNEL_EXPOSE, arg, &cfg, err, sizeof err), 0);
  assert_int_equal(strlen(cfg.host), HP_TUNNEL_HOST_MAX);
}

/* The check before punching: an address that can be bound, one that cannot
 * be bound here. Numeric addresses only: a test never asks a DNS server. */
static void test_check(void **state) {
  hp__tunnel_cfg cfg;
  char err[256];
  (void)state;

  assert_int_equal(hp__tunnel_parse(HP_TUNNEL_EXPOSE, "127.0.0.1:22", &cfg, err, sizeof err), 0);
  assert_int_equal(hp__tunnel_check(&cfg, err, sizeof err), 0);
  assert_int_equal(hp__tunnel_parse(HP_TUNNEL_FORWARD, "127.0.0.1:0", &cfg, err, sizeof err),
                   -EINVAL); /* port 0 is refused by the parser */
  /* 192.0.2.1 (TEST-NET-1) is no address of this host: nothing is sent. */
  assert_int_equal(hp__tunnel_parse(HP_TUNNEL_FORWARD, "192.0.2.1:8080", &cfg, err, sizeof err), 0);
  assert_int_equal(hp__tunnel_check(&cfg, err, sizeof err), -EADDRNOTAVAIL);
  assert_non_null(strstr(err, "cannot listen on 192.0.2.1:8080"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),
      cmocka_unit_test(test_host_too_long),
      cmocka_unit_test(test_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
