/*
 * url.c - the rendezvous base URL (see url.h).
 *
 * This reads one configuration string, not HTTP traffic, so a small strict
 * parser of our own is used instead of lws_parse_uri (which writes into its
 * input and accepts much that we would rather refuse with a clear sentence).
 * Accepted: scheme "://" host [":" port] [path], where scheme is http, https,
 * ws or wss (any case), host is a name, an IPv4 address or "[IPv6]".
 */
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define URL_MAX 1024 /* longer input is refused before any parsing */

static const char allowed[] = "use http://, https://, ws:// or wss:// followed by a host name or "
                              "address, an optional :port and an optional path";

static int fail(char *err, size_t errlen, const char *what) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s", what, allowed);
  return -EINVAL;
}

static int name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

int hp__url_parse(const char *s, hp__url *out, char *err, size_t errlen) {
  const char *p, *auth, *auth_end, *host, *host_end, *port_s = NULL, *end;
  size_t len, hlen, plen;
  hp__url u;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (s == NULL || out == NULL)
    return fail(err, errlen, "the URL is empty");
  len = strnlen(s, URL_MAX + 1);
  if (len == 0)
    return fail(err, errlen, "the URL is empty");
  if (len > URL_MAX)
    return fail(err, errlen, "the URL is longer than 1024 characters");
  end = s + len;
  for (p = s; p < end; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
      return fail(err, errlen, "the URL contains a space, control or non-ASCII character");

  memset(&u, 0, sizeof(u));
  p = strstr(s, "://");
  if (p == NULL) {
    /* "http:/host", "https:host": a scheme, but not "://" after it. */
    const char *colon = strchr(s, ':');
    size_t sl = colon ? (size_t)(colon - s) : 0;
    if (colon &&
        ((sl == 4 && strncasecmp(s, "http", 4) == 0) ||
         (sl == 5 && strncasecmp(s, "https", 5) == 0) ||
         (sl == 2 && strncasecmp(s, "ws", 2) == 0) || (sl == 3 && strncasecmp(s, "wss", 3) == 0)))
      return fail(err, errlen, "the URL's scheme must be followed by \"://\" (two slashes)");
    return fail(err, errlen, "the URL has no scheme");
  }
  if ((p - s == 4 && strncasecmp(s, "http", 4) == 0) ||
      (p - s == 2 && strncasecmp(s, "ws", 2) == 0))
    u.tls = 0;
  else if ((p - s == 5 && strncasecmp(s, "https", 5) == 0) ||
           (p - s == 3 && strncasecmp(s, "wss", 3) == 0))
    u.tls = 1;
  else
    return fail(err, errlen, "the URL's scheme is not supported");

  if (strpbrk(s, "?#") != NULL)
    return fail(err, errlen, "a query (?) or fragment (#) is not allowed in the URL");

  auth = p + 3;
  auth_end = strchr(auth, '/');
  if (auth_end == NULL)
    auth_end = end;
  if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL)
    return fail(err, errlen, "user information (user@) is not allowed in the URL");

  if (auth < auth_end && *auth == '[') {
    const char *close = memchr(auth, ']', (size_t)(auth_end - auth));
    unsigned char tmp[16];
    char ip[64];

    if (close == NULL)
      return fail(err, errlen, "the URL's IPv6 address has no closing ']'");
    host = auth + 1;
    host_end = close;
    hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(ip))
      return fail(err, errlen, "the URL's IPv6 address is not valid");
    memcpy(ip, host, hlen);
    ip[hlen] = '\0';
    if (inet_pton(AF_INET6, ip, tmp) != 1)
      return fail(err, errlen, "the URL's IPv6 address is not valid");
    if (close + 1 < auth_end) {
      if (close[1] != ':')
        return fail(err, errlen, "only :port may follow the URL's IPv6 address");
      port_s = close + 2;
    }
  } else {
    host = auth;
    host_end = memchr(auth, ':', (size_t)(auth_end - auth));
    if (host_end != NULL)
      port_s = host_end + 1;
    else
      host_end = auth_end;
    hlen = (size_t)(host_end - host);
    if (hlen == 0)
      return fail(err, errlen, "the URL has no host");
    for (p = host; p < host_end; p++)
      if (!name_char(*p))
        return fail(err, errlen, "the URL's host name contains a character that is not allowed");
  }
  if (hlen >= sizeof(u.host))
    return fail(err, errlen, "the URL's host is longer than 255 characters");
  memcpy(u.host, host, hlen);
  u.host[hlen] = '\0';

  if (port_s != NULL) {
    long v = 0;
    const char *q;

    if (port_s == auth_end)
      return fail(err, errlen, "the URL has ':' but no port");
    for (q = port_s; q < auth_end; q++) {
      if (*q < '0' || *q > '9' || q - port_s >= 5)
        return fail(err, errlen, "the URL's port must be a number from 1 to 65535");
      v = v * 10 + (*q - '0');
    }
    if (v < 1 || v > 65535)
      return fail(err, errlen, "the URL's port must be a number from 1 to 65535");
    u.port = (int)v;
  } else {
    u.port = u.tls ? 443 : 80;
  }

  /* The path prefix, without trailing '/': "/ws" and "/whoami" get appended. */
  plen = (size_t)(end - auth_end);
  while (plen > 0 && auth_end[plen - 1] == '/')
    plen--;
  if (plen >= sizeof(u.base))
    return fail(err, errlen, "the URL's path is longer than 255 characters");
  memcpy(u.base, auth_end, plen);
  u.base[plen] = '\0';

  *out = u;
  return 0;
}
