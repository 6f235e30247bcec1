/* test_chan_tcp.c - the TCP carrier (src/lib/chan/tcp.h) over a loopback TCP
 * pair: bytes both ways intact, half-close (EOF after every queued byte,
 * writing on after the peer's EOF), write after shutdown, backpressure
 * (high water, on_drain, the hard cap) with the reader paused, close from
 * inside on_data and with writes pending, accept from a uv listener, a reset
 * peer. Every case ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "chan/tcp.h"

typedef struct end {
  hp_bs *s;
  uint8_t *got;
  size_t ngot, cap;
  int eof, err, drains, errors;
  int close_on_data; /* close the stream from inside on_data */
  int shutdown_on_eof;
} end;

static void on_data(hp_bs *s, const uint8_t *p, size_t n, void *ud) {
  end *e = ud;
  assert_ptr_equal(s, e->s);
  assert_true(n > 0);
  assert_false(e->eof);
  if (e->ngot + n > e->cap) {
    e->cap = (e->ngot + n) * 2;
    e->got = realloc(e->got, e->cap);
    assert_non_null(e->got);
  }
  memcpy(e->got + e->ngot, p, n);
  e->ngot += n;
  if (e->close_on_data) {
    hp_bs_close(s);
    e->s = NULL;
  }
}

static void on_eof(hp_bs *s, void *ud) {
  end *e = ud;
  (void)s;
  e->eof++;
  if (e->shutdown_on_eof)
    assert_int_equal(hp_bs_shutdown(s), 0);
}

static void on_error(hp_bs *s, int err, const char *why, void *ud) {
  end *e = ud;
  (void)s;
  assert_non_null(why);
  assert_true(err < 0);
  e->err = err;
  e->errors++;
}

static void on_drain(hp_bs *s, void *ud) {
  end *e = ud;
  assert_true(hp_bs_queued(s) <= HP_BS_LOW_WATER);
  e->drains++;
}

static const hp_bs_cbs cbs = {on_data, on_eof, on_error, on_drain};

/* A connected loopback pair of plain sockets. */
static void tcp_pair(int fds[2]) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(l >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fds[0] >= 0);
  assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
  fds[1] = accept(l, NULL, NULL);
  assert_true(fds[1] >= 0);
  close(l);
}

static void open_pair(uv_loop_t *loop, end *a, end *b) {
  int fds[2];

  tcp_pair(fds);
  assert_int_equal(hp__tcp_from_fd(loop, fds[0], &a->s), 0);
  assert_int_equal(hp__tcp_from_fd(loop, fds[1], &b->s), 0);
  assert_string_equal(a->s->ops->name, "tcp");
  assert_non_null(hp__tcp_handle(a->s));
  hp_bs_set_cbs(a->s, &cbs, a);
  hp_bs_set_cbs(b->s, &cbs, b);
}

static void finish(uv_loop_t *loop, end *a, end *b) {
  if (a->s)
    hp_bs_close(a->s);
  if (b->s)
    hp_bs_close(b->s);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
  free(a->got);
  free(b->got);
}

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n);
  size_t i;
  assert_non_null(p);
  for (i = 0; i < n; i++)
    p[i] = (uint8_t)((i * 131u + seed) ^ (i >> 9));
  return p;
}

/* Run until cond or 2000 loop turns (each blocks on I/O: no busy loop). */
#define RUN_UNTIL(loop, cond)                                                                      \
  do {                                                                                             \
    int turns_ = 0;                                                                                \
    while (!(cond) && turns_++ < 2000)                                                             \
      uv_run((loop), UV_RUN_ONCE);                                                                 \
    assert_true(cond);                                                                             \
  } while (0)

static void test_both_ways_and_half_close(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  const size_t n = 1u << 20;
  uint8_t *pa = pattern(n, 1), *pb = pattern(n / 3, 7);
  size_t off;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);
  b.shutdown_on_eof = 1; /* b answers a's EOF with its own, after its bytes */
  for (off = 0; off < n; off += 100000) {
    size_t k = n - off < 100000 ? n - off : 100000;
    assert_int_equal(hp_bs_write(a.s, pa + off, k), 0);
  }
  /* What the kernel took at once is not queued (tcp.c: no copy then). */
  assert_true(hp_bs_queued(a.s) <= n);
  assert_int_equal(hp_bs_shutdown(a.s), 0);
  assert_int_equal(hp_bs_shutdown(a.s), 0); /* idempotent */
  assert_int_equal(hp_bs_write(a.s, pa, 1), -EPIPE);
  RUN_UNTIL(&loop, b.eof);
  assert_int_equal(b.ngot, n);
  assert_memory_equal(b.got, pa, n);
  assert_int_equal(hp_bs_queued(a.s), 0);
  /* After the peer's EOF we may still write: b does, then shuts down. */
  assert_int_equal(a.eof, 0);
  assert_int_equal(hp_bs_write(b.s, pb, n / 3), -EPIPE); /* b shut down in on_eof */
  RUN_UNTIL(&loop, a.eof);
  assert_int_equal(a.ngot, 0);
  assert_int_equal(a.errors + b.errors, 0);
  assert_int_equal(a.eof, 1);
  assert_int_equal(b.eof, 1);
  finish(&loop, &a, &b);
  free(pa);
  free(pb);
}

static void test_write_after_peer_eof(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  uint8_t *pb = pattern(300000, 3);
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);
  assert_int_equal(hp_bs_shutdown(a.s), 0);
  RUN_UNTIL(&loop, b.eof);
  /* The half-closed direction is only a's: b writes on, a reads it all. */
  assert_int_equal(hp_bs_write(b.s, pb, 300000), 0);
  assert_int_equal(hp_bs_shutdown(b.s), 0);
  RUN_UNTIL(&loop, a.eof);
  assert_int_equal(a.ngot, 300000);
  assert_memory_equal(a.got, pb, 300000);
  assert_int_equal(a.errors + b.errors, 0);
  finish(&loop, &a, &b);
  free(pb);
}

