#!/usr/bin/env python3
"""Known-answer vectors for lopower's WireGuard handshake engine.

The vectors come from implementations that share no code with lopower's
(libsodium for X25519/ChaCha20-Poly1305, OpenSSL 3 for BLAKE2s):

  * the Noise handshake itself: the PyPI package `noiseprotocol`, configured
    as Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s with WireGuard's identifier as
    the prologue and fixed ephemeral keys;
  * the same handshake written a second time below straight from the
    WireGuard whitepaper (section 5.4), with CPython's own BLAKE2s
    (`hashlib.blake2s`, not OpenSSL) and the stdlib `hmac`; the script
    refuses to write anything unless both agree byte for byte;
  * MAC1, MAC2 and the cookie: keyed BLAKE2s-128 from `hashlib.blake2s`;
  * the cookie reply's XChaCha20-Poly1305: HChaCha20 in pure Python below
    plus `cryptography`'s ChaCha20-Poly1305, cross-checked against PyNaCl's
    crypto_aead_xchacha20poly1305_ietf_encrypt.

Run it (the C++ tests read the committed JSON; they never need Python):

    python3 -m venv /tmp/wgvenv
    /tmp/wgvenv/bin/pip install noiseprotocol==0.3.1 cryptography==50.0.2 pynacl==1.6.2
    /tmp/wgvenv/bin/python tests/unit/wireguard/gen_vectors.py > tests/unit/wireguard/vectors.json

The output is deterministic: running it again must give the same file.
"""

import hashlib
import hmac
import importlib.metadata
import json
import struct
import sys
import warnings

import nacl.bindings
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from noise.connection import Keypair, NoiseConnection

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"
# Fixed ephemerals are the point here; noiseprotocol warns about them.
warnings.filterwarnings("ignore", message="One of ephemeral keypairs is already set")
PINNED = {"noiseprotocol": "0.3.1", "cryptography": "50.0.2", "pynacl": "1.6.2"}


def fixed(label: str, n: int = 32) -> bytes:
    """A fixed, reproducible byte string named by `label`."""
    return hashlib.sha256(b"lopower wireguard vector: " + label.encode()).digest()[:n]


def clamp(k: bytes) -> bytes:
    b = bytearray(k)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


def public_of(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def dh(private: bytes, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(public))


# --- primitives from the whitepaper, on CPython's own BLAKE2s -----------------

def HASH(data: bytes) -> bytes:
    return hashlib.blake2s(data).digest()


def MAC(key: bytes, data: bytes) -> bytes:
    return hashlib.blake2s(data, key=key, digest_size=16).digest()


def HMAC(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2s).digest()


def KDF(n: int, key: bytes, data: bytes):
    t0 = HMAC(key, data)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i]))
        out.append(prev)
    return out


def AEAD(key: bytes, counter: int, plain: bytes, auth: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), plain, auth)


def rotl32(v: int, c: int) -> int:
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2), straight from the spec."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl32(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl32(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl32(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl32(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def XAEAD(key: bytes, nonce24: bytes, plain: bytes, auth: bytes) -> bytes:
    subkey = hchacha20(key, nonce24[:16])
    ours = ChaCha20Poly1305(subkey).encrypt(b"\0" * 4 + nonce24[16:], plain, auth)
    theirs = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, auth, nonce24, key)
    assert ours == theirs, "HChaCha20 + ChaCha20-Poly1305 disagrees with libsodium's XChaCha20-Poly1305"
    return ours


def tai64n(seconds: int, nanoseconds: int) -> bytes:
    # Label 2^62 + 10 + seconds, as the Linux module and wireguard-go write it.
    return struct.pack(">QI", 0x400000000000000A + seconds, nanoseconds)


# --- the handshake, once with noiseprotocol and once from the whitepaper -------

