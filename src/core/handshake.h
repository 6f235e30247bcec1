/*
 * handshake.h - the secure channel's key exchange, as a pure state machine
 * (no I/O): bytes in, bytes to send out, keys at the end. The construction
 * and the reason for each step are in docs/PROTOCOL.md ("Secure channel").
 *
 * Both sides send HELLO (version, mode, an ephemeral X25519 key from
 * crypto_kx) at once; on the peer's HELLO each derives the keys from the
 * X25519 result, the pre-shared key of the code (or none) and the
 * transcript hash (version, mode, rendezvous session, both ids in role
 * order, both ephemeral keys), and sends CONFIRM (a crypto_auth MAC of the
 * transcript under its own confirmation key). The peer's CONFIRM verified,
 * the channel has one crypto_secretstream key per direction. A peer without
 * the code cannot produce a valid CONFIRM: the failure comes before any
 * user byte.
 *
 * Every message is HP_HS_MSG_LEN bytes: "HPS", version, type, mode, 32-byte
 * body. hp__hs_feed consumes exactly the handshake's bytes, so that record
 * bytes behind the peer's CONFIRM stay with the caller.
 */
#ifndef HP_HANDSHAKE_H
#define HP_HANDSHAKE_H
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define HP_HS_VERSION 1
#define HP_HS_MSG_LEN 38
#define HP_HS_KEY_BYTES 32 /* crypto_secretstream_xchacha20poly1305_KEYBYTES */
#define HP_HS_PSK_BYTES 32

typedef enum hp__hs_state {
  HP_HS_WAIT_HELLO,   /* our HELLO is out; waiting for the peer's */
  HP_HS_WAIT_CONFIRM, /* our CONFIRM is out; waiting for the peer's */
  HP_HS_DONE,         /* the peer is authenticated (or, without a code, bound to the session) */
  HP_HS_FAILED        /* a bad message or a failed authentication; the secrets are wiped */
} hp__hs_state;

/* What hp__hs_feed returns besides a negative error. */
#define HP_HS_AGAIN 0 /* need more bytes */
#define HP_HS_DONE_OK 1

typedef struct hp__hs_params {
  const char *session; /* the rendezvous session (hex) */
  const char *own_id, *peer_id;
  char role;          /* 'a' or 'b' from the rendezvous; the peer has the other */
  const uint8_t *psk; /* HP_HS_PSK_BYTES from the code, or NULL (no code) */
} hp__hs_params;

typedef struct hp__hs {
  hp__hs_state st;
  char role;
  int with_psk;
  uint8_t psk[HP_HS_PSK_BYTES];
  uint8_t epk[32], esk[32], peer_epk[32];
  uint8_t th[32]; /* transcript hash */
  uint8_t tx[HP_HS_KEY_BYTES], rx[HP_HS_KEY_BYTES];
  uint8_t confirm_own[32], confirm_peer[32];
  char session[HP_SESSION_HEX + 1];
  char id_a[HP_ID_MAX + 1], id_b[HP_ID_MAX + 1];
  uint8_t in[HP_HS_MSG_LEN]; /* the peer's message being assembled */
  size_t inlen;
} hp__hs;

/** Start: fresh ephemeral keys, our HELLO in hello_out. 0, or -EINVAL for
 *  bad parameters (role, ids, session), -EIO if libsodium cannot start. */
int hp__hs_init(hp__hs *h, const hp__hs_params *p, uint8_t hello_out[HP_HS_MSG_LEN]);

/**
 * Feed the peer's bytes in[0..len). *consumed: bytes used (the rest belong
 * to the record layer once DONE). When the peer's HELLO completes, our
 * CONFIRM is written to out and *have_out set to 1 (send it). Returns
 * HP_HS_AGAIN, HP_HS_DONE_OK, or -EPROTO (not our protocol, wrong version,
 * a weak key) / -EACCES (the peer does not know the code, or one side has a
 * code and the other not) with a sentence in why. After an error or DONE
 * nothing more is consumed.
 */
int hp__hs_feed(hp__hs *h, const uint8_t *in, size_t len, size_t *consumed,
                uint8_t out[HP_HS_MSG_LEN], int *have_out, char *why, size_t whylen);

/** After DONE: the secretstream keys, ours to send with and the peer's. */
void hp__hs_keys(const hp__hs *h, uint8_t tx[HP_HS_KEY_BYTES], uint8_t rx[HP_HS_KEY_BYTES]);

/** Wipe every secret (also after DONE, once the keys were taken). */
void hp__hs_wipe(hp__hs *h);

#endif
