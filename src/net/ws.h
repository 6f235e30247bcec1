/*
 * ws.h - one WebSocket endpoint (RFC 6455) on wslay's frame API, over any
 * byte transport, in either direction. No I/O and no event loop: the owner
 * feeds the bytes it read (hp__ws_feed) and gets the bytes to write through
 * ops->writev; it owns the transport (TCP, TLS, a test buffer) and its
 * timers.
 *
 * What this layer enforces (and what wslay's frame layer leaves to it):
 * the masking rule of the role (a server refuses unmasked frames, a client
 * masked ones), RSV bits (no extension is ever negotiated), opcodes, the
 * continuation sequence, close codes and a UTF-8 close reason; a violation
 * is HP_WS_FAIL_PROTOCOL and the owner answers it with a close 1002.
 *
 * Memory: an idle endpoint holds no wslay context. A frame context (4 KiB of
 * input buffer) is taken from the shared hp__ws_env only while a frame is
 * partly received, and given back at the frame boundary; sending uses one
 * context per role shared by all endpoints, since the write callback takes
 * every byte at once. Reassembly (HP_WS_MESSAGES) grows up to a cap that the
 * owner sets per endpoint (small before the peer has identified itself,
 * larger after), with a cap on fragments per message; every byte held (frame
 * contexts and reassembly) is charged to the env's global input budget,
 * and over any of them the endpoint refuses instead of growing.
 *
 * HP_WS_FRAMES mode hands data frames on chunk by chunk without
 * reassembly: a relay forwards them and applies backpressure by stopping
 * the source's transport reads while the destination's transport queue is
 * full (the owner's business; this layer buffers nothing for it).
 */
#ifndef HP_NET_WS_H
#define HP_NET_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define HP_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */
#define HP_WS_KEY_LEN 24    /* base64 of 16 random bytes */

/* Close statuses (RFC 6455 section 7.4.1). */
#define HP_WS_CLOSE_NORMAL 1000
#define HP_WS_CLOSE_GOING_AWAY 1001
#define HP_WS_CLOSE_PROTOCOL 1002
#define HP_WS_CLOSE_UNSUPPORTED_DATA 1003
#define HP_WS_CLOSE_INVALID_DATA 1007
#define HP_WS_CLOSE_POLICY 1008
#define HP_WS_CLOSE_TOO_BIG 1009
#define HP_WS_CLOSE_INTERNAL 1011
#define HP_WS_CLOSE_TRY_AGAIN_LATER 1013

typedef enum hp__ws_role { HP_WS_SERVER = 0, HP_WS_CLIENT = 1 } hp__ws_role;

typedef enum hp__ws_mode {
  HP_WS_MESSAGES = 0, /* complete messages, reassembled under a cap */
  HP_WS_FRAMES = 1    /* data chunks as they arrive (relay) */
} hp__ws_mode;

/* Why input was refused; the endpoint ignores further input after it. */
typedef enum hp__ws_fail {
  HP_WS_FAIL_PROTOCOL = 1, /* RFC 6455 broken: answer with close 1002 */
  HP_WS_FAIL_TOO_BIG,      /* a message over the cap: 1009 */
  HP_WS_FAIL_FRAGMENTS,    /* too many fragments in one message: 1009 */
  HP_WS_FAIL_BUDGET,       /* the global input budget is spent: 1013 */
  HP_WS_FAIL_NOMEM         /* 1011 */
} hp__ws_fail;

/* State of one endpoint. */
typedef enum hp__ws_state {
  HP_WS_OPEN = 0,
  HP_WS_CLOSE_SENT, /* our close went out; waiting for the peer's */
  HP_WS_CLOSED,     /* both closes exchanged: close the transport */
  HP_WS_FAILED      /* input refused (see hp__ws_fail); output still works */
} hp__ws_state;

typedef struct hp__ws hp__ws;
typedef struct hp__ws_env hp__ws_env;

