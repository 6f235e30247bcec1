/*
 * diagnose.c - `holepunch diagnose [--json]`: what the NAT in front of this
 * host does to the punch port, and what that means for holepunch. Needs only
 * RENDEZVOUS_SERVICE_URL (STUN_SERVERS and PORT_MAPPING add observers).
 *
 * From the punch port P (a listener on P, every request bound to P with
 * SO_REUSEADDR + SO_REUSEPORT, as the worker does):
 *   1. GET /connectback: the rendezvous' view of P's mapping, and the
 *      rendezvous dials that mapping from another port: open / drop / reset
 *      (the NAT's filtering of unsolicited inbound);
 *   2. GET /whoami on the rendezvous' OBSERVER_PORT (when it has one): the
 *      same address, another port: a mapping that changes with the
 *      destination port shows here;
 *   3. STUN Binding over TCP to each of STUN_SERVERS (other addresses);
 *   4. PORT_MAPPING=1: whether the router maps P (UPnP-IGD / NAT-PMP; the
 *      mapping is removed again);
 *   5. hairpinning: a connect from another local port to P's public mapping.
 * Then src/core/nat_classify.c's verdict, in plain words or as one JSON
 * object. Exit 0 when a verdict was reached, 3 when the rendezvous did not
 * answer, 2 for a bad setting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "addr.h"
#include "candidates.h"
#include "cli.h"
#include "log.h"
#include "nat_classify.h"
#include "portmap.h"
#include "stun_tcp.h"
#include "url.h"
#include "whoami.h"

#define DG_STUN_MAX 4
#define HAIRPIN_MS 1500
#define STUN_MS 3000

const hp__cfg_spec hp__cli_diagnose_specs[] = {
    {"DIAGNOSE_JSON", "json", HP_CFG_BOOL, "0", 0, 0, NULL, offsetof(hp__cli_cfg, diag_json),
     "print the report as one JSON object on stdout"},
};
const size_t hp__cli_ndiagnose_specs =
    sizeof hp__cli_diagnose_specs / sizeof hp__cli_diagnose_specs[0];

typedef struct dg {
  uv_loop_t loop;
  hp__cli_cfg cfg;
  hp__url url;
  int port;
  uv_tcp_t lis;
  uv_tcp_t hair;
  uv_connect_t hair_req;
  uv_timer_t timer;
  int pending;   /* answers awaited */
  int hair_done; /* the hairpin test started (and ended when pending drops) */
  int verdict_done;
  struct sockaddr_storage rdv; /* the rendezvous' address (observer 1) */
  hp__whoami_result cb_res, obs_res;
  int have_obs;
  size_t nstun;
  hp__hostport stun[DG_STUN_MAX]; /* as configured: an address or a name */
  hp__stun_tcp_result stun_res[DG_STUN_MAX];
  struct sctx {
    struct dg *d;
    size_t i;
    uv_getaddrinfo_t gai; /* a name being resolved (d is static: it outlives the request) */
  } sctx[DG_STUN_MAX];
  uint64_t stun_deadline; /* uv_now() bound for resolving and asking the STUN servers */
  hp__portmap *pm;
  hp__portmap_result pm_res;
  int pm_asked, pm_answered;
  int hairpin;      /* 1, 0, -1 */
  unsigned inbound; /* connections accepted on P (the connect-back, a hairpin) */
  int exit_code;
} dg;

static void step(dg *d);

static void one_done(dg *d) {
  d->pending--;
  step(d);
}

static void on_closed_nop(uv_handle_t *h) {
  (void)h;
}

/* Accept and reset whatever reaches P: the connect-back or a hairpin. */
static void on_inbound(uv_stream_t *s, int status) {
  dg *d = s->data;
  uv_tcp_t *c;

  if (status < 0 || !(c = malloc(sizeof *c)))
    return;
  uv_tcp_init(&d->loop, c);
  if (uv_accept(s, (uv_stream_t *)c) == 0) {
    d->inbound++;
    if (uv_tcp_close_reset(c, (uv_close_cb)free) < 0)
      uv_close((uv_handle_t *)c, (uv_close_cb)free);
    return;
  }
  uv_close((uv_handle_t *)c, (uv_close_cb)free);
}

