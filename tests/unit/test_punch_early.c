/*
 * test_punch_early.c - the punch engine's part of the shorter connection
 * sequence (docs/PROTOCOL.md section 5): the secure channel's HELLO right
 * behind role b's hello line and role a's "use" line, and role a's early
 * nomination of an outbound connection to a srflx candidate, with what
 * happens when that connection fails or stays silent. The peers are plain
 * sockets on loopback (punch_fixture.h), so every byte on the wire is seen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "punch.h"
#include "punch_fixture.h"

#define HELLO_A "HOLEPUNCH/1 " SESSION " alice\n"
#define HELLO_B "HOLEPUNCH/1 " SESSION " bob\n"
#define USE "HOLEPUNCH/1 " SESSION " use\n"
#define CHAN "HPS-channel-hello" /* stands in for the 38-byte HELLO */

static void with_chan(hp__pe_params *p) {
  p->chan_hello = (const uint8_t *)CHAN;
  p->chan_hello_len = strlen(CHAN);
  p->on_nominate = on_nominate;
  p->on_unnominate = on_unnominate;
  p->may_nominate_early = may_nominate_early;
}

/* Read until want bytes came or ms passed; returns the bytes read. */
static size_t read_upto(int fd, char *buf, size_t want, int ms) {
  size_t got = 0;
  ssize_t n;
  while (got < want && (n = read_some(fd, buf + got, want - got + 1, ms)) > 0)
    got += (size_t)n;
  buf[got] = '\0';
  return got;
}

/* The loop turns for ms (the engine works, the test's sockets wait). */
static void spin(uv_loop_t *loop, int ms) {
  uint64_t end = uv_now(loop) + (uint64_t)ms;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, on_safety, SAFETY_MS, 0); /* keeps the loop alive */
  while (uv_now(loop) < end) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(1000);
    uv_update_time(loop);
  }
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

static void srflx(hp__pe_params *p, size_t i, int port) {
  p->cands.c[i].kind = HP_CAND_SRFLX;
  snprintf(p->cands.c[i].addr, sizeof p->cands.c[i].addr, "127.0.0.1:%d", port);
  if (p->cands.n < i + 1)
    p->cands.n = i + 1;
}

/* Role a with chan_hello, its one candidate a srflx address where a plain
 * listener (*lfd) accepts: started, its first connection accepted. */
static int start_a_to_plain(uv_loop_t *loop, side *a, hp__pe_params *pa, int *lfd) {
  int port, got;
  *lfd = plain_listener(4, &port);
  assert_int_equal(hp__pe_create(loop, 0, &a->pe), 0);
  params(pa, 'a', "alice", "bob", 0);
  srflx(pa, 0, port);
  with_chan(pa);
  assert_int_equal(hp__pe_start(a->pe, pa, on_done, a), 0);
  spin(loop, 200);
  got = accept(*lfd, NULL, NULL);
  assert_true(got >= 0);
  return got;
}

/* Role b: its hello line and the channel's HELLO in one go, on an outbound
 * connection at once and on an inbound one after a's hello checked out;
 * a's "use" then ends the punch, and what follows stays in the socket. */
static void test_b_sends_channel_hello(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side b = {.fd = -1};
  hp__pe_params pb;
  char buf[512];
  int lfd, port, got, peer;
  (void)state;

  start_loop(&loop, &safety);
  lfd = plain_listener(4, &port);
  assert_int_equal(hp__pe_create(&loop, 0, &b.pe), 0);
  params(&pb, 'b', "bob", "alice", port);
  with_chan(&pb);
  assert_int_equal(hp__pe_start(b.pe, &pb, on_done, &b), 0);
  spin(&loop, 200);
  got = accept(lfd, NULL, NULL);
  assert_true(got >= 0);
  assert_int_equal(read_upto(got, buf, strlen(HELLO_B CHAN), 2000), strlen(HELLO_B CHAN));
  assert_string_equal(buf, HELLO_B CHAN); /* outbound: nothing awaited first */
  /* Inbound: b answers only after our hello, then with its HELLO too. */
  peer = dial(hp__pe_port(b.pe));
  spin(&loop, 100);
  assert_int_equal(read_some(peer, buf, sizeof buf, 50), -1);
  send_str(peer, HELLO_A);
  spin(&loop, 100);
  assert_int_equal(read_upto(peer, buf, strlen(HELLO_B CHAN), 2000), strlen(HELLO_B CHAN));
  assert_string_equal(buf, HELLO_B CHAN);
  /* a nominates the inbound one (a "use" line, then a's channel bytes). */
  send_str(peer, USE "after");
  while (!b.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(b.ok, 0);
  assert_string_equal(b.res.direction, "inbound");
  assert_int_equal(read_some(b.fd, buf, sizeof buf, 2000), 5);
  assert_string_equal(buf, "after");
  close(peer);
  close(got);
  close(lfd);
  close(b.fd);
  json_decref(b.report);
  finish_loop(&loop, &safety);
}

/* Role a, outbound to a srflx candidate, allowed: hello, "use" and the
 * channel's HELLO leave together, before the peer said anything; the punch
 * ends only once the peer's hello checked out. Not allowed: the old order. */
static void run_a_outbound(int early_ok) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1, .early_ok = early_ok};
  hp__pe_params pa;
  char buf[512];
  int lfd, got;
  const char *first = early_ok ? HELLO_A USE CHAN : HELLO_A;

  start_loop(&loop, &safety);
  got = start_a_to_plain(&loop, &a, &pa, &lfd);
  assert_int_equal(read_upto(got, buf, strlen(first), 2000), strlen(first));
  assert_string_equal(buf, first);
  assert_int_equal(a.nominations, early_ok ? 1 : 0);
  spin(&loop, 100);
  assert_int_equal(a.done, 0); /* the peer's hello is still missing */
  send_str(got, HELLO_B "after");
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, 0);
  assert_int_equal(a.nominations, 1);
  assert_int_equal(a.unnominations, 0);
  if (!early_ok) {
    assert_int_equal(read_upto(got, buf, strlen(USE CHAN), 2000), strlen(USE CHAN));
    assert_string_equal(buf, USE CHAN);
  }
  assert_int_equal(read_some(a.fd, buf, sizeof buf, 2000), 5);
  assert_string_equal(buf, "after");
  close(got);
  close(lfd);
  close(a.fd);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

