/*
 * tcpcopy.c - the plain-TCP reference for bench/app.sh and
 * bench/pipe_lab.sh: copy stdin to one TCP connection, or one connection to
 * stdout, with blocking 64 KiB reads and writes (what nc does), no framing,
 * no encryption. ADDR (IPv4, default 127.0.0.1) is the address to listen on
 * or connect to; pipe_lab.sh uses lab addresses inside its namespaces.
 *
 *   bench_tcpcopy recv PORT [ADDR] > out   (listens, accepts one, reads to EOF)
 *   bench_tcpcopy send PORT [ADDR] < in    (connects, retrying for 10 s)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int copy(int from, int to) {
  static char buf[65536];
  ssize_t n;

  while ((n = read(from, buf, sizeof buf)) > 0)
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(to, buf + off, (size_t)(n - off));
      if (w <= 0)
        return 1;
      off += w;
    }
  return n < 0;
}

int main(int argc, char **argv) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  int fd, one = 1;

  if (argc != 3 && argc != 4)
    return 2;
  a.sin_port = htons((uint16_t)atoi(argv[2]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (argc == 4 && inet_pton(AF_INET, argv[3], &a.sin_addr) != 1)
    return 2;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 1;
  if (strcmp(argv[1], "recv") == 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0)
      return 1;
    int c = accept(fd, NULL, NULL);
    return c < 0 ? 1 : copy(c, 1);
  }
  for (int i = 0; i < 200; i++) {
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
      int r = copy(0, fd);
      shutdown(fd, SHUT_WR);
      return r;
    }
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    usleep(50000);
  }
  return 1;
}
