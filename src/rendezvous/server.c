/*
 * server.c - libwebsockets glue of the rendezvous service: HTTP routes,
 * WebSocket signaling callbacks, per-connection state and metrics.
 *
 * lws runs on the caller's libuv loop (LWS_SERVER_OPTION_LIBUV with
 * foreign_loops), so the process has exactly one event loop. All state is
 * touched from that loop only.
 *
 * Memory per connection is what the benchmark watches: the per-session data
 * (struct conn) holds fixed small fields; a waiting worker's candidates are
 * one malloc of exactly its candidates, freed once it is paired; a message
 * that arrives in pieces is reassembled in a buffer that exists only while
 * the message is incomplete.
 *
 * Messages are written as soon as they exist, from whichever callback made
 * them: lws 4.1 keeps what the socket does not take at once in the wsi's
 * output buffer list and appends later writes to it, so order is kept, and
 * no POLLOUT round trip (two epoll_ctl calls and a loop turn per message)
 * is spent on the common case where the socket takes everything.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "rooms.h"
#include "wire.h"

#define COMP "rendezvous"
#define RX_CHUNK 1024        /* lws delivers at most this much per RECEIVE callback */
#define HTTP_HDR_CAP 512     /* response headers */
#define JSON_BODY_CAP 1024   /* our JSON responses are small and fixed in shape */
#define METRICS_CAP 8192     /* the exposition text; a fixed set of series */
#define XFF_CAP 4096         /* an X-Forwarded-For line: lws holds at most 4096 bytes of headers */
#define XFF_LINES_MAX 16     /* X-Forwarded-For header lines looked at */
#define START_IN_MS 0        /* both peer messages leave in the same loop turn */
#define GENERATED_ID_BYTES 8 /* service-assigned ids: 64 bits as 16 hex characters */
#define SEND_STACK_CAP 2048  /* larger messages (many candidates) use the heap */
#define LISTENER_SCAN_FDS 1024 /* descriptors looked at for the listener at start-up */

/* WebSocket close statuses (RFC 6455 section 7.4.1). */
#define CLOSE_GOING_AWAY 1001
#define CLOSE_UNSUPPORTED_DATA 1003
#define CLOSE_POLICY 1008
#define CLOSE_TOO_BIG 1009
#define CLOSE_INTERNAL 1011
#define CLOSE_TRY_AGAIN_LATER 1013

/* Per-session data of the one protocol; zeroed by lws. HTTP connections get
 * one too but use none of it. */
typedef struct conn {
  hp__rooms_member m;       /* id, room, hash chains */
  struct conn *prev, *next; /* open WebSockets, for the shutdown broadcast */
  struct lws *wsi;
  char *rx; /* reassembly of an incomplete message, else NULL */
  size_t rxlen, rxcap;
  hp__cand *cands; /* a waiting worker's candidates, else NULL */
  uint8_t ncands;
  uint8_t ws;                    /* established WebSocket, counted */
  uint8_t hello_done;            /* welcome was sent */
  uint8_t closing;               /* the close is prepared: input is ignored */
  uint8_t close_started;         /* lws was told to send the close frame */
  uint8_t observed_full;         /* observed is "ip:port", not a bare forwarded ip */
  char observed[HP_ADDR_STRLEN]; /* "ip:port" of the TCP peer, or the forwarded ip */
  char peer_id[HP_ID_MAX + 1];   /* id of the worker it was paired with */
} conn;

struct hp__rdv {
  uv_loop_t *loop;
  struct lws_context *ctx; /* set to NULL by lws when fully destroyed */
  hp__rdv_opts o;
  char bind[INET6_ADDRSTRLEN];
  lws_retry_bo_t retry;
  struct lws_protocols protocols[2];
  hp__rooms *rooms;
  conn *ws_head;
  hp__rdv_metrics m;
  int port;
  uint64_t id_key, id_counter; /* assigned ids, see assign_id */
  uv_timer_t timer;            /* shutdown deadline, and the deferred context destroy */
  int timer_init;
  int draining;
  int destroying; /* lws_context_destroy was called */
  void (*done)(void *arg);
  void *done_arg;
};

/* ---------------------------------------------------------------------- */
/* addresses                                                              */

/* The TCP peer of wsi, with an IPv4-mapped IPv6 address (dual-stack
 * listener) turned back into IPv4 so that it reads as the client sent it. */
static int peer_addr(struct lws *wsi, struct sockaddr_storage *ss) {
  socklen_t sl = sizeof(*ss);
  int fd = lws_get_socket_fd(wsi);

  if (fd < 0 || getpeername(fd, (struct sockaddr *)ss, &sl) < 0)
    return -errno;
  if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      struct sockaddr_in s4;
      memset(&s4, 0, sizeof(s4));
      s4.sin_family = AF_INET;
      s4.sin_port = s6->sin6_port;
      memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
      memcpy(ss, &s4, sizeof(s4));
    }
  }
  return 0;
}

static int peer_ip_port(struct lws *wsi, char *ip, size_t iplen, int *port) {
  struct sockaddr_storage ss;
  const void *a;

  if (peer_addr(wsi, &ss) < 0)
    return -EINVAL;
  if (ss.ss_family == AF_INET) {
    a = &((struct sockaddr_in *)&ss)->sin_addr;
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  } else {
    return -EAFNOSUPPORT;
  }
  return inet_ntop(ss.ss_family, a, ip, (socklen_t)iplen) ? 0 : -ENOSPC;
}

