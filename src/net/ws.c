/*
 * ws.c - a WebSocket endpoint on wslay's frame layer (see ws.h for the
 * contract). wslay decodes and encodes frame headers and unmasks payload;
 * this file keeps the per-connection rules RFC 6455 puts above frames and
 * the memory bounds.
 *
 * Input accounting: wslay copies input into its context's 4 KiB buffer
 * through recv_cb and hands out payload chunks. `pending` counts the bytes
 * given to wslay and not yet seen as header or payload of a chunk. When no
 * frame is in progress and pending is 0, the context is back in its initial
 * state (waiting for a first header byte, empty buffer), so it can go back
 * to the env's pool and serve another endpoint.
 */
#include "ws.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#define CTX_COST 4224u /* what one wslay frame context holds (4 KiB buffer + state) */
#define POOL_KEEP 64u  /* idle contexts kept for reuse */
#define CTRL_MAX 125u  /* largest control frame payload */
#define MSG_MIN_CAP 1024u
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* A receive context and what belongs to the frame it is in. */
typedef struct rslot {
  wslay_frame_context_ptr ctx;
  struct hp__ws *ws; /* the endpoint using it now */
  struct rslot *next;
  uint8_t ctrl[CTRL_MAX];
  uint8_t ctrl_len;
} rslot;

struct hp__ws_env {
  size_t budget, used;
  rslot *pool;
  size_t npool;
  wslay_frame_context_ptr send_ctx[2]; /* per role; every send completes at once */
  /* The frame being encoded: the header, then the payload (a pointer to the
   * caller's bytes for a server, masked copies for a client). */
  struct iovec iov[2];
  int iovcnt;
  uint8_t hdr[14];
  uint8_t *mbuf;
  size_t mlen, mcap;
  int copy_payload; /* client: wslay masks into a stack buffer it reuses */
  int send_err;
};

struct hp__ws {
  hp__ws_env *env;
  const hp__ws_ops *ops;
  void *arg;
  rslot *rx; /* receive context while a frame is in progress */
  const uint8_t *in;
  size_t inlen;
  size_t pending;
  uint64_t frame_len, frame_off;
  uint8_t in_frame, frame_op, frame_fin;
  uint8_t msg_op; /* opcode of the data message in progress, 0: none */
  uint8_t role, mode, state;
  uint8_t desync; /* wslay refused a header: the byte stream cannot be read on */
  unsigned fragments, max_fragments;
  uint64_t frames; /* frames received */
  uint8_t *msg;    /* reassembly; NULL when no message is buffered */
  size_t msglen, msgcap, max_message;
};

/* ---------------------------------------------------------------------- */
/* env                                                                    */

static ssize_t recv_cb(uint8_t *buf, size_t len, int flags, void *user) {
  rslot *sl = user;
  hp__ws *ws = sl->ws;
  size_t n = len < ws->inlen ? len : ws->inlen;

  (void)flags;
  if (!n)
    return 0; /* wslay: want read */
  memcpy(buf, ws->in, n);
  ws->in += n;
  ws->inlen -= n;
  ws->pending += n;
  return (ssize_t)n;
}

static ssize_t send_cb(const uint8_t *data, size_t len, int flags, void *user) {
  hp__ws_env *env = user;

  (void)flags;
  if (env->iovcnt == 0) {
    /* The header comes first, in one piece (at most 14 bytes). */
    if (len > sizeof(env->hdr)) {
      env->send_err = -EINVAL;
      return -1;
    }
    memcpy(env->hdr, data, len);
    env->iov[0].iov_base = env->hdr;
    env->iov[0].iov_len = len;
    env->iovcnt = 1;
    return (ssize_t)len;
  }
  if (env->copy_payload) {
    if (env->mlen + len > env->mcap) {
      size_t cap = env->mcap ? env->mcap : 4096;
      uint8_t *nb;
      while (cap < env->mlen + len)
        cap *= 2;
      nb = realloc(env->mbuf, cap);
      if (!nb) {
        env->send_err = -ENOMEM;
        return -1;
      }
      env->mbuf = nb;
      env->mcap = cap;
    }
    memcpy(env->mbuf + env->mlen, data, len);
    env->mlen += len;
    env->iov[1].iov_base = env->mbuf;
    env->iov[1].iov_len = env->mlen;
  } else {
    env->iov[1].iov_base = (void *)(uintptr_t)data;
    env->iov[1].iov_len = len;
  }
  env->iovcnt = 2;
  return (ssize_t)len;
}

