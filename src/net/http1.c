/*
 * http1.c - bounded request reader on http-parser (see http1.h). The parser
 * does the HTTP grammar; this file keeps the caps and picks out the headers
 * the service needs. A header name or value may arrive in several callbacks
 * (split across reads), so the name is collected (up to NAME_MAX: longer
 * names are none of ours) and a value we keep is collected in `val` up to
 * HP_HTTP1_XFF_MAX bytes, then looked at once the header is complete.
 */
#include "http1.h"

#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_MAX_LEN 32

typedef enum hdr_kind {
  HDR_OTHER = 0,
  HDR_UPGRADE,
  HDR_WS_KEY,
  HDR_WS_VERSION,
  HDR_XFF,
} hdr_kind;

typedef enum phase {
  PH_IDLE = 0, /* nothing of a request yet */
  PH_LINE,     /* in the request line */
  PH_HEADERS,  /* request line done */
  PH_BODY,     /* headers done */
  PH_DONE,     /* a complete request, parser paused */
  PH_ERROR
} phase;

struct hp__http1 {
  http_parser p;
  hp__http1_limits lim;
  hp__http1_req req;
  phase ph;
  size_t hdr_bytes, body_bytes;
  unsigned nheaders;
  int in_value;   /* the last callback was a value: a new field starts a header */
  int path_ended; /* '?' or '#' seen: the rest of the URL is not the path */
  char name[NAME_MAX_LEN + 1];
  size_t name_len;
  int name_long;
  char *val; /* the current value, for headers we keep */
  size_t val_len, val_cap;
  int val_long;
  int err_status;
  const char *err_text;
};

static hp__http1 *of(http_parser *p) {
  return p->data;
}

static int error(hp__http1 *h, int status, const char *text) {
  h->ph = PH_ERROR;
  h->err_status = status;
  h->err_text = text;
  return -1; /* stops the parser */
}

static int count_header_bytes(hp__http1 *h, size_t n) {
  h->hdr_bytes += n;
  if (h->hdr_bytes > h->lim.max_header_bytes)
    return error(h, 431, "the request line and headers are too large");
  return 0;
}

static hdr_kind kind_of(const hp__http1 *h) {
  if (h->name_long)
    return HDR_OTHER;
  if (!strcasecmp(h->name, "upgrade"))
    return HDR_UPGRADE;
  if (!strcasecmp(h->name, "sec-websocket-key"))
    return HDR_WS_KEY;
  if (!strcasecmp(h->name, "sec-websocket-version"))
    return HDR_WS_VERSION;
  if (!strcasecmp(h->name, "x-forwarded-for"))
    return HDR_XFF;
  return HDR_OTHER;
}

/* Trimmed [b, e) of the current value. */
static void trimmed(const hp__http1 *h, size_t *b, size_t *e) {
  *b = 0;
  *e = h->val_len;
  while (*b < *e && (h->val[*b] == ' ' || h->val[*b] == '\t'))
    (*b)++;
  while (*e > *b && (h->val[*e - 1] == ' ' || h->val[*e - 1] == '\t'))
    (*e)--;
}

/* A comma-separated list value contains token (case-insensitive). */
static int has_token(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token), i = 0;

  while (i < n) {
    size_t b = i, e;
    while (i < n && v[i] != ',')
      i++;
    e = i++;
    while (b < e && (v[b] == ' ' || v[b] == '\t'))
      b++;
    while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
      e--;
    if (e - b == tl && !strncasecmp(v + b, token, tl))
      return 1;
  }
  return 0;
}

/* The header just completed (name and value). */
static void header_done(hp__http1 *h) {
  hp__http1_req *r = &h->req;
  size_t b, e;

  if (!h->name_len && !h->val_len)
    return;
  if (h->val)
    h->val[h->val_len] = '\0';
  switch (kind_of(h)) {
  case HDR_UPGRADE:
    if (h->val && has_token(h->val, h->val_len, "websocket"))
      r->upgrade_websocket = 1;
    break;
  case HDR_WS_KEY:
    r->ws_key_count++;
    trimmed(h, &b, &e);
    if (h->val && !h->val_long && e - b < sizeof(r->ws_key)) {
      memcpy(r->ws_key, h->val + b, e - b);
      r->ws_key[e - b] = '\0';
      r->ws_key_len = e - b;
    } else {
      r->ws_key_len = 0;
    }
    break;
  case HDR_WS_VERSION:
    r->ws_version_count++;
    trimmed(h, &b, &e);
    r->ws_version[0] = '\0';
    if (h->val && !h->val_long && e - b < sizeof(r->ws_version)) {
      memcpy(r->ws_version, h->val + b, e - b);
      r->ws_version[e - b] = '\0';
    }
    break;
  case HDR_XFF:
    if (++r->xff_lines > HP_HTTP1_XFF_LINES || h->val_long) {
      r->xff_unusable = 1;
      break;
    }
    /* Keep the line: only the last one counts. */
    free(r->xff);
    r->xff = h->val ? h->val : strdup("");
    r->xff_len = h->val ? h->val_len : 0;
    h->val = NULL;
    h->val_cap = 0;
    break;
  default:
    break;
  }
  h->name_len = 0;
  h->name[0] = '\0';
  h->name_long = 0;
  h->val_len = 0;
  h->val_long = 0;
}