/*
 * X-Forwarded-For with TRUST_PROXY=1. The rule: the client is the
 * RIGHT-MOST entry, the one the trusted proxy in front of us appended (Cloud
 * Run's front end, nginx's $proxy_add_x_forwarded_for, ... append the address
 * they saw). Everything to its left came from the client and may be forged.
 * Several header lines form one list in order, so the entry is the last one of
 * the last line. It is trimmed of spaces and tabs and must be a plain IPv4 or
 * IPv6 address; anything else ("unknown", "ip:port", empty, too long) makes us
 * ignore the header and use the TCP peer, logged at DEBUG.
 */

/* Copy the last X-Forwarded-For line into buf. Returns its length, 0 if
 * there is no such header, -1 if a line is too long for buf or there are
 * more than XFF_LINES_MAX lines (the last one would be out of sight). */
static int xff_last_line(struct lws *wsi, char *buf, int cap) {
  int lines;

  buf[0] = '\0';
  for (lines = 0; lines <= XFF_LINES_MAX; lines++) {
    if (lws_hdr_copy_fragment(wsi, buf, cap, WSI_TOKEN_X_FORWARDED_FOR, lines) >= 0)
      continue;
    /* lws 4.1 fails both past the last line and for a line longer than
     * buf; an empty line copies fine, so a length tells them apart. */
    if (lws_hdr_fragment_length(wsi, WSI_TOKEN_X_FORWARDED_FOR, lines) > 0)
      return -1;
    break;
  }
  if (lines > XFF_LINES_MAX)
    return -1;
  if (!lines)
    return 0;
  return lws_hdr_copy_fragment(wsi, buf, cap, WSI_TOKEN_X_FORWARDED_FOR, lines - 1);
}

/* Returns 1 and fills ip with the client address when TRUST_PROXY=1 and
 * X-Forwarded-For gives one (see above), else 0: use the TCP peer. */
static int forwarded_ip(const hp__rdv *s, struct lws *wsi, char *ip, size_t iplen) {
  char buf[XFF_CAP], entry[INET6_ADDRSTRLEN];
  unsigned char bin[sizeof(struct in6_addr)];
  const char *why;
  int n;
  size_t b, e;

  if (!s->o.trust_proxy)
    return 0;
  n = xff_last_line(wsi, buf, (int)sizeof(buf));
  if (n == 0 && !lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR))
    return 0; /* no header: a direct client, or a proxy that does not set it */
  if (n < 0) {
    why = "has a line too long or too many lines";
    goto ignore;
  }
  e = (size_t)n;
  b = e;
  while (b > 0 && buf[b - 1] != ',')
    b--;
  while (b < e && (buf[b] == ' ' || buf[b] == '\t'))
    b++;
  while (e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
    e--;
  if (e == b || e - b >= sizeof(entry)) {
    why = e == b ? "has an empty last entry" : "has a last entry too long for an IP address";
    goto ignore;
  }
  memcpy(entry, buf + b, e - b);
  entry[e - b] = '\0';
  if (inet_pton(AF_INET, entry, bin) != 1 && inet_pton(AF_INET6, entry, bin) != 1) {
    why = "has a last entry that is not an IP address";
    goto ignore;
  }
  snprintf(ip, iplen, "%s", entry);
  return 1;
ignore:
  HP_DEBUG(COMP, json_pack("{s:s#}", "x_forwarded_for", buf, n > 0 ? (n > 200 ? 200 : n) : 0),
           "X-Forwarded-For %s: ignored, the TCP peer is used", why);
  return 0;
}

/*
 * The address a worker is known by: "ip:port" of the TCP peer, or, behind a
 * trusted proxy, the forwarded ip alone (the port is not observable there).
 * Returns 1 for a full "ip:port", 0 otherwise.
 */
static int observed_of(const hp__rdv *s, struct lws *wsi, char *out, size_t outlen) {
  struct sockaddr_storage ss;

  if (forwarded_ip(s, wsi, out, outlen))
    return 0;
  if (peer_addr(wsi, &ss) < 0 || hp__addr_format((struct sockaddr *)&ss, out, outlen) < 0) {
    snprintf(out, outlen, "unknown");
    return 0;
  }
  return 1;
}

/* The protocol's addresses are "ip:port" (wire.c refuses anything else), so
 * a bare forwarded ip is logged but left out of welcome and peer messages. */
static const char *observed_wire(const struct conn *c);

/* ---------------------------------------------------------------------- */
/* HTTP                                                                   */

/* Write a complete response. body points at LWS_PRE bytes of headroom
 * followed by len bytes. Returns 0 or -1. */
