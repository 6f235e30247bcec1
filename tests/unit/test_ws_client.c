/*
 * test_ws_client.c - src/net/ws_upgrade.c (the upgrade response, table-
 * driven) and src/net/ws_client.c on a real loop against an in-process
 * server on 127.0.0.1 made of the project's server parts (http1 reader,
 * hp__ws server endpoint): echo and polite close, a refused upgrade, the
 * server's close, the open timeout, a refused connection, a message over
 * the cap, the write-queue bound with its drain callback (backpressure),
 * and hp__wsc_free from inside a callback.
 * Every loop test ends with uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http1.h"
#include "ws.h"
#include "ws_client.h"
#include "ws_upgrade.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* ---- the upgrade response ------------------------------------------------ */

typedef struct ucase {
  const char *name, *in;
  hp__wsu_rc rc;
  hp__wsu_fail fail;
  const char *err; /* substring of the sentence */
  size_t rest;     /* DONE: bytes left after the head */
} ucase;

static const ucase ucases[] = {
    {"ok",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n\x81\x02hi",
     HP_WSU_DONE, HP_WSU_FAIL_NONE, NULL, 4},
    {"lists and case",
     "HTTP/1.1 101 x\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
     "sec-websocket-accept:  " ACCEPT " \r\n\r\n",
     HP_WSU_DONE, HP_WSU_FAIL_NONE, NULL, 0},
    {"426", "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\n{}", HP_WSU_ERROR,
     HP_WSU_FAIL_REFUSED, "did not accept the WebSocket upgrade (HTTP 426 Upgrade Required)", 0},
    {"proxy 200", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", HP_WSU_ERROR,
     HP_WSU_FAIL_REFUSED, "(HTTP 200 OK)", 0},
    {"no accept", "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     HP_WSU_ERROR, HP_WSU_FAIL_HANDSHAKE, "no Sec-WebSocket-Accept", 0},
    {"wrong accept",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
     HP_WSU_ERROR, HP_WSU_FAIL_HANDSHAKE, "does not match our key", 0},
    {"two accepts",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     HP_WSU_ERROR, HP_WSU_FAIL_HANDSHAKE, "invalid Sec-WebSocket-Accept", 0},
    {"extension",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Extensions: x\r\n\r\n",
     HP_WSU_ERROR, HP_WSU_FAIL_HANDSHAKE, "extension we did not offer", 0},
    {"h2c", "HTTP/1.1 101 x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", HP_WSU_ERROR,
     HP_WSU_FAIL_HANDSHAKE, "without \"Upgrade: websocket\"", 0},
    {"no connection",
     "HTTP/1.1 101 x\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
     HP_WSU_ERROR, HP_WSU_FAIL_HANDSHAKE, "without \"Connection: upgrade\"", 0},
    {"not http", "SSH-2.0-OpenSSH_9.2\r\n", HP_WSU_ERROR, HP_WSU_FAIL_MALFORMED,
     "not an HTTP/1.1 response", 0},
    {"incomplete", "HTTP/1.1 101 Switching", HP_WSU_MORE, HP_WSU_FAIL_NONE, NULL, 0},
};

static void test_upgrade_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(ucases) / sizeof(ucases[0]); i++) {
    const ucase *c = &ucases[i];
    size_t len = strlen(c->in), used = 0;
    hp__wsu *u = hp__wsu_create(0);
    hp__wsu_rc rc;

    assert_non_null(u);
    assert_int_equal(hp__wsu_set_key(u, KEY), 0);
    rc = hp__wsu_feed(u, (const uint8_t *)c->in, len, &used);
    if (rc != c->rc || hp__wsu_failure(u) != c->fail)
      fail_msg("%s: rc %d fail %d (%s)", c->name, rc, hp__wsu_failure(u), hp__wsu_error(u));
    if (c->err && !strstr(hp__wsu_error(u), c->err))
      fail_msg("%s: error '%s' lacks '%s'", c->name, hp__wsu_error(u), c->err);
    if (rc == HP_WSU_DONE)
      assert_int_equal(len - used, c->rest);
    hp__wsu_destroy(u);
  }
}

