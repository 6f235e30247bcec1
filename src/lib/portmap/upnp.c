/*
 * upnp.c - UPnP-IGD port mapping with libminiupnpc (blocking; runs in the
 * thread pool, see portmap.c).
 *
 * Discovery: SSDP M-SEARCH on the LAN (upnpDiscover, bounded by the
 * request's timeout), then the first valid IGD (UPNP_GetValidIGD), which
 * also tells our LAN address as the router sees it: the internal client of
 * the mapping (routers in secure mode accept no other). The mapping asks
 * for the same external port as the internal one first; on a conflict
 * (718) it lets an IGDv2 router choose (AddAnyPortMapping), else tries a
 * few other ports. A router that only knows permanent leases (725) gets a
 * permanent one, removed at the end like any other.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "portmap_backend.h"

struct hp__pm_upnp {
  struct UPNPUrls urls;
  struct IGDdatas data;
  char lanaddr[64];
  char iport[8];
  char eport[8]; /* "" until mapped */
};

static int discover(hp__pm_upnp *u, unsigned timeout_ms, char *err, size_t errlen) {
  int error = 0, r;
  struct UPNPDev *devs =
      upnpDiscover((int)timeout_ms, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &error);

  if (!devs) {
    snprintf(err, errlen, "UPnP: no device answered the SSDP search within %u ms", timeout_ms);
    return -ENOENT;
  }
  r = UPNP_GetValidIGD(devs, &u->urls, &u->data, u->lanaddr, sizeof u->lanaddr);
  freeUPNPDevlist(devs);
  /* 2: an IGD that reports itself "not connected" (or whose external
   * address did not come back): often wrong, and AddPortMapping will tell;
   * upnpc itself goes on in that case too. */
  if (r != 1 && r != 2) {
    if (r != 0)
      FreeUPNPUrls(&u->urls);
    snprintf(err, errlen, "UPnP: %s",
             r == 0 ? "no Internet Gateway Device found"
                    : "the device found is not an Internet Gateway Device");
    return -ENOENT;
  }
  return 0;
}

/* AddPortMapping for eport; on 725 (permanent leases only) again with 0. */
static int add(hp__pm_upnp *u, const char *eport, const hp__pm_request *rq, int *lease) {
  char ls[16];
  int r;

  snprintf(ls, sizeof ls, "%d", *lease);
  r = UPNP_AddPortMapping(u->urls.controlURL, u->data.first.servicetype, eport, u->iport,
                          u->lanaddr, rq->description, "TCP", NULL, ls);
  if (r == 725 && *lease != 0) {
    *lease = 0;
    r = UPNP_AddPortMapping(u->urls.controlURL, u->data.first.servicetype, eport, u->iport,
                            u->lanaddr, rq->description, "TCP", NULL, "0");
  }
  return r;
}

int hp__pm_upnp_map(hp__pm_upnp **st, const hp__pm_request *rq, hp__pm_mapping *m, char *err,
                    size_t errlen) {
  hp__pm_upnp *u = *st;
  char ext[40] = "", tried[64] = "";
  int lease = rq->lifetime_s, r = -1;
  struct sockaddr_in *sin = (struct sockaddr_in *)&m->external;

  if (!u) {
    u = calloc(1, sizeof *u);
    if (!u)
      return -ENOMEM;
    r = discover(u, rq->timeout_ms, err, errlen);
    if (r < 0) {
      free(u);
      return r;
    }
    snprintf(u->iport, sizeof u->iport, "%d", rq->internal_port);
    *st = u;
  }
  if (u->eport[0]) {
    /* Refresh: the same external port again (AddPortMapping renews). */
    r = add(u, u->eport, rq, &lease);
    snprintf(tried, sizeof tried, "%s", u->eport);
  } else {
    r = add(u, u->iport, rq, &lease);
    snprintf(tried, sizeof tried, "%s", u->iport);
    if (r == 718) {
      char reserved[8] = "";
      r = UPNP_AddAnyPortMapping(u->urls.controlURL, u->data.first.servicetype, u->iport, u->iport,
                                 u->lanaddr, rq->description, "TCP", NULL, "0", reserved);
      if (r == 0 && reserved[0])
        snprintf(u->eport, sizeof u->eport, "%s", reserved);
    }
    for (int i = 0; i < 3 && r == 718; i++) {
      uint16_t rnd = 0;
      char eport[8];
      if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        break;
      snprintf(eport, sizeof eport, "%d", 20000 + rnd % 40000);
      r = add(u, eport, rq, &lease);
      if (r == 0)
        snprintf(u->eport, sizeof u->eport, "%s", eport);
    }
    if (r == 0 && !u->eport[0])
      snprintf(u->eport, sizeof u->eport, "%s", u->iport);
  }
  if (r != 0) {
    snprintf(err, errlen, "UPnP: AddPortMapping %s -> %s:%s refused: %d %s", tried, u->lanaddr,
             u->iport, r, strupnperror(r) ? strupnperror(r) : "");
    return -EPROTO;
  }
  r = UPNP_GetExternalIPAddress(u->urls.controlURL, u->data.first.servicetype, ext);
  memset(&m->external, 0, sizeof m->external);
  if (r != 0 || inet_pton(AF_INET, ext, &sin->sin_addr) != 1) {
    snprintf(err, errlen, "UPnP: mapped port %s, but GetExternalIPAddress failed (%d, '%s')",
             u->eport, r, ext);
    return -EPROTO;
  }
  sin->sin_family = AF_INET;
  sin->sin_port = htons((uint16_t)atoi(u->eport));
  m->lifetime_s = lease;
  return 0;
}

int hp__pm_upnp_unmap(hp__pm_upnp *u, char *err, size_t errlen) {
  int r = 0;

  if (!u)
    return 0;
  if (u->eport[0]) {
    r = UPNP_DeletePortMapping(u->urls.controlURL, u->data.first.servicetype, u->eport, "TCP",
                               NULL);
    if (r != 0)
      snprintf(err, errlen, "UPnP: DeletePortMapping %s failed: %d %s", u->eport, r,
               strupnperror(r) ? strupnperror(r) : "");
  }
  FreeUPNPUrls(&u->urls);
  free(u);
  return r == 0 ? 0 : -EPROTO;
}
