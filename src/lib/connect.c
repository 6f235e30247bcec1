/*
 * connect.c - hp_connect, the blocking convenience (holepunch.h), on the
 * public API only: a private loop runs the punch; on success the secure
 * channel is bridged to a socketpair (hp_punch_take_fd) and the loop moves
 * to a detached thread that pumps it until both directions ended.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holepunch.h"
#include "log.h"

typedef struct connect_ctx {
  hp_status status;
  int fd;
  uv_loop_t *loop;
  char *peer_id, *reason;
  size_t peer_id_len, reason_len;
} connect_ctx;

static void on_connect_done(hp_punch *p, hp_status status, void *data) {
  connect_ctx *c = data;
  hp_info info;

  c->status = status;
  if (status == HP_STATUS_OK) {
    c->fd = hp_punch_take_fd(p);
    uv_stop(c->loop); /* hp_connect hands the loop to the pump thread */
  }
  hp_punch_info(p, &info);
  if (c->peer_id && c->peer_id_len)
    snprintf(c->peer_id, c->peer_id_len, "%s", info.peer_id);
  if (c->reason && c->reason_len)
    snprintf(c->reason, c->reason_len, "%s", info.reason);
  hp_punch_destroy(p);
}

/* The private loop after success: it pumps the bridged socket until both
 * directions ended, then goes away. */
static void *pump_thread(void *arg) {
  uv_loop_t *loop = arg;

  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0)
    HP_WARN("holepunch", NULL, "private loop still had handles at exit");
  free(loop);
  return NULL;
}

hp_status hp_connect(const hp_config *cfg, int *fd, char *peer_id, size_t peer_id_len, char *reason,
                     size_t reason_len) {
  uv_loop_t *loop;
  hp_punch *p = NULL;
  connect_ctx c = {HP_STATUS_CONFIG, -1, NULL, peer_id, reason, peer_id_len, reason_len};
  pthread_t th;
  pthread_attr_t attr;
  int r;

  if (fd)
    *fd = -1;
  if (reason && reason_len)
    reason[0] = '\0';
  if (peer_id && peer_id_len)
    peer_id[0] = '\0';
  loop = fd ? malloc(sizeof *loop) : NULL;
  if (!loop || uv_loop_init(loop) < 0) {
    free(loop);
    return HP_STATUS_CONFIG;
  }
  c.loop = loop;
  r = hp_punch_start(loop, cfg, on_connect_done, &c, &p);
  if (r < 0) {
    if (reason && reason_len)
      snprintf(reason, reason_len, "bad configuration (%s); see the log", strerror(-r));
  } else {
    /* Runs until the callback (which stops the loop once the socket is
     * bridged), or until every handle is closed after a failure. */
    uv_run(loop, UV_RUN_DEFAULT);
  }
  if (c.status == HP_STATUS_OK && c.fd < 0)
    c.status = HP_STATUS_NO_DIRECT;
  if (c.fd >= 0) {
    /* The bridge and the WebSocket's close handshake (bounded, 2 s) go on
     * in a thread of their own; the caller has its socket now. */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    r = pthread_create(&th, &attr, pump_thread, loop);
    pthread_attr_destroy(&attr);
    if (r != 0) {
      HP_ERROR("holepunch", NULL, "cannot start the thread of the secure channel: %s", strerror(r));
      close(c.fd);
      c.fd = -1;
      c.status = HP_STATUS_NO_DIRECT;
      if (reason && reason_len)
        snprintf(reason, reason_len, "cannot start the thread of the secure channel");
      pump_thread(loop); /* the bridge ends: its socket end is closed */
    }
  } else {
    uv_run(loop, UV_RUN_DEFAULT);
    pump_thread(loop);
  }
  *fd = c.fd;
  return c.status;
}
