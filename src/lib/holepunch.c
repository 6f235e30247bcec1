/*
 * holepunch.c - the public API: one punch attempt from listener to
 * authenticated socket, driving the modules on the caller's loop:
 *
 *   listening   hp__pe_create: listener on P (retried while the port is busy)
 *   discovering hp__whoami from P -> srflx; hp__cands_gather
 *   signaling   hp__sig_open, hello
 *   waiting_peer welcome, then peer (WS_RECV_TIMEOUT)
 *   punching    hp__pe_start
 *   connected / failed: result on the WebSocket, polite close, callback
 */
#include "holepunch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "candidates.h"
#include "log.h"
#include "punch.h"
#include "signal_client.h"
#include "url.h"
#include "whoami.h"
#include "wire.h"

#define LISTEN_RETRY_MS 250

typedef enum state {
  S_LISTENING,
  S_DISCOVERING,
  S_SIGNALING,
  S_WAITING_PEER,
  S_PUNCHING,
  S_CONNECTED,
  S_FAILED
} state;

static const char *const state_names[] = {"listening", "discovering", "signaling", "waiting_peer",
                                          "punching",  "connected",   "failed"};

struct hp_punch {
  uv_loop_t *loop;
  hp_config cfg; /* strings below are owned copies */
  char *url_str, *ca_file;
  hp__url url;
  char room[HP_ID_MAX + 1];
  char own_id[HP_ID_MAX + 1];
  char peer_id[HP_ID_MAX + 1];
  char role[2];
  char mapped[HP_ADDR_STRLEN];
  char peer_addr[HP_ADDR_STRLEN];
  char reason[HP_REASON_MAX];
  int port_preserved; /* -1 unknown */
  state st;
  hp_status status;
  hp__pe *pe;
  hp__whoami *who;
  hp__sig *sig;
  uv_timer_t timer; /* listener retry, WS open, WS recv */
  uint64_t listen_deadline;
  uint64_t hr_peer; /* when the peer message arrived */
  double elapsed_ms;
  int welcomed;
  int done_fired, destroyed;
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
}

const char *hp_version(void) {
  return HP_VERSION;
}

static json_t *ctx(const hp_punch *p) {
  return json_pack("{s:s, s:s}", "room", p->room, "id", p->own_id);
}

/* ---- the end of an attempt ---- */

static void fire(void *arg) {
  hp_punch *p = arg;
  if (p->done_fired || p->destroyed)
    return;
  p->done_fired = 1;
  p->cb(p, p->status, p->data);
}

static void on_sig_closed(void *arg) {
  fire(arg);
}

/* Stop every phase; report the outcome on the WebSocket when it is open
 * (result), close it politely, then fire the callback. */
static void end(hp_punch *p, hp_status status, const char *reason) {
  if (p->st == S_CONNECTED || p->st == S_FAILED)
    return;
  p->st = status == HP_STATUS_OK ? S_CONNECTED : S_FAILED;
  p->status = status;
  snprintf(p->reason, sizeof p->reason, "%s", reason ? reason : "");
  uv_timer_stop(&p->timer);
  hp__whoami_cancel(p->who);
  p->who = NULL;
  if (p->sig) {
    hp__sig *s = p->sig;
    p->sig = NULL;
    hp__sig_close(s, on_sig_closed, p);
  } else {
    fire(p);
  }
}

static void send_result(hp_punch *p, int direct) {
  hp__msg m;
  int r;

  if (!p->sig)
    return;
  memset(&m, 0, sizeof m);
  m.type = HP_MSG_RESULT;
  m.u.result.status = direct ? HP_RESULT_DIRECT : HP_RESULT_FAILED;
  snprintf(m.u.result.addr, sizeof m.u.result.addr, "%s", direct ? p->peer_addr : "");
  m.u.result.elapsed_ms = (long)(p->elapsed_ms + 0.5);
  snprintf(m.u.result.reason, sizeof m.u.result.reason, "%s", direct ? "" : p->reason);
  r = hp__sig_send(p->sig, &m);
  if (r < 0)
    HP_WARN("holepunch", ctx(p), "cannot report the result to the rendezvous: %s", strerror(-r));
}