static void test_upgrade_cap_and_request(void **state) {
  char big[600], req[512];
  hp__wsu *u = hp__wsu_create(256);
  size_t used;
  int n;
  (void)state;

  memset(big, 'a', sizeof(big));
  memcpy(big, "HTTP/1.1 101 x\r\nX: ", 19);
  assert_int_equal(hp__wsu_feed(u, (const uint8_t *)big, sizeof(big), &used), HP_WSU_ERROR);
  assert_int_equal(hp__wsu_failure(u), HP_WSU_FAIL_TOO_BIG);
  assert_int_equal(hp__wsu_set_key(u, "short"), -EINVAL);
  assert_int_equal(hp__wsu_set_key(u, KEY), 0);
  n = hp__wsu_request(u, "[::1]:8080", "/base/ws", "t/1", req, sizeof(req));
  assert_true(n > 0);
  assert_non_null(strstr(req, "GET /base/ws HTTP/1.1\r\nHost: [::1]:8080\r\n"));
  assert_non_null(strstr(req, "Sec-WebSocket-Key: " KEY "\r\n"));
  assert_non_null(strstr(req, "Sec-WebSocket-Version: 13\r\nUser-Agent: t/1\r\n\r\n"));
  assert_int_equal(hp__wsu_request(u, "h", "/ws", NULL, req, 40), -ENOSPC);
  hp__wsu_destroy(u);
}

/* ---- an in-process server -------------------------------------------------- */

typedef enum srv_mode { M_ECHO, M_REFUSE, M_CLOSE1001, M_SILENT, M_BIG, M_NOREAD } srv_mode;

typedef struct srv {
  uv_tcp_t lis, conn;
  int has_conn;
  srv_mode mode;
  hp__http1 *http;
  hp__ws_env *env;
  hp__ws *ws;
  uint16_t got_close;
  int port;
  uv_timer_t resume; /* M_NOREAD */
  size_t dropped;
} srv;

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void srv_resume(uv_timer_t *t) {
  srv *s = t->data;
  uv_read_start((uv_stream_t *)&s->conn, srv_alloc, srv_read);
}

static int srv_writev(void *arg, const struct iovec *iov, int n) {
  srv *s = arg;
  /* Loopback and small frames: the socket takes them at once. */
  int r = uv_try_write((uv_stream_t *)&s->conn, (const uv_buf_t *)(const void *)iov, (unsigned)n);
  return r < 0 ? r : 0;
}

static void srv_message(void *arg, int binary, const uint8_t *d, size_t len) {
  srv *s = arg;
  (void)hp__ws_send(s->ws, binary, d, len);
}

static void srv_closed(void *arg, uint16_t status) {
  ((srv *)arg)->got_close = status;
}

static void srv_failed(void *arg, hp__ws_fail f, const char *why) {
  (void)arg, (void)f;
  fail_msg("server endpoint failed: %s", why);
}

static const hp__ws_ops srv_ops = {srv_writev, srv_message, NULL, srv_closed, srv_failed, NULL};

