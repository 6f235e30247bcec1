/*
 * hp_app_loop.c - the app layer (src/lib/app/: pipe, forward, expose)
 * without punching: the two ends meet over one loopback TCP connection
 * (the TCP carrier, src/lib/chan/tcp.c), for tests and benchmarks.
 *
 *   hp_app_loop listen PORT  pipe
 *   hp_app_loop connect PORT pipe
 *   hp_app_loop listen PORT  forward [BIND:]LPORT
 *   hp_app_loop connect PORT expose HOST:TPORT
 *
 * The channel is 127.0.0.1:PORT (listen waits at most 10 s for the other
 * end, connect retries for 10 s). Exit codes as the CLI's subcommands: 0
 * done, 2 usage, 6 the channel or the app failed, 130/143 on a signal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/pipe.h"
#include "app/tunnel.h"
#include "chan/tcp.h"

typedef struct ctx {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  hp__pipe *pipe;
  hp__tunnel *tunnel;
  int code;
} ctx;

static int usage(void) {
  fprintf(stderr, "usage: hp_app_loop listen|connect PORT pipe|forward [BIND:]PORT|expose "
                  "HOST:PORT\n");
  return 2;
}

static int channel_fd(int listen_side, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int fd, one = 1;

  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listen_side) {
    struct pollfd pf;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0)
      return -1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0) {
      close(ls);
      return -1;
    }
    pf.fd = ls;
    pf.events = POLLIN;
    fd = poll(&pf, 1, 10000) == 1 ? accept(ls, NULL, NULL) : -1;
    close(ls);
    return fd;
  }
  for (int i = 0; i < 200; i++) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
      return fd;
    close(fd);
    usleep(50000);
  }
  return -1;
}

static void close_signals(ctx *c) {
  if (!uv_is_closing((uv_handle_t *)&c->sigint)) {
    uv_close((uv_handle_t *)&c->sigint, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
  }
}

static void on_pipe_done(int status, const char *why, uint64_t sent, uint64_t received, void *ud) {
  ctx *c = ud;

  fprintf(stderr, "hp_app_loop: pipe %s%s%s: sent %llu, received %llu\n",
          status == 0 ? "done" : "failed", *why ? ": " : "", why, (unsigned long long)sent,
          (unsigned long long)received);
  c->pipe = NULL;
  if (c->code < 0)
    c->code = status == 0 ? 0 : 6;
  close_signals(c);
}

static void on_tunnel_done(int status, const char *why, void *ud) {
  ctx *c = ud;

  fprintf(stderr, "hp_app_loop: tunnel ended%s%s (%d)\n", *why ? ": " : "", why, status);
  c->tunnel = NULL;
  if (c->code < 0)
    c->code = status == 0 ? 0 : 6;
  close_signals(c);
}

static void on_signal(uv_signal_t *s, int signum) {
  ctx *c = s->data;

  c->code = 128 + signum;
  if (c->pipe)
    hp__pipe_stop(c->pipe);
  if (c->tunnel)
    hp__tunnel_stop(c->tunnel);
}

int main(int argc, char **argv) {
  static ctx c;
  hp_bs *chan;
  char err[256];
  int fd, r, listen_side;

  if (argc < 4)
    return usage();
  listen_side = strcmp(argv[1], "listen") == 0;
  if (!listen_side && strcmp(argv[1], "connect") != 0)
    return usage();
  signal(SIGPIPE, SIG_IGN);
  c.code = -1;
  uv_loop_init(&c.loop);
  uv_signal_init(&c.loop, &c.sigint);
  uv_signal_init(&c.loop, &c.sigterm);
  c.sigint.data = c.sigterm.data = &c;
  uv_signal_start(&c.sigint, on_signal, SIGINT);
  uv_signal_start(&c.sigterm, on_signal, SIGTERM);
  fd = channel_fd(listen_side, atoi(argv[2]));
  if (fd < 0) {
    fprintf(stderr, "hp_app_loop: no channel on 127.0.0.1:%s: %s\n", argv[2], strerror(errno));
    return 6;
  }
  if ((r = hp__tcp_from_fd(&c.loop, fd, &chan)) < 0) {
    fprintf(stderr, "hp_app_loop: %s\n", uv_strerror(r));
    return 6;
  }
  if (strcmp(argv[3], "pipe") == 0) {
    r = hp__pipe_start(&c.loop, chan, 0, 1, isatty(2), on_pipe_done, &c, &c.pipe);
  } else if (argc == 5 && (strcmp(argv[3], "forward") == 0 || strcmp(argv[3], "expose") == 0)) {
    hp__tunnel_cfg tc;
    int fwd = strcmp(argv[3], "forward") == 0;
    r = hp__tunnel_parse(fwd ? HP_TUNNEL_FORWARD : HP_TUNNEL_EXPOSE, argv[4], &tc, err, sizeof err);
    if (r < 0) {
      fprintf(stderr, "hp_app_loop: %s\n", err);
      hp_bs_close(chan);
      uv_run(&c.loop, UV_RUN_NOWAIT);
      return 2;
    }
    r = hp__tunnel_start(&c.loop, chan, &tc, on_tunnel_done, &c, &c.tunnel, err, sizeof err);
    if (r < 0)
      fprintf(stderr, "hp_app_loop: %s\n", err);
  } else {
    hp_bs_close(chan);
    return usage();
  }
  if (r < 0) {
    close_signals(&c);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    return 6;
  }
  uv_run(&c.loop, UV_RUN_DEFAULT);
  r = uv_loop_close(&c.loop);
  if (r != 0)
    fprintf(stderr, "hp_app_loop: loop still busy at exit: %s\n", uv_strerror(r));
  return c.code < 0 ? 6 : c.code;
}
