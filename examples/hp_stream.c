/*
 * hp_stream.c - libholepunch on the caller's libuv loop with the encrypted
 * channel: meet the peer that knows CODE (`holepunch code` prints one), send
 * one line, half-close, print everything the peer sends until its EOF.
 *
 *   hp_stream RENDEZVOUS_URL CODE [PORT]
 *
 * Built against the shared library. Exit status: the hp_status of the punch
 * (7: the peer did not know the code), 6 if the stream failed, else 0.
 */
#include <holepunch.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct app {
  hp_stream *s;
  int rc;
} app;

static void on_data(hp_stream *s, const unsigned char *p, size_t n, void *data) {
  (void)s, (void)data;
  fwrite(p, 1, n, stdout);
}

static void on_eof(hp_stream *s, void *data) {
  app *a = data;
  /* Both directions are done: ours was shut down right after the handshake,
   * and the peer answered it, so our line and end-of-stream are out. The
   * loop ends when nothing is left. */
  hp_stream_close(s);
  a->s = NULL;
}

static void on_error(hp_stream *s, int err, const char *why, void *data) {
  app *a = data;
  fprintf(stderr, "hp_stream: the channel failed (%d): %s\n", err, why);
  hp_stream_close(s);
  a->s = NULL;
  a->rc = 6;
}

static const hp_stream_cbs cbs = {on_data, on_eof, on_error, NULL};

static void on_done(hp_punch *p, hp_status st, void *data) {
  app *a = data;
  hp_info info;
  char line[160];
  int n;

  hp_punch_info(p, &info);
  if (st != HP_STATUS_OK) {
    fprintf(stderr, "hp_stream: no channel (status %d): %s\n", (int)st, info.reason);
    a->rc = (int)st;
    hp_punch_destroy(p);
    return;
  }
  a->s = hp_punch_take_stream(p);
  n = snprintf(line, sizeof line, "%s (authenticated by the code: %s) says hi\n", info.own_id,
               hp_stream_authenticated(a->s) ? "yes" : "no");
  hp_punch_destroy(p); /* the stream lives on, on this loop */
  hp_stream_set_cbs(a->s, &cbs, a);
  if (hp_stream_write(a->s, line, (size_t)n) != 0 || hp_stream_shutdown(a->s) != 0) {
    hp_stream_close(a->s);
    a->s = NULL;
    a->rc = 6;
  }
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  hp_config cfg;
  hp_punch *p = NULL;
  app a = {NULL, 0};

  signal(SIGPIPE, SIG_IGN); /* a vanished peer is an error, not a signal */
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s RENDEZVOUS_URL CODE [PORT]\n", argv[0]);
    return 2;
  }
  uv_loop_init(&loop);
  hp_config_init(&cfg);
  cfg.rendezvous_url = argv[1];
  cfg.code = argv[2];
  cfg.internal_tcp_port = argc == 4 ? atoi(argv[3]) : 0;
  cfg.ws_recv_timeout = 20;
  cfg.p2p_connect_timeout = 10;
  if (hp_punch_start(&loop, &cfg, on_done, &a, &p) != 0)
    return 2; /* a bad code or URL: the log says which */
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return a.rc;
}
