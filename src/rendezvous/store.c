/*
 * store.c - what the room-store backends share: the common part, sessions,
 * instance names, round-trip statistics and their Prometheus text.
 */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Round trips to Redis on a LAN take 0.1-1 ms; the buckets span that up to
 * the default command timeout. */
const double hp__store_rtt_bounds[HP_STORE_RTT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0};

static const char hex[] = "0123456789abcdef";

int hp__store_valid_instance(const char *s) {
  size_t n = strnlen(s, HP_STORE_INSTANCE_MAX + 1);
  return n >= 1 && n <= HP_STORE_INSTANCE_MAX && hp__wire_valid_name(s, n);
}

int hp__store_base_init(hp__store *st, const hp__store_ops *ops, const hp__store_cbs *cb, void *ctx,
                        const char *instance) {
  st->ops = ops;
  st->cb = *cb;
  st->ctx = ctx;
  st->rnd_used = sizeof(st->rnd);
  if (instance && instance[0]) {
    if (!hp__store_valid_instance(instance))
      return -EINVAL;
    snprintf(st->instance, sizeof(st->instance), "%s", instance);
    return 0;
  }
  /* A random name: a restarted process is a new instance, so nothing
   * addressed to the dead one reaches it. */
  return hp__random_hex(st->instance, 8) < 0 ? -EIO : 0;
}

int hp__store_new_session(hp__store *st, char out[HP_SESSION_HEX + 1]) {
  const size_t n = HP_SESSION_HEX / 2;

  if (st->rnd_used + n > sizeof(st->rnd)) {
    if (getrandom(st->rnd, sizeof(st->rnd), 0) != (ssize_t)sizeof(st->rnd))
      return -EIO;
    st->rnd_used = 0;
  }
  for (size_t i = 0; i < n; i++) {
    uint8_t b = st->rnd[st->rnd_used + i];
    out[2 * i] = hex[b >> 4];
    out[2 * i + 1] = hex[b & 15];
  }
  /* Each byte is used once, then forgotten. */
  memset(st->rnd + st->rnd_used, 0, n);
  st->rnd_used += n;
  out[HP_SESSION_HEX] = '\0';
  return 0;
}

#define SLOTS_MAX 0x7fffffffu

int hp__slots_put(hp__slots *t, void *p, hp__store_mid *mid) {
  uint32_t i;

  if (t->free_head) {
    i = t->free_head - 1;
    t->free_head = t->s[i].next_free;
  } else {
    if (t->n == t->cap) {
      uint32_t cap = t->cap ? t->cap * 2 : 64;
      hp__slot *ns;
      if (cap > SLOTS_MAX || cap < t->cap)
        return -ENOMEM;
      ns = realloc(t->s, (size_t)cap * sizeof(*ns));
      if (!ns)
        return -ENOMEM;
      t->s = ns;
      t->cap = cap;
    }
    i = t->n++;
    t->s[i].gen = 1;
  }
  t->s[i].p = p;
  t->s[i].next_free = 0;
  t->count++;
  *mid = (uint64_t)t->s[i].gen << 32 | (uint64_t)(i + 1);
  return 0;
}

static hp__slot *slot_of(const hp__slots *t, hp__store_mid mid) {
  uint64_t i = (mid & 0xffffffffu);

  if (i == 0 || i > t->n)
    return NULL;
  if (t->s[i - 1].gen != (uint32_t)(mid >> 32) || !t->s[i - 1].p)
    return NULL;
  return &t->s[i - 1];
}

void *hp__slots_get(const hp__slots *t, hp__store_mid mid) {
  hp__slot *s = slot_of(t, mid);
  return s ? s->p : NULL;
}

void hp__slots_del(hp__slots *t, hp__store_mid mid) {
  hp__slot *s = slot_of(t, mid);

  if (!s)
    return;
  s->p = NULL;
  /* Generation 0 is skipped so that no mid is ever 0. */
  if (++s->gen == 0)
    s->gen = 1;
  s->next_free = t->free_head;
  t->free_head = (uint32_t)(s - t->s) + 1;
  t->count--;
}

