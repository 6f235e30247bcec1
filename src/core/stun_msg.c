/*
 * stun_msg.c - bounded STUN codec for Binding (see stun_msg.h).
 */
#include "stun_msg.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* Attribute types (RFC 8489 section 18.3, RFC 5389, RFC 3489, RFC 8445). */
enum {
  AT_MAPPED_ADDRESS = 0x0001,
  AT_RESPONSE_ADDRESS = 0x0002, /* RFC 3489, obsolete */
  AT_CHANGE_REQUEST = 0x0003,   /* RFC 3489 / 5780 */
  AT_SOURCE_ADDRESS = 0x0004,   /* RFC 3489, obsolete */
  AT_CHANGED_ADDRESS = 0x0005,  /* RFC 3489, obsolete */
  AT_USERNAME = 0x0006,
  AT_MESSAGE_INTEGRITY = 0x0008,
  AT_ERROR_CODE = 0x0009,
  AT_UNKNOWN_ATTRIBUTES = 0x000A,
  AT_REALM = 0x0014,
  AT_NONCE = 0x0015,
  AT_MESSAGE_INTEGRITY_SHA256 = 0x001C,
  AT_PASSWORD_ALGORITHM = 0x001D,
  AT_USERHASH = 0x001E,
  AT_XOR_MAPPED_ADDRESS = 0x0020,
  AT_PRIORITY = 0x0024,      /* ICE */
  AT_USE_CANDIDATE = 0x0025, /* ICE */
  AT_FINGERPRINT = 0x8028,
};

#define FINGERPRINT_XOR 0x5354554eu

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v & 0xffff);
}

/* The message type field from method and class (RFC 8489 figure 3). */
static unsigned msg_type(unsigned method, int cls) {
  return (method & 0x000f) | (method & 0x0070) << 1 | (method & 0x0f80) << 2 | (cls & 1) << 4 |
         (cls & 2) << 7;
}

static uint32_t crc_of(const uint8_t *buf, size_t len) {
  return (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)len);
}

/* Header with length 0, then the caller appends attributes. */
static void put_header(uint8_t *buf, unsigned type, const uint8_t txid[HP_STUN_TXID_LEN]) {
  put16(buf, type);
  put16(buf + 2, 0);
  put32(buf + 4, HP_STUN_MAGIC);
  memcpy(buf + 8, txid, HP_STUN_TXID_LEN);
}

/* Append FINGERPRINT at off (the header's length already covers it). */
static size_t put_fingerprint(uint8_t *buf, size_t off) {
  put16(buf + 2, (unsigned)(off + 8 - HP_STUN_HEADER));
  put16(buf + off, AT_FINGERPRINT);
  put16(buf + off + 2, 4);
  put32(buf + off + 4, crc_of(buf, off) ^ FINGERPRINT_XOR);
  return off + 8;
}

int hp__stun_binding_request(uint8_t *buf, size_t cap, const uint8_t txid[HP_STUN_TXID_LEN]) {
  if (cap < HP_STUN_REQUEST_LEN)
    return -ENOSPC;
  put_header(buf, msg_type(HP_STUN_BINDING, HP_STUN_REQUEST), txid);
  return (int)put_fingerprint(buf, HP_STUN_HEADER);
}

int hp__stun_binding_response(uint8_t *buf, size_t cap, const uint8_t txid[HP_STUN_TXID_LEN],
                              const struct sockaddr *addr) {
  size_t alen;
  uint8_t x[16];

  if (addr->sa_family == AF_INET)
    alen = 4;
  else if (addr->sa_family == AF_INET6)
    alen = 16;
  else
    return -EAFNOSUPPORT;
  if (cap < HP_STUN_HEADER + 8 + alen + 8)
    return -ENOSPC;
  put_header(buf, msg_type(HP_STUN_BINDING, HP_STUN_SUCCESS), txid);
  /* The XOR key: magic cookie, then (IPv6) the transaction id. */
  put32(x, HP_STUN_MAGIC);
  memcpy(x + 4, txid, HP_STUN_TXID_LEN);
  put16(buf + 20, AT_XOR_MAPPED_ADDRESS);
  put16(buf + 22, (unsigned)(4 + alen));
  buf[24] = 0;
  if (alen == 4) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)addr;
    buf[25] = 1;
    put16(buf + 26, ntohs(s4->sin_port) ^ (HP_STUN_MAGIC >> 16));
    memcpy(buf + 28, &s4->sin_addr, 4);
  } else {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
    buf[25] = 2;
    put16(buf + 26, ntohs(s6->sin6_port) ^ (HP_STUN_MAGIC >> 16));
    memcpy(buf + 28, &s6->sin6_addr, 16);
  }
  for (size_t i = 0; i < alen; i++)
    buf[28 + i] ^= x[i];
  return (int)put_fingerprint(buf, 28 + alen);
}

