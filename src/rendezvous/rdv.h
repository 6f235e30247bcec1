/*
 * rdv.h - internals shared by the files of the rendezvous service: the
 * server object, the per-connection object and the functions each file
 * offers the others. Not a public interface (server.h is the one main.c
 * uses).
 *
 *   server.c       lifecycle: create, graceful shutdown (close 1001), destroy
 *   conn.c         one client connection: HTTP, then maybe WebSocket; timers,
 *                  limits, the orderly close
 *   http_routes.c  /healthz /whoami /metrics /ws and the error responses
 *   client_addr.c  the client's address: TCP peer or X-Forwarded-For
 *   signaling.c    hello / welcome / peer / result / error, pairing
 *   relay.c        GET /relay: join, forwarding, limits (relay_table.c)
 */
#ifndef HP_RDV_INTERNAL_H
#define HP_RDV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "addr.h"
#include "clocksync.h"
#include "http1.h"
#include "iptable.h"
#include "listener.h"
#include "metrics.h"
#include "server.h"
#include "store.h"
#include "stream.h"
#include "wire.h"
#include "ws.h"

#define RDV_COMP "rendezvous"

/* Transport state of a connection. */
typedef enum rdv_conn_state {
  RDV_NEW = 0, /* allocated, not accepted yet */
  RDV_HTTP,    /* reading HTTP requests */
  RDV_WS,      /* WebSocket open */
  RDV_CLOSING, /* last words sent (close frame or a final response): finishing */
  RDV_REFUSED, /* over a limit at accept: a 503, then finishing */
  RDV_CLOSED   /* the stream is closed; the timer is closing */
} rdv_conn_state;

/* What the listener decided: admitted connections hold a slot (global and
 * per address) until they close; refused ones are being answered. */
typedef enum rdv_admission { RDV_ADM_NONE = 0, RDV_ADM_ADMITTED, RDV_ADM_REFUSED } rdv_admission;

/* Signaling state of a WebSocket connection. The room store may answer a
 * join in a later loop turn (Redis): RDV_SIG_JOINING waits for it. The
 * store names the connection by its ref (a slot of hp__rdv.refs), and a
 * leave (on every close path) ends its callbacks, so an answer never finds
 * freed memory. */
typedef enum rdv_sig_state {
  RDV_SIG_NEW = 0,  /* before hello */
  RDV_SIG_JOINING,  /* hello accepted, the room operation is in flight */
  RDV_SIG_WAITING,  /* alone in its room */
  RDV_SIG_PAIRED,   /* got peer: may send one result */
  RDV_SIG_REPORTED, /* sent its result */
  RDV_SIG_GONE,     /* left (failed, closed) */
  RDV_SIG_NONE      /* not a signaling connection (HTTP, or the relay) */
} rdv_sig_state;

typedef struct rdv_relay rdv_relay;                 /* relay.c: one relay connection */
typedef struct hp__rdv_relay_svc hp__rdv_relay_svc; /* relay.c: the relay of the service */

typedef struct rdv_conn {
  hp__stream s; /* first member: the listener hands out &s */
  uv_timer_t timer;
  struct hp__rdv *srv;
  struct rdv_conn *prev, *next; /* every connection, for the shutdown */
  struct hp__listener *lis;     /* the listener that accepted it (its slot) */
  hp__ipent *ent;               /* TCP peer's entry (per-IP slot), or NULL */
  hp__ipent *fwd_ent;           /* forwarded client's entry (TRUST_PROXY), or NULL */
  hp__http1 *http;              /* while reading HTTP */
  hp__ws *ws;                   /* once upgraded */
  rdv_relay *relay;             /* a /relay connection (else signaling) */
  uint64_t t0;                  /* ms: accept, or the end of the last response */
  uint64_t last_rx;             /* ms: last byte received */
  uint64_t frames_seen;         /* ws frames already charged to the bucket */
  double frame_tokens;          /* per-connection frame rate bucket */
  uint64_t frame_refill_ms;
  uint8_t state;     /* rdv_conn_state */
  uint8_t admission; /* rdv_admission */
  uint16_t requests; /* HTTP requests answered on this connection */
  uint8_t sig;       /* rdv_sig_state */
  uint8_t handles;   /* open uv handles (stream, timer) */
  uint8_t refs;      /* pending asynchronous operations */
  uint8_t ping_sent;
  uint8_t observed_full;        /* observed is "ip:port", not a bare forwarded ip */
  uint8_t id_assigned;          /* the service drew the id (a duplicate draws again) */
  uint8_t redraws;              /* ids drawn again after a duplicate */
  hp__cs_rtt rtt;               /* round trips of our own pings (clocksync.h) */
  hp__cs_clock *clock;          /* the worker's clock pings, NULL until one came */
  struct sockaddr_storage peer; /* TCP peer */
  char observed[HP_ADDR_STRLEN];
  char peer_id[HP_ID_MAX + 1]; /* id of the worker it was paired with */
  char id[HP_ID_MAX + 1];      /* after hello */
  char room[HP_ID_MAX + 1];
  hp__store_ref ref; /* its slot in hp__rdv.refs, 0 before hello */
  hp__store_mid mid; /* its member in the store, 0 when none */
} rdv_conn;

