/*
 * bridge.h - a plain socket for a byte stream: one end of a socketpair is
 * handed to the caller, the other is pumped to and from an hp_bs (the secure
 * channel) on a loop. So hp_punch_take_fd / hp_connect users keep a blocking
 * fd while every byte on the network is encrypted.
 *
 * Each direction copies with backpressure (the sender is paused while the
 * receiver's queue is over HP_BS_HIGH_WATER) and passes the half-close on.
 * The bridge frees itself when both directions ended and their bytes were
 * handed on, or when either side fails (then both are closed).
 */
#ifndef HP_CHAN_BRIDGE_H
#define HP_CHAN_BRIDGE_H
#include <uv.h>

#include "bytestream.h"

/** Bridge s (owned by the bridge from now on) to a new socketpair on loop;
 *  *user_fd is the caller's end (blocking mode). 0 or -errno (then s is
 *  closed). */
int hp__bridge_start(uv_loop_t *loop, hp_bs *s, int *user_fd);

#endif