static void test_a_nominates_early(void **state) {
  (void)state;
  run_a_outbound(1);
}

static void test_a_not_early_when_refused(void **state) {
  (void)state;
  run_a_outbound(0);
}

/* The early nominee is reset before any byte from the peer, with no other
 * connection checked: the session hears on_unnominate (it gets its relay
 * attempt back), the candidate is dialed again and nominated again. */
static void test_early_nominee_reset(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1, .early_ok = 1};
  hp__pe_params pa;
  char buf[512];
  struct linger lg = {1, 0};
  int lfd, got;
  (void)state;

  start_loop(&loop, &safety);
  got = start_a_to_plain(&loop, &a, &pa, &lfd);
  assert_int_equal(read_upto(got, buf, strlen(HELLO_A USE CHAN), 2000), strlen(HELLO_A USE CHAN));
  assert_int_equal(setsockopt(got, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(got); /* a reset */
  spin(&loop, 300);
  assert_int_equal(a.unnominations, 1);
  assert_int_equal(a.done, 0);
  /* The next socket (after the 20 ms backoff) is nominated early again. */
  spin(&loop, 300);
  got = accept(lfd, NULL, NULL);
  assert_true(got >= 0);
  assert_int_equal(read_upto(got, buf, strlen(HELLO_A USE CHAN), 2000), strlen(HELLO_A USE CHAN));
  assert_string_equal(buf, HELLO_A USE CHAN);
  assert_int_equal(a.nominations, 2);
  send_str(got, HELLO_B);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, 0);
  assert_int_equal(a.unnominations, 1);
  close(got);
  close(lfd);
  close(a.fd);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* A silent early nominee (another host at the peer's srflx address, say)
 * while a second connection, to a host candidate, checks out: the nominee
 * is given up after EARLY_WAIT_MS (3.5 s), the checked one is nominated
 * ("use" and the channel's HELLO on it) and wins; no on_unnominate. */
static void test_silent_early_nominee_replaced(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1, .early_ok = 1};
  hp__pe_params pa;
  char buf[512], want[HP_ADDR_STRLEN];
  int lsilent, psilent, lpeer, ppeer, gsilent = -1, gpeer = -1;
  uint64_t t0;
  (void)state;

  start_loop(&loop, &safety);
  lsilent = plain_listener(4, &psilent);
  lpeer = plain_listener(4, &ppeer);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", ppeer); /* candidate 0: host, the peer */
  srflx(&pa, 1, psilent);                  /* candidate 1: srflx, silent */
  with_chan(&pa);
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  spin(&loop, 200);
  gsilent = accept(lsilent, NULL, NULL);
  gpeer = accept(lpeer, NULL, NULL);
  assert_true(gsilent >= 0 && gpeer >= 0);
  assert_int_equal(read_upto(gsilent, buf, strlen(HELLO_A USE CHAN), 2000),
                   strlen(HELLO_A USE CHAN));
  assert_int_equal(read_upto(gpeer, buf, strlen(HELLO_A), 2000), strlen(HELLO_A));
  assert_string_equal(buf, HELLO_A);
  t0 = uv_now(&loop);
  send_str(gpeer, HELLO_B);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, 0);
  assert_true(uv_now(&loop) - t0 >= 3400);
  assert_int_equal(a.nominations, 2);
  assert_int_equal(a.unnominations, 0);
  assert_int_equal(a.res.rejected, 1);
  snprintf(want, sizeof want, "127.0.0.1:%d", ppeer);
  assert_string_equal(a.res.peer_addr, want);
  assert_int_equal(read_upto(gpeer, buf, strlen(USE CHAN), 2000), strlen(USE CHAN));
  assert_string_equal(buf, USE CHAN);
  assert_int_equal(read_some(gsilent, buf, sizeof buf, 2000), -1); /* reset, nothing more */
  close(gsilent);
  close(gpeer);
  close(lsilent);
  close(lpeer);
  close(a.fd);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b_sends_channel_hello),
      cmocka_unit_test(test_a_nominates_early),
      cmocka_unit_test(test_a_not_early_when_refused),
      cmocka_unit_test(test_early_nominee_reset),
      cmocka_unit_test(test_silent_early_nominee_replaced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