typedef struct hp__ws_ops {
  /** Write the bytes of iov to the transport after everything before
   * (copy what is not written at once). Returns 0 or a negative errno. */
  int (*writev)(void *arg, const struct iovec *iov, int iovcnt);
  /** HP_WS_MESSAGES: one complete message (text: binary == 0). */
  void (*message)(void *arg, int binary, const uint8_t *data, size_t len);
  /** HP_WS_FRAMES: a chunk of a data frame; first: the first chunk of a
   * message (opcode text/binary in binary), fin: its last chunk. */
  void (*chunk)(void *arg, int binary, int first, int fin, const uint8_t *data, size_t len);
  /** The peer's close arrived (status 1005 when it carried none). The
   * endpoint answered it if it had not closed first; now HP_WS_CLOSED. */
  void (*closed)(void *arg, uint16_t status);
  /** Input was refused (state HP_WS_FAILED); why: a sentence. */
  void (*failed)(void *arg, hp__ws_fail fail, const char *why);
  /** Optional (may be NULL): a ping (pong == 0, already answered) or a pong
   * arrived with its payload (at most 125 bytes): round-trip timing. */
  void (*control)(void *arg, int pong, const uint8_t *data, size_t len);
} hp__ws_ops;

/** Shared by every endpoint of one loop: frame contexts, the input budget
 * (bytes buffered by all endpoints at most; 0: no limit). */
hp__ws_env *hp__ws_env_create(size_t input_budget);
void hp__ws_env_destroy(hp__ws_env *env);
/** Bytes of input buffered by all endpoints now (contexts + reassembly). */
size_t hp__ws_env_buffered(const hp__ws_env *env);

/** A new endpoint in state HP_WS_OPEN. max_message: reassembly cap (bytes),
 * max_fragments: data frames per message. NULL on ENOMEM. */
hp__ws *hp__ws_create(hp__ws_env *env, hp__ws_role role, hp__ws_mode mode, const hp__ws_ops *ops,
                      void *arg, size_t max_message, unsigned max_fragments);
/** Free; what it buffered goes back to the budget. NULL is a no-op. */
void hp__ws_destroy(hp__ws *ws);

/** Change the reassembly cap (e.g. after the peer identified itself). */
void hp__ws_set_max_message(hp__ws *ws, size_t max_message);

/** Feed bytes read from the transport. Callbacks run from here; the owner
 * must not destroy ws from a callback. Returns the state after. */
hp__ws_state hp__ws_feed(hp__ws *ws, const uint8_t *data, size_t len);

/** Send one message as one frame: binary or text. 0 or -errno (-EPIPE
 * once a close was sent). */
int hp__ws_send(hp__ws *ws, int binary, const void *data, size_t len);
/** Send a ping with an empty payload. */
int hp__ws_ping(hp__ws *ws);
/** Send a ping with a payload of at most 125 bytes (-EINVAL above). */
int hp__ws_ping_data(hp__ws *ws, const void *data, size_t len);
/** Send a close with status (and a short ASCII reason, may be NULL) unless
 * one was sent; input is then ignored until the peer's close. */
int hp__ws_close(hp__ws *ws, uint16_t status, const char *reason);

hp__ws_state hp__ws_get_state(const hp__ws *ws);
/** Frames received so far (data and control): for a rate limit. */
uint64_t hp__ws_frames(const hp__ws *ws);
/** Bytes this endpoint holds now (frame context + reassembly). */
size_t hp__ws_buffered(const hp__ws *ws);

/** Sec-WebSocket-Accept for key (the client's Sec-WebSocket-Key, trimmed):
 * base64(SHA-1(key + GUID)), NUL-terminated in out. 0 or -EINVAL. */
int hp__ws_accept_key(const char *key, size_t keylen, char out[HP_WS_ACCEPT_LEN + 1]);
/** 1 if key is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes. */
int hp__ws_key_valid(const char *key, size_t keylen);

#endif
