/*
 * loadgen.c - load generator for holepunch-rendezvous (benchmarks only).
 *
 * Speaks protocol v1 over the project's WebSocket client (src/net/ws_client.h)
 * on one libuv loop: no hand-written HTTP, WebSocket or JSON (jansson). Every
 * connection ends with a close handshake (close frame, the server's answer).
 * Two modes:
 *
 *   idle N     open N WebSockets, each says hello in its own room (so none
 *              pair), wait for every welcome, print a "ready" line, then hold
 *              them until SIGTERM/SIGINT, stdin EOF or --hold seconds.
 *   pairs N    run N complete pairings (two connections in one fresh room:
 *              hello, welcome, peer to both, result{direct} from both, close)
 *              with at most C pairings in flight; print done/errors/wall time.
 *
 * Results go to stdout as one "key=value ..." line per phase, so that the
 * bench scripts can parse them; diagnostics go to stderr.
 * Exit status: 0 all fine, 1 errors or timeout, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "ws_client.h"

#define LG_RX_CAP 4096       /* largest signaling message we accept */
#define LG_TX_CAP 1024       /* largest message we send */
#define LG_ROOM_CAP 64       /* room names: lg<pid>-<mode><index> */
#define LG_MAX_CONNS 1000000 /* sanity bound on N */
#define LG_ERR_PRINT_MAX 10  /* print at most this many error details */

typedef enum lg_state {
  S_UNUSED = 0,
  S_CONNECTING, /* connect in progress (TCP + upgrade) */
  S_RETRY_WAIT, /* connect failed, a retry is scheduled */
  S_WAIT_WELCOME,
  S_WAIT_PEER, /* pairs: welcome received */
  S_HELD,      /* idle: welcome received, connection held */
  S_RESULT,    /* pairs: peer received, result to send */
  S_CLOSE,     /* pairs: result sent, close frame sent, waiting for the end */
  S_DONE,      /* terminal: completed normally, client gone */
  S_FAILED     /* terminal: failed, client gone */
} lg_state;

struct lg;
struct pairing;

typedef struct conn {
  struct lg *lg;
  struct pairing *pair; /* NULL in idle mode */
  hp__wsc *wsc;         /* NULL when no connection is live */
  uv_timer_t retry;     /* initialised once per conn (retry_init) */
  int retry_init;
  unsigned idx; /* idle: connection index; pairs: 0 or 1 */
  lg_state state;
  int tries;
  int result_sent;
  int failing; /* a failure was recorded while the client was alive */
  char room[LG_ROOM_CAP];
} conn;

typedef struct pairing {
  unsigned idx; /* which pairing (0..N-1) */
  int active;
  int peers;      /* how many sides received peer */
  uint64_t t0_ns; /* first connect started */
  conn c[2];
} pairing;

typedef enum lg_mode { MODE_IDLE = 1, MODE_PAIRS } lg_mode;

typedef struct lg {
  uv_loop_t *loop;
  hp__ws_env *env; /* frame contexts shared by every connection */
  lg_mode mode;
  const char *host;
  int port;
  const char *path;
  unsigned n;    /* connections (idle) or pairings (pairs) */
  unsigned conc; /* handshakes (idle) / pairings (pairs) in flight */
  int max_retries;
  double timeout_s; /* deadline to reach ready / finish all pairings */
  double hold_s;    /* idle: longest hold after ready */
  int quiet;

  /* idle mode */
  conn *conns;
  unsigned started, welcomed, dropped;
  int ready;

  /* pairs mode */
  pairing *slots;
  unsigned next_pair, pairs_done, pairs_failed;
  double *lat_ms; /* per completed pairing: start -> both peers received */
  unsigned nlat;

  /* both */
  unsigned conn_errors, retries, err_printed;
  uint64_t t_start_ns;
  int stopping, exit_code;
  uv_timer_t deadline, stop_timer;
  uv_signal_t sigint, sigterm;
  uv_poll_t stdin_poll;
  int stdin_watched;
} lg;

