/*
 * rooms_redis.h - the Redis backend of the room store (see store.h): the
 * rooms of several rendezvous instances in one Redis, with hiredis on the
 * caller's libuv loop. docs/ARCHITECTURE.md ("Rooms in Redis") has the data
 * model and the scripts' rules.
 */
#ifndef HP_ROOMS_REDIS_H
#define HP_ROOMS_REDIS_H

#include <stdint.h>
#include <uv.h>

#include "redisurl.h"
#include "store.h"

#define HP_STORE_REDIS_PREFIX_MAX 32

typedef struct hp__store_redis_opts {
  const hp__redis_url *url; /* copied */
  const char *instance;     /* this instance's name; NULL or "": random */
  const char *prefix;       /* of every key and channel; NULL: "hp:" */
  uint32_t ttl_ms;          /* lease of a member, renewed every third of it; 0: 30000 */
  uint32_t timeout_ms;      /* connect and command timeout; 0: 1000 */
  uint32_t backoff_min_ms;  /* reconnect backoff; 0: 100 ... */
  uint32_t backoff_max_ms;  /* ... doubling up to this; 0: 5000 */
} hp__store_redis_opts;

/** Create the store and start connecting (it is unavailable until both
 * connections are up and the scripts loaded: on_status(1) says so).
 * Returns 0, -EINVAL (bad instance or prefix) or -ENOMEM. */
int hp__store_redis_create(uv_loop_t *loop, const hp__store_redis_opts *o, const hp__store_cbs *cb,
                           void *ctx, hp__store **out);

#endif
