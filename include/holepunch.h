/*
 * holepunch.h - public API of libholepunch.
 *
 * Two programs behind two NATs meet in a room of a rendezvous service and get
 * a direct TCP connection to each other, with an end-to-end encrypted channel
 * on it. With a code (hp_config.code, from `holepunch code`) the channel
 * authenticates the peer: only a program that knows the code gets through;
 * without one it is still encrypted, but the peer is only "whoever the
 * rendezvous paired us with" (docs/PROTOCOL.md, "Secure channel"). The
 * library runs on the caller's libuv loop (asynchronous API; example
 * examples/hp_stream.c) or on a private one (hp_connect; examples/hp_pair.c).
 *
 * Error convention: functions return 0 or a negative errno-style value; a call
 * that fails never fires its callback. The outcome of a punch is an hp_status.
 *
 * Signals: the library writes to sockets whose peer may be gone; like every
 * program that does, the caller ignores SIGPIPE (signal(SIGPIPE, SIG_IGN))
 * before the first call, or a vanished peer kills the process instead of
 * ending the connection with an error.
 */
#ifndef HOLEPUNCH_H
#define HOLEPUNCH_H

#include <stddef.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Symbols of the shared library are hidden unless marked here. */
#if defined(__GNUC__)
#define HP_EXPORT __attribute__((visibility("default")))
#else
#define HP_EXPORT
#endif

/** Outcome of a punch; the values are the worker's exit codes. */
typedef enum hp_status {
  HP_STATUS_OK = 0,         /**< direct, authenticated connection */
  HP_STATUS_CONFIG = 2,     /**< bad configuration */
  HP_STATUS_RENDEZVOUS = 3, /**< rendezvous unreachable, refused us, or broke the protocol */
  HP_STATUS_NO_PEER = 4,    /**< no peer within ws_recv_timeout */
  HP_STATUS_NO_DIRECT = 5,  /**< no connection at all: no direct connection within
                                 p2p_connect_timeout, and no relayed one (relay off or failed) */
  HP_STATUS_EXCHANGE = 6,   /**< connected, but the message exchange failed (CLI only) */
  HP_STATUS_AUTH = 7        /**< only peers that do not know the code came, until ws_recv_timeout
                                 (wrong code, or someone else joined the room) */
} hp_status;

/** Settings of one punch. Initialise with hp_config_init(), then override. */
typedef struct hp_config {
  const char *rendezvous_url;    /**< http://, https://, ws:// or wss:// base URL (required) */
  const char *room;              /**< room to meet the peer in; NULL means "default" */
  const char *worker_id;         /**< own id; NULL means generated */
  int internal_tcp_port;         /**< listen + punch port (8082); 0 picks one */
  double ws_open_timeout;        /**< s to open the WebSocket (15) */
  double ws_recv_timeout;        /**< s to wait for the peer (120) */
  double listener_ready_timeout; /**< s for the listener to become ready (15) */
  double p2p_connect_timeout;    /**< s of punching before giving up (30) */
  const char *ca_file;           /**< CA bundle for TLS; NULL means the system store */
  int allow_loopback_candidates; /**< 0 (default): never dial a peer candidate on a loopback
                                      (127/8, ::1) or link-local (169.254/16, fe80::/10) address,
                                      which would reach our own host's services or a cloud
                                      metadata address; 1: dial them (both peers on one host) */
  double relay_after;            /**< s after the peer message to start the relay attempt alongside
                                      punching (5); 0: both at once; negative: never (no relay).
                                      The first channel that authenticates wins */
  const char *code;              /**< the shared code (`holepunch code`), or NULL: no code. With a
                                      code the peer must prove it knows it, and the room is derived
                                      from it unless room is set (then room is used as given) */
  const char *stun_servers; /**< STUN servers asked over TCP from the punch port, "host:port" list
                                 (host: an IP, [IPv6] or a DNS name, resolved on the loop; a name
                                 that does not resolve is a warning and is skipped) separated by
                                 commas or spaces (at most 4); NULL or "" = none */
  int port_mapping;         /**< 1: ask the router for a mapping of the punch port (UPnP-IGD,
                                 NAT-PMP) and offer it as a candidate; 0 (default): do not */
  int low_ttl_syn;          /**< 0 (default): off; 1..32: the first SYN of role "b" to the peer's
                                 public mapping leaves with this IP TTL (enough to leave our NAT,
                                 not to reach the peer's), role "a" starts 10 ms later. Both
                                 workers must set it; only for paths whose routers send no ICMP
                                 Time Exceeded (docs/lab.md) */
} hp_config;

/** Fill cfg with the documented defaults (rendezvous_url NULL). */
HP_EXPORT void hp_config_init(hp_config *cfg);

/** Opaque handle of one punch attempt. */
typedef struct hp_punch hp_punch;

/** Called once when the attempt ends; status is HP_STATUS_OK on success. */
typedef void (*hp_done_cb)(hp_punch *p, hp_status status, void *data);

/**
 * Start a punch on loop. The config strings are copied. On success *out owns
 * the handle (free it with hp_punch_destroy) and cb fires exactly once later,
 * on a loop turn of its own, unless the handle is destroyed first.
 * Returns 0, -EINVAL for a bad config (message in the log), or -errno.
 */
HP_EXPORT int hp_punch_start(uv_loop_t *loop, const hp_config *cfg, hp_done_cb cb, void *data,
                             hp_punch **out);

