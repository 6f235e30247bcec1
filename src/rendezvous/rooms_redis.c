/*
 * rooms_redis.c - the Redis backend of the room store (store.h).
 *
 * Two connections (redis_conn.c): "commands" runs the scripts of
 * rooms_redis_lua.h with EVALSHA (EVAL when Redis lost them); "pubsub" is
 * subscribed to this instance's channel, on which another instance that
 * pairs one of our waiting members tells us so. The store is available
 * while both are up and the scripts are loaded; otherwise join fails at
 * once with -EAGAIN.
 *
 * Every member of this instance has a lease of ttl in Redis, renewed every
 * third of it while it lives here; a member of a dead instance is forgotten
 * within the ttl. The renewal also reports what the pub/sub channel may
 * have lost (a pairing while our subscriber was reconnecting) and members
 * Redis forgot (restarted without its data): a waiting one joins again.
 *
 * A member is named by its mid (slot + generation), and so is its token in
 * Redis (the mid in hex, with the instance name): a late answer or
 * notification for a member that left finds no slot and is dropped.
 */
#include "rooms_redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "rooms_redis_int.h"
#include "rooms_redis_lua.h"

static void send_leave(rstore *s, const grave *g, int eval);

static const char *const script_text[S_COUNT] = {lua_join, lua_leave, lua_refresh};
static const char *const script_name[S_COUNT] = {"join", "leave", "refresh"};

/* ---- members ---- */

void hp__rr_set_mstate(rstore *s, rmember *m, mstate st) {
  if (m->state == M_WAITING)
    s->waiting--;
  if (st == M_WAITING)
    s->waiting++;
  m->state = st;
}

void hp__rr_member_free(rstore *s, rmember *m) {
  hp__rr_set_mstate(s, m, M_JOINING); /* leaves the waiting count */
  hp__slots_del(&s->slots, m->mid);
  free(m->payload);
  free(m->early);
  free(m);
}

rmember *hp__rr_member_get(rstore *s, hp__store_mid mid) {
  return hp__slots_get(&s->slots, mid);
}

int hp__rr_keys_of(const rstore *s, const char *room, const char *id, char *wk, char *mk,
                   char *mprefix) {
  int a = snprintf(wk, KEY_MAX, "%s{%s}:w", s->prefix, room);
  int b = snprintf(mk, KEY_MAX, "%s{%s}:m:%s", s->prefix, room, id);
  int c = mprefix ? snprintf(mprefix, KEY_MAX, "%s{%s}:m:", s->prefix, room) : 0;
  return a < KEY_MAX && b < KEY_MAX && c < KEY_MAX ? 0 : -ENAMETOOLONG;
}

/* ---- availability ---- */

void hp__rr_update_available(rstore *s, const char *why) {
  int now = !s->closing && s->scripts_loaded == (1 << S_COUNT) - 1 && s->subscribed &&
            hp__rconn_up(s->cmd) && hp__rconn_up(s->sub);

  if (now == s->available)
    return;
  s->available = now;
  if (now)
    HP_INFO(COMP, json_pack("{s:s}", "instance", s->base.instance),
            "redis available: taking new workers");
  else
    HP_WARN(COMP, json_pack("{s:s,s:s}", "instance", s->base.instance, "reason", why),
            "redis unavailable: %s; new workers are refused until it is back", why);
  if (s->base.cb.on_status)
    s->base.cb.on_status(s->base.ctx, now, now ? "redis is available" : why);
}

/* ---- sending ---- */

rcall *hp__rr_call_new(rstore *s, int script, size_t n) {
  rcall *c = calloc(1, sizeof(*c) + n * sizeof(c->mids[0]));
  if (c) {
    c->s = s;
    c->script = script;
  }
  return c;
}

