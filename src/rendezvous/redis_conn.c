/*
 * redis_conn.c - one self-healing hiredis connection (see redis_conn.h).
 *
 * hiredis 0.14 has neither a connect timeout nor a command timeout in its
 * asynchronous API, and resolves host names with a blocking getaddrinfo.
 * So: names are resolved in libuv's pool first and hiredis is given the
 * numeric address; a watchdog timer fails a connect or the oldest command
 * that waited longer than the timeout by dropping the connection (hiredis
 * then answers every command in flight with NULL, in order).
 *
 * A connection is only ever freed from a timer callback of ours, never
 * from inside a hiredis callback: there redisAsyncFree would be deferred
 * until hiredis returns, and its late callbacks could find us gone. The
 * context's connect/disconnect callbacks are cleared before we free it, so
 * hiredis calls back into us only for commands, whose privdata we own.
 */
#include "redis_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"

#define COMP "redis"
#define NS_PER_MS 1000000ull

typedef enum rstate {
  R_DOWN = 0,   /* waiting for the retry timer */
  R_RESOLVING,  /* getaddrinfo in libuv's pool */
  R_CONNECTING, /* non-blocking connect in progress */
  R_UP,         /* connected: commands are taken */
  R_DROPPING,   /* the drop runs in the next loop turn */
  R_CLOSED      /* hp__rconn_close was called */
} rstate;

typedef struct rreq {
  struct rreq *prev, *next;
  hp__rconn *c;
  hp__rconn_reply_cb cb; /* NULL for our own AUTH, SELECT, PING */
  void *arg;
  uint64_t sent;    /* uv_hrtime */
  const char *what; /* our own commands: their name, for the log */
} rreq;

typedef struct resolve_req {
  uv_getaddrinfo_t req;
  hp__rconn *c;
  uint64_t gen;
} resolve_req;

struct hp__rconn {
  uv_loop_t *loop;
  hp__rconn_opts o;
  hp__redis_url url;
  redisAsyncContext *ac;
  rstate state;
  uv_timer_t watchdog; /* connect and command timeouts, idle pings */
  uv_timer_t kick;     /* retries after the backoff, deferred drops and close */
  int handles_open;
  int resolving;        /* getaddrinfo requests not yet called back */
  resolve_req *resolve; /* the current one, for uv_cancel */
  uint64_t gen;         /* connect attempts; a stale resolve is ignored */
  uint64_t state_since; /* uv_hrtime of the last state change */
  uint64_t last_sent;
  uint64_t last_tick;   /* hrtime of the watchdog's last run */
  uint64_t grace_until; /* no command timeout before this (after a stall of ours) */
  uint32_t backoff_ms;
  int ever_up;
  rreq *head, *tail;      /* commands in flight, oldest first */
  char why[256];          /* the reason of a pending drop */
  char last_refusal[256]; /* the last AUTH/SELECT refusal logged */
  uint64_t rng;
  hp__rconn_reply_cb sub_cb;
  void *sub_arg;
  void (*done)(void *arg);
  void *done_arg;
};

static void start_attempt(hp__rconn *c);
static void maybe_finish(hp__rconn *c);
static void kick_cb(uv_timer_t *t);

static void set_state(hp__rconn *c, rstate s) {
  c->state = s;
  c->state_since = uv_hrtime();
}

/* xorshift64: jitter only, no secret. */
static uint32_t jitter(hp__rconn *c, uint32_t ms) {
  uint64_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  c->rng = x;
  /* 75 % .. 125 % of ms, so that instances do not retry in lockstep. */
  return ms * 3 / 4 + (uint32_t)(x % (ms / 2 + 1));
}

/* The attempt failed or the connection ended: tell the owner, retry later. */
static void went_down(hp__rconn *c, const char *why) {
  uint32_t wait;

  if (c->state == R_CLOSED)
    return; /* the close is already under way (kick timer) */
  set_state(c, R_DOWN);
  wait = jitter(c, c->backoff_ms);
  c->backoff_ms = c->backoff_ms * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : c->backoff_ms * 2;
  HP_DEBUG(COMP,
           json_pack("{s:s,s:s,s:i}", "conn", c->o.name, "reason", why, "retry_ms", (int)wait),
           "redis %s connection down: %s; retrying in %u ms", c->o.name, why, wait);
  if (c->o.on_down)
    c->o.on_down(c->o.owner, c, why);
  /* on_down may have closed us. */
  if (c->state == R_DOWN)
    uv_timer_start(&c->kick, kick_cb, wait, 0);
}