static int on_message_begin(http_parser *p) {
  hp__http1 *h = of(p);
  h->ph = PH_LINE;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  hp__http1 *h = of(p);
  hp__http1_req *r = &h->req;

  if (count_header_bytes(h, n) < 0)
    return -1;
  /* Keep the path, up to '?' or '#'. */
  for (size_t i = 0; i < n; i++) {
    if (at[i] == '?' || at[i] == '#')
      h->path_ended = 1;
    if (h->path_ended || r->path_too_long)
      continue;
    if (r->path_len >= HP_HTTP1_PATH_MAX) {
      r->path_too_long = 1;
      continue;
    }
    r->path[r->path_len++] = at[i];
  }
  r->path[r->path_len] = '\0';
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  hp__http1 *h = of(p);

  h->ph = PH_HEADERS;
  if (count_header_bytes(h, n) < 0)
    return -1;
  if (h->in_value) {
    header_done(h);
    h->in_value = 0;
  }
  if (h->name_len == 0 && !h->name_long && ++h->nheaders > h->lim.max_headers)
    return error(h, 431, "too many header lines");
  if (h->name_len + n > NAME_MAX_LEN) {
    h->name_long = 1;
    return 0;
  }
  memcpy(h->name + h->name_len, at, n);
  h->name_len += n;
  h->name[h->name_len] = '\0';
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  hp__http1 *h = of(p);

  if (count_header_bytes(h, n) < 0)
    return -1;
  h->in_value = 1;
  if (kind_of(h) == HDR_OTHER || h->val_long)
    return 0;
  if (h->val_len + n > HP_HTTP1_XFF_MAX) {
    h->val_long = 1;
    return 0;
  }
  if (h->val_len + n + 1 > h->val_cap) {
    size_t cap = h->val_cap ? h->val_cap : 128;
    char *nb;
    while (cap < h->val_len + n + 1)
      cap *= 2;
    nb = realloc(h->val, cap);
    if (!nb)
      return error(h, 503, "out of memory");
    h->val = nb;
    h->val_cap = cap;
  }
  memcpy(h->val + h->val_len, at, n);
  h->val_len += n;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  hp__http1 *h = of(p);
  hp__http1_req *r = &h->req;

  if (h->ph == PH_LINE)
    h->ph = PH_HEADERS;
  if (h->in_value || h->name_len)
    header_done(h);
  h->in_value = 0;
  h->ph = PH_BODY;
  r->get = p->method == HTTP_GET;
  r->method = http_method_str((enum http_method)p->method);
  r->keep_alive = http_should_keep_alive(p) != 0;
  if (p->content_length != ULLONG_MAX && p->content_length > h->lim.max_body)
    return error(h, 413, "the request body is too large");
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  hp__http1 *h = of(p);

  (void)at;
  h->body_bytes += n;
  if (h->body_bytes > h->lim.max_body)
    return error(h, 413, "the request body is too large");
  return 0;
}

static int on_message_complete(http_parser *p) {
  hp__http1 *h = of(p);

  h->req.upgrade = p->upgrade;
  h->ph = PH_DONE;
  http_parser_pause(p, 1); /* one request at a time */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void req_reset(hp__http1 *h) {
  free(h->req.xff);
  memset(&h->req, 0, sizeof(h->req));
  h->hdr_bytes = h->body_bytes = 0;
  h->nheaders = 0;
  h->in_value = 0;
  h->path_ended = 0;
  h->name_len = 0;
  h->name[0] = '\0';
  h->name_long = 0;
  h->val_len = 0;
  h->val_long = 0;
  h->ph = PH_IDLE;
}

hp__http1 *hp__http1_create(const hp__http1_limits *lim) {
  hp__http1 *h = calloc(1, sizeof(*h));

  if (!h)
    return NULL;
  h->lim = *lim;
  http_parser_init(&h->p, HTTP_REQUEST);
  h->p.data = h;
  return h;
}

void hp__http1_destroy(hp__http1 *h) {
  if (!h)
    return;
  free(h->req.xff);
  free(h->val);
  free(h);
}

hp__http1_rc hp__http1_feed(hp__http1 *h, const uint8_t *data, size_t len, size_t *consumed) {
  size_t n;
  enum http_errno e;

  *consumed = 0;
  if (h->ph == PH_ERROR)
    return HP_HTTP1_ERROR;
  if (h->ph == PH_DONE)
    return HP_HTTP1_REQUEST;
  if (!len)
    return HP_HTTP1_MORE;
  n = http_parser_execute(&h->p, &settings, (const char *)data, len);
  *consumed = n;
  e = HTTP_PARSER_ERRNO(&h->p);
  if (h->ph == PH_DONE) {
    /* Paused after a message: the bytes after it are the next request's
     * (or, after an upgrade, the new protocol's). */
    return HP_HTTP1_REQUEST;
  }
  if (h->ph == PH_ERROR)
    return HP_HTTP1_ERROR;
  if (e != HPE_OK) {
    if (e == HPE_INVALID_VERSION)
      error(h, 505, "only HTTP/1.x is served");
    else
      error(h, 400, http_errno_description(e));
    return HP_HTTP1_ERROR;
  }
  return HP_HTTP1_MORE;
}

const hp__http1_req *hp__http1_request(const hp__http1 *h) {
  return &h->req;
}

void hp__http1_next(hp__http1 *h) {
  req_reset(h);
  http_parser_pause(&h->p, 0);
}

int hp__http1_error_status(const hp__http1 *h) {
  return h->err_status ? h->err_status : 400;
}

const char *hp__http1_error_text(const hp__http1 *h) {
  return h->err_text ? h->err_text : "malformed request";
}

int hp__http1_started(const hp__http1 *h) {
  return h->ph != PH_IDLE;
}

int hp__http1_line_done(const hp__http1 *h) {
  return h->ph >= PH_HEADERS;
}
