/*
 * redisurl.h - REDIS_URL, where the rendezvous keeps its rooms when it runs
 * as several instances. No I/O.
 *
 * Accepted forms:
 *   redis://[[user]:password@]host[:port][/db]      host: name, IPv4 or [IPv6]
 *   unix:/path/to/redis.sock[?password=P&user=U&db=N]
 *   unix:///path/to/redis.sock[?...]                (the same, as a file URL)
 * user and password are percent-decoded (%40 for '@'); the default port is
 * 6379, the default database 0. rediss:// (TLS) is refused with a reason:
 * Debian 12's hiredis 0.14 has no TLS.
 */
#ifndef HP_REDISURL_H
#define HP_REDISURL_H

#include <stddef.h>

#define HP_REDISURL_MAX 1024     /* longer input is refused before parsing */
#define HP_REDISURL_PATH_MAX 107 /* sun_path holds 108 bytes with the NUL */
#define HP_REDISURL_USER_MAX 128
#define HP_REDISURL_PASSWORD_MAX 255
#define HP_REDISURL_DB_MAX 65535

typedef struct hp__redis_url {
  int is_unix;                                 /* unix socket: path; else host and port */
  char host[256];                              /* name or IP without brackets */
  int port;                                    /* 1..65535 */
  char path[HP_REDISURL_PATH_MAX + 1];         /* absolute path of the unix socket */
  char user[HP_REDISURL_USER_MAX + 1];         /* "" for none (AUTH password alone) */
  char password[HP_REDISURL_PASSWORD_MAX + 1]; /* "" for none (no AUTH) */
  int db;                                      /* 0..HP_REDISURL_DB_MAX */
} hp__redis_url;

/** Parse s into *out. Returns 0, or -EINVAL with a sentence in err (what is
 * wrong, what is allowed; never the password). *out is written only on
 * success. */
int hp__redis_url_parse(const char *s, hp__redis_url *out, char *err, size_t errlen);

/** Write the URL back as text: redact != 0 shows the password as "***" (for
 * logs), else it is percent-encoded so that the text parses to the same
 * fields. Returns the length, or -ENOSPC when cap is too small. */
int hp__redis_url_format(const hp__redis_url *u, int redact, char *buf, size_t cap);

#endif
