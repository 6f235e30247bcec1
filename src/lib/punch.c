/*
 * punch.c - the punch engine (see punch.h).
 *
 * Retry policy. All attempts leave from the same local port P, so towards
 * one candidate there is one socket at a time (one 4-tuple), and it is KEPT
 * while its SYN gets no answer: the kernel retransmits that SYN (after 1 s,
 * then backing off; Linux >= 6.6 sends the first tcp_syn_linear_timeouts = 4
 * of them at 1 s intervals) with the same initial sequence number (ISN),
 * until tcp_syn_retries (about 2 minutes by default). The usual way in is
 * the simultaneous open: our SYN opens our NAT's state, the peer's SYN comes
 * through it and meets our SYN_SENT socket. Once the peer's SYN has
 * reached our NAT, the NAT's conntrack entry is in SYN_SENT2 and accepts only
 * SYNs with the ISNs it has seen: a SYN with a new ISN (a fresh socket on the
 * same 4-tuple) is INVALID and dropped for as long as the entry lives (120 s
 * on Linux, i.e. on most home routers). So when a crossing SYN is lost, only
 * the kernel's retransmission gets through (e2e.lost_syn). Replacing an
 * unanswered socket would also gain nothing: NAT state for a SYN lives for
 * minutes, and whichever side's SYN comes second crosses.
 *
 * A socket is replaced only after a hard error, which ends it anyway: refused
 * (RST: e.g. the peer's listener is not up yet, or a NAT that rejects),
 * unreachable (ICMP), reset or closed before the first byte, or the kernel's
 * own connect timeout. The next socket follows after 20 ms, doubling to 500 ms
 * per candidate; but after a refused connect in a synchronised start
 * (prm.synced: both sides started at one instant) it follows at the next
 * point of a grid both sides share, see grid_next (punch_dial.c). A connection that failed its
 * handshake (a bad line: a stranger, or broken) is retried after 500 ms. Silence is a failure only
 * on an inbound connection that has not proved the session yet (hello_ms, see start_read); a
 * connection that carries our hello waits for TCP.
 *
 * Every connection the engine gives up is aborted (SO_LINGER {1, 0}): an
 * established or half-open (SYN_RECV) one sends a RST instead of a FIN, and
 * its 4-tuple is free at once, with no FIN-WAIT socket left behind to make
 * every later connect() on it fail with EADDRNOTAVAIL; if the other end was
 * the peer, it learns at once that this connection is gone. (A socket in
 * SYN_SENT sends nothing either way.) Only the winner is closed normally: its
 * duplicate lives on.
 *
 * A candidate whose 4-tuple is in use by another connection of ours (our
 * listener accepted the peer's SYN from that address while we had no socket
 * towards it, or another candidate with the same address) is not dialed while
 * that connection lives: connect() would only fail with EADDRNOTAVAIL.
 *
 * One timer serves every deadline: the next socket per candidate, the
 * handshake bound of inbound connections, and the punch timeout.
 *
 * The punch port (accepting, strangers bounded, the descriptor limit) is in
 * punch_listen.c, the give-up report in punch_report.c; the engine's types
 * are in punch_int.h.
 * Dialing (the retry policy above, the synchronised grid, the one timer) is
 * in punch_dial.c.
 */
#include "punch.h"

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
#include "peerhello.h"
#include "punch_int.h"

#define HELLO_DEFAULT_MS 3000

static void maybe_free(hp__pe *pe) {
  if (pe->st != PE_DESTROYED || pe->nhandles > 0)
    return;
  if (pe->fd >= 0)
    close(pe->fd);
  if (pe->spare >= 0)
    close(pe->spare);
  free(pe);
}

static void on_handle_closed(uv_handle_t *h) {
  hp__pe *pe = h->data;
  pe->nhandles--;
  maybe_free(pe);
}

static void on_listener_closed(uv_handle_t *h) {
  hp__pe *pe = h->data;
  close(pe->lfd); /* after the poll handle stopped watching it */
  pe->lfd = -1;
  on_handle_closed(h);
}

static void on_listener6_closed(uv_handle_t *h) {
  hp__pe *pe = h->data;
  close(pe->lfd6);
  pe->lfd6 = -1;
  on_handle_closed(h);
}

/* Run events only while punching (or waiting for the first SYN). */
int hp__pe_live(const hp__pe *pe) {
  return pe->st == PE_DELAYING || pe->st == PE_PUNCHING;
}

