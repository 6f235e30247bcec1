/*
 * holepunch.c - the public API: one punch attempt from listener to
 * authenticated socket, as an explicit phase machine on the caller's loop.
 * Each phase owns what it started; end() stops them all at once.
 *
 *   LISTENING     hp__pe_create: listener on P (retried while the port is busy)
 *   DISCOVERING   hp__whoami from P -> srflx; hp__cands_gather; next to it
 *                 hp__disc (STUN_SERVERS, PORT_MAPPING): both must answer
 *   SIGNALING     hp__sig_open, hello, until welcome (WS_OPEN_TIMEOUT)
 *   WAITING_PEER  until peer (WS_RECV_TIMEOUT), with progress lines
 *   PUNCHING      hp__pe_start (P2P_CONNECT_TIMEOUT, in the engine)
 *   (relay)       from RELAY_AFTER after peer on (hp_config.relay_after; at once
 *                 when punching fails first) a relay attempt (relay_attempt.h)
 *                 runs alongside PUNCHING: the secure handshake over the
 *                 rendezvous' relay. It wins if it authenticates before a
 *                 direct connection is nominated; a nominated direct
 *                 connection ends it (both sides nominate the same one, so
 *                 both then drop the relay)
 *   RELAYING      punching failed, the relay attempt still runs
 *   SECURING      the nominated connection runs the secure handshake
 *                 (chan/secure.h, SECURE_TIMEOUT_MS); the engine is gone. A
 *                 peer that fails it (does not know the code) is dropped: the
 *                 result goes to the rendezvous, and after REJOIN_DELAY_MS we
 *                 start over from LISTENING, waiting for the right peer until
 *                 the first wait's WS_RECV_TIMEOUT deadline
 *   ENDING        the outcome is known: the engine is gone (the secure
 *                 channel, on success, is ours now), the WebSocket reports the
 *                 result and closes on its own; the callback fires on the next
 *                 tick
 *   ENDED         the callback fired; take_fd / info / destroy remain
 *   DESTROYED     hp_punch_destroy: freed in the timer's close callback
 *
 * Nothing outlives the handle holding a pointer to it: the WebSocket client
 * is detached (hp__sig_close with no callback) when the phase machine ends,
 * the whoami request is cancelled, the engine destroyed.
 */
#include "holepunch.h"
#include "holepunch_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "candidates.h"
#include "chan/bridge.h"
#include "chan/secure.h"
#include "chan/tcp.h"
#include "code.h"
#include "discover.h"
#include "log.h"
#include "punch.h"
#include "relay_attempt.h"
#include "signal_client.h"
#include "stream_int.h"
#include "url.h"
#include "whoami.h"
#include "wire.h"

#define LISTEN_RETRY_MS 250
/* "still waiting for a peer": every eighth of WS_RECV_TIMEOUT, 1..15 s. */
#define PROGRESS_MIN_MS 1000
#define PROGRESS_MAX_MS 15000
/* The secure handshake is two messages each way on a working connection. */
#define SECURE_TIMEOUT_MS 10000
/* Before joining the room again after a peer failed the handshake. */
#define REJOIN_DELAY_MS 1000

typedef enum phase {
  P_LISTENING,
  P_DISCOVERING,
  P_SIGNALING,
  P_WAITING_PEER,
  P_PUNCHING,
  P_SECURING,
  P_RELAYING,
  P_ENDING,
  P_ENDED,
  P_DESTROYED
} phase;

static const char *const phase_names[] = {"listening", "discovering", "signaling", "waiting_peer",
                                          "punching",  "securing",    "relaying"};

struct hp_punch {
  uv_loop_t *loop;
  hp_config cfg; /* strings below are owned copies */
  char *url_str, *ca_file;
  hp__url url;
  char room[HP_ID_MAX + 1];
  char own_id[HP_ID_MAX + 1];
  char peer_id[HP_ID_MAX + 1];
  char role[2];
  char session[HP_SESSION_HEX + 1]; /* from the peer message, for the secure channel */
  char mapped[HP_ADDR_STRLEN];
  char peer_addr[HP_ADDR_STRLEN];
  char reason[HP_REASON_MAX];
  int port_preserved; /* -1 unknown */
  phase st;
  hp_status status;       /* the outcome, from ENDING on */
  hp_bs *chan;            /* the secure channel (SECURING, then status OK until taken) */
  hp__ra *ra;             /* the relay attempt, from peer until it wins, fails or is dropped */
  int relayed;            /* the channel runs over the relay */
  char direct_fail[1536]; /* why the direct path failed (relayed, or both failed) */
  char relay_fail[HP_REASON_MAX]; /* why the relay attempt failed, "" if it did not */
  int with_code;                  /* hp_config.code given: psk holds the key derived from it */
  uint8_t psk[HP_CODE_PSK_BYTES];
  int id_generated; /* own_id is ours (not configured): a new one on each rejoin */
  int auth_failures;
  char auth_reason[HP_REASON_MAX];
  uint64_t wait_deadline; /* uv_now() ms: the end of the wait for a (right) peer; 0 before */
  hp__pe *pe;
  hp__whoami *who;
  int who_done;     /* the whoami answered (DISCOVERING) */
  hp__disc *disc;   /* STUN servers and the port mapping (lives until the end) */
  int disc_pending; /* its callback is awaited (DISCOVERING) */
  hp__disc_opts disc_opts;
  hp__disc_result disc_res;
  hp__sig *sig;
  uv_timer_t timer;  /* the phase's deadline, progress lines, the deferred callback */
  uint64_t deadline; /* uv_now() ms of the current phase's deadline */
  uint64_t t_waiting;
  uint64_t hr_peer; /* when the peer message arrived */
  double elapsed_ms;
  hp__cands cands;
  hp_done_cb cb;
  void *data;
};

void hp_config_init(hp_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->internal_tcp_port = 8082;
  cfg->ws_open_timeout = 15.0;
  cfg->ws_recv_timeout = 120.0;
  cfg->listener_ready_timeout = 15.0;
  cfg->p2p_connect_timeout = 30.0;
  cfg->relay_after = 5.0;
}

