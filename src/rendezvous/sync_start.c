/*
 * sync_start.c - the start times of a pair (synchronised start, issue 9):
 * from what the connection layer measured of each worker (conn.c: the
 * round trips of our pings, the worker's clock pings), the one decision of
 * clocksync.h, written into both peer messages. One function, so that the
 * pairing code (signaling.c, the room store) only calls it.
 */
#include "log.h"
#include "rdv.h"

void hp__rdv_start_times(const rdv_conn *a, const rdv_conn *b, hp__msg_peer *pa, hp__msg_peer *pb) {
  hp__cs_side sa = {&a->rtt, a->clock}, sb = {&b->rtt, b->clock};
  hp__cs_start ra, rb;
  uint64_t w = hp__cs_plan(&sa, &sb, uv_hrtime() / 1000, &ra, &rb);

  pa->start_in_ms = ra.start_in_ms;
  pa->start_at_us = ra.start_at_us;
  pb->start_in_ms = rb.start_in_ms;
  pb->start_at_us = rb.start_at_us;
  HP_DEBUG(RDV_COMP,
           json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:b,s:b,s:i}", "peer", a->id, "peer_b", b->id,
                     "rtt_min_us", a->rtt.n ? (int)a->rtt.min_us : -1, "rtt_min_us_b",
                     b->rtt.n ? (int)b->rtt.min_us : -1, "start_in_ms", (int)ra.start_in_ms,
                     "start_in_ms_b", (int)rb.start_in_ms, "clock", a->clock && a->clock->have,
                     "clock_b", b->clock && b->clock->have, "wait_us", (int)w),
           "start times: %s",
           w ? "common instant (both clocks known)" : "relative (from round trips, or none)");
}
