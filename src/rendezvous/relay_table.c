/*
 * relay_table.c - the relay's session table and limits (see relay_table.h).
 *
 * Sessions are 128 random bits drawn by the service, so the hash of a key is
 * a keyed mix of its first 16 hex digits: a client can name any session in a
 * lookup, but cannot choose which keys are in the table. Chains are short;
 * the bucket array doubles when the table holds more entries than buckets.
 *
 * Entries nobody holds (REGISTERED, ENDED) sit in a queue in the order they
 * expire (every entry gets the same ttl, so that is insertion order; an
 * ENDED one keeps its first deadline and may sit behind a later one: it is
 * dropped at most one ttl late), so expiry and the eviction of the oldest
 * entry at max_entries are O(1) per entry.
 */
#include "relay_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay_msg.h"

#define BUCKETS_MIN 256u
#define BURST_MIN 16384.0  /* bytes: the smallest bucket (a rate of a few bytes/s still moves) */
#define BURST_SECONDS 0.25 /* the bucket holds this much time's worth of bytes */

struct hp__relay_table {
  hp__relay_limits lim;
  uint64_t seed;
  hp__relay_sess **b;
  size_t nb, count;
  unsigned open;
  hp__relay_sess *qhead, *qtail;
};

static const char *const refusal_names[HP_RELAY_REFUSE_COUNT] = {
    [HP_RELAY_REFUSE_UNKNOWN] = "unknown_session", [HP_RELAY_REFUSE_NOT_IN] = "not_in_session",
    [HP_RELAY_REFUSE_IN_USE] = "session_in_use",   [HP_RELAY_REFUSE_USED] = "session_used",
    [HP_RELAY_REFUSE_FULL] = "relay_full",
};