void hp__slots_free(hp__slots *t) {
  free(t->s);
  memset(t, 0, sizeof(*t));
}

void hp__store_stats_rtt(hp__store_stats *stats, double s) {
  stats->rtt_count++;
  stats->rtt_sum += s;
  for (int i = 0; i < HP_STORE_RTT_BUCKETS; i++)
    if (s <= hp__store_rtt_bounds[i]) {
      stats->rtt_bucket[i]++;
      return;
    }
  stats->rtt_overflow++;
}

static int add(char *buf, size_t cap, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int add(char *buf, size_t cap, size_t *o, const char *fmt, ...) {
  va_list ap;
  int n;

  if (*o >= cap)
    return -ENOSPC;
  va_start(ap, fmt);
  n = vsnprintf(buf + *o, cap - *o, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap - *o)
    return -ENOSPC;
  *o += (size_t)n;
  return 0;
}

int hp__store_stats_format(const hp__store_stats *s, const char *backend, char *buf, size_t cap) {
  uint64_t cum = 0;
  size_t o = 0;
  int r = 0;

  if (cap)
    buf[0] = '\0';
  r |= add(buf, cap, &o,
           "# HELP holepunch_store_available 1 while the room store takes new workers\n"
           "# TYPE holepunch_store_available gauge\n"
           "holepunch_store_available{backend=\"%s\"} %d\n",
           backend, s->available ? 1 : 0);
  r |= add(buf, cap, &o,
           "# HELP holepunch_remote_pairings_total workers of this instance paired by another "
           "instance\n"
           "# TYPE holepunch_remote_pairings_total counter\n"
           "holepunch_remote_pairings_total %llu\n"
           "# HELP holepunch_store_lost_total workers the store lost (after a Redis data loss)\n"
           "# TYPE holepunch_store_lost_total counter\n"
           "holepunch_store_lost_total %llu\n",
           (unsigned long long)s->remote_pairings, (unsigned long long)s->lost);
  if (strcmp(backend, "redis") != 0)
    return r ? -ENOSPC : (int)o;
  r |= add(buf, cap, &o,
           "# HELP holepunch_redis_requests_total Redis commands answered or failed\n"
           "# TYPE holepunch_redis_requests_total counter\n"
           "holepunch_redis_requests_total %llu\n"
           "# HELP holepunch_redis_errors_total failed Redis commands, by kind\n"
           "# TYPE holepunch_redis_errors_total counter\n"
           "holepunch_redis_errors_total{kind=\"timeout\"} %llu\n"
           "holepunch_redis_errors_total{kind=\"other\"} %llu\n"
           "# HELP holepunch_redis_reconnects_total Redis connections made after the first\n"
           "# TYPE holepunch_redis_reconnects_total counter\n"
           "holepunch_redis_reconnects_total %llu\n"
           "# HELP holepunch_redis_rtt_seconds round-trip time of answered Redis commands\n"
           "# TYPE holepunch_redis_rtt_seconds histogram\n",
           (unsigned long long)s->requests, (unsigned long long)s->timeouts,
           /* a timeout is counted a loop turn before its command fails */
           (unsigned long long)(s->errors > s->timeouts ? s->errors - s->timeouts : 0),
           (unsigned long long)s->reconnects);
  for (int i = 0; i < HP_STORE_RTT_BUCKETS; i++) {
    cum += s->rtt_bucket[i];
    r |= add(buf, cap, &o, "holepunch_redis_rtt_seconds_bucket{le=\"%g\"} %llu\n",
             hp__store_rtt_bounds[i], (unsigned long long)cum);
  }
  r |= add(buf, cap, &o,
           "holepunch_redis_rtt_seconds_bucket{le=\"+Inf\"} %llu\n"
           "holepunch_redis_rtt_seconds_sum %.9g\n"
           "holepunch_redis_rtt_seconds_count %llu\n",
           (unsigned long long)(cum + s->rtt_overflow), s->rtt_sum,
           (unsigned long long)s->rtt_count);
  if (r) {
    if (cap)
      buf[0] = '\0';
    return -ENOSPC;
  }
  return (int)o;
}
