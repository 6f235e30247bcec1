/*
 * run.h - the skeleton of the data subcommands (pipe, forward, expose):
 * settings, signals, the secure channel, the exit code (run.c).
 */
#ifndef HP_CLI_RUN_H
#define HP_CLI_RUN_H

#include <uv.h>

#include "cli.h"
#include "wire.h"

typedef struct hp__cli_run hp__cli_run;

struct hp__cli_run {
  const char *name; /* "pipe", ... for the log */
  /* Checks before any network traffic (a target, a port): 0 or -1 after
   * a start-up error line. May be NULL. */
  int (*check)(hp__cli_run *r);
  /* The channel is ready: start the app on it (it owns chan). 0, or an
   * exit code (the app did not start; chan closed). The app reports its
   * end with hp__cli_run_end. */
  int (*start)(hp__cli_run *r, hp_bs *chan);
  /* SIGINT/SIGTERM while the app runs: stop it (it then calls
   * hp__cli_run_end). */
  void (*stop)(hp__cli_run *r);
  void *app;

  /* filled by hp__cli_run_main */
  uv_loop_t loop;
  hp__cli_cfg cfg;
  uv_signal_t sigint, sigterm;
  hp__cli_chan *ch;
  int app_running;
  int exit_code; /* -1 until decided */
  char room[HP_ID_MAX + 1];
  uint8_t psk[32];
};

/* Load the settings, then punch, secure, run the app; returns the exit
 * code. */
int hp__cli_run_main(hp__cli_run *r, int argc, char **argv, const char *prog, const char *summary);

/* The app is over: code is the exit code unless a signal set one. */
void hp__cli_run_end(hp__cli_run *r, int code);

#endif