/* EVALSHA sha (or EVAL text) numkeys keys... args... */
int hp__rr_send_script(rstore *s, int script, int eval, hp__rconn_reply_cb cb, rcall *call,
                       int nkeys, int nargs, const char **kv, const size_t *kvlen) {
  const char *argv[3 + 2 * REFRESH_BATCH + 2 + 3 * REFRESH_BATCH];
  size_t len[sizeof(argv) / sizeof(argv[0])];
  char nk[16];
  int argc = 0;

  if ((size_t)(3 + nkeys + nargs) > sizeof(argv) / sizeof(argv[0]))
    return -E2BIG;
  argv[argc] = eval ? "EVAL" : "EVALSHA";
  len[argc++] = eval ? 4 : 7;
  argv[argc] = eval ? script_text[script] : s->sha[script];
  len[argc++] = strlen(argv[1]);
  len[argc] = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
  argv[argc++] = nk;
  for (int i = 0; i < nkeys + nargs; i++) {
    argv[argc] = kv[i];
    len[argc++] = kvlen ? kvlen[i] : strlen(kv[i]);
  }
  return hp__rconn_cmd(s->cmd, cb, call, argc, argv, len);
}

int hp__rr_is_noscript(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8);
}

/* ---- join ---- */

int hp__rr_elem_str(const redisReply *r, size_t i, const char **p, size_t *n) {
  if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
      r->element[i]->type != REDIS_REPLY_STRING)
    return -1;
  *p = r->element[i]->str;
  *n = r->element[i]->len;
  return 0;
}

static int copy_name(char *dst, size_t cap, const char *p, size_t n) {
  if (n == 0 || n >= cap || !hp__wire_valid_name(p, n))
    return -1;
  memcpy(dst, p, n);
  dst[n] = '\0';
  return 0;
}