long hp__stun_frame(const uint8_t *buf, size_t len) {
  unsigned mlen;

  if (len < HP_STUN_HEADER)
    return 0;
  mlen = get16(buf + 2);
  if ((buf[0] & 0xc0) != 0 || get32(buf + 4) != HP_STUN_MAGIC || mlen % 4 != 0 ||
      HP_STUN_HEADER + (size_t)mlen > HP_STUN_MAX)
    return -EPROTO;
  return HP_STUN_HEADER + (long)mlen;
}

/* MAPPED-ADDRESS or XOR-MAPPED-ADDRESS value into out. */
static int decode_addr(const uint8_t *v, size_t vlen, int xored, const uint8_t *txid,
                       struct sockaddr_storage *out, char *err, size_t errlen, const char *name) {
  uint8_t x[16], a[16];
  size_t alen;
  unsigned port;

  if (vlen < 4) {
    snprintf(err, errlen, "%s is %zu bytes, too short", name, vlen);
    return -EPROTO;
  }
  alen = v[1] == 1 ? 4 : v[1] == 2 ? 16 : 0;
  if (!alen || vlen != 4 + alen) {
    snprintf(err, errlen, "%s has family %u and %zu bytes (want 1 with 8 or 2 with 20)", name, v[1],
             vlen);
    return -EPROTO;
  }
  put32(x, HP_STUN_MAGIC);
  memcpy(x + 4, txid, HP_STUN_TXID_LEN);
  port = get16(v + 2);
  memcpy(a, v + 4, alen);
  if (xored) {
    port ^= HP_STUN_MAGIC >> 16;
    for (size_t i = 0; i < alen; i++)
      a[i] ^= x[i];
  }
  memset(out, 0, sizeof *out);
  if (alen == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    memcpy(&s4->sin_addr, a, 4);
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    memcpy(&s6->sin6_addr, a, 16);
  }
  return 0;
}

static int decode_error(const uint8_t *v, size_t vlen, hp__stun_msg *m, char *err, size_t errlen) {
  unsigned cls, num;
  size_t i, n;

  if (vlen < 4) {
    snprintf(err, errlen, "ERROR-CODE is %zu bytes, too short", vlen);
    return -EPROTO;
  }
  cls = v[2] & 0x07;
  num = v[3];
  if (cls < 3 || cls > 6 || num > 99) {
    snprintf(err, errlen, "ERROR-CODE has class %u and number %u (want 3..6 and 0..99)", cls, num);
    return -EPROTO;
  }
  m->error_code = (int)(cls * 100 + num);
  n = vlen - 4;
  if (n > sizeof m->reason - 1)
    n = sizeof m->reason - 1;
  for (i = 0; i < n; i++)
    m->reason[i] = v[4 + i] >= 0x20 && v[4 + i] < 0x7f ? (char)v[4 + i] : '?';
  m->reason[n] = '\0';
  return 0;
}

/* Attributes we understand or may ignore although comprehension-required. */
static int known_required(unsigned t) {
  switch (t) {
  case AT_MAPPED_ADDRESS:
  case AT_RESPONSE_ADDRESS:
  case AT_CHANGE_REQUEST:
  case AT_SOURCE_ADDRESS:
  case AT_CHANGED_ADDRESS:
  case AT_USERNAME:
  case AT_MESSAGE_INTEGRITY:
  case AT_ERROR_CODE:
  case AT_UNKNOWN_ATTRIBUTES:
  case AT_REALM:
  case AT_NONCE:
  case AT_MESSAGE_INTEGRITY_SHA256:
  case AT_PASSWORD_ALGORITHM:
  case AT_USERHASH:
  case AT_XOR_MAPPED_ADDRESS:
  case AT_PRIORITY:
  case AT_USE_CANDIDATE:
    return 1;
  default:
    return 0;
  }
}

