/*
 * metrics.h - counters of the rendezvous service and their Prometheus text
 * exposition (format 0.0.4). No I/O: the server owns one hp__rdv_metrics and
 * asks for the text on GET /metrics.
 */
#ifndef HP_RDV_METRICS_H
#define HP_RDV_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Error codes the service sends in "error" messages (docs/PROTOCOL.md). */
typedef enum hp__rdv_err {
  HP_RDV_ERR_BAD_MESSAGE = 0,
  HP_RDV_ERR_UNSUPPORTED_VERSION,
  HP_RDV_ERR_UNEXPECTED_MESSAGE,
  HP_RDV_ERR_DUPLICATE_ID,
  HP_RDV_ERR_TOO_LARGE,
  HP_RDV_ERR_UNSUPPORTED_DATA,
  HP_RDV_ERR_HELLO_TIMEOUT,
  HP_RDV_ERR_SERVER_FULL,
  HP_RDV_ERR_INTERNAL_ERROR,
  HP_RDV_ERR_RATE_LIMITED,
  HP_RDV_ERR_UNAVAILABLE, /* the room store (Redis) cannot be reached */
  HP_RDV_ERR_COUNT
} hp__rdv_err;

typedef enum hp__rdv_route {
  HP_RDV_ROUTE_HEALTHZ = 0,
  HP_RDV_ROUTE_WHOAMI,
  HP_RDV_ROUTE_METRICS,
  HP_RDV_ROUTE_WS,
  HP_RDV_ROUTE_CONNECTBACK,
  HP_RDV_ROUTE_RELAY,
  HP_RDV_ROUTE_OTHER, /* 404, 405 */
  HP_RDV_ROUTE_COUNT
} hp__rdv_route;

typedef struct hp__rdv_metrics {
  /* gauges, kept up to date by the server */
  uint64_t connections;     /* open WebSocket connections */
  uint64_t tcp_connections; /* open client TCP connections (HTTP + WebSocket) */
  uint64_t waiting;         /* workers waiting for a peer */
  /* counters */
  uint64_t pairings;
  uint64_t results_direct, results_failed, results_relayed;
  uint64_t errors[HP_RDV_ERR_COUNT];
  uint64_t bytes_received, bytes_sent; /* WebSocket message payload bytes */
  uint64_t http_requests[HP_RDV_ROUTE_COUNT];
} hp__rdv_metrics;

/** The protocol's name of an error code ("bad_message", ...). */
const char *hp__rdv_err_name(hp__rdv_err e);

/** The error code whose name is code, or HP_RDV_ERR_BAD_MESSAGE if unknown
 * (the decoder's codes are all in the list). */
hp__rdv_err hp__rdv_err_from_name(const char *code);

/** Write the exposition text into buf (NUL-terminated). Returns its length,
 * or -ENOSPC if cap is too small. */
int hp__rdv_metrics_format(const hp__rdv_metrics *m, char *buf, size_t cap);

#endif