static int http_send(struct lws *wsi, unsigned int status, const char *ctype, unsigned char *body,
                     size_t len, int allow_get) {
  unsigned char hdr[LWS_PRE + HTTP_HDR_CAP];
  unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

  if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
      lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                  (const unsigned char *)"no-store", 8, &p, end))
    return -1;
  if (allow_get && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                               (const unsigned char *)"GET", 3, &p, end))
    return -1;
  if (lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  if (lws_write(wsi, body + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
    return -1;
  return 0;
}

/* Write a response with body j (reference stolen). Returns 0 or -1. */
static int http_json_write(struct lws *wsi, unsigned int status, json_t *j, int allow_get) {
  unsigned char b[LWS_PRE + JSON_BODY_CAP];
  size_t n = 0;

  if (j)
    n = json_dumpb(j, (char *)b + LWS_PRE, JSON_BODY_CAP, JSON_COMPACT);
  json_decref(j);
  if (!n || n > JSON_BODY_CAP)
    return -1;
  return http_send(wsi, status, "application/json", b, n, allow_get);
}

/* Respond with j (reference stolen), as the return value of the HTTP
 * callback. keep: keep the connection for the next request, else close it
 * (lws flushes what was written before it closes). */
static int http_json(struct lws *wsi, unsigned int status, json_t *j, int keep, int allow_get) {
  if (http_json_write(wsi, status, j, allow_get) < 0 || !keep)
    return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static json_t *json_error(const char *code, const char *message) {
  return json_pack("{s:s,s:s}", "error", code, "message", message);
}

static hp__rdv_route route_of(const char *path, size_t len) {
  static const struct {
    const char *path;
    hp__rdv_route r;
  } routes[] = {
      {"/healthz", HP_RDV_ROUTE_HEALTHZ},
      {"/whoami", HP_RDV_ROUTE_WHOAMI},
      {"/metrics", HP_RDV_ROUTE_METRICS},
      {"/ws", HP_RDV_ROUTE_WS},
  };
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
    if (strlen(routes[i].path) == len && !memcmp(routes[i].path, path, len))
      return routes[i].r;
  return HP_RDV_ROUTE_OTHER;
}

static int http_whoami(hp__rdv *s, struct lws *wsi) {
  char ip[INET6_ADDRSTRLEN];
  int port;

  if (forwarded_ip(s, wsi, ip, sizeof(ip)))
    return http_json(wsi, 200, json_pack("{s:s,s:n}", "ip", ip, "port"), 1, 0);
  if (peer_ip_port(wsi, ip, sizeof(ip), &port) < 0)
    return http_json(
        wsi, 500, json_error("internal_error", "The address of this connection is unknown."), 0, 0);
  return http_json(wsi, 200, json_pack("{s:s,s:i}", "ip", ip, "port", port), 1, 0);
}

static int http_metrics(hp__rdv *s, struct lws *wsi) {
  unsigned char *b = malloc(LWS_PRE + METRICS_CAP);
  int n, rc = -1;

  if (!b)
    return -1;
  s->m.waiting = hp__rooms_waiting(s->rooms);
  n = hp__rdv_metrics_format(&s->m, (char *)b + LWS_PRE, METRICS_CAP);
  if (n < 0) {
    HP_ERROR(COMP, NULL, "metrics text does not fit in %d bytes", METRICS_CAP);
    goto out;
  }
  if (http_send(wsi, 200, "text/plain; version=0.0.4; charset=utf-8", b, (size_t)n, 0))
    goto out;
  rc = lws_http_transaction_completed(wsi) ? -1 : 0;
out:
  free(b);
  return rc;
}

static int on_http(hp__rdv *s, struct lws *wsi, const char *path, size_t len) {
  hp__rdv_route r = route_of(path, len);
  int is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;

  s->m.http_requests[r]++;
  HP_DEBUG(COMP, json_pack("{s:s#,s:b}", "path", path, (int)(len > 200 ? 200 : len), "get", is_get),
           "http request");
  if (s->m.tcp_connections > (uint64_t)s->o.max_connections) {
    s->m.errors[HP_RDV_ERR_SERVER_FULL]++;
    return http_json(wsi, 503,
                     json_error("server_full", "The server is at its connection limit "
                                               "(MAX_CONNECTIONS); try again later."),
                     0, 0);
  }
  if (!is_get)
    return http_json(wsi, 405,
                     json_error("method_not_allowed", "This service only answers GET requests."), 0,
                     1);
  switch (r) {
  case HP_RDV_ROUTE_HEALTHZ:
    return http_json(wsi, 200,
                     json_pack("{s:s,s:I,s:I}", "status", "ok", "connections",
                               (json_int_t)s->m.connections, "waiting",
                               (json_int_t)hp__rooms_waiting(s->rooms)),
                     1, 0);
  case HP_RDV_ROUTE_WHOAMI:
    return http_whoami(s, wsi);
  case HP_RDV_ROUTE_METRICS:
    return http_metrics(s, wsi);
  case HP_RDV_ROUTE_WS:
    return http_json(
        wsi, 426,
        json_error("upgrade_required",
                   "/ws is the signaling WebSocket: open it with a WebSocket upgrade."),
        1, 0);
  default:
    return http_json(wsi, 404,
                     json_error("not_found", "There is nothing at this path; the service answers "
                                             "/healthz, /whoami, /metrics and /ws."),
                     1, 0);
  }
}

/* A WebSocket upgrade is only taken on /ws. */
static int on_confirm_upgrade(hp__rdv *s, struct lws *wsi, const char *proto) {
  char uri[16];
  int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);

  if (n == 3 && !memcmp(uri, "/ws", 3) && proto && !strcmp(proto, "websocket")) {
    s->m.http_requests[HP_RDV_ROUTE_WS]++;
    return 0;
  }
  s->m.http_requests[n > 0 ? route_of(uri, (size_t)n) : HP_RDV_ROUTE_OTHER]++;
  /* >0 tells lws that we answered; it completes the transaction. */
  if (n == 3 && !memcmp(uri, "/ws", 3))
    return http_json_write(
               wsi, 400, json_error("bad_upgrade", "/ws only upgrades to the WebSocket protocol."),
               0) < 0
               ? -1
               : 1;
  return http_json_write(wsi, 404,
                         json_error("not_found", "WebSocket upgrades are only accepted on /ws."),
                         0) < 0
             ? -1
             : 1;
}

/* ---------------------------------------------------------------------- */
/* WebSocket signaling                                                    */

static const char *observed_wire(const conn *c) {
  return c->observed_full ? c->observed : "";
}

static conn *conn_of_member(hp__rooms_member *m) {
  return (conn *)(void *)((char *)m - offsetof(conn, m));
}

/* Write one message now (see the top of the file). */
static int conn_send(hp__rdv *s, conn *c, const hp__msg *m) {
  unsigned char stackbuf[LWS_PRE + SEND_STACK_CAP], *buf = stackbuf;
  size_t len = 0;
  char *text = hp__msg_encode(m, &len);
  int rc = 0;

  if (!text)
    return -ENOMEM;
  if (len > SEND_STACK_CAP) {
    buf = malloc(LWS_PRE + len);
    if (!buf) {
      free(text);
      return -ENOMEM;
    }
  }
  memcpy(buf + LWS_PRE, text, len);
  free(text);
  if (lws_write(c->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len)
    rc = -EIO;
  else
    s->m.bytes_sent += len;
  if (buf != stackbuf)
    free(buf);
  return rc;
}

/*
 * Close with status, after what was written. Input after this is ignored.
 * lws sends the close frame when a callback of the wsi returns nonzero,
 * except WRITEABLE (lws 4.1 takes that for a failed write and drops the
 * socket without a close frame); so the close is returned from the wsi
 * timer, armed here to fire at once; lws then sends the close frame after
 * everything written before it, and drops the connection (so a client that
 * never answers holds nothing). When this runs outside any lws callback
 * (shutdown), lws does not notice the new timer, so a writable callback is
 * asked for too, and it arms the timer again from inside lws.
 */
static void conn_close(hp__rdv *s, conn *c, uint16_t status, int in_callback) {
  static const char reason[] = "closing";

  if (c->closing)
    return;
  c->closing = 1;
  /* Out of its room now: nobody may be paired with a closing worker, and its
   * id is free for its next connection. */
  hp__rooms_leave(s->rooms, &c->m);
  free(c->cands);
  c->cands = NULL;
  c->ncands = 0;
  free(c->rx);
  c->rx = NULL;
  c->rxlen = c->rxcap = 0;
  lws_close_reason(c->wsi, (enum lws_close_status)status, (unsigned char *)reason,
                   sizeof(reason) - 1);
  lws_set_timer_usecs(c->wsi, 1);
  if (!in_callback)
    lws_callback_on_writable(c->wsi);
}

/* Send an error message, then close. */
static void conn_fail(hp__rdv *s, conn *c, hp__rdv_err code, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void conn_fail(hp__rdv *s, conn *c, hp__rdv_err code, uint16_t status, const char *fmt,
                      ...) {
  hp__msg m;
  va_list ap;

  if (c->closing)
    return;
  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_ERROR;
  snprintf(m.u.error.code, sizeof(m.u.error.code), "%s", hp__rdv_err_name(code));
  va_start(ap, fmt);
  vsnprintf(m.u.error.message, sizeof(m.u.error.message), fmt, ap);
  va_end(ap);
  s->m.errors[code]++;
  HP_WARN(COMP,
          json_pack("{s:s,s:s,s:s,s:i}", "code", m.u.error.code, "addr", c->observed, "peer",
                    c->m.id, "close", (int)status),
          "error sent to client: %s", m.u.error.message);
  /* If even the error cannot be written, the close still goes out. */
  (void)conn_send(s, c, &m);
  conn_close(s, c, status, 1);
}

static void fail_internal(hp__rdv *s, conn *c, const char *what) {
  conn_fail(s, c, HP_RDV_ERR_INTERNAL_ERROR, CLOSE_INTERNAL,
            "The server could not %s; please retry.", what);
}

static void peer_msg(hp__msg *out, const conn *to, const conn *other, char role,
                     const char *session, const hp__cand *cands, size_t ncands) {
  hp__msg_peer *p = &out->u.peer;

  memset(out, 0, sizeof(*out));
  out->type = HP_MSG_PEER;
  memcpy(p->room, to->m.room, sizeof(p->room));
  p->role = role;
  memcpy(p->session, session, sizeof(p->session));
  memcpy(p->peer_id, other->m.id, sizeof(p->peer_id));
  snprintf(p->peer_observed, sizeof(p->peer_observed), "%s", observed_wire(other));
  p->peer_cands.n = ncands;
  memcpy(p->peer_cands.c, cands, ncands * sizeof(*cands));
  p->start_in_ms = START_IN_MS;
}

/* b has just been paired with a, who waited (role "a"). Both peer messages
 * are queued here, in this one callback, so they leave in the same turn. */
static void pair(hp__rdv *s, conn *a, conn *b, const hp__cands *b_cands) {
  char session[HP_SESSION_HEX + 1];
  hp__msg ma, mb;

  if (hp__random_hex(session, HP_SESSION_HEX / 2) < 0) {
    fail_internal(s, a, "draw a session key");
    fail_internal(s, b, "draw a session key");
    return;
  }
  memcpy(a->peer_id, b->m.id, sizeof(a->peer_id));
  memcpy(b->peer_id, a->m.id, sizeof(b->peer_id));

  peer_msg(&ma, a, b, 'a', session, b_cands->c, b_cands->n);
  peer_msg(&mb, b, a, 'b', session, a->cands, a->ncands);
  /* The waiter's candidates were only kept for this moment. */
  free(a->cands);
  a->cands = NULL;
  a->ncands = 0;
  if (conn_send(s, a, &ma) < 0)
    fail_internal(s, a, "send the peer message");
  if (conn_send(s, b, &mb) < 0)
    fail_internal(s, b, "send the peer message");
  s->m.pairings++;
  HP_INFO(COMP,
          json_pack("{s:s,s:s,s:s,s:s,s:s}", "room", a->m.room, "peer", a->m.id, "peer_b", b->m.id,
                    "addr", a->observed, "addr_b", b->observed),
          "paired %s (a) with %s (b) in room %s", a->m.id, b->m.id, a->m.room);
}

/* splitmix64's finalizer: a bijection of 64-bit words that mixes every
 * input bit into every output bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/*
 * A service-assigned id: 16 hex digits. Ids are public (the peer gets them)
 * and only need to be unique and not guessable from outside; the secret of a
 * pairing is its session, which keeps coming from getrandom. A bijective mix
 * of a per-process random key plus a counter is unique for 2^64 ids and costs
 * no system call per worker.
 */
static void assign_id(hp__rdv *s, char *id) {
  static const char hex[] = "0123456789abcdef";
  uint64_t v = mix64(s->id_key + s->id_counter++);

  for (int i = 0; i < GENERATED_ID_BYTES * 2; i++)
    id[i] = hex[(v >> (60 - 4 * i)) & 15];
  id[GENERATED_ID_BYTES * 2] = '\0';
}

static void on_hello(hp__rdv *s, conn *c, const hp__msg_hello *h) {
  hp__rooms_member *w = NULL;
  hp__msg m;
  int rc;

  if (c->hello_done) {
    conn_fail(s, c, HP_RDV_ERR_BAD_MESSAGE, CLOSE_POLICY,
              "A second hello was sent on this connection; hello is sent once.");
    return;
  }
  if (h->id[0]) {
    memcpy(c->m.id, h->id, sizeof(c->m.id));
  } else {
    /* Assigned ids never repeat; a worker may have chosen the same one. */
    do
      assign_id(s, c->m.id);
    while (hp__rooms_id_taken(s->rooms, c->m.id));
  }
  memcpy(c->m.room, h->room, sizeof(c->m.room));

  rc = hp__rooms_join(s->rooms, &c->m, &w);
  if (rc == -EEXIST) {
    conn_fail(s, c, HP_RDV_ERR_DUPLICATE_ID, CLOSE_POLICY,
              "The id \"%s\" is already used by another connected worker; choose another id "
              "or leave it out to get one assigned.",
              c->m.id);
    return;
  }
  if (rc < 0) {
    fail_internal(s, c, "register this worker");
    return;
  }
  c->hello_done = 1;
  lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_WELCOME;
  memcpy(m.u.welcome.id, c->m.id, sizeof(m.u.welcome.id));
  memcpy(m.u.welcome.room, c->m.room, sizeof(m.u.welcome.room));
  snprintf(m.u.welcome.observed, sizeof(m.u.welcome.observed), "%s", observed_wire(c));
  if (conn_send(s, c, &m) < 0) {
    hp__rooms_leave(s->rooms, &c->m);
    fail_internal(s, c, "send the welcome message");
    return;
  }
  HP_DEBUG(COMP,
           json_pack("{s:s,s:s,s:s,s:i}", "room", c->m.room, "peer", c->m.id, "addr", c->observed,
                     "candidates", (int)h->cands.n),
           "hello");

  if (rc == 1) {
    pair(s, conn_of_member(w), c, &h->cands);
    return;
  }
  /* Waiting: keep exactly the candidates, for the peer message later. */
  if (h->cands.n) {
    c->cands = malloc(h->cands.n * sizeof(*c->cands));
    if (!c->cands) {
      hp__rooms_leave(s->rooms, &c->m);
      fail_internal(s, c, "store the candidates");
      return;
    }
    memcpy(c->cands, h->cands.c, h->cands.n * sizeof(*c->cands));
    c->ncands = (uint8_t)h->cands.n;
  }
}

static void on_result(hp__rdv *s, conn *c, const hp__msg_result *r) {
  int direct = r->status == HP_RESULT_DIRECT;

  if (direct)
    s->m.results_direct++;
  else
    s->m.results_failed++;
  HP_INFO(COMP,
          json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "room", c->m.room, "peer", c->m.id, "peer_b",
                    c->peer_id, "status", direct ? "direct" : "failed", "addr", r->addr,
                    "elapsed_ms", (json_int_t)r->elapsed_ms, "reason", r->reason),
          "result %s from %s (peer %s) in room %s", direct ? "direct" : "failed", c->m.id,
          c->peer_id[0] ? c->peer_id : "-", c->m.room);
}

static const char *type_name(hp__msg_type t) {
  switch (t) {
  case HP_MSG_WELCOME:
    return "welcome";
  case HP_MSG_PEER:
    return "peer";
  case HP_MSG_ERROR:
    return "error";
  default:
    return "?";
  }
}

/* One complete text message. */
static void on_message(hp__rdv *s, conn *c, const char *buf, size_t len) {
  hp__msg m;
  hp__wire_err err;

  if (hp__msg_decode(buf, len, &m, &err) < 0) {
    hp__rdv_err code = hp__rdv_err_from_name(err.code ? err.code : "bad_message");
    conn_fail(s, c, code, code == HP_RDV_ERR_TOO_LARGE ? CLOSE_TOO_BIG : CLOSE_POLICY, "%s",
              err.message);
    return;
  }
  switch (m.type) {
  case HP_MSG_HELLO:
    on_hello(s, c, &m.u.hello);
    break;
  case HP_MSG_RESULT:
    if (!c->hello_done) {
      conn_fail(s, c, HP_RDV_ERR_UNEXPECTED_MESSAGE, CLOSE_POLICY,
                "A result was sent before hello; send hello first.");
      return;
    }
    on_result(s, c, &m.u.result);
    break;
  default:
    conn_fail(s, c, HP_RDV_ERR_UNEXPECTED_MESSAGE, CLOSE_POLICY,
              "A \"%s\" message is sent by the server, never to it.", type_name(m.type));
    break;
  }
}

static void on_receive(hp__rdv *s, conn *c, const char *in, size_t len) {
  struct lws *wsi = c->wsi;
  int final = lws_is_final_fragment(wsi);
  size_t max = s->o.max_message_bytes, need;

  s->m.bytes_received += len;
  if (c->closing)
    return;
  if (lws_frame_is_binary(wsi)) {
    conn_fail(s, c, HP_RDV_ERR_UNSUPPORTED_DATA, CLOSE_UNSUPPORTED_DATA,
              "A binary frame was received; signaling messages are JSON text frames.");
    return;
  }
  /* Refuse as early as the frame header tells the size, before buffering. */
  need = c->rxlen + len + lws_remaining_packet_payload(wsi);
  if (need > max) {
    conn_fail(s, c, HP_RDV_ERR_TOO_LARGE, CLOSE_TOO_BIG,
              "The message is larger than the limit of %zu bytes (MAX_MESSAGE_BYTES).", max);
    return;
  }
  if (!c->rx && final) {
    on_message(s, c, in, len); /* the common case: the whole message at once */
    return;
  }
  if (c->rxlen + len > c->rxcap) {
    size_t cap = c->rxcap ? c->rxcap * 2 : RX_CHUNK * 2;
    char *nb;
    if (cap < c->rxlen + len)
      cap = c->rxlen + len;
    if (cap > max)
      cap = max;
    nb = realloc(c->rx, cap);
    if (!nb) {
      fail_internal(s, c, "buffer the message");
      return;
    }
    c->rx = nb;
    c->rxcap = cap;
  }
  memcpy(c->rx + c->rxlen, in, len);
  c->rxlen += len;
  if (final) {
    char *msg = c->rx;
    size_t n = c->rxlen;
    c->rx = NULL; /* owned by msg now, freed below */
    c->rxlen = c->rxcap = 0;
    on_message(s, c, msg, n);
    free(msg);
  }
}

static void maybe_finish_drain(hp__rdv *s);

static void on_established(hp__rdv *s, conn *c, struct lws *wsi) {
  c->wsi = wsi;
  c->ws = 1;
  c->next = s->ws_head;
  if (s->ws_head)
    s->ws_head->prev = c;
  s->ws_head = c;
  s->m.connections++;
  if (!c->observed[0])
    c->observed_full = (uint8_t)observed_of(s, wsi, c->observed, sizeof(c->observed));
  HP_DEBUG(COMP, json_pack("{s:s}", "addr", c->observed), "websocket open");

  if (s->draining) {
    conn_close(s, c, CLOSE_GOING_AWAY, 1);
  } else if (s->m.tcp_connections > (uint64_t)s->o.max_connections) {
    conn_fail(s, c, HP_RDV_ERR_SERVER_FULL, CLOSE_TRY_AGAIN_LATER,
              "The server is at its connection limit (MAX_CONNECTIONS); try again later.");
  } else {
    lws_set_timer_usecs(wsi, (lws_usec_t)(s->o.hello_timeout * 1e6));
  }
}

static void on_closed(hp__rdv *s, conn *c) {
  if (!c->ws)
    return;
  HP_DEBUG(COMP,
           json_pack("{s:s,s:s,s:s}", "addr", c->observed, "peer", c->m.id, "room", c->m.room),
           "websocket closed");
  hp__rooms_leave(s->rooms, &c->m);
  free(c->rx);
  c->rx = NULL;
  free(c->cands);
  c->cands = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->ws_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->ws = 0;
  s->m.connections--;
  maybe_finish_drain(s);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  struct lws_context *cx = lws_get_context(wsi);
  hp__rdv *s = cx ? lws_context_user(cx) : NULL;
  conn *c = user;

  if (!s)
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  switch (reason) {
  case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
    return s->draining; /* stop accepting while shutting down */
  case LWS_CALLBACK_WSI_CREATE:
    s->m.tcp_connections++;
    return 0;
  case LWS_CALLBACK_WSI_DESTROY:
    if (s->m.tcp_connections)
      s->m.tcp_connections--;
    return 0;
  case LWS_CALLBACK_HTTP:
    return on_http(s, wsi, in ? (const char *)in : "", in ? len : 0);
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return on_confirm_upgrade(s, wsi, (const char *)in);
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    /* The request headers are still there: note the client's address now. */
    if (c)
      c->observed_full = (uint8_t)observed_of(s, wsi, c->observed, sizeof(c->observed));
    return 0;
  case LWS_CALLBACK_ESTABLISHED:
    if (!c)
      return -1;
    on_established(s, c, wsi);
    return 0;
  case LWS_CALLBACK_RECEIVE:
    if (c && c->ws)
      on_receive(s, c, (const char *)in, len);
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (c && c->closing && !c->close_started)
      lws_set_timer_usecs(wsi, 1); /* see conn_close */
    return 0;
  case LWS_CALLBACK_TIMER:
    if (c && c->closing) {
      if (c->close_started)
        return 0;
      /* lws now sends the close frame prepared in conn_close and waits
       * (PENDING_TIMEOUT_CLOSE_ACK) for the client's close, reading and
       * dropping what the client still sends. A second nonzero return
       * here would make it drop the socket at once: the client's data in
       * flight would then meet a closed socket, the kernel would answer
       * with a reset, and a reset makes the client lose the error message
       * it has not read yet. */
      c->close_started = 1;
      return -1;
    }
    if (c && c->ws && !c->hello_done && !c->closing)
      conn_fail(s, c, HP_RDV_ERR_HELLO_TIMEOUT, CLOSE_POLICY,
                "No hello was received within %g s of opening the WebSocket (HELLO_TIMEOUT).",
                s->o.hello_timeout);
    return 0;
  case LWS_CALLBACK_CLOSED:
    if (c)
      on_closed(s, c);
    return 0;
  default:
    break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---------------------------------------------------------------------- */
/* lifecycle                                                              */

static void lws_log_emit(int level, const char *line) {
  size_t n = strlen(line);
  hp__log_level lv = (level & LLL_ERR)    ? HP_LOG_ERROR
                     : (level & LLL_WARN) ? HP_LOG_WARNING
                                          : HP_LOG_DEBUG;

  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  HP_LOG(lv, "lws", NULL, "%.*s", (int)n, line);
}

static int is_ipv4(const char *a) {
  struct in_addr x;
  return inet_pton(AF_INET, a, &x) == 1;
}

/* The socket address of bind:port ("0.0.0.0", "::" or one address). */
static int bind_sockaddr(const char *bind, int port, struct sockaddr_storage *ss, socklen_t *sl) {
  memset(ss, 0, sizeof(*ss));
  if (is_ipv4(bind)) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, bind, &s4->sin_addr);
    *sl = sizeof(*s4);
    return 0;
  }
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons((uint16_t)port);
  if (inet_pton(AF_INET6, bind, &s6->sin6_addr) != 1)
    return -EINVAL;
  *sl = sizeof(*s6);
  return 0;
}

/*
 * Try the bind lws is about to do, with the same SO_REUSEADDR, to say in
 * plain words why it cannot work: lws 4.1 only logs "ERROR on binding fd N
 * to port P (-1 98)", and for an address that is not local it even keeps
 * the vhost and retries later instead of failing. Returns 0 or -errno
 * (logged). The definitive check is find_listener() once lws has bound.
 */
static int preflight_bind(const hp__rdv *s) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int fd, one = 1, zero = 0, rc = 0;

  if (bind_sockaddr(s->bind, s->o.port, &ss, &sl) < 0) {
    HP_ERROR(COMP, json_pack("{s:s}", "addr", s->bind), "BIND=%s is not an IP address", s->bind);
    return -EINVAL;
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    HP_ERROR(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", s->o.port),
             "cannot create a TCP socket for %s: %s", s->bind, strerror(-rc));
    return rc;
  }
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  /* "::" is dual stack, as lws binds it. */
  if (ss.ss_family == AF_INET6 && !strcmp(s->bind, "::"))
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    rc = -errno;
    if (rc == -EADDRINUSE)
      HP_ERROR(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", s->o.port),
               "cannot listen on %s port %d: the port is already in use (PORT)", s->bind,
               s->o.port);
    else if (rc == -EADDRNOTAVAIL)
      HP_ERROR(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", s->o.port),
               "cannot listen on %s: it is not an address of this host (BIND)", s->bind);
    else
      HP_ERROR(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", s->o.port),
               "cannot listen on %s port %d: %s", s->bind, s->o.port, strerror(-rc));
  }
  close(fd);
  return rc;
}

/*
 * The listening TCP socket of this process bound to port, or -1. lws 4.1
 * exports no accessor for its listen socket, and its vhost keeps the port it
 * was asked for even when the bind failed; so the kernel is asked instead.
 * Start-up only: the descriptors are few then (stdio, the loop's, lws's).
 */
static int find_listener(int port) {
  for (int fd = 0; fd < LISTENER_SCAN_FDS; fd++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int v = 0;
    socklen_t vl = sizeof(v);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0 || !v)
      continue;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
      continue;
    if ((ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == port) ||
        (ss.ss_family == AF_INET6 && ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == port))
      return fd;
  }
  return -1;
}

