/*
 * url.h - the rendezvous base URL: http://, https://, ws:// or wss://.
 */
#ifndef HP_URL_H
#define HP_URL_H

#include <stddef.h>

typedef struct hp__url {
  int tls;        /* https:// or wss:// */
  char host[256]; /* host name or IP, without brackets */
  int port;       /* explicit port, or 80 / 443 */
  char base[256]; /* path prefix without trailing '/', "" for none; the
                     WebSocket path is base + "/ws", whoami base + "/whoami" */
} hp__url;

/* Returns 0, or -EINVAL with a sentence in err (what is wrong, what is allowed).
 * err does not repeat the URL: the caller prefixes the variable and value,
 * e.g. RENDEZVOUS_SERVICE_URL="ftp://x" is not valid: <err>. */
int hp__url_parse(const char *s, hp__url *out, char *err, size_t errlen);

#endif
