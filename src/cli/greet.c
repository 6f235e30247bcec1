/*
 * greet.c - `holepunch [greet]`, the original behaviour: meet a peer in a
 * room of the rendezvous, punch a direct TCP connection, exchange one
 * greeting line each way.
 *
 * One libuv loop carries everything: the library's punch (lws client,
 * listener, punch sockets), the health server (a second lws context on the
 * same loop), signals, and the message exchange.
 *
 * Exit codes (DESIGN.md): 0 ok, 2 configuration, 3 rendezvous, 4 no peer,
 * 5 no direct connection, 6 message exchange; 143 on SIGTERM and 130 on
 * SIGINT (128 + signal number, after a clean shutdown).
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "health.h"
#include "holepunch.h"
#include "log.h"
#include "wire.h"

#define GREETING_MAX 4096
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define BIND_AUTO "auto"

/* greet's own settings, after the common ones (cli.h); SERVICE_MODE stays
 * the last entry (its default depends on K_SERVICE). */
const hp__cfg_spec hp__cli_greet_specs[] = {
    {"PORT", "port", HP_CFG_INT, "8080", 0, 65535, NULL, offsetof(hp__cli_cfg, port),
     "health-check HTTP port (GET /healthz); 0 disables it"},
    {"P2P_MSG_TIMEOUT", "p2p-msg-timeout", HP_CFG_SECONDS, "10.0", 0.1, 3600, NULL,
     offsetof(hp__cli_cfg, p2p_msg), "s for the message exchange once connected"},
    {"HEALTH_BIND", "health-bind", HP_CFG_STRING, BIND_AUTO, 0, 0, NULL,
     offsetof(hp__cli_cfg, health_bind),
     "address of the health server: \"auto\" is 127.0.0.1, or 0.0.0.0 in service mode"},
    {"SERVICE_MODE", "service-mode", HP_CFG_BOOL, "0", 0, 0, NULL,
     offsetof(hp__cli_cfg, service_mode),
     "keep pairing with backoff instead of exiting (default on when K_SERVICE is set)"},
};
const size_t hp__cli_ngreet_specs = sizeof hp__cli_greet_specs / sizeof hp__cli_greet_specs[0];

typedef struct app {
  uv_loop_t loop;
  hp__cli_cfg cfg;
  uv_signal_t sigterm, sigint;
  uv_timer_t retry;
  hp__health *health;
  hp_punch *punch;
  unsigned attempts;
  unsigned backoff_ms;
  int exit_code;
  int stopping;
  const char *phase; /* health state when no punch is running */
  char own_id[HP_ID_MAX + 1];
  char peer_id[HP_ID_MAX + 1];
  char room[HP_ID_MAX + 1];
  /* message exchange */
  uv_tcp_t xtcp;
  uv_timer_t xtimer;
  uv_write_t xw;
  int xopen; /* open exchange handles */
  int xwrote, xread, xcode;
  char xout[HP_ID_MAX * 2 + 64];
  char xin[GREETING_MAX];
  size_t xinlen;
} app;

static void start_attempt(app *a);

/* ---- shutdown and retries ---- */

static void shutdown_all(app *a) {
  a->stopping = 1;
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->retry, NULL);
  hp__health_stop(a->health);
  a->health = NULL;
  hp_punch_destroy(a->punch);
  a->punch = NULL;
  if (a->xopen) {
    if (!uv_is_closing((uv_handle_t *)&a->xtcp))
      uv_close((uv_handle_t *)&a->xtcp, NULL);
    if (!uv_is_closing((uv_handle_t *)&a->xtimer))
      uv_close((uv_handle_t *)&a->xtimer, NULL);
  }
}

static void on_retry(uv_timer_t *t) {
  start_attempt(t->data);
}

/* One attempt is over with exit code `code`. */
static void attempt_finished(app *a, int code) {
  unsigned delay;

  a->phase = code == 0 ? "done" : "failed";
  if (a->stopping)
    return;
  if (!a->cfg.service_mode || code == HP_STATUS_CONFIG) {
    a->exit_code = code;
    shutdown_all(a);
    return;
  }
  /* Service mode: 1 s doubling to 60 s, +-25 % jitter so that a fleet does
   * not retry in lockstep; a success starts over at 1 s. */
  if (code == 0)
    a->backoff_ms = BACKOFF_MIN_MS;
  delay = a->backoff_ms;
  delay = delay * 3 / 4 + (unsigned)(random() % (delay / 2 + 1));
  a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
  a->phase = "backoff";
  HP_INFO("worker", json_pack("{s:i, s:i}", "exit_code", code, "retry_in_ms", (int)delay),
          "service mode: next attempt in %.1f s", delay / 1000.0);
  uv_timer_start(&a->retry, on_retry, delay, 0);
}

/* ---- message exchange on the direct connection ---- */

static void on_x_closed(uv_handle_t *h) {
  app *a = h->data;
  if (--a->xopen == 0)
    attempt_finished(a, a->xcode);
}

