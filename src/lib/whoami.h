/*
 * whoami.h - learn our NAT mapping: GET <base>/whoami from the punch port.
 *
 * The request's socket is bound to the punch port P (SO_REUSEADDR +
 * SO_REUSEPORT, next to the listener) so that the address the rendezvous
 * observes is the mapping our NAT gives to P, the one the peer must dial.
 * libcurl runs blocking in the libuv thread pool (uv_queue_work); the
 * callback fires on the loop thread.
 */
#ifndef HP_WHOAMI_H
#define HP_WHOAMI_H

#include <uv.h>

#include "url.h"
#include "wire.h"

#define HP_WHOAMI_BODY_MAX 4096 /* reply bodies beyond this are an error */

typedef struct hp__whoami_result {
  int status;              /* 0, or negative errno (-ETIMEDOUT, -ECONNREFUSED, -EPROTO, ...) */
  char ip[64];             /* observed public IP */
  int port;                /* observed port, or -1 when the reply said "port": null */
  char err[HP_REASON_MAX]; /* why it failed, a sentence */
  /* GET /connectback only (hp__whoami_start_at): */
  char connect_back[8]; /* "open", "drop", "reset"; "" when absent */
  int observer_port;    /* the rendezvous' OBSERVER_PORT, -1 when absent */
} hp__whoami_result;

typedef void (*hp__whoami_cb)(const hp__whoami_result *r, void *data);

typedef struct hp__whoami hp__whoami;

/*
 * Start the request. ca_file NULL means the system store. On success *out
 * is a handle for hp__whoami_cancel and cb fires exactly once (unless
 * cancelled). The handle frees itself after cb.
 */
int hp__whoami_start(uv_loop_t *loop, const hp__url *url, int local_port, double timeout_s,
                     const char *ca_file, hp__whoami_cb cb, void *data, hp__whoami **out);

/* The same request to another path ("/whoami" or "/connectback") and port
 * (0: the URL's): the observers of `holepunch diagnose`. */
int hp__whoami_start_at(uv_loop_t *loop, const hp__url *url, const char *path, int port,
                        int local_port, double timeout_s, const char *ca_file, hp__whoami_cb cb,
                        void *data, hp__whoami **out);

/* Pure: the extra fields of a /connectback reply (lenient: absent or of
 * another type is "" / -1). */
void hp__whoami_parse_probe(const char *body, size_t len, char *connect_back, size_t cblen,
                            int *observer_port);

/* cb will not fire; the request is aborted and the memory freed when the
 * worker thread returns (the loop must keep running). */
void hp__whoami_cancel(hp__whoami *w);

/* Pure: parse a reply body {"ip":"a.b.c.d","port":N|null}. Returns 0 or
 * -EPROTO with a sentence in err. *port = -1 for null. */
int hp__whoami_parse(const char *body, size_t len, char *ip, size_t iplen, int *port, char *err,
                     size_t errlen);

#endif
