/* test_discover.c - the discovery (src/lib/discover/discover.c) with STUN
 * servers given by name and by address, against small STUN servers in the
 * test (loopback, libuv): a name ("localhost", from /etc/hosts: no DNS
 * server is asked) is resolved on the loop and asked like an address; a
 * discovery stopped while a name is being resolved calls nothing back and
 * leaves nothing open (uv_loop_close() == 0; no leak under ASan). */
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
#include "discover.h"
#include "stun_msg.h"

typedef struct srv {
  uv_tcp_t listener;
  uv_tcp_t conn;
  int have_conn;
  uint8_t buf[256];
  size_t len;
  uint8_t out[512];
  uv_write_t w;
  int port;
} srv;

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  srv *s = h->data;
  (void)sz;
  *b = uv_buf_init((char *)s->buf + s->len, (unsigned)(sizeof s->buf - s->len));
}

static void srv_written(uv_write_t *w, int status) {
  (void)w, (void)status;
}

/* Answer the Binding request with the peer's address. */
static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  srv *s = st->data;
  hp__stun_msg m;
  char err[160];
  struct sockaddr_storage peer;
  int pl = sizeof peer, k;
  uv_buf_t out;
  (void)b;
  if (n <= 0)
    return;
  s->len += (size_t)n;
  if (s->len < HP_STUN_REQUEST_LEN)
    return;
  assert_int_equal(hp__stun_decode(s->buf, HP_STUN_REQUEST_LEN, &m, err, sizeof err), 0);
  uv_tcp_getpeername(&s->conn, (struct sockaddr *)&peer, &pl);
  k = hp__stun_binding_response(s->out, sizeof s->out, m.txid, (struct sockaddr *)&peer);
  assert_true(k > 0);
  out = uv_buf_init((char *)s->out, (unsigned)k);
  assert_int_equal(uv_write(&s->w, (uv_stream_t *)&s->conn, &out, 1, srv_written), 0);
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

static void srv_start(uv_loop_t *loop, srv *s) {
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  memset(s, 0, sizeof *s);
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

typedef struct done {
  int called;
  hp__disc_result r;
} done;

static void on_disc(const hp__disc_result *r, void *data) {
  done *d = data;
  d->called++;
  d->r = *r;
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
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  return port;
}

static void test_name_and_address(void **state) {
  uv_loop_t loop;
  srv s1, s2;
  hp__disc_opts o;
  hp__disc *disc = NULL;
  done d;
  char text[HP_ADDR_STRLEN], want[HP_ADDR_STRLEN];
  int port = free_port();
  (void)state;

  uv_loop_init(&loop);
  srv_start(&loop, &s1);
  srv_start(&loop, &s2);
  memset(&o, 0, sizeof o);
  memset(&d, 0, sizeof d);
  snprintf(text, sizeof text, "localhost:%d", s1.port);
  assert_int_equal(hp__hostport_parse(text, strlen(text), &o.stun[0]), 0);
  snprintf(text, sizeof text, "127.0.0.1:%d", s2.port);
  assert_int_equal(hp__hostport_parse(text, strlen(text), &o.stun[1]), 0);
  o.nstun = 2;
  o.timeout_ms = 5000;
  assert_int_equal(hp__disc_start(&loop, port, &o, on_disc, &d, &disc), 0);
  while (!d.called && uv_run(&loop, UV_RUN_ONCE))
    ;
  assert_int_equal(d.called, 1);
  assert_int_equal(d.r.nstun, 2);
  assert_string_equal(d.r.name[0], "localhost");
  assert_string_equal(d.r.name[1], "");
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(d.r.stun[i].status, 0);
    assert_true(hp__addr_format((struct sockaddr *)&d.r.stun[i].mapped, text, sizeof text) > 0);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_string_equal(text, want); /* loopback: the mapping is our punch port */
  }
  /* The name went to the server it names: localhost, IPv4 first. */
  assert_true(hp__addr_format((struct sockaddr *)&d.r.stun[0].server, text, sizeof text) > 0);
  snprintf(want, sizeof want, "127.0.0.1:%d", s1.port);
  assert_string_equal(text, want);
  hp__disc_stop(disc);
  srv_stop(&s1);
  srv_stop(&s2);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_stop_while_resolving(void **state) {
  uv_loop_t loop;
  hp__disc_opts o;
  hp__disc *disc = NULL;
  done d;
  (void)state;

  uv_loop_init(&loop);
  memset(&o, 0, sizeof o);
  memset(&d, 0, sizeof d);
  assert_int_equal(hp__hostport_parse("localhost:9", 11, &o.stun[0]), 0);
  o.nstun = 1;
  o.timeout_ms = 5000;
  assert_int_equal(hp__disc_start(&loop, free_port(), &o, on_disc, &d, &disc), 0);
  hp__disc_stop(disc); /* the resolution is cancelled or ends unheard */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(d.called, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_name_and_address),
      cmocka_unit_test(test_stop_while_resolving),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