static int listen_on(dg *d) {
  struct sockaddr_in sin;
  int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)d->port);
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 16) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  uv_tcp_init(&d->loop, &d->lis);
  d->lis.data = d;
  if (uv_tcp_open(&d->lis, fd) < 0)
    return -EBADF;
  return uv_listen((uv_stream_t *)&d->lis, 16, on_inbound);
}

static void on_stun(const hp__stun_tcp_result *r, void *data) {
  struct sctx *x = data;
  x->d->stun_res[x->i] = *r;
  one_done(x->d);
}

/* Ask STUN server i at addr with what is left of STUN_MS; 0 or < 0 (then
 * nothing is pending for it). */
static int stun_ask(dg *d, size_t i, const struct sockaddr *addr) {
  uint64_t now = uv_now(&d->loop);
  hp__stun_tcp *s;

  if (now >= d->stun_deadline)
    return -ETIMEDOUT;
  return hp__stun_tcp_start(&d->loop, addr, d->port, (unsigned)(d->stun_deadline - now), on_stun,
                            &d->sctx[i], &s);
}

/* A STUN server's name resolved (on libuv's thread pool): its first IPv4
 * address (the punch port is IPv4), else its first IPv6 one. A name that
 * does not resolve is a warning; that server is left out. */
static void on_stun_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct sctx *x = req->data;
  dg *d = x->d;
  const struct addrinfo *ai, *pick = NULL;
  const char *name = d->stun[x->i].name;

  for (ai = status == 0 ? res : NULL; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
    if (ai->ai_family == AF_INET6 && !pick)
      pick = ai;
  }
  if (!pick) {
    const char *why = status < 0 ? uv_strerror(status) : "no IPv4 or IPv6 address";
    HP_WARN("diagnose", json_pack("{s:s, s:s}", "name", name, "why", why),
            "STUN server %s: name not resolved (%s): skipped", name, why);
    d->stun_res[x->i].status = -ENOENT;
  } else if (stun_ask(d, x->i, pick->ai_addr) < 0) {
    HP_WARN("diagnose", json_pack("{s:s}", "name", name),
            "STUN server %s: cannot ask it (resolved too late or no socket): skipped", name);
    d->stun_res[x->i].status = -ETIMEDOUT;
  } else {
    uv_freeaddrinfo(res);
    return; /* pending until on_stun */
  }
  uv_freeaddrinfo(res);
  one_done(d);
}

static void on_portmap(const hp__portmap_result *r, void *data) {
  dg *d = data;
  if (d->pm_answered || r->refresh)
    return;
  d->pm_answered = 1;
  d->pm_res = *r;
  one_done(d);
}

static void on_observer(const hp__whoami_result *r, void *data) {
  dg *d = data;
  d->obs_res = *r;
  d->have_obs = r->status == 0 && r->port > 0;
  one_done(d);
}

static void on_hair_connect(uv_connect_t *req, int status) {
  dg *d = req->data;
  if (status == UV_ECANCELED)
    return;
  /* Reset after connecting: our own listener accepted and aborted it. */
  d->hairpin = status == 0 || status == UV_ECONNRESET;
  uv_timer_stop(&d->timer);
  if (uv_tcp_close_reset(&d->hair, on_closed_nop) < 0)
    uv_close((uv_handle_t *)&d->hair, on_closed_nop);
  one_done(d);
}

static void on_hair_timer(uv_timer_t *t) {
  dg *d = t->data;
  d->hairpin = 0;                                   /* no answer: the NAT does not loop it back */
  uv_close((uv_handle_t *)&d->hair, on_closed_nop); /* cancels the connect */
  one_done(d);
}

