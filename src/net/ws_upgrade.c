/*
 * ws_upgrade.c - the client's WebSocket opening handshake (see
 * ws_upgrade.h). http-parser reads the response; this file keeps only the
 * few headers RFC 6455 asks a client to check, each value under a small
 * cap (a longer value cannot be a valid one: it is marked, not kept).
 */
#include "ws_upgrade.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define NAME_MAX_KEPT 32  /* header names we look at are shorter */
#define VALUE_MAX_KEPT 96 /* values we look at are shorter */
#define REASON_MAX 64     /* reason phrase kept for the error sentence */

/* The headers of interest. */
enum { H_OTHER = 0, H_UPGRADE, H_CONNECTION, H_ACCEPT, H_EXTENSIONS, H_PROTOCOL, H_COUNT };

typedef struct hval {
  char v[VALUE_MAX_KEPT + 1];
  size_t len;
  int over; /* longer than VALUE_MAX_KEPT */
  int lines;
} hval;

struct hp__wsu {
  http_parser p;
  http_parser_settings s;
  size_t max_head, seen;
  char key[HP_WS_KEY_LEN + 1];
  char name[NAME_MAX_KEPT + 1];
  size_t name_len;
  int name_over;
  int in_value; /* the last callback was a value */
  int cur;      /* header the value belongs to */
  hval h[H_COUNT];
  char reason[REASON_MAX + 1];
  size_t reason_len;
  int head_done;
  hp__wsu_fail fail;
  char err[HP_WSU_ERR_MAX];
};

