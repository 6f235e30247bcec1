/*
 * candidates.h - our own candidate list for the hello message: the server
 * reflexive address (the NAT mapping seen by /whoami) first, then the host's
 * own addresses with the punch port: IPv4, and global or unique-local IPv6
 * (no NAT there: the address is the one a peer dials, through a stateful
 * firewall; the engine listens on [::]:P when the peer offers IPv6 too).
 */
#ifndef HP_CANDIDATES_H
#define HP_CANDIDATES_H

#include <stddef.h>
#include <sys/socket.h>

#include "wire.h"

/*
 * Pure part, no I/O. Build the list from srflx ("ip:port", or NULL/"" when
 * unknown) and the interface addresses ips[0..n) (ports ignored), each host
 * candidate getting port. Rules: srflx first; loopback, unspecified and
 * link-local addresses are skipped, IPv6 only global (2000::/3) and unique
 * local (fc00::/7) kept; no duplicates; a srflx
 * equal to a host candidate is listed once, as host, in first position; at
 * most HP_CANDS_MAX entries. Returns the count, or -EINVAL for a bad srflx
 * or port.
 */
int hp__cands_build(const char *srflx, const struct sockaddr_storage *ips, size_t n, int port,
                    hp__cands *out);

/* The same over getifaddrs() (interfaces that are up). Returns the count or
 * -errno. */
int hp__cands_gather(const char *srflx, int port, hp__cands *out);

/* "host 10.0.0.2:8082, srflx 198.51.100.2:40000" into buf (always NUL-terminated). */
void hp__cands_describe(const hp__cands *c, char *buf, size_t buflen);

/* "host" / "srflx". */
const char *hp__cand_kind_name(hp__cand_kind kind);

#endif
