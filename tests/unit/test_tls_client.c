/*
 * test_tls_client.c - src/net/tls_client.c without sockets: the client's
 * ciphertext goes to an in-memory OpenSSL server (memory BIOs too) and back.
 * The certificates are made here (P-256, one for 127.0.0.1, one unrelated).
 * Checked: a handshake against the trusted certificate and data both ways;
 * an unrelated CA and a name that does not match are refused with the
 * reason; a plain-HTTP answer is "does not speak TLS"; an unreadable
 * CA_FILE is refused at create.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls_client.h"

typedef struct peer {
  SSL *ssl; /* the server */
  BIO *rbio, *wbio;
  uint8_t plain[256];
  size_t plainlen;
} peer;

/* A self-signed certificate for IP 127.0.0.1 (its own CA), PEM in path. */
static void make_cert(EVP_PKEY **key, X509 **cert, const char *path) {
  X509_NAME *n;
  X509_EXTENSION *ext;
  X509V3_CTX v3;
  FILE *f;

  *key = EVP_EC_gen("P-256");
  assert_non_null(*key);
  *cert = X509_new();
  X509_set_version(*cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(*cert), (long)(uintptr_t)*key & 0x7fffffff);
  X509_gmtime_adj(X509_getm_notBefore(*cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(*cert), 3600);
  X509_set_pubkey(*cert, *key);
  n = X509_get_subject_name(*cert);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"hp test", -1, -1, 0);
  X509_set_issuer_name(*cert, n);
  X509V3_set_ctx(&v3, *cert, *cert, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
  X509_add_ext(*cert, ext, -1);
  X509_EXTENSION_free(ext);
  ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(*cert, ext, -1);
  X509_EXTENSION_free(ext);
  assert_true(X509_sign(*cert, *key, EVP_sha256()) > 0);
  f = fopen(path, "w");
  assert_non_null(f);
  PEM_write_X509(f, *cert);
  fclose(f);
}

static void server_init(peer *p, EVP_PKEY *key, X509 *cert) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
  memset(p, 0, sizeof(*p));
  p->ssl = SSL_new(ctx);
  SSL_CTX_free(ctx); /* the SSL holds a reference */
  p->rbio = BIO_new(BIO_s_mem());
  p->wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(p->rbio, -1);
  SSL_set_bio(p->ssl, p->rbio, p->wbio);
  SSL_set_accept_state(p->ssl);
}

/* The client's ciphertext goes straight into the server's read BIO. */
static int c_writev(void *arg, const struct iovec *iov, int n) {
  peer *p = arg;
  for (int i = 0; i < n; i++)
    assert_int_equal(BIO_write(p->rbio, iov[i].iov_base, (int)iov[i].iov_len), (int)iov[i].iov_len);
  return 0;
}

static void c_plain(void *arg, const uint8_t *d, size_t len) {
  peer *p = arg;
  assert_true(p->plainlen + len <= sizeof(p->plain));
  memcpy(p->plain + p->plainlen, d, len);
  p->plainlen += len;
}

static const hp__tls_ops ops = {c_writev, c_plain};

/* Let the server work on what it got, and give its answer to the client. */
static hp__tls_state pump(peer *p, hp__tls *t) {
  uint8_t buf[16384];
  hp__tls_state st = hp__tls_get_state(t);

  for (int round = 0; round < 10 && st != HP_TLS_FAILED; round++) {
    int n;
    if (!SSL_is_init_finished(p->ssl))
      (void)SSL_do_handshake(p->ssl);
    else
      while ((n = SSL_read(p->ssl, buf, sizeof(buf))) > 0)
        assert_int_equal(SSL_write(p->ssl, buf, n), n); /* echo */
    n = BIO_read(p->wbio, buf, sizeof(buf));
    if (n <= 0)
      break;
    st = hp__tls_feed(t, buf, (size_t)n);
  }
  return st;
}

