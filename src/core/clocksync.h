/*
 * clocksync.h - synchronised start (docs/dev/sync-start.md, issue 9): the
 * clock pings a worker sends on its signaling WebSocket, what the rendezvous
 * keeps of them and of its own pings, and the start times it gives both
 * workers of a pair. Pure: no I/O, no clock of its own (times come in as
 * arguments, in µs of a monotonic clock).
 *
 * Why pings: WebSocket pings are answered by every rendezvous (RFC 6455:
 * the pong echoes the payload), so a worker may send them to an old service
 * and before its hello; an old worker never sends them. No message type is
 * added, the protocol stays version 1.
 *
 *   worker -> rdv  ping "HPck" 's' t0           (t0: worker clock at sending)
 *   rdv            notes t1 (its clock at receipt) for t0, answers the pong
 *   worker         notes t2 at the pong: rtt = t2 - t0
 *   worker -> rdv  ping "HPck" 'r' t0_first n rtt_1..rtt_n: the round trip
 *                  of each sample in the order sent (0: no pong), before
 *                  its hello
 *   rdv            up_i = t1_i - t0_i = offset + one-way delay up,
 *                  down_i = t0_i + rtt_i - t1_i = one-way delay down - offset;
 *                  offset = (min up - min down) / 2, rdv clock = worker clock
 *                  + offset. The minima are taken per direction: each needs
 *                  one sample with little jitter in its own direction (the
 *                  sample with the smallest round trip would need both at
 *                  once); the error is half the difference of the two
 *                  directions' smallest jitters (and of any asymmetry of
 *                  the paths' base delays).
 *
 * The rendezvous also pings each WebSocket itself (payload "HPck" 'p' t) and
 * times the pongs: the round trip of workers that send no clock pings.
 */
#ifndef HP_CLOCKSYNC_H
#define HP_CLOCKSYNC_H

#include <stddef.h>
#include <stdint.h>

#define HP_CS_SAMPLE_LEN 13  /* "HPck" 's' t0 */
#define HP_CS_RDVPING_LEN 13 /* "HPck" 'p' t */
#define HP_CS_REPORT_HDR 14  /* "HPck" 'r' t0_first n, then n x 4 bytes of rtt */
#define HP_CS_REPORT_MAX (HP_CS_REPORT_HDR + 4 * HP_CS_RING)
#define HP_CS_RING 16                /* worker pings the rendezvous remembers */
#define HP_CS_RTT_MAX_US 10000000ULL /* a sample above 10 s is nonsense */
#define HP_CS_MARGIN_US 5000ULL      /* start after the later `peer` + this */
#define HP_CS_WAIT_MAX_US 3000000ULL /* never make a pair wait longer */

typedef enum hp__cs_kind {
  HP_CS_SAMPLE = 's',
  HP_CS_REPORT = 'r',
  HP_CS_RDVPING = 'p'
} hp__cs_kind;

typedef struct hp__cs_ping {
  hp__cs_kind kind;
  uint64_t t0;              /* SAMPLE, RDVPING: the send time; REPORT: t0 of the first */
  uint8_t n;                /* REPORT: samples, 1..HP_CS_RING */
  uint32_t rtt[HP_CS_RING]; /* REPORT: µs, 0 = no pong */
} hp__cs_ping;

/** Payloads (big-endian 64-bit fields); return the length written. */
size_t hp__cs_encode_sample(uint8_t out[HP_CS_SAMPLE_LEN], uint64_t t0_us);
size_t hp__cs_encode_rdvping(uint8_t out[HP_CS_RDVPING_LEN], uint64_t t_us);
/** n samples (1..HP_CS_RING): their send times t0 and pong times t2 (0: no
 * pong), in the order sent. 0 when n is out of range. */
size_t hp__cs_encode_report(uint8_t out[HP_CS_REPORT_MAX], const uint64_t *t0, const uint64_t *t2,
                            unsigned n);
/** 0 and *out, or -1: not one of ours (any other ping payload is fine). */
int hp__cs_decode(const uint8_t *p, size_t n, hp__cs_ping *out);

/* Round trips the rendezvous timed itself (its pings). */
typedef struct hp__cs_rtt {
  uint32_t min_us, max_us; /* valid when n > 0 */
  uint8_t n;               /* samples, saturating */
} hp__cs_rtt;
void hp__cs_rtt_add(hp__cs_rtt *r, uint64_t rtt_us);

/* What the rendezvous knows of one worker's clock. */
typedef struct hp__cs_clock {
  uint64_t t0[HP_CS_RING], t1[HP_CS_RING];
  uint8_t next; /* ring position */
  uint8_t have; /* a report matched: offset and rtts are valid */
  int64_t offset_us;
  uint32_t rtt_us, rtt_max_us; /* the report's smallest and largest rtt */
} hp__cs_clock;
/** A sample ping with t0 arrived at t1 (rendezvous clock). */
void hp__cs_clock_sample(hp__cs_clock *c, uint64_t t0, uint64_t t1);
/** A report: 0 (offset now valid) or -1 (no such sample, or nonsense). */
int hp__cs_clock_report(hp__cs_clock *c, const hp__cs_ping *r);

/* One side of a pair at pairing time (either pointer may be NULL). */
typedef struct hp__cs_side {
  const hp__cs_rtt *rtt;
  const hp__cs_clock *clock;
} hp__cs_side;

typedef struct hp__cs_start {
  long start_in_ms;               /* relative: for every worker */
  unsigned long long start_at_us; /* on that worker's clock; 0: not given */
} hp__cs_start;

/*
 * The start times of a pair, decided at rendezvous time now_us:
 * - both workers sent clock pings: a common instant T = now + W on the
 *   rendezvous' clock, W = the larger of the two one-way delay bounds
 *   (rtt_max - rtt_min / 2) + HP_CS_MARGIN_US, so that both have `peer`
 *   by then; each gets T on its own clock (start_at_us) and, for a reader
 *   that ignores it, start_in_ms = W - its rtt / 2;
 * - else, both round trips known: start_in_ms = max(o_a, o_b) - o_x with
 *   o = rtt_min / 2 (removes the mean path difference, not the jitter);
 * - else 0 for both (what version 1 services always sent).
 * W never exceeds HP_CS_WAIT_MAX_US; start_in_ms stays within 0..10000.
 * Returns W in µs (0 for the relative or no plan).
 */
uint64_t hp__cs_plan(const hp__cs_side *a, const hp__cs_side *b, uint64_t now_us, hp__cs_start *sa,
                     hp__cs_start *sb);

#endif
