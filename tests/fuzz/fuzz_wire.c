/*
 * fuzz_wire.c - hp__msg_decode (signaling protocol v1, src/lib/wire.h).
 *
 * Contract checked on every input:
 * - the result is 0 or -1;
 * - on -1, err.code is one of the documented codes ("too_large" exactly when
 *   the input is over HP_MSG_MAX), err.message is a non-empty string ending
 *   inside its buffer, and the pair can be sent back as an "error" message
 *   (the rendezvous does that): it encodes, and decodes to the same;
 * - on 0, every field is within the protocol's limits, the message
 *   re-encodes, the encoding decodes to the very same struct, and encoding
 *   that again gives the same text (the encoder's output is a fixed point);
 * - the "type" the decoder acted on is the whole "type" string of the input.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "wire.h"

static int is_hex_session(const char *s) {
  size_t i;

  if (strlen(s) != HP_SESSION_HEX)
    return 0;
  for (i = 0; i < HP_SESSION_HEX; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

static int is_name(const char *s, size_t cap) {
  return fuzz_terminated(s, cap) && hp__wire_valid_name(s, strlen(s));
}

static int is_addr(const char *s, size_t cap) {
  struct sockaddr_storage ss;

  return fuzz_terminated(s, cap) && hp__addr_parse(s, strlen(s), &ss, NULL) == 0;
}

/* "" (absent) or a valid address. */
static int is_opt_addr(const char *s, size_t cap) {
  return fuzz_terminated(s, cap) && (s[0] == '\0' || is_addr(s, cap));
}

static void check_cands(const hp__cands *c) {
  size_t i;

  FUZZ_CHECK(c->n <= HP_CANDS_MAX);
  for (i = 0; i < c->n; i++) {
    FUZZ_CHECK(c->c[i].kind == HP_CAND_HOST || c->c[i].kind == HP_CAND_SRFLX);
    FUZZ_CHECK(is_addr(c->c[i].addr, sizeof(c->c[i].addr)));
  }
}

static void check_code(const char *code) {
  size_t i;

  FUZZ_CHECK(code[0] != '\0');
  for (i = 0; code[i] != '\0'; i++)
    FUZZ_CHECK((code[i] >= 'a' && code[i] <= 'z') || code[i] == '_');
}

static void check_fields(const hp__msg *m) {
  switch (m->type) {
  case HP_MSG_HELLO: {
    const hp__msg_hello *h = &m->u.hello;
    FUZZ_CHECK(h->v == HP_PROTO_VERSION);
    FUZZ_CHECK(fuzz_terminated(h->id, sizeof(h->id)));
    FUZZ_CHECK(h->id[0] == '\0' || is_name(h->id, sizeof(h->id)));
    FUZZ_CHECK(strcmp(h->id, "use") != 0);
    FUZZ_CHECK(is_name(h->room, sizeof(h->room)));
    check_cands(&h->cands);
    break;
  }
  case HP_MSG_WELCOME: {
    const hp__msg_welcome *w = &m->u.welcome;
    FUZZ_CHECK(is_name(w->id, sizeof(w->id)));
    FUZZ_CHECK(is_name(w->room, sizeof(w->room)));
    FUZZ_CHECK(is_opt_addr(w->observed, sizeof(w->observed)));
    break;
  }
  case HP_MSG_PEER: {
    const hp__msg_peer *p = &m->u.peer;
    FUZZ_CHECK(is_name(p->room, sizeof(p->room)));
    FUZZ_CHECK(p->role == 'a' || p->role == 'b');
    FUZZ_CHECK(fuzz_terminated(p->session, sizeof(p->session)) && is_hex_session(p->session));
    FUZZ_CHECK(is_name(p->peer_id, sizeof(p->peer_id)));
    FUZZ_CHECK(is_opt_addr(p->peer_observed, sizeof(p->peer_observed)));
    check_cands(&p->peer_cands);
    FUZZ_CHECK(p->start_in_ms >= 0 && p->start_in_ms <= 86400000);
    break;
  }
  case HP_MSG_RESULT: {
    const hp__msg_result *r = &m->u.result;
    FUZZ_CHECK(r->status == HP_RESULT_DIRECT || r->status == HP_RESULT_FAILED);
    FUZZ_CHECK(is_opt_addr(r->addr, sizeof(r->addr)));
    FUZZ_CHECK(r->elapsed_ms == -1 || (r->elapsed_ms >= 0 && r->elapsed_ms <= 86400000));
    FUZZ_CHECK(fuzz_terminated(r->reason, sizeof(r->reason)));
    break;
  }
  case HP_MSG_ERROR: {
    const hp__msg_error *e = &m->u.error;
    FUZZ_CHECK(fuzz_terminated(e->code, sizeof(e->code)));
    check_code(e->code);
    FUZZ_CHECK(fuzz_terminated(e->message, sizeof(e->message)) && e->message[0] != '\0');
    break;
  }
  default:
    FUZZ_CHECK(!"decoded message has an unknown type");
  }
}

