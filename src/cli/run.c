/*
 * run.c - what the data subcommands (pipe, forward, expose) share: their
 * settings (the common ones and HOLEPUNCH_CODE), signals, the channel
 * (channel.c), and the exit code: the punch's (2..5), 6 when the secure
 * channel or the app failed, 0 when the app finished, 130/143 on
 * SIGINT/SIGTERM after a clean stop.
 */
#include "run.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static void close_signals(hp__cli_run *r) {
  if (!uv_is_closing((uv_handle_t *)&r->sigint)) {
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
  }
}

void hp__cli_run_end(hp__cli_run *r, int code) {
  if (r->exit_code < 0)
    r->exit_code = code;
  r->app_running = 0;
  close_signals(r);
}

static void on_channel(hp_bs *chan, int code, void *ud) {
  hp__cli_run *r = ud;
  int rc;

  hp__cli_channel_free(r->ch);
  r->ch = NULL;
  if (!chan) {
    hp__cli_run_end(r, code);
    return;
  }
  r->app_running = 1;
  rc = r->start(r, chan); /* owns chan from here on */
  if (rc != 0)
    hp__cli_run_end(r, rc);
}

static void on_signal(uv_signal_t *s, int signum) {
  hp__cli_run *r = s->data;

  if (r->exit_code >= 0)
    return;
  HP_INFO("worker", json_pack("{s:i}", "signal", signum), "%s received, shutting down",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  r->exit_code = 128 + signum;
  if (r->ch) {
    hp__cli_channel_free(r->ch);
    r->ch = NULL;
    close_signals(r);
  } else if (r->app_running) {
    r->stop(r); /* ends with hp__cli_run_end */
  } else {
    close_signals(r);
  }
}

int hp__cli_run_main(hp__cli_run *r, int argc, char **argv, const char *prog, const char *summary) {
  hp__cfg_spec specs[HP_CLI_SPECS_MAX];
  size_t n = hp__cli_specs(specs, &hp__cli_code_spec, 1);
  int rc, with_code;

  r->exit_code = -1;
  rc = hp__cli_load(specs, n, &r->cfg, argc, argv, prog, summary);
  if (rc >= 0)
    return rc;
  if (hp__cli_check_common(&r->cfg) != 0)
    return HP_STATUS_CONFIG;
  with_code = hp__cli_apply_code(&r->cfg, r->room, r->psk);
  if (with_code < 0)
    return HP_STATUS_CONFIG;
  if (r->check && r->check(r) != 0)
    return HP_STATUS_CONFIG;

  uv_loop_init(&r->loop);
  uv_signal_init(&r->loop, &r->sigint);
  uv_signal_init(&r->loop, &r->sigterm);
  r->sigint.data = r->sigterm.data = r;
  uv_signal_start(&r->sigint, on_signal, SIGINT);
  uv_signal_start(&r->sigterm, on_signal, SIGTERM);
  HP_INFO(
      "worker",
      json_pack("{s:s, s:s, s:b}", "version", hp_version(), "room", r->cfg.room, "code", with_code),
      "holepunch %s %s starting (%s)", hp_version(), r->name,
      with_code ? "room from the code" : "room from ROOM, no code");
  rc = hp__cli_channel_start(&r->loop, &r->cfg, with_code ? r->psk : NULL, on_channel, r, &r->ch);
  if (rc < 0) {
    r->ch = NULL;
    hp__cli_run_end(r, HP_STATUS_CONFIG);
  }
  uv_run(&r->loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&r->loop);
  if (rc != 0)
    HP_WARN("worker", NULL, "event loop still busy at exit: %s", uv_strerror(rc));
  memset(r->psk, 0, sizeof r->psk);
  return r->exit_code < 0 ? HP_STATUS_EXCHANGE : r->exit_code;
}
