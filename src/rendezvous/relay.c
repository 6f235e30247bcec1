/*
 * relay.c - the relay route of the rendezvous (docs/PROTOCOL.md section 7):
 * GET /relay upgrades to a WebSocket whose first message (join) names a
 * session registered by signaling and the worker's own id; once both
 * workers of that pairing have joined, each gets `ready` and binary frames
 * are forwarded from one to the other until one closes or a limit ends the
 * session (relay_table.c holds the sessions and the limits).
 *
 * Forwarding: the WebSocket layer runs in HP_WS_FRAMES mode and hands over
 * the payload of data frames chunk by chunk (at most 4 KiB each). The
 * chunks of one read are gathered in one staging buffer shared by the
 * service (one read is handled before the next) and leave as one binary
 * frame after the read: one write system call per read, not per chunk, and
 * no buffer per session.
 *
 * Backpressure: after a read, when the destination's write queue is above
 * RELAY_HIGH_WATER, the source's TCP reads stop (the kernel's buffers then
 * fill and the sender's TCP window closes); they resume when that queue has
 * drained. One read adds at most 64 KiB, so a queue never holds more than
 * RELAY_HIGH_WATER + 64 KiB + a frame header (RELAY_QUEUE_MAX bounds it).
 * The rate limit works the same way: while the session's bucket is
 * negative both sides stop reading, and the connection's timer resumes them.
 *
 * Lifetime: an rdv_relay belongs to its connection (c->relay) and is freed
 * with it. The session's entry points to the connections that joined
 * (end[side]); every way a connection goes (close frame, TCP EOF, error,
 * limit, shutdown) passes through detach(), which takes it out of the
 * session and closes the other side, so no entry outlives its connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdv.h"
#include "relay_msg.h"
#include "relay_table.h"

#define RELAY_HIGH_WATER (256u * 1024u) /* destination queue: stop reading the source */
#define STAGE_CAP (64u * 1024u + 8192u) /* one read's payload (64 KiB) and then some */
#define TABLE_MAX_ENTRIES (1u << 20)    /* registered pairings kept (about 240 B each) */

typedef enum rl_state {
  RL_JOINING = 0, /* upgraded: waiting for the join message */
  RL_WAITING,     /* joined: waiting for the other worker */
  RL_RELAYING,    /* both joined: forwarding */
  RL_DONE         /* out of the session: closing */
} rl_state;

/* Why a relayed session (or a relay connection) ended, for /metrics. */
typedef enum rl_end {
  RL_END_CLOSED = 0, /* a worker closed its WebSocket */
  RL_END_LOST,       /* a worker's connection broke (no close frame) */
  RL_END_MAX_BYTES,
  RL_END_IDLE,
  RL_END_PEER_TIMEOUT, /* the other worker did not join in time */
  RL_END_SHUTDOWN,
  RL_END_ERROR, /* a protocol error of a worker */
  RL_END_COUNT
} rl_end;

/* Refusals of a join beyond the table's (hp__relay_refusal). */
enum {
  RL_REFUSE_BAD_JOIN = HP_RELAY_REFUSE_COUNT, /* not a valid join message */
  RL_REFUSE_JOIN_TIMEOUT,
  RL_REFUSE_DISABLED,
  RL_REFUSE_COUNT
};

static const char *const end_names[RL_END_COUNT] = {"closed",       "lost",     "max_bytes", "idle",
                                                    "peer_timeout", "shutdown", "error"};

struct rdv_relay {
  rdv_conn *c;
  hp__relay_sess *sess; /* while joined */
  uint8_t state;        /* rl_state */
  uint8_t side;
  uint8_t eof;       /* this worker sent eof */
  uint8_t text_op;   /* a text message is being received */
  uint8_t paused;    /* reads stopped (backpressure or throttle) */
  uint8_t throttled; /* the pause is (also) the rate limit's */
  char *text;        /* the text message being received (HP_RELAY_MSG_MAX) */
  size_t text_len;
};

struct hp__rdv_relay_svc {
  hp__relay_table *t;
  int enabled;
  uint8_t *stage; /* payload gathered during one read */
  size_t stage_len;
  rdv_conn *stage_src;
  /* metrics */
  uint64_t relaying; /* sessions with both joined, now */
  uint64_t sessions_total, bytes, throttled, backpressure;
  uint64_t refusals[RL_REFUSE_COUNT];
  uint64_t ends[RL_END_COUNT];
};

