/* test_stun_msg.c - the STUN codec against the RFC 5769 test vectors, our
 * own encodings, framing on a stream, and malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "stun_msg.h"

/* RFC 5769 section 2.1: sample request (USERNAME padded with spaces,
 * PRIORITY, ICE-CONTROLLED, MESSAGE-INTEGRITY, FINGERPRINT). */
static const uint8_t rfc_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 'S',  'T',  'U',  'N',  ' ',  't',  'e',  's',
    't',  ' ',  'c',  'l',  'i',  'e',  'n',  't',  0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf};

/* RFC 5769 section 2.2: IPv4 response, XOR-MAPPED-ADDRESS 192.0.2.1:32853. */
static const uint8_t rfc_resp4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96};

/* RFC 5769 section 2.3: IPv6 response,
 * XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t rfc_resp6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c};

/* RFC 5769 section 2.4: request with long-term authentication (no
 * FINGERPRINT). */
static const uint8_t rfc_request_lt[] = {
    0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
    0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88,
    0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00,
    0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
    0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73,
    0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
    0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02,
    0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66};

static const uint8_t txid[HP_STUN_TXID_LEN] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                               0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

static void expect_addr(const struct sockaddr *sa, const char *want) {
  char got[HP_ADDR_STRLEN];
  assert_non_null(sa);
  assert_true(hp__addr_format(sa, got, sizeof got) > 0);
  assert_string_equal(got, want);
}

static void test_rfc5769_request(void **state) {
  hp__stun_msg m;
  char err[160];
  (void)state;
  assert_int_equal(hp__stun_frame(rfc_request, sizeof rfc_request), (long)sizeof rfc_request);
  assert_int_equal(hp__stun_decode(rfc_request, sizeof rfc_request, &m, err, sizeof err), 0);
  assert_int_equal(m.cls, HP_STUN_REQUEST);
  assert_int_equal(m.method, HP_STUN_BINDING);
  assert_memory_equal(m.txid, txid, sizeof txid);
  assert_int_equal(m.fingerprint, 1);
  assert_int_equal(m.integrity, 1);
  assert_int_equal(m.unknown_required, 0); /* PRIORITY, USERNAME are known */
  assert_null(hp__stun_mapped(&m));
}

static void test_rfc5769_response_v4(void **state) {
  hp__stun_msg m;
  char err[160];
  (void)state;
  assert_int_equal(hp__stun_decode(rfc_resp4, sizeof rfc_resp4, &m, err, sizeof err), 0);
  assert_int_equal(m.cls, HP_STUN_SUCCESS);
  assert_int_equal(m.method, HP_STUN_BINDING);
  assert_int_equal(m.fingerprint, 1);
  assert_int_equal(m.integrity, 1);
  expect_addr(hp__stun_mapped(&m), "192.0.2.1:32853");
}