static void on_conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  hp__pe *pe = c->pe;
  free(c);
  pe->nhandles--;
  hp__pe_resume_listening(pe);
  maybe_free(pe);
}

/* Count the SYNs of an outbound socket once, when it stops connecting:
 * its first one plus the kernel's retransmissions (of the SYN, or of the
 * SYN-ACK in a simultaneous open), as TCP_INFO reports them. */
void hp__pe_count_syns(conn *c) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  uv_os_fd_t fd;
  cand *k;

  if (c->cand < 0 || c->syns_counted)
    return;
  c->syns_counted = 1;
  k = &c->pe->cands[c->cand];
  k->syns++;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
      getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
    k->syns += ti.tcpi_total_retrans;
}

/* Unlink c and close it. With rst set (every connection but the winner),
 * SO_LINGER {1, 0} first: RST instead of FIN, and the 4-tuple is free at
 * once instead of lingering in FIN-WAIT / LAST-ACK. The winner must not get
 * it: the option belongs to the socket, which its duplicate keeps. */
static void nominee_lost(hp__pe *pe);

void hp__pe_close_conn(conn *c, int rst) {
  hp__pe *pe = c->pe;
  const int was_nominee = pe->nominee == c;

  if (c->st == C_CONNECTING)
    hp__pe_count_syns(c);
  if (c->prev)
    c->prev->next = c->next;
  else if (pe->conns == c)
    pe->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->next = c->prev = NULL;
  if (c->cand >= 0 && pe->cands[c->cand].cur == c)
    pe->cands[c->cand].cur = NULL;
  if (pe->nominee == c)
    pe->nominee = NULL;
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  if (rst) {
    struct linger lg = {1, 0};
    uv_os_fd_t fd;
    /* Fails only without an fd (a handle never opened): nothing to abort. */
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  if (was_nominee && hp__pe_live(pe))
    nominee_lost(pe);
}

conn *hp__pe_new_conn(hp__pe *pe, int cand_idx) {
  conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->pe = pe;
  c->cand = cand_idx;
  uv_tcp_init(pe->loop, &c->tcp);
  c->tcp.data = c;
  pe->nhandles++;
  c->next = pe->conns;
  if (pe->conns)
    pe->conns->prev = c;
  pe->conns = c;
  return c;
}

/* Close every connection; all but the winner (if any) are aborted. */
static void close_all(hp__pe *pe, const conn *winner) {
  while (pe->conns)
    hp__pe_close_conn(pe->conns, pe->conns != winner);
  if (!uv_is_closing((uv_handle_t *)&pe->timer))
    uv_timer_stop(&pe->timer);
  if (!uv_is_closing((uv_handle_t *)&pe->listener))
    uv_close((uv_handle_t *)&pe->listener, on_listener_closed);
  if (pe->lfd6 >= 0 && !uv_is_closing((uv_handle_t *)&pe->listener6))
    uv_close((uv_handle_t *)&pe->listener6, on_listener6_closed);
}

static const char *dir_name(const conn *c) {
  return c->cand < 0 ? "inbound" : "outbound";
}

/* A connection failed its handshake (or was closed during it). */
void hp__pe_reject(conn *c, const char *why) {
  hp__pe *pe = c->pe;
  const int authed = c->st == C_WAIT_USE || c->st == C_SPARE || c->st == C_NOMINATING;

  if (authed) {
    /* The peer closed a spare connection after nominating another one. */
    HP_DEBUG("punch",
             json_pack("{s:s, s:s, s:s}", "addr", c->addr, "direction", dir_name(c), "why", why),
             "authenticated spare connection closed");
  } else {
    pe->res.rejected++;
    HP_WARN("punch",
            json_pack("{s:s, s:s, s:s}", "addr", c->addr, "direction", dir_name(c), "why", why),
            "rejected %s connection %s: %s", dir_name(c), c->addr, why);
  }
  if (c->cand < 0) {
    if (!authed && pe->ninlog < INLOG_MAX) {
      snprintf(pe->inlog[pe->ninlog].addr, sizeof pe->inlog[0].addr, "%s", c->addr);
      snprintf(pe->inlog[pe->ninlog].why, sizeof pe->inlog[0].why, "%s", why);
      pe->ninlog++;
    }
  } else {
    cand *k = &pe->cands[c->cand];
    snprintf(k->last_why, sizeof k->last_why, "%s", why);
    k->next_at = uv_now(pe->loop) + RETRY_MAX_MS;
  }
  /* A stranger or a broken connection: abort it, so that the same 4-tuple
   * can be dialed again at once (it may have been the peer's). */
  hp__pe_close_conn(c, 1);
}

void hp__pe_finish(hp__pe *pe, conn *winner) {
  pe->st = PE_FINISHED;
  pe->res.elapsed_ms = (double)(uv_hrtime() - pe->hr_start) / 1e6;
  if (winner) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_os_fd_t fd;

    uv_read_stop((uv_stream_t *)&winner->tcp);
    if (uv_tcp_getsockname(&winner->tcp, (struct sockaddr *)&ss, &len) == 0)
      hp__addr_format((struct sockaddr *)&ss, pe->res.local_addr, sizeof pe->res.local_addr);
    snprintf(pe->res.peer_addr, sizeof pe->res.peer_addr, "%s", winner->addr);
    pe->res.direction = dir_name(winner);
    /* libuv owns the handle's fd and closes it with the handle: hand out a
     * duplicate, in blocking mode (O_NONBLOCK is shared, the original is
     * about to be closed anyway). */
    if (uv_fileno((uv_handle_t *)&winner->tcp, &fd) == 0) {
      pe->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (pe->fd < 0 && errno == EMFILE && pe->spare >= 0) {
        /* What the reserved descriptor is for. */
        close(pe->spare);
        pe->spare = -1;
        pe->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      }
      if (pe->fd >= 0) {
        int fl = fcntl(pe->fd, F_GETFL);
        if (fl >= 0)
          fcntl(pe->fd, F_SETFL, fl & ~O_NONBLOCK);
      }
    }
  }
  close_all(pe, winner);
  if (pe->res.dropped)
    HP_INFO("punch",
            json_pack("{s:i, s:i}", "dropped", (int)pe->res.dropped, "limit", (int)pe->unauth_max),
            "dropped %u connections that sent no hello while over the limit of %u (or out of "
            "descriptors)",
            pe->res.dropped, pe->unauth_max);
  if (winner && pe->fd < 0) {
    HP_ERROR("punch", NULL, "cannot duplicate the winning socket: %s", strerror(errno));
    pe->cb(pe, -EMFILE, pe->data);
    return;
  }
  pe->cb(pe, winner ? 0 : -ETIMEDOUT, pe->data);
}