def noise_handshake(case):
    """Messages and transport keys from the `noiseprotocol` package."""
    psk = case["psk"] or b"\0" * 32

    def conn(initiator: bool):
        c = NoiseConnection.from_name(CONSTRUCTION)
        c.set_psks(psk)
        c.set_prologue(IDENTIFIER)
        if initiator:
            c.set_as_initiator()
            c.set_keypair_from_private_bytes(Keypair.STATIC, case["i_static"])
            c.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, public_of(case["r_static"]))
            c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, case["i_ephemeral"])
        else:
            c.set_as_responder()
            c.set_keypair_from_private_bytes(Keypair.STATIC, case["r_static"])
            c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, case["r_ephemeral"])
        c.start_handshake()
        return c

    ini, res = conn(True), conn(False)
    body1 = bytes(ini.write_message(case["timestamp"]))          # e, es, s, ss, {t}
    assert bytes(res.read_message(body1)) == case["timestamp"]
    body2 = bytes(res.write_message(b""))                        # e, ee, se, psk, {}
    assert bytes(ini.read_message(body2)) == b""
    assert ini.handshake_finished and res.handshake_finished
    enc, dec = ini.noise_protocol.cipher_state_encrypt, ini.noise_protocol.cipher_state_decrypt
    keepalive = ini.encrypt(b"")  # first transport message body from the initiator: counter 0, empty
    assert res.decrypt(keepalive) == b""
    return body1, body2, bytes(enc.k), bytes(dec.k), bytes(keepalive)


def whitepaper_handshake(case):
    """The same handshake written from the whitepaper's equations."""
    psk = case["psk"] or b"\0" * 32
    si, sr = case["i_static"], case["r_static"]
    ei, er = case["i_ephemeral"], case["r_ephemeral"]
    spub_i, spub_r, epub_i, epub_r = public_of(si), public_of(sr), public_of(ei), public_of(er)

    c = HASH(CONSTRUCTION)
    h = HASH(c + IDENTIFIER)
    h = HASH(h + spub_r)
    # e
    c = KDF(1, c, epub_i)[0]
    h = HASH(h + epub_i)
    # es
    c, k = KDF(2, c, dh(ei, spub_r))
    # s
    enc_static = AEAD(k, 0, spub_i, h)
    h = HASH(h + enc_static)
    # ss
    c, k = KDF(2, c, dh(si, spub_r))
    # {t}
    enc_time = AEAD(k, 0, case["timestamp"], h)
    h = HASH(h + enc_time)
    body1 = epub_i + enc_static + enc_time

    # e
    c = KDF(1, c, epub_r)[0]
    h = HASH(h + epub_r)
    # ee, se
    c = KDF(1, c, dh(er, epub_i))[0]
    c = KDF(1, c, dh(er, spub_i))[0]
    # psk
    c, tau, k = KDF(3, c, psk)
    h = HASH(h + tau)
    # {}
    enc_nothing = AEAD(k, 0, b"", h)
    h = HASH(h + enc_nothing)
    body2 = epub_r + enc_nothing

    send_i, recv_i = KDF(2, c, b"")
    keepalive = AEAD(send_i, 0, b"", b"")
    return body1, body2, send_i, recv_i, keepalive


