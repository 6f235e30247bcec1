/*
 * signaling.c - the signaling protocol of docs/PROTOCOL.md section 3 on one
 * WebSocket: hello -> welcome, pairing through rooms.h -> peer to both,
 * one result; every refusal an error message and a close.
 *
 * The connection's signaling state (rdv_sig_state) is the only record of
 * where it is. The room operation is written as a request and a
 * completion (join_start / join_done), so that a store that answers in a
 * later loop turn (a Redis round trip) fits: the connection holds a
 * reference while the operation is in flight, and a completion that finds
 * the connection gone undoes what it did.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdv.h"

#define START_IN_MS 0        /* both peer messages leave in the same loop turn */
#define GENERATED_ID_BYTES 8 /* service-assigned ids: 64 bits as 16 hex characters */

static rdv_conn *conn_of_member(hp__rooms_member *m) {
  return (rdv_conn *)(void *)((char *)m - offsetof(rdv_conn, m));
}

static const char *observed_wire(const rdv_conn *c) {
  return c->observed_full ? c->observed : "";
}

static void fail_internal(rdv_conn *c, const char *what) {
  hp__rdv_conn_fail(c, HP_RDV_ERR_INTERNAL_ERROR, HP_WS_CLOSE_INTERNAL,
                    "The server could not %s; please retry.", what);
}

static void forget_cands(rdv_conn *c) {
  free(c->cands);
  c->cands = NULL;
  c->ncands = 0;
}

void hp__rdv_sig_leave(rdv_conn *c) {
  switch ((rdv_sig_state)c->sig) {
  case RDV_SIG_WAITING:
  case RDV_SIG_PAIRED:
  case RDV_SIG_REPORTED:
    hp__rooms_leave(c->srv->rooms, &c->m);
    break;
  default:
    break; /* NEW: nothing held; JOINING: join_done undoes it */
  }
  forget_cands(c);
  c->sig = RDV_SIG_GONE;
}

hp__ipent *hp__rdv_sig_client_entry(rdv_conn *c) {
  hp__rdv *s = c->srv;
  uint8_t key[16];

  if (c->fwd_ent)
    return c->fwd_ent;
  if (c->ent)
    return c->ent;
  if (hp__ip_key_sa((const struct sockaddr *)&c->peer, key) < 0)
    return NULL;
  return hp__iptable_get(s->ips, key, 1, s->o.max_hellos_per_minute, uv_now(s->loop));
}

/* Encode m; NULL on ENOMEM. */
static char *encode(const hp__msg *m, size_t *len) {
  return hp__msg_encode(m, len);
}

static void peer_msg(hp__msg *out, const rdv_conn *to, const rdv_conn *other, char role,
                     const char *session, const hp__cand *cands, size_t ncands) {
  hp__msg_peer *p = &out->u.peer;

  memset(out, 0, sizeof(*out));
  out->type = HP_MSG_PEER;
  memcpy(p->room, to->m.room, sizeof(p->room));
  p->role = role;
  memcpy(p->session, session, sizeof(p->session));
  memcpy(p->peer_id, other->m.id, sizeof(p->peer_id));
  snprintf(p->peer_observed, sizeof(p->peer_observed), "%s", observed_wire(other));
  p->peer_cands.n = ncands;
  if (ncands) /* a waiting worker may have sent no candidates: cands is NULL */
    memcpy(p->peer_cands.c, cands, ncands * sizeof(*cands));
  p->start_in_ms = START_IN_MS;
}

/* Keep a waiting worker's candidates (exactly them) for its peer message. */
static int keep_cands(rdv_conn *c, const hp__cands *cands) {
  forget_cands(c);
  if (!cands->n)
    return 0;
  c->cands = malloc(cands->n * sizeof(*c->cands));
  if (!c->cands)
    return -ENOMEM;
  memcpy(c->cands, cands->c, cands->n * sizeof(*c->cands));
  c->ncands = (uint8_t)cands->n;
  return 0;
}

