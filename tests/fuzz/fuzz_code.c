/*
 * fuzz_code.c - hp__code_parse and hp__b32_decode (src/core/code.h).
 *
 * The input is a code typed by a person, without a NUL. Contract checked:
 * - hp__code_parse gives 0 or -EINVAL; -EINVAL with a sentence that ends
 *   inside err (also a tiny err, canary after it); nothing written to the
 *   secret on refusal;
 * - on success the canonical form (hp__code_format) parses to the same
 *   secret, and the input holds exactly 29 digits;
 * - hp__b32_decode of the input with its own digit count: -EINVAL or the
 *   byte count; bytes re-encoded and decoded again give the same bytes.
 */
#include <errno.h>

#include "code.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  uint8_t secret[HP_CODE_SECRET_BYTES], again[HP_CODE_SECRET_BYTES];
  uint8_t bytes[HP_CODE_INPUT_MAX], bytes2[HP_CODE_INPUT_MAX];
  char err[200], tiny[9], canon[HP_CODE_STRLEN], enc[HP_CODE_INPUT_MAX * 2];
  size_t i, digits = 0;
  int r, n;

  memset(secret, 0xa5, sizeof secret);
  memset(err, 'x', sizeof err);
  r = hp__code_parse(in, size, secret, err, sizeof err);
  FUZZ_CHECK(r == 0 || r == -EINVAL);
  if (r < 0) {
    FUZZ_CHECK(fuzz_terminated(err, sizeof err) && err[0] != '\0');
    for (i = 0; i < sizeof secret; i++)
      FUZZ_CHECK(secret[i] == 0xa5);
    memset(tiny, 'y', sizeof tiny);
    FUZZ_CHECK(hp__code_parse(in, size, secret, tiny, 4) == -EINVAL);
    FUZZ_CHECK(fuzz_terminated(tiny, 4) && tiny[4] == 'y');
  } else {
    FUZZ_CHECK(size <= HP_CODE_INPUT_MAX);
    FUZZ_CHECK(hp__code_format(secret, canon, sizeof canon) == 0);
    FUZZ_CHECK(strlen(canon) == HP_CODE_STRLEN - 1);
    FUZZ_CHECK(hp__code_parse(canon, strlen(canon), again, NULL, 0) == 0);
    FUZZ_CHECK(memcmp(secret, again, sizeof secret) == 0);
  }

  if (size > HP_CODE_INPUT_MAX)
    return 0;
  for (i = 0; i < size; i++)
    digits += in[i] != '-' && in[i] != ' ';
  n = hp__b32_decode(in, size, digits, bytes, sizeof bytes);
  FUZZ_CHECK(n == -EINVAL || n == (int)(digits * 5 / 8));
  if (n > 0) {
    int m = hp__b32_encode(bytes, (size_t)n, enc, sizeof enc);
    FUZZ_CHECK(m == (n * 8 + 4) / 5);
    FUZZ_CHECK(hp__b32_decode(enc, (size_t)m, (size_t)m, bytes2, sizeof bytes2) == n);
    FUZZ_CHECK(memcmp(bytes, bytes2, (size_t)n) == 0);
  }
  return 0;
}