static void on_connectback(const hp__whoami_result *r, void *data) {
  dg *d = data;
  hp__whoami *w;

  d->cb_res = *r;
  if (r->status == 0 && r->observer_port > 0) {
    d->pending++;
    if (hp__whoami_start_at(&d->loop, &d->url, "/whoami", r->observer_port, d->port, d->cfg.ws_open,
                            NULL, on_observer, d, &w) < 0)
      d->pending--;
  }
  if (r->status == 0 && r->port > 0) {
    /* Hairpinning: from another local port to our own public mapping. */
    struct sockaddr_storage m;
    char a[HP_ADDR_STRLEN];
    socklen_t sl;
    if (hp__addr_join(r->ip, r->port, a, sizeof a) > 0 &&
        hp__addr_parse(a, strlen(a), &m, &sl) == 0) {
      uv_tcp_init(&d->loop, &d->hair);
      d->hair_req.data = d;
      d->hair_done = 1;
      if (uv_tcp_connect(&d->hair_req, &d->hair, (struct sockaddr *)&m, on_hair_connect) == 0) {
        d->pending++;
        uv_timer_start(&d->timer, on_hair_timer, HAIRPIN_MS, 0);
      } else {
        uv_close((uv_handle_t *)&d->hair, on_closed_nop);
      }
    }
  }
  one_done(d);
}

static const char *yes_no_null(int v) {
  return v < 0 ? "untested" : v ? "yes" : "no";
}

static void report(dg *d) {
  hp__nat_input in;
  hp__nat_verdict v;
  char a[HP_ADDR_STRLEN], o[HP_ADDR_STRLEN];
  json_t *observers = json_array(), *j;
  hp__cands hc;
  struct sockaddr_storage m;
  socklen_t sl;

  memset(&in, 0, sizeof in);
  in.hairpin = d->hairpin;
  in.local.ss_family = AF_INET;
  ((struct sockaddr_in *)&in.local)->sin_port = htons((uint16_t)d->port);
  if (hp__cands_gather(NULL, d->port, &hc) > 0) {
    socklen_t l;
    (void)hp__addr_parse(hc.c[0].addr, strlen(hc.c[0].addr), &in.local, &l);
  }
  in.inbound = !strcmp(d->cb_res.connect_back, "open")    ? HP_NAT_FILTER_OPEN
               : !strcmp(d->cb_res.connect_back, "drop")  ? HP_NAT_FILTER_DROP
               : !strcmp(d->cb_res.connect_back, "reset") ? HP_NAT_FILTER_RESET
                                                          : HP_NAT_FILTER_UNKNOWN;
#define OBS(who, ip, port, what)                                                                   \
  do {                                                                                             \
    if (hp__addr_join(ip, port, a, sizeof a) > 0 && hp__addr_parse(a, strlen(a), &m, &sl) == 0 &&  \
        in.n_obs < HP_NAT_OBS_MAX) {                                                               \
      in.obs[in.n_obs].observer = who;                                                             \
      in.obs[in.n_obs].mapped = m;                                                                 \
      in.n_obs++;                                                                                  \
      hp__addr_format((struct sockaddr *)&(who), o, sizeof o);                                     \
      json_array_append_new(observers,                                                             \
                            json_pack("{s:s,s:s,s:s}", "observer", o, "kind", what, "saw", a));    \
    }                                                                                              \
  } while (0)
  if (d->cb_res.status == 0 && d->cb_res.port > 0)
    OBS(d->rdv, d->cb_res.ip, d->cb_res.port, "rendezvous");
  if (d->have_obs) {
    struct sockaddr_storage r2 = d->rdv;
    if (r2.ss_family == AF_INET)
      ((struct sockaddr_in *)&r2)->sin_port = htons((uint16_t)d->cb_res.observer_port);
    else
      ((struct sockaddr_in6 *)&r2)->sin6_port = htons((uint16_t)d->cb_res.observer_port);
    OBS(r2, d->obs_res.ip, d->obs_res.port, "rendezvous observer port");
  }
  for (size_t i = 0; i < d->nstun; i++) {
    char ip[HP_ADDR_STRLEN];
    if (d->stun_res[i].status < 0 ||
        hp__addr_format((struct sockaddr *)&d->stun_res[i].mapped, ip, sizeof ip) < 0)
      continue;
    if (in.n_obs < HP_NAT_OBS_MAX) {
      in.obs[in.n_obs].observer = d->stun_res[i].server;
      in.obs[in.n_obs].mapped = d->stun_res[i].mapped;
      in.n_obs++;
      hp__addr_format((struct sockaddr *)&d->stun_res[i].server, o, sizeof o);
      json_array_append_new(observers,
                            json_pack("{s:s,s:s,s:s}", "observer", o, "kind", "stun", "saw", ip));
    }
  }
#undef OBS
  hp__nat_classify(&in, &v);
  j = hp__nat_verdict_json(&v);
  if (j) {
    char pm[HP_ADDR_STRLEN] = "";
    if (d->pm_answered && d->pm_res.status == 0)
      hp__addr_format((struct sockaddr *)&d->pm_res.external, pm, sizeof pm);
    json_object_set_new(j, "observers", observers);
    observers = NULL;
    json_object_set_new(j, "port_mapping",
                        !d->pm_asked ? json_null()
                        : *pm        ? json_pack("{s:s,s:s}", "protocol",
                                                 hp__portmap_proto_name(d->pm_res.proto), "external", pm)
                                     : json_false());
    json_object_set_new(j, "local_port", json_integer(d->port));
  }
  if (d->cfg.diag_json) {
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (t)
      printf("%s\n", t);
    free(t);
  } else {
    printf("punch port %d as the observers saw it:\n", d->port);
    for (size_t i = 0; j && i < json_array_size(json_object_get(j, "observers")); i++) {
      json_t *e = json_array_get(json_object_get(j, "observers"), i);
      printf("  %-26s %-22s saw %s\n", json_string_value(json_object_get(e, "kind")),
             json_string_value(json_object_get(e, "observer")),
             json_string_value(json_object_get(e, "saw")));
    }
    printf("public address:       %s\n", v.public_ip[0] ? v.public_ip : "unknown");
    printf("port preserved:       %s\n", yes_no_null(v.port_preserved));
    printf("mapping:              %s%s\n",
           hp__nat_mapping_name(v.mapping) ? hp__nat_mapping_name(v.mapping) : "unknown",
           v.mapping != HP_NAT_MAP_UNKNOWN && !v.mapping_certain ? " (not certain)" : "");
    printf("unsolicited inbound:  %s\n",
           v.filtering == HP_NAT_FILTER_OPEN    ? "reaches this host (open)"
           : v.filtering == HP_NAT_FILTER_DROP  ? "dropped silently (drop)"
           : v.filtering == HP_NAT_FILTER_RESET ? "answered with a reset (reset)"
                                                : "not tested");
    printf("hairpinning:          %s\n", yes_no_null(v.hairpin));
    if (!d->pm_asked)
      printf("port mapping:         not asked (PORT_MAPPING=0)\n");
    else if (d->pm_answered && d->pm_res.status == 0)
      printf("port mapping:         available (%s)\n", hp__portmap_proto_name(d->pm_res.proto));
    else
      printf("port mapping:         none (no UPnP-IGD or NAT-PMP router answered)\n");
    printf("what it means:        %s\n", v.summary);
  }
  json_decref(observers);
  json_decref(j);
  fflush(stdout);
}