/* b waits again after its pairing was undone (its peer could not be told,
 * or went away). cands: b's candidates to keep, or NULL when b still holds
 * its own (it was the one that waited). */
static void requeue(rdv_conn *b, const hp__cands *cands) {
  if (hp__rooms_requeue(b->srv->rooms, &b->m) < 0 || (cands && keep_cands(b, cands) < 0)) {
    hp__rooms_leave(b->srv->rooms, &b->m);
    b->sig = RDV_SIG_NEW; /* not registered: fail_internal's leave holds nothing */
    fail_internal(b, "find you a peer");
    return;
  }
  b->sig = RDV_SIG_WAITING;
  HP_INFO(RDV_COMP, json_pack("{s:s,s:s}", "room", b->m.room, "peer", b->m.id),
          "%s waits again in room %s: its peer went away while being paired", b->m.id, b->m.room);
}

/*
 * b has just been paired with a, who waited (role "a"). Both messages are
 * made first and both connections checked, so that neither is told to punch
 * a peer that cannot be told: if a cannot take its message, b waits again.
 * Both are then written in this one turn.
 */
static void pair(rdv_conn *a, rdv_conn *b, const hp__cands *b_cands) {
  hp__rdv *s = a->srv;
  char session[HP_SESSION_HEX + 1], *ta = NULL, *tb = NULL;
  size_t la = 0, lb = 0;
  hp__msg ma, mb;

  if (!hp__rdv_conn_writable(a)) {
    /* a is going away (or does not read): b is not sent to punch it. */
    hp__rooms_leave(s->rooms, &a->m);
    a->sig = RDV_SIG_NEW;
    fail_internal(a, "send the peer message");
    requeue(b, b_cands);
    return;
  }
  if (hp__random_hex(session, HP_SESSION_HEX / 2) < 0) {
    fail_internal(a, "draw a session key");
    fail_internal(b, "draw a session key");
    return;
  }
  peer_msg(&ma, a, b, 'a', session, b_cands->c, b_cands->n);
  peer_msg(&mb, b, a, 'b', session, a->cands, a->ncands);
  hp__rdv_start_times(a, b, &ma.u.peer, &mb.u.peer);
  ta = encode(&ma, &la);
  tb = encode(&mb, &lb);
  if (!ta || !tb) {
    free(ta);
    free(tb);
    fail_internal(a, "encode the peer message");
    fail_internal(b, "encode the peer message");
    return;
  }
  memcpy(a->peer_id, b->m.id, sizeof(a->peer_id));
  memcpy(b->peer_id, a->m.id, sizeof(b->peer_id));
  forget_cands(a); /* the waiter's candidates were only kept for this moment */
  a->sig = b->sig = RDV_SIG_PAIRED;
  if (hp__rdv_conn_send_text(a, ta, la) < 0) {
    a->sig = RDV_SIG_NEW;
    hp__rooms_leave(s->rooms, &a->m);
    fail_internal(a, "send the peer message");
    requeue(b, b_cands);
    free(ta);
    free(tb);
    return;
  }
  if (hp__rdv_conn_send_text(b, tb, lb) < 0)
    fail_internal(b, "send the peer message");
  free(ta);
  free(tb);
  /* The pair may now meet on /relay with this session (relay.c). */
  hp__rdv_relay_register(s, session, a->m.id, b->m.id);
  s->m.pairings++;
  HP_INFO(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:s,s:s}", "room", a->m.room, "peer", a->m.id, "peer_b", b->m.id,
                    "addr", a->observed, "addr_b", b->observed),
          "paired %s (a) with %s (b) in room %s", a->m.id, b->m.id, a->m.room);
}

/* splitmix64's finalizer: a bijection of 64-bit words that mixes every
 * input bit into every output bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/*
 * A service-assigned id: 16 hex digits. Ids are public (the peer gets them)
 * and only need to be unique and not guessable from outside; the secret of a
 * pairing is its session, which keeps coming from getrandom. A bijective mix
 * of a per-process random key plus a counter is unique for 2^64 ids and costs
 * no system call per worker.
 */
