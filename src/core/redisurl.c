/*
 * redisurl.c - REDIS_URL (see redisurl.h).
 *
 * One configuration string, read once at start-up: a small strict parser
 * that refuses with a sentence rather than guessing. Error sentences never
 * quote the input, because it may hold a password.
 */
#include "redisurl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_PORT 6379

static const char forms[] = "use redis://[[user]:password@]host[:port][/db] or "
                            "unix:/path/to/socket[?password=P&user=U&db=N]";

static int fail(char *err, size_t errlen, const char *what) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s", what, forms);
  return -EINVAL;
}

static int name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0..n) into out (cap bytes with the NUL). Returns 0, -1 for
 * a bad or NUL escape, -2 when it does not fit. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;

  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      int hi, lo;
      if (i + 2 >= n)
        return -1;
      hi = hexval(s[i + 1]);
      lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (o + 1 >= cap)
      return -2;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

/* Decimal 0..max without sign or leading zeros. Returns the value or -1. */
static int parse_uint(const char *s, size_t n, int max) {
  long v = 0;

  if (n == 0 || n > 9 || (n > 1 && s[0] == '0'))
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v <= max ? (int)v : -1;
}

/* [user]:password from s[0..n). */
static int parse_userinfo(const char *s, size_t n, hp__redis_url *u, char *err, size_t errlen) {
  const char *colon = memchr(s, ':', n);
  size_t ulen;
  int r;

  if (colon == NULL)
    return fail(err, errlen, "the part before '@' has no ':' (write :password@ or user:password@)");
  ulen = (size_t)(colon - s);
  r = pct_decode(s, ulen, u->user, sizeof(u->user));
  if (r < 0)
    return fail(err, errlen,
                r == -2 ? "the user name is longer than 128 bytes"
                        : "the user name has a bad %-escape (%XX, not %00)");
  r = pct_decode(colon + 1, n - ulen - 1, u->password, sizeof(u->password));
  if (r < 0)
    return fail(err, errlen,
                r == -2 ? "the password is longer than 255 bytes"
                        : "the password has a bad %-escape (%XX, not %00)");
  if (!u->password[0])
    return fail(err, errlen, "the password is empty (leave out user:password@ for none)");
  return 0;
}

/* host[:port] from s[0..n). */
static int parse_hostport(const char *s, size_t n, hp__redis_url *u, char *err, size_t errlen) {
  const char *port = NULL, *end = s + n;
  size_t hlen;

  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    const char *host = s + 1;
    unsigned char tmp[16];
    if (close == NULL)
      return fail(err, errlen, "an IPv6 address has no closing ']'");
    hlen = (size_t)(close - host);
    if (hlen == 0 || hlen >= sizeof(u->host))
      return fail(err, errlen, "the IPv6 address in [] is empty or too long");
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (inet_pton(AF_INET6, u->host, tmp) != 1)
      return fail(err, errlen, "the text in [] is not an IPv6 address");
    if (close + 1 < end) {
      if (close[1] != ':')
        return fail(err, errlen, "only :port may follow ']'");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(s, ':', n);
    hlen = colon ? (size_t)(colon - s) : n;
    if (hlen == 0)
      return fail(err, errlen, "the URL has no host");
    if (hlen >= sizeof(u->host))
      return fail(err, errlen, "the host name is longer than 255 characters");
    for (size_t i = 0; i < hlen; i++)
      if (!name_char(s[i]))
        return fail(err, errlen,
                    "the host is not a name (letters, digits, '-', '.', '_'), an IPv4 address "
                    "or an [IPv6] address");
    memcpy(u->host, s, hlen);
    u->host[hlen] = '\0';
    if (colon)
      port = colon + 1;
  }
  u->port = DEFAULT_PORT;
  if (port) {
    int p = parse_uint(port, (size_t)(end - port), 65535);
    if (port == end)
      return fail(err, errlen, "the URL has ':' but no port after it");
    if (p < 1)
      return fail(err, errlen, "the port is not a number from 1 to 65535");
    u->port = p;
  }
  return 0;
}