def make_case(name: str, with_psk: bool):
    seconds, nanos = 1700000000, 5 << 24  # nanoseconds already whitened (multiple of 2^24)
    case = {
        "i_static": clamp(fixed(name + " initiator static")),
        "r_static": clamp(fixed(name + " responder static")),
        "i_ephemeral": clamp(fixed(name + " initiator ephemeral")),
        "r_ephemeral": clamp(fixed(name + " responder ephemeral")),
        "psk": fixed(name + " psk") if with_psk else None,
        "timestamp": tai64n(seconds, nanos),
        "i_index": struct.unpack("<I", fixed(name + " initiator index", 4))[0],
        "r_index": struct.unpack("<I", fixed(name + " responder index", 4))[0],
    }
    noise = noise_handshake(case)
    paper = whitepaper_handshake(case)
    if noise != paper:
        sys.exit(f"{name}: noiseprotocol and the whitepaper equations disagree")
    body1, body2, send_i, recv_i, keepalive = noise

    spub_i, spub_r = public_of(case["i_static"]), public_of(case["r_static"])
    # Initiation: type 1, reserved, sender index (LE), e, {s}, {t}, mac1, mac2.
    init = bytes([1, 0, 0, 0]) + struct.pack("<I", case["i_index"]) + body1
    init += MAC(HASH(LABEL_MAC1 + spub_r), init) + b"\0" * 16
    assert len(init) == 148
    # Response: type 2, reserved, sender index, receiver index, e, {}, mac1, mac2.
    resp = bytes([2, 0, 0, 0]) + struct.pack("<II", case["r_index"], case["i_index"]) + body2
    resp += MAC(HASH(LABEL_MAC1 + spub_i), resp) + b"\0" * 16
    assert len(resp) == 92

    out = {
        "name": name,
        "initiator_static_private": case["i_static"].hex(),
        "initiator_static_public": spub_i.hex(),
        "responder_static_private": case["r_static"].hex(),
        "responder_static_public": spub_r.hex(),
        "initiator_ephemeral_private": case["i_ephemeral"].hex(),
        "responder_ephemeral_private": case["r_ephemeral"].hex(),
        "preshared_key": case["psk"].hex() if case["psk"] else None,
        "timestamp": case["timestamp"].hex(),
        "timestamp_unix_seconds": seconds,
        "timestamp_nanoseconds": nanos,
        "initiator_index": case["i_index"],
        "responder_index": case["r_index"],
        "initiation": init.hex(),
        "response": resp.hex(),
        "initiator_send_key": send_i.hex(),
        "initiator_receive_key": recv_i.hex(),
        "keepalive_from_initiator": keepalive.hex(),
    }
    return out, init, resp, spub_r


def make_cookie_vector(init: bytes, resp: bytes, responder_public: bytes, initiator_public: bytes):
    """A cookie reply to the initiation (from its responder), and the initiation re-MACed with it."""
    secret = fixed("cookie secret")
    nonce = fixed("cookie nonce", 24)
    ip4 = bytes([198, 51, 100, 7])
    port = 51820
    cookie = MAC(secret, ip4 + struct.pack(">H", port))
    mac1 = init[116:132]
    reply = bytes([3, 0, 0, 0]) + init[4:8] + nonce
    reply += XAEAD(HASH(LABEL_COOKIE + responder_public), nonce, cookie, mac1)
    assert len(reply) == 64
    init_mac2 = init[:132] + MAC(cookie, init[:132])

    # The same for an IPv6 source, answering the response (cookie under the initiator's key).
    ip6 = bytes.fromhex("20010db8000000000000000000000042")
    cookie6 = MAC(secret, ip6 + struct.pack(">H", 40000))
    reply6 = bytes([3, 0, 0, 0]) + resp[4:8] + nonce
    reply6 += XAEAD(HASH(LABEL_COOKIE + initiator_public), nonce, cookie6, resp[60:76])
    resp_mac2 = resp[:76] + MAC(cookie6, resp[:76])
    return {
        "secret": secret.hex(),
        "nonce": nonce.hex(),
        "source_ipv4": ip4.hex(),
        "source_port_v4": port,
        "cookie_v4": cookie.hex(),
        "reply_to_initiation": reply.hex(),
        "initiation_with_mac2": init_mac2.hex(),
        "source_ipv6": ip6.hex(),
        "source_port_v6": 40000,
        "cookie_v6": cookie6.hex(),
        "reply_to_response": reply6.hex(),
        "response_with_mac2": resp_mac2.hex(),
    }


def main():
    for package, version in PINNED.items():
        found = importlib.metadata.version(package)
        if found != version:
            sys.exit(f"{package} {found} installed, the vectors are pinned to {version}")
    with_psk, init, resp, spub_r = make_case("with psk", True)
    without_psk, _, _, _ = make_case("without psk", False)
    doc = {
        "generator": "tests/unit/wireguard/gen_vectors.py",
        "packages": PINNED,
        "handshakes": [with_psk, without_psk],
        "cookie": make_cookie_vector(init, resp, spub_r, bytes.fromhex(with_psk["initiator_static_public"])),
    }
    json.dump(doc, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
