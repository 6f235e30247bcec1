/*
 * discover.c - STUN servers and the port mapping next to /whoami (see
 * discover.h). One state per object: RUNNING (requests out, the bound
 * armed), REPORTED (cb fired; a port mapping may live on), STOPPED (being
 * freed: the timer's close callback frees it, after the mapping's removal
 * was started).
 */
#include "discover.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "nat_classify.h"

typedef enum disc_state { D_RUNNING, D_REPORTED, D_STOPPED } disc_state;

struct hp__disc;
typedef struct stun_ctx {
  struct hp__disc *d;
  size_t i;
} stun_ctx;

struct hp__disc {
  uv_loop_t *loop;
  disc_state st;
  uv_timer_t timer; /* the bound; the deferred callback */
  hp__disc_cb cb;
  void *data;
  hp__stun_tcp *stun[HP_DISC_STUN_MAX]; /* pending requests */
  stun_ctx ctx[HP_DISC_STUN_MAX];       /* their callback data */
  hp__portmap *pm;
  int pm_pending; /* the first port-mapping answer is awaited */
  size_t pending; /* answers awaited, all kinds */
  hp__disc_result res;
};

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void report(hp__disc *d) {
  if (d->st != D_RUNNING)
    return;
  d->st = D_REPORTED;
  uv_timer_stop(&d->timer);
  /* What has not answered by now is cut off (and cancelled). */
  for (size_t i = 0; i < d->res.nstun; i++) {
    if (d->stun[i]) {
      hp__stun_tcp_cancel(d->stun[i]);
      d->stun[i] = NULL;
      d->res.stun[i].status = -ETIMEDOUT;
      snprintf(d->res.stun[i].err, sizeof d->res.stun[i].err,
               "no answer within the discovery bound");
    }
  }
  if (d->pm_pending) {
    d->pm_pending = 0;
    d->res.portmap_status = -ETIMEDOUT; /* a late mapping is removed at stop */
  }
  d->cb(&d->res, d->data);
}

static void on_timer(uv_timer_t *t) {
  report(t->data);
}

static void one_done(hp__disc *d) {
  if (d->pending && --d->pending == 0 && d->st == D_RUNNING)
    uv_timer_start(&d->timer, on_timer, 0, 0); /* on a turn of its own */
}

static void on_stun(const hp__stun_tcp_result *r, void *data) {
  stun_ctx *x = data;
  hp__disc *d = x->d;
  size_t i = x->i;

  d->stun[i] = NULL;
  d->res.stun[i] = *r;
  one_done(d);
}

static void on_portmap(const hp__portmap_result *r, void *data) {
  hp__disc *d = data;

  if (r->refresh || !d->pm_pending)
    return;
  d->pm_pending = 0;
  d->res.portmap_status = r->status;
  d->res.portmap_proto = r->proto;
  d->res.portmap_external = r->external;
  if (r->status < 0)
    HP_DEBUG("discover", json_pack("{s:s}", "why", r->err), "no port mapping: %s", r->err);
  one_done(d);
}

int hp__disc_start(uv_loop_t *loop, int port, const hp__disc_opts *opts, hp__disc_cb cb, void *data,
                   hp__disc **out) {
  hp__disc *d;

  if (opts->nstun > HP_DISC_STUN_MAX || port <= 0 || port > 65535)
    return -EINVAL;
  d = calloc(1, sizeof *d);
  if (!d)
    return -ENOMEM;
  d->loop = loop;
  d->cb = cb;
  d->data = data;
  d->st = D_RUNNING;
  d->res.portmap_status = 1;
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
  d->res.nstun = opts->nstun;
  for (size_t i = 0; i < opts->nstun; i++) {
    stun_ctx *x = &d->ctx[i];
    int r;
    x->d = d;
    x->i = i;
    r = hp__stun_tcp_start(loop, (const struct sockaddr *)&opts->stun[i], port, opts->timeout_ms,
                           on_stun, x, &d->stun[i]);
    d->res.stun[i].server = opts->stun[i];
    if (r < 0) {
      d->stun[i] = NULL;
      d->res.stun[i].status = r;
      snprintf(d->res.stun[i].err, sizeof d->res.stun[i].err, "cannot start: %s", strerror(-r));
      continue;
    }
    d->pending++;
  }
  if (opts->portmap) {
    hp__portmap_opts po;
    memset(&po, 0, sizeof po);
    /* SSDP discovery waits this long for answers, then the SOAP calls
     * follow: a third of the bound leaves them the rest. */
    po.timeout_ms = opts->timeout_ms / 3 ? opts->timeout_ms / 3 : 1;
    if (hp__portmap_start(loop, port, &po, on_portmap, d, &d->pm) == 0) {
      d->pm_pending = 1;
      d->pending++;
    } else {
      d->pm = NULL;
      d->res.portmap_status = -ENOMEM;
    }
  }
  uv_timer_start(&d->timer, on_timer, d->pending ? opts->timeout_ms : 0, 0);
  *out = d;
  return 0;
}

