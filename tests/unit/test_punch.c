/*
 * test_punch.c - the punch engine on loopback: two engines find each other
 * and agree on one authenticated connection; strangers are rejected and
 * never learn the session; bytes after the handshake stay in the socket;
 * giving up reports what was tried. The retry policy: an unanswered SYN is
 * left to the kernel (one socket), a connection that fails its handshake is
 * aborted so its 4-tuple can be dialed again at once, and a 4-tuple held by
 * an inbound connection is not dialed. Every loop ends with
 * uv_loop_close()==0. The shared helpers are in punch_fixture.h; the
 * channel's HELLO behind the lines and early nomination are in
 * test_punch_early.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "addr.h"
#include "punch.h"
#include "punch_fixture.h"

static void test_two_engines(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1}, b = {.fd = -1};
  hp__pe_params pa, pb;
  (void)state;

  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  assert_int_equal(hp__pe_create(&loop, 0, &b.pe), 0);
  assert_int_not_equal(hp__pe_port(a.pe), hp__pe_port(b.pe));
  params(&pa, 'a', "alice", "bob", hp__pe_port(b.pe));
  params(&pb, 'b', "bob", "alice", hp__pe_port(a.pe));
  pa.on_nominate = pb.on_nominate = on_nominate;
  a.peer = &b;
  b.peer = &a;
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  assert_int_equal(hp__pe_start(b.pe, &pb, on_done, &b), 0);
  assert_int_equal(hp__pe_start(b.pe, &pb, on_done, &b), -EALREADY);
  while (!(a.done && b.done))
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.done, 1);
  assert_int_equal(b.done, 1);
  /* Only a nominates, once, and before either side finished. */
  assert_int_equal(a.nominations, 1);
  assert_int_equal(a.done_seen, 0);
  assert_int_equal(b.nominations, 0);
  assert_int_equal(a.ok, 0);
  assert_int_equal(b.ok, 0);
  assert_same_connection(&a, &b);
  assert_int_equal(a.res.rejected, 0);
  close(a.fd);
  close(b.fd);
  json_decref(a.report);
  json_decref(b.report);
  finish_loop(&loop, &safety);
}

/* Strangers on A's port: garbage, a wrong session, the right session with
 * the wrong id, and silence. All are rejected, none receives anything, and
 * the punch still succeeds. */
typedef struct stranger_ctx {
  side *a, *b;
  hp__pe_params *pb;
  int b_started;
} stranger_ctx;

static void on_poll(uv_timer_t *t) {
  stranger_ctx *sc = t->data;
  hp__pe_result r;

  if (!sc->a->pe)
    return;
  hp__pe_get_result(sc->a->pe, &r);
  if (r.rejected >= 4 && !sc->b_started) {
    sc->b_started = 1;
    assert_int_equal(hp__pe_start(sc->b->pe, sc->pb, on_done, sc->b), 0);
    uv_timer_stop(t);
  }
}

static void test_strangers_rejected(void **state) {
  uv_loop_t loop;
  uv_timer_t safety, poller;
  side a = {.fd = -1}, b = {.fd = -1};
  hp__pe_params pa, pb;
  stranger_ctx sc = {&a, &b, &pb, 0};
  int s[4];
  char buf[256];
  json_t *inb;
  (void)state;

  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  assert_int_equal(hp__pe_create(&loop, 0, &b.pe), 0);
  params(&pa, 'a', "alice", "bob", hp__pe_port(b.pe));
  params(&pb, 'b', "bob", "alice", hp__pe_port(a.pe));
  pa.hello_ms = 500; /* the silent stranger is dropped after this */

  /* Connected before A starts: they wait in A's backlog. */
  s[0] = dial(hp__pe_port(a.pe));
  send_str(s[0], "GET / HTTP/1.0\r\n\r\n");
  s[1] = dial(hp__pe_port(a.pe));
  send_str(s[1], "HOLEPUNCH/1 ffffffffffffffffffffffffffffffff bob\n");
  s[2] = dial(hp__pe_port(a.pe));
  send_str(s[2], "HOLEPUNCH/1 " SESSION " mallory\n");
  s[3] = dial(hp__pe_port(a.pe)); /* says nothing */

  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  uv_timer_init(&loop, &poller);
  poller.data = &sc;
  uv_timer_start(&poller, on_poll, 10, 10);
  while (!(a.done && b.done))
    uv_run(&loop, UV_RUN_ONCE);
  assert_true(sc.b_started);
  assert_int_equal(a.ok, 0);
  assert_int_equal(b.ok, 0);
  assert_same_connection(&a, &b);
  /* Exactly the strangers: A's own connection to B, queued in B's backlog
   * while B was not started, carries A's hello and so is not dropped for
   * silence; B answers it once started. */
  assert_int_equal(a.res.rejected, 4);
  assert_true(a.res.inbound_seen >= 4);
  inb = json_object_get(a.report, "inbound");
  assert_int_equal(json_array_size(inb), 4);

  for (int i = 0; i < 4; i++) {
    /* Closed by A, and not one byte (our hello) was sent to a stranger. */
    ssize_t n = read_some(s[i], buf, sizeof buf, 2000);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    close(s[i]);
  }
  close(a.fd);
  close(b.fd);
  json_decref(a.report);
  json_decref(b.report);
  uv_close((uv_handle_t *)&poller, NULL);
  finish_loop(&loop, &safety);
}