static void stop(dg *d) {
  if (d->pm)
    hp__portmap_stop(d->pm, NULL, NULL); /* removes the test mapping */
  d->pm = NULL;
  uv_close((uv_handle_t *)&d->lis, on_closed_nop);
  if (!uv_is_closing((uv_handle_t *)&d->timer))
    uv_close((uv_handle_t *)&d->timer, on_closed_nop);
}

static void step(dg *d) {
  if (d->pending > 0 || d->verdict_done)
    return;
  d->verdict_done = 1;
  if (d->cb_res.status < 0) {
    HP_ERROR("diagnose", json_pack("{s:s}", "why", d->cb_res.err),
             "the rendezvous did not answer: %s", d->cb_res.err);
    d->exit_code = HP_STATUS_RENDEZVOUS;
  } else {
    report(d);
    d->exit_code = 0;
  }
  stop(d);
}

/* The rendezvous' address from the URL (a name is resolved once). */
static int rdv_addr(dg *d) {
  struct addrinfo hints, *res = NULL;
  char port[8];
  int r;

  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof port, "%d", d->url.port);
  r = getaddrinfo(d->url.host, port, &hints, &res);
  if (r != 0 || !res)
    return -1;
  memcpy(&d->rdv, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

int hp__cli_diagnose(int argc, char **argv) {
  static dg d;
  hp__cfg_spec specs[HP_CLI_SPECS_MAX];
  size_t n = hp__cli_specs(specs, hp__cli_diagnose_specs, hp__cli_ndiagnose_specs);
  char err[256];
  hp__whoami *w;
  int r;

  r = hp__cli_load(specs, n, &d.cfg, argc, argv, "holepunch diagnose",
                   "Ask the rendezvous (and STUN_SERVERS) what the NAT in front of this host does "
                   "to the punch port INTERNAL_TCP_PORT: public address, port preservation, "
                   "mapping, filtering of unsolicited inbound, hairpinning, port mapping; and what "
                   "that means for direct connections.\nExit codes: 0 a report, 2 configuration, "
                   "3 the rendezvous did not answer.");
  if (r >= 0)
    return r;
  if (hp__cli_check_common(&d.cfg) != 0)
    return HP_STATUS_CONFIG;
  hp__cli_setup_log(&d.cfg);
  if (hp__url_parse(d.cfg.url, &d.url, err, sizeof err) != 0 || rdv_addr(&d) < 0) {
    hp__cli_startup_error("RENDEZVOUS_SERVICE_URL", "cannot resolve the rendezvous %.200s",
                          d.cfg.url);
    return HP_STATUS_CONFIG;
  }
  if (strcmp(d.cfg.stun_servers, HP_CLI_NONE) != 0)
    d.nstun = (size_t)hp__hostport_list_parse(d.cfg.stun_servers, d.stun, DG_STUN_MAX, NULL, 0);
  d.port = d.cfg.internal_port;
  d.hairpin = -1;
  uv_loop_init(&d.loop);
  uv_timer_init(&d.loop, &d.timer);
  d.timer.data = &d;
  r = listen_on(&d);
  if (r < 0) {
    hp__cli_startup_error("INTERNAL_TCP_PORT", "cannot listen on INTERNAL_TCP_PORT %d: %s", d.port,
                          strerror(-r));
    return HP_STATUS_CONFIG;
  }
  d.pending = 1;
  if (hp__whoami_start_at(&d.loop, &d.url, "/connectback", 0, d.port, d.cfg.ws_open, NULL,
                          on_connectback, &d, &w) < 0) {
    d.cb_res.status = -ENOMEM;
    d.pending--;
  }
  d.stun_deadline = uv_now(&d.loop) + STUN_MS;
  for (size_t i = 0; i < d.nstun; i++) {
    d.stun_res[i].status = 0;
    d.pending++;
    d.sctx[i].d = &d;
    d.sctx[i].i = i;
    if (d.stun[i].name[0]) {
      struct addrinfo hints;
      char port[8];
      memset(&hints, 0, sizeof hints);
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_protocol = IPPROTO_TCP;
      hints.ai_flags = AI_NUMERICSERV;
      snprintf(port, sizeof port, "%d", d.stun[i].port);
      d.sctx[i].gai.data = &d.sctx[i];
      r = uv_getaddrinfo(&d.loop, &d.sctx[i].gai, on_stun_resolved, d.stun[i].name, port, &hints);
    } else {
      r = stun_ask(&d, i, (struct sockaddr *)&d.stun[i].addr);
    }
    if (r < 0) {
      d.stun_res[i].status = -EINVAL;
      d.pending--;
    }
  }
  if (d.cfg.port_mapping) {
    hp__portmap_opts po;
    memset(&po, 0, sizeof po);
    po.timeout_ms = 1000;
    po.lifetime_s = 60;
    po.description = "holepunch diagnose";
    d.pm_asked = 1;
    d.pending++;
    if (hp__portmap_start(&d.loop, d.port, &po, on_portmap, &d, &d.pm) < 0) {
      d.pm = NULL;
      d.pending--;
    }
  }
  step(&d);
  uv_run(&d.loop, UV_RUN_DEFAULT);
  uv_loop_close(&d.loop);
  return d.exit_code;
}
