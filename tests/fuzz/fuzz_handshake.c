/*
 * fuzz_handshake.c - hp__hs_feed (src/core/handshake.h), the decoder of the
 * secure channel's handshake messages.
 *
 * Input byte 0: bit 0 chooses where the input goes, bit 1 whether the
 * fuzzing side has a code; byte 1 the feeding step (1..64).
 * Target HELLO: the rest is fed to a fresh side as the peer's first bytes.
 * Target CONFIRM: a real peer's HELLO is fed first, then the rest as the
 * peer's CONFIRM.
 * Contract checked:
 * - results HP_HS_AGAIN, HP_HS_DONE_OK, -EPROTO or -EACCES; an error has a
 *   sentence; *consumed <= len and AGAIN consumes everything; after an error
 *   every call fails; our CONFIRM is produced once at most;
 * - nothing but the real peer's own CONFIRM completes the handshake (the
 *   input cannot forge the MAC): DONE only if the input starts with it.
 */
#include <errno.h>

#include "fuzz.h"
#include "handshake.h"

static const uint8_t psk[HP_HS_PSK_BYTES] = {7, 7, 7};
#define SESSION "00112233445566778899aabbccddeeff"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static hp__hs me, peer;
  uint8_t hello_me[HP_HS_MSG_LEN], hello_peer[HP_HS_MSG_LEN], out[HP_HS_MSG_LEN];
  uint8_t peer_confirm[HP_HS_MSG_LEN];
  const uint8_t *in;
  size_t len, step, off = 0;
  int target_confirm, with_psk, outs = 0, res = HP_HS_AGAIN, have = 0;
  char why[160];
  hp__hs_params pm = {SESSION, "me", "peer", 'b', NULL};
  hp__hs_params pp = {SESSION, "peer", "me", 'a', NULL};

  if (size < 2)
    return 0;
  target_confirm = data[0] & 1;
  with_psk = (data[0] >> 1) & 1;
  step = (size_t)(data[1] & 63) + 1;
  in = data + 2;
  len = size - 2;
  pm.psk = with_psk ? psk : NULL;
  pp.psk = pm.psk;
  FUZZ_CHECK(hp__hs_init(&me, &pm, hello_me) == 0);
  memset(peer_confirm, 0, sizeof peer_confirm);
  if (target_confirm) {
    size_t used;
    FUZZ_CHECK(hp__hs_init(&peer, &pp, hello_peer) == 0);
    FUZZ_CHECK(hp__hs_feed(&peer, hello_me, sizeof hello_me, &used, peer_confirm, &have, why,
                           sizeof why) == HP_HS_AGAIN);
    FUZZ_CHECK(have == 1 && used == HP_HS_MSG_LEN);
    FUZZ_CHECK(hp__hs_feed(&me, hello_peer, sizeof hello_peer, &used, out, &have, why,
                           sizeof why) == HP_HS_AGAIN);
    FUZZ_CHECK(have == 1);
    outs = 1;
  }
  while (off < len) {
    size_t chunk = len - off < step ? len - off : step, used = 99;
    res = hp__hs_feed(&me, in + off, chunk, &used, out, &have, why, sizeof why);
    FUZZ_CHECK(res == HP_HS_AGAIN || res == HP_HS_DONE_OK || res == -EPROTO || res == -EACCES);
    FUZZ_CHECK(used <= chunk);
    outs += have;
    FUZZ_CHECK(outs <= 1);
    if (res < 0) {
      FUZZ_CHECK(fuzz_terminated(why, sizeof why) && why[0] != '\0');
      FUZZ_CHECK(me.st == HP_HS_FAILED);
      FUZZ_CHECK(hp__hs_feed(&me, in, len, &used, out, &have, why, sizeof why) < 0);
      break;
    }
    if (res == HP_HS_AGAIN)
      FUZZ_CHECK(used == chunk);
    off += used;
    if (res == HP_HS_DONE_OK)
      break;
  }
  if (res == HP_HS_DONE_OK) {
    FUZZ_CHECK(target_confirm);
    FUZZ_CHECK(len >= HP_HS_MSG_LEN && memcmp(in, peer_confirm, HP_HS_MSG_LEN) == 0);
  }
  hp__hs_wipe(&me);
  hp__hs_wipe(&peer);
  return 0;
}
