/*
 * hp_pair.c - the smallest program using libholepunch: meet a peer in a room,
 * get a connected, authenticated socket, say one line, print the peer's.
 *
 *   hp_pair RENDEZVOUS_URL ROOM [PORT]
 *
 * Built against the shared library (it proves what the library exports).
 * Exit status: the hp_status of the punch, or 6 if the exchange failed.
 */
#include <holepunch.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Read one line (up to cap-1 bytes) with a receive timeout. */
static int read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;

  while (n + 1 < cap) {
    ssize_t r = recv(fd, buf + n, 1, 0);
    if (r <= 0)
      return -1;
    if (buf[n] == '\n')
      break;
    n++;
  }
  buf[n] = '\0';
  return 0;
}

int main(int argc, char **argv) {
  hp_config cfg;
  char peer[80] = "", reason[256] = "", line[512], mine[128];
  struct timeval tv = {.tv_sec = 10};
  hp_status st;
  int fd = -1, len;

  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s RENDEZVOUS_URL ROOM [PORT]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  hp_config_init(&cfg);
  cfg.rendezvous_url = argv[1];
  cfg.room = argv[2];
  cfg.internal_tcp_port = argc == 4 ? atoi(argv[3]) : 0;
  cfg.ws_recv_timeout = 20;
  cfg.p2p_connect_timeout = 10;

  st = hp_connect(&cfg, &fd, peer, sizeof peer, reason, sizeof reason);
  if (st != HP_STATUS_OK) {
    fprintf(stderr, "hp_pair: no direct connection (status %d): %s\n", (int)st, reason);
    return (int)st;
  }
  len = snprintf(mine, sizeof mine, "library %s says hi\n", hp_version());
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (send(fd, mine, (size_t)len, 0) != len || read_line(fd, line, sizeof line) != 0) {
    fprintf(stderr, "hp_pair: connected to %s but the exchange failed\n", peer);
    close(fd);
    return 6;
  }
  printf("connected to %s: %s\n", peer, line);
  close(fd);
  return 0;
}
