// The backend factory. Each backend is created, then checked against two
// known answers through its burst path before it is handed out, so that a
// library that initialises but computes wrongly on this CPU is never used.

#include "dataplane/crypto/aead_batch.h"

#include <cstring>

#include "dataplane/crypto/sodium_backend.h"
#if LOPOWER_HAVE_IPSEC_MB
#include "dataplane/crypto/ipsec_mb_backend.h"
#endif

namespace lopower::crypto {

namespace {

// WireGuard-shaped known answers (no AAD, nonce = 4 zero bytes || LE counter):
// vectors 002 (keepalive: empty data) and 005 (one byte) of the Linux
// kernel's lib/crypto/chacha20poly1305-selftest.c (GPL-2.0 OR MIT), whose
// 8-byte nonces are exactly the bytes after the 4 zero bytes.
struct known_answer {
  std::uint8_t key[key_size];
  std::uint64_t counter;
  std::uint32_t length;
  std::uint8_t plaintext[1];
  std::uint8_t ciphertext[1];
  std::uint8_t tag[tag_size];
};
constexpr known_answer known_answers[] = {
    {{0x4c, 0xf5, 0x96, 0x83, 0x38, 0xe6, 0xae, 0x7f, 0x2d, 0x29, 0x25, 0x76, 0xd5, 0x75, 0x27, 0x86,
      0x91, 0x9a, 0x27, 0x7a, 0xfb, 0x46, 0xc5, 0xef, 0x94, 0x81, 0x79, 0x57, 0x14, 0x59, 0x40, 0x68},
     0x8e7745327133bfcaULL,  // nonce bytes ca bf 33 71 32 45 77 8e
     0,
     {0},
     {0},
     {0xea, 0xe0, 0x1e, 0x9e, 0x2c, 0x91, 0xaa, 0xe1, 0xdb, 0x5d, 0x99, 0x3f, 0x8a, 0xf7, 0x69, 0x92}},
    {{0x66, 0xca, 0x9c, 0x23, 0x2a, 0x4b, 0x4b, 0x31, 0x0e, 0x92, 0x89, 0x8b, 0xf4, 0x93, 0xc7, 0x87,
      0x98, 0xa3, 0xd8, 0x39, 0xf8, 0xf4, 0xa7, 0x01, 0xc0, 0x2e, 0x0a, 0xa6, 0x7e, 0x5a, 0x78, 0x87},
     0x3092bf9c5faa1c20ULL,  // nonce bytes 20 1c aa 5f 9c bf 92 30
     1,
     {0x2d},
     {0xbf},
     {0xe1, 0x5b, 0x0b, 0xdb, 0x6b, 0xf5, 0x5e, 0x6c, 0x5d, 0x84, 0x44, 0x39, 0x81, 0xc1, 0x9c, 0xac}},
};

bool passes_known_answers(aead_backend& backend) noexcept {
  for (const known_answer& k : known_answers) {
    std::uint8_t data[1] = {k.plaintext[0]};
    std::uint8_t tag[tag_size] = {};
    aead_op op{data, k.length, tag, k.key, k.counter, false};
    backend.encrypt_burst(&op, 1);
    if (!op.ok || std::memcmp(data, k.ciphertext, k.length) != 0 || std::memcmp(tag, k.tag, tag_size) != 0)
      return false;
    op.ok = false;
    backend.decrypt_burst(&op, 1);
    if (!op.ok || std::memcmp(data, k.plaintext, k.length) != 0) return false;
    tag[0] ^= 1;
    backend.decrypt_burst(&op, 1);
    if (op.ok) return false;
  }
  return true;
}

std::unique_ptr<aead_backend> checked(std::unique_ptr<aead_backend> b) {
  if (b == nullptr || !passes_known_answers(*b)) return nullptr;
  return b;
}

// Fastest first.
constexpr std::string_view backend_names[] = {
#if LOPOWER_HAVE_IPSEC_MB
    "ipsec-mb",
#endif
    "libsodium",
};

}  // namespace

std::unique_ptr<aead_backend> make_backend(std::string_view name) {
#if LOPOWER_HAVE_IPSEC_MB
  if (name == "ipsec-mb") return checked(ipsec_mb_backend::create());
#endif
  if (name == "libsodium") return checked(sodium_backend::create());
  return nullptr;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (std::string_view n : backend_names)
    if (make_backend(n) != nullptr) names.emplace_back(n);
  return names;
}

std::unique_ptr<aead_backend> make_fastest_backend() {
  for (std::string_view n : backend_names)
    if (auto b = make_backend(n)) return b;
  return nullptr;
}

}  // namespace lopower::crypto
