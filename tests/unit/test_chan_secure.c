/* test_chan_secure.c - the secure channel (src/lib/chan/secure.h) over a
 * loopback TCP pair: right code (data both ways, writes held until the peer
 * is authenticated, half-close both ways), no code, wrong code (both sides
 * refuse, not one user byte leaves), a peer with a code against one without,
 * and a hand-made peer (handshake by hand over a raw TCP carrier) that
 * tampers, replays, truncates and reorders records, speaks HTTP, or stays
 * silent; backpressure through the channel (reader paused, -ENOBUFS,
 * on_drain); role b waiting for a's stream header (the relay race). Every case ends with
 * uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "chan/secure.h"
#include "chan/tcp.h"
#include "record.h"

#define SESSION "0123456789abcdef0123456789abcdef"
static const uint8_t psk1[32] = {1}, psk2[32] = {2};

typedef struct end {
  hp_bs *s;
  int ready, ready_status;
  char why[200];
  uint8_t *got;
  size_t ngot, cap;
  int eof, errors, err, drains;
  int shutdown_on_eof;
} end;

static void on_data(hp_bs *s, const uint8_t *p, size_t n, void *ud) {
  end *e = ud;
  (void)s;
  assert_true(n > 0);
  assert_false(e->eof);
  if (e->ngot + n > e->cap) {
    e->cap = (e->ngot + n) * 2;
    e->got = realloc(e->got, e->cap);
    assert_non_null(e->got);
  }
  memcpy(e->got + e->ngot, p, n);
  e->ngot += n;
}

static void on_eof(hp_bs *s, void *ud) {
  end *e = ud;
  e->eof++;
  if (e->shutdown_on_eof)
    assert_int_equal(hp_bs_shutdown(s), 0);
}

static void on_error(hp_bs *s, int err, const char *why, void *ud) {
  end *e = ud;
  (void)s;
  e->errors++;
  e->err = err;
  snprintf(e->why, sizeof e->why, "%s", why);
}

static void on_drain(hp_bs *s, void *ud) {
  end *e = ud;
  assert_true(hp_bs_queued(s) <= HP_BS_LOW_WATER);
  e->drains++;
}

static const hp_bs_cbs cbs = {on_data, on_eof, on_error, on_drain};

static void on_ready(hp_bs *s, int status, const char *why, void *ud) {
  end *e = ud;
  (void)s;
  e->ready++;
  e->ready_status = status;
  snprintf(e->why, sizeof e->why, "%s", why);
}

static void tcp_pair(int fds[2]) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(l >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
  fds[1] = accept(l, NULL, NULL);
  assert_true(fds[1] >= 0);
  close(l);
}

#define RUN_UNTIL(loop, cond)                                                                      \
  do {                                                                                             \
    int turns_ = 0;                                                                                \
    while (!(cond) && turns_++ < 5000)                                                             \
      uv_run((loop), UV_RUN_ONCE);                                                                 \
    assert_true(cond);                                                                             \
  } while (0)

static void start_end(uv_loop_t *loop, int fd, char role, const uint8_t *psk, end *e) {
  hp__hs_params p = {SESSION, role == 'a' ? "alice" : "bob", role == 'a' ? "bob" : "alice", role,
                     psk};
  hp_bs *c;
  assert_int_equal(hp__tcp_from_fd(loop, fd, &c), 0);
  assert_int_equal(hp__secure_start(loop, c, &p, 5000, on_ready, e, &e->s), 0);
  assert_string_equal(e->s->ops->name, "secure");
}

static void open_pair(uv_loop_t *loop, const uint8_t *pa, const uint8_t *pb, end *a, end *b) {
  int fds[2];
  tcp_pair(fds);
  start_end(loop, fds[0], 'a', pa, a);
  start_end(loop, fds[1], 'b', pb, b);
}

static void finish(uv_loop_t *loop, end *a, end *b) {
  if (a && a->s)
    hp_bs_close(a->s);
  if (b && b->s)
    hp_bs_close(b->s);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
  if (a)
    free(a->got);
  if (b)
    free(b->got);
}

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n);
  size_t i;
  assert_non_null(p);
  for (i = 0; i < n; i++)
    p[i] = (uint8_t)((i * 131u + seed) ^ (i >> 9));
  return p;
}

static void test_right_code(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  const size_t n = 3u << 20;
  uint8_t *pa = pattern(n, 1), *pb = pattern(100000, 2);
  size_t off;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, psk1, psk1, &a, &b);
  hp_bs_set_cbs(a.s, &cbs, &a);
  hp_bs_set_cbs(b.s, &cbs, &b);
  b.shutdown_on_eof = 1;
  /* Written and half-closed before the handshake: held, sent after. */
  assert_int_equal(hp_bs_write(a.s, pa, 1000), 0);
  assert_true(hp_bs_queued(a.s) >= 1000); /* + our HELLO in the carrier */
  RUN_UNTIL(&loop, a.ready && b.ready);
  assert_int_equal(a.ready_status, 0);
  assert_int_equal(b.ready_status, 0);
  assert_int_equal(hp__secure_authenticated(a.s), 1);
  for (off = 1000; off < n; off += 200000) {
    size_t k = n - off < 200000 ? n - off : 200000;
    assert_int_equal(hp_bs_write(a.s, pa + off, k), 0);
    RUN_UNTIL(&loop, hp_bs_queued(a.s) <= HP_BS_HIGH_WATER);
  }
  assert_int_equal(hp_bs_write(b.s, pb, 100000), 0);
  assert_int_equal(hp_bs_shutdown(a.s), 0);
  assert_int_equal(hp_bs_write(a.s, pa, 1), -EPIPE);
  RUN_UNTIL(&loop, a.eof && b.eof);
  assert_int_equal(b.ngot, n);
  assert_memory_equal(b.got, pa, n);
  assert_int_equal(a.ngot, 100000);
  assert_memory_equal(a.got, pb, 100000);
  assert_int_equal(a.errors + b.errors, 0);
  finish(&loop, &a, &b);
  free(pa);
  free(pb);
}

