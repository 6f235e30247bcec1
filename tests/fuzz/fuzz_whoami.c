/*
 * fuzz_whoami.c - hp__whoami_parse, the pure parser of the /whoami reply
 * body {"ip":"a.b.c.d","port":N|null} (src/lib/whoami.h).
 *
 * The input is the body, without a NUL. Contract checked:
 * - the result is 0 or -EPROTO; a refusal has a non-empty sentence that fits
 *   errlen, and nothing is written past errlen or iplen (canaries, with small
 *   buffers too); a small ip buffer refuses exactly the IPs that do not fit;
 * - on success: ip is the reply's whole "ip" string (not a prefix of it),
 *   an IPv4 or IPv6 address; port is -1 or 1..65535; and the candidate the
 *   worker builds from them (hp__addr_join) is an address the wire accepts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>

#include "addr.h"
#include "fuzz.h"
#include "whoami.h"

#define CANARY 0x5a
#define SMALL_IP 16 /* "255.255.255.255" fits, most IPv6 addresses do not */

static void check_canary(const char *buf, size_t from, size_t to) {
  size_t i;

  for (i = from; i < to; i++)
    FUZZ_CHECK((unsigned char)buf[i] == CANARY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  char ip[80], ip_small[80], err[300], err_small[300];
  size_t small_err = size % 40;
  int port = 12345, port_small = 12345, r, r_small;

  memset(ip, CANARY, sizeof(ip));
  memset(err, CANARY, sizeof(err));
  r = hp__whoami_parse(body, size, ip, 64, &port, err, 256);
  FUZZ_CHECK(r == 0 || r == -EPROTO);
  {
    /* The /connectback fields: lenient, never out of their sets. */
    char cb[8 + 4];
    int op = 0;
    memset(cb, CANARY, sizeof cb);
    hp__whoami_parse_probe(body, size, cb, 8, &op);
    check_canary(cb, 8, sizeof cb);
    FUZZ_CHECK(!strcmp(cb, "") || !strcmp(cb, "open") || !strcmp(cb, "drop") ||
               !strcmp(cb, "reset"));
    FUZZ_CHECK(op == -1 || (op >= 1 && op <= 65535));
  }
  check_canary(ip, 64, sizeof(ip));
  check_canary(err, 256, sizeof(err));
  if (r < 0) {
    FUZZ_CHECK(fuzz_terminated(err, 256) && err[0] != '\0');
  } else {
    unsigned char tmp[16];
    struct sockaddr_storage ss;
    char cand[HP_ADDR_STRLEN];
    json_t *root = json_loadb(body, size, 0, NULL);
    json_t *jip = json_object_get(root, "ip");
    int n;

    FUZZ_CHECK(fuzz_terminated(ip, 64));
    FUZZ_CHECK(inet_pton(AF_INET, ip, tmp) == 1 || inet_pton(AF_INET6, ip, tmp) == 1);
    FUZZ_CHECK(port == -1 || (port >= 1 && port <= 65535));
    FUZZ_CHECK(json_is_string(jip));
    FUZZ_CHECK(json_string_length(jip) == strlen(ip));
    FUZZ_CHECK(memcmp(json_string_value(jip), ip, strlen(ip)) == 0);
    json_decref(root);
    n = hp__addr_join(ip, port == -1 ? 1 : port, cand, sizeof(cand));
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(hp__addr_parse(cand, (size_t)n, &ss, NULL) == 0);
  }

  /* The same with small buffers. */
  memset(ip_small, CANARY, sizeof(ip_small));
  memset(err_small, CANARY, sizeof(err_small));
  r_small = hp__whoami_parse(body, size, ip_small, SMALL_IP, &port_small, err_small, small_err);
  check_canary(ip_small, SMALL_IP, sizeof(ip_small));
  check_canary(err_small, small_err, sizeof(err_small));
  if (r == 0 && strlen(ip) < SMALL_IP) {
    FUZZ_CHECK(r_small == 0 && strcmp(ip, ip_small) == 0 && port_small == port);
  } else {
    FUZZ_CHECK(r_small == -EPROTO);
    if (small_err > 0)
      FUZZ_CHECK(fuzz_terminated(err_small, small_err));
    if (small_err > 1)
      FUZZ_CHECK(err_small[0] != '\0');
  }
  return 0;
}