const char *hp_version(void) {
  return HP_VERSION;
}

static json_t *ctx(const hp_punch *p) {
  return json_pack("{s:s, s:s}", "room", p->room, "id", p->own_id);
}

static void on_timer(uv_timer_t *t);

static void arm(hp_punch *p, uint64_t ms) {
  uv_timer_start(&p->timer, on_timer, ms, 0);
}

/* ---- the end of an attempt ---- */

static void send_result(hp_punch *p, int ok, const char *reason) {
  hp__msg m;
  int r;

  memset(&m, 0, sizeof m);
  m.type = HP_MSG_RESULT;
  m.u.result.status = !ok ? HP_RESULT_FAILED : p->relayed ? HP_RESULT_RELAYED : HP_RESULT_DIRECT;
  snprintf(m.u.result.addr, sizeof m.u.result.addr, "%s", ok ? p->peer_addr : "");
  m.u.result.elapsed_ms = (long)(p->elapsed_ms + 0.5);
  snprintf(m.u.result.reason, sizeof m.u.result.reason, "%s", reason);
  r = hp__sig_send(p->sig, &m);
  if (r < 0)
    HP_WARN("holepunch", ctx(p), "cannot report the result to the rendezvous: %s", strerror(-r));
}

/* Decide the outcome and stop every phase now; the callback follows on the
 * next loop turn (never inside a call of ours or of a module's callback). */
static void end(hp_punch *p, hp_status status, const char *reason) {
  const int paired = p->st == P_PUNCHING || p->st == P_SECURING || p->st == P_RELAYING;

  if (p->st >= P_ENDING)
    return;
  p->st = P_ENDING;
  p->status = status;
  snprintf(p->reason, sizeof p->reason, "%s", reason ? reason : "");
  hp__whoami_cancel(p->who);
  p->who = NULL;
  hp__disc_stop(p->disc); /* a port mapping is removed from the router */
  p->disc = NULL;
  hp__pe_destroy(p->pe);
  p->pe = NULL;
  hp__ra_destroy(p->ra);
  p->ra = NULL;
  if (status != HP_STATUS_OK && p->chan) {
    hp_bs_close(p->chan);
    p->chan = NULL;
  }
  if (p->sig) {
    /* The rendezvous hears the result and a close frame; the client tears
     * itself down without calling back, so the caller gets the channel now
     * rather than after the close handshake. */
    if (paired)
      send_result(p, status == HP_STATUS_OK, p->relayed ? p->direct_fail : p->reason);
    hp__sig_close(p->sig, NULL, NULL);
    p->sig = NULL;
  }
  arm(p, 0);
}

static void try_listen(hp_punch *p);

/* ---- the secure handshake on the punched connection ---- */

/* The peer we were paired with failed the handshake: tell the rendezvous,
 * and wait in the room for the right peer while the wait's deadline allows. */
static void rejoin(hp_punch *p, const char *why) {
  uint64_t now = uv_now(p->loop);

  hp__ra_destroy(p->ra); /* the relay would meet the same peer */
  p->ra = NULL;
  p->relayed = 0;
  p->direct_fail[0] = p->relay_fail[0] = '\0';
  if (p->sig) {
    send_result(p, 0, why);
    hp__sig_close(p->sig, NULL, NULL);
    p->sig = NULL;
  }
  if (now + REJOIN_DELAY_MS >= p->wait_deadline) {
    char reason[HP_REASON_MAX + 128];
    hp_status st = p->auth_failures ? HP_STATUS_AUTH : HP_STATUS_NO_PEER;
    snprintf(reason, sizeof reason, "%s (no other peer in room %s within %.1f s)",
             p->auth_failures ? p->auth_reason : why, p->room, p->cfg.ws_recv_timeout);
    HP_ERROR("holepunch", ctx(p), "giving up: %s", reason);
    p->st = P_WAITING_PEER; /* not paired any more: no second result */
    end(p, st, reason);
    return;
  }
  HP_INFO("holepunch",
          json_pack("{s:s, s:s, s:i}", "room", p->room, "id", p->own_id, "left_s",
                    (int)((p->wait_deadline - now) / 1000)),
          "dropped that peer; waiting for the right peer in room %s (%d s left)", p->room,
          (int)((p->wait_deadline - now) / 1000));
  p->peer_id[0] = p->role[0] = p->peer_addr[0] = p->session[0] = '\0';
  if (p->id_generated && hp__random_hex(p->own_id, 8) < 0)
    snprintf(p->own_id, sizeof p->own_id, "w%ld%d", (long)getpid(), p->auth_failures);
  p->st = P_LISTENING;
  p->deadline = now + REJOIN_DELAY_MS + (uint64_t)(p->cfg.listener_ready_timeout * 1000.0);
  arm(p, REJOIN_DELAY_MS);
}

static void on_secured(hp_bs *s, int status, const char *why, void *data) {
  hp_punch *p = data;
  (void)s;

  if (status == 0) {
    if (p->relayed)
      HP_INFO("holepunch",
              json_pack("{s:s, s:s, s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "peer",
                        p->peer_id, "transport", "relayed", "direct_failed", p->direct_fail),
              "relayed connection to %s established (no direct connection: %s)", p->peer_id,
              p->direct_fail);
    if (p->with_code)
      HP_INFO("holepunch",
              json_pack("{s:s, s:s, s:s, s:b}", "room", p->room, "id", p->own_id, "peer",
                        p->peer_id, "authenticated", 1),
              "secure channel up: %s proved it knows the code", p->peer_id);
    else
      HP_WARN("holepunch",
              json_pack("{s:s, s:s, s:s, s:b}", "room", p->room, "id", p->own_id, "peer",
                        p->peer_id, "authenticated", 0),
              "secure channel up, encrypted but the peer is unauthenticated (no code): %s is "
              "whoever the rendezvous paired us with; use --code to authenticate it",
              p->peer_id);
    end(p, HP_STATUS_OK, NULL);
    return;
  }
  HP_ERROR("holepunch",
           json_pack("{s:s, s:s, s:s, s:s, s:i}", "room", p->room, "id", p->own_id, "peer",
                     p->peer_id, "addr", p->peer_addr, "err", status),
           "%s", why);
  if (status == -EACCES) {
    p->auth_failures++;
    snprintf(p->auth_reason, sizeof p->auth_reason, "%s", why);
  }
  hp_bs_close(p->chan); /* from its own callback: allowed, freed later */
  p->chan = NULL;
  rejoin(p, why);
}

