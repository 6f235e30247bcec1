/*
 * handshake.c - the secure channel's key exchange (handshake.h). Every
 * primitive is libsodium's: crypto_kx (X25519 + BLAKE2b session keys),
 * crypto_generichash (BLAKE2b: transcript, key mixing), crypto_kdf (subkeys),
 * crypto_auth (HMAC-SHA-512-256: key confirmation).
 */
#include "handshake.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define MAGIC "HPS"
#define T_HELLO 1
#define T_CONFIRM 2
#define DS_TRANSCRIPT "holepunch handshake v1"
#define DS_KDF "hpchan01" /* crypto_kdf_CONTEXTBYTES */

enum { K_A2B = 1, K_B2A = 2, K_CONFIRM_A = 3, K_CONFIRM_B = 4 };

static int say(char *why, size_t whylen, int err, const char *msg) {
  if (why && whylen)
    snprintf(why, whylen, "%s", msg);
  return err;
}

static void put_msg(uint8_t out[HP_HS_MSG_LEN], int type, int mode, const uint8_t body[32]) {
  memcpy(out, MAGIC, 3);
  out[3] = HP_HS_VERSION;
  out[4] = (uint8_t)type;
  out[5] = (uint8_t)mode;
  memcpy(out + 6, body, 32);
}

static void absorb_str(crypto_generichash_state *s, const char *str) {
  uint8_t n = (uint8_t)strlen(str); /* ids and session are at most 64 bytes */
  crypto_generichash_update(s, &n, 1);
  crypto_generichash_update(s, (const uint8_t *)str, n);
}

int hp__hs_init(hp__hs *h, const hp__hs_params *p, uint8_t hello_out[HP_HS_MSG_LEN]) {
  if (!h || !p || !hello_out || !p->session || !p->own_id || !p->peer_id ||
      (p->role != 'a' && p->role != 'b') || strlen(p->session) > HP_SESSION_HEX ||
      strlen(p->own_id) > HP_ID_MAX || strlen(p->peer_id) > HP_ID_MAX)
    return -EINVAL;
  if (sodium_init() < 0)
    return -EIO;
  memset(h, 0, sizeof *h);
  h->role = p->role;
  h->with_psk = p->psk != NULL;
  if (p->psk)
    memcpy(h->psk, p->psk, HP_HS_PSK_BYTES);
  snprintf(h->session, sizeof h->session, "%s", p->session);
  /* Ids in role order, so both sides hash the same transcript. */
  snprintf(h->id_a, sizeof h->id_a, "%s", p->role == 'a' ? p->own_id : p->peer_id);
  snprintf(h->id_b, sizeof h->id_b, "%s", p->role == 'a' ? p->peer_id : p->own_id);
  crypto_kx_keypair(h->epk, h->esk);
  put_msg(hello_out, T_HELLO, h->with_psk, h->epk);
  h->st = HP_HS_WAIT_HELLO;
  return 0;
}

static void fail(hp__hs *h) {
  hp__hs_wipe(h);
  h->st = HP_HS_FAILED;
}

/* The peer's HELLO is in h->in: derive everything, write our CONFIRM. */
static int on_hello(hp__hs *h, uint8_t out[HP_HS_MSG_LEN], char *why, size_t whylen) {
  crypto_generichash_state s;
  uint8_t rx[32], tx[32], master[32], mac[32], hdr[2];
  const uint8_t *pk_a, *pk_b;
  int r;

  if (h->in[5] > 1)
    return say(why, whylen, -EPROTO, "the peer's handshake has an unknown mode");
  if (h->in[5] != h->with_psk)
    return say(why, whylen, -EACCES,
               h->with_psk
                   ? "the peer does not know the code: it has none (started with ROOM, not --code)"
                   : "the peer has a code and we have none (start both with --code)");
  memcpy(h->peer_epk, h->in + 6, 32);
  pk_a = h->role == 'a' ? h->epk : h->peer_epk;
  pk_b = h->role == 'a' ? h->peer_epk : h->epk;
  /* X25519 of the ephemeral keys, hashed with both public keys by
   * crypto_kx; a is the kx "client", b the "server". -1 means a weak
   * (low-order) peer key. */
  if (h->role == 'a')
    r = crypto_kx_client_session_keys(rx, tx, h->epk, h->esk, h->peer_epk);
  else
    r = crypto_kx_server_session_keys(rx, tx, h->epk, h->esk, h->peer_epk);
  sodium_memzero(h->esk, sizeof h->esk);
  if (r != 0)
    return say(why, whylen, -EPROTO, "the peer's ephemeral key is not a valid X25519 key");

  hdr[0] = HP_HS_VERSION;
  hdr[1] = (uint8_t)h->with_psk;
  crypto_generichash_init(&s, NULL, 0, sizeof h->th);
  crypto_generichash_update(&s, (const uint8_t *)DS_TRANSCRIPT, sizeof DS_TRANSCRIPT - 1);
  crypto_generichash_update(&s, hdr, sizeof hdr);
  absorb_str(&s, h->session);
  absorb_str(&s, h->id_a);
  absorb_str(&s, h->id_b);
  crypto_generichash_update(&s, pk_a, 32);
  crypto_generichash_update(&s, pk_b, 32);
  crypto_generichash_final(&s, h->th, sizeof h->th);

  /* master = BLAKE2b keyed by the PSK over transcript || kx(a->b) ||
   * kx(b->a): without the PSK nobody computes it, even with the X25519
   * secret; without the X25519 secret nobody does either. */
  crypto_generichash_init(&s, h->with_psk ? h->psk : NULL, h->with_psk ? HP_HS_PSK_BYTES : 0,
                          sizeof master);
  crypto_generichash_update(&s, h->th, sizeof h->th);
  crypto_generichash_update(&s, h->role == 'a' ? tx : rx, 32);
  crypto_generichash_update(&s, h->role == 'a' ? rx : tx, 32);
  crypto_generichash_final(&s, master, sizeof master);
  sodium_memzero(rx, sizeof rx);
  sodium_memzero(tx, sizeof tx);
  sodium_memzero(&s, sizeof s);

  crypto_kdf_derive_from_key(h->tx, sizeof h->tx, h->role == 'a' ? K_A2B : K_B2A, DS_KDF, master);
  crypto_kdf_derive_from_key(h->rx, sizeof h->rx, h->role == 'a' ? K_B2A : K_A2B, DS_KDF, master);
  crypto_kdf_derive_from_key(h->confirm_own, 32, h->role == 'a' ? K_CONFIRM_A : K_CONFIRM_B, DS_KDF,
                             master);
  crypto_kdf_derive_from_key(h->confirm_peer, 32, h->role == 'a' ? K_CONFIRM_B : K_CONFIRM_A,
                             DS_KDF, master);
  sodium_memzero(master, sizeof master);

  crypto_auth(mac, h->th, sizeof h->th, h->confirm_own);
  put_msg(out, T_CONFIRM, h->with_psk, mac);
  h->st = HP_HS_WAIT_CONFIRM;
  return 0;
}