static void lg_request_stop(lg *g, int code);
static void conn_start(conn *c);
static void pairing_maybe_finish(lg *g, pairing *p);

static double now_s(const lg *g) {
  return (double)(uv_hrtime() - g->t_start_ns) / 1e9;
}

static void lg_report_error(lg *g, const conn *c, const char *what, const char *detail) {
  if (g->err_printed >= LG_ERR_PRINT_MAX)
    return;
  g->err_printed++;
  fprintf(stderr, "loadgen: error: room %s: %s%s%s%s\n", c->room, what, detail ? " (" : "",
          detail ? detail : "", detail ? ")" : "");
  if (g->err_printed == LG_ERR_PRINT_MAX)
    fprintf(stderr, "loadgen: further error details suppressed\n");
}

/* Send one message (JSON object, reference stolen) on an open client. */
static int conn_send_json(conn *c, json_t *obj) {
  int result = -1;
  char *s = NULL;
  size_t len;

  if (!obj)
    goto out;
  s = json_dumps(obj, JSON_COMPACT);
  if (!s)
    goto out;
  len = strlen(s);
  if (len > LG_TX_CAP)
    goto out;
  if (!c->wsc || hp__wsc_send(c->wsc, 0, s, len) < 0)
    goto out;
  result = 0;
out:
  free(s);
  json_decref(obj);
  return result;
}

static json_t *hello_msg(const conn *c) {
  char addr[32];
  /* A plausible host candidate; nobody dials it in this benchmark. */
  snprintf(addr, sizeof addr, "127.0.0.1:%u", 10000u + (c->idx % 50000u));
  return json_pack("{s:s, s:i, s:s, s:[{s:s, s:s}]}", "type", "hello", "v", 1, "room", c->room,
                   "candidates", "kind", "host", "addr", addr);
}

static json_t *result_msg(const conn *c) {
  return json_pack("{s:s, s:s, s:s, s:i}", "type", "result", "status", "direct", "addr",
                   "127.0.0.1:10001", "elapsed_ms", (int)(c->idx + 1));
}

/* Record a failure while the client is alive and close it; its end()
 * settles the outcome. */
static void conn_fail_live(conn *c, const char *what, const char *detail) {
  if (!c->failing) {
    c->failing = 1;
    lg_report_error(c->lg, c, what, detail);
  }
  hp__wsc_close(c->wsc, HP_WS_CLOSE_NORMAL, NULL);
}

/* Idle mode: once every connection is welcomed or has failed, say so. With
 * failures there is nothing to hold for: stop (exit status 1). */
static void idle_check_ready(lg *g) {
  if (g->ready || g->welcomed + g->conn_errors < g->n)
    return;
  g->ready = 1;
  printf("ready connections=%u errors=%u retries=%u seconds=%.3f\n", g->welcomed, g->conn_errors,
         g->retries, now_s(g));
  fflush(stdout);
  if (g->conn_errors) {
    fprintf(stderr, "loadgen: %u of %u connections failed; not holding\n", g->conn_errors, g->n);
    lg_request_stop(g, 1);
  }
}

/* The client of c is gone (closed or never connected): settle its outcome. */
static void conn_terminal(conn *c, int ok) {
  lg *g = c->lg;

  c->state = ok ? S_DONE : S_FAILED;
  if (!ok)
    g->conn_errors++;
  if (g->mode == MODE_IDLE) {
    if (g->stopping)
      return;
    if (!g->ready) {
      /* A failure before ready frees a handshake slot: start the next one. */
      if (g->started < g->n)
        conn_start(&g->conns[g->started++]);
      idle_check_ready(g);
    } else {
      g->dropped++;
      if (!g->quiet)
        fprintf(stderr, "loadgen: held connection in room %s was closed\n", c->room);
    }
    return;
  }
  pairing_maybe_finish(g, c->pair);
}

