/*
 * store_harness.h - what the room-store tests share: a recorder of the
 * store's callbacks and a bounded way to run the loop until something
 * happened. Header-only, static functions (each test is one program).
 */
#ifndef HP_STORE_HARNESS_H
#define HP_STORE_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "store.h"

enum { EV_JOIN = 1, EV_PAIRED, EV_LOST };

typedef struct ev {
  int kind;
  hp__store_ref ref;
  hp__store_mid mid;
  hp__store_verdict verdict;
  char role;
  char session[HP_SESSION_HEX + 1];
  char peer_id[HP_ID_MAX + 1];
  char peer_instance[HP_STORE_INSTANCE_MAX + 1];
  char payload[256];
} ev;

typedef struct rec {
  ev *e;
  size_t n, cap;
  int available;
  int status_calls;
  hp__store *st;
  hp__store_mid leave_on_paired; /* test: leave this member from inside on_paired */
} rec;

static inline void rec_push(rec *r, const ev *e) {
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->e = realloc(r->e, r->cap * sizeof(*r->e));
    if (!r->e)
      abort();
  }
  r->e[r->n++] = *e;
}

static inline void rec_fill(ev *e, const hp__store_pairing *p) {
  size_t n;

  if (!p)
    return;
  e->role = p->role;
  memcpy(e->session, p->session, sizeof(e->session));
  memcpy(e->peer_id, p->peer_id, sizeof(e->peer_id));
  memcpy(e->peer_instance, p->peer_instance, sizeof(e->peer_instance));
  n = p->peer_payload_len < sizeof(e->payload) - 1 ? p->peer_payload_len : sizeof(e->payload) - 1;
  if (n)
    memcpy(e->payload, p->peer_payload, n);
  e->payload[n] = '\0';
}

static inline void cb_join(void *ctx, hp__store_ref ref, hp__store_mid mid, hp__store_verdict v,
                           const hp__store_pairing *p) {
  ev e;
  memset(&e, 0, sizeof(e));
  e.kind = EV_JOIN;
  e.ref = ref;
  e.mid = mid;
  e.verdict = v;
  rec_fill(&e, p);
  rec_push(ctx, &e);
}

static inline void cb_paired(void *ctx, hp__store_ref ref, hp__store_mid mid,
                             const hp__store_pairing *p) {
  rec *r = ctx;
  ev e;
  memset(&e, 0, sizeof(e));
  e.kind = EV_PAIRED;
  e.ref = ref;
  e.mid = mid;
  rec_fill(&e, p);
  rec_push(r, &e);
  if (r->leave_on_paired && r->st)
    hp__store_leave(r->st, r->leave_on_paired);
}

static inline void cb_lost(void *ctx, hp__store_ref ref, hp__store_mid mid) {
  ev e;
  memset(&e, 0, sizeof(e));
  e.kind = EV_LOST;
  e.ref = ref;
  e.mid = mid;
  rec_push(ctx, &e);
}

static inline void cb_status(void *ctx, int available, const char *why) {
  rec *r = ctx;
  (void)why;
  r->available = available;
  r->status_calls++;
}

static const hp__store_cbs rec_cbs = {cb_join, cb_paired, cb_lost, cb_status};

/* Events of kind for ref (NULL: none); count: how many there are. */
static inline const ev *rec_find(const rec *r, int kind, hp__store_ref ref, int *count) {
  const ev *found = NULL;
  int c = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->e[i].kind == kind && r->e[i].ref == ref) {
      if (!found)
        found = &r->e[i];
      c++;
    }
  if (count)
    *count = c;
  return found;
}

static inline size_t rec_count(const rec *r, int kind) {
  size_t c = 0;
  for (size_t i = 0; i < r->n; i++)
    c += r->e[i].kind == kind;
  return c;
}

static inline void rec_free(rec *r) {
  free(r->e);
  memset(r, 0, sizeof(*r));
}

/* ---- running the loop, bounded ---- */

static inline void deadline_cb(uv_timer_t *t) {
  *(int *)t->data = 1;
}

/* Run the loop until pred(arg) holds or ms passed. Returns pred's value. */
static inline int run_until(uv_loop_t *loop, int (*pred)(void *arg), void *arg, unsigned ms) {
  uv_timer_t t;
  int expired = 0, ok;

  uv_timer_init(loop, &t);
  t.data = &expired;
  uv_timer_start(&t, deadline_cb, ms, 0);
  while (!(ok = pred(arg)) && !expired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return ok;
}

static inline int never(void *arg) {
  (void)arg;
  return 0;
}

/* Let the loop run for ms (for waits that are the point: a TTL). */
static inline void run_for(uv_loop_t *loop, unsigned ms) {
  (void)run_until(loop, never, NULL, ms);
}

static inline void on_store_closed(void *arg) {
  (*(int *)arg)++;
}

/* Close stores (NULL entries skipped) and run until they are freed. */
static inline int close_stores(uv_loop_t *loop, hp__store **st, int n) {
  int closed = 0, want = 0;
  for (int i = 0; i < n; i++)
    if (st[i]) {
      want++;
      hp__store_close(st[i], on_store_closed, &closed);
      st[i] = NULL;
    }
  for (int i = 0; i < 1000 && closed < want; i++)
    uv_run(loop, UV_RUN_ONCE);
  uv_run(loop, UV_RUN_NOWAIT); /* close callbacks of hiredis' poll handles */
  return closed == want ? 0 : -1;
}

#endif