static const char *type_text(hp__msg_type t) {
  switch (t) {
  case HP_MSG_HELLO:
    return "hello";
  case HP_MSG_WELCOME:
    return "welcome";
  case HP_MSG_PEER:
    return "peer";
  case HP_MSG_RESULT:
    return "result";
  case HP_MSG_ERROR:
    return "error";
  }
  return "?";
}

/* The input's "type" string, all of it, is the name of the decoded type
 * (jansson reads the input the same way the decoder did). */
static void check_type_string(const uint8_t *data, size_t size, const hp__msg *m) {
  json_t *root =
      json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
  json_t *t = json_object_get(root, "type");
  const char *want = type_text(m->type);

  FUZZ_CHECK(json_is_string(t));
  FUZZ_CHECK(json_string_length(t) == strlen(want) &&
             memcmp(json_string_value(t), want, strlen(want)) == 0);
  json_decref(root);
}

/* What the rendezvous does with a refusal: send it back as an error message. */
static void check_error_is_sendable(const hp__wire_err *err) {
  hp__msg m, back;
  hp__wire_err err2;
  char *enc;
  size_t len = 0;

  memset(&m, 0, sizeof(m));
  m.type = HP_MSG_ERROR;
  FUZZ_CHECK(strlen(err->code) < sizeof(m.u.error.code));
  memcpy(m.u.error.code, err->code, strlen(err->code) + 1);
  memcpy(m.u.error.message, err->message, strlen(err->message) + 1);
  enc = hp__msg_encode(&m, &len);
  FUZZ_CHECK(enc != NULL); /* NULL also means "not UTF-8" */
  FUZZ_CHECK(hp__msg_decode(enc, len, &back, &err2) == 0);
  FUZZ_CHECK(memcmp(&m, &back, sizeof(m)) == 0);
  free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__msg m, again;
  hp__wire_err err, err2;
  char *enc, *enc2;
  size_t len = 0, len2 = 0;
  int r;

  memset(&err, 0xa5, sizeof(err));
  r = hp__msg_decode((const char *)data, size, &m, &err);
  FUZZ_CHECK(r == 0 || r == -1);
  if (r < 0) {
    FUZZ_CHECK(err.code != NULL);
    FUZZ_CHECK(strcmp(err.code, "bad_message") == 0 ||
               strcmp(err.code, "unsupported_version") == 0 || strcmp(err.code, "too_large") == 0);
    FUZZ_CHECK((strcmp(err.code, "too_large") == 0) == (size > HP_MSG_MAX));
    FUZZ_CHECK(fuzz_terminated(err.message, sizeof(err.message)));
    FUZZ_CHECK(err.message[0] != '\0');
    check_error_is_sendable(&err);
    return 0;
  }
  FUZZ_CHECK(size <= HP_MSG_MAX);
  check_fields(&m);
  check_type_string(data, size, &m);

  /* Round trip: encode, decode, compare; the struct was zeroed by decode, so
   * a byte comparison is meaningful. */
  enc = hp__msg_encode(&m, &len);
  FUZZ_CHECK(enc != NULL);
  FUZZ_CHECK(len == strlen(enc) && len <= HP_MSG_MAX);
  memset(&err2, 0, sizeof(err2));
  if (hp__msg_decode(enc, len, &again, &err2) != 0) {
    fprintf(stderr, "re-decoding %s failed: %s\n", enc, err2.message);
    FUZZ_CHECK(!"a decoded message re-encodes to something that decodes");
  }
  FUZZ_CHECK(memcmp(&m, &again, sizeof(m)) == 0);
  enc2 = hp__msg_encode(&again, &len2);
  FUZZ_CHECK(enc2 != NULL && len2 == len && memcmp(enc, enc2, len) == 0);
  free(enc2);
  free(enc);
  return 0;
}