/* The punch engine's order (docs/PROTOCOL.md section 5): both HELLOs went
 * out on the raw sockets before the channels exist, and the peer's HELLO
 * already waits in each socket; hp__secure_start_sent continues from the
 * handshake state and sends no second HELLO. A state that is not fresh is
 * refused. */
static void start_sent_end(uv_loop_t *loop, int fd, const uint8_t *hello_to_write, const hp__hs *hs,
                           end *e) {
  hp_bs *c;
  assert_int_equal(write(fd, hello_to_write, HP_HS_MSG_LEN), HP_HS_MSG_LEN);
  assert_int_equal(hp__tcp_from_fd(loop, fd, &c), 0);
  assert_int_equal(hp__secure_start_sent(loop, c, hs, 5000, on_ready, e, &e->s), 0);
}

static void test_hello_sent_before(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  hp__hs ha, hb, done;
  uint8_t hello_a[HP_HS_MSG_LEN], hello_b[HP_HS_MSG_LEN];
  hp__hs_params pa = {SESSION, "alice", "bob", 'a', psk1},
                pb = {SESSION, "bob", "alice", 'b', psk1};
  int fds[2];
  hp_bs *c;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(hp__hs_init(&ha, &pa, hello_a), 0);
  assert_int_equal(hp__hs_init(&hb, &pb, hello_b), 0);
  tcp_pair(fds);
  start_sent_end(&loop, fds[0], hello_a, &ha, &a);
  start_sent_end(&loop, fds[1], hello_b, &hb, &b);
  hp__hs_wipe(&ha);
  hp__hs_wipe(&hb);
  hp_bs_set_cbs(a.s, &cbs, &a);
  hp_bs_set_cbs(b.s, &cbs, &b);
  assert_int_equal(hp_bs_write(a.s, (const uint8_t *)"over", 4), 0);
  RUN_UNTIL(&loop, a.ready && b.ready && b.ngot == 4);
  assert_int_equal(a.ready_status, 0);
  assert_int_equal(b.ready_status, 0);
  assert_int_equal(hp__secure_authenticated(b.s), 1);
  assert_memory_equal(b.got, "over", 4);
  assert_int_equal(a.errors + b.errors, 0);
  /* Only a state fresh from hp__hs_init (HELLO out, nothing fed) is taken. */
  memset(&done, 0, sizeof done);
  done.st = HP_HS_DONE;
  tcp_pair(fds);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[0], &c), 0);
  close(fds[1]);
  {
    hp_bs *s = NULL;
    assert_int_equal(hp__secure_start_sent(&loop, c, &done, 5000, on_ready, &a, &s), -EINVAL);
    assert_null(s);
  }
  finish(&loop, &a, &b);
}

