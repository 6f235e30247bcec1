/*
 * fuzz_redisurl.c - hp__redis_url_parse (REDIS_URL, src/core/redisurl.h).
 *
 * The input is the URL text (it ends at the first NUL, as a C string does).
 * Contract checked:
 * - the result is 0 or -EINVAL; a refusal comes with a non-empty sentence
 *   that fits in errlen, nothing is written past errlen (a small errlen and
 *   a canary too), and *out is untouched;
 * - on success: every string ends inside its buffer; a unix URL has an
 *   absolute path and no host, a TCP URL a host and a port in 1..65535; db
 *   in 0..HP_REDISURL_DB_MAX; a user only with a password;
 * - the URL written back without redaction parses to the same fields (or,
 *   longer than the input limit after %-encoding, is refused), and
 *   the redacted text does not depend on the password.
 */
#include <errno.h>

#include "fuzz.h"
#include "redisurl.h"

#define CANARY 0x5a

static void check_parsed(const hp__redis_url *u) {
  FUZZ_CHECK(u->is_unix == 0 || u->is_unix == 1);
  FUZZ_CHECK(fuzz_terminated(u->host, sizeof(u->host)));
  FUZZ_CHECK(fuzz_terminated(u->path, sizeof(u->path)));
  FUZZ_CHECK(fuzz_terminated(u->user, sizeof(u->user)));
  FUZZ_CHECK(fuzz_terminated(u->password, sizeof(u->password)));
  if (u->is_unix) {
    FUZZ_CHECK(u->path[0] == '/' && u->path[1] != '\0' && u->host[0] == '\0');
  } else {
    FUZZ_CHECK(u->host[0] != '\0' && u->path[0] == '\0');
    FUZZ_CHECK(u->port >= 1 && u->port <= 65535);
  }
  FUZZ_CHECK(u->db >= 0 && u->db <= HP_REDISURL_DB_MAX);
  FUZZ_CHECK(u->user[0] == '\0' || u->password[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  char err[300], err_small[300], text[4096], text2[4096];
  size_t small = size % 48, i;
  hp__redis_url u, u_small, u2, untouched;
  int r, r_small, n;

  memset(&u, 0x77, sizeof(u));
  memset(&untouched, 0x77, sizeof(untouched));
  memset(err, CANARY, sizeof(err));
  r = hp__redis_url_parse(s, &u, err, 256);
  FUZZ_CHECK(r == 0 || r == -EINVAL);
  FUZZ_CHECK(fuzz_terminated(err, 256));
  for (i = 256; i < sizeof(err); i++)
    FUZZ_CHECK((unsigned char)err[i] == CANARY);
  if (r < 0) {
    FUZZ_CHECK(err[0] != '\0');
    FUZZ_CHECK(memcmp(&u, &untouched, sizeof(u)) == 0);
  }

  memset(&u_small, 0x77, sizeof(u_small));
  memset(err_small, CANARY, sizeof(err_small));
  r_small = hp__redis_url_parse(s, &u_small, err_small, small);
  FUZZ_CHECK(r_small == r);
  if (small > 0) {
    FUZZ_CHECK(fuzz_terminated(err_small, small));
    FUZZ_CHECK(strncmp(err_small, err, small - 1) == 0);
  }
  for (i = small; i < sizeof(err_small); i++)
    FUZZ_CHECK((unsigned char)err_small[i] == CANARY);

  if (r == 0) {
    FUZZ_CHECK(memcmp(&u, &u_small, sizeof(u)) == 0);
    check_parsed(&u);
    n = hp__redis_url_format(&u, 0, text, sizeof(text));
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(text) && strlen(text) == (size_t)n);
    memset(&u2, 0, sizeof(u2));
    /* %-encoding can make the text longer than the input (a raw '@' or ':'
     * of a password is written %40, %3A): past the input limit a refusal
     * is the right answer. */
    if (n > HP_REDISURL_MAX) {
      FUZZ_CHECK(hp__redis_url_parse(text, &u2, err, 256) == -EINVAL);
    } else if (hp__redis_url_parse(text, &u2, err, 256) != 0) {
      fprintf(stderr, "written-back URL refused: %s\n", err);
      FUZZ_CHECK(!"the URL written back from a parsed one parses");
    } else {
      FUZZ_CHECK(memcmp(&u, &u2, sizeof(u)) == 0);
    }
    /* The redacted text does not depend on the password. */
    n = hp__redis_url_format(&u, 1, text, sizeof(text));
    FUZZ_CHECK(n > 0);
    if (u.password[0]) {
      u2 = u;
      snprintf(u2.password, sizeof(u2.password), "%s", "other");
      FUZZ_CHECK(hp__redis_url_format(&u2, 1, text2, sizeof(text2)) == n);
      FUZZ_CHECK(strcmp(text, text2) == 0);
    }
  }
  free(s);
  return 0;
}
