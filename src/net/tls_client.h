/*
 * tls_client.h - a TLS client session (OpenSSL) through memory BIOs, with
 * no I/O of its own: the owner feeds the ciphertext it read
 * (hp__tls_feed), gets plaintext through ops->plain and ciphertext to send
 * through ops->writev. So TLS runs on any byte transport the owner drives
 * (here hp__stream on the libuv loop), with no socket handed to OpenSSL and
 * no second event loop.
 *
 * The peer is verified against CA_FILE or the system store (never
 * optional), its name or IP address checked, SNI sent for names; TLS 1.2 at
 * least. Failures come with a sentence: an untrusted certificate names the
 * reason and CA_FILE, a server that answers in plain text (an HTTP server
 * on the port) says so and suggests http:// or ws://.
 */
#ifndef HP_NET_TLS_CLIENT_H
#define HP_NET_TLS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define HP_TLS_ERR_MAX 256

typedef enum hp__tls_state {
  HP_TLS_HANDSHAKE = 0, /* ClientHello sent, waiting for the server */
  HP_TLS_OPEN,          /* handshake done, peer verified */
  HP_TLS_SHUTDOWN,      /* our close_notify sent */
  HP_TLS_FAILED         /* see hp__tls_error(); nothing more is read or written */
} hp__tls_state;

typedef struct hp__tls hp__tls;

typedef struct hp__tls_ops {
  /** Ciphertext to send, after everything before. 0 or -errno. */
  int (*writev)(void *arg, const struct iovec *iov, int iovcnt);
  /** Plaintext received (state HP_TLS_OPEN). The owner must not destroy the
   * session from here. */
  void (*plain)(void *arg, const uint8_t *data, size_t len);
} hp__tls_ops;

/** A session for host (a name: SNI + name check; an IP: address check),
 * trusting ca_file (NULL: the system store). Sends nothing yet. 0, or
 * -errno with a sentence in err (e.g. CA_FILE cannot be read). */
int hp__tls_create(const char *host, const char *ca_file, const hp__tls_ops *ops, void *arg,
                   hp__tls **out, char *err, size_t errlen);
void hp__tls_destroy(hp__tls *t);

/** Send the ClientHello. 0 or -errno (then HP_TLS_FAILED). */
int hp__tls_start(hp__tls *t);
/** Ciphertext from the transport; plaintext goes to ops->plain. The state
 * after (HP_TLS_FAILED: the reason in hp__tls_error). */
hp__tls_state hp__tls_feed(hp__tls *t, const uint8_t *data, size_t len);
/** Encrypt and send len bytes (state HP_TLS_OPEN). 0 or -errno. */
int hp__tls_write(hp__tls *t, const void *data, size_t len);
/** Send close_notify (once). */
void hp__tls_shutdown(hp__tls *t);

hp__tls_state hp__tls_get_state(const hp__tls *t);
const char *hp__tls_error(const hp__tls *t);

#endif
