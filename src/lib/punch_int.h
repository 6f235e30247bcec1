/*
 * punch_int.h - the punch engine's insides, shared by its files (not part of
 * any interface): punch.c (the engine: handshakes, nomination,
 * lifetime), punch_dial.c (dialing: sockets per candidate, the retry grid,
 * the one timer), punch_listen.c (the punch port: accepting, strangers bounded,
 * descriptor exhaustion), punch_report.c (what punching saw, for the give-up
 * summary).
 */
#ifndef HP_PUNCH_INT_H
#define HP_PUNCH_INT_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "peerhello.h"
#include "punch.h"

#define INLOG_MAX 16
#define WHY_MAX 96
/* A candidate's last_err when its socket was still waiting for an answer at
 * the end (not a UV_E* code: those are negative). */
#define ERR_NO_ANSWER 1
#define RETRY_MIN_MS 20
#define RETRY_MAX_MS 500
#define LOW_TTL_DELAY_MS 10 /* role a's first SYNs after role b's low-TTL ones */
#define NEAR_TTL 2          /* the low TTL tried after a near refusal (punch_dial.c) */
/* An early nominee (punch.h, may_nominate_early) that has not sent its hello
 * this long after another connection checked out is given up. Above the 3 s
 * first retransmission timeout after a retransmitted SYN: a genuine peer's
 * hello that was lost once still arrives in time. */
#define EARLY_WAIT_MS 3500

static inline unsigned umin(unsigned a, unsigned b) {
  return a < b ? a : b;
}

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
  uint64_t t_sent;            /* uv_now() ms: connect() called (outbound) */
  int low_ttl;                /* its SYN left with LOW_TTL_SYN's TTL */
  int early;                  /* role a: nominated when it connected (before the peer's hello) */
  int use_written;            /* role a: the "use" line's write completed */
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
  unsigned sweep;         /* synchronised retries so far (role a's shift) */
  unsigned fast;          /* immediate re-SYNs after a fast refusal (punch_dial.c) */
  unsigned ttl_again;     /* low-TTL SYNs re-sent after an ICMP abort (punch_dial.c) */
  int ttl_next;           /* the next socket's SYN leaves with the low TTL too */
  int near;               /* a refusal came back fast: the low-TTL opening was tried */
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
  int lfd6;            /* [::]:port, IPv6 only, or -1 (no IPv6 on the host) */
  uv_poll_t listener6; /* watches lfd6 when >= 0 */
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
  uint64_t t_start; /* uv_now() ms of the first SYNs: the retry grid's origin */
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

/* punch.c */
int hp__pe_live(const hp__pe *pe); /* DELAYING or PUNCHING: events are handled */
conn *hp__pe_new_conn(hp__pe *pe, int cand_idx);
void hp__pe_close_conn(conn *c, int rst); /* rst: abort with SO_LINGER {1, 0} */
void hp__pe_start_read(conn *c);          /* wait for the peer's hello */
void hp__pe_count_syns(conn *c);
void hp__pe_reject(conn *c, const char *why);
void hp__pe_finish(hp__pe *pe, conn *winner);
void hp__pe_on_hello_written(uv_write_t *req, int status);
int hp__pe_send_opening(conn *c); /* an outbound connection just connected */

/* punch_dial.c */
void hp__pe_reschedule(hp__pe *pe); /* re-arm the one timer */
void hp__pe_on_timer(uv_timer_t *t);

/* punch_listen.c */
int hp__pe_bound_socket(int family, int port); /* SO_REUSEADDR|PORT, bound to port; fd or -errno */
void hp__pe_listen6(hp__pe *pe, const hp__cands *cands); /* [::]:port if the peer has IPv6 */
int hp__pe_listen(hp__pe *pe);                           /* start watching the punch port */
void hp__pe_resume_listening(hp__pe *pe);                /* after a stop at the descriptor limit */
void hp__pe_note_drop(hp__pe *pe, const char *why);
int hp__pe_drop_oldest_stranger(hp__pe *pe); /* 1 if one was dropped */
unsigned hp__pe_unauth_bound(void);          /* strangers held, from RLIMIT_NOFILE */

/* punch_report.c */
const char *hp__pe_err_name(int err);

#endif
