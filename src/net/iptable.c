/*
 * iptable.c - per-address entries in a chained hash table (see iptable.h).
 */
#include "iptable.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 64u

struct hp__iptable {
  hp__ipent **b;
  size_t nb, n;
  uint32_t seed;
};

static uint32_t key_hash(uint32_t seed, const uint8_t k[16]) {
  uint32_t h = 2166136261u ^ seed;
  for (int i = 0; i < 16; i++) {
    h ^= k[i];
    h *= 16777619u;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return h;
}

hp__iptable *hp__iptable_create(uint32_t seed) {
  hp__iptable *t = calloc(1, sizeof(*t));
  if (t)
    t->seed = seed;
  return t;
}

void hp__iptable_destroy(hp__iptable *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nb; i++) {
    hp__ipent *e = t->b[i];
    while (e) {
      hp__ipent *next = e->next;
      free(e);
      e = next;
    }
  }
  free(t->b);
  free(t);
}

int hp__ip_key_sa(const struct sockaddr *sa, uint8_t key[16]) {
  memset(key, 0, 16);
  if (sa->sa_family == AF_INET) {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    return 0;
  }
  return -EINVAL;
}

int hp__ip_key_text(const char *ip, uint8_t key[16]) {
  struct in_addr a4;

  memset(key, 0, 16);
  if (inet_pton(AF_INET, ip, &a4) == 1) {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &a4, 4);
    return 0;
  }
  return inet_pton(AF_INET6, ip, key) == 1 ? 0 : -EINVAL;
}

static void grow(hp__iptable *t) {
  size_t nb = t->nb ? t->nb * 2 : MIN_BUCKETS;
  hp__ipent **b = calloc(nb, sizeof(*b));

  if (!b)
    return; /* chains get longer; still correct */
  for (size_t i = 0; i < t->nb; i++) {
    hp__ipent *e = t->b[i];
    while (e) {
      hp__ipent *next = e->next;
      e->next = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = next;
    }
  }
  free(t->b);
  t->b = b;
  t->nb = nb;
}

hp__ipent *hp__iptable_get(hp__iptable *t, const uint8_t key[16], int create, double burst,
                           uint64_t now_ms) {
  uint32_t h = key_hash(t->seed, key);
  hp__ipent *e;

  if (t->nb)
    for (e = t->b[h & (t->nb - 1)]; e; e = e->next)
      if (e->hash == h && !memcmp(e->key, key, 16))
        return e;
  if (!create)
    return NULL;
  if (t->n >= t->nb)
    grow(t);
  if (!t->nb)
    return NULL;
  e = calloc(1, sizeof(*e));
  if (!e)
    return NULL;
  memcpy(e->key, key, 16);
  e->hash = h;
  e->tokens = burst;
  e->refill_ms = now_ms;
  e->next = t->b[h & (t->nb - 1)];
  t->b[h & (t->nb - 1)] = e;
  t->n++;
  return e;
}

static void refill(hp__ipent *e, double rate_per_min, double burst, uint64_t now_ms) {
  if (now_ms > e->refill_ms) {
    e->tokens += (double)(now_ms - e->refill_ms) * rate_per_min / 60000.0;
    if (e->tokens > burst)
      e->tokens = burst;
  }
  e->refill_ms = now_ms;
}

int hp__ipent_take(hp__ipent *e, double rate_per_min, double burst, uint64_t now_ms) {
  refill(e, rate_per_min, burst, now_ms);
  if (e->tokens < 1.0)
    return 0;
  e->tokens -= 1.0;
  return 1;
}

static int idle(hp__ipent *e, double rate_per_min, double burst, uint64_t now_ms) {
  refill(e, rate_per_min, burst, now_ms);
  return !e->conns && e->tokens >= burst;
}

static void unlink_entry(hp__iptable *t, hp__ipent *e) {
  for (hp__ipent **pp = &t->b[e->hash & (t->nb - 1)]; *pp; pp = &(*pp)->next) {
    if (*pp == e) {
      *pp = e->next;
      t->n--;
      free(e);
      return;
    }
  }
}

void hp__iptable_maybe_drop(hp__iptable *t, hp__ipent *e, double rate_per_min, double burst,
                            uint64_t now_ms) {
  if (e && idle(e, rate_per_min, burst, now_ms))
    unlink_entry(t, e);
}

void hp__iptable_sweep(hp__iptable *t, double rate_per_min, double burst, uint64_t now_ms) {
  for (size_t i = 0; i < t->nb; i++) {
    hp__ipent **pp = &t->b[i];
    while (*pp) {
      hp__ipent *e = *pp;
      if (idle(e, rate_per_min, burst, now_ms)) {
        *pp = e->next;
        t->n--;
        free(e);
      } else {
        pp = &e->next;
      }
    }
  }
}

size_t hp__iptable_count(const hp__iptable *t) {
  return t->n;
}
