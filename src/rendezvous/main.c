/*
 * main.c - holepunch-rendezvous: configuration, signals, the one libuv loop.
 *
 * Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the server
 * cannot start (e.g. the port is taken), 2 for a bad configuration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "redisurl.h"
#include "server.h"
#include "store.h"
#include "url.h"
#include "wire.h"

#define PROG "holepunch-rendezvous"
#define COMP "rendezvous"
#define FD_RESERVE 128    /* listener, loop internals, stdio, refused connections being answered */
#define DRAIN_SECONDS 2.0 /* bound of the last loop run, after the server stopped */

typedef struct rdv_config {
  int port;
  int trust_proxy;
  int log_level;  /* index into level_choices = hp__log_level */
  int log_format; /* index into format_choices */
  const char *bind;
  int max_connections;
  int max_connections_per_ip;
  int max_hellos_per_minute;
  int max_message_bytes;
  int input_buffer_budget;
  double hello_timeout;
  double http_timeout;
  double request_line_timeout;
  double ping_interval;
  int observer_port;
  double idle_timeout;
  double shutdown_timeout;
  const char *redis_url; /* "none": rooms in memory */
  double redis_ttl;
  double redis_timeout;
  const char *instance_id;  /* "random" */
  const char *instance_url; /* "none" */
  int relay;
  uint64_t relay_rate;
  uint64_t relay_max_bytes;
  int relay_max_sessions;
  double relay_idle_timeout;
  double relay_session_ttl;
} rdv_config;

static const char *const level_choices[] = {"debug", "info", "warning", "error", NULL};
enum { FORMAT_AUTO = 0, FORMAT_JSON, FORMAT_TEXT };
static const char *const format_choices[] = {"auto", "json", "text", NULL};