static int valid_session(const char *p, size_t n) {
  if (n != HP_SESSION_HEX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
      return 0;
  return 1;
}

/* A pairing from the reply's fields: peer id, peer instance, payload, session. */
int hp__rr_pairing_from(hp__store_pairing *p, char role, const char *pid, size_t pidn,
                        const char *pinst, size_t pinstn, const void *pl, size_t pln,
                        const char *ses, size_t sesn) {
  memset(p, 0, sizeof(*p));
  p->role = role;
  if (copy_name(p->peer_id, sizeof(p->peer_id), pid, pidn) < 0 ||
      copy_name(p->peer_instance, sizeof(p->peer_instance), pinst, pinstn) < 0 ||
      !valid_session(ses, sesn) || pln > HP_STORE_PAYLOAD_MAX)
    return -1;
  memcpy(p->session, ses, HP_SESSION_HEX);
  p->session[HP_SESSION_HEX] = '\0';
  p->peer_payload = pl;
  p->peer_payload_len = pln;
  return 0;
}

hp__store_mid hp__rr_mid_of_token(const char *p, size_t n) {
  hp__store_mid v = 0;

  if (n != TOKEN_LEN)
    return 0;
  for (size_t i = 0; i < n; i++) {
    int d = p[i] >= '0' && p[i] <= '9'   ? p[i] - '0'
            : p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10
                                         : -1;
    if (d < 0)
      return 0;
    v = v << 4 | (hp__store_mid)d;
  }
  return v;
}

/* Our waiting member (by token) was paired: tell the caller, role "a". */
void hp__rr_deliver_paired(rstore *s, rmember *m, const hp__store_pairing *p, int remote) {
  hp__store_ref ref = m->ref;
  hp__store_mid mid = m->mid;

  hp__rr_set_mstate(s, m, M_PAIRED);
  free(m->payload);
  m->payload = NULL;
  m->len = 0;
  if (remote)
    s->stats.remote_pairings++;
  s->base.cb.on_paired(s->base.ctx, ref, mid, p);
}

static void lost(rstore *s, rmember *m) {
  hp__store_ref ref = m->ref;
  hp__store_mid mid = m->mid;

  HP_WARN(COMP, json_pack("{s:s,s:s}", "room", m->room, "peer", m->id),
          "worker %s in room %s was lost by Redis and its id is taken now", m->id, m->room);
  hp__rr_member_free(s, m);
  s->stats.lost++;
  if (s->base.cb.on_lost)
    s->base.cb.on_lost(s->base.ctx, ref, mid);
}

/* A join got no usable answer: the member may or may not be in Redis now; a
 * leave makes sure it is not (it is ours by its token). A rejoin is simply
 * tried again at the next renewal. */
static void join_no_answer(rstore *s, rmember *m) {
  hp__store_ref ref = m->ref;
  hp__store_mid mid = m->mid;
  mstate was = m->state;
  grave g;

  if (was == M_REJOINING) {
    hp__rr_set_mstate(s, m, M_WAITING);
    return;
  }
  memcpy(g.tok, m->tok, sizeof(g.tok));
  memcpy(g.id, m->id, sizeof(g.id));
  memcpy(g.room, m->room, sizeof(g.room));
  hp__rr_member_free(s, m);
  send_leave(s, &g, 0);
  if (was == M_JOINING)
    s->base.cb.on_join(s->base.ctx, ref, mid, HP_STORE_UNAVAILABLE, NULL);
}

static void on_join_reply(void *arg, redisReply *r) {
  rcall *call = arg;
  rstore *s = call->s;
  rmember *m = s->closing ? NULL : hp__rr_member_get(s, call->mid);
  const char *v = NULL;
  size_t vn = 0;
  hp__store_ref ref;
  hp__store_mid mid;

  if (!m || (m->state != M_JOINING && m->state != M_JOINING_LEFT && m->state != M_REJOINING))
    goto out;
  if (hp__rr_is_noscript(r)) {
    hp__rr_load_scripts(s);
    if (hp__rr_send_join(s, m, 1) < 0)
      join_no_answer(s, m);
    goto out;
  }
  ref = m->ref;
  mid = m->mid;
  if (hp__rr_elem_str(r, 0, &v, &vn) < 0) {
    if (r)
      HP_ERROR(COMP, NULL, "redis join: unexpected reply (type %d): %.*s", r->type,
               r->type == REDIS_REPLY_ERROR ? (int)(r->len > 200 ? 200 : r->len) : 0,
               r->type == REDIS_REPLY_ERROR ? r->str : "");
    join_no_answer(s, m);
    goto out;
  }
  if (m->state == M_JOINING_LEFT) {
    grave g;
    memcpy(g.tok, m->tok, sizeof(g.tok));
    memcpy(g.id, m->id, sizeof(g.id));
    memcpy(g.room, m->room, sizeof(g.room));
    hp__rr_member_free(s, m);
    if (vn != 3 || memcmp(v, "dup", 3))
      send_leave(s, &g, 0);
    goto out;
  }
  if (vn == 3 && !memcmp(v, "dup", 3)) {
    if (m->state == M_REJOINING) {
      lost(s, m);
      goto out;
    }
    hp__rr_member_free(s, m);
    s->base.cb.on_join(s->base.ctx, ref, mid, HP_STORE_DUPLICATE, NULL);
  } else if (vn == 7 && !memcmp(v, "waiting", 7)) {
    int rejoin = m->state == M_REJOINING;
    hp__rr_set_mstate(s, m, M_WAITING);
    if (!rejoin)
      s->base.cb.on_join(s->base.ctx, ref, mid, HP_STORE_WAITING, NULL);
    /* Paired already, by another instance whose notification came first
     * (and unless the callback made it leave). */
    m = hp__rr_member_get(s, mid);
    if (m && m->early) {
      char *e = m->early;
      size_t en = m->early_len;
      m->early = NULL;
      hp__rr_on_notification(s, e, en);
      free(e);
    }
  } else if (vn == 6 && !memcmp(v, "paired", 6)) {
    const char *pid, *pl, *ses, *pinst, *ptok;
    size_t pidn, pln, sesn, pinstn, ptokn;
    hp__store_pairing pb, pa;
    rmember *a = NULL;
    int rejoin = m->state == M_REJOINING;

    if (hp__rr_elem_str(r, 1, &pid, &pidn) < 0 || hp__rr_elem_str(r, 2, &pl, &pln) < 0 ||
        hp__rr_elem_str(r, 3, &ses, &sesn) < 0 || hp__rr_elem_str(r, 4, &pinst, &pinstn) < 0 ||
        hp__rr_elem_str(r, 5, &ptok, &ptokn) < 0 ||
        hp__rr_pairing_from(&pb, 'b', pid, pidn, pinst, pinstn, pl, pln, ses, sesn) < 0) {
      HP_ERROR(COMP, NULL, "redis join: a pairing reply with bad fields; worker dropped");
      hp__rr_member_free(s, m);
      if (!rejoin)
        s->base.cb.on_join(s->base.ctx, ref, mid, HP_STORE_UNAVAILABLE, NULL);
      goto out;
    }
    s->stats.pairings++;
    /* The peer waited on this instance: both learn it in this loop turn;
     * the notification that follows on our channel finds it paired. */
    if (pinstn == strlen(s->base.instance) && !memcmp(pinst, s->base.instance, pinstn)) {
      a = hp__rr_member_get(s, hp__rr_mid_of_token(ptok, ptokn));
      if (a && a->state != M_WAITING && a->state != M_REJOINING)
        a = NULL;
    }
    if (a) {
      /* pa: what a gets: m's id, payload and this instance. */
      pa = pb;
      pa.role = 'a';
      memcpy(pa.peer_id, m->id, sizeof(pa.peer_id));
      memcpy(pa.peer_instance, s->base.instance, sizeof(pa.peer_instance));
      pa.peer_payload = m->payload;
      pa.peer_payload_len = m->len;
    }
    {
      /* m's payload must outlive both callbacks (a's on_paired uses it). */
      void *mp = m->payload;
      m->payload = NULL;
      m->len = 0;
      hp__rr_set_mstate(s, m, M_PAIRED);
      if (a)
        hp__rr_deliver_paired(s, a, &pa, 0);
      /* a's callback may have made m leave: then m hears nothing. */
      if (hp__rr_member_get(s, mid)) {
        if (rejoin)
          s->base.cb.on_paired(s->base.ctx, ref, mid, &pb);
        else
          s->base.cb.on_join(s->base.ctx, ref, mid, HP_STORE_PAIRED, &pb);
      }
      free(mp);
    }
  } else {
    int rejoin = m->state == M_REJOINING;
    HP_ERROR(COMP, NULL, "redis join: unknown verdict \"%.*s\"", (int)(vn > 32 ? 32 : vn), v);
    hp__rr_member_free(s, m);
    if (!rejoin)
      s->base.cb.on_join(s->base.ctx, ref, mid, HP_STORE_UNAVAILABLE, NULL);
  }
out:
  free(call);
}

int hp__rr_send_join(rstore *s, rmember *m, int eval) {
  char wk[KEY_MAX], mk[KEY_MAX], mp[KEY_MAX], ttl[16], ses[HP_SESSION_HEX + 1], chp[KEY_MAX];
  const char *kv[10];
  size_t kvlen[10];
  rcall *call;
  int rc;

  if (hp__rr_keys_of(s, m->room, m->id, wk, mk, mp) < 0)
    return -ENAMETOOLONG;
  if (hp__store_new_session(&s->base, ses) < 0)
    return -EIO;
  snprintf(ttl, sizeof(ttl), "%u", s->ttl_ms);
  snprintf(chp, sizeof(chp), "%sinst:", s->prefix);
  kv[0] = wk;
  kv[1] = mk;
  kv[2] = m->id;
  kv[3] = s->base.instance;
  kv[4] = m->tok;
  kv[5] = m->payload ? m->payload : "";
  kv[6] = ttl;
  kv[7] = ses;
  kv[8] = mp;
  kv[9] = chp;
  for (int i = 0; i < 10; i++)
    kvlen[i] = i == 5 ? m->len : strlen(kv[i]);
  call = hp__rr_call_new(s, S_JOIN, 0);
  if (!call)
    return -ENOMEM;
  call->mid = m->mid;
  rc = hp__rr_send_script(s, S_JOIN, eval, on_join_reply, call, 2, 8, kv, kvlen);
  if (rc < 0)
    free(call);
  return rc;
}

/* ---- leave and the graveyard ---- */

static void on_leave_reply(void *arg, redisReply *r) {
  rcall *call = arg;
  rstore *s = call->s;

  if (!s->closing) {
    if (hp__rr_is_noscript(r)) {
      hp__rr_load_scripts(s);
      send_leave(s, &call->g, 1);
    } else if (!r) {
      send_leave(s, &call->g, 0); /* into the graveyard while Redis is away */
    }
  }
  free(call);
}

static void bury(rstore *s, const grave *g) {
  if (s->ngraves >= GRAVEYARD_MAX)
    return; /* the TTL forgets it */
  if (!s->graves) {
    s->graves = malloc(GRAVEYARD_MAX * sizeof(*s->graves));
    if (!s->graves)
      return;
  }
  s->graves[s->ngraves++] = *g;
}

static void send_leave(rstore *s, const grave *g, int eval) {
  char wk[KEY_MAX], mk[KEY_MAX];
  const char *kv[5];
  rcall *call;

  if (s->closing || hp__rr_keys_of(s, g->room, g->id, wk, mk, NULL) < 0)
    return;
  if (!hp__rconn_up(s->cmd) || s->scripts_loaded != (1 << S_COUNT) - 1) {
    bury(s, g);
    return;
  }
  call = hp__rr_call_new(s, S_LEAVE, 0);
  if (!call)
    return;
  call->g = *g;
  kv[0] = wk;
  kv[1] = mk;
  kv[2] = g->id;
  kv[3] = s->base.instance;
  kv[4] = g->tok;
  if (hp__rr_send_script(s, S_LEAVE, eval, on_leave_reply, call, 2, 3, kv, NULL) < 0) {
    free(call);
    bury(s, g);
  }
}

static void flush_graves(rstore *s) {
  size_t n = s->ngraves;

  s->ngraves = 0;
  for (size_t i = 0; i < n; i++)
    send_leave(s, &s->graves[i], 0);
}

/* ---- connections ---- */

static void on_script_loaded(void *arg, redisReply *r) {
  rcall *call = arg;
  rstore *s = call->s;
  int i = call->script;

  free(call);
  if (s->closing)
    return;
  if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
    char why[256];
    if (!r || !hp__rconn_up(s->cmd))
      return; /* the connection went down or is being dropped (AUTH): on_down says why */
    snprintf(why, sizeof(why), "SCRIPT LOAD %s failed: %.*s", script_name[i],
             r->type == REDIS_REPLY_ERROR ? (int)(r->len > 200 ? 200 : r->len) : 0,
             r->type == REDIS_REPLY_ERROR ? r->str : "");
    HP_ERROR(COMP, NULL, "%s", why);
    hp__rconn_drop(s->cmd, why);
    return;
  }
  memcpy(s->sha[i], r->str, 40);
  s->sha[i][40] = '\0';
  s->scripts_loaded |= 1 << i;
  if (s->scripts_loaded == (1 << S_COUNT) - 1) {
    hp__rr_update_available(s, "");
    flush_graves(s);
    hp__rr_refresh_all(s);
  }
}

