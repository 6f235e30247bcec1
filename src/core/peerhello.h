/*
 * peerhello.h - the first lines on a direct connection (docs/PROTOCOL.md):
 *   "HOLEPUNCH/1 <session> <own id>\n" from each side, then from role "a"
 *   "HOLEPUNCH/1 <session> use\n" on the one connection it nominates.
 * Bounded line parser; no I/O.
 */
#ifndef HP_PEERHELLO_H
#define HP_PEERHELLO_H

#include <stddef.h>

#define HP_PEERHELLO_MAX 128 /* longest acceptable line, "\n" included */

/* Format our hello into buf. Returns the length, -ENOSPC, or -EINVAL for an
 * invalid session (not 32 lowercase hex) or id (not a name, or "use"). */
int hp__peerhello_format(char *buf, size_t buflen, const char *session, const char *own_id);

/* Format the nomination line. Returns the length, -ENOSPC or -EINVAL. */
int hp__peerhello_format_use(char *buf, size_t buflen, const char *session);

typedef enum hp__peerhello_verdict {
  HP_PH_NEED_MORE = 0, /* no '\n' yet and fewer than HP_PEERHELLO_MAX bytes */
  HP_PH_OK = 1,        /* line is a hello carrying session and expected_id */
  HP_PH_USE = 2,       /* line is the nomination carrying session */
  HP_PH_BAD = -1       /* anything else: close this connection */
} hp__peerhello_verdict;

/*
 * Look at the bytes received so far on a connection. *consumed gets the line
 * length (with '\n') when the verdict is OK or USE. expected_id may be NULL
 * to accept any well-formed id. why (optional) gets a static reason for BAD.
 * A "use" line is reported as USE whatever stage the caller is in: before the
 * peer's hello has been accepted, the caller must treat USE as BAD. The id
 * "use" is reserved for this reason (hp__peerhello_format refuses it with
 * -EINVAL, and so do invalid sessions or ids).
 */
hp__peerhello_verdict hp__peerhello_check(const char *buf, size_t len, const char *session,
                                          const char *expected_id, size_t *consumed,
                                          const char **why);

#endif
