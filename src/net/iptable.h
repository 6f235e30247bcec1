/*
 * iptable.h - per client address state: open connections and a token
 * bucket (e.g. hellos per minute). A keyed hash table (seed from the
 * caller, so that clients cannot pick colliding addresses), one small entry
 * per address that has connections or a bucket not yet full; no I/O.
 */
#ifndef HP_NET_IPTABLE_H
#define HP_NET_IPTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct hp__ipent {
  struct hp__ipent *next;
  uint32_t hash;
  uint32_t conns;     /* open connections from this address */
  double tokens;      /* token bucket level */
  uint64_t refill_ms; /* time of the last refill */
  uint8_t key[16];    /* IPv6, or IPv4-mapped IPv6 */
} hp__ipent;

typedef struct hp__iptable hp__iptable;

/** NULL on ENOMEM. */
hp__iptable *hp__iptable_create(uint32_t seed);
void hp__iptable_destroy(hp__iptable *t);

/** The 16-byte key of an address (AF_INET or AF_INET6 sockaddr, or text).
 * 0 or -EINVAL. */
int hp__ip_key_sa(const struct sockaddr *sa, uint8_t key[16]);
int hp__ip_key_text(const char *ip, uint8_t key[16]);

/** The entry of key; created (zeroed, full bucket of burst tokens) when
 * create is set. NULL if absent or on ENOMEM. */
hp__ipent *hp__iptable_get(hp__iptable *t, const uint8_t key[16], int create, double burst,
                           uint64_t now_ms);

/** Take one token: the bucket refills at rate_per_min, holds at most burst.
 * 1 if a token was taken, 0 if the bucket is empty. */
int hp__ipent_take(hp__ipent *e, double rate_per_min, double burst, uint64_t now_ms);

/** Drop e if it holds nothing worth keeping (no connection, bucket full). */
void hp__iptable_maybe_drop(hp__iptable *t, hp__ipent *e, double rate_per_min, double burst,
                            uint64_t now_ms);

/** Drop every entry that holds nothing (a periodic sweep). */
void hp__iptable_sweep(hp__iptable *t, double rate_per_min, double burst, uint64_t now_ms);

size_t hp__iptable_count(const hp__iptable *t);

#endif