static void test_shutdown_before_ready(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, NULL, NULL, &a, &b);
  hp_bs_set_cbs(b.s, &cbs, &b);
  assert_int_equal(hp_bs_write(a.s, (const uint8_t *)"early", 5), 0);
  assert_int_equal(hp_bs_shutdown(a.s), 0);
  RUN_UNTIL(&loop, b.eof);
  assert_int_equal(a.ready_status, 0);
  assert_int_equal(hp__secure_authenticated(b.s), 0); /* no code: encrypted only */
  assert_int_equal(b.ngot, 5);
  assert_memory_equal(b.got, "early", 5);
  /* a set no callbacks: b's bytes wait for them. */
  assert_int_equal(hp_bs_write(b.s, (const uint8_t *)"late", 4), 0);
  assert_int_equal(hp_bs_shutdown(b.s), 0);
  RUN_UNTIL(&loop, hp_bs_queued(b.s) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  hp_bs_set_cbs(a.s, &cbs, &a);
  RUN_UNTIL(&loop, a.eof);
  assert_int_equal(a.ngot, 4);
  assert_int_equal(a.errors + b.errors, 0);
  finish(&loop, &a, &b);
}

static void test_wrong_code_and_one_sided(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, psk1, psk2, &a, &b);
  hp_bs_set_cbs(a.s, &cbs, &a);
  hp_bs_set_cbs(b.s, &cbs, &b);
  assert_int_equal(hp_bs_write(a.s, (const uint8_t *)"secret", 6), 0);
  assert_int_equal(hp_bs_write(b.s, (const uint8_t *)"secret", 6), 0);
  RUN_UNTIL(&loop, a.ready && b.ready);
  assert_int_equal(a.ready_status, -EACCES);
  assert_int_equal(b.ready_status, -EACCES);
  assert_string_equal(
      a.why, "the peer does not know the code: wrong code, or someone else joined the room");
  assert_string_equal(b.why, a.why);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(a.ngot + b.ngot, 0);
  assert_int_equal(a.errors + b.errors, 0); /* ready() said it; no on_error after */
  assert_int_equal(hp_bs_write(a.s, (const uint8_t *)"x", 1), -EPIPE);
  finish(&loop, &a, &b);

  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, psk1, NULL, &a, &b);
  RUN_UNTIL(&loop, a.ready && b.ready);
  assert_int_equal(a.ready_status, -EACCES);
  assert_int_equal(b.ready_status, -EACCES);
  assert_non_null(strstr(a.why, "does not know the code"));
  finish(&loop, &a, &b);
}

/* ---- a hand-made peer: raw TCP carrier, handshake by hand ---- */

typedef struct raw {
  hp_bs *c;
  uint8_t in[65536];
  size_t nin;
  int eof, errors;
} raw;

static void raw_data(hp_bs *s, const uint8_t *p, size_t n, void *ud) {
  raw *r = ud;
  (void)s;
  assert_true(r->nin + n <= sizeof r->in);
  memcpy(r->in + r->nin, p, n);
  r->nin += n;
}
static void raw_eof(hp_bs *s, void *ud) {
  (void)s;
  ((raw *)ud)->eof = 1;
}
static void raw_error(hp_bs *s, int err, const char *why, void *ud) {
  (void)s, (void)err, (void)why;
  ((raw *)ud)->errors++;
}
static const hp_bs_cbs raw_cbs = {raw_data, raw_eof, raw_error, NULL};

