/*
 * config.c - configuration as a validated table (see config.h).
 *
 * Order of precedence: built-in default < environment < command line. The
 * command line is read completely first, so --help and --version work even
 * next to a mistake, and a bad value is reported with the name the user
 * actually typed: the flag when it came from argv, the variable otherwise.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_SPECS_MAX 256 /* more settings than this is a programming error */
#define CFG_SHOW_MAX 64   /* longest value quoted back in a message */

static const char *const bool_true[] = {"1", "true", "yes", "on", NULL};
static const char *const bool_false[] = {"0", "false", "no", "off", NULL};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int word_index(const char *const *list, const char *s) {
  int i;

  for (i = 0; list != NULL && list[i] != NULL; i++)
    if (strcasecmp(list[i], s) == 0)
      return i;
  return -1;
}

static int parse_bool(const char *s, int *out) {
  if (word_index(bool_true, s) >= 0) {
    *out = 1;
    return 0;
  }
  if (word_index(bool_false, s) >= 0) {
    *out = 0;
    return 0;
  }
  return -EINVAL;
}

/* Optional '-', then decimal digits only; no spaces, no '+', nothing after. */
static int parse_int(const char *s, double min, double max, int *out) {
  const char *p = s;
  long long v;
  char *end;

  if (*p == '-')
    p++;
  if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 18)
    return -EINVAL;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || (double)v < min || (double)v > max)
    return -EINVAL;
  *out = (int)v;
  return 0;
}

/*
 * Decimal seconds: [-]digits[.digits] or [-].digits. Exponents, hex floats,
 * "inf" and "nan" (all of which strtod takes) are refused up front.
 */
static int parse_seconds(const char *s, double min, double max, double *out) {
  const char *p = s;
  size_t intd, fracd = 0;
  double v;
  char *end;

  if (*p == '-')
    p++;
  intd = strspn(p, "0123456789");
  p += intd;
  if (*p == '.') {
    p++;
    fracd = strspn(p, "0123456789");
    p += fracd;
  }
  if (*p != '\0' || intd + fracd == 0 || strlen(s) > 32)
    return -EINVAL;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

/* A byte count: plain decimal digits, no sign, within [min, max]. */
static int parse_bytes(const char *s, double min, double max, uint64_t *out) {
  unsigned long long v;
  char *end;

  if (*s == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 16)
    return -EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || (double)v < min || (double)v > max)
    return -EINVAL;
  *out = (uint64_t)v;
  return 0;
}

/* "an integer from 1 to 65535" and friends, for messages and --help. */
static void describe(const hp__cfg_spec *sp, char *buf, size_t buflen) {
  size_t o;
  int i;

  switch (sp->type) {
  case HP_CFG_INT:
    snprintf(buf, buflen, "an integer from %.0f to %.0f", sp->min, sp->max);
    break;
  case HP_CFG_SECONDS:
    snprintf(buf, buflen, "seconds from %g to %g", sp->min, sp->max);
    break;
  case HP_CFG_BYTES:
    snprintf(buf, buflen, "bytes, an integer from %.0f to %.0f", sp->min, sp->max);
    break;
  case HP_CFG_BOOL:
    snprintf(buf, buflen, "one of 1, 0, true, false, yes, no, on, off");
    break;
  case HP_CFG_ENUM:
    o = (size_t)snprintf(buf, buflen, "one of ");
    for (i = 0; sp->choices != NULL && sp->choices[i] != NULL && o < buflen; i++)
      o += (size_t)snprintf(buf + o, buflen - o, "%s%s", i ? ", " : "", sp->choices[i]);
    break;
  case HP_CFG_STRING:
  default:
    snprintf(buf, buflen, "a non-empty value");
    break;
  }
}

/* Parse value for sp and store it in target. Returns 0 or -EINVAL. */
static int apply(const hp__cfg_spec *sp, const char *value, void *target) {
  char *dst = (char *)target + sp->offset;
  int iv;
  double dv;
  uint64_t uv;

  if (value == NULL || value[0] == '\0')
    return -EINVAL;
  switch (sp->type) {
  case HP_CFG_STRING:
    memcpy(dst, &value, sizeof(value));
    return 0;
  case HP_CFG_INT:
    if (parse_int(value, sp->min, sp->max, &iv) < 0)
      return -EINVAL;
    memcpy(dst, &iv, sizeof(iv));
    return 0;
  case HP_CFG_SECONDS:
    if (parse_seconds(value, sp->min, sp->max, &dv) < 0)
      return -EINVAL;
    memcpy(dst, &dv, sizeof(dv));
    return 0;
  case HP_CFG_BYTES:
    if (parse_bytes(value, sp->min, sp->max, &uv) < 0)
      return -EINVAL;
    memcpy(dst, &uv, sizeof(uv));
    return 0;
  case HP_CFG_BOOL:
    if (parse_bool(value, &iv) < 0)
      return -EINVAL;
    memcpy(dst, &iv, sizeof(iv));
    return 0;
  case HP_CFG_ENUM:
    iv = word_index(sp->choices, value);
    if (iv < 0)
      return -EINVAL;
    memcpy(dst, &iv, sizeof(iv));
    return 0;
  }
  return -EINVAL;
}

