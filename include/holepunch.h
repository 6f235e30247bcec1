/*
 * holepunch.h - public API of libholepunch.
 *
 * Two programs behind two NATs meet in a room of a rendezvous service and get
 * a direct, authenticated TCP connection to each other. The library runs on
 * the caller's libuv loop (asynchronous API) or on a private one (hp_connect).
 *
 * Error convention: functions return 0 or a negative errno-style value; a call
 * that fails never fires its callback. The outcome of a punch is an hp_status.
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
  HP_STATUS_NO_DIRECT = 5,  /**< no direct connection within p2p_connect_timeout */
  HP_STATUS_EXCHANGE = 6    /**< connected, but the message exchange failed (CLI only) */
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
  const char *stun_servers; /**< STUN servers asked over TCP from the punch port, "ip:port" list
                                 separated by commas or spaces (at most 4); NULL or "" = none */
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
 * Take the connected socket (after HP_STATUS_OK): a TCP socket in blocking
 * mode, owned by the caller from now on (close it). The handshake lines were
 * read byte-exactly, so every byte the peer sent after them is still in the
 * socket. Later calls, or calls before success, return -1. A socket not
 * taken is closed by hp_punch_destroy.
 */
HP_EXPORT int hp_punch_take_fd(hp_punch *p);

/** A short name of the current phase ("listening", "discovering", "signaling",
 *  "waiting_peer", "punching", "connected", "failed"). */
HP_EXPORT const char *hp_punch_state(const hp_punch *p);

/** Information about the attempt; strings live as long as the handle. */
typedef struct hp_info {
  const char *own_id;      /**< our id in the room */
  const char *peer_id;     /**< the peer's id ("" before pairing) */
  const char *role;        /**< "a" or "b" ("" before pairing) */
  const char *peer_addr;   /**< "ip:port" of the winning connection, or "" */
  const char *mapped_addr; /**< our public mapping as the rendezvous saw it, or "" */
  const char *reason;      /**< why it failed, a sentence; "" on success */
  double elapsed_ms;       /**< from receiving the peer to authentication */
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
 * On HP_STATUS_OK *fd is the connected socket (blocking mode; the caller
 * closes it), otherwise -1. peer_id and reason may be NULL; when given they
 * receive the peer's id and, on failure, a sentence saying why.
 */
HP_EXPORT hp_status hp_connect(const hp_config *cfg, int *fd, char *peer_id, size_t peer_id_len,
                               char *reason, size_t reason_len);

/** The library version, "MAJOR.MINOR.PATCH". */
HP_EXPORT const char *hp_version(void);

#ifdef __cplusplus
}
#endif
#endif