/* ---- punching ---- */

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
    send_result(p, 1);
    end(p, HP_STATUS_OK, NULL);
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
    HP_ERROR("holepunch", rep,
             "giving up: %s; tried: %s; inbound seen: %u, rejected: %u; our mapping: %d -> %s "
             "(%s); hint: %s",
             reason, tried, r.inbound_seen, r.rejected, port, *p->mapped ? p->mapped : "unknown",
             p->port_preserved < 0 ? "port not observable"
             : p->port_preserved   ? "port preserved"
                                   : "NAT changed the port",
             hint);
    snprintf(p->reason, sizeof p->reason, "%s", reason);
    send_result(p, 0);
    end(p, HP_STATUS_NO_DIRECT, reason);
  }
}

/* ---- signaling ---- */

static void on_timer(uv_timer_t *t);

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
  p->st = S_WAITING_PEER;
  uv_timer_start(&p->timer, on_timer, (uint64_t)(p->cfg.ws_recv_timeout * 1000.0), 0);
  HP_DEBUG("holepunch", ctx(p), "WebSocket open, hello sent");
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
  prm.start_in_ms = pm->start_in_ms < 0 ? 0 : pm->start_in_ms > 10000 ? 10000 : pm->start_in_ms;
  prm.timeout_s = p->cfg.p2p_connect_timeout;
  p->st = S_PUNCHING;
  r = hp__pe_start(p->pe, &prm, on_punched, p);
  if (r < 0)
    end(p, HP_STATUS_RENDEZVOUS, "the peer message cannot be used for punching");
}