static void test_rfc5769_response_v6(void **state) {
  hp__stun_msg m;
  char err[160];
  (void)state;
  assert_int_equal(hp__stun_decode(rfc_resp6, sizeof rfc_resp6, &m, err, sizeof err), 0);
  assert_int_equal(m.cls, HP_STUN_SUCCESS);
  expect_addr(hp__stun_mapped(&m), "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

static void test_rfc5769_long_term(void **state) {
  hp__stun_msg m;
  char err[160];
  (void)state;
  assert_int_equal(hp__stun_decode(rfc_request_lt, sizeof rfc_request_lt, &m, err, sizeof err), 0);
  assert_int_equal(m.fingerprint, 0);
  assert_int_equal(m.integrity, 1);
  assert_int_equal(m.unknown_required, 0);
}

/* Any flipped bit before the FINGERPRINT attribute is caught by it (CRC-32).
 * (A flip in the attribute's own type makes it another attribute.) */
static void test_fingerprint_mismatch(void **state) {
  uint8_t buf[sizeof rfc_resp4];
  hp__stun_msg m;
  char err[160];
  size_t i;
  (void)state;
  for (i = HP_STUN_HEADER; i < sizeof buf - 8; i++) {
    memcpy(buf, rfc_resp4, sizeof buf);
    buf[i] ^= 0x01;
    int r = hp__stun_decode(buf, sizeof buf, &m, err, sizeof err);
    assert_true(r == -EBADMSG || r == -EPROTO);
    assert_true(strlen(err) > 0);
  }
  memcpy(buf, rfc_resp4, sizeof buf);
  buf[27] = 23; /* inside SOFTWARE: structure intact, CRC wrong */
  assert_int_equal(hp__stun_decode(buf, sizeof buf, &m, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, "FINGERPRINT"));
}

static void test_request_encoding(void **state) {
  uint8_t buf[64];
  hp__stun_msg m;
  char err[160];
  int n;
  (void)state;
  assert_int_equal(hp__stun_binding_request(buf, HP_STUN_REQUEST_LEN - 1, txid), -ENOSPC);
  n = hp__stun_binding_request(buf, sizeof buf, txid);
  assert_int_equal(n, HP_STUN_REQUEST_LEN);
  /* Binding request type 0x0001, length 8 (the FINGERPRINT), cookie. */
  assert_int_equal(buf[0], 0x00);
  assert_int_equal(buf[1], 0x01);
  assert_int_equal(buf[2], 0x00);
  assert_int_equal(buf[3], 0x08);
  assert_int_equal(hp__stun_decode(buf, (size_t)n, &m, err, sizeof err), 0);
  assert_int_equal(m.cls, HP_STUN_REQUEST);
  assert_int_equal(m.method, HP_STUN_BINDING);
  assert_int_equal(m.fingerprint, 1);
  assert_memory_equal(m.txid, txid, sizeof txid);
}

static void test_response_roundtrip(void **state) {
  static const char *addrs[] = {"198.51.100.6:28121", "203.0.113.6:1", "0.0.0.0:65535",
                                "[2001:db8::1]:8082", "[::ffff:1.2.3.4]:40000"};
  uint8_t buf[128];
  hp__stun_msg m;
  char err[160];
  size_t i;
  (void)state;
  for (i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
    struct sockaddr_storage ss;
    int n;
    assert_int_equal(hp__addr_parse(addrs[i], strlen(addrs[i]), &ss, NULL), 0);
    n = hp__stun_binding_response(buf, sizeof buf, txid, (struct sockaddr *)&ss);
    assert_true(n > 0);
    assert_int_equal(hp__stun_frame(buf, (size_t)n), n);
    assert_int_equal(hp__stun_decode(buf, (size_t)n, &m, err, sizeof err), 0);
    assert_int_equal(m.cls, HP_STUN_SUCCESS);
    assert_int_equal(m.fingerprint, 1);
    expect_addr(hp__stun_mapped(&m), addrs[i]);
  }
  /* The IPv4 encoding of the RFC's address gives the RFC's attribute. */
  {
    struct sockaddr_storage ss;
    assert_int_equal(hp__addr_parse("192.0.2.1:32853", 15, &ss, NULL), 0);
    assert_int_equal(hp__stun_binding_response(buf, sizeof buf, txid, (struct sockaddr *)&ss), 40);
    assert_memory_equal(buf + 20, rfc_resp4 + 36, 12);
  }
}

/* A stream: two messages back to back, read in pieces. */
static void test_frame_stream(void **state) {
  uint8_t buf[256];
  size_t n = 0, i;
  (void)state;
  memcpy(buf, rfc_resp4, sizeof rfc_resp4);
  n = sizeof rfc_resp4;
  memcpy(buf + n, rfc_resp6, sizeof rfc_resp6);
  n += sizeof rfc_resp6;
  for (i = 0; i < HP_STUN_HEADER; i++)
    assert_int_equal(hp__stun_frame(buf, i), 0);
  assert_int_equal(hp__stun_frame(buf, n), (long)sizeof rfc_resp4);
  assert_int_equal(hp__stun_frame(buf + sizeof rfc_resp4, n - sizeof rfc_resp4),
                   (long)sizeof rfc_resp6);
  /* Not STUN: an HTTP answer, a bad cookie, a length not a multiple of 4,
   * a length beyond the cap. */
  assert_int_equal(hp__stun_frame((const uint8_t *)"HTTP/1.1 400 Bad Request\r\n", 26), -EPROTO);
  memcpy(buf, rfc_resp4, sizeof rfc_resp4);
  buf[4] ^= 1;
  assert_int_equal(hp__stun_frame(buf, sizeof rfc_resp4), -EPROTO);
  memcpy(buf, rfc_resp4, sizeof rfc_resp4);
  buf[3] = 0x3d;
  assert_int_equal(hp__stun_frame(buf, sizeof rfc_resp4), -EPROTO);
  buf[2] = 0xff, buf[3] = 0xfc;
  assert_int_equal(hp__stun_frame(buf, sizeof rfc_resp4), -EPROTO);
}

struct bad_case {
  const char *what;
  uint8_t msg[64];
  size_t len;
  int rc;
  const char *errpart;
};

#define HDR(type_hi, type_lo, len)                                                                 \
  type_hi, type_lo, 0x00, len, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12

static const struct bad_case bad[] = {
    {"length field larger than the buffer", {HDR(0x01, 0x01, 8)}, 20, -EPROTO, "length"},
    {"attribute overruns",
     {HDR(0x01, 0x01, 8), 0x00, 0x20, 0x00, 0x08, 0, 1, 0, 0},
     28,
     -EPROTO,
     "overruns"},
    {"XOR-MAPPED-ADDRESS bad family",
     {HDR(0x01, 0x01, 12), 0x00, 0x20, 0x00, 0x08, 0, 3, 0, 0, 1, 2, 3, 4},
     32,
     -EPROTO,
     "family"},
    {"XOR-MAPPED-ADDRESS v6 family with v4 size",
     {HDR(0x01, 0x01, 12), 0x00, 0x20, 0x00, 0x08, 0, 2, 0, 0, 1, 2, 3, 4},
     32,
     -EPROTO,
     "family"},
    {"MAPPED-ADDRESS too short",
     {HDR(0x01, 0x01, 4), 0x00, 0x01, 0x00, 0x00},
     24,
     -EPROTO,
     "short"},
    {"ERROR-CODE class 7",
     {HDR(0x01, 0x11, 8), 0x00, 0x09, 0x00, 0x04, 0, 0, 7, 0},
     28,
     -EPROTO,
     "class"},
    {"ERROR-CODE number 100",
     {HDR(0x01, 0x11, 8), 0x00, 0x09, 0x00, 0x04, 0, 0, 4, 100},
     28,
     -EPROTO,
     "number"},
    {"FINGERPRINT of 8 bytes",
     {HDR(0x01, 0x01, 12), 0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0},
     32,
     -EPROTO,
     "FINGERPRINT"},
    {"top bits set", {HDR(0xc1, 0x01, 0)}, 20, -EPROTO, "not a STUN"},
    {"shorter than a header", {0x01, 0x01, 0x00}, 3, -EPROTO, "shorter"},
};

static void test_bad_table(void **state) {
  size_t i;
  (void)state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hp__stun_msg m;
    char err[160] = "";
    int r = hp__stun_decode(bad[i].msg, bad[i].len, &m, err, sizeof err);
    if (r != bad[i].rc || !strstr(err, bad[i].errpart))
      fail_msg("%s: rc %d err '%s'", bad[i].what, r, err);
  }
}

static void test_error_response(void **state) {
  /* 420 "Unknown attribute", an unknown comprehension-required attribute
   * 0x7fff, an unknown optional one 0xc001, and a second ERROR-CODE that
   * is ignored (the first counts). */
  static const uint8_t msg[] = {HDR(0x01, 0x11, 44),
                                0x00,
                                0x09,
                                0x00,
                                0x15,
                                0,
                                0,
                                4,
                                20,
                                'U',
                                'n',
                                'k',
                                'n',
                                'o',
                                'w',
                                'n',
                                '\n',
                                'a',
                                't',
                                't',
                                'r',
                                'i',
                                'b',
                                'u',
                                't',
                                'e',
                                0,
                                0,
                                0,
                                0x7f,
                                0xff,
                                0x00,
                                0x00,
                                0xc0,
                                0x01,
                                0x00,
                                0x00,
                                0x00,
                                0x09,
                                0x00,
                                0x04,
                                0,
                                0,
                                5,
                                0};
  hp__stun_msg m;
  char err[160];
  (void)state;
  assert_int_equal(hp__stun_decode(msg, sizeof msg, &m, err, sizeof err), 0);
  assert_int_equal(m.cls, HP_STUN_ERROR);
  assert_int_equal(m.method, HP_STUN_BINDING);
  assert_int_equal(m.error_code, 420);
  assert_string_equal(m.reason, "Unknown?attribute");
  assert_int_equal(m.unknown_required, 1);
  assert_null(hp__stun_mapped(&m));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc5769_request),
      cmocka_unit_test(test_rfc5769_response_v4),
      cmocka_unit_test(test_rfc5769_response_v6),
      cmocka_unit_test(test_rfc5769_long_term),
      cmocka_unit_test(test_fingerprint_mismatch),
      cmocka_unit_test(test_request_encoding),
      cmocka_unit_test(test_response_roundtrip),
      cmocka_unit_test(test_frame_stream),
      cmocka_unit_test(test_bad_table),
      cmocka_unit_test(test_error_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
