/*
 * fuzz_payload.c - hp__peer_payload_decode (src/core/wire.h): what the
 * rendezvous keeps of a waiting worker for its peer, read back from the
 * room store (Redis: another instance wrote it, so it is input like any
 * other).
 *
 * Contract checked:
 * - the result is 0 or -1; a refusal has the code "too_large" exactly when
 *   the input is over HP_PEER_PAYLOAD_MAX, else "bad_message", and a
 *   non-empty sentence; the output is zeroed on refusal;
 * - on success: observed is "" or an address; at most HP_CANDS_MAX
 *   candidates, each a host or srflx with an address; relay_url is "" or a
 *   URL that url.h accepts; every string ends inside its buffer;
 * - the payload re-encodes, decodes to the same struct and encodes to the
 *   same text again.
 */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"
#include "url.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__peer_payload p, p2, zero;
  hp__wire_err err;
  struct sockaddr_storage ss;
  char *t1, *t2;
  size_t l1 = 0, l2 = 0;
  int r;

  memset(&zero, 0, sizeof(zero));
  r = hp__peer_payload_decode((const char *)data, size, &p, &err);
  FUZZ_CHECK(r == 0 || r == -1);
  if (r < 0) {
    FUZZ_CHECK(err.code != NULL);
    FUZZ_CHECK(!strcmp(err.code, size > HP_PEER_PAYLOAD_MAX ? "too_large" : "bad_message"));
    FUZZ_CHECK(err.message[0] != '\0' && fuzz_terminated(err.message, sizeof(err.message)));
    FUZZ_CHECK(!memcmp(&p, &zero, sizeof(p)));
    return 0;
  }
  FUZZ_CHECK(size <= HP_PEER_PAYLOAD_MAX);
  FUZZ_CHECK(fuzz_terminated(p.observed, sizeof(p.observed)));
  FUZZ_CHECK(p.observed[0] == '\0' ||
             hp__addr_parse(p.observed, strlen(p.observed), &ss, NULL) == 0);
  FUZZ_CHECK(p.cands.n <= HP_CANDS_MAX);
  for (size_t i = 0; i < p.cands.n; i++) {
    FUZZ_CHECK(p.cands.c[i].kind == HP_CAND_HOST || p.cands.c[i].kind == HP_CAND_SRFLX);
    FUZZ_CHECK(fuzz_terminated(p.cands.c[i].addr, sizeof(p.cands.c[i].addr)));
    FUZZ_CHECK(hp__addr_parse(p.cands.c[i].addr, strlen(p.cands.c[i].addr), &ss, NULL) == 0);
  }
  FUZZ_CHECK(fuzz_terminated(p.relay_url, sizeof(p.relay_url)));
  if (p.relay_url[0]) {
    hp__url u;
    char why[200];
    FUZZ_CHECK(hp__url_parse(p.relay_url, &u, why, sizeof(why)) == 0);
  }
  t1 = hp__peer_payload_encode(&p, &l1);
  FUZZ_CHECK(t1 != NULL && l1 == strlen(t1) && l1 <= HP_PEER_PAYLOAD_MAX);
  FUZZ_CHECK(hp__peer_payload_decode(t1, l1, &p2, &err) == 0);
  FUZZ_CHECK(!memcmp(&p, &p2, sizeof(p)));
  t2 = hp__peer_payload_encode(&p2, &l2);
  FUZZ_CHECK(t2 != NULL && l1 == l2 && !memcmp(t1, t2, l1));
  free(t1);
  free(t2);
  return 0;
}