/* A pairing the memory store made inside hp__store_join: the waiter's
 * on_paired is held until the newcomer's on_join, so that both peer
 * messages are checked and sent together and a side that cannot be told
 * is taken back (signaling.c). */
typedef struct rdv_sync_join {
  int active;          /* inside hp__store_join */
  rdv_conn *a;         /* the waiter whose on_paired is held, or NULL */
  hp__store_mid a_mid; /* its mid then */
  char session[HP_SESSION_HEX + 1];
  const char *payload; /* the newcomer's payload (its hello), for a requeue */
  size_t len;
} rdv_sync_join;

struct hp__rdv {
  uv_loop_t *loop;
  hp__rdv_opts o;
  char bind[48];
  hp__listener *lis;
  hp__listener *lis2;     /* OBSERVER_PORT, or NULL */
  unsigned connect_backs; /* in flight (connect_back.c) */
  hp__iptable *ips;
  hp__ws_env *wsenv;
  hp__store *store; /* the rooms: memory or Redis */
  hp__slots refs;   /* WebSocket connections that said hello, by ref */
  int store_up;     /* the store takes joins (always, in memory) */
  rdv_sync_join sync;
  char instance_url[HP_RELAY_URL_MAX];
  char instance_id[HP_STORE_INSTANCE_MAX + 1];
  hp__rdv_relay_svc *relay;
  rdv_conn *conns;    /* every open connection */
  unsigned lingering; /* refused connections being answered */
  hp__rdv_metrics m;
  uint64_t id_key, id_counter;
  uv_timer_t timer; /* the shutdown deadline */
  int timer_init;
  int draining;
  int destroying;
  void (*done)(void *arg);
  void *done_arg;
};

/* conn.c */
hp__stream *hp__rdv_conn_alloc(void *arg);
void hp__rdv_conn_accepted(void *arg, hp__stream *s, const struct sockaddr_storage *peer,
                           hp__ipent *ent);
