/*
 * rooms_mem.h - the memory backend of the room store (see store.h).
 */
#ifndef HP_ROOMS_MEM_H
#define HP_ROOMS_MEM_H

#include <stdint.h>

#include "store.h"

/** A store of rooms in this process's memory. seed keys the hash tables
 * (pass a random value); instance names this process in pairings (NULL: a
 * random name). Returns 0, -EINVAL (bad instance name) or -ENOMEM. */
int hp__store_mem_create(const hp__store_cbs *cb, void *ctx, uint32_t seed, const char *instance,
                         hp__store **out);

#endif