void hp__rr_load_scripts(rstore *s) {
  for (int i = 0; i < S_COUNT; i++) {
    const char *argv[3] = {"SCRIPT", "LOAD", script_text[i]};
    rcall *call = hp__rr_call_new(s, i, 0);
    if (!call)
      return;
    if (hp__rconn_cmd(s->cmd, on_script_loaded, call, 3, argv, NULL) < 0)
      free(call);
  }
}

static void on_up(void *owner, hp__rconn *c) {
  rstore *s = owner;

  if (c == s->cmd) {
    hp__rr_load_scripts(s);
  } else if (hp__rconn_subscribe(c, s->channel, hp__rr_on_sub_push, s) < 0) {
    hp__rconn_drop(c, "cannot send SUBSCRIBE");
  }
}

static void on_down(void *owner, const hp__rconn *c, const char *why) {
  rstore *s = owner;

  if (c == s->cmd)
    s->scripts_loaded = 0;
  else
    s->subscribed = 0;
  hp__rr_update_available(s, why);
}

/* ---- the function table ---- */

static int valid_name(const char *s) {
  size_t n = strnlen(s, HP_ID_MAX + 1);
  return n >= 1 && n <= HP_ID_MAX && hp__wire_valid_name(s, n);
}

static int r_join(hp__store *st, hp__store_ref ref, const char *room, const char *id,
                  const void *payload, size_t len, hp__store_mid *mid) {
  rstore *s = (rstore *)st;
  rmember *m;
  int rc;

  if (!valid_name(room) || !valid_name(id) || len > HP_STORE_PAYLOAD_MAX || (len && !payload))
    return -EINVAL;
  if (!s->available || s->closing)
    return -EAGAIN;
  m = calloc(1, sizeof(*m));
  if (!m)
    return -ENOMEM;
  if (len) {
    m->payload = malloc(len);
    if (!m->payload) {
      free(m);
      return -ENOMEM;
    }
    memcpy(m->payload, payload, len);
    m->len = len;
  }
  m->ref = ref;
  m->state = M_JOINING;
  memcpy(m->id, id, strlen(id) + 1);
  memcpy(m->room, room, strlen(room) + 1);
  if (hp__slots_put(&s->slots, m, &m->mid) < 0) {
    free(m->payload);
    free(m);
    return -ENOMEM;
  }
  snprintf(m->tok, sizeof(m->tok), "%016llx", (unsigned long long)m->mid);
  rc = hp__rr_send_join(s, m, 0);
  if (rc < 0) {
    hp__rr_member_free(s, m);
    return rc == -ENOMEM ? -ENOMEM : -EAGAIN;
  }
  *mid = m->mid;
  return 0;
}

