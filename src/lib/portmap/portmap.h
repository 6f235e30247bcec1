/*
 * portmap.h - ask the home router to map the punch port: UPnP-IGD
 * (libminiupnpc) or NAT-PMP (libnatpmp), report the external address,
 * refresh the mapping before its lease ends, remove it at the end.
 *
 * The protocol libraries block (SSDP discovery, SOAP over HTTP, NAT-PMP's
 * retransmissions), so every exchange runs in libuv's thread pool
 * (uv_queue_work); callbacks fire on the loop thread. One object, one
 * state, one exchange at a time.
 *
 * Integration (src/lib/holepunch.c, later), about four calls:
 *   hp__portmap_start(loop, port, &opts, on_map, data, &pm);   after bind
 *   on_map(r): r->status == 0 -> add r->external as a candidate
 *              ("mapped" kind; first result only, later ones are refreshes)
 *   hp__portmap_stop(pm, on_removed, data);                    at the end
 * A router without UPnP or NAT-PMP costs opts.timeout_ms once (SSDP waits
 * that long for an answer), then on_map reports -ENOENT: punch without it.
 */
#ifndef HP_PORTMAP_H
#define HP_PORTMAP_H

#include <sys/socket.h>
#include <uv.h>

#define HP_PORTMAP_ERR_MAX 256

typedef enum hp__portmap_proto {
  HP_PORTMAP_NONE = 0,
  HP_PORTMAP_UPNP = 1,   /* UPnP-IGD, AddPortMapping */
  HP_PORTMAP_NATPMP = 2, /* NAT-PMP (RFC 6886) */
} hp__portmap_proto;

typedef struct hp__portmap_opts {
  unsigned protocols;      /* bit mask of HP_PORTMAP_UPNP | HP_PORTMAP_NATPMP; 0 = both */
  int lifetime_s;          /* lease asked for, 0 = 3600; refreshed at half of what was granted */
  unsigned timeout_ms;     /* SSDP discovery / NAT-PMP answer wait; 0 = 2000 */
  const char *description; /* UPnP mapping description; NULL = "holepunch" */
} hp__portmap_opts;

typedef struct hp__portmap_result {
  int status;                       /* 0, or -ENOENT (no gateway answered), -EPROTO, ... */
  hp__portmap_proto proto;          /* which one mapped */
  struct sockaddr_storage external; /* the router's external address and the mapped port */
  int lifetime_s;                   /* granted lease (0: permanent, removed at stop) */
  int refresh;                      /* 0 the first mapping, 1 a refresh */
  char err[HP_PORTMAP_ERR_MAX];     /* what was tried and why it failed */
} hp__portmap_result;

typedef void (*hp__portmap_cb)(const hp__portmap_result *r, void *data);
typedef void (*hp__portmap_done_cb)(void *data);

typedef struct hp__portmap hp__portmap;

/*
 * Map TCP internal_port of this host. cb fires once with the first result,
 * then after every refresh (r->refresh = 1; a failed refresh keeps
 * retrying at the same pace). Returns 0 and *out, or -EINVAL/-ENOMEM
 * (nothing will be called back).
 */
int hp__portmap_start(uv_loop_t *loop, int internal_port, const hp__portmap_opts *opts,
                      hp__portmap_cb cb, void *data, hp__portmap **out);

/*
 * Stop refreshing, remove the mapping (if any) from the router, then call
 * done (may be NULL) and free pm. cb is not called any more. Bounded by
 * the protocol's own timeouts.
 */
void hp__portmap_stop(hp__portmap *pm, hp__portmap_done_cb done, void *data);

const char *hp__portmap_proto_name(hp__portmap_proto p);

#endif
