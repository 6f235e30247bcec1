/*
 * stun_tcp.h - learn our NAT mapping with a STUN Binding request over TCP
 * (RFC 8489 section 6.2.2) from a given local port, on a libuv loop.
 *
 * Like GET /whoami (whoami.h), the request's socket is bound to the punch
 * port P with SO_REUSEADDR + SO_REUSEPORT next to the listener, so the
 * XOR-MAPPED-ADDRESS the server reports is the NAT mapping of P: the address
 * a peer must dial. With several servers (STUN_SERVERS) and the rendezvous'
 * /whoami the observations feed hp__nat_classify (src/core/nat_classify.h).
 *
 * Integration (src/lib/holepunch.c, later): for each configured server,
 * hp__stun_tcp_start(loop, &server, port, timeout_ms, cb, data, &h) after
 * the listener is bound; cb gets the mapping (or why not) exactly once,
 * unless hp__stun_tcp_cancel(h) was called first. The handle frees itself
 * after cb returns: h must not be used after cb (cancelling it inside cb is
 * a harmless no-op).
 */
#ifndef HP_STUN_TCP_H
#define HP_STUN_TCP_H

#include <sys/socket.h>
#include <uv.h>

#define HP_STUN_TCP_ERR_MAX 256

typedef struct hp__stun_tcp_result {
  int status;                     /* 0, or negative errno (-ETIMEDOUT, -ECONNREFUSED, -EPROTO...) */
  struct sockaddr_storage mapped; /* on success: our mapping as the server saw it */
  struct sockaddr_storage server; /* the server asked */
  struct sockaddr_storage local;  /* our end of the connection (family 0 if never connected) */
  int error_code;                 /* STUN ERROR-CODE of an error response (status -EPROTO) */
  double rtt_ms;                  /* connect to response */
  char err[HP_STUN_TCP_ERR_MAX];  /* why it failed, a sentence */
} hp__stun_tcp_result;

typedef void (*hp__stun_tcp_cb)(const hp__stun_tcp_result *r, void *data);

typedef struct hp__stun_tcp hp__stun_tcp;

/*
 * Connect from local_port (0: any) to server (IPv4 or IPv6), send a Binding
 * request, wait for the response with our transaction id, all within
 * timeout_ms. Returns 0 and sets *out, or a negative errno (nothing will be
 * called back). The connection is closed with a reset when done, so its
 * 4-tuple is free at once (no TIME_WAIT on the punch port).
 */
int hp__stun_tcp_start(uv_loop_t *loop, const struct sockaddr *server, int local_port,
                       unsigned timeout_ms, hp__stun_tcp_cb cb, void *data, hp__stun_tcp **out);

/* cb will not be called; the handle is freed once its libuv handles closed
 * (the loop must run). NULL is a no-op. */
void hp__stun_tcp_cancel(hp__stun_tcp *s);

#endif
