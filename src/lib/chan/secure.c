/*
 * secure.c - the secure channel (secure.h).
 *
 *   HANDSHAKE  reading the carrier for the peer's HELLO and CONFIRM; user
 *              writes are held (plaintext, capped) and the user reads nothing
 *   PEER_HDR   only with hp__secure_await_peer_header: the handshake is done
 *              and our stream header went out, but ready() waits for the
 *              peer's stream header (the peer's commitment to this carrier,
 *              see secure.h); writes are still held, received bytes kept
 *   OPEN       records both ways; the stream header went out first
 *   FAILED     ready(<0) or on_error fired; only close() remains
 *   CLOSED     close() called; freed in the timer's close callback
 *
 * Received bytes the user cannot take now (paused, or no callbacks yet) wait
 * in `backlog`, still encrypted, with the carrier paused; the timer (0 ms)
 * resumes delivery on a loop turn of its own, never inside pause() or
 * set_cbs().
 */
#include "secure.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define SEAL_RECORDS 4

typedef enum sec_state { S_HANDSHAKE, S_PEER_HDR, S_OPEN, S_FAILED, S_CLOSED } sec_state;

/* The user's write direction: open, half-close asked during the handshake
 * (sent once ready), half-closed (FINAL sealed). */
typedef enum sec_wdir { W_OPEN, W_SHUT_PENDING, W_SHUT } sec_wdir;

typedef struct sec_bs {
  hp_bs base;       /* first member */
  uv_timer_t timer; /* handshake deadline, then deferred delivery */
  hp_bs *carrier;
  sec_state st;
  sec_wdir wdir;
  int cbs_set, paused;
  int carrier_eof; /* the carrier's on_eof came (handled once the backlog is empty) */
  int peer_final;  /* the peer's FINAL record came: on_eof fired */
  int above_high;  /* queued() went over HP_BS_HIGH_WATER since the last on_drain */
  int authenticated;
  int await_hdr; /* configuration: ready() only after the peer's stream header */
  hp_bs_cbs cbs;
  void *ud;
  hp__secure_ready_cb ready;
  void *ready_ud;
  hp__hs hs;
  hp__rec_tx tx;
  hp__rec_rx rx;
  uint8_t *pend; /* user bytes written during the handshake */
  size_t pend_len;
  uint8_t *backlog; /* received, not yet delivered (encrypted) */
  size_t backlog_len, backlog_cap;
  uint8_t seal[SEAL_RECORDS * HP_REC_MAX_WIRE];
  uint8_t plain[HP_REC_MAX_PLAIN];
} sec_bs;

static const hp_bs_ops sec_ops;
static void sync_carrier(sec_bs *s);

/* ---- ending ---- */

static void wipe(sec_bs *s) {
  hp__hs_wipe(&s->hs);
  hp__rec_tx_wipe(&s->tx);
  hp__rec_rx_wipe(&s->rx);
  if (s->pend)
    sodium_memzero(s->pend, s->pend_len);
}

/* The stream is dead: ready(<0) during the handshake, on_error after. */
static void fail(sec_bs *s, int err, const char *why) {
  sec_state was = s->st;

  if (was != S_HANDSHAKE && was != S_PEER_HDR && was != S_OPEN)
    return;
  s->st = S_FAILED;
  uv_timer_stop(&s->timer);
  wipe(s);
  hp_bs_pause(s->carrier, 1);
  if (was == S_HANDSHAKE || was == S_PEER_HDR) {
    if (s->ready)
      s->ready(&s->base, err, why, s->ready_ud);
  } else if (s->cbs.on_error) {
    s->cbs.on_error(&s->base, err, why, s->ud);
  }
}

/* ---- sending ---- */

/* Seal p[0..n) as records (FINAL last when final) and hand them down, up
 * to SEAL_RECORDS records per carrier write (fewer copies and syscalls). */
