/*
 * holepunch_int.h - what the session (holepunch.c) tells its in-tree users
 * beyond the public API: the CLI stacks the secure channel on the punched
 * socket and needs the rendezvous session it binds to.
 */
#ifndef HP_HOLEPUNCH_INT_H
#define HP_HOLEPUNCH_INT_H

#include "holepunch.h"

/* The session of the pairing (32 hex digits; "" before the peer message). */
const char *hp__punch_session(const hp_punch *p);

#endif
