/*
 * test_chan_relay.c - the relay carrier (src/lib/chan/relay.c) against the
 * real relay of the rendezvous (src/rendezvous/relay.c), both on one libuv
 * loop on 127.0.0.1 (the pairing is registered directly, as signaling does
 * when it sends peer):
 *   - two carriers join and get ready; 6 MiB each way at once, the writer
 *     keeping HP_BS_HIGH_WATER (on_drain) and the reader pausing now and
 *     then; half-close (shutdown -> on_eof) both ways; same checksums;
 *   - a refused join (unknown session, wrong peer) fails the attempt with
 *     the service's code in the sentence;
 *   - closing one side ends the other with on_eof;
 *   - abandoning an attempt (close before ready) calls nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chan/relay.h"
#include "log.h"
#include "rdv.h"
#include "url.h"

#define SESS "00112233445566778899aabbccddeeff"
#define TOTAL (6u * 1024u * 1024u)

typedef struct side {
  struct fx *f;
  const char *id, *peer;
  hp_bs *bs;
  int ready_err;
  char why[400];
  int readied;
  size_t sent, got;
  uint32_t sum_sent, sum_got; /* FNV-1a of the bytes */
  int eof, error, drains, pauses;
  int shut;
} side;

typedef struct fx {
  uv_loop_t loop;
  hp__rdv *srv;
  hp__url url;
  uv_timer_t guard;
  side a, b;
  int done;
} fx;

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static void on_guard(uv_timer_t *t) {
  (void)t;
  fail_msg("the test did not finish within its bound");
}

static void start_server(fx *f, int rate) {
  hp__rdv_opts o;

  memset(&o, 0, sizeof(o));
  o.bind = "127.0.0.1";
  o.port = 0;
  o.max_connections = 100;
  o.max_connections_per_ip = 100;
  o.max_hellos_per_minute = 100;
  o.max_message_bytes = 65536;
  o.input_budget = 1 << 24;
  o.hello_timeout = 5;
  o.http_timeout = 5;
  o.request_line_timeout = 3;
  o.ping_interval = 30;
  o.idle_timeout = 90;
  o.relay = 1;
  o.relay_rate = (uint64_t)rate;
  o.relay_max_sessions = 10;
  o.relay_idle_timeout = 30;
  o.relay_session_ttl = 30;
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(hp__rdv_create(&f->loop, &o, &f->srv), 0);
  memset(&f->url, 0, sizeof(f->url));
  snprintf(f->url.host, sizeof(f->url.host), "127.0.0.1");
  f->url.port = hp__rdv_port(f->srv);
  uv_timer_init(&f->loop, &f->guard);
  uv_timer_start(&f->guard, on_guard, 60000, 0);
  uv_unref((uv_handle_t *)&f->guard);
}

static void stop_done(void *arg) {
  (void)arg;
}