#define F(field) offsetof(rdv_config, field)
static const hp__cfg_spec specs[] = {
    {"PORT", "port", HP_CFG_INT, "8080", 0, 65535, NULL, F(port),
     "TCP port of the HTTP/WebSocket server (0: any free port, logged at start)"},
    {"BIND", "bind", HP_CFG_STRING, "0.0.0.0", 0, 0, NULL, F(bind),
     "local address to listen on: 0.0.0.0 (IPv4), :: (IPv4 and IPv6) or one address"},
    {"TRUST_PROXY", "trust-proxy", HP_CFG_BOOL, "0", 0, 0, NULL, F(trust_proxy),
     "take the client address from the right-most X-Forwarded-For entry (only behind a "
     "proxy that appends it)"},
    {"LOG_LEVEL", "log-level", HP_CFG_ENUM, "info", 0, 0, level_choices, F(log_level),
     "least severe log events shown"},
    {"LOG_FORMAT", "log-format", HP_CFG_ENUM, "auto", 0, 0, format_choices, F(log_format),
     "json (one object per line), text, or auto: text on a terminal, else json"},
    {"MAX_CONNECTIONS", "max-connections", HP_CFG_INT, "100000", 1, 10000000, NULL,
     F(max_connections), "client connections (HTTP and WebSocket) served at once"},
    {"MAX_CONNECTIONS_PER_IP", "max-connections-per-ip", HP_CFG_INT, "256", 1, 10000000, NULL,
     F(max_connections_per_ip),
     "client connections from one address at once (the X-Forwarded-For client with "
     "TRUST_PROXY=1)"},
    {"MAX_HELLOS_PER_MINUTE", "max-hellos-per-minute", HP_CFG_INT, "60", 1, 10000000, NULL,
     F(max_hellos_per_minute), "hellos accepted from one client address per minute (and burst)"},
    {"MAX_MESSAGE_BYTES", "max-message-bytes", HP_CFG_INT, "65536", 1024, HP_MSG_MAX, NULL,
     F(max_message_bytes), "largest signaling message accepted, in bytes"},
    {"INPUT_BUFFER_BUDGET", "input-buffer-budget", HP_CFG_INT, "67108864", 65536, 2147483647, NULL,
     F(input_buffer_budget),
     "bytes of unfinished WebSocket input all connections may hold together"},
    {"HELLO_TIMEOUT", "hello-timeout", HP_CFG_SECONDS, "10", 0.1, 3600, NULL, F(hello_timeout),
     "s for a new WebSocket to send its hello"},
    {"HTTP_TIMEOUT", "http-timeout", HP_CFG_SECONDS, "10", 1, 3600, NULL, F(http_timeout),
     "s for a client to send a complete HTTP request, body included (and keep-alive idle "
     "time)"},
    {"REQUEST_LINE_TIMEOUT", "request-line-timeout", HP_CFG_SECONDS, "3", 0.1, 3600, NULL,
     F(request_line_timeout),
     "s for a new connection to send its request line (at most HTTP_TIMEOUT)"},
    {"PING_INTERVAL", "ping-interval", HP_CFG_SECONDS, "30", 1, 3600, NULL, F(ping_interval),
     "s of WebSocket silence before the server sends a ping"},
    {"IDLE_TIMEOUT", "idle-timeout", HP_CFG_SECONDS, "90", 2, 7200, NULL, F(idle_timeout),
     "s of WebSocket silence (no pong either) before the server hangs up"},
    {"OBSERVER_PORT", "observer-port", HP_CFG_INT, "0", 0, 65535, NULL, F(observer_port),
     "a second port with the same routes, the second observer of `holepunch diagnose` "
     "(0: none)"},
    {"SHUTDOWN_TIMEOUT", "shutdown-timeout", HP_CFG_SECONDS, "5", 0, 600, NULL, F(shutdown_timeout),
     "s to wait for clients to close on SIGTERM/SIGINT before exiting"},
    {"REDIS_URL", "redis-url", HP_CFG_STRING, "none", 0, 0, NULL, F(redis_url),
     "rooms in Redis, shared by every instance with the same URL: "
     "redis://[[user]:password@]host[:port][/db] or unix:/path[?password=P&db=N]; none: rooms "
     "in this process's memory"},
    {"REDIS_TTL", "redis-ttl", HP_CFG_SECONDS, "30", 3, 3600, NULL, F(redis_ttl),
     "s a worker stays in Redis after its instance stopped renewing it (dies)"},
    {"REDIS_TIMEOUT", "redis-timeout", HP_CFG_SECONDS, "1", 0.05, 60, NULL, F(redis_timeout),
     "s to connect to Redis and for each answer"},
    {"INSTANCE_ID", "instance-id", HP_CFG_STRING, "random", 0, 0, NULL, F(instance_id),
     "this instance's name in Redis and its logs: 1-32 of A-Za-z0-9._- (random: drawn at start)"},
    {"INSTANCE_URL", "instance-url", HP_CFG_STRING, "none", 0, 0, NULL, F(instance_url),
     "this instance's public base URL (http(s):// or ws(s)://); peer messages carry the waiting "
     "worker's instance URL as relay_url; none: no relay_url"},
    {"RELAY", "relay", HP_CFG_BOOL, "on", 0, 0, NULL, F(relay),
     "serve the relay (GET /relay) for pairs that cannot connect directly"},
    {"RELAY_RATE", "relay-rate", HP_CFG_BYTES, "10485760", 0, 1e15, NULL, F(relay_rate),
     "bytes per second per relayed session, both directions together (0: no limit)"},
    {"RELAY_MAX_BYTES", "relay-max-bytes", HP_CFG_BYTES, "10737418240", 0, 1e15, NULL,
     F(relay_max_bytes), "bytes per relayed session, then it is closed (0: no limit)"},
    {"RELAY_MAX_SESSIONS", "relay-max-sessions", HP_CFG_INT, "1000", 1, 1000000, NULL,
     F(relay_max_sessions), "relayed sessions open at once (more are refused with relay_full)"},
    {"RELAY_IDLE_TIMEOUT", "relay-idle-timeout", HP_CFG_SECONDS, "300", 1, 86400, NULL,
     F(relay_idle_timeout), "s without a relayed byte either way before the session is closed"},
    {"RELAY_SESSION_TTL", "relay-session-ttl", HP_CFG_SECONDS, "120", 1, 3600, NULL,
     F(relay_session_ttl), "s after the pairing within which both workers must join the relay"},
};
#undef F

#define NSPECS (sizeof(specs) / sizeof(specs[0]))

typedef struct app {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  hp__rdv *srv;
  double shutdown_timeout;
} app;

