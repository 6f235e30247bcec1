/*
 * stun_msg.h - the few STUN messages holepunch needs (RFC 8489), as a
 * bounded codec with no I/O: a Binding request to learn our mapping, the
 * Binding response that carries it (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS
 * from old servers), an error response (ERROR-CODE), FINGERPRINT.
 *
 * Over TCP (RFC 8489 section 6.2.2) STUN messages follow each other on the
 * stream with no extra framing: hp__stun_frame() says how long the message
 * at the head of a buffer is, from its 20-byte header. Debian has no small
 * C STUN library for this (libnice's needs GLib and an ICE agent), hence
 * this codec; it is fuzzed (tests/fuzz/fuzz_stun.c) and tested with the
 * RFC 5769 vectors (tests/unit/test_stun_msg.c).
 *
 * MESSAGE-INTEGRITY is recognised and skipped, never verified: a Binding
 * request to a public STUN server carries no credentials, and a response
 * is matched by its 96-bit transaction id.
 */
#ifndef HP_STUN_MSG_H
#define HP_STUN_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HP_STUN_HEADER 20 /* type, length, magic cookie, transaction id */
#define HP_STUN_MAX 2048  /* largest message accepted (a Binding response: ~100) */
#define HP_STUN_MAGIC 0x2112A442u
#define HP_STUN_TXID_LEN 12
#define HP_STUN_REQUEST_LEN 28 /* what hp__stun_binding_request writes */
#define HP_STUN_REASON_MAX 128 /* ERROR-CODE reason kept, with its NUL */

/* Message classes (RFC 8489 section 5). */
enum { HP_STUN_REQUEST = 0, HP_STUN_INDICATION = 1, HP_STUN_SUCCESS = 2, HP_STUN_ERROR = 3 };
#define HP_STUN_BINDING 0x001 /* the only method used */

typedef struct hp__stun_msg {
  int cls;                            /* HP_STUN_REQUEST .. HP_STUN_ERROR */
  unsigned method;                    /* 12 bits; HP_STUN_BINDING */
  uint8_t txid[HP_STUN_TXID_LEN];     /* transaction id */
  struct sockaddr_storage xor_mapped; /* ss_family 0 when absent */
  struct sockaddr_storage mapped;     /* MAPPED-ADDRESS, ss_family 0 when absent */
  int error_code;                     /* 300..699 from ERROR-CODE, 0 when absent */
  char reason[HP_STUN_REASON_MAX];    /* its reason phrase, printable ASCII ('?' else) */
  int fingerprint;                    /* 1: FINGERPRINT present (and it checked out) */
  int integrity;                      /* 1: MESSAGE-INTEGRITY(-SHA256) present (not verified) */
  unsigned unknown_required;          /* unknown comprehension-required attributes */
} hp__stun_msg;

/*
 * Write a Binding request with transaction id txid and a FINGERPRINT into
 * buf (HP_STUN_REQUEST_LEN bytes). Returns the length, or -ENOSPC when cap
 * is too small.
 */
int hp__stun_binding_request(uint8_t *buf, size_t cap, const uint8_t txid[HP_STUN_TXID_LEN]);

/*
 * Write a Binding success response carrying addr (AF_INET or AF_INET6) as
 * XOR-MAPPED-ADDRESS, then a FINGERPRINT. For tests and a future rendezvous
 * that answers STUN itself. Returns the length, -ENOSPC, or -EAFNOSUPPORT.
 */
int hp__stun_binding_response(uint8_t *buf, size_t cap, const uint8_t txid[HP_STUN_TXID_LEN],
                              const struct sockaddr *addr);

/*
 * The length of the STUN message at the head of a stream buffer: 0 when
 * fewer than HP_STUN_HEADER bytes are there (need more), else 20 + the
 * header's length field, or -EPROTO when the header is not STUN (top bits,
 * magic cookie, length not a multiple of 4) or the message would exceed
 * HP_STUN_MAX. Bytes past the returned length belong to the next message.
 */
long hp__stun_frame(const uint8_t *buf, size_t len);

/*
 * Decode one whole message of exactly len bytes (as hp__stun_frame said).
 * Returns 0 and fills *m, or -EPROTO (malformed: header, an attribute that
 * overruns, a bad address or error code, an attribute after FINGERPRINT) or
 * -EBADMSG (FINGERPRINT does not match), with a sentence in err. Only the
 * first of repeated attributes counts; attributes after MESSAGE-INTEGRITY
 * other than FINGERPRINT are ignored (RFC 8489 section 14.5).
 */
int hp__stun_decode(const uint8_t *buf, size_t len, hp__stun_msg *m, char *err, size_t errlen);

/* The mapping a success response reports: XOR-MAPPED-ADDRESS, else
 * MAPPED-ADDRESS, else NULL. */
const struct sockaddr *hp__stun_mapped(const hp__stun_msg *m);

#endif
