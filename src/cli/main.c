/*
 * main.c - `holepunch [FLAGS] [SUBCOMMAND] [FLAGS] [ARGS]`: find the
 * subcommand and run it. A table of subcommands, one file each (like
 * wireguard-tools' wg.c). Without a subcommand the program greets, as it
 * always did, so every existing deployment (env vars only) keeps working.
 *
 * The settings are flags and environment variables alike; a flag may come
 * before or after the subcommand's name (`holepunch --room r greet` and
 * `holepunch greet --room r` are the same). The name is the first argument
 * that is neither a flag nor a flag's value.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct subcmd {
  const char *name;
  int (*run)(int argc, char **argv);
  const hp__cfg_spec *specs; /* the subcommand's own settings */
  const size_t *nspecs;
  const char *summary;
} subcmd;

static int run_help(int argc, char **argv);
static const size_t one = 1;

static const subcmd subcmds[] = {
    {"greet", hp__cli_greet, hp__cli_greet_specs, &hp__cli_ngreet_specs,
     "punch a direct connection and exchange one greeting (the default)"},
    {"pipe", hp__cli_pipe, &hp__cli_code_spec, &one,
     "stdin to the peer, the peer to stdout (nc -N)"},
    {"forward", hp__cli_forward, &hp__cli_code_spec, &one,
     "[BIND:]PORT: carry local connections to the peer's exposed service (ssh -L)"},
    {"expose", hp__cli_expose, &hp__cli_code_spec, &one,
     "HOST:PORT: connect the peer's forwarded connections to HOST:PORT"},
    {"code", hp__cli_code, NULL, NULL, "print a fresh code for --code / HOLEPUNCH_CODE"},
    {"diagnose", hp__cli_diagnose, hp__cli_diagnose_specs, &hp__cli_ndiagnose_specs,
     "what the NAT does to the punch port, and what that means (--json)"},
    {"help", run_help, NULL, NULL, "list the subcommands"},
};
#define NSUBCMDS (sizeof subcmds / sizeof subcmds[0])

static int run_help(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("usage: holepunch [SUBCOMMAND] [--flag VALUE ...] [ARGS]\n\n"
         "Two programs behind two NATs get a direct TCP connection, introduced by a rendezvous\n"
         "service. Every flag is also an environment variable (holepunch SUBCOMMAND --help).\n\n"
         "subcommands:\n");
  for (size_t i = 0; i < NSUBCMDS; i++)
    printf("  %-10s %s\n", subcmds[i].name, subcmds[i].summary);
  return 0;
}

/* Index in argv of the subcommand's name, or argc when there is none. Every
 * subcommand's flags count, so that a value is never taken for a name
 * (`--room pipe`). */
static int find_subcmd(int argc, char **argv) {
  hp__cfg_spec all[HP_CLI_SPECS_MAX * 2];
  size_t n = 0;

  for (size_t i = 0; i < hp__cli_ncommon_specs; i++)
    all[n++] = hp__cli_common_specs[i];
  for (size_t i = 0; i < NSUBCMDS; i++)
    for (size_t k = 0; subcmds[i].specs && k < *subcmds[i].nspecs && n < sizeof all / sizeof *all;
         k++)
      all[n++] = subcmds[i].specs[k];
  return hp__cli_next_positional(all, n, argc, argv, 1);
}

int main(int argc, char **argv) {
  int i;

  signal(SIGPIPE, SIG_IGN);
  hp__cli_early_log(argc, argv);
  i = find_subcmd(argc, argv);
  if (i >= argc)
    return hp__cli_greet(argc, argv);
  for (size_t k = 0; k < NSUBCMDS; k++) {
    if (strcmp(argv[i], subcmds[k].name) == 0) {
      hp__cli_remove_arg(&argc, argv, i);
      return subcmds[k].run(argc, argv);
    }
  }
  hp__cli_startup_error(NULL, "unknown subcommand \"%.64s\": expected one of %s%s", argv[i],
                        subcmds[0].name, NSUBCMDS > 1 ? ", ... (holepunch help lists them)" : "");
  return HP_STATUS_CONFIG;
}
