/* test_stun_tcp.c - the STUN-over-TCP client against a small STUN server in
 * the test (loopback, libuv): the mapping it reports, from a fixed local
 * port; a response in two pieces behind a foreign message; timeout;
 * refused; a server that does not speak STUN; an error response; cancel.
 * Every case ends with uv_loop_close() == 0 (nothing left open). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <uv.h>

#include "addr.h"
#include "stun_msg.h"
#include "stun_tcp.h"

typedef enum { SRV_ANSWER, SRV_SPLIT, SRV_SILENT, SRV_HTTP, SRV_ERROR } srv_mode;

typedef struct srv {
  uv_tcp_t listener;
  uv_tcp_t conn;
  int have_conn;
  srv_mode mode;
  uint8_t buf[256];
  size_t len;
  uint8_t out[512];
  uv_write_t w;
  int port;
} srv;

typedef struct done {
  int called;
  hp__stun_tcp_result r;
} done;

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  srv *s = h->data;
  (void)sz;
  *b = uv_buf_init((char *)s->buf + s->len, (unsigned)(sizeof s->buf - s->len));
}

static void srv_written(uv_write_t *w, int status) {
  (void)w, (void)status;
}

static void srv_send(srv *s, size_t n) {
  uv_buf_t b = uv_buf_init((char *)s->out, (unsigned)n);
  assert_int_equal(uv_write(&s->w, (uv_stream_t *)&s->conn, &b, 1, srv_written), 0);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  srv *s = st->data;
  hp__stun_msg m;
  char err[160];
  struct sockaddr_storage peer;
  int pl = sizeof peer, k;
  (void)b;
  if (n <= 0)
    return;
  s->len += (size_t)n;
  if (s->len < HP_STUN_REQUEST_LEN || s->mode == SRV_SILENT)
    return;
  assert_int_equal(hp__stun_decode(s->buf, HP_STUN_REQUEST_LEN, &m, err, sizeof err), 0);
  assert_int_equal(m.cls, HP_STUN_REQUEST);
  assert_int_equal(m.fingerprint, 1);
  uv_tcp_getpeername(&s->conn, (struct sockaddr *)&peer, &pl);
  if (s->mode == SRV_HTTP) {
    memcpy(s->out, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
    srv_send(s, 28);
  } else if (s->mode == SRV_ERROR) {
    /* 400 Bad Request as an error response (class 3): type 0x0111. */
    static const uint8_t attr[] = {0x00, 0x09, 0x00, 0x07, 0, 0, 4, 0, 'B', 'a', 'd', 0};
    hp__stun_binding_response(s->out, sizeof s->out, m.txid, (struct sockaddr *)&peer);
    s->out[0] = 0x01, s->out[1] = 0x11, s->out[2] = 0, s->out[3] = sizeof attr;
    memcpy(s->out + 20, attr, sizeof attr);
    srv_send(s, 20 + sizeof attr);
  } else {
    size_t off = 0;
    if (s->mode == SRV_SPLIT) {
      /* A response to another transaction first: the client must skip it. */
      uint8_t other[HP_STUN_TXID_LEN];
      memcpy(other, m.txid, sizeof other);
      other[0] ^= 0xff;
      k = hp__stun_binding_response(s->out, sizeof s->out, other, (struct sockaddr *)&peer);
      off = (size_t)k;
    }
    k = hp__stun_binding_response(s->out + off, sizeof s->out - off, m.txid,
                                  (struct sockaddr *)&peer);
    srv_send(s, off + (size_t)k);
  }
}

static void srv_accept(uv_stream_t *l, int status) {
  srv *s = l->data;
  assert_int_equal(status, 0);
  assert_false(s->have_conn);
  uv_tcp_init(l->loop, &s->conn);
  s->conn.data = s;
  assert_int_equal(uv_accept(l, (uv_stream_t *)&s->conn), 0);
  s->have_conn = 1;
  uv_read_start((uv_stream_t *)&s->conn, srv_alloc, srv_read);
}

static void srv_start(uv_loop_t *loop, srv *s, srv_mode mode) {
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  memset(s, 0, sizeof *s);
  s->mode = mode;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&sin, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 4, srv_accept), 0);
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &sl);
  s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_stop(srv *s) {
  uv_close((uv_handle_t *)&s->listener, NULL);
  if (s->have_conn)
    uv_close((uv_handle_t *)&s->conn, NULL);
}

static void on_done(const hp__stun_tcp_result *r, void *data) {
  done *d = data;
  d->called++;
  d->r = *r;
}

