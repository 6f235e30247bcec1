/*
 * fuzz_rooms.c - the pairing core (src/rendezvous/rooms.h), driven by a
 * sequence of operations decoded from the input and checked against a
 * simple model (a flat array, scanned: obviously right, too slow for the
 * service).
 *
 * Input: 4 bytes of hash seed, then operations of 4 bytes each:
 *   [op] [member] [id] [room]
 * op % 4: 0 join with new names (only while the member is unregistered, as
 * the caller must), 1 join again with the names it has, 2 leave, 3 ask
 * whether an id is taken. Members come from a pool larger than the tables'
 * first size, so the tables grow; ids come from 200 names, and a room byte
 * below 128 names one of 12 rooms (pairings are frequent), above it one of
 * 127 (many wait at once); id or room byte 255 gives an empty name. Contract checked after every
 * operation:
 * - join's result is what the model says: -EINVAL for a registered member or
 *   an empty name, -EEXIST for an id in use in that room (ids are unique per
 *   room; the member stays unregistered),
 *   1 with the waiting member of that room as peer (both now paired, the
 *   room empty), else 0 (now waiting);
 * - leave is idempotent and frees the id; a paired member's leaving does
 *   not touch its peer;
 * - every member's state is the model's; waiting and members counts equal
 *   the model's (so they never underflow) and at most one member waits per
 *   room; id_taken agrees with the model.
 */
#include <errno.h>

#include "fuzz.h"
#include "rooms.h"

#define POOL 100 /* more than the tables' initial 64 buckets */
#define IDS 200

static void set_names(hp__rooms_member *m, uint8_t id, uint8_t room) {
  if (id == 255)
    m->id[0] = '\0';
  else
    snprintf(m->id, sizeof(m->id), "m%u", (unsigned)(id % IDS));
  if (room == 255)
    m->room[0] = '\0';
  else
    snprintf(m->room, sizeof(m->room), "r%u", (unsigned)(room < 128 ? room % 12 : room));
}

/* The model: states are kept apart from the members, which the code under
 * test writes to. */
static uint8_t model_state[POOL];

/* Ids are unique per room. */
static int model_id_owner(const hp__rooms_member *pool, const char *room, const char *id) {
  int i;

  for (i = 0; i < POOL; i++)
    if (model_state[i] != HP_MEMBER_NONE && strcmp(pool[i].id, id) == 0 &&
        strcmp(pool[i].room, room) == 0)
      return i;
  return -1;
}

static int model_waiting_in(const hp__rooms_member *pool, const char *room) {
  int i;

  for (i = 0; i < POOL; i++)
    if (model_state[i] == HP_MEMBER_WAITING && strcmp(pool[i].room, room) == 0)
      return i;
  return -1;
}

static void check_invariants(const hp__rooms *r, const hp__rooms_member *pool) {
  size_t members = 0, waiting = 0, per_room[256] = {0};
  int i;

  for (i = 0; i < POOL; i++) {
    FUZZ_CHECK(pool[i].state == model_state[i]);
    if (model_state[i] != HP_MEMBER_NONE) {
      members++;
      FUZZ_CHECK(hp__rooms_id_taken(r, pool[i].room, pool[i].id));
    }
    if (model_state[i] == HP_MEMBER_WAITING) {
      waiting++;
      /* Rooms are "r<n>" with n < 255 (an empty room never registers). */
      FUZZ_CHECK(pool[i].room[0] == 'r');
      FUZZ_CHECK(++per_room[atoi(pool[i].room + 1) & 255] == 1);
    }
  }
  FUZZ_CHECK(hp__rooms_members(r) == members);
  FUZZ_CHECK(hp__rooms_waiting(r) == waiting);
  FUZZ_CHECK(waiting <= members && members <= POOL);
}

static void do_join(hp__rooms *r, hp__rooms_member *pool, int i) {
  static hp__rooms_member sentinel; /* join must overwrite *peer */
  hp__rooms_member *m = &pool[i], *peer = &sentinel;
  int want, w = -1, got;

  if (model_state[i] != HP_MEMBER_NONE || m->id[0] == '\0' || m->room[0] == '\0') {
    want = -EINVAL;
  } else if (model_id_owner(pool, m->room, m->id) >= 0) {
    want = -EEXIST;
  } else {
    w = model_waiting_in(pool, m->room);
    want = w >= 0 ? 1 : 0;
  }
  got = hp__rooms_join(r, m, &peer);
  FUZZ_CHECK(got == want);
  if (got == 1) {
    FUZZ_CHECK(peer == &pool[w]);
    model_state[w] = HP_MEMBER_PAIRED;
    model_state[i] = HP_MEMBER_PAIRED;
    /* The room is free again: no one waits in it. */
    FUZZ_CHECK(model_waiting_in(pool, m->room) < 0);
  } else {
    FUZZ_CHECK(peer == NULL);
    if (got == 0)
      model_state[i] = HP_MEMBER_WAITING;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__rooms_member *pool;
  hp__rooms *r;
  uint32_t seed;
  size_t off;
  int i;

  if (size < 4)
    return 0;
  seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
         (uint32_t)data[3] << 24;
  r = hp__rooms_create(seed);
  FUZZ_CHECK(r != NULL);
  pool = calloc(POOL, sizeof(*pool));
  FUZZ_CHECK(pool != NULL);
  memset(model_state, HP_MEMBER_NONE, sizeof(model_state));
  for (i = 0; i < POOL; i++)
    set_names(&pool[i], (uint8_t)i, (uint8_t)i);

  for (off = 4; off + 4 <= size; off += 4) {
    uint8_t op = data[off], id = data[off + 2], room = data[off + 3];
    int mi = data[off + 1] % POOL;
    hp__rooms_member *m = &pool[mi];
    char probe[HP_ID_MAX + 1], probe_room[HP_ID_MAX + 1];

    switch (op % 4) {
    case 0: /* names may only change while unregistered */
      if (model_state[mi] == HP_MEMBER_NONE)
        set_names(m, id, room);
      do_join(r, pool, mi);
      break;
    case 1:
      do_join(r, pool, mi);
      break;
    case 2:
      hp__rooms_leave(r, m);
      model_state[mi] = HP_MEMBER_NONE;
      FUZZ_CHECK(m->id[0] == '\0' || model_id_owner(pool, m->room, m->id) >= 0 ||
                 !hp__rooms_id_taken(r, m->room, m->id));
      break;
    case 3:
      snprintf(probe, sizeof(probe), "m%u", (unsigned)(id % IDS));
      snprintf(probe_room, sizeof(probe_room), "r%u", (unsigned)(room < 128 ? room % 12 : room));
      FUZZ_CHECK(hp__rooms_id_taken(r, probe_room, probe) ==
                 (model_id_owner(pool, probe_room, probe) >= 0));
      break;
    }
    check_invariants(r, pool);
  }

  /* Everyone leaves: the tables are empty again. */
  for (i = 0; i < POOL; i++) {
    hp__rooms_leave(r, &pool[i]);
    model_state[i] = HP_MEMBER_NONE;
  }
  check_invariants(r, pool);
  FUZZ_CHECK(hp__rooms_members(r) == 0 && hp__rooms_waiting(r) == 0);
  hp__rooms_destroy(r);
  free(pool);
  return 0;
}
