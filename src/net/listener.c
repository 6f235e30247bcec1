/*
 * listener.c - TCP listener with admission control (see listener.h).
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define BACKLOG 1024
#define REFUSAL_LOG_MS 10000 /* at most one refusal line per this interval */
#define SWEEP_MS 30000       /* idle per-address entries are dropped this often */

struct hp__listener {
  uv_tcp_t tcp;
  uv_timer_t timer; /* the pending refusal line, and the table sweep */
  int closing;
  int handles; /* open handles; freed when 0 */
  hp__listener_opts o;
  char bind[INET6_ADDRSTRLEN];
  char comp[32];
  hp__iptable *ips;
  const hp__listener_ops *ops;
  void *arg;
  int port;
  unsigned open;
  uint64_t refused[HP_REFUSE_COUNT];
  uint64_t last_log_ms, last_sweep_ms;
};

static const char *const refusal_names[HP_REFUSE_COUNT] = {
    "MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_IP", "shutting down"};

static void log_refusals(hp__listener *l) {
  uint64_t now = uv_now(l->tcp.loop), total = 0;

  for (int i = 0; i < HP_REFUSE_COUNT; i++)
    total += l->refused[i];
  if (!total)
    return;
  HP_WARN(l->comp,
          json_pack("{s:I,s:I,s:I,s:I,s:i,s:i}", "refused", (json_int_t)total, "max_connections",
                    (json_int_t)l->refused[HP_REFUSE_GLOBAL], "max_connections_per_ip",
                    (json_int_t)l->refused[HP_REFUSE_PER_IP], "draining",
                    (json_int_t)l->refused[HP_REFUSE_DRAINING], "open", (int)l->open, "interval_s",
                    REFUSAL_LOG_MS / 1000),
          "refused %llu connection(s) in the last %d s (over %s: %llu, over %s: %llu, shutting "
          "down: %llu)",
          (unsigned long long)total, REFUSAL_LOG_MS / 1000, refusal_names[0],
          (unsigned long long)l->refused[HP_REFUSE_GLOBAL], refusal_names[1],
          (unsigned long long)l->refused[HP_REFUSE_PER_IP],
          (unsigned long long)l->refused[HP_REFUSE_DRAINING]);
  memset(l->refused, 0, sizeof(l->refused));
  l->last_log_ms = now;
}

static void on_timer(uv_timer_t *t) {
  hp__listener *l = t->data;
  uint64_t now = uv_now(t->loop);

  if (now - l->last_log_ms >= REFUSAL_LOG_MS)
    log_refusals(l);
  if (now - l->last_sweep_ms >= SWEEP_MS) {
    hp__iptable_sweep(l->ips, l->o.hello_rate, l->o.hello_burst, now);
    l->last_sweep_ms = now;
  }
}

void hp__listener_note_refusal(hp__listener *l, hp__refusal why) {
  l->refused[why]++;
  /* The first refusal after a quiet interval is logged at once; the ones
   * after it wait for the timer, which logs their count. */
  if (uv_now(l->tcp.loop) - l->last_log_ms >= REFUSAL_LOG_MS)
    log_refusals(l);
}

static void on_connection(uv_stream_t *server, int status) {
  hp__listener *l = server->data;
  struct sockaddr_storage peer;
  uint8_t key[16];
  hp__ipent *ent = NULL;
  hp__stream *s;
  hp__refusal why = HP_REFUSE_COUNT;

  if (status < 0) {
    /* libuv already accepted and closed what it could with its reserve
     * descriptor; nothing is left to retry in a loop. */
    HP_DEBUG(l->comp, NULL, "accept failed: %s", uv_strerror(status));
    return;
  }
  s = l->ops->alloc(l->arg);
  if (!s)
    return; /* the connection stays queued; the next one retries */
  if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
    hp__stream_close(s);
    return;
  }
  memset(&peer, 0, sizeof(peer));
  (void)hp__stream_peer(s, &peer);
  if (l->closing) {
    why = HP_REFUSE_DRAINING;
  } else if (l->open >= l->o.max_connections) {
    why = HP_REFUSE_GLOBAL;
  } else if (l->o.max_per_ip && hp__ip_key_sa((struct sockaddr *)&peer, key) == 0) {
    ent = hp__iptable_get(l->ips, key, 1, l->o.hello_burst, uv_now(l->tcp.loop));
    if (ent && ent->conns >= l->o.max_per_ip)
      why = HP_REFUSE_PER_IP;
  }
  if (why != HP_REFUSE_COUNT) {
    hp__listener_note_refusal(l, why);
    l->ops->refused(l->arg, s, why);
    return;
  }
  l->open++;
  if (ent)
    ent->conns++;
  l->ops->accepted(l->arg, s, &peer, ent);
}

