"""The secure channel of docs/PROTOCOL.md section 8, for the test tools that
play a peer (fake_rdv.py): the handshake and the records, with every
primitive taken from the system's libsodium through ctypes (the same
library the worker uses; nothing cryptographic is written here).

    p = SecurePeer(session, own_id, peer_id, role, psk=None)
    send p.hello(); confirm = p.on_hello(peer_hello_38_bytes); send confirm
    p.check_confirm(peer_confirm_38_bytes)   # raises on a wrong code
    send p.tx_header(); send p.seal(b"data", final=False)
    p.rx_header(header_24_bytes); plaintext, final = p.open(length_2 + body)
"""
import ctypes
import ctypes.util
import hashlib

_lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
if _lib.sodium_init() < 0:
    raise RuntimeError("libsodium cannot start")
_lib.crypto_secretstream_xchacha20poly1305_statebytes.restype = ctypes.c_size_t
_STATE = _lib.crypto_secretstream_xchacha20poly1305_statebytes()
_TAG_MESSAGE = 0
_TAG_FINAL = 3
MSG_LEN = 38
HEADER_LEN = 24
ABYTES = 17


class HandshakeError(Exception):
    pass


def _lp(s):
    b = s.encode()
    return bytes([len(b)]) + b


class SecurePeer:
    def __init__(self, session, own_id, peer_id, role, psk=None):
        self.role = role
        self.mode = 1 if psk else 0
        self.psk = psk
        self.session = session
        self.id_a, self.id_b = (own_id, peer_id) if role == "a" else (peer_id, own_id)
        self.pk = ctypes.create_string_buffer(32)
        self.sk = ctypes.create_string_buffer(32)
        _lib.crypto_kx_keypair(self.pk, self.sk)
        self.txs = ctypes.create_string_buffer(_STATE)
        self.rxs = ctypes.create_string_buffer(_STATE)

    def _msg(self, typ, body):
        return b"HPS" + bytes([1, typ, self.mode]) + body

    def hello(self):
        return self._msg(1, self.pk.raw)

    def _kdf(self, sub_id, master):
        out = ctypes.create_string_buffer(32)
        _lib.crypto_kdf_derive_from_key(out, ctypes.c_size_t(32), ctypes.c_uint64(sub_id),
                                        b"hpchan01", master)
        return out.raw

    def on_hello(self, msg):
        if len(msg) != MSG_LEN or msg[:4] != b"HPS\x01" or msg[4] != 1:
            raise HandshakeError("not a HELLO")
        if msg[5] != self.mode:
            raise HandshakeError("mode differs")
        peer_pk = msg[6:38]
        rx = ctypes.create_string_buffer(32)
        tx = ctypes.create_string_buffer(32)
        f = _lib.crypto_kx_client_session_keys if self.role == "a" else _lib.crypto_kx_server_session_keys
        if f(rx, tx, self.pk, self.sk, peer_pk) != 0:
            raise HandshakeError("weak key")
        pk_a, pk_b = (self.pk.raw, peer_pk) if self.role == "a" else (peer_pk, self.pk.raw)
        h = hashlib.blake2b(digest_size=32)
        for part in (b"holepunch handshake v1", bytes([1, self.mode]), _lp(self.session),
                     _lp(self.id_a), _lp(self.id_b), pk_a, pk_b):
            h.update(part)
        self.th = h.digest()
        a2b, b2a = (tx.raw, rx.raw) if self.role == "a" else (rx.raw, tx.raw)
        master = hashlib.blake2b(self.th + a2b + b2a, digest_size=32, key=self.psk or b"").digest()
        a = self.role == "a"
        self.tx_key = self._kdf(1 if a else 2, master)
        self.rx_key = self._kdf(2 if a else 1, master)
        own, peer = (3, 4) if a else (4, 3)
        self.confirm_peer = self._kdf(peer, master)
        mac = ctypes.create_string_buffer(32)
        _lib.crypto_auth(mac, self.th, ctypes.c_ulonglong(32), self._kdf(own, master))
        return self._msg(2, mac.raw)

    def check_confirm(self, msg):
        if len(msg) != MSG_LEN or msg[:5] != b"HPS\x01\x02":
            raise HandshakeError("not a CONFIRM")
        if _lib.crypto_auth_verify(msg[6:38], self.th, ctypes.c_ulonglong(32), self.confirm_peer) != 0:
            raise HandshakeError("the peer does not know the code")

    def tx_header(self):
        hdr = ctypes.create_string_buffer(HEADER_LEN)
        _lib.crypto_secretstream_xchacha20poly1305_init_push(self.txs, hdr, self.tx_key)
        return hdr.raw

    def rx_header(self, hdr):
        if _lib.crypto_secretstream_xchacha20poly1305_init_pull(self.rxs, hdr, self.rx_key) != 0:
            raise HandshakeError("bad stream header")

    def seal(self, data, final=False):
        n = len(data) + ABYTES
        ad = bytes([n >> 8, n & 0xff])
        out = ctypes.create_string_buffer(n)
        _lib.crypto_secretstream_xchacha20poly1305_push(
            self.txs, out, None, data, ctypes.c_ulonglong(len(data)), ad, ctypes.c_ulonglong(2),
            ctypes.c_ubyte(_TAG_FINAL if final else _TAG_MESSAGE))
        return ad + out.raw

    def open(self, record):
        """record: the 2 length bytes and the message. (plaintext, final)."""
        n = (record[0] << 8) | record[1]
        if len(record) != 2 + n or n < ABYTES:
            raise HandshakeError("bad record length")
        m = ctypes.create_string_buffer(n)
        mlen = ctypes.c_ulonglong(0)
        tag = ctypes.c_ubyte(0)
        if _lib.crypto_secretstream_xchacha20poly1305_pull(
                self.rxs, m, ctypes.byref(mlen), ctypes.byref(tag), record[2:],
                ctypes.c_ulonglong(n), record[:2], ctypes.c_ulonglong(2)) != 0:
            raise HandshakeError("record does not authenticate")
        return m.raw[:mlen.value], tag.value == _TAG_FINAL
