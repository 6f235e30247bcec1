/*
 * fuzz_config.c - hp__cfg_load_env (configuration as a validated table,
 * src/lib/config.h) with a fake environment.
 *
 * The table has the worker's shape (src/cli/greet.c: a required string, an
 * int, seconds, enums, a bool) plus an int with a negative range. The input
 * is text, one item per line: "NAME=value" sets a variable of the fake
 * environment (the first one wins, as with getenv), any other line
 * (including "--flag=value") is a command-line argument. Contract checked:
 * - the result is one of the four; the same input gives the same result,
 *   target and message again; nothing is written past errlen (small errlen
 *   with a canary), and a truncated message is a prefix of the full one;
 * - ERROR comes with a non-empty message;
 * - OK: every setting is within its spec (range, 0/1, a valid choice, a
 *   non-empty string that is the default, an environment value or part of
 *   an argument), a setting that no argument mentions has the value of its
 *   environment variable when that is set, else its default, and when all
 *   arguments are --flag=value, a flag given has its last value.
 */
#include <math.h>
#include <stddef.h>
#include <strings.h>

#include "config.h"
#include "fuzz.h"

#define ITEMS_MAX 48
#define CANARY 0x5a

typedef struct fcfg {
  const char *url;
  int internal_port;
  int port;
  int offset;
  double ws_open;
  double connect;
  const char *room;
  int log_level;
  int log_format;
  int service_mode;
  uint64_t relay_rate;
} fcfg;

static const char *const level_choices[] = {"debug", "info", "warning", "error", NULL};
static const char *const format_choices[] = {"auto", "json", "text", NULL};

