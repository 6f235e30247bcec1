/*
 * log.h - structured logs on stderr, one event per line.
 *
 * LOG_FORMAT=json: one JSON object per line with the keys Google Cloud Logging
 * reads (time RFC 3339 UTC with ms, severity, message) plus component and the
 * event's context fields. LOG_FORMAT=text: one readable line per event.
 * The HP_LOG macro skips all formatting (and the context expression) below
 * the level.
 */
#ifndef HP_LOG_H
#define HP_LOG_H

#include <jansson.h>
#include <stdio.h>

typedef enum hp__log_level {
  HP_LOG_DEBUG = 0,
  HP_LOG_INFO = 1,
  HP_LOG_WARNING = 2,
  HP_LOG_ERROR = 3
} hp__log_level;

typedef enum hp__log_format { HP_LOG_JSON = 0, HP_LOG_TEXT = 1 } hp__log_format;

/* Set level and format. Before any call: info, json. */
void hp__log_setup(hp__log_level level, hp__log_format format);
/* Redirect output (tests); NULL means stderr. */
void hp__log_set_stream(FILE *f);
int hp__log_enabled(hp__log_level level);

/*
 * Emit one event. ctx is a JSON object of context fields (room, peer, addr,
 * elapsed_ms, ...) or NULL; the reference is stolen. Keys time, severity,
 * message and component in ctx are ignored.
 */
void hp__log(hp__log_level level, const char *component, json_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define HP_LOG(level, component, ctx, ...)                                                         \
  do {                                                                                             \
    if (hp__log_enabled(level))                                                                    \
      hp__log((level), (component), (ctx), __VA_ARGS__);                                           \
  } while (0)

#define HP_DEBUG(comp, ctx, ...) HP_LOG(HP_LOG_DEBUG, comp, ctx, __VA_ARGS__)
#define HP_INFO(comp, ctx, ...) HP_LOG(HP_LOG_INFO, comp, ctx, __VA_ARGS__)
#define HP_WARN(comp, ctx, ...) HP_LOG(HP_LOG_WARNING, comp, ctx, __VA_ARGS__)
#define HP_ERROR(comp, ctx, ...) HP_LOG(HP_LOG_ERROR, comp, ctx, __VA_ARGS__)

#endif
