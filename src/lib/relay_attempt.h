/*
 * relay_attempt.h - the relayed path of one punch (issue 8): after a delay
 * (RELAY_AFTER), or at once when the direct path has failed, open the relay
 * carrier (chan/relay.h) to <relay URL>/relay and run the same secure
 * handshake over it as over a punched connection (chan/secure.h). The
 * session (holepunch.c) races it against punching: the first channel that
 * authenticates wins, the other attempt is closed.
 *
 * One state per attempt: WAITING (the delay) -> CONNECTING (join, ready) ->
 * SECURING -> READY (cb(0): take the channel) | FAILED (cb(<0, why)); any
 * state -> DESTROYED by hp__ra_destroy (no callback from then on; memory
 * freed in the timer's close callback).
 */
#ifndef HP_RELAY_ATTEMPT_H
#define HP_RELAY_ATTEMPT_H

#include <stdint.h>
#include <uv.h>

#include "chan/bytestream.h"
#include "handshake.h"
#include "url.h"

typedef struct hp__ra hp__ra;

/** status 0: the secure channel over the relay is up (hp__ra_take); else
 * -errno and a sentence naming the relay and the cause. Fires once. */
typedef void (*hp__ra_cb)(hp__ra *ra, int status, const char *why, void *data);

/** Start (strings and psk copied). delay_ms: the time before connecting.
 * timeout_ms bounds connect + join + the wait for the peer + the handshake.
 * 0 or -errno (nothing started). */
int hp__ra_start(uv_loop_t *loop, const hp__url *url, const char *ca_file, const hp__hs_params *prm,
                 uint64_t delay_ms, uint64_t timeout_ms, hp__ra_cb cb, void *data, hp__ra **out);
/** Connect now if still waiting for the delay (the direct path failed). */
void hp__ra_now(hp__ra *ra);
/** 1 once it connects (the delay is over). */
int hp__ra_started(const hp__ra *ra);
/** Role b: 1 while the relayed handshake is done but a's stream header has
 *  not come (a has not taken the relay, and may yet nominate). For logs. */
int hp__ra_awaiting_a(const hp__ra *ra);
/** After cb(0): the channel, owned by the caller. NULL otherwise. */
hp_bs *hp__ra_take(hp__ra *ra);
/** Stop (whatever it holds is closed), no callback any more. NULL: no-op. */
void hp__ra_destroy(hp__ra *ra);

#endif
