/*
 * test_ws.c - src/net/ws.c: a client endpoint writes real (masked) frames
 * into a buffer that a server endpoint reads, and back; hand-made bytes only
 * for frames that break the rules on purpose.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws.h"

#define OUT_CAP (256 * 1024)

typedef struct side {
  hp__ws *ws;
  uint8_t out[OUT_CAP]; /* what this endpoint wrote */
  size_t outlen;
  char msg[70000]; /* last message */
  size_t msglen;
  int messages, binary, closed, failed, chunks, chunk_first, chunk_fin;
  uint16_t close_status;
  hp__ws_fail fail;
} side;

static int t_writev(void *arg, const struct iovec *iov, int n) {
  side *s = arg;
  for (int i = 0; i < n; i++) {
    assert_true(s->outlen + iov[i].iov_len <= OUT_CAP);
    memcpy(s->out + s->outlen, iov[i].iov_base, iov[i].iov_len);
    s->outlen += iov[i].iov_len;
  }
  return 0;
}

static void t_message(void *arg, int binary, const uint8_t *data, size_t len) {
  side *s = arg;
  assert_true(len <= sizeof(s->msg));
  memcpy(s->msg, data, len);
  s->msglen = len;
  s->binary = binary;
  s->messages++;
}

static void t_chunk(void *arg, int binary, int first, int fin, const uint8_t *data, size_t len) {
  side *s = arg;
  (void)binary;
  memcpy(s->msg + s->msglen, data, len);
  s->msglen += len;
  s->chunks++;
  s->chunk_first += first;
  s->chunk_fin += fin;
}

static void t_closed(void *arg, uint16_t status) {
  side *s = arg;
  s->closed++;
  s->close_status = status;
}

static void t_failed(void *arg, hp__ws_fail fail, const char *why) {
  side *s = arg;
  assert_non_null(why);
  s->failed++;
  s->fail = fail;
}

static const hp__ws_ops ops = {t_writev, t_message, t_chunk, t_closed, t_failed, NULL};

typedef struct fixture {
  hp__ws_env *env;
  side cli, srv;
} fixture;

static fixture *fx_new(size_t budget, size_t max_message, hp__ws_mode mode) {
  fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  f->env = hp__ws_env_create(budget);
  f->cli.ws = hp__ws_create(f->env, HP_WS_CLIENT, HP_WS_MESSAGES, &ops, &f->cli, 70000, 64);
  f->srv.ws = hp__ws_create(f->env, HP_WS_SERVER, mode, &ops, &f->srv, max_message, 8);
  assert_non_null(f->cli.ws);
  assert_non_null(f->srv.ws);
  return f;
}

static void fx_free(fixture *f) {
  hp__ws_destroy(f->cli.ws);
  hp__ws_destroy(f->srv.ws);
  /* Everything buffered went back to the budget. */
  assert_int_equal(hp__ws_env_buffered(f->env), 0);
  hp__ws_env_destroy(f->env);
  free(f);
}

/* Deliver what from wrote to to, in pieces of step bytes. */
static void pump(side *from, side *to, size_t step) {
  size_t off = 0;
  while (off < from->outlen) {
    size_t n = from->outlen - off < step ? from->outlen - off : step;
    hp__ws_feed(to->ws, from->out + off, n);
    off += n;
  }
  from->outlen = 0;
}