static int send_records(sec_bs *s, const uint8_t *p, size_t n, int final) {
  size_t used = 0;
  int r;

  do {
    size_t k = n < HP_REC_MAX_PLAIN ? n : HP_REC_MAX_PLAIN;
    int last = final && k == n;
    int w = hp__rec_seal(&s->tx, p, k, last, s->seal + used, sizeof s->seal - used);
    if (w < 0)
      return w;
    used += (size_t)w;
    p += k;
    n -= k;
    if (n == 0 || sizeof s->seal - used < HP_REC_MAX_WIRE) {
      r = hp_bs_write(s->carrier, s->seal, used);
      if (r < 0)
        return r;
      used = 0;
    }
  } while (n > 0);
  return 0;
}

/* What the carrier would hold after n more user bytes: the records'
 * overhead counted, so the carrier never refuses half a write. */
static size_t wire_size(size_t n) {
  return n + (n / HP_REC_MAX_PLAIN + 2) * HP_REC_OVERHEAD;
}

static size_t sec_queued(const hp_bs *b) {
  const sec_bs *s = (const sec_bs *)b;
  return s->pend_len + (s->st == S_CLOSED ? 0 : hp_bs_queued(s->carrier));
}

/* ---- receiving ---- */

static int deliverable(const sec_bs *s) {
  return s->st == S_OPEN && s->cbs_set && !s->paused && !s->peer_final;
}

/* Open records from p[0..n) and deliver them while the user takes them.
 * Returns the bytes used; the stream may be failed or closed on return. */
static size_t deliver(sec_bs *s, const uint8_t *p, size_t n) {
  size_t used = 0;

  while (used < n && deliverable(s)) {
    size_t c, outlen;
    int final, r;
    const char *why;

    r = hp__rec_open(&s->rx, p + used, n - used, &c, s->plain, &outlen, &final, &why);
    used += c;
    if (r < 0) {
      fail(s, r, why);
      return used;
    }
    if (r == 0)
      break;
    if (outlen > 0 && s->cbs.on_data) {
      s->cbs.on_data(&s->base, s->plain, outlen, s->ud);
      if (s->st != S_OPEN)
        return used; /* closed or failed from the callback */
    }
    if (final) {
      s->peer_final = 1;
      if (s->cbs.on_eof)
        s->cbs.on_eof(&s->base, s->ud);
      if (s->st != S_OPEN)
        return used;
    }
  }
  return used;
}

static int keep(sec_bs *s, const uint8_t *p, size_t n) {
  if (n == 0)
    return 0;
  if (s->backlog_len + n > HP_BS_HARD_CAP)
    return -ENOBUFS; /* a carrier that ignores pause */
  if (s->backlog_len + n > s->backlog_cap) {
    size_t cap = s->backlog_len + n < 65536 ? 65536 : (s->backlog_len + n) * 2;
    uint8_t *nb = realloc(s->backlog, cap);
    if (!nb)
      return -ENOMEM;
    s->backlog = nb;
    s->backlog_cap = cap;
  }
  memcpy(s->backlog + s->backlog_len, p, n);
  s->backlog_len += n;
  return 0;
}

/* The carrier ended: fine after the peer's FINAL, truncation before. */
static void carrier_ended(sec_bs *s) {
  if (s->st == S_HANDSHAKE || s->st == S_PEER_HDR)
    fail(s, -ECONNRESET, "the peer closed the connection during the secure handshake");
  else if (s->st == S_OPEN && !s->peer_final)
    fail(s, -EPIPE, "the connection ended without the peer's end-of-stream record (truncated)");
}

static void drain_backlog(sec_bs *s) {
  if (s->backlog_len > 0) {
    size_t used = deliver(s, s->backlog, s->backlog_len);
    if (s->st != S_OPEN)
      return;
    memmove(s->backlog, s->backlog + used, s->backlog_len - used);
    s->backlog_len -= used;
  }
  if (s->backlog_len == 0 && s->carrier_eof) {
    carrier_ended(s);
    return;
  }
  /* Bytes after the peer's FINAL record are an error (record.h). */
  if (s->peer_final && s->backlog_len > 0)
    fail(s, -EPROTO, "the peer sent bytes after the end of its stream");
  else
    sync_carrier(s);
}