static void retry_cb(uv_timer_t *t) {
  conn *c = t->data;
  if (c->lg->stopping)
    return;
  conn_start(c);
}

/* A connection attempt failed before the upgrade: retry or give up. */
static void conn_connect_failed(conn *c, const char *why) {
  lg *g = c->lg;

  if (g->stopping) {
    c->state = S_FAILED;
    return;
  }
  if (c->failing) { /* killed on purpose (partner failed): no retry */
    conn_terminal(c, 0);
    return;
  }
  if (c->tries <= g->max_retries) {
    g->retries++;
    c->state = S_RETRY_WAIT;
    /* Back off a little so that a full accept queue can drain. */
    if (!c->retry_init) {
      uv_timer_init(g->loop, &c->retry);
      c->retry.data = c;
      c->retry_init = 1;
    }
    uv_timer_start(&c->retry, retry_cb, (uint64_t)c->tries * 50, 0);
    return;
  }
  {
    char detail[160];
    snprintf(detail, sizeof detail, "%s:%d: %s; gave up after %d attempts", g->host, g->port,
             why ? why : "unknown", c->tries);
    lg_report_error(g, c, "cannot connect", detail);
  }
  conn_terminal(c, 0);
}

static const hp__wsc_cbs lg_cbs;

static void conn_start(conn *c) {
  lg *g = c->lg;
  hp__wsc_opts o;
  char err[256];

  memset(&o, 0, sizeof o);
  o.host = g->host;
  o.port = g->port;
  o.path = g->path;
  o.open_timeout_ms = 20000;
  o.close_bound_ms = 5000;
  o.max_message = LG_RX_CAP;
  o.max_queued = 64 * 1024;
  o.env = g->env;
  c->tries++;
  c->state = S_CONNECTING;
  if (hp__wsc_open(g->loop, &o, &lg_cbs, c, &c->wsc, err, sizeof err) < 0) {
    c->wsc = NULL;
    conn_connect_failed(c, err);
  }
}

static void pairing_start(lg *g, pairing *p, unsigned idx) {
  p->idx = idx;
  p->active = 1;
  p->peers = 0;
  p->t0_ns = uv_hrtime();
  for (int i = 0; i < 2; i++) {
    conn *c = &p->c[i];
    /* The retry timer stays: it is initialised once per slot. */
    c->lg = g;
    c->pair = p;
    c->wsc = NULL;
    c->idx = (unsigned)i;
    c->state = S_UNUSED;
    c->tries = 0;
    c->result_sent = 0;
    c->failing = 0;
    snprintf(c->room, sizeof c->room, "lg%ld-p%u", (long)getpid(), idx);
  }
  conn_start(&p->c[0]);
  conn_start(&p->c[1]);
}

static void pairing_maybe_finish(lg *g, pairing *p) {
  conn *a = &p->c[0], *b = &p->c[1];
  int ok;

  /* If one side failed, the other may wait for a peer forever: end it. */
  for (int i = 0; i < 2; i++) {
    conn *x = &p->c[i], *y = &p->c[1 - i];
    if (x->state == S_FAILED && y->wsc && !y->failing &&
        (y->state == S_WAIT_WELCOME || y->state == S_WAIT_PEER || y->state == S_CONNECTING)) {
      conn_fail_live(y, "partner connection failed", NULL);
    } else if (x->state == S_FAILED && y->state == S_RETRY_WAIT) {
      uv_timer_stop(&y->retry);
      y->state = S_FAILED;
    }
  }
  if ((a->state != S_DONE && a->state != S_FAILED) || (b->state != S_DONE && b->state != S_FAILED))
    return;
  if (!p->active)
    return;
  p->active = 0;
  ok = a->state == S_DONE && b->state == S_DONE;
  if (ok)
    g->pairs_done++;
  else
    g->pairs_failed++;
  if (g->stopping)
    return;
  if (g->next_pair < g->n)
    pairing_start(g, p, g->next_pair++);
  else if (g->pairs_done + g->pairs_failed == g->n)
    lg_request_stop(g, g->pairs_failed || g->conn_errors ? 1 : 0);
}

