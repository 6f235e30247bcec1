/*
 * store.h - where the rendezvous keeps its rooms: one function table, two
 * backends.
 *
 *   memory (rooms_mem.c)   one process; answers inside the call
 *   Redis  (rooms_redis.c) several instances share their rooms; answers a
 *                          round trip later, on the same libuv loop
 *
 * The pairing rules are those of docs/PROTOCOL.md section 4: the first two
 * members of a room are paired, the one that waited is role "a", the
 * newcomer role "b", both get the same fresh session; a room never holds
 * more than one waiting member; an id is taken while its connection lives,
 * judged per room.
 *
 * Lifetimes. The caller names each member with a ref, a plain number it
 * chooses (e.g. its connection slot and a generation); the store never
 * dereferences it, only hands it back in callbacks, so an answer that
 * arrives after the connection closed finds a stale ref and is dropped by
 * the caller, never a freed pointer. The store names each member with a
 * mid, given by join before any callback. After hp__store_leave(mid) no
 * callback for that member is ever made; leave is always allowed (also
 * while the join is in flight, and for a mid already forgotten).
 *
 * Errors follow libuv: a call that fails (negative errno) never fires its
 * callback.
 */
#ifndef HP_STORE_H
#define HP_STORE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define HP_STORE_PAYLOAD_MAX 4096 /* a member's payload: observed address + candidates, encoded */
#define HP_STORE_INSTANCE_MAX 32  /* an instance's name: 1..32 of [A-Za-z0-9._-] */
#define HP_STORE_RTT_BUCKETS 12   /* see hp__store_rtt_bounds */

typedef uint64_t hp__store_ref; /* the caller's name of a member; never dereferenced */
typedef uint64_t hp__store_mid; /* the store's name of a member; 0 is never one */

typedef enum hp__store_verdict {
  HP_STORE_WAITING = 0, /* alone in its room; on_paired follows when a peer comes */
  HP_STORE_PAIRED,      /* paired at once with the member that waited: this one is "b" */
  HP_STORE_DUPLICATE,   /* the id is taken in this room; nothing registered */
  HP_STORE_UNAVAILABLE  /* the backend failed during the call; nothing registered */
} hp__store_verdict;

/* What a member learns when it is paired. Valid during the callback only. */
typedef struct hp__store_pairing {
  char role; /* 'a' (it waited) or 'b' (it completed the pair) */
  char session[HP_SESSION_HEX + 1];
  char peer_id[HP_ID_MAX + 1];
  char peer_instance[HP_STORE_INSTANCE_MAX + 1]; /* the instance holding the peer */
  const void *peer_payload;                      /* the peer's payload from its join */
  size_t peer_payload_len;
} hp__store_pairing;

typedef struct hp__store_cbs {
  /* The answer to a join: once per join that returned 0, unless leave(mid)
   * came first. p is set for HP_STORE_PAIRED only. The memory backend calls
   * it before hp__store_join returns; the Redis one in a later loop turn.
   * After DUPLICATE or UNAVAILABLE the mid is already forgotten. */
  void (*on_join)(void *ctx, hp__store_ref ref, hp__store_mid mid, hp__store_verdict v,
                  const hp__store_pairing *p);
  /* A member that waited has been paired by a newcomer, of this instance or
   * of another one. At most once per member. */
  void (*on_paired)(void *ctx, hp__store_ref ref, hp__store_mid mid, const hp__store_pairing *p);
  /* The store lost a member and could not take it back (after Redis lost its
   * data, another worker took the id). The mid is forgotten; the caller
   * should tell the worker (error "unavailable") and close. May be NULL. */
  void (*on_lost)(void *ctx, hp__store_ref ref, hp__store_mid mid);
  /* The backend became available (1) or unavailable (0); why is a sentence.
   * The memory backend never calls it. May be NULL. */
  void (*on_status)(void *ctx, int available, const char *why);
} hp__store_cbs;

/* Counters for /metrics and /healthz (see hp__store_stats_format). */
typedef struct hp__store_stats {
  int available;            /* joins are taken now */
  uint64_t members;         /* members of this instance (waiting + paired + joining) */
  uint64_t waiting;         /* members of this instance waiting alone in their room */
  uint64_t pairings;        /* pairs completed by joins of this instance */
  uint64_t remote_pairings; /* members of this instance paired by another instance */
  uint64_t lost;            /* on_lost calls */
  /* backend round trips (Redis only) */
  uint64_t requests;                         /* commands answered or failed */
  uint64_t errors;                           /* failed: error reply, timeout, disconnect */
  uint64_t timeouts;                         /* of which: no answer within the timeout */
  uint64_t reconnects;                       /* connections made after the first */
  uint64_t rtt_count;                        /* answered commands */
  double rtt_sum;                            /* their round-trip times, seconds */
  uint64_t rtt_bucket[HP_STORE_RTT_BUCKETS]; /* per bound, not cumulative */
  uint64_t rtt_overflow;                     /* above the last bound */
} hp__store_stats;

typedef struct hp__store hp__store;

