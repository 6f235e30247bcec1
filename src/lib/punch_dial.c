/*
 * punch_dial.c - the punch engine's outbound side (see punch.c for the
 * retry policy): one socket per candidate from the punch port, the
 * synchronised retry grid, the low-TTL first SYN, and the engine's one timer
 * (next sockets, handshake bounds, the punch deadline). Split from punch.c
 * to keep one concern per file; the types are in punch_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "candidates.h"
#include "log.h"
#include "punch_int.h"

#define GRID_MS 50      /* synchronised retries: start + m * GRID_MS */
#define SWEEP_MAX_MS 40 /* role a's shift of a grid point, at most */
/* Re-SYNs after a refusal that came back within FAST_RTT_MS (the peer's NAT
 * is near): the first FAST_BURST at once, then one per millisecond; at most
 * FAST_MAX per candidate, only in the first FAST_WINDOW_MS after the common
 * start. See fast_retry below. */
#define FAST_RTT_MS 2
#define FAST_BURST 32
#define FAST_MAX 160
#define FAST_WINDOW_MS 250
/* Low-TTL SYNs re-sent at once after the path's ICMP Time Exceeded aborted
 * the previous one, at most TTL_AGAIN_MAX. See ttl_again below. */
#define TTL_AGAIN_MAX 100

/*
 * Synchronised retry (issue 9). With NATs that answer an unsolicited SYN
 * with a reset, a refused connect means the two SYNs missed each other: the
 * peer's SYN was refused too (the reset that reached us also closed our NAT's
 * fresh entry). Backing off on our own would keep the offset between the
 * two sides' SYNs for every later attempt. Both sides started at one instant
 * (the rendezvous' start_at_us), so both retry at the next point of one grid
 * anchored there, start + m * GRID_MS, after their refusal. Role a shifts
 * its points by a sweep, 0, +s, -s, +2s, -2s, ... (at most SWEEP_MAX_MS),
 * s = half the round trip the refusal took (the one-way delay to the peer's
 * NAT, the width of the window the SYNs must hit; at least 1 ms, the timer's
 * grain): an error of the clock estimate that made the first SYNs miss is
 * swept instead of repeated. Returns the uv_now() time of the next socket.
 */
static uint64_t grid_next(hp__pe *pe, cand *k, uint64_t rtt_ms) {
  uint64_t now = uv_now(pe->loop), at, step = rtt_ms / 2 ? rtt_ms / 2 : 1;
  long shift = 0;

  at = pe->t_start + ((now - pe->t_start) / GRID_MS + 1) * GRID_MS;
  if (pe->prm.role == 'a') {
    unsigned j = ++k->sweep;
    shift = (long)(((j + 1) / 2) * step);
    if (shift > SWEEP_MAX_MS) {
      k->sweep = 1; /* start over */
      shift = (long)step;
      j = 1;
    }
    if (!(j & 1))
      shift = -shift;
  }
  if ((long)(at - now) + shift < 2) /* too close to catch: the point after */
    at += GRID_MS;
  HP_DEBUG("punch",
           json_pack("{s:s, s:i, s:i}", "addr", k->c.addr, "in_ms", (int)((long)(at - now) + shift),
                     "shift_ms", (int)shift),
           "refused: next SYN to %s at the next common grid point", k->c.addr);
  return (uint64_t)((long)at + shift);
}

/*
 * A refusal from a near NAT (back within FAST_RTT_MS). Two SYNs must then
 * cross within the one-way delay between the NATs (0.05 ms in the lab's
 * reset0), far below what the clock estimate and libuv's 1 ms timers can
 * aim at, so the grid cannot help. What can: the refusal put our NAT's
 * entry in CLOSE, where the peer's SYN is invalid, but a new SYN of ours
 * reopens it at once (conntrack: CLOSE -> SYN_SENT); a SYN of the peer that
 * arrives while it is open (our SYN in flight) is forwarded to our socket
 * and the simultaneous open completes. So both sides re-SYN at once after
 * each refusal: each NAT is open most of the time, and every crossing is a
 * new chance. The two starts can be a few ms apart (clock estimate, a busy
 * loop) while a burst lasts about 2 ms (a re-SYN takes some 50 us here), so
 * after the burst the loop goes on at one SYN per ms: the earlier side is
 * still trying when the later one bursts, and with a one-way delay of
 * 0.5 ms or more between the NATs one SYN per ms keeps our NAT open nearly
 * all the time. Bounded: FAST_MAX SYNs in the first FAST_WINDOW_MS after
 * the common start, then the grid.
 */
