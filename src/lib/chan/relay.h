/*
 * relay.h - the relay carrier: an hp_bs (bytestream.h) over the rendezvous'
 * relay WebSocket (GET /relay, docs/PROTOCOL.md section 8), through the
 * worker's own WebSocket client (src/net/ws_client.h). When the two workers
 * cannot connect directly, the secure channel runs over this carrier
 * unchanged; the rendezvous forwards ciphertext only.
 *
 * hp__relay_open connects to <base URL>/relay, sends the join (session, own
 * id) and waits for `ready`; then ready(s, 0, NULL) delivers the stream. A
 * refusal (an `error` from the service: unknown_session, relay_full, ...),
 * a failed connect or a `ready` naming another peer than expected delivers
 * ready(NULL, -errno, why) instead, and the attempt is gone. After ready the
 * stream keeps the hp_bs rules:
 *   write    binary frames of at most HP_RELAY_FRAME_MAX bytes (copied);
 *   queued   the WebSocket's bytes not yet taken by the kernel;
 *   shutdown the text message eof after what is queued (the peer: on_eof);
 *   pause    stops reading the socket (the relay then stops reading the
 *            peer: backpressure end to end);
 *   close    a polite close frame (1000) after what is queued, bounded;
 *            no callback afterwards.
 * The peer's eof gives on_eof; the peer's normal close (1000, passed on by
 * the relay) gives on_eof too when no eof came first; an `error` from the
 * service (relay_limit, relay_idle, ...), any other close or a broken
 * connection gives on_error with a sentence naming the cause.
 */
#ifndef HP_CHAN_RELAY_H
#define HP_CHAN_RELAY_H

#include <stdint.h>
#include <uv.h>

#include "bytestream.h"
#include "url.h"

#define HP_RELAY_FRAME_MAX (64u * 1024u) /* bytes of payload per binary frame sent */

typedef struct hp__relay_opts {
  const hp__url *url;       /* the relay's base URL (peer.relay_url, or the rendezvous') */
  const char *ca_file;      /* wss: CA bundle; NULL or "": the system store */
  const char *session;      /* 32 hex digits, from peer */
  const char *id;           /* own id */
  const char *peer_id;      /* the peer's id from peer: ready must name it */
  uint64_t open_timeout_ms; /* connect + upgrade + ready (0: 30 s) */
} hp__relay_opts;

/** The attempt's outcome: s the stream (err 0), or NULL with err < 0 and why
 * (a sentence naming the relay URL and the cause). */
typedef void (*hp__relay_ready_cb)(hp_bs *s, int err, const char *why, void *arg);

/** Start an attempt. 0, or -EINVAL/-ENOMEM with a sentence in err (nothing
 * left open, no callback). *out is the stream-to-be: hp_bs_close(*out)
 * abandons the attempt (then ready never fires). */
int hp__relay_open(uv_loop_t *loop, const hp__relay_opts *o, hp__relay_ready_cb ready, void *arg,
                   hp_bs **out, char *err, size_t errlen);

#endif
