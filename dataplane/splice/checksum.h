#pragma once
// The Internet checksum (RFC 1071) and its incremental update (RFC 1624), in
// plain C++ over bytes, for the splice's header rewrites.
//
// Facts the rewrites lean on:
// - The checksum is the one's complement of the one's-complement sum of the
//   covered data taken as big-endian 16-bit words; an odd trailing byte is
//   padded with a zero byte on the right.
// - One's-complement addition is commutative and byte-order independent
//   apart from a swap: a 16-bit value stored at an odd offset contributes its
//   two bytes to two different words, which sums to the byte-swapped value.
//   update_at() takes that into account (a TCP MSS option may sit at an odd
//   offset).
// - RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), is the update that stays correct
//   when the result is zero; eqn. 2 of RFC 1141 (HC' = HC + m - m') can
//   yield 0xffff (-0) where a full recomputation gives 0x0000.
// - 0x0000 and 0xffff are the two representations of zero. A full
//   computation over data that is not all zeros never yields 0xffff. UDP
//   reserves a transmitted 0x0000 for "no checksum" (RFC 768), so a computed
//   0x0000 is sent as 0xffff there (udp_checksum_field()).
// - TCP, UDP and ICMPv6 (RFC 9293, RFC 768, RFC 8200 §8.1) cover a
//   pseudo-header of the addresses, the protocol and the upper-layer length;
//   ICMPv4 (RFC 792) and the IPv4 header checksum cover only their own bytes.
//
// Checksums are passed as the value of the field read big-endian.

#include <cstddef>
#include <cstdint>

#include "lopower/byte_order.h"

namespace lopower::splice {

// The one's-complement sum of `n` bytes as big-endian words, added to
// `initial`, not yet folded (callers chain pseudo-header and payload).
std::uint64_t sum_bytes(const std::uint8_t* p, std::size_t n, std::uint64_t initial = 0) noexcept;

// Folds a wide sum into 16 bits with end-around carry.
inline std::uint16_t fold(std::uint64_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// The checksum to store over `n` bytes whose checksum field is zero:
// ~fold(initial + data).
std::uint16_t checksum(const std::uint8_t* p, std::size_t n, std::uint64_t initial = 0) noexcept;

// The pseudo-header sum for TCP/UDP/ICMPv6: source and destination (4 bytes
// each for IPv4, 16 for IPv6), the protocol and the upper-layer length.
std::uint64_t pseudo_header_sum(bool ipv6, const std::uint8_t* src, const std::uint8_t* dst, std::uint8_t protocol,
                                std::uint32_t l4_length) noexcept;

// A UDP checksum as it goes on the wire: a computed zero is sent as 0xffff.
constexpr std::uint16_t udp_checksum_field(std::uint16_t computed) noexcept {
  return computed == 0 ? 0xffff : computed;
}

// RFC 1624 eqn. 3 for any number of replaced words: collect each (old, new)
// pair, then apply the difference to one or more checksums that cover them.
// Inline: every spliced packet's rewrite runs them (an address and a port),
// and as calls they were about a third of the rewrite's time at 64 bytes.
class checksum_delta {
 public:
  checksum_delta() = default;
  // A difference collected earlier and kept as folded() gave it: applying
  // it gives what the whole difference gives (the fold keeps its value mod
  // 0xffff, and zero only when the difference was zero).
  explicit checksum_delta(std::uint16_t folded_sum) noexcept : sum_(folded_sum) {}
  // A 16-bit word at an even offset of the covered data.
  void replace16(std::uint16_t old_word, std::uint16_t new_word) noexcept {
    sum_ += static_cast<std::uint16_t>(~old_word);
    sum_ += new_word;
  }
  // `n` bytes at `offset_parity` (0 even, 1 odd) of the covered data.
  void replace(const std::uint8_t* old_bytes, const std::uint8_t* new_bytes, std::size_t n,
               unsigned offset_parity = 0) noexcept {
    if ((offset_parity & 1) != 0 || n % 2 != 0) return replace_bytes(old_bytes, new_bytes, n, offset_parity);
    for (std::size_t i = 0; i < n; i += 2) replace16(load_be16(old_bytes + i), load_be16(new_bytes + i));
  }
  // The difference in 16 bits, to keep (a flow's rewrite: its checksum_delta).
  std::uint16_t folded() const noexcept { return fold(sum_); }
  // HC' = ~(~HC + sum of (~m + m')).
  std::uint16_t apply(std::uint16_t checksum) const noexcept {
    return static_cast<std::uint16_t>(~fold(static_cast<std::uint16_t>(~checksum) + sum_));
  }

 private:
  // Byte by byte, for an odd offset or length (a TCP option).
  void replace_bytes(const std::uint8_t* old_bytes, const std::uint8_t* new_bytes, std::size_t n,
                     unsigned offset_parity) noexcept;

  std::uint64_t sum_ = 0;
};

// One-shot forms of checksum_delta.
std::uint16_t update16(std::uint16_t checksum, std::uint16_t old_word, std::uint16_t new_word) noexcept;
std::uint16_t update32(std::uint16_t checksum, const std::uint8_t* old4, const std::uint8_t* new4) noexcept;
std::uint16_t update128(std::uint16_t checksum, const std::uint8_t* old16, const std::uint8_t* new16) noexcept;
// A 16-bit value stored at `offset` (only its parity matters) of the covered data.
std::uint16_t update_at(std::uint16_t checksum, std::size_t offset, std::uint16_t old_value,
                        std::uint16_t new_value) noexcept;

// Big-endian field access, shared by the splice's sources and tests: the
// tree's one definition (lopower/byte_order.h), under splice's names.
using lopower::load_be16;
using lopower::load_be32;
using lopower::store_be16;
using lopower::store_be32;

}  // namespace lopower::splice
