/*
 * channel.c - the channel the data subcommands (pipe, forward, expose) run
 * on: punch (hp_punch), wrap the socket in the TCP carrier, run the secure
 * channel's handshake on it (src/lib/chan/secure.h), then hand the
 * encrypted hp_bs over. With a code the peer must prove it knows it; without
 * one the channel is encrypted and bound to the rendezvous session only,
 * and the log says the peer is unauthenticated.
 *
 * Until the engine runs the handshake itself on every candidate connection,
 * a peer that fails it ends the attempt here (exit 6) instead of punching on.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan/secure.h"
#include "chan/tcp.h"
#include "cli.h"
#include "holepunch_int.h"
#include "log.h"

#define HANDSHAKE_TIMEOUT_MS 10000

/* One explicit state: punching, handshaking, handed over (or failed), or
 * stopped by the caller. */
typedef enum chstate { CH_PUNCHING, CH_HANDSHAKE, CH_DONE, CH_STOPPED } chstate;

struct hp__cli_chan {
  chstate st;
  uv_loop_t *loop;
  hp_punch *punch;
  hp_bs *secure;
  int with_code;
  uint8_t psk[HP_HS_PSK_BYTES];
  char own_id[HP_ID_MAX + 1], peer_id[HP_ID_MAX + 1], session[HP_SESSION_HEX + 1];
  hp__cli_chan_cb cb;
  void *ud;
};

static void deliver(hp__cli_chan *c, hp_bs *chan, int code) {
  c->st = CH_DONE;
  c->cb(chan, code, c->ud);
}

static void on_secure_ready(hp_bs *s, int status, const char *why, void *ud) {
  hp__cli_chan *c = ud;

  if (c->st != CH_HANDSHAKE)
    return;
  c->secure = NULL;
  if (status < 0) {
    HP_ERROR("worker", json_pack("{s:s, s:i}", "peer", c->peer_id, "exit_code", 6),
             "the secure channel with %s failed: %s", c->peer_id,
             status == -EACCES ? "the peer does not know the code: wrong code, or someone else "
                                 "joined the room"
                               : why);
    hp_bs_close(s);
    deliver(c, NULL, HP_STATUS_EXCHANGE);
    return;
  }
  if (c->with_code)
    HP_INFO("worker", json_pack("{s:s}", "peer", c->peer_id),
            "secure channel with %s: the peer proved it knows the code", c->peer_id);
  else
    HP_WARN("worker", json_pack("{s:s}", "peer", c->peer_id),
            "secure channel with %s: encrypted, but the peer is unauthenticated (no code: "
            "anyone who joins the room is accepted); use --code",
            c->peer_id);
  deliver(c, s, 0);
}

static void on_punch_done(hp_punch *p, hp_status status, void *data) {
  hp__cli_chan *c = data;
  hp__hs_params prm;
  hp_info info;
  hp_bs *tcp;
  int fd = -1, r;

  c->punch = NULL;
  hp_punch_info(p, &info);
  snprintf(c->own_id, sizeof c->own_id, "%s", info.own_id);
  snprintf(c->peer_id, sizeof c->peer_id, "%s", info.peer_id);
  snprintf(c->session, sizeof c->session, "%s", hp__punch_session(p));
  memset(&prm, 0, sizeof prm);
  prm.role = info.role[0];
  if (status == HP_STATUS_OK)
    fd = hp_punch_take_fd(p);
  hp_punch_destroy(p);
  if (status != HP_STATUS_OK || fd < 0) {
    deliver(c, NULL, status == HP_STATUS_OK ? HP_STATUS_NO_DIRECT : (int)status);
    return;
  }
  r = hp__tcp_from_fd(c->loop, fd, &tcp);
  if (r < 0) {
    close(fd);
    HP_ERROR("worker", NULL, "cannot use the connection: %s", uv_strerror(r));
    deliver(c, NULL, HP_STATUS_EXCHANGE);
    return;
  }
  prm.session = c->session;
  prm.own_id = c->own_id;
  prm.peer_id = c->peer_id;
  prm.psk = c->with_code ? c->psk : NULL;
  c->st = CH_HANDSHAKE;
  r = hp__secure_start(c->loop, tcp, &prm, HANDSHAKE_TIMEOUT_MS, on_secure_ready, c, &c->secure);
  if (r < 0) {
    HP_ERROR("worker", NULL, "cannot start the secure channel: %s", strerror(-r));
    deliver(c, NULL, HP_STATUS_EXCHANGE);
  }
}

int hp__cli_channel_start(uv_loop_t *loop, const hp__cli_cfg *cfg, const uint8_t *psk,
                          hp__cli_chan_cb cb, void *ud, hp__cli_chan **out) {
  hp__cli_chan *c = calloc(1, sizeof *c);
  hp_config pc;
  int r;

  if (!c)
    return -ENOMEM;
  c->loop = loop;
  c->cb = cb;
  c->ud = ud;
  if (psk) {
    c->with_code = 1;
    memcpy(c->psk, psk, sizeof c->psk);
  }
  hp__cli_punch_config(cfg, NULL, &pc);
  c->st = CH_PUNCHING;
  r = hp_punch_start(loop, &pc, on_punch_done, c, &c->punch);
  if (r < 0) {
    free(c);
    return r;
  }
  *out = c;
  return 0;
}

void hp__cli_channel_free(hp__cli_chan *c) {
  if (!c)
    return;
  if (c->st == CH_PUNCHING)
    hp_punch_destroy(c->punch);
  else if (c->st == CH_HANDSHAKE && c->secure)
    hp_bs_close(c->secure);
  c->st = CH_STOPPED;
  sodium_memzero(c->psk, sizeof c->psk);
  free(c);
}
