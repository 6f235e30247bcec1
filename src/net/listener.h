/*
 * listener.h - a TCP listener on libuv with admission control: a global
 * limit of open connections and a limit per client address. Every
 * connection is accepted (never left in the kernel's queue to be retried in
 * a loop); one over a limit is handed to the owner's refused callback to be
 * answered at once (a short 503) and closed. Refusals are logged at most
 * once per interval, with their count. When the process runs out of
 * descriptors, libuv's reserve descriptor accepts and closes the waiting
 * connections instead of spinning.
 */
#ifndef HP_NET_LISTENER_H
#define HP_NET_LISTENER_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "iptable.h"
#include "stream.h"

typedef enum hp__refusal {
  HP_REFUSE_GLOBAL = 0, /* MAX_CONNECTIONS */
  HP_REFUSE_PER_IP,     /* MAX_CONNECTIONS_PER_IP */
  HP_REFUSE_DRAINING,   /* shutting down */
  HP_REFUSE_COUNT
} hp__refusal;

typedef struct hp__listener hp__listener;

typedef struct hp__listener_ops {
  /** Memory for a new connection: an hp__stream the owner embeds. NULL:
   * no memory (the connection is then accepted and closed by libuv's
   * reserve-descriptor logic on the next attempt). */
  hp__stream *(*alloc)(void *arg);
  /** The stream is initialised and accepted (not reading yet); peer is its
   * TCP peer (IPv4-mapped turned into IPv4), ent its address' entry. */
  void (*accepted)(void *arg, hp__stream *s, const struct sockaddr_storage *peer, hp__ipent *ent);
  /** The same, for a connection over a limit: answer and close it. */
  void (*refused)(void *arg, hp__stream *s, hp__refusal why);
} hp__listener_ops;

typedef struct hp__listener_opts {
  const char *bind; /* "0.0.0.0", "::" (dual stack) or one address */
  int port;         /* 0: any */
  unsigned max_connections;
  unsigned max_per_ip;            /* 0: no limit per TCP peer (e.g. behind a proxy) */
  double hello_rate, hello_burst; /* the table's bucket parameters (for sweeping) */
  const char *component;          /* for log lines */
} hp__listener_opts;

/** Bind and listen; logs why not in plain words (port in use, address not
 * local). 0 or -errno. On failure *out is NULL and nothing is left open. */
int hp__listener_create(uv_loop_t *loop, const hp__listener_opts *o, hp__iptable *ips,
                        const hp__listener_ops *ops, void *arg, hp__listener **out);
/** The port it listens on. */
int hp__listener_port(const hp__listener *l);
/** Stop accepting: close the listening socket. Connections already
 * accepted may still call hp__listener_release. Idempotent. */
void hp__listener_close(hp__listener *l);
/** Close everything and free the listener from the close callbacks, once
 * no accepted connection is left. NULL is a no-op. */
void hp__listener_destroy(hp__listener *l);
/** An accepted connection closed: its slot and its address' slot are free. */
void hp__listener_release(hp__listener *l, hp__ipent *ent);
/** Connections admitted and open now. */
unsigned hp__listener_open(const hp__listener *l);
/** Count one refusal made elsewhere (e.g. per forwarded address), for the
 * rate-limited log line. */
void hp__listener_note_refusal(hp__listener *l, hp__refusal why);

#endif