/* One complete message from the rendezvous. Returns -1 to close the client. */
static int conn_on_message(conn *c, const char *buf, size_t len) {
  lg *g = c->lg;
  json_error_t jerr;
  json_t *m = json_loadb(buf, len, 0, &jerr);
  const char *type = m ? json_string_value(json_object_get(m, "type")) : NULL;
  const char *room;
  int result = -1;

  if (!type) {
    conn_fail_live(c, "unparsable message from the rendezvous", m ? "no type" : jerr.text);
    goto out;
  }
  room = json_string_value(json_object_get(m, "room"));
  if (!strcmp(type, "error")) {
    char detail[LG_TX_CAP];
    snprintf(detail, sizeof detail, "%s: %s", json_string_value(json_object_get(m, "code")),
             json_string_value(json_object_get(m, "message")));
    conn_fail_live(c, "rendezvous sent error", detail);
    goto out;
  }
  if (!strcmp(type, "welcome") && c->state == S_WAIT_WELCOME) {
    if (!room || strcmp(room, c->room)) {
      conn_fail_live(c, "welcome for another room", room);
      goto out;
    }
    if (g->mode == MODE_IDLE) {
      c->state = S_HELD;
      g->welcomed++;
      if (g->started < g->n)
        conn_start(&g->conns[g->started++]);
      idle_check_ready(g);
    } else {
      c->state = S_WAIT_PEER;
    }
    result = 0;
    goto out;
  }
  if (!strcmp(type, "peer") && c->state == S_WAIT_PEER) {
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *session = json_string_value(json_object_get(m, "session"));
    pairing *p = c->pair;
    if (!room || strcmp(room, c->room) || !role || !session) {
      conn_fail_live(c, "peer message without room/role/session", NULL);
      goto out;
    }
    if (++p->peers == 2 && g->nlat < g->n)
      g->lat_ms[g->nlat++] = (double)(uv_hrtime() - p->t0_ns) / 1e6;
    c->state = S_RESULT;
    if (conn_send_json(c, result_msg(c))) {
      conn_fail_live(c, "cannot send result", NULL);
      goto out;
    }
    c->result_sent = 1;
    c->state = S_CLOSE;
    hp__wsc_close(c->wsc, HP_WS_CLOSE_NORMAL, NULL);
    result = 0;
    goto out;
  }
  conn_fail_live(c, "unexpected message", type);
out:
  json_decref(m);
  return result;
}

static void lg_on_open(void *arg) {
  conn *c = arg;

  if (c->state != S_CONNECTING)
    return;
  if (conn_send_json(c, hello_msg(c))) {
    conn_fail_live(c, "cannot send hello", NULL);
    return;
  }
  c->state = S_WAIT_WELCOME;
}

static void lg_on_message(void *arg, int binary, const uint8_t *data, size_t len) {
  conn *c = arg;

  if (c->failing || c->state == S_CLOSE)
    return;
  if (binary) {
    conn_fail_live(c, "binary message from the rendezvous", NULL);
    return;
  }
  if (conn_on_message(c, (const char *)data, len) < 0)
    hp__wsc_close(c->wsc, HP_WS_CLOSE_NORMAL, NULL); /* the failure is recorded */
}

static void lg_on_end(void *arg, const hp__wsc_end *e) {
  conn *c = arg;
  lg *g = c->lg;

  hp__wsc_free(c->wsc);
  c->wsc = NULL;
  if (c->state == S_DONE || c->state == S_FAILED)
    return;
  if (!e->opened && c->state == S_CONNECTING && e->kind == HP_WSC_END_FAILED) {
    conn_connect_failed(c, e->reason);
    return;
  }
  if (!c->failing && !c->result_sent && g->mode == MODE_PAIRS && !g->stopping)
    lg_report_error(g, c, "rendezvous closed the connection early", e->reason);
  conn_terminal(c, !c->failing && (g->mode == MODE_IDLE ? c->state == S_HELD : c->result_sent));
}

