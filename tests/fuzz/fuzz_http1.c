/*
 * fuzz_http1.c - the HTTP/1.1 request reader (src/net/http1.h) fed
 * arbitrary bytes in pieces whose size comes from the first input byte.
 * Contract checked: a request it returns has a NUL-terminated path within
 * its buffer, a key and version that fit theirs, and the X-Forwarded-For
 * line within HP_HTTP1_XFF_MAX; consumed never exceeds what was fed; an
 * error comes with a 4xx/5xx status; after a request, hp__http1_next()
 * reads the next one from the remaining bytes.
 */
#include "fuzz.h"
#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hp__http1_limits lim = {2048, 32, 512};
  hp__http1 *h;
  size_t piece, off;
  int requests = 0;

  if (size < 1)
    return 0;
  piece = data[0] ? 1u + data[0] % 97u : size;
  h = hp__http1_create(&lim);
  FUZZ_CHECK(h != NULL);
  for (off = 1; off < size;) {
    size_t n = size - off < piece ? size - off : piece, used = 0;
    hp__http1_rc rc = hp__http1_feed(h, data + off, n, &used);

    FUZZ_CHECK(used <= n);
    off += used;
    if (rc == HP_HTTP1_ERROR) {
      int st = hp__http1_error_status(h);
      FUZZ_CHECK(st >= 400 && st <= 599);
      FUZZ_CHECK(hp__http1_error_text(h) != NULL);
      break;
    }
    if (rc == HP_HTTP1_REQUEST) {
      const hp__http1_req *r = hp__http1_request(h);
      FUZZ_CHECK(fuzz_terminated(r->path, sizeof(r->path)));
      FUZZ_CHECK(r->path_len < sizeof(r->path));
      FUZZ_CHECK(fuzz_terminated(r->ws_key, sizeof(r->ws_key)));
      FUZZ_CHECK(r->ws_key_len < sizeof(r->ws_key));
      FUZZ_CHECK(fuzz_terminated(r->ws_version, sizeof(r->ws_version)));
      FUZZ_CHECK(!r->xff || (r->xff_len <= HP_HTTP1_XFF_MAX && r->xff[r->xff_len] == '\0'));
      FUZZ_CHECK(hp__http1_line_done(h));
      if (r->upgrade || ++requests > 64)
        break;
      hp__http1_next(h);
      continue;
    }
    FUZZ_CHECK(used == n);
  }
  hp__http1_destroy(h);
  return 0;
}