/* a: the channel under test (role a); r: by hand (role b) with psk. Runs the
 * handshake; on return r's tx state is ready and its header sent, and the
 * bytes of a's stream header are consumed. */
static void hand_peer(uv_loop_t *loop, end *a, raw *r, const uint8_t *psk, hp__rec_tx *tx) {
  int fds[2], have;
  hp__hs hs;
  hp__hs_params p = {SESSION, "bob", "alice", 'b', psk};
  uint8_t hello[HP_HS_MSG_LEN], confirm[HP_HS_MSG_LEN], txk[32], rxk[32], hdr[HP_REC_HEADER_LEN];
  size_t used;
  char why[160];

  tcp_pair(fds);
  start_end(loop, fds[0], 'a', psk, a);
  hp_bs_set_cbs(a->s, &cbs, a);
  assert_int_equal(hp__tcp_from_fd(loop, fds[1], &r->c), 0);
  hp_bs_set_cbs(r->c, &raw_cbs, r);
  assert_int_equal(hp__hs_init(&hs, &p, hello), 0);
  assert_int_equal(hp_bs_write(r->c, hello, sizeof hello), 0);
  RUN_UNTIL(loop, r->nin >= HP_HS_MSG_LEN);
  assert_int_equal(hp__hs_feed(&hs, r->in, HP_HS_MSG_LEN, &used, confirm, &have, why, sizeof why),
                   HP_HS_AGAIN);
  assert_int_equal(have, 1);
  assert_int_equal(hp_bs_write(r->c, confirm, sizeof confirm), 0);
  RUN_UNTIL(loop, r->nin >= 2 * HP_HS_MSG_LEN);
  assert_int_equal(hp__hs_feed(&hs, r->in + HP_HS_MSG_LEN, HP_HS_MSG_LEN, &used, confirm, &have,
                               why, sizeof why),
                   HP_HS_DONE_OK);
  RUN_UNTIL(loop, a->ready);
  assert_int_equal(a->ready_status, 0);
  hp__hs_keys(&hs, txk, rxk);
  hp__rec_tx_init(tx, txk, hdr);
  assert_int_equal(hp_bs_write(r->c, hdr, sizeof hdr), 0);
}

static size_t seal(hp__rec_tx *tx, const char *msg, int final, uint8_t *out) {
  int n = hp__rec_seal(tx, (const uint8_t *)msg, strlen(msg), final, out, HP_REC_MAX_WIRE);
  assert_true(n > 0);
  return (size_t)n;
}

static void finish_raw(uv_loop_t *loop, end *a, raw *r) {
  hp_bs_close(r->c);
  finish(loop, a, NULL);
}

static void test_user_bytes_only_after_auth(void **state) {
  uv_loop_t loop;
  end a = {0};
  raw r = {0};
  int fds[2], have;
  hp__hs hs;
  hp__hs_params p = {SESSION, "bob", "alice", 'b', psk2}; /* a wrong code */
  uint8_t hello[HP_HS_MSG_LEN], out[HP_HS_MSG_LEN];
  size_t used;
  char why[160];
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  tcp_pair(fds);
  start_end(&loop, fds[0], 'a', psk1, &a);
  hp_bs_set_cbs(a.s, &cbs, &a);
  assert_int_equal(hp_bs_write(a.s, (const uint8_t *)"user data", 9), 0);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[1], &r.c), 0);
  hp_bs_set_cbs(r.c, &raw_cbs, &r);
  assert_int_equal(hp__hs_init(&hs, &p, hello), 0);
  assert_int_equal(hp_bs_write(r.c, hello, sizeof hello), 0);
  RUN_UNTIL(&loop, r.nin >= HP_HS_MSG_LEN);
  assert_int_equal(hp__hs_feed(&hs, r.in, HP_HS_MSG_LEN, &used, out, &have, why, sizeof why),
                   HP_HS_AGAIN);
  assert_int_equal(hp_bs_write(r.c, out, sizeof out), 0);
  RUN_UNTIL(&loop, a.ready);
  assert_int_equal(a.ready_status, -EACCES);
  /* The stranger got a's HELLO and CONFIRM, and not one byte more. */
  hp_bs_close(a.s);
  a.s = NULL;
  RUN_UNTIL(&loop, r.eof || r.errors);
  assert_int_equal(r.nin, 2 * HP_HS_MSG_LEN);
  finish_raw(&loop, &a, &r);
}