static void start_securing(hp_punch *p, hp__pe *pe) {
  hp__hs_params prm;
  hp_bs *carrier = NULL;
  int fd = hp__pe_take_fd(pe), r;

  /* The nominated connection is final: the engine (listener, the other
   * connectors) goes now; the handshake runs on this one socket. Both
   * sides nominate the same connection, so both drop the relay now. */
  hp__pe_destroy(p->pe);
  p->pe = NULL;
  if (p->ra)
    HP_DEBUG("holepunch", ctx(p), "direct connection nominated: the relay attempt is dropped");
  hp__ra_destroy(p->ra);
  p->ra = NULL;
  r = fd < 0 ? -EBADF : hp__tcp_from_fd(p->loop, fd, &carrier);
  if (r < 0) {
    if (fd >= 0)
      close(fd);
    end(p, HP_STATUS_NO_DIRECT, "cannot use the connected socket");
    return;
  }
  memset(&prm, 0, sizeof prm);
  prm.session = p->session;
  prm.own_id = p->own_id;
  prm.peer_id = p->peer_id;
  prm.role = p->role[0];
  prm.psk = p->with_code ? p->psk : NULL;
  p->st = P_SECURING;
  r = hp__secure_start(p->loop, carrier, &prm, SECURE_TIMEOUT_MS, on_secured, p, &p->chan);
  if (r < 0) {
    p->chan = NULL;
    end(p, HP_STATUS_NO_DIRECT, "cannot start the secure handshake");
  }
}

/* ---- the relay attempt ---- */

/* A sentence into a bounded buffer: cut at the end when it does not fit
 * (the reasons are for people and for the 255-byte result message). */
static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