static void r_leave(hp__store *st, hp__store_mid mid) {
  rstore *s = (rstore *)st;
  rmember *m = hp__rr_member_get(s, mid);
  grave g;

  if (!m)
    return;
  switch (m->state) {
  case M_JOINING:
    hp__rr_set_mstate(s, m, M_JOINING_LEFT); /* the answer frees it, then leaves */
    return;
  case M_JOINING_LEFT:
    return;
  case M_REJOINING:
    hp__rr_set_mstate(s, m, M_JOINING_LEFT);
    return;
  default:
    break;
  }
  memcpy(g.tok, m->tok, sizeof(g.tok));
  memcpy(g.id, m->id, sizeof(g.id));
  memcpy(g.room, m->room, sizeof(g.room));
  hp__rr_member_free(s, m);
  send_leave(s, &g, 0);
}

static void r_refresh(hp__store *st) {
  hp__rr_refresh_all((rstore *)st);
}

static void r_stats(const hp__store *st, hp__store_stats *out) {
  const rstore *s = (const rstore *)st;

  *out = s->stats;
  out->available = s->available;
  out->members = s->slots.count;
  out->waiting = s->waiting;
}

static void maybe_done(rstore *s) {
  if (s->open_conns || s->refresh_open)
    return;
  for (uint32_t i = 0; i < s->slots.n; i++)
    if (s->slots.s[i].p) {
      rmember *m = s->slots.s[i].p;
      free(m->payload);
      free(m->early);
      free(m);
    }
  hp__slots_free(&s->slots);
  free(s->graves);
  free(s->keybuf);
  if (s->done)
    s->done(s->done_arg);
  free(s);
}

