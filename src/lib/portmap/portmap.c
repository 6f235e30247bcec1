/*
 * portmap.c - the port-mapping dispatcher (see portmap.h): one object per
 * mapped port, its exchanges run one at a time in libuv's thread pool,
 * trying UPnP-IGD first, then NAT-PMP.
 *
 * States: MAPPING (first exchange in the pool) -> IDLE (mapped and waiting
 * to refresh, or failed) <-> REFRESHING; stop() moves to UNMAPPING (right
 * away, or STOP_AFTER_WORK while an exchange is in the pool, which cannot
 * be interrupted), then CLOSING (the timer closes; its close callback frees
 * the object). The worker thread touches only the fields of its exchange
 * (proto states, req, out); the loop thread reads them in after_work.
 */
#include "portmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "portmap_backend.h"

typedef enum {
  ST_MAPPING,
  ST_IDLE,
  ST_REFRESHING,
  ST_STOP_AFTER_WORK,
  ST_UNMAPPING,
  ST_CLOSING
} state;

#define REFRESH_MIN_S 5 /* never refresh more often than this */

struct hp__portmap {
  uv_loop_t *loop;
  uv_work_t work;
  uv_timer_t timer;
  state st;
  unsigned protocols;
  hp__portmap_cb cb;
  void *data;
  hp__portmap_done_cb done;
  void *done_data;
  char description[64];
  hp__pm_request req;
  /* Owned by the exchange in flight (worker thread), else by the loop. */
  hp__pm_upnp *upnp;
  hp__pm_natpmp *natpmp;
  hp__portmap_proto proto; /* which protocol holds the mapping, NONE if none */
  int mapped_once;
  hp__portmap_result out;
};

const char *hp__portmap_proto_name(hp__portmap_proto p) {
  return p == HP_PORTMAP_UPNP ? "upnp" : p == HP_PORTMAP_NATPMP ? "natpmp" : "none";
}

/* Worker thread: the first mapping, or a refresh of the one we hold. */
static void work_map(uv_work_t *w) {
  hp__portmap *pm = w->data;
  hp__portmap_result *r = &pm->out;
  hp__pm_mapping m;
  char e1[HP_PORTMAP_ERR_MAX / 2] = "", e2[HP_PORTMAP_ERR_MAX / 2] = "";
  int rc = -ENOENT;

  memset(&m, 0, sizeof m);
  if (pm->proto == HP_PORTMAP_UPNP ||
      (pm->proto == HP_PORTMAP_NONE && pm->protocols & HP_PORTMAP_UPNP)) {
    rc = hp__pm_upnp_map(&pm->upnp, &pm->req, &m, e1, sizeof e1);
    if (rc == 0)
      r->proto = HP_PORTMAP_UPNP;
  }
  if (rc < 0 && (pm->proto == HP_PORTMAP_NATPMP ||
                 (pm->proto == HP_PORTMAP_NONE && pm->protocols & HP_PORTMAP_NATPMP))) {
    rc = hp__pm_natpmp_map(&pm->natpmp, &pm->req, &m, e2, sizeof e2);
    if (rc == 0)
      r->proto = HP_PORTMAP_NATPMP;
  }
  r->status = rc;
  if (rc == 0) {
    r->external = m.external;
    r->lifetime_s = m.lifetime_s;
    r->err[0] = '\0';
  } else {
    snprintf(r->err, sizeof r->err, "%s%s%s", e1, e1[0] && e2[0] ? "; " : "", e2);
  }
}

/* Worker thread: remove the mapping, free both protocol states. */
static void work_unmap(uv_work_t *w) {
  hp__portmap *pm = w->data;
  char err[HP_PORTMAP_ERR_MAX / 2] = "";

  pm->out.status = hp__pm_upnp_unmap(pm->upnp, pm->out.err, sizeof pm->out.err);
  if (hp__pm_natpmp_unmap(pm->natpmp, err, sizeof err) < 0) {
    pm->out.status = -EPROTO;
    snprintf(pm->out.err, sizeof pm->out.err, "%s", err);
  }
  pm->upnp = NULL;
  pm->natpmp = NULL;
}

static void on_closed(uv_handle_t *h) {
  hp__portmap *pm = h->data;
  hp__portmap_done_cb done = pm->done;
  void *data = pm->done_data;

  free(pm);
  if (done)
    done(data);
}

static void after_unmap(uv_work_t *w, int status) {
  hp__portmap *pm = w->data;
  char ext[HP_ADDR_STRLEN] = "";

  (void)status;
  hp__addr_format((struct sockaddr *)&pm->out.external, ext, sizeof ext);
  if (pm->proto != HP_PORTMAP_NONE) {
    if (pm->out.status == 0)
      HP_INFO("portmap",
              json_pack("{s:s, s:s}", "proto", hp__portmap_proto_name(pm->proto), "external", ext),
              "port mapping %s removed (%s)", ext, hp__portmap_proto_name(pm->proto));
    else
      HP_WARN("portmap", json_pack("{s:s}", "error", pm->out.err),
              "could not remove port mapping %s: %s", ext, pm->out.err);
  }
  pm->st = ST_CLOSING;
  uv_close((uv_handle_t *)&pm->timer, on_closed);
}