static void on_relay(hp__ra *ra, int status, const char *why, void *data) {
  hp_punch *p = data;

  (void)ra;
  if (status < 0) {
    char reason[2048];
    snprintf(p->relay_fail, sizeof p->relay_fail, "%s", why ? why : "failed");
    hp__ra_destroy(p->ra);
    p->ra = NULL;
    if (p->st != P_RELAYING) {
      HP_WARN(
          "holepunch",
          json_pack("{s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "relay", p->relay_fail),
          "the relay failed (%s); punching goes on", p->relay_fail);
      return;
    }
    say(reason, sizeof reason, "%s; the relay failed too: %s", p->direct_fail, p->relay_fail);
    HP_ERROR("holepunch", ctx(p), "giving up: %s", reason);
    end(p, HP_STATUS_NO_DIRECT, reason);
    return;
  }
  /* The relay authenticated first: the punch (if still running) goes,
   * and what it tried so far is the reason the connection is relayed. */
  if (p->pe && !*p->direct_fail) {
    char tried[512];
    hp__pe_result r;
    json_decref(hp__pe_report(p->pe, tried, sizeof tried));
    hp__pe_get_result(p->pe, &r);
    say(p->direct_fail, sizeof p->direct_fail,
        "none within RELAY_AFTER (%.1f s): %u connect attempts, %u inbound, tried %s",
        p->cfg.relay_after, r.attempts, r.inbound_seen, tried);
  }
  p->chan = hp__ra_take(p->ra);
  hp__ra_destroy(p->ra);
  p->ra = NULL;
  hp__pe_destroy(p->pe);
  p->pe = NULL;
  p->relayed = 1;
  p->elapsed_ms = (double)((uv_hrtime() - p->hr_peer) / 1000) / 1000.0;
  if (!*p->direct_fail)
    snprintf(p->direct_fail, sizeof p->direct_fail,
             "no direct connection within RELAY_AFTER (%.1f s); the relay authenticated first",
             p->cfg.relay_after);
  snprintf(p->peer_addr, sizeof p->peer_addr, "%s", "");
  on_secured(p->chan, 0, NULL, p);
}

/* The relay attempt starts with the punch, connecting after relay_after. */
static void start_relay_attempt(hp_punch *p, const hp__msg_peer *pm) {
  hp__hs_params prm;
  hp__url ru;
  const hp__url *relay;
  uint64_t delay, bound;
  int r;

  if (p->cfg.relay_after < 0)
    return; /* RELAY_AFTER=off */
  memset(&prm, 0, sizeof prm);
  prm.session = p->session;
  prm.own_id = p->own_id;
  prm.peer_id = p->peer_id;
  prm.role = p->role[0];
  prm.psk = p->with_code ? p->psk : NULL;
  delay = (uint64_t)(p->cfg.relay_after * 1000.0) + (uint64_t)pm->start_in_ms;
  /* Connect, join and wait for the peer to join: until punching would give
   * up, plus 10 s for a relay that is slower to join than the punch (so a
   * worker without a relaying peer exits 5 at most ~10 s (+ the handshake's
   * 10 s) after P2P_CONNECT_TIMEOUT). */
  bound = (p->cfg.p2p_connect_timeout > p->cfg.relay_after
               ? (uint64_t)((p->cfg.p2p_connect_timeout - p->cfg.relay_after) * 1000.0)
               : 0) +
          10000;
  /* Several instances: the pair's relay is the waiting worker's instance,
   * named by peer.relay_url; without it, this rendezvous. The channel is
   * authenticated end to end either way, so the URL only routes bytes. */
  relay = &p->url;
  if (pm->relay_url[0]) {
    char err[160];
    if (hp__url_parse(pm->relay_url, &ru, err, sizeof err) == 0)
      relay = &ru;
    else
      HP_WARN("holepunch", ctx(p), "the rendezvous named a relay URL we cannot use (%s): %s",
              pm->relay_url, err);
  }
  r = hp__ra_start(p->loop, relay, p->ca_file, &prm, delay, bound, on_relay, p, &p->ra);
  if (r < 0) {
    p->ra = NULL;
    HP_WARN("holepunch", ctx(p), "cannot start the relay attempt: %s", strerror(-r));
  }
}

/* ---- punching ---- */

static void start_securing(hp_punch *p, hp__pe *pe);

static void on_punched(hp__pe *pe, int ok, void *data) {
  hp_punch *p = data;
  hp__pe_result r;

  hp__pe_get_result(pe, &r);
  /* Rounded to microseconds, so that the log shows 12.345, not 12.3449999. */
  p->elapsed_ms = (double)((uv_hrtime() - p->hr_peer) / 1000) / 1000.0;
  if (ok == 0) {
    snprintf(p->peer_addr, sizeof p->peer_addr, "%s", r.peer_addr);
    HP_INFO("holepunch",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:i, s:i}", "room", p->room,
                      "id", p->own_id, "peer", p->peer_id, "role", p->role, "addr", r.peer_addr,
                      "local", r.local_addr, "direction", r.direction, "elapsed_ms", p->elapsed_ms,
                      "punch_ms", (double)(long)(r.elapsed_ms * 1000) / 1000.0, "attempts",
                      (int)r.attempts, "rejected", (int)r.rejected),
            "direct connection established");
    start_securing(p, pe);
    return;
  }

  /* The one summary a person debugging a failed punch needs. */
  {
    char tried[1024], reason[HP_REASON_MAX];
    const char *hint;
    json_t *rep = hp__pe_report(pe, tried, sizeof tried);
    int port = p->cfg.internal_tcp_port;

    size_t nrefused = 0, ntried = 0, k;
    json_t *c;

    json_array_foreach(json_object_get(rep, "candidates"), k, c) {
      const char *le = json_string_value(json_object_get(c, "last_error"));
      if (json_integer_value(json_object_get(c, "attempts")) > 0) {
        ntried++;
        nrefused += le && strcmp(le, "refused") == 0;
      }
    }
    if (ok != -ETIMEDOUT)
      hint = "local failure (see the previous errors)";
    else if (r.inbound_seen == 0 && p->port_preserved < 0)
      hint = "the rendezvous is behind a proxy, so both mappings were guessed as public IP + "
             "INTERNAL_TCP_PORT; that guess is wrong when a NAT changes ports: run the "
             "rendezvous where it sees the workers' TCP connections directly";
    else if (r.inbound_seen == 0 && ntried > 0 && nrefused == ntried)
      hint = "every candidate answered our SYNs with a reset and no packet from the peer reached "
             "us: the peer's NAT rejects unsolicited SYNs and its own SYNs never arrived here, so "
             "it probably assigns a new port per destination (symmetric / port-randomizing NAT) "
             "or the peer is not punching; a relay is needed";
    else if (r.inbound_seen == 0)
      hint = "no packet from the peer reached us: its NAT probably assigns a new port per "
             "destination (symmetric / port-randomizing NAT) or drops our SYNs; a relay is needed";
    else if (r.rejected == r.inbound_seen)
      hint = "connections reached us but none carried the session: something else is "
             "talking to our port";
    else
      hint = "the peer reached us but the handshake never completed; check both logs";
    snprintf(reason, sizeof reason,
             "no direct connection to %s within %.1f s (%u connect attempts, %u inbound)",
             p->peer_id, p->cfg.p2p_connect_timeout, r.attempts, r.inbound_seen);
    if (rep) {
      json_object_update_new(rep, json_pack("{s:s, s:s, s:s, s:s, s:f, s:i, s:s, s:s}", "room",
                                            p->room, "id", p->own_id, "peer", p->peer_id, "role",
                                            p->role, "elapsed_ms", p->elapsed_ms, "local_port",
                                            port, "mapped", p->mapped, "hint", hint));
      json_object_set_new(rep, "port_preserved",
                          p->port_preserved < 0 ? json_null() : json_boolean(p->port_preserved));
    }
    if (p->ra) {
      /* The relay attempt decides now; the summary is its reason. */
      say(p->direct_fail, sizeof p->direct_fail, "%s; tried: %s; hint: %s", reason, tried, hint);
      hp__pe_destroy(p->pe);
      p->pe = NULL;
      HP_WARN("holepunch", rep,
              "no direct connection: %s; tried: %s; inbound seen: %u, rejected: %u; our "
              "mapping: %d -> %s; hint: %s; waiting for the relay",
              reason, tried, r.inbound_seen, r.rejected, port, *p->mapped ? p->mapped : "unknown",
              hint);
      p->st = P_RELAYING;
      hp__ra_now(p->ra);
      return;
    }
    if (*p->relay_fail)
      say(reason + strlen(reason), sizeof reason - strlen(reason), "; the relay failed too: %s",
          p->relay_fail);
    HP_ERROR("holepunch", rep,
             "giving up: %s; tried: %s; inbound seen: %u, rejected: %u; our mapping: %d -> %s "
             "(%s); hint: %s",
             reason, tried, r.inbound_seen, r.rejected, port, *p->mapped ? p->mapped : "unknown",
             p->port_preserved < 0 ? "port not observable"
             : p->port_preserved   ? "port preserved"
                                   : "NAT changed the port",
             hint);
    end(p, HP_STATUS_NO_DIRECT, reason);
  }
}

/* ---- signaling ---- */

static void on_sig_opened(void *data) {
  hp_punch *p = data;
  hp__msg m;
  int r;

  memset(&m, 0, sizeof m);
  m.type = HP_MSG_HELLO;
  m.u.hello.v = HP_PROTO_VERSION;
  snprintf(m.u.hello.id, sizeof m.u.hello.id, "%s", p->own_id);
  snprintf(m.u.hello.room, sizeof m.u.hello.room, "%s", p->room);
  m.u.hello.cands = p->cands;
  r = hp__sig_send(p->sig, &m);
  if (r < 0) {
    end(p, HP_STATUS_RENDEZVOUS, "cannot send the hello to the rendezvous");
    return;
  }
  /* WS_OPEN_TIMEOUT goes on until welcome: a service that takes the
   * upgrade but never answers is as unreachable as one that refuses. */
  HP_DEBUG("holepunch", ctx(p), "WebSocket open, hello sent");
}