static int fast_retry(hp__pe *pe, cand *k, uint64_t took_ms) {
  uint64_t now = uv_now(pe->loop);
  if (took_ms > FAST_RTT_MS || k->fast >= FAST_MAX || now - pe->t_start > FAST_WINDOW_MS)
    return 0;
  if (!k->near && pe->prm.low_ttl == 0 && k->c.kind == HP_CAND_SRFLX &&
      k->sa.ss_family == AF_INET) {
    /* The first near refusal: before racing, try once what needs no race.
     * Role b opens its NAT with a SYN of TTL NEAR_TTL (past a NAT at the
     * first hop, expiring before the peer's: the home router case, and the
     * lab's), role a dials LOW_TTL_DELAY_MS later into it. A wrong guess
     * costs one more refusal on either side, then the re-SYN run. */
    k->near = 1;
    if (pe->prm.role == 'b') {
      k->ttl_next = 1;
      k->next_at = now;
    } else {
      k->next_at = now + LOW_TTL_DELAY_MS;
    }
    HP_DEBUG("punch", json_pack("{s:s}", "addr", k->c.addr), "refused by a near NAT: %s",
             pe->prm.role == 'b' ? "opening ours with a low-TTL SYN" : "next SYN in 10 ms");
    return 1;
  }
  k->fast++;
  k->next_at = k->fast <= FAST_BURST ? now : now + 1;
  return 1;
}

/*
 * Role b's low-TTL SYN came back as an error: a router on the path answered
 * it with ICMP Time Exceeded, and Linux aborts a SYN_SENT socket on that
 * (tcp_v4_err). Our NAT's entry stays open (SYN_SENT; the ICMP is only
 * related), but when the peer's SYN arrives it finds no connecting socket
 * and reaches our listener, whose SYN-ACK has a new initial sequence number.
 * Conntrack accepts that only within the peer's window (64 KiB of sequence
 * space) of our last SYN, and the ISN clock runs at one per 64 ns: about
 * 4 ms. So the low-TTL SYN is re-sent at once after each abort (each one,
 * still expiring before the peer's NAT, moves the entry's sequence forward)
 * until the peer's SYN has come in (the 4-tuple is then taken and no socket
 * is made) or TTL_AGAIN_MAX are spent; then normal retries. At once, not on
 * a timer: the pace is the round trip to the router where the SYN expires,
 * and routers rate-limit their Time Exceeded (Linux: a burst of 6, then one
 * per second), after which our socket simply stays connecting, the quiet
 * path's case, and the peer's SYN meets it (a timer of 1 ms slipped to 6 ms
 * on a loaded machine and let the sequence fall out of the window).
 */
static int ttl_again(hp__pe *pe, conn *c, cand *k, int status) {
  if (!c->low_ttl || (status != UV_EHOSTUNREACH && status != UV_ENETUNREACH) ||
      k->ttl_again >= TTL_AGAIN_MAX) {
    k->ttl_next = 0;
    return 0;
  }
  k->ttl_again++;
  k->ttl_next = 1;
  k->next_at = uv_now(pe->loop);
  return 1;
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  hp__pe *pe = c->pe;
  cand *k;

  if (status == UV_ECANCELED || !hp__pe_live(pe))
    return;
  k = &pe->cands[c->cand];
  hp__pe_count_syns(c);
  if (status < 0) {
    /* A hard error: this socket is finished (the kernel gave up on it), so a
     * new one follows soon. An unanswered SYN never gets here before the
     * kernel's own connect timeout. */
    k->last_err = status;
    HP_DEBUG(
        "punch",
        json_pack("{s:s, s:i, s:i}", "addr", k->c.addr, "attempt", k->attempts, "syns", k->syns),
        "connect to %s: %s", k->c.addr, hp__pe_err_name(status));
    hp__pe_close_conn(c, 1);
    if (ttl_again(pe, c, k, status)) {
      /* next_at set: the next low-TTL SYN */
    } else if (pe->prm.synced && status == UV_ECONNREFUSED) {
      uint64_t took = uv_now(pe->loop) - c->t_sent;
      if (!fast_retry(pe, k, took))
        k->next_at = grid_next(pe, k, took);
    } else {
      k->next_at = uv_now(pe->loop) + k->retry_ms;
      k->retry_ms = umin(k->retry_ms * 2, RETRY_MAX_MS);
    }
    hp__pe_reschedule(pe);
    return;
  }
  {
    /* Peers in LANs with the same addressing: their host candidate can be
     * our own address and port, and the connect a TCP self-connect. */
    struct sockaddr_storage me, them;
    int lm = sizeof me, lt = sizeof them;
    char a1[HP_ADDR_STRLEN] = "", a2[HP_ADDR_STRLEN] = "";
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&me, &lm) == 0 &&
        uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&them, &lt) == 0 &&
        hp__addr_format((struct sockaddr *)&me, a1, sizeof a1) > 0 &&
        hp__addr_format((struct sockaddr *)&them, a2, sizeof a2) > 0 && strcmp(a1, a2) == 0) {
      k->skip = "it is our own address (self-connect)";
      HP_INFO("punch", json_pack("{s:s}", "addr", k->c.addr),
              "peer candidate %s is our own address and port: skipped", k->c.addr);
      hp__pe_close_conn(c, 1);
      hp__pe_reschedule(pe);
      return;
    }
  }
  HP_DEBUG("punch",
           json_pack("{s:s, s:i, s:i}", "addr", k->c.addr, "attempt", k->attempts, "syns", k->syns),
           "connected to %s %s", hp__cand_kind_name(k->c.kind), k->c.addr);
  k->last_err = 0;
  if (hp__pe_send_opening(c) < 0) {
    hp__pe_reject(c, "writing our hello failed");
    hp__pe_reschedule(pe);
    return;
  }
  hp__pe_start_read(c);
  hp__pe_reschedule(pe);
}

