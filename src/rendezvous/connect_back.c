/*
 * connect_back.c - GET /connectback for `holepunch diagnose`: the service
 * dials the client's own address and port (the TCP peer of this request:
 * its NAT's mapping of the port it asked from) from a fresh port of its
 * own, and answers how the client's NAT treated that unsolicited SYN:
 *
 *   {"ip":..., "port":..., "connect_back":"open"|"drop"|"reset",
 *    "observer_port": N or null}
 *
 * "open": connected, or reset only after connecting (the mapping accepts
 * anybody: endpoint-independent
 * filtering, or no NAT); "reset": refused (a NAT, firewall or host that
 * answers with a reset); "drop": no answer within CONNECT_BACK_MS (or an
 * ICMP error). Only ever the requester's own address: no third party can be
 * made a target, and it is one SYN per request. At most
 * CONNECT_BACK_MAX attempts at once for the whole service (503 beyond).
 * Behind a trusted proxy the client's port is not known: 400.
 *
 * Lifetime: the attempt holds a reference on the connection (refs), so the
 * connection's memory outlives it; its own memory holds two uv handles
 * and is freed when both are closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rdv.h"

#define CONNECT_BACK_MS 2000
#define CONNECT_BACK_MAX 32

typedef struct cback {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t timer;
  rdv_conn *c;
  int handles;
  int done;
  int port;
  char ip[64];
} cback;

static void on_closed(uv_handle_t *h) {
  cback *b = h->data;
  if (--b->handles == 0)
    free(b);
}

static void finish(cback *b, const char *verdict, const char *why) {
  rdv_conn *c = b->c;
  hp__rdv *s = c->srv;

  if (b->done)
    return;
  b->done = 1;
  s->connect_backs--;
  HP_DEBUG(RDV_COMP,
           json_pack("{s:s,s:i,s:s,s:s}", "ip", b->ip, "port", b->port, "connect_back", verdict,
                     "why", why),
           "connect-back to %s port %d: %s", b->ip, b->port, verdict);
  if (c->state == RDV_HTTP)
    hp__rdv_http_json(c, 200,
                      json_pack("{s:s,s:i,s:s,s:o}", "ip", b->ip, "port", b->port, "connect_back",
                                verdict, "observer_port",
                                s->lis2 ? json_integer(hp__listener_port(s->lis2)) : json_null()),
                      0);
  hp__rdv_conn_unref(c);
  uv_timer_stop(&b->timer);
  uv_close((uv_handle_t *)&b->timer, on_closed);
  /* A reset, not a FIN: nothing lingers on the client's punch port. */
  if (uv_tcp_close_reset(&b->tcp, on_closed) < 0)
    uv_close((uv_handle_t *)&b->tcp, on_closed);
}

static void on_connect(uv_connect_t *req, int status) {
  cback *b = req->data;

  if (status == UV_ECANCELED)
    return;
  /* Reset after the handshake (the client aborts what it accepted): the
   * SYN got through all the same. */
  if (status == 0 || status == UV_ECONNRESET)
    finish(b, "open", status ? "connected, then reset by the client" : "connected");
  else if (status == UV_ECONNREFUSED)
    finish(b, "reset", uv_strerror(status));
  else
    finish(b, "drop", uv_strerror(status));
}

static void on_timer(uv_timer_t *t) {
  finish(t->data, "drop", "no answer in time");
}

void hp__rdv_connect_back(rdv_conn *c, const hp__http1_req *req) {
  hp__rdv *s = c->srv;
  char ip[64];
  cback *b;
  int r;

  if (hp__rdv_forwarded_ip(s, req, ip, sizeof ip)) {
    hp__rdv_http_error(c, 400, "not_observable",
                       "Behind the proxy in front of this service your port cannot be seen, so "
                       "there is nothing to connect back to.",
                       0);
    return;
  }
  if (s->connect_backs >= CONNECT_BACK_MAX || s->draining) {
    hp__rdv_http_error(c, 503, "server_full", "Too many connect-back tests at once; try again.", 0);
    return;
  }
  b = calloc(1, sizeof *b);
  if (!b || hp__rdv_peer_ip_port(&c->peer, b->ip, sizeof b->ip, &b->port) < 0) {
    free(b);
    hp__rdv_http_error(c, 500, "internal_error", "The connect-back could not be started.", 0);
    return;
  }
  b->c = c;
  uv_tcp_init(s->loop, &b->tcp);
  uv_timer_init(s->loop, &b->timer);
  b->tcp.data = b->timer.data = b->creq.data = b;
  b->handles = 2;
  c->refs++;
  s->connect_backs++;
  uv_timer_start(&b->timer, on_timer, CONNECT_BACK_MS, 0);
  r = uv_tcp_connect(&b->creq, &b->tcp, (const struct sockaddr *)&c->peer, on_connect);
  if (r < 0)
    finish(b, "drop", uv_strerror(r));
}