/* Free the hiredis context now (never from inside a hiredis callback). Its
 * commands in flight are answered with NULL from inside redisAsyncFree. */
static void free_ac(hp__rconn *c) {
  redisAsyncContext *ac = c->ac;

  if (!ac)
    return;
  c->ac = NULL;
  ac->onConnect = NULL;
  ac->onDisconnect = NULL;
  ac->data = NULL;
  redisAsyncFree(ac);
}

static void kick_cb(uv_timer_t *t) {
  hp__rconn *c = t->data;

  switch (c->state) {
  case R_DOWN:
    start_attempt(c);
    break;
  case R_DROPPING:
    free_ac(c);
    if (c->resolve) {
      uv_cancel((uv_req_t *)&c->resolve->req);
      c->resolve = NULL;
    }
    went_down(c, c->why);
    break;
  case R_CLOSED:
    free_ac(c);
    if (c->resolve) {
      uv_cancel((uv_req_t *)&c->resolve->req);
      c->resolve = NULL;
    }
    maybe_finish(c);
    break;
  default:
    break;
  }
}

static void on_timer_closed(uv_handle_t *h) {
  hp__rconn *c = h->data;
  c->handles_open--;
  maybe_finish(c);
}

static void maybe_finish(hp__rconn *c) {
  if (c->state != R_CLOSED || c->ac || c->head)
    return;
  if (!uv_is_closing((uv_handle_t *)&c->watchdog)) {
    /* Once: maybe_finish runs again from each late answer. */
    uv_close((uv_handle_t *)&c->watchdog, on_timer_closed);
    uv_close((uv_handle_t *)&c->kick, on_timer_closed);
    return;
  }
  if (c->handles_open || c->resolving)
    return;
  if (c->done)
    c->done(c->done_arg);
  free(c);
}

/* ---- commands ---- */

static void unlink_req(hp__rconn *c, rreq *q) {
  if (q->prev)
    q->prev->next = q->next;
  else
    c->head = q->next;
  if (q->next)
    q->next->prev = q->prev;
  else
    c->tail = q->prev;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  rreq *q = privdata;
  hp__rconn *c = q->c;
  redisReply *r = reply;
  hp__store_stats *st = c->o.stats;

  (void)ac;
  unlink_req(c, q);
  st->requests++;
  if (!r || r->type == REDIS_REPLY_ERROR)
    st->errors++;
  else
    hp__store_stats_rtt(st, (double)(uv_hrtime() - q->sent) / 1e9);
  if (q->cb) {
    q->cb(q->arg, r);
  } else if (r && r->type == REDIS_REPLY_ERROR && c->state == R_UP) {
    /* AUTH or SELECT refused: nothing will work on this connection. The
     * same refusal on every retry is logged once. */
    char why[256];
    snprintf(why, sizeof(why), "%s refused by Redis: %.*s", q->what,
             (int)(r->len > 200 ? 200 : r->len), r->str);
    HP_LOG(strcmp(why, c->last_refusal) ? HP_LOG_ERROR : HP_LOG_DEBUG, COMP,
           json_pack("{s:s}", "conn", c->o.name), "%s", why);
    snprintf(c->last_refusal, sizeof(c->last_refusal), "%s", why);
    hp__rconn_drop(c, why);
  }
  free(q);
  if (c->state == R_CLOSED)
    maybe_finish(c);
}

static int send_argv(hp__rconn *c, hp__rconn_reply_cb cb, void *arg, const char *what, int argc,
                     const char **argv, const size_t *argvlen) {
  rreq *q;

  if (c->state != R_UP || !c->ac)
    return -EAGAIN;
  q = calloc(1, sizeof(*q));
  if (!q)
    return -ENOMEM;
  q->c = c;
  q->cb = cb;
  q->arg = arg;
  q->what = what;
  q->sent = uv_hrtime();
  if (redisAsyncCommandArgv(c->ac, on_reply, q, argc, argv, argvlen) != REDIS_OK) {
    free(q);
    return -EAGAIN;
  }
  q->prev = c->tail;
  if (c->tail)
    c->tail->next = q;
  else
    c->head = q;
  c->tail = q;
  c->last_sent = q->sent;
  return 0;
}

int hp__rconn_cmd(hp__rconn *c, hp__rconn_reply_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen) {
  return send_argv(c, cb, arg, NULL, argc, argv, argvlen);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  hp__rconn *c = privdata;

  (void)ac;
  if (c->sub_cb)
    c->sub_cb(c->sub_arg, reply);
}