/* Role b against a scripted role a that sends hello, use and data in one
 * segment: the data must still be in the socket that b hands out. */
static void test_bytes_after_handshake_kept(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side b = {.fd = -1};
  hp__pe_params pb;
  char buf[256];
  int peer;
  (void)state;

  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &b.pe), 0);
  params(&pb, 'b', "bob", "alice", 0); /* no candidates: accept only */
  peer = dial(hp__pe_port(b.pe));
  send_str(peer, "HOLEPUNCH/1 " SESSION " alice\nHOLEPUNCH/1 " SESSION " use\nhello after\n");
  assert_int_equal(hp__pe_start(b.pe, &pb, on_done, &b), 0);
  while (!b.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(b.ok, 0);
  assert_string_equal(b.res.direction, "inbound");
  /* b answered with its hello after verifying ours. */
  assert_true(read_some(peer, buf, sizeof buf, 2000) > 0);
  assert_string_equal(buf, "HOLEPUNCH/1 " SESSION " bob\n");
  /* The fd is blocking and holds the bytes that followed "use". */
  assert_int_equal(read_some(b.fd, buf, sizeof buf, 2000), 12);
  assert_string_equal(buf, "hello after\n");
  close(peer);
  close(b.fd);
  json_decref(b.report);
  finish_loop(&loop, &safety);
}

/* A candidate that is our own address and port (peers in LANs with the same
 * addressing) is a TCP self-connect: skipped, not rejected over and over. */
static void test_self_candidate_skipped(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1};
  hp__pe_params pa;
  json_t *c0;
  (void)state;

  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", hp__pe_port(a.pe));
  pa.timeout_s = 0.5;
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  c0 = json_array_get(json_object_get(a.report, "candidates"), 0);
  assert_int_equal(json_integer_value(json_object_get(c0, "attempts")), 1);
  assert_non_null(strstr(json_string_value(json_object_get(c0, "last_error")), "own address"));
  assert_int_equal(a.res.rejected, 0);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* Nobody at the candidate: refused, retried quickly, then a report. */
static void test_give_up_report(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1};
  hp__pe_params pa;
  hp__pe *tmp;
  int dead_port;
  json_t *cands, *c0;
  (void)state;

  start_loop(&loop, &safety);
  /* A port that was just free: open and destroy an engine on it. */
  assert_int_equal(hp__pe_create(&loop, 0, &tmp), 0);
  dead_port = hp__pe_port(tmp);
  hp__pe_destroy(tmp);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", dead_port);
  pa.cands.n = 2; /* plus an IPv6 candidate: dialed too (nothing listens there) */
  pa.cands.c[1].kind = HP_CAND_SRFLX;
  snprintf(pa.cands.c[1].addr, sizeof pa.cands.c[1].addr, "[::1]:%d", dead_port);
  pa.timeout_s = 0.4;
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  assert_int_equal(a.fd, -1);
  cands = json_object_get(a.report, "candidates");
  assert_int_equal(json_array_size(cands), 2);
  c0 = json_array_get(cands, 0);
  /* A refusal ends the socket: quick retries, each on a new one. */
  assert_true(json_integer_value(json_object_get(c0, "attempts")) > 3);
  assert_true(json_integer_value(json_object_get(c0, "syns")) >=
              json_integer_value(json_object_get(c0, "attempts")));
  assert_string_equal(json_string_value(json_object_get(c0, "last_error")), "refused");
  assert_true(json_integer_value(json_object_get(json_array_get(cands, 1), "attempts")) > 0);
  /* The text version counts sockets and SYNs per candidate. */
  assert_non_null(strstr(a.text, " sockets, "));
  assert_non_null(strstr(a.text, "last refused"));
  assert_non_null(strstr(a.text, "srflx [::1]:"));
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* A SYN that gets no answer stays with its socket: the kernel retransmits it
 * with the same ISN, which a NAT's conntrack in SYN_SENT2 accepts and a new
 * socket's SYN (new ISN) would not pass. The candidate is a listener whose
 * accept queue is full, so the kernel drops every SYN to it unanswered. */