static rdv_conn *peer_of(const rdv_relay *r) {
  rdv_relay *p;

  if (!r->sess || r->state != RL_RELAYING)
    return NULL;
  p = r->sess->end[!r->side];
  return p ? p->c : NULL;
}

static uint64_t now_of(const rdv_conn *c) {
  return uv_now(c->srv->loop);
}

/* ---------------------------------------------------------------------- */
/* service                                                                */

int hp__rdv_relay_svc_create(hp__rdv *s, uint32_t seed) {
  hp__rdv_relay_svc *v = calloc(1, sizeof(*v));
  hp__relay_limits lim;

  if (!v)
    return -ENOMEM;
  memset(&lim, 0, sizeof(lim));
  lim.rate = s->o.relay_rate;
  lim.max_bytes = s->o.relay_max_bytes;
  lim.max_sessions = (unsigned)s->o.relay_max_sessions;
  lim.ttl_ms = (uint64_t)(s->o.relay_session_ttl * 1000.0);
  lim.idle_ms = (uint64_t)(s->o.relay_idle_timeout * 1000.0);
  lim.max_entries = TABLE_MAX_ENTRIES;
  v->enabled = s->o.relay;
  v->t = hp__relay_table_create(&lim, seed);
  v->stage = malloc(STAGE_CAP);
  if (!v->t || !v->stage) {
    hp__relay_table_destroy(v->t);
    free(v->stage);
    free(v);
    return -ENOMEM;
  }
  s->relay = v;
  return 0;
}

void hp__rdv_relay_svc_destroy(hp__rdv *s) {
  hp__rdv_relay_svc *v = s->relay;

  if (!v)
    return;
  hp__relay_table_destroy(v->t);
  free(v->stage);
  free(v);
  s->relay = NULL;
}

int hp__rdv_relay_enabled(const hp__rdv *s) {
  return s->relay && s->relay->enabled;
}

void hp__rdv_relay_register(hp__rdv *s, const char *session, const char *id_a, const char *id_b) {
  int rc;

  if (!hp__rdv_relay_enabled(s))
    return;
  rc = hp__relay_table_register(s->relay->t, session, id_a, id_b, uv_now(s->loop));
  if (rc < 0)
    HP_WARN(RDV_COMP, json_pack("{s:s,s:s,s:i}", "peer", id_a, "peer_b", id_b, "rc", rc),
            "could not register the pairing of %s and %s for the relay", id_a, id_b);
}

void hp__rdv_relay_refused_disabled(hp__rdv *s) {
  if (s->relay)
    s->relay->refusals[RL_REFUSE_DISABLED]++;
}

/* ---------------------------------------------------------------------- */
/* reads on and off                                                       */

/* Reading c is wanted unless its destination's queue is full or the
 * session is throttled. */
static void update_reading(rdv_conn *c) {
  rdv_relay *r = c->relay;
  rdv_conn *p;
  int want = 1;

  if (!r || c->state != RDV_WS)
    return;
  p = peer_of(r);
  if (p && hp__stream_queued(&p->s) > RELAY_HIGH_WATER)
    want = 0;
  r->throttled = 0;
  if (r->sess && r->sess->throttled_until_ms > now_of(c)) {
    want = 0;
    r->throttled = 1;
  }
  r->paused = (uint8_t)!want;
  (void)hp__stream_read(&c->s, want);
}

/* ---------------------------------------------------------------------- */
/* sending and failing                                                    */

static int send_relay_msg(rdv_conn *c, const hp__relay_msg *m) {
  char buf[HP_RELAY_MSG_MAX + 1];
  int n = hp__relay_msg_encode(m, buf, sizeof(buf));

  if (n < 0)
    return n;
  return hp__rdv_conn_send_text(c, buf, (size_t)n);
}

static void detach(rdv_conn *c, uint16_t status, const char *reason, rl_end why);

/* Send an error with code, then close c with status (and its peer, see
 * detach). */