static void start_attempt(hp__pe *pe, int idx) {
  cand *k = &pe->cands[idx];
  uint64_t now = uv_now(pe->loop);
  conn *c;
  int fd, r;

  k->attempts++;
  pe->res.attempts++;
  fd = hp__pe_bound_socket(k->sa.ss_family, pe->port);
  if ((fd == -EMFILE || fd == -ENFILE) && hp__pe_drop_oldest_stranger(pe)) {
    hp__pe_note_drop(pe, "out of file descriptors for our own connection attempts");
    fd = hp__pe_bound_socket(k->sa.ss_family, pe->port);
  }
  if (fd < 0) {
    r = fd;
    goto fail;
  }
  c = hp__pe_new_conn(pe, idx);
  if (!c) {
    close(fd);
    r = UV_ENOMEM;
    goto fail;
  }
  snprintf(c->addr, sizeof c->addr, "%s", k->c.addr);
  memcpy(&c->ra, &k->sa, sizeof c->ra);
  c->syns_counted = 1; /* until the SYN is really sent */
  hp__peerhello_format(c->hello, sizeof c->hello, pe->prm.session, pe->prm.own_id);
  hp__peerhello_format_use(c->use, sizeof c->use, pe->prm.session);
  r = uv_tcp_open(&c->tcp, fd);
  if (r < 0) {
    close(fd);
    hp__pe_close_conn(c, 1);
    goto fail;
  }
  /* fd belongs to the handle now. */
  c->creq.data = c;
  {
    /*
     * Low-TTL first SYN (LOW_TTL_SYN, issue 9): role b's first SYN to the
     * peer's public mapping opens our NAT's entry and expires in the core
     * before it can reach the peer's NAT, so that NAT has nothing to reset;
     * role a's SYN, LOW_TTL_DELAY_MS later, then finds our NAT open. The
     * kernel sends the SYN inside connect(): the TTL is set back at once,
     * so retransmissions and the connection use the normal TTL. Where a
     * router returns ICMP Time Exceeded (Linux aborts a SYN_SENT socket on
     * one), ttl_again re-sends it. Opt-in: it helps only where the two NATs
     * are very close, see docs/lab.md.
     */
    int ttl = 0, old = 0;
    socklen_t ol = sizeof old;
    if (pe->prm.role == 'b' && ((pe->prm.low_ttl > 0 && k->attempts == 1) || k->ttl_next) &&
        k->c.kind == HP_CAND_SRFLX && k->sa.ss_family == AF_INET &&
        getsockopt(fd, IPPROTO_IP, IP_TTL, &old, &ol) == 0) {
      ttl = pe->prm.low_ttl > 0 ? pe->prm.low_ttl : NEAR_TTL;
      setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    }
    r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&k->sa, on_connect);
    if (ttl) {
      setsockopt(fd, IPPROTO_IP, IP_TTL, &old, sizeof old);
      c->low_ttl = 1;
      if (k->attempts == 1)
        HP_DEBUG("punch", json_pack("{s:s, s:i}", "addr", k->c.addr, "ttl", ttl),
                 "first SYN to %s with TTL %d", k->c.addr, ttl);
    }
  }
  if (r < 0) {
    hp__pe_close_conn(c, 1);
    goto fail;
  }
  /* No deadline: the kernel retransmits the SYN until an answer, a hard
   * error or its own connect timeout (see the top of the file). */
  c->st = C_CONNECTING;
  c->t_sent = now;
  c->syns_counted = 0;
  c->deadline = 0;
  k->cur = c;
  return;