static void x_end(app *a, int code, const char *why) {
  if (uv_is_closing((uv_handle_t *)&a->xtcp))
    return;
  a->xcode = code;
  if (code != 0)
    HP_ERROR("worker", json_pack("{s:s, s:s}", "peer", a->peer_id, "room", a->room),
             "message exchange with %s failed: %s", a->peer_id, why);
  else
    HP_INFO("worker", json_pack("{s:s, s:s}", "peer", a->peer_id, "room", a->room),
            "message exchange complete");
  uv_close((uv_handle_t *)&a->xtcp, on_x_closed);
  uv_close((uv_handle_t *)&a->xtimer, on_x_closed);
}

static void x_check(app *a) {
  if (a->xwrote && a->xread)
    x_end(a, 0, NULL);
}

static void on_x_timeout(uv_timer_t *t) {
  app *a = t->data;
  x_end(a, HP_STATUS_EXCHANGE,
        a->xread ? "our greeting could not be sent in time" : "no greeting within P2P_MSG_TIMEOUT");
}

static void on_x_written(uv_write_t *req, int status) {
  app *a = req->data;
  if (status == UV_ECANCELED)
    return;
  if (status < 0) {
    x_end(a, HP_STATUS_EXCHANGE, uv_strerror(status));
    return;
  }
  a->xwrote = 1;
  x_check(a);
}

static void on_x_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  app *a = h->data;
  (void)sz;
  *buf = uv_buf_init(a->xin + a->xinlen, (unsigned)(sizeof a->xin - a->xinlen));
}

static void on_x_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  app *a = s->data;
  char *nl;
  (void)buf;

  if (n == 0 || a->xread)
    return;
  if (n < 0) {
    x_end(a, HP_STATUS_EXCHANGE,
          n == UV_EOF       ? "the peer closed the connection before its greeting"
          : n == UV_ENOBUFS ? "greeting longer than 4096 bytes"
                            : uv_strerror((int)n));
    return;
  }
  a->xinlen += (size_t)n;
  nl = memchr(a->xin, '\n', a->xinlen);
  if (!nl) {
    if (a->xinlen >= sizeof a->xin)
      x_end(a, HP_STATUS_EXCHANGE, "greeting longer than 4096 bytes");
    return;
  }
  *nl = '\0';
  if (nl > a->xin && nl[-1] == '\r')
    nl[-1] = '\0';
  for (char *p = a->xin; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = '?';
  printf("peer %s says: %s\n", a->peer_id, a->xin);
  fflush(stdout);
  a->xread = 1;
  uv_read_stop(s);
  x_check(a);
}

static void start_exchange(app *a, int fd) {
  uv_buf_t b;
  int r;

  a->phase = "exchanging";
  a->xwrote = a->xread = 0;
  a->xinlen = 0;
  uv_tcp_init(&a->loop, &a->xtcp);
  uv_timer_init(&a->loop, &a->xtimer);
  a->xtcp.data = a->xtimer.data = a->xw.data = a;
  a->xopen = 2;
  r = uv_tcp_open(&a->xtcp, fd);
  if (r < 0) {
    close(fd);
    x_end(a, HP_STATUS_EXCHANGE, uv_strerror(r));
    return;
  }
  /* fd belongs to a->xtcp now. */
  uv_timer_start(&a->xtimer, on_x_timeout, (uint64_t)(a->cfg.p2p_msg * 1000.0), 0);
  snprintf(a->xout, sizeof a->xout, "hello from %s in room %s\n", a->own_id, a->room);
  b = uv_buf_init(a->xout, (unsigned)strlen(a->xout));
  r = uv_write(&a->xw, (uv_stream_t *)&a->xtcp, &b, 1, on_x_written);
  if (r == 0)
    r = uv_read_start((uv_stream_t *)&a->xtcp, on_x_alloc, on_x_read);
  if (r < 0)
    x_end(a, HP_STATUS_EXCHANGE, uv_strerror(r));
}

/* ---- the punch ---- */

static void on_punch_done(hp_punch *p, hp_status status, void *data) {
  app *a = data;
  hp_info info;
  int fd = -1;

  hp_punch_info(p, &info);
  snprintf(a->own_id, sizeof a->own_id, "%s", info.own_id);
  snprintf(a->peer_id, sizeof a->peer_id, "%s", info.peer_id);
  if (status == HP_STATUS_OK)
    fd = hp_punch_take_fd(p);
  hp_punch_destroy(p);
  a->punch = NULL;
  if (a->stopping) {
    if (fd >= 0)
      close(fd);
    return;
  }
  if (status == HP_STATUS_OK && fd >= 0) {
    start_exchange(a, fd);
    return;
  }
  attempt_finished(a, status == HP_STATUS_OK ? HP_STATUS_NO_DIRECT : (int)status);
}

