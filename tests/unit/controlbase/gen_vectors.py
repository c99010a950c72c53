#!/usr/bin/env python3
"""Known-answer vectors for lopower's ts2021 transport (controlbase).

ts2021 is Noise_IK_25519_ChaChaPoly_BLAKE2s with the prologue
"Tailscale Control Protocol v<capability version>", the handshake messages
framed in small headers, and transport records whose ChaCha20-Poly1305
nonce carries the counter BIG-endian (the Noise spec, and the noiseprotocol
package, put it little-endian). The vectors come from code that shares
nothing with lopower's (libsodium X25519/ChaCha20-Poly1305, OpenSSL
BLAKE2s):

  * the handshake: the PyPI package `noiseprotocol`, with fixed static and
    ephemeral keys;
  * the same handshake written a second time below from the Noise spec
    (section 5) with CPython's own BLAKE2s (`hashlib.blake2s`) and the
    stdlib `hmac`; the script refuses to write anything unless both agree
    byte for byte, transport keys and handshake hash included;
  * the records: `cryptography`'s ChaCha20-Poly1305 under the split keys,
    with the big-endian nonce. For contrast, one record is sealed the
    Noise-spec way (little-endian nonce, by noiseprotocol itself): a ts2021
    reader must refuse it.

Run it (the C++ tests read the committed JSON; they never need Python):

    python3 -m venv /tmp/tsvenv
    /tmp/tsvenv/bin/pip install noiseprotocol==0.3.1   # pulls cryptography
    /tmp/tsvenv/bin/python tests/unit/controlbase/gen_vectors.py > tests/unit/controlbase/vectors.json

The output is deterministic: running it again must give the same file.
"""

import hashlib
import hmac
import importlib.metadata
import json
import struct
import sys
import warnings

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from noise.connection import Keypair, NoiseConnection

PROTOCOL_NAME = b"Noise_IK_25519_ChaChaPoly_BLAKE2s"
PROLOGUE_PREFIX = b"Tailscale Control Protocol v"
MSG_INITIATION, MSG_RESPONSE, MSG_ERROR, MSG_RECORD = 1, 2, 3, 4
MAX_MESSAGE = 4096
MAX_PLAINTEXT = MAX_MESSAGE - 3 - 16
EARLY_MAGIC = b"\xff\xff\xffTS"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HTTP2_EMPTY_SETTINGS = bytes([0, 0, 0, 0x04, 0, 0, 0, 0, 0])
# A SETTINGS frame as a Go HTTP/2 server opens with (MAX_FRAME_SIZE,
# MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, INITIAL_WINDOW_SIZE).
HTTP2_SERVER_SETTINGS = (bytes([0, 0, 24, 0x04, 0, 0, 0, 0, 0])
                         + struct.pack(">HI", 5, 1 << 20) + struct.pack(">HI", 3, 250)
                         + struct.pack(">HI", 6, 1 << 20) + struct.pack(">HI", 4, 1 << 20))

warnings.filterwarnings("ignore", message="One of ephemeral keypairs is already set")
PINNED = {"noiseprotocol": "0.3.1"}


def fixed(label: str, n: int = 32) -> bytes:
    """A fixed, reproducible byte string named by `label`."""
    return hashlib.sha256(b"lopower ts2021 vector: " + label.encode()).digest()[:n]


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


def prologue(version: int) -> bytes:
    return PROLOGUE_PREFIX + str(version).encode()


# --- the handshake from the Noise spec, on CPython's own BLAKE2s -------------

def HASH(data: bytes) -> bytes:
    return hashlib.blake2s(data).digest()


def HMAC(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2s).digest()


def HKDF2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    t0 = HMAC(ck, ikm)
    t1 = HMAC(t0, b"\x01")
    t2 = HMAC(t0, t1 + b"\x02")
    return t1, t2


def seal(key: bytes, n: int, ad: bytes, plain: bytes, big_endian: bool = True) -> bytes:
    nonce = b"\x00" * 4 + n.to_bytes(8, "big" if big_endian else "little")
    return ChaCha20Poly1305(key).encrypt(nonce, plain, ad)


