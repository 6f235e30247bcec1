/*
 * server.c - lifecycle of the rendezvous service: create (the listener and
 * the shared state), graceful shutdown (stop accepting, close every
 * WebSocket with 1001, drop what is left after the timeout), destroy.
 *
 * Everything runs on the caller's one libuv loop; the HTTP and WebSocket
 * layers are our own small ones (src/net), so there is no second event
 * system and nothing to load at run time.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "rdv.h"
#include "rooms_mem.h"
#include "rooms_redis.h"

/* The rooms: in memory, or in Redis (shared with other instances). A Redis
 * store starts unavailable and says so when it is ready; hellos get
 * "unavailable" until then, while everything else is served. */
static int store_create(hp__rdv *s, uint32_t seed) {
  const hp__rdv_opts *o = &s->o;
  hp__store_redis_opts ro;
  int rc;

  if (!o->redis) {
    s->store_up = 1;
    return hp__store_mem_create(&hp__rdv_store_cbs, s, seed, s->instance_id, &s->store);
  }
  memset(&ro, 0, sizeof(ro));
  ro.url = o->redis;
  ro.instance = s->instance_id;
  ro.ttl_ms = (uint32_t)(o->redis_ttl * 1000.0);
  ro.timeout_ms = (uint32_t)(o->redis_timeout * 1000.0);
  rc = hp__store_redis_create(s->loop, &ro, &hp__rdv_store_cbs, s, &s->store);
  if (rc < 0)
    HP_ERROR(RDV_COMP, NULL, "cannot create the Redis room store: %s", strerror(-rc));
  return rc;
}

static const hp__listener_ops listener_ops = {hp__rdv_conn_alloc, hp__rdv_conn_accepted,
                                              hp__rdv_conn_refused};
/* OBSERVER_PORT: the same routes; a connection remembers its listener. */
static const hp__listener_ops listener2_ops = {hp__rdv_conn_alloc, hp__rdv_conn_accepted2,
                                               hp__rdv_conn_refused};

int hp__rdv_create(uv_loop_t *loop, const hp__rdv_opts *opts, hp__rdv **out) {
  hp__listener_opts lo;
  uint32_t keys[4];
  hp__rdv *s;
  int rc = -ENOMEM;

  *out = NULL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  /* From here on the caller owns s, also on failure (see server.h). */
  *out = s;
  s->loop = loop;
  s->o = *opts;
  snprintf(s->bind, sizeof(s->bind), "%s", opts->bind ? opts->bind : "0.0.0.0");
  s->o.bind = s->bind;
  snprintf(s->instance_url, sizeof(s->instance_url), "%s",
           opts->instance_url ? opts->instance_url : "");
  snprintf(s->instance_id, sizeof(s->instance_id), "%s",
           opts->instance_id ? opts->instance_id : "");
  s->o.instance_url = s->instance_url;
  s->o.instance_id = s->instance_id;
  s->o.redis = NULL; /* the store keeps its copy of the URL */
  /* One draw for the keys of the process: the hash seeds of the rooms and
   * of the address table, and the key of the assigned ids. Without it all
   * stay correct, only less keyed. */
  if (getrandom(keys, sizeof(keys), 0) != (ssize_t)sizeof(keys)) {
    keys[0] = (uint32_t)(uintptr_t)s;
    keys[1] = (uint32_t)uv_hrtime();
    keys[2] = (uint32_t)getpid();
    keys[3] = keys[0] ^ keys[1];
  }
  s->id_key = (uint64_t)keys[1] << 32 | keys[2];
  s->ips = hp__iptable_create(keys[3]);
  s->wsenv = hp__ws_env_create(opts->input_budget);
  if (!s->ips || !s->wsenv || hp__rdv_relay_svc_create(s, keys[0] ^ keys[2]) < 0)
    goto out;
  s->o.redis = opts->redis;
  rc = store_create(s, keys[0]);
  s->o.redis = NULL;
  if (rc < 0)
    goto out;
  if (uv_timer_init(loop, &s->timer) < 0) {
    rc = -EINVAL;
    goto out;
  }
  s->timer_init = 1;
  s->timer.data = s;

  memset(&lo, 0, sizeof(lo));
  lo.bind = s->bind;
  lo.port = opts->port;
  lo.max_connections = (unsigned)opts->max_connections;
  /* Behind a trusted proxy every connection comes from the proxy: the limit
   * per address then applies to the forwarded address (http_routes.c). */
  lo.max_per_ip = opts->trust_proxy ? 0 : (unsigned)opts->max_connections_per_ip;
  lo.hello_rate = lo.hello_burst = opts->max_hellos_per_minute;
  lo.component = RDV_COMP;
  rc = hp__listener_create(loop, &lo, s->ips, &listener_ops, s, &s->lis);
  if (rc < 0)
    goto out;
  HP_INFO(RDV_COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", hp__listener_port(s->lis)),
          "listening on %s port %d", s->bind, hp__listener_port(s->lis));
  if (opts->observer_port) {
    /* A second observer for `holepunch diagnose`: the same service seen
     * from another port tells a NAT whose mapping depends on the
     * destination port apart from one that keeps it. */
    lo.port = opts->observer_port;
    lo.max_connections = 1024;
    rc = hp__listener_create(loop, &lo, s->ips, &listener2_ops, s, &s->lis2);
    if (rc < 0)
      goto out;
    HP_INFO(RDV_COMP,
            json_pack("{s:s,s:i}", "addr", s->bind, "observer_port", hp__listener_port(s->lis2)),
            "observer port: listening on %s port %d too", s->bind, hp__listener_port(s->lis2));
  }
  return 0;
out:
  s->draining = s->destroying = 1;
  if (s->timer_init)
    uv_close((uv_handle_t *)&s->timer, NULL);
  if (s->store) {
    hp__store_close(s->store, NULL, NULL); /* freed once its handles are closed */
    s->store = NULL;
  }
  return rc;
}

