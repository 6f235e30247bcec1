/*
 * hp_wsc_probe.c - open the signaling WebSocket of a rendezvous base URL
 * with src/net's WebSocket client, then close it politely (lab tool).
 *
 *   hp_wsc_probe BASE_URL [CA_FILE]
 *
 * BASE_URL as RENDEZVOUS_SERVICE_URL (http, https, ws, wss); the path is
 * <base>/ws. Prints "open" and then "closed: <why>" on stdout and exits 0
 * when the upgrade succeeded and the close handshake ended; otherwise
 * prints the client's sentence on stderr and exits 3. Bounded: 5 s to open,
 * 2 s to close.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "url.h"
#include "ws_client.h"

static int rc = 3;

static void on_open(void *arg) {
  hp__wsc *c = *(hp__wsc **)arg;
  printf("open\n");
  fflush(stdout);
  hp__wsc_close(c, HP_WS_CLOSE_NORMAL, "probe");
}

static void on_message(void *arg, int binary, const uint8_t *d, size_t len) {
  (void)arg, (void)binary, (void)d, (void)len;
}

static void on_end(void *arg, const hp__wsc_end *e) {
  hp__wsc **c = arg;
  if (e->kind == HP_WSC_END_CLOSED && e->opened) {
    printf("closed: %s (code %u)\n", e->reason, e->code);
    rc = 0;
  } else {
    fprintf(stderr, "%s\n", e->reason);
  }
  hp__wsc_free(*c);
  *c = NULL;
}

int main(int argc, char **argv) {
  static const hp__wsc_cbs cbs = {.open = on_open, .message = on_message, .end = on_end};
  char err[300], path[sizeof(((hp__url *)0)->base) + 4];
  hp__url url;
  hp__wsc_opts o;
  hp__wsc *c = NULL;
  uv_loop_t loop;

  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: hp_wsc_probe BASE_URL [CA_FILE]\n");
    return 2;
  }
  if (hp__url_parse(argv[1], &url, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s\n", argv[1], err);
    return 2;
  }
  snprintf(path, sizeof(path), "%s/ws", url.base);
  memset(&o, 0, sizeof(o));
  o.host = url.host;
  o.port = url.port;
  o.tls = url.tls;
  o.path = path;
  o.ca_file = argc == 3 ? argv[2] : NULL;
  o.user_agent = "hp_wsc_probe";
  o.open_timeout_ms = 5000;
  o.close_bound_ms = 2000;
  uv_loop_init(&loop);
  if (hp__wsc_open(&loop, &o, &cbs, &c, &c, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return rc;
}