static void relay_fail(rdv_conn *c, const char *code, uint16_t status, rl_end why, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

static void relay_fail(rdv_conn *c, const char *code, uint16_t status, rl_end why, const char *fmt,
                       ...) {
  hp__relay_msg m;
  va_list ap;

  if (c->state != RDV_WS)
    return;
  memset(&m, 0, sizeof(m));
  m.type = HP_RELAY_ERROR;
  snprintf(m.code, sizeof(m.code), "%s", code);
  va_start(ap, fmt);
  vsnprintf(m.message, sizeof(m.message), fmt, ap);
  va_end(ap);
  HP_WARN(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:i}", "code", m.code, "addr", c->observed, "peer",
                    c->relay && c->relay->sess ? c->relay->sess->id[c->relay->side] : "", "close",
                    (int)status),
          "relay error sent to client: %s", m.message);
  (void)send_relay_msg(c, &m);
  detach(c, status, code, why);
  hp__rdv_conn_close_ws_reason(c, status, code);
}

/* A refused join: counted by reason. */
static void refuse(rdv_conn *c, int reason, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(rdv_conn *c, int reason, const char *code, const char *fmt, ...) {
  char msg[HP_REASON_MAX];
  va_list ap;

  c->srv->relay->refusals[reason]++;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  relay_fail(c, code, HP_WS_CLOSE_POLICY, RL_END_ERROR, "%s", msg);
}

/* Both workers of s get the error and a close. */
static void end_session(hp__relay_sess *s, const char *code, rl_end why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void end_session(hp__relay_sess *s, const char *code, rl_end why, const char *fmt, ...) {
  char msg[HP_REASON_MAX];
  rdv_conn *cs[2] = {NULL, NULL};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  for (int k = 0; k < 2; k++)
    if (s->end[k])
      cs[k] = ((rdv_relay *)s->end[k])->c;
  /* The first fail detaches both (s may be freed then): use the copies. */
  if (cs[0])
    cs[0]->srv->relay->ends[why]++;
  else if (cs[1])
    cs[1]->srv->relay->ends[why]++;
  for (int k = 0; k < 2; k++)
    if (cs[k]) {
      hp__relay_msg m;
      memset(&m, 0, sizeof(m));
      m.type = HP_RELAY_ERROR;
      snprintf(m.code, sizeof(m.code), "%s", code);
      snprintf(m.message, sizeof(m.message), "%s", msg);
      (void)send_relay_msg(cs[k], &m);
    }
  HP_INFO(RDV_COMP, json_pack("{s:s,s:s}", "code", code, "reason", msg),
          "relayed session ended: %s", msg);
  for (int k = 0; k < 2; k++)
    if (cs[k]) {
      detach(cs[k], HP_WS_CLOSE_POLICY, code, RL_END_COUNT);
      hp__rdv_conn_close_ws_reason(cs[k], HP_WS_CLOSE_POLICY, code);
    }
}

/* ---------------------------------------------------------------------- */
/* forwarding                                                             */

/* Send what the read of src gathered to its peer as one binary frame. */
static void flush_stage(hp__rdv *s) {
  hp__rdv_relay_svc *v = s->relay;
  rdv_conn *src = v->stage_src;
  rdv_conn *dst = src ? peer_of(src->relay) : NULL;
  size_t n = v->stage_len;

  v->stage_len = 0;
  v->stage_src = NULL;
  if (!n || !dst || dst->state != RDV_WS)
    return;
  if (hp__ws_send(dst->ws, 1, v->stage, n) < 0)
    return; /* dst is being dropped (ws_writev closed it): its close detaches */
  v->bytes += n;
}

static void stage_add(rdv_conn *c, const uint8_t *d, size_t n) {
  hp__rdv_relay_svc *v = c->srv->relay;

  if (v->stage_src != c || v->stage_len + n > STAGE_CAP)
    flush_stage(c->srv);
  while (n) {
    size_t k = n < STAGE_CAP - v->stage_len ? n : STAGE_CAP - v->stage_len;
    memcpy(v->stage + v->stage_len, d, k);
    v->stage_len += k;
    v->stage_src = c;
    d += k;
    n -= k;
    if (n)
      flush_stage(c->srv);
  }
}

static void on_binary(rdv_conn *c, const uint8_t *d, size_t n) {
  rdv_relay *r = c->relay;
  hp__rdv_relay_svc *v = c->srv->relay;
  const hp__relay_limits *lim = hp__relay_table_limits(v->t);
  uint64_t resume = 0;

  if (r->state != RL_RELAYING) {
    refuse(c, RL_REFUSE_BAD_JOIN, "unexpected_message",
           "Binary data before \"ready\"; send a join first and wait for ready.");
    return;
  }
  if (r->eof) {
    relay_fail(c, "unexpected_message", HP_WS_CLOSE_POLICY, RL_END_ERROR,
               "Binary data after this worker's eof.");
    return;
  }
  if (!n)
    return;
  switch (hp__relay_charge(v->t, r->sess, n, now_of(c), &resume)) {
  case HP_RELAY_OVER_BYTES:
    flush_stage(c->srv); /* what fitted under the limit goes out first */
    end_session(r->sess, "relay_limit", RL_END_MAX_BYTES,
                "This relayed session reached its limit of %" PRIu64
                " bytes (RELAY_MAX_BYTES); it is closed.",
                lim->max_bytes);
    return;
  case HP_RELAY_THROTTLE:
    if (!r->throttled)
      v->throttled++;
    r->throttled = 1;
    break;
  default:
    break;
  }
  stage_add(c, d, n);
}

static void on_join(rdv_conn *c, const hp__relay_msg *m) {
  rdv_relay *r = c->relay;
  hp__rdv_relay_svc *v = c->srv->relay;
  hp__relay_refusal why;
  hp__relay_sess *sess;
  rdv_conn *p;
  int side;

  if (hp__relay_table_join(v->t, m->session, m->id, r, now_of(c), &sess, &side, &why) < 0) {
    static const char *const text[HP_RELAY_REFUSE_COUNT] = {
        [HP_RELAY_REFUSE_UNKNOWN] = "No pairing has this session, or its RELAY_SESSION_TTL is "
                                    "over; pair again through /ws.",
        [HP_RELAY_REFUSE_NOT_IN] = "The id \"%s\" is not one of the two workers of this session.",
        [HP_RELAY_REFUSE_IN_USE] = "The worker \"%s\" of this session is joined already; a "
                                   "session is relayed for its two workers once.",
        [HP_RELAY_REFUSE_USED] = "This session was relayed already and has ended; pair again "
                                 "through /ws.",
        [HP_RELAY_REFUSE_FULL] = "The relay carries its maximum of sessions (RELAY_MAX_SESSIONS); "
                                 "try again later.",
    };
    char msg[HP_REASON_MAX];
    /* Only two of the texts take the id. */
    if (why == HP_RELAY_REFUSE_NOT_IN || why == HP_RELAY_REFUSE_IN_USE)
      snprintf(msg, sizeof(msg), text[why], m->id);
    else
      snprintf(msg, sizeof(msg), "%s", text[why]);
    refuse(c, (int)why, hp__relay_refusal_name(why), "%s", msg);
    return;
  }
  r->sess = sess;
  r->side = (uint8_t)side;
  if (sess->state != HP_RELAY_RELAYING) {
    r->state = RL_WAITING;
    HP_DEBUG(RDV_COMP, json_pack("{s:s,s:s}", "peer", m->id, "addr", c->observed),
             "relay: %s joined, waiting for its peer", m->id);
    hp__rdv_conn_rearm(c);
    return;
  }
  r->state = RL_RELAYING;
  p = ((rdv_relay *)sess->end[!side])->c;
  p->relay->state = RL_RELAYING;
  v->relaying++;
  v->sessions_total++;
  HP_INFO(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:s}", "peer", sess->id[0], "peer_b", sess->id[1], "addr",
                    side ? p->observed : c->observed, "addr_b", side ? c->observed : p->observed),
          "relaying between %s and %s", sess->id[0], sess->id[1]);
  for (int k = 0; k < 2; k++) {
    rdv_conn *x = k ? p : c;
    hp__relay_msg ready;
    memset(&ready, 0, sizeof(ready));
    ready.type = HP_RELAY_READY;
    snprintf(ready.id, sizeof(ready.id), "%s", sess->id[!x->relay->side]);
    (void)send_relay_msg(x, &ready);
    hp__rdv_conn_rearm(x);
  }
}