/* Role b's relayed channel (hp__secure_await_peer_header): the handshake
 * done (a's CONFIRM in) is not enough; ready() waits for a's stream header,
 * which a sends only once it has taken the channel (docs/PROTOCOL.md
 * section 9, "One path"). Until then b's user bytes stay held. kase 0: the
 * header comes (in two pieces, a record right behind it); kase 1: a closes
 * instead (it nominated the direct path): ready(<0), nothing user left. */
static void test_await_peer_header(void **state) {
  int kase;
  (void)state;

  for (kase = 0; kase < 2; kase++) {
    uv_loop_t loop;
    end b = {0};
    raw r = {0};
    int fds[2], have, i;
    hp__hs hs;
    hp__hs_params p = {SESSION, "alice", "bob", 'a', psk1};
    hp__rec_tx tx;
    uint8_t hello[HP_HS_MSG_LEN], out[HP_HS_MSG_LEN], txk[32], rxk[32], hdr[HP_REC_HEADER_LEN];
    uint8_t w[HP_REC_MAX_WIRE];
    size_t used, n;
    char why[160];
    const size_t hs_bytes = 2 * HP_HS_MSG_LEN + HP_REC_HEADER_LEN;

    assert_int_equal(uv_loop_init(&loop), 0);
    tcp_pair(fds);
    start_end(&loop, fds[0], 'b', psk1, &b);
    hp__secure_await_peer_header(b.s);
    hp_bs_set_cbs(b.s, &cbs, &b);
    assert_int_equal(hp_bs_write(b.s, (const uint8_t *)"user data", 9), 0);
    assert_int_equal(hp__tcp_from_fd(&loop, fds[1], &r.c), 0);
    hp_bs_set_cbs(r.c, &raw_cbs, &r);
    assert_int_equal(hp__hs_init(&hs, &p, hello), 0);
    assert_int_equal(hp_bs_write(r.c, hello, sizeof hello), 0);
    RUN_UNTIL(&loop, r.nin >= HP_HS_MSG_LEN);
    assert_int_equal(hp__hs_feed(&hs, r.in, HP_HS_MSG_LEN, &used, out, &have, why, sizeof why),
                     HP_HS_AGAIN);
    assert_int_equal(have, 1);
    assert_int_equal(hp_bs_write(r.c, out, sizeof out), 0); /* a's CONFIRM */
    /* b's CONFIRM and its stream header come; b is not ready. */
    RUN_UNTIL(&loop, r.nin >= hs_bytes);
    assert_int_equal(
        hp__hs_feed(&hs, r.in + HP_HS_MSG_LEN, HP_HS_MSG_LEN, &used, out, &have, why, sizeof why),
        HP_HS_DONE_OK);
    for (i = 0; i < 5; i++) {
      usleep(10000);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(b.ready, 0);
    assert_int_equal(hp__secure_awaiting_peer_header(b.s), 1);
    assert_int_equal(r.nin, hs_bytes);
    if (kase == 1) {
      hp_bs_close(r.c);
      r.c = NULL;
      RUN_UNTIL(&loop, b.ready);
      assert_true(b.ready_status < 0);
      assert_int_equal(b.ngot, 0);
      hp_bs_close(b.s);
      b.s = NULL;
      finish(&loop, &b, NULL);
      continue;
    }
    hp__hs_keys(&hs, txk, rxk);
    hp__rec_tx_init(&tx, txk, hdr);
    /* Part of the header: still not ready. */
    assert_int_equal(hp_bs_write(r.c, hdr, 10), 0);
    for (i = 0; i < 5; i++) {
      usleep(10000);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(b.ready, 0);
    memcpy(w, hdr + 10, sizeof hdr - 10);
    n = sizeof hdr - 10;
    n += seal(&tx, "first", 0, w + n);
    assert_int_equal(hp_bs_write(r.c, w, n), 0);
    RUN_UNTIL(&loop, b.ready);
    assert_int_equal(b.ready_status, 0);
    assert_int_equal(hp__secure_awaiting_peer_header(b.s), 0);
    RUN_UNTIL(&loop, b.ngot == 5);
    assert_memory_equal(b.got, "first", 5);
    /* b's held write leaves only now: one record of 9 bytes. */
    RUN_UNTIL(&loop, r.nin >= hs_bytes + 9 + HP_REC_OVERHEAD);
    assert_int_equal(r.nin, hs_bytes + 9 + HP_REC_OVERHEAD);
    hp__rec_tx_wipe(&tx);
    hp__hs_wipe(&hs);
    finish_raw(&loop, &b, &r);
  }
}

static void test_tamper_replay_reorder_truncate(void **state) {
  static uint8_t w1[HP_REC_MAX_WIRE], w2[HP_REC_MAX_WIRE];
  int kase;
  (void)state;

  for (kase = 0; kase < 5; kase++) {
    uv_loop_t loop;
    end a = {0};
    raw r = {0};
    hp__rec_tx tx;
    size_t n1, n2;

    assert_int_equal(uv_loop_init(&loop), 0);
    hand_peer(&loop, &a, &r, kase == 4 ? NULL : psk1, &tx);
    n1 = seal(&tx, "first", 0, w1);
    n2 = seal(&tx, "second", 0, w2);
    switch (kase) {
    case 0: /* tampered: one bit of the second record */
      w2[n2 - 3] ^= 4;
      assert_int_equal(hp_bs_write(r.c, w1, n1), 0);
      assert_int_equal(hp_bs_write(r.c, w2, n2), 0);
      break;
    case 1: /* replayed: the first record twice */
      assert_int_equal(hp_bs_write(r.c, w1, n1), 0);
      assert_int_equal(hp_bs_write(r.c, w1, n1), 0);
      break;
    case 2: /* reordered */
      assert_int_equal(hp_bs_write(r.c, w2, n2), 0);
      assert_int_equal(hp_bs_write(r.c, w1, n1), 0);
      break;
    case 3: /* truncated: two records, then EOF without FINAL */
    case 4: /* the same without a code */
      assert_int_equal(hp_bs_write(r.c, w1, n1), 0);
      assert_int_equal(hp_bs_write(r.c, w2, n2), 0);
      assert_int_equal(hp_bs_shutdown(r.c), 0);
      break;
    }
    RUN_UNTIL(&loop, a.errors);
    assert_int_equal(a.errors, 1);
    assert_int_equal(a.eof, 0);
    if (kase == 2) {
      assert_int_equal(a.ngot, 0);
      assert_int_equal(a.err, -EBADMSG);
    } else if (kase >= 3) {
      assert_int_equal(a.ngot, 11);
      assert_memory_equal(a.got, "firstsecond", 11);
      assert_int_equal(a.err, -EPIPE);
      assert_non_null(strstr(a.why, "truncated"));
    } else {
      /* Only the authentic first record was delivered. */
      assert_int_equal(a.ngot, 5);
      assert_memory_equal(a.got, "first", 5);
      assert_int_equal(a.err, -EBADMSG);
    }
    finish_raw(&loop, &a, &r);
  }
}

static void test_final_then_garbage(void **state) {
  static uint8_t w1[HP_REC_MAX_WIRE];
  uv_loop_t loop;
  end a = {0};
  raw r = {0};
  hp__rec_tx tx;
  size_t n1;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  hand_peer(&loop, &a, &r, psk1, &tx);
  n1 = seal(&tx, "bye", 1, w1);
  assert_int_equal(hp_bs_write(r.c, w1, n1), 0);
  assert_int_equal(hp_bs_write(r.c, (const uint8_t *)"junk", 4), 0);
  RUN_UNTIL(&loop, a.errors);
  assert_int_equal(a.eof, 1);
  assert_int_equal(a.ngot, 3);
  assert_int_equal(a.err, -EPROTO);
  finish_raw(&loop, &a, &r);
}

static void test_stranger_and_silence(void **state) {
  uv_loop_t loop;
  end a = {0};
  raw r = {0};
  int fds[2];
  hp__hs_params p = {SESSION, "alice", "bob", 'a', psk1};
  hp_bs *c;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  tcp_pair(fds);
  start_end(&loop, fds[0], 'a', psk1, &a);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[1], &r.c), 0);
  hp_bs_set_cbs(r.c, &raw_cbs, &r);
  assert_int_equal(hp_bs_write(r.c, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), 0);
  RUN_UNTIL(&loop, a.ready);
  assert_int_equal(a.ready_status, -EPROTO);
  finish_raw(&loop, &a, &r);

  memset(&a, 0, sizeof a);
  memset(&r, 0, sizeof r);
  assert_int_equal(uv_loop_init(&loop), 0);
  tcp_pair(fds);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[0], &c), 0);
  assert_int_equal(hp__secure_start(&loop, c, &p, 50, on_ready, &a, &a.s), 0);
  assert_int_equal(hp__tcp_from_fd(&loop, fds[1], &r.c), 0);
  hp_bs_set_cbs(r.c, &raw_cbs, &r);
  RUN_UNTIL(&loop, a.ready);
  assert_int_equal(a.ready_status, -ETIMEDOUT);
  /* The peer closing before the handshake is an error too. */
  finish_raw(&loop, &a, &r);
}