int hp__rdv_create(uv_loop_t *loop, const hp__rdv_opts *opts, hp__rdv **out) {
  struct lws_context_creation_info info;
  void *loops[1] = {loop};
  struct lws_vhost *vh;
  uint32_t seed, keys[3];
  hp__rdv *s;
  int rc = -ENOMEM;

  *out = NULL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return -ENOMEM;
  /* From here on the caller owns s, also on failure (see server.h). */
  *out = s;
  s->loop = loop;
  s->o = *opts;
  snprintf(s->bind, sizeof(s->bind), "%s", opts->bind ? opts->bind : "0.0.0.0");
  s->o.bind = s->bind;
  /* One draw for the keys of the process: the hash seed of the rooms and
   * the key of the assigned ids. Without it both stay correct, only less
   * keyed. */
  if (getrandom(keys, sizeof(keys), 0) != (ssize_t)sizeof(keys)) {
    keys[0] = (uint32_t)(uintptr_t)s;
    keys[1] = (uint32_t)uv_hrtime();
    keys[2] = (uint32_t)getpid();
  }
  seed = keys[0];
  s->id_key = (uint64_t)keys[1] << 32 | keys[2];
  s->rooms = hp__rooms_create(seed);
  if (!s->rooms)
    goto out;
  if (uv_timer_init(loop, &s->timer) < 0) {
    rc = -EINVAL;
    goto out;
  }
  s->timer_init = 1;
  s->timer.data = s;

  rc = preflight_bind(s);
  if (rc < 0)
    goto out;

  s->protocols[0].name = "holepunch";
  s->protocols[0].callback = callback;
  s->protocols[0].per_session_data_size = sizeof(conn);
  s->protocols[0].rx_buffer_size = RX_CHUNK;

  /* lws pings a WebSocket silent for ping_interval and hangs up one silent
   * (no pong either) for idle_timeout. */
  s->retry.secs_since_valid_ping = (uint16_t)(opts->ping_interval + 0.5);
  s->retry.secs_since_valid_hangup = (uint16_t)(opts->idle_timeout + 0.5);

  lws_set_log_level(LLL_ERR | LLL_WARN | (hp__log_enabled(HP_LOG_DEBUG) ? LLL_NOTICE : 0),
                    lws_log_emit);

  memset(&info, 0, sizeof(info));
  /* The vhost is created apart, so that a failed bind is an error we see
   * (FAIL_UPON_UNABLE_TO_BIND) instead of a context without a listener. */
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                 LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
  info.foreign_loops = loops;
  info.pcontext = &s->ctx;
  info.user = s;
  info.port = opts->port;
  info.protocols = s->protocols;
  info.server_string = "holepunch-rendezvous";
  /* "0.0.0.0": IPv4 only; "::": dual stack; else that one address. */
  if (!strcmp(s->bind, "0.0.0.0")) {
    info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  } else if (strcmp(s->bind, "::")) {
    info.iface = s->bind;
    if (is_ipv4(s->bind))
      info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  }
  /* A client gets http_timeout seconds to send a complete request, to hold a
   * header table, and to stay idle between keep-alive requests. */
  info.timeout_secs = (unsigned int)(opts->http_timeout + 0.999);
  info.timeout_secs_ah_idle = info.timeout_secs;
  info.keepalive_timeout = (int)info.timeout_secs;
  info.pt_serv_buf_size = 4096;
  info.retry_and_idle_policy = &s->retry;

  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    HP_ERROR(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", opts->port),
             "cannot create the libwebsockets context (see the lws error before this one; "
             "\"unable to load evlib plugin evlib_uv\" means the package "
             "libwebsockets-evlib-uv is missing)");
    rc = -ENOENT;
    goto out;
  }
  vh = lws_create_vhost(s->ctx, &info);
  s->port = vh ? lws_get_vhost_listen_port(vh) : 0;
  if (!vh || s->port <= 0 || find_listener(s->port) < 0) {
    HP_ERROR(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", opts->port),
             "cannot listen on %s port %d (see the lws error before this one)", s->bind,
             opts->port);
    rc = -EADDRNOTAVAIL;
    goto out;
  }
  HP_INFO(COMP, json_pack("{s:s,s:i}", "addr", s->bind, "port", s->port), "listening on %s port %d",
          s->bind, s->port);
  return 0;