static void assign_id(hp__rdv *s, char *id) {
  static const char hex[] = "0123456789abcdef";
  uint64_t v = mix64(s->id_key + s->id_counter++);

  for (int i = 0; i < GENERATED_ID_BYTES * 2; i++)
    id[i] = hex[(v >> (60 - 4 * i)) & 15];
  id[GENERATED_ID_BYTES * 2] = '\0';
}

/* The room operation answered: rc as hp__rooms_join, w the waiting member
 * when paired. */
static void join_done(rdv_conn *c, int rc, hp__rooms_member *w, const hp__cands *cands) {
  hp__rdv *s = c->srv;
  char *text;
  size_t len = 0;
  hp__msg m;

  if (c->sig != RDV_SIG_JOINING || c->state != RDV_WS) {
    /* The connection went away while the store worked: undo. */
    if (rc >= 0)
      hp__rooms_leave(s->rooms, &c->m);
    if (rc == 1)
      requeue(conn_of_member(w), NULL);
    goto out;
  }
  if (rc == -EEXIST) {
    c->sig = RDV_SIG_NEW;
    hp__rdv_conn_fail(c, HP_RDV_ERR_DUPLICATE_ID, HP_WS_CLOSE_POLICY,
                      "The id \"%s\" is already used by another connected worker in room \"%s\"; "
                      "choose another id or leave it out to get one assigned.",
                      c->m.id, c->m.room);
    goto out;
  }
  if (rc < 0) {
    c->sig = RDV_SIG_NEW;
    fail_internal(c, "register this worker");
    goto out;
  }
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_WELCOME;
  memcpy(m.u.welcome.id, c->m.id, sizeof(m.u.welcome.id));
  memcpy(m.u.welcome.room, c->m.room, sizeof(m.u.welcome.room));
  snprintf(m.u.welcome.observed, sizeof(m.u.welcome.observed), "%s", observed_wire(c));
  text = encode(&m, &len);
  if (!text || hp__rdv_conn_send_text(c, text, len) < 0 || (rc == 0 && keep_cands(c, cands) < 0)) {
    /* Undo the join completely: the member that waited (if the join paired
     * it) waits again instead of being left out of its room. */
    free(text);
    hp__rooms_leave(s->rooms, &c->m);
    if (rc == 1)
      requeue(conn_of_member(w), NULL);
    c->sig = RDV_SIG_NEW;
    fail_internal(c, "send the welcome message");
    goto out;
  }
  free(text);
  hp__rdv_conn_registered(c);
  HP_DEBUG(RDV_COMP,
           json_pack("{s:s,s:s,s:s,s:i}", "room", c->m.room, "peer", c->m.id, "addr", c->observed,
                     "candidates", (int)cands->n),
           "hello");
  if (rc == 1) {
    rdv_conn *a = conn_of_member(w);
    /* requeue() needs a's own candidates if a has to wait again: they are
     * still in a->cands until pair() takes them. */
    pair(a, c, cands);
  } else {
    c->sig = RDV_SIG_WAITING;
  }
out:
  hp__rdv_conn_unref(c);
}

/* The room store: in memory, so the answer is immediate. */
static void join_start(rdv_conn *c, const hp__cands *cands) {
  hp__rooms_member *w = NULL;
  int rc;

  c->sig = RDV_SIG_JOINING;
  c->refs++;
  rc = hp__rooms_join(c->srv->rooms, &c->m, &w);
  join_done(c, rc, w, cands);
}