void hp__listener_release(hp__listener *l, hp__ipent *ent) {
  if (l->open)
    l->open--;
  if (ent) {
    if (ent->conns)
      ent->conns--;
    hp__iptable_maybe_drop(l->ips, ent, l->o.hello_rate, l->o.hello_burst, uv_now(l->tcp.loop));
  }
}

unsigned hp__listener_open(const hp__listener *l) {
  return l->open;
}

int hp__listener_port(const hp__listener *l) {
  return l->port;
}

static int is_ipv4(const char *a) {
  struct in_addr x;
  return inet_pton(AF_INET, a, &x) == 1;
}

/* The socket address of bind:port ("0.0.0.0", "::" or one address). */
static int bind_sockaddr(const char *bind, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (is_ipv4(bind)) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, bind, &s4->sin_addr);
    return 0;
  }
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons((uint16_t)port);
  return inet_pton(AF_INET6, bind, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
}

static void log_bind_error(const hp__listener *l, int rc) {
  json_t *ctx = json_pack("{s:s,s:i}", "addr", l->bind, "port", l->o.port);

  if (rc == UV_EADDRINUSE)
    HP_ERROR(l->comp, ctx, "cannot listen on %s port %d: the port is already in use (PORT)",
             l->bind, l->o.port);
  else if (rc == UV_EADDRNOTAVAIL)
    HP_ERROR(l->comp, ctx, "cannot listen on %s: it is not an address of this host (BIND)",
             l->bind);
  else
    HP_ERROR(l->comp, ctx, "cannot listen on %s port %d: %s", l->bind, l->o.port, uv_strerror(rc));
}

static void on_handle_closed(uv_handle_t *h) {
  hp__listener *l = h->data;
  if (--l->handles == 0)
    free(l);
}

int hp__listener_create(uv_loop_t *loop, const hp__listener_opts *o, hp__iptable *ips,
                        const hp__listener_ops *ops, void *arg, hp__listener **out) {
  struct sockaddr_storage ss;
  int namelen = (int)sizeof(ss);
  hp__listener *l;
  int rc;

  *out = NULL;
  l = calloc(1, sizeof(*l));
  if (!l)
    return -ENOMEM;
  l->o = *o;
  snprintf(l->bind, sizeof(l->bind), "%s", o->bind ? o->bind : "0.0.0.0");
  snprintf(l->comp, sizeof(l->comp), "%s", o->component ? o->component : "net");
  l->o.bind = l->bind;
  l->ips = ips;
  l->ops = ops;
  l->arg = arg;
  if (bind_sockaddr(l->bind, o->port, &ss) < 0) {
    HP_ERROR(l->comp, json_pack("{s:s}", "addr", l->bind), "BIND=%s is not an IP address", l->bind);
    free(l);
    return -EINVAL;
  }
  rc = uv_tcp_init_ex(loop, &l->tcp, ss.ss_family);
  if (rc < 0) {
    HP_ERROR(l->comp, NULL, "cannot create a TCP socket: %s", uv_strerror(rc));
    free(l);
    return rc;
  }
  l->handles = 1;
  l->tcp.data = l;
  /* "::" is dual stack whatever net.ipv6.bindv6only says. libuv sets
   * SO_REUSEADDR. */
  if (!strcmp(l->bind, "::")) {
    uv_os_fd_t fd;
    int zero = 0;
    if (uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0)
      (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  }
  rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
  if (!rc)
    rc = uv_listen((uv_stream_t *)&l->tcp, BACKLOG, on_connection);
  if (!rc)
    rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &namelen);
  if (rc < 0) {
    log_bind_error(l, rc);
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
    return rc;
  }
  l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
  uv_timer_init(loop, &l->timer);
  l->handles++;
  l->timer.data = l;
  uv_timer_start(&l->timer, on_timer, 1000, 1000);
  uv_unref((uv_handle_t *)&l->timer);
  l->last_log_ms = l->last_sweep_ms = uv_now(loop) - REFUSAL_LOG_MS;
  *out = l;
  return 0;
}

void hp__listener_close(hp__listener *l) {
  if (!l || l->closing)
    return;
  l->closing = 1;
  log_refusals(l);
  uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
}

void hp__listener_destroy(hp__listener *l) {
  if (!l)
    return;
  hp__listener_close(l);
  uv_close((uv_handle_t *)&l->timer, on_handle_closed);
}
