/*
 * tls_client.c - OpenSSL client through memory BIOs (see tls_client.h).
 *
 * OpenSSL reads ciphertext from rbio (filled by hp__tls_feed) and writes
 * ciphertext into wbio, which flush() empties into the owner's transport
 * after every OpenSSL call that may have produced some (handshake, write,
 * read: TLS 1.3 tickets and key updates, shutdown).
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAIN_CHUNK 16384 /* one TLS record's worth of plaintext per SSL_read */
#define OUT_CHUNK 16384

struct hp__tls {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  const hp__tls_ops *ops;
  void *arg;
  hp__tls_state state;
  char err[HP_TLS_ERR_MAX];
};

static void set_err(hp__tls *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(hp__tls *t, const char *fmt, ...) {
  va_list ap;

  if (t->state == HP_TLS_FAILED)
    return;
  t->state = HP_TLS_FAILED;
  va_start(ap, fmt);
  vsnprintf(t->err, sizeof(t->err), fmt, ap);
  va_end(ap);
}

/* The reason of a failed handshake, in words a user can act on. */
static void handshake_failed(hp__tls *t) {
  unsigned long e = ERR_peek_error();
  long v = SSL_get_verify_result(t->ssl);
  int reason = ERR_GET_REASON(e);

  if (v != X509_V_OK) {
    set_err(
        t,
        "the server's TLS certificate is not trusted: %s (check CA_FILE, or the system CA store "
        "when it is not set)",
        X509_verify_cert_error_string(v));
  } else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
             reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    set_err(t, "the server does not speak TLS; use http:// or ws://");
  } else if (e) {
    char buf[160];
    ERR_error_string_n(e, buf, sizeof(buf));
    set_err(t, "the TLS handshake failed: %s", buf);
  } else {
    set_err(t, "the TLS handshake failed");
  }
  ERR_clear_error();
}

/* Move what OpenSSL wrote into wbio to the transport. */
static int flush(hp__tls *t) {
  char buf[OUT_CHUNK];
  int n;

  while ((n = BIO_read(t->wbio, buf, sizeof(buf))) > 0) {
    struct iovec v = {buf, (size_t)n};
    int rc = t->ops->writev(t->arg, &v, 1);
    if (rc < 0) {
      set_err(t, "writing to the server failed: %s", strerror(-rc));
      return rc;
    }
  }
  return 0;
}

int hp__tls_create(const char *host, const char *ca_file, const hp__tls_ops *ops, void *arg,
                   hp__tls **out, char *err, size_t errlen) {
  unsigned char ip[16];
  const int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
  hp__tls *t = calloc(1, sizeof(*t));
  int rc = -ENOMEM;

  *out = NULL;
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  t->ops = ops;
  t->arg = arg;
  t->state = HP_TLS_HANDSHAKE;
  t->ctx = SSL_CTX_new(TLS_client_method());
  if (!t->ctx) {
    snprintf(err, errlen, "cannot create a TLS context");
    goto out;
  }
  SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
  if (ca_file && *ca_file) {
    if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
      snprintf(err, errlen, "cannot load the CA bundle %s (CA_FILE)", ca_file);
      rc = -EINVAL;
      goto out;
    }
  } else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
    snprintf(err, errlen, "cannot load the system CA store");
    rc = -EINVAL;
    goto out;
  }
  t->ssl = SSL_new(t->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    t->rbio = t->wbio = NULL;
    snprintf(err, errlen, "out of memory for TLS");
    goto out;
  }
  /* An empty read BIO means "wait for more", not end of file. */
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_connect_state(t->ssl);
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1) {
      snprintf(err, errlen, "cannot check the server's address %s", host);
      rc = -EINVAL;
      goto out;
    }
  } else if (SSL_set_tlsext_host_name(t->ssl, host) != 1 || SSL_set1_host(t->ssl, host) != 1) {
    snprintf(err, errlen, "cannot use the server name %s for TLS", host);
    rc = -EINVAL;
    goto out;
  }
  *out = t;
  t = NULL;
  rc = 0;
out:
  hp__tls_destroy(t);
  ERR_clear_error();
  return rc;
}

void hp__tls_destroy(hp__tls *t) {
  if (!t)
    return;
  SSL_free(t->ssl); /* frees the BIOs */
  SSL_CTX_free(t->ctx);
  free(t);
}

static void handshake(hp__tls *t) {
  int r = SSL_do_handshake(t->ssl);

  if (r == 1) {
    t->state = HP_TLS_OPEN;
    flush(t);
    return;
  }
  switch (SSL_get_error(t->ssl, r)) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    flush(t);
    return;
  default:
    handshake_failed(t);
    flush(t); /* the alert, if any */
    return;
  }
}

int hp__tls_start(hp__tls *t) {
  if (t->state != HP_TLS_HANDSHAKE)
    return -EINVAL;
  handshake(t);
  return t->state == HP_TLS_FAILED ? -EPROTO : 0;
}

static void read_plain(hp__tls *t) {
  uint8_t buf[PLAIN_CHUNK];

  while (t->state == HP_TLS_OPEN || t->state == HP_TLS_SHUTDOWN) {
    int n = SSL_read(t->ssl, buf, sizeof(buf));
    if (n > 0) {
      if (t->state == HP_TLS_OPEN)
        t->ops->plain(t->arg, buf, (size_t)n);
      continue;
    }
    switch (SSL_get_error(t->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      flush(t);
      return;
    case SSL_ERROR_ZERO_RETURN:
      /* close_notify: the TLS stream ended; the owner sees the TCP EOF. */
      flush(t);
      return;
    default: {
      unsigned long e = ERR_get_error();
      char ebuf[160];
      ERR_error_string_n(e, ebuf, sizeof(ebuf));
      set_err(t, "TLS failed: %s", e ? ebuf : "unexpected end of the stream");
      ERR_clear_error();
      return;
    }
    }
  }
}

hp__tls_state hp__tls_feed(hp__tls *t, const uint8_t *data, size_t len) {
  if (t->state == HP_TLS_FAILED)
    return t->state;
  if (len && BIO_write(t->rbio, data, (int)len) != (int)len) {
    set_err(t, "out of memory for TLS input");
    return t->state;
  }
  if (t->state == HP_TLS_HANDSHAKE)
    handshake(t);
  if (t->state == HP_TLS_OPEN || t->state == HP_TLS_SHUTDOWN)
    read_plain(t);
  return t->state;
}

int hp__tls_write(hp__tls *t, const void *data, size_t len) {
  int r;

  if (t->state != HP_TLS_OPEN)
    return -EPIPE;
  if (!len)
    return 0;
  /* Memory BIOs take everything: SSL_write completes in one call. */
  r = SSL_write(t->ssl, data, (int)len);
  if (r <= 0 || (size_t)r != len) {
    set_err(t, "TLS write failed");
    ERR_clear_error();
    return -EIO;
  }
  return flush(t);
}

void hp__tls_shutdown(hp__tls *t) {
  if (t->state != HP_TLS_OPEN)
    return;
  t->state = HP_TLS_SHUTDOWN;
  (void)SSL_shutdown(t->ssl);
  ERR_clear_error();
  flush(t);
}

hp__tls_state hp__tls_get_state(const hp__tls *t) {
  return t->state;
}

const char *hp__tls_error(const hp__tls *t) {
  return t->state == HP_TLS_FAILED ? t->err : "";
}
