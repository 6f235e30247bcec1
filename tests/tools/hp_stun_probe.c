/*
 * hp_stun_probe.c - ask STUN servers over TCP, one after the other, for the
 * mapping of one local port, and classify the NAT from the answers: the
 * lab's window on src/lib/discover/stun_tcp.c and src/core/nat_classify.c
 * (scenario e2e.stun_coturn), and the core of a future `holepunch diagnose`.
 *
 *   hp_stun_probe [--port P] [--timeout-ms N] SERVER...   (SERVER: ip:port)
 *
 * Prints one JSON line per server, {"server", "mapped", "local", "rtt_ms"}
 * or {"server", "error", "status"}, then {"verdict": {...}} (the object of
 * hp__nat_verdict_json; filtering and hairpin untested, so null). Exit 0
 * when every server answered, 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "addr.h"
#include "nat_classify.h"
#include "stun_tcp.h"

#define MAX_SERVERS HP_NAT_OBS_MAX

typedef struct probe {
  uv_loop_t *loop;
  struct sockaddr_storage servers[MAX_SERVERS];
  size_t n, next;
  int port;
  unsigned timeout_ms;
  int failures;
  hp__nat_input in;
} probe;

static void start_next(probe *p);

static void on_result(const hp__stun_tcp_result *r, void *data) {
  probe *p = data;
  char srv[HP_ADDR_STRLEN] = "", mapped[HP_ADDR_STRLEN] = "", local[HP_ADDR_STRLEN] = "";
  json_t *j;
  char *text;

  hp__addr_format((const struct sockaddr *)&r->server, srv, sizeof srv);
  if (r->status == 0) {
    hp__addr_format((const struct sockaddr *)&r->mapped, mapped, sizeof mapped);
    hp__addr_format((const struct sockaddr *)&r->local, local, sizeof local);
    j = json_pack("{s:s, s:s, s:s, s:f}", "server", srv, "mapped", mapped, "local", local, "rtt_ms",
                  r->rtt_ms);
    if (p->in.n_obs < HP_NAT_OBS_MAX) {
      hp__nat_obs *o = &p->in.obs[p->in.n_obs++];
      o->observer = r->server;
      o->mapped = r->mapped;
    }
    if (!p->in.local.ss_family)
      p->in.local = r->local;
  } else {
    j = json_pack("{s:s, s:s, s:i}", "server", srv, "error", r->err, "status", r->status);
    p->failures++;
  }
  text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  printf("%s\n", text ? text : "{\"error\":\"out of memory\"}");
  fflush(stdout);
  free(text);
  json_decref(j);
  start_next(p);
}

static void start_next(probe *p) {
  hp__stun_tcp *h;
  int r;

  while (p->next < p->n) {
    r = hp__stun_tcp_start(p->loop, (struct sockaddr *)&p->servers[p->next++], p->port,
                           p->timeout_ms, on_result, p, &h);
    if (r == 0)
      return;
    printf("{\"error\":\"cannot start the request: %s\",\"status\":%d}\n", strerror(-r), r);
    p->failures++;
  }
}

int main(int argc, char **argv) {
  probe p;
  uv_loop_t loop;
  hp__nat_verdict v;
  json_t *j;
  char *text;
  int i;

  memset(&p, 0, sizeof p);
  p.timeout_ms = 3000;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      p.port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
      p.timeout_ms = (unsigned)atoi(argv[++i]);
    } else if (p.n < MAX_SERVERS &&
               hp__addr_parse(argv[i], strlen(argv[i]), &p.servers[p.n], NULL) == 0) {
      p.n++;
    } else {
      fprintf(stderr, "usage: hp_stun_probe [--port P] [--timeout-ms N] IP:PORT... (at most %d)\n",
              MAX_SERVERS);
      return 2;
    }
  }
  if (p.n == 0 || p.port < 0 || p.port > 65535 || p.timeout_ms == 0) {
    fprintf(stderr, "usage: hp_stun_probe [--port P] [--timeout-ms N] IP:PORT...\n");
    return 2;
  }
  uv_loop_init(&loop);
  p.loop = &loop;
  p.in.hairpin = -1;
  start_next(&p);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);

  hp__nat_classify(&p.in, &v);
  j = json_pack("{s:o}", "verdict", hp__nat_verdict_json(&v));
  text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  printf("%s\n", text ? text : "{\"error\":\"out of memory\"}");
  free(text);
  json_decref(j);
  return p.failures ? 1 : 0;
}