class Symmetric:
    def __init__(self) -> None:
        # The name is longer than HASHLEN, so it is hashed (Noise 5.2).
        self.h = HASH(PROTOCOL_NAME)
        self.ck = self.h

    def mix_hash(self, data: bytes) -> None:
        self.h = HASH(self.h + data)

    def mix_key(self, ikm: bytes) -> bytes:
        self.ck, k = HKDF2(self.ck, ikm)
        return k

    def encrypt_and_hash(self, k: bytes, plain: bytes) -> bytes:
        c = seal(k, 0, self.h, plain)
        self.mix_hash(c)
        return c

    def split(self) -> tuple[bytes, bytes]:
        return HKDF2(self.ck, b"")


def spec_handshake(case: dict) -> dict:
    """Both sides of the ts2021 handshake, written out token by token."""
    s_i, e_i = case["machine_private"], case["client_ephemeral_private"]
    s_r, e_r = case["control_private"], case["server_ephemeral_private"]
    # Initiator.
    ini = Symmetric()
    ini.mix_hash(prologue(case["version"]))
    ini.mix_hash(public_of(s_r))                      # <- s
    ini.mix_hash(public_of(e_i))                      # -> e
    k = ini.mix_key(dh(e_i, public_of(s_r)))          # es
    enc_s = ini.encrypt_and_hash(k, public_of(s_i))   # s
    k = ini.mix_key(dh(s_i, public_of(s_r)))          # ss
    tag1 = ini.encrypt_and_hash(k, b"")               # {} (empty payload)
    payload1 = public_of(e_i) + enc_s + tag1
    # Responder (only what the response needs: the initiator's transcript).
    res = Symmetric()
    res.h, res.ck = ini.h, ini.ck
    res.mix_hash(public_of(e_r))                      # <- e
    res.mix_key(dh(e_r, public_of(e_i)))              # ee
    k = res.mix_key(dh(e_r, public_of(s_i)))          # se
    tag2 = res.encrypt_and_hash(k, b"")               # {}
    payload2 = public_of(e_r) + tag2
    c1, c2 = res.split()
    return {"payload1": payload1, "payload2": payload2, "c1": c1, "c2": c2, "hash": res.h}


def noiseprotocol_handshake(case: dict) -> dict:
    """The same handshake by the noiseprotocol package."""
    def make(initiator: bool) -> NoiseConnection:
        c = NoiseConnection.from_name(PROTOCOL_NAME)
        c.set_prologue(prologue(case["version"]))
        if initiator:
            c.set_as_initiator()
            c.set_keypair_from_private_bytes(Keypair.STATIC, case["machine_private"])
            c.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, public_of(case["control_private"]))
            c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, case["client_ephemeral_private"])
        else:
            c.set_as_responder()
            c.set_keypair_from_private_bytes(Keypair.STATIC, case["control_private"])
            c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, case["server_ephemeral_private"])
        c.start_handshake()
        return c

    ini, res = make(True), make(False)
    payload1 = bytes(ini.write_message(b""))         # -> e, es, s, ss
    assert bytes(res.read_message(payload1)) == b""
    payload2 = bytes(res.write_message(b""))         # <- e, ee, se
    assert bytes(ini.read_message(payload2)) == b""
    assert ini.handshake_finished and res.handshake_finished
    c1 = ini.noise_protocol.cipher_state_encrypt.k
    c2 = ini.noise_protocol.cipher_state_decrypt.k
    assert res.noise_protocol.cipher_state_decrypt.k == c1
    assert res.noise_protocol.cipher_state_encrypt.k == c2
    assert ini.get_handshake_hash() == res.get_handshake_hash()
    return {"payload1": payload1, "payload2": payload2, "c1": c1, "c2": c2,
            "hash": ini.get_handshake_hash(), "connection": ini}


def record(key: bytes, n: int, plain: bytes) -> bytes:
    ct = seal(key, n, b"", plain)
    return bytes([MSG_RECORD]) + struct.pack(">H", len(ct)) + ct


def records(key: bytes, items: list[tuple[int, bytes]]) -> list[dict]:
    return [{"nonce": n, "plaintext": p.hex(), "record": record(key, n, p).hex()} for n, p in items]