static void test_unanswered_syn_keeps_socket(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1};
  hp__pe_params pa;
  int port, lfd, filler;
  (void)state;

  start_loop(&loop, &safety);
  lfd = plain_listener(0, &port);
  filler = dial(port); /* backlog 0 holds one: now the queue is full */
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", port);
  pa.timeout_s = 1.5;
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  print_message("unanswered candidate: %s\n", a.text);
  assert_int_equal(cand_int(&a, 0, "attempts"), 1);
  assert_int_equal(a.res.attempts, 1);
  assert_true(cand_int(&a, 0, "syns") >= 1);
  assert_string_equal(cand_str(&a, 0, "last_error"), "no answer");
  assert_non_null(strstr(a.text, ": 1 socket, "));
  close(filler);
  close(lfd);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* The peer's connection arrived on our listener from the candidate's
 * address, so the candidate's 4-tuple is in use: the engine must not dial it
 * (connect() would fail with EADDRNOTAVAIL over and over; before the engine
 * has seen the connection, one such attempt is possible), and the inbound
 * connection wins once its hello arrives, here 300 ms later. */
static void on_send_hello(uv_timer_t *t) {
  send_str(*(int *)t->data, "HOLEPUNCH/1 " SESSION " bob\n");
}

static void test_inbound_holds_tuple(void **state) {
  uv_loop_t loop;
  uv_timer_t safety, later;
  side a = {.fd = -1};
  hp__pe_params pa;
  int peer_port = free_port(), peer;
  char buf[256];
  (void)state;

  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", peer_port);
  peer = dial_from(peer_port, hp__pe_port(a.pe));
  /* Usually lets the engine see the connection before it starts. */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  uv_timer_init(&loop, &later);
  later.data = &peer;
  uv_timer_start(&later, on_send_hello, 300, 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, 0);
  assert_string_equal(a.res.direction, "inbound");
  print_message("attempts while the inbound connection held the 4-tuple: %u\n", a.res.attempts);
  assert_true(a.res.attempts <= 1);
  /* a answered with its hello and nominated this connection. */
  assert_true(read_some(peer, buf, sizeof buf, 2000) > 0);
  assert_non_null(strstr(buf, "HOLEPUNCH/1 " SESSION " alice\n"));
  close(peer);
  close(a.fd);
  json_decref(a.report);
  uv_close((uv_handle_t *)&later, NULL);
  finish_loop(&loop, &safety);
}

/* Same 4-tuple, but the connection from the candidate's address stays
 * silent: it is dropped after the handshake bound, with a RST (the stranger
 * reads a reset and not one byte), which frees the 4-tuple at once. The
 * engine then dials the candidate itself: nobody listens there, so the
 * answer is "refused". (A FIN instead would leave our side in FIN-WAIT on
 * the 4-tuple, and on a real path every connect() on it would fail with
 * EADDRNOTAVAIL; loopback's tcp_tw_reuse hides that, the reset does not.) */
static void test_rejected_inbound_frees_tuple(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1};
  hp__pe_params pa;
  int peer_port = free_port(), silent;
  char buf[256];
  ssize_t n;
  (void)state;

  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", peer_port);
  pa.hello_ms = 200;
  pa.timeout_s = 1.5;
  silent = dial_from(peer_port, hp__pe_port(a.pe));
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  print_message("after the silent inbound: %s\n", a.text);
  assert_int_equal(a.res.rejected, 1);
  assert_int_equal(json_array_size(json_object_get(a.report, "inbound")), 1);
  assert_true(cand_int(&a, 0, "attempts") >= 1);
  assert_string_equal(cand_str(&a, 0, "last_error"), "refused");
  n = read_some(silent, buf, sizeof buf, 2000);
  assert_true(n < 0 && errno == ECONNRESET);
  close(silent);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* An outbound connection to a stranger that accepts and says nothing is
 * kept: it carries our hello, and on a lossy path the real peer's answer can
 * take longer than any fixed bound (the peer may already have kept this very
 * connection). Giving up then aborts it: the stranger reads our hello and a
 * reset. */
