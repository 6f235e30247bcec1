/*
 * rooms_mem.c - the memory backend of the room store (store.h): today's
 * in-memory pairing core (rooms.c) behind the store's function table. One
 * process holds every room; answers come before hp__store_join returns, so
 * both peers learn their pairing in the same loop turn, as before the store
 * existed.
 *
 * Duplicate ids follow rooms.c (hp__rooms_join's -EEXIST).
 */
#include "rooms_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rooms.h"

typedef struct mem_member {
  hp__rooms_member rm; /* id, room, chains of rooms.c */
  hp__store_ref ref;
  hp__store_mid mid;
  void *payload; /* kept while waiting, for the peer that comes */
  size_t len;
} mem_member;

typedef struct mem_store {
  hp__store base; /* first: a hp__store * is a mem_store * */
  hp__rooms *rooms;
  hp__slots slots;
  uint64_t pairings;
} mem_store;

static mem_member *member_of(hp__rooms_member *rm) {
  return (mem_member *)(void *)((char *)rm - offsetof(mem_member, rm));
}

static void member_free(mem_store *s, mem_member *m) {
  hp__slots_del(&s->slots, m->mid);
  free(m->payload);
  free(m);
}

static int valid_name(const char *s) {
  size_t n = strnlen(s, HP_ID_MAX + 1);
  return n >= 1 && n <= HP_ID_MAX && hp__wire_valid_name(s, n);
}

static int mem_join(hp__store *st, hp__store_ref ref, const char *room, const char *id,
                    const void *payload, size_t len, hp__store_mid *mid) {
  mem_store *s = (mem_store *)st;
  hp__rooms_member *w = NULL;
  hp__store_pairing pa, pb;
  mem_member *m, *a;
  void *a_payload;
  size_t a_len;
  int rc;

  if (!valid_name(room) || !valid_name(id) || len > HP_STORE_PAYLOAD_MAX || (len && !payload))
    return -EINVAL;
  /* Drawn before anything is registered, so that nothing needs undoing;
   * from a pool, so that a join costs no system call. */
  memset(&pa, 0, sizeof(pa));
  if (hp__store_new_session(st, pa.session) < 0)
    return -EIO;
  m = calloc(1, sizeof(*m));
  if (!m)
    return -ENOMEM;
  memcpy(m->rm.id, id, strlen(id) + 1);
  memcpy(m->rm.room, room, strlen(room) + 1);
  m->ref = ref;
  if (hp__slots_put(&s->slots, m, &m->mid) < 0) {
    free(m);
    return -ENOMEM;
  }
  *mid = m->mid;

  rc = hp__rooms_join(s->rooms, &m->rm, &w);
  if (rc == -EEXIST) {
    hp__store_ref r = m->ref;
    hp__store_mid d = m->mid;
    member_free(s, m);
    st->cb.on_join(st->ctx, r, d, HP_STORE_DUPLICATE, NULL);
    return 0;
  }
  if (rc < 0) {
    member_free(s, m);
    return rc;
  }
  if (rc == 0) {
    if (len) {
      m->payload = malloc(len);
      if (!m->payload) {
        hp__rooms_leave(s->rooms, &m->rm);
        member_free(s, m);
        return -ENOMEM;
      }
      memcpy(m->payload, payload, len);
      m->len = len;
    }
    st->cb.on_join(st->ctx, m->ref, m->mid, HP_STORE_WAITING, NULL);
    return 0;
  }

  /* Paired with a, who waited. */
  a = member_of(w);
  pb = pa;
  pa.role = 'a';
  memcpy(pa.peer_id, m->rm.id, sizeof(pa.peer_id));
  memcpy(pa.peer_instance, st->instance, sizeof(pa.peer_instance));
  pa.peer_payload = payload;
  pa.peer_payload_len = len;
  pb.role = 'b';
  memcpy(pb.peer_id, a->rm.id, sizeof(pb.peer_id));
  memcpy(pb.peer_instance, st->instance, sizeof(pb.peer_instance));
  /* a's payload was only kept for this moment; it is ours now, so that a
   * leave(a) from inside on_paired cannot free it under on_join. */
  a_payload = a->payload;
  a_len = a->len;
  a->payload = NULL;
  a->len = 0;
  pb.peer_payload = a_payload;
  pb.peer_payload_len = a_len;
  s->pairings++;
  {
    hp__store_ref ar = a->ref, mr = m->ref;
    hp__store_mid am = a->mid, mm = m->mid;
    st->cb.on_paired(st->ctx, ar, am, &pa);
    st->cb.on_join(st->ctx, mr, mm, HP_STORE_PAIRED, &pb);
  }
  free(a_payload);
  return 0;
}

static void mem_leave(hp__store *st, hp__store_mid mid) {
  mem_store *s = (mem_store *)st;
  mem_member *m = hp__slots_get(&s->slots, mid);

  if (!m)
    return;
  hp__rooms_leave(s->rooms, &m->rm);
  member_free(s, m);
}

static int mem_requeue(hp__store *st, hp__store_mid mid, const void *payload, size_t len) {
  mem_store *s = (mem_store *)st;
  mem_member *m = hp__slots_get(&s->slots, mid);
  void *copy = NULL;
  int rc;

  if (!m || len > HP_STORE_PAYLOAD_MAX || (len && !payload))
    return -EINVAL;
  if (len) {
    copy = malloc(len);
    if (!copy)
      return -ENOMEM;
    memcpy(copy, payload, len);
  }
  rc = hp__rooms_requeue(s->rooms, &m->rm);
  if (rc < 0) {
    free(copy);
    return rc;
  }
  free(m->payload);
  m->payload = copy;
  m->len = len;
  return 0;
}

static void mem_refresh(hp__store *st) {
  (void)st; /* nothing expires in memory: a member lives until it leaves */
}

static void mem_stats(const hp__store *st, hp__store_stats *out) {
  const mem_store *s = (const mem_store *)st;

  memset(out, 0, sizeof(*out));
  out->available = 1;
  out->members = s->slots.count;
  out->waiting = hp__rooms_waiting(s->rooms);
  out->pairings = s->pairings;
}

static void mem_close(hp__store *st, void (*done)(void *arg), void *arg) {
  mem_store *s = (mem_store *)st;

  for (uint32_t i = 0; i < s->slots.n; i++)
    if (s->slots.s[i].p) {
      mem_member *m = s->slots.s[i].p;
      free(m->payload);
      free(m);
    }
  hp__slots_free(&s->slots);
  hp__rooms_destroy(s->rooms);
  free(s);
  if (done)
    done(arg);
}

static const hp__store_ops mem_ops = {
    .name = "memory",
    .join = mem_join,
    .leave = mem_leave,
    .refresh = mem_refresh,
    .stats = mem_stats,
    .close = mem_close,
    .requeue = mem_requeue,
};

int hp__store_mem_create(const hp__store_cbs *cb, void *ctx, uint32_t seed, const char *instance,
                         hp__store **out) {
  mem_store *s;
  int rc;

  *out = NULL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  rc = hp__store_base_init(&s->base, &mem_ops, cb, ctx, instance);
  if (rc < 0) {
    free(s);
    return rc;
  }
  s->rooms = hp__rooms_create(seed);
  if (!s->rooms) {
    free(s);
    return -ENOMEM;
  }
  *out = &s->base;
  return 0;
}
