/*
 * redis_server.c - a throw-away redis-server for tests (see redis_server.h).
 */
#include "redis_server.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int spawn(hp_test_redis *r) {
  char log[256];
  char *argv[] = {"redis-server", "--port",    "0", "--unixsocket", r->sock, "--unixsocketperm",
                  "700",          "--save",    "",  "--appendonly", "no",    "--dir",
                  r->dir,         "--logfile", log, "--daemonize",  "no",    NULL};

  snprintf(log, sizeof(log), "%s/redis.log", r->dir);
  r->pid = fork();
  if (r->pid < 0) {
    perror("redis_server: fork");
    r->pid = 0;
    return -1;
  }
  if (r->pid == 0) {
    /* The server dies with the test, even when the test is killed. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execvp("redis-server", argv);
    fprintf(stderr, "redis_server: cannot start redis-server: %s (install it: scripts/deps.sh)\n",
            strerror(errno));
    _exit(127);
  }
  for (int i = 0; i < 1000; i++) {
    redisContext *c = redisConnectUnix(r->sock);
    if (c && !c->err) {
      redisReply *rep = redisCommand(c, "PING");
      int ok = rep && rep->type == REDIS_REPLY_STATUS;
      freeReplyObject(rep);
      redisFree(c);
      if (ok)
        return 0;
    } else if (c) {
      redisFree(c);
    }
    if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
      fprintf(stderr, "redis_server: redis-server exited at start; see %s\n", log);
      r->pid = 0;
      return -1;
    }
    sleep_ms(10);
  }
  fprintf(stderr, "redis_server: redis-server did not answer within 10 s\n");
  hp_test_redis_kill(r);
  return -1;
}

int hp_test_redis_start(hp_test_redis *r) {
  memset(r, 0, sizeof(*r));
  snprintf(r->dir, sizeof(r->dir), "/tmp/hp-redis-test-%d-XXXXXX", (int)getpid());
  if (!mkdtemp(r->dir)) {
    perror("redis_server: mkdtemp");
    return -1;
  }
  snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
  snprintf(r->url, sizeof(r->url), "unix:%s", r->sock);
  return spawn(r);
}

int hp_test_redis_restart(hp_test_redis *r) {
  if (r->pid)
    hp_test_redis_kill(r);
  return spawn(r);
}

void hp_test_redis_kill(hp_test_redis *r) {
  if (!r->pid)
    return;
  kill(r->pid, SIGCONT);
  kill(r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  r->pid = 0;
  unlink(r->sock);
}

void hp_test_redis_freeze(hp_test_redis *r, int frozen) {
  if (r->pid)
    kill(r->pid, frozen ? SIGSTOP : SIGCONT);
}

void hp_test_redis_stop(hp_test_redis *r) {
  char cmd[300];

  if (r->pid) {
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGTERM);
    for (int i = 0; i < 500 && waitpid(r->pid, NULL, WNOHANG) == 0; i++)
      sleep_ms(10);
    if (waitpid(r->pid, NULL, WNOHANG) == 0)
      hp_test_redis_kill(r);
    r->pid = 0;
  }
  if (r->dir[0]) {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "redis_server: could not remove %s\n", r->dir);
    r->dir[0] = '\0';
  }
}

long long hp_test_redis_int(hp_test_redis *r, const char *fmt, ...) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
  redisReply *rep;
  long long v = -1;
  va_list ap;

  if (!c || c->err) {
    if (c)
      redisFree(c);
    return -1;
  }
  redisSetTimeout(c, tv);
  if (r->password[0]) {
    rep = redisCommand(c, "AUTH %s", r->password);
    freeReplyObject(rep);
  }
  va_start(ap, fmt);
  rep = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (rep) {
    if (rep->type == REDIS_REPLY_INTEGER)
      v = rep->integer;
    else if (rep->type == REDIS_REPLY_ARRAY)
      v = (long long)rep->elements;
    else if (rep->type == REDIS_REPLY_NIL)
      v = 0;
    else if (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING)
      v = 1;
    freeReplyObject(rep);
  }
  redisFree(c);
  return v;
}
