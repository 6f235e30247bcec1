/*
 * fuzz_clocksync.c - hp__cs_decode and hp__cs_clock_report (clock ping
 * payloads the rendezvous reads from any client, src/core/clocksync.h).
 *
 * The input is a ping payload. Contract checked:
 * - hp__cs_decode: 0 or -1; on 0 the kind is one of the three, a report has
 *   1..HP_CS_RING samples of at most HP_CS_RTT_MAX_US each, and encoding it
 *   back gives the input's length (and, for a report, the same bytes);
 * - a decoded report against a clock that saw samples (the first 13 bytes
 *   of the input taken as a sample too): 0 or -1, and on 0 the round trips
 *   are ordered (smallest <= largest, both within HP_CS_RTT_MAX_US).
 */
#include "clocksync.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__cs_ping p;
  hp__cs_clock c;
  uint8_t out[HP_CS_REPORT_MAX];
  int r = hp__cs_decode(data, size, &p);

  FUZZ_CHECK(r == 0 || r == -1);
  if (r < 0)
    return 0;
  FUZZ_CHECK(p.kind == HP_CS_SAMPLE || p.kind == HP_CS_RDVPING || p.kind == HP_CS_REPORT);
  if (p.kind != HP_CS_REPORT) {
    FUZZ_CHECK(size == HP_CS_SAMPLE_LEN);
    return 0;
  }
  FUZZ_CHECK(p.n >= 1 && p.n <= HP_CS_RING);
  {
    uint64_t t0[HP_CS_RING], t2[HP_CS_RING];
    for (unsigned i = 0; i < p.n; i++) {
      FUZZ_CHECK(p.rtt[i] <= HP_CS_RTT_MAX_US);
      t0[i] = p.t0 + i;
      t2[i] = p.rtt[i] ? t0[i] + p.rtt[i] : 0;
    }
    /* The first t0 is p.t0; later samples' t0 are not in the payload, so
     * only the length and the first 14 bytes must match. */
    FUZZ_CHECK(hp__cs_encode_report(out, t0, t2, p.n) == size);
    FUZZ_CHECK(memcmp(out, data, HP_CS_REPORT_HDR) == 0);
  }
  memset(&c, 0, sizeof c);
  for (unsigned i = 0; i < p.n; i++)
    hp__cs_clock_sample(&c, p.t0 + i, p.t0 + i + (data[size - 1] & 0x3f) * 1000ULL + 1);
  r = hp__cs_clock_report(&c, &p);
  FUZZ_CHECK(r == 0 || r == -1);
  if (r == 0) {
    FUZZ_CHECK(c.have);
    FUZZ_CHECK(c.rtt_us <= c.rtt_max_us && c.rtt_max_us <= HP_CS_RTT_MAX_US);
  }
  return 0;
}