static uint64_t progress_ms(const hp_punch *p) {
  uint64_t ms = (uint64_t)(p->cfg.ws_recv_timeout * 1000.0) / 8;
  return ms < PROGRESS_MIN_MS ? PROGRESS_MIN_MS : ms > PROGRESS_MAX_MS ? PROGRESS_MAX_MS : ms;
}

static void on_welcome(hp_punch *p, const hp__msg_welcome *w) {
  /* The service's id is the one the peer will expect in our hello. */
  snprintf(p->own_id, sizeof p->own_id, "%s", w->id);
  HP_INFO("holepunch",
          json_pack("{s:s, s:s, s:s}", "room", w->room, "id", w->id, "observed", w->observed),
          "registered in room %s as %s, waiting for a peer", w->room, w->id);
  p->st = P_WAITING_PEER;
  p->t_waiting = uv_now(p->loop);
  /* One wait for the right peer: a rejoin after a failed handshake keeps
   * the first deadline. */
  if (!p->wait_deadline)
    p->wait_deadline = p->t_waiting + (uint64_t)(p->cfg.ws_recv_timeout * 1000.0);
  p->deadline = p->wait_deadline;
  arm(p, progress_ms(p) < p->deadline - p->t_waiting ? progress_ms(p) : p->deadline - p->t_waiting);
}

static void on_peer(hp_punch *p, const hp__msg_peer *pm) {
  hp__pe_params prm;
  char desc[600];
  int r;

  p->hr_peer = uv_hrtime();
  uv_timer_stop(&p->timer);
  snprintf(p->peer_id, sizeof p->peer_id, "%s", pm->peer_id);
  p->role[0] = pm->role;
  p->role[1] = '\0';
  snprintf(p->session, sizeof p->session, "%s", pm->session);
  hp__cands_describe(&pm->peer_cands, desc, sizeof desc);
  HP_INFO("holepunch",
          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "room", p->room, "id", p->own_id, "peer",
                    p->peer_id, "role", p->role, "peer_observed", pm->peer_observed,
                    "peer_candidates", desc, "start_in_ms", (int)pm->start_in_ms),
          "paired with %s (role %s); punching to %s", p->peer_id, p->role, desc);
  memset(&prm, 0, sizeof prm);
  snprintf(prm.session, sizeof prm.session, "%s", pm->session);
  snprintf(prm.own_id, sizeof prm.own_id, "%s", p->own_id);
  snprintf(prm.peer_id, sizeof prm.peer_id, "%s", pm->peer_id);
  prm.role = pm->role;
  prm.cands = pm->peer_cands;
  prm.start_in_ms = pm->start_in_ms; /* 0..HP_START_IN_MS_MAX, checked by the decoder */
  if (pm->start_at_us) {
    /* A common instant on our own clock (that of our clock pings): the
     * delay counts from now, not from when the loop turn began. */
    long long in_us;
    uv_update_time(p->loop);
    in_us = (long long)pm->start_at_us - (long long)(uv_hrtime() / 1000);
    prm.start_in_ms = in_us <= 0                             ? 0
                      : in_us >= HP_START_IN_MS_MAX * 1000LL ? HP_START_IN_MS_MAX
                                                             : (long)((in_us + 500) / 1000);
    prm.synced = 1;
    HP_DEBUG("holepunch",
             json_pack("{s:I, s:i}", "start_in_us", (json_int_t)in_us, "late_ms",
                       in_us < 0 ? (int)(-in_us / 1000) : 0),
             "synchronised start in %lld us%s", in_us, in_us < 0 ? " (late: starting now)" : "");
  }
  prm.timeout_s = p->cfg.p2p_connect_timeout;
  prm.allow_loopback = p->cfg.allow_loopback_candidates;
  prm.low_ttl = p->cfg.low_ttl_syn;
  p->st = P_PUNCHING;
  p->relayed = 0;
  p->direct_fail[0] = p->relay_fail[0] = '\0';
  start_relay_attempt(p, pm);
  r = hp__pe_start(p->pe, &prm, on_punched, p);
  if (r < 0) {
    HP_ERROR("holepunch", ctx(p), "the peer message cannot be used for punching: %s", strerror(-r));
    end(p, HP_STATUS_RENDEZVOUS, "the peer message cannot be used for punching");
  }
}

static void on_sig_message(void *data, const hp__msg *m) {
  hp_punch *p = data;
  char reason[HP_REASON_MAX + 64];

  if (m->type == HP_MSG_WELCOME && p->st == P_SIGNALING) {
    on_welcome(p, &m->u.welcome);
    return;
  }
  if (m->type == HP_MSG_PEER && p->st == P_WAITING_PEER) {
    on_peer(p, &m->u.peer);
    return;
  }
  if (m->type == HP_MSG_ERROR) {
    if (p->st == P_PUNCHING || p->st == P_SECURING || p->st == P_RELAYING) {
      HP_WARN("holepunch", ctx(p), "the rendezvous sent an error while punching: %s: %s (ignored)",
              m->u.error.code, m->u.error.message);
      return;
    }
    snprintf(reason, sizeof reason, "the rendezvous refused us: %s: %s", m->u.error.code,
             m->u.error.message);
    HP_ERROR("holepunch",
             json_pack("{s:s, s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "code",
                       m->u.error.code, "error", m->u.error.message),
             "%s", reason);
    end(p, HP_STATUS_RENDEZVOUS, reason);
    return;
  }
  snprintf(reason, sizeof reason,
           "the rendezvous broke the protocol: unexpected message in state %s", phase_names[p->st]);
  if (p->st == P_PUNCHING || p->st == P_SECURING || p->st == P_RELAYING) {
    /* The direct path does not need the rendezvous any more. */
    HP_WARN("holepunch", ctx(p), "%s (ignored while punching)", reason);
    return;
  }
  HP_ERROR("holepunch", ctx(p), "%s", reason);
  end(p, HP_STATUS_RENDEZVOUS, reason);
}

