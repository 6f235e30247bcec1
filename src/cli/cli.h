/*
 * cli.h - what the subcommands of `holepunch` share: the settings every
 * subcommand that punches has (a validated table, env var + flag each), the
 * start-up error line, the early log format, the subcommand scanner.
 *
 * Layout: main.c dispatches on the subcommand (a table, like wg.c); each
 * subcommand is one file (greet.c, pipe.c, ...) with an entry point
 * `int hp__cli_<name>(int argc, char **argv)` returning the exit code.
 */
#ifndef HP_CLI_H
#define HP_CLI_H

#include <stddef.h>

#include <stdint.h>

#include "chan/bytestream.h"
#include "config.h"
#include "holepunch.h"

/* Every subcommand's settings in one struct; each subcommand's table points
 * into it (the common entries first, then its own). */
typedef struct hp__cli_cfg {
  /* common: the punch */
  const char *url;
  int internal_port;
  double ws_open, ws_recv, listener_ready, p2p_connect;
  const char *room;
  const char *worker_id;
  const char *ca_file;
  int log_level;
  int log_format;
  int allow_loopback;
  const char *relay_after; /* seconds, or "off" */
  /* pipe, forward, expose */
  const char *code;
  const char *stun_servers;
  int port_mapping;
  int low_ttl_syn;
  /* greet */
  int port;
  double p2p_msg;
  const char *health_bind;
  int service_mode;
  /* diagnose */
  int diag_json;
} hp__cli_cfg;

#define HP_CLI_ID_AUTO "auto"
#define HP_CLI_CA_SYSTEM "system"
#define HP_CLI_NONE "none" /* STUN_SERVERS: no server */
#define HP_CLI_SPECS_MAX 48

/* The settings every punching subcommand has (RENDEZVOUS_SERVICE_URL ..
 * ALLOW_LOOPBACK_CANDIDATES): the program's global flags. */
extern const hp__cfg_spec hp__cli_common_specs[];
extern const size_t hp__cli_ncommon_specs;

/* out = common specs followed by extra[0..nextra). Returns the count (at
 * most HP_CLI_SPECS_MAX; more is a programming error and aborts). */
size_t hp__cli_specs(hp__cfg_spec *out, const hp__cfg_spec *extra, size_t nextra);

/* Index of the first positional argument in argv[from..argc) (an argument
 * that is neither a flag of specs nor the value of one), or argc. "--" ends
 * the flags: the next argument is positional. */
int hp__cli_next_positional(const hp__cfg_spec *specs, size_t n, int argc, char **argv, int from);

/* Remove argv[i] (argc shrinks by one; argv stays NULL-terminated). */
void hp__cli_remove_arg(int *argc, char **argv, int i);

/* The log format from LOG_FORMAT / --log-format, read before the full
 * configuration (which may be what is wrong). */
void hp__cli_early_log(int argc, char **argv);

/* The log as configured (LOG_LEVEL, LOG_FORMAT). */
void hp__cli_setup_log(const hp__cli_cfg *c);

/* A start-up error: one line in the log's format naming the setting
 * (NULL: none), with exit_code 2. */
void hp__cli_startup_error(const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks the table cannot express for the common settings (names, URL, CA
 * file). 0, or -1 after a start-up error line. */
int hp__cli_check_common(const hp__cli_cfg *c);

/* An hp_config from the common settings; worker_id is kept_id when the
 * setting is "auto" and kept_id is non-empty (service mode keeps its id). */
void hp__cli_punch_config(const hp__cli_cfg *c, const char *kept_id, hp_config *out);

/* Load the table into c. Returns -1 to go on, or the exit code (0 after
 * --help/--version, 2 after a bad value, reported). */
int hp__cli_load(const hp__cfg_spec *specs, size_t n, hp__cli_cfg *c, int argc, char **argv,
                 const char *prog, const char *summary);

#define HP_CLI_CODE_NONE "none"

/* The setting HOLEPUNCH_CODE / --code, for the subcommands that take it. */
extern const hp__cfg_spec hp__cli_code_spec;

/* Check c->code before any traffic (a mistyped code is exit 2 naming
 * HOLEPUNCH_CODE); with a code and ROOM at its default, c->room becomes the
 * room derived from it (room_buf, HP_ID_MAX + 1 bytes; the engine derives
 * the same); an explicit ROOM is kept (both sides set it). Returns 1 with a
 * code, 0 without, -1 after a start-up error line. */
int hp__cli_apply_code(hp__cli_cfg *c, char *room_buf);

/* The channel of the data subcommands: the engine punches and secures it
 * (channel.c). cb gets the ready channel (owned by the callee) and 0, or
 * NULL and the exit code (the punch's status: 2..5, 7 wrong code). */
typedef struct hp__cli_chan hp__cli_chan;
typedef void (*hp__cli_chan_cb)(hp_bs *chan, int code, void *ud);
int hp__cli_channel_start(uv_loop_t *loop, const hp__cli_cfg *cfg, hp__cli_chan_cb cb, void *ud,
                          hp__cli_chan **out);
/* Free (stops a punch or handshake in progress; no callback then). Allowed
 * from the callback. */
void hp__cli_channel_free(hp__cli_chan *c);

/* Subcommands: the entry point and the subcommand's own settings (after
 * the common ones), which main.c needs to tell flag values from the
 * subcommand's name. */
int hp__cli_greet(int argc, char **argv);
int hp__cli_pipe(int argc, char **argv);
int hp__cli_forward(int argc, char **argv);
int hp__cli_expose(int argc, char **argv);
int hp__cli_code(int argc, char **argv);
extern const hp__cfg_spec hp__cli_greet_specs[];
extern const size_t hp__cli_ngreet_specs;
int hp__cli_diagnose(int argc, char **argv);
extern const hp__cfg_spec hp__cli_diagnose_specs[];
extern const size_t hp__cli_ndiagnose_specs;

#endif