static void stop_server(fx *f) {
  hp__rdv_shutdown(f->srv, 1, stop_done, NULL);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(hp__rdv_destroy(f->srv), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* ---- the copy ---- */

static void pump(side *s);

static void on_data(hp_bs *bs, const uint8_t *p, size_t n, void *ud) {
  side *s = ud;

  (void)bs;
  s->got += n;
  s->sum_got = fnv(s->sum_got, p, n);
  /* Pause now and then; resume from a zero timer would need a handle: the
   * writer's drain resumes us instead (both sides pump from callbacks). */
  if ((s->got / 65536) % 7 == 3 && !s->pauses++) {
    hp_bs_pause(s->bs, 1);
    hp_bs_pause(s->bs, 0);
  }
}

static void maybe_finish(fx *f) {
  if (f->a.eof && f->b.eof && f->a.shut && f->b.shut && !f->done) {
    f->done = 1;
    hp_bs_close(f->a.bs);
    hp_bs_close(f->b.bs);
    uv_stop(&f->loop);
  }
}

static void on_eof(hp_bs *bs, void *ud) {
  side *s = ud;

  (void)bs;
  s->eof = 1;
  maybe_finish(s->f);
}

static void on_error(hp_bs *bs, int err, const char *why, void *ud) {
  side *s = ud;

  (void)bs;
  s->error = err;
  snprintf(s->why, sizeof(s->why), "%s", why);
  fail_msg("%s: on_error %d: %s", s->id, err, why);
}

static void on_drain(hp_bs *bs, void *ud) {
  side *s = ud;

  (void)bs;
  s->drains++;
  pump(s);
}

static const hp_bs_cbs copy_cbs = {on_data, on_eof, on_error, on_drain};

static void pump(side *s) {
  static uint8_t block[65536];

  while (s->sent < TOTAL && hp_bs_queued(s->bs) <= HP_BS_HIGH_WATER) {
    size_t k = TOTAL - s->sent < sizeof(block) ? TOTAL - s->sent : sizeof(block);
    for (size_t i = 0; i < k; i++)
      block[i] = (uint8_t)((s->sent + i) * 131 + (s->id[0] == 'a' ? 7 : 11));
    assert_int_equal(hp_bs_write(s->bs, block, k), 0);
    s->sum_sent = fnv(s->sum_sent, block, k);
    s->sent += k;
  }
  if (s->sent == TOTAL && !s->shut) {
    s->shut = 1;
    assert_int_equal(hp_bs_shutdown(s->bs), 0);
    assert_int_equal(hp_bs_write(s->bs, (const uint8_t *)"x", 1), -EPIPE);
    maybe_finish(s->f);
  }
}

static void on_ready(hp_bs *bs, int err, const char *why, void *arg) {
  side *s = arg;

  s->readied = 1;
  s->ready_err = err;
  if (why)
    snprintf(s->why, sizeof(s->why), "%s", why);
  if (err) {
    s->bs = NULL;
    uv_stop(&s->f->loop);
    return;
  }
  assert_ptr_equal(bs, s->bs);
  hp_bs_set_cbs(bs, &copy_cbs, s);
  pump(s);
}

static void open_side(fx *f, side *s, const char *id, const char *peer, const char *session) {
  hp__relay_opts o;
  char err[256];

  s->f = f;
  s->id = id;
  s->peer = peer;
  s->sum_sent = s->sum_got = 2166136261u;
  memset(&o, 0, sizeof(o));
  o.url = &f->url;
  o.session = session;
  o.id = id;
  o.peer_id = peer;
  o.open_timeout_ms = 10000;
  assert_int_equal(hp__relay_open(&f->loop, &o, on_ready, s, &s->bs, err, sizeof(err)), 0);
}

static void test_copy_both_ways(void **state) {
  fx *f = calloc(1, sizeof(*f));

  (void)state;
  start_server(f, 0);
  hp__rdv_relay_register(f->srv, SESS, "alice", "bob");
  open_side(f, &f->a, "alice", "bob", SESS);
  open_side(f, &f->b, "bob", "alice", SESS);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_true(f->done);
  assert_int_equal(f->a.ready_err, 0);
  assert_int_equal(f->b.ready_err, 0);
  assert_int_equal(f->a.got, TOTAL);
  assert_int_equal(f->b.got, TOTAL);
  assert_int_equal(f->a.sum_got, f->b.sum_sent);
  assert_int_equal(f->b.sum_got, f->a.sum_sent);
  assert_true(f->a.drains + f->b.drains > 0); /* the writers did wait */
  stop_server(f);
  free(f);
}

/* ---- refusals ---- */

static void test_refused(void **state) {
  fx *f = calloc(1, sizeof(*f));

  (void)state;
  start_server(f, 0);
  open_side(f, &f->a, "alice", "bob", SESS); /* never registered */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_true(f->a.readied);
  assert_int_equal(f->a.ready_err, -ECONNREFUSED);
  assert_non_null(strstr(f->a.why, "unknown_session"));
  assert_non_null(strstr(f->a.why, "/relay"));
  stop_server(f);
  free(f);
}

static void test_wrong_peer(void **state) {
  fx *f = calloc(1, sizeof(*f));

  (void)state;
  start_server(f, 0);
  hp__rdv_relay_register(f->srv, SESS, "alice", "bob");
  /* alice expects carol: bob's ready is not hers. */
  open_side(f, &f->a, "alice", "carol", SESS);
  open_side(f, &f->b, "bob", "alice", SESS);
  while (!f->a.readied)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->a.ready_err, -EPROTO);
  assert_non_null(strstr(f->a.why, "carol"));
  if (f->b.bs)
    hp_bs_close(f->b.bs);
  stop_server(f);
  free(f);
}

/* ---- one side closes ---- */

static void close_eof(hp_bs *bs, void *ud) {
  side *s = ud;
  (void)bs;
  s->eof = 1;
  uv_stop(&s->f->loop);
}

static void close_error(hp_bs *bs, int err, const char *why, void *ud) {
  side *s = ud;
  (void)bs;
  s->error = err;
  snprintf(s->why, sizeof(s->why), "%s", why);
  uv_stop(&s->f->loop);
}

static const hp_bs_cbs close_cbs = {NULL, close_eof, close_error, NULL};

static void ready_close(hp_bs *bs, int err, const char *why, void *arg) {
  side *s = arg;

  (void)why;
  s->readied = 1;
  s->ready_err = err;
  if (!err)
    hp_bs_set_cbs(bs, &close_cbs, s);
}

static void test_peer_close(void **state) {
  fx *f = calloc(1, sizeof(*f));
  hp__relay_opts o;
  char err[256];

  (void)state;
  start_server(f, 0);
  hp__rdv_relay_register(f->srv, SESS, "alice", "bob");
  memset(&o, 0, sizeof(o));
  o.url = &f->url;
  o.session = SESS;
  f->a.f = f->b.f = f;
  o.id = "alice";
  o.peer_id = "bob";
  assert_int_equal(hp__relay_open(&f->loop, &o, ready_close, &f->a, &f->a.bs, err, sizeof(err)), 0);
  o.id = "bob";
  o.peer_id = "alice";
  assert_int_equal(hp__relay_open(&f->loop, &o, ready_close, &f->b, &f->b.bs, err, sizeof(err)), 0);
  while (!f->a.readied || !f->b.readied)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->a.ready_err, 0);
  assert_int_equal(f->b.ready_err, 0);
  hp_bs_close(f->a.bs); /* a polite close: b sees the end of the stream */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(f->b.eof, 1);
  assert_int_equal(f->b.error, 0);
  assert_int_equal(f->a.eof, 0); /* no callback after close */
  hp_bs_close(f->b.bs);
  stop_server(f);
  free(f);
}