int hp__stun_decode(const uint8_t *buf, size_t len, hp__stun_msg *m, char *err, size_t errlen) {
  long flen = hp__stun_frame(buf, len);
  unsigned type;
  size_t off = HP_STUN_HEADER;
  int after_integrity = 0, seen_xor = 0, seen_mapped = 0, seen_error = 0, r;

  memset(m, 0, sizeof *m);
  if (flen <= 0 || (size_t)flen != len) {
    snprintf(err, errlen,
             flen == 0  ? "STUN message shorter than its 20-byte header (%zu bytes)"
             : flen < 0 ? "not a STUN message (top bits, magic cookie or length; %zu bytes)"
                        : "STUN message length field disagrees with its size (%zu bytes)",
             len);
    return -EPROTO;
  }
  type = get16(buf);
  m->cls = (int)((type >> 4 & 1) | (type >> 7 & 2));
  m->method = (type & 0x000f) | (type >> 1 & 0x0070) | (type >> 2 & 0x0f80);
  memcpy(m->txid, buf + 8, HP_STUN_TXID_LEN);

  while (off < len) {
    unsigned at, alen;
    const uint8_t *v;

    if (len - off < 4) {
      snprintf(err, errlen, "truncated attribute header at offset %zu", off);
      return -EPROTO;
    }
    at = get16(buf + off);
    alen = get16(buf + off + 2);
    v = buf + off + 4;
    if ((size_t)alen + 4 > len - off || ((alen + 3u) & ~3u) + 4 > len - off) {
      snprintf(err, errlen, "attribute 0x%04x of %u bytes at offset %zu overruns the message", at,
               alen, off);
      return -EPROTO;
    }
    if (m->fingerprint) {
      snprintf(err, errlen, "attribute 0x%04x after FINGERPRINT (it must be last)", at);
      return -EPROTO;
    }
    if (at == AT_FINGERPRINT) {
      uint32_t want;

      if (alen != 4) {
        snprintf(err, errlen, "FINGERPRINT is %u bytes, want 4", alen);
        return -EPROTO;
      }
      /* The header's length covers the FINGERPRINT itself: as sent. */
      want = crc_of(buf, off) ^ FINGERPRINT_XOR;
      if (get32(v) != want) {
        snprintf(err, errlen, "FINGERPRINT mismatch (0x%08x, computed 0x%08x)", get32(v), want);
        return -EBADMSG;
      }
      m->fingerprint = 1;
    } else if (after_integrity) {
      /* RFC 8489 14.5: ignored after MESSAGE-INTEGRITY. */
    } else if (at == AT_MESSAGE_INTEGRITY || at == AT_MESSAGE_INTEGRITY_SHA256) {
      m->integrity = 1;
      after_integrity = 1;
    } else if (at == AT_XOR_MAPPED_ADDRESS && !seen_xor) {
      r = decode_addr(v, alen, 1, m->txid, &m->xor_mapped, err, errlen, "XOR-MAPPED-ADDRESS");
      if (r < 0)
        return r;
      seen_xor = 1;
    } else if (at == AT_MAPPED_ADDRESS && !seen_mapped) {
      r = decode_addr(v, alen, 0, m->txid, &m->mapped, err, errlen, "MAPPED-ADDRESS");
      if (r < 0)
        return r;
      seen_mapped = 1;
    } else if (at == AT_ERROR_CODE && !seen_error) {
      r = decode_error(v, alen, m, err, errlen);
      if (r < 0)
        return r;
      seen_error = 1;
    } else if (at < 0x8000 && !known_required(at)) {
      m->unknown_required++;
    }
    off += 4 + ((alen + 3u) & ~3u);
  }
  return 0;
}

const struct sockaddr *hp__stun_mapped(const hp__stun_msg *m) {
  if (m->xor_mapped.ss_family)
    return (const struct sockaddr *)&m->xor_mapped;
  if (m->mapped.ss_family)
    return (const struct sockaddr *)&m->mapped;
  return NULL;
}