void hp__disc_stop(hp__disc *d) {
  if (!d || d->st == D_STOPPED)
    return;
  d->st = D_STOPPED;
  for (size_t i = 0; i < d->res.nstun; i++)
    if (d->stun[i]) {
      hp__stun_tcp_cancel(d->stun[i]);
      d->stun[i] = NULL;
    }
  if (d->pm)
    hp__portmap_stop(d->pm, NULL, NULL); /* removes the mapping, frees itself */
  d->pm = NULL;
  uv_close((uv_handle_t *)&d->timer, on_closed);
}

static int port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  if (ss->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return -1;
}

/* Add addr as srflx after the srflx entries, unless it is listed. */
static void add_srflx(hp__cands *c, const char *addr) {
  size_t at = 0;

  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->c[i].addr, addr) == 0)
      return;
  while (at < c->n && c->c[at].kind == HP_CAND_SRFLX)
    at++;
  if (c->n == HP_CANDS_MAX) {
    if (at == c->n)
      return; /* all srflx already: keep the earlier ones */
    c->n--;   /* the last host candidate makes room */
  }
  memmove(&c->c[at + 1], &c->c[at], (c->n - at) * sizeof c->c[0]);
  c->c[at].kind = HP_CAND_SRFLX;
  snprintf(c->c[at].addr, sizeof c->c[at].addr, "%s", addr);
  c->n++;
}

void hp__disc_apply(const hp__disc_result *r, int local_port, const struct sockaddr *rdv,
                    char *mapped, size_t mappedlen, int *port_preserved, hp__cands *cands) {
  hp__nat_input in;
  hp__nat_verdict v;
  char a[HP_ADDR_STRLEN];

  memset(&in, 0, sizeof in);
  in.hairpin = -1;
  {
    struct sockaddr_in *l = (struct sockaddr_in *)&in.local;
    l->sin_family = AF_INET;
    l->sin_port = htons((uint16_t)local_port);
  }
  /* The rendezvous' view counts only when it saw the port. */
  if (rdv && *port_preserved >= 0) {
    socklen_t sl;
    if (hp__addr_parse(mapped, strlen(mapped), &in.obs[0].mapped, &sl) == 0) {
      memcpy(&in.obs[0].observer, rdv,
             rdv->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
      in.n_obs = 1;
    }
  }
  for (size_t i = 0; i < r->nstun; i++) {
    const hp__stun_tcp_result *s = &r->stun[i];
    char srv[HP_ADDR_STRLEN] = "";
    hp__addr_format((const struct sockaddr *)&s->server, srv, sizeof srv);
    if (s->status < 0 || hp__addr_format((const struct sockaddr *)&s->mapped, a, sizeof a) < 0) {
      HP_INFO("discover", json_pack("{s:s, s:s}", "server", srv, "why", s->err),
              "STUN server %s: no mapping (%s)", srv, s->err);
      continue;
    }
    HP_INFO("discover",
            json_pack("{s:s, s:s, s:f}", "server", srv, "mapped", a, "rtt_ms", s->rtt_ms),
            "STUN server %s sees our punch port as %s", srv, a);
    if (*port_preserved < 0) {
      /* The rendezvous could not see our port (a proxy in front of it):
       * the STUN server could. */
      snprintf(mapped, mappedlen, "%s", a);
      *port_preserved = port_of(&s->mapped) == local_port;
      if (cands->n && cands->c[0].kind == HP_CAND_SRFLX)
        snprintf(cands->c[0].addr, sizeof cands->c[0].addr, "%s", a);
    }
    add_srflx(cands, a);
    if (in.n_obs < HP_NAT_OBS_MAX) {
      in.obs[in.n_obs].observer = s->server;
      in.obs[in.n_obs].mapped = s->mapped;
      in.n_obs++;
    }
  }
  if (r->portmap_status == 0 &&
      hp__addr_format((const struct sockaddr *)&r->portmap_external, a, sizeof a) > 0) {
    HP_INFO(
        "discover",
        json_pack("{s:s, s:s}", "mapped", a, "protocol", hp__portmap_proto_name(r->portmap_proto)),
        "the router maps %s to our punch port (%s): offered as a candidate", a,
        hp__portmap_proto_name(r->portmap_proto));
    add_srflx(cands, a);
  }
  if (in.n_obs >= 2 && hp__nat_classify(&in, &v) == 0)
    HP_INFO("discover",
            json_pack("{s:s, s:s, s:i}", "mapping",
                      hp__nat_mapping_name(v.mapping) ? hp__nat_mapping_name(v.mapping) : "unknown",
                      "public_ip", v.public_ip, "port_preserved", v.port_preserved),
            "NAT: %s", v.summary);
}
