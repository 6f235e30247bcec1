/*
 * signaling.c - the signaling protocol of docs/PROTOCOL.md section 3 on one
 * WebSocket: hello -> welcome, pairing through the room store (store.h:
 * memory or Redis) -> peer, one result; every refusal an error message and
 * a close.
 *
 * The connection's signaling state (rdv_sig_state) is the only record of
 * where it is. A hello is a join in the store; its answer (on_join) comes
 * inside the call (memory) or a round trip later (Redis), and a waiter
 * hears of its peer through on_paired, from this instance or from another
 * one. The store names the connection by a ref (a slot of s->refs) and
 * stops calling back once the connection left (hp__rdv_sig_leave, on every
 * close path), so an answer never finds a freed connection.
 *
 * With the memory store both sides of a pairing are here, in one call:
 * the waiter's on_paired is held (s->sync) until the newcomer's on_join,
 * and both peer messages are checked and sent together; a side that
 * cannot be told makes the other wait again (hp__store_requeue).
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
#define REDRAWS_MAX 4        /* an assigned id a worker had chosen: draw again */

static const char *observed_wire(const rdv_conn *c) {
  return c->observed_full ? c->observed : "";
}

static void fail_internal(rdv_conn *c, const char *what) {
  hp__rdv_conn_fail(c, HP_RDV_ERR_INTERNAL_ERROR, HP_WS_CLOSE_INTERNAL,
                    "The server could not %s; please retry.", what);
}

static void fail_unavailable(rdv_conn *c) {
  hp__rdv_conn_fail(c, HP_RDV_ERR_UNAVAILABLE, HP_WS_CLOSE_TRY_AGAIN_LATER,
                    "The rendezvous cannot reach its room store; retry in a few seconds.");
}

void hp__rdv_sig_leave(rdv_conn *c) {
  hp__rdv *s = c->srv;

  if (c->mid && s->store) {
    hp__store_leave(s->store, c->mid); /* no callback for it after this */
    c->mid = 0;
  }
  if (c->ref) {
    hp__slots_del(&s->refs, c->ref);
    c->ref = 0;
  }
  if (s->sync.a == c)
    s->sync.a = NULL;
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

static rdv_conn *conn_of_ref(hp__rdv *s, hp__store_ref ref) {
  return ref ? hp__slots_get(&s->refs, ref) : NULL;
}

static int send_msg(rdv_conn *c, const hp__msg *m) {
  size_t len = 0;
  char *text = hp__msg_encode(m, &len);
  int rc;

  if (!text)
    return -ENOMEM;
  rc = hp__rdv_conn_send_text(c, text, len);
  free(text);
  return rc;
}

static int send_welcome(rdv_conn *c) {
  hp__msg m;
  int rc;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_WELCOME;
  memcpy(m.u.welcome.id, c->id, sizeof(m.u.welcome.id));
  memcpy(m.u.welcome.room, c->room, sizeof(m.u.welcome.room));
  snprintf(m.u.welcome.observed, sizeof(m.u.welcome.observed), "%s", observed_wire(c));
  rc = send_msg(c, &m);
  if (!rc) {
    hp__rdv_conn_registered(c);
    HP_DEBUG(RDV_COMP,
             json_pack("{s:s,s:s,s:s}", "room", c->room, "peer", c->id, "addr", c->observed),
             "hello");
  }
  return rc;
}

/*
 * The peer message for c from its pairing p. The relay both use is the
 * waiter's instance's (role a: this instance; role b: the URL the waiter's
 * instance put in its payload), so relayed bytes stay on one instance.
 */
/* times: the start times of a pairing made on this instance (both workers'
 * round trips and clocks known here: sync_start.c), or NULL: the default
 * (a pairing across instances; each worker starts on receipt). */
static int send_peer(rdv_conn *c, const hp__store_pairing *p, const hp__msg_peer *times) {
  hp__rdv *s = c->srv;
  hp__peer_payload pp;
  hp__wire_err err;
  hp__msg m;
  hp__msg_peer *o = &m.u.peer;

  memset(&pp, 0, sizeof(pp));
  if (p->peer_payload_len &&
      hp__peer_payload_decode(p->peer_payload, p->peer_payload_len, &pp, &err) < 0) {
    HP_ERROR(RDV_COMP, json_pack("{s:s,s:s}", "room", c->room, "peer", p->peer_id),
             "the room store holds a bad payload for %s: %s", p->peer_id, err.message);
    return -EPROTO;
  }
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_PEER;
  memcpy(o->room, c->room, sizeof(o->room));
  o->role = p->role;
  memcpy(o->session, p->session, sizeof(o->session));
  memcpy(o->peer_id, p->peer_id, sizeof(o->peer_id));
  memcpy(o->peer_observed, pp.observed, sizeof(o->peer_observed));
  o->peer_cands = pp.cands;
  o->start_in_ms = times ? times->start_in_ms : START_IN_MS;
  o->start_at_us = times ? times->start_at_us : 0;
  memcpy(o->relay_url, p->role == 'a' ? s->instance_url : pp.relay_url, sizeof(o->relay_url));
  memcpy(c->peer_id, p->peer_id, sizeof(c->peer_id));
  return send_msg(c, &m);
}

/* The observed address in a pairing's payload, for the log ("" if none). */
static const char *peer_observed(const hp__store_pairing *p) {
  static hp__peer_payload pp; /* the loop's thread only */
  hp__wire_err err;

  if (!p->peer_payload_len ||
      hp__peer_payload_decode(p->peer_payload, p->peer_payload_len, &pp, &err) < 0)
    return "";
  return pp.observed;
}

/* b completed a pairing with a (id a_id, seen at a_addr: its observed
 * address, "" when it is on another instance behind a proxy). */
static void log_paired(const rdv_conn *b, const char *a_id, const char *a_addr,
                       const char *a_instance) {
  HP_INFO(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "room", b->room, "peer", a_id, "peer_b", b->id,
                    "addr", a_addr, "addr_b", b->observed, "instance", a_instance),
          "paired %s (a) with %s (b) in room %s", a_id, b->id, b->room);
}

