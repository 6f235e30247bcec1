/*
 * relay_peer.c - bench_relay_peer: the two ends of a copy for bench/relay.sh,
 * through the rendezvous' relay or through a plain TCP copy in the middle,
 * both on libuv so that the figures compare the middles, not the ends.
 *
 *   bench_relay_peer relay HOST PORT SESSION ID PEER_ID BYTES
 *       join the relay (src/lib/chan/relay.c), send BYTES and read BYTES
 *       (both at once, the writer keeping HP_BS_HIGH_WATER), half-close;
 *   bench_relay_peer tcp-peer HOST PORT BYTES
 *       the same over a plain TCP connection to a tcp-proxy;
 *   bench_relay_peer tcp-proxy PORT
 *       accept two connections and copy each one's bytes to the other (read,
 *       write, stop reading while the other's write queue is above 256 KiB),
 *       until both have closed; then exit.
 * A peer prints "sent=N got=N seconds=S" and exits 0 when both directions
 * are complete. Every mode ends by itself within 600 s.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "chan/relay.h"
#include "url.h"

#define BOUND_MS 600000
#define BLOCK 65536
#define PROXY_HIGH (256u * 1024u)

static uv_loop_t *loop;
static uint64_t total, sent, got, t0;
static int shut, eof_seen;
static hp_bs *bs;
static uint8_t block[BLOCK];

static void on_bound(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "bench_relay_peer: no end within %d s\n", BOUND_MS / 1000);
  exit(1);
}

static void report_if_done(void) {
  if (shut && eof_seen && got == total) {
    printf("sent=%llu got=%llu seconds=%.3f\n", (unsigned long long)sent, (unsigned long long)got,
           (double)(uv_hrtime() - t0) / 1e9);
    fflush(stdout);
    exit(0);
  }
}

/* ---- relay mode ---- */

static void pump(void) {
  while (sent < total && hp_bs_queued(bs) <= HP_BS_HIGH_WATER) {
    size_t k = total - sent < BLOCK ? (size_t)(total - sent) : BLOCK;
    if (hp_bs_write(bs, block, k) < 0) {
      fprintf(stderr, "bench_relay_peer: write failed\n");
      exit(1);
    }
    sent += k;
  }
  if (sent == total && !shut) {
    shut = 1;
    hp_bs_shutdown(bs);
  }
  report_if_done();
}

static void r_data(hp_bs *s, const uint8_t *p, size_t n, void *ud) {
  (void)s, (void)p, (void)ud;
  got += n;
}

static void r_eof(hp_bs *s, void *ud) {
  (void)s, (void)ud;
  eof_seen = 1;
  report_if_done();
}

static void r_error(hp_bs *s, int err, const char *why, void *ud) {
  (void)s, (void)ud;
  fprintf(stderr, "bench_relay_peer: %s (%d)\n", why, err);
  exit(1);
}

static void r_drain(hp_bs *s, void *ud) {
  (void)s, (void)ud;
  pump();
}

static const hp_bs_cbs rcbs = {r_data, r_eof, r_error, r_drain};

static void r_ready(hp_bs *s, int err, const char *why, void *arg) {
  (void)arg;
  if (err) {
    fprintf(stderr, "bench_relay_peer: %s\n", why);
    exit(1);
  }
  t0 = uv_hrtime();
  hp_bs_set_cbs(s, &rcbs, NULL);
  pump();
}