static void on_sig_failed(void *data, const char *why) {
  hp_punch *p = data;
  char reason[HP_REASON_MAX];

  hp__sig_close(p->sig, NULL, NULL);
  p->sig = NULL;
  if (p->st == P_PUNCHING || p->st == P_SECURING || p->st == P_RELAYING) {
    HP_WARN("holepunch", ctx(p), "%s; punching goes on, the result cannot be reported", why);
    return;
  }
  if (p->st == P_WAITING_PEER)
    snprintf(reason, sizeof reason, "%s while we waited for a peer in room %s", why, p->room);
  else
    snprintf(reason, sizeof reason, "%s", why);
  HP_ERROR("holepunch",
           json_pack("{s:s, s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "url", p->url_str,
                     "phase", phase_names[p->st]),
           "%s", reason);
  end(p, HP_STATUS_RENDEZVOUS, reason);
}

static const hp__sig_cbs sig_cbs = {on_sig_opened, on_sig_message, on_sig_failed};

/* ---- discovery ---- */

static void discovered(hp_punch *p);

static void on_whoami(const hp__whoami_result *r, void *data) {
  hp_punch *p = data;
  int port = hp__pe_port(p->pe);

  p->who = NULL;
  if (r->status < 0) {
    HP_ERROR("holepunch",
             json_pack("{s:s, s:s, s:i}", "room", p->room, "url", p->url_str, "local_port", port),
             "cannot learn our public mapping: %s", r->err);
    end(p, HP_STATUS_RENDEZVOUS, r->err);
    return;
  }
  if (r->port < 0) {
    p->port_preserved = -1;
    hp__addr_join(r->ip, port, p->mapped, sizeof p->mapped);
    HP_WARN("holepunch",
            json_pack("{s:s, s:s, s:i}", "room", p->room, "mapped", p->mapped, "local_port", port),
            "the rendezvous cannot see our port (proxy in front of it); assuming a "
            "port-preserving NAT: %s",
            p->mapped);
  } else {
    p->port_preserved = r->port == port;
    hp__addr_join(r->ip, r->port, p->mapped, sizeof p->mapped);
  }
  p->who_done = 1;
  if (!p->disc_pending)
    discovered(p);
}

static void on_disc(const hp__disc_result *r, void *data) {
  hp_punch *p = data;

  p->disc_res = *r;
  p->disc_pending = 0;
  if (p->who_done)
    discovered(p);
}

/* Every discovery answered: our candidates, then the signaling. */
static void discovered(hp_punch *p) {
  int port = hp__pe_port(p->pe);
  char desc[600];
  int n;

  n = hp__cands_gather(p->mapped, port, &p->cands);
  if (n < 0) {
    HP_WARN("holepunch", NULL, "cannot list the local addresses: %s", strerror(-n));
    hp__cands_build(p->mapped, NULL, 0, port, &p->cands);
  }
  if (p->disc_opts.nstun || p->disc_opts.portmap) {
    struct sockaddr_storage rdv;
    char ra[HP_ADDR_STRLEN];
    socklen_t sl;
    int ok = hp__addr_join(p->url.host, p->url.port, ra, sizeof ra) > 0 &&
             hp__addr_parse(ra, strlen(ra), &rdv, &sl) == 0;
    hp__disc_apply(&p->disc_res, port, ok ? (struct sockaddr *)&rdv : NULL, p->mapped,
                   sizeof p->mapped, &p->port_preserved, &p->cands);
  }
  hp__cands_describe(&p->cands, desc, sizeof desc);
  HP_INFO("holepunch",
          json_pack("{s:s, s:s, s:i, s:s, s:s}", "room", p->room, "id", p->own_id, "local_port",
                    port, "mapped", p->mapped, "candidates", desc),
          "our mapping: local port %d -> %s (%s); candidates: %s", port, p->mapped,
          p->port_preserved < 0 ? "port not observable"
          : p->port_preserved   ? "port preserved"
                                : "NAT changed the port",
          desc);

  p->st = P_SIGNALING;
  if (hp__sig_open(p->loop, &p->url, p->ca_file, &sig_cbs, p, &p->sig) < 0) {
    p->sig = NULL;
    end(p, HP_STATUS_RENDEZVOUS, "cannot create the WebSocket client");
    return;
  }
  /* Creating the libwebsockets context can take a while (seconds on a
   * loaded machine under ASan): WS_OPEN_TIMEOUT counts from now, not from
   * the loop time cached before it. */
  uv_update_time(p->loop);
  arm(p, (uint64_t)(p->cfg.ws_open_timeout * 1000.0));
}

/* ---- listening ---- */

static void try_listen(hp_punch *p) {
  int r = hp__pe_create(p->loop, p->cfg.internal_tcp_port, &p->pe);

  if (r == -EADDRINUSE && uv_now(p->loop) < p->deadline) {
    arm(p, LISTEN_RETRY_MS);
    return;
  }
  if (r < 0) {
    char reason[HP_REASON_MAX];
    p->pe = NULL;
    snprintf(reason, sizeof reason, "cannot listen on INTERNAL_TCP_PORT %d within %.1f s: %s%s",
             p->cfg.internal_tcp_port, p->cfg.listener_ready_timeout, strerror(-r),
             r == -EADDRINUSE ? " (another program listens on it; choose another port)" : "");
    HP_ERROR("holepunch", json_pack("{s:i}", "port", p->cfg.internal_tcp_port), "%s", reason);
    end(p, HP_STATUS_CONFIG, reason);
    return;
  }
  HP_DEBUG("holepunch", json_pack("{s:i}", "port", hp__pe_port(p->pe)), "listening on port %d",
           hp__pe_port(p->pe));
  p->st = P_DISCOVERING;
  r = hp__whoami_start(p->loop, &p->url, hp__pe_port(p->pe), p->cfg.ws_open_timeout, p->ca_file,
                       on_whoami, p, &p->who);
  if (r < 0) {
    p->who = NULL;
    end(p, HP_STATUS_RENDEZVOUS, "cannot start the whoami request");
    return;
  }
  if (p->disc_opts.nstun || p->disc_opts.portmap) {
    /* Within the whoami's own bound, at most 3 s: a silent STUN server or
     * router must not hold up the pairing for long. */
    double t = p->cfg.ws_open_timeout < 3.0 ? p->cfg.ws_open_timeout : 3.0;
    p->disc_opts.timeout_ms = (unsigned)(t * 1000.0);
    if (hp__disc_start(p->loop, hp__pe_port(p->pe), &p->disc_opts, on_disc, p, &p->disc) == 0)
      p->disc_pending = 1;
    else
      p->disc = NULL;
  }
}