void hp__rdv_conn_refused(void *arg, hp__stream *s, hp__refusal why);
/** Send a text message on an open WebSocket. 0 or -errno. */
int hp__rdv_conn_send_text(rdv_conn *c, const char *text, size_t len);
/** Send an error message, then close the WebSocket with status. */
void hp__rdv_conn_fail(rdv_conn *c, hp__rdv_err code, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Close the WebSocket with status (after what was sent). */
void hp__rdv_conn_close_ws(rdv_conn *c, uint16_t status);
/** The same with a close reason (short ASCII). */
void hp__rdv_conn_close_ws_reason(rdv_conn *c, uint16_t status, const char *reason);
/** Set the timer to the deadline of c's state. */
void hp__rdv_conn_rearm(rdv_conn *c);
/** 1 if a message can be queued on c now. */
int hp__rdv_conn_writable(const rdv_conn *c);
/** Make the larger message cap apply (after hello). */
void hp__rdv_conn_registered(rdv_conn *c);
/** The shutdown: close c (1001 on a WebSocket). */
void hp__rdv_conn_shutdown(rdv_conn *c);
/** The last response is queued: flush, FIN, close (bounded). */
void hp__rdv_conn_finish(rdv_conn *c);
/** Switch to the WebSocket (after the 101 is queued): signaling, or the
 * relay (relay != 0). 0 or -ENOMEM. */
int hp__rdv_conn_upgrade(rdv_conn *c, int relay);
/** Drop a reference taken for an asynchronous operation. */
void hp__rdv_conn_unref(rdv_conn *c);

/* http_routes.c */
/** Answer one complete request. Returns 1: keep reading requests on the
 * connection; 0: the connection is closing or was upgraded. */
int hp__rdv_http_route(rdv_conn *c, const hp__http1_req *req);
/** A JSON response {"error":code,"message":message}; keep: keep-alive. */
void hp__rdv_http_error(rdv_conn *c, int status, const char *code, const char *message, int keep);
/** The raw 503 for a connection refused at accept (no request read). */
void hp__rdv_http_refuse(rdv_conn *c);

/* client_addr.c */
/** The client IP behind a trusted proxy (right-most X-Forwarded-For
 * entry): 1 and ip filled, or 0 (no usable header: use the TCP peer). */
int hp__rdv_forwarded_ip(const hp__rdv *s, const hp__http1_req *req, char *ip, size_t iplen);
/** c->observed: "ip:port" of the TCP peer, or the forwarded ip alone;
 * sets c->observed_full. */
void hp__rdv_observe(rdv_conn *c, const hp__http1_req *req);
/** ip text and port of the TCP peer. 0 or -errno. */
int hp__rdv_peer_ip_port(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port);

/* signaling.c */
void hp__rdv_sig_message(rdv_conn *c, int binary, const uint8_t *data, size_t len);
/** The connection is going away: leave the room, forget the candidates. */
void hp__rdv_sig_leave(rdv_conn *c);
/** The address entry whose hello bucket counts this client. */
hp__ipent *hp__rdv_sig_client_entry(rdv_conn *c);
/** The room store's callbacks (ctx: the hp__rdv). */
extern const hp__store_cbs hp__rdv_store_cbs;

/* sync_start.c */
/** The start times of a pair (synchronised start, clocksync.h) into both
 * peer messages: from the round trips and clock pings of a and b. */
void hp__rdv_start_times(const rdv_conn *a, const rdv_conn *b, hp__msg_peer *pa, hp__msg_peer *pb);
/* relay.c */
int hp__rdv_relay_svc_create(hp__rdv *s, uint32_t seed);
void hp__rdv_relay_svc_destroy(hp__rdv *s);
int hp__rdv_relay_enabled(const hp__rdv *s);
/** Signaling paired id_a (role a) and id_b with session: they may join. */
void hp__rdv_relay_register(hp__rdv *s, const char *session, const char *id_a, const char *id_b);
/** GET /relay was refused because RELAY=off (for /metrics). */
void hp__rdv_relay_refused_disabled(hp__rdv *s);
/** c was upgraded on /relay. 0 or -ENOMEM. */
int hp__rdv_relay_attach(rdv_conn *c);
/** A chunk of a data frame (HP_WS_FRAMES). */
void hp__rdv_relay_chunk(rdv_conn *c, int binary, int first, int fin, const uint8_t *d, size_t n);
/** A read of c was fed: forward what it gathered, backpressure. */
void hp__rdv_relay_after_read(rdv_conn *c);
/** c's write queue is empty: its peer may read again. */
void hp__rdv_relay_drained(rdv_conn *c);
/** c's close frame arrived / its TCP connection ended without one / the
 * service closes c's WebSocket with status. Each takes c out of its
 * session and closes the peer. */
void hp__rdv_relay_ws_closed(rdv_conn *c, uint16_t status);
void hp__rdv_relay_lost(rdv_conn *c);
void hp__rdv_relay_closing(rdv_conn *c, uint16_t status);
/** c's stream is closed: free its relay state. */
void hp__rdv_relay_free(rdv_conn *c);
/** The deadline of c's relay state (ms, 0: none); the timer fired. */
uint64_t hp__rdv_relay_deadline(const rdv_conn *c);
void hp__rdv_relay_timer(rdv_conn *c);
/** The relay's Prometheus text into buf. Its length, or -ENOSPC. */
int hp__rdv_relay_metrics(const hp__rdv *s, char *buf, size_t cap);

/* server.c */
void hp__rdv_conn_gone(hp__rdv *s, rdv_conn *c);
/* The accept callbacks of the observer port's listener (conn.c). */
void hp__rdv_conn_accepted2(void *arg, hp__stream *s, const struct sockaddr_storage *peer,
                            hp__ipent *ent);

/* http_routes.c */
/** A JSON response (takes the reference j; NULL: 500). */
void hp__rdv_http_json(rdv_conn *c, int status, json_t *j, int keep);

/* connect_back.c */
/** GET /connectback: connect from here to the client's address and port
 * (its NAT mapping, when the request comes from its punch port) and answer
 * how that went: open, drop (no answer within 2 s) or reset. The response
 * is written when the attempt ends. */
void hp__rdv_connect_back(rdv_conn *c, const hp__http1_req *req);

#endif
