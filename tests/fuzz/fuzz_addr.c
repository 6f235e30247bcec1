/*
 * fuzz_addr.c - hp__addr_parse (transport addresses as text, src/lib/addr.h).
 *
 * The input is the text, without a NUL (the decoder must not need one).
 * Contract checked:
 * - the result is 0 or -EINVAL, the same with or without outlen;
 * - on success: an AF_INET or AF_INET6 address with outlen matching it and a
 *   port from 1 to 65535; hp__addr_format gives a string that fits the wire's
 *   HP_ADDR_STRLEN, parses back to the same address (family, IP, port,
 *   scope) and formats to the same string again (canonical form); for an
 *   address without a scope, hp__addr_join of its IP and port agrees.
 * And hp__hostport_parse (STUN_SERVERS entries) on the same text:
 * - 0 or -EINVAL, and the output zeroed on refusal;
 * - whatever hp__addr_parse accepts it accepts as the same address (IP
 *   literal, empty name, same port);
 * - a name: hp__hostname_valid, at most HP_HOSTNAME_MAX bytes, only letters,
 *   digits, hyphens and dots, and "name:port" rebuilt is exactly the input;
 * - hp__hostport_list_parse of the text as a NUL-terminated string: a count
 *   0..4, -EINVAL with the bad entry named, or -E2BIG; every entry parsed
 *   valid (a name or an address, a port 1..65535).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "addr.h"
#include "fuzz.h"

static void same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  FUZZ_CHECK(a->ss_family == b->ss_family);
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    FUZZ_CHECK(x->sin_port == y->sin_port);
    FUZZ_CHECK(memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr)) == 0);
  } else {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    FUZZ_CHECK(x->sin6_port == y->sin6_port);
    FUZZ_CHECK(memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0);
    FUZZ_CHECK(x->sin6_scope_id == y->sin6_scope_id);
  }
}

static void check_hostport(const char *s, size_t size, int addr_ok,
                           const struct sockaddr_storage *ss) {
  hp__hostport h;
  int r = hp__hostport_parse(s, size, &h);

  FUZZ_CHECK(r == 0 || r == -EINVAL);
  if (r < 0) {
    FUZZ_CHECK(!addr_ok);
    FUZZ_CHECK(h.port == 0 && h.name[0] == '\0' && h.addr.ss_family == 0);
  } else {
    FUZZ_CHECK(h.port >= 1 && h.port <= 65535);
    if (addr_ok) {
      FUZZ_CHECK(h.name[0] == '\0');
      same_addr(ss, &h.addr);
    } else {
      size_t n = strlen(h.name);
      char text[300];
      FUZZ_CHECK(h.addr.ss_family == 0);
      FUZZ_CHECK(n >= 1 && n <= HP_HOSTNAME_MAX && hp__hostname_valid(h.name, n));
      FUZZ_CHECK(
          strspn(h.name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n);
      FUZZ_CHECK(snprintf(text, sizeof text, "%s:%d", h.name, h.port) == (int)size);
      FUZZ_CHECK(memcmp(text, s, size) == 0);
    }
  }

  /* The list: the input as a C string (cut at a NUL, bounded). */
  {
    hp__hostport list[4];
    char bad[96], nul[HP_HOSTNAME_MAX + 16];
    size_t n = size < sizeof nul - 1 ? size : sizeof nul - 1;
    int c;
    memcpy(nul, s, n);
    nul[n] = '\0';
    c = hp__hostport_list_parse(nul, list, 4, bad, sizeof bad);
    FUZZ_CHECK((c >= 0 && c <= 4) || c == -EINVAL || c == -E2BIG);
    if (c == -EINVAL)
      FUZZ_CHECK(bad[0] != '\0' && strlen(bad) < sizeof bad && strstr(nul, bad) != NULL);
    for (int i = 0; i < c; i++) {
      FUZZ_CHECK(list[i].port >= 1 && list[i].port <= 65535);
      FUZZ_CHECK((list[i].name[0] != '\0') != (list[i].addr.ss_family != 0));
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sockaddr_storage ss, ss2, ss3;
  socklen_t sl = 0, sl2 = 0;
  char text[HP_ADDR_STRLEN], text2[HP_ADDR_STRLEN];
  const char *s = (const char *)data;
  int r, n, n2;

  r = hp__addr_parse(s, size, &ss, &sl);
  FUZZ_CHECK(r == 0 || r == -EINVAL);
  FUZZ_CHECK(hp__addr_parse(s, size, &ss3, NULL) == r);
  check_hostport(s, size, r == 0, &ss);
  if (r < 0)
    return 0;
  same_addr(&ss, &ss3);
  FUZZ_CHECK(size < HP_ADDR_STRLEN);
  if (ss.ss_family == AF_INET) {
    FUZZ_CHECK(sl == sizeof(struct sockaddr_in));
    FUZZ_CHECK(((struct sockaddr_in *)&ss)->sin_port != 0);
  } else {
    FUZZ_CHECK(ss.ss_family == AF_INET6);
    FUZZ_CHECK(sl == sizeof(struct sockaddr_in6));
    FUZZ_CHECK(((struct sockaddr_in6 *)&ss)->sin6_port != 0);
  }

  n = hp__addr_format((const struct sockaddr *)&ss, text, sizeof(text));
  FUZZ_CHECK(n > 0 && (size_t)n == strlen(text));
  FUZZ_CHECK(hp__addr_parse(text, (size_t)n, &ss2, &sl2) == 0);
  FUZZ_CHECK(sl2 == sl);
  same_addr(&ss, &ss2);
  n2 = hp__addr_format((const struct sockaddr *)&ss2, text2, sizeof(text2));
  FUZZ_CHECK(n2 == n && strcmp(text, text2) == 0);

  /* "ip:port" or "[ip]:port" without a scope: join must agree with format. */
  if (strchr(text, '%') == NULL) {
    const char *colon = strrchr(text, ':');
    int bracket = text[0] == '[';
    size_t iplen = (size_t)(colon - text) - (bracket ? 2 : 0);
    int port = atoi(colon + 1);
    char joined[HP_ADDR_STRLEN], ip[HP_ADDR_STRLEN];

    memcpy(ip, text + bracket, iplen);
    ip[iplen] = '\0';
    FUZZ_CHECK(hp__addr_join(ip, port, joined, sizeof(joined)) == n);
    FUZZ_CHECK(strcmp(joined, text) == 0);
  }
  return 0;
}
