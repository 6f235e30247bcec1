/*
 * bridge.c - socketpair end <-> hp_bs pump (bridge.h). The local end is a
 * TCP-carrier stream over the AF_UNIX socket (tcp.c works on any stream
 * socket), so both sides are hp_bs and the pump is symmetric.
 */
#include "bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tcp.h"

/* After both EOFs, how often to look whether the queues are empty. */
#define FLUSH_POLL_MS 20
/* And how long at most: a peer that never reads does not hold us forever. */
#define FLUSH_MAX_MS 30000

typedef struct bridge bridge;

typedef struct side {
  bridge *b;
  hp_bs *s;
  int eof; /* this side's reader finished */
} side;

typedef enum br_state { B_RUNNING, B_FLUSHING, B_CLOSED } br_state;

struct bridge {
  side net, local;
  uv_timer_t timer;
  br_state st;
  uint64_t flush_deadline;
};

static side *other(side *x) {
  return x == &x->b->net ? &x->b->local : &x->b->net;
}

static void on_timer_closed(uv_handle_t *h) {
  free(h->data);
}

static void finish(bridge *b) {
  if (b->st == B_CLOSED)
    return;
  b->st = B_CLOSED;
  hp_bs_close(b->net.s);
  hp_bs_close(b->local.s);
  uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}

static void on_flush_tick(uv_timer_t *t) {
  bridge *b = t->data;
  if ((hp_bs_queued(b->net.s) == 0 && hp_bs_queued(b->local.s) == 0) ||
      uv_now(t->loop) >= b->flush_deadline)
    finish(b);
}

static void check_done(bridge *b) {
  if (b->st != B_RUNNING || !b->net.eof || !b->local.eof)
    return;
  b->st = B_FLUSHING;
  b->flush_deadline = uv_now(b->timer.loop) + FLUSH_MAX_MS;
  uv_timer_start(&b->timer, on_flush_tick, 0, FLUSH_POLL_MS);
}

static void on_data(hp_bs *s, const uint8_t *p, size_t n, void *ud) {
  side *x = ud, *y = other(x);
  (void)s;
  if (hp_bs_write(y->s, p, n) < 0) {
    finish(x->b);
    return;
  }
  /* The receiver is slow: stop reading until it drained. */
  if (hp_bs_queued(y->s) > HP_BS_HIGH_WATER)
    hp_bs_pause(x->s, 1);
}

static void on_eof(hp_bs *s, void *ud) {
  side *x = ud;
  (void)s;
  x->eof = 1;
  hp_bs_shutdown(other(x)->s);
  check_done(x->b);
}

static void on_error(hp_bs *s, int err, const char *why, void *ud) {
  side *x = ud;
  (void)s;
  HP_DEBUG("bridge", json_pack("{s:s, s:i}", "side", x == &x->b->net ? "net" : "local", "err", err),
           "bridge ends: %s", why);
  finish(x->b);
}

static void on_drain(hp_bs *s, void *ud) {
  side *y = ud;
  (void)s;
  hp_bs_pause(other(y)->s, 0);
}

static const hp_bs_cbs cbs = {on_data, on_eof, on_error, on_drain};

int hp__bridge_start(uv_loop_t *loop, hp_bs *s, int *user_fd) {
  int sv[2] = {-1, -1}, r;
  bridge *b;
  hp_bs *local = NULL;

  if (!loop || !s || !user_fd) {
    if (s)
      hp_bs_close(s);
    return -EINVAL;
  }
  b = calloc(1, sizeof *b);
  if (!b || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    r = b ? -errno : -ENOMEM;
    free(b);
    hp_bs_close(s);
    return r;
  }
  r = hp__tcp_from_fd(loop, sv[1], &local);
  if (r < 0) {
    close(sv[0]);
    close(sv[1]);
    free(b);
    hp_bs_close(s);
    return r;
  }
  b->net.b = b->local.b = b;
  b->net.s = s;
  b->local.s = local;
  b->st = B_RUNNING;
  uv_timer_init(loop, &b->timer);
  b->timer.data = b;
  hp_bs_set_cbs(s, &cbs, &b->net);
  hp_bs_set_cbs(local, &cbs, &b->local);
  *user_fd = sv[0]; /* blocking, as hp_punch_take_fd always gave */
  return 0;
}
