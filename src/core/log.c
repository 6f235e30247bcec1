/*
 * log.c - structured logs, one event per line (see log.h).
 *
 * Each event is formatted completely in memory and then written with a single
 * fwrite + fflush under the stream lock, so events from the loop thread and
 * from libuv threadpool threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest message text kept; longer messages are cut and end with "...". */
#define LOG_MSG_MAX 2048
/* Longest text line; context beyond this is dropped, never the newline. */
#define LOG_LINE_MAX 8192
/* Significant digits of a JSON real: jansson's default (17) prints 0.427 as
 * 0.42699999999999999; 10 still shows a millisecond value to the microsecond
 * up to 9999999.999 ms (2.7 hours). */
#define LOG_REAL_DIGITS 10
#define LOG_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(LOG_REAL_DIGITS))

/* Written once at start-up (before threads), read everywhere after. */
static int g_level = HP_LOG_INFO;
static int g_format = HP_LOG_JSON;
static FILE *g_stream; /* NULL means stderr */

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void hp__log_setup(hp__log_level level, hp__log_format format) {
  __atomic_store_n(&g_level, (int)level, __ATOMIC_RELAXED);
  __atomic_store_n(&g_format, (int)format, __ATOMIC_RELAXED);
}

void hp__log_set_stream(FILE *f) {
  __atomic_store_n(&g_stream, f, __ATOMIC_RELAXED);
}

int hp__log_enabled(hp__log_level level) {
  return (int)level >= __atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

/* "2026-11-25T00:12:18.123Z" into buf (>= 25 bytes). */
static void format_time(char *buf, size_t buflen) {
  struct timespec ts;
  struct tm tm;
  size_t n;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(buf, buflen, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, buflen - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/*
 * jansson refuses strings that are not UTF-8. A message can carry bytes from
 * the network, so replace every non-ASCII byte of such a message with '?'
 * rather than lose the whole event.
 */
static json_t *string_lossy(const char *s) {
  json_t *j = json_string(s);
  char *copy;
  size_t i;

  if (j != NULL)
    return j;
  copy = strdup(s);
  if (copy == NULL)
    return NULL;
  for (i = 0; copy[i] != '\0'; i++)
    if ((unsigned char)copy[i] >= 0x80)
      copy[i] = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static int reserved_key(const char *k) {
  return strcmp(k, "time") == 0 || strcmp(k, "severity") == 0 || strcmp(k, "message") == 0 ||
         strcmp(k, "component") == 0;
}

/* The JSON line, malloc'd, with its '\n'. NULL on allocation failure. */
static char *build_json(const char *ts, const char *sev, const char *component, const char *msg,
                        json_t *ctx, size_t *len) {
  json_t *o = json_object();
  char *s = NULL, *line = NULL;
  size_t n;

  if (o == NULL)
    goto out;
  json_object_set_new(o, "time", json_string(ts));
  json_object_set_new(o, "severity", json_string(sev));
  json_object_set_new(o, "message", string_lossy(msg));
  json_object_set_new(o, "component", string_lossy(component));
  if (json_is_object(ctx)) {
    const char *k;
    json_t *v;

    json_object_foreach(ctx, k, v) {
      if (!reserved_key(k))
        json_object_set(o, k, v);
    }
  }
  s = json_dumps(o, LOG_DUMP_FLAGS);
  if (s == NULL)
    goto out;
  n = strlen(s);
  line = malloc(n + 2);
  if (line == NULL)
    goto out;
  memcpy(line, s, n);
  line[n] = '\n';
  line[n + 1] = '\0';
  *len = n + 1;
out:
  free(s);
  json_decref(o);
  return line;
}

/* Appends to a fixed buffer; silently stops at the cap (one byte kept for '\n'). */
typedef struct linebuf {
  char *p;
  size_t len, cap;
} linebuf;

static void lb_add(linebuf *b, const char *s, size_t n) {
  size_t room = b->cap - 1 - b->len;

  if (n > room)
    n = room;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void lb_str(linebuf *b, const char *s) {
  lb_add(b, s, strlen(s));
}

/* Text values without spaces, quotes or '=' are written bare, others as JSON. */
static int plain_text(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s != '\0'; s++)
    if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || *s == 0x7f)
      return 0;
  return 1;
}

static char *build_text(const char *ts, const char *sev, const char *component, const char *msg,
                        json_t *ctx, size_t *len) {
  linebuf b = {malloc(LOG_LINE_MAX), 0, LOG_LINE_MAX};
  char head[64];
  size_t i, start;

  if (b.p == NULL)
    return NULL;
  snprintf(head, sizeof(head), "%s %-5s [", ts, sev);
  lb_str(&b, head);
  lb_str(&b, component);
  lb_str(&b, "] ");
  start = b.len;
  lb_str(&b, msg);
  /* One event is one line: control characters in the message become spaces. */
  for (i = start; i < b.len; i++)
    if ((unsigned char)b.p[i] < ' ')
      b.p[i] = ' ';
  if (json_is_object(ctx)) {
    const char *k;
    json_t *v;

    json_object_foreach(ctx, k, v) {
      char *enc;

      if (reserved_key(k))
        continue;
      lb_str(&b, " ");
      lb_str(&b, k);
      lb_str(&b, "=");
      if (json_is_string(v) && plain_text(json_string_value(v))) {
        lb_str(&b, json_string_value(v));
        continue;
      }
      /* Compact JSON escapes control characters, so the line stays one line. */
      enc = json_dumps(v, LOG_DUMP_FLAGS | JSON_ENCODE_ANY);
      lb_str(&b, enc != NULL ? enc : "?");
      free(enc);
    }
  }
  b.p[b.len++] = '\n';
  b.p[b.len] = '\0';
  *len = b.len;
  return b.p;
}

void hp__log(hp__log_level level, const char *component, json_t *ctx, const char *fmt, ...) {
  char msg[LOG_MSG_MAX];
  char ts[40];
  char *line = NULL;
  size_t len = 0;
  va_list ap;
  int n;
  FILE *f;

  if (!hp__log_enabled(level))
    goto out;
  if ((int)level < HP_LOG_DEBUG || (int)level > HP_LOG_ERROR)
    level = HP_LOG_ERROR;
  va_start(ap, fmt);
  n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0)
    snprintf(msg, sizeof(msg), "(unformattable message)");
  else if ((size_t)n >= sizeof(msg))
    memcpy(msg + sizeof(msg) - 4, "...", 4);
  format_time(ts, sizeof(ts));
  if (component == NULL)
    component = "-";
  if (__atomic_load_n(&g_format, __ATOMIC_RELAXED) == HP_LOG_TEXT)
    line = build_text(ts, level_names[level], component, msg, ctx, &len);
  else
    line = build_json(ts, level_names[level], component, msg, ctx, &len);
  if (line == NULL)
    goto out;
  f = __atomic_load_n(&g_stream, __ATOMIC_RELAXED);
  if (f == NULL)
    f = stderr;
  flockfile(f);
  fwrite(line, 1, len, f);
  fflush(f);
  funlockfile(f);
out:
  free(line);
  json_decref(ctx);
}
