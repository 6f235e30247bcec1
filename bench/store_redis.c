/*
 * store_redis.c - figures of the Redis room store (src/rendezvous/rooms_redis.c):
 *
 *   1. Redis memory per waiting worker: INFO memory before and after N
 *      waiters, each alone in its own room (the shape of idle workers), with
 *      a payload like the rendezvous's (observed address + 2 candidates).
 *   2. N pairings across two store instances on one loop: the other half of
 *      each room joins on the second instance; wall time, this process's CPU
 *      (both instances' client side), redis-server's CPU, round trips.
 *
 * It starts its own redis-server (Debian's) on a unix socket in a temporary
 * directory and stops it at the end; --url uses another one instead (only
 * one you own: it writes keys under the prefix "hpbench:").
 *
 * Usage: bench_store_redis [--waiters N] [--url URL]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "../tests/lib/redis_server.h"
#include "rooms_redis.h"

typedef struct bench {
  uv_loop_t loop;
  hp__store *st[2];
  size_t joined[2], paired[2], avail[2];
} bench;

static void on_join(void *ctx, hp__store_ref ref, hp__store_mid mid, hp__store_verdict v,
                    const hp__store_pairing *p) {
  bench *b = ctx;
  (void)mid;
  (void)p;
  if (v != HP_STORE_WAITING && v != HP_STORE_PAIRED) {
    fprintf(stderr, "bench: join %llu: verdict %d\n", (unsigned long long)ref, (int)v);
    exit(1);
  }
  b->joined[ref >> 32]++;
}

static void on_paired(void *ctx, hp__store_ref ref, hp__store_mid mid, const hp__store_pairing *p) {
  bench *b = ctx;
  (void)mid;
  (void)p;
  b->paired[ref >> 32]++;
}

static void on_status0(void *ctx, int available, const char *why) {
  (void)why;
  ((bench *)ctx)->avail[0] = (size_t)available;
}

static void on_status1(void *ctx, int available, const char *why) {
  (void)why;
  ((bench *)ctx)->avail[1] = (size_t)available;
}

static long long info_field(const char *sock_or_url_unused, redisContext *c, const char *section,
                            const char *field) {
  redisReply *r = redisCommand(c, "INFO %s", section);
  long long v = -1;
  (void)sock_or_url_unused;
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *p = strstr(r->str, field);
    if (p)
      v = atoll(p + strlen(field) + 1);
  }
  freeReplyObject(r);
  return v;
}

static double info_cpu(redisContext *c) {
  redisReply *r = redisCommand(c, "INFO cpu");
  double v = -1;
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *u = strstr(r->str, "used_cpu_user:"), *s = strstr(r->str, "used_cpu_sys:");
    if (u && s)
      v = atof(u + 14) + atof(s + 13);
  }
  freeReplyObject(r);
  return v;
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void run_until_count(bench *b, size_t *counter, size_t want) {
  uint64_t start = uv_now(&b->loop);
  while (*counter < want) {
    uv_run(&b->loop, UV_RUN_ONCE);
    if (uv_now(&b->loop) - start > 120000) {
      fprintf(stderr, "bench: timed out (%zu of %zu)\n", *counter, want);
      exit(1);
    }
  }
}

/* An upper bound of the q-quantile from the histogram (the bucket's bound). */
static double quantile(const hp__store_stats *s, double q) {
  uint64_t want = (uint64_t)(q * (double)s->rtt_count), cum = 0;
  for (int i = 0; i < HP_STORE_RTT_BUCKETS; i++) {
    cum += s->rtt_bucket[i];
    if (cum >= want)
      return hp__store_rtt_bounds[i];
  }
  return -1;
}

static void on_closed(void *arg) {
  (*(int *)arg)++;
}

