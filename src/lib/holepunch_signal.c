/*
 * holepunch_signal.c - the session's way to a peer: LISTENING (the punch
 * port, retried while busy), DISCOVERING (whoami, local candidates, STUN and
 * the port mapping) and SIGNALING / WAITING_PEER (hello, welcome, the peer
 * message that starts punching). Split from holepunch.c to keep one concern
 * per file; the struct and the phases are in holepunch_session.h.
 */
#include "holepunch_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

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
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, "cannot send the hello to the rendezvous");
    return;
  }
  /* WS_OPEN_TIMEOUT goes on until welcome: a service that takes the
   * upgrade but never answers is as unreachable as one that refuses. */
  HP_DEBUG("holepunch", hp__ses_ctx(p), "WebSocket open, hello sent");
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
  hp__ses_arm(p, hp__ses_progress_ms(p) < p->deadline - p->t_waiting ? hp__ses_progress_ms(p)
                                                                     : p->deadline - p->t_waiting);
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
  prm.on_nominate = hp__ses_on_nominate;
  prm.may_nominate_early = hp__ses_may_nominate_early;
  prm.on_unnominate = hp__ses_on_unnominate;
  p->st = P_PUNCHING;
  p->relayed = 0;
  p->direct_fail[0] = p->relay_fail[0] = '\0';
  snprintf(p->relay_url, sizeof p->relay_url, "%s", pm->relay_url);
  p->start_in_ms = pm->start_in_ms;
  p->ra_dropped_unstarted = 0;
  {
    /* Our HELLO of the direct path's handshake, sent with the session lines
     * (docs/PROTOCOL.md section 5); without it the channel sends its own. */
    hp__hs_params hprm;
    hp__ses_hs_params(p, &hprm);
    p->dhs_sent = hp__hs_init(&p->dhs, &hprm, p->dhello) == 0;
    if (p->dhs_sent) {
      prm.chan_hello = p->dhello;
      prm.chan_hello_len = sizeof p->dhello;
    }
  }
  if (p->cfg.relay_after >= 0)
    hp__ses_start_relay_attempt(p, (uint64_t)(p->cfg.relay_after * 1000.0) +
                                       (uint64_t)pm->start_in_ms);
  r = hp__pe_start(p->pe, &prm, hp__ses_on_punched, p);
  if (r < 0) {
    HP_ERROR("holepunch", hp__ses_ctx(p), "the peer message cannot be used for punching: %s",
             strerror(-r));
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, "the peer message cannot be used for punching");
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
      HP_WARN("holepunch", hp__ses_ctx(p),
              "the rendezvous sent an error while punching: %s: %s (ignored)", m->u.error.code,
              m->u.error.message);
      return;
    }
    snprintf(reason, sizeof reason, "the rendezvous refused us: %s: %s", m->u.error.code,
             m->u.error.message);
    HP_ERROR("holepunch",
             json_pack("{s:s, s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "code",
                       m->u.error.code, "error", m->u.error.message),
             "%s", reason);
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, reason);
    return;
  }
  snprintf(reason, sizeof reason,
           "the rendezvous broke the protocol: unexpected message in state %s",
           hp__phase_names[p->st]);
  if (p->st == P_PUNCHING || p->st == P_SECURING || p->st == P_RELAYING) {
    /* The direct path does not need the rendezvous any more. */
    HP_WARN("holepunch", hp__ses_ctx(p), "%s (ignored while punching)", reason);
    return;
  }
  HP_ERROR("holepunch", hp__ses_ctx(p), "%s", reason);
  hp__ses_end(p, HP_STATUS_RENDEZVOUS, reason);
}

static void on_sig_failed(void *data, const char *why) {
  hp_punch *p = data;
  char reason[HP_REASON_MAX];

  hp__sig_close(p->sig, NULL, NULL);
  p->sig = NULL;
  if (p->st == P_PUNCHING || p->st == P_SECURING || p->st == P_RELAYING) {
    HP_WARN("holepunch", hp__ses_ctx(p), "%s; punching goes on, the result cannot be reported",
            why);
    return;
  }
  if (p->st == P_WAITING_PEER)
    snprintf(reason, sizeof reason, "%s while we waited for a peer in room %s", why, p->room);
  else
    snprintf(reason, sizeof reason, "%s", why);
  HP_ERROR("holepunch",
           json_pack("{s:s, s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "url", p->url_str,
                     "phase", hp__phase_names[p->st]),
           "%s", reason);
  hp__ses_end(p, HP_STATUS_RENDEZVOUS, reason);
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
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, r->err);
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
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, "cannot create the WebSocket client");
    return;
  }
  /* Creating the libwebsockets context can take a while (seconds on a
   * loaded machine under ASan): WS_OPEN_TIMEOUT counts from now, not from
   * the loop time cached before it. */
  uv_update_time(p->loop);
  hp__ses_arm(p, (uint64_t)(p->cfg.ws_open_timeout * 1000.0));
}

/* ---- listening ---- */

void hp__ses_try_listen(hp_punch *p) {
  int r = hp__pe_create(p->loop, p->cfg.internal_tcp_port, &p->pe);

  if (r == -EADDRINUSE && uv_now(p->loop) < p->deadline) {
    hp__ses_arm(p, LISTEN_RETRY_MS);
    return;
  }
  if (r < 0) {
    char reason[HP_REASON_MAX];
    p->pe = NULL;
    snprintf(reason, sizeof reason, "cannot listen on INTERNAL_TCP_PORT %d within %.1f s: %s%s",
             p->cfg.internal_tcp_port, p->cfg.listener_ready_timeout, strerror(-r),
             r == -EADDRINUSE ? " (another program listens on it; choose another port)" : "");
    HP_ERROR("holepunch", json_pack("{s:i}", "port", p->cfg.internal_tcp_port), "%s", reason);
    hp__ses_end(p, HP_STATUS_CONFIG, reason);
    return;
  }
  HP_DEBUG("holepunch", json_pack("{s:i}", "port", hp__pe_port(p->pe)), "listening on port %d",
           hp__pe_port(p->pe));
  p->st = P_DISCOVERING;
  r = hp__whoami_start(p->loop, &p->url, hp__pe_port(p->pe), p->cfg.ws_open_timeout, p->ca_file,
                       on_whoami, p, &p->who);
  if (r < 0) {
    p->who = NULL;
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, "cannot start the whoami request");
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
