/*
 * tunnel_int.h - what tunnel.c (the running tunnel) and tunnel_cfg.c (its
 * configuration) share beyond tunnel.h (not part of any interface).
 */
#ifndef HP_TUNNEL_INT_H
#define HP_TUNNEL_INT_H

#include <stddef.h>
#include <sys/socket.h>

#include "tunnel.h"

/* cfg's address as a socket address (expose: resolving the host, blocking);
 * 0 or -errno with the reason in err. */
int hp__tunnel_resolve(const hp__tunnel_cfg *cfg, struct sockaddr_storage *out, char *err,
                       size_t errlen);

#endif
