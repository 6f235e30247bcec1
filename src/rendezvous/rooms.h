/*
 * rooms.h - pairing core of the rendezvous service. No I/O.
 *
 * A worker that said hello is a member: its id is unique among the
 * connected members of its room (two rooms may each have a worker "a"), and
 * it either waits alone in its room or has been paired. The
 * first two members of a room are paired; the room is then empty again and
 * free for the next two. Members are intrusive (embedded in the caller's
 * per-connection state), so joining allocates nothing per worker; the only
 * allocations are the two hash tables' bucket arrays (ids, waiting rooms),
 * which grow with the population. Every lookup is O(1) on average: no scan
 * over all connections.
 */
#ifndef HP_ROOMS_H
#define HP_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef enum hp__member_state {
  HP_MEMBER_NONE = 0, /* not registered (before hello, or after leave) */
  HP_MEMBER_WAITING,  /* alone in its room */
  HP_MEMBER_PAIRED    /* was given a peer; keeps its id until it leaves */
} hp__member_state;

typedef struct hp__rooms_member {
  struct hp__rooms_member *id_next;   /* chain in the id table */
  struct hp__rooms_member *room_next; /* chain in the room table (waiting only) */
  uint32_t id_hash, room_hash;
  uint8_t state; /* hp__member_state */
  char id[HP_ID_MAX + 1];
  char room[HP_ID_MAX + 1];
} hp__rooms_member;

typedef struct hp__rooms hp__rooms;

/** Create an empty set of rooms. seed keys the hash (pass a random value in
 * the service so that clients cannot choose colliding names). NULL on ENOMEM. */
hp__rooms *hp__rooms_create(uint32_t seed);

/** Free the tables. Members are the caller's; destroy(NULL) is a no-op. */
void hp__rooms_destroy(hp__rooms *r);

/** 1 if a connected member of room already uses this id. */
int hp__rooms_id_taken(const hp__rooms *r, const char *room, const char *id);

/**
 * Register m, whose id and room are filled in (valid names) and whose state is
 * HP_MEMBER_NONE. Returns 0: m now waits in its room; 1: m was paired with
 * *peer, the member that had waited (role "a"; m is "b"), and the room is
 * empty again; -EEXIST: the id is taken in that room (m is left
 * unregistered); -EINVAL: m is already registered or its names are empty.
 */
int hp__rooms_join(hp__rooms *r, hp__rooms_member *m, hp__rooms_member **peer);

/** Undo a pairing for one side: the paired member m waits in its room
 * again (its peer could not be told). 0, -EBUSY (someone else waits there
 * now), -EINVAL (m is not paired), -ENOMEM. */
int hp__rooms_requeue(hp__rooms *r, hp__rooms_member *m);

/** Forget m: out of its room if waiting, id free again. Idempotent. */
void hp__rooms_leave(hp__rooms *r, hp__rooms_member *m);

/** Number of members waiting for a peer (= rooms with one member). */
size_t hp__rooms_waiting(const hp__rooms *r);

/** Number of registered members (waiting + paired). */
size_t hp__rooms_members(const hp__rooms *r);

#endif