static char rbuf[65536];
static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h, (void)hint;
  *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void srv_answer(srv *s, const hp__http1_req *r) {
  char acc[HP_WS_ACCEPT_LEN + 1], head[256];
  int n;

  if (s->mode == M_REFUSE) {
    const char *a = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n";
    uv_buf_t b = uv_buf_init((char *)a, (unsigned)strlen(a));
    assert_true(uv_try_write((uv_stream_t *)&s->conn, &b, 1) > 0);
    return;
  }
  assert_int_equal(hp__ws_accept_key(r->ws_key, r->ws_key_len, acc), 0);
  n = snprintf(head, sizeof(head),
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
               acc);
  uv_buf_t b = uv_buf_init(head, (unsigned)n);
  assert_int_equal(uv_try_write((uv_stream_t *)&s->conn, &b, 1), n);
  s->ws = hp__ws_create(s->env, HP_WS_SERVER, HP_WS_MESSAGES, &srv_ops, s, 1 << 20, 16);
  if (s->mode == M_CLOSE1001)
    hp__ws_close(s->ws, 1001, "going away");
  if (s->mode == M_NOREAD) {
    /* Stop reading: the client's queue fills; a timer resumes (drain). */
    uv_read_stop((uv_stream_t *)&s->conn);
    uv_timer_start(&s->resume, srv_resume, 100, 0);
  }
  if (s->mode == M_BIG) {
    static char big[2000];
    memset(big, 'x', sizeof(big));
    hp__ws_send(s->ws, 0, big, sizeof(big));
  }
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  srv *s = st->data;
  size_t used = 0;

  if (n < 0) {
    uv_close((uv_handle_t *)&s->conn, NULL);
    return;
  }
  if (s->mode == M_NOREAD && s->ws) {
    s->dropped += (size_t)n; /* read and dropped: only the drain matters */
    return;
  }
  if (s->ws) {
    hp__ws_feed(s->ws, (const uint8_t *)b->base, (size_t)n);
    return;
  }
  if (s->mode == M_SILENT)
    return;
  if (hp__http1_feed(s->http, (const uint8_t *)b->base, (size_t)n, &used) == HP_HTTP1_REQUEST)
    srv_answer(s, hp__http1_request(s->http));
}

static void srv_conn(uv_stream_t *l, int status) {
  srv *s = l->data;
  assert_int_equal(status, 0);
  assert_false(s->has_conn);
  uv_tcp_init(l->loop, &s->conn);
  s->conn.data = s;
  s->has_conn = 1;
  assert_int_equal(uv_accept(l, (uv_stream_t *)&s->conn), 0);
  uv_read_start((uv_stream_t *)&s->conn, srv_alloc, srv_read);
}