static void start_attempt(app *a) {
  hp_config c;
  int r;

  /* In service mode a generated id is kept over retries. */
  hp__cli_punch_config(&a->cfg, a->own_id, &c);
  a->attempts++;
  a->peer_id[0] = '\0';
  r = hp_punch_start(&a->loop, &c, on_punch_done, a, &a->punch);
  if (r < 0) {
    a->punch = NULL;
    attempt_finished(a, HP_STATUS_CONFIG);
  }
}

/* ---- health and signals ---- */

static void health_fill(json_t *o, void *data) {
  app *a = data;
  hp_info info;
  const char *id = a->own_id, *peer = a->peer_id;

  if (a->punch) {
    hp_punch_info(a->punch, &info);
    id = info.own_id;
    peer = info.peer_id;
  }
  json_object_set_new(o, "state", json_string(a->punch ? hp_punch_state(a->punch) : a->phase));
  json_object_set_new(o, "room", json_string(a->room));
  json_object_set_new(o, "id", json_string(id));
  json_object_set_new(o, "peer", *peer ? json_string(peer) : json_null());
  json_object_set_new(o, "attempts", json_integer(a->attempts));
}

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  if (a->stopping)
    return;
  HP_INFO("worker", json_pack("{s:i}", "signal", signum), "%s received, shutting down",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  a->exit_code = 128 + signum;
  shutdown_all(a);
}

/* What the table cannot express beyond the common checks: the health
 * address. */
static int check_settings(const hp__cli_cfg *c) {
  if (hp__cli_check_common(c) != 0)
    return -1;
  if (strcmp(c->health_bind, BIND_AUTO) != 0) {
    unsigned char tmp[16];
    if (inet_pton(AF_INET, c->health_bind, tmp) != 1) {
      hp__cli_startup_error("HEALTH_BIND",
                            "HEALTH_BIND=\"%.64s\" is not valid: expected \"auto\" or an IPv4 "
                            "address of this host (127.0.0.1, 0.0.0.0 for all)",
                            c->health_bind);
      return -1;
    }
  }
  return 0;
}

int hp__cli_greet(int argc, char **argv) {
  static app a;
  hp__cfg_spec specs[HP_CLI_SPECS_MAX];
  size_t n = hp__cli_specs(specs, hp__cli_greet_specs, hp__cli_ngreet_specs);
  const char *bind;
  int r;

  if (getenv("K_SERVICE"))
    specs[n - 1].def = "1"; /* SERVICE_MODE, the last entry */
  r = hp__cli_load(specs, n, &a.cfg, argc, argv, "holepunch [greet]",
                   "Meet a peer in a room of the rendezvous service, punch a direct TCP "
                   "connection through both NATs, exchange one greeting.\nExit codes: 0 ok, 2 "
                   "configuration, 3 rendezvous, 4 no peer, 5 no direct connection, 6 message "
                   "exchange, 130/143 SIGINT/SIGTERM.\nOther subcommands: holepunch help.");
  if (r >= 0)
    return r;
  if (check_settings(&a.cfg) != 0)
    return HP_STATUS_CONFIG;
  snprintf(a.room, sizeof a.room, "%s", a.cfg.room);
  a.phase = "starting";
  a.backoff_ms = BACKOFF_MIN_MS;
  srandom((unsigned)(getpid() ^ uv_hrtime()));

  uv_loop_init(&a.loop);
  uv_signal_init(&a.loop, &a.sigterm);
  uv_signal_init(&a.loop, &a.sigint);
  uv_timer_init(&a.loop, &a.retry);
  a.sigterm.data = a.sigint.data = a.retry.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  /* The health server shows room, id and peer: on the machine only, unless
   * a platform probes it from outside (service mode, Cloud Run). */
  bind = strcmp(a.cfg.health_bind, BIND_AUTO) != 0 ? a.cfg.health_bind
         : a.cfg.service_mode                      ? "0.0.0.0"
                                                   : "127.0.0.1";
  HP_INFO("worker",
          json_pack("{s:s, s:s, s:i, s:s, s:b}", "version", hp_version(), "room", a.room, "port",
                    a.cfg.port, "health_bind", bind, "service_mode", a.cfg.service_mode),
          "holepunch %s starting", hp_version());
  if (a.cfg.port > 0 &&
      (r = hp__health_start(&a.loop, bind, a.cfg.port, health_fill, &a, &a.health)) < 0) {
    hp__cli_startup_error(
        "PORT",
        "PORT: cannot listen on %s:%d: %s (choose another port, or 0 to disable the "
        "health server)",
        bind, a.cfg.port, strerror(-r));
    a.exit_code = HP_STATUS_CONFIG;
    shutdown_all(&a);
  } else {
    start_attempt(&a);
  }
  uv_run(&a.loop, UV_RUN_DEFAULT);
  r = uv_loop_close(&a.loop);
  if (r != 0)
    HP_WARN("worker", NULL, "event loop still busy at exit: %s", uv_strerror(r));
  HP_DEBUG("worker", json_pack("{s:i}", "exit_code", a.exit_code), "exit");
  return a.exit_code;
}