int hp__rconn_subscribe(hp__rconn *c, const char *channel, hp__rconn_reply_cb cb, void *arg) {
  if (c->state != R_UP || !c->ac)
    return -EAGAIN;
  c->sub_cb = cb;
  c->sub_arg = arg;
  if (redisAsyncCommand(c->ac, on_sub_reply, c, "SUBSCRIBE %s", channel) != REDIS_OK)
    return -EAGAIN;
  c->last_sent = uv_hrtime();
  return 0;
}

int hp__rconn_up(const hp__rconn *c) {
  return c->state == R_UP;
}

void hp__rconn_drop(hp__rconn *c, const char *why) {
  if (c->state == R_CLOSED || c->state == R_DROPPING || c->state == R_DOWN)
    return;
  snprintf(c->why, sizeof(c->why), "%s", why);
  set_state(c, R_DROPPING);
  uv_timer_start(&c->kick, kick_cb, 0, 0);
}

void hp__rconn_close(hp__rconn *c, void (*done)(void *arg), void *arg) {
  if (c->state == R_CLOSED)
    return;
  c->done = done;
  c->done_arg = arg;
  set_state(c, R_CLOSED);
  c->sub_cb = NULL;
  uv_timer_stop(&c->watchdog);
  uv_timer_start(&c->kick, kick_cb, 0, 0);
}

/* ---- connecting ---- */

static void on_connect(const redisAsyncContext *ac, int status) {
  hp__rconn *c = ac->data;
  const hp__redis_url *u;

  if (!c || c->ac != ac)
    return;
  if (status != REDIS_OK) {
    char why[200];
    /* hiredis frees the context after this callback returns. */
    snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr[0] ? ac->errstr : "error");
    c->ac = NULL;
    went_down(c, why);
    return;
  }
  set_state(c, R_UP);
  c->backoff_ms = c->o.backoff_min_ms;
  if (c->ever_up)
    c->o.stats->reconnects++;
  c->ever_up = 1;
  u = &c->url;
  if (u->password[0]) {
    const char *argv[3] = {"AUTH", u->user, u->password};
    size_t len[3] = {4, strlen(u->user), strlen(u->password)};
    if (u->user[0])
      (void)send_argv(c, NULL, NULL, "AUTH", 3, argv, len);
    else {
      argv[1] = u->password;
      len[1] = len[2];
      (void)send_argv(c, NULL, NULL, "AUTH", 2, argv, len);
    }
  }
  if (u->db) {
    char db[16];
    const char *argv[2] = {"SELECT", db};
    size_t len[2] = {6, 0};
    len[1] = (size_t)snprintf(db, sizeof(db), "%d", u->db);
    (void)send_argv(c, NULL, NULL, "SELECT", 2, argv, len);
  }
  HP_DEBUG(COMP, json_pack("{s:s}", "conn", c->o.name), "redis %s connection up", c->o.name);
  if (c->o.on_up)
    c->o.on_up(c->o.owner, c);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  hp__rconn *c = ac->data;

  (void)status;
  if (!c || c->ac != ac)
    return;
  c->ac = NULL; /* hiredis frees it after this callback */
  went_down(c, ac->errstr[0] ? ac->errstr : "the server closed the connection");
}

static void do_connect(hp__rconn *c, const char *ip) {
  redisAsyncContext *ac;

  ac = c->url.is_unix ? redisAsyncConnectUnix(c->url.path) : redisAsyncConnect(ip, c->url.port);
  if (!ac || ac->err) {
    char why[200];
    snprintf(why, sizeof(why), "cannot connect: %s", ac ? ac->errstr : "out of memory");
    if (ac)
      redisAsyncFree(ac);
    went_down(c, why);
    return;
  }
  if (redisLibuvAttach(ac, c->loop) != REDIS_OK) {
    redisAsyncFree(ac);
    went_down(c, "cannot watch the Redis socket on the loop");
    return;
  }
  ac->data = c;
  c->ac = ac;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  set_state(c, R_CONNECTING);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_req *rq = (resolve_req *)(void *)req;
  hp__rconn *c = rq->c;
  char ip[INET6_ADDRSTRLEN] = "";

  c->resolving--;
  if (c->resolve == rq)
    c->resolve = NULL;
  if (status == 0 && res) {
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    if (!inet_ntop(res->ai_family, a, ip, sizeof(ip)))
      ip[0] = '\0';
  }
  uv_freeaddrinfo(res);
  if (c->state == R_CLOSED) {
    free(rq);
    maybe_finish(c);
    return;
  }
  if (rq->gen != c->gen || c->state != R_RESOLVING) {
    free(rq);
    return;
  }
  free(rq);
  if (status < 0 || !ip[0]) {
    char why[300];
    snprintf(why, sizeof(why), "cannot resolve %s: %s", c->url.host,
             status < 0 ? uv_strerror(status) : "no address");
    went_down(c, why);
    return;
  }
  do_connect(c, ip);
}