static void on_conn_closed(void *arg) {
  rstore *s = arg;
  s->open_conns--;
  maybe_done(s);
}

static void on_refresh_closed(uv_handle_t *h) {
  rstore *s = h->data;
  s->refresh_open = 0;
  maybe_done(s);
}

static void r_close(hp__store *st, void (*done)(void *arg), void *arg) {
  rstore *s = (rstore *)st;

  if (s->closing)
    return;
  s->closing = 1;
  s->available = 0;
  s->done = done;
  s->done_arg = arg;
  if (s->refresh_open)
    uv_close((uv_handle_t *)&s->refresh, on_refresh_closed);
  if (s->cmd)
    hp__rconn_close(s->cmd, on_conn_closed, s);
  if (s->sub)
    hp__rconn_close(s->sub, on_conn_closed, s);
  maybe_done(s);
}

static const hp__store_ops redis_ops = {
    .name = "redis",
    .join = r_join,
    .leave = r_leave,
    .refresh = r_refresh,
    .stats = r_stats,
    .close = r_close,
};

int hp__store_redis_create(uv_loop_t *loop, const hp__store_redis_opts *o, const hp__store_cbs *cb,
                           void *ctx, hp__store **out) {
  const char *prefix = o->prefix ? o->prefix : "hp:";
  hp__rconn_opts co;
  rstore *s;
  int rc;

  *out = NULL;
  if (!prefix[0] || strlen(prefix) > HP_STORE_REDIS_PREFIX_MAX || strpbrk(prefix, " {}"))
    return -EINVAL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  rc = hp__store_base_init(&s->base, &redis_ops, cb, ctx, o->instance);
  if (rc < 0) {
    free(s);
    return rc;
  }
  s->keybuf = malloc(2 * REFRESH_BATCH * sizeof(*s->keybuf));
  if (!s->keybuf) {
    free(s);
    return -ENOMEM;
  }
  s->loop = loop;
  s->url = *o->url;
  snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
  snprintf(s->channel, sizeof(s->channel), "%sinst:%s", s->prefix, s->base.instance);
  s->ttl_ms = o->ttl_ms ? o->ttl_ms : 30000;
  uv_timer_init(loop, &s->refresh);
  s->refresh.data = s;
  s->refresh_open = 1;
  uv_timer_start(&s->refresh, hp__rr_on_refresh_timer, s->ttl_ms / 3, s->ttl_ms / 3);

  memset(&co, 0, sizeof(co));
  co.url = &s->url;
  co.timeout_ms = o->timeout_ms ? o->timeout_ms : 1000;
  co.backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
  co.backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
  co.stats = &s->stats;
  co.on_up = on_up;
  co.on_down = on_down;
  co.owner = s;
  co.name = "commands";
  /* An idle instance still notices a dead Redis within a second or so. */
  co.ping_ms = 1000;
  rc = hp__rconn_create(loop, &co, &s->cmd);
  if (rc == 0) {
    s->open_conns++;
    co.name = "pubsub";
    co.ping_ms = 0; /* hiredis 0.14 cannot PING in subscribed mode */
    rc = hp__rconn_create(loop, &co, &s->sub);
    if (rc == 0)
      s->open_conns++;
  }
  *out = &s->base;
  if (rc < 0) {
    r_close(&s->base, NULL, NULL);
    *out = NULL;
    return rc;
  }
  {
    char u[HP_REDISURL_MAX + 64];
    if (hp__redis_url_format(&s->url, 1, u, sizeof(u)) < 0)
      snprintf(u, sizeof(u), "?");
    HP_INFO(COMP,
            json_pack("{s:s,s:s,s:i}", "instance", s->base.instance, "url", u, "ttl_ms",
                      (int)s->ttl_ms),
            "rooms in Redis at %s as instance %s", u, s->base.instance);
  }
  return 0;
}