def make_case(name: str, version: int, clamp_keys: bool = True) -> dict:
    k = (lambda b: clamp(b)) if clamp_keys else (lambda b: b)
    case = {
        "version": version,
        "machine_private": k(fixed(name + " machine")),
        "control_private": clamp(fixed(name + " control")),
        "client_ephemeral_private": clamp(fixed(name + " client ephemeral")),
        "server_ephemeral_private": clamp(fixed(name + " server ephemeral")),
    }
    spec, lib = spec_handshake(case), noiseprotocol_handshake(case)
    for field in ("payload1", "payload2", "c1", "c2", "hash"):
        if spec[field] != lib[field]:
            sys.exit(f"{name}: noiseprotocol and the spec implementation disagree on {field}")

    initiation = struct.pack(">HBH", version, MSG_INITIATION, len(spec["payload1"])) + spec["payload1"]
    response = struct.pack(">BH", MSG_RESPONSE, len(spec["payload2"])) + spec["payload2"]
    assert len(initiation) == 101 and len(response) == 51

    c1, c2 = spec["c1"], spec["c2"]  # c1: client -> server; c2: server -> client
    challenge = public_of(clamp(fixed(name + " challenge")))
    early_json = json.dumps({"nodeKeyChallenge": "chalpub:" + challenge.hex()}, separators=(",", ":")).encode()
    # headscale writes the early payload in three writes (magic, length,
    # JSON), and each write becomes a record; then HTTP/2 begins.
    server_items = [(0, EARLY_MAGIC), (1, struct.pack(">I", len(early_json))), (2, early_json),
                    (3, HTTP2_SERVER_SETTINGS), (4, b"")]
    client_items = [(0, HTTP2_PREFACE + HTTP2_EMPTY_SETTINGS), (1, b""), (2, b"hello, control"),
                    # High counter bytes: big- and little-endian nonces differ in every byte here.
                    (0x0102030405060708, b"big-endian nonce"),
                    # The last nonce Go's controlbase still uses (2^64 - 1 is invalid).
                    (0xFFFFFFFFFFFFFFFE, b"last nonce")]

    # The Noise-spec record (little-endian nonce) for nonce 1, sealed by
    # noiseprotocol's own CipherState: the bytes ts2021 must NOT produce.
    conn = lib["connection"]
    conn.noise_protocol.cipher_state_encrypt.n = 1
    le_ct = bytes(conn.encrypt(b"little-endian nonce"))
    assert le_ct == seal(c1, 1, b"", b"little-endian nonce", big_endian=False)
    assert le_ct != seal(c1, 1, b"", b"little-endian nonce")

    return {
        "name": name,
        "version": version,
        "prologue": prologue(version).decode(),
        "machine_private": case["machine_private"].hex(),
        "machine_public": public_of(case["machine_private"]).hex(),
        "control_private": case["control_private"].hex(),
        "control_public": public_of(case["control_private"]).hex(),
        "client_ephemeral_private": case["client_ephemeral_private"].hex(),
        "client_ephemeral_public": public_of(case["client_ephemeral_private"]).hex(),
        "server_ephemeral_private": case["server_ephemeral_private"].hex(),
        "initiation": initiation.hex(),
        "response": response.hex(),
        "handshake_hash": spec["hash"].hex(),
        "client_send_key": c1.hex(),
        "client_receive_key": c2.hex(),
        "node_key_challenge": challenge.hex(),
        "early_payload_json": early_json.decode(),
        "client_to_server": records(c1, client_items),
        "server_to_client": records(c2, server_items),
        "little_endian_record": {
            "nonce": 1, "plaintext": b"little-endian nonce".hex(),
            "record": (bytes([MSG_RECORD]) + struct.pack(">H", len(le_ct)) + le_ct).hex(),
        },
        # One record of the largest size: 4096 bytes on the wire.
        "max_record": records(c2, [(5, bytes(i & 0xFF for i in range(MAX_PLAINTEXT)))])[0],
    }


def main() -> None:
    for package, version in PINNED.items():
        found = importlib.metadata.version(package)
        if found != version:
            sys.exit(f"{package} {found} installed; the vectors are pinned to {version}")
    doc = {
        "generator": "tests/unit/controlbase/gen_vectors.py",
        "packages": PINNED,
        "handshakes": [
            make_case("capver 119", 119),
            make_case("protocol version 1", 1),
            # Five decimal digits in the prologue; a machine key that was
            # never clamped (X25519 clamps it on use, in Go as anywhere).
            make_case("version 65535, unclamped machine key", 65535, clamp_keys=False),
        ],
    }
    json.dump(doc, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