static void on_sig_message(void *data, const hp__msg *m) {
  hp_punch *p = data;
  char reason[HP_REASON_MAX + 64];

  switch (m->type) {
  case HP_MSG_WELCOME:
    if (p->welcomed || p->st != S_WAITING_PEER)
      break;
    p->welcomed = 1;
    /* The service's id is the one the peer will expect in our hello. */
    snprintf(p->own_id, sizeof p->own_id, "%s", m->u.welcome.id);
    HP_INFO("holepunch",
            json_pack("{s:s, s:s, s:s}", "room", m->u.welcome.room, "id", m->u.welcome.id,
                      "observed", m->u.welcome.observed),
            "registered in room %s as %s, waiting for a peer", m->u.welcome.room, m->u.welcome.id);
    return;
  case HP_MSG_PEER:
    if (!p->welcomed || p->st != S_WAITING_PEER)
      break;
    on_peer(p, &m->u.peer);
    return;
  case HP_MSG_ERROR:
    if (p->st == S_PUNCHING) {
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
  default:
    break;
  }
  snprintf(reason, sizeof reason,
           "the rendezvous broke the protocol: unexpected message in state %s", state_names[p->st]);
  if (p->st == S_PUNCHING) {
    /* The direct path does not need the rendezvous any more. */
    HP_WARN("holepunch", ctx(p), "%s (ignored while punching)", reason);
    return;
  }
  HP_ERROR("holepunch", ctx(p), "%s", reason);
  end(p, HP_STATUS_RENDEZVOUS, reason);
}

static void on_sig_failed(void *data, const char *reason) {
  hp_punch *p = data;
  hp__sig *s = p->sig;

  p->sig = NULL;
  hp__sig_close(s, NULL, NULL);
  if (p->st == S_PUNCHING) {
    HP_WARN("holepunch", ctx(p), "%s; punching goes on, the result cannot be reported", reason);
    return;
  }
  HP_ERROR("holepunch",
           json_pack("{s:s, s:s, s:s}", "room", p->room, "id", p->own_id, "url", p->url_str), "%s",
           reason);
  end(p, HP_STATUS_RENDEZVOUS, reason);
}

static const hp__sig_cbs sig_cbs = {on_sig_opened, on_sig_message, on_sig_failed};

/* ---- discovery ---- */

static void on_whoami(const hp__whoami_result *r, void *data) {
  hp_punch *p = data;
  int port = hp__pe_port(p->pe);
  char desc[600];
  int n;

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
  n = hp__cands_gather(p->mapped, port, &p->cands);
  if (n < 0) {
    HP_WARN("holepunch", NULL, "cannot list the local addresses: %s", strerror(-n));
    hp__cands_build(p->mapped, NULL, 0, port, &p->cands);
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

  p->st = S_SIGNALING;
  if (hp__sig_open(p->loop, &p->url, p->ca_file, &sig_cbs, p, &p->sig) < 0) {
    end(p, HP_STATUS_RENDEZVOUS, "cannot create the WebSocket client");
    return;
  }
  uv_timer_start(&p->timer, on_timer, (uint64_t)(p->cfg.ws_open_timeout * 1000.0), 0);
}

/* ---- listening ---- */

static void try_listen(hp_punch *p) {
  int r = hp__pe_create(p->loop, p->cfg.internal_tcp_port, &p->pe);

  if (r == -EADDRINUSE && uv_now(p->loop) < p->listen_deadline) {
    uv_timer_start(&p->timer, on_timer, LISTEN_RETRY_MS, 0);
    return;
  }
  if (r < 0) {
    char reason[HP_REASON_MAX];
    snprintf(reason, sizeof reason, "cannot listen on INTERNAL_TCP_PORT %d within %.1f s: %s%s",
             p->cfg.internal_tcp_port, p->cfg.listener_ready_timeout, strerror(-r),
             r == -EADDRINUSE ? " (another program listens on it; choose another port)" : "");
    HP_ERROR("holepunch", json_pack("{s:i}", "port", p->cfg.internal_tcp_port), "%s", reason);
    end(p, HP_STATUS_CONFIG, reason);
    return;
  }
  HP_DEBUG("holepunch", json_pack("{s:i}", "port", hp__pe_port(p->pe)), "listening on port %d",
           hp__pe_port(p->pe));
  p->st = S_DISCOVERING;
  r = hp__whoami_start(p->loop, &p->url, hp__pe_port(p->pe), p->cfg.ws_open_timeout, p->ca_file,
                       on_whoami, p, &p->who);
  if (r < 0)
    end(p, HP_STATUS_RENDEZVOUS, "cannot start the whoami request");
}

static void on_timer(uv_timer_t *t) {
  hp_punch *p = t->data;
  char reason[HP_REASON_MAX];

  switch (p->st) {
  case S_LISTENING:
    try_listen(p);
    return;
  case S_SIGNALING:
    snprintf(reason, sizeof reason,
             "the WebSocket to %s did not open within %.1f s (WS_OPEN_TIMEOUT)", p->url_str,
             p->cfg.ws_open_timeout);
    HP_ERROR("holepunch", ctx(p), "%s", reason);
    end(p, HP_STATUS_RENDEZVOUS, reason);
    return;
  case S_WAITING_PEER:
    snprintf(reason, sizeof reason, "no peer in room %s within %.1f s (WS_RECV_TIMEOUT)", p->room,
             p->cfg.ws_recv_timeout);
    HP_ERROR("holepunch", ctx(p), "%s", reason);
    end(p, p->welcomed ? HP_STATUS_NO_PEER : HP_STATUS_RENDEZVOUS,
        p->welcomed ? reason : "the rendezvous sent no welcome");
    return;
  default:
    return;
  }
}

/* ---- public API ---- */

int hp_punch_start(uv_loop_t *loop, const hp_config *cfg, hp_done_cb cb, void *data,
                   hp_punch **out) {
  char err[HP_REASON_MAX];
  hp_punch *p;
  const char *room;

  if (!loop || !cfg || !cb || !out || !cfg->rendezvous_url)
    return -EINVAL;
  room = cfg->room && *cfg->room ? cfg->room : "default";
  if (!hp__wire_valid_name(room, strlen(room))) {
    HP_ERROR("holepunch", json_pack("{s:s}", "room", room),
             "bad room \"%s\": use 1-64 of A-Z a-z 0-9 . _ -", room);
    return -EINVAL;
  }
  if (cfg->worker_id && *cfg->worker_id &&
      !hp__wire_valid_name(cfg->worker_id, strlen(cfg->worker_id))) {
    HP_ERROR("holepunch", NULL, "bad worker id \"%s\": use 1-64 of A-Z a-z 0-9 . _ -",
             cfg->worker_id);
    return -EINVAL;
  }
  if (cfg->internal_tcp_port < 0 || cfg->internal_tcp_port > 65535 || !(cfg->ws_open_timeout > 0) ||
      !(cfg->ws_recv_timeout > 0) || !(cfg->listener_ready_timeout > 0) ||
      !(cfg->p2p_connect_timeout > 0)) {
    HP_ERROR("holepunch", NULL, "bad configuration: ports 0-65535, timeouts > 0");
    return -EINVAL;
  }
  p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
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
  p->cfg.rendezvous_url = p->url_str;
  p->cfg.ca_file = p->ca_file;
  p->cfg.room = p->room;
  p->cfg.worker_id = p->own_id;
  snprintf(p->room, sizeof p->room, "%s", room);
  if (cfg->worker_id && *cfg->worker_id)
    snprintf(p->own_id, sizeof p->own_id, "%s", cfg->worker_id);
  else if (hp__random_hex(p->own_id, 8) < 0)
    snprintf(p->own_id, sizeof p->own_id, "w%ld", (long)getpid());
  p->loop = loop;
  p->cb = cb;
  p->data = data;
  p->port_preserved = -1;
  p->st = S_LISTENING;
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->listen_deadline = uv_now(loop) + (uint64_t)(cfg->listener_ready_timeout * 1000.0);
  HP_INFO("holepunch",
          json_pack("{s:s, s:s, s:s, s:i}", "room", p->room, "id", p->own_id, "url", p->url_str,
                    "port", cfg->internal_tcp_port),
          "starting: room %s, id %s, rendezvous %s, port %d", p->room, p->own_id, p->url_str,
          cfg->internal_tcp_port);
  *out = p;
  /* The first listen happens on the loop, so that cb never fires inside
   * this call. */
  uv_timer_start(&p->timer, on_timer, 0, 0);
  return 0;
}

int hp_punch_take_fd(hp_punch *p) {
  if (!p || p->st != S_CONNECTED || !p->pe)
    return -1;
  return hp__pe_take_fd(p->pe);
}

const char *hp_punch_state(const hp_punch *p) {
  return p ? state_names[p->st] : "none";
}

void hp_punch_info(const hp_punch *p, hp_info *info) {
  memset(info, 0, sizeof *info);
  info->own_id = p->own_id;
  info->peer_id = p->peer_id;
  info->role = p->role;
  info->peer_addr = p->peer_addr;
  info->mapped_addr = p->mapped;
  info->reason = p->reason;
  info->elapsed_ms = p->elapsed_ms;
}

static void on_timer_closed(uv_handle_t *h) {
  hp_punch *p = h->data;
  free(p->url_str);
  free(p->ca_file);
  free(p);
}

void hp_punch_destroy(hp_punch *p) {
  if (!p || p->destroyed)
    return;
  p->destroyed = 1;
  hp__whoami_cancel(p->who);
  p->who = NULL;
  if (p->sig) {
    hp__sig_close(p->sig, NULL, NULL);
    p->sig = NULL;
  }
  hp__pe_destroy(p->pe); /* closes an fd not taken */
  p->pe = NULL;
  uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

/* ---- blocking convenience ---- */

typedef struct connect_ctx {
  hp_status status;
  int fd;
  char *peer_id, *reason;
  size_t peer_id_len, reason_len;
} connect_ctx;

static void on_connect_done(hp_punch *p, hp_status status, void *data) {
  connect_ctx *c = data;
  hp_info info;

  c->status = status;
  if (status == HP_STATUS_OK)
    c->fd = hp_punch_take_fd(p);
  hp_punch_info(p, &info);
  if (c->peer_id && c->peer_id_len)
    snprintf(c->peer_id, c->peer_id_len, "%s", info.peer_id);
  if (c->reason && c->reason_len)
    snprintf(c->reason, c->reason_len, "%s", info.reason);
  hp_punch_destroy(p);
}

hp_status hp_connect(const hp_config *cfg, int *fd, char *peer_id, size_t peer_id_len, char *reason,
                     size_t reason_len) {
  uv_loop_t loop;
  hp_punch *p = NULL;
  connect_ctx c = {HP_STATUS_CONFIG, -1, peer_id, reason, peer_id_len, reason_len};
  int r;

  if (fd)
    *fd = -1;
  if (reason && reason_len)
    reason[0] = '\0';
  if (peer_id && peer_id_len)
    peer_id[0] = '\0';
  if (!fd || uv_loop_init(&loop) < 0)
    return HP_STATUS_CONFIG;
  r = hp_punch_start(&loop, cfg, on_connect_done, &c, &p);
  if (r < 0) {
    if (reason && reason_len)
      snprintf(reason, reason_len, "bad configuration (%s); see the log", strerror(-r));
  } else {
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (uv_loop_close(&loop) != 0)
    HP_WARN("holepunch", NULL, "private loop still had handles at exit");
  if (c.status == HP_STATUS_OK && c.fd < 0)
    c.status = HP_STATUS_NO_DIRECT;
  *fd = c.fd;
  return c.status;
}
