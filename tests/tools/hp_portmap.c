/*
 * hp_portmap.c - map a TCP port on the home router with
 * src/lib/portmap/ (UPnP-IGD or NAT-PMP), serve it, then remove the
 * mapping: the lab's window on the port-mapping module (e2e.portmap).
 *
 *   hp_portmap --port P [--proto upnp|natpmp|any] [--lifetime S]
 *              [--hold S] [--timeout-ms N]
 *
 * Listens on P (SO_REUSEADDR + SO_REUSEPORT, like the punch port) and
 * answers every connection with "hello from hp_portmap\n". Prints one JSON
 * line per mapping result ({"mapped": "ip:port", "proto", "lifetime_s",
 * "refresh"} or {"error": ...}), keeps the mapping for --hold seconds
 * (default 10; refreshed meanwhile when the lease is short), stops early on
 * SIGTERM/SIGINT, then removes the mapping and prints {"removed": true}.
 * Exit 0 when it mapped and removed, 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "addr.h"
#include "log.h"
#include "portmap.h"

typedef struct app {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t hold;
  uv_signal_t sigterm, sigint;
  hp__portmap *pm;
  int mapped, removed, stopping;
} app;

static const char greeting[] = "hello from hp_portmap\n";

static void free_handle(uv_handle_t *h) {
  free(h);
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  uv_close((uv_handle_t *)w->data, free_handle);
  free(w);
}

static void on_conn(uv_stream_t *l, int status) {
  uv_tcp_t *c;
  uv_write_t *w;
  uv_buf_t b = uv_buf_init((char *)greeting, sizeof greeting - 1);

  if (status < 0)
    return;
  c = malloc(sizeof *c);
  w = malloc(sizeof *w);
  if (!c || !w) {
    free(c);
    free(w);
    return;
  }
  uv_tcp_init(l->loop, c);
  if (uv_accept(l, (uv_stream_t *)c) < 0) {
    free(w);
    uv_close((uv_handle_t *)c, free_handle);
    return;
  }
  w->data = c;
  if (uv_write(w, (uv_stream_t *)c, &b, 1, on_written) < 0) {
    free(w);
    uv_close((uv_handle_t *)c, free_handle);
  }
}

static void on_removed(void *data) {
  app *a = data;
  a->removed = 1;
  printf("{\"removed\":true}\n");
  fflush(stdout);
  uv_close((uv_handle_t *)&a->listener, NULL);
}

static void stop(app *a) {
  if (a->stopping)
    return;
  a->stopping = 1;
  uv_timer_stop(&a->hold);
  uv_close((uv_handle_t *)&a->hold, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  hp__portmap_stop(a->pm, on_removed, a);
}

static void on_hold(uv_timer_t *t) {
  stop(t->data);
}

static void on_signal(uv_signal_t *s, int sig) {
  (void)sig;
  stop(s->data);
}

static void on_map(const hp__portmap_result *r, void *data) {
  app *a = data;
  char ext[HP_ADDR_STRLEN] = "";

  if (r->status == 0) {
    hp__addr_format((const struct sockaddr *)&r->external, ext, sizeof ext);
    printf("{\"mapped\":\"%s\",\"proto\":\"%s\",\"lifetime_s\":%d,\"refresh\":%s}\n", ext,
           hp__portmap_proto_name(r->proto), r->lifetime_s, r->refresh ? "true" : "false");
    a->mapped = 1;
  } else {
    printf("{\"error\":\"%s\",\"status\":%d}\n", r->err, r->status);
    if (!a->mapped)
      stop(a);
  }
  fflush(stdout);
}

static int listen_on(app *a, int port) {
  struct sockaddr_in sin;
  int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    if (fd >= 0)
      close(fd);
    return -errno;
  }
  uv_tcp_init(a->loop, &a->listener);
  if (uv_tcp_open(&a->listener, fd) < 0)
    return -EINVAL;
  return uv_listen((uv_stream_t *)&a->listener, 16, on_conn);
}

int main(int argc, char **argv) {
  app a;
  uv_loop_t loop;
  hp__portmap_opts o = {0};
  int port = 0, hold = 10, i, r;

  memset(&a, 0, sizeof a);
  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0)
      port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--lifetime") == 0)
      o.lifetime_s = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--hold") == 0)
      hold = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--timeout-ms") == 0)
      o.timeout_ms = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--proto") == 0)
      o.protocols = strcmp(argv[i + 1], "upnp") == 0     ? HP_PORTMAP_UPNP
                    : strcmp(argv[i + 1], "natpmp") == 0 ? HP_PORTMAP_NATPMP
                                                         : 0;
    else
      break;
  }
  if (i != argc || port < 1 || port > 65535 || hold < 1 || o.lifetime_s < 0) {
    fprintf(stderr, "usage: hp_portmap --port P [--proto upnp|natpmp|any] [--lifetime S] "
                    "[--hold S] [--timeout-ms N]\n");
    return 2;
  }
  hp__log_setup(HP_LOG_INFO, HP_LOG_JSON);
  uv_loop_init(&loop);
  a.loop = &loop;
  r = listen_on(&a, port);
  if (r < 0) {
    fprintf(stderr, "hp_portmap: cannot listen on %d: %s\n", port, strerror(-r));
    return 1;
  }
  uv_timer_init(&loop, &a.hold);
  a.hold.data = &a;
  uv_timer_start(&a.hold, on_hold, (uint64_t)hold * 1000, 0);
  uv_signal_init(&loop, &a.sigterm);
  uv_signal_init(&loop, &a.sigint);
  a.sigterm.data = a.sigint.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  r = hp__portmap_start(&loop, port, &o, on_map, &a, &a.pm);
  if (r < 0) {
    fprintf(stderr, "hp_portmap: %s\n", strerror(-r));
    return 1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  r = uv_loop_close(&loop);
  return a.mapped && a.removed && r == 0 ? 0 : 1;
}