/* ---- the timer: deadlines, progress, the deferred callback ---- */

static void waiting_tick(hp_punch *p) {
  uint64_t now = uv_now(p->loop), next;

  if (now >= p->deadline) {
    char reason[HP_REASON_MAX + 128];
    if (p->auth_failures)
      snprintf(reason, sizeof reason, "%s (no other peer in room %s within %.1f s)", p->auth_reason,
               p->room, p->cfg.ws_recv_timeout);
    else
      snprintf(reason, sizeof reason, "no peer in room %s within %.1f s (WS_RECV_TIMEOUT)", p->room,
               p->cfg.ws_recv_timeout);
    HP_ERROR("holepunch", ctx(p), "%s", reason);
    end(p, p->auth_failures ? HP_STATUS_AUTH : HP_STATUS_NO_PEER, reason);
    return;
  }
  /* A person at a terminal wants to know the worker is alive; a log
   * collector does not need a line every 15 s. */
  HP_LOG(isatty(STDERR_FILENO) ? HP_LOG_INFO : HP_LOG_DEBUG, "holepunch",
         json_pack("{s:s, s:s, s:i, s:i}", "room", p->room, "id", p->own_id, "waited_s",
                   (int)((now - p->t_waiting) / 1000), "timeout_s", (int)p->cfg.ws_recv_timeout),
         "still waiting for a peer in room %s: %d s of %.0f", p->room,
         (int)((now - p->t_waiting + 500) / 1000), p->cfg.ws_recv_timeout);
  next = p->deadline - now;
  arm(p, next < progress_ms(p) ? next : progress_ms(p));
}

static void on_timer(uv_timer_t *t) {
  hp_punch *p = t->data;
  char reason[HP_REASON_MAX];

  switch (p->st) {
  case P_LISTENING:
    try_listen(p);
    return;
  case P_SIGNALING:
    snprintf(reason, sizeof reason,
             "the rendezvous at %s did not %s within %.1f s (WS_OPEN_TIMEOUT)", p->url_str,
             p->sig ? "open the WebSocket and answer our hello" : "answer", p->cfg.ws_open_timeout);
    HP_ERROR("holepunch", ctx(p), "%s", reason);
    end(p, HP_STATUS_RENDEZVOUS, reason);
    return;
  case P_WAITING_PEER:
    waiting_tick(p);
    return;
  case P_ENDING:
    p->st = P_ENDED;
    p->cb(p, p->status, p->data); /* may destroy p */
    return;
  default:
    return;
  }
}

/* ---- public API ---- */

