/*
 * discover.c - STUN servers and the port mapping next to /whoami (see
 * discover.h). One state per object: RUNNING (requests out, the bound
 * armed), REPORTED (cb fired; a port mapping may live on), STOPPED (being
 * freed: the timer's close callback frees it, after the mapping's removal
 * was started). A server given by name is resolved first (uv_getaddrinfo on
 * libuv's thread pool, never on the loop), within the same bound.
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

/* A name being resolved. Its memory belongs to the request until the
 * callback (cancelled or not): d is NULL once the discovery gave up on it. */
typedef struct gai_req {
  uv_getaddrinfo_t req;
  struct hp__disc *d;
  size_t i;
} gai_req;

struct hp__disc {
  uv_loop_t *loop;
  disc_state st;
  uv_timer_t timer; /* the bound; the deferred callback */
  hp__disc_cb cb;
  void *data;
  int port;                             /* the punch port */
  uint64_t deadline;                    /* uv_now() bound for everything */
  gai_req *gai[HP_DISC_STUN_MAX];       /* pending name resolutions */
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

/* Give up on a pending resolution: its callback only frees it. */
static void gai_detach(hp__disc *d, size_t i) {
  gai_req *g = d->gai[i];

  if (!g)
    return;
  d->gai[i] = NULL;
  g->d = NULL;
  uv_cancel((uv_req_t *)&g->req); /* fails when already running: it ends by itself */
}

static void report(hp__disc *d) {
  if (d->st != D_RUNNING)
    return;
  d->st = D_REPORTED;
  uv_timer_stop(&d->timer);
  /* What has not answered by now is cut off (and cancelled). */
  for (size_t i = 0; i < d->res.nstun; i++) {
    if (d->gai[i]) {
      gai_detach(d, i);
      d->res.stun[i].status = -ETIMEDOUT;
      snprintf(d->res.stun[i].err, sizeof d->res.stun[i].err,
               "name not resolved within the discovery bound");
      HP_WARN(
          "discover", json_pack("{s:s, s:s}", "name", d->res.name[i], "why", d->res.stun[i].err),
          "STUN server %s: name not resolved within the discovery bound: skipped", d->res.name[i]);
    }
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

/* Ask server i (an address now) with what is left of the bound. */
static void stun_ask(hp__disc *d, size_t i, const struct sockaddr *server) {
  uint64_t now = uv_now(d->loop);
  unsigned left = d->deadline > now ? (unsigned)(d->deadline - now) : 1;
  int r;

  d->ctx[i].d = d;
  d->ctx[i].i = i;
  memcpy(&d->res.stun[i].server, server,
         server->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  r = hp__stun_tcp_start(d->loop, server, d->port, left, on_stun, &d->ctx[i], &d->stun[i]);
  if (r < 0) {
    d->stun[i] = NULL;
    d->res.stun[i].status = r;
    snprintf(d->res.stun[i].err, sizeof d->res.stun[i].err, "cannot start: %s", strerror(-r));
    one_done(d);
  }
}

/* The first IPv4 address (the punch port is IPv4-bound), else the first IPv6 one. */
static const struct addrinfo *pick(const struct addrinfo *ai) {
  const struct addrinfo *v6 = NULL;

  for (; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in))
      return ai;
    if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6) && !v6)
      v6 = ai;
  }
  return v6;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  gai_req *g = (gai_req *)req;
  hp__disc *d = g->d;
  size_t i = g->i;
  const struct addrinfo *ai;

  free(g);
  if (!d) {
    uv_freeaddrinfo(res);
    return;
  }
  d->gai[i] = NULL;
  ai = status == 0 ? pick(res) : NULL;
  if (!ai) {
    const char *why = status < 0 ? uv_strerror(status) : "no IPv4 or IPv6 address";
    d->res.stun[i].status = -ENOENT;
    snprintf(d->res.stun[i].err, sizeof d->res.stun[i].err, "name not resolved: %s", why);
    HP_WARN("discover", json_pack("{s:s, s:s}", "name", d->res.name[i], "why", why),
            "STUN server %s: name not resolved (%s): skipped, the others are still asked",
            d->res.name[i], why);
    uv_freeaddrinfo(res);
    one_done(d);
    return;
  }
  {
    char a[HP_ADDR_STRLEN] = "";
    hp__addr_format(ai->ai_addr, a, sizeof a);
    HP_DEBUG("discover", json_pack("{s:s, s:s}", "name", d->res.name[i], "address", a),
             "STUN server %s is %s", d->res.name[i], a);
  }
  stun_ask(d, i, ai->ai_addr);
  uv_freeaddrinfo(res);
}

/* Resolve opts->stun[i].name; its port goes with it. */
static int resolve(hp__disc *d, size_t i, const hp__hostport *h) {
  struct addrinfo hints;
  char port[8];
  gai_req *g = calloc(1, sizeof *g);
  int r;

  if (!g)
    return -ENOMEM;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(port, sizeof port, "%d", h->port);
  g->d = d;
  g->i = i;
  r = uv_getaddrinfo(d->loop, &g->req, on_resolved, h->name, port, &hints);
  if (r < 0) {
    free(g);
    return r;
  }
  d->gai[i] = g;
  return 0;
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
  d->port = port;
  d->deadline = uv_now(loop) + opts->timeout_ms;
  d->res.nstun = opts->nstun;
  /* Counted first: an answer cannot come back within this call, but a
   * failure to start reports through one_done. */
  d->pending = opts->nstun;
  for (size_t i = 0; i < opts->nstun; i++) {
    const hp__hostport *h = &opts->stun[i];
    snprintf(d->res.name[i], sizeof d->res.name[i], "%s", h->name);
    if (h->name[0] == '\0') {
      stun_ask(d, i, (const struct sockaddr *)&h->addr);
    } else {
      int r = resolve(d, i, h);
      if (r < 0) {
        d->res.stun[i].status = r;
        snprintf(d->res.stun[i].err, sizeof d->res.stun[i].err, "cannot resolve: %s",
                 uv_strerror(r));
        HP_WARN("discover", json_pack("{s:s, s:s}", "name", h->name, "why", uv_strerror(r)),
                "STUN server %s: cannot resolve (%s): skipped", h->name, uv_strerror(r));
        one_done(d);
      }
    }
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
    gai_detach(d, i);
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
    const char *name = r->name[i];
    char srv[HP_ADDR_STRLEN] = "", label[HP_HOSTNAME_MAX + HP_ADDR_STRLEN + 4];
    if (s->server.ss_family == 0)
      continue; /* a name that did not resolve: warned about then */
    hp__addr_format((const struct sockaddr *)&s->server, srv, sizeof srv);
    /* "name (ip:port)" for a server given by name. */
    if (*name)
      snprintf(label, sizeof label, "%s (%s)", name, srv);
    else
      snprintf(label, sizeof label, "%s", srv);
    if (s->status < 0 || hp__addr_format((const struct sockaddr *)&s->mapped, a, sizeof a) < 0) {
      HP_INFO("discover", json_pack("{s:s, s:s, s:s}", "server", srv, "name", name, "why", s->err),
              "STUN server %s: no mapping (%s)", label, s->err);
      continue;
    }
    HP_INFO("discover",
            json_pack("{s:s, s:s, s:s, s:f}", "server", srv, "name", name, "mapped", a, "rtt_ms",
                      s->rtt_ms),
            "STUN server %s sees our punch port as %s", label, a);
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