static void on_done(void *arg) {
  app *a = arg;
  /* The server is gone: let the loop run dry. */
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  HP_INFO(COMP, json_pack("{s:i}", "signal", signum), "received %s: shutting down",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  hp__rdv_shutdown(a->srv, a->shutdown_timeout, on_done, a);
}

static void on_drain_deadline(uv_timer_t *t) {
  uv_stop(t->loop);
}

/*
 * Run the loop until it has nothing left to do, for at most seconds, so that
 * a handle left open (e.g. after a failed start) cannot hang the exit.
 * Returns 0 when the loop is dry, else -EBUSY.
 */
static int drain_loop(uv_loop_t *loop, double seconds) {
  uv_timer_t guard;

  if (uv_timer_init(loop, &guard) < 0)
    return -EBUSY;
  uv_timer_start(&guard, on_drain_deadline, (uint64_t)(seconds * 1000.0), 0);
  uv_unref((uv_handle_t *)&guard); /* the guard alone does not keep the loop alive */
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* runs the close of the guard; never blocks */
  return uv_loop_alive(loop) ? -EBUSY : 0;
}

/* Checks the table cannot express. Returns 0 or prints why and returns -1. */
static int check_config(const rdv_config *c) {
  unsigned char bin[16];

  if (inet_pton(AF_INET, c->bind, bin) != 1 && inet_pton(AF_INET6, c->bind, bin) != 1) {
    fprintf(stderr,
            PROG ": BIND=\"%.64s\" is not valid: expected an IP address such as 0.0.0.0, :: or "
                 "127.0.0.1\n",
            c->bind);
    return -1;
  }
  if (c->idle_timeout <= c->ping_interval) {
    fprintf(stderr,
            PROG ": IDLE_TIMEOUT=%g is not valid: expected more than PING_INTERVAL (%g), so that "
                 "a ping can be answered before the hang-up\n",
            c->idle_timeout, c->ping_interval);
    return -1;
  }
  if (c->ping_interval > 65535 || c->idle_timeout > 65535)
    return -1; /* the ranges of the table already prevent this */
  if (strcmp(c->instance_id, "random") && !hp__store_valid_instance(c->instance_id)) {
    fprintf(stderr,
            PROG ": INSTANCE_ID=\"%.64s\" is not valid: expected 1 to %d of the characters "
                 "A-Z a-z 0-9 . _ - (or random)\n",
            c->instance_id, HP_STORE_INSTANCE_MAX);
    return -1;
  }
  if (strcmp(c->instance_url, "none")) {
    char why[256];
    hp__url u;
    if (strlen(c->instance_url) >= HP_RELAY_URL_MAX) {
      fprintf(stderr, PROG ": INSTANCE_URL is %zu bytes long: at most %d are allowed\n",
              strlen(c->instance_url), HP_RELAY_URL_MAX - 1);
      return -1;
    }
    if (hp__url_parse(c->instance_url, &u, why, sizeof(why)) < 0) {
      fprintf(stderr, PROG ": INSTANCE_URL=\"%.200s\" is not valid: %s\n", c->instance_url, why);
      return -1;
    }
  }
  return 0;
}

/*
 * One descriptor per connection: set the soft RLIMIT_NOFILE to what
 * MAX_CONNECTIONS needs, so that the limit is reachable (the usual soft
 * default is 1024) and the service refuses over MAX_CONNECTIONS by its own
 * count, with a 503, before the kernel refuses with EMFILE.
 */
static void size_fd_limit(int max_connections) {
  struct rlimit rl;
  rlim_t want = (rlim_t)max_connections + FD_RESERVE;

  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return;
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
    HP_WARN(COMP,
            json_pack("{s:i,s:I}", "max_connections", max_connections, "fd_limit",
                      (json_int_t)rl.rlim_max),
            "MAX_CONNECTIONS is above what the hard descriptor limit allows; connections "
            "beyond about %lld will be refused",
            (long long)(rl.rlim_max > FD_RESERVE ? rl.rlim_max - FD_RESERVE : 0));
    want = rl.rlim_max;
  }
  if (want == rl.rlim_cur)
    return;
  rl.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    HP_WARN(COMP, NULL, "cannot set the descriptor limit to %lld", (long long)want);
}

