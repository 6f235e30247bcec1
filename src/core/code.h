/*
 * code.h - the code two people share to find and authenticate each other:
 * 128 random bits of secret plus a 16-bit check, written in base32 in
 * dash-separated groups of six (e.g. "7f3k9q-2m8xhd-..."). From the secret,
 * under distinct domain-separation strings (crypto_generichash keyed by the
 * secret):
 *   room  the room name sent to the rendezvous ("hp1." + 32 hex digits), so
 *         rooms are unguessable and the rendezvous never learns the secret;
 *   psk   the 32-byte pre-shared key mixed into the handshake (handshake.h).
 * The check lets a mistyped code be refused locally, before any network
 * traffic, with a sentence saying so.
 */
#ifndef HP_CODE_H
#define HP_CODE_H
#include <stddef.h>
#include <stdint.h>

#define HP_CODE_SECRET_BYTES 16
#define HP_CODE_CHECK_BYTES 2
/* 18 bytes = 144 bits -> 29 base32 digits, in groups of 6 with 4 dashes. */
#define HP_CODE_DIGITS 29
#define HP_CODE_STRLEN (HP_CODE_DIGITS + 4 + 1)
/* Longest text accepted by hp__code_parse (spaces, dashes, a newline). */
#define HP_CODE_INPUT_MAX 128
#define HP_CODE_ROOM_STRLEN (4 + 32 + 1)
#define HP_CODE_PSK_BYTES 32

/* Base32 with the alphabet 0-9 a-z minus i l o u (Crockford's), lowercase
 * out; see hp__b32_decode for what is accepted in. */

/** Encode n bytes into out (cap outlen, NUL-terminated): the number of
 *  digits written (ceil(8n/5)), or -ENOSPC. Bits past the input are 0. */
int hp__b32_encode(const uint8_t *in, size_t n, char *out, size_t outlen);

/** Decode exactly `digits` base32 digits of in[0..len) into out (cap outlen
 *  bytes, digits*5/8 bytes written), skipping '-' and ' '; case-insensitive;
 *  'o' reads as 0, 'i' and 'l' as 1. -EINVAL on another character, on a
 *  different digit count, or when the unused low bits of the last digit are
 *  not 0; -ENOSPC when out is too small. Returns the bytes written. */
int hp__b32_decode(const char *in, size_t len, size_t digits, uint8_t *out, size_t outlen);

/** A fresh code (randombytes_buf) in out (HP_CODE_STRLEN). 0 or -errno. */
int hp__code_generate(char *out, size_t outlen);

/** Format the code of secret into out (HP_CODE_STRLEN). 0 or -ENOSPC. */
int hp__code_format(const uint8_t secret[HP_CODE_SECRET_BYTES], char *out, size_t outlen);

/** Parse a code typed by a person (len bytes, no NUL needed; surrounding
 *  white space allowed). 0 with the secret, or -EINVAL with a sentence in
 *  err saying what is wrong (length, a character, a mistyped code). */
int hp__code_parse(const char *in, size_t len, uint8_t secret[HP_CODE_SECRET_BYTES], char *err,
                   size_t errlen);

/** The room name for the rendezvous (HP_CODE_ROOM_STRLEN bytes). */
void hp__code_room(const uint8_t secret[HP_CODE_SECRET_BYTES], char room[HP_CODE_ROOM_STRLEN]);

/** The pre-shared key for the handshake. */
void hp__code_psk(const uint8_t secret[HP_CODE_SECRET_BYTES], uint8_t psk[HP_CODE_PSK_BYTES]);

#endif
