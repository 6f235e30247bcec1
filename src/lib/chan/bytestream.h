/*
 * bytestream.h - a reliable, ordered byte stream to the peer, on the libuv
 * loop, with half-close and backpressure.
 *
 * One interface for every layer that carries bytes between the two workers,
 * so each layer stacks on any other:
 *   carriers   tcp.c (a punched TCP socket), relay client (a relay WebSocket)
 *   channel    secure.c (handshake + records over a carrier, itself an hp_bs)
 *   users      mux (streams for forward/expose), pipe, greet
 *
 * Rules every implementation keeps:
 * - write() copies the bytes; it never calls a callback from inside itself.
 * - Callbacks run from the loop. After on_error, or after close(), no further
 *   callback fires. close() is allowed at any time, also from a callback; the
 *   memory is freed later (libuv close rule), never touch s after close().
 * - on_data's bytes are valid only during the call.
 * - on_eof: the peer half-closed (it writes no more); we may go on writing.
 * - Backpressure: queued() grows while the peer (or the network) is slower
 *   than the writer. A writer stops at HP_BS_HIGH_WATER and resumes on
 *   on_drain (fired once queued() fell to HP_BS_LOW_WATER or below after
 *   having been above HP_BS_HIGH_WATER). write() refuses with -ENOBUFS above
 *   HP_BS_HARD_CAP, so a writer that ignores backpressure fails instead of
 *   growing memory without bound.
 * - pause(s, 1) stops on_data until pause(s, 0) (the reader's backpressure:
 *   a stacked layer pauses its carrier while its own peer-side queue is full).
 */
#ifndef HP_BYTESTREAM_H
#define HP_BYTESTREAM_H
#include <stddef.h>
#include <stdint.h>

#define HP_BS_LOW_WATER (64u * 1024u)
#define HP_BS_HIGH_WATER (256u * 1024u)
#define HP_BS_HARD_CAP (4u * 1024u * 1024u)

typedef struct hp_bs hp_bs;

typedef struct hp_bs_cbs {
  /** Bytes from the peer (n > 0). */
  void (*on_data)(hp_bs *s, const uint8_t *p, size_t n, void *ud);
  /** The peer finished writing (half-close). Fires at most once. */
  void (*on_eof)(hp_bs *s, void *ud);
  /** The stream is dead: err is a negative errno-style value, why a short
   *  sentence for the log. Call close() next. Fires at most once. */
  void (*on_error)(hp_bs *s, int err, const char *why, void *ud);
  /** queued() fell to HP_BS_LOW_WATER after being above HP_BS_HIGH_WATER. */
  void (*on_drain)(hp_bs *s, void *ud);
} hp_bs_cbs;

typedef struct hp_bs_ops {
  /** Install the callbacks (any may be NULL) and their user data; reading
   *  starts with the first set_cbs. */
  void (*set_cbs)(hp_bs *s, const hp_bs_cbs *cbs, void *ud);
  /** Queue n bytes (copied). 0, -ENOBUFS over HP_BS_HARD_CAP, -EPIPE after
   *  shutdown() or on a dead stream. */
  int (*write)(hp_bs *s, const uint8_t *p, size_t n);
  /** Bytes accepted by write() and not yet handed to the layer below. */
  size_t (*queued)(const hp_bs *s);
  /** Half-close: the peer gets on_eof after every queued byte. Idempotent. */
  int (*shutdown)(hp_bs *s);
  /** 1: stop on_data; 0: resume. */
  void (*pause)(hp_bs *s, int paused);
  /** Tear down at once (queued bytes are dropped); frees s later. */
  void (*close)(hp_bs *s);
  /** Short name for logs: "tcp", "secure", "relay". */
  const char *name;
} hp_bs_ops;

/** Every implementation embeds this as its first member. */
struct hp_bs {
  const hp_bs_ops *ops;
};

static inline void hp_bs_set_cbs(hp_bs *s, const hp_bs_cbs *cbs, void *ud) {
  s->ops->set_cbs(s, cbs, ud);
}
static inline int hp_bs_write(hp_bs *s, const uint8_t *p, size_t n) {
  return s->ops->write(s, p, n);
}
static inline size_t hp_bs_queued(const hp_bs *s) {
  return s->ops->queued(s);
}
static inline int hp_bs_shutdown(hp_bs *s) {
  return s->ops->shutdown(s);
}
static inline void hp_bs_pause(hp_bs *s, int paused) {
  s->ops->pause(s, paused);
}
static inline void hp_bs_close(hp_bs *s) {
  s->ops->close(s);
}

#endif