static void on_text(rdv_conn *c, const char *text, size_t len) {
  rdv_relay *r = c->relay;
  hp__relay_msg m;
  hp__wire_err err;
  rdv_conn *p;

  if (hp__relay_msg_decode(text, len, &m, &err) < 0) {
    if (r->state == RL_JOINING)
      refuse(c, RL_REFUSE_BAD_JOIN, err.code, "%s", err.message);
    else
      relay_fail(c, err.code, HP_WS_CLOSE_POLICY, RL_END_ERROR, "%s", err.message);
    return;
  }
  if (r->state == RL_JOINING) {
    if (m.type != HP_RELAY_JOIN) {
      refuse(c, RL_REFUSE_BAD_JOIN, "unexpected_message",
             "The first message on /relay must be a join.");
      return;
    }
    on_join(c, &m);
    return;
  }
  if (m.type != HP_RELAY_EOF || r->state != RL_RELAYING || r->eof) {
    relay_fail(c, "unexpected_message", HP_WS_CLOSE_POLICY, RL_END_ERROR,
               "Only binary data and one eof may follow ready.");
    return;
  }
  /* Half-close: after every byte this worker sent, its peer gets eof. */
  r->eof = 1;
  flush_stage(c->srv);
  p = peer_of(r);
  if (p && p->state == RDV_WS)
    (void)send_relay_msg(p, &m);
}