static void on_timer(uv_timer_t *t) {
  sec_bs *s = t->data;

  if (s->st == S_HANDSHAKE || s->st == S_PEER_HDR)
    fail(s, -ETIMEDOUT, "no secure handshake from the peer in time");
  else if (s->st == S_OPEN)
    drain_backlog(s);
}

/* The carrier reads while the handshake runs or the user takes data. */
static void sync_carrier(sec_bs *s) {
  int read = s->st == S_HANDSHAKE || s->st == S_PEER_HDR ||
             (deliverable(s) && s->backlog_len == 0) || (s->st == S_OPEN && s->peer_final);
  hp_bs_pause(s->carrier, !read);
}

static void schedule_delivery(sec_bs *s) {
  if (s->st == S_OPEN && (s->backlog_len > 0 || s->carrier_eof))
    uv_timer_start(&s->timer, on_timer, 0, 0);
  else
    sync_carrier(s);
}

/* The handshake is done: our stream header goes out; then (at once, or in
 * PEER_HDR once the peer's header came) open_channel. */
static int keys_ready(sec_bs *s) {
  uint8_t tx[HP_HS_KEY_BYTES], rx[HP_HS_KEY_BYTES], hdr[HP_REC_HEADER_LEN];

  hp__hs_keys(&s->hs, tx, rx);
  s->authenticated = s->hs.with_psk;
  hp__hs_wipe(&s->hs);
  hp__rec_tx_init(&s->tx, tx, hdr);
  hp__rec_rx_init(&s->rx, rx);
  sodium_memzero(tx, sizeof tx);
  sodium_memzero(rx, sizeof rx);
  s->st = S_PEER_HDR;
  return hp_bs_write(s->carrier, hdr, sizeof hdr);
}

/* Records both ways: held writes, a held half-close. */
static int open_channel(sec_bs *s) {
  int r = 0;

  uv_timer_stop(&s->timer);
  s->st = S_OPEN;
  if (s->pend_len > 0)
    r = send_records(s, s->pend, s->pend_len, s->wdir == W_SHUT_PENDING);
  else if (s->wdir == W_SHUT_PENDING)
    r = send_records(s, NULL, 0, 1);
  if (r == 0 && s->wdir == W_SHUT_PENDING) {
    s->wdir = W_SHUT;
    r = hp_bs_shutdown(s->carrier);
  }
  if (s->pend) {
    sodium_memzero(s->pend, s->pend_len);
    free(s->pend);
    s->pend = NULL;
  }
  s->pend_len = 0;
  return r;
}

/* Open the channel and tell the user. 0 when it is still open after ready(). */
static int open_and_tell(sec_bs *s) {
  int r = open_channel(s);

  if (r < 0) {
    fail(s, r, "cannot send on the connection");
    return r;
  }
  if (s->ready)
    s->ready(&s->base, 0, "", s->ready_ud);
  return s->st == S_OPEN ? 0 : -EPIPE; /* closed from ready() */
}