static void test_backpressure(void **state) {
  uv_loop_t loop;
  end a = {0}, b = {0};
  const size_t chunk = 64u * 1024u;
  uint8_t *p = pattern(chunk, 5);
  size_t total = 0, i;
  int r, turns = 0, drains;
  (void)state;

  assert_int_equal(uv_loop_init(&loop), 0);
  open_pair(&loop, psk1, psk1, &a, &b);
  hp_bs_set_cbs(a.s, &cbs, &a);
  hp_bs_set_cbs(b.s, &cbs, &b);
  RUN_UNTIL(&loop, a.ready && b.ready);
  hp_bs_pause(b.s, 1);
  for (;;) {
    r = hp_bs_write(a.s, p, chunk);
    if (r < 0)
      break;
    total += chunk;
    if (turns++ % 4 == 0)
      uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(total < 256u * 1024u * 1024u);
  }
  assert_int_equal(r, -ENOBUFS);
  assert_true(hp_bs_queued(a.s) > HP_BS_HIGH_WATER);
  assert_true(hp_bs_queued(a.s) <= HP_BS_HARD_CAP);
  /* At most the bytes of one carrier read wait behind the pause. */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(b.ngot < total);
  /* The writer may have seen a drain while the kernel buffers filled; one
   * more comes once the paused reader resumes. */
  drains = a.drains;
  hp_bs_pause(b.s, 0);
  RUN_UNTIL(&loop, b.ngot == total);
  RUN_UNTIL(&loop, a.drains == drains + 1);
  for (i = 0; i < total; i += chunk)
    assert_memory_equal(b.got + i, p, chunk);
  assert_int_equal(a.errors + b.errors, 0);
  finish(&loop, &a, &b);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_right_code),
      cmocka_unit_test(test_hello_sent_before),
      cmocka_unit_test(test_shutdown_before_ready),
      cmocka_unit_test(test_wrong_code_and_one_sided),
      cmocka_unit_test(test_user_bytes_only_after_auth),
      cmocka_unit_test(test_await_peer_header),
      cmocka_unit_test(test_tamper_replay_reorder_truncate),
      cmocka_unit_test(test_final_then_garbage),
      cmocka_unit_test(test_stranger_and_silence),
      cmocka_unit_test(test_backpressure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
