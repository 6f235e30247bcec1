/*
 * clocksync.c - clock ping payloads, what the rendezvous keeps of them and
 * the start times of a pair (see clocksync.h and docs/dev/sync-start.md).
 */
#include "clocksync.h"

#include <string.h>

#include "wire.h"

static const uint8_t magic[4] = {'H', 'P', 'c', 'k'};

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static size_t encode1(uint8_t *out, char kind, uint64_t t) {
  memcpy(out, magic, 4);
  out[4] = (uint8_t)kind;
  put64(out + 5, t);
  return 13;
}

size_t hp__cs_encode_sample(uint8_t out[HP_CS_SAMPLE_LEN], uint64_t t0_us) {
  return encode1(out, HP_CS_SAMPLE, t0_us);
}

size_t hp__cs_encode_rdvping(uint8_t out[HP_CS_RDVPING_LEN], uint64_t t_us) {
  return encode1(out, HP_CS_RDVPING, t_us);
}

size_t hp__cs_encode_report(uint8_t out[HP_CS_REPORT_MAX], const uint64_t *t0, const uint64_t *t2,
                            unsigned n) {
  if (n < 1 || n > HP_CS_RING)
    return 0;
  encode1(out, HP_CS_REPORT, t0[0]);
  out[13] = (uint8_t)n;
  for (unsigned i = 0; i < n; i++) {
    uint64_t r = t2[i] && t2[i] >= t0[i] ? t2[i] - t0[i] : 0;
    uint32_t v = r > HP_CS_RTT_MAX_US ? 0 : (uint32_t)r;
    uint8_t *p = out + HP_CS_REPORT_HDR + 4 * i;
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
  }
  return HP_CS_REPORT_HDR + 4 * (size_t)n;
}

int hp__cs_decode(const uint8_t *p, size_t n, hp__cs_ping *out) {
  if (n < 13 || memcmp(p, magic, 4) != 0)
    return -1;
  memset(out, 0, sizeof *out);
  out->t0 = get64(p + 5);
  switch (p[4]) {
  case HP_CS_SAMPLE:
  case HP_CS_RDVPING:
    if (n != 13)
      return -1;
    out->kind = (hp__cs_kind)p[4];
    return 0;
  case HP_CS_REPORT:
    if (n < HP_CS_REPORT_HDR || p[13] < 1 || p[13] > HP_CS_RING ||
        n != HP_CS_REPORT_HDR + 4 * (size_t)p[13])
      return -1;
    out->kind = HP_CS_REPORT;
    out->n = p[13];
    for (unsigned i = 0; i < out->n; i++) {
      const uint8_t *q = p + HP_CS_REPORT_HDR + 4 * i;
      out->rtt[i] = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
      if (out->rtt[i] > HP_CS_RTT_MAX_US)
        return -1; /* not a measurement */
    }
    return 0;
  default:
    return -1;
  }
}

void hp__cs_rtt_add(hp__cs_rtt *r, uint64_t rtt_us) {
  uint32_t v = rtt_us > HP_CS_RTT_MAX_US ? (uint32_t)HP_CS_RTT_MAX_US : (uint32_t)rtt_us;

  if (!r->n || v < r->min_us)
    r->min_us = v;
  if (!r->n || v > r->max_us)
    r->max_us = v;
  if (r->n < UINT8_MAX)
    r->n++;
}

void hp__cs_clock_sample(hp__cs_clock *c, uint64_t t0, uint64_t t1) {
  c->t0[c->next] = t0;
  c->t1[c->next] = t1;
  c->next = (uint8_t)((c->next + 1) % HP_CS_RING);
}