static int relay_mode(char **argv) {
  hp__url url;
  hp__relay_opts o;
  char err[256];

  memset(&url, 0, sizeof(url));
  snprintf(url.host, sizeof(url.host), "%s", argv[2]);
  url.port = atoi(argv[3]);
  memset(&o, 0, sizeof(o));
  o.url = &url;
  o.session = argv[4];
  o.id = argv[5];
  o.peer_id = argv[6];
  total = strtoull(argv[7], NULL, 10);
  if (hp__relay_open(loop, &o, r_ready, NULL, &bs, err, sizeof(err)) < 0) {
    fprintf(stderr, "bench_relay_peer: %s\n", err);
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- tcp-peer mode ---- */

static uv_tcp_t tcp;
static size_t tq; /* bytes in flight in uv_write requests */

static void t_pump(void);

static void t_written(uv_write_t *w, int status) {
  tq -= ((uv_buf_t *)(w + 1))->len;
  free(w);
  if (status < 0) {
    fprintf(stderr, "bench_relay_peer: write: %s\n", uv_strerror(status));
    exit(1);
  }
  t_pump();
}

static void t_shut(uv_shutdown_t *r, int status) {
  (void)status;
  free(r);
}

static void t_pump(void) {
  while (sent < total && tq <= PROXY_HIGH) {
    size_t k = total - sent < BLOCK ? (size_t)(total - sent) : BLOCK;
    uv_write_t *w = malloc(sizeof(*w) + sizeof(uv_buf_t));
    uv_buf_t *b = (uv_buf_t *)(w + 1);
    *b = uv_buf_init((char *)block, (unsigned)k);
    uv_write(w, (uv_stream_t *)&tcp, b, 1, t_written);
    tq += k;
    sent += k;
  }
  if (sent == total && !tq && !shut) {
    uv_shutdown_t *r = malloc(sizeof(*r));
    shut = 1;
    uv_shutdown(r, (uv_stream_t *)&tcp, t_shut);
  }
  report_if_done();
}

static void t_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[BLOCK];
  (void)h, (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

static void t_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)s, (void)b;
  if (n > 0) {
    got += (uint64_t)n;
    return;
  }
  if (n == UV_EOF) {
    eof_seen = 1;
    report_if_done();
    return;
  }
  if (n < 0) {
    fprintf(stderr, "bench_relay_peer: read: %s\n", uv_strerror((int)n));
    exit(1);
  }
}

static void t_connected(uv_connect_t *c, int status) {
  if (status < 0) {
    fprintf(stderr, "bench_relay_peer: connect: %s\n", uv_strerror(status));
    exit(1);
  }
  free(c);
  t0 = uv_hrtime();
  uv_read_start((uv_stream_t *)&tcp, t_alloc, t_read);
  t_pump();
}

static int tcp_peer_mode(char **argv) {
  struct sockaddr_in sa;
  uv_connect_t *c = malloc(sizeof(*c));

  total = strtoull(argv[4], NULL, 10);
  uv_ip4_addr(argv[2], atoi(argv[3]), &sa);
  uv_tcp_init(loop, &tcp);
  uv_tcp_connect(c, &tcp, (const struct sockaddr *)&sa, t_connected);
  return uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- tcp-proxy mode ---- */

typedef struct pend {
  uv_tcp_t h;
  struct pend *other;
  size_t queued;
  int eof, reading;
} pend;

static uv_tcp_t server;
static pend ends[2];
static int naccepted, nclosed;

typedef struct pw {
  uv_write_t w;
  pend *to;
  size_t len;
  char data[];
} pw;

static void p_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[BLOCK];
  (void)h, (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

static void p_closed(uv_handle_t *h) {
  uv_rusage_t ru;
  (void)h;
  if (++nclosed < 2)
    return;
  uv_close((uv_handle_t *)&server, NULL);
  /* The script cannot read our /proc entry after we are gone: say it. */
  if (uv_getrusage(&ru) == 0)
    printf("cpu_seconds=%.3f\n", (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                                     (double)ru.ru_stime.tv_sec +
                                     (double)ru.ru_stime.tv_usec / 1e6);
  fflush(stdout);
}

static void p_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void p_written(uv_write_t *w, int status) {
  pw *x = (pw *)w;
  pend *to = x->to;

  to->queued -= x->len;
  free(x);
  (void)status;
  /* The source of to's bytes may read again. */
  if (to->queued <= PROXY_HIGH && !to->other->reading && !to->other->eof) {
    to->other->reading = 1;
    uv_read_start((uv_stream_t *)&to->other->h, p_alloc, p_read);
  }
}

static void p_shut(uv_shutdown_t *r, int status) {
  pend *e = r->data;
  (void)status;
  free(r);
  if (e->eof && e->other->eof)
    for (int i = 0; i < 2; i++)
      if (!uv_is_closing((uv_handle_t *)&ends[i].h))
        uv_close((uv_handle_t *)&ends[i].h, p_closed);
}

static void p_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  pend *e = (pend *)(void *)s;
  pend *to = e->other;

  if (n > 0) {
    pw *x = malloc(sizeof(*x) + (size_t)n);
    uv_buf_t wb;
    memcpy(x->data, b->base, (size_t)n);
    x->to = to;
    x->len = (size_t)n;
    wb = uv_buf_init(x->data, (unsigned)n);
    uv_write(&x->w, (uv_stream_t *)&to->h, &wb, 1, p_written);
    to->queued += (size_t)n;
    if (to->queued > PROXY_HIGH) {
      e->reading = 0;
      uv_read_stop(s);
    }
    return;
  }
  if (n < 0) {
    uv_shutdown_t *r = malloc(sizeof(*r));
    e->eof = 1;
    e->reading = 0;
    uv_read_stop(s);
    r->data = e;
    uv_shutdown(r, (uv_stream_t *)&to->h, p_shut);
  }
}

static void p_conn(uv_stream_t *srv, int status) {
  pend *e;

  if (status < 0 || naccepted == 2)
    return;
  e = &ends[naccepted++];
  uv_tcp_init(loop, &e->h);
  if (uv_accept(srv, (uv_stream_t *)&e->h) < 0)
    exit(1);
  if (naccepted == 2) {
    ends[0].other = &ends[1];
    ends[1].other = &ends[0];
    for (int i = 0; i < 2; i++) {
      ends[i].reading = 1;
      uv_read_start((uv_stream_t *)&ends[i].h, p_alloc, p_read);
    }
  }
}

static int tcp_proxy_mode(char **argv) {
  struct sockaddr_in sa;

  uv_ip4_addr("127.0.0.1", atoi(argv[2]), &sa);
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0) < 0 ||
      uv_listen((uv_stream_t *)&server, 8, p_conn) < 0) {
    fprintf(stderr, "bench_relay_peer: cannot listen on port %s\n", argv[2]);
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
  uv_timer_t bound;

  loop = uv_default_loop();
  uv_timer_init(loop, &bound);
  uv_timer_start(&bound, on_bound, BOUND_MS, 0);
  uv_unref((uv_handle_t *)&bound);
  memset(block, 0x5a, sizeof(block));
  if (argc == 8 && !strcmp(argv[1], "relay"))
    return relay_mode(argv);
  if (argc == 5 && !strcmp(argv[1], "tcp-peer"))
    return tcp_peer_mode(argv);
  if (argc == 3 && !strcmp(argv[1], "tcp-proxy"))
    return tcp_proxy_mode(argv);
  fprintf(stderr, "usage: bench_relay_peer relay HOST PORT SESSION ID PEER_ID BYTES\n"
                  "       bench_relay_peer tcp-peer HOST PORT BYTES\n"
                  "       bench_relay_peer tcp-proxy PORT\n");
  return 2;
}