int hp__hs_feed(hp__hs *h, const uint8_t *in, size_t len, size_t *consumed,
                uint8_t out[HP_HS_MSG_LEN], int *have_out, char *why, size_t whylen) {
  size_t used = 0;
  int r;

  *consumed = 0;
  *have_out = 0;
  if (why && whylen)
    why[0] = '\0';
  if (h->st == HP_HS_DONE)
    return HP_HS_DONE_OK;
  if (h->st == HP_HS_FAILED)
    return say(why, whylen, -EPROTO, "the handshake failed already");
  while (used < len) {
    size_t take = HP_HS_MSG_LEN - h->inlen;
    if (take > len - used)
      take = len - used;
    memcpy(h->in + h->inlen, in + used, take);
    h->inlen += take;
    used += take;
    *consumed = used;
    /* Refuse a stranger at its first bytes, not after 38 of them. */
    if (memcmp(h->in, MAGIC, h->inlen < 3 ? h->inlen : 3) != 0) {
      fail(h);
      return say(why, whylen, -EPROTO, "the peer does not speak the secure channel protocol");
    }
    if (h->inlen > 3 && h->in[3] != HP_HS_VERSION) {
      fail(h);
      return say(why, whylen, -EPROTO,
                 "the peer speaks another version of the secure channel protocol");
    }
    if (h->inlen < HP_HS_MSG_LEN)
      return HP_HS_AGAIN;
    h->inlen = 0;
    if (h->st == HP_HS_WAIT_HELLO) {
      if (h->in[4] != T_HELLO) {
        fail(h);
        return say(why, whylen, -EPROTO, "the peer's handshake is out of order");
      }
      r = on_hello(h, out, why, whylen);
      if (r < 0) {
        fail(h);
        return r;
      }
      *have_out = 1;
      continue;
    }
    /* HP_HS_WAIT_CONFIRM */
    if (h->in[4] != T_CONFIRM || h->in[5] != h->with_psk) {
      fail(h);
      return say(why, whylen, -EPROTO, "the peer's handshake is out of order");
    }
    if (crypto_auth_verify(h->in + 6, h->th, sizeof h->th, h->confirm_peer) != 0) {
      r = say(why, whylen, -EACCES,
              h->with_psk ? "the peer does not know the code: wrong code, or someone else "
                            "joined the room"
                          : "the peer's key confirmation does not match the session");
      fail(h); /* wipes with_psk too: the sentence first */
      return r;
    }
    sodium_memzero(h->confirm_own, sizeof h->confirm_own);
    sodium_memzero(h->confirm_peer, sizeof h->confirm_peer);
    sodium_memzero(h->psk, sizeof h->psk);
    h->st = HP_HS_DONE;
    return HP_HS_DONE_OK;
  }
  return HP_HS_AGAIN;
}

void hp__hs_keys(const hp__hs *h, uint8_t tx[HP_HS_KEY_BYTES], uint8_t rx[HP_HS_KEY_BYTES]) {
  memcpy(tx, h->tx, HP_HS_KEY_BYTES);
  memcpy(rx, h->rx, HP_HS_KEY_BYTES);
}

void hp__hs_wipe(hp__hs *h) {
  hp__hs_state st = h->st;
  sodium_memzero(h, sizeof *h);
  h->st = st;
}
