/*
 * fuzz_relay_msg.c - hp__relay_msg_decode (the relay WebSocket's text
 * messages, src/core/relay_msg.h).
 *
 * Contract checked on every input:
 * - the result is 0 or -1;
 * - on -1, err.code is bad_message, unsupported_version or too_large (this
 *   one exactly above HP_RELAY_MSG_MAX), err.message is non-empty and ends
 *   inside its buffer, and the pair can be sent back as a relay error
 *   message (the rendezvous does that): it encodes and decodes to the same;
 * - on 0, every field is within its limits (a join's session is 32 lowercase
 *   hex digits, ids are names), the message re-encodes, the encoding decodes
 *   to the same struct, and encoding that again gives the same text.
 */
#include <jansson.h>

#include "fuzz.h"
#include "relay_msg.h"

static void check_roundtrip(const hp__relay_msg *m) {
  char a[HP_RELAY_MSG_MAX + 1], b[HP_RELAY_MSG_MAX + 1];
  hp__relay_msg m2;
  hp__wire_err err;
  int na = hp__relay_msg_encode(m, a, sizeof(a)), nb;

  FUZZ_CHECK(na > 0);
  FUZZ_CHECK(hp__relay_msg_decode(a, (size_t)na, &m2, &err) == 0);
  FUZZ_CHECK(memcmp(m, &m2, sizeof(m2)) == 0);
  nb = hp__relay_msg_encode(&m2, b, sizeof(b));
  FUZZ_CHECK(nb == na && memcmp(a, b, (size_t)na) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__relay_msg m;
  hp__wire_err err;
  int rc = hp__relay_msg_decode((const char *)data, size, &m, &err);

  FUZZ_CHECK(rc == 0 || rc == -1);
  if (rc < 0) {
    hp__relay_msg e;
    FUZZ_CHECK(err.code != NULL);
    FUZZ_CHECK(!strcmp(err.code, "bad_message") || !strcmp(err.code, "unsupported_version") ||
               !strcmp(err.code, "too_large"));
    FUZZ_CHECK(!strcmp(err.code, "too_large") == (size > HP_RELAY_MSG_MAX));
    FUZZ_CHECK(fuzz_terminated(err.message, sizeof(err.message)) && err.message[0]);
    memset(&e, 0, sizeof(e));
    e.type = HP_RELAY_ERROR;
    snprintf(e.code, sizeof(e.code), "%s", err.code);
    snprintf(e.message, sizeof(e.message), "%s", err.message);
    check_roundtrip(&e);
    return 0;
  }
  FUZZ_CHECK(fuzz_terminated(m.session, sizeof(m.session)));
  FUZZ_CHECK(fuzz_terminated(m.id, sizeof(m.id)));
  FUZZ_CHECK(fuzz_terminated(m.code, sizeof(m.code)));
  FUZZ_CHECK(fuzz_terminated(m.message, sizeof(m.message)));
  switch (m.type) {
  case HP_RELAY_JOIN:
    FUZZ_CHECK(hp__relay_valid_session(m.session, strlen(m.session)));
    FUZZ_CHECK(hp__wire_valid_name(m.id, strlen(m.id)));
    break;
  case HP_RELAY_READY:
    FUZZ_CHECK(hp__wire_valid_name(m.id, strlen(m.id)));
    break;
  case HP_RELAY_EOF:
    break;
  case HP_RELAY_ERROR:
    FUZZ_CHECK(m.code[0] && m.message[0]);
    break;
  default:
    FUZZ_CHECK(0);
  }
  check_roundtrip(&m);
  return 0;
}
