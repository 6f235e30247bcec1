/*
 * record.c - the secure channel's records (record.h) on libsodium's
 * crypto_secretstream_xchacha20poly1305. The decoder is bounded: a record
 * never needs more than HP_REC_MAX_WIRE bytes of buffer, and a length
 * outside 17..HP_REC_MAX_PLAIN+17 is refused before any byte of its body.
 * A record that arrives whole in one input is opened in place (the common
 * case on a fast connection); only one split across inputs is assembled.
 */
#include "record.h"

#include <errno.h>
#include <string.h>

#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_FINAL crypto_secretstream_xchacha20poly1305_TAG_FINAL

void hp__rec_tx_init(hp__rec_tx *t,
                     const uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES],
                     uint8_t header[HP_REC_HEADER_LEN]) {
  crypto_secretstream_xchacha20poly1305_init_push(&t->ss, header, key);
  t->st = HP_REC_TX_OPEN;
}

int hp__rec_seal(hp__rec_tx *t, const uint8_t *p, size_t n, int final, uint8_t *out, size_t cap) {
  size_t wire = n + ABYTES;

  if (t->st != HP_REC_TX_OPEN)
    return -EPIPE;
  if (n > HP_REC_MAX_PLAIN)
    return -EINVAL;
  if (cap < n + HP_REC_OVERHEAD)
    return -ENOSPC;
  out[0] = (uint8_t)(wire >> 8);
  out[1] = (uint8_t)wire;
  /* The length is additional data: cutting or growing a record shows. */
  crypto_secretstream_xchacha20poly1305_push(&t->ss, out + 2, NULL, p, n, out, 2,
                                             final ? TAG_FINAL : TAG_MESSAGE);
  if (final)
    t->st = HP_REC_TX_FINAL;
  return (int)(n + HP_REC_OVERHEAD);
}

void hp__rec_rx_init(hp__rec_rx *r,
                     const uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES]) {
  memset(r, 0, sizeof *r);
  memcpy(r->key, key, sizeof r->key);
  r->st = HP_REC_RX_HEADER;
}

static int rx_fail(hp__rec_rx *r, int err, const char **why, const char *msg) {
  hp__rec_rx_wipe(r);
  r->st = HP_REC_RX_FAILED;
  *why = msg;
  return err;
}

/* Copy up to `want` bytes in total into r->buf. */
static size_t fill(hp__rec_rx *r, size_t want, const uint8_t *in, size_t len) {
  size_t take = want - r->have;
  if (take > len)
    take = len;
  memcpy(r->buf + r->have, in, take);
  r->have += take;
  return take;
}

int hp__rec_open(hp__rec_rx *r, const uint8_t *in, size_t len, size_t *consumed, uint8_t *out,
                 size_t *outlen, int *final, const char **why) {
  size_t used = 0, wire;
  const uint8_t *rec = r->buf; /* the record: in the input, or assembled in r->buf */
  unsigned long long mlen = 0;
  unsigned char tag = 0;

  *consumed = 0;
  *outlen = 0;
  *final = 0;
  *why = "";
  if (r->st == HP_REC_RX_FAILED)
    return rx_fail(r, -EBADMSG, why, "the secure channel failed already");
  if (r->st == HP_REC_RX_FINAL) {
    if (len == 0)
      return 0;
    return rx_fail(r, -EPROTO, why, "the peer sent bytes after the end of its stream");
  }
  if (r->st == HP_REC_RX_HEADER) {
    used += fill(r, HP_REC_HEADER_LEN, in, len);
    *consumed = used;
    if (r->have < HP_REC_HEADER_LEN)
      return 0;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&r->ss, r->buf, r->key) != 0)
      return rx_fail(r, -EBADMSG, why, "the peer's stream header is invalid");
    sodium_memzero(r->key, sizeof r->key);
    r->have = 0;
    r->st = HP_REC_RX_OPEN;
  }
  if (r->have == 0 && len - used >= 2) {
    /* The whole length in the input: read it there (no copy yet). */
    rec = in + used;
  } else if (r->have < 2) {
    used += fill(r, 2, in + used, len - used);
    *consumed = used;
    if (r->have < 2)
      return 0;
  }
  wire = ((size_t)rec[0] << 8) | rec[1];
  if (wire < ABYTES || wire > HP_REC_MAX_PLAIN + ABYTES)
    return rx_fail(r, -EBADMSG, why, "a record of the peer has an impossible length (tampered)");
  if (rec != r->buf && len - used >= 2 + wire) {
    /* The whole record in the input: open it where it is (no copy). */
    used += 2 + wire;
  } else {
    if (rec != r->buf)
      used += fill(r, 2, in + used, len - used);
    rec = r->buf;
    used += fill(r, 2 + wire, in + used, len - used);
    *consumed = used;
    if (r->have < 2 + wire)
      return 0;
  }
  *consumed = used;
  r->have = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&r->ss, out, &mlen, &tag, rec + 2, wire, rec, 2) !=
      0)
    return rx_fail(r, -EBADMSG, why,
                   "a record of the peer does not authenticate (tampered, replayed, reordered "
                   "or lost)");
  if (tag == TAG_FINAL) {
    r->st = HP_REC_RX_FINAL;
    *final = 1;
  } else if (tag != TAG_MESSAGE) {
    return rx_fail(r, -EBADMSG, why, "a record of the peer has an unknown tag");
  }
  *outlen = (size_t)mlen;
  return 1;
}

void hp__rec_tx_wipe(hp__rec_tx *t) {
  sodium_memzero(&t->ss, sizeof t->ss);
}

void hp__rec_rx_wipe(hp__rec_rx *r) {
  sodium_memzero(&r->ss, sizeof r->ss);
  sodium_memzero(r->key, sizeof r->key);
  sodium_memzero(r->buf, sizeof r->buf);
  r->have = 0;
}
