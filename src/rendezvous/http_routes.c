/*
 * http_routes.c - the HTTP side of the rendezvous: GET /healthz, /whoami,
 * /metrics, the WebSocket upgrades on /ws and /relay, and JSON errors (400, 404, 405,
 * 408, 426, 431, 503) in the shape {"error":code,"message":sentence}.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdv.h"

#define HDR_CAP 512
#define JSON_BODY_CAP 1024
#define METRICS_CAP 24576 /* the service's ~3 KB, the relay's, the Redis store's ~1.7 KB */

static const char *reason_of(int status) {
  switch (status) {
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Content Too Large";
  case 426:
    return "Upgrade Required";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Error";
  }
}

/* Write one response; !keep: it is the last one (the connection finishes). */
static void respond(rdv_conn *c, int status, const char *ctype, const char *body, size_t len,
                    const char *extra, int keep) {
  char hdr[HDR_CAP];
  struct iovec iov[2];
  int n = snprintf(hdr, sizeof(hdr),
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s%s\r\n",
                   status, reason_of(status), ctype, len, extra ? extra : "",
                   keep ? "" : "Connection: close\r\n");

  if (n < 0 || (size_t)n >= sizeof(hdr)) {
    hp__stream_close(&c->s);
    return;
  }
  iov[0].iov_base = hdr;
  iov[0].iov_len = (size_t)n;
  iov[1].iov_base = (void *)(uintptr_t)body;
  iov[1].iov_len = len;
  if (hp__stream_writev(&c->s, iov, 2) < 0) {
    hp__stream_close(&c->s);
    return;
  }
  if (!keep)
    hp__rdv_conn_finish(c);
}

/* Respond with JSON j (reference stolen). */
static void respond_json(rdv_conn *c, int status, json_t *j, const char *extra, int keep) {
  char b[JSON_BODY_CAP];
  size_t n = j ? json_dumpb(j, b, sizeof(b), JSON_COMPACT) : 0;

  json_decref(j);
  if (!n || n > sizeof(b)) {
    hp__stream_close(&c->s);
    return;
  }
  respond(c, status, "application/json", b, n, extra, keep);
}

void hp__rdv_http_error(rdv_conn *c, int status, const char *code, const char *message, int keep) {
  respond_json(c, status, json_pack("{s:s,s:s}", "error", code, "message", message),
               status == 405 ? "Allow: GET\r\n" : NULL, keep);
}

#define REFUSE_BODY                                                                                \
  "{\"error\":\"server_full\",\"message\":\"The server is at its connection limit "                \
  "(MAX_CONNECTIONS or MAX_CONNECTIONS_PER_IP); try again later.\"}"

void hp__rdv_http_refuse(rdv_conn *c) {
  static char resp[512];
  static size_t len;

  /* A refused connection is answered before its request is read: one
   * write of a response made once, no parsing. */
  if (!len)
    len = (size_t)snprintf(resp, sizeof(resp),
                           "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                           "Connection: close\r\n\r\n%s",
                           sizeof(REFUSE_BODY) - 1, REFUSE_BODY);
  (void)hp__stream_write(&c->s, resp, len);
}

static hp__rdv_route route_of(const char *path) {
  if (!strcmp(path, "/healthz"))
    return HP_RDV_ROUTE_HEALTHZ;
  if (!strcmp(path, "/whoami"))
    return HP_RDV_ROUTE_WHOAMI;
  if (!strcmp(path, "/metrics"))
    return HP_RDV_ROUTE_METRICS;
  if (!strcmp(path, "/ws"))
    return HP_RDV_ROUTE_WS;
  if (!strcmp(path, "/connectback"))
    return HP_RDV_ROUTE_CONNECTBACK;
  if (!strcmp(path, "/relay"))
    return HP_RDV_ROUTE_RELAY;
  return HP_RDV_ROUTE_OTHER;
}

void hp__rdv_http_json(rdv_conn *c, int status, json_t *j, int keep) {
  respond_json(c, status, j, NULL, keep);
}

