/*
 * health.c - GET /healthz on PORT, with libwebsockets on the worker's loop.
 *
 * This is a second lws context on the same foreign libuv loop as the
 * library's signaling client; lws keeps per-context handles, so the two do
 * not interfere.
 */
#include "health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "signal_client.h"

#define BODY_MAX 1024

struct hp__health {
  uv_loop_t *loop;
  struct lws_context *ctx;
  hp__health_fill_cb fill;
  void *data;
};

static int reply(struct lws *wsi, unsigned status, json_t *body) {
  unsigned char buf[LWS_PRE + 512 + BODY_MAX];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  char *text = json_dumps(body, JSON_COMPACT);
  size_t len = text ? strlen(text) : 0;
  int r = -1;

  json_decref(body);
  if (!text || len + 1 > BODY_MAX)
    goto out;
  if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)len + 1, &p,
                                  end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   (const unsigned char *)"no-store", 8, &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    goto out;
  memcpy(p, text, len);
  p[len] = '\n';
  if (lws_write(wsi, p, len + 1, LWS_WRITE_HTTP_FINAL) != (int)len + 1)
    goto out;
  r = lws_http_transaction_completed(wsi) ? -1 : 0;
out:
  free(text);
  return r;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  hp__health *h;
  (void)user;
  (void)len;

  if (reason != LWS_CALLBACK_HTTP)
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  h = lws_context_user(lws_get_context(wsi));
  if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 && in &&
      strcmp((const char *)in, "/healthz") == 0) {
    json_t *o = json_pack("{s:s}", "status", "ok");
    if (o)
      h->fill(o, h->data);
    return reply(wsi, HTTP_STATUS_OK, o);
  }
  return reply(wsi, HTTP_STATUS_NOT_FOUND,
               json_pack("{s:s, s:s}", "status", "error", "error", "not found"));
}

static const struct lws_protocols protocols[] = {
    {"http", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int hp__health_start(uv_loop_t *loop, const char *bind_addr, int port, hp__health_fill_cb fill,
                     void *data, hp__health **out) {
  struct lws_context_creation_info info;
  void *foreign[1] = {loop};
  hp__health *h;
  struct sockaddr_in sin;
  int one = 1, probe;
  const int any = strcmp(bind_addr, "0.0.0.0") == 0;

  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1)
    return -EINVAL;
  /* lws says little when the port is busy: check first, to fail clearly. */
  probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    int r = 0;
    setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(probe, (struct sockaddr *)&sin, sizeof sin) < 0)
      r = -errno;
    close(probe);
    if (r < 0) {
      HP_ERROR("health", json_pack("{s:s, s:i}", "bind", bind_addr, "port", port),
               "cannot listen on %s:%d (PORT): %s", bind_addr, port, strerror(-r));
      return r;
    }
  }
  h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->loop = loop;
  h->fill = fill;
  h->data = data;
  hp__lws_log_setup();
  memset(&info, 0, sizeof info);
  info.port = port;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = foreign;
  info.user = h;
  info.gid = -1;
  info.uid = -1;
  info.vhost_name = "health";
  if (!any) {
    /* An address: lws binds an IPv4 socket to it (no dual-stack socket). */
    info.iface = bind_addr;
    info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  }
  h->ctx = lws_create_context(&info);
  if (!h->ctx) {
    HP_ERROR("health", json_pack("{s:i}", "port", port),
             "cannot start the health server on PORT %d", port);
    free(h);
    return -EADDRINUSE;
  }
  HP_DEBUG("health", json_pack("{s:s, s:i}", "bind", bind_addr, "port", port),
           "health server on %s:%d", bind_addr, port);
  *out = h;
  return 0;
}

void hp__health_stop(hp__health *h) {
  if (!h)
    return;
  /* lws finishes closing its handles while the loop runs; it does not touch
   * h after this (our callback only runs for requests). */
  hp__lws_context_release(h->loop, h->ctx);
  free(h);
}