static int genmask_cb(uint8_t *buf, size_t len, void *user) {
  (void)user;
  return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

hp__ws_env *hp__ws_env_create(size_t input_budget) {
  hp__ws_env *env = calloc(1, sizeof(*env));
  if (env)
    env->budget = input_budget;
  return env;
}

void hp__ws_env_destroy(hp__ws_env *env) {
  if (!env)
    return;
  while (env->pool) {
    rslot *sl = env->pool;
    env->pool = sl->next;
    wslay_frame_context_free(sl->ctx);
    free(sl);
  }
  for (int i = 0; i < 2; i++)
    if (env->send_ctx[i])
      wslay_frame_context_free(env->send_ctx[i]);
  free(env->mbuf);
  free(env);
}

size_t hp__ws_env_buffered(const hp__ws_env *env) {
  return env->used;
}

/* Charge n bytes to the budget. 0 or -ENOBUFS. */
static int budget_take(hp__ws_env *env, size_t n) {
  if (env->budget && (env->used + n > env->budget || env->used + n < env->used))
    return -ENOBUFS;
  env->used += n;
  return 0;
}

static void budget_give(hp__ws_env *env, size_t n) {
  env->used = n > env->used ? 0 : env->used - n;
}

static int rx_acquire(hp__ws *ws) {
  hp__ws_env *env = ws->env;
  static const struct wslay_frame_callbacks cbs = {NULL, recv_cb, NULL};
  rslot *sl;

  if (budget_take(env, CTX_COST) < 0)
    return -ENOBUFS;
  sl = env->pool;
  if (sl) {
    env->pool = sl->next;
    env->npool--;
  } else {
    sl = calloc(1, sizeof(*sl));
    if (!sl || wslay_frame_context_init(&sl->ctx, &cbs, sl) != 0) {
      free(sl);
      budget_give(env, CTX_COST);
      return -ENOMEM;
    }
  }
  sl->ws = ws;
  sl->ctrl_len = 0;
  sl->next = NULL;
  ws->rx = sl;
  ws->pending = 0;
  return 0;
}

/* Give the context back: only in its initial state (see the top), or to be
 * freed (a context in the middle of a frame is never reused). */
static void rx_release(hp__ws *ws) {
  hp__ws_env *env = ws->env;
  rslot *sl = ws->rx;

  if (!sl)
    return;
  ws->rx = NULL;
  budget_give(env, CTX_COST);
  if (ws->in_frame || ws->pending || env->npool >= POOL_KEEP) {
    wslay_frame_context_free(sl->ctx);
    free(sl);
    return;
  }
  sl->ws = NULL;
  sl->next = env->pool;
  env->pool = sl;
  env->npool++;
}

/* ---------------------------------------------------------------------- */
/* sending                                                                */

static int send_frame(hp__ws *ws, uint8_t opcode, const void *data, size_t len) {
  hp__ws_env *env = ws->env;
  static const struct wslay_frame_callbacks cbs = {send_cb, NULL, genmask_cb};
  struct wslay_frame_iocb io;
  wslay_frame_context_ptr ctx = env->send_ctx[ws->role];
  ssize_t r;

  if (!ctx) {
    if (wslay_frame_context_init(&ctx, &cbs, env) != 0)
      return -ENOMEM;
    env->send_ctx[ws->role] = ctx;
  }
  memset(&io, 0, sizeof(io));
  io.fin = 1;
  io.opcode = opcode;
  io.mask = ws->role == HP_WS_CLIENT;
  io.payload_length = len;
  io.data = data;
  io.data_length = len;
  env->iovcnt = 0;
  env->send_err = 0;
  env->mlen = 0;
  env->copy_payload = io.mask;
  r = wslay_frame_send(ctx, &io);
  if (env->send_err)
    return env->send_err;
  if (r < 0 || (size_t)r != len || env->iovcnt < 1)
    return -EIO;
  return ws->ops->writev(ws->arg, env->iov, env->iovcnt);
}

int hp__ws_send(hp__ws *ws, int binary, const void *data, size_t len) {
  if (ws->state == HP_WS_CLOSE_SENT || ws->state == HP_WS_CLOSED)
    return -EPIPE;
  return send_frame(ws, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len);
}

int hp__ws_ping(hp__ws *ws) {
  if (ws->state == HP_WS_CLOSE_SENT || ws->state == HP_WS_CLOSED)
    return -EPIPE;
  return send_frame(ws, WSLAY_PING, NULL, 0);
}

int hp__ws_ping_data(hp__ws *ws, const void *data, size_t len) {
  if (len > 125)
    return -EINVAL;
  if (ws->state == HP_WS_CLOSE_SENT || ws->state == HP_WS_CLOSED)
    return -EPIPE;
  return send_frame(ws, WSLAY_PING, data, len);
}

static int send_close(hp__ws *ws, uint16_t status, const char *reason) {
  uint8_t p[CTRL_MAX];
  size_t rl = reason ? strlen(reason) : 0;

  if (rl > CTRL_MAX - 2)
    rl = CTRL_MAX - 2;
  p[0] = (uint8_t)(status >> 8);
  p[1] = (uint8_t)status;
  if (rl)
    memcpy(p + 2, reason, rl);
  return send_frame(ws, WSLAY_CONNECTION_CLOSE, p, 2 + rl);
}

int hp__ws_close(hp__ws *ws, uint16_t status, const char *reason) {
  int rc;

  if (ws->state == HP_WS_CLOSE_SENT || ws->state == HP_WS_CLOSED)
    return 0;
  rc = send_close(ws, status, reason);
  ws->state = HP_WS_CLOSE_SENT;
  /* Nothing received from now on is delivered: drop what is buffered. */
  if (ws->msg) {
    budget_give(ws->env, ws->msgcap);
    free(ws->msg);
    ws->msg = NULL;
    ws->msglen = ws->msgcap = 0;
  }
  return rc;
}

/* ---------------------------------------------------------------------- */
/* receiving                                                              */

static void fail(hp__ws *ws, hp__ws_fail why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(hp__ws *ws, hp__ws_fail why, const char *fmt, ...) {
  char text[160];
  va_list ap;

  if (ws->state == HP_WS_FAILED || ws->state == HP_WS_CLOSED)
    return;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (ws->state == HP_WS_CLOSE_SENT) {
    /* We are closing already: nothing more to say, just stop reading. */
    ws->state = HP_WS_CLOSED;
    ws->ops->closed(ws->arg, 1006);
    return;
  }
  ws->state = HP_WS_FAILED;
  ws->ops->failed(ws->arg, why, text);
}

/* Close codes a peer may send (RFC 6455 7.4.1 and 7.4.2, IANA registry). */
static int close_code_ok(unsigned c) {
  if (c >= 3000 && c <= 4999)
    return 1;
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014);
}

static int utf8_ok(const uint8_t *s, size_t n) {
  /* jansson checks UTF-8 strictly (no overlong forms, no surrogates). */
  json_t *j = n ? json_stringn((const char *)s, n) : NULL;
  int ok = !n || j != NULL;
  json_decref(j);
  return ok;
}

static void on_control(hp__ws *ws, uint8_t op, const uint8_t *p, size_t n) {
  if (op == WSLAY_PING) {
    if (ws->state == HP_WS_OPEN)
      (void)send_frame(ws, WSLAY_PONG, p, n);
    if (ws->ops->control)
      ws->ops->control(ws->arg, 0, p, n);
    return;
  }
  if (op == WSLAY_PONG) {
    if (ws->ops->control)
      ws->ops->control(ws->arg, 1, p, n);
    return;
  }
  /* close */
  uint16_t status = 1005;
  if (n == 1) {
    fail(ws, HP_WS_FAIL_PROTOCOL, "a close frame with a 1-byte payload");
    return;
  }
  if (n >= 2) {
    status = (uint16_t)(p[0] << 8 | p[1]);
    if (!close_code_ok(status)) {
      fail(ws, HP_WS_FAIL_PROTOCOL, "a close frame with the invalid status %u", status);
      return;
    }
    if (!utf8_ok(p + 2, n - 2)) {
      fail(ws, HP_WS_FAIL_PROTOCOL, "a close reason that is not UTF-8");
      return;
    }
  }
  if (ws->state == HP_WS_OPEN)
    (void)send_close(ws, status == 1005 ? HP_WS_CLOSE_NORMAL : status, NULL);
  ws->state = HP_WS_CLOSED;
  ws->ops->closed(ws->arg, status);
}

static size_t header_len(uint64_t plen, int mask) {
  return 2u + (plen < 126 ? 0u : plen < 65536 ? 2u : 8u) + (mask ? 4u : 0u);
}

/* First chunk of a frame: the header rules. 0 or -1 (failed). */
static int frame_start(hp__ws *ws, const struct wslay_frame_iocb *io) {
  uint8_t op = io->opcode;

  ws->pending -= header_len(io->payload_length, io->mask);
  ws->frames++;
  ws->in_frame = 1;
  ws->frame_len = io->payload_length;
  ws->frame_off = 0;
  ws->frame_op = op;
  ws->frame_fin = io->fin;
  if (io->rsv) {
    fail(ws, HP_WS_FAIL_PROTOCOL, "a frame with RSV bits set (no extension was negotiated)");
    return -1;
  }
  if ((ws->role == HP_WS_SERVER) != (io->mask != 0)) {
    fail(ws, HP_WS_FAIL_PROTOCOL,
         ws->role == HP_WS_SERVER ? "an unmasked frame from a client"
                                  : "a masked frame from a server");
    return -1;
  }
  if (op != WSLAY_CONTINUATION_FRAME && op != WSLAY_TEXT_FRAME && op != WSLAY_BINARY_FRAME &&
      op != WSLAY_CONNECTION_CLOSE && op != WSLAY_PING && op != WSLAY_PONG) {
    fail(ws, HP_WS_FAIL_PROTOCOL, "a frame with the reserved opcode %u", op);
    return -1;
  }
  if (op >= WSLAY_CONNECTION_CLOSE || ws->state == HP_WS_CLOSE_SENT)
    return 0; /* after our close, data is only skipped */
  if (op == WSLAY_CONTINUATION_FRAME && !ws->msg_op) {
    fail(ws, HP_WS_FAIL_PROTOCOL, "a continuation frame without a message to continue");
    return -1;
  }
  if (op != WSLAY_CONTINUATION_FRAME) {
    if (ws->msg_op) {
      fail(ws, HP_WS_FAIL_PROTOCOL, "a new message before the last one was finished");
      return -1;
    }
    ws->msg_op = op;
    ws->fragments = 0;
  }
  if (++ws->fragments > ws->max_fragments) {
    fail(ws, HP_WS_FAIL_FRAGMENTS, "a message in more than %u fragments", ws->max_fragments);
    return -1;
  }
  if (ws->mode == HP_WS_MESSAGES && ws->msglen + io->payload_length > ws->max_message) {
    fail(ws, HP_WS_FAIL_TOO_BIG, "a message larger than %zu bytes", ws->max_message);
    return -1;
  }
  return 0;
}

static int msg_append(hp__ws *ws, const uint8_t *p, size_t n) {
  if (ws->msglen + n > ws->max_message) {
    fail(ws, HP_WS_FAIL_TOO_BIG, "a message larger than %zu bytes", ws->max_message);
    return -1;
  }
  if (ws->msglen + n > ws->msgcap) {
    size_t cap = ws->msgcap ? ws->msgcap : MSG_MIN_CAP;
    uint8_t *nb;
    while (cap < ws->msglen + n)
      cap *= 2;
    if (cap > ws->max_message)
      cap = ws->max_message;
    if (budget_take(ws->env, cap - ws->msgcap) < 0) {
      fail(ws, HP_WS_FAIL_BUDGET, "the server's input buffers are full");
      return -1;
    }
    nb = realloc(ws->msg, cap);
    if (!nb) {
      budget_give(ws->env, cap - ws->msgcap);
      fail(ws, HP_WS_FAIL_NOMEM, "out of memory for a message");
      return -1;
    }
    ws->msg = nb;
    ws->msgcap = cap;
  }
  if (n)
    memcpy(ws->msg + ws->msglen, p, n);
  ws->msglen += n;
  return 0;
}

static void msg_done(hp__ws *ws) {
  int binary = ws->msg_op == WSLAY_BINARY_FRAME;
  uint8_t *m = ws->msg;
  size_t n = ws->msglen, cap = ws->msgcap;

  ws->msg = NULL;
  ws->msglen = ws->msgcap = 0;
  ws->msg_op = 0;
  if (ws->state == HP_WS_OPEN)
    ws->ops->message(ws->arg, binary, m ? m : (const uint8_t *)"", n);
  budget_give(ws->env, cap);
  free(m);
}

/* One chunk from wslay. */
static void on_chunk(hp__ws *ws, const struct wslay_frame_iocb *io) {
  const uint8_t *p = io->data;
  size_t n = io->data_length;
  int first = !ws->in_frame;
  int refused = first && frame_start(ws, io) < 0;

  /* The bytes are consumed whatever happens to them: the frame sync is
   * kept, so that the peer's close can still be read after a refusal. */
  ws->pending -= n;
  ws->frame_off += n;
  if (refused || (ws->state != HP_WS_OPEN && ws->state != HP_WS_CLOSE_SENT)) {
    if (ws->frame_off == ws->frame_len) {
      ws->in_frame = 0;
      if (ws->frame_fin && ws->frame_op < WSLAY_CONNECTION_CLOSE)
        ws->msg_op = 0;
    }
    return;
  }
  if (ws->frame_op >= WSLAY_CONNECTION_CLOSE) {
    rslot *sl = ws->rx;
    memcpy(sl->ctrl + sl->ctrl_len, p, n); /* wslay caps control payloads at 125 */
    sl->ctrl_len = (uint8_t)(sl->ctrl_len + n);
    if (ws->frame_off == ws->frame_len) {
      ws->in_frame = 0;
      sl->ctrl_len = 0;
      on_control(ws, ws->frame_op, sl->ctrl, ws->frame_len);
    }
    return;
  }
  if (ws->state == HP_WS_CLOSE_SENT) {
    /* Data after our close is read and dropped. */
    if (ws->frame_off == ws->frame_len) {
      ws->in_frame = 0;
      if (ws->frame_fin)
        ws->msg_op = 0;
    }
    return;
  }
  if (ws->mode == HP_WS_FRAMES) {
    int msg_first = first && ws->frame_op != WSLAY_CONTINUATION_FRAME;
    int end = ws->frame_off == ws->frame_len;
    int fin = end && ws->frame_fin;
    int binary = ws->msg_op == WSLAY_BINARY_FRAME;
    if (end) {
      ws->in_frame = 0;
      if (fin)
        ws->msg_op = 0;
    }
    if (n || msg_first || fin)
      ws->ops->chunk(ws->arg, binary, msg_first, fin, p, n);
    return;
  }
  if (first && ws->frame_fin && !ws->msg && ws->frame_op != WSLAY_CONTINUATION_FRAME &&
      n == ws->frame_len) {
    /* The common case: a whole message in one chunk, delivered in place. */
    ws->in_frame = 0;
    ws->msg_op = 0;
    ws->ops->message(ws->arg, ws->frame_op == WSLAY_BINARY_FRAME, p, n);
    return;
  }
  if (msg_append(ws, p, n) < 0) {
    if (ws->frame_off == ws->frame_len) {
      ws->in_frame = 0;
      if (ws->frame_fin)
        ws->msg_op = 0;
    }
    return;
  }
  if (ws->frame_off == ws->frame_len) {
    ws->in_frame = 0;
    if (ws->frame_fin)
      msg_done(ws);
  }
}

static int reading(const hp__ws *ws) {
  return ws->state == HP_WS_OPEN || ws->state == HP_WS_CLOSE_SENT;
}

hp__ws_state hp__ws_feed(hp__ws *ws, const uint8_t *data, size_t len) {
  struct wslay_frame_iocb io;

  if (!reading(ws) || ws->desync)
    return (hp__ws_state)ws->state;
  ws->in = data;
  ws->inlen = len;
  while (reading(ws) && !ws->desync) {
    ssize_t r;

    if (!ws->rx) {
      if (!ws->inlen)
        break;
      int rc = rx_acquire(ws);
      if (rc < 0) {
        fail(ws, rc == -ENOBUFS ? HP_WS_FAIL_BUDGET : HP_WS_FAIL_NOMEM,
             "the server's input buffers are full");
        break;
      }
    }
    memset(&io, 0, sizeof(io));
    r = wslay_frame_recv(ws->rx->ctx, &io);
    if (r == WSLAY_ERR_WANT_READ)
      break;
    if (r < 0) {
      ws->desync = 1;
      fail(ws, HP_WS_FAIL_PROTOCOL,
           "a malformed frame header (control frame fragmented or over 125 bytes, or a "
           "length not in its shortest form)");
      break;
    }
    on_chunk(ws, &io);
  }
  ws->in = NULL;
  ws->inlen = 0;
  /* A refused endpoint keeps its context (the frame sync) so that the
   * peer's close can be read once the owner has sent its own. */
  if (ws->rx && ((!ws->in_frame && !ws->pending) || ws->desync || ws->state == HP_WS_CLOSED))
    rx_release(ws);
  return (hp__ws_state)ws->state;
}

/* ---------------------------------------------------------------------- */
/* lifecycle                                                              */

hp__ws *hp__ws_create(hp__ws_env *env, hp__ws_role role, hp__ws_mode mode, const hp__ws_ops *ops,
                      void *arg, size_t max_message, unsigned max_fragments) {
  hp__ws *ws = calloc(1, sizeof(*ws));

  if (!ws)
    return NULL;
  ws->env = env;
  ws->ops = ops;
  ws->arg = arg;
  ws->role = (uint8_t)role;
  ws->mode = (uint8_t)mode;
  ws->state = HP_WS_OPEN;
  ws->max_message = max_message;
  ws->max_fragments = max_fragments ? max_fragments : 1;
  return ws;
}

void hp__ws_destroy(hp__ws *ws) {
  if (!ws)
    return;
  rx_release(ws);
  if (ws->msg)
    budget_give(ws->env, ws->msgcap);
  free(ws->msg);
  free(ws);
}

void hp__ws_set_max_message(hp__ws *ws, size_t max_message) {
  ws->max_message = max_message;
}

hp__ws_state hp__ws_get_state(const hp__ws *ws) {
  return (hp__ws_state)ws->state;
}

uint64_t hp__ws_frames(const hp__ws *ws) {
  return ws->frames;
}

size_t hp__ws_buffered(const hp__ws *ws) {
  return (ws->rx ? CTX_COST : 0) + ws->msgcap;
}

/* ---------------------------------------------------------------------- */
/* handshake helpers                                                      */

int hp__ws_key_valid(const char *key, size_t keylen) {
  unsigned char bin[HP_WS_KEY_LEN];

  if (keylen != HP_WS_KEY_LEN || key[22] != '=' || key[23] != '=')
    return 0;
  /* 24 characters decode to 18 bytes, the last two the padding's. */
  return EVP_DecodeBlock(bin, (const unsigned char *)key, (int)keylen) == 18;
}

int hp__ws_accept_key(const char *key, size_t keylen, char out[HP_WS_ACCEPT_LEN + 1]) {
  unsigned char cat[64 + sizeof(WS_GUID)], md[SHA_DIGEST_LENGTH];

  if (!keylen || keylen > 64)
    return -EINVAL;
  memcpy(cat, key, keylen);
  memcpy(cat + keylen, WS_GUID, sizeof(WS_GUID) - 1);
  SHA1(cat, keylen + sizeof(WS_GUID) - 1, md);
  if (EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH) != HP_WS_ACCEPT_LEN)
    return -EINVAL;
  return 0;
}