int hp__cs_clock_report(hp__cs_clock *c, const hp__cs_ping *r) {
  int start = -1, got = 0;
  int64_t up_min = 0, down_min = 0;
  uint32_t lo = 0, hi = 0;

  if (r->kind != HP_CS_REPORT || r->n < 1 || r->n > HP_CS_RING)
    return -1;
  for (int i = 0; i < HP_CS_RING && start < 0; i++)
    if (c->t1[i] && c->t0[i] == r->t0)
      start = i;
  if (start < 0)
    return -1;
  /* The ring holds the samples in the order they arrived, which is the
   * order they were sent (one TCP stream). */
  for (unsigned k = 0; k < r->n; k++) {
    int i = (start + (int)k) % HP_CS_RING;
    int64_t up, down;
    if (k && (!c->t1[i] || c->t0[i] <= c->t0[(i + HP_CS_RING - 1) % HP_CS_RING]))
      return -1; /* the report does not match what we saw */
    if (!r->rtt[k])
      continue;
    up = (int64_t)(c->t1[i] - c->t0[i]);
    down = (int64_t)(c->t0[i] + r->rtt[k] - c->t1[i]);
    if (!got || up < up_min)
      up_min = up;
    if (!got || down < down_min)
      down_min = down;
    if (!got || r->rtt[k] < lo)
      lo = r->rtt[k];
    if (!got || r->rtt[k] > hi)
      hi = r->rtt[k];
    got++;
  }
  if (!got)
    return -1;
  c->offset_us = (up_min - down_min) / 2;
  c->rtt_us = lo;
  c->rtt_max_us = hi;
  c->have = 1;
  return 0;
}

/* A worker's round-trip bounds from what is known; 0 when nothing is. */
static int bounds(const hp__cs_side *s, uint64_t *lo, uint64_t *hi) {
  int known = 0;

  *lo = *hi = 0;
  if (s->rtt && s->rtt->n) {
    *lo = s->rtt->min_us;
    *hi = s->rtt->max_us;
    known = 1;
  }
  if (s->clock && s->clock->have) {
    if (!known || s->clock->rtt_us < *lo)
      *lo = s->clock->rtt_us;
    if (!known || s->clock->rtt_max_us > *hi)
      *hi = s->clock->rtt_max_us;
    known = 1;
  }
  return known;
}

static long ms_clamp(int64_t us) {
  int64_t ms = (us + 500) / 1000;
  return ms < 0 ? 0 : ms > HP_START_IN_MS_MAX ? HP_START_IN_MS_MAX : (long)ms;
}

uint64_t hp__cs_plan(const hp__cs_side *a, const hp__cs_side *b, uint64_t now_us, hp__cs_start *sa,
                     hp__cs_start *sb) {
  uint64_t lo_a, hi_a, lo_b, hi_b, w;

  memset(sa, 0, sizeof *sa);
  memset(sb, 0, sizeof *sb);
  if (!bounds(a, &lo_a, &hi_a) || !bounds(b, &lo_b, &hi_b))
    return 0;
  if (a->clock && a->clock->have && b->clock && b->clock->have) {
    /* The one-way delay to x is at most its largest round trip minus the
     * shortest way back (half its smallest round trip). */
    uint64_t w_a = hi_a - lo_a / 2, w_b = hi_b - lo_b / 2;
    w = (w_a > w_b ? w_a : w_b) + HP_CS_MARGIN_US;
    if (w > HP_CS_WAIT_MAX_US)
      w = HP_CS_WAIT_MAX_US;
    sa->start_at_us = (unsigned long long)((int64_t)(now_us + w) - a->clock->offset_us);
    sb->start_at_us = (unsigned long long)((int64_t)(now_us + w) - b->clock->offset_us);
    if (!sa->start_at_us || sa->start_at_us > HP_START_AT_US_MAX || !sb->start_at_us ||
        sb->start_at_us > HP_START_AT_US_MAX)
      sa->start_at_us = sb->start_at_us = 0; /* a clock we cannot express: relative only */
    sa->start_in_ms = ms_clamp((int64_t)w - (int64_t)(lo_a / 2));
    sb->start_in_ms = ms_clamp((int64_t)w - (int64_t)(lo_b / 2));
    if (sa->start_at_us)
      return w;
  }
  /* Relative: the nearer worker waits for the farther one's `peer`. */
  w = lo_a > lo_b ? lo_a / 2 : lo_b / 2;
  sa->start_in_ms = ms_clamp((int64_t)w - (int64_t)(lo_a / 2));
  sb->start_in_ms = ms_clamp((int64_t)w - (int64_t)(lo_b / 2));
  return 0;
}