static void srv_start(uv_loop_t *loop, srv *s, srv_mode mode) {
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  hp__http1_limits lim = {4096, 32, 0};

  memset(s, 0, sizeof(*s));
  s->mode = mode;
  s->http = hp__http1_create(&lim);
  s->env = hp__ws_env_create(0);
  uv_tcp_init(loop, &s->lis);
  s->lis.data = s;
  uv_timer_init(loop, &s->resume);
  s->resume.data = s;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(uv_tcp_bind(&s->lis, (struct sockaddr *)&sa, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&s->lis, 8, srv_conn), 0);
  uv_tcp_getsockname(&s->lis, (struct sockaddr *)&ss, &len);
  s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_stop(srv *s) {
  if (!uv_is_closing((uv_handle_t *)&s->resume))
    uv_close((uv_handle_t *)&s->resume, NULL);
  if (!uv_is_closing((uv_handle_t *)&s->lis))
    uv_close((uv_handle_t *)&s->lis, NULL);
  if (s->has_conn && !uv_is_closing((uv_handle_t *)&s->conn))
    uv_close((uv_handle_t *)&s->conn, NULL);
}

static void srv_free(srv *s) {
  hp__ws_destroy(s->ws);
  hp__ws_env_destroy(s->env);
  hp__http1_destroy(s->http);
}

/* ---- the client under test ------------------------------------------------- */

typedef struct cl {
  hp__wsc *c;
  srv *s;
  int opens, messages, ends, free_in_open, flood, enobufs, drains, chunks;
  uint8_t acc[64];
  size_t acclen;
  char last[64];
  size_t lastlen;
  hp__wsc_end e;
  char reason[HP_WSC_REASON_MAX];
} cl;

static void c_open(void *arg) {
  cl *t = arg;
  t->opens++;
  if (t->flood) {
    static char chunk[65536];
    /* Until the queue bound refuses: the kernel's buffers fill first. */
    for (int i = 0; i < 4000; i++) {
      int rc = hp__wsc_send(t->c, 1, chunk, sizeof(chunk));
      if (rc == -ENOBUFS) {
        t->enobufs = 1;
        break;
      }
      assert_int_equal(rc, 0);
    }
    assert_true(t->enobufs);
    assert_true(hp__wsc_queued(t->c) > 0);
    assert_true(hp__wsc_queued(t->c) <= 256 * 1024);
    return;
  }
  if (t->free_in_open) {
    hp__wsc_free(t->c);
    t->c = NULL;
    srv_stop(t->s);
    return;
  }
  assert_int_equal(hp__wsc_send(t->c, 0, "hello", 5), 0);
  assert_int_equal(hp__wsc_send(t->c, 1, "\x00\x01\x02", 3), 0);
}

static void c_message(void *arg, int binary, const uint8_t *d, size_t len) {
  cl *t = arg;
  t->messages++;
  assert_true(len < sizeof(t->last));
  memcpy(t->last, d, len);
  t->lastlen = len;
  if (t->messages == 2) {
    assert_true(binary);
    hp__wsc_close(t->c, HP_WS_CLOSE_NORMAL, "bye");
    assert_int_equal(hp__wsc_send(t->c, 0, "late", 4), -ENOTCONN);
  }
}

static void c_end(void *arg, const hp__wsc_end *e) {
  cl *t = arg;
  t->ends++;
  t->e = *e;
  snprintf(t->reason, sizeof(t->reason), "%s", e->reason);
  t->e.reason = t->reason;
  hp__wsc_free(t->c);
  t->c = NULL;
  if (t->s)
    srv_stop(t->s);
}

/* opts.frames: pieces of a message; the whole goes to c_message. */
static void c_chunk(void *arg, int binary, int first, int fin, const uint8_t *d, size_t len) {
  cl *t = arg;
  t->chunks++;
  if (first)
    t->acclen = 0;
  assert_true(t->acclen + len <= sizeof(t->acc));
  memcpy(t->acc + t->acclen, d, len);
  t->acclen += len;
  if (fin)
    c_message(arg, binary, t->acc, t->acclen);
}

static void c_drained(void *arg) {
  cl *t = arg;
  if (!t->flood)
    return; /* only the flood fills the queue on purpose */
  t->drains++;
  assert_int_equal(hp__wsc_queued(t->c), 0);
  if (t->drains == 1)
    hp__wsc_close(t->c, HP_WS_CLOSE_NORMAL, NULL);
}

static const hp__wsc_cbs ccbs = {
    .open = c_open, .message = c_message, .chunk = c_chunk, .drained = c_drained, .end = c_end};

static int g_frames; /* run() opens the client in frames mode */

static void run(srv_mode mode, int port_override, uint64_t open_ms, size_t max_msg,
                int free_in_open, cl *t) {
  int flood = mode == M_NOREAD;
  uv_loop_t loop;
  srv s;
  hp__wsc_opts o;
  char err[128];

  uv_loop_init(&loop);
  srv_start(&loop, &s, mode);
  memset(t, 0, sizeof(*t));
  t->s = &s;
  t->free_in_open = free_in_open;
  t->flood = flood;
  memset(&o, 0, sizeof(o));
  o.host = "127.0.0.1";
  o.port = port_override ? port_override : s.port;
  o.path = "/ws";
  o.open_timeout_ms = open_ms;
  o.max_message = max_msg;
  o.close_bound_ms = 1000;
  o.max_queued = flood ? 256 * 1024 : 0;
  o.frames = g_frames;
  if (port_override)
    srv_stop(&s); /* nobody listens there */
  assert_int_equal(hp__wsc_open(&loop, &o, &ccbs, t, &t->c, err, sizeof(err)), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (mode == M_ECHO && !free_in_open && !port_override)
    assert_int_equal(s.got_close, HP_WS_CLOSE_NORMAL);
  t->s = NULL;
  srv_free(&s);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_echo_and_polite_close(void **state) {
  cl t;
  (void)state;
  run(M_ECHO, 0, 0, 0, 0, &t);
  assert_int_equal(t.opens, 1);
  assert_int_equal(t.messages, 2);
  assert_int_equal(t.ends, 1);
  assert_int_equal(t.e.kind, HP_WSC_END_CLOSED);
  assert_int_equal(t.e.code, HP_WS_CLOSE_NORMAL);
  assert_true(t.e.opened);
}

static void test_refused_upgrade(void **state) {
  cl t;
  (void)state;
  run(M_REFUSE, 0, 0, 0, 0, &t);
  assert_int_equal(t.opens, 0);
  assert_int_equal(t.e.kind, HP_WSC_END_FAILED);
  assert_false(t.e.opened);
  assert_non_null(strstr(t.reason, "cannot open the WebSocket to ws://127.0.0.1:"));
  assert_non_null(strstr(t.reason, "did not accept the WebSocket upgrade (HTTP 426"));
}

static void test_server_close(void **state) {
  cl t;
  (void)state;
  run(M_CLOSE1001, 0, 0, 0, 0, &t);
  assert_int_equal(t.e.kind, HP_WSC_END_PEER_CLOSED);
  assert_int_equal(t.e.code, 1001);
}

static void test_open_timeout(void **state) {
  cl t;
  (void)state;
  run(M_SILENT, 0, 200, 0, 0, &t);
  assert_int_equal(t.e.kind, HP_WSC_END_FAILED);
  assert_int_equal(t.e.err, -ETIMEDOUT);
  assert_non_null(strstr(t.reason, "no answer within 0.2 s"));
}

static void test_refused_connection(void **state) {
  uv_loop_t loop;
  srv s;
  int port;
  cl t;
  (void)state;

  /* A port that was just free: nobody listens on it. */
  uv_loop_init(&loop);
  srv_start(&loop, &s, M_ECHO);
  port = s.port;
  srv_stop(&s);
  uv_run(&loop, UV_RUN_DEFAULT);
  srv_free(&s);
  uv_loop_close(&loop);
  run(M_ECHO, port, 0, 0, 0, &t);
  assert_int_equal(t.e.kind, HP_WSC_END_FAILED);
  assert_non_null(strstr(t.reason, "connection refused"));
}

static void test_message_over_cap(void **state) {
  cl t;
  (void)state;
  run(M_BIG, 0, 0, 1000, 0, &t);
  assert_int_equal(t.e.kind, HP_WSC_END_FAILED);
  assert_int_equal(t.e.ws_fail, HP_WS_FAIL_TOO_BIG);
  assert_non_null(strstr(t.reason, "larger than 1000 bytes"));
}

static void test_frames_mode(void **state) {
  cl t;
  (void)state;
  g_frames = 1;
  run(M_ECHO, 0, 0, 0, 0, &t);
  g_frames = 0;
  assert_int_equal(t.messages, 2);
  assert_true(t.chunks >= 2);
  assert_int_equal(t.e.kind, HP_WSC_END_CLOSED);
}

static void test_backpressure(void **state) {
  cl t;
  (void)state;
  run(M_NOREAD, 0, 0, 0, 0, &t);
  assert_true(t.enobufs);
  assert_int_equal(t.drains, 1);
  assert_int_equal(t.e.kind, HP_WSC_END_CLOSED);
}

static void test_free_inside_open(void **state) {
  cl t;
  (void)state;
  run(M_ECHO, 0, 0, 0, 1, &t);
  assert_int_equal(t.opens, 1);
  assert_int_equal(t.ends, 0); /* freed: no callback any more */
}

static void test_bad_options(void **state) {
  uv_loop_t loop;
  hp__wsc_opts o;
  hp__wsc *c;
  char err[256];
  (void)state;

  uv_loop_init(&loop);
  memset(&o, 0, sizeof(o));
  o.host = "127.0.0.1";
  o.port = 80;
  o.path = "ws"; /* no leading slash */
  assert_int_equal(hp__wsc_open(&loop, &o, &ccbs, NULL, &c, err, sizeof(err)), -EINVAL);
  assert_null(c);
  o.path = "/ws\r\nX: y";
  assert_int_equal(hp__wsc_open(&loop, &o, &ccbs, NULL, &c, err, sizeof(err)), -EINVAL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upgrade_table),         cmocka_unit_test(test_upgrade_cap_and_request),
      cmocka_unit_test(test_echo_and_polite_close), cmocka_unit_test(test_refused_upgrade),
      cmocka_unit_test(test_server_close),          cmocka_unit_test(test_open_timeout),
      cmocka_unit_test(test_refused_connection),    cmocka_unit_test(test_message_over_cap),
      cmocka_unit_test(test_free_inside_open),      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_backpressure),          cmocka_unit_test(test_frames_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