/* The hello line, and for role b the channel's HELLO right behind it
 * (every byte after b's hello line belongs to the channel, section 5). */
static int send_hello(conn *c, uv_write_t *req, uv_write_cb cb) {
  const hp__pe_params *prm = &c->pe->prm;
  uv_buf_t b[2];
  unsigned n = 0;

  b[n++] = uv_buf_init(c->hello, (unsigned)strlen(c->hello));
  if (prm->role == 'b' && prm->chan_hello)
    b[n++] = uv_buf_init((char *)prm->chan_hello, (unsigned)prm->chan_hello_len);
  req->data = c;
  return uv_write(req, (uv_stream_t *)&c->tcp, b, n, cb);
}

static void on_use_written(uv_write_t *req, int status) {
  conn *c = req->data;
  hp__pe *pe = c->pe;

  if (status == UV_ECANCELED || !hp__pe_live(pe))
    return;
  if (status < 0) {
    /* Closing the nominee nominates another checked connection, if any
     * (nominee_lost). */
    hp__pe_reject(c, "writing the nomination failed");
    hp__pe_reschedule(pe);
    return;
  }
  c->use_written = 1;
  /* An early nominee waits for the peer's hello (authenticated). */
  if (c->st == C_NOMINATING)
    hp__pe_finish(pe, c);
}

/* Write the nomination ("use" line, for role a; the channel's HELLO follows
 * it) on c. When called for an unchecked outbound connection (early), the
 * peer's hello has not come yet. lead: the hello line to send first in the
 * same write, or NULL. */
static int send_use(conn *c, const char *lead) {
  hp__pe *pe = c->pe;
  uv_buf_t b[3];
  unsigned n = 0;

  pe->nominee = c;
  /* Committed to the direct path from here on, whatever becomes of this
   * write (a failed one nominates a spare, or punching goes on). */
  if (pe->prm.on_nominate)
    pe->prm.on_nominate(pe->data);
  if (lead)
    b[n++] = uv_buf_init((char *)lead, (unsigned)strlen(lead));
  b[n++] = uv_buf_init(c->use, (unsigned)strlen(c->use));
  if (pe->prm.chan_hello)
    b[n++] = uv_buf_init((char *)pe->prm.chan_hello, (unsigned)pe->prm.chan_hello_len);
  c->wreq_use.data = c;
  return uv_write(&c->wreq_use, (uv_stream_t *)&c->tcp, b, n, on_use_written);
}

