#pragma once
// WireGuard transport AEAD in bursts: ChaCha20-Poly1305 as RFC 8439 defines
// it (IETF variant: 32-byte key, 12-byte nonce, 16-byte tag), used the way
// WireGuard uses it: the nonce is 4 zero bytes followed by the 64-bit
// little-endian counter, there is no associated data, and the tag follows the
// ciphertext.
//
// A worker hands one burst (up to max_burst packets) to its own backend per
// call. Backends are interchangeable and give byte-identical results; they
// differ only in speed. None of them allocates, locks or enters the kernel in
// the burst calls.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lopower::crypto {

inline constexpr std::size_t key_size = 32;
inline constexpr std::size_t nonce_size = 12;
inline constexpr std::size_t tag_size = 16;
inline constexpr unsigned max_burst = 256;            // what one call is meant to carry (more is allowed)
inline constexpr std::uint32_t max_length = 65535;    // largest data length the dataplane hands over

struct aead_op {
  std::uint8_t* data;          // in place: plaintext -> ciphertext (encrypt) or ciphertext -> plaintext (decrypt)
  std::uint32_t length;        // bytes of data (without the tag); 0 for a keepalive (data may then be null)
  std::uint8_t* tag;           // 16 bytes: written by encrypt, verified by decrypt (usually data + length)
  const std::uint8_t* key;     // 32 bytes
  std::uint64_t counter;       // nonce = 4 zero bytes || little-endian counter
  bool ok;                     // decrypt_burst: tag verified (on failure the data content is unspecified).
                               // encrypt_burst sets it too: false only if the backend refused the op (a
                               // bug, never expected), in which case data and tag must not be sent.
};

// The WireGuard nonce for `counter`: 4 zero bytes || little-endian counter.
inline void wireguard_nonce(std::uint64_t counter, std::uint8_t (&nonce)[nonce_size]) noexcept {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  for (unsigned i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
}

// A burst's next packet to open, fetched while the one before it is opened:
// its first lines (the whole of a small packet). A gateway's frames lie
// wherever its pool handed them out, not one after another, so the
// hardware's prefetchers meet each frame cold: 1280-byte packets in frames
// scattered over the pool were spliced 7-14 % slower without it
// (bench/RESULTS.md, 2026-12-07 (sixth)). Eight lines, one packet ahead:
// the whole packet, or two ahead, were slower (each line a fill buffer the
// cipher's own loads then wait for), four lines not enough.
inline constexpr unsigned prefetch_sealed_lines = 8;
inline void prefetch_sealed(const aead_op& op) noexcept {
  constexpr std::uintptr_t line_size = 64;
  const auto data = reinterpret_cast<std::uintptr_t>(op.data);
  const std::uintptr_t first = data & ~(line_size - 1);
  const std::uintptr_t end = std::min(data + op.length, first + prefetch_sealed_lines * line_size);
  for (std::uintptr_t line = first; line < end; line += line_size) __builtin_prefetch(reinterpret_cast<const void*>(line));
}

// One instance per lcore; not thread-safe.
class aead_backend {
 public:
  virtual ~aead_backend() = default;
  aead_backend() = default;
  aead_backend(const aead_backend&) = delete;
  aead_backend& operator=(const aead_backend&) = delete;

  virtual std::string_view name() const noexcept = 0;
  // What the backend runs on, for logs (e.g. "intel-ipsec-mb 1.3.0 avx512 +ifma", "libsodium 1.0.18").
  virtual std::string describe() const { return std::string(name()); }

  virtual void encrypt_burst(aead_op* ops, unsigned n) noexcept = 0;
  virtual void decrypt_burst(aead_op* ops, unsigned n) noexcept = 0;

  // One operation with a caller-chosen 12-byte nonce and associated data.
  // WireGuard transport needs neither (the burst calls above are its path);
  // these exist so that the RFC 8439 test vectors, which carry AAD and a nonce
  // with a non-zero constant, can be checked against each backend through the
  // same library code its burst path uses. Not for the fast path. Both real
  // backends implement them; the defaults (for test doubles) refuse.
  // seal: encrypts data in place and writes the tag; false only if the backend refused the op.
  virtual bool seal(const std::uint8_t* /*key*/, const std::uint8_t* /*nonce*/, const std::uint8_t* /*aad*/,
                    std::size_t /*aad_length*/, std::uint8_t* /*data*/, std::uint32_t /*length*/,
                    std::uint8_t* /*tag*/) noexcept {
    return false;
  }
  // open: verifies the tag and decrypts data in place; false if the tag does not verify.
  virtual bool open(const std::uint8_t* /*key*/, const std::uint8_t* /*nonce*/, const std::uint8_t* /*aad*/,
                    std::size_t /*aad_length*/, std::uint8_t* /*data*/, std::uint32_t /*length*/,
                    const std::uint8_t* /*tag*/) noexcept {
    return false;
  }
};

// Backends that initialise on this CPU, fastest first: {"ipsec-mb", "libsodium"}
// when both do. Probes each backend (cheap, startup only).
std::vector<std::string> available_backends();
// nullptr when `name` is unknown or the backend does not initialise on this CPU.
std::unique_ptr<aead_backend> make_backend(std::string_view name);
// The first of available_backends() (nullptr only if none initialises).
std::unique_ptr<aead_backend> make_fastest_backend();

}  // namespace lopower::crypto
