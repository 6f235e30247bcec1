/*
 * holepunch.c - the public API: one punch attempt from listener to
 * authenticated socket, as an explicit phase machine on the caller's loop.
 * Each phase owns what it started; hp__ses_end() stops them all at once.
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
 *
 * This file holds the public API, the lifetime, the one timer and the end of
 * an attempt; LISTENING .. WAITING_PEER are in holepunch_signal.c, PUNCHING,
 * RELAYING and SECURING in holepunch_race.c (struct in holepunch_session.h).
 */
#include "holepunch.h"
#include "holepunch_int.h"
#include "holepunch_session.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan/bridge.h"
#include "log.h"
#include "stream_int.h"

const char *const hp__phase_names[] = {"listening", "discovering", "signaling", "waiting_peer",
                                       "punching",  "securing",    "relaying"};

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

json_t *hp__ses_ctx(const hp_punch *p) {
  return json_pack("{s:s, s:s}", "room", p->room, "id", p->own_id);
}

static void on_timer(uv_timer_t *t);

void hp__ses_arm(hp_punch *p, uint64_t ms) {
  uv_timer_start(&p->timer, on_timer, ms, 0);
}

/* ---- the end of an attempt ---- */

void hp__ses_send_result(hp_punch *p, int ok, const char *reason) {
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
    HP_WARN("holepunch", hp__ses_ctx(p), "cannot report the result to the rendezvous: %s",
            strerror(-r));
}

/* Decide the outcome and stop every phase now; the callback follows on the
 * next loop turn (never inside a call of ours or of a module's callback). */
void hp__ses_end(hp_punch *p, hp_status status, const char *reason) {
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
  hp__hs_wipe(&p->dhs);
  p->dhs_sent = 0;
  if (status != HP_STATUS_OK && p->chan) {
    hp_bs_close(p->chan);
    p->chan = NULL;
  }
  if (p->sig) {
    /* The rendezvous hears the result and a close frame; the client tears
     * itself down without calling back, so the caller gets the channel now
     * rather than after the close handshake. */
    if (paired)
      hp__ses_send_result(p, status == HP_STATUS_OK, p->relayed ? p->direct_fail : p->reason);
    hp__sig_close(p->sig, NULL, NULL);
    p->sig = NULL;
  }
  hp__ses_arm(p, 0);
}

uint64_t hp__ses_progress_ms(const hp_punch *p) {
  uint64_t ms = (uint64_t)(p->cfg.ws_recv_timeout * 1000.0) / 8;
  return ms < PROGRESS_MIN_MS ? PROGRESS_MIN_MS : ms > PROGRESS_MAX_MS ? PROGRESS_MAX_MS : ms;
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
    HP_ERROR("holepunch", hp__ses_ctx(p), "%s", reason);
    hp__ses_end(p, p->auth_failures ? HP_STATUS_AUTH : HP_STATUS_NO_PEER, reason);
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
  hp__ses_arm(p, next < hp__ses_progress_ms(p) ? next : hp__ses_progress_ms(p));
}

static void on_timer(uv_timer_t *t) {
  hp_punch *p = t->data;
  char reason[HP_REASON_MAX];

  switch (p->st) {
  case P_LISTENING:
    hp__ses_try_listen(p);
    return;
  case P_SIGNALING:
    snprintf(reason, sizeof reason,
             "the rendezvous at %s did not %s within %.1f s (WS_OPEN_TIMEOUT)", p->url_str,
             p->sig ? "open the WebSocket and answer our hello" : "answer", p->cfg.ws_open_timeout);
    HP_ERROR("holepunch", hp__ses_ctx(p), "%s", reason);
    hp__ses_end(p, HP_STATUS_RENDEZVOUS, reason);
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
    int n = hp__hostport_list_parse(cfg->stun_servers, p->disc_opts.stun, HP_DISC_STUN_MAX, bad,
                                    sizeof bad);
    if (n < 0) {
      if (n == -E2BIG)
        HP_ERROR("holepunch", NULL, "bad STUN server list: more than 4 servers");
      else
        HP_ERROR("holepunch", json_pack("{s:s}", "entry", bad),
                 "bad STUN server list: \"%s\" is not host:port (an IP, [IPv6] or a DNS name; "
                 "port 1-65535)",
                 bad);
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
  hp__ses_arm(p, 0);
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
    HP_ERROR("holepunch", hp__ses_ctx(p), "cannot bridge the secure channel to a socket: %s",
             strerror(-r));
    return -1;
  }
  return fd;
}

const char *hp_punch_state(const hp_punch *p) {
  if (!p)
    return "none";
  if (p->st >= P_ENDING)
    return p->status == HP_STATUS_OK ? "connected" : "failed";
  return hp__phase_names[p->st];
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
  hp__hs_wipe(&p->dhs);
  uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}