/* The nominee is gone (closed for any reason while punching): nominate
 * another checked connection, or tell the session that nothing is
 * nominated any more. */
static void nominee_lost(hp__pe *pe) {
  if (pe->prm.role != 'a')
    return;
  for (conn *o = pe->conns; o; o = o->next) {
    if (o->st == C_SPARE) {
      o->st = C_NOMINATING;
      if (send_use(o, NULL) < 0)
        hp__pe_reject(o, "writing the nomination failed"); /* and the next one */
      return;
    }
  }
  if (pe->prm.on_unnominate)
    pe->prm.on_unnominate(pe->data);
}

/* An outbound connection connected: our hello at once (the peer proved
 * nothing yet, but we dialed the address it gave). Role a nominates it in
 * the same write when it may (punch.h, may_nominate_early): then the peer
 * takes it as soon as our lines arrive, and the secure handshake starts
 * half a round trip earlier. */
int hp__pe_send_opening(conn *c) {
  hp__pe *pe = c->pe;

  if (pe->prm.role == 'a' && pe->prm.chan_hello && !pe->nominee && c->cand >= 0 &&
      pe->cands[c->cand].c.kind == HP_CAND_SRFLX && pe->prm.may_nominate_early &&
      pe->prm.may_nominate_early(pe->data)) {
    HP_DEBUG("punch", json_pack("{s:s}", "addr", c->addr),
             "nominating %s early (with our hello, before the peer's)", c->addr);
    c->early = 1;
    return send_use(c, c->hello);
  }
  return send_hello(c, &c->wreq_hello, hp__pe_on_hello_written);
}

void hp__pe_on_hello_written(uv_write_t *req, int status) {
  conn *c = req->data;
  if (status == UV_ECANCELED || !hp__pe_live(c->pe) || status >= 0)
    return;
  hp__pe_reject(c, "writing our hello failed");
  hp__pe_reschedule(c->pe);
}

static void authenticated(conn *c) {
  hp__pe *pe = c->pe;

  HP_DEBUG("punch", json_pack("{s:s, s:s}", "addr", c->addr, "direction", dir_name(c)),
           "peer hello verified on %s connection %s", dir_name(c), c->addr);
  /* An inbound connection answers only now: the session never goes to a
   * stranger who connected to our port. */
  if (c->cand < 0 && send_hello(c, &c->wreq_hello, hp__pe_on_hello_written) < 0) {
    hp__pe_reject(c, "writing our hello failed");
    return;
  }
  if (pe->prm.role == 'b') {
    /* Our hello is out: a may already have nominated this connection (its
     * "use" may be in TCP retransmission), so silence does not end it. */
    c->st = C_WAIT_USE;
    c->deadline = 0;
    return;
  }
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (pe->nominee == c) {
    /* Nominated early: done once the "use" line is out too. */
    c->st = C_NOMINATING;
    if (c->use_written)
      hp__pe_finish(pe, c);
    return;
  }
  if (pe->nominee) {
    conn *n = pe->nominee;
    c->st = C_SPARE;
    /* An early nominee that stays silent while this one checked out is
     * probably not the peer (another host at that address): bounded. */
    if (n->early && n->st == C_WAIT_HELLO && !n->deadline)
      n->deadline = uv_now(pe->loop) + EARLY_WAIT_MS;
    return;
  }
  c->st = C_NOMINATING;
  if (send_use(c, NULL) < 0)
    hp__pe_reject(c, "writing the nomination failed");
}

