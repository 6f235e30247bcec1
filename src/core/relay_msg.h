/*
 * relay_msg.h - the text messages of the relay WebSocket (docs/PROTOCOL.md
 * section 7). Shared by the rendezvous (decodes join and eof, encodes ready,
 * eof, error) and the worker's relay carrier (encodes join and eof, decodes
 * ready, eof, error). No I/O; bounded: a relay text message is at most
 * HP_RELAY_MSG_MAX bytes.
 *
 *   join  (worker -> rendezvous, first message)
 *         {"type":"join","v":1,"session":"<32 hex>","id":"<own id>"}
 *   ready (rendezvous -> worker: both workers joined; binary frames flow)
 *         {"type":"ready","peer":"<peer id>"}
 *   eof   (either way: the sender writes no more; half-close)
 *         {"type":"eof"}
 *   error (rendezvous -> worker, then close)
 *         {"type":"error","code":"...","message":"..."}
 */
#ifndef HP_RELAY_MSG_H
#define HP_RELAY_MSG_H

#include <stddef.h>

#include "wire.h"

#define HP_RELAY_MSG_MAX                                                                           \
  2048 /* largest relay text message (an error with an escaped 255-byte message fits) */

typedef enum hp__relay_msg_type {
  HP_RELAY_JOIN = 1,
  HP_RELAY_READY,
  HP_RELAY_EOF,
  HP_RELAY_ERROR
} hp__relay_msg_type;

typedef struct hp__relay_msg {
  hp__relay_msg_type type;
  char session[HP_SESSION_HEX + 1]; /* join */
  char id[HP_ID_MAX + 1];           /* join: own id; ready: the peer's id */
  char code[32];                    /* error */
  char message[HP_REASON_MAX];      /* error */
} hp__relay_msg;

/** Decode one text message of len bytes. 0, or -1 with err filled
 * ("too_large" over HP_RELAY_MSG_MAX, "bad_message" otherwise, naming the
 * field; "unsupported_version" for a join whose v is not 1). */
int hp__relay_msg_decode(const char *buf, size_t len, hp__relay_msg *out, hp__wire_err *err);

/** Encode m as compact JSON into buf (NUL-terminated). Returns the length,
 * or -EINVAL (a field out of its limits, an unknown type) / -ENOSPC. */
int hp__relay_msg_encode(const hp__relay_msg *m, char *buf, size_t cap);

/** 1 if s is a session: exactly 32 lowercase hex digits. */
int hp__relay_valid_session(const char *s, size_t len);

#endif