/**
 * Take the connection as a plain socket (after HP_STATUS_OK): one end of a
 * socketpair (AF_UNIX, blocking mode), owned by the caller from now on (close
 * it). The library pumps the other end to and from the encrypted channel on
 * the handle's loop, so the loop must keep running while the socket is used
 * (also after hp_punch_destroy); shutdown(SHUT_WR) is passed on as the
 * channel's half-close. Later calls, calls before success, or after
 * hp_punch_take_stream, return -1.
 */
HP_EXPORT int hp_punch_take_fd(hp_punch *p);

/* ---- the encrypted channel on the loop ---- */

/** The encrypted channel to the peer: a reliable, ordered byte stream with
 *  half-close and backpressure, on the handle's loop. */
typedef struct hp_stream hp_stream;

typedef struct hp_stream_cbs {
  /** Bytes from the peer (n > 0), valid only during the call. */
  void (*on_data)(hp_stream *s, const unsigned char *p, size_t n, void *data);
  /** The peer finished writing (half-close); at most once. */
  void (*on_eof)(hp_stream *s, void *data);
  /** The stream is dead (err negative errno-style, why a sentence): a
   *  tampered, replayed or truncated record, a reset... Close it next. */
  void (*on_error)(hp_stream *s, int err, const char *why, void *data);
  /** hp_stream_queued fell to 64 KiB after being above 256 KiB. */
  void (*on_drain)(hp_stream *s, void *data);
} hp_stream_cbs;

/**
 * Take the encrypted channel (after HP_STATUS_OK); the caller owns it from
 * now on (hp_stream_close). It works on the loop given to hp_punch_start,
 * also after hp_punch_destroy. NULL before success, after a take, or from an
 * hp_connect handle.
 */
HP_EXPORT hp_stream *hp_punch_take_stream(hp_punch *p);

/** Install callbacks (any may be NULL); reading starts with the first call. */
HP_EXPORT void hp_stream_set_cbs(hp_stream *s, const hp_stream_cbs *cbs, void *data);
/** Queue n bytes (copied). 0; -ENOBUFS past 4 MiB queued (stop writing above
 *  256 KiB and wait for on_drain); -EPIPE after hp_stream_shutdown or on a
 *  dead stream. Never calls a callback from inside. */
HP_EXPORT int hp_stream_write(hp_stream *s, const void *p, size_t n);
/** Bytes accepted and not yet handed to the network. */
HP_EXPORT size_t hp_stream_queued(const hp_stream *s);
/** Half-close: the peer gets on_eof after every queued byte. Idempotent. */
HP_EXPORT int hp_stream_shutdown(hp_stream *s);
/** 1: stop on_data (the peer is slowed down); 0: resume. */
HP_EXPORT void hp_stream_pause(hp_stream *s, int paused);
/** 1 when the peer proved it knows the code, 0 without a code. */
HP_EXPORT int hp_stream_authenticated(const hp_stream *s);
/** Close at once (queued bytes are dropped; shut down and wait for
 *  hp_stream_queued() == 0 first to deliver them). No callback fires after;
 *  memory is freed on a later loop turn. NULL is a no-op. */
HP_EXPORT void hp_stream_close(hp_stream *s);

/** A short name of the current phase ("listening", "discovering", "signaling",
 *  "waiting_peer", "punching", "connected", "failed"). */
HP_EXPORT const char *hp_punch_state(const hp_punch *p);

/** Information about the attempt; strings live as long as the handle. */
typedef struct hp_info {
  const char *own_id;       /**< our id in the room */
  const char *peer_id;      /**< the peer's id ("" before pairing) */
  const char *role;         /**< "a" or "b" ("" before pairing) */
  const char *peer_addr;    /**< "ip:port" of the winning connection, or "" */
  const char *mapped_addr;  /**< our public mapping as the rendezvous saw it, or "" */
  const char *reason;       /**< why it failed, a sentence; "" on success */
  double elapsed_ms;        /**< from receiving the peer to authentication */
  const char *transport;    /**< "direct" or "relayed" once connected, else "" */
  const char *relay_reason; /**< relayed: why the direct connection failed, else "" */
} hp_info;

/** Fill info from p (valid until hp_punch_destroy). p NULL gives empty
 *  strings; info NULL is a no-op. */
HP_EXPORT void hp_punch_info(const hp_punch *p, hp_info *info);

/** Stop the attempt (if running; the callback will not fire) and free it
 *  once its handles closed. Allowed at any time, also from the callback. The
 *  loop must run afterwards for the close callbacks. NULL is a no-op. */
HP_EXPORT void hp_punch_destroy(hp_punch *p);

/**
 * Blocking convenience: runs a private loop until the punch ends.
 * On HP_STATUS_OK *fd is a plain socket (as from hp_punch_take_fd: blocking,
 * the caller closes it), otherwise -1; a library thread pumps it to the
 * encrypted channel until both directions ended (close the fd, or shut it
 * down and read to EOF, before the process exits, so that the last bytes go
 * out). peer_id and reason may be NULL; when given they receive the peer's
 * id and, on failure, a sentence saying why.
 */
HP_EXPORT hp_status hp_connect(const hp_config *cfg, int *fd, char *peer_id, size_t peer_id_len,
                               char *reason, size_t reason_len);

/** The library version, "MAJOR.MINOR.PATCH". */
HP_EXPORT const char *hp_version(void);

#ifdef __cplusplus
}
#endif
#endif
