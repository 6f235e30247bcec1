/*
 * natpmp.c - NAT-PMP (RFC 6886) port mapping with libnatpmp (blocking; runs
 * in the thread pool, see portmap.c).
 *
 * libnatpmp sends to the default gateway and retransmits on its own
 * schedule (250 ms doubling, 9 tries: about a minute); each exchange here
 * is cut at the request's timeout instead. The mapping asks for the same
 * external port as the internal one; the router may grant another.
 * Removal is a request with lifetime 0.
 */
#include <errno.h>
/* strnatpmperr() is only declared with this (the library exports it). */
#define ENABLE_STRNATPMPERR
#include <natpmp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>

#include "portmap_backend.h"

struct hp__pm_natpmp {
  natpmp_t np;
  int iport;
  int eport; /* 0 until mapped */
  struct in_addr public_ip;
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for the answer to the request just sent, at most timeout_ms. */
static int answer(natpmp_t *np, natpmpresp_t *resp, unsigned timeout_ms) {
  long long end = now_ms() + timeout_ms;
  int r;

  do {
    struct pollfd pfd = {.fd = np->s, .events = POLLIN};
    struct timeval tv;
    long long left = end - now_ms(), wait;

    if (left <= 0)
      return NATPMP_TRYAGAIN;
    /* Until libnatpmp's next retransmission, or our deadline. */
    getnatpmprequesttimeout(np, &tv);
    wait = tv.tv_sec * 1000LL + tv.tv_usec / 1000;
    poll(&pfd, 1, (int)(wait < left ? (wait > 0 ? wait : 0) : left));
    r = readnatpmpresponseorretry(np, resp);
  } while (r == NATPMP_TRYAGAIN);
  return r;
}

static int fail(int r, const char *what, char *err, size_t errlen) {
  snprintf(err, errlen, "NAT-PMP: %s: %s", what,
           r == NATPMP_TRYAGAIN ? "no answer from the gateway" : strnatpmperr(r));
  return r == NATPMP_TRYAGAIN || r == NATPMP_ERR_CANNOTGETGATEWAY ? -ENOENT : -EPROTO;
}

int hp__pm_natpmp_map(hp__pm_natpmp **st, const hp__pm_request *rq, hp__pm_mapping *m, char *err,
                      size_t errlen) {
  hp__pm_natpmp *s = *st;
  natpmpresp_t resp;
  struct sockaddr_in *sin = (struct sockaddr_in *)&m->external;
  int r;

  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s)
      return -ENOMEM;
    r = initnatpmp(&s->np, 0, 0);
    if (r < 0) {
      free(s);
      return fail(r, "cannot start", err, errlen);
    }
    r = sendpublicaddressrequest(&s->np);
    if (r >= 0)
      r = answer(&s->np, &resp, rq->timeout_ms);
    if (r < 0) {
      closenatpmp(&s->np);
      free(s);
      return fail(r, "public address request", err, errlen);
    }
    s->public_ip = resp.pnu.publicaddress.addr;
    s->iport = rq->internal_port;
    *st = s;
  }
  r = sendnewportmappingrequest(&s->np, NATPMP_PROTOCOL_TCP, (uint16_t)s->iport,
                                (uint16_t)(s->eport ? s->eport : s->iport),
                                (uint32_t)rq->lifetime_s);
  if (r >= 0)
    r = answer(&s->np, &resp, rq->timeout_ms);
  if (r < 0)
    return fail(r, "mapping request", err, errlen);
  s->eport = resp.pnu.newportmapping.mappedpublicport;
  memset(&m->external, 0, sizeof m->external);
  sin->sin_family = AF_INET;
  sin->sin_addr = s->public_ip;
  sin->sin_port = htons((uint16_t)s->eport);
  m->lifetime_s = (int)resp.pnu.newportmapping.lifetime;
  return 0;
}

int hp__pm_natpmp_unmap(hp__pm_natpmp *s, char *err, size_t errlen) {
  natpmpresp_t resp;
  int r = 0;

  if (!s)
    return 0;
  if (s->eport) {
    /* RFC 6886 section 3.4: lifetime 0 deletes; the suggested external
     * port must be 0 too. */
    r = sendnewportmappingrequest(&s->np, NATPMP_PROTOCOL_TCP, (uint16_t)s->iport, 0, 0);
    if (r >= 0)
      r = answer(&s->np, &resp, 2000);
    if (r < 0)
      fail(r, "removing the mapping", err, errlen);
  }
  closenatpmp(&s->np);
  free(s);
  return r < 0 ? -EPROTO : 0;
}
