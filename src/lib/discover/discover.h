/*
 * discover.h - the mapping discovery that runs next to GET /whoami while the
 * session is DISCOVERING: STUN Binding over TCP to each of STUN_SERVERS and
 * (PORT_MAPPING=1) a UPnP-IGD / NAT-PMP mapping of the punch port, all from
 * the punch port, all at once, bounded as a whole. The session gets one
 * callback with everything that answered; the port mapping then lives (and
 * is refreshed) until hp__disc_stop, which removes it from the router.
 */
#ifndef HP_DISCOVER_H
#define HP_DISCOVER_H

#include <sys/socket.h>
#include <uv.h>

#include "addr.h"
#include "portmap.h"
#include "stun_tcp.h"
#include "wire.h"

#define HP_DISC_STUN_MAX 4 /* STUN servers asked */

typedef struct hp__disc_opts {
  /* An IP literal is asked at once; a name is first resolved on the loop
   * (uv_getaddrinfo, within timeout_ms): its first IPv4 address, else its
   * first IPv6 one. A name that does not resolve is logged (a warning) and
   * skipped; the others are still asked. */
  hp__hostport stun[HP_DISC_STUN_MAX];
  size_t nstun;
  int portmap;         /* ask the router (UPnP-IGD, then NAT-PMP) */
  unsigned timeout_ms; /* everything within this; what has not answered is left out */
} hp__disc_opts;

typedef struct hp__disc_result {
  size_t nstun;
  hp__stun_tcp_result stun[HP_DISC_STUN_MAX];       /* status -ETIMEDOUT when cut off; a name
                                                       not resolved: status < 0, server family 0 */
  char name[HP_DISC_STUN_MAX][HP_HOSTNAME_MAX + 1]; /* the server's name as configured, or "" */
  int portmap_status; /* 0 mapped, -ENOENT none, -ETIMEDOUT, 1 not asked */
  hp__portmap_proto portmap_proto;
  struct sockaddr_storage portmap_external;
} hp__disc_result;

typedef void (*hp__disc_cb)(const hp__disc_result *r, void *data);
typedef struct hp__disc hp__disc;

/* Start; cb fires exactly once on a later loop turn (unless stopped first).
 * 0 and *out, or -ENOMEM / -EINVAL. */
int hp__disc_start(uv_loop_t *loop, int port, const hp__disc_opts *opts, hp__disc_cb cb, void *data,
                   hp__disc **out);

/* No callback any more; pending requests are cancelled, a port mapping is
 * removed (in the background: the loop must run a little longer), then the
 * object frees itself. NULL is a no-op. */
void hp__disc_stop(hp__disc *d);

/*
 * What the answers add to the session's own view (pure):
 * - *mapped ("ip:port" from /whoami, or "ip:<internal port>" guessed behind a
 *   proxy when port_preserved is -1): replaced by the first STUN mapping when
 *   the rendezvous could not see the port; *port_preserved then follows it;
 * - cands (srflx first): every other STUN mapping and the router's mapping
 *   are added as srflx right after the existing srflx entries (at most
 *   HP_CANDS_MAX in all, host candidates dropped last-first to make room).
 * Logs what was learnt (one line) and the NAT verdict from all observers.
 */
void hp__disc_apply(const hp__disc_result *r, int local_port, const struct sockaddr *rdv,
                    char *mapped, size_t mappedlen, int *port_preserved, hp__cands *cands);

#endif
