/*
 * fuzz_peerhello.c - hp__peerhello_check (first lines on a direct
 * connection, src/lib/peerhello.h).
 *
 * Input: one mode byte, then the bytes received so far on the connection.
 * The mode picks what the caller compares with: the expected peer id (none,
 * "w-77c1", or the reserved "use") and whether the caller's own session is
 * valid. Contract checked:
 * - the verdict is one of the four; BAD comes with a reason;
 * - NEED_MORE only while there is no '\n' and fewer than HP_PEERHELLO_MAX bytes;
 * - OK/USE: *consumed is the length of the first line, '\n' included, within
 *   the buffer and the line limit, and the line is byte for byte what
 *   hp__peerhello_format (OK, with the id it carries) or
 *   hp__peerhello_format_use (USE) produce for our session;
 * - OK with an expected id means that id; an invalid own session is BAD;
 * - bytes arriving one at a time do not change the outcome: every prefix of
 *   the input gives NEED_MORE or the same verdict and length as the whole.
 */
#include "fuzz.h"
#include "peerhello.h"
#include "wire.h"

static const char good_session[] = "5f0c9a2e4b7d41c8a0e3f6b19d2c7e44";
/* Upper-case hex is not a session (the wire carries lower case only). */
static const char bad_session[] = "5F0C9A2E4B7D41C8A0E3F6B19D2C7E44";

static hp__peerhello_verdict check(const char *buf, size_t len, const char *session,
                                   const char *expected, size_t *consumed) {
  /* An exact-size copy, so that reading past len is an ASan report. */
  char *copy = malloc(len ? len : 1);
  const char *why = (const char *)1;
  hp__peerhello_verdict v;

  FUZZ_CHECK(copy != NULL);
  if (len > 0)
    memcpy(copy, buf, len);
  *consumed = (size_t)-1;
  v = hp__peerhello_check(len ? copy : NULL, len, session, expected, consumed, &why);
  free(copy);
  FUZZ_CHECK(v == HP_PH_NEED_MORE || v == HP_PH_OK || v == HP_PH_USE || v == HP_PH_BAD);
  if (v == HP_PH_BAD)
    FUZZ_CHECK(why != NULL && why != (const char *)1 && why[0] != '\0');
  else
    FUZZ_CHECK(why == NULL);
  if (v != HP_PH_OK && v != HP_PH_USE)
    FUZZ_CHECK(*consumed == (size_t)-1); /* only set for OK and USE */
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const expected_ids[] = {NULL, "w-77c1", "use", NULL};
  const char *buf = (const char *)data + 1, *expected, *session;
  size_t len, consumed, k;
  hp__peerhello_verdict v;

  if (size < 1)
    return 0;
  expected = expected_ids[data[0] & 3];
  session = (data[0] & 4) ? bad_session : good_session;
  len = size - 1;

  v = check(buf, len, session, expected, &consumed);
  if (session == bad_session)
    FUZZ_CHECK(v == HP_PH_BAD);
  if (v == HP_PH_NEED_MORE)
    FUZZ_CHECK(len < HP_PEERHELLO_MAX && memchr(buf, '\n', len) == NULL);
  if (v == HP_PH_OK || v == HP_PH_USE) {
    char line[HP_PEERHELLO_MAX + 1];
    size_t idstart = strlen("HOLEPUNCH/1 ") + HP_SESSION_HEX + 1;
    int n;

    FUZZ_CHECK(consumed >= 1 && consumed <= len && consumed <= HP_PEERHELLO_MAX);
    FUZZ_CHECK(buf[consumed - 1] == '\n' && memchr(buf, '\n', consumed - 1) == NULL);
    FUZZ_CHECK(consumed > idstart + 1);
    if (v == HP_PH_USE) {
      n = hp__peerhello_format_use(line, sizeof(line), session);
    } else {
      char id[HP_PEERHELLO_MAX];

      memcpy(id, buf + idstart, consumed - idstart - 1);
      id[consumed - idstart - 1] = '\0';
      FUZZ_CHECK(strcmp(id, "use") != 0);
      if (expected != NULL)
        FUZZ_CHECK(strcmp(id, expected) == 0);
      n = hp__peerhello_format(line, sizeof(line), session, id);
    }
    FUZZ_CHECK(n > 0 && (size_t)n == consumed && memcmp(line, buf, consumed) == 0);
  }

  /* The same bytes arriving in pieces. */
  for (k = 0; k < len; k++) {
    size_t c2;
    hp__peerhello_verdict v2 = check(buf, k, session, expected, &c2);

    if (v2 == HP_PH_NEED_MORE)
      continue;
    FUZZ_CHECK(v2 == v);
    if (v == HP_PH_OK || v == HP_PH_USE)
      FUZZ_CHECK(c2 == consumed);
  }
  return 0;
}
