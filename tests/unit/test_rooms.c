/*
 * test_rooms.c - the pairing core: order, isolation, leaving, duplicate ids,
 * many rooms, and a room being free again after a pairing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rooms.h"

static void member_init(hp__rooms_member *m, const char *id, const char *room) {
  memset(m, 0, sizeof(*m));
  snprintf(m->id, sizeof(m->id), "%s", id);
  snprintf(m->room, sizeof(m->room), "%s", room);
}

static int setup(void **state) {
  *state = hp__rooms_create(12345);
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  hp__rooms_destroy(*state);
  return 0;
}

static void test_pairing_order(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member a, b, *peer = (hp__rooms_member *)1;

  member_init(&a, "alice", "r1");
  member_init(&b, "bob", "r1");
  assert_int_equal(hp__rooms_join(r, &a, &peer), 0);
  assert_null(peer);
  assert_int_equal(a.state, HP_MEMBER_WAITING);
  assert_int_equal(hp__rooms_waiting(r), 1);

  /* The newcomer is paired with the one that waited (role a). */
  assert_int_equal(hp__rooms_join(r, &b, &peer), 1);
  assert_ptr_equal(peer, &a);
  assert_int_equal(a.state, HP_MEMBER_PAIRED);
  assert_int_equal(b.state, HP_MEMBER_PAIRED);
  assert_int_equal(hp__rooms_waiting(r), 0);
  assert_int_equal(hp__rooms_members(r), 2);

  hp__rooms_leave(r, &a);
  hp__rooms_leave(r, &b);
  assert_int_equal(hp__rooms_members(r), 0);
}

static void test_room_isolation(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member a, b, c, *peer;

  member_init(&a, "a", "red");
  member_init(&b, "b", "blue");
  member_init(&c, "c", "red");
  assert_int_equal(hp__rooms_join(r, &a, &peer), 0);
  assert_int_equal(hp__rooms_join(r, &b, &peer), 0);
  assert_null(peer);
  assert_int_equal(hp__rooms_waiting(r), 2);
  assert_int_equal(hp__rooms_join(r, &c, &peer), 1);
  assert_ptr_equal(peer, &a);
  assert_int_equal(b.state, HP_MEMBER_WAITING);
  assert_int_equal(hp__rooms_waiting(r), 1);

  /* Room names are case-sensitive: "Blue" is another room. */
  hp__rooms_member d;
  member_init(&d, "d", "Blue");
  assert_int_equal(hp__rooms_join(r, &d, &peer), 0);
  assert_int_equal(hp__rooms_waiting(r), 2);

  hp__rooms_leave(r, &a);
  hp__rooms_leave(r, &b);
  hp__rooms_leave(r, &c);
  hp__rooms_leave(r, &d);
  assert_int_equal(hp__rooms_members(r), 0);
  assert_int_equal(hp__rooms_waiting(r), 0);
}

static void test_leave_while_waiting(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member a, b, c, *peer;

  member_init(&a, "a", "lobby");
  member_init(&b, "b", "lobby");
  member_init(&c, "c", "lobby");
  assert_int_equal(hp__rooms_join(r, &a, &peer), 0);
  hp__rooms_leave(r, &a);
  assert_int_equal(a.state, HP_MEMBER_NONE);
  assert_int_equal(hp__rooms_waiting(r), 0);
  assert_false(hp__rooms_id_taken(r, "lobby", "a"));
  hp__rooms_leave(r, &a); /* idempotent */

  /* The one who left is forgotten: b waits instead of pairing with a. */
  assert_int_equal(hp__rooms_join(r, &b, &peer), 0);
  assert_null(peer);
  assert_int_equal(hp__rooms_join(r, &c, &peer), 1);
  assert_ptr_equal(peer, &b);
  hp__rooms_leave(r, &b);
  hp__rooms_leave(r, &c);
}

static void test_duplicate_id(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member a, a2, a3, *peer;

  member_init(&a, "same", "r1");
  member_init(&a2, "same", "r1");
  member_init(&a3, "same", "other-room");
  assert_int_equal(hp__rooms_join(r, &a, &peer), 0);
  assert_true(hp__rooms_id_taken(r, "r1", "same"));
  assert_false(hp__rooms_id_taken(r, "other-room", "same"));
  /* Ids are unique per room (issue 6 item 1), and a refused member is not
   * paired. */
  assert_int_equal(hp__rooms_join(r, &a2, &peer), -EEXIST);
  assert_null(peer);
  assert_int_equal(a2.state, HP_MEMBER_NONE);
  /* The same id in another room is another worker: it waits there. */
  assert_int_equal(hp__rooms_join(r, &a3, &peer), 0);
  assert_null(peer);
  assert_int_equal(a.state, HP_MEMBER_WAITING);
  assert_int_equal(hp__rooms_waiting(r), 2);
  assert_int_equal(hp__rooms_members(r), 2);

  /* Leaving the refused one must not unregister the real owner. */
  hp__rooms_leave(r, &a2);
  assert_true(hp__rooms_id_taken(r, "r1", "same"));

  /* A paired member keeps its id in its room while connected. */
  hp__rooms_member b, b2;
  member_init(&b, "other", "r1");
  assert_int_equal(hp__rooms_join(r, &b, &peer), 1);
  assert_ptr_equal(peer, &a);
  member_init(&b2, "same", "r1");
  assert_int_equal(hp__rooms_join(r, &b2, &peer), -EEXIST);

  /* Once it leaves, the id is free again. */
  hp__rooms_leave(r, &a);
  assert_int_equal(hp__rooms_join(r, &b2, &peer), 0);
  hp__rooms_leave(r, &b);
  hp__rooms_leave(r, &b2);
  hp__rooms_leave(r, &a3);
  assert_int_equal(hp__rooms_members(r), 0);
}

