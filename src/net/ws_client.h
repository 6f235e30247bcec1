/*
 * ws_client.h - a WebSocket client on the caller's libuv loop: ws:// and
 * wss:// (RFC 6455 over TCP, or over TLS with OpenSSL through memory BIOs),
 * built from the project's own parts: hp__stream (TCP, bounded write queue),
 * hp__tls (tls_client.h), hp__wsu (the upgrade, http-parser) and hp__ws
 * (frames, wslay; client masking, RFC rules, bounded reassembly).
 *
 * Users: the worker's signaling client (src/lib/signal_client.c: text
 * messages) and a relay client (binary traffic: hp__wsc_send with binary,
 * backpressure below).
 *
 * Lifetime, one state per client (enum wsc_state in ws_client.c):
 *
 *   RESOLVING -> CONNECTING -> TLS (wss only) -> UPGRADING -> OPEN
 *   OPEN --hp__wsc_close--> CLOSING (our close frame sent after what is
 *     queued; waiting for the peer's) --> FINISHING (close_notify, FIN, read
 *     to the peer's FIN) --> end(HP_WSC_END_CLOSED)
 *   OPEN --the peer's close frame--> FINISHING (answered) --> end(PEER_CLOSED)
 *   any --failure, timeout, EOF or reset without a close frame--> ENDING
 *     (transport closed) --> end(FAILED / DROPPED)
 *   any --hp__wsc_free--> FREED: no callback any more; the memory goes in
 *     the last handle's close callback (libuv's close rule).
 *
 * Callbacks run from loop callbacks only (reads, timers, connects), never
 * from inside an hp__wsc_* call; end() is delivered from the client's timer
 * and exactly once (unless hp__wsc_free came first). The owner may call any
 * hp__wsc_* function, hp__wsc_free included, from inside any callback.
 *
 * Bounds: the open timeout covers resolve, connect, TLS and the upgrade
 * response (its head capped at HP_WSU_HEAD_MAX); the polite close waits for
 * the peer at most close_bound_ms; a message is reassembled up to
 * max_message bytes in at most max_fragments frames; the write queue holds
 * at most max_queued bytes (a send beyond it fails with -ENOBUFS and sends
 * nothing).
 *
 * Backpressure (a relay): hp__wsc_queued() is the bytes not yet taken by the
 * kernel; cbs->drained fires when that queue empties; hp__wsc_pause() stops
 * reading from the socket (and so the peer, through TCP flow control) until
 * resumed. With opts.frames, data arrives as chunks (cbs->chunk) as they are
 * read, so a relay forwards without holding whole messages.
 */
#ifndef HP_NET_WS_CLIENT_H
#define HP_NET_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ws.h"

#define HP_WSC_REASON_MAX 1400

typedef struct hp__wsc hp__wsc;

/* How a connection ended. */
typedef enum hp__wsc_end_kind {
  HP_WSC_END_CLOSED = 0,  /* our hp__wsc_close completed (answered, or its bound expired) */
  HP_WSC_END_PEER_CLOSED, /* the server sent a close frame (code; answered) */
  HP_WSC_END_DROPPED,     /* the connection ended without a close frame (EOF, reset) */
  HP_WSC_END_FAILED       /* connect, TLS, upgrade, timeout, a protocol or limit violation */
} hp__wsc_end_kind;

typedef struct hp__wsc_end {
  hp__wsc_end_kind kind;
  int opened;          /* the upgrade had completed */
  uint16_t code;       /* PEER_CLOSED: the server's close code (1005: none given) */
  hp__ws_fail ws_fail; /* FAILED by the server's frames: which limit or rule, else 0 */
  int err;             /* DROPPED or a transport failure: -errno (0: orderly EOF) */
  const char *reason;  /* a sentence, never NULL (names the URL); valid during end() */
} hp__wsc_end;

