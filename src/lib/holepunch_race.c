/*
 * holepunch_race.c - the session once paired: the punch engine's result,
 * the relay attempt raced against it, the secure handshake on whichever
 * wins, and dropping (then rejoining without) a peer that fails it. Split
 * from holepunch.c to keep one concern per file; the struct and the phases
 * are in holepunch_session.h.
 */
#include "holepunch_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdarg.h>

#include "chan/tcp.h"
#include "log.h"

/* ---- the secure handshake on the punched connection ---- */

/* The peer we were paired with failed the handshake: tell the rendezvous,
 * and wait in the room for the right peer while the wait's deadline allows. */
static void rejoin(hp_punch *p, const char *why) {
  uint64_t now = uv_now(p->loop);

  hp__ra_destroy(p->ra); /* the relay would meet the same peer */
  p->ra = NULL;
  hp__hs_wipe(&p->dhs);
  p->dhs_sent = 0;
  p->relayed = 0;
  p->direct_fail[0] = p->relay_fail[0] = '\0';
  if (p->sig) {
    hp__ses_send_result(p, 0, why);
    hp__sig_close(p->sig, NULL, NULL);
    p->sig = NULL;
  }
  if (now + REJOIN_DELAY_MS >= p->wait_deadline) {
    char reason[HP_REASON_MAX + 128];
    hp_status st = p->auth_failures ? HP_STATUS_AUTH : HP_STATUS_NO_PEER;
    snprintf(reason, sizeof reason, "%s (no other peer in room %s within %.1f s)",
             p->auth_failures ? p->auth_reason : why, p->room, p->cfg.ws_recv_timeout);
    HP_ERROR("holepunch", hp__ses_ctx(p), "giving up: %s", reason);
    p->st = P_WAITING_PEER; /* not paired any more: no second result */
    hp__ses_end(p, st, reason);
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
  hp__ses_arm(p, REJOIN_DELAY_MS);
}

static void on_secured(hp_bs *s, int status, const char *why, void *data) {
  hp_punch *p = data;
  (void)s;

  if (status == 0) {
    /* From receiving peer to the channel's first authenticated byte: what a
     * user waits for (bench/traversal.sh). */
    double secured_ms = (double)((uv_hrtime() - p->hr_peer) / 1000) / 1000.0;
    if (p->relayed)
      HP_INFO("holepunch",
              json_pack("{s:s, s:s, s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "peer",
                        p->peer_id, "transport", "relayed", "direct_failed", p->direct_fail),
              "relayed connection to %s established (no direct connection: %s)", p->peer_id,
              p->direct_fail);
    if (p->with_code)
      HP_INFO("holepunch",
              json_pack("{s:s, s:s, s:s, s:b, s:f}", "room", p->room, "id", p->own_id, "peer",
                        p->peer_id, "authenticated", 1, "elapsed_ms", secured_ms),
              "secure channel up: %s proved it knows the code", p->peer_id);
    else
      HP_WARN("holepunch",
              json_pack("{s:s, s:s, s:s, s:b, s:f}", "room", p->room, "id", p->own_id, "peer",
                        p->peer_id, "authenticated", 0, "elapsed_ms", secured_ms),
              "secure channel up, encrypted but the peer is unauthenticated (no code): %s is "
              "whoever the rendezvous paired us with; use --code to authenticate it",
              p->peer_id);
    hp__ses_end(p, HP_STATUS_OK, NULL);
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
   * sides see the same nomination, so both drop the relay (role a already
   * did when it wrote the nomination: hp__ses_on_nominate). */
  hp__pe_destroy(p->pe);
  p->pe = NULL;
  if (hp__ra_awaiting_a(p->ra))
    HP_DEBUG("holepunch", hp__ses_ctx(p),
             "direct connection nominated: the relay attempt is dropped (its handshake was done, "
             "but a had not taken the relay)");
  else if (p->ra)
    HP_DEBUG("holepunch", hp__ses_ctx(p),
             "direct connection nominated: the relay attempt is dropped");
  hp__ra_destroy(p->ra);
  p->ra = NULL;
  r = fd < 0 ? -EBADF : hp__tcp_from_fd(p->loop, fd, &carrier);
  if (r < 0) {
    if (fd >= 0)
      close(fd);
    hp__ses_end(p, HP_STATUS_NO_DIRECT, "cannot use the connected socket");
    return;
  }
  p->st = P_SECURING;
  if (p->dhs_sent) {
    /* Our HELLO went out with the session lines: the handshake goes on. */
    r = hp__secure_start_sent(p->loop, carrier, &p->dhs, SECURE_TIMEOUT_MS, on_secured, p,
                              &p->chan);
    hp__hs_wipe(&p->dhs);
    p->dhs_sent = 0;
  } else {
    hp__ses_hs_params(p, &prm);
    r = hp__secure_start(p->loop, carrier, &prm, SECURE_TIMEOUT_MS, on_secured, p, &p->chan);
  }
  if (r < 0) {
    p->chan = NULL;
    hp__ses_end(p, HP_STATUS_NO_DIRECT, "cannot start the secure handshake");
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
    HP_ERROR("holepunch", hp__ses_ctx(p), "giving up: %s", reason);
    hp__ses_end(p, HP_STATUS_NO_DIRECT, reason);
    return;
  }
  /* The relay authenticated first: the punch (if still running) goes,
   * and what it tried so far is the reason the connection is relayed.
   * Role a: it has not nominated (that would have dropped the relay), and
   * its stream header on the relay, already out, tells b it took the relay.
   * Role b: a's stream header came, so a took the relay and never
   * nominates (relay_attempt.c waits for it). */
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

/* The secure handshake's parameters for this pairing (direct or relayed). */
void hp__ses_hs_params(const hp_punch *p, hp__hs_params *prm) {
  memset(prm, 0, sizeof *prm);
  prm->session = p->session;
  prm->own_id = p->own_id;
  prm->peer_id = p->peer_id;
  prm->role = p->role[0];
  prm->psk = p->with_code ? p->psk : NULL;
}

/* The relay attempt starts with the punch, connecting after delay ms from
 * now: at `peer`, RELAY_AFTER + start_in_ms (so RELAY_AFTER counts from the
 * first SYNs); when restarted, what is left of that. p->relay_url is the
 * peer message's. */
void hp__ses_start_relay_attempt(hp_punch *p, uint64_t delay) {
  hp__hs_params prm;
  hp__url ru;
  const hp__url *relay;
  uint64_t bound;
  int r;

  if (p->cfg.relay_after < 0)
    return; /* RELAY_AFTER=off */
  hp__ses_hs_params(p, &prm);
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
  if (p->relay_url[0]) {
    char err[160];
    if (hp__url_parse(p->relay_url, &ru, err, sizeof err) == 0)
      relay = &ru;
    else
      HP_WARN("holepunch", hp__ses_ctx(p),
              "the rendezvous named a relay URL we cannot use (%s): %s", p->relay_url, err);
  }
  r = hp__ra_start(p->loop, relay, p->ca_file, &prm, delay, bound, on_relay, p, &p->ra);
  if (r < 0) {
    p->ra = NULL;
    HP_WARN("holepunch", hp__ses_ctx(p), "cannot start the relay attempt: %s", strerror(-r));
  }
}

/* ---- punching ---- */

static void start_securing(hp_punch *p, hp__pe *pe);

/* Role a is about to write its nomination: it commits to the direct path
 * now, so the relay attempt goes before it can send another handshake
 * message (its CONFIRM may be out, but not the stream header that tells b
 * that a took the relay: docs/PROTOCOL.md section 9, "One path"). Had the
 * relay authenticated first, the engine would be gone and never nominate. */
void hp__ses_on_nominate(void *data) {
  hp_punch *p = data;

  if (!p->ra)
    return;
  HP_DEBUG("holepunch", hp__ses_ctx(p),
           "nominating the direct connection: the relay attempt is dropped");
  p->ra_dropped_unstarted = !hp__ra_started(p->ra);
  hp__ra_destroy(p->ra);
  p->ra = NULL;
}

/* Role a may nominate a connection before the peer's hello only while that
 * cannot cost the relay: no relay attempt, or one still in its delay (it
 * is restarted if the early nominee fails, hp__ses_on_unnominate); one that
 * has joined the relay cannot join again (the session is used). */
int hp__ses_may_nominate_early(void *data) {
  const hp_punch *p = data;
  return !p->ra || !hp__ra_started(p->ra);
}

/* The early nominee failed and nothing else is nominated: give back the
 * relay attempt it dropped, with what is left of its delay. */
void hp__ses_on_unnominate(void *data) {
  hp_punch *p = data;
  uint64_t due, now_ms;

  if (!p->ra_dropped_unstarted || p->ra)
    return;
  p->ra_dropped_unstarted = 0;
  due = (uint64_t)(p->cfg.relay_after * 1000.0) + (uint64_t)p->start_in_ms;
  now_ms = (uv_hrtime() - p->hr_peer) / 1000000;
  HP_INFO("holepunch", hp__ses_ctx(p),
          "the early-nominated connection failed before the peer's hello: the relay attempt is "
          "back");
  hp__ses_start_relay_attempt(p, due > now_ms ? due - now_ms : 0);
}

void hp__ses_on_punched(hp__pe *pe, int ok, void *data) {
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
    hp__ses_end(p, HP_STATUS_NO_DIRECT, reason);
  }
}