static const hp__wsc_cbs lg_cbs = {lg_on_open, lg_on_message, NULL, lg_on_end};

/* Close a conn's client and retry timer for good (at stop). */
static void conn_shutdown(conn *c) {
  hp__wsc_free(c->wsc);
  c->wsc = NULL;
  if (c->retry_init) {
    uv_close((uv_handle_t *)&c->retry, NULL);
    c->retry_init = 0;
  }
}

static void stop_timer_cb(uv_timer_t *t) {
  lg *g = t->data;
  unsigned i;

  uv_close((uv_handle_t *)&g->deadline, NULL);
  uv_close((uv_handle_t *)&g->stop_timer, NULL);
  uv_close((uv_handle_t *)&g->sigint, NULL);
  uv_close((uv_handle_t *)&g->sigterm, NULL);
  if (g->stdin_watched)
    uv_close((uv_handle_t *)&g->stdin_poll, NULL);
  if (g->conns)
    for (i = 0; i < g->n; i++)
      conn_shutdown(&g->conns[i]);
  if (g->slots)
    for (i = 0; i < g->conc; i++) {
      conn_shutdown(&g->slots[i].c[0]);
      conn_shutdown(&g->slots[i].c[1]);
    }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void print_pairs_summary(lg *g, const char *why) {
  double wall = now_s(g);
  double p50 = 0, p99 = 0, max = 0;

  if (g->nlat) {
    qsort(g->lat_ms, g->nlat, sizeof *g->lat_ms, cmp_double);
    p50 = g->lat_ms[g->nlat / 2];
    p99 = g->lat_ms[(size_t)((g->nlat - 1) * 0.99)];
    max = g->lat_ms[g->nlat - 1];
  }
  printf("pairs%s%s requested=%u done=%u errors=%u conn_errors=%u retries=%u wall_s=%.3f "
         "rate_per_s=%.1f lat_ms_p50=%.2f lat_ms_p99=%.2f lat_ms_max=%.2f\n",
         why ? " " : "", why ? why : "", g->n, g->pairs_done, g->pairs_failed, g->conn_errors,
         g->retries, wall, wall > 0 ? g->pairs_done / wall : 0.0, p50, p99, max);
  fflush(stdout);
}

/* Ask the loop to tear everything down (from the stop timer, on a clean
 * stack, not from inside a client callback). */
static void lg_request_stop(lg *g, int code) {
  if (g->stopping)
    return;
  g->stopping = 1;
  g->exit_code = code;
  if (g->mode == MODE_PAIRS)
    print_pairs_summary(g, NULL);
  else {
    printf("stopped held=%u dropped=%u errors=%u retries=%u\n", g->welcomed - g->dropped,
           g->dropped, g->conn_errors, g->retries);
    fflush(stdout);
  }
  uv_timer_start(&g->stop_timer, stop_timer_cb, 0, 0);
}

static void deadline_cb(uv_timer_t *t) {
  lg *g = t->data;

  if (g->mode == MODE_IDLE && g->ready) {
    if (!g->quiet)
      fprintf(stderr, "loadgen: hold time of %.0f s is over\n", g->hold_s);
    lg_request_stop(g, 0);
    return;
  }
  if (g->mode == MODE_IDLE) {
    fprintf(stderr, "loadgen: timeout after %.0f s: %u of %u welcomed, %u errors\n", g->timeout_s,
            g->welcomed, g->n, g->conn_errors);
    printf("timeout connections=%u errors=%u\n", g->welcomed, g->conn_errors);
  } else {
    fprintf(stderr, "loadgen: timeout after %.0f s: %u of %u pairings done, %u failed\n",
            g->timeout_s, g->pairs_done, g->n, g->pairs_failed);
    print_pairs_summary(g, "timeout");
  }
  fflush(stdout);
  g->stopping = 1; /* summary printed already */
  g->exit_code = 1;
  uv_timer_start(&g->stop_timer, stop_timer_cb, 0, 0);
}

static void signal_cb(uv_signal_t *s, int signum) {
  lg *g = s->data;
  if (!g->quiet)
    fprintf(stderr, "loadgen: signal %d, stopping\n", signum);
  lg_request_stop(g, g->mode == MODE_IDLE ? 0 : 1);
}

static void stdin_cb(uv_poll_t *p, int status, int events) {
  lg *g = p->data;
  char buf[256];
  ssize_t r;
  (void)events;

  r = status < 0 ? 0 : read(STDIN_FILENO, buf, sizeof buf);
  if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
    return;
  uv_poll_stop(p);
  if (!g->quiet)
    fprintf(stderr, "loadgen: stdin closed, stopping\n");
  lg_request_stop(g, g->mode == MODE_IDLE ? 0 : 1);
}

/* Each connection is one fd; the default soft limit (1024) is far too low. */
static void raise_nofile(unsigned want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl))
    return;
  if (rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl))
      fprintf(stderr, "loadgen: warning: cannot raise RLIMIT_NOFILE: %s\n", strerror(errno));
  }
  if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < want)
    fprintf(stderr,
            "loadgen: warning: RLIMIT_NOFILE is %llu, below the %u fds this run needs; "
            "connections beyond it will fail\n",
            (unsigned long long)rl.rlim_cur, want);
}