static const char *ellipsis(const char *v) {
  return strlen(v) > CFG_SHOW_MAX ? "..." : "";
}

static const char *env_getenv(const char *name) {
  return getenv(name);
}

static const hp__cfg_spec *find_flag(const hp__cfg_spec *specs, size_t n, const char *name,
                                     size_t len, size_t *idx) {
  size_t i;

  for (i = 0; i < n; i++) {
    if (specs[i].flag != NULL && strlen(specs[i].flag) == len &&
        strncmp(specs[i].flag, name, len) == 0) {
      *idx = i;
      return &specs[i];
    }
  }
  return NULL;
}

hp__cfg_result hp__cfg_load_env(const hp__cfg_spec *specs, size_t n, void *target, int argc,
                                char **argv, const char *(*getenv_fn)(const char *name), char *err,
                                size_t errlen) {
  const char **flagval = NULL;
  hp__cfg_result result = HP_CFG_ERROR;
  int help = 0, version = 0, argerr = 0, positional = 0, i;
  char want[256];
  size_t k;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (specs == NULL || target == NULL || n > CFG_SPECS_MAX) {
    set_err(err, errlen, "internal error: invalid configuration table");
    goto out;
  }
  if (getenv_fn == NULL)
    getenv_fn = env_getenv;
  flagval = calloc(n + 1, sizeof(*flagval));
  if (flagval == NULL) {
    set_err(err, errlen, "out of memory reading the configuration");
    goto out;
  }

  /* Pass 1: the command line. The first mistake is kept, reading goes on. */
  for (i = 1; i < argc && argv != NULL && argv[i] != NULL; i++) {
    const char *a = argv[i], *name, *eq, *value;
    const hp__cfg_spec *sp;
    size_t idx, nlen;

    if (positional || a[0] != '-' || a[1] == '\0') {
      if (!argerr)
        set_err(err, errlen,
                "unexpected argument \"%.*s%s\": this program takes no positional "
                "arguments; see --help",
                CFG_SHOW_MAX, a, ellipsis(a));
      argerr = 1;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help = 1;
      continue;
    }
    if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      version = 1;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      positional = 1;
      continue;
    }
    name = a + 2;
    eq = strchr(name, '=');
    nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
    sp = (a[1] == '-') ? find_flag(specs, n, name, nlen, &idx) : NULL;
    if (sp == NULL) {
      if (!argerr)
        set_err(err, errlen, "unknown option \"%.*s%s\": see --help for the options", CFG_SHOW_MAX,
                a, ellipsis(a));
      argerr = 1;
      continue;
    }
    if (eq != NULL) {
      value = eq + 1;
    } else if (sp->type == HP_CFG_BOOL) {
      int dummy;
      /* A bare boolean flag means true; a following boolean word is its value. */
      if (i + 1 < argc && argv[i + 1] != NULL && parse_bool(argv[i + 1], &dummy) == 0)
        value = argv[++i];
      else
        value = "1";
    } else if (i + 1 < argc && argv[i + 1] != NULL) {
      value = argv[++i];
    } else {
      describe(sp, want, sizeof(want));
      if (!argerr)
        set_err(err, errlen, "--%s needs a value: expected %s", sp->flag, want);
      argerr = 1;
      continue;
    }
    flagval[idx] = value;
  }
  if (help) {
    result = HP_CFG_HELP;
    goto out;
  }
  if (version) {
    result = HP_CFG_VERSION;
    goto out;
  }
  if (argerr)
    goto out;

  /* Pass 2: each setting from the strongest source that has it. */
  for (k = 0; k < n; k++) {
    const hp__cfg_spec *sp = &specs[k];
    const char *env = sp->env != NULL ? getenv_fn(sp->env) : NULL;
    const char *value;

    if (flagval[k] != NULL)
      value = flagval[k];
    else if (env != NULL)
      value = env;
    else
      value = sp->def;
    if (value == NULL) {
      if (sp->type == HP_CFG_STRING) {
        /* Required setting not given anywhere. */
        if (sp->env != NULL && sp->flag != NULL)
          set_err(err, errlen, "%s is required: set the environment variable or pass --%s", sp->env,
                  sp->flag);
        else
          set_err(err, errlen, "%s%s is required", sp->env ? "" : "--",
                  sp->env ? sp->env : sp->flag);
        goto out;
      }
      set_err(err, errlen, "internal error: %s has no default", sp->env ? sp->env : sp->flag);
      goto out;
    }
    if (apply(sp, value, target) < 0) {
      describe(sp, want, sizeof(want));
      if (flagval[k] != NULL)
        set_err(err, errlen, "--%s \"%.*s%s\" is not valid: expected %s", sp->flag, CFG_SHOW_MAX,
                value, ellipsis(value), want);
      else if (env != NULL)
        set_err(err, errlen, "%s=\"%.*s%s\" is not valid: expected %s", sp->env, CFG_SHOW_MAX,
                value, ellipsis(value), want);
      else
        set_err(err, errlen, "internal error: the default of %s \"%s\" is not valid: expected %s",
                sp->env ? sp->env : sp->flag, value, want);
      goto out;
    }
  }
  result = HP_CFG_OK;