int main(int argc, char **argv) {
  /* what the rendezvous would store for a worker: observed + 2 candidates */
  static const char payload[] =
      "{\"observed\":\"203.0.113.7:40000\",\"candidates\":[{\"kind\":\"host\",\"addr\":\"10.0.1.2:"
      "8082\"},{\"kind\":\"srflx\",\"addr\":\"198.51.100.2:40000\"}]}";
  const char *url_s = NULL;
  size_t n = 10000;
  hp_test_redis srv;
  hp__redis_url url;
  redisContext *rc;
  char err[256];
  bench b;
  hp__store_cbs cb0 = {on_join, on_paired, NULL, on_status0};
  hp__store_cbs cb1 = {on_join, on_paired, NULL, on_status1};
  hp__store_redis_opts o;
  hp__store_stats s0, s1;
  long long mem0, mem1;
  double cpu0, rcpu0, t0;
  int closed = 0;

  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--waiters") && i + 1 < argc)
      n = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--url") && i + 1 < argc)
      url_s = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--waiters N] [--url URL]\n", argv[0]);
      return 2;
    }
  }
  memset(&srv, 0, sizeof(srv));
  if (!url_s) {
    if (hp_test_redis_start(&srv) < 0)
      return 1;
    url_s = srv.url;
  }
  if (hp__redis_url_parse(url_s, &url, err, sizeof(err)) < 0) {
    fprintf(stderr, "bench: %s\n", err);
    return 2;
  }
  rc = url.is_unix ? redisConnectUnix(url.path) : redisConnect(url.host, url.port);
  if (!rc || rc->err) {
    fprintf(stderr, "bench: cannot connect to Redis\n");
    return 1;
  }
  if (url.password[0])
    freeReplyObject(redisCommand(rc, "AUTH %s", url.password));

  memset(&b, 0, sizeof(b));
  uv_loop_init(&b.loop);
  memset(&o, 0, sizeof(o));
  o.url = &url;
  o.prefix = "hpbench:";
  o.ttl_ms = 60000;
  o.instance = "bench0";
  if (hp__store_redis_create(&b.loop, &o, &cb0, &b, &b.st[0]) < 0)
    return 1;
  o.instance = "bench1";
  if (hp__store_redis_create(&b.loop, &o, &cb1, &b, &b.st[1]) < 0)
    return 1;
  run_until_count(&b, &b.avail[0], 1);
  run_until_count(&b, &b.avail[1], 1);

  mem0 = info_field(NULL, rc, "memory", "used_memory");
  for (size_t i = 0; i < n; i++) {
    char room[32], id[32];
    hp__store_mid m;
    snprintf(room, sizeof(room), "bench-%010zu", i);
    snprintf(id, sizeof(id), "%016zx", i * 2654435761u);
    if (hp__store_join(b.st[0], i, room, id, payload, sizeof(payload) - 1, &m) < 0)
      return 1;
    if (i % 1000 == 999)
      run_until_count(&b, &b.joined[0], i + 1); /* keep the pipeline bounded */
  }
  run_until_count(&b, &b.joined[0], n);
  mem1 = info_field(NULL, rc, "memory", "used_memory");
  printf("redis_memory waiters=%zu payload_bytes=%zu used_memory_before=%lld after=%lld "
         "bytes_per_waiter=%.0f\n",
         n, sizeof(payload) - 1, mem0, mem1, (double)(mem1 - mem0) / (double)n);

  {
    /* Lease renewals: what keeping N waiters alive costs Redis (every
     * ttl/3 in service). */
    const int rounds = 5;
    size_t batches = (n + 127) / 128;
    double rc0 = info_cpu(rc), w0 = (double)uv_hrtime() / 1e9;
    for (int k = 0; k < rounds; k++) {
      hp__store_stats a;
      size_t done_req;
      hp__store_stats_get(b.st[0], &a);
      done_req = (size_t)a.requests;
      hp__store_refresh(b.st[0]);
      for (;;) {
        hp__store_stats z;
        hp__store_stats_get(b.st[0], &z);
        if ((size_t)z.requests >= done_req + batches)
          break;
        uv_run(&b.loop, UV_RUN_ONCE);
      }
    }
    printf("redis_renewals members=%zu rounds=%d redis_cpu_us_per_member=%.2f "
           "wall_ms_per_round=%.1f\n",
           n, rounds, 1e6 * (info_cpu(rc) - rc0) / (double)(n * (size_t)rounds),
           1000.0 * ((double)uv_hrtime() / 1e9 - w0) / rounds);
  }

  cpu0 = self_cpu();
  rcpu0 = info_cpu(rc);
  t0 = (double)uv_hrtime() / 1e9;
  for (size_t i = 0; i < n; i++) {
    char room[32], id[32];
    hp__store_mid m;
    snprintf(room, sizeof(room), "bench-%010zu", i);
    snprintf(id, sizeof(id), "b%015zx", i);
    if (hp__store_join(b.st[1], (1ull << 32) | i, room, id, payload, sizeof(payload) - 1, &m) < 0)
      return 1;
    if (i % 1000 == 999)
      run_until_count(&b, &b.joined[1], i + 1);
  }
  run_until_count(&b, &b.joined[1], n);
  run_until_count(&b, &b.paired[0], n);
  {
    double wall = (double)uv_hrtime() / 1e9 - t0, cpu = self_cpu() - cpu0,
           rcpu = info_cpu(rc) - rcpu0;
    hp__store_stats_get(b.st[0], &s0);
    hp__store_stats_get(b.st[1], &s1);
    printf("redis_pairings pairs=%zu wall_s=%.3f client_cpu_s_per_1000=%.4f "
           "redis_cpu_s_per_1000=%.4f remote_pairings=%llu\n",
           n, wall, cpu * 1000.0 / (double)n, rcpu * 1000.0 / (double)n,
           (unsigned long long)s0.remote_pairings);
    printf("redis_rtt_pipelined requests=%llu errors=%llu mean_ms=%.3f p50_le_ms=%g p99_le_ms=%g\n",
           (unsigned long long)(s0.requests + s1.requests),
           (unsigned long long)(s0.errors + s1.errors),
           1000.0 * (s0.rtt_sum + s1.rtt_sum) / (double)(s0.rtt_count + s1.rtt_count),
           1000.0 * quantile(&s1, 0.5), 1000.0 * quantile(&s1, 0.99));
  }
  {
    /* Round trips one at a time: the time a single hello waits for Redis
     * (the figures above include queueing behind 1,000 pipelined joins). */
    hp__store_stats a, z;
    size_t seq = 1000;
    hp__store_stats_get(b.st[0], &a);
    for (size_t i = 0; i < seq; i++) {
      char room[32], id[32];
      hp__store_mid m;
      snprintf(room, sizeof(room), "seq-%010zu", i);
      snprintf(id, sizeof(id), "s%015zx", i);
      if (hp__store_join(b.st[0], n + i, room, id, payload, sizeof(payload) - 1, &m) < 0)
        return 1;
      run_until_count(&b, &b.joined[0], n + i + 1);
    }
    hp__store_stats_get(b.st[0], &z);
    printf("redis_rtt_sequential joins=%zu mean_ms=%.3f\n", seq,
           1000.0 * (z.rtt_sum - a.rtt_sum) / (double)(z.rtt_count - a.rtt_count));
  }
  hp__store_close(b.st[0], on_closed, &closed);
  hp__store_close(b.st[1], on_closed, &closed);
  uv_run(&b.loop, UV_RUN_DEFAULT);
  uv_loop_close(&b.loop);
  freeReplyObject(redisCommand(
      rc, "EVAL %s 0 %s",
      "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0",
      "hpbench:*"));
  redisFree(rc);
  if (srv.pid)
    hp_test_redis_stop(&srv);
  return closed == 2 ? 0 : 1;
}
