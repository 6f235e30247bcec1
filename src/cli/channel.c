/*
 * channel.c - the channel the data subcommands (pipe, forward, expose) run
 * on: the engine punches and runs the secure channel's handshake on the
 * nominated connection (with the code: the peer must prove it knows it; a
 * peer that does not is dropped and the engine waits for the right one);
 * the CLI takes the encrypted hp_bs (hp__punch_take_bs) and runs its app on
 * it. The engine logs whether the peer is authenticated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "stream_int.h"

/* One explicit state: punching, then handed over (or failed). */
typedef enum chstate { CH_PUNCHING, CH_DONE } chstate;

struct hp__cli_chan {
  chstate st;
  hp_punch *punch;
  hp__cli_chan_cb cb;
  void *ud;
};

static void on_punch_done(hp_punch *p, hp_status status, void *data) {
  hp__cli_chan *c = data;
  hp_bs *chan = NULL;
  int code = (int)status;

  c->punch = NULL;
  if (status == HP_STATUS_OK) {
    chan = hp__punch_take_bs(p);
    if (!chan) {
      HP_ERROR("worker", NULL, "the engine reported success but gave no channel");
      code = HP_STATUS_EXCHANGE;
    }
  }
  hp_punch_destroy(p); /* the channel lives on, on our loop */
  c->st = CH_DONE;
  c->cb(chan, chan ? 0 : code, c->ud);
}

int hp__cli_channel_start(uv_loop_t *loop, const hp__cli_cfg *cfg, hp__cli_chan_cb cb, void *ud,
                          hp__cli_chan **out) {
  hp__cli_chan *c = calloc(1, sizeof *c);
  hp_config pc;
  int r;

  if (!c)
    return -ENOMEM;
  c->cb = cb;
  c->ud = ud;
  hp__cli_punch_config(cfg, NULL, &pc);
  if (strcmp(cfg->code, HP_CLI_CODE_NONE) != 0)
    pc.code = cfg->code; /* cfg->room: derived from it, or an explicit ROOM */
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
  free(c);
}
