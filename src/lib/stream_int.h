/*
 * stream_int.h - between holepunch.c and stream.c: the public hp_stream
 * handle around the internal secure channel (an hp_bs).
 */
#ifndef HP_STREAM_INT_H
#define HP_STREAM_INT_H

#include "chan/bytestream.h"
#include "holepunch.h"

/** Wrap s (owned by the handle from now on). NULL (s closed) on ENOMEM. */
hp_stream *hp__stream_wrap(hp_bs *s);

/** The secure channel of a successful punch for the library's own users
 *  (CLI subcommands): like hp_punch_take_stream, without the wrapper. */
hp_bs *hp__punch_take_bs(hp_punch *p);

#endif
