/*
 * redis_conn.h - one hiredis asynchronous connection on the caller's libuv
 * loop that keeps itself up: it resolves the host name in libuv's thread
 * pool (hiredis 0.14 would block on getaddrinfo), connects without
 * blocking, authenticates and selects the database, times out connects and
 * commands that get no answer, measures round trips, and after any failure
 * reconnects with an exponential backoff. No thread of its own, no blocking
 * call.
 */
#ifndef HP_REDIS_CONN_H
#define HP_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "redisurl.h"
#include "store.h"

struct redisReply;
typedef struct hp__rconn hp__rconn;

/* The answer to one command: r is the reply (an error reply too), or NULL
 * when the command failed without one (timeout, connection lost, closed). */
typedef void (*hp__rconn_reply_cb)(void *arg, struct redisReply *r);

typedef struct hp__rconn_opts {
  const hp__redis_url *url;
  const char *name;        /* for logs: "commands", "pubsub" */
  uint32_t timeout_ms;     /* connect, and answer to each command */
  uint32_t backoff_min_ms; /* first retry after a failure, doubling ... */
  uint32_t backoff_max_ms; /* ... up to this */
  uint32_t ping_ms;        /* PING after this much idle time (0: never) */
  hp__store_stats *stats;  /* round trips, errors, reconnects are counted here */
  /* Connected, AUTH and SELECT sent (their failure drops the connection):
   * the owner sends what it needs before anything else (SCRIPT LOAD,
   * SUBSCRIBE). */
  void (*on_up)(void *owner, hp__rconn *c);
  /* Not connected any more, or a connect failed; why is a sentence. The
   * owner's commands in flight have already been answered with NULL. */
  void (*on_down)(void *owner, const hp__rconn *c, const char *why);
  void *owner;
} hp__rconn_opts;

/** Create and start connecting. o->url and o->stats must outlive c.
 * Returns 0 or -ENOMEM / a libuv error. */
int hp__rconn_create(uv_loop_t *loop, const hp__rconn_opts *o, hp__rconn **out);

/** Send one command. Returns 0 (cb runs exactly once, in a later loop turn)
 * or -EAGAIN when not connected (cb never runs). */
int hp__rconn_cmd(hp__rconn *c, hp__rconn_reply_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen);

/** SUBSCRIBE to channel; cb gets every push of it (subscribe confirmation,
 * messages) and NULL when the connection ends. Returns 0 or -EAGAIN. */
int hp__rconn_subscribe(hp__rconn *c, const char *channel, hp__rconn_reply_cb cb, void *arg);

/** 1 while connected (commands are taken). */
int hp__rconn_up(const hp__rconn *c);

/** Drop the connection in the next loop turn (its commands fail with NULL)
 * and reconnect after the backoff. why goes to on_down. */
void hp__rconn_drop(hp__rconn *c, const char *why);

/** Close for good: commands in flight fail with NULL (in a later turn), no
 * on_up/on_down after this call; done(arg) once everything is freed. */
void hp__rconn_close(hp__rconn *c, void (*done)(void *arg), void *arg);

#endif