static void test_accept_key(void **state) {
  char out[HP_WS_ACCEPT_LEN + 1];
  (void)state;
  /* RFC 6455 section 1.3. */
  assert_int_equal(hp__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_true(hp__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
  assert_false(hp__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
  assert_false(hp__ws_key_valid("dGhlIHNhbXBsZSBub25j*Q==", 24));
}

static void test_roundtrip(void **state) {
  fixture *f = fx_new(0, 1000, HP_WS_MESSAGES);
  (void)state;
  assert_int_equal(hp__ws_send(f->cli.ws, 0, "{\"type\":\"hello\"}", 16), 0);
  assert_true(f->cli.out[1] & 0x80); /* a client masks */
  pump(&f->cli, &f->srv, 4096);
  assert_int_equal(f->srv.messages, 1);
  assert_int_equal(f->srv.msglen, 16);
  assert_memory_equal(f->srv.msg, "{\"type\":\"hello\"}", 16);
  /* Nothing is held between messages. */
  assert_int_equal(hp__ws_buffered(f->srv.ws), 0);
  assert_int_equal(hp__ws_send(f->srv.ws, 1, "\x01\x02", 2), 0);
  assert_false(f->srv.out[1] & 0x80); /* a server does not */
  pump(&f->srv, &f->cli, 1);
  assert_int_equal(f->cli.messages, 1);
  assert_int_equal(f->cli.binary, 1);
  fx_free(f);
}

static void test_fragments_byte_by_byte(void **state) {
  fixture *f = fx_new(0, 1000, HP_WS_MESSAGES);
  /* A fragmented text message (first frame, continuation, final), hand
   * made: 'ab' + 'cd' + 'e', masked with a zero key (masked, key 0). */
  static const uint8_t frames[] = {0x01, 0x82, 0,   0,   0,    0,    'a', 'b', 0x00, 0x82, 0,  0,
                                   0,    0,    'c', 'd', 0x80, 0x81, 0,   0,   0,    0,    'e'};
  (void)state;
  for (size_t i = 0; i < sizeof(frames); i++)
    hp__ws_feed(f->srv.ws, frames + i, 1);
  assert_int_equal(f->srv.messages, 1);
  assert_int_equal(f->srv.msglen, 5);
  assert_memory_equal(f->srv.msg, "abcde", 5);
  assert_int_equal(hp__ws_buffered(f->srv.ws), 0);
  assert_int_equal(hp__ws_get_state(f->srv.ws), HP_WS_OPEN);
  fx_free(f);
}

static void test_ping_pong_and_close(void **state) {
  fixture *f = fx_new(0, 1000, HP_WS_MESSAGES);
  (void)state;
  static const uint8_t ping[] = {0x89, 0x83, 0, 0, 0, 0, 'x', 'y', 'z'};
  hp__ws_feed(f->srv.ws, ping, sizeof(ping));
  pump(&f->srv, &f->cli, 100); /* the pong: the client ignores it */
  assert_int_equal(f->cli.messages, 0);
  assert_int_equal(hp__ws_close(f->cli.ws, 1000, "bye"), 0);
  pump(&f->cli, &f->srv, 3);
  assert_int_equal(f->srv.closed, 1);
  assert_int_equal(f->srv.close_status, 1000);
  assert_int_equal(hp__ws_get_state(f->srv.ws), HP_WS_CLOSED);
  /* The server echoed the close: the client's handshake completes. */
  pump(&f->srv, &f->cli, 100);
  assert_int_equal(f->cli.closed, 1);
  assert_int_equal(hp__ws_get_state(f->cli.ws), HP_WS_CLOSED);
  assert_int_equal(hp__ws_send(f->srv.ws, 0, "x", 1), -EPIPE);
  fx_free(f);
}

/* Frames that break RFC 6455: each must fail with HP_WS_FAIL_PROTOCOL. */
static void test_protocol_errors(void **state) {
  static const struct {
    const char *name;
    uint8_t bytes[16];
    size_t len;
  } cases[] = {
      {"unmasked", {0x81, 0x01, 'x'}, 3},
      {"rsv1", {0xc1, 0x81, 0, 0, 0, 0, 'x'}, 7},
      {"opcode 3", {0x83, 0x81, 0, 0, 0, 0, 'x'}, 7},
      {"continuation first", {0x80, 0x81, 0, 0, 0, 0, 'x'}, 7},
      {"close 1 byte", {0x88, 0x81, 0, 0, 0, 0, 3}, 7},
      {"close 5000", {0x88, 0x82, 0, 0, 0, 0, 0x13, 0x88}, 8},
      {"close 1005", {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed}, 8},
      {"close bad utf-8", {0x88, 0x84, 0, 0, 0, 0, 0x03, 0xe8, 0xc3, 0x28}, 10},
      {"ping not fin", {0x09, 0x80, 0, 0, 0, 0}, 6},
      {"non-minimal length", {0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 'a'}, 9},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    fixture *f = fx_new(0, 1000, HP_WS_MESSAGES);
    hp__ws_feed(f->srv.ws, cases[i].bytes, cases[i].len);
    if (f->srv.failed != 1 || f->srv.fail != HP_WS_FAIL_PROTOCOL)
      fail_msg("case %s: failed=%d fail=%d", cases[i].name, f->srv.failed, (int)f->srv.fail);
    assert_int_equal(f->srv.messages, 0);
    fx_free(f);
  }
}

/* Over the cap: refused from the frame header; the frame sync is kept, so
 * the peer's close after the rest of the big frame is still read. */
static void test_too_big_then_close(void **state) {
  fixture *f = fx_new(0, 100, HP_WS_MESSAGES);
  char big[300];
  (void)state;
  memset(big, 'x', sizeof(big));
  assert_int_equal(hp__ws_send(f->cli.ws, 0, big, sizeof(big)), 0);
  assert_int_equal(hp__ws_close(f->cli.ws, 1000, NULL), 0);
  /* The owner answers a refusal with its own close. */
  size_t half = f->cli.outlen / 2;
  hp__ws_feed(f->srv.ws, f->cli.out, half);
  assert_int_equal(f->srv.failed, 1);
  assert_int_equal(f->srv.fail, HP_WS_FAIL_TOO_BIG);
  assert_int_equal(hp__ws_close(f->srv.ws, 1009, NULL), 0);
  hp__ws_feed(f->srv.ws, f->cli.out + half, f->cli.outlen - half);
  assert_int_equal(f->srv.closed, 1);
  assert_int_equal(f->srv.messages, 0);
  fx_free(f);
}

static void test_fragment_cap(void **state) {
  fixture *f = fx_new(0, 1000, HP_WS_MESSAGES);
  uint8_t b[6 * 20];
  (void)state;
  /* 20 empty fragments; the server allows 8 per message. */
  for (int i = 0; i < 20; i++) {
    uint8_t *p = b + 6 * i;
    p[0] = i == 0 ? 0x01 : 0x00;
    p[1] = 0x80;
    memset(p + 2, 0, 4);
  }
  hp__ws_feed(f->srv.ws, b, sizeof(b));
  assert_int_equal(f->srv.failed, 1);
  assert_int_equal(f->srv.fail, HP_WS_FAIL_FRAGMENTS);
  fx_free(f);
}

static void test_budget(void **state) {
  /* One frame context (~4 KiB) plus a little: a second endpoint in the
   * middle of a frame does not fit. */
  fixture *f = fx_new(6000, 60000, HP_WS_MESSAGES);
  hp__ws *other = hp__ws_create(f->env, HP_WS_SERVER, HP_WS_MESSAGES, &ops, &f->cli, 60000, 8);
  static const uint8_t partial[] = {0x81, 0xfe, 0x10, 0x00, 0, 0, 0, 0, 'a', 'b'};
  (void)state;
  hp__ws_feed(f->srv.ws, partial, sizeof(partial));
  assert_int_equal(f->srv.failed, 0);
  assert_true(hp__ws_env_buffered(f->env) > 0);
  hp__ws_feed(other, partial, sizeof(partial));
  assert_int_equal(f->cli.failed, 1);
  assert_int_equal(f->cli.fail, HP_WS_FAIL_BUDGET);
  hp__ws_destroy(other);
  fx_free(f);
}

static void test_frames_mode(void **state) {
  fixture *f = fx_new(0, 10, HP_WS_FRAMES);
  char data[10000];
  (void)state;
  memset(data, 'r', sizeof(data));
  /* No reassembly, so no cap: chunks pass through. */
  assert_int_equal(hp__ws_send(f->cli.ws, 1, data, sizeof(data)), 0);
  pump(&f->cli, &f->srv, 1500);
  assert_int_equal(f->srv.failed, 0);
  assert_int_equal(f->srv.msglen, sizeof(data));
  assert_int_equal(f->srv.chunk_first, 1);
  assert_int_equal(f->srv.chunk_fin, 1);
  assert_true(f->srv.chunks > 1);
  fx_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_key),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_fragments_byte_by_byte),
      cmocka_unit_test(test_ping_pong_and_close),
      cmocka_unit_test(test_protocol_errors),
      cmocka_unit_test(test_too_big_then_close),
      cmocka_unit_test(test_fragment_cap),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_frames_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
