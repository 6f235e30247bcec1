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
 * per candidate. A connection that failed its handshake (a bad line: a
 * stranger, or broken) is retried after 500 ms. Silence is a failure only on
 * an inbound connection that has not proved the session yet (hello_ms, see
 * start_read); a connection that carries our hello waits for TCP.
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
 */
#include "punch.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "candidates.h"
#include "log.h"
#include "peerhello.h"

#define RETRY_MIN_MS 20
#define RETRY_MAX_MS 500
#define HELLO_DEFAULT_MS 3000
#define INLOG_MAX 16
#define ACCEPT_BATCH 32 /* accepts per readiness event, so timers still run */
#define UNAUTH_MIN 4    /* bounds of the unauthenticated inbound connections held */
#define UNAUTH_MAX 64
#define FD_RESERVE 32 /* descriptors left for the loop, lws, curl, our own dials */
#define WHY_MAX 96
/* A candidate's last_err when its socket was still waiting for an answer at
 * the end (not a UV_E* code: those are negative). */
#define ERR_NO_ANSWER 1

typedef enum conn_state {
  C_CONNECTING, /* outbound SYN sent (and retransmitted by the kernel) */
  C_WAIT_HELLO, /* connected, waiting for the peer's hello */
  C_WAIT_USE,   /* role b: authenticated, waiting for "use" */
  C_SPARE,      /* role a: authenticated, but another one was nominated */
  C_NOMINATING  /* role a: "use" being written */
} conn_state;

typedef struct conn {
  uv_tcp_t tcp;
  uint64_t seq; /* inbound: order of arrival (the oldest stranger goes first) */
  uv_connect_t creq;
  uv_write_t wreq_hello, wreq_use;
  hp__pe *pe;
  struct conn *next, *prev;
  int cand; /* index into pe->cands, -1 for inbound */
  conn_state st;
  int syns_counted;           /* the candidate's syns include this socket's */
  uint64_t deadline;          /* uv_now() ms: handshake bound, 0 = none */
  struct sockaddr_storage ra; /* the remote address (the 4-tuple's far end) */
  char addr[HP_ADDR_STRLEN];
  char rbuf[HP_PEERHELLO_MAX];
  size_t rlen;
  char hello[HP_PEERHELLO_MAX];
  char use[HP_PEERHELLO_MAX];
} conn;

typedef struct cand {
  hp__cand c;
  struct sockaddr_storage sa;
  socklen_t salen;
  const char *skip;       /* why it is not tried, or NULL */
  conn *cur;              /* the one socket towards it (connecting or connected) */
  uint64_t next_at;       /* next socket when cur is NULL */
  unsigned attempts;      /* sockets created (connect() calls) */
  unsigned syns;          /* SYNs those sockets sent, kernel retransmissions included */
  unsigned retry_ms;      /* delay before the next socket after a hard error */
  int last_err;           /* UV_E* of the last attempt, ERR_NO_ANSWER, 0 = none */
  char last_why[WHY_MAX]; /* handshake failure on a connection to it */
} cand;

/*
 * One state per engine. Before hp__pe_start the listening socket is not
 * polled: connections wait in the kernel's backlog (nothing to replay).
 */
typedef enum pe_state {
  PE_IDLE,     /* listening, not started */
  PE_DELAYING, /* started: accepting, first SYNs after start_in_ms */
  PE_PUNCHING, /* dialing and accepting until the punch deadline */
  PE_FINISHED, /* the callback fired (or is firing); no event is handled */
  PE_DESTROYED /* hp__pe_destroy: freed when the last handle has closed */
} pe_state;

struct hp__pe {
  uv_loop_t *loop;
  pe_state st;
  int lfd; /* the listening socket, polled by listener (ours to close) */
  uv_poll_t listener;
  uv_timer_t timer;
  int nhandles; /* open handles, embedded or in conns: the reference count */
  int port;
  int spare;           /* a reserved descriptor (/dev/null) for when the limit is hit */
  unsigned unauth_max; /* inbound connections held before their hello */
  uint64_t inbound_seq;
  int exhausted_logged;
  hp__pe_params prm;
  cand cands[HP_CANDS_MAX];
  size_t ncands;
  conn *conns;
  conn *nominee;
  uint64_t t_deadline;
  uint64_t hr_start;
  hp__pe_cb cb;
  void *data;
  int fd; /* the winner, owned until taken */
  hp__pe_result res;
  struct {
    char addr[HP_ADDR_STRLEN];
    char why[WHY_MAX];
  } inlog[INLOG_MAX];
  size_t ninlog;
};

static void reschedule(hp__pe *pe);
static void start_read(conn *c);