static int is_numeric(const char *h) {
  unsigned char b[16];
  return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

static void start_attempt(hp__rconn *c) {
  struct addrinfo hints;
  resolve_req *rq;
  char port[8];
  int rc;

  c->gen++;
  if (c->url.is_unix || is_numeric(c->url.host)) {
    do_connect(c, c->url.host);
    return;
  }
  rq = calloc(1, sizeof(*rq));
  if (!rq) {
    went_down(c, "out of memory");
    return;
  }
  rq->c = c;
  rq->gen = c->gen;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%d", c->url.port);
  rc = uv_getaddrinfo(c->loop, &rq->req, on_resolved, c->url.host, port, &hints);
  if (rc < 0) {
    free(rq);
    went_down(c, uv_strerror(rc));
    return;
  }
  c->resolving++;
  c->resolve = rq;
  set_state(c, R_RESOLVING);
}

static void on_watchdog(uv_timer_t *t) {
  hp__rconn *c = t->data;
  uint64_t now = uv_hrtime(), limit = (uint64_t)c->o.timeout_ms * NS_PER_MS;
  char why[128];

  /* Our own loop did not run for half a timeout (a long turn, a busy or
   * descheduled process): commands queued meanwhile may not even be
   * written yet (hiredis writes when the loop polls, and libuv runs timers
   * before it polls), and answers may wait unread. Redis gets a whole
   * timeout from now before a command counts as unanswered, so that the
   * timeout measures Redis, not us. */
  if (now - c->last_tick > limit / 2)
    c->grace_until = now + limit;
  c->last_tick = now;

  if ((c->state == R_RESOLVING || c->state == R_CONNECTING) && now - c->state_since > limit) {
    snprintf(why, sizeof(why), "could not connect within %u ms", c->o.timeout_ms);
    hp__rconn_drop(c, why);
  } else if (c->state == R_UP && c->head && now - c->head->sent > limit && now >= c->grace_until) {
    c->o.stats->timeouts++;
    snprintf(why, sizeof(why), "no answer within %u ms", c->o.timeout_ms);
    hp__rconn_drop(c, why);
  } else if (c->state == R_UP && c->o.ping_ms && !c->head &&
             now - c->last_sent > (uint64_t)c->o.ping_ms * NS_PER_MS) {
    const char *argv[1] = {"PING"};
    size_t len[1] = {4};
    (void)send_argv(c, NULL, NULL, "PING", 1, argv, len);
  }
}

int hp__rconn_create(uv_loop_t *loop, const hp__rconn_opts *o, hp__rconn **out) {
  hp__rconn *c;
  uint64_t tick;

  *out = NULL;
  c = calloc(1, sizeof(*c));
  if (!c)
    return -ENOMEM;
  c->loop = loop;
  c->o = *o;
  c->url = *o->url;
  c->o.url = &c->url;
  if (!c->o.timeout_ms)
    c->o.timeout_ms = 1000;
  if (!c->o.backoff_min_ms)
    c->o.backoff_min_ms = 100;
  if (c->o.backoff_max_ms < c->o.backoff_min_ms)
    c->o.backoff_max_ms = c->o.backoff_min_ms;
  c->backoff_ms = c->o.backoff_min_ms;
  c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
  if (!c->rng)
    c->rng = 1;
  uv_timer_init(loop, &c->watchdog);
  uv_timer_init(loop, &c->kick);
  c->watchdog.data = c;
  c->kick.data = c;
  c->handles_open = 2;
  /* Checks a few times per timeout, so a timeout is noticed within a
   * quarter of it. */
  tick = c->o.timeout_ms / 4;
  tick = tick < 10 ? 10 : tick > 250 ? 250 : tick;
  c->last_tick = uv_hrtime();
  uv_timer_start(&c->watchdog, on_watchdog, tick, tick);
  start_attempt(c);
  *out = c;
  return 0;
}
