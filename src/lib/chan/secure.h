/*
 * secure.h - the secure channel: an hp_bs (bytestream.h) over a carrier
 * hp_bs (tcp.c, a relay), running the handshake (src/core/handshake.h) and
 * then records (src/core/record.h).
 *
 * No user byte is sent or delivered before the peer is authenticated: writes
 * made before are held (in plaintext, counted in queued()) and sealed once
 * the handshake is done; on_data fires only for records that authenticated.
 * Backpressure passes through: while the user has paused, the carrier is
 * paused; the carrier's on_drain becomes ours. A record that does not
 * authenticate, and a carrier EOF before the peer's FINAL record
 * (truncation), end the stream with on_error.
 */
#ifndef HP_CHAN_SECURE_H
#define HP_CHAN_SECURE_H
#include <uv.h>

#include "bytestream.h"
#include "handshake.h"

/** The handshake ended: status 0 (the channel is ready; on_data/on_eof/
 *  on_error follow) or a negative value with a sentence: -EACCES the peer
 *  does not know the code (or the code is on one side only), -EPROTO not our
 *  protocol, -ETIMEDOUT no handshake in time, else the carrier's error. After
 *  a failure no other callback fires; close the stream. */
typedef void (*hp__secure_ready_cb)(hp_bs *s, int status, const char *why, void *ud);

/**
 * Start the channel on loop over carrier, which it owns from now on (also
 * on failure: closed by hp_bs_close of the channel, or here if the start
 * fails). params as for hp__hs_init (psk NULL: no code, encrypted but bound
 * only to the session). timeout_ms bounds the handshake. 0 or -errno.
 */
int hp__secure_start(uv_loop_t *loop, hp_bs *carrier, const hp__hs_params *params,
                     uint64_t timeout_ms, hp__secure_ready_cb ready, void *ud, hp_bs **out);

/**
 * The same, for a handshake whose HELLO already went out on the carrier
 * (the punch engine sends it behind the session lines, docs/PROTOCOL.md
 * section 5): sent is the state hp__hs_init gave with that HELLO, still in
 * HP_HS_WAIT_HELLO (else -EINVAL). It is copied; the caller wipes its own
 * copy (hp__hs_wipe). The peer's bytes may already wait on the carrier.
 */
int hp__secure_start_sent(uv_loop_t *loop, hp_bs *carrier, const hp__hs *sent, uint64_t timeout_ms,
                          hp__secure_ready_cb ready, void *ud, hp_bs **out);

/**
 * Make ready(0) wait, after the handshake, for the peer's stream header (the
 * first bytes it sends once ITS handshake is done), not just for the peer's
 * CONFIRM. The peer sends its CONFIRM as soon as it has our HELLO, before
 * it knows the handshake will complete; its stream header comes only once
 * it has our CONFIRM too, i.e. when it has taken the channel. Role b's
 * relayed channel uses this so that it is ready only once role a has
 * committed to the relay (docs/PROTOCOL.md section 9, "One path"). Our own
 * stream header still goes out at once; user writes stay held until ready.
 * Call right after hp__secure_start, before the loop runs.
 */
void hp__secure_await_peer_header(hp_bs *s);
/** 1 while the handshake is done and ready() waits for the peer's header. */
int hp__secure_awaiting_peer_header(const hp_bs *s);
/** 1 when the peer proved it knows the code, 0 without a code. */
int hp__secure_authenticated(const hp_bs *s);

#endif
