/*
 * fuzz_url.c - hp__url_parse (the rendezvous base URL, src/lib/url.h).
 *
 * The input is the URL text (it ends at the first NUL, as a C string does).
 * Contract checked:
 * - the result is 0 or -EINVAL; a refusal comes with a non-empty sentence
 *   that fits in errlen, and nothing is written past errlen (checked with a
 *   small errlen and a canary too); both calls give the same result;
 * - on success: host is a non-empty string ending inside its buffer, made of
 *   name characters or an IPv6 address; port is 1..65535; tls is 0 or 1;
 *   base is "" or starts with '/' and has no trailing '/'; and the URL
 *   rebuilt from the fields parses to the same fields.
 */
#include <arpa/inet.h>
#include <errno.h>

#include "fuzz.h"
#include "url.h"

#define CANARY 0x5a

static int host_ok(const char *h) {
  size_t i;

  if (strchr(h, ':') != NULL) {
    unsigned char tmp[16];
    return inet_pton(AF_INET6, h, tmp) == 1;
  }
  for (i = 0; h[i] != '\0'; i++)
    if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
          (h[i] >= '0' && h[i] <= '9') || h[i] == '-' || h[i] == '.' || h[i] == '_'))
      return 0;
  return i > 0;
}

static void check_parsed(const hp__url *u) {
  size_t i, blen;

  FUZZ_CHECK(u->tls == 0 || u->tls == 1);
  FUZZ_CHECK(fuzz_terminated(u->host, sizeof(u->host)) && u->host[0] != '\0');
  FUZZ_CHECK(host_ok(u->host));
  FUZZ_CHECK(u->port >= 1 && u->port <= 65535);
  FUZZ_CHECK(fuzz_terminated(u->base, sizeof(u->base)));
  blen = strlen(u->base);
  FUZZ_CHECK(blen == 0 || (u->base[0] == '/' && u->base[blen - 1] != '/'));
  for (i = 0; i < blen; i++)
    FUZZ_CHECK((unsigned char)u->base[i] > ' ' && (unsigned char)u->base[i] < 0x7f &&
               u->base[i] != '?' && u->base[i] != '#');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  char err[300], err_small[300];
  size_t small = size % 48, i;
  hp__url u, u_small, u2;
  int r, r_small;

  memset(&u, 0, sizeof(u));
  memset(err, CANARY, sizeof(err));
  r = hp__url_parse(s, &u, err, 256);
  FUZZ_CHECK(r == 0 || r == -EINVAL);
  FUZZ_CHECK(fuzz_terminated(err, 256));
  for (i = 256; i < sizeof(err); i++)
    FUZZ_CHECK((unsigned char)err[i] == CANARY);
  if (r < 0)
    FUZZ_CHECK(err[0] != '\0');

  /* A short error buffer: truncated, terminated, and nothing written after it. */
  memset(&u_small, 0, sizeof(u_small));
  memset(err_small, CANARY, sizeof(err_small));
  r_small = hp__url_parse(s, &u_small, err_small, small);
  FUZZ_CHECK(r_small == r);
  if (small > 0) {
    FUZZ_CHECK(fuzz_terminated(err_small, small));
    FUZZ_CHECK(strncmp(err_small, err, small - 1) == 0);
  }
  for (i = small; i < sizeof(err_small); i++)
    FUZZ_CHECK((unsigned char)err_small[i] == CANARY);

  if (r == 0) {
    char rebuilt[1200];
    int n;

    FUZZ_CHECK(memcmp(&u, &u_small, sizeof(u)) == 0);
    check_parsed(&u);
    n = snprintf(rebuilt, sizeof(rebuilt), "%s://%s%s%s:%d%s", u.tls ? "https" : "http",
                 strchr(u.host, ':') ? "[" : "", u.host, strchr(u.host, ':') ? "]" : "", u.port,
                 u.base);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(rebuilt));
    memset(&u2, 0, sizeof(u2));
    if (hp__url_parse(rebuilt, &u2, err, 256) != 0) {
      fprintf(stderr, "rebuilt URL %s refused: %s\n", rebuilt, err);
      FUZZ_CHECK(!"the URL rebuilt from a parsed one parses");
    }
    FUZZ_CHECK(memcmp(&u, &u2, sizeof(u)) == 0);
  }
  free(s);
  return 0;
}
