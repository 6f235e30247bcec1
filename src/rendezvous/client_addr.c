/*
 * client_addr.c - who the client is: the TCP peer (an IPv4-mapped IPv6
 * address of a dual-stack listener reads as IPv4; stream.c turns it back),
 * or, with TRUST_PROXY=1, the client IP the proxy in front of us saw.
 *
 * X-Forwarded-For: the client is the RIGHT-MOST entry, the one the trusted
 * proxy appended (Cloud Run's front end, nginx's $proxy_add_x_forwarded_for,
 * ... append the address they saw). Everything to its left came from the
 * client and may be forged. Several header lines form one list in order, so
 * the entry is the last one of the last line (http1.c keeps that line). It
 * is trimmed of spaces and tabs and must be a plain IPv4 or IPv6 address;
 * anything else ("unknown", "ip:port", empty, too long, more than 16 lines)
 * makes us ignore the header and use the TCP peer, logged at DEBUG.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "rdv.h"

int hp__rdv_forwarded_ip(const hp__rdv *s, const hp__http1_req *req, char *ip, size_t iplen) {
  char entry[INET6_ADDRSTRLEN];
  unsigned char bin[sizeof(struct in6_addr)];
  const char *why, *buf = req->xff ? req->xff : "";
  size_t b, e, n = req->xff ? req->xff_len : 0;

  if (!s->o.trust_proxy || !req->xff_lines)
    return 0; /* no header: a direct client, or a proxy that does not set it */
  if (req->xff_unusable) {
    why = "has a line too long or too many lines";
    goto ignore;
  }
  e = n;
  b = e;
  while (b > 0 && buf[b - 1] != ',')
    b--;
  while (b < e && (buf[b] == ' ' || buf[b] == '\t'))
    b++;
  while (e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
    e--;
  if (e == b || e - b >= sizeof(entry)) {
    why = e == b ? "has an empty last entry" : "has a last entry too long for an IP address";
    goto ignore;
  }
  memcpy(entry, buf + b, e - b);
  entry[e - b] = '\0';
  if (inet_pton(AF_INET, entry, bin) != 1 && inet_pton(AF_INET6, entry, bin) != 1) {
    why = "has a last entry that is not an IP address";
    goto ignore;
  }
  snprintf(ip, iplen, "%s", entry);
  return 1;
ignore:
  HP_DEBUG(RDV_COMP, json_pack("{s:s#}", "x_forwarded_for", buf, (int)(n > 200 ? 200 : n)),
           "X-Forwarded-For %s: ignored, the TCP peer is used", why);
  return 0;
}

int hp__rdv_peer_ip_port(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port) {
  const void *a;

  if (ss->ss_family == AF_INET) {
    a = &((const struct sockaddr_in *)ss)->sin_addr;
    *port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    *port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  } else {
    return -1;
  }
  return inet_ntop(ss->ss_family, a, ip, (socklen_t)iplen) ? 0 : -1;
}

void hp__rdv_observe(rdv_conn *c, const hp__http1_req *req) {
  c->observed_full = 0;
  if (hp__rdv_forwarded_ip(c->srv, req, c->observed, sizeof(c->observed))) {
    /* Behind the proxy only the IP is known: it is logged, and left out of
     * the messages (an address on the wire is always "ip:port"). */
    return;
  }
  if (hp__addr_format((const struct sockaddr *)&c->peer, c->observed, sizeof(c->observed)) < 0) {
    snprintf(c->observed, sizeof(c->observed), "unknown");
    return;
  }
  c->observed_full = 1;
}
