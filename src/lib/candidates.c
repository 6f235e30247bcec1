/*
 * candidates.c - gathering and ordering of our own candidates.
 */
#include "candidates.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

const char *hp__cand_kind_name(hp__cand_kind kind) {
  return kind == HP_CAND_SRFLX ? "srflx" : "host";
}

/* Addresses a peer can never reach us on (or that are not ours to offer). */
static int usable_host_ip(const struct sockaddr_storage *ss) {
  const struct sockaddr_in *sin;
  uint32_t a;

  if (ss->ss_family == AF_INET6) {
    /* Global unicast (2000::/3) and unique local (fc00::/7) only: not
     * loopback, link-local, multicast, mapped or unspecified. */
    const uint8_t *b = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    return (b[0] & 0xe0) == 0x20 || (b[0] & 0xfe) == 0xfc;
  }
  if (ss->ss_family != AF_INET)
    return 0;
  sin = (const struct sockaddr_in *)ss;
  a = ntohl(sin->sin_addr.s_addr);
  if (a == 0 || (a >> 24) == 127)
    return 0;
  if ((a >> 16) == 0xa9fe) /* 169.254/16: link-local, not routable */
    return 0;
  return 1;
}

static int contains(const hp__cands *c, const char *addr) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->c[i].addr, addr) == 0)
      return 1;
  return 0;
}

static void push(hp__cands *c, hp__cand_kind kind, const char *addr) {
  if (c->n >= HP_CANDS_MAX || contains(c, addr))
    return;
  c->c[c->n].kind = kind;
  snprintf(c->c[c->n].addr, sizeof c->c[c->n].addr, "%s", addr);
  c->n++;
}

int hp__cands_build(const char *srflx, const struct sockaddr_storage *ips, size_t n, int port,
                    hp__cands *out) {
  char norm[HP_ADDR_STRLEN] = "";
  char host[HP_CANDS_MAX * 4][HP_ADDR_STRLEN];
  size_t nhost = 0;
  int srflx_is_host = 0;

  memset(out, 0, sizeof *out);
  if (port < 1 || port > 65535)
    return -EINVAL;

  /* Normalise srflx so that it compares equal to a formatted host address. */
  if (srflx && *srflx) {
    struct sockaddr_storage ss;
    socklen_t sl;
    if (hp__addr_parse(srflx, strlen(srflx), &ss, &sl) < 0 ||
        hp__addr_format((struct sockaddr *)&ss, norm, sizeof norm) < 0)
      return -EINVAL;
  }

  for (size_t i = 0; i < n && nhost < sizeof host / sizeof host[0]; i++) {
    struct sockaddr_storage ss = ips[i];
    if (!usable_host_ip(&ss))
      continue;
    if (ss.ss_family == AF_INET6)
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    else
      ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    if (hp__addr_format((struct sockaddr *)&ss, host[nhost], sizeof host[nhost]) < 0)
      continue;
    if (*norm && strcmp(host[nhost], norm) == 0)
      srflx_is_host = 1;
    nhost++;
  }

  /* The srflx address goes first: it is the one most likely to work. When
   * it is one of our own addresses (no NAT) it is a host candidate. */
  if (*norm)
    push(out, srflx_is_host ? HP_CAND_HOST : HP_CAND_SRFLX, norm);
  for (size_t i = 0; i < nhost; i++)
    push(out, HP_CAND_HOST, host[i]);
  return (int)out->n;
}

int hp__cands_gather(const char *srflx, int port, hp__cands *out) {
  struct ifaddrs *ifa = NULL;
  struct sockaddr_storage ips[32];
  size_t n = 0;
  int result;

  if (getifaddrs(&ifa) < 0)
    return -errno;
  for (struct ifaddrs *i = ifa; i && n < sizeof ips / sizeof ips[0]; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
      continue;
    if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)
      continue;
    memset(&ips[n], 0, sizeof ips[n]);
    memcpy(&ips[n], i->ifa_addr,
           i->ifa_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in));
    n++;
  }
  freeifaddrs(ifa);
  result = hp__cands_build(srflx, ips, n, port, out);
  return result;
}

void hp__cands_describe(const hp__cands *c, char *buf, size_t buflen) {
  size_t off = 0;

  if (buflen == 0)
    return;
  buf[0] = '\0';
  for (size_t i = 0; i < c->n && off < buflen; i++) {
    int w = snprintf(buf + off, buflen - off, "%s%s %s", i ? ", " : "",
                     hp__cand_kind_name(c->c[i].kind), c->c[i].addr);
    if (w < 0)
      break;
    off += (size_t)w;
  }
  if (c->n == 0)
    snprintf(buf, buflen, "none");
}