static void whoami(rdv_conn *c, const hp__http1_req *req, int keep) {
  char ip[INET6_ADDRSTRLEN];
  int port;

  if (hp__rdv_forwarded_ip(c->srv, req, ip, sizeof(ip))) {
    respond_json(c, 200, json_pack("{s:s,s:n}", "ip", ip, "port"), NULL, keep);
    return;
  }
  if (hp__rdv_peer_ip_port(&c->peer, ip, sizeof(ip), &port) < 0) {
    hp__rdv_http_error(c, 500, "internal_error", "The address of this connection is unknown.", 0);
    return;
  }
  respond_json(c, 200, json_pack("{s:s,s:i}", "ip", ip, "port", port), NULL, keep);
}

/* The store's counters; zeros (and available) while it closes. */
static void store_stats(const hp__rdv *s, hp__store_stats *st) {
  if (s->store) {
    hp__store_stats_get(s->store, st);
    return;
  }
  memset(st, 0, sizeof(*st));
  st->available = 1;
}

static void metrics(rdv_conn *c, int keep) {
  hp__rdv *s = c->srv;
  hp__store_stats st;
  char b[METRICS_CAP];
  int n, m = 0;

  store_stats(s, &st);
  s->m.waiting = st.waiting;
  n = hp__rdv_metrics_format(&s->m, b, sizeof(b));
  if (n >= 0) {
    int r = hp__rdv_relay_metrics(s, b + n, sizeof(b) - (size_t)n);
    n = r < 0 ? r : n + r;
  }
  if (n >= 0)
    m = hp__store_stats_format(&st, s->store ? s->store->ops->name : "memory", b + n,
                               sizeof(b) - (size_t)n);
  if (n < 0 || m < 0) {
    HP_ERROR(RDV_COMP, NULL, "metrics text does not fit in %d bytes", METRICS_CAP);
    hp__rdv_http_error(c, 500, "internal_error", "The metrics could not be formatted.", 0);
    return;
  }
  respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b, (size_t)(n + m), NULL, keep);
}

/* Liveness: 200 also while the room store is unreachable ("degraded":
 * restarting the instance would not bring Redis back). */
static void healthz(rdv_conn *c, int keep) {
  hp__rdv *s = c->srv;
  hp__store_stats st;
  json_t *j;

  store_stats(s, &st);
  j = json_pack("{s:s,s:I,s:I}", "status", s->store_up ? "ok" : "degraded", "connections",
                (json_int_t)s->m.connections, "waiting", (json_int_t)st.waiting);
  /* Only with Redis, so that a memory-mode answer stays what it was. */
  if (j && s->store && strcmp(s->store->ops->name, "memory"))
    json_object_set_new(j, "store", json_string(s->store->ops->name));
  respond_json(c, 200, j, NULL, keep);
}

/* Behind a trusted proxy every client arrives from the proxy's address, so
 * the per-address limit is applied to the forwarded address instead, once
 * per connection. 0, or -1 when refused (answered). */
static int forwarded_admission(rdv_conn *c, const hp__http1_req *req) {
  hp__rdv *s = c->srv;
  char ip[INET6_ADDRSTRLEN];
  uint8_t key[16];
  hp__ipent *e;

  if (!s->o.trust_proxy || c->fwd_ent || !hp__rdv_forwarded_ip(s, req, ip, sizeof(ip)) ||
      hp__ip_key_text(ip, key) < 0)
    return 0;
  e = hp__iptable_get(s->ips, key, 1, s->o.max_hellos_per_minute, uv_now(s->loop));
  if (!e)
    return 0;
  if (e->conns >= (uint32_t)s->o.max_connections_per_ip) {
    hp__listener_note_refusal(s->lis, HP_REFUSE_PER_IP);
    s->m.errors[HP_RDV_ERR_SERVER_FULL]++;
    hp__rdv_http_error(c, 503, "server_full",
                       "Too many connections from your address (MAX_CONNECTIONS_PER_IP); try "
                       "again later.",
                       0);
    return -1;
  }
  e->conns++;
  c->fwd_ent = e;
  return 0;
}