static void test_silent_outbound_kept(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1};
  hp__pe_params pa;
  int port, lfd, got;
  char buf[256];
  ssize_t n;
  (void)state;

  start_loop(&loop, &safety);
  lfd = plain_listener(16, &port); /* the kernel accepts, nobody speaks */
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", port);
  pa.hello_ms = 100;
  pa.timeout_s = 1;
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  print_message("silent outbound stranger: %s\n", a.text);
  assert_int_equal(a.res.rejected, 0);
  assert_int_equal(cand_int(&a, 0, "attempts"), 1);
  assert_string_equal(cand_str(&a, 0, "last_error"), "none");
  got = accept(lfd, NULL, NULL);
  assert_true(got >= 0);
  n = read_some(got, buf, sizeof buf, 2000);
  assert_int_equal(n, (ssize_t)strlen("HOLEPUNCH/1 " SESSION " alice\n"));
  n = read_some(got, buf, sizeof buf, 2000);
  assert_true(n < 0 && errno == ECONNRESET);
  close(got);
  close(lfd);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* An outbound connection to a stranger that answers with something else: it
 * is rejected and aborted with a reset, and the candidate is dialed again on
 * the same 4-tuple (possible at once thanks to the reset). The stranger is a
 * plain listener that a timer serves: it answers each connection with an SSH
 * banner. */
#define STRANGER_MAX 16
typedef struct banner_srv {
  int lfd;
  int fds[STRANGER_MAX];
  int n;
} banner_srv;

static void on_banner_poll(uv_timer_t *t) {
  banner_srv *b = t->data;
  int fd;
  while (b->n < STRANGER_MAX && (fd = accept(b->lfd, NULL, NULL)) >= 0) {
    send_str(fd, "SSH-2.0-OpenSSH_9.2\r\n");
    b->fds[b->n++] = fd;
  }
}

static void test_bad_outbound_retried(void **state) {
  uv_loop_t loop;
  uv_timer_t safety, poll_t;
  side a = {.fd = -1};
  hp__pe_params pa;
  banner_srv b = {.n = 0};
  int port;
  char buf[256];
  (void)state;

  start_loop(&loop, &safety);
  b.lfd = plain_listener(16, &port);
  assert_int_equal(fcntl(b.lfd, F_SETFL, O_NONBLOCK), 0);
  uv_timer_init(&loop, &poll_t);
  poll_t.data = &b;
  uv_timer_start(&poll_t, on_banner_poll, 5, 5);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", port);
  pa.timeout_s = 1.5;
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  print_message("SSH banner at the candidate: %s\n", a.text);
  assert_true(a.res.rejected >= 2);
  assert_true(cand_int(&a, 0, "attempts") >= 2);
  assert_string_equal(cand_str(&a, 0, "handshake"), "not a HOLEPUNCH/1 line");
  /* Every connection the stranger got carried our hello, then a reset. */
  assert_true(b.n >= 2);
  for (int i = 0; i < b.n; i++) {
    ssize_t n = read_some(b.fds[i], buf, sizeof buf, 2000);
    assert_int_equal(n, (ssize_t)strlen("HOLEPUNCH/1 " SESSION " alice\n"));
    n = read_some(b.fds[i], buf, sizeof buf, 2000);
    assert_true(n < 0 && errno == ECONNRESET);
    close(b.fds[i]);
  }
  close(b.lfd);
  json_decref(a.report);
  uv_close((uv_handle_t *)&poll_t, NULL);
  finish_loop(&loop, &safety);
}

/* Loopback and link-local candidates are dialed only when allowed (a hostile
 * peer could point us at our own host's services or a metadata address);
 * unspecified, broadcast and multicast ones never. */
static void test_loopback_candidates_need_consent(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1};
  hp__pe_params pa;
  static const char *const addrs[] = {"127.0.0.1:22", "169.254.169.254:80", "0.0.0.0:1",
                                      "255.255.255.255:1", "224.0.0.1:80"};
  int lfd, port;
  (void)state;

  start_loop(&loop, &safety);
  lfd = plain_listener(16, &port); /* would accept, if it were dialed */
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  params(&pa, 'a', "alice", "bob", 0);
  pa.allow_loopback = 0;
  pa.timeout_s = 0.3;
  pa.cands.n = 6;
  for (size_t i = 0; i < 5; i++) {
    pa.cands.c[i].kind = HP_CAND_SRFLX;
    snprintf(pa.cands.c[i].addr, sizeof pa.cands.c[i].addr, "%s", addrs[i]);
  }
  pa.cands.c[5].kind = HP_CAND_HOST;
  snprintf(pa.cands.c[5].addr, sizeof pa.cands.c[5].addr, "127.0.0.1:%d", port);
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  while (!a.done)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, -ETIMEDOUT);
  print_message("not dialed: %s\n", a.text);
  assert_int_equal(a.res.attempts, 0);
  assert_non_null(strstr(cand_str(&a, 0, "last_error"), "loopback"));
  assert_non_null(strstr(cand_str(&a, 1, "last_error"), "link-local"));
  for (size_t i = 2; i < 5; i++)
    assert_non_null(strstr(cand_str(&a, i, "last_error"), "not a peer address"));
  assert_non_null(strstr(cand_str(&a, 5, "last_error"), "ALLOW_LOOPBACK_CANDIDATES"));
  assert_int_equal(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(accept(lfd, NULL, NULL), -1); /* nobody came */
  close(lfd);
  json_decref(a.report);
  finish_loop(&loop, &safety);
}

