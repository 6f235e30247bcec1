/*
 * wire.c - signaling protocol v1 (see wire.h and docs/PROTOCOL.md).
 *
 * Decoding checks the size first, then lets jansson parse (duplicate keys
 * refused), then validates every field the message type defines. Each refusal
 * carries a protocol error code and a sentence naming the field, so the
 * rendezvous can send it back as is. Unknown extra fields are ignored, so a
 * newer peer may add fields without breaking an older one.
 */
#include "wire.h"

#include "url.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static const char k_types[] = "\"hello\", \"welcome\", \"peer\", \"result\" or \"error\"";
static const char k_addr_allowed[] = "expected \"ip:port\" or \"[v6]:port\"";
static const char k_name_allowed[] = "expected 1 to 64 of the characters A-Z a-z 0-9 . _ -";

static int fail(hp__wire_err *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(hp__wire_err *err, const char *code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;

    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
  }
  return -1;
}

/*
 * A value from the input, quoted for an error message: printable ASCII as is,
 * everything else as '?', at most 40 characters (then "...").
 */
static const char *quote(const char *s, size_t len, char *buf, size_t buflen) {
  size_t i, o = 0, max = 40;

  if (buflen < max + 6)
    max = buflen > 6 ? buflen - 6 : 0;
  buf[o++] = '"';
  for (i = 0; i < len && i < max; i++)
    buf[o++] = (s[i] >= ' ' && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
  if (i < len) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

static const char *type_name(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
    return "an integer";
  case JSON_REAL:
    return "a number with a fraction";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
  default:
    return "null";
  }
}

int hp__wire_valid_name(const char *s, size_t len) {
  size_t i;

  if (s == NULL || len < 1 || len > HP_ID_MAX)
    return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

int hp__random_hex(char *buf, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  unsigned char chunk[32];
  size_t done = 0;

  if (buf == NULL)
    return -EINVAL;
  while (done < nbytes) {
    size_t want = nbytes - done;
    size_t got = 0, i;

    if (want > sizeof(chunk))
      want = sizeof(chunk);
    while (got < want) {
      ssize_t r = getrandom(chunk + got, want - got, 0);
      if (r < 0) {
        if (errno == EINTR)
          continue;
        return -errno;
      }
      got += (size_t)r;
    }
    for (i = 0; i < want; i++) {
      buf[2 * (done + i)] = hex[chunk[i] >> 4];
      buf[2 * (done + i) + 1] = hex[chunk[i] & 15];
    }
    done += want;
  }
  buf[2 * nbytes] = '\0';
  return 0;
}

/* ---- decoding helpers; path is the name of the containing field ("" at top) ---- */

/* "peer.candidates[2]" + "addr" -> "peer.candidates[2].addr" */
static const char *field_name(const char *path, const char *key, char *buf, size_t buflen) {
  if (path[0] == '\0')
    snprintf(buf, buflen, "%s", key);
  else
    snprintf(buf, buflen, "%s.%s", path, key);
  return buf;
}

/*
 * Fetch a string field. Absent (or null) and optional: returns 0 with dst
 * untouched. Length 0 or >= dstsize is an error.
 */
static int get_string(const json_t *obj, const char *path, const char *key, int required, char *dst,
                      size_t dstsize, hp__wire_err *err, int *present) {
  json_t *v = json_object_get(obj, key);
  char name[96];
  size_t len;

  if (present != NULL)
    *present = 0;
  if (v == NULL || json_is_null(v)) {
    if (!required)
      return 0;
    return fail(err, "bad_message", "\"%s\" is missing", field_name(path, key, name, sizeof(name)));
  }
  if (!json_is_string(v))
    return fail(err, "bad_message", "\"%s\" must be a string, not %s",
                field_name(path, key, name, sizeof(name)), type_name(v));
  len = json_string_length(v);
  if (len == 0)
    return fail(err, "bad_message", "\"%s\" is empty", field_name(path, key, name, sizeof(name)));
  if (len >= dstsize)
    return fail(err, "bad_message", "\"%s\" is %zu bytes long; at most %zu are allowed",
                field_name(path, key, name, sizeof(name)), len, dstsize - 1);
  if (memchr(json_string_value(v), '\0', len) != NULL)
    return fail(err, "bad_message", "\"%s\" contains a NUL character",
                field_name(path, key, name, sizeof(name)));
  memcpy(dst, json_string_value(v), len);
  dst[len] = '\0';
  if (present != NULL)
    *present = 1;
  return 0;
}

/* An id or room: a string of 1..64 of [A-Za-z0-9._-]. */
static int get_name(const json_t *obj, const char *path, const char *key, int required, char *dst,
                    hp__wire_err *err, int *present) {
  json_t *v = json_object_get(obj, key);
  int have = 0;

  if (v != NULL && json_is_string(v) &&
      !hp__wire_valid_name(json_string_value(v), json_string_length(v))) {
    char name[96], q[64];
    return fail(err, "bad_message", "%s %s is not a valid name: %s",
                field_name(path, key, name, sizeof(name)),
                quote(json_string_value(v), json_string_length(v), q, sizeof(q)), k_name_allowed);
  }
  if (get_string(obj, path, key, required, dst, HP_ID_MAX + 1, err, &have) < 0)
    return -1;
  if (present != NULL)
    *present = have;
  return 0;
}

static int get_addr(const json_t *obj, const char *path, const char *key, int required, char *dst,
                    hp__wire_err *err) {
  json_t *v = json_object_get(obj, key);
  struct sockaddr_storage ss;

  if (v != NULL && json_is_string(v) &&
      hp__addr_parse(json_string_value(v), json_string_length(v), &ss, NULL) < 0) {
    char name[96], q[64];
    return fail(err, "bad_message", "%s %s is not an address: %s",
                field_name(path, key, name, sizeof(name)),
                quote(json_string_value(v), json_string_length(v), q, sizeof(q)), k_addr_allowed);
  }
  return get_string(obj, path, key, required, dst, HP_ADDR_STRLEN, err, NULL);
}

/* A non-negative integer. Absent and optional: returns 0 with *dst untouched. */
static int get_nonneg(const json_t *obj, const char *path, const char *key, int required, long max,
                      long *dst, hp__wire_err *err) {
  json_t *v = json_object_get(obj, key);
  char name[96];
  json_int_t i;

  if (v == NULL || json_is_null(v)) {
    if (!required)
      return 0;
    return fail(err, "bad_message", "\"%s\" is missing", field_name(path, key, name, sizeof(name)));
  }
  if (!json_is_integer(v))
    return fail(err, "bad_message", "\"%s\" must be a non-negative integer, not %s",
                field_name(path, key, name, sizeof(name)), type_name(v));
  i = json_integer_value(v);
  if (i < 0 || i > max)
    return fail(err, "bad_message",
                "\"%s\" is %" JSON_INTEGER_FORMAT ": expected an integer from 0 to %ld",
                field_name(path, key, name, sizeof(name)), i, max);
  *dst = (long)i;
  return 0;
}

static int get_cands(const json_t *obj, const char *path, hp__cands *out, hp__wire_err *err) {
  json_t *arr = json_object_get(obj, "candidates");
  char name[96], elem[128], q[64];
  size_t i;

  out->n = 0;
  if (arr == NULL || json_is_null(arr))
    return 0;
  field_name(path, "candidates", name, sizeof(name));
  if (!json_is_array(arr))
    return fail(err, "bad_message", "\"%s\" must be an array, not %s", name, type_name(arr));
  if (json_array_size(arr) > HP_CANDS_MAX)
    return fail(err, "bad_message", "\"%s\" has %zu entries; at most %d are allowed", name,
                json_array_size(arr), HP_CANDS_MAX);
  for (i = 0; i < json_array_size(arr); i++) {
    json_t *c = json_array_get(arr, i);
    hp__cand *dst = &out->c[i];
    char kind[16];

    snprintf(elem, sizeof(elem), "%s[%zu]", name, i);
    if (!json_is_object(c))
      return fail(err, "bad_message", "\"%s\" must be an object, not %s", elem, type_name(c));
    {
      json_t *k = json_object_get(c, "kind");
      if (k != NULL && json_is_string(k) && strcmp(json_string_value(k), "host") != 0 &&
          strcmp(json_string_value(k), "srflx") != 0)
        return fail(err, "bad_message", "%s.kind %s is not known: expected \"host\" or \"srflx\"",
                    elem, quote(json_string_value(k), json_string_length(k), q, sizeof(q)));
    }
    if (get_string(c, elem, "kind", 1, kind, sizeof(kind), err, NULL) < 0)
      return -1;
    dst->kind = strcmp(kind, "host") == 0 ? HP_CAND_HOST : HP_CAND_SRFLX;
    if (get_addr(c, elem, "addr", 1, dst->addr, err) < 0)
      return -1;
    {
      /* Never a peer: refused here, so the rendezvous does not relay them
       * and a worker does not dial them. */
      struct sockaddr_storage ss;
      hp__addr_class cl;
      if (hp__addr_parse(dst->addr, strlen(dst->addr), &ss, NULL) == 0 &&
          ((cl = hp__addr_classify((struct sockaddr *)&ss)) == HP_ADDR_UNSPECIFIED ||
           cl == HP_ADDR_BROADCAST || cl == HP_ADDR_MULTICAST))
        return fail(err, "bad_message", "%s.addr %s is %s %s address: not a peer address", elem,
                    quote(dst->addr, strlen(dst->addr), q, sizeof(q)),
                    cl == HP_ADDR_UNSPECIFIED ? "an" : "a", hp__addr_class_name(cl));
    }
    out->n = i + 1;
  }
  return 0;
}

/* An optional relay URL: a rendezvous base URL (url.h) of at most
 * HP_RELAY_URL_MAX - 1 bytes. */
static int get_relay_url(const json_t *obj, const char *path, char *dst, hp__wire_err *err) {
  char why[160];
  hp__url u;

  if (get_string(obj, path, "relay_url", 0, dst, HP_RELAY_URL_MAX, err, NULL) < 0)
    return -1;
  if (dst[0] && hp__url_parse(dst, &u, why, sizeof(why)) < 0) {
    char name[96];
    dst[0] = '\0';
    return fail(err, "bad_message", "\"%s\" is not a URL: %s",
                field_name(path, "relay_url", name, sizeof(name)), why);
  }
  return 0;
}

static int decode_hello(const json_t *o, hp__msg_hello *h, hp__wire_err *err) {
  json_t *v = json_object_get(o, "v");
  int have_room = 0;

  if (v == NULL)
    return fail(err, "bad_message", "\"v\" is missing: expected the protocol version %d",
                HP_PROTO_VERSION);
  if (!json_is_integer(v))
    return fail(err, "unsupported_version",
                "\"v\" must be the integer %d (the protocol version), not %s", HP_PROTO_VERSION,
                type_name(v));
  if (json_integer_value(v) != HP_PROTO_VERSION)
    return fail(err, "unsupported_version",
                "protocol version %" JSON_INTEGER_FORMAT " is not supported: this side speaks "
                "version %d",
                json_integer_value(v), HP_PROTO_VERSION);
  h->v = HP_PROTO_VERSION;
  if (get_name(o, "", "id", 0, h->id, err, NULL) < 0)
    return -1;
  /* "use" is the nomination line of the direct connection (docs/PROTOCOL.md). */
  if (strcmp(h->id, "use") == 0)
    return fail(err, "bad_message", "id \"use\" is reserved: choose another id");
  if (get_name(o, "", "room", 0, h->room, err, &have_room) < 0)
    return -1;
  if (!have_room)
    strcpy(h->room, "default");
  return get_cands(o, "", &h->cands, err);
}

static int decode_welcome(const json_t *o, hp__msg_welcome *w, hp__wire_err *err) {
  if (get_name(o, "", "id", 1, w->id, err, NULL) < 0)
    return -1;
  /* The worker would put it in its hello line, where it means nomination. */
  if (strcmp(w->id, "use") == 0)
    return fail(err, "bad_message", "id \"use\" is reserved: a worker cannot take it");
  if (get_name(o, "", "room", 1, w->room, err, NULL) < 0 ||
      get_addr(o, "", "observed", 0, w->observed, err) < 0)
    return -1;
  return 0;
}

static int decode_peer(const json_t *o, hp__msg_peer *p, hp__wire_err *err) {
  json_t *peer;
  char role[4], q[64];

  if (get_name(o, "", "room", 1, p->room, err, NULL) < 0)
    return -1;
  {
    json_t *r = json_object_get(o, "role");
    if (r != NULL && json_is_string(r) && strcmp(json_string_value(r), "a") != 0 &&
        strcmp(json_string_value(r), "b") != 0)
      return fail(err, "bad_message", "role %s is not known: expected \"a\" or \"b\"",
                  quote(json_string_value(r), json_string_length(r), q, sizeof(q)));
  }
  if (get_string(o, "", "role", 1, role, sizeof(role), err, NULL) < 0)
    return -1;
  p->role = role[0];
  {
    json_t *s = json_object_get(o, "session");
    if (s != NULL && json_is_string(s)) {
      const char *t = json_string_value(s);
      int ok = json_string_length(s) == HP_SESSION_HEX;
      size_t i;

      for (i = 0; ok && i < HP_SESSION_HEX; i++)
        ok = (t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f');
      if (!ok)
        return fail(err, "bad_message", "session %s is not valid: expected %d lowercase hex digits",
                    quote(t, json_string_length(s), q, sizeof(q)), HP_SESSION_HEX);
    }
  }
  if (get_string(o, "", "session", 1, p->session, sizeof(p->session), err, NULL) < 0)
    return -1;
  peer = json_object_get(o, "peer");
  if (peer == NULL)
    return fail(err, "bad_message", "\"peer\" is missing");
  if (!json_is_object(peer))
    return fail(err, "bad_message", "\"peer\" must be an object, not %s", type_name(peer));
  if (get_name(peer, "peer", "id", 1, p->peer_id, err, NULL) < 0)
    return -1;
  if (strcmp(p->peer_id, "use") == 0)
    return fail(err, "bad_message", "peer.id \"use\" is reserved: a worker cannot take it");
  if (get_addr(peer, "peer", "observed", 0, p->peer_observed, err) < 0 ||
      get_cands(peer, "peer", &p->peer_cands, err) < 0 ||
      get_nonneg(o, "", "start_in_ms", 1, HP_START_IN_MS_MAX, &p->start_in_ms, err) < 0 ||
      get_relay_url(o, "", p->relay_url, err) < 0)
    return -1;
  {
    json_t *v = json_object_get(o, "start_at_us");
    if (v != NULL && !json_is_null(v)) {
      if (!json_is_integer(v) || json_integer_value(v) < 1 ||
          (unsigned long long)json_integer_value(v) > HP_START_AT_US_MAX)
        return fail(err, "bad_message", "\"start_at_us\" must be an integer from 1 to 2^53-1");
      p->start_at_us = (unsigned long long)json_integer_value(v);
    }
  }
  return 0;
}

static int decode_result(const json_t *o, hp__msg_result *r, hp__wire_err *err) {
  json_t *s = json_object_get(o, "status");
  char status[16];

  if (s != NULL && json_is_string(s) && strcmp(json_string_value(s), "direct") != 0 &&
      strcmp(json_string_value(s), "failed") != 0 && strcmp(json_string_value(s), "relayed") != 0) {
    char q[64];
    return fail(err, "bad_message",
                "status %s is not known: expected \"direct\", \"relayed\" or \"failed\"",
                quote(json_string_value(s), json_string_length(s), q, sizeof(q)));
  }
  if (get_string(o, "", "status", 1, status, sizeof(status), err, NULL) < 0)
    return -1;
  r->status = strcmp(status, "direct") == 0    ? HP_RESULT_DIRECT
              : strcmp(status, "relayed") == 0 ? HP_RESULT_RELAYED
                                               : HP_RESULT_FAILED;
  r->elapsed_ms = -1;
  if (get_addr(o, "", "addr", 0, r->addr, err) < 0 ||
      get_nonneg(o, "", "elapsed_ms", 0, 86400000L, &r->elapsed_ms, err) < 0)
    return -1;
  /* An empty reason means no reason; it is not worth refusing the result for. */
  s = json_object_get(o, "reason");
  if (json_is_string(s) && json_string_length(s) == 0)
    return 0;
  return get_string(o, "", "reason", 0, r->reason, sizeof(r->reason), err, NULL);
}

static int decode_error(const json_t *o, hp__msg_error *e, hp__wire_err *err) {
  size_t i;

  if (get_string(o, "", "code", 1, e->code, sizeof(e->code), err, NULL) < 0)
    return -1;
  for (i = 0; e->code[i] != '\0'; i++)
    if (!((e->code[i] >= 'a' && e->code[i] <= 'z') || e->code[i] == '_'))
      return fail(err, "bad_message", "\"code\" must consist of a-z and _");
  return get_string(o, "", "message", 1, e->message, sizeof(e->message), err, NULL);
}

int hp__msg_decode(const char *buf, size_t len, hp__msg *out, hp__wire_err *err) {
  json_error_t jerr;
  json_t *root = NULL, *t;
  const char *type;
  char q[64], *p;
  int result = -1;

  if (err != NULL) {
    err->code = NULL;
    err->message[0] = '\0';
  }
  if (out == NULL || (buf == NULL && len > 0))
    return fail(err, "bad_message", "no message");
  memset(out, 0, sizeof(*out));
  if (len > HP_MSG_MAX)
    return fail(err, "too_large", "the message is %zu bytes; the limit is %d bytes", len,
                HP_MSG_MAX);
  root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (root == NULL) {
    /* jansson quotes the input near the error, possibly a cut UTF-8
     * sequence; the message goes back in an "error", which must be UTF-8. */
    for (p = jerr.text; *p != '\0'; p++)
      if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
        *p = '?';
    fail(err, "bad_message", "the message is not valid JSON: %s (line %d, column %d)", jerr.text,
         jerr.line, jerr.column);
    goto out;
  }
  if (!json_is_object(root)) {
    fail(err, "bad_message", "the message must be a JSON object, not %s", type_name(root));
    goto out;
  }
  t = json_object_get(root, "type");
  if (t == NULL) {
    fail(err, "bad_message", "the message has no \"type\": expected %s", k_types);
    goto out;
  }
  if (!json_is_string(t)) {
    fail(err, "bad_message", "\"type\" must be a string, not %s", type_name(t));
    goto out;
  }
  type = json_string_value(t);
  if (strcmp(type, "hello") == 0) {
    out->type = HP_MSG_HELLO;
    result = decode_hello(root, &out->u.hello, err);
  } else if (strcmp(type, "welcome") == 0) {
    out->type = HP_MSG_WELCOME;
    result = decode_welcome(root, &out->u.welcome, err);
  } else if (strcmp(type, "peer") == 0) {
    out->type = HP_MSG_PEER;
    result = decode_peer(root, &out->u.peer, err);
  } else if (strcmp(type, "result") == 0) {
    out->type = HP_MSG_RESULT;
    result = decode_result(root, &out->u.result, err);
  } else if (strcmp(type, "error") == 0) {
    out->type = HP_MSG_ERROR;
    result = decode_error(root, &out->u.error, err);
  } else {
    fail(err, "bad_message", "type %s is not known: expected %s",
         quote(type, json_string_length(t), q, sizeof(q)), k_types);
  }
out:
  json_decref(root);
  return result;
}

/* ---- encoding ---- */

static const char *kind_str(hp__cand_kind k) {
  return k == HP_CAND_SRFLX ? "srflx" : "host";
}

static json_t *cands_json(const hp__cands *c) {
  json_t *arr = json_array();
  size_t i;

  if (arr == NULL)
    return NULL;
  for (i = 0; i < c->n && i < HP_CANDS_MAX; i++) {
    json_t *o = json_pack("{s:s, s:s}", "kind", kind_str(c->c[i].kind), "addr", c->c[i].addr);
    if (json_array_append_new(arr, o) < 0) {
      json_decref(arr);
      return NULL;
    }
  }
  return arr;
}

/* Set key to a string only when it is not "". Returns 0 or -1. */
static int set_opt_str(json_t *o, const char *key, const char *s) {
  if (s[0] == '\0')
    return 0;
  return json_object_set_new(o, key, json_string(s));
}

static json_t *msg_json(const hp__msg *m) {
  json_t *o = json_object();
  int bad = (o == NULL);

  if (bad)
    return NULL;
  switch (m->type) {
  case HP_MSG_HELLO: {
    const hp__msg_hello *h = &m->u.hello;
    bad |= json_object_set_new(o, "type", json_string("hello"));
    bad |= json_object_set_new(o, "v", json_integer(HP_PROTO_VERSION));
    bad |= set_opt_str(o, "id", h->id);
    bad |= json_object_set_new(o, "room", json_string(h->room[0] ? h->room : "default"));
    bad |= json_object_set_new(o, "candidates", cands_json(&h->cands));
    break;
  }
  case HP_MSG_WELCOME: {
    const hp__msg_welcome *w = &m->u.welcome;
    bad |= json_object_set_new(o, "type", json_string("welcome"));
    bad |= json_object_set_new(o, "id", json_string(w->id));
    bad |= json_object_set_new(o, "room", json_string(w->room));
    bad |= set_opt_str(o, "observed", w->observed);
    break;
  }
  case HP_MSG_PEER: {
    const hp__msg_peer *p = &m->u.peer;
    char role[2] = {p->role, '\0'};
    json_t *peer = json_object();
    bad |= json_object_set_new(o, "type", json_string("peer"));
    bad |= json_object_set_new(o, "room", json_string(p->room));
    bad |= json_object_set_new(o, "role", json_string(role));
    bad |= json_object_set_new(o, "session", json_string(p->session));
    bad |= (peer == NULL);
    if (peer != NULL) {
      bad |= json_object_set_new(peer, "id", json_string(p->peer_id));
      bad |= set_opt_str(peer, "observed", p->peer_observed);
      bad |= json_object_set_new(peer, "candidates", cands_json(&p->peer_cands));
      bad |= json_object_set_new(o, "peer", peer);
    }
    bad |= json_object_set_new(o, "start_in_ms", json_integer(p->start_in_ms));
    bad |= set_opt_str(o, "relay_url", p->relay_url);
    if (p->start_at_us)
      bad |= json_object_set_new(o, "start_at_us", json_integer((json_int_t)p->start_at_us));
    break;
  }
  case HP_MSG_RESULT: {
    const hp__msg_result *r = &m->u.result;
    bad |= json_object_set_new(o, "type", json_string("result"));
    bad |= json_object_set_new(o, "status",
                               json_string(r->status == HP_RESULT_DIRECT    ? "direct"
                                           : r->status == HP_RESULT_RELAYED ? "relayed"
                                                                            : "failed"));
    bad |= set_opt_str(o, "addr", r->addr);
    if (r->elapsed_ms >= 0)
      bad |= json_object_set_new(o, "elapsed_ms", json_integer(r->elapsed_ms));
    bad |= set_opt_str(o, "reason", r->reason);
    break;
  }
  case HP_MSG_ERROR: {
    const hp__msg_error *e = &m->u.error;
    bad |= json_object_set_new(o, "type", json_string("error"));
    bad |= json_object_set_new(o, "code", json_string(e->code));
    bad |= json_object_set_new(o, "message", json_string(e->message));
    break;
  }
  default:
    bad = 1;
  }
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static char *dump(json_t *j, size_t *len) {
  char *s;

  if (j == NULL)
    return NULL;
  s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  json_decref(j);
  if (s != NULL && len != NULL)
    *len = strlen(s);
  return s;
}

char *hp__msg_encode(const hp__msg *m, size_t *len) {
  if (m == NULL)
    return NULL;
  return dump(msg_json(m), len);
}

char *hp__cands_encode(const hp__cands *c, size_t *len) {
  if (c == NULL)
    return NULL;
  return dump(cands_json(c), len);
}

/* ---- the room store's payload ---- */

char *hp__peer_payload_encode(const hp__peer_payload *p, size_t *len) {
  json_t *o = json_object();
  int bad = (o == NULL);

  if (bad)
    return NULL;
  bad |= set_opt_str(o, "observed", p->observed);
  if (p->cands.n)
    bad |= json_object_set_new(o, "candidates", cands_json(&p->cands));
  bad |= set_opt_str(o, "relay_url", p->relay_url);
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return dump(o, len);
}

int hp__peer_payload_decode(const char *buf, size_t len, hp__peer_payload *out, hp__wire_err *err) {
  json_error_t jerr;
  json_t *o;
  int rc = -1;

  memset(out, 0, sizeof(*out));
  if (err != NULL) {
    err->code = NULL;
    err->message[0] = '\0';
  }
  if (buf == NULL && len > 0)
    return fail(err, "bad_message", "no payload");
  if (len > HP_PEER_PAYLOAD_MAX)
    return fail(err, "too_large", "the payload is %zu bytes long; at most %d are allowed", len,
                HP_PEER_PAYLOAD_MAX);
  o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
  if (o == NULL)
    return fail(err, "bad_message", "the payload is not JSON: %s", jerr.text);
  if (!json_is_object(o)) {
    fail(err, "bad_message", "the payload must be an object, not %s", type_name(o));
    goto out;
  }
  if (get_addr(o, "", "observed", 0, out->observed, err) < 0 ||
      get_cands(o, "", &out->cands, err) < 0 || get_relay_url(o, "", out->relay_url, err) < 0)
    goto out;
  rc = 0;
out:
  json_decref(o);
  if (rc < 0)
    memset(out, 0, sizeof(*out));
  return rc;
}
