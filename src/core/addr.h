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

#endif
