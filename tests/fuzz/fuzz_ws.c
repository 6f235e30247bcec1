/*
 * fuzz_ws.c - the WebSocket endpoint (src/net/ws.h) as a server reading
 * arbitrary bytes, fed in pieces whose sizes come from the input.
 *
 * Input: 1 byte of piece size (1 + b % 64, or the rest when 0), 1 byte of
 * reassembly cap (64 * (1 + b)), then the bytes a client would send.
 * Contract checked:
 * - every delivered message is within the cap; after a failure or a close
 *   nothing more is delivered;
 * - the endpoint never holds more than the budget allows, and everything
 *   it held is back in the budget after destroy;
 * - whatever it writes (pongs, the echo of a close) is a well-formed
 *   unmasked frame header.
 */
#include "fuzz.h"
#include "ws.h"

#define BUDGET (64 * 1024)

typedef struct st {
  size_t cap;
  int ended; /* failed or closed */
  hp__ws_state state;
} st;

static int w_writev(void *arg, const struct iovec *iov, int n) {
  (void)arg;
  FUZZ_CHECK(n >= 1 && iov[0].iov_len >= 2);
  /* A server never masks. */
  FUZZ_CHECK((((const uint8_t *)iov[0].iov_base)[1] & 0x80) == 0);
  return 0;
}

static void w_message(void *arg, int binary, const uint8_t *data, size_t len) {
  st *s = arg;
  (void)binary;
  FUZZ_CHECK(!s->ended);
  FUZZ_CHECK(len <= s->cap);
  FUZZ_CHECK(data != NULL);
}

static void w_chunk(void *arg, int binary, int first, int fin, const uint8_t *d, size_t n) {
  (void)arg, (void)binary, (void)first, (void)fin, (void)d, (void)n;
  FUZZ_CHECK(0); /* messages mode */
}

static void w_closed(void *arg, uint16_t status) {
  st *s = arg;
  (void)status;
  s->ended = 1;
}

static void w_failed(void *arg, hp__ws_fail fail, const char *why) {
  st *s = arg;
  (void)fail;
  FUZZ_CHECK(why != NULL && why[0]);
  s->ended = 1;
}

static const hp__ws_ops ops = {w_writev, w_message, w_chunk, w_closed, w_failed, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__ws_env *env;
  hp__ws *ws;
  st s = {0};
  size_t piece, off;

  if (size < 2)
    return 0;
  piece = data[0] ? 1u + data[0] % 64u : size;
  s.cap = 64u * (1u + data[1]);
  env = hp__ws_env_create(BUDGET);
  FUZZ_CHECK(env != NULL);
  ws = hp__ws_create(env, HP_WS_SERVER, HP_WS_MESSAGES, &ops, &s, s.cap, 16);
  FUZZ_CHECK(ws != NULL);
  for (off = 2; off < size; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    hp__ws_feed(ws, data + off, n);
    FUZZ_CHECK(hp__ws_env_buffered(env) <= BUDGET);
    FUZZ_CHECK(hp__ws_buffered(ws) == hp__ws_env_buffered(env));
    /* The owner answers a refusal with a close, as the service does. */
    if (hp__ws_get_state(ws) == HP_WS_FAILED)
      hp__ws_close(ws, 1002, NULL);
  }
  hp__ws_destroy(ws);
  FUZZ_CHECK(hp__ws_env_buffered(env) == 0);
  hp__ws_env_destroy(env);
  return 0;
}
