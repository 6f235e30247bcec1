/* test_chan_bridge.c - the socketpair bridge (src/lib/chan/bridge.h) and the
 * public hp_stream handle (src/lib/stream.c) over a secure channel on a
 * loopback TCP pair: bytes written on the plain fd arrive through the
 * encrypted channel and back, shutdown(SHUT_WR) arrives as the channel's
 * EOF, the channel's EOF as the fd's; the bridge frees itself (the loop
 * closes with nothing left). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "chan/bridge.h"
#include "chan/secure.h"
#include "chan/tcp.h"
#include "stream_int.h"

#define SESSION "0123456789abcdef0123456789abcdef"
static const uint8_t psk[32] = {3};

typedef struct far {
  hp_stream *s;
  int ready, eof, errors;
  uint8_t got[1 << 20];
  size_t ngot;
} far;

static void f_data(hp_stream *s, const unsigned char *p, size_t n, void *d) {
  far *f = d;
  (void)s;
  assert_true(f->ngot + n <= sizeof f->got);
  memcpy(f->got + f->ngot, p, n);
  f->ngot += n;
}
static void f_eof(hp_stream *s, void *d) {
  far *f = d;
  f->eof = 1;
  /* Answer with our bytes, then end our direction too. */
  assert_int_equal(hp_stream_write(s, "pong", 4), 0);
  assert_int_equal(hp_stream_shutdown(s), 0);
}
static void f_error(hp_stream *s, int err, const char *why, void *d) {
  (void)s, (void)err, (void)why;
  ((far *)d)->errors++;
}
static const hp_stream_cbs fcbs = {f_data, f_eof, f_error, NULL};

static int near_ready, far_ready;
static void on_ready(hp_bs *s, int status, const char *why, void *ud) {
  (void)s, (void)why;
  assert_int_equal(status, 0);
  (*(int *)ud)++;
}

static void tcp_pair(int fds[2]) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
  fds[1] = accept(l, NULL, NULL);
  close(l);
}

static void test_bridge_both_ways(void **state) {
  static far f;
  uv_loop_t loop;
  int fds[2], ufd, turns = 0;
  hp_bs *c0, *c1, *near, *farbs;
  hp__hs_params pa = {SESSION, "alice", "bob", 'a', psk}, pb = {SESSION, "bob", "alice", 'b', psk};
  uint8_t *big = malloc(300000), back[16];
  size_t i, off = 0;
  ssize_t n;
  (void)state;

  for (i = 0; i < 300000; i++)
    big[i] = (uint8_t)(i * 7 + (i >> 11));
  memset(&f, 0, sizeof f);
  assert_int_equal(uv_loop_init(&loop), 0);
  tcp_pair(fds);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[0], &c0), 0);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[1], &c1), 0);
  assert_int_equal(hp__secure_start(&loop, c0, &pa, 5000, on_ready, &near_ready, &near), 0);
  assert_int_equal(hp__secure_start(&loop, c1, &pb, 5000, on_ready, &far_ready, &farbs), 0);
  while ((!near_ready || !far_ready) && turns++ < 1000)
    uv_run(&loop, UV_RUN_ONCE);
  f.s = hp__stream_wrap(farbs);
  assert_non_null(f.s);
  assert_int_equal(hp_stream_authenticated(f.s), 1);
  hp_stream_set_cbs(f.s, &fcbs, &f);
  assert_int_equal(hp__bridge_start(&loop, near, &ufd), 0);
  /* The plain fd is non-blocking here only so the test can drive the loop. */
  assert_int_equal(fcntl(ufd, F_SETFL, O_NONBLOCK), 0);
  while (off < 300000 && turns++ < 100000) {
    n = write(ufd, big + off, 300000 - off);
    if (n > 0)
      off += (size_t)n;
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  assert_int_equal(off, 300000);
  assert_int_equal(shutdown(ufd, SHUT_WR), 0);
  while (!f.eof && turns++ < 100000)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(f.ngot, 300000);
  assert_memory_equal(f.got, big, 300000);
  /* The far side's "pong" and EOF come out of the plain fd. */
  off = 0;
  for (;;) {
    n = read(ufd, back + off, sizeof back - off);
    if (n == 0)
      break;
    if (n > 0)
      off += (size_t)n;
    else
      assert_int_equal(errno, EAGAIN);
    uv_run(&loop, UV_RUN_ONCE);
    assert_true(turns++ < 100000);
  }
  assert_int_equal(off, 4);
  assert_memory_equal(back, "pong", 4);
  close(ufd);
  assert_int_equal(f.errors, 0);
  hp_stream_close(f.s);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* the bridge ended by itself */
  assert_int_equal(uv_loop_close(&loop), 0);
  free(big);
}

static void quiet_eof(hp_stream *s, void *d) {
  (void)s;
  ((far *)d)->eof = 1; /* and nothing more: this side never ends its direction */
}
static const hp_stream_cbs quiet_cbs = {f_data, quiet_eof, f_error, NULL};

/* The caller closes its socket while the peer has not ended its direction
 * (and never will): the bridge sends our end-of-stream and ends by itself,
 * instead of keeping the loop (and a process on SIGTERM) alive for the
 * peer's. */
static void test_bridge_caller_closes(void **state) {
  static far f;
  uv_loop_t loop;
  int fds[2], ufd, turns = 0;
  hp_bs *c0, *c1, *near, *farbs;
  hp__hs_params pa = {SESSION, "alice", "bob", 'a', NULL},
                pb = {SESSION, "bob", "alice", 'b', NULL};
  (void)state;

  memset(&f, 0, sizeof f);
  near_ready = far_ready = 0;
  assert_int_equal(uv_loop_init(&loop), 0);
  tcp_pair(fds);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[0], &c0), 0);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[1], &c1), 0);
  assert_int_equal(hp__secure_start(&loop, c0, &pa, 5000, on_ready, &near_ready, &near), 0);
  assert_int_equal(hp__secure_start(&loop, c1, &pb, 5000, on_ready, &far_ready, &farbs), 0);
  while ((!near_ready || !far_ready) && turns++ < 1000)
    uv_run(&loop, UV_RUN_ONCE);
  f.s = hp__stream_wrap(farbs);
  hp_stream_set_cbs(f.s, &quiet_cbs, &f);
  assert_int_equal(hp__bridge_start(&loop, near, &ufd), 0);
  assert_int_equal(write(ufd, "bye", 3), 3);
  close(ufd);
  while (!f.eof && turns++ < 1000)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(f.ngot, 3);
  assert_int_equal(f.eof, 1);
  /* The bridge ends by itself while the far side stays open: the near
   * TCP socket (fds[0], closed with the bridge's channel) goes away. */
  for (turns = 0; turns < 300 && fcntl(fds[0], F_GETFD) != -1; turns++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
  assert_int_equal(fcntl(fds[0], F_GETFD), -1);
  assert_int_equal(f.errors, 0);
  hp_stream_close(f.s);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bridge_both_ways),
      cmocka_unit_test(test_bridge_caller_closes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
