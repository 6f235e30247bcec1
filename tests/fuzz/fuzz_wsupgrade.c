/*
 * fuzz_wsupgrade.c - the WebSocket client's upgrade-response reader
 * (src/net/ws_upgrade.h) fed arbitrary bytes, once in pieces whose size
 * comes from the first input byte and once in one call. Contract checked:
 * consumed never exceeds what was fed, and MORE consumed everything; DONE
 * only for status 101, after a head that ends at a line end, never
 * beyond the cap; an error has a kind and a terminated, non-empty sentence
 * and stays an error; the verdict, its kind and the head length do not
 * depend on how the bytes were split.
 */
#include "fuzz.h"
#include "ws_upgrade.h"

#define KEY                                                                                        \
  "dGhlIHNhbXBsZSBub25jZQ==" /* RFC 6455's example: accept s3pPLMBiTxaQ9kYGzzhZRbK+xOo=            \
                              */
#define CAP 2048

typedef struct verdict {
  hp__wsu_rc rc;
  hp__wsu_fail fail;
  size_t head; /* DONE: bytes of the head */
} verdict;

static verdict run(const uint8_t *data, size_t size, size_t piece) {
  hp__wsu *u = hp__wsu_create(CAP);
  verdict v = {HP_WSU_MORE, HP_WSU_FAIL_NONE, 0};
  size_t off = 0, total = 0;

  FUZZ_CHECK(u != NULL);
  FUZZ_CHECK(hp__wsu_set_key(u, KEY) == 0);
  while (off < size) {
    size_t n = size - off < piece ? size - off : piece, used = 0;
    hp__wsu_rc rc = hp__wsu_feed(u, data + off, n, &used);

    FUZZ_CHECK(used <= n);
    total += used;
    off += n;
    v.rc = rc;
    if (rc == HP_WSU_ERROR) {
      const char *e = hp__wsu_error(u);
      size_t again = 0;
      v.fail = hp__wsu_failure(u);
      FUZZ_CHECK(v.fail != HP_WSU_FAIL_NONE);
      FUZZ_CHECK(fuzz_terminated(e, HP_WSU_ERR_MAX) && e[0] != '\0');
      FUZZ_CHECK(hp__wsu_feed(u, data, size, &again) == HP_WSU_ERROR && again == 0);
      break;
    }
    if (rc == HP_WSU_DONE) {
      FUZZ_CHECK(hp__wsu_status(u) == 101);
      /* The head ends at a line end; http-parser's lenient mode (Debian's
       * build) takes any byte after the last CR as its LF. */
      FUZZ_CHECK(total > 1 && total <= CAP);
      FUZZ_CHECK(data[total - 1] == '\n' || data[total - 2] == '\r');
      v.head = total;
      break;
    }
    FUZZ_CHECK(used == n);
    FUZZ_CHECK(total < CAP);
  }
  hp__wsu_destroy(u);
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t piece;
  verdict a, b;

  if (size < 1)
    return 0;
  piece = data[0] ? 1u + data[0] % 61u : size;
  a = run(data + 1, size - 1, piece);
  b = run(data + 1, size - 1, size);
  FUZZ_CHECK(a.rc == b.rc);
  FUZZ_CHECK(a.fail == b.fail);
  FUZZ_CHECK(a.head == b.head);
  return 0;
}
