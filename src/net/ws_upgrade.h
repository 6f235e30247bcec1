/*
 * ws_upgrade.h - the client side of the WebSocket opening handshake (RFC
 * 6455 section 4.1), without I/O: the upgrade request is written into the
 * caller's buffer, the server's response head is read with http-parser
 * (HTTP_RESPONSE mode) under a size cap and checked: status 101, Upgrade:
 * websocket, Connection: upgrade, Sec-WebSocket-Accept matching our key, no
 * extension or subprotocol we did not offer. The deadline is the owner's.
 *
 * A refusal (another status, a malformed head, a wrong accept key) comes
 * with a sentence (hp__wsu_error) and a kind, so that a client can tell a
 * proxy without WebSocket support (HTTP 4xx/5xx) from a broken server.
 */
#ifndef HP_NET_WS_UPGRADE_H
#define HP_NET_WS_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#define HP_WSU_HEAD_MAX 16384 /* default cap on the response head */
#define HP_WSU_ERR_MAX 200

typedef enum hp__wsu_rc {
  HP_WSU_MORE = 0, /* everything consumed; the head is not complete yet */
  HP_WSU_DONE = 1, /* a valid 101: what follows *consumed is WebSocket frames */
  HP_WSU_ERROR = -1
} hp__wsu_rc;

typedef enum hp__wsu_fail {
  HP_WSU_FAIL_NONE = 0,
  HP_WSU_FAIL_MALFORMED, /* not an HTTP/1.x response */
  HP_WSU_FAIL_TOO_BIG,   /* head over the cap */
  HP_WSU_FAIL_REFUSED,   /* a status other than 101 (e.g. a proxy without upgrade support) */
  HP_WSU_FAIL_HANDSHAKE  /* 101, but the headers are not a valid WebSocket answer */
} hp__wsu_fail;

typedef struct hp__wsu hp__wsu;

/** A reader for one response head of at most max_head bytes (0: the
 * default), with a fresh random Sec-WebSocket-Key. NULL on ENOMEM. */
hp__wsu *hp__wsu_create(size_t max_head);
void hp__wsu_destroy(hp__wsu *u);

/** Use key (24 characters of base64) instead of the random one: tests and
 * the fuzz harness. 0 or -EINVAL. */
int hp__wsu_set_key(hp__wsu *u, const char *key);

/** The request for path on host_hdr (the Host header: host[:port], IPv6 in
 * brackets) into buf; user_agent may be NULL. The length, or -ENOSPC. */
int hp__wsu_request(const hp__wsu *u, const char *host_hdr, const char *path,
                    const char *user_agent, char *buf, size_t cap);

/** Feed bytes of the response. *consumed: bytes of the head used (after
 * HP_WSU_DONE the rest of data is the first WebSocket bytes). After
 * HP_WSU_ERROR, further calls return HP_WSU_ERROR. */
hp__wsu_rc hp__wsu_feed(hp__wsu *u, const uint8_t *data, size_t len, size_t *consumed);

hp__wsu_fail hp__wsu_failure(const hp__wsu *u);
/** Why the response was refused: a sentence, "" when it was not. */
const char *hp__wsu_error(const hp__wsu *u);
/** The response's status code, 0 before the status line was read. */
int hp__wsu_status(const hp__wsu *u);

#endif
