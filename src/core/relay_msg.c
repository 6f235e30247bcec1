/*
 * relay_msg.c - the relay WebSocket's text messages (see relay_msg.h).
 * jansson parses (duplicate keys refused); every field is checked against
 * the protocol's limits and a refusal names it, so that the rendezvous can
 * send the sentence back in an error message.
 */
#include "relay_msg.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char k_types[] = "\"join\", \"ready\", \"eof\" or \"error\"";

static int fail(hp__wire_err *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(hp__wire_err *err, const char *code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
  }
  return -1;
}

int hp__relay_valid_session(const char *s, size_t len) {
  if (!s || len != HP_SESSION_HEX)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

/* A required string field of at most cap-1 bytes. 0 or -1. */
static int get_str(const json_t *o, const char *key, char *dst, size_t cap, hp__wire_err *err) {
  const json_t *v = json_object_get(o, key);
  size_t n;

  if (!v)
    return fail(err, "bad_message", "\"%s\" is missing", key);
  if (!json_is_string(v))
    return fail(err, "bad_message", "\"%s\" must be a string", key);
  n = json_string_length(v);
  if (n >= cap || memchr(json_string_value(v), '\0', n))
    return fail(err, "bad_message", "\"%s\" is longer than %zu bytes or holds a NUL", key, cap - 1);
  memcpy(dst, json_string_value(v), n);
  dst[n] = '\0';
  return 0;
}

static int decode_join(const json_t *o, hp__relay_msg *m, hp__wire_err *err) {
  const json_t *v = json_object_get(o, "v");

  if (!v)
    return fail(err, "bad_message", "\"v\" is missing: expected the protocol version 1");
  if (!json_is_integer(v) || json_integer_value(v) != HP_PROTO_VERSION)
    return fail(err, "unsupported_version", "\"v\" must be the integer 1");
  if (get_str(o, "session", m->session, sizeof(m->session), err) < 0)
    return -1;
  if (!hp__relay_valid_session(m->session, strlen(m->session)))
    return fail(err, "bad_message", "\"session\" must be 32 lowercase hexadecimal digits");
  if (get_str(o, "id", m->id, sizeof(m->id), err) < 0)
    return -1;
  if (!hp__wire_valid_name(m->id, strlen(m->id)))
    return fail(err, "bad_message", "\"id\" must be 1 to 64 of the characters A-Z a-z 0-9 . _ -");
  return 0;
}

static int decode_ready(const json_t *o, hp__relay_msg *m, hp__wire_err *err) {
  if (get_str(o, "peer", m->id, sizeof(m->id), err) < 0)
    return -1;
  if (!hp__wire_valid_name(m->id, strlen(m->id)))
    return fail(err, "bad_message", "\"peer\" must be 1 to 64 of the characters A-Z a-z 0-9 . _ -");
  return 0;
}

static int decode_error(const json_t *o, hp__relay_msg *m, hp__wire_err *err) {
  if (get_str(o, "code", m->code, sizeof(m->code), err) < 0)
    return -1;
  if (!m->code[0])
    return fail(err, "bad_message", "\"code\" is empty");
  for (size_t i = 0; m->code[i]; i++)
    if (!((m->code[i] >= 'a' && m->code[i] <= 'z') || m->code[i] == '_'))
      return fail(err, "bad_message", "\"code\" must consist of a-z and _");
  if (get_str(o, "message", m->message, sizeof(m->message), err) < 0)
    return -1;
  return m->message[0] ? 0 : fail(err, "bad_message", "\"message\" is empty");
}

int hp__relay_msg_decode(const char *buf, size_t len, hp__relay_msg *out, hp__wire_err *err) {
  json_error_t jerr;
  json_t *root = NULL, *t;
  const char *type;
  int rc = -1;

  if (err) {
    err->code = NULL;
    err->message[0] = '\0';
  }
  if (!out || (!buf && len))
    return fail(err, "bad_message", "no message");
  memset(out, 0, sizeof(*out));
  if (len > HP_RELAY_MSG_MAX)
    return fail(err, "too_large", "the message is %zu bytes; a relay message is at most %d", len,
                HP_RELAY_MSG_MAX);
  root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!root) {
    for (char *p = jerr.text; *p; p++)
      if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
        *p = '?';
    return fail(err, "bad_message", "the message is not valid JSON: %s (line %d, column %d)",
                jerr.text, jerr.line, jerr.column);
  }
  if (!json_is_object(root)) {
    fail(err, "bad_message", "the message must be a JSON object");
    goto out;
  }
  t = json_object_get(root, "type");
  if (!t || !json_is_string(t)) {
    fail(err, "bad_message", "\"type\" is missing or not a string: expected %s", k_types);
    goto out;
  }
  type = json_string_value(t);
  if (!strcmp(type, "join")) {
    out->type = HP_RELAY_JOIN;
    rc = decode_join(root, out, err);
  } else if (!strcmp(type, "ready")) {
    out->type = HP_RELAY_READY;
    rc = decode_ready(root, out, err);
  } else if (!strcmp(type, "eof")) {
    out->type = HP_RELAY_EOF;
    rc = 0;
  } else if (!strcmp(type, "error")) {
    out->type = HP_RELAY_ERROR;
    rc = decode_error(root, out, err);
  } else {
    fail(err, "bad_message", "this \"type\" is not a relay message: expected %s", k_types);
  }
out:
  json_decref(root);
  return rc;
}

int hp__relay_msg_encode(const hp__relay_msg *m, char *buf, size_t cap) {
  json_t *o = NULL;
  size_t n;

  if (!m || !buf || !cap)
    return -EINVAL;
  switch (m->type) {
  case HP_RELAY_JOIN:
    if (!hp__relay_valid_session(m->session, strnlen(m->session, sizeof(m->session))) ||
        !hp__wire_valid_name(m->id, strnlen(m->id, sizeof(m->id))))
      return -EINVAL;
    o = json_pack("{s:s,s:i,s:s,s:s}", "type", "join", "v", HP_PROTO_VERSION, "session", m->session,
                  "id", m->id);
    break;
  case HP_RELAY_READY:
    if (!hp__wire_valid_name(m->id, strnlen(m->id, sizeof(m->id))))
      return -EINVAL;
    o = json_pack("{s:s,s:s}", "type", "ready", "peer", m->id);
    break;
  case HP_RELAY_EOF:
    o = json_pack("{s:s}", "type", "eof");
    break;
  case HP_RELAY_ERROR:
    if (!m->code[0] || !m->message[0] || strnlen(m->code, sizeof(m->code)) >= sizeof(m->code) ||
        strnlen(m->message, sizeof(m->message)) >= sizeof(m->message))
      return -EINVAL;
    o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", m->code, "message", m->message);
    break;
  default:
    return -EINVAL;
  }
  if (!o)
    return -EINVAL; /* e.g. a message that is not UTF-8 */
  n = json_dumpb(o, buf, cap, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!n || n >= cap)
    return -ENOSPC;
  buf[n] = '\0';
  return (int)n;
}