/* c waits again after its pairing was taken back (memory store only). */
static int requeue(rdv_conn *c, const void *payload, size_t len) {
  if (hp__store_requeue(c->srv->store, c->mid, payload, len) < 0) {
    fail_internal(c, "find you a peer");
    return -1;
  }
  c->sig = RDV_SIG_WAITING;
  HP_INFO(RDV_COMP, json_pack("{s:s,s:s}", "room", c->room, "peer", c->id),
          "%s waits again in room %s: its peer went away while being paired", c->id, c->room);
  return 0;
}

/* One side of a pairing made in this call is dropped: out of the store
 * now (its mid is no longer ours to leave), then told why. */
static void drop(rdv_conn *c, const char *what) {
  hp__store_leave(c->srv->store, c->mid);
  c->mid = 0;
  fail_internal(c, what);
}

/*
 * The memory store paired b (the newcomer, pb its pairing) with a, whose
 * on_paired was held. Both sides are checked before either is told, so
 * that neither punches a peer that cannot be told.
 */
static void pair_local(rdv_conn *a, rdv_conn *b, const hp__store_pairing *pb) {
  hp__rdv *s = b->srv;
  hp__store_pairing pa;
  hp__msg_peer ta, tb;
  const char *b_payload = s->sync.payload;
  size_t b_len = s->sync.len;

  if (send_welcome(b) < 0) {
    /* b is not registered after all: a waits again, with its payload. */
    drop(b, "send the welcome message");
    (void)requeue(a, pb->peer_payload, pb->peer_payload_len);
    return;
  }
  if (!hp__rdv_conn_writable(a)) {
    /* a is going away (or does not read): b is not sent to punch it. */
    drop(a, "send the peer message");
    (void)requeue(b, b_payload, b_len);
    return;
  }
  memset(&pa, 0, sizeof(pa));
  pa.role = 'a';
  memcpy(pa.session, pb->session, sizeof(pa.session));
  memcpy(pa.peer_id, b->id, sizeof(pa.peer_id));
  memcpy(pa.peer_instance, pb->peer_instance, sizeof(pa.peer_instance));
  pa.peer_payload = b_payload;
  pa.peer_payload_len = b_len;
  a->sig = b->sig = RDV_SIG_PAIRED;
  /* Both start times from one decision (sync_start.c). */
  hp__rdv_start_times(a, b, &ta, &tb);
  if (send_peer(a, &pa, &ta) < 0) {
    drop(a, "send the peer message");
    (void)requeue(b, b_payload, b_len);
    return;
  }
  if (send_peer(b, pb, &tb) < 0) {
    fail_internal(b, "send the peer message");
    return;
  }
  /* The pair may now meet on /relay of this instance (the waiter's) with
   * this session (relay.c). */
  hp__rdv_relay_register(s, pb->session, a->id, b->id);
  s->m.pairings++;
  log_paired(b, a->id, a->observed, pb->peer_instance);
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

static void join_start(rdv_conn *c, const char *payload, size_t len) {
  hp__rdv *s = c->srv;
  rdv_sync_join saved = s->sync;
  rdv_conn *held;
  int rc;

  c->sig = RDV_SIG_JOINING;
  memset(&s->sync, 0, sizeof(s->sync));
  s->sync.active = 1;
  s->sync.payload = payload;
  s->sync.len = len;
  rc = hp__store_join(s->store, c->ref, c->room, c->id, payload, len, &c->mid);
  held = s->sync.a;
  s->sync = saved;
  if (rc < 0) {
    c->mid = 0;
    if (rc == -EAGAIN)
      fail_unavailable(c);
    else
      fail_internal(c, "register this worker");
    return;
  }
  /* A held waiter whose newcomer never came back paired (the memory store
   * always answers both in one call): it cannot be told; let it retry. */
  if (held)
    drop(held, "send the peer message");
}

static void store_on_join(void *ctx, hp__store_ref ref, hp__store_mid mid, hp__store_verdict v,
                          const hp__store_pairing *p) {
  hp__rdv *s = ctx;
  rdv_conn *c = conn_of_ref(s, ref);

  if (!c || c->mid != mid || c->sig != RDV_SIG_JOINING)
    return;
  switch (v) {
  case HP_STORE_WAITING:
    c->sig = RDV_SIG_WAITING;
    if (send_welcome(c) < 0)
      fail_internal(c, "send the welcome message");
    return;
  case HP_STORE_PAIRED: {
    rdv_conn *a = s->sync.active ? s->sync.a : NULL;
    if (a) {
      s->sync.a = NULL;
      if (a->mid == s->sync.a_mid && a->sig == RDV_SIG_WAITING &&
          !strcmp(s->sync.session, p->session)) {
        pair_local(a, c, p);
        return;
      }
    }
    /* The waiter is on another instance (or gone): it hears of the
     * pairing from its own instance. */
    if (send_welcome(c) < 0) {
      fail_internal(c, "send the welcome message");
      return;
    }
    c->sig = RDV_SIG_PAIRED;
    if (send_peer(c, p, NULL) < 0) {
      fail_internal(c, "send the peer message");
      return;
    }
    s->m.pairings++;
    log_paired(c, p->peer_id, peer_observed(p), p->peer_instance);
    return;
  }
  case HP_STORE_DUPLICATE:
    c->mid = 0;
    if (c->id_assigned && c->redraws < REDRAWS_MAX && s->sync.active) {
      /* A worker chose the id drawn for this one: draw another (the
       * memory store answers inside the call, so the payload is still
       * there). */
      c->redraws++;
      assign_id(s, c->id);
      join_start(c, s->sync.payload, s->sync.len);
      return;
    }
    c->sig = RDV_SIG_NEW;
    hp__rdv_conn_fail(c, HP_RDV_ERR_DUPLICATE_ID, HP_WS_CLOSE_POLICY,
                      "The id \"%s\" is already used by another connected worker in room \"%s\"; "
                      "choose another id or leave it out to get one assigned.",
                      c->id, c->room);
    return;
  case HP_STORE_UNAVAILABLE:
  default:
    c->mid = 0;
    fail_unavailable(c);
    return;
  }
}

static void store_on_paired(void *ctx, hp__store_ref ref, hp__store_mid mid,
                            const hp__store_pairing *p) {
  hp__rdv *s = ctx;
  rdv_conn *c = conn_of_ref(s, ref);

  if (!c || c->mid != mid || c->sig != RDV_SIG_WAITING)
    return;
  if (s->sync.active && !s->sync.a) {
    /* Paired by a hello of this process, inside its join: held until the
     * newcomer's answer (pair_local). */
    s->sync.a = c;
    s->sync.a_mid = mid;
    memcpy(s->sync.session, p->session, sizeof(s->sync.session));
    return;
  }
  c->sig = RDV_SIG_PAIRED;
  if (send_peer(c, p, NULL) < 0) {
    fail_internal(c, "send the peer message");
    return;
  }
  /* The waiter's instance is the pair's relay (peer.relay_url): the pair
   * may meet on its /relay with this session (relay.c). */
  hp__rdv_relay_register(s, p->session, c->id, p->peer_id);
}

static void store_on_lost(void *ctx, hp__store_ref ref, hp__store_mid mid) {
  hp__rdv *s = ctx;
  rdv_conn *c = conn_of_ref(s, ref);

  if (!c || c->mid != mid)
    return;
  c->mid = 0; /* forgotten by the store */
  if (c->sig == RDV_SIG_WAITING || c->sig == RDV_SIG_JOINING)
    fail_unavailable(c); /* the worker says hello again */
}

static void store_on_status(void *ctx, int available, const char *why) {
  hp__rdv *s = ctx;
  (void)why; /* the store logs the change itself */
  s->store_up = available;
}

const hp__store_cbs hp__rdv_store_cbs = {store_on_join, store_on_paired, store_on_lost,
                                         store_on_status};

static void on_hello(rdv_conn *c, const hp__msg_hello *h) {
  hp__rdv *s = c->srv;
  hp__peer_payload pp;
  hp__ipent *e;
  char *payload;
  size_t len = 0;

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
  memcpy(c->room, h->room, sizeof(c->room));
  c->id_assigned = !h->id[0];
  if (h->id[0])
    memcpy(c->id, h->id, sizeof(c->id));
  else
    assign_id(s, c->id);
  /* What the peer will get: encoded once, kept by the store. */
  memset(&pp, 0, sizeof(pp));
  snprintf(pp.observed, sizeof(pp.observed), "%s", observed_wire(c));
  pp.cands = h->cands;
  memcpy(pp.relay_url, s->instance_url, sizeof(pp.relay_url));
  payload = hp__peer_payload_encode(&pp, &len);
  if (!payload || (!c->ref && hp__slots_put(&s->refs, c, &c->ref) < 0)) {
    free(payload);
    c->ref = 0;
    fail_internal(c, "register this worker");
    return;
  }
  join_start(c, payload, len);
  free(payload);
}

static void on_result(rdv_conn *c, const hp__msg_result *r) {
  hp__rdv *s = c->srv;
  int direct = r->status == HP_RESULT_DIRECT, relayed = r->status == HP_RESULT_RELAYED;
  const char *st = direct ? "direct" : relayed ? "relayed" : "failed";

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
  else if (relayed)
    s->m.results_relayed++;
  else
    s->m.results_failed++;
  HP_INFO(RDV_COMP,
          json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "room", c->room, "peer", c->id, "peer_b",
                    c->peer_id, "status", st, "addr", r->addr, "elapsed_ms",
                    (json_int_t)r->elapsed_ms, "reason", r->reason),
          "result %s from %s (peer %s) in room %s", st, c->id, c->peer_id[0] ? c->peer_id : "-",
          c->room);
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