static void usage(void) {
  fprintf(stderr, "usage: bench_loadgen [options] idle N\n"
                  "       bench_loadgen [options] pairs N [concurrency C]\n"
                  "options:\n"
                  "  --host ADDR       rendezvous address (default 127.0.0.1)\n"
                  "  --port P          rendezvous port (default 8080)\n"
                  "  --path PATH       WebSocket path (default /ws)\n"
                  "  --concurrency C   idle: handshakes in flight (default 256);\n"
                  "                    pairs: pairings in flight (default 64)\n"
                  "  --retries R       connect retries per connection (default 3)\n"
                  "  --timeout S       seconds to reach ready / finish (default 120)\n"
                  "  --hold S          idle: longest hold after ready (default 600)\n"
                  "  --quiet           fewer diagnostics\n");
}

static int parse_uint(const char *s, unsigned max, unsigned *out) {
  char *end;
  unsigned long v;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static int parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return errno || end == s || *end || *out <= 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  lg g;
  uv_loop_t loop;
  int i, result = 2;
  unsigned u, conc = 0;
  const char *mode = NULL, *nstr = NULL;

  memset(&g, 0, sizeof g);
  g.host = "127.0.0.1";
  g.port = 8080;
  g.path = "/ws";
  g.max_retries = 3;
  g.timeout_s = 120;
  g.hold_s = 600;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--quiet")) {
      g.quiet = 1;
      continue;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage();
      return 0;
    }
    if (!strncmp(a, "--", 2) || !strcmp(a, "concurrency")) {
      if (!v)
        goto bad;
      i++;
      if (!strcmp(a, "--host"))
        g.host = v;
      else if (!strcmp(a, "--port")) {
        if (parse_uint(v, 65535, &u) || !u)
          goto bad;
        g.port = (int)u;
      } else if (!strcmp(a, "--path"))
        g.path = v;
      else if (!strcmp(a, "--concurrency") || !strcmp(a, "concurrency")) {
        if (parse_uint(v, 100000, &conc) || !conc)
          goto bad;
      } else if (!strcmp(a, "--retries")) {
        if (parse_uint(v, 100, &u))
          goto bad;
        g.max_retries = (int)u;
      } else if (!strcmp(a, "--timeout")) {
        if (parse_double(v, &g.timeout_s))
          goto bad;
      } else if (!strcmp(a, "--hold")) {
        if (parse_double(v, &g.hold_s))
          goto bad;
      } else
        goto bad;
      continue;
    }
    if (!mode)
      mode = a;
    else if (!nstr)
      nstr = a;
    else
      goto bad;
  }
  if (!mode || !nstr || parse_uint(nstr, LG_MAX_CONNS, &g.n) || !g.n)
    goto bad;
  if (!strcmp(mode, "idle"))
    g.mode = MODE_IDLE;
  else if (!strcmp(mode, "pairs"))
    g.mode = MODE_PAIRS;
  else
    goto bad;
  g.conc = conc ? conc : (g.mode == MODE_IDLE ? 256 : 64);
  if (g.conc > g.n)
    g.conc = g.n;
  raise_nofile(g.mode == MODE_IDLE ? g.n + 64 : 2 * g.conc + 64);
  signal(SIGPIPE, SIG_IGN);

  result = 1;
  if (g.mode == MODE_IDLE) {
    g.conns = calloc(g.n, sizeof *g.conns);
    if (!g.conns)
      goto out;
    for (u = 0; u < g.n; u++) {
      conn *c = &g.conns[u];
      c->lg = &g;
      c->idx = u;
      snprintf(c->room, sizeof c->room, "lg%ld-i%u", (long)getpid(), u);
    }
  } else {
    g.slots = calloc(g.conc, sizeof *g.slots);
    g.lat_ms = calloc(g.n, sizeof *g.lat_ms);
    if (!g.slots || !g.lat_ms)
      goto out;
  }

  if (uv_loop_init(&loop))
    goto out;
  g.loop = &loop;
  uv_timer_init(&loop, &g.deadline);
  uv_timer_init(&loop, &g.stop_timer);
  uv_signal_init(&loop, &g.sigint);
  uv_signal_init(&loop, &g.sigterm);
  g.deadline.data = g.stop_timer.data = g.sigint.data = g.sigterm.data = &g;
  uv_signal_start(&g.sigint, signal_cb, SIGINT);
  uv_signal_start(&g.sigterm, signal_cb, SIGTERM);
  /* stdin EOF stops an idle hold, but only when stdin is a pipe or a
   * terminal: epoll refuses /dev/null and regular files, and then we do not
   * watch it (background jobs get /dev/null). */
  if (uv_poll_init(&loop, &g.stdin_poll, STDIN_FILENO) == 0) {
    g.stdin_watched = 1;
    g.stdin_poll.data = &g;
    uv_poll_start(&g.stdin_poll, UV_READABLE | UV_DISCONNECT, stdin_cb);
  }

  g.env = hp__ws_env_create(0);
  if (!g.env) {
    fprintf(stderr, "loadgen: out of memory\n");
    stop_timer_cb(&g.stop_timer);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    goto out;
  }

  g.t_start_ns = uv_hrtime();
  uv_timer_start(&g.deadline, deadline_cb, (uint64_t)(g.timeout_s * 1000), 0);
  if (g.mode == MODE_IDLE) {
    for (u = 0; u < g.conc && g.started < g.n; u++)
      conn_start(&g.conns[g.started++]);
  } else {
    for (u = 0; u < g.conc; u++)
      pairing_start(&g, &g.slots[u], g.next_pair++);
  }

  /* Once ready, the deadline becomes the hold limit. */
  while (uv_run(&loop, UV_RUN_ONCE)) {
    if (g.mode == MODE_IDLE && g.ready && !g.stopping && g.ready != 2) {
      g.ready = 2;
      uv_timer_start(&g.deadline, deadline_cb, (uint64_t)(g.hold_s * 1000), 0);
    }
  }
  if (uv_loop_close(&loop) == UV_EBUSY)
    fprintf(stderr, "loadgen: warning: libuv loop still had handles at exit\n");
  result = g.exit_code;
  if (g.mode == MODE_IDLE && g.conn_errors)
    result = 1;
out:
  free(g.conns);
  free(g.slots);
  free(g.lat_ms);
  hp__ws_env_destroy(g.env);
  return result;
bad:
  usage();
  return 2;
}
