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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sockaddr_storage ss, ss2, ss3;
  socklen_t sl = 0, sl2 = 0;
  char text[HP_ADDR_STRLEN], text2[HP_ADDR_STRLEN];
  const char *s = (const char *)data;
  int r, n, n2;

  r = hp__addr_parse(s, size, &ss, &sl);
  FUZZ_CHECK(r == 0 || r == -EINVAL);
  FUZZ_CHECK(hp__addr_parse(s, size, &ss3, NULL) == r);
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