/* A pairing undone for one side (its peer could not be told): it waits in
 * its room again, and only if nobody else waits there now. */
static void test_requeue(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member a, b, c, *peer;

  member_init(&a, "a", "rq");
  member_init(&b, "b", "rq");
  member_init(&c, "c", "rq");
  assert_int_equal(hp__rooms_requeue(r, &a), -EINVAL); /* not paired */
  assert_int_equal(hp__rooms_join(r, &a, &peer), 0);
  assert_int_equal(hp__rooms_join(r, &b, &peer), 1);
  hp__rooms_leave(r, &b);
  assert_int_equal(hp__rooms_requeue(r, &a), 0);
  assert_int_equal(a.state, HP_MEMBER_WAITING);
  assert_int_equal(hp__rooms_waiting(r), 1);
  /* The next one pairs with it. */
  assert_int_equal(hp__rooms_join(r, &c, &peer), 1);
  assert_ptr_equal(peer, &a);
  /* Someone waits in the room: a requeue is refused. */
  hp__rooms_leave(r, &c);
  member_init(&b, "b", "rq");
  assert_int_equal(hp__rooms_join(r, &b, &peer), 0);
  assert_int_equal(hp__rooms_requeue(r, &a), -EBUSY);
  hp__rooms_leave(r, &a);
  hp__rooms_leave(r, &b);
  assert_int_equal(hp__rooms_members(r), 0);
}

static void test_bad_join(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member a, b, *peer;

  member_init(&a, "", "r");
  assert_int_equal(hp__rooms_join(r, &a, &peer), -EINVAL);
  member_init(&a, "x", "");
  assert_int_equal(hp__rooms_join(r, &a, &peer), -EINVAL);
  member_init(&b, "y", "r");
  assert_int_equal(hp__rooms_join(r, &b, &peer), 0);
  /* Joining twice is refused and changes nothing. */
  assert_int_equal(hp__rooms_join(r, &b, &peer), -EINVAL);
  assert_int_equal(hp__rooms_waiting(r), 1);
  hp__rooms_leave(r, &b);
}

#define MANY 5000

static void test_many_rooms(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member *first = calloc(MANY, sizeof(*first));
  hp__rooms_member *second = calloc(MANY, sizeof(*second));
  hp__rooms_member *peer;
  char id[32], room[32];

  assert_non_null(first);
  assert_non_null(second);
  for (int i = 0; i < MANY; i++) {
    snprintf(id, sizeof(id), "w%d-a", i);
    snprintf(room, sizeof(room), "room-%d", i);
    member_init(&first[i], id, room);
    assert_int_equal(hp__rooms_join(r, &first[i], &peer), 0);
  }
  assert_int_equal(hp__rooms_waiting(r), MANY);
  /* Pair in reverse order: each newcomer must find exactly its own room. */
  for (int i = MANY - 1; i >= 0; i--) {
    snprintf(id, sizeof(id), "w%d-b", i);
    snprintf(room, sizeof(room), "room-%d", i);
    member_init(&second[i], id, room);
    assert_int_equal(hp__rooms_join(r, &second[i], &peer), 1);
    assert_ptr_equal(peer, &first[i]);
  }
  assert_int_equal(hp__rooms_waiting(r), 0);
  assert_int_equal(hp__rooms_members(r), 2 * MANY);
  for (int i = 0; i < MANY; i++) {
    hp__rooms_leave(r, &first[i]);
    hp__rooms_leave(r, &second[i]);
  }
  assert_int_equal(hp__rooms_members(r), 0);
  free(first);
  free(second);
}

static void test_room_free_after_pairing(void **state) {
  hp__rooms *r = *state;
  hp__rooms_member m[6], *peer;
  char id[8];

  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof(id), "m%d", i);
    member_init(&m[i], id, "shared");
  }
  /* Six arrivals in one room make three pairs, in arrival order, with the
   * paired members still connected. */
  for (int i = 0; i < 6; i += 2) {
    assert_int_equal(hp__rooms_join(r, &m[i], &peer), 0);
    assert_int_equal(hp__rooms_waiting(r), 1);
    assert_int_equal(hp__rooms_join(r, &m[i + 1], &peer), 1);
    assert_ptr_equal(peer, &m[i]);
    assert_int_equal(hp__rooms_waiting(r), 0);
  }
  /* A paired member leaving does not disturb the room. */
  hp__rooms_leave(r, &m[0]);
  hp__rooms_member late;
  member_init(&late, "late", "shared");
  assert_int_equal(hp__rooms_join(r, &late, &peer), 0);
  hp__rooms_leave(r, &late);
  for (int i = 0; i < 6; i++)
    hp__rooms_leave(r, &m[i]);
  assert_int_equal(hp__rooms_members(r), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pairing_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_room_isolation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leave_while_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_requeue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_join, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_rooms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_room_free_after_pairing, setup, teardown),
  };
  hp__rooms_destroy(hp__rooms_create(0)); /* destroy of a fresh set */
  hp__rooms_destroy(NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