static void finish_loop(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* A free local port: bind to 0, read it, close. */
static int free_port(void) {
  uv_loop_t loop;
  uv_tcp_t t;
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  int sl = sizeof ss, port;
  uv_loop_init(&loop);
  uv_ip4_addr("127.0.0.1", 0, &sin);
  uv_tcp_init(&loop, &t);
  uv_tcp_bind(&t, (struct sockaddr *)&sin, 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &sl);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  finish_loop(&loop);
  return port;
}

static void run_case(srv_mode mode, int local_port, unsigned timeout_ms, done *d) {
  uv_loop_t loop;
  srv s;
  struct sockaddr_in to;
  hp__stun_tcp *h = NULL;
  uv_loop_init(&loop);
  srv_start(&loop, &s, mode);
  uv_ip4_addr("127.0.0.1", s.port, &to);
  memset(d, 0, sizeof *d);
  assert_int_equal(
      hp__stun_tcp_start(&loop, (struct sockaddr *)&to, local_port, timeout_ms, on_done, d, &h), 0);
  while (!d->called && uv_run(&loop, UV_RUN_ONCE))
    ;
  srv_stop(&s);
  finish_loop(&loop);
  assert_int_equal(d->called, 1);
}

static void test_mapping_from_fixed_port(void **state) {
  done d;
  int port = free_port();
  char text[HP_ADDR_STRLEN], want[HP_ADDR_STRLEN];
  (void)state;
  run_case(SRV_ANSWER, port, 5000, &d);
  assert_int_equal(d.r.status, 0);
  assert_true(hp__addr_format((struct sockaddr *)&d.r.mapped, text, sizeof text) > 0);
  snprintf(want, sizeof want, "127.0.0.1:%d", port);
  assert_string_equal(text, want); /* loopback: the mapping is our own port */
  assert_true(hp__addr_format((struct sockaddr *)&d.r.local, text, sizeof text) > 0);
  assert_string_equal(text, want);
  assert_true(d.r.rtt_ms >= 0);
}

static void test_skips_foreign_transaction(void **state) {
  done d;
  (void)state;
  run_case(SRV_SPLIT, 0, 5000, &d);
  assert_int_equal(d.r.status, 0);
  assert_int_equal(d.r.mapped.ss_family, AF_INET);
}

static void test_timeout(void **state) {
  done d;
  (void)state;
  run_case(SRV_SILENT, 0, 200, &d);
  assert_int_equal(d.r.status, -ETIMEDOUT);
  assert_non_null(strstr(d.r.err, "no Binding response"));
}

static void test_not_stun(void **state) {
  done d;
  (void)state;
  run_case(SRV_HTTP, 0, 5000, &d);
  assert_int_equal(d.r.status, -EPROTO);
  assert_non_null(strstr(d.r.err, "does not speak STUN"));
}

static void test_error_response(void **state) {
  done d;
  (void)state;
  run_case(SRV_ERROR, 0, 5000, &d);
  assert_int_equal(d.r.status, -EPROTO);
  assert_int_equal(d.r.error_code, 400);
  assert_non_null(strstr(d.r.err, "400 Bad"));
}

static void test_refused(void **state) {
  uv_loop_t loop;
  struct sockaddr_in to;
  hp__stun_tcp *h = NULL;
  done d = {0};
  (void)state;
  uv_loop_init(&loop);
  uv_ip4_addr("127.0.0.1", free_port(), &to);
  assert_int_equal(hp__stun_tcp_start(&loop, (struct sockaddr *)&to, 0, 5000, on_done, &d, &h), 0);
  finish_loop(&loop);
  assert_int_equal(d.called, 1);
  assert_int_equal(d.r.status, -ECONNREFUSED);
  assert_non_null(strstr(d.r.err, "cannot connect"));
}

static void test_cancel_and_bad_args(void **state) {
  uv_loop_t loop;
  srv s;
  struct sockaddr_in to;
  struct sockaddr bad = {.sa_family = AF_UNIX};
  hp__stun_tcp *h = NULL;
  done d = {0};
  (void)state;
  uv_loop_init(&loop);
  srv_start(&loop, &s, SRV_SILENT);
  uv_ip4_addr("127.0.0.1", s.port, &to);
  assert_int_equal(hp__stun_tcp_start(&loop, &bad, 0, 100, on_done, &d, &h), -EINVAL);
  assert_int_equal(hp__stun_tcp_start(&loop, (struct sockaddr *)&to, 70000, 100, on_done, &d, &h),
                   -EINVAL);
  assert_int_equal(hp__stun_tcp_start(&loop, (struct sockaddr *)&to, 0, 0, on_done, &d, &h),
                   -EINVAL);
  assert_int_equal(hp__stun_tcp_start(&loop, (struct sockaddr *)&to, 0, 5000, on_done, &d, &h), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  hp__stun_tcp_cancel(h);
  hp__stun_tcp_cancel(NULL);
  srv_stop(&s);
  finish_loop(&loop);
  assert_int_equal(d.called, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mapping_from_fixed_port),
      cmocka_unit_test(test_skips_foreign_transaction),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_not_stun),
      cmocka_unit_test(test_error_response),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_cancel_and_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
