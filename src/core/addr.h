/*
 * addr.h - transport addresses as text: "ip:port", "[v6]:port".
 */
#ifndef HP_ADDR_H
#define HP_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define HP_ADDR_STRLEN 64 /* enough for "[v6 with scope]:65535" and the NUL */

/* Parse len bytes of s (no NUL needed). Port 1..65535 required.
 * Returns 0 or -EINVAL. */
int hp__addr_parse(const char *s, size_t len, struct sockaddr_storage *out, socklen_t *outlen);

/* Format sa as "ip:port" or "[v6]:port". Returns the length or -ENOSPC/-EAFNOSUPPORT. */
int hp__addr_format(const struct sockaddr *sa, char *buf, size_t buflen);

/* Format an IP (text) and a port. Returns the length or -ENOSPC/-EINVAL. */
int hp__addr_join(const char *ip, int port, char *buf, size_t buflen);

/* A list of addresses ("ip:port" / "[v6]:port", as hp__addr_parse) separated
 * by commas and/or spaces. Host names are refused (hp__hostport_list_parse
 * takes them).
 * Fills out[0..max) and returns the count (0 for an empty or NULL list), or
 * -EINVAL (an entry that is not an address, its text in bad) or -E2BIG
 * (more than max entries). */
int hp__addr_list_parse(const char *s, struct sockaddr_storage *out, size_t max, char *bad,
                        size_t badlen);

#define HP_HOSTNAME_MAX 253 /* a DNS name's text, without a trailing dot (RFC 1035) */

/* A server as configured (STUN_SERVERS): an IP literal or a DNS name, and a
 * port. Names are only checked here; resolving them is the caller's
 * (src/lib/discover/discover.c, on the loop). */
typedef struct hp__hostport {
  struct sockaddr_storage addr;   /* an IP literal, port set; ss_family 0 for a name */
  char name[HP_HOSTNAME_MAX + 1]; /* a name: as written; "" for an IP literal */
  int port;                       /* 1..65535 */
} hp__hostport;

/* 1 when len bytes of s are a host name as RFC 1123 allows: labels of 1..63
 * letters, digits and hyphens (not first or last) separated by single dots,
 * at most HP_HOSTNAME_MAX bytes, no trailing dot, and a last label that is
 * not all digits (so "1.2.3" or "300.1.1.1" is never a name that a resolver
 * would read as an IPv4 address). 0 otherwise. */
int hp__hostname_valid(const char *s, size_t len);

/* Parse len bytes of s (no NUL needed): "ip:port", "[v6]:port" (as
 * hp__addr_parse) or "name:port" (hp__hostname_valid). Returns 0 or -EINVAL. */
int hp__hostport_parse(const char *s, size_t len, hp__hostport *out);

/* As hp__addr_list_parse, with hp__hostport_parse entries. */
int hp__hostport_list_parse(const char *s, hp__hostport *out, size_t max, char *bad, size_t badlen);

/* What kind of destination an address is. Unspecified, broadcast and
 * multicast addresses are never a peer (the wire decoder refuses them as
 * candidates); loopback and link-local ones reach the dialing host itself or
 * its link (a cloud metadata service), so they are dialed only on request. */
typedef enum hp__addr_class {
  HP_ADDR_UNICAST = 0,
  HP_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
  HP_ADDR_BROADCAST,   /* 255.255.255.255 */
  HP_ADDR_MULTICAST,   /* 224.0.0.0/4, ff00::/8 */
  HP_ADDR_LOOPBACK,    /* 127.0.0.0/8, ::1 */
  HP_ADDR_LINK_LOCAL   /* 169.254.0.0/16, fe80::/10 */
} hp__addr_class;

/* Classify sa (IPv4, IPv6, IPv4-mapped IPv6 as its IPv4 address). */
hp__addr_class hp__addr_classify(const struct sockaddr *sa);

/* "unspecified", "broadcast", "multicast", "loopback", "link-local", "unicast". */
const char *hp__addr_class_name(hp__addr_class c);

#endif
