/*
 * portmap_backend.h - the interface of one port-mapping protocol
 * (upnp.c, natpmp.c) for the dispatcher portmap.c. Blocking calls, run in
 * libuv's thread pool; each takes and fills only its own state.
 */
#ifndef HP_PORTMAP_BACKEND_H
#define HP_PORTMAP_BACKEND_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct hp__pm_request {
  int internal_port;
  int lifetime_s;
  unsigned timeout_ms;
  const char *description;
} hp__pm_request;

typedef struct hp__pm_mapping {
  struct sockaddr_storage external;
  int lifetime_s;
} hp__pm_mapping;

/* Opaque per-protocol state, created on the first map call. */
typedef struct hp__pm_upnp hp__pm_upnp;
typedef struct hp__pm_natpmp hp__pm_natpmp;

/* Map (or refresh, when *st holds a mapping). 0, or a negative errno with a
 * sentence in err. */
int hp__pm_upnp_map(hp__pm_upnp **st, const hp__pm_request *rq, hp__pm_mapping *m, char *err,
                    size_t errlen);
/* Remove the mapping, free the state (NULL is a no-op). */
int hp__pm_upnp_unmap(hp__pm_upnp *st, char *err, size_t errlen);

int hp__pm_natpmp_map(hp__pm_natpmp **st, const hp__pm_request *rq, hp__pm_mapping *m, char *err,
                      size_t errlen);
int hp__pm_natpmp_unmap(hp__pm_natpmp *st, char *err, size_t errlen);

#endif
