/*
 * relay_attempt.c - the relayed path of one punch (see relay_attempt.h).
 */
#include "relay_attempt.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan/relay.h"
#include "chan/secure.h"
#include "log.h"
#include "wire.h"

#define SECURE_TIMEOUT_MS 10000 /* as on a punched connection (holepunch_session.h) */

typedef enum ra_state {
  RA_WAITING = 0,
  RA_CONNECTING,
  RA_SECURING,
  RA_READY,
  RA_FAILED,
  RA_DESTROYED
} ra_state;

struct hp__ra {
  uv_loop_t *loop;
  uv_timer_t timer; /* the delay */
  hp__url url;
  char *ca_file;
  char session[HP_SESSION_HEX + 1];
  char own_id[HP_ID_MAX + 1], peer_id[HP_ID_MAX + 1];
  char role;
  int with_psk;
  uint8_t psk[HP_HS_PSK_BYTES];
  uint64_t timeout_ms;
  hp_bs *carrier; /* CONNECTING: the relay carrier being opened */
  hp_bs *chan;    /* SECURING, READY: the secure channel over it */
  ra_state st;
  hp__ra_cb cb;
  void *data;
};

static void on_timer_closed(uv_handle_t *h) {
  hp__ra *ra = h->data;
  sodium_memzero(ra->psk, sizeof ra->psk);
  free(ra->ca_file);
  free(ra);
}

static void fail(hp__ra *ra, int err, const char *why) {
  if (ra->st >= RA_READY)
    return;
  ra->st = RA_FAILED;
  if (ra->chan)
    hp_bs_close(ra->chan);
  ra->chan = NULL;
  if (ra->carrier)
    hp_bs_close(ra->carrier);
  ra->carrier = NULL;
  ra->cb(ra, err, why, ra->data);
}

static void on_secured(hp_bs *s, int status, const char *why, void *data) {
  hp__ra *ra = data;

  (void)s;
  if (ra->st != RA_SECURING)
    return;
  if (status < 0) {
    char msg[HP_REASON_MAX + 64];
    snprintf(msg, sizeof msg, "secure handshake over the relay: %s", why ? why : "failed");
    fail(ra, status, msg);
    return;
  }
  ra->st = RA_READY;
  ra->cb(ra, 0, NULL, ra->data);
}

static void on_relay_ready(hp_bs *s, int err, const char *why, void *data) {
  hp__ra *ra = data;
  hp__hs_params prm;
  int r;

  if (ra->st != RA_CONNECTING)
    return;
  if (err < 0) {
    ra->carrier = NULL; /* gone with its failure */
    fail(ra, err, why);
    return;
  }
  ra->carrier = NULL; /* the secure channel owns it from here on */
  memset(&prm, 0, sizeof prm);
  prm.session = ra->session;
  prm.own_id = ra->own_id;
  prm.peer_id = ra->peer_id;
  prm.role = ra->role;
  prm.psk = ra->with_psk ? ra->psk : NULL;
  ra->st = RA_SECURING;
  r = hp__secure_start(ra->loop, s, &prm, SECURE_TIMEOUT_MS, on_secured, ra, &ra->chan);
  if (r < 0) {
    ra->chan = NULL;
    fail(ra, r, "cannot start the secure handshake over the relay");
    return;
  }
  /* Role a decides the path; b's relayed channel is ready only once a's
   * stream header came, which a sends only when it takes the relay (a's
   * CONFIRM alone goes out before a knows: docs/PROTOCOL.md section 9). */
  if (ra->role == 'b')
    hp__secure_await_peer_header(ra->chan);
}

static void connect_now(hp__ra *ra) {
  hp__relay_opts o;
  char err[256];
  int r;

  if (ra->st != RA_WAITING)
    return;
  uv_timer_stop(&ra->timer);
  memset(&o, 0, sizeof o);
  o.url = &ra->url;
  o.ca_file = ra->ca_file;
  o.session = ra->session;
  o.id = ra->own_id;
  o.peer_id = ra->peer_id;
  o.open_timeout_ms = ra->timeout_ms;
  ra->st = RA_CONNECTING;
  HP_INFO(
      "holepunch",
      json_pack("{s:s, s:s, s:s}", "id", ra->own_id, "peer", ra->peer_id, "relay", ra->url.host),
      "trying the relay of %s alongside punching", ra->url.host);
  r = hp__relay_open(ra->loop, &o, on_relay_ready, ra, &ra->carrier, err, sizeof err);
  if (r < 0) {
    ra->carrier = NULL;
    fail(ra, r, err);
  }
}

static void on_timer(uv_timer_t *t) {
  connect_now(t->data);
}

int hp__ra_start(uv_loop_t *loop, const hp__url *url, const char *ca_file, const hp__hs_params *prm,
                 uint64_t delay_ms, uint64_t timeout_ms, hp__ra_cb cb, void *data, hp__ra **out) {
  hp__ra *ra = calloc(1, sizeof *ra);

  *out = NULL;
  if (!ra)
    return -ENOMEM;
  ra->loop = loop;
  ra->url = *url;
  ra->ca_file = ca_file && *ca_file ? strdup(ca_file) : NULL;
  snprintf(ra->session, sizeof ra->session, "%s", prm->session);
  snprintf(ra->own_id, sizeof ra->own_id, "%s", prm->own_id);
  snprintf(ra->peer_id, sizeof ra->peer_id, "%s", prm->peer_id);
  ra->role = prm->role;
  if (prm->psk) {
    ra->with_psk = 1;
    memcpy(ra->psk, prm->psk, sizeof ra->psk);
  }
  ra->timeout_ms = timeout_ms;
  ra->cb = cb;
  ra->data = data;
  ra->st = RA_WAITING;
  uv_timer_init(loop, &ra->timer);
  ra->timer.data = ra;
  uv_timer_start(&ra->timer, on_timer, delay_ms, 0);
  *out = ra;
  return 0;
}

void hp__ra_now(hp__ra *ra) {
  if (ra && ra->st == RA_WAITING)
    connect_now(ra);
}

int hp__ra_started(const hp__ra *ra) {
  return ra && ra->st != RA_WAITING;
}

int hp__ra_awaiting_a(const hp__ra *ra) {
  return ra && ra->st == RA_SECURING && hp__secure_awaiting_peer_header(ra->chan);
}

hp_bs *hp__ra_take(hp__ra *ra) {
  hp_bs *s;

  if (!ra || ra->st != RA_READY)
    return NULL;
  s = ra->chan;
  ra->chan = NULL;
  return s;
}

void hp__ra_destroy(hp__ra *ra) {
  if (!ra || ra->st == RA_DESTROYED)
    return;
  ra->st = RA_DESTROYED;
  if (ra->chan)
    hp_bs_close(ra->chan);
  if (ra->carrier)
    hp_bs_close(ra->carrier);
  ra->chan = ra->carrier = NULL;
  uv_close((uv_handle_t *)&ra->timer, on_timer_closed);
}
