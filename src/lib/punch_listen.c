/*
 * punch_listen.c - the punch port of the engine (see punch.h): accepting,
 * the bound on connections that have not proved the session, and surviving
 * the descriptor limit.
 *
 * We accept ourselves (a poll handle on the listening socket) rather than
 * with uv_listen: libuv's own answer to EMFILE accepts and closes every
 * pending connection, the peer's among them, and a connection callback that
 * does not accept stops the listener's watch. Before hp__pe_start nothing
 * watches the port: connections wait in the kernel's backlog.
 *
 * Strangers: at most unauth_max inbound connections are held before their
 * hello (from RLIMIT_NOFILE, UNAUTH_MIN..UNAUTH_MAX; each for hello_ms at
 * most); one more, or EMFILE/ENFILE, drops the oldest of them with a reset.
 * With nothing to drop, the reserved descriptor takes a pending connection
 * to abort it; with no reserve either, the watch stops until one of our
 * connections closes. The first drop is logged once; hp__pe_finish() logs the count.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "punch_int.h"

#define ACCEPT_BATCH 32 /* accepts per readiness event, so timers still run */
#define UNAUTH_MIN 4    /* bounds of the unauthenticated inbound connections held */
#define UNAUTH_MAX 64
#define FD_RESERVE 32 /* descriptors left for the loop, the WebSocket, curl, our own dials */

static void on_listen(uv_poll_t *h, int status, int events);

int hp__pe_listen(hp__pe *pe) {
  int r = uv_poll_start(&pe->listener, UV_READABLE, on_listen);
  if (r == 0 && pe->lfd6 >= 0)
    r = uv_poll_start(&pe->listener6, UV_READABLE, on_listen);
  return r;
}

/* A connection's descriptor is free again: if the limit had stopped us
 * watching the port, watch it again (and take back the reserve). */
void hp__pe_resume_listening(hp__pe *pe) {
  if (!hp__pe_live(pe) || uv_is_closing((uv_handle_t *)&pe->listener))
    return;
  if (pe->spare < 0)
    pe->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (!uv_is_active((uv_handle_t *)&pe->listener))
    (void)uv_poll_start(&pe->listener, UV_READABLE, on_listen);
  if (pe->lfd6 >= 0 && !uv_is_closing((uv_handle_t *)&pe->listener6) &&
      !uv_is_active((uv_handle_t *)&pe->listener6))
    (void)uv_poll_start(&pe->listener6, UV_READABLE, on_listen);
}

/* The first time the descriptor limit (or the bound on unauthenticated
 * connections) forces a drop, say so once; hp__pe_finish() gives the count. */