typedef struct fixture {
  char dir[64], good[96], other[96];
  EVP_PKEY *key, *okey;
  X509 *cert, *ocert;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/hp-test-tls.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->good, sizeof(f->good), "%s/good.pem", f->dir);
  snprintf(f->other, sizeof(f->other), "%s/other.pem", f->dir);
  make_cert(&f->key, &f->cert, f->good);
  make_cert(&f->okey, &f->ocert, f->other);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  unlink(f->good);
  unlink(f->other);
  rmdir(f->dir);
  EVP_PKEY_free(f->key);
  EVP_PKEY_free(f->okey);
  X509_free(f->cert);
  X509_free(f->ocert);
  free(f);
  return 0;
}

static void test_trusted_handshake_and_data(void **state) {
  fixture *f = *state;
  peer p;
  hp__tls *t;
  char err[HP_TLS_ERR_MAX];

  server_init(&p, f->key, f->cert);
  assert_int_equal(hp__tls_create("127.0.0.1", f->good, &ops, &p, &t, err, sizeof(err)), 0);
  assert_int_equal(hp__tls_start(t), 0);
  assert_int_equal(pump(&p, t), HP_TLS_OPEN);
  assert_int_equal(hp__tls_write(t, "ping", 4), 0);
  assert_int_equal(pump(&p, t), HP_TLS_OPEN);
  assert_int_equal(p.plainlen, 4);
  assert_memory_equal(p.plain, "ping", 4);
  hp__tls_shutdown(t);
  assert_int_equal(hp__tls_write(t, "x", 1), -EPIPE);
  hp__tls_destroy(t);
  SSL_free(p.ssl);
}

static void test_untrusted_ca(void **state) {
  fixture *f = *state;
  peer p;
  hp__tls *t;
  char err[HP_TLS_ERR_MAX];

  server_init(&p, f->key, f->cert);
  assert_int_equal(hp__tls_create("127.0.0.1", f->other, &ops, &p, &t, err, sizeof(err)), 0);
  assert_int_equal(hp__tls_start(t), 0);
  assert_int_equal(pump(&p, t), HP_TLS_FAILED);
  assert_non_null(strstr(hp__tls_error(t), "certificate is not trusted"));
  assert_non_null(strstr(hp__tls_error(t), "CA_FILE"));
  hp__tls_destroy(t);
  SSL_free(p.ssl);
}

static void test_name_mismatch(void **state) {
  fixture *f = *state;
  peer p;
  hp__tls *t;
  char err[HP_TLS_ERR_MAX];

  /* Trusted CA, but the certificate is for 127.0.0.1, not this name. */
  server_init(&p, f->key, f->cert);
  assert_int_equal(hp__tls_create("rdv.example", f->good, &ops, &p, &t, err, sizeof(err)), 0);
  assert_int_equal(hp__tls_start(t), 0);
  assert_int_equal(pump(&p, t), HP_TLS_FAILED);
  assert_non_null(strstr(hp__tls_error(t), "hostname mismatch"));
  hp__tls_destroy(t);
  SSL_free(p.ssl);
}

static void test_plain_http_server(void **state) {
  fixture *f = *state;
  peer p;
  hp__tls *t;
  char err[HP_TLS_ERR_MAX];
  const char *ans = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

  server_init(&p, f->key, f->cert);
  assert_int_equal(hp__tls_create("127.0.0.1", f->good, &ops, &p, &t, err, sizeof(err)), 0);
  assert_int_equal(hp__tls_start(t), 0);
  assert_int_equal(hp__tls_feed(t, (const uint8_t *)ans, strlen(ans)), HP_TLS_FAILED);
  assert_string_equal(hp__tls_error(t), "the server does not speak TLS; use http:// or ws://");
  hp__tls_destroy(t);
  SSL_free(p.ssl);
}

static void test_unreadable_ca(void **state) {
  hp__tls *t;
  char err[HP_TLS_ERR_MAX];
  (void)state;

  assert_int_equal(
      hp__tls_create("127.0.0.1", "/nonexistent/ca.pem", &ops, NULL, &t, err, sizeof(err)),
      -EINVAL);
  assert_null(t);
  assert_non_null(strstr(err, "cannot load the CA bundle /nonexistent/ca.pem (CA_FILE)"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trusted_handshake_and_data),
      cmocka_unit_test(test_untrusted_ca),
      cmocka_unit_test(test_name_mismatch),
      cmocka_unit_test(test_plain_http_server),
      cmocka_unit_test(test_unreadable_ca),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