static void on_hello(rdv_conn *c, const hp__msg_hello *h) {
  hp__rdv *s = c->srv;
  hp__ipent *e;

  if (c->sig != RDV_SIG_NEW) {
    hp__rdv_conn_fail(c, HP_RDV_ERR_UNEXPECTED_MESSAGE, HP_WS_CLOSE_POLICY,
                      "A second hello was sent on this connection; hello is sent once.");
    return;
  }
  e = hp__rdv_sig_client_entry(c);
  if (e &&
      !hp__ipent_take(e, s->o.max_hellos_per_minute, s->o.max_hellos_per_minute, uv_now(s->loop))) {
    hp__rdv_conn_fail(c, HP_RDV_ERR_RATE_LIMITED, HP_WS_CLOSE_POLICY,
                      "Too many hellos from your address (MAX_HELLOS_PER_MINUTE=%d); try again "
                      "later.",
                      s->o.max_hellos_per_minute);
    return;
  }
  memcpy(c->m.room, h->room, sizeof(c->m.room));
  if (h->id[0]) {
    memcpy(c->m.id, h->id, sizeof(c->m.id));
  } else {
    /* Assigned ids never repeat; a worker may have chosen the same one. */
    do
      assign_id(s, c->m.id);
    while (hp__rooms_id_taken(s->rooms, c->m.room, c->m.id));
  }
  join_start(c, &h->cands);
}

static void on_result(rdv_conn *c, const hp__msg_result *r) {
  hp__rdv *s = c->srv;
  int direct = r->status == HP_RESULT_DIRECT;

  if (c->sig != RDV_SIG_PAIRED) {
    hp__rdv_conn_fail(c, HP_RDV_ERR_UNEXPECTED_MESSAGE, HP_WS_CLOSE_POLICY, "%s",
                      c->sig == RDV_SIG_NEW ? "A result was sent before hello; send hello first."
                      : c->sig == RDV_SIG_REPORTED
                          ? "A second result was sent; result is sent once."
                          : "A result was sent before peer; report the punch after peer.");
    return;
  }
  c->sig = RDV_SIG_REPORTED;
  if (direct)
    s->m.results_direct++;
  else
    s->m.results_failed++;
  HP_INFO(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "room", c->m.room, "peer", c->m.id, "peer_b",
                    c->peer_id, "status", direct ? "direct" : "failed", "addr", r->addr,
                    "elapsed_ms", (json_int_t)r->elapsed_ms, "reason", r->reason),
          "result %s from %s (peer %s) in room %s", direct ? "direct" : "failed", c->m.id,
          c->peer_id[0] ? c->peer_id : "-", c->m.room);
}

static const char *type_name(hp__msg_type t) {
  switch (t) {
  case HP_MSG_WELCOME:
    return "welcome";
  case HP_MSG_PEER:
    return "peer";
  case HP_MSG_ERROR:
    return "error";
  default:
    return "?";
  }
}

void hp__rdv_sig_message(rdv_conn *c, int binary, const uint8_t *data, size_t len) {
  hp__msg m;
  hp__wire_err err;

  if (binary) {
    hp__rdv_conn_fail(c, HP_RDV_ERR_UNSUPPORTED_DATA, HP_WS_CLOSE_UNSUPPORTED_DATA,
                      "A binary frame was received; signaling messages are JSON text frames.");
    return;
  }
  if (hp__msg_decode((const char *)data, len, &m, &err) < 0) {
    hp__rdv_err code = hp__rdv_err_from_name(err.code ? err.code : "bad_message");
    hp__rdv_conn_fail(c, code,
                      code == HP_RDV_ERR_TOO_LARGE ? HP_WS_CLOSE_TOO_BIG : HP_WS_CLOSE_POLICY, "%s",
                      err.message);
    return;
  }
  switch (m.type) {
  case HP_MSG_HELLO:
    on_hello(c, &m.u.hello);
    break;
  case HP_MSG_RESULT:
    on_result(c, &m.u.result);
    break;
  default:
    hp__rdv_conn_fail(c, HP_RDV_ERR_UNEXPECTED_MESSAGE, HP_WS_CLOSE_POLICY,
                      "A \"%s\" message is sent by the server, never to it.", type_name(m.type));
    break;
  }
}