void hp__pe_note_drop(hp__pe *pe, const char *why) {
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
int hp__pe_drop_oldest_stranger(hp__pe *pe) {
  conn *old = NULL;

  for (conn *c = pe->conns; c; c = c->next)
    if (c->cand < 0 && c->st == C_WAIT_HELLO && (!old || c->seq < old->seq))
      old = c;
  if (!old)
    return 0;
  HP_DEBUG("punch", json_pack("{s:s}", "addr", old->addr),
           "dropped inbound connection %s (no hello yet)", old->addr);
  hp__pe_close_conn(old, 1);
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
unsigned hp__pe_unauth_bound(void) {
  struct rlimit rl;
  rlim_t n;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return UNAUTH_MAX;
  n = rl.rlim_cur > FD_RESERVE ? (rl.rlim_cur - FD_RESERVE) / 2 : 0;
  return n < UNAUTH_MIN ? UNAUTH_MIN : n > UNAUTH_MAX ? UNAUTH_MAX : (unsigned)n;
}

/* One accepted connection (fd non-blocking): hold it until its hello. */
static void inbound(hp__pe *pe, int fd, const struct sockaddr_storage *ss) {
  conn *c;

  pe->res.inbound_seen++;
  if (unauth_count(pe) >= pe->unauth_max) {
    hp__pe_note_drop(pe, "too many connections without a valid hello");
    hp__pe_drop_oldest_stranger(pe);
  }
  c = hp__pe_new_conn(pe, -1);
  if (!c) {
    close(fd);
    return;
  }
  c->seq = ++pe->inbound_seq;
  if (uv_tcp_open(&c->tcp, fd) < 0) {
    close(fd);
    hp__pe_close_conn(c, 1);
    return;
  }
  /* fd belongs to the handle now. */
  memcpy(&c->ra, ss, sizeof c->ra);
  if (hp__addr_format((const struct sockaddr *)ss, c->addr, sizeof c->addr) < 0)
    snprintf(c->addr, sizeof c->addr, "?");
  hp__peerhello_format(c->hello, sizeof c->hello, pe->prm.session, pe->prm.own_id);
  hp__peerhello_format_use(c->use, sizeof c->use, pe->prm.session);
  HP_DEBUG("punch", json_pack("{s:s}", "addr", c->addr), "inbound connection from %s", c->addr);
  hp__pe_start_read(c);
}

/* Out of descriptors with a connection waiting: make room by dropping the
 * oldest stranger, or, with none, take the waiting one with the reserved
 * descriptor and abort it. Never a busy loop: each call frees or drops
 * one connection. Returns 0 to go on accepting, -1 to stop for this turn. */
static int accept_exhausted(hp__pe *pe, uv_poll_t *h, int lfd) {
  int fd;

  if (hp__pe_drop_oldest_stranger(pe)) {
    hp__pe_note_drop(pe, "out of file descriptors");
    return 0;
  }
  if (pe->spare < 0) {
    /* Nothing to give: a level-triggered watch would fire again at once,
     * so stop watching the port until one of our connections closes
     * (resume_listening); the kernel's backlog holds the rest meanwhile. */
    uv_poll_stop(h);
    return -1;
  }
  close(pe->spare);
  pe->spare = -1;
  fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0) {
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    hp__pe_note_drop(pe, "out of file descriptors");
  }
  pe->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? 0 : -1;
}

static void on_listen(uv_poll_t *h, int status, int events) {
  hp__pe *pe = h->data;
  const int lfd = h == &pe->listener6 ? pe->lfd6 : pe->lfd;
  (void)events;

  if (status < 0) {
    HP_WARN("punch", NULL, "watching port %d failed: %s", pe->port, uv_strerror(status));
    return;
  }
  for (int i = 0; i < ACCEPT_BATCH && hp__pe_live(pe); i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if ((errno == EMFILE || errno == ENFILE) && accept_exhausted(pe, h, lfd) == 0)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EMFILE && errno != ENFILE)
        HP_WARN("punch", NULL, "accept on port %d failed: %s", pe->port, strerror(errno));
      break;
    }
    inbound(pe, fd, &ss);
  }
  if (hp__pe_live(pe))
    hp__pe_reschedule(pe);
}

/* A socket bound to P: SO_REUSEADDR + SO_REUSEPORT before bind, next to the
 * listener. Returns the fd or -errno. */
int hp__pe_bound_socket(int family, int port) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int one = 1;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    sl = sizeof *s6;
    /* IPv6 only: IPv4 has its own sockets on 0.0.0.0:port. */
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sl = sizeof *sin;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

/* IPv6 (issue 9): the same port on [::], IPv6 only, when the peer offers
 * an IPv6 candidate and this host can listen there (then its IPv6
 * candidates are dialed, else skipped). Only then: an IPv4-only session
 * holds no extra descriptor. */
void hp__pe_listen6(hp__pe *pe, const hp__cands *cands) {
  int want = 0, fd6;

  for (size_t i = 0; i < cands->n && !want; i++)
    want = cands->c[i].addr[0] == '[';
  if (!want || pe->lfd6 >= 0)
    return;
  fd6 = hp__pe_bound_socket(AF_INET6, pe->port);
  if (fd6 >= 0 && listen(fd6, 128) == 0 &&
      uv_poll_init_socket(pe->loop, &pe->listener6, fd6) == 0) {
    pe->lfd6 = fd6;
    pe->listener6.data = pe;
    pe->nhandles++;
    return;
  }
  if (fd6 >= 0)
    close(fd6);
  HP_DEBUG("punch", json_pack("{s:i}", "port", pe->port),
           "cannot listen on [::]:%d: the peer's IPv6 candidates are skipped", pe->port);
}
