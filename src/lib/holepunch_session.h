/*
 * holepunch_session.h - the session object (struct hp_punch) and its phase
 * machine's insides, shared by the files that implement it (not part of any
 * interface):
 *   holepunch.c         public API, lifetime, the timer, the end of an attempt
 *   holepunch_signal.c  listening, discovery, signaling (up to the peer message)
 *   holepunch_race.c    punching vs the relay attempt, the secure handshake,
 *                       dropping a peer that fails it
 * The phase machine itself is described at the top of holepunch.c.
 */
#ifndef HP_HOLEPUNCH_SESSION_H
#define HP_HOLEPUNCH_SESSION_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "candidates.h"
#include "chan/secure.h"
#include "code.h"
#include "discover.h"
#include "holepunch.h"
#include "punch.h"
#include "relay_attempt.h"
#include "signal_client.h"
#include "url.h"
#include "whoami.h"
#include "wire.h"

#define LISTEN_RETRY_MS 250
/* "still waiting for a peer": every eighth of WS_RECV_TIMEOUT, 1..15 s. */
#define PROGRESS_MIN_MS 1000
#define PROGRESS_MAX_MS 15000
/* The secure handshake is two messages each way on a working connection. */
#define SECURE_TIMEOUT_MS 10000
/* Before joining the room again after a peer failed the handshake. */
#define REJOIN_DELAY_MS 1000

typedef enum phase {
  P_LISTENING,
  P_DISCOVERING,
  P_SIGNALING,
  P_WAITING_PEER,
  P_PUNCHING,
  P_SECURING,
  P_RELAYING,
  P_ENDING,
  P_ENDED,
  P_DESTROYED
} phase;

static const char *const phase_names[] = {"listening", "discovering", "signaling", "waiting_peer",
                                          "punching",  "securing",    "relaying"};

struct hp_punch {
  uv_loop_t *loop;
  hp_config cfg; /* strings below are owned copies */
  char *url_str, *ca_file;
  hp__url url;
  char room[HP_ID_MAX + 1];
  char own_id[HP_ID_MAX + 1];
  char peer_id[HP_ID_MAX + 1];
  char role[2];
  char session[HP_SESSION_HEX + 1]; /* from the peer message, for the secure channel */
  char mapped[HP_ADDR_STRLEN];
  char peer_addr[HP_ADDR_STRLEN];
  char reason[HP_REASON_MAX];
  int port_preserved; /* -1 unknown */
  phase st;
  hp_status status;       /* the outcome, from ENDING on */
  hp_bs *chan;            /* the secure channel (SECURING, then status OK until taken) */
  hp__ra *ra;             /* the relay attempt, from peer until it wins, fails or is dropped */
  int relayed;            /* the channel runs over the relay */
  char direct_fail[1536]; /* why the direct path failed (relayed, or both failed) */
  char relay_fail[HP_REASON_MAX]; /* why the relay attempt failed, "" if it did not */
  int with_code;                  /* hp_config.code given: psk holds the key derived from it */
  uint8_t psk[HP_CODE_PSK_BYTES];
  int id_generated; /* own_id is ours (not configured): a new one on each rejoin */
  int auth_failures;
  char auth_reason[HP_REASON_MAX];
  uint64_t wait_deadline; /* uv_now() ms: the end of the wait for a (right) peer; 0 before */
  hp__pe *pe;
  hp__whoami *who;
  int who_done;     /* the whoami answered (DISCOVERING) */
  hp__disc *disc;   /* STUN servers and the port mapping (lives until the end) */
  int disc_pending; /* its callback is awaited (DISCOVERING) */
  hp__disc_opts disc_opts;
  hp__disc_result disc_res;
  hp__sig *sig;
  uv_timer_t timer;  /* the phase's deadline, progress lines, the deferred callback */
  uint64_t deadline; /* uv_now() ms of the current phase's deadline */
  uint64_t t_waiting;
  uint64_t hr_peer; /* when the peer message arrived */
  /* The direct path's handshake: its HELLO (dhello) goes out with our
   * session lines on every punched connection (the engine's chan_hello), so
   * the channel on the nominated one continues from dhs. */
  hp__hs dhs;
  uint8_t dhello[HP_HS_MSG_LEN];
  int dhs_sent;                     /* dhs holds a started handshake */
  char relay_url[HP_RELAY_URL_MAX]; /* peer.relay_url, to restart the relay attempt */
  long start_in_ms;                 /* peer.start_in_ms, likewise */
  int ra_dropped_unstarted;         /* an early nomination dropped a relay attempt that
                                       had not connected yet (hp__ses_on_unnominate) */
  double elapsed_ms;
  hp__cands cands;
  hp_done_cb cb;
  void *data;
};

/* Names of the phases up to RELAYING (hp_punch_state, log lines). */
extern const char *const hp__phase_names[];

/* holepunch.c */
json_t *hp__ses_ctx(const hp_punch *p);
void hp__ses_arm(hp_punch *p, uint64_t ms);
void hp__ses_send_result(hp_punch *p, int ok, const char *reason);
void hp__ses_end(hp_punch *p, hp_status status, const char *reason);
uint64_t hp__ses_progress_ms(const hp_punch *p);

/* holepunch_signal.c */
void hp__ses_try_listen(hp_punch *p);

/* holepunch_race.c */
void hp__ses_hs_params(const hp_punch *p, hp__hs_params *prm);
void hp__ses_start_relay_attempt(hp_punch *p, uint64_t delay_ms);
void hp__ses_on_punched(hp__pe *pe, int ok, void *data);
void hp__ses_on_nominate(void *data);
int hp__ses_may_nominate_early(void *data);
void hp__ses_on_unnominate(void *data);

#endif
