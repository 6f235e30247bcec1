/*
 * rooms_redis_sync.c - keeping this instance's members in step with Redis
 * (the Redis room store, see rooms_redis.c): the lease renewal every third
 * of the TTL, which also reports what the pub/sub channel may have lost and
 * members Redis forgot, and the pairing notifications of the channel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rooms_redis_int.h"

/* ---- refresh ---- */

static void on_refresh_reply(void *arg, redisReply *r) {
  rcall *call = arg;
  rstore *s = call->s;

  if (s->closing || !r)
    goto out;
  if (hp__rr_is_noscript(r)) {
    hp__rr_load_scripts(s); /* the next refresh runs with the script back */
    goto out;
  }
  if (r->type != REDIS_REPLY_ARRAY)
    goto out;
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *e = r->element[i];
    const char *v, *role, *pid, *pinst, *pl, *ses;
    size_t vn, rn, pidn, pinstn, pln, sesn;
    hp__store_pairing p;
    rmember *m;
    long long j;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || hp__rr_elem_str(e, 1, &v, &vn) < 0)
      continue;
    j = e->element[0]->integer;
    if (j < 1 || (size_t)j > call->n)
      continue;
    m = hp__rr_member_get(s, call->mids[j - 1]);
    if (!m)
      continue;
    if (vn == 4 && !memcmp(v, "gone", 4)) {
      if (m->state == M_WAITING) {
        /* Redis forgot it (restarted without its data, or the lease ran
         * out during a long outage): it joins again, as it was. */
        HP_INFO(COMP, json_pack("{s:s,s:s}", "room", m->room, "peer", m->id),
                "worker %s in room %s was forgotten by Redis: joining again", m->id, m->room);
        hp__rr_set_mstate(s, m, M_REJOINING);
        if (hp__rr_send_join(s, m, 0) < 0)
          hp__rr_set_mstate(s, m, M_WAITING);
      }
      /* A paired member only kept its id: nothing to take back. */
    } else if (vn == 6 && !memcmp(v, "paired", 6) && m->state == M_WAITING &&
               hp__rr_elem_str(e, 2, &role, &rn) == 0 && hp__rr_elem_str(e, 3, &pid, &pidn) == 0 &&
               hp__rr_elem_str(e, 4, &pinst, &pinstn) == 0 &&
               hp__rr_elem_str(e, 5, &pl, &pln) == 0 && hp__rr_elem_str(e, 6, &ses, &sesn) == 0 &&
               hp__rr_pairing_from(&p, rn == 1 && role[0] == 'b' ? 'b' : 'a', pid, pidn, pinst,
                                   pinstn, pl, pln, ses, sesn) == 0) {
      HP_INFO(COMP, json_pack("{s:s,s:s}", "room", m->room, "peer", m->id),
              "worker %s in room %s: pairing recovered by the lease renewal (its notification "
              "was lost)",
              m->id, m->room);
      hp__rr_deliver_paired(s, m, &p, 1);
    }
  }
out:
  free(call);
}

void hp__rr_refresh_all(rstore *s) {
  const char *kv[2 * REFRESH_BATCH + 2 + 3 * REFRESH_BATCH];
  char(*keys)[KEY_MAX] = s->keybuf;
  char ttl[16];
  uint32_t i = 0;

  if (!s->available)
    return;
  snprintf(ttl, sizeof(ttl), "%u", s->ttl_ms);
  while (i < s->slots.n) {
    rcall *call = hp__rr_call_new(s, S_REFRESH, REFRESH_BATCH);
    const char *args[2 + 3 * REFRESH_BATCH];
    size_t n = 0;

    if (!call)
      return;
    args[0] = ttl;
    args[1] = s->base.instance;
    for (; i < s->slots.n && n < REFRESH_BATCH; i++) {
      rmember *m = s->slots.s[i].p;
      if (!m || (m->state != M_WAITING && m->state != M_PAIRED))
        continue;
      if (hp__rr_keys_of(s, m->room, m->id, keys[2 * n], keys[2 * n + 1], NULL) < 0)
        continue;
      args[2 + 3 * n] = m->id;
      args[3 + 3 * n] = m->tok;
      args[4 + 3 * n] = m->state == M_WAITING ? "w" : "p";
      call->mids[n++] = m->mid;
    }
    if (!n) {
      free(call);
      break;
    }
    call->n = n;
    for (size_t k = 0; k < 2 * n; k++)
      kv[k] = keys[k];
    for (size_t k = 0; k < 2 + 3 * n; k++)
      kv[2 * n + k] = args[k];
    if (hp__rr_send_script(s, S_REFRESH, 0, on_refresh_reply, call, (int)(2 * n), (int)(2 + 3 * n),
                           kv, NULL) < 0) {
      free(call);
      return;
    }
  }
}

void hp__rr_on_refresh_timer(uv_timer_t *t) {
  hp__rr_refresh_all(t->data);
}

/* ---- pub/sub ---- */

/* "token peer_id session peer_instance payload" */
void hp__rr_on_notification(rstore *s, const char *msg, size_t n) {
  const char *f[4], *p = msg, *end = msg + n;
  size_t fl[4];
  hp__store_pairing pa;
  rmember *m;

  for (int i = 0; i < 4; i++) {
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp)
      return;
    f[i] = p;
    fl[i] = (size_t)(sp - p);
    p = sp + 1;
  }
  m = hp__rr_member_get(s, hp__rr_mid_of_token(f[0], fl[0]));
  if (m && (m->state == M_JOINING || m->state == M_REJOINING)) {
    /* The answer to its join is still on its way on the other connection:
     * keep this until it comes (on_join_reply). Without it the pairing
     * would wait for the next lease renewal (a third of the TTL). */
    char *e = malloc(n);
    if (!e)
      return; /* the renewal recovers it */
    memcpy(e, msg, n);
    free(m->early);
    m->early = e;
    m->early_len = n;
    return;
  }
  if (!m || m->state != M_WAITING)
    return; /* left, or already paired (by this instance's own join) */
  if (hp__rr_pairing_from(&pa, 'a', f[1], fl[1], f[3], fl[3], p, (size_t)(end - p), f[2], fl[2]) <
      0) {
    HP_ERROR(COMP, NULL, "redis: a malformed pairing notification was ignored");
    return;
  }
  hp__rr_deliver_paired(s, m, &pa, 1);
}

void hp__rr_on_sub_push(void *arg, redisReply *r) {
  rstore *s = arg;

  if (s->closing || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
      r->element[0]->type != REDIS_REPLY_STRING)
    return;
  if (!strcmp(r->element[0]->str, "subscribe")) {
    s->subscribed = 1;
    hp__rr_update_available(s, "");
    /* What was published while we were not subscribed is in the members'
     * records: a renewal now recovers it. */
    hp__rr_refresh_all(s);
  } else if (!strcmp(r->element[0]->str, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
    hp__rr_on_notification(s, r->element[2]->str, r->element[2]->len);
  }
}