int main(int argc, char **argv) {
  rdv_config cfg;
  char err[512];
  hp__rdv_opts o;
  hp__redis_url redis;
  app a;
  int rc, exit_code = 0;

  memset(&cfg, 0, sizeof(cfg));
  switch (hp__cfg_load(specs, NSPECS, &cfg, argc, argv, err, sizeof(err))) {
  case HP_CFG_OK:
    break;
  case HP_CFG_HELP:
    hp__cfg_usage(specs, NSPECS, PROG,
                  "Rendezvous service of holepunch: HTTP /healthz /whoami /metrics, the "
                  "signaling WebSocket /ws and the relay WebSocket /relay.",
                  stdout);
    return 0;
  case HP_CFG_VERSION:
    printf(PROG " %s\n", HP_VERSION);
    return 0;
  default:
    fprintf(stderr, PROG ": %s\n", err);
    return 2;
  }
  if (check_config(&cfg) < 0)
    return 2;
  if (strcmp(cfg.redis_url, "none") &&
      hp__redis_url_parse(cfg.redis_url, &redis, err, sizeof(err)) < 0) {
    /* The parser's sentence never repeats the URL: it may hold a password. */
    fprintf(stderr, PROG ": REDIS_URL is not valid: %s\n", err);
    return 2;
  }

  if (cfg.log_format == FORMAT_AUTO)
    cfg.log_format = isatty(STDERR_FILENO) ? FORMAT_TEXT : FORMAT_JSON;
  hp__log_setup((hp__log_level)cfg.log_level,
                cfg.log_format == FORMAT_TEXT ? HP_LOG_TEXT : HP_LOG_JSON);

  size_fd_limit(cfg.max_connections);

  /* A peer that vanishes mid-write must not kill the process. */
  signal(SIGPIPE, SIG_IGN);

  memset(&a, 0, sizeof(a));
  a.shutdown_timeout = cfg.shutdown_timeout;
  rc = uv_loop_init(&a.loop);
  if (rc < 0) {
    HP_ERROR(COMP, NULL, "cannot create the event loop: %s", uv_strerror(rc));
    return 1;
  }

  memset(&o, 0, sizeof(o));
  o.bind = cfg.bind;
  o.port = cfg.port;
  o.trust_proxy = cfg.trust_proxy;
  o.max_connections = cfg.max_connections;
  o.max_connections_per_ip = cfg.max_connections_per_ip;
  o.max_hellos_per_minute = cfg.max_hellos_per_minute;
  o.max_message_bytes = (size_t)cfg.max_message_bytes;
  o.input_budget = (size_t)cfg.input_buffer_budget;
  o.hello_timeout = cfg.hello_timeout;
  o.http_timeout = cfg.http_timeout;
  o.request_line_timeout = cfg.request_line_timeout;
  o.ping_interval = cfg.ping_interval;
  o.idle_timeout = cfg.idle_timeout;
  o.redis = strcmp(cfg.redis_url, "none") ? &redis : NULL;
  o.redis_ttl = cfg.redis_ttl;
  o.redis_timeout = cfg.redis_timeout;
  o.instance_id = strcmp(cfg.instance_id, "random") ? cfg.instance_id : NULL;
  o.instance_url = strcmp(cfg.instance_url, "none") ? cfg.instance_url : NULL;
  o.observer_port = cfg.observer_port;
  o.relay = cfg.relay;
  o.relay_rate = cfg.relay_rate;
  o.relay_max_bytes = cfg.relay_max_bytes;
  o.relay_max_sessions = cfg.relay_max_sessions;
  o.relay_idle_timeout = cfg.relay_idle_timeout;
  o.relay_session_ttl = cfg.relay_session_ttl;
  rc = hp__rdv_create(&a.loop, &o, &a.srv);
  if (rc < 0) {
    /* Already logged at ERROR; a.srv (if set) is being torn down. */
    exit_code = 1;
    goto out;
  }

  uv_signal_init(&a.loop, &a.sigterm);
  uv_signal_init(&a.loop, &a.sigint);
  a.sigterm.data = a.sigint.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);

  uv_run(&a.loop, UV_RUN_DEFAULT);

out:
  /* Whatever a failed start left to close is closed in this last, bounded
   * run; only then may the server be freed and the loop closed. */
  if (drain_loop(&a.loop, DRAIN_SECONDS) < 0 || hp__rdv_destroy(a.srv) < 0 ||
      drain_loop(&a.loop, DRAIN_SECONDS) < 0) {
    HP_ERROR(COMP, NULL, "event loop still busy %g s after the server stopped; exiting anyway",
             DRAIN_SECONDS);
    return exit_code ? exit_code : 1;
  }
  rc = uv_loop_close(&a.loop);
  if (rc < 0) {
    HP_ERROR(COMP, NULL, "event loop still busy at exit: %s", uv_strerror(rc));
    exit_code = exit_code ? exit_code : 1;
  } else if (!exit_code) {
    HP_INFO(COMP, NULL, "stopped");
  }
  return exit_code;
}
