/*
 * metrics.c - Prometheus text exposition of the service's counters. Every
 * labelled series is printed from zero on, so that a scraper sees the full
 * set from the first scrape and rate() works from the start.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const err_names[HP_RDV_ERR_COUNT] = {
    [HP_RDV_ERR_BAD_MESSAGE] = "bad_message",
    [HP_RDV_ERR_UNSUPPORTED_VERSION] = "unsupported_version",
    [HP_RDV_ERR_UNEXPECTED_MESSAGE] = "unexpected_message",
    [HP_RDV_ERR_DUPLICATE_ID] = "duplicate_id",
    [HP_RDV_ERR_TOO_LARGE] = "too_large",
    [HP_RDV_ERR_UNSUPPORTED_DATA] = "unsupported_data",
    [HP_RDV_ERR_HELLO_TIMEOUT] = "hello_timeout",
    [HP_RDV_ERR_SERVER_FULL] = "server_full",
    [HP_RDV_ERR_INTERNAL_ERROR] = "internal_error",
    [HP_RDV_ERR_RATE_LIMITED] = "rate_limited",
    [HP_RDV_ERR_UNAVAILABLE] = "unavailable",
};

static const char *const route_names[HP_RDV_ROUTE_COUNT] = {
    [HP_RDV_ROUTE_HEALTHZ] = "healthz",
    [HP_RDV_ROUTE_WHOAMI] = "whoami",
    [HP_RDV_ROUTE_METRICS] = "metrics",
    [HP_RDV_ROUTE_WS] = "ws",
    [HP_RDV_ROUTE_CONNECTBACK] = "connectback",
    [HP_RDV_ROUTE_RELAY] = "relay",
    [HP_RDV_ROUTE_OTHER] = "other",
};

const char *hp__rdv_err_name(hp__rdv_err e) {
  return (unsigned)e < HP_RDV_ERR_COUNT ? err_names[e] : "internal_error";
}

hp__rdv_err hp__rdv_err_from_name(const char *code) {
  for (int i = 0; i < HP_RDV_ERR_COUNT; i++)
    if (!strcmp(err_names[i], code))
      return (hp__rdv_err)i;
  return HP_RDV_ERR_BAD_MESSAGE;
}

typedef struct out {
  char *p;
  size_t cap, len;
  int overflow;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out *o, const char *fmt, ...) {
  va_list ap;
  int n;

  if (o->overflow)
    return;
  va_start(ap, fmt);
  n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len) {
    o->overflow = 1;
    return;
  }
  o->len += (size_t)n;
}

static void family(out *o, const char *name, const char *type, const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int hp__rdv_metrics_format(const hp__rdv_metrics *m, char *buf, size_t cap) {
  out o = {buf, cap, 0, 0};

  if (!cap)
    return -ENOSPC;
  buf[0] = '\0';
  family(&o, "holepunch_connections", "gauge", "Open WebSocket signaling connections.");
  put(&o, "holepunch_connections %" PRIu64 "\n", m->connections);
  family(&o, "holepunch_tcp_connections", "gauge",
         "Open client TCP connections, HTTP and WebSocket.");
  put(&o, "holepunch_tcp_connections %" PRIu64 "\n", m->tcp_connections);
  family(&o, "holepunch_waiting_workers", "gauge", "Workers waiting in a room for a peer.");
  put(&o, "holepunch_waiting_workers %" PRIu64 "\n", m->waiting);
  family(&o, "holepunch_pairings_total", "counter", "Pairs of workers introduced to each other.");
  put(&o, "holepunch_pairings_total %" PRIu64 "\n", m->pairings);
  family(&o, "holepunch_results_total", "counter", "Punch results reported by workers.");
  put(&o, "holepunch_results_total{status=\"direct\"} %" PRIu64 "\n", m->results_direct);
  put(&o, "holepunch_results_total{status=\"failed\"} %" PRIu64 "\n", m->results_failed);
  put(&o, "holepunch_results_total{status=\"relayed\"} %" PRIu64 "\n", m->results_relayed);
  family(&o, "holepunch_errors_total", "counter", "Error messages sent to clients, by code.");
  for (int i = 0; i < HP_RDV_ERR_COUNT; i++)
    put(&o, "holepunch_errors_total{code=\"%s\"} %" PRIu64 "\n", err_names[i], m->errors[i]);
  family(&o, "holepunch_bytes_received_total", "counter",
         "WebSocket message payload bytes received.");
  put(&o, "holepunch_bytes_received_total %" PRIu64 "\n", m->bytes_received);
  family(&o, "holepunch_bytes_sent_total", "counter", "WebSocket message payload bytes sent.");
  put(&o, "holepunch_bytes_sent_total %" PRIu64 "\n", m->bytes_sent);
  family(&o, "holepunch_http_requests_total", "counter", "HTTP requests, by route.");
  for (int i = 0; i < HP_RDV_ROUTE_COUNT; i++)
    put(&o, "holepunch_http_requests_total{route=\"%s\"} %" PRIu64 "\n", route_names[i],
        m->http_requests[i]);
  if (o.overflow)
    return -ENOSPC;
  return (int)o.len;
}
