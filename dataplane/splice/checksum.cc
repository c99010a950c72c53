#include "dataplane/splice/checksum.h"

namespace lopower::splice {

std::uint64_t sum_bytes(const std::uint8_t* p, std::size_t n, std::uint64_t initial) noexcept {
  std::uint64_t sum = initial;
  std::size_t i = 0;
  for (; i + 1 < n; i += 2) sum += load_be16(p + i);
  if (i < n) sum += static_cast<std::uint64_t>(p[i]) << 8;  // odd trailing byte, zero-padded on the right
  return sum;
}

std::uint16_t checksum(const std::uint8_t* p, std::size_t n, std::uint64_t initial) noexcept {
  return static_cast<std::uint16_t>(~fold(sum_bytes(p, n, initial)));
}

std::uint64_t pseudo_header_sum(bool ipv6, const std::uint8_t* src, const std::uint8_t* dst, std::uint8_t protocol,
                                std::uint32_t l4_length) noexcept {
  const std::size_t n = ipv6 ? 16 : 4;
  std::uint64_t sum = sum_bytes(src, n);
  sum = sum_bytes(dst, n, sum);
  // IPv4: zero, protocol, 16-bit length. IPv6: 32-bit length, three zero
  // bytes, next header. Either way the same words add up.
  return sum + protocol + (l4_length >> 16) + (l4_length & 0xffff);
}

void checksum_delta::replace_bytes(const std::uint8_t* old_bytes, const std::uint8_t* new_bytes, std::size_t n,
                                   unsigned offset_parity) noexcept {
  // A byte at an even position is the high half of its word, at an odd
  // position the low half.
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned shift = ((offset_parity + i) & 1) == 0 ? 8 : 0;
    replace16(static_cast<std::uint16_t>(old_bytes[i] << shift), static_cast<std::uint16_t>(new_bytes[i] << shift));
  }
}

std::uint16_t update16(std::uint16_t hc, std::uint16_t old_word, std::uint16_t new_word) noexcept {
  checksum_delta d;
  d.replace16(old_word, new_word);
  return d.apply(hc);
}

std::uint16_t update32(std::uint16_t hc, const std::uint8_t* old4, const std::uint8_t* new4) noexcept {
  checksum_delta d;
  d.replace(old4, new4, 4);
  return d.apply(hc);
}

std::uint16_t update128(std::uint16_t hc, const std::uint8_t* old16, const std::uint8_t* new16) noexcept {
  checksum_delta d;
  d.replace(old16, new16, 16);
  return d.apply(hc);
}

std::uint16_t update_at(std::uint16_t hc, std::size_t offset, std::uint16_t old_value, std::uint16_t new_value) noexcept {
  std::uint8_t o[2], n[2];
  store_be16(o, old_value);
  store_be16(n, new_value);
  checksum_delta d;
  d.replace(o, n, 2, static_cast<unsigned>(offset & 1));
  return d.apply(hc);
}

}  // namespace lopower::splice