typedef struct hp__wsc_cbs {
  /** The upgrade succeeded: sending is possible now. */
  void (*open)(void *arg);
  /** One complete message (text: binary == 0), at most max_message bytes. */
  void (*message)(void *arg, int binary, const uint8_t *data, size_t len);
  /** opts.frames only, instead of message: a piece of a data message as it
   * arrives, without reassembly (first: its first piece; fin: its last). */
  void (*chunk)(void *arg, int binary, int first, int fin, const uint8_t *data, size_t len);
  /** The write queue became empty (optional, for backpressure). */
  void (*drained)(void *arg);
  /** Optional: a pong arrived with its payload (at most 125 bytes), for
   * round-trip and clock measurement (hp__wsc_ping_data). */
  void (*pong)(void *arg, const uint8_t *data, size_t len);
  /** The connection is over (see hp__wsc_end); no callback follows. The
   * owner still calls hp__wsc_free (it may do so from here). */
  void (*end)(void *arg, const hp__wsc_end *e);
} hp__wsc_cbs;

typedef struct hp__wsc_opts {
  const char *host;         /* name or IP (IPv6 without brackets) */
  int port;                 /* 1..65535 */
  int tls;                  /* wss:// */
  const char *path;         /* "/ws", with the query if any */
  const char *ca_file;      /* wss: CA bundle; NULL or "": the system store */
  const char *user_agent;   /* NULL: none */
  uint64_t open_timeout_ms; /* 0: 15 s */
  uint64_t close_bound_ms;  /* 0: 2 s */
  size_t max_message;       /* 0: 65536 */
  unsigned max_fragments;   /* 0: 64 */
  size_t max_queued;        /* 0: 1 MiB */
  hp__ws_env *env;          /* shared frame contexts (many clients on one loop); NULL: own */
  int frames;               /* 1: data as chunks (cbs->chunk), no reassembly (a relay) */
} hp__wsc_opts;

/** Start connecting. 0, or -EINVAL (bad options; the sentence in err) /
 * -ENOMEM; on failure nothing is left open and no callback fires. */
int hp__wsc_open(uv_loop_t *loop, const hp__wsc_opts *o, const hp__wsc_cbs *cbs, void *arg,
                 hp__wsc **out, char *err, size_t errlen);

/** Send one message as one frame (state OPEN). 0, -ENOTCONN (not open, or
 * closing), -ENOBUFS (the queue would exceed max_queued; nothing sent), or
 * -errno (the connection then ends with end(FAILED)). */
int hp__wsc_send(hp__wsc *c, int binary, const void *data, size_t len);
/** Send a ping (state OPEN); its pong goes to cbs->pong if set. */
int hp__wsc_ping(hp__wsc *c);
/** Send a ping carrying data (at most 125 bytes; state OPEN). */
int hp__wsc_ping_data(hp__wsc *c, const void *data, size_t len);

/** Bytes queued for the socket (TLS records included). */
size_t hp__wsc_queued(const hp__wsc *c);
/** Stop (1) or resume (0) reading from the socket. */
int hp__wsc_pause(hp__wsc *c, int paused);

/** Close politely: after what is queued, a close frame with code and a short
 * ASCII reason (NULL: none), then wait for the server's close (bounded by
 * close_bound_ms), close_notify, FIN; then end(HP_WSC_END_CLOSED). Not open
 * yet: the attempt is abandoned and end(CLOSED) follows on the next turn.
 * After end() was delivered: a no-op. */
void hp__wsc_close(hp__wsc *c, uint16_t code, const char *reason);

/** Forget the client: no callback fires any more; an open connection is
 * dropped (no close frame: use hp__wsc_close first for that); the memory
 * goes once libuv has closed the handles. NULL is a no-op. */
void hp__wsc_free(hp__wsc *c);

/** "ws://host[:port]/path" as given, for messages. */
const char *hp__wsc_url(const hp__wsc *c);
/** 1 while the connection is OPEN (sends possible). */
int hp__wsc_is_open(const hp__wsc *c);

#endif