static int parse_redis(const char *s, const char *end, hp__redis_url *u, char *err, size_t errlen) {
  const char *auth = s, *auth_end, *at = NULL;
  int r;

  if (memchr(s, '?', (size_t)(end - s)) || memchr(s, '#', (size_t)(end - s)))
    return fail(err, errlen, "a query (?) or fragment (#) is only allowed with unix:");
  auth_end = memchr(s, '/', (size_t)(end - s));
  if (auth_end == NULL)
    auth_end = end;
  for (const char *p = auth; p < auth_end; p++)
    if (*p == '@')
      at = p;
  if (at) {
    r = parse_userinfo(auth, (size_t)(at - auth), u, err, errlen);
    if (r < 0)
      return r;
    auth = at + 1;
  }
  r = parse_hostport(auth, (size_t)(auth_end - auth), u, err, errlen);
  if (r < 0)
    return r;
  if (auth_end + 1 < end) {
    u->db = parse_uint(auth_end + 1, (size_t)(end - auth_end - 1), HP_REDISURL_DB_MAX);
    if (u->db < 0)
      return fail(err, errlen, "the path is not a database number from 0 to 65535");
  }
  return 0;
}

/* One key=value of a unix: query. seen has one bit per key. */
static int parse_param(const char *s, size_t n, hp__redis_url *u, unsigned *seen, char *err,
                       size_t errlen) {
  const char *eq = memchr(s, '=', n);
  size_t klen, vlen;
  const char *v;
  int r;

  if (eq == NULL)
    return fail(err, errlen, "a query parameter has no '=' (password=, user= or db=)");
  klen = (size_t)(eq - s);
  v = eq + 1;
  vlen = n - klen - 1;
  if (klen == 8 && !memcmp(s, "password", 8)) {
    if (*seen & 1u)
      return fail(err, errlen, "password= is given twice");
    *seen |= 1u;
    r = pct_decode(v, vlen, u->password, sizeof(u->password));
    if (r < 0)
      return fail(err, errlen,
                  r == -2 ? "the password is longer than 255 bytes"
                          : "the password has a bad %-escape (%XX, not %00)");
    if (!u->password[0])
      return fail(err, errlen, "password= is empty (leave it out for none)");
  } else if (klen == 4 && !memcmp(s, "user", 4)) {
    if (*seen & 2u)
      return fail(err, errlen, "user= is given twice");
    *seen |= 2u;
    r = pct_decode(v, vlen, u->user, sizeof(u->user));
    if (r < 0)
      return fail(err, errlen,
                  r == -2 ? "the user name is longer than 128 bytes"
                          : "the user name has a bad %-escape (%XX, not %00)");
  } else if (klen == 2 && !memcmp(s, "db", 2)) {
    if (*seen & 4u)
      return fail(err, errlen, "db= is given twice");
    *seen |= 4u;
    u->db = parse_uint(v, vlen, HP_REDISURL_DB_MAX);
    if (u->db < 0)
      return fail(err, errlen, "db= is not a database number from 0 to 65535");
  } else {
    return fail(err, errlen, "unknown query parameter (only password=, user= and db=)");
  }
  return 0;
}

static int parse_unix(const char *s, const char *end, hp__redis_url *u, char *err, size_t errlen) {
  const char *q, *p = s;
  unsigned seen = 0;
  size_t plen;

  if (memchr(s, '#', (size_t)(end - s)))
    return fail(err, errlen, "a fragment (#) is not allowed");
  if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
    p += 2; /* unix:///path: an empty authority, then the path */
    if (p == end || *p != '/')
      return fail(err, errlen, "unix:// must be followed by an absolute path (unix:///path)");
  }
  if (p == end || *p != '/')
    return fail(err, errlen, "the socket path after unix: must be absolute (start with '/')");
  q = memchr(p, '?', (size_t)(end - p));
  plen = (size_t)((q ? q : end) - p);
  if (plen > HP_REDISURL_PATH_MAX)
    return fail(err, errlen, "the socket path is longer than 107 bytes (the limit of sun_path)");
  if (plen == 1)
    return fail(err, errlen, "the socket path is empty");
  memcpy(u->path, p, plen);
  u->path[plen] = '\0';
  u->is_unix = 1;
  if (q) {
    const char *a = q + 1;
    if (a == end)
      return fail(err, errlen, "the query after '?' is empty");
    while (a <= end) {
      const char *amp = memchr(a, '&', (size_t)(end - a));
      const char *e = amp ? amp : end;
      int r = parse_param(a, (size_t)(e - a), u, &seen, err, errlen);
      if (r < 0)
        return r;
      a = e + 1;
    }
  }
  if (u->user[0] && !u->password[0])
    return fail(err, errlen, "user= needs password= too");
  return 0;
}