static const char *err_name(int err) {
  switch (err) {
  case 0:
    return "none";
  case ERR_NO_ANSWER:
    return "no answer";
  case UV_ETIMEDOUT:
    return "timed out";
  case UV_ECONNREFUSED:
    return "refused";
  case UV_EHOSTUNREACH:
  case UV_ENETUNREACH:
    return "unreachable";
  case UV_ECONNRESET:
    return "reset";
  default:
    return uv_strerror(err);
  }
}

static unsigned umin(unsigned a, unsigned b) {
  return a < b ? a : b;
}

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

/* Run events only while punching (or waiting for the first SYN). */
static int live(const hp__pe *pe) {
  return pe->st == PE_DELAYING || pe->st == PE_PUNCHING;
}

static void on_listen(uv_poll_t *h, int status, int events);

/* A connection's descriptor is free again: if the limit had stopped us
 * watching the port, watch it again (and take back the reserve). */
static void resume_listening(hp__pe *pe) {
  if (!live(pe) || uv_is_closing((uv_handle_t *)&pe->listener))
    return;
  if (pe->spare < 0)
    pe->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (!uv_is_active((uv_handle_t *)&pe->listener))
    (void)uv_poll_start(&pe->listener, UV_READABLE, on_listen);
}

static void on_conn_closed(uv_handle_t *h) {
  conn *c = h->data;
  hp__pe *pe = c->pe;
  free(c);
  pe->nhandles--;
  resume_listening(pe);
  maybe_free(pe);
}

/* Count the SYNs of an outbound socket once, when it stops connecting:
 * its first one plus the kernel's retransmissions (of the SYN, or of the
 * SYN-ACK in a simultaneous open), as TCP_INFO reports them. */