static void never_ready(hp_bs *bs, int err, const char *why, void *arg) {
  (void)bs, (void)err, (void)why, (void)arg;
  fail_msg("ready after the attempt was abandoned");
}

static void test_abandon(void **state) {
  fx *f = calloc(1, sizeof(*f));
  hp__relay_opts o;
  char err[256];
  hp_bs *bs;

  (void)state;
  start_server(f, 0);
  hp__rdv_relay_register(f->srv, SESS, "alice", "bob");
  memset(&o, 0, sizeof(o));
  o.url = &f->url;
  o.session = SESS;
  o.id = "alice";
  o.peer_id = "bob";
  assert_int_equal(hp__relay_open(&f->loop, &o, never_ready, NULL, &bs, err, sizeof(err)), 0);
  for (int i = 0; i < 20; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT); /* connected and joined, waiting for bob */
  hp_bs_close(bs);
  o.session = "nothex";
  assert_int_equal(hp__relay_open(&f->loop, &o, never_ready, NULL, &bs, err, sizeof(err)), -EINVAL);
  stop_server(f);
  free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_copy_both_ways), cmocka_unit_test(test_refused),
      cmocka_unit_test(test_wrong_peer),     cmocka_unit_test(test_peer_close),
      cmocka_unit_test(test_abandon),
  };
  hp__log_setup(HP_LOG_ERROR, HP_LOG_TEXT);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
