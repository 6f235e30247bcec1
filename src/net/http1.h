/*
 * http1.h - a bounded HTTP/1.1 request reader on http-parser. No I/O: the
 * owner feeds bytes and gets one complete request at a time, with the few
 * headers a WebSocket server and a proxy-aware service need; everything else
 * is counted against the caps and dropped.
 *
 * Caps: total header bytes (request line included), header count, body
 * bytes; over one the request fails with the HTTP status to answer (431,
 * 413, 400). Deadlines are the owner's (it has the timer): it asks whether a
 * request has begun (hp__http1_started) and whether its request line is
 * complete (hp__http1_line_done) to choose which deadline applies.
 */
#ifndef HP_NET_HTTP1_H
#define HP_NET_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HP_HTTP1_PATH_MAX 256 /* path bytes kept (longer: path_too_long) */
#define HP_HTTP1_XFF_MAX 4096 /* one X-Forwarded-For line kept */
#define HP_HTTP1_XFF_LINES 16 /* X-Forwarded-For lines looked at */

typedef struct hp__http1_limits {
  size_t max_header_bytes; /* request line + headers */
  unsigned max_headers;
  size_t max_body;
} hp__http1_limits;

/* The parts of one request the service looks at. */
typedef struct hp__http1_req {
  int get;                          /* method GET */
  const char *method;               /* its name, for logs */
  char path[HP_HTTP1_PATH_MAX + 1]; /* the URL's path (no query), NUL-terminated */
  size_t path_len;
  int path_too_long;
  int upgrade;           /* http-parser saw Upgrade + Connection: upgrade */
  int upgrade_websocket; /* Upgrade names "websocket" */
  char ws_key[32];       /* Sec-WebSocket-Key (trimmed), if it fits */
  size_t ws_key_len;
  int ws_key_count;   /* header lines seen */
  char ws_version[8]; /* Sec-WebSocket-Version (trimmed), if it fits */
  int ws_version_count;
  char *xff; /* the last X-Forwarded-For line, NUL-terminated, or NULL */
  size_t xff_len;
  int xff_lines;    /* lines seen */
  int xff_unusable; /* a line too long, or more than HP_HTTP1_XFF_LINES lines */
  int keep_alive;   /* the client may send another request */
} hp__http1_req;

typedef enum hp__http1_rc {
  HP_HTTP1_MORE = 0,    /* everything consumed, no complete request yet */
  HP_HTTP1_REQUEST = 1, /* a complete request: hp__http1_request(); then hp__http1_next() */
  HP_HTTP1_ERROR = -1   /* malformed or over a cap: answer hp__http1_error_status() and close */
} hp__http1_rc;

typedef struct hp__http1 hp__http1;

hp__http1 *hp__http1_create(const hp__http1_limits *lim);
void hp__http1_destroy(hp__http1 *h);

/** Feed bytes; *consumed tells how many were used (after a request, the
 * rest belongs to the next request or, after an upgrade, to the new
 * protocol). */
hp__http1_rc hp__http1_feed(hp__http1 *h, const uint8_t *data, size_t len, size_t *consumed);

const hp__http1_req *hp__http1_request(const hp__http1 *h);
/** Forget the request and read the next one on the same connection. */
void hp__http1_next(hp__http1 *h);

/** The status to answer after HP_HTTP1_ERROR (400, 413, 431, 505) and why. */
int hp__http1_error_status(const hp__http1 *h);
const char *hp__http1_error_text(const hp__http1 *h);

/** A request has begun (a byte of it arrived). */
int hp__http1_started(const hp__http1 *h);
/** Its request line is complete. */
int hp__http1_line_done(const hp__http1 *h);

#endif
