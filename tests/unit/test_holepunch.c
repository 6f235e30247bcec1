/*
 * test_holepunch.c - the public API without a rendezvous: configuration
 * errors fail synchronously and never fire the callback; an unreachable
 * rendezvous is HP_STATUS_RENDEZVOUS; a busy port is HP_STATUS_CONFIG;
 * destroy works at any phase (also from the callback), and every loop ends
 * with uv_loop_close() == 0.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "holepunch.h"

/* A listening socket on 127.0.0.1 that never answers (requests hang), or
 * closed at once to get a refused port. */
static int listener(int *port) {
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

static void config(hp_config *c, char *url, size_t urllen, int rdv_port) {
  hp_config_init(c);
  snprintf(url, urllen, "http://127.0.0.1:%d", rdv_port);
  c->rendezvous_url = url;
  c->internal_tcp_port = 0; /* any free port */
  c->ws_open_timeout = 5;
  c->ws_recv_timeout = 5;
  c->listener_ready_timeout = 0.3;
  c->p2p_connect_timeout = 1;
}

static int fired;
static hp_status last_status;

static void on_done(hp_punch *p, hp_status st, void *data) {
  (void)data;
  fired++;
  last_status = st;
  assert_int_equal(hp_punch_take_fd(p), -1); /* no connection */
  hp_punch_destroy(p);                       /* allowed from the callback */
}

static void on_never(hp_punch *p, hp_status st, void *data) {
  (void)p, (void)st, (void)data;
  fail_msg("callback fired although the call failed or the handle was destroyed");
}

static void test_defaults_and_version(void **state) {
  hp_config c;
  (void)state;
  hp_config_init(&c);
  assert_null(c.rendezvous_url);
  assert_int_equal(c.internal_tcp_port, 8082);
  assert_true(c.ws_open_timeout == 15.0 && c.ws_recv_timeout == 120.0);
  assert_true(c.listener_ready_timeout == 15.0 && c.p2p_connect_timeout == 30.0);
  assert_string_equal(hp_version(), HP_VERSION);
  hp_punch_destroy(NULL);
  assert_string_equal(hp_punch_state(NULL), "none");
  assert_int_equal(hp_punch_take_fd(NULL), -1);
  assert_int_equal(c.allow_loopback_candidates, 0); /* a stranger's 127.0.0.1 is not dialed */
}

/* hp_punch_info(NULL) crashed while hp_punch_state(NULL) was handled. */
static void test_info_null(void **state) {
  hp_info info;
  (void)state;
  memset(&info, 0x5a, sizeof info);
  hp_punch_info(NULL, &info);
  assert_string_equal(info.own_id, "");
  assert_string_equal(info.peer_id, "");
  assert_string_equal(info.reason, "");
  assert_true(info.elapsed_ms == 0);
  hp_punch_info(NULL, NULL);
}

static void test_bad_config_is_synchronous(void **state) {
  uv_loop_t loop;
  hp_config c;
  hp_punch *p = NULL;
  char url[64];
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  config(&c, url, sizeof url, 1);
  c.rendezvous_url = "ftp://example";
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  config(&c, url, sizeof url, 1);
  c.room = "no spaces allowed";
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  config(&c, url, sizeof url, 1);
  c.worker_id = "bad/id";
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  config(&c, url, sizeof url, 1);
  c.p2p_connect_timeout = 0;
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  config(&c, url, sizeof url, 1);
  c.rendezvous_url = NULL;
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  /* A mistyped code is refused before any traffic (one digit changed). */
  config(&c, url, sizeof url, 1);
  c.code = "000g40-r40m30-e20918-5gr38e-1xwas";
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  c.code = "not a code";
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), -EINVAL);
  assert_null(p);
  assert_null(hp_punch_take_stream(NULL));
  hp_stream_close(NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A valid code is accepted (the room is derived from it) and the attempt
 * then fails like any other against a dead rendezvous. */
static void test_code_accepted(void **state) {
  uv_loop_t loop;
  hp_config c;
  hp_punch *p = NULL;
  char url[64];
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  config(&c, url, sizeof url, 1);
  c.code = "000G40 R40M30 E20918 5GR38E 1XWAR"; /* as typed: case, spaces */
  fired = 0;
  assert_int_equal(hp_punch_start(&loop, &c, on_done, NULL, &p), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fired, 1);
  assert_int_equal(last_status, HP_STATUS_RENDEZVOUS);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_connect_unreachable(void **state) {
  hp_config c;
  char url[64], peer[65] = "x", reason[256];
  int port, fd = 0;
  (void)state;

  close(listener(&port)); /* now refused */
  config(&c, url, sizeof url, port);
  assert_int_equal(hp_connect(&c, &fd, peer, sizeof peer, reason, sizeof reason),
                   HP_STATUS_RENDEZVOUS);
  assert_int_equal(fd, -1);
  assert_string_equal(peer, "");
  assert_non_null(strstr(reason, "whoami"));
}

static void test_async_unreachable_destroy_in_cb(void **state) {
  uv_loop_t loop;
  hp_config c;
  hp_punch *p = NULL;
  char url[64];
  int port;
  (void)state;

  close(listener(&port));
  assert_int_equal(uv_loop_init(&loop), 0);
  config(&c, url, sizeof url, port);
  c.room = "r1";
  c.worker_id = "me";
  fired = 0;
  assert_int_equal(hp_punch_start(&loop, &c, on_done, NULL, &p), 0);
  assert_string_equal(hp_punch_state(p), "listening");
  assert_int_equal(fired, 0); /* never from inside the call */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(fired, 1);
  assert_int_equal(last_status, HP_STATUS_RENDEZVOUS);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_port_busy_is_config(void **state) {
  uv_loop_t loop;
  hp_config c;
  hp_punch *p = NULL;
  char url[64];
  int busy_port, fd;
  (void)state;

  fd = listener(&busy_port); /* bound to 127.0.0.1: 0.0.0.0 conflicts with it */
  assert_int_equal(uv_loop_init(&loop), 0);
  config(&c, url, sizeof url, 1);
  c.internal_tcp_port = busy_port;
  fired = 0;
  assert_int_equal(hp_punch_start(&loop, &c, on_done, NULL, &p), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(fired, 1);
  assert_int_equal(last_status, HP_STATUS_CONFIG);
  assert_int_equal(uv_loop_close(&loop), 0);
  close(fd);
}

static void on_check(uv_timer_t *t) {
  hp_punch **pp = t->data;
  if (strcmp(hp_punch_state(*pp), "discovering") == 0) {
    hp_punch_destroy(*pp); /* whoami hangs: cancelled, freed when it returns */
    *pp = NULL;
    uv_close((uv_handle_t *)t, NULL);
  }
}

static void test_destroy_while_discovering(void **state) {
  uv_loop_t loop;
  uv_timer_t check;
  hp_config c;
  hp_punch *p = NULL;
  char url[64];
  int port, blackhole;
  (void)state;

  blackhole = listener(&port); /* accepts in the kernel, never answers */
  assert_int_equal(uv_loop_init(&loop), 0);
  config(&c, url, sizeof url, port);
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), 0);
  uv_timer_init(&loop, &check);
  check.data = &p;
  uv_timer_start(&check, on_check, 20, 20);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_null(p);
  assert_int_equal(uv_loop_close(&loop), 0);
  close(blackhole);
}

/* A library user who sees "failed" and destroys the handle before the
 * callback ran (it then never runs, and nothing touches the freed handle).
 * A check handle runs right after the poll phase in which the whoami
 * failure arrives, so it always sees "failed" before the callback's turn. */
static void on_check_failed(uv_check_t *h) {
  hp_punch **pp = h->data;
  if (*pp && strcmp(hp_punch_state(*pp), "failed") == 0) {
    hp_punch_destroy(*pp);
    *pp = NULL;
    uv_close((uv_handle_t *)h, NULL);
  }
}

static void test_destroy_when_failed_before_callback(void **state) {
  uv_loop_t loop;
  uv_check_t check;
  hp_config c;
  hp_punch *p = NULL;
  char url[64];
  int port;
  (void)state;

  close(listener(&port)); /* refused: whoami fails at once */
  assert_int_equal(uv_loop_init(&loop), 0);
  config(&c, url, sizeof url, port);
  assert_int_equal(hp_punch_start(&loop, &c, on_never, NULL, &p), 0);
  uv_check_init(&loop, &check);
  check.data = &p;
  uv_check_start(&check, on_check_failed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_null(p);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_version),
      cmocka_unit_test(test_info_null),
      cmocka_unit_test(test_bad_config_is_synchronous),
      cmocka_unit_test(test_code_accepted),
      cmocka_unit_test(test_connect_unreachable),
      cmocka_unit_test(test_async_unreachable_destroy_in_cb),
      cmocka_unit_test(test_port_busy_is_config),
      cmocka_unit_test(test_destroy_while_discovering),
      cmocka_unit_test(test_destroy_when_failed_before_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
