/*
 * pipe.h - `holepunch pipe`: like `nc -N` over a channel to the peer (an
 * hp_bs): bytes from in_fd go to the peer, the peer's bytes to out_fd. Each
 * direction half-closes on its EOF; the pipe is done when both directions
 * are (and every byte was handed to the kernel). Binary-safe.
 *
 * Backpressure both ways: in_fd is read only while the channel's queue is
 * under HP_BS_HIGH_WATER, and the channel is paused while more than
 * PIPE_OUT_HIGH bytes wait to be written to out_fd, so memory stays bounded
 * whatever the speeds of the two sides.
 */
#ifndef HP_APP_PIPE_H
#define HP_APP_PIPE_H

#include <stdint.h>
#include <uv.h>

#include "chan/bytestream.h"

typedef struct hp__pipe hp__pipe;

/* Called once when the pipe is over and everything it owned is closed (the
 * pipe is freed right after): status 0 when both directions finished,
 * -ECANCELED after hp__pipe_stop, else the error (why: a sentence). */
typedef void (*hp__pipe_done_cb)(int status, const char *why, uint64_t sent, uint64_t received,
                                 void *ud);

/* Start piping in_fd -> chan -> out_fd on loop. The pipe owns chan from
 * now on (also on failure: it is closed). in_fd/out_fd may be a file, a
 * pipe, a socket or a terminal; they are not closed. progress: print a
 * progress line (bytes, rate) on stderr every second. 0 or -errno (then no
 * callback). */
int hp__pipe_start(uv_loop_t *loop, hp_bs *chan, int in_fd, int out_fd, int progress,
                   hp__pipe_done_cb cb, void *ud, hp__pipe **out);

/* Stop at once (SIGINT): cb fires with -ECANCELED once everything closed. */
void hp__pipe_stop(hp__pipe *p);

#endif
