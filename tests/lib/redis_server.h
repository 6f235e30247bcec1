/*
 * redis_server.h - a throw-away redis-server for tests: Debian's binary,
 * started in a private temporary directory on a unix socket (no port, so
 * no clash with anybody's Redis), no persistence, stopped at the end.
 * Blocking calls: test code only.
 */
#ifndef HP_TEST_REDIS_SERVER_H
#define HP_TEST_REDIS_SERVER_H

#include <sys/types.h>

typedef struct hp_test_redis {
  pid_t pid;         /* 0 while stopped */
  char dir[128];     /* mkdtemp */
  char sock[192];    /* dir/redis.sock */
  char url[224];     /* unix:<sock> */
  char password[64]; /* set by a test that sets requirepass */
} hp_test_redis;

/** Make the directory and start the server; waits (at most 10 s) until it
 * answers PING. Returns 0, or -1 with the reason on stderr. */
int hp_test_redis_start(hp_test_redis *r);

/** Start it again on the same socket (after stop), with an empty data set. */
int hp_test_redis_restart(hp_test_redis *r);

/** SIGKILL (a crash) and wait for it. */
void hp_test_redis_kill(hp_test_redis *r);

/** Freeze / thaw it (SIGSTOP / SIGCONT): a Redis that accepts nothing. */
void hp_test_redis_freeze(hp_test_redis *r, int frozen);

/** Stop (SIGTERM, then SIGKILL after 5 s) and remove the directory. */
void hp_test_redis_stop(hp_test_redis *r);

/** Run one command on a fresh blocking connection and return the integer
 * reply (or the length of an array, or 1 for a status/string, 0 for nil);
 * -1 on error. For the tests' look at Redis itself. */
long long hp_test_redis_int(hp_test_redis *r, const char *fmt, ...);

#endif
