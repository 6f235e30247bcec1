/*
 * fuzz_stun.c - hp__stun_frame / hp__stun_decode (STUN over TCP,
 * src/core/stun_msg.h).
 *
 * The input is bytes as read from a TCP stream. Contract checked:
 * - hp__stun_frame: 0 exactly when fewer than 20 bytes are given; otherwise
 *   -EPROTO or a length from 20 to HP_STUN_MAX, a multiple of 4;
 * - hp__stun_decode of the whole input: 0, -EPROTO or -EBADMSG; a failure
 *   has a non-empty sentence that ends inside its buffer (also with a tiny
 *   buffer, checked with a canary after it); success implies the frame
 *   length is the input's length;
 * - a decoded message: class 0..3, method within 12 bits, error code 0 or
 *   300..699 with a printable reason, addresses AF_INET/AF_INET6 or absent;
 *   its mapping re-encoded as a Binding response (same transaction id)
 *   decodes to the same address, with a valid FINGERPRINT;
 * - the first framed message of the input decodes without a crash (the
 *   stream case: bytes after it belong to the next message).
 */
#include <errno.h>
#include <netinet/in.h>

#include "fuzz.h"
#include "stun_msg.h"

static void same_addr(const struct sockaddr *a, const struct sockaddr *b) {
  FUZZ_CHECK(a && b && a->sa_family == b->sa_family);
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    FUZZ_CHECK(x->sin_port == y->sin_port);
    FUZZ_CHECK(memcmp(&x->sin_addr, &y->sin_addr, sizeof x->sin_addr) == 0);
  } else {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    FUZZ_CHECK(a->sa_family == AF_INET6);
    FUZZ_CHECK(x->sin6_port == y->sin6_port);
    FUZZ_CHECK(memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__stun_msg m, m2;
  char err[200], small[9];
  long f = hp__stun_frame(data, size);
  int r;
  size_t i;

  if (size < HP_STUN_HEADER)
    FUZZ_CHECK(f == 0);
  else
    FUZZ_CHECK(f == -EPROTO || (f >= HP_STUN_HEADER && f <= HP_STUN_MAX && f % 4 == 0));

  memset(small, 'x', sizeof small);
  r = hp__stun_decode(data, size, &m, small, sizeof small - 1);
  FUZZ_CHECK(small[sizeof small - 1] == 'x'); /* canary */
  FUZZ_CHECK(r == 0 || fuzz_terminated(small, sizeof small - 1));

  r = hp__stun_decode(data, size, &m, err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -EPROTO || r == -EBADMSG);
  if (r < 0) {
    FUZZ_CHECK(fuzz_terminated(err, sizeof err) && err[0] != '\0');
  } else {
    const struct sockaddr *sa = hp__stun_mapped(&m);

    FUZZ_CHECK(f == (long)size);
    FUZZ_CHECK(m.cls >= 0 && m.cls <= 3);
    FUZZ_CHECK(m.method <= 0xfff);
    FUZZ_CHECK(m.error_code == 0 || (m.error_code >= 300 && m.error_code <= 699));
    FUZZ_CHECK(fuzz_terminated(m.reason, sizeof m.reason));
    for (i = 0; m.reason[i]; i++)
      FUZZ_CHECK(m.reason[i] >= 0x20 && m.reason[i] < 0x7f);
    FUZZ_CHECK(m.xor_mapped.ss_family == 0 || m.xor_mapped.ss_family == AF_INET ||
               m.xor_mapped.ss_family == AF_INET6);
    FUZZ_CHECK(m.mapped.ss_family == 0 || m.mapped.ss_family == AF_INET ||
               m.mapped.ss_family == AF_INET6);
    if (sa) {
      uint8_t buf[128];
      int n = hp__stun_binding_response(buf, sizeof buf, m.txid, sa);

      FUZZ_CHECK(n > 0);
      FUZZ_CHECK(hp__stun_decode(buf, (size_t)n, &m2, err, sizeof err) == 0);
      FUZZ_CHECK(m2.fingerprint == 1 && m2.cls == HP_STUN_SUCCESS);
      FUZZ_CHECK(memcmp(m2.txid, m.txid, sizeof m.txid) == 0);
      same_addr(sa, hp__stun_mapped(&m2));
    }
  }
  if (f > 0 && (size_t)f < size)
    (void)hp__stun_decode(data, (size_t)f, &m2, err, sizeof err);
  return 0;
}
