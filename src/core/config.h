/*
 * config.h - configuration as a validated table.
 *
 * Each setting has an environment variable, a command-line flag, a type, a
 * default and a range. Flags override the environment. A bad value stops
 * start-up with a message naming the variable (or flag), the value and what
 * is allowed; the programs then exit with code 2.
 */
#ifndef HP_CONFIG_H
#define HP_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum hp__cfg_type {
  HP_CFG_STRING,  /* const char * (points into environ/argv or the default) */
  HP_CFG_INT,     /* int within [min, max] */
  HP_CFG_SECONDS, /* double within [min, max], seconds, decimal allowed */
  HP_CFG_BOOL,    /* int 0/1; accepts 0/1/true/false/yes/no/on/off */
  HP_CFG_ENUM,    /* int index into choices[] */
  HP_CFG_BYTES    /* uint64_t within [min, max] (whole bytes; max at most 2^53) */
} hp__cfg_type;

typedef struct hp__cfg_spec {
  const char *env;  /* "INTERNAL_TCP_PORT" */
  const char *flag; /* "internal-tcp-port" (used as --internal-tcp-port VALUE) */
  hp__cfg_type type;
  const char *def;            /* default as text; NULL = required (STRING only) */
  double min, max;            /* for INT and SECONDS */
  const char *const *choices; /* for ENUM: NULL-terminated list */
  size_t offset;              /* offsetof(target struct, field) */
  const char *help;           /* one line for --help */
} hp__cfg_spec;

typedef enum hp__cfg_result {
  HP_CFG_OK = 0,
  HP_CFG_HELP = 1,    /* --help or -h given */
  HP_CFG_VERSION = 2, /* --version or -V given */
  HP_CFG_ERROR = -1   /* message in err */
} hp__cfg_result;

/*
 * Fill target from defaults, then the environment (getenv), then argv
 * (--flag VALUE or --flag=VALUE). argv[0] is skipped. Unknown flags and
 * positional arguments are errors.
 */
hp__cfg_result hp__cfg_load(const hp__cfg_spec *specs, size_t n, void *target, int argc,
                            char **argv, char *err, size_t errlen);

/* Same, with an explicit environment lookup (tests). */
hp__cfg_result hp__cfg_load_env(const hp__cfg_spec *specs, size_t n, void *target, int argc,
                                char **argv, const char *(*getenv_fn)(const char *name), char *err,
                                size_t errlen);

/* Print a usage table (flag, variable, default, help) to f. */
void hp__cfg_usage(const hp__cfg_spec *specs, size_t n, const char *prog, const char *summary,
                   FILE *f);

#endif
