/*
 * tunnel.c - `holepunch forward [BIND:]PORT` and `holepunch expose
 * HOST:PORT`, ssh -L style: every connection accepted on the forward side
 * becomes a stream to the expose side, which connects it to HOST:PORT (its
 * own setting: the forward side cannot choose). src/lib/app/tunnel.c does
 * the work; both sides run until stopped or until the other side stops.
 */
#include <stdio.h>
#include <string.h>

#include "app/tunnel.h"
#include "log.h"
#include "run.h"

typedef struct tunnel_app {
  hp__tunnel_cfg tc;
  hp__tunnel *t;
} tunnel_app;

static void on_tunnel_done(int status, const char *why, void *ud) {
  hp__cli_run *r = ud;
  tunnel_app *ta = r->app;

  ta->t = NULL;
  if (status == 0)
    HP_INFO("worker", NULL, "%s ended: %s", r->name, why);
  else
    HP_ERROR("worker", NULL, "%s failed: %s", r->name, why);
  hp__cli_run_end(r, status == 0 ? 0 : HP_STATUS_EXCHANGE);
}

static int tunnel_check(hp__cli_run *r) {
  tunnel_app *ta = r->app;
  char err[320];

  if (hp__tunnel_check(&ta->tc, err, sizeof err) < 0) {
    hp__cli_startup_error(NULL, "%s %s: %s", r->name, ta->tc.host, err);
    return -1;
  }
  return 0;
}

static int tunnel_start(hp__cli_run *r, hp_bs *chan) {
  tunnel_app *ta = r->app;
  char err[320];

  if (hp__tunnel_start(&r->loop, chan, &ta->tc, on_tunnel_done, r, &ta->t, err, sizeof err) < 0) {
    HP_ERROR("worker", NULL, "%s: %s", r->name, err);
    return HP_STATUS_EXCHANGE;
  }
  if (ta->tc.mode == HP_TUNNEL_FORWARD)
    HP_INFO("worker", json_pack("{s:s}", "listen", hp__tunnel_listen_addr(ta->t)),
            "forwarding connections to %s to the peer's exposed service",
            hp__tunnel_listen_addr(ta->t));
  else
    HP_INFO("worker", json_pack("{s:s, s:i}", "target", ta->tc.host, "port", ta->tc.port),
            "exposing %s:%d to the peer", ta->tc.host, ta->tc.port);
  return 0;
}

static void tunnel_stop(hp__cli_run *r) {
  tunnel_app *ta = r->app;
  hp__tunnel_stop(ta->t);
}

static int run_tunnel(hp__tunnel_mode mode, int argc, char **argv) {
  static tunnel_app ta;
  static hp__cli_run r = {.check = tunnel_check, .start = tunnel_start, .stop = tunnel_stop};
  hp__cfg_spec specs[HP_CLI_SPECS_MAX];
  size_t n = hp__cli_specs(specs, &hp__cli_code_spec, 1);
  const char *name = mode == HP_TUNNEL_FORWARD ? "forward" : "expose";
  char err[320], prog[64];
  int i;

  r.name = name;
  r.app = &ta;
  snprintf(prog, sizeof prog, "holepunch %s %s", name,
           mode == HP_TUNNEL_FORWARD ? "[BIND:]PORT" : "HOST:PORT");
  i = hp__cli_next_positional(specs, n, argc, argv, 1);
  if (i < argc) {
    if (hp__tunnel_parse(mode, argv[i], &ta.tc, err, sizeof err) < 0) {
      hp__cli_startup_error(NULL, "%s: %s", name, err);
      return HP_STATUS_CONFIG;
    }
    hp__cli_remove_arg(&argc, argv, i);
  } else {
    int help = 0;
    for (int k = 1; k < argc; k++)
      help |= !strcmp(argv[k], "--help") || !strcmp(argv[k], "-h") ||
              !strcmp(argv[k], "--version") || !strcmp(argv[k], "-V");
    if (!help) {
      hp__cli_startup_error(NULL, "%s needs %s (see holepunch %s --help)", name,
                            mode == HP_TUNNEL_FORWARD ? "[BIND:]PORT" : "HOST:PORT", name);
      return HP_STATUS_CONFIG;
    }
  }
  return hp__cli_run_main(
      &r, argc, argv, prog,
      mode == HP_TUNNEL_FORWARD
          ? "Listen on BIND:PORT (default bind 127.0.0.1) and carry every connection to the "
            "peer, which runs holepunch expose HOST:PORT with the same code and connects it "
            "there (ssh -L style).\nExit codes: 0 the peer stopped, 2 configuration, 3 "
            "rendezvous, 4 no peer, 5 no direct connection, 6 the secure channel failed (wrong "
            "code), 130/143 SIGINT/SIGTERM."
          : "Connect every stream the peer (holepunch forward, same code) opens to HOST:PORT; "
            "only this target, whatever the peer asks.\nExit codes: 0 the peer stopped, 2 "
            "configuration, 3 rendezvous, 4 no peer, 5 no direct connection, 6 the secure "
            "channel failed (wrong code), 130/143 SIGINT/SIGTERM.");
}

int hp__cli_forward(int argc, char **argv) {
  return run_tunnel(HP_TUNNEL_FORWARD, argc, argv);
}

int hp__cli_expose(int argc, char **argv) {
  return run_tunnel(HP_TUNNEL_EXPOSE, argc, argv);
}
