/*
 * server.h - the rendezvous service on one libuv loop: HTTP/1.1 and
 * WebSocket on our own small stack (src/net: listener, http1 on
 * http-parser, ws on wslay), routes /healthz, /whoami, /metrics, /ws,
 * signaling with pairing through the room store (store.h: memory or Redis), and the
 * metrics.
 *
 * Lifecycle: create (listens at once) -> the caller runs the loop ->
 * shutdown (stop accepting, close every WebSocket with 1001 "going away",
 * drop the rest when they are gone or after a timeout, then call done) ->
 * the loop runs dry -> destroy. After a failed create: the loop runs dry ->
 * destroy.
 */
#ifndef HP_RDV_SERVER_H
#define HP_RDV_SERVER_H

#include <stddef.h>
#include <uv.h>

typedef struct hp__rdv_opts {
  const char *bind;            /* "0.0.0.0", "::", or one local address */
  int port;                    /* 0: the kernel picks one (see hp__rdv_port) */
  int trust_proxy;             /* take the client address from X-Forwarded-For */
  int max_connections;         /* client TCP connections, HTTP and WebSocket */
  int max_connections_per_ip;  /* of them from one client address */
  int max_hellos_per_minute;   /* hellos from one client address */
  size_t max_message_bytes;    /* largest signaling message, reassembled */
  size_t input_budget;         /* bytes of input buffered by all connections */
  double hello_timeout;        /* s for a new WebSocket to send hello */
  double http_timeout;         /* s to send a complete HTTP request */
  double request_line_timeout; /* s to send the request line */
  double ping_interval;        /* s of silence before the server pings */
  double idle_timeout;         /* s of silence (no pong either) before hang-up */
  int observer_port;           /* a second port with the same routes (diagnose); 0: none */
  /* Where the rooms live (docs/ARCHITECTURE.md, "Rooms in Redis"). */
  const struct hp__redis_url *redis; /* NULL: in this process's memory */
  const char *instance_id;           /* this instance's name in Redis; NULL or "": random */
  const char *instance_url;          /* this instance's public base URL, or NULL / "": none; the
                                        waiter's is peer.relay_url */
  double redis_ttl;                  /* s: lease of a worker in Redis */
  double redis_timeout;              /* s: connect and command timeout */
  int relay;                         /* serve GET /relay */
  uint64_t relay_rate;               /* bytes/s per relayed session, 0: no limit */
  uint64_t relay_max_bytes;          /* bytes per relayed session, 0: no limit */
  int relay_max_sessions;            /* relayed sessions open at once */
  double relay_idle_timeout;         /* s without a relayed byte before the session is closed */
  double relay_session_ttl;          /* s after peer within which both workers must join */
} hp__rdv_opts;

typedef struct hp__rdv hp__rdv;

/** Create the server on loop and start listening; "listening" is logged once
 * the socket listens. Returns 0 or a negative errno (the reason is logged
 * at ERROR). Also on failure *out may be set: the caller then runs the loop
 * dry and calls hp__rdv_destroy, as after a shutdown. */
int hp__rdv_create(uv_loop_t *loop, const hp__rdv_opts *opts, hp__rdv **out);

/** The TCP port the server listens on. */
int hp__rdv_port(const hp__rdv *s);

/**
 * Begin a graceful shutdown: refuse new connections, send every WebSocket a
 * close 1001, and drop every connection once they are all closed or after
 * timeout seconds, whichever comes first; then call done(arg) from the loop.
 * Further calls are ignored.
 */
void hp__rdv_shutdown(hp__rdv *s, double timeout, void (*done)(void *arg), void *arg);

/** Free everything, once the loop has run dry after done (or after a failed
 * create). Returns 0, or -EBUSY when a connection is still open. NULL is a
 * no-op. */
int hp__rdv_destroy(hp__rdv *s);

#endif