void hp__rdv_relay_chunk(rdv_conn *c, int binary, int first, int fin, const uint8_t *d, size_t n) {
  rdv_relay *r = c->relay;

  if (!r || c->state != RDV_WS || r->state == RL_DONE)
    return;
  if (binary) {
    on_binary(c, d, n);
    return;
  }
  /* A text message: reassembled under HP_RELAY_MSG_MAX. */
  if (first) {
    r->text_len = 0;
    if (!r->text && !(r->text = malloc(HP_RELAY_MSG_MAX))) {
      relay_fail(c, "internal_error", HP_WS_CLOSE_INTERNAL, RL_END_ERROR,
                 "The server could not buffer the message; please retry.");
      return;
    }
  }
  if (!r->text)
    return;
  if (r->text_len + n > HP_RELAY_MSG_MAX) {
    if (r->state == RL_JOINING)
      c->srv->relay->refusals[RL_REFUSE_BAD_JOIN]++;
    relay_fail(c, "too_large", HP_WS_CLOSE_TOO_BIG, RL_END_ERROR,
               "A relay text message is at most %d bytes.", HP_RELAY_MSG_MAX);
    return;
  }
  memcpy(r->text + r->text_len, d, n);
  r->text_len += n;
  if (!fin)
    return;
  on_text(c, r->text, r->text_len);
  if (c->relay) {
    free(c->relay->text);
    c->relay->text = NULL;
  }
}

void hp__rdv_relay_after_read(rdv_conn *c) {
  hp__rdv_relay_svc *v = c->srv->relay;
  rdv_relay *r = c->relay;
  rdv_conn *p;

  if (v->stage_src == c)
    flush_stage(c->srv);
  if (!r || r->state != RL_RELAYING || c->state != RDV_WS)
    return;
  p = peer_of(r);
  if (p && hp__stream_queued(&p->s) > RELAY_HIGH_WATER && !r->paused)
    v->backpressure++;
  update_reading(c);
  if (r->throttled) {
    /* The bucket is shared: the other direction waits too. */
    if (p) {
      update_reading(p);
      hp__rdv_conn_rearm(p);
    }
    hp__rdv_conn_rearm(c);
  }
}

void hp__rdv_relay_drained(rdv_conn *c) {
  rdv_relay *r = c->relay;
  rdv_conn *p = r ? peer_of(r) : NULL;

  /* c's queue is empty: its peer, the source, may read again. */
  if (p && p->relay->paused)
    update_reading(p);
}

/* ---------------------------------------------------------------------- */
/* endings                                                                */

/* c leaves its session: the other worker's WebSocket is closed with status
 * after what was forwarded to it. Idempotent. why: for /metrics (RL_END_COUNT:
 * counted by the caller). */
static void detach(rdv_conn *c, uint16_t status, const char *reason, rl_end why) {
  rdv_relay *r = c->relay;
  hp__rdv_relay_svc *v = c->srv->relay;
  rdv_conn *p;
  int was_relaying;

  if (!r || r->state == RL_DONE)
    return;
  if (v->stage_src == c)
    flush_stage(c->srv);
  p = peer_of(r);
  was_relaying = r->state == RL_RELAYING;
  r->state = RL_DONE;
  if (r->sess) {
    hp__relay_sess *s = r->sess;
    r->sess = NULL;
    if (was_relaying && why != RL_END_COUNT)
      v->ends[why]++;
    else if (!was_relaying && why == RL_END_PEER_TIMEOUT)
      v->ends[why]++;
    if (was_relaying && v->relaying)
      v->relaying--;
    hp__relay_table_leave(v->t, s, r->side, now_of(c));
  }
  /* The reply to our close must be read. */
  (void)hp__stream_read(&c->s, 1);
  if (p && p->relay && p->relay->state == RL_RELAYING) {
    detach(p, status, reason, RL_END_COUNT);
    hp__rdv_conn_close_ws_reason(p, status, reason);
  }
}

