/*
 * addr.c - transport addresses as text (see addr.h).
 *
 * Strict on purpose: these strings travel in signaling messages, and an
 * address that two implementations read differently is a bug waiting to
 * happen. Accepted: "a.b.c.d:port" and "[v6]:port" or "[v6%scope]:port" with a
 * numeric scope; port 1..65535 as plain decimal digits, no sign, no leading
 * zero, nothing after it.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Decimal 1..65535, digits only, no leading zero. Returns the port or -1. */
static int parse_port(const char *s, size_t len) {
  long v = 0;
  size_t i;

  if (len == 0 || len > 5 || s[0] == '0')
    return -1;
  for (i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 65535 ? (int)v : -1;
}

int hp__addr_parse(const char *s, size_t len, struct sockaddr_storage *out, socklen_t *outlen) {
  char host[HP_ADDR_STRLEN];
  const char *colon;
  size_t hlen;
  int port;

  if (s == NULL || out == NULL || len == 0 || len >= HP_ADDR_STRLEN)
    return -EINVAL;
  if (memchr(s, '\0', len) != NULL)
    return -EINVAL;
  memset(out, 0, sizeof(*out));

  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    char *pct;

    if (close == NULL || close + 1 >= s + len || close[1] != ':')
      return -EINVAL;
    hlen = (size_t)(close - s - 1);
    if (hlen == 0)
      return -EINVAL;
    memcpy(host, s + 1, hlen);
    host[hlen] = '\0';
    port = parse_port(close + 2, (size_t)(s + len - close - 2));
    if (port < 0)
      return -EINVAL;
    pct = strchr(host, '%');
    if (pct != NULL) {
      /* Only a numeric scope: interface names would need a system call. */
      int scope = parse_port(pct + 1, strlen(pct + 1));
      if (scope < 0 && strcmp(pct + 1, "0") != 0)
        return -EINVAL;
      sin6->sin6_scope_id = scope < 0 ? 0 : (uint32_t)scope;
      *pct = '\0';
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
      return -EINVAL;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    if (outlen != NULL)
      *outlen = sizeof(*sin6);
    return 0;
  }

  colon = memchr(s, ':', len);
  if (colon == NULL)
    return -EINVAL;
  /* A second ':' means IPv6 without brackets, which is ambiguous with a port. */
  if (memchr(colon + 1, ':', (size_t)(s + len - colon - 1)) != NULL)
    return -EINVAL;
  hlen = (size_t)(colon - s);
  if (hlen == 0)
    return -EINVAL;
  memcpy(host, s, hlen);
  host[hlen] = '\0';
  port = parse_port(colon + 1, (size_t)(s + len - colon - 1));
  if (port < 0)
    return -EINVAL;
  {
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
      return -EINVAL;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (outlen != NULL)
      *outlen = sizeof(*sin);
  }
  return 0;
}

int hp__addr_format(const struct sockaddr *sa, char *buf, size_t buflen) {
  char ip[INET6_ADDRSTRLEN];
  int n;

  if (sa == NULL || buf == NULL)
    return -EINVAL;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) == NULL)
      return -EINVAL;
    n = snprintf(buf, buflen, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) == NULL)
      return -EINVAL;
    if (sin6->sin6_scope_id != 0)
      n = snprintf(buf, buflen, "[%s%%%u]:%u", ip, (unsigned)sin6->sin6_scope_id,
                   (unsigned)ntohs(sin6->sin6_port));
    else
      n = snprintf(buf, buflen, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
  } else {
    return -EAFNOSUPPORT;
  }
  if (n < 0 || (size_t)n >= buflen)
    return -ENOSPC;
  return n;
}

int hp__addr_join(const char *ip, int port, char *buf, size_t buflen) {
  unsigned char tmp[sizeof(struct in6_addr)];
  int n;

  if (ip == NULL || buf == NULL || port < 1 || port > 65535)
    return -EINVAL;
  if (inet_pton(AF_INET, ip, tmp) == 1)
    n = snprintf(buf, buflen, "%s:%d", ip, port);
  else if (inet_pton(AF_INET6, ip, tmp) == 1)
    n = snprintf(buf, buflen, "[%s]:%d", ip, port);
  else
    return -EINVAL;
  if (n < 0 || (size_t)n >= buflen)
    return -ENOSPC;
  return n;
}

static hp__addr_class classify_v4(uint32_t a) {
  if ((a >> 24) == 0)
    return HP_ADDR_UNSPECIFIED; /* 0.0.0.0/8: "this network", never a destination */
  if (a == 0xffffffffu)
    return HP_ADDR_BROADCAST;
  if ((a >> 28) == 0xe)
    return HP_ADDR_MULTICAST;
  if ((a >> 24) == 127)
    return HP_ADDR_LOOPBACK;
  if ((a >> 16) == 0xa9fe)
    return HP_ADDR_LINK_LOCAL;
  return HP_ADDR_UNICAST;
}