/* The WebSocket upgrade (signaling, or the relay). Returns 1 if upgraded. */
static int upgrade(rdv_conn *c, const hp__http1_req *req, int relay) {
  char accept[HP_WS_ACCEPT_LEN + 1], resp[256];
  int n;

  if (!req->upgrade_websocket) {
    hp__rdv_http_error(c, 400, "bad_upgrade",
                       relay ? "/relay only upgrades to the WebSocket protocol."
                             : "/ws only upgrades to the WebSocket protocol.",
                       0);
    return 0;
  }
  if (req->ws_version_count != 1 || strcmp(req->ws_version, "13")) {
    respond_json(c, 426,
                 json_pack("{s:s,s:s}", "error", "upgrade_required", "message",
                           "Only WebSocket version 13 (RFC 6455) is served."),
                 "Sec-WebSocket-Version: 13\r\n", 0);
    return 0;
  }
  if (req->ws_key_count != 1 || !hp__ws_key_valid(req->ws_key, req->ws_key_len) ||
      hp__ws_accept_key(req->ws_key, req->ws_key_len, accept) < 0) {
    hp__rdv_http_error(c, 400, "bad_upgrade",
                       "Sec-WebSocket-Key is missing or not the base64 of 16 bytes.", 0);
    return 0;
  }
  n = snprintf(resp, sizeof(resp),
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
               accept);
  hp__rdv_observe(c, req);
  if (hp__stream_write(&c->s, resp, (size_t)n) < 0 || hp__rdv_conn_upgrade(c, relay) < 0) {
    hp__stream_close(&c->s);
    return 0;
  }
  return 1;
}

int hp__rdv_http_route(rdv_conn *c, const hp__http1_req *req) {
  hp__rdv *s = c->srv;
  hp__rdv_route r = route_of(req->path);
  int keep = req->keep_alive && !req->upgrade && !s->draining;

  s->m.http_requests[r]++;
  HP_DEBUG(RDV_COMP,
           json_pack("{s:s,s:s,s:b}", "path", req->path, "method", req->method ? req->method : "?",
                     "get", req->get),
           "http request");
  if (forwarded_admission(c, req) < 0)
    return 0;
  if (!req->get) {
    hp__rdv_http_error(c, 405, "method_not_allowed", "This service only answers GET requests.", 0);
    return 0;
  }
  if (req->upgrade) {
    if (s->draining) {
      s->m.errors[HP_RDV_ERR_SERVER_FULL]++;
      hp__rdv_http_error(c, 503, "server_full", "The service is shutting down; try again.", 0);
      return 0;
    }
    if (r == HP_RDV_ROUTE_RELAY && !hp__rdv_relay_enabled(s)) {
      hp__rdv_relay_refused_disabled(s);
      hp__rdv_http_error(c, 404, "relay_disabled",
                         "The relay is disabled on this service (RELAY=off).", 0);
      return 0;
    }
    if (r != HP_RDV_ROUTE_WS && r != HP_RDV_ROUTE_RELAY) {
      hp__rdv_http_error(c, 404, "not_found",
                         "WebSocket upgrades are only accepted on /ws and /relay.", 0);
      return 0;
    }
    upgrade(c, req, r == HP_RDV_ROUTE_RELAY);
    return 0;
  }
  switch (r) {
  case HP_RDV_ROUTE_HEALTHZ:
    healthz(c, keep);
    break;
  case HP_RDV_ROUTE_WHOAMI:
    whoami(c, req, keep);
    break;
  case HP_RDV_ROUTE_CONNECTBACK:
    hp__rdv_connect_back(c, req); /* answers when the attempt ends, then closes */
    return 0;
  case HP_RDV_ROUTE_METRICS:
    metrics(c, keep);
    break;
  case HP_RDV_ROUTE_WS:
    hp__rdv_http_error(c, 426, "upgrade_required",
                       "/ws is the signaling WebSocket: open it with a WebSocket upgrade.", keep);
    break;
  case HP_RDV_ROUTE_RELAY:
    hp__rdv_http_error(c, 426, "upgrade_required",
                       "/relay is the relay WebSocket: open it with a WebSocket upgrade.", keep);
    break;
  default:
    hp__rdv_http_error(c, 404, "not_found",
                       "There is nothing at this path; the service answers /healthz, /whoami, "
                       "/connectback, /metrics, /ws and /relay.",
                       keep);
    break;
  }
  return keep && c->state == RDV_HTTP;
}