void hp__rdv_relay_ws_closed(rdv_conn *c, uint16_t status) {
  /* A normal close is passed on as it came; 1005 (none) as 1000. */
  if (status == 1005 || status < 1000 || status >= 5000)
    status = HP_WS_CLOSE_NORMAL;
  detach(c, status, "peer closed", RL_END_CLOSED);
}

void hp__rdv_relay_lost(rdv_conn *c) {
  detach(c, HP_WS_CLOSE_GOING_AWAY, "peer connection lost", RL_END_LOST);
}

void hp__rdv_relay_closing(rdv_conn *c, uint16_t status) {
  /* 1001 from the service is the shutdown; anything else here is c's
   * failure (a protocol error), which its peer only sees as a loss. */
  if (status == HP_WS_CLOSE_GOING_AWAY)
    detach(c, status, "service shutting down", RL_END_SHUTDOWN);
  else
    detach(c, HP_WS_CLOSE_GOING_AWAY, "peer failed", RL_END_ERROR);
}

void hp__rdv_relay_free(rdv_conn *c) {
  rdv_relay *r = c->relay;

  if (!r)
    return;
  detach(c, HP_WS_CLOSE_GOING_AWAY, "peer connection lost", RL_END_LOST);
  if (c->srv->relay->stage_src == c) {
    c->srv->relay->stage_src = NULL;
    c->srv->relay->stage_len = 0;
  }
  free(r->text);
  free(r);
  c->relay = NULL;
}

