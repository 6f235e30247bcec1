/*
 * health.h - the worker's health check: an HTTP server (libwebsockets, on
 * the worker's libuv loop) answering GET /healthz with 200 and a JSON
 * object, and 404 JSON for anything else.
 */
#ifndef HP_HEALTH_H
#define HP_HEALTH_H

#include <jansson.h>
#include <uv.h>

typedef struct hp__health hp__health;

/* Adds the current fields ("state", "room", "id", "peer", "attempts") to
 * obj; called for each request. */
typedef void (*hp__health_fill_cb)(json_t *obj, void *data);

/* Listen on bind:port (bind an IPv4 address: "127.0.0.1", "0.0.0.0" for all).
 * Returns 0, or -EADDRINUSE / -errno with the reason in the log. */
int hp__health_start(uv_loop_t *loop, const char *bind, int port, hp__health_fill_cb fill,
                     void *data, hp__health **out);

/* Stop and free (the loop must run for libwebsockets' handles to close).
 * NULL is a no-op. */
void hp__health_stop(hp__health *h);

#endif