hp__addr_class hp__addr_classify(const struct sockaddr *sa) {
  if (sa == NULL)
    return HP_ADDR_UNSPECIFIED;
  if (sa->sa_family == AF_INET)
    return classify_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    uint32_t v4;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      memcpy(&v4, &a->s6_addr[12], 4);
      return classify_v4(ntohl(v4));
    }
    if (IN6_IS_ADDR_UNSPECIFIED(a))
      return HP_ADDR_UNSPECIFIED;
    if (IN6_IS_ADDR_MULTICAST(a))
      return HP_ADDR_MULTICAST;
    if (IN6_IS_ADDR_LOOPBACK(a))
      return HP_ADDR_LOOPBACK;
    if (IN6_IS_ADDR_LINKLOCAL(a))
      return HP_ADDR_LINK_LOCAL;
    return HP_ADDR_UNICAST;
  }
  return HP_ADDR_UNSPECIFIED;
}

const char *hp__addr_class_name(hp__addr_class c) {
  switch (c) {
  case HP_ADDR_UNSPECIFIED:
    return "unspecified";
  case HP_ADDR_BROADCAST:
    return "broadcast";
  case HP_ADDR_MULTICAST:
    return "multicast";
  case HP_ADDR_LOOPBACK:
    return "loopback";
  case HP_ADDR_LINK_LOCAL:
    return "link-local";
  case HP_ADDR_UNICAST:
  default:
    return "unicast";
  }
}

/* The lists below: entries separated by commas and/or spaces. Calls
 * item(data, n, entry, len) for each, at most max; returns the count,
 * -E2BIG, or -EINVAL with the offending entry (80 bytes at most) in bad. */
static int list_parse(const char *s, size_t max, char *bad, size_t badlen,
                      int (*item)(void *data, size_t n, const char *entry, size_t len),
                      void *data) {
  size_t n = 0;

  if (bad && badlen)
    bad[0] = '\0';
  while (s && *s) {
    size_t len;

    while (*s == ',' || *s == ' ')
      s++;
    len = strcspn(s, ", ");
    if (!len)
      break;
    if (n == max)
      return -E2BIG;
    if (item(data, n, s, len) < 0) {
      if (bad && badlen)
        snprintf(bad, badlen, "%.*s", (int)(len < 80 ? len : 80), s);
      return -EINVAL;
    }
    n++;
    s += len;
  }
  return (int)n;
}

static int addr_item(void *data, size_t n, const char *entry, size_t len) {
  socklen_t sl;
  return hp__addr_parse(entry, len, &((struct sockaddr_storage *)data)[n], &sl);
}

int hp__addr_list_parse(const char *s, struct sockaddr_storage *out, size_t max, char *bad,
                        size_t badlen) {
  return list_parse(s, max, bad, badlen, addr_item, out);
}

int hp__hostname_valid(const char *s, size_t len) {
  size_t label = 0; /* length of the current label */
  int digits = 1;   /* the current label is all digits so far */

  if (s == NULL || len == 0 || len > HP_HOSTNAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-')
        return 0;
      label = 0;
      digits = 1;
      continue;
    }
    if (c == '-') {
      if (label == 0)
        return 0;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return 0;
    }
    if (c < '0' || c > '9')
      digits = 0;
    if (++label > 63)
      return 0;
  }
  /* Not empty after the last dot (no trailing dot), no trailing hyphen. */
  return label > 0 && s[len - 1] != '-' && !digits;
}

int hp__hostport_parse(const char *s, size_t len, hp__hostport *out) {
  const char *colon;
  size_t hlen;
  int port;

  if (out == NULL)
    return -EINVAL;
  memset(out, 0, sizeof *out); /* a refusal leaves it zeroed */
  if (s == NULL || len == 0 || memchr(s, '\0', len) != NULL)
    return -EINVAL;
  colon = memchr(s, ':', len);
  /* "[v6]:port", or an IP literal (a dotted quad: no name is all digits). */
  if (s[0] == '[' ||
      (colon && colon - s < INET_ADDRSTRLEN && strspn(s, "0123456789.") == (size_t)(colon - s))) {
    if (hp__addr_parse(s, len, &out->addr, NULL) < 0) {
      memset(out, 0, sizeof *out);
      return -EINVAL;
    }
    out->port =
        ntohs(out->addr.ss_family == AF_INET ? ((struct sockaddr_in *)&out->addr)->sin_port
                                             : ((struct sockaddr_in6 *)&out->addr)->sin6_port);
    return 0;
  }
  if (colon == NULL)
    return -EINVAL;
  hlen = (size_t)(colon - s);
  port = parse_port(colon + 1, len - hlen - 1);
  if (port < 0 || !hp__hostname_valid(s, hlen))
    return -EINVAL;
  memcpy(out->name, s, hlen);
  out->name[hlen] = '\0';
  out->port = port;
  return 0;
}

static int hostport_item(void *data, size_t n, const char *entry, size_t len) {
  return hp__hostport_parse(entry, len, &((hp__hostport *)data)[n]);
}

int hp__hostport_list_parse(const char *s, hp__hostport *out, size_t max, char *bad,
                            size_t badlen) {
  return list_parse(s, max, bad, badlen, hostport_item, out);
}