static void on_carrier_data(hp_bs *c, const uint8_t *p, size_t n, void *ud) {
  sec_bs *s = ud;
  size_t used = 0;
  (void)c;

  if (s->st == S_HANDSHAKE) {
    uint8_t out[HP_HS_MSG_LEN];
    char why[160];
    int have, r;

    r = hp__hs_feed(&s->hs, p, n, &used, out, &have, why, sizeof why);
    if (have && hp_bs_write(s->carrier, out, sizeof out) < 0) {
      fail(s, -EPIPE, "cannot send the secure handshake");
      return;
    }
    if (r < 0) {
      fail(s, r, why);
      return;
    }
    if (r == HP_HS_AGAIN)
      return;
    r = keys_ready(s);
    if (r < 0) {
      fail(s, r, "cannot send on the connection");
      return;
    }
  }
  if (s->st == S_PEER_HDR && s->await_hdr) {
    /* Everything waits, still encrypted, in the backlog until the peer's
     * stream header is in; delivered once open, by the backlog's timer. */
    if (keep(s, p + used, n - used) < 0) {
      fail(s, -ENOBUFS, "the connection delivered data while paused beyond the cap");
      return;
    }
    if (s->backlog_len >= HP_REC_HEADER_LEN && open_and_tell(s) == 0)
      schedule_delivery(s);
    return;
  }
  if (s->st == S_PEER_HDR && open_and_tell(s) < 0)
    return;
  if (s->st != S_OPEN)
    return;
  if (s->backlog_len == 0)
    used += deliver(s, p + used, n - used);
  if (s->st != S_OPEN)
    return;
  if (s->peer_final && used < n) {
    fail(s, -EPROTO, "the peer sent bytes after the end of its stream");
    return;
  }
  if (keep(s, p + used, n - used) < 0) {
    fail(s, -ENOBUFS, "the connection delivered data while paused beyond the cap");
    return;
  }
  sync_carrier(s);
}

static void on_carrier_eof(hp_bs *c, void *ud) {
  sec_bs *s = ud;
  (void)c;
  s->carrier_eof = 1;
  if (s->st == S_OPEN && s->backlog_len > 0)
    return; /* judged once the backlog is delivered */
  carrier_ended(s);
}

static void on_carrier_error(hp_bs *c, int err, const char *why, void *ud) {
  (void)c;
  fail(ud, err, why);
}

static void on_carrier_drain(hp_bs *c, void *ud) {
  sec_bs *s = ud;
  (void)c;
  if (s->st == S_OPEN && s->above_high && sec_queued(&s->base) <= HP_BS_LOW_WATER) {
    s->above_high = 0;
    if (s->cbs.on_drain)
      s->cbs.on_drain(&s->base, s->ud);
  }
}

static const hp_bs_cbs carrier_cbs = {on_carrier_data, on_carrier_eof, on_carrier_error,
                                      on_carrier_drain};

/* ---- ops ---- */

static void sec_set_cbs(hp_bs *b, const hp_bs_cbs *cbs, void *ud) {
  sec_bs *s = (sec_bs *)b;

  if (cbs)
    s->cbs = *cbs;
  else
    memset(&s->cbs, 0, sizeof s->cbs);
  s->ud = ud;
  if (!s->cbs_set) {
    s->cbs_set = 1;
    schedule_delivery(s);
  }
}

static int sec_write(hp_bs *b, const uint8_t *p, size_t n) {
  sec_bs *s = (sec_bs *)b;

  if ((s->st != S_OPEN && s->st != S_HANDSHAKE) || s->wdir != W_OPEN)
    return -EPIPE;
  if (n == 0)
    return 0;
  if (n > HP_BS_HARD_CAP || sec_queued(b) > HP_BS_HARD_CAP - wire_size(n))
    return -ENOBUFS;
  if (s->st == S_HANDSHAKE) {
    uint8_t *np = realloc(s->pend, s->pend_len + n);
    if (!np)
      return -ENOMEM;
    s->pend = np;
    memcpy(s->pend + s->pend_len, p, n);
    s->pend_len += n;
  } else {
    int r = send_records(s, p, n, 0);
    if (r < 0)
      return r;
  }
  if (sec_queued(b) > HP_BS_HIGH_WATER)
    s->above_high = 1;
  return 0;
}

static int sec_shutdown(hp_bs *b) {
  sec_bs *s = (sec_bs *)b;
  int r;

  if (s->wdir != W_OPEN)
    return 0;
  if (s->st == S_HANDSHAKE) {
    s->wdir = W_SHUT_PENDING; /* FINAL once the peer is authenticated */
    return 0;
  }
  if (s->st != S_OPEN)
    return -EPIPE;
  s->wdir = W_SHUT;
  r = send_records(s, NULL, 0, 1);
  return r < 0 ? r : hp_bs_shutdown(s->carrier);
}

