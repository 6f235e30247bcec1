/*
 * tcp.h - the TCP carrier: an hp_bs (bytestream.h) over a connected TCP
 * socket on a libuv loop. The punched connection, and any local connection
 * (forward/expose), become a byte stream the secure channel or a user
 * stacks on.
 */
#ifndef HP_CHAN_TCP_H
#define HP_CHAN_TCP_H
#include <uv.h>

#include "bytestream.h"

/** Wrap the connected TCP socket fd (any blocking mode; it is made
 *  non-blocking) on loop. On success the stream owns fd (closed by
 *  hp_bs_close); on failure fd is left to the caller. 0 or -errno. */
int hp__tcp_from_fd(uv_loop_t *loop, int fd, hp_bs **out);

/** Accept one pending connection of the listening server (call from its
 *  connection callback) into a new stream on server's loop. 0 or -errno. */
int hp__tcp_accept(uv_stream_t *server, hp_bs **out);

/** The stream's libuv handle (for getpeername, keepalive, ...); valid until
 *  hp_bs_close. NULL when s is not a TCP carrier. */
uv_tcp_t *hp__tcp_handle(hp_bs *s);

#endif
