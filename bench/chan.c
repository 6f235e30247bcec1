/*
 * chan.c - bench_chan: bytes through the secure channel (chan/secure.h)
 * versus the plain TCP carrier (chan/tcp.h), on a loopback TCP pair, sender
 * and receiver in two processes (each on its own libuv loop, as two workers
 * would be). Prints one line: mode, bytes, seconds, MiB/s, and the CPU
 * seconds (user + system) per GiB of each side. No assertions: figures.
 *
 *   bench_chan plain|secure MIB
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "chan/secure.h"
#include "chan/tcp.h"

#define CHUNK (64u * 1024u)
#define SESSION "0123456789abcdef0123456789abcdef"

static const uint8_t psk[32] = {42};

typedef struct end {
  uv_loop_t loop;
  hp_bs *s;
  int sender, ready, done;
  uint64_t total, moved;
  uint8_t buf[CHUNK];
} end;

static void pump(end *e);

static void on_data(hp_bs *s, const uint8_t *p, size_t n, void *ud) {
  end *e = ud;
  (void)s, (void)p;
  e->moved += n;
}

static void on_eof(hp_bs *s, void *ud) {
  end *e = ud;
  e->done = 1;
  hp_bs_shutdown(s); /* tells the sender everything arrived */
}

static void on_error(hp_bs *s, int err, const char *why, void *ud) {
  (void)s;
  fprintf(stderr, "bench_chan: %s stream failed: %s (%d)\n",
          ((end *)ud)->sender ? "sender" : "receiver", why, err);
  exit(1);
}

static void on_drain(hp_bs *s, void *ud) {
  (void)s;
  pump(ud);
}

static void on_sender_eof(hp_bs *s, void *ud) {
  (void)s;
  ((end *)ud)->done = 1;
}

static const hp_bs_cbs recv_cbs = {on_data, on_eof, on_error, NULL};
static const hp_bs_cbs send_cbs = {NULL, on_sender_eof, on_error, on_drain};

static void pump(end *e) {
  while (e->moved < e->total && hp_bs_queued(e->s) <= HP_BS_HIGH_WATER) {
    size_t n = e->total - e->moved < CHUNK ? (size_t)(e->total - e->moved) : CHUNK;
    if (hp_bs_write(e->s, e->buf, n) != 0) {
      fprintf(stderr, "bench_chan: write refused\n");
      exit(1);
    }
    e->moved += n;
  }
  if (e->moved == e->total)
    hp_bs_shutdown(e->s);
}

static void on_ready(hp_bs *s, int status, const char *why, void *ud) {
  end *e = ud;
  if (status < 0) {
    fprintf(stderr, "bench_chan: handshake failed: %s\n", why);
    exit(1);
  }
  e->ready = 1;
  hp_bs_set_cbs(s, e->sender ? &send_cbs : &recv_cbs, e);
  if (e->sender)
    pump(e);
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* One side: run to the end, return its CPU seconds. */
static double run(int fd, int sender, int secure, uint64_t total) {
  static end e;
  hp_bs *c;
  double cpu0 = cpu_s();

  memset(&e, 0, sizeof e);
  e.sender = sender;
  e.total = total;
  memset(e.buf, 0x5a, sizeof e.buf);
  uv_loop_init(&e.loop);
  if (hp__tcp_from_fd(&e.loop, fd, &c) < 0)
    exit(1);
  if (secure) {
    hp__hs_params p = {SESSION, sender ? "s" : "r", sender ? "r" : "s", sender ? 'a' : 'b', psk};
    if (hp__secure_start(&e.loop, c, &p, 10000, on_ready, &e, &e.s) < 0)
      exit(1);
  } else {
    e.s = c;
    on_ready(c, 0, "", &e);
  }
  while (!e.done)
    uv_run(&e.loop, UV_RUN_ONCE);
  if (!sender && e.moved != total) {
    fprintf(stderr, "bench_chan: received %llu of %llu bytes\n", (unsigned long long)e.moved,
            (unsigned long long)total);
    exit(1);
  }
  /* Our end-of-stream goes out before the close (a close drops it). */
  while (hp_bs_queued(e.s) > 0)
    uv_run(&e.loop, UV_RUN_ONCE);
  hp_bs_close(e.s);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  uv_loop_close(&e.loop);
  return cpu_s() - cpu0;
}

int main(int argc, char **argv) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int l, fds[2], secure, st, pfd[2];
  uint64_t total;
  pid_t pid;
  double t0, t1, cpu_send, cpu_recv = 0;

  if (argc != 3 || (strcmp(argv[1], "plain") && strcmp(argv[1], "secure")) || atoi(argv[2]) <= 0) {
    fprintf(stderr, "usage: bench_chan plain|secure MIB\n");
    return 2;
  }
  secure = strcmp(argv[1], "secure") == 0;
  total = (uint64_t)atoi(argv[2]) << 20;
  l = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
      getsockname(l, (struct sockaddr *)&a, &al))
    return 1;
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fds[0], (struct sockaddr *)&a, sizeof a) < 0)
    return 1;
  fds[1] = accept(l, NULL, NULL);
  close(l);
  if (pipe(pfd) < 0)
    return 1;
  t0 = uv_hrtime() / 1e9;
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    cpu_recv = run(fds[1], 0, secure, total);
    if (write(pfd[1], &cpu_recv, sizeof cpu_recv) != sizeof cpu_recv)
      _exit(1);
    _exit(0);
  }
  close(fds[1]);
  cpu_send = run(fds[0], 1, secure, total);
  if (read(pfd[0], &cpu_recv, sizeof cpu_recv) != sizeof cpu_recv)
    return 1;
  waitpid(pid, &st, 0);
  t1 = uv_hrtime() / 1e9;
  printf("%s bytes=%llu seconds=%.3f MiB_per_s=%.1f cpu_s_per_GiB_sender=%.2f "
         "cpu_s_per_GiB_receiver=%.2f\n",
         argv[1], (unsigned long long)total, t1 - t0, (double)total / 1048576.0 / (t1 - t0),
         cpu_send / ((double)total / 1073741824.0), cpu_recv / ((double)total / 1073741824.0));
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
