/*
 * fuzz_record.c - hp__rec_open (src/core/record.h), the decoder of the secure
 * channel's records.
 *
 * Input byte 0 chooses the mode, byte 1 the feeding step (1..256 bytes).
 * Mode even: the rest is the raw stream from the peer (key fixed).
 * Mode odd: the rest is the plaintext; it is sealed into records of sizes
 * taken from it, the last FINAL, then byte 2 and 3 pick one byte of the
 * stream to flip (or none when 0xffff).
 * Contract checked:
 * - results are 0, 1, -EBADMSG or -EPROTO; *consumed <= len; 0 consumes all;
 *   an error yields no plaintext and every later call fails too;
 *   *outlen <= HP_REC_MAX_PLAIN; FINAL only with 1, and nothing after it;
 * - mode odd: the plaintext delivered is always a prefix of what was sealed
 *   (never corrupt output); unflipped, all of it with FINAL and no error;
 *   flipped, never FINAL: it ends in an error or waits for more bytes.
 */
#include <errno.h>

#include "fuzz.h"
#include "record.h"

static const uint8_t key[32] = {0x42};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t stream[1 << 17], pt[HP_REC_MAX_PLAIN], got[1 << 16];
  static hp__rec_rx r;
  const uint8_t *in;
  size_t len, step, off = 0, ngot = 0, plain_len = 0;
  const uint8_t *plain = NULL;
  int mode, flipped = 0, final = 0, err = 0;

  if (size < 4)
    return 0;
  mode = data[0] & 1;
  step = (size_t)data[1] + 1;
  if (mode == 0) {
    in = data + 2;
    len = size - 2;
  } else {
    hp__rec_tx t;
    size_t pos = 0, flip = ((size_t)data[2] << 8) | data[3];
    plain = data + 4;
    plain_len = size - 4;
    if (plain_len > 4096) /* at most 20 x 4096 bytes of records: fits stream */
      return 0;
    hp__rec_tx_init(&t, key, stream);
    len = HP_REC_HEADER_LEN;
    do {
      /* Record sizes from the plaintext itself: 1..1021, or the rest. */
      size_t n = pos < plain_len ? (size_t)(plain[pos] * 4u) + 1 : 0;
      int last, w;
      if (n > plain_len - pos)
        n = plain_len - pos;
      last = pos + n == plain_len;
      w = hp__rec_seal(&t, plain + pos, n, last, stream + len, sizeof stream - len);
      FUZZ_CHECK(w == (int)(n + HP_REC_OVERHEAD));
      len += (size_t)w;
      pos += n;
      if (last)
        break;
    } while (1);
    if (flip != 0xffff && flip < len) {
      stream[flip] ^= (uint8_t)(1u << (data[2] & 7));
      flipped = 1;
    }
    in = stream;
  }

  hp__rec_rx_init(&r, key);
  while (off < len && !err) {
    size_t chunk = len - off < step ? len - off : step;
    while (chunk > 0) {
      size_t c = 0, ol = 99;
      int fin = 0, res;
      const char *why = NULL;
      res = hp__rec_open(&r, in + off, chunk, &c, pt, &ol, &fin, &why);
      FUZZ_CHECK(res == 0 || res == 1 || res == -EBADMSG || res == -EPROTO);
      FUZZ_CHECK(c <= chunk);
      FUZZ_CHECK(why != NULL);
      if (res < 0) {
        size_t c2, ol2;
        int fin2;
        FUZZ_CHECK(ol == 0 && fin == 0 && why[0] != '\0');
        FUZZ_CHECK(hp__rec_open(&r, in + off, chunk, &c2, pt, &ol2, &fin2, &why) < 0);
        err = res;
        break;
      }
      FUZZ_CHECK(ol <= HP_REC_MAX_PLAIN);
      if (res == 0) {
        FUZZ_CHECK(c == chunk && ol == 0 && fin == 0);
      } else {
        FUZZ_CHECK(!final);
        final = fin;
        FUZZ_CHECK(ngot + ol <= sizeof got);
        memcpy(got + ngot, pt, ol);
        ngot += ol;
      }
      off += c;
      chunk -= c;
      if (res == 0)
        break;
    }
  }
  if (mode == 1) {
    FUZZ_CHECK(ngot <= plain_len);
    FUZZ_CHECK(ngot == 0 || memcmp(got, plain, ngot) == 0);
    if (!flipped)
      FUZZ_CHECK(!err && final && ngot == plain_len);
    else
      FUZZ_CHECK(!final);
  }
  hp__rec_rx_wipe(&r);
  return 0;
}