typedef struct hp__store_ops {
  const char *name; /* "memory", "redis" */
  int (*join)(hp__store *st, hp__store_ref ref, const char *room, const char *id,
              const void *payload, size_t len, hp__store_mid *mid);
  void (*leave)(hp__store *st, hp__store_mid mid);
  void (*refresh)(hp__store *st);
  void (*stats)(const hp__store *st, hp__store_stats *out);
  void (*close)(hp__store *st, void (*done)(void *arg), void *arg);
  /* NULL: not offered (Redis). */
  int (*requeue)(hp__store *st, hp__store_mid mid, const void *payload, size_t len);
} hp__store_ops;

/* The part every backend starts with. */
struct hp__store {
  const hp__store_ops *ops;
  hp__store_cbs cb;
  void *ctx;
  char instance[HP_STORE_INSTANCE_MAX + 1];
  uint8_t rnd[512]; /* random bytes for sessions, drawn 32 sessions at a time */
  size_t rnd_used;
};

/**
 * Register a member: id in room (valid names, see docs/PROTOCOL.md), with
 * payload (at most HP_STORE_PAYLOAD_MAX bytes; the peer gets it back in its
 * pairing). Returns 0 and sets *mid, and on_join follows; or -EINVAL (bad
 * names or payload), -ENOMEM, -EAGAIN (the backend is unavailable: fail
 * fast, refuse the worker with "unavailable").
 */
static inline int hp__store_join(hp__store *st, hp__store_ref ref, const char *room, const char *id,
                                 const void *payload, size_t len, hp__store_mid *mid) {
  return st->ops->join(st, ref, room, id, payload, len, mid);
}

/** Forget a member (its connection closed): out of its room, its id free. */
static inline void hp__store_leave(hp__store *st, hp__store_mid mid) {
  st->ops->leave(st, mid);
}

/**
 * Undo a pairing for one side: the paired member mid waits in its room
 * again, with payload (its peer could not be told). Only a backend that
 * answers inside hp__store_join offers it (memory): there both sides of a
 * pairing are in one process and the service can still take the pairing
 * back in the loop turn that made it. Across instances the waiter's
 * instance tells its worker before the newcomer's knows anything, so there
 * is nothing to undo. Returns 0, -ENOTSUP (not offered), -EBUSY (another
 * member waits there now), -EINVAL (mid is not paired), -ENOMEM.
 */
static inline int hp__store_requeue(hp__store *st, hp__store_mid mid, const void *payload,
                                    size_t len) {
  return st->ops->requeue ? st->ops->requeue(st, mid, payload, len) : -ENOTSUP;
}

/** Extend the lease of every member of this instance now. The Redis backend
 * does it by itself every third of its TTL; the memory one needs none. */
static inline void hp__store_refresh(hp__store *st) {
  st->ops->refresh(st);
}

static inline void hp__store_stats_get(const hp__store *st, hp__store_stats *out) {
  st->ops->stats(st, out);
}

/** Stop: no callback after this call (done excepted). done(arg) runs once
 * every handle is closed (the memory backend: before close returns); the
 * store is freed then. Members are not removed from Redis one by one: the
 * caller leaves them before (graceful shutdown) or their TTL does. */
static inline void hp__store_close(hp__store *st, void (*done)(void *arg), void *arg) {
  st->ops->close(st, done, arg);
}

/* ---- shared by the backends (store.c) ---- */

/** Fill the common part. instance NULL or "": a random name. Returns 0 or
 * -EINVAL (a bad instance name). */
int hp__store_base_init(hp__store *st, const hp__store_ops *ops, const hp__store_cbs *cb, void *ctx,
                        const char *instance);

/** A fresh session: 32 lowercase hex digits of getrandom(2). Returns 0 or
 * -errno. */
int hp__store_new_session(hp__store *st, char out[HP_SESSION_HEX + 1]);

/** 1 if s is a valid instance name. */
int hp__store_valid_instance(const char *s);

/* A table of members by mid: a slot index and the slot's generation, so
 * that a mid of a freed member never finds the slot's next tenant. */
typedef struct hp__slot {
  void *p;
  uint32_t gen;
  uint32_t next_free; /* index + 1 of the next free slot, 0: none */
} hp__slot;

typedef struct hp__slots {
  hp__slot *s;
  uint32_t n, cap; /* used prefix, allocated */
  uint32_t free_head;
  uint32_t count; /* occupied */
} hp__slots;

/** Put p in a free slot; *mid names it. Returns 0 or -ENOMEM. */
int hp__slots_put(hp__slots *t, void *p, hp__store_mid *mid);
/** The pointer of mid, or NULL if it was deleted (or never was). */
void *hp__slots_get(const hp__slots *t, hp__store_mid mid);
/** Free the slot of mid (no-op for a stale mid). */
void hp__slots_del(hp__slots *t, hp__store_mid mid);
/** Free the table (not the pointers). */
void hp__slots_free(hp__slots *t);

/** The upper bounds of the round-trip buckets, in seconds. */
extern const double hp__store_rtt_bounds[HP_STORE_RTT_BUCKETS];

/** Count one round trip of seconds s into stats. */
void hp__store_stats_rtt(hp__store_stats *stats, double s);

/** Append the Prometheus text of stats (holepunch_store_*) to buf. Returns
 * the length written (NUL-terminated), or -ENOSPC. */
int hp__store_stats_format(const hp__store_stats *stats, const char *backend, char *buf,
                           size_t cap);

#endif
