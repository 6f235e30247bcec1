/*
 * wire.h - signaling protocol v1 (docs/PROTOCOL.md): JSON messages, one per
 * WebSocket text frame. Decoding validates every field and says what was
 * wrong with the error codes of the protocol; encoding gives compact JSON.
 * No I/O here.
 */
#ifndef HP_WIRE_H
#define HP_WIRE_H

#include <stddef.h>

#include "addr.h"

#define HP_PROTO_VERSION 1
#define HP_ID_MAX 64           /* id and room: 1..64 of [A-Za-z0-9._-] */
#define HP_CANDS_MAX 8         /* candidates per hello */
#define HP_SESSION_HEX 32      /* 128-bit session as hex */
#define HP_REASON_MAX 256      /* result.reason, error.message */
#define HP_MSG_MAX (64 * 1024) /* largest message accepted */
/* peer.start_in_ms: one bound for the wire, the engine and the session. A
 * delay is only there to line up the first SYNs of both sides; 10 s is far
 * more than that needs, and a larger value would only eat the punch time. */
#define HP_START_IN_MS_MAX 10000
#define HP_RELAY_URL_MAX 256 /* peer.relay_url, with its NUL */
/* peer.start_at_us: an integer JSON carries exactly (2^53 - 1). */
#define HP_START_AT_US_MAX 9007199254740991ULL

typedef enum hp__msg_type {
  HP_MSG_HELLO = 1,
  HP_MSG_WELCOME,
  HP_MSG_PEER,
  HP_MSG_RESULT,
  HP_MSG_ERROR
} hp__msg_type;

typedef enum hp__cand_kind { HP_CAND_HOST = 1, HP_CAND_SRFLX } hp__cand_kind;

typedef struct hp__cand {
  hp__cand_kind kind;
  char addr[HP_ADDR_STRLEN];
} hp__cand;

typedef struct hp__cands {
  size_t n;
  hp__cand c[HP_CANDS_MAX];
} hp__cands;

typedef struct hp__msg_hello {
  int v;
  char id[HP_ID_MAX + 1];   /* "" when absent: the service assigns one */
  char room[HP_ID_MAX + 1]; /* "default" when absent */
  hp__cands cands;
} hp__msg_hello;

typedef struct hp__msg_welcome {
  char id[HP_ID_MAX + 1];
  char room[HP_ID_MAX + 1];
  char observed[HP_ADDR_STRLEN]; /* "" when absent (not observable behind a proxy) */
} hp__msg_welcome;

typedef struct hp__msg_peer {
  char room[HP_ID_MAX + 1];
  char role; /* 'a' or 'b' */
  char session[HP_SESSION_HEX + 1];
  char peer_id[HP_ID_MAX + 1];
  char peer_observed[HP_ADDR_STRLEN]; /* "" when absent */
  hp__cands peer_cands;
  long start_in_ms; /* 0..HP_START_IN_MS_MAX */
  /* "" when absent: the base URL of the rendezvous instance whose relay
   * both workers of this pairing use (the waiter's; docs/PROTOCOL.md). */
  char relay_url[HP_RELAY_URL_MAX];
  /* Optional: when to send the first SYNs, on the receiving worker's own
   * monotonic clock in µs (the clock of its clock pings, see clocksync.h);
   * 0 when absent. 1..HP_START_AT_US_MAX. */
  unsigned long long start_at_us;
} hp__msg_peer;

typedef enum hp__result_status {
  HP_RESULT_DIRECT = 1,
  HP_RESULT_FAILED,
  HP_RESULT_RELAYED /* connected through the relay; reason: why direct failed */
} hp__result_status;

typedef struct hp__msg_result {
  hp__result_status status;
  char addr[HP_ADDR_STRLEN];  /* "" when absent */
  long elapsed_ms;            /* -1 when absent; else 0..86400000 */
  char reason[HP_REASON_MAX]; /* "" when absent; longer input is an error */
} hp__msg_result;

typedef struct hp__msg_error {
  char code[32];
  char message[HP_REASON_MAX];
} hp__msg_error;

typedef struct hp__msg {
  hp__msg_type type;
  union {
    hp__msg_hello hello;
    hp__msg_welcome welcome;
    hp__msg_peer peer;
    hp__msg_result result;
    hp__msg_error error;
  } u;
} hp__msg;

/* Why a message was refused: code from the protocol's list, and a sentence. */
typedef struct hp__wire_err {
  const char *code; /* "bad_message", "unsupported_version", "too_large", ... */
  char message[HP_REASON_MAX];
} hp__wire_err;

/*
 * Decode one frame of len bytes (no NUL needed). Returns 0, or -1 with err
 * filled: "too_large" over HP_MSG_MAX, "bad_message" for invalid JSON (with
 * line/column), a non-object, a missing/unknown "type", a bad field (named);
 * "unsupported_version" for hello.v present but not the integer 1.
 * Optional fields may be absent or null. Unknown fields are ignored. The
 * hello id "use" is refused (reserved by the direct-connection nomination).
 */
int hp__msg_decode(const char *buf, size_t len, hp__msg *out, hp__wire_err *err);

/* Encode to a NUL-terminated compact JSON string (malloc; caller frees).
 * Optional fields that are "" (or elapsed_ms < 0) are left out. Returns NULL
 * on allocation failure, an unknown type or a string that is not UTF-8.
 * *len (optional) gets strlen. */
char *hp__msg_encode(const hp__msg *m, size_t *len);

/* Encode just a candidate list as a JSON array text (malloc). */
char *hp__cands_encode(const hp__cands *c, size_t *len);

/*
 * What the rendezvous keeps of a waiting worker for its peer (the room
 * store's payload, shared by instances through Redis): the observed
 * address, the candidates and the instance's relay URL, each "" / empty
 * when absent. Compact JSON {"observed":..,"candidates":[..],"relay_url":..}.
 */
typedef struct hp__peer_payload {
  char observed[HP_ADDR_STRLEN];
  hp__cands cands;
  char relay_url[HP_RELAY_URL_MAX];
} hp__peer_payload;

/* Encode p (malloc'd, NUL-terminated; *len gets strlen). NULL on ENOMEM. */
char *hp__peer_payload_encode(const hp__peer_payload *p, size_t *len);

/* Decode len bytes (at most HP_PEER_PAYLOAD_MAX) with the rules of the
 * messages: 0, or -1 with err filled ("bad_message", "too_large"). */
#define HP_PEER_PAYLOAD_MAX 4096
int hp__peer_payload_decode(const char *buf, size_t len, hp__peer_payload *out, hp__wire_err *err);

/* 1 if s[0..len) is a valid id/room: 1..64 of [A-Za-z0-9._-]. */
int hp__wire_valid_name(const char *s, size_t len);

/* Fill buf (>= 2*nbytes+1) with nbytes random bytes as lowercase hex
 * (getrandom). Returns 0 or -errno. Used for session and generated ids. */
int hp__random_hex(char *buf, size_t nbytes);

#endif