/* Silent strangers beyond the bound on unauthenticated connections (from
 * RLIMIT_NOFILE: 64 gives 16) are dropped oldest first, with a reset, and
 * the real peer still gets through. */
#define SILENT 40
static void test_strangers_bounded(void **state) {
  uv_loop_t loop;
  uv_timer_t safety;
  side a = {.fd = -1}, b = {.fd = -1};
  hp__pe_params pa, pb;
  struct rlimit old, low;
  int s[SILENT], resets = 0;
  char buf[64];
  (void)state;

  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 64;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  start_loop(&loop, &safety);
  assert_int_equal(hp__pe_create(&loop, 0, &a.pe), 0);
  assert_int_equal(hp__pe_create(&loop, 0, &b.pe), 0);
  params(&pa, 'a', "alice", "bob", hp__pe_port(b.pe));
  params(&pb, 'b', "bob", "alice", hp__pe_port(a.pe));
  for (int i = 0; i < SILENT; i++)
    s[i] = dial(hp__pe_port(a.pe)); /* in A's backlog, saying nothing */
  assert_int_equal(hp__pe_start(a.pe, &pa, on_done, &a), 0);
  for (int i = 0; i < 20; i++)
    uv_run(&loop, UV_RUN_NOWAIT); /* A accepts them all, holding 16 */
  assert_int_equal(hp__pe_start(b.pe, &pb, on_done, &b), 0);
  while (!(a.done && b.done))
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(a.ok, 0);
  assert_int_equal(b.ok, 0);
  assert_same_connection(&a, &b);
  print_message("dropped %u of %d silent strangers\n", a.res.dropped, SILENT);
  assert_true(a.res.dropped >= SILENT - 16);
  assert_int_equal(json_integer_value(json_object_get(a.report, "dropped")), a.res.dropped);
  for (int i = 0; i < SILENT; i++) {
    ssize_t n = read_some(s[i], buf, sizeof buf, 2000);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET)); /* never a byte */
    resets += n < 0;
    close(s[i]);
  }
  assert_true(resets >= SILENT - 16);
  close(a.fd);
  close(b.fd);
  json_decref(a.report);
  json_decref(b.report);
  finish_loop(&loop, &safety);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

static void test_port_in_use(void **state) {
  uv_loop_t loop;
  hp__pe *a, *b;
  hp__pe_params p;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(hp__pe_create(&loop, 0, &a), 0);
  /* SO_REUSEPORT must not let a second listener share the port. */
  assert_int_equal(hp__pe_create(&loop, hp__pe_port(a), &b), -EADDRINUSE);
  assert_int_equal(hp__pe_create(&loop, 70000, &b), -EINVAL);
  params(&p, 'c', "alice", "bob", 1);
  assert_int_equal(hp__pe_start(a, &p, on_done, NULL), -EINVAL);
  params(&p, 'a', "alice", "bob", 1);
  snprintf(p.session, sizeof p.session, "nothex");
  assert_int_equal(hp__pe_start(a, &p, on_done, NULL), -EINVAL);
  params(&p, 'a', "alice", "bob", 1);
  p.start_in_ms = HP_START_IN_MS_MAX + 1; /* the decoder's bound is the engine's */
  assert_int_equal(hp__pe_start(a, &p, on_done, NULL), -EINVAL);
  hp__pe_destroy(a);
  hp__pe_destroy(NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_engines),
      cmocka_unit_test(test_strangers_rejected),
      cmocka_unit_test(test_bytes_after_handshake_kept),
      cmocka_unit_test(test_self_candidate_skipped),
      cmocka_unit_test(test_give_up_report),
      cmocka_unit_test(test_unanswered_syn_keeps_socket),
      cmocka_unit_test(test_inbound_holds_tuple),
      cmocka_unit_test(test_rejected_inbound_frees_tuple),
      cmocka_unit_test(test_silent_outbound_kept),
      cmocka_unit_test(test_bad_outbound_retried),
      cmocka_unit_test(test_loopback_candidates_need_consent),
      cmocka_unit_test(test_strangers_bounded),
      cmocka_unit_test(test_port_in_use),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