out:
  hp__rdv_close(s);
  return rc;
}

void hp__rdv_close(hp__rdv *s) {
  if (!s)
    return;
  s->draining = 1;
  if (s->ctx && !s->destroying) {
    s->destroying = 1;
    /* On a foreign loop lws finishes from the loop, then sets s->ctx NULL. */
    lws_context_destroy(s->ctx);
  }
  s->destroying = 1;
  if (s->timer_init && !uv_is_closing((uv_handle_t *)&s->timer))
    uv_close((uv_handle_t *)&s->timer, NULL);
}

int hp__rdv_port(const hp__rdv *s) {
  return s->port;
}

static void on_timer_closed(uv_handle_t *h) {
  hp__rdv *s = h->data;
  if (s->done)
    s->done(s->done_arg);
}

/* Runs from the loop, never from inside an lws callback. */
static void on_shutdown_timer(uv_timer_t *t) {
  hp__rdv *s = t->data;

  if (s->destroying)
    return;
  s->destroying = 1;
  if (s->m.connections)
    HP_WARN(COMP, json_pack("{s:I}", "connections", (json_int_t)s->m.connections),
            "shutdown timeout: closing the remaining connections");
  if (s->ctx)
    lws_context_destroy(s->ctx);
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void maybe_finish_drain(hp__rdv *s) {
  if (s->draining && !s->destroying && !s->m.connections)
    uv_timer_start(&s->timer, on_shutdown_timer, 0, 0);
}

void hp__rdv_shutdown(hp__rdv *s, double timeout, void (*done)(void *arg), void *arg) {
  if (s->draining)
    return;
  s->draining = 1;
  s->done = done;
  s->done_arg = arg;
  HP_INFO(COMP,
          json_pack("{s:I,s:I}", "connections", (json_int_t)s->m.connections, "waiting",
                    (json_int_t)hp__rooms_waiting(s->rooms)),
          "shutting down: closing every WebSocket with 1001 (going away)");
  for (conn *c = s->ws_head; c; c = c->next)
    conn_close(s, c, CLOSE_GOING_AWAY, 0);
  uv_timer_start(&s->timer, on_shutdown_timer, (uint64_t)(timeout * 1000.0), 0);
  maybe_finish_drain(s);
}

int hp__rdv_destroy(hp__rdv *s) {
  if (!s)
    return 0;
  /* On a foreign loop, lws 4.1 completes the destruction begun from the
   * loop only when lws_context_destroy is called again after the loop has
   * run dry; it then sets s->ctx NULL (info.pcontext). It writes s->ctx and
   * calls back into s until then: better leak s than free it under lws. */
  if (s->ctx)
    lws_context_destroy(s->ctx);
  if (s->ctx || (s->timer_init && !uv_is_closing((uv_handle_t *)&s->timer)))
    return -EBUSY;
  hp__rooms_destroy(s->rooms);
  free(s);
  return 0;
}