static void process(conn *c) {
  hp__pe *pe = c->pe;
  size_t consumed = 0;
  const char *why = NULL;
  hp__peerhello_verdict v =
      hp__peerhello_check(c->rbuf, c->rlen, pe->prm.session, pe->prm.peer_id, &consumed, &why);

  switch (v) {
  case HP_PH_NEED_MORE:
    return;
  case HP_PH_BAD:
    hp__pe_reject(c, why ? why : "not a valid peer hello");
    return;
  case HP_PH_OK:
    c->rlen = 0;
    if (c->st != C_WAIT_HELLO) {
      hp__pe_reject(c, "hello repeated");
      return;
    }
    authenticated(c);
    return;
  case HP_PH_USE:
    c->rlen = 0;
    if (c->st != C_WAIT_USE || pe->prm.role != 'b') {
      hp__pe_reject(c, "nomination before hello, or sent to role a");
      return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    hp__pe_finish(pe, c);
    return;
  }
}

/* One byte at a time: nothing after the last handshake line is consumed. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  if (c->rlen >= sizeof c->rbuf) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->rbuf + c->rlen, 1);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  hp__pe *pe = c->pe;
  (void)buf;

  if (!hp__pe_live(pe) || nread == 0)
    return;
  if (nread < 0 && c->cand >= 0 && c->st == C_WAIT_HELLO && c->rlen == 0) {
    /* Closed or reset before a single byte: like a refused connect (often
     * the peer finishing on another connection), not a bad handshake. */
    cand *k = &pe->cands[c->cand];
    k->last_err = nread == UV_EOF ? UV_ECONNRESET : (int)nread;
    HP_DEBUG("punch", json_pack("{s:s}", "addr", c->addr),
             "connection to %s closed before any byte: %s", c->addr, hp__pe_err_name(k->last_err));
    hp__pe_close_conn(c, 1);
    k->next_at = uv_now(pe->loop) + k->retry_ms;
    k->retry_ms = umin(k->retry_ms * 2, RETRY_MAX_MS);
    hp__pe_reschedule(pe);
    return;
  }
  if (nread < 0) {
    hp__pe_reject(c, nread == UV_EOF       ? "closed by the other side during the handshake"
                     : nread == UV_ENOBUFS ? "handshake line too long"
                                           : uv_strerror((int)nread));
    hp__pe_reschedule(pe);
    return;
  }
  c->rlen += (size_t)nread;
  process(c);
  if (hp__pe_live(pe))
    hp__pe_reschedule(pe);
}

/* The handshake bound (hello_ms) is for a connection that has had nothing
 * from us: an inbound one, until its hello checks out. That is what keeps a
 * silent stranger from holding a connection. Once we have sent our hello
 * (an outbound connection sends it at once), the peer may have completed
 * the handshake on its side and kept this connection, while its own lines
 * are still in TCP retransmission (on a lossy path with a retransmitted SYN
 * Linux starts at a 3 s RTO): dropping it then would break a pair that the
 * peer thinks is made. Such a connection ends only with the punch timeout,
 * an error from TCP, or a bad line. */
void hp__pe_start_read(conn *c) {
  c->st = C_WAIT_HELLO;
  /* The hello and nomination lines are small writes that follow each other:
   * without TCP_NODELAY, Nagle holds the second until the first is acked
   * (a delayed ack: up to 40 ms). */
  (void)uv_tcp_nodelay(&c->tcp, 1);
  c->deadline = c->cand < 0 ? uv_now(c->pe->loop) + c->pe->prm.hello_ms : 0;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
    hp__pe_reject(c, "cannot read");
}
int hp__pe_create(uv_loop_t *loop, int port, hp__pe **out) {
  hp__pe *pe;
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  int fd = -1, r;

  if (port < 0 || port > 65535)
    return -EINVAL;
  if (port > 0) {
    /* SO_REUSEPORT would let us share the port with another listener of
     * the same user, which would steal half of our connections. A probe
     * bound without it fails if anything listens on the port. */
    int one = 1;
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
      return -errno;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    r = bind(probe, (struct sockaddr *)&sin, sizeof sin) < 0 ? -errno : 0;
    close(probe);
    if (r < 0)
      return r;
  }
  fd = hp__pe_bound_socket(AF_INET, port);
  if (fd < 0)
    return fd;
  if (listen(fd, 128) < 0 || getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
    r = -errno;
    close(fd);
    return r;
  }
  pe = calloc(1, sizeof *pe);
  if (!pe) {
    close(fd);
    return -ENOMEM;
  }
  r = uv_poll_init_socket(loop, &pe->listener, fd);
  if (r < 0) {
    close(fd);
    free(pe);
    return r;
  }
  pe->loop = loop;
  pe->st = PE_IDLE;
  pe->lfd = fd;
  pe->fd = -1;
  pe->port = ntohs(sin.sin_port);
  pe->res.direction = "";
  pe->unauth_max = hp__pe_unauth_bound();
  pe->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pe->listener.data = pe;
  pe->nhandles++;
  pe->lfd6 = -1; /* opened by hp__pe_start when the peer has an IPv6 candidate */
  uv_timer_init(loop, &pe->timer);
  pe->timer.data = pe;
  pe->nhandles++;
  *out = pe;
  return 0;
}