static void test_backpressure(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  const size_t chunk = 64u * 1024u;
  uint8_t *p = pattern(chunk, 5);
  size_t total = 0;
  int r, turns = 0, drains;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);
  hp_bs_pause(b.s, 1);
  hp_bs_pause(b.s, 1); /* twice is once */
  /* The reader is paused: the kernel buffers fill, then our queue grows
   * until the hard cap refuses a write. */
  for (;;) {
    r = hp_bs_write(a.s, p, chunk);
    if (r < 0)
      break;
    total += chunk;
    if (turns++ % 4 == 0)
      uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(total < 256u * 1024u * 1024u); /* the kernel does not buffer this much */
  }
  assert_int_equal(r, -ENOBUFS);
  assert_true(hp_bs_queued(a.s) > HP_BS_HIGH_WATER);
  assert_true(hp_bs_queued(a.s) <= HP_BS_HARD_CAP);
  assert_int_equal(b.ngot, 0);
  /* Resume: everything arrives, on_drain fires once the queue fell (one
   * more time: the kernel buffers filling may have given one already). */
  drains = a.drains;
  hp_bs_pause(b.s, 0);
  RUN_UNTIL(&loop, b.ngot == total);
  RUN_UNTIL(&loop, hp_bs_queued(a.s) == 0);
  assert_int_equal(a.drains, drains + 1);
  {
    size_t i;
    for (i = 0; i < total; i += chunk)
      assert_memory_equal(b.got + i, p, chunk);
  }
  /* Pausing after data flowed stops delivery again. */
  hp_bs_pause(b.s, 1);
  assert_int_equal(hp_bs_write(a.s, p, 10), 0);
  RUN_UNTIL(&loop, hp_bs_queued(a.s) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(b.ngot, total);
  hp_bs_pause(b.s, 0);
  RUN_UNTIL(&loop, b.ngot == total + 10);
  assert_int_equal(a.errors + b.errors, 0);
  finish(&loop, &a, &b);
  free(p);
}

static void test_close_inside_on_data_and_pending(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  uint8_t *p = pattern(2u << 20, 9);
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, &a, &b);
  b.close_on_data = 1;
  assert_int_equal(hp_bs_write(a.s, p, 2u << 20), 0);
  RUN_UNTIL(&loop, b.s == NULL);
  assert_true(b.ngot > 0);
  /* a still has bytes queued (b read one buffer at most): the peer's
   * close ends a's stream with an error or nothing, never a crash; closing
   * with writes pending frees everything. */
  RUN_UNTIL(&loop, a.errors == 1 || hp_bs_queued(a.s) == 0);
  assert_true(a.errors <= 1);
  assert_int_equal(hp_bs_write(a.s, p, 1) == 0, a.errors == 0);
  finish(&loop, &a, &b);
  free(p);
}

static void test_reset_peer(void **state) {
  uv_loop_t loop;
  end a = {0};
  int fds[2];
  struct linger lg = {1, 0};
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  tcp_pair(fds);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[0], &a.s), 0);
  hp_bs_set_cbs(a.s, &cbs, &a);
  assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(fds[1]); /* RST */
  RUN_UNTIL(&loop, a.errors == 1);
  assert_int_equal(a.err, UV_ECONNRESET);
  assert_int_equal(hp_bs_write(a.s, (const uint8_t *)"x", 1), -EPIPE);
  assert_int_equal(hp_bs_shutdown(a.s), -EPIPE);
  hp_bs_close(a.s);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(a.got);
}

typedef struct acc {
  end *e;
  int accepted;
} acc;

static void on_conn(uv_stream_t *server, int status) {
  acc *c = server->data;
  assert_int_equal(status, 0);
  assert_int_equal(hp__tcp_accept(server, &c->e->s), 0);
  hp_bs_set_cbs(c->e->s, &cbs, c->e);
  c->accepted = 1;
}

static void test_accept(void **state) {
  uv_loop_t loop;
  uv_tcp_t srv;
  struct sockaddr_in sa;
  int sl = sizeof sa, fd;
  end a = {0}, b = {0};
  acc c = {&b, 0};
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(hp__tcp_from_fd(&loop, -1, &a.s), -EINVAL);
  assert_int_equal(uv_tcp_init(&loop, &srv), 0);
  srv.data = &c;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(uv_tcp_bind(&srv, (struct sockaddr *)&sa, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&srv, 4, on_conn), 0);
  assert_int_equal(uv_tcp_getsockname(&srv, (struct sockaddr *)&sa, &sl), 0);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  RUN_UNTIL(&loop, c.accepted);
  assert_int_equal(hp__tcp_from_fd(&loop, fd, &a.s), 0);
  hp_bs_set_cbs(a.s, &cbs, &a);
  assert_int_equal(hp_bs_write(b.s, (const uint8_t *)"hello", 5), 0);
  RUN_UNTIL(&loop, a.ngot == 5);
  assert_memory_equal(a.got, "hello", 5);
  uv_close((uv_handle_t *)&srv, NULL);
  finish(&loop, &a, &b);
}

int main(void) {
  /* Like every libuv program (the CLI and the service do the same): a write
   * to a closed peer is EPIPE, not a signal. */
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_both_ways_and_half_close),
      cmocka_unit_test(test_write_after_peer_eof),
      cmocka_unit_test(test_backpressure),
      cmocka_unit_test(test_close_inside_on_data_and_pending),
      cmocka_unit_test(test_reset_peer),
      cmocka_unit_test(test_accept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
