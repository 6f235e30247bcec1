/*
 * record.h - the secure channel's records, pure (no I/O).
 *
 * Each direction is one crypto_secretstream_xchacha20poly1305 stream: its
 * 24-byte header first, then records of
 *     length (2 bytes, big endian, = plaintext + 17) | secretstream message
 * with the length bytes as additional data. The stream's internal nonce
 * makes a replayed, reordered, dropped or altered record fail to decrypt;
 * the last record carries TAG_FINAL (the writer's half-close), so a stream
 * cut short (carrier EOF without FINAL) is told apart from a finished one.
 * Any failure is final: no plaintext of a bad record is ever returned.
 */
#ifndef HP_RECORD_H
#define HP_RECORD_H
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define HP_REC_HEADER_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES /* 24 */
#define HP_REC_MAX_PLAIN 32768u /* docs/PROTOCOL.md section 8: why */
#define HP_REC_OVERHEAD (2u + crypto_secretstream_xchacha20poly1305_ABYTES) /* 19 */
#define HP_REC_MAX_WIRE (HP_REC_MAX_PLAIN + HP_REC_OVERHEAD)

typedef enum hp__rec_tx_state { HP_REC_TX_OPEN, HP_REC_TX_FINAL } hp__rec_tx_state;

typedef struct hp__rec_tx {
  crypto_secretstream_xchacha20poly1305_state ss;
  hp__rec_tx_state st;
} hp__rec_tx;

typedef enum hp__rec_rx_state {
  HP_REC_RX_HEADER, /* waiting for the stream header */
  HP_REC_RX_OPEN,   /* records */
  HP_REC_RX_FINAL,  /* the FINAL record arrived: nothing may follow */
  HP_REC_RX_FAILED
} hp__rec_rx_state;

typedef struct hp__rec_rx {
  crypto_secretstream_xchacha20poly1305_state ss;
  hp__rec_rx_state st;
  uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES]; /* until the header */
  uint8_t buf[HP_REC_MAX_WIRE];                                /* the record being assembled */
  size_t have;
} hp__rec_rx;

/** Start sending with key; header (HP_REC_HEADER_LEN) goes out first. */
void hp__rec_tx_init(hp__rec_tx *t,
                     const uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES],
                     uint8_t header[HP_REC_HEADER_LEN]);

/** Seal n (<= HP_REC_MAX_PLAIN) bytes into out (n + HP_REC_OVERHEAD bytes),
 *  FINAL when final (n may be 0 then). Bytes written, or -EINVAL (too
 *  long), -ENOSPC (out too small), -EPIPE (after FINAL). */
int hp__rec_seal(hp__rec_tx *t, const uint8_t *p, size_t n, int final, uint8_t *out, size_t cap);

/** Start receiving with key: the peer's header comes first. */
void hp__rec_rx_init(hp__rec_rx *r,
                     const uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES]);

/**
 * Feed in[0..len): consumes up to the end of one record. Returns 0 (need
 * more; *consumed == len), 1 (a record: *outlen plaintext bytes in out,
 * which must hold HP_REC_MAX_PLAIN, *final set on the FINAL record), or
 * -EBADMSG (a record that does not authenticate: tampered, replayed,
 * reordered, or a bad length) / -EPROTO (bytes after FINAL) with *why set.
 */
int hp__rec_open(hp__rec_rx *r, const uint8_t *in, size_t len, size_t *consumed, uint8_t *out,
                 size_t *outlen, int *final, const char **why);

/** Wipe the states (keys). */
void hp__rec_tx_wipe(hp__rec_tx *t);
void hp__rec_rx_wipe(hp__rec_rx *r);

#endif
