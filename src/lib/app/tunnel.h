/*
 * tunnel.h - `holepunch forward` and `holepunch expose` over a channel to
 * the peer (an hp_bs), `ssh -L` style, with the multiplexer (src/core/mux.h).
 *
 * forward [BIND:]PORT  listens on BIND:PORT (default bind 127.0.0.1); every
 *                      accepted connection becomes a stream to the peer.
 * expose HOST:PORT     every stream the peer opens becomes a connection to
 *                      HOST:PORT, fixed here: the forward side can never
 *                      choose the target. A refused connect is an RST with
 *                      the reason, which the forward side logs before
 *                      resetting its local connection; the others go on.
 *
 * Backpressure per stream: a local connection is read only while its
 * stream has credit (the peer's window) and the channel's queue is under
 * HP_BS_HIGH_WATER; the peer's bytes for a stream are at most one window
 * (HP_MUX_WINDOW_INIT) waiting for a slow local reader, whose stream alone
 * stops. The tunnel runs until stopped (hp__tunnel_stop: streams reset,
 * channel closed) or until the channel ends.
 */
#ifndef HP_APP_TUNNEL_H
#define HP_APP_TUNNEL_H

#include <stddef.h>
#include <uv.h>

#include "chan/bytestream.h"

typedef enum hp__tunnel_mode { HP_TUNNEL_FORWARD, HP_TUNNEL_EXPOSE } hp__tunnel_mode;

#define HP_TUNNEL_HOST_MAX 255

typedef struct hp__tunnel_cfg {
  hp__tunnel_mode mode;
  char host[HP_TUNNEL_HOST_MAX + 1]; /* forward: bind address; expose: target host */
  int port;
  unsigned max_streams; /* 0: HP_MUX_STREAMS_DEFAULT */
} hp__tunnel_cfg;

/* Parse the command-line argument: "[BIND:]PORT" (forward; BIND an IPv4
 * address or [IPv6]) or "HOST:PORT" (expose; HOST a name, an IPv4 address
 * or [IPv6]). 0, or -EINVAL with a sentence in err. */
int hp__tunnel_parse(hp__tunnel_mode mode, const char *arg, hp__tunnel_cfg *out, char *err,
                     size_t errlen);

/* Before punching: expose: the target resolves; forward: the address can
 * be bound now (a probe socket, closed again). 0, or -errno with a
 * sentence in err. */
int hp__tunnel_check(const hp__tunnel_cfg *cfg, char *err, size_t errlen);

typedef struct hp__tunnel hp__tunnel;

/* Called once when the tunnel is over and everything it owned is closed
 * (it is freed right after): 0 when the peer closed the channel, or when
 * stopped; else the channel's error, why a sentence. */
typedef void (*hp__tunnel_done_cb)(int status, const char *why, void *ud);

/* Start on loop (forward: listen; expose: resolve the target, blocking,
 * once). The tunnel owns chan from now on (closed on failure too). 0, or
 * -errno with a sentence in err (no callback then). */
int hp__tunnel_start(uv_loop_t *loop, hp_bs *chan, const hp__tunnel_cfg *cfg, hp__tunnel_done_cb cb,
                     void *ud, hp__tunnel **out, char *err, size_t errlen);

/* Stop: every stream reset (RST shutdown), the channel flushed (at most
 * 1 s) and closed; cb fires once everything is closed. */
void hp__tunnel_stop(hp__tunnel *t);

/* Streams (local connections) alive now. */
unsigned hp__tunnel_streams(const hp__tunnel *t);

/* The bound listening address of a forward tunnel ("127.0.0.1:40000"), for
 * the log and tests; "" otherwise. */
const char *hp__tunnel_listen_addr(const hp__tunnel *t);

#endif