static const hp__cfg_spec specs[] = {
    {"RENDEZVOUS_SERVICE_URL", "rendezvous-url", HP_CFG_STRING, NULL, 0, 0, NULL,
     offsetof(fcfg, url), "required string"},
    {"INTERNAL_TCP_PORT", "internal-tcp-port", HP_CFG_INT, "8082", 1, 65535, NULL,
     offsetof(fcfg, internal_port), "int"},
    {"PORT", "port", HP_CFG_INT, "8080", 0, 65535, NULL, offsetof(fcfg, port), "int from 0"},
    {"OFFSET", NULL, HP_CFG_INT, "-5", -100, 100, NULL, offsetof(fcfg, offset),
     "negative range, environment only"},
    {"WS_OPEN_TIMEOUT", "ws-open-timeout", HP_CFG_SECONDS, "15.0", 0.1, 3600, NULL,
     offsetof(fcfg, ws_open), "seconds"},
    {"P2P_CONNECT_TIMEOUT", "p2p-connect-timeout", HP_CFG_SECONDS, "30", 0, 86400, NULL,
     offsetof(fcfg, connect), "seconds from 0"},
    {"ROOM", "room", HP_CFG_STRING, "default", 0, 0, NULL, offsetof(fcfg, room), "string"},
    {"LOG_LEVEL", "log-level", HP_CFG_ENUM, "info", 0, 0, level_choices, offsetof(fcfg, log_level),
     "enum"},
    {"LOG_FORMAT", NULL, HP_CFG_ENUM, "auto", 0, 0, format_choices, offsetof(fcfg, log_format),
     "enum, environment only"},
    {"SERVICE_MODE", "service-mode", HP_CFG_BOOL, "0", 0, 0, NULL, offsetof(fcfg, service_mode),
     "bool"},
    {"RELAY_RATE", "relay-rate", HP_CFG_BYTES, "10485760", 0, 1e15, NULL,
     offsetof(fcfg, relay_rate), "bytes"},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

/* The fake environment: getenv_fn has no context argument. */
static const char *env_names[ITEMS_MAX], *env_values[ITEMS_MAX];
static size_t env_n;

static const char *fake_getenv(const char *name) {
  size_t i;

  for (i = 0; i < env_n; i++)
    if (strcmp(env_names[i], name) == 0)
      return env_values[i];
  return NULL;
}

static int choice_count(const char *const *c) {
  int n = 0;

  while (c[n] != NULL)
    n++;
  return n;
}

/* 1 if the argument list could have set spec sp at all. */
static int mentioned(const hp__cfg_spec *sp, char **argv, int argc) {
  int i;

  if (sp->flag == NULL)
    return 0;
  for (i = 1; i < argc; i++)
    if (strstr(argv[i], sp->flag) != NULL)
      return 1;
  return 0;
}

/* The value a setting must have when it came from text v (env or default). */
static void check_value_from(const hp__cfg_spec *sp, const fcfg *c, const char *v) {
  const char *field = (const char *)c + sp->offset;
  int iv;
  double dv;
  const char *sv;

  switch (sp->type) {
  case HP_CFG_STRING:
    memcpy(&sv, field, sizeof(sv));
    FUZZ_CHECK(sv == v);
    break;
  case HP_CFG_INT:
    memcpy(&iv, field, sizeof(iv));
    FUZZ_CHECK(iv == (int)strtol(v, NULL, 10));
    break;
  case HP_CFG_SECONDS:
    memcpy(&dv, field, sizeof(dv));
    FUZZ_CHECK(dv == strtod(v, NULL));
    break;
  case HP_CFG_BOOL:
    memcpy(&iv, field, sizeof(iv));
    FUZZ_CHECK(iv == (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
                      strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0));
    break;
  case HP_CFG_ENUM:
    memcpy(&iv, field, sizeof(iv));
    FUZZ_CHECK(strcasecmp(sp->choices[iv], v) == 0);
    break;
  case HP_CFG_BYTES: {
    uint64_t uv;
    memcpy(&uv, field, sizeof(uv));
    FUZZ_CHECK(uv == (uint64_t)strtoull(v, NULL, 10));
    break;
  }
  }
}

/*
 * When every argument has the form --name=value, none takes the next one as
 * its value, so the value of a flag is that of its last occurrence. Returns
 * it, or NULL when the flag is not given or the arguments are not all of
 * that form.
 */
static const char *flag_value(const hp__cfg_spec *sp, char **argv, int argc) {
  const char *v = NULL;
  size_t fl;
  int i;

  for (i = 1; i < argc; i++)
    if (strncmp(argv[i], "--", 2) != 0 || strchr(argv[i], '=') == NULL)
      return NULL;
  if (sp->flag == NULL)
    return NULL;
  fl = strlen(sp->flag);
  for (i = 1; i < argc; i++)
    if (strncmp(argv[i] + 2, sp->flag, fl) == 0 && argv[i][2 + fl] == '=')
      v = argv[i] + 3 + fl;
  return v;
}

static void check_ok(const fcfg *c, char **argv, int argc) {
  size_t k;

  for (k = 0; k < NSPECS; k++) {
    const hp__cfg_spec *sp = &specs[k];
    const char *field = (const char *)c + sp->offset;
    const char *env = fake_getenv(sp->env);
    int iv;
    double dv;

    switch (sp->type) {
    case HP_CFG_STRING: {
      const char *sv;
      int i, found;
      memcpy(&sv, field, sizeof(sv));
      FUZZ_CHECK(sv != NULL && sv[0] != '\0');
      found = sv == sp->def || sv == env;
      for (i = 1; i < argc && !found; i++)
        found = sv >= argv[i] && sv < argv[i] + strlen(argv[i]);
      FUZZ_CHECK(found);
      break;
    }
    case HP_CFG_INT:
      memcpy(&iv, field, sizeof(iv));
      FUZZ_CHECK(iv >= sp->min && iv <= sp->max);
      break;
    case HP_CFG_SECONDS:
      memcpy(&dv, field, sizeof(dv));
      FUZZ_CHECK(isfinite(dv) && dv >= sp->min && dv <= sp->max);
      break;
    case HP_CFG_BOOL:
      memcpy(&iv, field, sizeof(iv));
      FUZZ_CHECK(iv == 0 || iv == 1);
      break;
    case HP_CFG_ENUM:
      memcpy(&iv, field, sizeof(iv));
      FUZZ_CHECK(iv >= 0 && iv < choice_count(sp->choices));
      break;
    case HP_CFG_BYTES: {
      uint64_t uv;
      memcpy(&uv, field, sizeof(uv));
      FUZZ_CHECK((double)uv >= sp->min && (double)uv <= sp->max);
      break;
    }
    }
    if (!mentioned(sp, argv, argc))
      check_value_from(sp, c, env != NULL ? env : sp->def);
    else if (flag_value(sp, argv, argc) != NULL)
      check_value_from(sp, c, flag_value(sp, argv, argc));
  }
  /* By name, as a program reads them: the table's offsets are right. */
  FUZZ_CHECK(c->url != NULL && c->room != NULL);
  FUZZ_CHECK(c->internal_port >= 1 && c->port >= 0 && c->offset >= -100 && c->offset <= 100);
  FUZZ_CHECK(c->ws_open >= 0.1 && c->connect >= 0);
  FUZZ_CHECK(c->log_level >= 0 && c->log_level <= 3 && c->log_format >= 0 && c->log_format <= 2);
  FUZZ_CHECK(c->service_mode == 0 || c->service_mode == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size), *line, *next;
  char *argv[ITEMS_MAX + 2];
  char err[300], err2[300];
  size_t small = size % 40, i;
  int argc = 1;
  fcfg c, c2;
  hp__cfg_result r, r2;

  /* Split into lines; the text copy owns every string handed out. */
  env_n = 0;
  argv[0] = "holepunch";
  for (line = text; line != NULL; line = next) {
    char *eq;

    next = memchr(line, '\n', (size_t)(text + size - line));
    if (next != NULL)
      *next++ = '\0';
    eq = strchr(line, '=');
    if (line[0] != '-' && eq != NULL) {
      if (env_n < ITEMS_MAX) {
        *eq = '\0';
        env_names[env_n] = line;
        env_values[env_n] = eq + 1;
        env_n++;
      }
    } else if (argc <= ITEMS_MAX && (line[0] != '\0' || next != NULL)) {
      argv[argc++] = line;
    }
  }
  argv[argc] = NULL;

  memset(&c, 0, sizeof(c));
  memset(err, CANARY, sizeof(err));
  r = hp__cfg_load_env(specs, NSPECS, &c, argc, argv, fake_getenv, err, 256);
  FUZZ_CHECK(r == HP_CFG_OK || r == HP_CFG_HELP || r == HP_CFG_VERSION || r == HP_CFG_ERROR);
  FUZZ_CHECK(fuzz_terminated(err, 256));
  for (i = 256; i < sizeof(err); i++)
    FUZZ_CHECK((unsigned char)err[i] == CANARY);
  if (r == HP_CFG_ERROR)
    FUZZ_CHECK(err[0] != '\0');
  /* Nothing in the table is an internal error: the defaults are all valid. */
  FUZZ_CHECK(strncmp(err, "internal error", 14) != 0);

  memset(&c2, 0, sizeof(c2));
  memset(err2, CANARY, sizeof(err2));
  r2 = hp__cfg_load_env(specs, NSPECS, &c2, argc, argv, fake_getenv, err2, small);
  FUZZ_CHECK(r2 == r);
  FUZZ_CHECK(memcmp(&c, &c2, sizeof(c)) == 0);
  if (small > 0) {
    FUZZ_CHECK(fuzz_terminated(err2, small));
    FUZZ_CHECK(strncmp(err2, err, small - 1) == 0);
  }
  for (i = small; i < sizeof(err2); i++)
    FUZZ_CHECK((unsigned char)err2[i] == CANARY);

  if (r == HP_CFG_OK)
    check_ok(&c, argv, argc);
  free(text);
  return 0;
}