const char *hp__relay_refusal_name(hp__relay_refusal r) {
  return (unsigned)r < HP_RELAY_REFUSE_COUNT ? refusal_names[r] : "unknown_session";
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* session is valid (32 lowercase hex digits). */
static uint32_t hash_of(const hp__relay_table *t, const char *session) {
  uint64_t v = 0;

  for (int i = 0; i < 16; i++) {
    char c = session[i];
    v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return (uint32_t)mix64(v ^ t->seed);
}

hp__relay_table *hp__relay_table_create(const hp__relay_limits *lim, uint32_t seed) {
  hp__relay_table *t = calloc(1, sizeof(*t));

  if (!t)
    return NULL;
  t->lim = *lim;
  t->seed = mix64((uint64_t)seed << 32 | 0x9e3779b9u);
  t->nb = BUCKETS_MIN;
  t->b = calloc(t->nb, sizeof(*t->b));
  if (!t->b) {
    free(t);
    return NULL;
  }
  return t;
}

void hp__relay_table_destroy(hp__relay_table *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nb; i++) {
    hp__relay_sess *s = t->b[i], *n;
    for (; s; s = n) {
      n = s->hnext;
      free(s);
    }
  }
  free(t->b);
  free(t);
}

const hp__relay_limits *hp__relay_table_limits(const hp__relay_table *t) {
  return &t->lim;
}

size_t hp__relay_table_count(const hp__relay_table *t) {
  return t->count;
}

unsigned hp__relay_table_open(const hp__relay_table *t) {
  return t->open;
}

/* ---- the expiry queue ---- */

static void q_push(hp__relay_table *t, hp__relay_sess *s) {
  s->qnext = NULL;
  s->qprev = t->qtail;
  if (t->qtail)
    t->qtail->qnext = s;
  else
    t->qhead = s;
  t->qtail = s;
}

static void q_unlink(hp__relay_table *t, hp__relay_sess *s) {
  if (s->qprev)
    s->qprev->qnext = s->qnext;
  else if (t->qhead == s)
    t->qhead = s->qnext;
  if (s->qnext)
    s->qnext->qprev = s->qprev;
  else if (t->qtail == s)
    t->qtail = s->qprev;
  s->qprev = s->qnext = NULL;
}

/* ---- the hash ---- */

static hp__relay_sess *find(const hp__relay_table *t, const char *session) {
  uint32_t h = hash_of(t, session);

  for (hp__relay_sess *s = t->b[h & (t->nb - 1)]; s; s = s->hnext)
    if (s->hash == h && !memcmp(s->session, session, HP_SESSION_HEX))
      return s;
  return NULL;
}

static void unhash(hp__relay_table *t, hp__relay_sess *s) {
  hp__relay_sess **pp = &t->b[s->hash & (t->nb - 1)];

  while (*pp && *pp != s)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = s->hnext;
  t->count--;
}

/* An entry nobody holds: out of the queue and the hash, freed. */
static void drop(hp__relay_table *t, hp__relay_sess *s) {
  q_unlink(t, s);
  unhash(t, s);
  free(s);
}

static void grow(hp__relay_table *t) {
  size_t nb = t->nb * 2;
  hp__relay_sess **b = calloc(nb, sizeof(*b));

  if (!b)
    return; /* longer chains, still correct */
  for (size_t i = 0; i < t->nb; i++) {
    hp__relay_sess *s = t->b[i], *n;
    for (; s; s = n) {
      n = s->hnext;
      s->hnext = b[s->hash & (nb - 1)];
      b[s->hash & (nb - 1)] = s;
    }
  }
  free(t->b);
  t->b = b;
  t->nb = nb;
}

size_t hp__relay_table_expire(hp__relay_table *t, uint64_t now_ms) {
  size_t n = 0;

  while (t->qhead && t->qhead->expires_ms <= now_ms) {
    drop(t, t->qhead);
    n++;
  }
  return n;
}

int hp__relay_table_register(hp__relay_table *t, const char *session, const char *id_a,
                             const char *id_b, uint64_t now_ms) {
  hp__relay_sess *s;
  size_t la = id_a ? strlen(id_a) : 0, lb = id_b ? strlen(id_b) : 0;

  if (!session || !hp__relay_valid_session(session, strlen(session)) ||
      !hp__wire_valid_name(id_a, la) || !hp__wire_valid_name(id_b, lb) ||
      (la == lb && !memcmp(id_a, id_b, la)))
    return -EINVAL;
  hp__relay_table_expire(t, now_ms);
  if (find(t, session))
    return -EEXIST;
  /* Full: make room by dropping the oldest entry nobody holds. */
  if (t->lim.max_entries && t->count >= t->lim.max_entries) {
    if (!t->qhead)
      return -ENOMEM;
    drop(t, t->qhead);
  }
  s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  memcpy(s->session, session, HP_SESSION_HEX);
  memcpy(s->id[0], id_a, la);
  memcpy(s->id[1], id_b, lb);
  s->expires_ms = now_ms + t->lim.ttl_ms;
  s->state = HP_RELAY_REGISTERED;
  s->hash = hash_of(t, session);
  if (t->count >= t->nb)
    grow(t);
  s->hnext = t->b[s->hash & (t->nb - 1)];
  t->b[s->hash & (t->nb - 1)] = s;
  t->count++;
  q_push(t, s);
  return 0;
}

static double burst_of(const hp__relay_table *t);

static int refuse(hp__relay_refusal *why, hp__relay_refusal r) {
  if (why)
    *why = r;
  return -1;
}

int hp__relay_table_join(hp__relay_table *t, const char *session, const char *id, void *end,
                         uint64_t now_ms, hp__relay_sess **out, int *side, hp__relay_refusal *why) {
  hp__relay_sess *s;
  int k;

  *out = NULL;
  if (!session || !hp__relay_valid_session(session, strlen(session)))
    return refuse(why, HP_RELAY_REFUSE_UNKNOWN);
  hp__relay_table_expire(t, now_ms);
  s = find(t, session);
  if (!s)
    return refuse(why, HP_RELAY_REFUSE_UNKNOWN);
  if (s->state == HP_RELAY_ENDED)
    return refuse(why, HP_RELAY_REFUSE_USED);
  if (s->state == HP_RELAY_OPEN && now_ms >= s->expires_ms)
    return refuse(why, HP_RELAY_REFUSE_UNKNOWN); /* its waiter is being timed out */
  if (!strcmp(id, s->id[0]))
    k = 0;
  else if (!strcmp(id, s->id[1]))
    k = 1;
  else
    return refuse(why, HP_RELAY_REFUSE_NOT_IN);
  if (s->end[k])
    return refuse(why, HP_RELAY_REFUSE_IN_USE);
  if (s->state == HP_RELAY_REGISTERED) {
    if (t->open >= t->lim.max_sessions)
      return refuse(why, HP_RELAY_REFUSE_FULL);
    q_unlink(t, s); /* held now: not expired by the queue */
    t->open++;
    s->state = HP_RELAY_OPEN;
  } else {
    s->state = HP_RELAY_RELAYING;
    s->last_data_ms = s->refill_ms = now_ms;
    s->tokens = burst_of(t); /* a short exchange is never delayed */
  }
  s->end[k] = end;
  *out = s;
  *side = k;
  return 0;
}

void hp__relay_table_leave(hp__relay_table *t, hp__relay_sess *s, int side, uint64_t now_ms) {
  if (!s || side < 0 || side > 1 || !s->end[side])
    return;
  s->end[side] = NULL;
  if (s->end[0] || s->end[1])
    return; /* the other worker is still there (it is being closed) */
  t->open--;
  s->state = HP_RELAY_ENDED;
  if (s->expires_ms <= now_ms) {
    unhash(t, s);
    free(s);
    return;
  }
  q_push(t, s);
}

/* The bucket's capacity: a quarter second of the rate, at least BURST_MIN. */
static double burst_of(const hp__relay_table *t) {
  double b = (double)t->lim.rate * BURST_SECONDS;
  return b < BURST_MIN ? BURST_MIN : b;
}

hp__relay_verdict hp__relay_charge(hp__relay_table *t, hp__relay_sess *s, size_t n, uint64_t now_ms,
                                   uint64_t *resume_ms) {
  double burst;

  if (t->lim.max_bytes && (s->bytes + n > t->lim.max_bytes || s->bytes + n < s->bytes))
    return HP_RELAY_OVER_BYTES;
  s->bytes += n;
  s->last_data_ms = now_ms;
  if (!t->lim.rate)
    return HP_RELAY_PASS;
  burst = burst_of(t);
  if (now_ms > s->refill_ms) {
    s->tokens += (double)(now_ms - s->refill_ms) * (double)t->lim.rate / 1000.0;
    s->refill_ms = now_ms;
  }
  if (s->tokens > burst)
    s->tokens = burst;
  s->tokens -= (double)n;
  if (s->tokens >= 0)
    return HP_RELAY_PASS;
  /* Back at zero after -tokens / rate seconds (rounded up to a ms). */
  s->throttled_until_ms =
      now_ms + (uint64_t)((-s->tokens * 1000.0 + (double)t->lim.rate - 1) / (double)t->lim.rate);
  if (resume_ms)
    *resume_ms = s->throttled_until_ms;
  return HP_RELAY_THROTTLE;
}

uint64_t hp__relay_deadline(const hp__relay_table *t, const hp__relay_sess *s) {
  switch ((hp__relay_state)s->state) {
  case HP_RELAY_OPEN:
    return s->expires_ms;
  case HP_RELAY_RELAYING:
    return t->lim.idle_ms ? s->last_data_ms + t->lim.idle_ms : 0;
  default:
    return 0;
  }
}
