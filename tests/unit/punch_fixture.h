/*
 * punch_fixture.h - what the punch engine's unit tests share (test_punch.c,
 * test_punch_early.c): a side (one engine and what its callback saw), plain
 * sockets on loopback standing in for peers and strangers, and the bounded
 * loop every test runs in. Header-only, static inline: each test file takes
 * what it uses.
 */
#ifndef HP_TEST_PUNCH_FIXTURE_H
#define HP_TEST_PUNCH_FIXTURE_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "addr.h"
#include "punch.h"

#define SESSION "0123456789abcdef0123456789abcdef"
#define SAFETY_MS 15000

typedef struct side {
  hp__pe *pe;
  int done, ok, fd;
  hp__pe_result res;
  json_t *report;
  char text[1024];   /* the report's text version */
  int nominations;   /* on_nominate calls */
  int done_seen;     /* at the first on_nominate: own done + peer's done */
  int unnominations; /* on_unnominate calls */
  int early_ok;      /* what may_nominate_early answers */
  struct side *peer;
} side;

/* Role a's commitment hook: before the use line is written, so before
 * either engine has finished (the session drops its relay attempt here). */
static inline void on_nominate(void *data) {
  side *s = data;
  if (s->nominations++ == 0)
    s->done_seen = s->done + (s->peer ? s->peer->done : 0);
}

static inline void on_unnominate(void *data) {
  ((side *)data)->unnominations++;
}

static inline int may_nominate_early(void *data) {
  return ((side *)data)->early_ok;
}

static inline void on_done(hp__pe *pe, int ok, void *data) {
  side *s = data;
  s->done++;
  s->ok = ok;
  hp__pe_get_result(pe, &s->res);
  s->report = hp__pe_report(pe, s->text, sizeof s->text);
  s->fd = hp__pe_take_fd(pe);
  assert_int_equal(hp__pe_take_fd(pe), -1); /* ownership moved once */
  hp__pe_destroy(pe);                       /* allowed from the callback */
  s->pe = NULL;
}

static inline void on_safety(uv_timer_t *t) {
  (void)t;
  fail_msg("loop did not finish within %d ms", SAFETY_MS);
}

static inline void params(hp__pe_params *p, char role, const char *own, const char *peer,
                          int peer_port) {
  memset(p, 0, sizeof *p);
  snprintf(p->session, sizeof p->session, "%s", SESSION);
  snprintf(p->own_id, sizeof p->own_id, "%s", own);
  snprintf(p->peer_id, sizeof p->peer_id, "%s", peer);
  p->role = role;
  p->timeout_s = 10;
  p->allow_loopback = 1; /* both engines live on 127.0.0.1 */
  if (peer_port > 0) {
    p->cands.n = 1;
    p->cands.c[0].kind = HP_CAND_HOST;
    snprintf(p->cands.c[0].addr, sizeof p->cands.c[0].addr, "127.0.0.1:%d", peer_port);
  }
}

static inline void loopback(struct sockaddr_in *sin, int port) {
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons((uint16_t)port);
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* A plain blocking client socket to 127.0.0.1:port (the kernel completes
 * the handshake from the backlog even before the engine accepts), from
 * 127.0.0.1:from_port when from_port > 0. */
static inline int dial_from(int from_port, int port) {
  struct sockaddr_in sin;
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  if (from_port > 0) {
    loopback(&sin, from_port);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  }
  loopback(&sin, port);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  return fd;
}

static inline int dial(int port) {
  return dial_from(0, port);
}

/* A plain listening socket on 127.0.0.1 (any port); *port gets the port. */
static inline int plain_listener(int backlog, int *port) {
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  loopback(&sin, 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  assert_int_equal(listen(fd, backlog), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

/* A port nobody uses right now: bound and released. */
static inline int free_port(void) {
  int port, fd = plain_listener(1, &port);
  close(fd);
  return port;
}

static inline json_t *cand_report(side *s, size_t i) {
  return json_array_get(json_object_get(s->report, "candidates"), i);
}

static inline long cand_int(side *s, size_t i, const char *key) {
  return (long)json_integer_value(json_object_get(cand_report(s, i), key));
}

static inline const char *cand_str(side *s, size_t i, const char *key) {
  const char *v = json_string_value(json_object_get(cand_report(s, i), key));
  return v ? v : "(absent)";
}

static inline void send_str(int fd, const char *s) {
  assert_int_equal(send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

/* Read what is there within ms (bounded); returns bytes read, 0 on EOF. */
static inline ssize_t read_some(int fd, char *buf, size_t cap, int ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  ssize_t n;
  if (poll(&pfd, 1, ms) <= 0)
    return -1;
  n = recv(fd, buf, cap - 1, 0);
  if (n >= 0)
    buf[n] = '\0';
  return n;
}

static inline void addr_of(int fd, int peer, char *buf) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  assert_int_equal(peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
                        : getsockname(fd, (struct sockaddr *)&ss, &sl),
                   0);
  assert_true(hp__addr_format((struct sockaddr *)&ss, buf, HP_ADDR_STRLEN) > 0);
}

/* Both fds are the two ends of one connection, and it carries data. */
static inline void assert_same_connection(side *a, side *b) {
  char la[HP_ADDR_STRLEN], pa[HP_ADDR_STRLEN], lb[HP_ADDR_STRLEN], pb[HP_ADDR_STRLEN];
  char buf[64];

  assert_true(a->fd >= 0 && b->fd >= 0);
  addr_of(a->fd, 0, la);
  addr_of(a->fd, 1, pa);
  addr_of(b->fd, 0, lb);
  addr_of(b->fd, 1, pb);
  assert_string_equal(la, pb);
  assert_string_equal(pa, lb);
  assert_string_equal(a->res.local_addr, la);
  assert_string_equal(a->res.peer_addr, pa);
  assert_string_equal(b->res.local_addr, lb);
  assert_string_equal(b->res.peer_addr, pb);
  send_str(a->fd, "ping\n");
  assert_int_equal(read_some(b->fd, buf, sizeof buf, 2000), 5);
  assert_string_equal(buf, "ping\n");
}

/* Every test's loop, with the safety timer that bounds it (SAFETY_MS). */
static inline void start_loop(uv_loop_t *loop, uv_timer_t *safety) {
  assert_int_equal(uv_loop_init(loop), 0);
  uv_timer_init(loop, safety);
  uv_timer_start(safety, on_safety, SAFETY_MS, 0);
}

static inline void finish_loop(uv_loop_t *loop, uv_timer_t *safety) {
  uv_close((uv_handle_t *)safety, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

#endif