static void sec_pause(hp_bs *b, int paused) {
  sec_bs *s = (sec_bs *)b;

  if (s->paused == !!paused)
    return;
  s->paused = !!paused;
  if (paused)
    sync_carrier(s);
  else
    schedule_delivery(s);
}

static void on_closed(uv_handle_t *h) {
  sec_bs *s = h->data;
  free(s->pend);
  free(s->backlog);
  sodium_memzero(s, sizeof *s);
  free(s);
}

static void sec_close(hp_bs *b) {
  sec_bs *s = (sec_bs *)b;

  if (s->st == S_CLOSED)
    return;
  s->st = S_CLOSED;
  wipe(s);
  hp_bs_close(s->carrier);
  s->carrier = NULL;
  uv_close((uv_handle_t *)&s->timer, on_closed);
}

static const hp_bs_ops sec_ops = {sec_set_cbs, sec_write, sec_queued, sec_shutdown,
                                  sec_pause,   sec_close, "secure"};

/* Either a fresh handshake (params: our HELLO is written here) or one whose
 * HELLO already went out on the carrier (sent: copied, then wiped by the
 * caller). */
static int start(uv_loop_t *loop, hp_bs *carrier, const hp__hs_params *params, const hp__hs *sent,
                 uint64_t timeout_ms, hp__secure_ready_cb ready, void *ud, hp_bs **out) {
  uint8_t hello[HP_HS_MSG_LEN];
  sec_bs *s;
  int r;

  if (!loop || !carrier || (!params && !sent) || !out) {
    if (carrier)
      hp_bs_close(carrier);
    return -EINVAL;
  }
  if (sent && sent->st != HP_HS_WAIT_HELLO) {
    hp_bs_close(carrier);
    return -EINVAL;
  }
  s = calloc(1, sizeof *s);
  if (!s) {
    hp_bs_close(carrier);
    return -ENOMEM;
  }
  if (sent)
    s->hs = *sent;
  else if ((r = hp__hs_init(&s->hs, params, hello)) < 0) {
    hp_bs_close(carrier);
    free(s);
    return r;
  }
  s->base.ops = &sec_ops;
  s->carrier = carrier;
  s->st = S_HANDSHAKE;
  s->wdir = W_OPEN;
  s->ready = ready;
  s->ready_ud = ud;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  hp_bs_set_cbs(carrier, &carrier_cbs, s);
  r = sent ? 0 : hp_bs_write(carrier, hello, sizeof hello);
  if (r < 0) {
    sec_close(&s->base);
    return r;
  }
  uv_timer_start(&s->timer, on_timer, timeout_ms, 0);
  *out = &s->base;
  return 0;
}

int hp__secure_start(uv_loop_t *loop, hp_bs *carrier, const hp__hs_params *params,
                     uint64_t timeout_ms, hp__secure_ready_cb ready, void *ud, hp_bs **out) {
  return start(loop, carrier, params, NULL, timeout_ms, ready, ud, out);
}

int hp__secure_start_sent(uv_loop_t *loop, hp_bs *carrier, const hp__hs *sent, uint64_t timeout_ms,
                          hp__secure_ready_cb ready, void *ud, hp_bs **out) {
  return start(loop, carrier, NULL, sent, timeout_ms, ready, ud, out);
}

void hp__secure_await_peer_header(hp_bs *b) {
  if (b && b->ops == &sec_ops && ((sec_bs *)b)->st == S_HANDSHAKE)
    ((sec_bs *)b)->await_hdr = 1;
}

int hp__secure_awaiting_peer_header(const hp_bs *b) {
  return b && b->ops == &sec_ops && ((const sec_bs *)b)->st == S_PEER_HDR;
}

int hp__secure_authenticated(const hp_bs *b) {
  return b && b->ops == &sec_ops && ((const sec_bs *)b)->authenticated;
}
