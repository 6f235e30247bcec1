/*
 * code.c - codes (code.h): base32, the check, the derived room and key.
 * libsodium has no base32 (only hex and base64), so the codec is here,
 * small and bounded; every hash is crypto_generichash (BLAKE2b) keyed by
 * the secret, with one domain-separation string per use so the room (which
 * the rendezvous sees) says nothing about the key or the check.
 */
#include "code.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char b32_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

#define DS_CHECK "holepunch code check v1"
#define DS_ROOM "holepunch room v1"
#define DS_PSK "holepunch psk v1"

int hp__b32_encode(const uint8_t *in, size_t n, char *out, size_t outlen) {
  size_t digits = (n * 8 + 4) / 5, i, o = 0;
  unsigned acc = 0, bits = 0;

  if (n > (SIZE_MAX - 4) / 8 || outlen < digits + 1)
    return -ENOSPC;
  for (i = 0; i < n; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[o++] = b32_alphabet[(acc >> bits) & 31u];
    }
  }
  if (bits > 0)
    out[o++] = b32_alphabet[(acc << (5 - bits)) & 31u];
  out[o] = '\0';
  return (int)o;
}

/* The value of one digit, or -1. */
static int b32_value(char c) {
  const char *p;

  if (c >= 'A' && c <= 'Z')
    c = (char)(c - 'A' + 'a');
  if (c == 'o')
    c = '0';
  else if (c == 'i' || c == 'l')
    c = '1';
  if (c == '\0')
    return -1;
  p = strchr(b32_alphabet, c);
  return p ? (int)(p - b32_alphabet) : -1;
}

int hp__b32_decode(const char *in, size_t len, size_t digits, uint8_t *out, size_t outlen) {
  size_t i, seen = 0, o = 0;
  unsigned acc = 0, bits = 0;

  if (digits > (SIZE_MAX / 5) || outlen < digits * 5 / 8)
    return -ENOSPC;
  for (i = 0; i < len; i++) {
    int v;
    if (in[i] == '-' || in[i] == ' ')
      continue;
    v = b32_value(in[i]);
    if (v < 0 || seen == digits)
      return -EINVAL;
    seen++;
    acc = ((acc << 5) | (unsigned)v) & 0xfffu; /* at most 12 bits live */
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  if (seen != digits)
    return -EINVAL;
  /* A canonical encoding pads with zero bits: anything else is a typo. */
  if (bits > 0 && (acc & ((1u << bits) - 1u)) != 0)
    return -EINVAL;
  return (int)o;
}

static void check_of(const uint8_t secret[HP_CODE_SECRET_BYTES],
                     uint8_t check[HP_CODE_CHECK_BYTES]) {
  crypto_generichash(check, HP_CODE_CHECK_BYTES, (const uint8_t *)DS_CHECK, sizeof DS_CHECK - 1,
                     secret, HP_CODE_SECRET_BYTES);
}

int hp__code_format(const uint8_t secret[HP_CODE_SECRET_BYTES], char *out, size_t outlen) {
  uint8_t raw[HP_CODE_SECRET_BYTES + HP_CODE_CHECK_BYTES];
  char digits[HP_CODE_DIGITS + 1];
  size_t i, o = 0;

  if (outlen < HP_CODE_STRLEN)
    return -ENOSPC;
  memcpy(raw, secret, HP_CODE_SECRET_BYTES);
  check_of(secret, raw + HP_CODE_SECRET_BYTES);
  if (hp__b32_encode(raw, sizeof raw, digits, sizeof digits) != HP_CODE_DIGITS)
    return -ENOSPC;
  for (i = 0; i < HP_CODE_DIGITS; i++) {
    if (i > 0 && i % 6 == 0)
      out[o++] = '-';
    out[o++] = digits[i];
  }
  out[o] = '\0';
  sodium_memzero(raw, sizeof raw);
  return 0;
}

int hp__code_generate(char *out, size_t outlen) {
  uint8_t secret[HP_CODE_SECRET_BYTES];
  int r;

  if (sodium_init() < 0)
    return -EIO;
  randombytes_buf(secret, sizeof secret);
  r = hp__code_format(secret, out, outlen);
  sodium_memzero(secret, sizeof secret);
  return r;
}

static int refuse(char *err, size_t errlen, const char *why) {
  if (err && errlen)
    snprintf(err, errlen, "%s", why);
  return -EINVAL;
}

int hp__code_parse(const char *in, size_t len, uint8_t secret[HP_CODE_SECRET_BYTES], char *err,
                   size_t errlen) {
  uint8_t raw[HP_CODE_SECRET_BYTES + HP_CODE_CHECK_BYTES + 1];
  size_t i, ndigits = 0;
  int r;

  if (err && errlen)
    err[0] = '\0';
  if (len > HP_CODE_INPUT_MAX)
    return refuse(err, errlen, "the code is too long: a code is 29 letters and digits");
  while (len > 0 && (in[0] == ' ' || in[0] == '\t'))
    in++, len--;
  while (len > 0 &&
         (in[len - 1] == ' ' || in[len - 1] == '\t' || in[len - 1] == '\n' || in[len - 1] == '\r'))
    len--;
  for (i = 0; i < len; i++) {
    if (in[i] == '-' || in[i] == ' ')
      continue;
    if (b32_value(in[i]) < 0) {
      if (err && errlen)
        snprintf(err, errlen,
                 "the code has a character that is not in codes (position %zu): codes use "
                 "0-9 and a-z without i, l, o, u",
                 i + 1);
      return -EINVAL;
    }
    ndigits++;
  }
  if (ndigits != HP_CODE_DIGITS) {
    if (err && errlen)
      snprintf(err, errlen, "the code is %s: it has %zu letters and digits, a code has %d",
               ndigits < HP_CODE_DIGITS ? "incomplete" : "too long", ndigits, HP_CODE_DIGITS);
    return -EINVAL;
  }
  r = hp__b32_decode(in, len, HP_CODE_DIGITS, raw, sizeof raw);
  if (r == HP_CODE_SECRET_BYTES + HP_CODE_CHECK_BYTES) {
    uint8_t check[HP_CODE_CHECK_BYTES];
    check_of(raw, check);
    if (sodium_memcmp(check, raw + HP_CODE_SECRET_BYTES, HP_CODE_CHECK_BYTES) == 0) {
      memcpy(secret, raw, HP_CODE_SECRET_BYTES);
      sodium_memzero(raw, sizeof raw);
      return 0;
    }
  }
  sodium_memzero(raw, sizeof raw);
  return refuse(err, errlen,
                "the code is mistyped (its check does not match): copy it again from the "
                "other side");
}

void hp__code_room(const uint8_t secret[HP_CODE_SECRET_BYTES], char room[HP_CODE_ROOM_STRLEN]) {
  uint8_t h[16];

  crypto_generichash(h, sizeof h, (const uint8_t *)DS_ROOM, sizeof DS_ROOM - 1, secret,
                     HP_CODE_SECRET_BYTES);
  memcpy(room, "hp1.", 4);
  sodium_bin2hex(room + 4, HP_CODE_ROOM_STRLEN - 4, h, sizeof h);
}

void hp__code_psk(const uint8_t secret[HP_CODE_SECRET_BYTES], uint8_t psk[HP_CODE_PSK_BYTES]) {
  crypto_generichash(psk, HP_CODE_PSK_BYTES, (const uint8_t *)DS_PSK, sizeof DS_PSK - 1, secret,
                     HP_CODE_SECRET_BYTES);
}