fail:
  /* e.g. EADDRNOTAVAIL: the 4-tuple is in use by another socket, one not
   * known to the engine (those are checked before, see tuple_user). */
  k->last_err = r;
  k->next_at = now + k->retry_ms;
  k->retry_ms = umin(k->retry_ms * 2, RETRY_MAX_MS);
  HP_DEBUG("punch", json_pack("{s:s}", "addr", k->c.addr), "attempt to %s failed at once: %s%s",
           k->c.addr, uv_strerror(r),
           r == UV_EADDRNOTAVAIL ? " (a connection with this 4-tuple exists, e.g. the peer's)"
                                 : "");
}

static void give_up(hp__pe *pe) {
  /* A socket still connecting got no answer (unless an earlier one of the
   * same candidate heard something, which stays the last error). */
  for (conn *c = pe->conns; c; c = c->next)
    if (c->st == C_CONNECTING && pe->cands[c->cand].last_err == 0)
      pe->cands[c->cand].last_err = ERR_NO_ANSWER;
  hp__pe_finish(pe, NULL);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a,
                              *y = (const struct sockaddr_in6 *)b;
    return !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) &&
           x->sin6_port == y->sin6_port;
  }
  return 0;
}

/* Another connection of ours that uses candidate idx's 4-tuple (all of them
 * have local port P), or NULL. */
static conn *tuple_user(hp__pe *pe, int idx) {
  for (conn *c = pe->conns; c; c = c->next)
    if (c->cand != idx && same_addr(&c->ra, &pe->cands[idx].sa))
      return c;
  return NULL;
}

/* Candidate i needs a new socket now (or at next_at). */
static int wants_socket(hp__pe *pe, size_t i) {
  const cand *k = &pe->cands[i];
  return !k->skip && !k->cur && !tuple_user(pe, (int)i);
}

void hp__pe_on_timer(uv_timer_t *t) {
  hp__pe *pe = t->data;
  uint64_t now = uv_now(pe->loop);
  conn *c, *next;

  if (!hp__pe_live(pe))
    return;
  hp__pe_resume_listening(pe); /* after a stop at the descriptor limit */
  if (pe->st == PE_DELAYING) {
    pe->st = PE_PUNCHING;
    pe->hr_start = uv_hrtime();
    pe->t_start = now;
    pe->t_deadline = now + (uint64_t)(pe->prm.timeout_s * 1000.0);
    HP_DEBUG("punch", NULL, "first SYNs now");
  }
  if (now >= pe->t_deadline) {
    give_up(pe);
    return;
  }
  for (c = pe->conns; c; c = next) {
    next = c->next;
    if (c->deadline == 0 || now < c->deadline || c->st == C_CONNECTING || c->st == C_SPARE ||
        c->st == C_NOMINATING)
      continue;
    hp__pe_reject(c, c->early ? "nominated early, but no peer hello came while another "
                                "connection checked out"
                              : "handshake not complete in time");
  }
  for (size_t i = 0; i < pe->ncands; i++)
    if (wants_socket(pe, i) && pe->cands[i].next_at <= now)
      start_attempt(pe, (int)i);
  hp__pe_reschedule(pe);
}

void hp__pe_reschedule(hp__pe *pe) {
  uint64_t now, next;

  if (pe->st != PE_PUNCHING)
    return;
  now = uv_now(pe->loop);
  next = pe->t_deadline;
  /* A candidate blocked by another connection's 4-tuple waits for that one
   * to close (every close is followed by a reschedule). */
  for (size_t i = 0; i < pe->ncands; i++)
    if (wants_socket(pe, i) && pe->cands[i].next_at < next)
      next = pe->cands[i].next_at;
  for (conn *c = pe->conns; c; c = c->next)
    if (c->deadline && c->st != C_CONNECTING && c->st != C_SPARE && c->st != C_NOMINATING &&
        c->deadline < next)
      next = c->deadline;
  uv_timer_start(&pe->timer, hp__pe_on_timer, next > now ? next - now : 0, 0);
}