int hp__redis_url_parse(const char *s, hp__redis_url *out, char *err, size_t errlen) {
  const char *end;
  size_t len;
  hp__redis_url u;
  int r;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (s == NULL || out == NULL || !s[0])
    return fail(err, errlen, "the URL is empty");
  len = strnlen(s, HP_REDISURL_MAX + 1);
  if (len > HP_REDISURL_MAX)
    return fail(err, errlen, "the URL is longer than 1024 characters");
  end = s + len;
  for (const char *p = s; p < end; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
      return fail(err, errlen, "the URL contains a space, control or non-ASCII character");

  memset(&u, 0, sizeof(u));
  if (len >= 8 && !strncasecmp(s, "redis://", 8)) {
    r = parse_redis(s + 8, end, &u, err, errlen);
  } else if (len >= 5 && !strncasecmp(s, "unix:", 5)) {
    r = parse_unix(s + 5, end, &u, err, errlen);
  } else if (len >= 9 && !strncasecmp(s, "rediss://", 9)) {
    return fail(err, errlen,
                "rediss:// (TLS) is not supported: Debian 12's hiredis 0.14 has no TLS; reach "
                "Redis on a private network, a unix socket or through a TLS tunnel");
  } else {
    return fail(err, errlen, "the scheme is not redis:// or unix:");
  }
  if (r < 0)
    return r;
  *out = u;
  return 0;
}

/* Append s percent-encoded (everything but A-Z a-z 0-9 - . _ ~). */
static int put_pct(char *buf, size_t cap, size_t *o, const char *s) {
  static const char hex[] = "0123456789ABCDEF";

  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~';
    if (*o + (plain ? 1 : 3) >= cap)
      return -ENOSPC;
    if (plain) {
      buf[(*o)++] = (char)c;
    } else {
      buf[(*o)++] = '%';
      buf[(*o)++] = hex[c >> 4];
      buf[(*o)++] = hex[c & 15];
    }
  }
  buf[*o] = '\0';
  return 0;
}

static int put(char *buf, size_t cap, size_t *o, const char *fmt_s) {
  size_t n = strlen(fmt_s);

  if (*o + n >= cap)
    return -ENOSPC;
  memcpy(buf + *o, fmt_s, n + 1);
  *o += n;
  return 0;
}

int hp__redis_url_format(const hp__redis_url *u, int redact, char *buf, size_t cap) {
  char num[32];
  size_t o = 0;
  int r = 0;

  if (cap == 0)
    return -ENOSPC;
  buf[0] = '\0';
  if (u->is_unix) {
    const char *sep = "?";
    /* A path starting with "//" would read as unix://authority: write the
     * file-URL form, whose empty authority keeps the path as it is. */
    r |= put(buf, cap, &o, u->path[1] == '/' ? "unix://" : "unix:");
    r |= put(buf, cap, &o, u->path);
    if (u->password[0]) {
      r |= put(buf, cap, &o, "?password=");
      r |= redact ? put(buf, cap, &o, "***") : put_pct(buf, cap, &o, u->password);
      sep = "&";
    }
    if (u->user[0]) {
      r |= put(buf, cap, &o, sep);
      r |= put(buf, cap, &o, "user=");
      r |= put_pct(buf, cap, &o, u->user);
      sep = "&";
    }
    if (u->db) {
      snprintf(num, sizeof(num), "%sdb=%d", sep, u->db);
      r |= put(buf, cap, &o, num);
    }
  } else {
    int v6 = strchr(u->host, ':') != NULL;
    r |= put(buf, cap, &o, "redis://");
    if (u->password[0]) {
      r |= put_pct(buf, cap, &o, u->user);
      r |= put(buf, cap, &o, ":");
      r |= redact ? put(buf, cap, &o, "***") : put_pct(buf, cap, &o, u->password);
      r |= put(buf, cap, &o, "@");
    }
    r |= put(buf, cap, &o, v6 ? "[" : "");
    r |= put(buf, cap, &o, u->host);
    snprintf(num, sizeof(num), "%s:%d", v6 ? "]" : "", u->port);
    r |= put(buf, cap, &o, num);
    if (u->db) {
      snprintf(num, sizeof(num), "/%d", u->db);
      r |= put(buf, cap, &o, num);
    }
  }
  if (r) {
    buf[0] = '\0';
    return -ENOSPC;
  }
  return (int)o;
}