static void count_syns(conn *c) {
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
static void close_conn(conn *c, int rst) {
  hp__pe *pe = c->pe;

  if (c->st == C_CONNECTING)
    count_syns(c);
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
}

static conn *new_conn(hp__pe *pe, int cand_idx) {
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
    close_conn(pe->conns, pe->conns != winner);
  if (!uv_is_closing((uv_handle_t *)&pe->timer))
    uv_timer_stop(&pe->timer);
  if (!uv_is_closing((uv_handle_t *)&pe->listener))
    uv_close((uv_handle_t *)&pe->listener, on_listener_closed);
}

static const char *dir_name(const conn *c) {
  return c->cand < 0 ? "inbound" : "outbound";
}

/* A connection failed its handshake (or was closed during it). */
static void reject(conn *c, const char *why) {
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
  close_conn(c, 1);
}

static void finish(hp__pe *pe, conn *winner) {
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

static int send_line(conn *c, uv_write_t *req, char *line, uv_write_cb cb) {
  uv_buf_t b = uv_buf_init(line, (unsigned)strlen(line));
  req->data = c;
  return uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, cb);
}

static void on_use_written(uv_write_t *req, int status) {
  conn *c = req->data;
  hp__pe *pe = c->pe;

  if (status == UV_ECANCELED || !live(pe))
    return;
  if (status < 0) {
    reject(c, "writing the nomination failed");
    /* Nominate another authenticated connection, if there is one. */
    for (conn *o = pe->conns; o; o = o->next) {
      if (o->st == C_SPARE) {
        o->st = C_NOMINATING;
        pe->nominee = o;
        if (send_line(o, &o->wreq_use, o->use, on_use_written) < 0)
          reject(o, "writing the nomination failed");
        break;
      }
    }
    reschedule(pe);
    return;
  }
  finish(pe, c);
}

static void on_hello_written(uv_write_t *req, int status) {
  conn *c = req->data;
  if (status == UV_ECANCELED || !live(c->pe) || status >= 0)
    return;
  reject(c, "writing our hello failed");
  reschedule(c->pe);
}

static void authenticated(conn *c) {
  hp__pe *pe = c->pe;

  HP_DEBUG("punch", json_pack("{s:s, s:s}", "addr", c->addr, "direction", dir_name(c)),
           "peer hello verified on %s connection %s", dir_name(c), c->addr);
  /* An inbound connection answers only now: the session never goes to a
   * stranger who connected to our port. */
  if (c->cand < 0 && send_line(c, &c->wreq_hello, c->hello, on_hello_written) < 0) {
    reject(c, "writing our hello failed");
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
  if (pe->nominee) {
    c->st = C_SPARE;
    return;
  }
  c->st = C_NOMINATING;
  pe->nominee = c;
  if (send_line(c, &c->wreq_use, c->use, on_use_written) < 0)
    reject(c, "writing the nomination failed");
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
    reject(c, why ? why : "not a valid peer hello");
    return;
  case HP_PH_OK:
    c->rlen = 0;
    if (c->st != C_WAIT_HELLO) {
      reject(c, "hello repeated");
      return;
    }
    authenticated(c);
    return;
  case HP_PH_USE:
    c->rlen = 0;
    if (c->st != C_WAIT_USE || pe->prm.role != 'b') {
      reject(c, "nomination before hello, or sent to role a");
      return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    finish(pe, c);
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

  if (!live(pe) || nread == 0)
    return;
  if (nread < 0 && c->cand >= 0 && c->st == C_WAIT_HELLO && c->rlen == 0) {
    /* Closed or reset before a single byte: like a refused connect (often
     * the peer finishing on another connection), not a bad handshake. */
    cand *k = &pe->cands[c->cand];
    k->last_err = nread == UV_EOF ? UV_ECONNRESET : (int)nread;
    HP_DEBUG("punch", json_pack("{s:s}", "addr", c->addr),
             "connection to %s closed before any byte: %s", c->addr, err_name(k->last_err));
    close_conn(c, 1);
    k->next_at = uv_now(pe->loop) + k->retry_ms;
    k->retry_ms = umin(k->retry_ms * 2, RETRY_MAX_MS);
    reschedule(pe);
    return;
  }
  if (nread < 0) {
    reject(c, nread == UV_EOF       ? "closed by the other side during the handshake"
              : nread == UV_ENOBUFS ? "handshake line too long"
                                    : uv_strerror((int)nread));
    reschedule(pe);
    return;
  }
  c->rlen += (size_t)nread;
  process(c);
  if (live(pe))
    reschedule(pe);
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
static void start_read(conn *c) {
  c->st = C_WAIT_HELLO;
  c->deadline = c->cand < 0 ? uv_now(c->pe->loop) + c->pe->prm.hello_ms : 0;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
    reject(c, "cannot read");
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  hp__pe *pe = c->pe;
  cand *k;

  if (status == UV_ECANCELED || !live(pe))
    return;
  k = &pe->cands[c->cand];
  count_syns(c);
  if (status < 0) {
    /* A hard error: this socket is finished (the kernel gave up on it), so a
     * new one follows soon. An unanswered SYN never gets here before the
     * kernel's own connect timeout. */
    k->last_err = status;
    HP_DEBUG(
        "punch",
        json_pack("{s:s, s:i, s:i}", "addr", k->c.addr, "attempt", k->attempts, "syns", k->syns),
        "connect to %s: %s", k->c.addr, err_name(status));
    close_conn(c, 1);
    k->next_at = uv_now(pe->loop) + k->retry_ms;
    k->retry_ms = umin(k->retry_ms * 2, RETRY_MAX_MS);
    reschedule(pe);
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
      close_conn(c, 1);
      reschedule(pe);
      return;
    }
  }
  HP_DEBUG("punch",
           json_pack("{s:s, s:i, s:i}", "addr", k->c.addr, "attempt", k->attempts, "syns", k->syns),
           "connected to %s %s", hp__cand_kind_name(k->c.kind), k->c.addr);
  k->last_err = 0;
  if (send_line(c, &c->wreq_hello, c->hello, on_hello_written) < 0) {
    reject(c, "writing our hello failed");
    reschedule(pe);
    return;
  }
  start_read(c);
  reschedule(pe);
}

/* ---- descriptors: strangers are bounded, the limit is survived ---- */

/* The first time the descriptor limit (or the bound on unauthenticated
 * connections) forces a drop, say so once; finish() gives the count. */
static void note_drop(hp__pe *pe, const char *why) {
  pe->res.dropped++;
  if (pe->exhausted_logged)
    return;
  pe->exhausted_logged = 1;
  HP_WARN("punch",
          json_pack("{s:i, s:i, s:s}", "port", pe->port, "limit", (int)pe->unauth_max, "why", why),
          "port %d: %s; dropping the oldest connection that has not sent a valid hello (this is "
          "logged once; the count follows at the end)",
          pe->port, why);
}

/* Abort the oldest inbound connection still waiting for its hello. Returns
 * 1 if there was one (its descriptor is free now: uv_close closes it). */
static int drop_oldest_stranger(hp__pe *pe) {
  conn *old = NULL;

  for (conn *c = pe->conns; c; c = c->next)
    if (c->cand < 0 && c->st == C_WAIT_HELLO && (!old || c->seq < old->seq))
      old = c;
  if (!old)
    return 0;
  HP_DEBUG("punch", json_pack("{s:s}", "addr", old->addr),
           "dropped inbound connection %s (no hello yet)", old->addr);
  close_conn(old, 1);
  return 1;
}

static unsigned unauth_count(const hp__pe *pe) {
  unsigned n = 0;
  for (const conn *c = pe->conns; c; c = c->next)
    n += c->cand < 0 && c->st == C_WAIT_HELLO;
  return n;
}

/* How many strangers to hold: half of what the descriptor limit leaves
 * after a reserve for everything else, within [UNAUTH_MIN, UNAUTH_MAX]. */
static unsigned unauth_bound(void) {
  struct rlimit rl;
  rlim_t n;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return UNAUTH_MAX;
  n = rl.rlim_cur > FD_RESERVE ? (rl.rlim_cur - FD_RESERVE) / 2 : 0;
  return n < UNAUTH_MIN ? UNAUTH_MIN : n > UNAUTH_MAX ? UNAUTH_MAX : (unsigned)n;
}

/* A socket bound to P: SO_REUSEADDR + SO_REUSEPORT before bind, next to the
 * listener. Returns the fd or -errno. */
static int bound_socket(int port) {
  struct sockaddr_in sin;
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

static void start_attempt(hp__pe *pe, int idx) {
  cand *k = &pe->cands[idx];
  uint64_t now = uv_now(pe->loop);
  conn *c;
  int fd, r;

  k->attempts++;
  pe->res.attempts++;
  fd = bound_socket(pe->port);
  if ((fd == -EMFILE || fd == -ENFILE) && drop_oldest_stranger(pe)) {
    note_drop(pe, "out of file descriptors for our own connection attempts");
    fd = bound_socket(pe->port);
  }
  if (fd < 0) {
    r = fd;
    goto fail;
  }
  c = new_conn(pe, idx);
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
    close_conn(c, 1);
    goto fail;
  }
  /* fd belongs to the handle now. */
  c->creq.data = c;
  r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&k->sa, on_connect);
  if (r < 0) {
    close_conn(c, 1);
    goto fail;
  }
  /* No deadline: the kernel retransmits the SYN until an answer, a hard
   * error or its own connect timeout (see the top of the file). */
  c->st = C_CONNECTING;
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
  finish(pe, NULL);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
  return a->ss_family == AF_INET && b->ss_family == AF_INET &&
         x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
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

static void on_timer(uv_timer_t *t) {
  hp__pe *pe = t->data;
  uint64_t now = uv_now(pe->loop);
  conn *c, *next;

  if (!live(pe))
    return;
  resume_listening(pe); /* after a stop at the descriptor limit */
  if (pe->st == PE_DELAYING) {
    pe->st = PE_PUNCHING;
    pe->hr_start = uv_hrtime();
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
    reject(c, "handshake not complete in time");
  }
  for (size_t i = 0; i < pe->ncands; i++)
    if (wants_socket(pe, i) && pe->cands[i].next_at <= now)
      start_attempt(pe, (int)i);
  reschedule(pe);
}

static void reschedule(hp__pe *pe) {
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
  uv_timer_start(&pe->timer, on_timer, next > now ? next - now : 0, 0);
}

/* One accepted connection (fd non-blocking): hold it until its hello. */
static void inbound(hp__pe *pe, int fd, const struct sockaddr_storage *ss) {
  conn *c;

  pe->res.inbound_seen++;
  if (unauth_count(pe) >= pe->unauth_max) {
    note_drop(pe, "too many connections without a valid hello");
    drop_oldest_stranger(pe);
  }
  c = new_conn(pe, -1);
  if (!c) {
    close(fd);
    return;
  }
  c->seq = ++pe->inbound_seq;
  if (uv_tcp_open(&c->tcp, fd) < 0) {
    close(fd);
    close_conn(c, 1);
    return;
  }
  /* fd belongs to the handle now. */
  memcpy(&c->ra, ss, sizeof c->ra);
  if (hp__addr_format((const struct sockaddr *)ss, c->addr, sizeof c->addr) < 0)
    snprintf(c->addr, sizeof c->addr, "?");
  hp__peerhello_format(c->hello, sizeof c->hello, pe->prm.session, pe->prm.own_id);
  hp__peerhello_format_use(c->use, sizeof c->use, pe->prm.session);
  HP_DEBUG("punch", json_pack("{s:s}", "addr", c->addr), "inbound connection from %s", c->addr);
  start_read(c);
}

/* Out of descriptors with a connection waiting: make room by dropping the
 * oldest stranger, or, with none, take the waiting one with the reserved
 * descriptor and abort it. Never a busy loop: each call frees or drops
 * one connection. Returns 0 to go on accepting, -1 to stop for this turn. */
static int accept_exhausted(hp__pe *pe) {
  int fd;

  if (drop_oldest_stranger(pe)) {
    note_drop(pe, "out of file descriptors");
    return 0;
  }
  if (pe->spare < 0) {
    /* Nothing to give: a level-triggered watch would fire again at once,
     * so stop watching the port until one of our connections closes
     * (resume_listening); the kernel's backlog holds the rest meanwhile. */
    uv_poll_stop(&pe->listener);
    return -1;
  }
  close(pe->spare);
  pe->spare = -1;
  fd = accept4(pe->lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0) {
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    note_drop(pe, "out of file descriptors");
  }
  pe->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? 0 : -1;
}

/* We accept ourselves (a poll handle on the listening socket) rather than
 * with uv_listen: libuv's own answer to EMFILE accepts and closes every
 * pending connection, the peer's among them, and a connection callback that
 * does not accept stops the listener's watch. */
static void on_listen(uv_poll_t *h, int status, int events) {
  hp__pe *pe = h->data;
  (void)events;

  if (status < 0) {
    HP_WARN("punch", NULL, "watching port %d failed: %s", pe->port, uv_strerror(status));
    return;
  }
  for (int i = 0; i < ACCEPT_BATCH && live(pe); i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(pe->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if ((errno == EMFILE || errno == ENFILE) && accept_exhausted(pe) == 0)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EMFILE && errno != ENFILE)
        HP_WARN("punch", NULL, "accept on port %d failed: %s", pe->port, strerror(errno));
      break;
    }
    inbound(pe, fd, &ss);
  }
  if (live(pe))
    reschedule(pe);
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
  fd = bound_socket(port);
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
  pe->unauth_max = unauth_bound();
  pe->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pe->listener.data = pe;
  pe->nhandles++;
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
static const char *skip_reason(const struct sockaddr_storage *sa, int allow_loopback) {
  hp__addr_class cl = hp__addr_classify((const struct sockaddr *)sa);

  if (sa->ss_family != AF_INET)
    return "IPv6 is not supported (the punch port is IPv4)";
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
  r = uv_poll_start(&pe->listener, UV_READABLE, on_listen);
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
      k->skip = skip_reason(&k->sa, prm->allow_loopback);
    if (k->skip)
      HP_WARN("punch", json_pack("{s:s, s:s}", "addr", k->c.addr, "why", k->skip),
              "peer candidate %s skipped: %s", k->c.addr, k->skip);
  }
  pe->st = PE_DELAYING;
  uv_timer_start(&pe->timer, on_timer, (uint64_t)prm->start_in_ms, 0);
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

json_t *hp__pe_report(const hp__pe *pe, char *text, size_t textlen) {
  json_t *cands = json_array(), *inb = json_array();
  size_t off = 0;

  if (textlen)
    text[0] = '\0';
  for (size_t i = 0; i < pe->ncands; i++) {
    const cand *k = &pe->cands[i];
    const char *last = k->skip ? k->skip : err_name(k->last_err);
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:s}", "kind", hp__cand_kind_name(k->c.kind),
                          "addr", k->c.addr, "attempts", (int)k->attempts, "syns", (int)k->syns,
                          "last_error", last);
    if (o && *k->last_why)
      json_object_set_new(o, "handshake", json_string(k->last_why));
    json_array_append_new(cands, o);
    if (off < textlen) {
      /* "attempts" are sockets: an unanswered SYN is retransmitted by the
       * kernel on the same socket, and those show only in the SYN count. */
      int w = snprintf(text + off, textlen - off, "%s%s %s: %u socket%s, %u SYN%s, last %s%s%s",
                       i ? "; " : "", hp__cand_kind_name(k->c.kind), k->c.addr, k->attempts,
                       k->attempts == 1 ? "" : "s", k->syns, k->syns == 1 ? "" : "s", last,
                       *k->last_why ? ", handshake: " : "", k->last_why);
      off += w > 0 ? (size_t)w : 0;
    }
  }
  if (pe->ncands == 0 && textlen)
    snprintf(text, textlen, "no usable peer candidates");
  for (size_t i = 0; i < pe->ninlog; i++)
    json_array_append_new(
        inb, json_pack("{s:s, s:s}", "addr", pe->inlog[i].addr, "why", pe->inlog[i].why));
  return json_pack("{s:o, s:o, s:i, s:i, s:i}", "candidates", cands, "inbound", inb, "inbound_seen",
                   (int)pe->res.inbound_seen, "rejected", (int)pe->res.rejected, "dropped",
                   (int)pe->res.dropped);
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
