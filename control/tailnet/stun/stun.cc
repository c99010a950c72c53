#include "control/tailnet/stun/stun.h"

#include <sodium.h>

#include <algorithm>

#include "lopower/byte_order.h"

namespace lopower::tailnet::stun {

namespace {

using bytes = std::span<const std::uint8_t>;

constexpr std::size_t header_size = 20;
constexpr std::array<std::uint8_t, 4> magic_cookie = {0x21, 0x12, 0xa4, 0x42};
constexpr std::uint16_t binding_request_type = 0x0001;
constexpr std::uint16_t binding_success_type = 0x0101;
constexpr std::uint16_t attr_mapped_address = 0x0001;
constexpr std::uint16_t attr_xor_mapped_address = 0x0020;
constexpr std::uint16_t attr_xor_mapped_address_alt = 0x8020;  // pre-RFC 5389 servers
constexpr std::uint16_t attr_software = 0x8022;
constexpr std::uint16_t attr_fingerprint = 0x8028;
constexpr std::array<std::uint8_t, 8> software = {'t', 'a', 'i', 'l', 'n', 'o', 'd', 'e'};
// RFC 5389 section 15.5: the CRC is XORed with "STUN".
constexpr std::uint32_t fingerprint_xor = 0x5354554e;
constexpr std::size_t fingerprint_attr_size = 8;

// CRC-32 (IEEE 802.3, reflected, polynomial 0xedb88320) as zlib's crc32;
// a table rather than a zlib dependency for 32 bytes per request.
constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}
constexpr auto crc_table = make_crc_table();

std::uint32_t crc32_ieee(bytes data) noexcept {
  std::uint32_t c = 0xffffffffu;
  for (const std::uint8_t b : data) c = crc_table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

std::size_t family_address_size(std::uint8_t family) noexcept {
  switch (family) {
    case 1: return 4;
    case 2: return 16;
    default: return 0;
  }
}

// IPv4-mapped IPv6 comes out as IPv4, as Go's netip Unmap().
ip_address make_address(const std::uint8_t* raw, std::size_t size) {
  static constexpr std::array<std::uint8_t, 12> v4_mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (size == 16 && std::equal(v4_mapped.begin(), v4_mapped.end(), raw)) return ip_address::from_bytes(false, raw + 12);
  return ip_address::from_bytes(size == 16, raw);
}

struct mapped {
  ip_address address;
  std::uint16_t port = 0;
};

// MAPPED-ADDRESS: 0, family, port, address.
std::optional<mapped> read_mapped_address(bytes attr) {
  if (attr.size() < 4) return std::nullopt;
  const std::size_t size = family_address_size(attr[1]);
  if (size == 0 || attr.size() < 4 + size) return std::nullopt;
  return mapped{make_address(attr.data() + 4, size), load_be16(attr.data() + 2)};
}

// XOR-MAPPED-ADDRESS: the port XOR the cookie's top half, the address XOR
// the cookie (IPv4) or the cookie and the transaction ID (IPv6).
std::optional<mapped> read_xor_mapped_address(bytes attr, const transaction_id& txid) {
  if (attr.size() < 4) return std::nullopt;
  const std::size_t size = family_address_size(attr[1]);
  if (size == 0 || attr.size() < 4 + size) return std::nullopt;
  std::array<std::uint8_t, 16> raw{};
  for (std::size_t i = 0; i < size; ++i)
    raw[i] = attr[4 + i] ^ (i < magic_cookie.size() ? magic_cookie[i] : txid[i - magic_cookie.size()]);
  const auto port = static_cast<std::uint16_t>(load_be16(attr.data() + 2) ^ 0x2112);
  return mapped{make_address(raw.data(), size), port};
}

bool has_header(bytes packet) noexcept {
  return packet.size() >= header_size && std::equal(magic_cookie.begin(), magic_cookie.end(), packet.begin() + 4);
}

}  // namespace

std::array<std::uint8_t, request_size> binding_request(const transaction_id& txid) {
  std::array<std::uint8_t, request_size> out{};
  store_be16(&out[0], binding_request_type);
  store_be16(&out[2], request_size - header_size);  // counts FINGERPRINT, which the CRC then covers
  std::copy(magic_cookie.begin(), magic_cookie.end(), out.begin() + 4);
  std::copy(txid.begin(), txid.end(), out.begin() + 8);
  store_be16(&out[20], attr_software);
  store_be16(&out[22], software.size());
  std::copy(software.begin(), software.end(), out.begin() + 24);
  store_be16(&out[32], attr_fingerprint);
  store_be16(&out[34], 4);
  const std::size_t covered = request_size - fingerprint_attr_size;  // 32
  store_be32(&out[36], crc32_ieee(bytes(out.data(), covered)) ^ fingerprint_xor);
  return out;
}

transaction_id new_transaction_id() {
  transaction_id id{};
  randombytes_buf(id.data(), id.size());
  return id;
}

bool is_binding_response(std::span<const std::uint8_t> packet) noexcept {
  return has_header(packet) && load_be16(packet.data()) == binding_success_type &&
         header_size + load_be16(packet.data() + 2) <= packet.size();
}

// As tailscale's stun.ParseResponse: walk the attributes inside the
// header's length (bytes past it ignored), each padded to 4 bytes; the last
// XOR-MAPPED-ADDRESS wins, MAPPED-ADDRESS is the fallback, and a malformed
// attribute of either kind refuses the whole response.
std::optional<binding_response> parse_binding_response(std::span<const std::uint8_t> packet) noexcept {
  if (!is_binding_response(packet)) return std::nullopt;
  binding_response out;
  std::copy_n(packet.begin() + 8, out.txid.size(), out.txid.begin());
  bytes attrs = packet.subspan(header_size, load_be16(packet.data() + 2));
  std::optional<mapped> xored, fallback;
  while (!attrs.empty()) {
    if (attrs.size() < 4) return std::nullopt;
    const std::uint16_t type = load_be16(attrs.data());
    const std::size_t length = load_be16(attrs.data() + 2);
    const std::size_t padded = (length + 3) & ~std::size_t{3};
    attrs = attrs.subspan(4);
    if (padded > attrs.size()) return std::nullopt;
    const bytes value = attrs.first(length);
    if (type == attr_xor_mapped_address || type == attr_xor_mapped_address_alt) {
      xored = read_xor_mapped_address(value, out.txid);
      if (!xored) return std::nullopt;
    } else if (type == attr_mapped_address) {
      fallback = read_mapped_address(value);
      if (!fallback) return std::nullopt;
    }
    attrs = attrs.subspan(padded);
  }
  const auto& found = xored ? xored : fallback;
  if (!found) return std::nullopt;
  out.address = found->address;
  out.port = found->port;
  return out;
}

}  // namespace lopower::tailnet::stun