int hp_punch_start(uv_loop_t *loop, const hp_config *cfg, hp_done_cb cb, void *data,
                   hp_punch **out) {
  char err[HP_REASON_MAX], code_room[HP_CODE_ROOM_STRLEN];
  uint8_t psk[HP_CODE_PSK_BYTES];
  const int with_code = cfg && cfg->code && *cfg->code;
  hp_punch *p;
  const char *room;

  if (!loop || !cfg || !cb || !out || !cfg->rendezvous_url)
    return -EINVAL;
  room = cfg->room && *cfg->room ? cfg->room : "default";
  if (with_code) {
    uint8_t secret[HP_CODE_SECRET_BYTES];
    /* A mistyped code is refused here, before any traffic. */
    if (hp__code_parse(cfg->code, strlen(cfg->code), secret, err, sizeof err) < 0) {
      HP_ERROR("holepunch", NULL, "bad code: %s", err);
      return -EINVAL;
    }
    hp__code_psk(secret, psk);
    hp__code_room(secret, code_room);
    sodium_memzero(secret, sizeof secret);
    if (!cfg->room || !*cfg->room)
      room = code_room; /* unguessable; the rendezvous never sees the secret */
  }
  if (!hp__wire_valid_name(room, strlen(room))) {
    HP_ERROR("holepunch", json_pack("{s:s}", "room", room),
             "bad room \"%s\": use 1-64 of A-Z a-z 0-9 . _ -", room);
    return -EINVAL;
  }
  if (cfg->worker_id && *cfg->worker_id &&
      (!hp__wire_valid_name(cfg->worker_id, strlen(cfg->worker_id)) ||
       strcmp(cfg->worker_id, "use") == 0)) {
    HP_ERROR("holepunch", NULL,
             "bad worker id \"%s\": use 1-64 of A-Z a-z 0-9 . _ - other than \"use\"",
             cfg->worker_id);
    return -EINVAL;
  }
  if (cfg->internal_tcp_port < 0 || cfg->internal_tcp_port > 65535 || !(cfg->ws_open_timeout > 0) ||
      !(cfg->ws_recv_timeout > 0) || !(cfg->listener_ready_timeout > 0) ||
      !(cfg->p2p_connect_timeout > 0) || cfg->low_ttl_syn < 0 || cfg->low_ttl_syn > 32) {
    HP_ERROR("holepunch", NULL, "bad configuration: ports 0-65535, timeouts > 0");
    return -EINVAL;
  }
  p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  {
    char bad[96];
    int n = hp__addr_list_parse(cfg->stun_servers, p->disc_opts.stun, HP_DISC_STUN_MAX, bad,
                                sizeof bad);
    if (n < 0) {
      HP_ERROR("holepunch", NULL, "bad STUN server list: %s",
               n == -E2BIG ? "more than 4 servers" : "an entry is not ip:port");
      free(p);
      return -EINVAL;
    }
    p->disc_opts.nstun = (size_t)n;
    p->disc_opts.portmap = cfg->port_mapping != 0;
  }
  if (hp__url_parse(cfg->rendezvous_url, &p->url, err, sizeof err) < 0) {
    HP_ERROR("holepunch", json_pack("{s:s}", "url", cfg->rendezvous_url), "bad rendezvous URL: %s",
             err);
    free(p);
    return -EINVAL;
  }
  p->url_str = strdup(cfg->rendezvous_url);
  p->ca_file = cfg->ca_file && *cfg->ca_file ? strdup(cfg->ca_file) : NULL;
  if (!p->url_str || (cfg->ca_file && *cfg->ca_file && !p->ca_file)) {
    free(p->url_str);
    free(p->ca_file);
    free(p);
    return -ENOMEM;
  }
  p->cfg = *cfg;
  p->cfg.stun_servers = NULL; /* parsed into disc_opts; the string is the caller's */
  p->cfg.rendezvous_url = p->url_str;
  p->cfg.ca_file = p->ca_file;
  p->cfg.room = p->room;
  p->cfg.worker_id = p->own_id;
  p->cfg.code = NULL; /* only the derived key is kept */
  snprintf(p->room, sizeof p->room, "%s", room);
  if (with_code) {
    p->with_code = 1;
    memcpy(p->psk, psk, sizeof psk);
    sodium_memzero(psk, sizeof psk);
  }
  if (cfg->worker_id && *cfg->worker_id) {
    snprintf(p->own_id, sizeof p->own_id, "%s", cfg->worker_id);
  } else {
    p->id_generated = 1;
    if (hp__random_hex(p->own_id, 8) < 0)
      snprintf(p->own_id, sizeof p->own_id, "w%ld", (long)getpid());
  }
  p->loop = loop;
  p->cb = cb;
  p->data = data;
  p->port_preserved = -1;
  p->st = P_LISTENING;
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->deadline = uv_now(loop) + (uint64_t)(cfg->listener_ready_timeout * 1000.0);
  HP_INFO("holepunch",
          json_pack("{s:s, s:s, s:s, s:i, s:b}", "room", p->room, "id", p->own_id, "url",
                    p->url_str, "port", cfg->internal_tcp_port, "code", p->with_code),
          "starting: room %s%s, id %s, rendezvous %s, port %d, %s", p->room,
          p->with_code && !(cfg->room && *cfg->room) ? " (from the code)" : "", p->own_id,
          p->url_str, cfg->internal_tcp_port,
          p->with_code ? "the peer must know the code"
                       : "no code: encrypted, the peer unauthenticated");
  *out = p;
  /* The first listen happens on the loop, so that cb never fires inside
   * this call. */
  arm(p, 0);
  return 0;
}

hp_bs *hp__punch_take_bs(hp_punch *p) {
  hp_bs *s;

  if (!p || (p->st != P_ENDING && p->st != P_ENDED) || p->status != HP_STATUS_OK)
    return NULL;
  s = p->chan;
  p->chan = NULL; /* the caller owns it now */
  return s;
}

hp_stream *hp_punch_take_stream(hp_punch *p) {
  return hp__stream_wrap(hp__punch_take_bs(p));
}

int hp_punch_take_fd(hp_punch *p) {
  hp_bs *s = hp__punch_take_bs(p);
  int fd = -1, r;

  if (!s)
    return -1;
  r = hp__bridge_start(p->loop, s, &fd); /* owns s, also on failure */
  if (r < 0) {
    HP_ERROR("holepunch", ctx(p), "cannot bridge the secure channel to a socket: %s", strerror(-r));
    return -1;
  }
  return fd;
}

const char *hp_punch_state(const hp_punch *p) {
  if (!p)
    return "none";
  if (p->st >= P_ENDING)
    return p->status == HP_STATUS_OK ? "connected" : "failed";
  return phase_names[p->st];
}

void hp_punch_info(const hp_punch *p, hp_info *info) {
  if (!info)
    return;
  memset(info, 0, sizeof *info);
  if (!p) {
    info->own_id = info->peer_id = info->role = info->peer_addr = info->mapped_addr = info->reason =
        info->transport = info->relay_reason = "";
    return;
  }
  info->own_id = p->own_id;
  info->peer_id = p->peer_id;
  info->role = p->role;
  info->peer_addr = p->peer_addr;
  info->mapped_addr = p->mapped;
  info->reason = p->reason;
  info->elapsed_ms = p->elapsed_ms;
  info->transport =
      p->st >= P_ENDING && p->status == HP_STATUS_OK ? (p->relayed ? "relayed" : "direct") : "";
  info->relay_reason = p->relayed ? p->direct_fail : "";
}

const char *hp__punch_session(const hp_punch *p) {
  return p ? p->session : "";
}

static void on_timer_closed(uv_handle_t *h) {
  hp_punch *p = h->data;
  free(p->url_str);
  free(p->ca_file);
  free(p);
}

void hp_punch_destroy(hp_punch *p) {
  if (!p || p->st == P_DESTROYED)
    return;
  p->st = P_DESTROYED; /* no callback from here on */
  hp__whoami_cancel(p->who);
  p->who = NULL;
  hp__disc_stop(p->disc);
  p->disc = NULL;
  hp__sig_close(p->sig, NULL, NULL);
  p->sig = NULL;
  hp__pe_destroy(p->pe);
  p->pe = NULL;
  hp__ra_destroy(p->ra);
  p->ra = NULL;
  if (p->chan)
    hp_bs_close(p->chan); /* a channel nobody took */
  p->chan = NULL;
  sodium_memzero(p->psk, sizeof p->psk);
  uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}