static void refuse(hp__wsu *u, hp__wsu_fail f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(hp__wsu *u, hp__wsu_fail f, const char *fmt, ...) {
  va_list ap;

  if (u->fail)
    return;
  u->fail = f;
  va_start(ap, fmt);
  vsnprintf(u->err, sizeof(u->err), fmt, ap);
  va_end(ap);
}

static hp__wsu *of(http_parser *p) {
  return (hp__wsu *)(void *)p; /* p is the first member */
}

static int name_is(const hp__wsu *u, const char *want) {
  return !u->name_over && u->name_len == strlen(want) &&
         strncasecmp(u->name, want, u->name_len) == 0;
}

static int classify(const hp__wsu *u) {
  if (name_is(u, "upgrade"))
    return H_UPGRADE;
  if (name_is(u, "connection"))
    return H_CONNECTION;
  if (name_is(u, "sec-websocket-accept"))
    return H_ACCEPT;
  if (name_is(u, "sec-websocket-extensions"))
    return H_EXTENSIONS;
  if (name_is(u, "sec-websocket-protocol"))
    return H_PROTOCOL;
  return H_OTHER;
}

static int on_status(http_parser *p, const char *at, size_t len) {
  hp__wsu *u = of(p);
  size_t room = REASON_MAX - u->reason_len;
  size_t n = len < room ? len : room;

  for (size_t i = 0; i < n; i++) /* printable ASCII only: it goes into a log line */
    u->reason[u->reason_len++] = isprint((unsigned char)at[i]) ? at[i] : '?';
  u->reason[u->reason_len] = '\0';
  return 0;
}

static int on_field(http_parser *p, const char *at, size_t len) {
  hp__wsu *u = of(p);

  if (u->in_value) {
    u->in_value = 0;
    u->name_len = 0;
    u->name_over = 0;
  }
  if (len > NAME_MAX_KEPT - u->name_len) {
    u->name_over = 1;
    return 0;
  }
  memcpy(u->name + u->name_len, at, len);
  u->name_len += len;
  return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
  hp__wsu *u = of(p);
  hval *h;

  if (!u->in_value) {
    u->in_value = 1;
    u->cur = classify(u);
    if (u->cur != H_OTHER) {
      h = &u->h[u->cur];
      h->lines++;
      /* Several lines of one header are one comma-separated list. */
      if (h->len && !h->over) {
        if (h->len + 1 > VALUE_MAX_KEPT)
          h->over = 1;
        else
          h->v[h->len++] = ',';
      }
    }
  }
  if (u->cur == H_OTHER)
    return 0;
  h = &u->h[u->cur];
  if (h->over || len > VALUE_MAX_KEPT - h->len) {
    h->over = 1;
    return 0;
  }
  memcpy(h->v + h->len, at, len);
  h->len += len;
  h->v[h->len] = '\0';
  return 0;
}

static int on_headers_complete(http_parser *p) {
  hp__wsu *u = of(p);

  u->head_done = 1;
  if (p->status_code == 101 && p->upgrade)
    return 1; /* no body: http-parser returns right after the head */
  /* Anything else is refused; stop before its body. */
  http_parser_pause(p, 1);
  return 0;
}

/* 1 if the comma-separated list v holds token (case-insensitive). */
static int has_token(const char *v, const char *token) {
  size_t tl = strlen(token);

  while (*v) {
    const char *e;
    size_t n;
    while (*v == ' ' || *v == '\t' || *v == ',')
      v++;
    e = v;
    while (*e && *e != ',')
      e++;
    n = (size_t)(e - v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
      n--;
    if (n == tl && strncasecmp(v, token, tl) == 0)
      return 1;
    v = e;
  }
  return 0;
}

static void trim(const hval *h, const char **s, size_t *n) {
  const char *v = h->v;
  size_t l = h->len;

  while (l && (*v == ' ' || *v == '\t')) {
    v++;
    l--;
  }
  while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
    l--;
  *s = v;
  *n = l;
}

static void check_head(hp__wsu *u) {
  char want[HP_WS_ACCEPT_LEN + 1];
  const char *acc;
  size_t acclen;
  unsigned st = u->p.status_code;

  if (st != 101) {
    refuse(u, HP_WSU_FAIL_REFUSED, "the server did not accept the WebSocket upgrade (HTTP %u%s%s)",
           st, u->reason_len ? " " : "", u->reason);
    return;
  }
  if (!u->h[H_UPGRADE].lines || u->h[H_UPGRADE].over ||
      !has_token(u->h[H_UPGRADE].v, "websocket")) {
    refuse(u, HP_WSU_FAIL_HANDSHAKE, "the server answered 101 without \"Upgrade: websocket\"");
    return;
  }
  if (!u->h[H_CONNECTION].lines || u->h[H_CONNECTION].over ||
      !has_token(u->h[H_CONNECTION].v, "upgrade")) {
    refuse(u, HP_WSU_FAIL_HANDSHAKE, "the server answered 101 without \"Connection: upgrade\"");
    return;
  }
  if (u->h[H_ACCEPT].lines != 1 || u->h[H_ACCEPT].over) {
    refuse(u, HP_WSU_FAIL_HANDSHAKE, "the server answered 101 with %s Sec-WebSocket-Accept",
           u->h[H_ACCEPT].lines ? "an invalid" : "no");
    return;
  }
  trim(&u->h[H_ACCEPT], &acc, &acclen);
  if (hp__ws_accept_key(u->key, HP_WS_KEY_LEN, want) < 0 || acclen != HP_WS_ACCEPT_LEN ||
      memcmp(acc, want, HP_WS_ACCEPT_LEN) != 0) {
    refuse(u, HP_WSU_FAIL_HANDSHAKE, "the server's Sec-WebSocket-Accept does not match our key");
    return;
  }
  if (u->h[H_EXTENSIONS].lines || u->h[H_PROTOCOL].lines)
    refuse(u, HP_WSU_FAIL_HANDSHAKE, "the server chose a WebSocket %s we did not offer",
           u->h[H_EXTENSIONS].lines ? "extension" : "subprotocol");
}

hp__wsu *hp__wsu_create(size_t max_head) {
  unsigned char raw[16];
  hp__wsu *u = calloc(1, sizeof(*u));

  if (!u)
    return NULL;
  http_parser_init(&u->p, HTTP_RESPONSE);
  http_parser_settings_init(&u->s);
  u->s.on_status = on_status;
  u->s.on_header_field = on_field;
  u->s.on_header_value = on_value;
  u->s.on_headers_complete = on_headers_complete;
  u->max_head = max_head ? max_head : HP_WSU_HEAD_MAX;
  if (RAND_bytes(raw, sizeof(raw)) != 1 ||
      EVP_EncodeBlock((unsigned char *)u->key, raw, sizeof(raw)) != HP_WS_KEY_LEN) {
    free(u);
    return NULL;
  }
  return u;
}

void hp__wsu_destroy(hp__wsu *u) {
  free(u);
}

int hp__wsu_set_key(hp__wsu *u, const char *key) {
  if (strlen(key) != HP_WS_KEY_LEN || !hp__ws_key_valid(key, HP_WS_KEY_LEN))
    return -EINVAL;
  memcpy(u->key, key, HP_WS_KEY_LEN + 1);
  return 0;
}

int hp__wsu_request(const hp__wsu *u, const char *host_hdr, const char *path,
                    const char *user_agent, char *buf, size_t cap) {
  int n = snprintf(buf, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "%s%s%s"
                   "\r\n",
                   path, host_hdr, u->key, user_agent ? "User-Agent: " : "",
                   user_agent ? user_agent : "", user_agent ? "\r\n" : "");
  if (n < 0 || (size_t)n >= cap)
    return -ENOSPC;
  return n;
}

hp__wsu_rc hp__wsu_feed(hp__wsu *u, const uint8_t *data, size_t len, size_t *consumed) {
  size_t room, n, used;

  *consumed = 0;
  if (u->fail)
    return HP_WSU_ERROR;
  if (u->head_done)
    return HP_WSU_DONE;
  /* Never give http-parser more than the cap allows: it sees at most
   * max_head bytes in all, and a head still incomplete then is too big. */
  room = u->max_head - u->seen;
  n = len < room ? len : room;
  used = http_parser_execute(&u->p, &u->s, (const char *)data, n);
  u->seen += used;
  if (u->head_done) {
    check_head(u);
    if (u->fail)
      return HP_WSU_ERROR;
    *consumed = used;
    return HP_WSU_DONE;
  }
  if (HTTP_PARSER_ERRNO(&u->p) != HPE_OK) {
    refuse(u, HP_WSU_FAIL_MALFORMED, "the server's answer is not an HTTP/1.1 response (%s)",
           http_errno_description(HTTP_PARSER_ERRNO(&u->p)));
    return HP_WSU_ERROR;
  }
  if (u->seen >= u->max_head) {
    refuse(u, HP_WSU_FAIL_TOO_BIG, "the server's response head is larger than %zu bytes",
           u->max_head);
    return HP_WSU_ERROR;
  }
  *consumed = used;
  return HP_WSU_MORE;
}

hp__wsu_fail hp__wsu_failure(const hp__wsu *u) {
  return u->fail;
}

const char *hp__wsu_error(const hp__wsu *u) {
  return u->fail ? u->err : "";
}

int hp__wsu_status(const hp__wsu *u) {
  return u->p.status_code;
}
