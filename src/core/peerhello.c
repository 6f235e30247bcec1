/*
 * peerhello.c - the first lines on a direct connection (see peerhello.h).
 *
 * Line formats, exactly (no '\r', single spaces):
 *   "HOLEPUNCH/1 " <32 lowercase hex session> " " <id> "\n"
 *   "HOLEPUNCH/1 " <32 lowercase hex session> " use\n"
 * The id "use" is therefore reserved (the rendezvous refuses it in hello).
 */
#include "peerhello.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

static const char magic[] = "HOLEPUNCH/1 ";
#define MAGIC_LEN (sizeof(magic) - 1)

static int valid_session(const char *s) {
  size_t i;

  if (s == NULL || strlen(s) != HP_SESSION_HEX)
    return 0;
  for (i = 0; i < HP_SESSION_HEX; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return 1;
}

/* Constant-time: the time taken does not depend on where the bytes differ. */
static int same_secret(const char *a, const char *b, size_t n) {
  volatile unsigned char diff = 0;
  size_t i;

  for (i = 0; i < n; i++)
    diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
  return diff == 0;
}

int hp__peerhello_format(char *buf, size_t buflen, const char *session, const char *own_id) {
  int n;

  if (buf == NULL || !valid_session(session) || own_id == NULL ||
      !hp__wire_valid_name(own_id, strlen(own_id)) || strcmp(own_id, "use") == 0)
    return -EINVAL;
  n = snprintf(buf, buflen, "%s%s %s\n", magic, session, own_id);
  if (n < 0 || (size_t)n >= buflen)
    return -ENOSPC;
  return n;
}

int hp__peerhello_format_use(char *buf, size_t buflen, const char *session) {
  int n;

  if (buf == NULL || !valid_session(session))
    return -EINVAL;
  n = snprintf(buf, buflen, "%s%s use\n", magic, session);
  if (n < 0 || (size_t)n >= buflen)
    return -ENOSPC;
  return n;
}

static hp__peerhello_verdict bad(const char **why, const char *reason) {
  if (why != NULL)
    *why = reason;
  return HP_PH_BAD;
}

hp__peerhello_verdict hp__peerhello_check(const char *buf, size_t len, const char *session,
                                          const char *expected_id, size_t *consumed,
                                          const char **why) {
  size_t scan = len < HP_PEERHELLO_MAX ? len : HP_PEERHELLO_MAX;
  const char *nl, *tok;
  size_t line, toklen;

  if (why != NULL)
    *why = NULL;
  if (!valid_session(session))
    return bad(why, "no valid session to compare with");
  if (buf == NULL || len == 0)
    return HP_PH_NEED_MORE;
  /* Refuse a stranger as early as possible: the fixed prefix needs no secret. */
  if (memcmp(buf, magic, len < MAGIC_LEN ? len : MAGIC_LEN) != 0)
    return bad(why, "not a HOLEPUNCH/1 line");
  nl = memchr(buf, '\n', scan);
  if (nl == NULL)
    return len >= HP_PEERHELLO_MAX ? bad(why, "line too long") : HP_PH_NEED_MORE;
  line = (size_t)(nl - buf);
  if (line < MAGIC_LEN + HP_SESSION_HEX + 2 || buf[MAGIC_LEN + HP_SESSION_HEX] != ' ')
    return bad(why, "malformed line");
  if (!same_secret(buf + MAGIC_LEN, session, HP_SESSION_HEX))
    return bad(why, "wrong session");
  tok = buf + MAGIC_LEN + HP_SESSION_HEX + 1;
  toklen = (size_t)(nl - tok);
  if (toklen == 3 && memcmp(tok, "use", 3) == 0) {
    if (consumed != NULL)
      *consumed = line + 1;
    return HP_PH_USE;
  }
  if (!hp__wire_valid_name(tok, toklen))
    return bad(why, "malformed peer id");
  if (expected_id != NULL &&
      (strlen(expected_id) != toklen || memcmp(tok, expected_id, toklen) != 0))
    return bad(why, "wrong peer id");
  if (consumed != NULL)
    *consumed = line + 1;
  return HP_PH_OK;
}
