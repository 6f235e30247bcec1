/*
 * punch.h - the punch engine: from one local port P, connect to every peer
 * candidate at once while accepting on P, authenticate each connection with
 * the peer hello (peerhello.h) and nominate one.
 *
 * It knows nothing of the rendezvous: it is given the session, ids, role and
 * the peer's candidates, so it can be tested on loopback alone.
 *
 * Byte-exact handshake: the engine reads a connection one byte at a time
 * and stops reading right after the last handshake line (the peer's hello
 * for role "a", the "use" line for role "b"). Nothing the peer sends after
 * the handshake is ever consumed: it stays in the socket for whoever takes
 * the fd.
 */
#ifndef HP_PUNCH_H
#define HP_PUNCH_H

#include <jansson.h>
#include <uv.h>

#include "addr.h"
#include "wire.h"

typedef struct hp__pe hp__pe;

typedef struct hp__pe_params {
  char session[HP_SESSION_HEX + 1];
  char own_id[HP_ID_MAX + 1];
  char peer_id[HP_ID_MAX + 1];
  char role;          /* 'a' nominates, 'b' follows */
  hp__cands cands;    /* the peer's candidates */
  long start_in_ms;   /* delay before the first SYN (0..HP_START_IN_MS_MAX) */
  double timeout_s;   /* punching gives up after this (from the first SYN) */
  unsigned hello_ms;  /* bound for an inbound connection to send a valid hello
                         (silence from a stranger); 0 means 3000. A connection
                         that carries our hello waits until timeout_s. */
  int allow_loopback; /* dial loopback and link-local candidates (one-host tests) */
  int low_ttl;        /* 1..32: role b's first SYN to a srflx candidate leaves with
                         this IP TTL (it opens our NAT and dies before the peer's),
                         role a starts LOW_TTL_DELAY_MS later; 0: only tried once,
                         with NEAR_TTL, after a refusal from a near NAT (punch_dial.c) */
  int synced;         /* both sides start at one instant (start_at_us): after a
                         refused connect, retry on the common grid (punch_dial.c) */
  /* Role a: called with the engine's cb data right before each nomination
   * ("use" line) is written; the first call is when a commits to the direct
   * path (the session drops its relay attempt there, docs/PROTOCOL.md
   * section 9 "One path"). It must not destroy the engine. NULL: none. */
  void (*on_nominate)(void *data);
  /* The secure channel's first message (its HELLO, docs/PROTOCOL.md section
   * 8), sent on every connection right after our hello line (role b) or our
   * "use" line (role a), so that the handshake does not wait for the
   * nomination (section 5, "Hello lines"). NULL: none (the channel sends it
   * after the punch). Not copied: it must live as long as the engine. */
  const uint8_t *chan_hello;
  size_t chan_hello_len;
  /* Role a, with chan_hello: called when an outbound connection to a srflx
   * candidate connects and nothing is nominated yet; 1 lets the engine
   * nominate it at once ("early nomination": hello, "use" and the channel's
   * HELLO in one write, before the peer's hello has come), 0 keeps the rule
   * "nominate once the peer's hello checked out". The session says 0 while
   * a relay attempt has started. NULL: never early. */
  int (*may_nominate_early)(void *data);
  /* Role a: an early nominee failed before its peer hello (closed, reset, a
   * bad line, or silent for EARLY_WAIT_MS while another connection checked
   * out) and no other checked connection was there to nominate: the engine
   * is uncommitted again and punching goes on. NULL: none. */
  void (*on_unnominate)(void *data);
} hp__pe_params;

/* ok is 0 on success, -ETIMEDOUT when punching gave up. */
typedef void (*hp__pe_cb)(hp__pe *pe, int ok, void *data);

/*
 * Open the listener on 0.0.0.0:port (SO_REUSEADDR + SO_REUSEPORT set before
 * bind; port 0 picks one). Connections arriving before hp__pe_start wait in
 * the backlog. Returns 0, -EADDRINUSE when another socket listens on the
 * port, or -errno.
 *
 * Strangers on the port are bounded: at most a few inbound connections
 * (from RLIMIT_NOFILE, 4..64) are held before their hello; a new one beyond
 * that, or running out of descriptors, drops the oldest of them. A reserved
 * descriptor keeps the engine working at the limit. The first drop is
 * logged once; the count is in the result and logged at the end.
 */
int hp__pe_create(uv_loop_t *loop, int port, hp__pe **out);

/* The bound port. */
int hp__pe_port(const hp__pe *pe);

/* Start punching. cb fires exactly once later (unless destroyed first).
 * Returns 0 or -EINVAL (bad params) / -EALREADY. */
int hp__pe_start(hp__pe *pe, const hp__pe_params *prm, hp__pe_cb cb, void *data);

/* After success: the connected socket in blocking mode, owned by the caller
 * from now on. Later calls (or before success) return -1. */
int hp__pe_take_fd(hp__pe *pe);

typedef struct hp__pe_result {
  char local_addr[HP_ADDR_STRLEN]; /* of the winning connection */
  char peer_addr[HP_ADDR_STRLEN];
  const char *direction; /* "outbound", "inbound", or "" */
  double elapsed_ms;     /* from the first SYN to nomination */
  unsigned attempts;     /* sockets created (connect() calls) over all candidates; the
                            kernel's SYN retransmissions on them are not counted */
  unsigned inbound_seen;
  unsigned rejected; /* connections closed for a bad handshake */
  unsigned dropped;  /* connections without a hello dropped over the bound on them
                        (unauth_max, from RLIMIT_NOFILE) or for lack of descriptors */
} hp__pe_result;

void hp__pe_get_result(const hp__pe *pe, hp__pe_result *r);

/*
 * What punching saw, for the give-up summary: a new JSON object
 * {"candidates":[{"kind","addr","attempts","syns","last_error"[,"handshake"]}],
 *  "inbound":[{"addr","why"}], "inbound_seen":N, "rejected":N}, and a
 * one-line text version in text (always NUL-terminated). Per candidate,
 * attempts is the number of sockets created (a socket is replaced only
 * after a hard error), syns the SYNs they sent including the kernel's
 * retransmissions, last_error "none", "no answer" (still waiting at the
 * end), "refused", "unreachable", "reset", "timed out" (the kernel's connect
 * timeout), another errno text, or why the candidate was skipped; handshake
 * says why the last connection to it failed its handshake.
 */
json_t *hp__pe_report(const hp__pe *pe, char *text, size_t textlen);

/* Stop (no callback) and free once the handles are closed; closes an fd not
 * taken. May be called from the callback. NULL is a no-op. */
void hp__pe_destroy(hp__pe *pe);

#endif