out:
  free(flagval);
  return result;
}

hp__cfg_result hp__cfg_load(const hp__cfg_spec *specs, size_t n, void *target, int argc,
                            char **argv, char *err, size_t errlen) {
  return hp__cfg_load_env(specs, n, target, argc, argv, env_getenv, err, errlen);
}

/* "--port N", "--log-level debug|info|warning|error", "--trust-proxy [BOOL]" */
static void flag_col(const hp__cfg_spec *sp, char *buf, size_t buflen) {
  size_t o;
  int i;

  if (sp->flag == NULL) {
    snprintf(buf, buflen, "-");
    return;
  }
  switch (sp->type) {
  case HP_CFG_INT:
    snprintf(buf, buflen, "--%s N", sp->flag);
    break;
  case HP_CFG_SECONDS:
    snprintf(buf, buflen, "--%s SECONDS", sp->flag);
    break;
  case HP_CFG_BYTES:
    snprintf(buf, buflen, "--%s BYTES", sp->flag);
    break;
  case HP_CFG_BOOL:
    snprintf(buf, buflen, "--%s [BOOL]", sp->flag);
    break;
  case HP_CFG_ENUM:
    o = (size_t)snprintf(buf, buflen, "--%s ", sp->flag);
    for (i = 0; sp->choices != NULL && sp->choices[i] != NULL && o < buflen; i++)
      o += (size_t)snprintf(buf + o, buflen - o, "%s%s", i ? "|" : "", sp->choices[i]);
    break;
  case HP_CFG_STRING:
  default:
    snprintf(buf, buflen, "--%s TEXT", sp->flag);
    break;
  }
}

static const char *def_col(const hp__cfg_spec *sp) {
  if (sp->def == NULL)
    return "(required)";
  if (sp->def[0] == '\0')
    return "(none)";
  return sp->def;
}

void hp__cfg_usage(const hp__cfg_spec *specs, size_t n, const char *prog, const char *summary,
                   FILE *f) {
  char col[256];
  int wf = (int)strlen("-h, --help"), we = (int)strlen("VARIABLE"), wd = (int)strlen("DEFAULT");
  size_t k;

  for (k = 0; k < n; k++) {
    int l;
    flag_col(&specs[k], col, sizeof(col));
    l = (int)strlen(col);
    wf = l > wf ? l : wf;
    l = specs[k].env != NULL ? (int)strlen(specs[k].env) : 1;
    we = l > we ? l : we;
    l = (int)strlen(def_col(&specs[k]));
    wd = l > wd ? l : wd;
  }
  fprintf(f, "Usage: %s [options]\n", prog != NULL ? prog : "program");
  if (summary != NULL)
    fprintf(f, "%s\n", summary);
  fprintf(f, "\nEach setting is read from its environment variable; a flag overrides it.\n\n");
  fprintf(f, "  %-*s  %-*s  %-*s  %s\n", wf, "FLAG", we, "VARIABLE", wd, "DEFAULT", "MEANING");
  for (k = 0; k < n; k++) {
    flag_col(&specs[k], col, sizeof(col));
    fprintf(f, "  %-*s  %-*s  %-*s  %s\n", wf, col, we, specs[k].env ? specs[k].env : "-", wd,
            def_col(&specs[k]), specs[k].help ? specs[k].help : "");
  }
  fprintf(f, "  %-*s  %-*s  %-*s  %s\n", wf, "-h, --help", we, "", wd, "",
          "print this help and exit");
  fprintf(f, "  %-*s  %-*s  %-*s  %s\n", wf, "-V, --version", we, "", wd, "",
          "print the version and exit");
}
