/*
 * rooms.c - pairing core: two intrusive chained hash tables, one keyed by
 * (room, member id) (every registered member), one keyed by room name
 * (members that wait). A room never holds more than one waiting member, because the second
 * arrival is paired at once.
 */
#include "rooms.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MIN_BUCKETS 64u

typedef enum table_kind { BY_ID = 0, BY_ROOM = 1 } table_kind;

typedef struct table {
  hp__rooms_member **b;
  size_t nb; /* power of two, or 0 before the first insert */
  size_t n;
} table;

struct hp__rooms {
  table t[2];
  uint32_t seed;
};

/* FNV-1a with a per-process seed mixed into the start value and a final
 * avalanche, so that bucket indexes use well-mixed low bits. */
static uint32_t name_hash(uint32_t seed, const char *s) {
  uint32_t h = 2166136261u ^ seed;
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 16777619u;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return h;
}

static hp__rooms_member **next_of(hp__rooms_member *m, table_kind k) {
  return k == BY_ID ? &m->id_next : &m->room_next;
}

static uint32_t hash_of(const hp__rooms_member *m, table_kind k) {
  return k == BY_ID ? m->id_hash : m->room_hash;
}

/* The id table is keyed by (room, id): ids are unique per room. */
static uint32_t id_hash(uint32_t seed, const char *room, const char *id) {
  return name_hash(name_hash(seed, room), id);
}

static int same_key(const hp__rooms_member *m, table_kind k, const char *room, const char *id) {
  return !strcmp(m->room, room) && (k == BY_ROOM || !strcmp(m->id, id));
}

/* Double the bucket array. Failure to grow is not an error: chains just get
 * longer until a later insert succeeds in growing. */
static void table_grow(table *t, table_kind k) {
  size_t nb = t->nb ? t->nb * 2 : TABLE_MIN_BUCKETS;
  hp__rooms_member **b = calloc(nb, sizeof(*b));
  if (!b)
    return;
  for (size_t i = 0; i < t->nb; i++) {
    hp__rooms_member *m = t->b[i];
    while (m) {
      hp__rooms_member *next = *next_of(m, k);
      size_t j = hash_of(m, k) & (nb - 1);
      *next_of(m, k) = b[j];
      b[j] = m;
      m = next;
    }
  }
  free(t->b);
  t->b = b;
  t->nb = nb;
}

static hp__rooms_member *table_find(const table *t, table_kind k, uint32_t h, const char *room,
                                    const char *id) {
  if (!t->nb)
    return NULL;
  for (hp__rooms_member *m = t->b[h & (t->nb - 1)]; m; m = *next_of(m, k))
    if (hash_of(m, k) == h && same_key(m, k, room, id))
      return m;
  return NULL;
}

/* Returns 0 or -ENOMEM (only when there is no bucket array at all). */
static int table_insert(table *t, table_kind k, hp__rooms_member *m) {
  if (t->n >= t->nb)
    table_grow(t, k);
  if (!t->nb)
    return -ENOMEM;
  size_t i = hash_of(m, k) & (t->nb - 1);
  *next_of(m, k) = t->b[i];
  t->b[i] = m;
  t->n++;
  return 0;
}

static void table_remove(table *t, table_kind k, hp__rooms_member *m) {
  if (!t->nb)
    return;
  for (hp__rooms_member **pp = &t->b[hash_of(m, k) & (t->nb - 1)]; *pp; pp = next_of(*pp, k)) {
    if (*pp == m) {
      *pp = *next_of(m, k);
      *next_of(m, k) = NULL;
      t->n--;
      return;
    }
  }
}

hp__rooms *hp__rooms_create(uint32_t seed) {
  hp__rooms *r = calloc(1, sizeof(*r));
  if (r)
    r->seed = seed;
  return r;
}

void hp__rooms_destroy(hp__rooms *r) {
  if (!r)
    return;
  free(r->t[BY_ID].b);
  free(r->t[BY_ROOM].b);
  free(r);
}

int hp__rooms_id_taken(const hp__rooms *r, const char *room, const char *id) {
  return table_find(&r->t[BY_ID], BY_ID, id_hash(r->seed, room, id), room, id) != NULL;
}

int hp__rooms_join(hp__rooms *r, hp__rooms_member *m, hp__rooms_member **peer) {
  hp__rooms_member *w;

  *peer = NULL;
  if (m->state != HP_MEMBER_NONE || !m->id[0] || !m->room[0])
    return -EINVAL;
  m->id_hash = id_hash(r->seed, m->room, m->id);
  m->room_hash = name_hash(r->seed, m->room);
  if (table_find(&r->t[BY_ID], BY_ID, m->id_hash, m->room, m->id))
    return -EEXIST;

  w = table_find(&r->t[BY_ROOM], BY_ROOM, m->room_hash, m->room, NULL);
  if (w) {
    /* Inserting into the id table can only fail before any bucket exists,
     * and a waiting member means one does. */
    if (table_insert(&r->t[BY_ID], BY_ID, m) < 0)
      return -ENOMEM;
    table_remove(&r->t[BY_ROOM], BY_ROOM, w);
    w->state = HP_MEMBER_PAIRED;
    m->state = HP_MEMBER_PAIRED;
    *peer = w;
    return 1;
  }
  if (table_insert(&r->t[BY_ID], BY_ID, m) < 0)
    return -ENOMEM;
  if (table_insert(&r->t[BY_ROOM], BY_ROOM, m) < 0) {
    table_remove(&r->t[BY_ID], BY_ID, m);
    return -ENOMEM;
  }
  m->state = HP_MEMBER_WAITING;
  return 0;
}

void hp__rooms_leave(hp__rooms *r, hp__rooms_member *m) {
  if (m->state == HP_MEMBER_NONE)
    return;
  if (m->state == HP_MEMBER_WAITING)
    table_remove(&r->t[BY_ROOM], BY_ROOM, m);
  table_remove(&r->t[BY_ID], BY_ID, m);
  m->state = HP_MEMBER_NONE;
}

int hp__rooms_requeue(hp__rooms *r, hp__rooms_member *m) {
  if (m->state != HP_MEMBER_PAIRED)
    return -EINVAL;
  if (table_find(&r->t[BY_ROOM], BY_ROOM, m->room_hash, m->room, NULL))
    return -EBUSY;
  if (table_insert(&r->t[BY_ROOM], BY_ROOM, m) < 0)
    return -ENOMEM;
  m->state = HP_MEMBER_WAITING;
  return 0;
}

size_t hp__rooms_waiting(const hp__rooms *r) {
  return r->t[BY_ROOM].n;
}

size_t hp__rooms_members(const hp__rooms *r) {
  return r->t[BY_ID].n;
}