static void start_unmap(hp__portmap *pm) {
  pm->st = ST_UNMAPPING;
  uv_timer_stop(&pm->timer);
  if (uv_queue_work(pm->loop, &pm->work, work_unmap, after_unmap) < 0) {
    /* Cannot happen with a live loop; do it inline rather than leak. */
    work_unmap(&pm->work);
    after_unmap(&pm->work, 0);
  }
}

static void on_refresh_timer(uv_timer_t *t);

static void after_map(uv_work_t *w, int status) {
  hp__portmap *pm = w->data;
  hp__portmap_result *r = &pm->out;

  (void)status;
  if (pm->st == ST_STOP_AFTER_WORK) {
    if (r->status == 0)
      pm->proto = r->proto;
    start_unmap(pm);
    return;
  }
  r->refresh = pm->mapped_once;
  if (r->status == 0) {
    char ext[HP_ADDR_STRLEN] = "";

    pm->proto = r->proto;
    pm->mapped_once = 1;
    hp__addr_format((struct sockaddr *)&r->external, ext, sizeof ext);
    HP_INFO("portmap",
            json_pack("{s:s, s:s, s:i, s:b}", "proto", hp__portmap_proto_name(r->proto), "external",
                      ext, "lifetime_s", r->lifetime_s, "refresh", r->refresh),
            "port %d mapped to %s by %s (lease %d s)%s", pm->req.internal_port, ext,
            hp__portmap_proto_name(r->proto), r->lifetime_s, r->refresh ? ", refreshed" : "");
  } else {
    HP_INFO("portmap", json_pack("{s:s}", "error", r->err), "no port mapping for %d: %s",
            pm->req.internal_port, r->err);
  }
  pm->st = ST_IDLE;
  if (pm->cb)
    pm->cb(r, pm->data);
  if (pm->st != ST_IDLE)
    return; /* stopped from the callback */
  /* Refresh at half the lease; nothing to refresh without a mapping or
   * with a permanent lease. */
  if (pm->proto != HP_PORTMAP_NONE && (r->status < 0 || r->lifetime_s > 0)) {
    int wait_s = (r->status == 0 ? r->lifetime_s : pm->req.lifetime_s) / 2;
    if (wait_s < REFRESH_MIN_S)
      wait_s = REFRESH_MIN_S;
    uv_timer_start(&pm->timer, on_refresh_timer, (uint64_t)wait_s * 1000, 0);
  }
}

static void on_refresh_timer(uv_timer_t *t) {
  hp__portmap *pm = t->data;

  if (pm->st != ST_IDLE)
    return;
  pm->st = ST_REFRESHING;
  if (uv_queue_work(pm->loop, &pm->work, work_map, after_map) < 0)
    pm->st = ST_IDLE;
}

int hp__portmap_start(uv_loop_t *loop, int internal_port, const hp__portmap_opts *opts,
                      hp__portmap_cb cb, void *data, hp__portmap **out) {
  hp__portmap *pm;
  int r;

  if (internal_port < 1 || internal_port > 65535 || !cb || (opts && opts->lifetime_s < 0))
    return -EINVAL;
  pm = calloc(1, sizeof *pm);
  if (!pm)
    return -ENOMEM;
  pm->loop = loop;
  pm->cb = cb;
  pm->data = data;
  pm->protocols = opts && opts->protocols ? opts->protocols : HP_PORTMAP_UPNP | HP_PORTMAP_NATPMP;
  snprintf(pm->description, sizeof pm->description, "%s",
           opts && opts->description ? opts->description : "holepunch");
  pm->req.internal_port = internal_port;
  pm->req.lifetime_s = opts && opts->lifetime_s ? opts->lifetime_s : 3600;
  pm->req.timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 2000;
  pm->req.description = pm->description;
  pm->work.data = pm;
  uv_timer_init(loop, &pm->timer);
  pm->timer.data = pm;
  pm->st = ST_MAPPING;
  r = uv_queue_work(loop, &pm->work, work_map, after_map);
  if (r < 0) {
    pm->cb = NULL;
    pm->st = ST_CLOSING;
    uv_close((uv_handle_t *)&pm->timer, on_closed);
    return r;
  }
  *out = pm;
  return 0;
}

void hp__portmap_stop(hp__portmap *pm, hp__portmap_done_cb done, void *data) {
  if (!pm || pm->st >= ST_STOP_AFTER_WORK)
    return;
  pm->cb = NULL;
  pm->done = done;
  pm->done_data = data;
  if (pm->st == ST_MAPPING || pm->st == ST_REFRESHING)
    pm->st = ST_STOP_AFTER_WORK; /* after_map starts the removal */
  else
    start_unmap(pm);
}
