/*
 * stream.h - a TCP byte transport on libuv with a bounded write queue and an
 * orderly close. The owner embeds hp__stream in its connection object (the
 * libuv close rule: that memory is freed only from cb->closed).
 *
 * Writes go out at once when the socket takes them (uv_try_write: no extra
 * loop turn, no epoll change); what it does not take is copied into one
 * uv_write request. The queue is bounded (max_queued bytes): a peer that
 * does not read gets -ENOBUFS, not our memory. hp__stream_queued() and the
 * drained callback let an owner apply backpressure (stop reading a source
 * while its destination's queue is full).
 *
 * Closing: hp__stream_finish() sends what is queued, then a FIN, then reads
 * and drops until the peer's FIN (so that unread input never turns our
 * close into a reset that would destroy the last response at the peer);
 * the owner bounds that with its own timer and hp__stream_close().
 */
#ifndef HP_NET_STREAM_H
#define HP_NET_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

typedef enum hp__stream_state {
  HP_STREAM_OPEN = 0,
  HP_STREAM_FLUSHING, /* finish: waiting for the queue to drain */
  HP_STREAM_SHUTDOWN, /* FIN sent: reading to the peer's FIN */
  HP_STREAM_CLOSING,  /* uv_close called */
  HP_STREAM_CLOSED    /* closed callback ran */
} hp__stream_state;

typedef struct hp__stream hp__stream;

typedef struct hp__stream_cb {
  /** Bytes read (state OPEN only). */
  void (*read)(hp__stream *s, const uint8_t *data, size_t len);
  /** The peer closed (err 0) or the connection failed (-errno); state OPEN
   * only. The owner decides what to do (usually hp__stream_close). */
  void (*eof)(hp__stream *s, int err);
  /** The write queue became empty (optional). */
  void (*drained)(hp__stream *s);
  /** The handle is closed: the owner may free the memory now. */
  void (*closed)(hp__stream *s);
} hp__stream_cb;

struct hp__stream {
  uv_tcp_t tcp;
  const hp__stream_cb *cb;
  void *data; /* the owner's */
  size_t queued, max_queued;
  uint8_t state;
  uint8_t reading;
};

/** Init the handle on loop (state OPEN, not reading). 0 or -errno. */
int hp__stream_init(hp__stream *s, uv_loop_t *loop, const hp__stream_cb *cb, size_t max_queued);
/** Start or stop delivering reads (backpressure). */
int hp__stream_read(hp__stream *s, int on);
/** Write iov after what is queued. 0, -EPIPE (not open), -ENOBUFS (queue
 * full), or another -errno. */
int hp__stream_writev(hp__stream *s, const struct iovec *iov, int iovcnt);
int hp__stream_write(hp__stream *s, const void *data, size_t len);
/** Bytes waiting in the queue. */
size_t hp__stream_queued(const hp__stream *s);
/** Orderly close: flush, FIN, read to the peer's FIN, close. */
void hp__stream_finish(hp__stream *s);
/** Close now (queued bytes are dropped). Idempotent. */
void hp__stream_close(hp__stream *s);

/** The peer address, an IPv4-mapped IPv6 address turned into IPv4. */
int hp__stream_peer(const hp__stream *s, struct sockaddr_storage *ss);

#endif
