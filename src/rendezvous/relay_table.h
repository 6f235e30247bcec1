/*
 * relay_table.h - the relay's session table and its limits. No I/O, no
 * clock of its own (every call takes now_ms): unit-tested on its own.
 *
 * Signaling registers each pairing (its session and both worker ids) when
 * it sends `peer`; the entry can be joined on /relay until it expires
 * (ttl). A relay connection joins with the session and its own id: exactly
 * the two workers of that pairing are admitted, each once. Once nobody is
 * joined any more the session has ENDED and cannot be joined again (kept,
 * to say so, until it would have expired).
 *
 * Limits, per session: a token bucket of bytes per second (rate; the caller
 * stops reading both sides while the bucket is negative), a total of bytes
 * (max_bytes), and the idle time (the caller's timer asks for the
 * deadline). Over the whole table: at most max_sessions sessions open (at
 * least one worker joined) at once, and at most max_entries entries in all
 * (the oldest unjoined one is dropped to make room).
 */
#ifndef HP_RDV_RELAY_TABLE_H
#define HP_RDV_RELAY_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef enum hp__relay_state {
  HP_RELAY_REGISTERED = 0, /* paired by signaling, nobody joined yet */
  HP_RELAY_OPEN,           /* one worker joined, waiting for the other */
  HP_RELAY_RELAYING,       /* both joined: bytes flow */
  HP_RELAY_ENDED           /* both gone: refused as "session_used" until expiry */
} hp__relay_state;

/* Why a join was refused (docs/PROTOCOL.md section 7 error codes). */
typedef enum hp__relay_refusal {
  HP_RELAY_REFUSE_UNKNOWN = 0, /* unknown_session: never registered, or expired */
  HP_RELAY_REFUSE_NOT_IN,      /* not_in_session: the id is not one of the two */
  HP_RELAY_REFUSE_IN_USE,      /* session_in_use: that worker is joined already */
  HP_RELAY_REFUSE_USED,        /* session_used: this session was relayed and ended */
  HP_RELAY_REFUSE_FULL,        /* relay_full: max_sessions open */
  HP_RELAY_REFUSE_COUNT
} hp__relay_refusal;

typedef struct hp__relay_limits {
  uint64_t rate;         /* bytes per second per session; 0: no limit */
  uint64_t max_bytes;    /* bytes per session (both directions); 0: no limit */
  unsigned max_sessions; /* sessions open at once */
  uint64_t ttl_ms;       /* from registration: deadline to join (both) */
  uint64_t idle_ms;      /* relaying without a byte either way; 0: none */
  size_t max_entries;    /* entries in the table (registered + open + ended) */
} hp__relay_limits;

typedef struct hp__relay_sess {
  struct hp__relay_sess *hnext;         /* hash chain */
  struct hp__relay_sess *qprev, *qnext; /* expiry queue (REGISTERED, ENDED) */
  uint64_t expires_ms;
  uint64_t bytes; /* payload relayed, both directions */
  double tokens;  /* rate bucket, may go negative (charged after the read) */
  uint64_t refill_ms;
  uint64_t last_data_ms; /* idle clock; the join of the second worker starts it */
  uint64_t throttled_until_ms;
  void *end[2]; /* the caller's endpoint per worker, NULL when not joined */
  uint32_t hash;
  uint8_t state; /* hp__relay_state */
  char session[HP_SESSION_HEX + 1];
  char id[2][HP_ID_MAX + 1];
} hp__relay_sess;

typedef struct hp__relay_table hp__relay_table;

/** NULL on ENOMEM. */
hp__relay_table *hp__relay_table_create(const hp__relay_limits *lim, uint32_t seed);
/** Frees every entry (the caller has dropped its endpoints). */
void hp__relay_table_destroy(hp__relay_table *t);
const hp__relay_limits *hp__relay_table_limits(const hp__relay_table *t);

/** Register a pairing: session (32 hex), the ids of its two workers. 0,
 * -EINVAL (bad session/ids, or equal ids), -EEXIST, -ENOMEM. */
int hp__relay_table_register(hp__relay_table *t, const char *session, const char *id_a,
                             const char *id_b, uint64_t now_ms);

/** Join: 0 and *out, *side (0: id_a, 1: id_b) with end stored, or -1 and
 * *why. The session is RELAYING when both have joined. */
int hp__relay_table_join(hp__relay_table *t, const char *session, const char *id, void *end,
                         uint64_t now_ms, hp__relay_sess **out, int *side, hp__relay_refusal *why);

/** The endpoint of side is gone. When no side is left the session ends. */
void hp__relay_table_leave(hp__relay_table *t, hp__relay_sess *s, int side, uint64_t now_ms);

/** Drop expired entries that nobody holds. Returns how many. */
size_t hp__relay_table_expire(hp__relay_table *t, uint64_t now_ms);

/* What a charge of relayed bytes allows. */
typedef enum hp__relay_verdict {
  HP_RELAY_PASS = 0,  /* forward */
  HP_RELAY_THROTTLE,  /* forward, then stop reading until *resume_ms */
  HP_RELAY_OVER_BYTES /* do not forward: max_bytes reached; end the session */
} hp__relay_verdict;

/** Charge n payload bytes to the session (rate bucket, byte total, idle
 * clock). On THROTTLE *resume_ms is when the bucket is back at zero. */
hp__relay_verdict hp__relay_charge(hp__relay_table *t, hp__relay_sess *s, size_t n, uint64_t now_ms,
                                   uint64_t *resume_ms);

/** When the session must end without traffic: the join deadline while
 * OPEN, the idle deadline while RELAYING (0: none). */
uint64_t hp__relay_deadline(const hp__relay_table *t, const hp__relay_sess *s);

/** Entries in the table; sessions open (OPEN + RELAYING). */
size_t hp__relay_table_count(const hp__relay_table *t);
unsigned hp__relay_table_open(const hp__relay_table *t);

/** The protocol's error code of a refusal ("unknown_session", ...). */
const char *hp__relay_refusal_name(hp__relay_refusal r);

#endif