int hp__rdv_port(const hp__rdv *s) {
  return s->lis ? hp__listener_port(s->lis) : 0;
}

static void on_store_closed(void *arg) {
  hp__rdv *s = arg;
  if (s->done)
    s->done(s->done_arg);
}

/* Every connection left the store; its own connections (Redis) close now. */
static void on_timer_closed(uv_handle_t *h) {
  hp__rdv *s = h->data;
  hp__store *st = s->store;

  s->store = NULL;
  if (st)
    hp__store_close(st, on_store_closed, s);
  else
    on_store_closed(s);
}

/* Everything is closed (or the timeout is over): stop. Runs from the loop. */
static void finish(hp__rdv *s) {
  if (s->destroying)
    return;
  s->destroying = 1;
  hp__listener_destroy(s->lis);
  s->lis = NULL;
  hp__listener_destroy(s->lis2);
  s->lis2 = NULL;
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void hp__rdv_conn_gone(hp__rdv *s, rdv_conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else if (s->conns == c)
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (s->draining && !s->conns)
    finish(s);
}

static void on_shutdown_timer(uv_timer_t *t) {
  hp__rdv *s = t->data;
  rdv_conn *c, *next;

  if (s->conns)
    HP_WARN(RDV_COMP, json_pack("{s:I}", "connections", (json_int_t)s->m.connections),
            "shutdown timeout: closing the remaining connections");
  for (c = s->conns; c; c = next) {
    next = c->next;
    hp__stream_close(&c->s);
  }
  if (!s->conns)
    finish(s);
}

void hp__rdv_shutdown(hp__rdv *s, double timeout, void (*done)(void *arg), void *arg) {
  rdv_conn *c, *next;
  hp__store_stats st;

  if (s->draining)
    return;
  s->draining = 1;
  s->done = done;
  s->done_arg = arg;
  hp__store_stats_get(s->store, &st);
  HP_INFO(RDV_COMP,
          json_pack("{s:I,s:I}", "connections", (json_int_t)s->m.connections, "waiting",
                    (json_int_t)st.waiting),
          "shutting down: closing every WebSocket with 1001 (going away)");
  hp__listener_close(s->lis);
  if (s->lis2)
    hp__listener_close(s->lis2);
  for (c = s->conns; c; c = next) {
    next = c->next;
    hp__rdv_conn_shutdown(c);
  }
  uv_timer_start(&s->timer, on_shutdown_timer, (uint64_t)(timeout * 1000.0), 0);
  if (!s->conns)
    finish(s);
}

int hp__rdv_destroy(hp__rdv *s) {
  if (!s)
    return 0;
  if (s->conns)
    return -EBUSY;
  if (s->lis || s->lis2) {
    /* A failed create never got a listener; a run that was not shut down
     * has one: close it and let the caller run the loop again. */
    hp__listener_destroy(s->lis);
    s->lis = NULL;
    hp__listener_destroy(s->lis2);
    s->lis2 = NULL;
    return -EBUSY;
  }
  hp__rdv_relay_svc_destroy(s);
  hp__ws_env_destroy(s->wsenv);
  hp__iptable_destroy(s->ips);
  if (s->store) /* a run that was not shut down */
    hp__store_close(s->store, NULL, NULL);
  hp__slots_free(&s->refs);
  free(s);
  return 0;
}