int hp__pe_port(const hp__pe *pe) {
  return pe->port;
}

/* Why a candidate address is not dialed, or NULL. */
static const char *skip_reason(const struct sockaddr_storage *sa, int allow_loopback, int has6) {
  hp__addr_class cl = hp__addr_classify((const struct sockaddr *)sa);

  if (sa->ss_family == AF_INET6 && !has6)
    return "an IPv6 address, and this host cannot listen on IPv6";
  if (sa->ss_family != AF_INET && sa->ss_family != AF_INET6)
    return "not an IP address";
  if (cl == HP_ADDR_UNSPECIFIED || cl == HP_ADDR_BROADCAST || cl == HP_ADDR_MULTICAST)
    return "not a peer address (unspecified, broadcast or multicast)";
  if ((cl == HP_ADDR_LOOPBACK || cl == HP_ADDR_LINK_LOCAL) && !allow_loopback)
    return cl == HP_ADDR_LOOPBACK
               ? "a loopback address (our own host): dialed only with ALLOW_LOOPBACK_CANDIDATES=1"
               : "a link-local address (e.g. a cloud metadata service): dialed only with "
                 "ALLOW_LOOPBACK_CANDIDATES=1";
  return NULL;
}

int hp__pe_start(hp__pe *pe, const hp__pe_params *prm, hp__pe_cb cb, void *data) {
  int r;

  if (pe->st != PE_IDLE)
    return -EALREADY;
  if ((prm->role != 'a' && prm->role != 'b') || !*prm->session || !*prm->own_id || !*prm->peer_id ||
      prm->cands.n > HP_CANDS_MAX || prm->timeout_s <= 0 || prm->start_in_ms < 0 ||
      prm->start_in_ms > HP_START_IN_MS_MAX)
    return -EINVAL;
  {
    char tmp[HP_PEERHELLO_MAX];
    if (hp__peerhello_format(tmp, sizeof tmp, prm->session, prm->own_id) < 0 ||
        !hp__wire_valid_name(prm->peer_id, strlen(prm->peer_id)))
      return -EINVAL;
  }
  hp__pe_listen6(pe, &prm->cands);
  r = hp__pe_listen(pe);
  if (r < 0)
    return r;
  pe->prm = *prm;
  if (pe->prm.hello_ms == 0)
    pe->prm.hello_ms = HELLO_DEFAULT_MS;
  pe->cb = cb;
  pe->data = data;
  pe->ncands = prm->cands.n;
  for (size_t i = 0; i < pe->ncands; i++) {
    cand *k = &pe->cands[i];
    memset(k, 0, sizeof *k);
    k->c = prm->cands.c[i];
    k->retry_ms = RETRY_MIN_MS;
    if (hp__addr_parse(k->c.addr, strlen(k->c.addr), &k->sa, &k->salen) < 0)
      k->skip = "not a valid address";
    else
      k->skip = skip_reason(&k->sa, prm->allow_loopback, pe->lfd6 >= 0);
    if (k->skip)
      HP_WARN("punch", json_pack("{s:s, s:s}", "addr", k->c.addr, "why", k->skip),
              "peer candidate %s skipped: %s", k->c.addr, k->skip);
  }
  pe->st = PE_DELAYING;
  uv_timer_start(&pe->timer, hp__pe_on_timer,
                 (uint64_t)prm->start_in_ms +
                     (prm->low_ttl > 0 && prm->role == 'a' ? LOW_TTL_DELAY_MS : 0),
                 0);
  return 0;
}

int hp__pe_take_fd(hp__pe *pe) {
  int fd = pe->fd;
  pe->fd = -1; /* the caller owns it now */
  return fd;
}

void hp__pe_get_result(const hp__pe *pe, hp__pe_result *r) {
  *r = pe->res;
}

void hp__pe_destroy(hp__pe *pe) {
  if (!pe || pe->st == PE_DESTROYED)
    return;
  pe->st = PE_DESTROYED; /* no callback any more */
  close_all(pe, NULL);
  if (!uv_is_closing((uv_handle_t *)&pe->timer))
    uv_close((uv_handle_t *)&pe->timer, on_handle_closed);
  if (pe->fd >= 0) {
    close(pe->fd);
    pe->fd = -1;
  }
  maybe_free(pe);
}