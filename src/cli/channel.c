/*
 * channel.c - the channel the data subcommands (pipe, forward, expose) run
 * on: punch (hp_punch, which also runs the secure channel's handshake on the
 * punched connection, src/lib/chan/secure.h), then hand the encrypted hp_bs
 * over. With a code the peer must prove it knows it (a peer that does not is
 * dropped and the engine waits for the right one; exit 7 if none came);
 * without one the channel is encrypted and bound to the rendezvous session
 * only, and the log says the peer is unauthenticated.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan/secure.h"
#include "cli.h"
#include "log.h"
#include "stream_int.h"

/* One explicit state: punching (and the handshake, inside the punch),
 * handed over (or failed), or stopped by the caller. */
typedef enum chstate { CH_PUNCHING, CH_DONE, CH_STOPPED } chstate;

struct hp__cli_chan {
  chstate st;
  uv_loop_t *loop;
  hp_punch *punch;
  char peer_id[HP_ID_MAX + 1];
  hp__cli_chan_cb cb;
  void *ud;
};

static void deliver(hp__cli_chan *c, hp_bs *chan, int code) {
  c->st = CH_DONE;
  c->cb(chan, code, c->ud);
}

static void on_punch_done(hp_punch *p, hp_status status, void *data) {
  hp__cli_chan *c = data;
  hp_info info;
  hp_bs *chan = NULL;

  c->punch = NULL;
  hp_punch_info(p, &info);
  snprintf(c->peer_id, sizeof c->peer_id, "%s", info.peer_id);
  /* The engine ran the handshake: with a code the peer proved it knows it
   * (a peer that did not was dropped, HP_STATUS_AUTH if no other came);
   * the log said which. */
  if (status == HP_STATUS_OK)
    chan = hp__punch_take_bs(p);
  hp_punch_destroy(p);
  if (status != HP_STATUS_OK || !chan) {
    deliver(c, NULL, status == HP_STATUS_OK ? HP_STATUS_NO_DIRECT : (int)status);
    return;
  }
  deliver(c, chan, 0);
}

int hp__cli_channel_start(uv_loop_t *loop, const hp__cli_cfg *cfg, const uint8_t *psk,
                          hp__cli_chan_cb cb, void *ud, hp__cli_chan **out) {
  hp__cli_chan *c = calloc(1, sizeof *c);
  hp_config pc;
  int r;

  if (!c)
    return -ENOMEM;
  (void)psk; /* the engine derives the key from cfg->code itself */
  c->loop = loop;
  c->cb = cb;
  c->ud = ud;
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
  c->st = CH_STOPPED;
  free(c);
}