int hp__rdv_relay_attach(rdv_conn *c) {
  rdv_relay *r = calloc(1, sizeof(*r));

  if (!r)
    return -ENOMEM;
  r->c = c;
  r->state = RL_JOINING;
  c->relay = r;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* timers                                                                 */

uint64_t hp__rdv_relay_deadline(const rdv_conn *c) {
  const rdv_relay *r = c->relay;
  const hp__rdv_relay_svc *v = c->srv->relay;
  uint64_t at;

  switch ((rl_state)r->state) {
  case RL_JOINING:
    return c->t0 + (uint64_t)(c->srv->o.hello_timeout * 1000.0);
  case RL_WAITING:
    return hp__relay_deadline(v->t, r->sess);
  case RL_RELAYING:
    at = hp__relay_deadline(v->t, r->sess);
    if (r->paused && r->throttled && (!at || r->sess->throttled_until_ms < at))
      at = r->sess->throttled_until_ms;
    return at;
  default:
    return 0;
  }
}

void hp__rdv_relay_timer(rdv_conn *c) {
  rdv_relay *r = c->relay;
  hp__rdv_relay_svc *v = c->srv->relay;
  const hp__relay_limits *lim = hp__relay_table_limits(v->t);
  uint64_t now = now_of(c), at;

  switch ((rl_state)r->state) {
  case RL_JOINING:
    if (now >= hp__rdv_relay_deadline(c)) {
      refuse(c, RL_REFUSE_JOIN_TIMEOUT, "join_timeout",
             "No join was received within %g s of opening the relay WebSocket (HELLO_TIMEOUT).",
             c->srv->o.hello_timeout);
      return;
    }
    break;
  case RL_WAITING:
    if (now >= hp__relay_deadline(v->t, r->sess)) {
      relay_fail(c, "relay_timeout", HP_WS_CLOSE_POLICY, RL_END_PEER_TIMEOUT,
                 "The other worker of this session did not join the relay within "
                 "RELAY_SESSION_TTL (%g s from the pairing).",
                 (double)lim->ttl_ms / 1000.0);
      return;
    }
    break;
  case RL_RELAYING:
    at = hp__relay_deadline(v->t, r->sess);
    if (at && now >= at) {
      end_session(r->sess, "relay_idle", RL_END_IDLE,
                  "Nothing was relayed either way for %g s (RELAY_IDLE_TIMEOUT); the session is "
                  "closed.",
                  (double)lim->idle_ms / 1000.0);
      return;
    }
    if (r->paused && r->throttled && now >= r->sess->throttled_until_ms)
      update_reading(c);
    break;
  default:
    return;
  }
  hp__rdv_conn_rearm(c);
}

/* ---------------------------------------------------------------------- */
/* metrics                                                                */

int hp__rdv_relay_metrics(const hp__rdv *s, char *buf, size_t cap) {
  const hp__rdv_relay_svc *v = s->relay;
  static const char *const refusal_names[RL_REFUSE_COUNT] = {
      [HP_RELAY_REFUSE_UNKNOWN] = "unknown_session", [HP_RELAY_REFUSE_NOT_IN] = "not_in_session",
      [HP_RELAY_REFUSE_IN_USE] = "session_in_use",   [HP_RELAY_REFUSE_USED] = "session_used",
      [HP_RELAY_REFUSE_FULL] = "relay_full",         [RL_REFUSE_BAD_JOIN] = "bad_join",
      [RL_REFUSE_JOIN_TIMEOUT] = "join_timeout",     [RL_REFUSE_DISABLED] = "disabled",
  };
  size_t o = 0;
  int n;

#define PUT(...)                                                                                   \
  do {                                                                                             \
    n = snprintf(buf + o, cap - o, __VA_ARGS__);                                                   \
    if (n < 0 || (size_t)n >= cap - o)                                                             \
      return -ENOSPC;                                                                              \
    o += (size_t)n;                                                                                \
  } while (0)
  if (!cap)
    return -ENOSPC;
  buf[0] = '\0';
  if (!v)
    return 0;
  PUT("# HELP holepunch_relay_enabled 1 when GET /relay is served (RELAY=on).\n"
      "# TYPE holepunch_relay_enabled gauge\nholepunch_relay_enabled %d\n",
      v->enabled);
  PUT("# HELP holepunch_relay_sessions_open Relayed sessions holding a connection (at most "
      "RELAY_MAX_SESSIONS).\n# TYPE holepunch_relay_sessions_open gauge\n"
      "holepunch_relay_sessions_open %u\n",
      hp__relay_table_open(v->t));
  PUT("# HELP holepunch_relay_sessions_relaying Relayed sessions with both workers joined.\n"
      "# TYPE holepunch_relay_sessions_relaying gauge\nholepunch_relay_sessions_relaying %" PRIu64
      "\n",
      v->relaying);
  PUT("# HELP holepunch_relay_registered_sessions Pairings that may still join the relay, "
      "open or ended ones included.\n# TYPE holepunch_relay_registered_sessions gauge\n"
      "holepunch_relay_registered_sessions %zu\n",
      hp__relay_table_count(v->t));
  PUT("# HELP holepunch_relay_sessions_total Sessions whose two workers were joined.\n"
      "# TYPE holepunch_relay_sessions_total counter\nholepunch_relay_sessions_total %" PRIu64 "\n",
      v->sessions_total);
  PUT("# HELP holepunch_relay_bytes_total Payload bytes forwarded by the relay, both "
      "directions.\n# TYPE holepunch_relay_bytes_total counter\nholepunch_relay_bytes_total "
      "%" PRIu64 "\n",
      v->bytes);
  PUT("# HELP holepunch_relay_throttled_total Times a session went over RELAY_RATE and was "
      "paused.\n# TYPE holepunch_relay_throttled_total counter\n"
      "holepunch_relay_throttled_total %" PRIu64 "\n",
      v->throttled);
  PUT("# HELP holepunch_relay_backpressure_total Times a sender was paused because its "
      "receiver's queue was full.\n# TYPE holepunch_relay_backpressure_total counter\n"
      "holepunch_relay_backpressure_total %" PRIu64 "\n",
      v->backpressure);
  PUT("# HELP holepunch_relay_refusals_total Relay joins refused, by reason.\n"
      "# TYPE holepunch_relay_refusals_total counter\n");
  for (int i = 0; i < RL_REFUSE_COUNT; i++)
    PUT("holepunch_relay_refusals_total{reason=\"%s\"} %" PRIu64 "\n", refusal_names[i],
        v->refusals[i]);
  PUT("# HELP holepunch_relay_ends_total Relayed sessions ended, by reason.\n"
      "# TYPE holepunch_relay_ends_total counter\n");
  for (int i = 0; i < RL_END_COUNT; i++)
    PUT("holepunch_relay_ends_total{reason=\"%s\"} %" PRIu64 "\n", end_names[i], v->ends[i]);
#undef PUT
  return (int)o;
}
