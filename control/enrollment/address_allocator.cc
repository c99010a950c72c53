#include "control/enrollment/address_allocator.h"

#include <limits>
#include <string>

#include "lopower/byte_order.h"

namespace lopower::enrollment {

namespace {

constexpr std::uint64_t all_ones = std::numeric_limits<std::uint64_t>::max();

unsigned width_of(ip_family f) { return f == ip_family::v4 ? 32u : 128u; }
const char* name_of(ip_family f) { return f == ip_family::v4 ? "IPv4" : "IPv6"; }

// Clears the host bits.
ip_prefix network_of(ip_prefix p) {
  for (unsigned bit = p.length; bit < width_of(p.address.family); ++bit)
    p.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return p;
}

// The address's last 64 bits (IPv6) or its 32 bits (IPv4), as a number.
std::uint64_t low_bits(const ip_address& a) {
  if (a.family == ip_family::v4) return a.v4_host_order();
  return load_be64(&a.bytes[8]);
}

}  // namespace

result<address_allocator> address_allocator::create(std::optional<ip_prefix> ipv4, ip_prefix ipv6) {
  if (ipv4) {
    if (ipv4->address.family != ip_family::v4) return fail("the IPv4 device prefix " + ipv4->to_string() + " is not IPv4");
    if (ipv4->length > 30)
      return fail("the IPv4 device prefix " + ipv4->to_string() +
                  " is too small: it must hold lopower, one device, the network and broadcast addresses (/30 or shorter)");
    ipv4 = network_of(*ipv4);
  }
  if (ipv6.address.family != ip_family::v6) return fail("the IPv6 device prefix " + ipv6.to_string() + " is not IPv6");
  if (ipv6.length > 126)
    return fail("the IPv6 device prefix " + ipv6.to_string() + " is too small: it must hold lopower and a device (/126 or shorter)");
  return address_allocator(ipv4, network_of(ipv6));
}

const ip_prefix* address_allocator::prefix_of(ip_family family) const {
  if (family == ip_family::v6) return &ipv6_;
  return ipv4_ ? &*ipv4_ : nullptr;
}

std::uint64_t address_allocator::last_device_host(ip_family family) const {
  const ip_prefix* p = prefix_of(family);
  const unsigned host_bits = width_of(family) - p->length;
  if (family == ip_family::v4) return (std::uint64_t{1} << host_bits) - 2;  // the last one is broadcast
  if (host_bits >= 64) return all_ones;
  return (std::uint64_t{1} << host_bits) - 1;
}

std::uint64_t address_allocator::capacity(ip_family family) const {
  if (prefix_of(family) == nullptr) return 0;
  return last_device_host(family) - 1;  // hosts 2..last
}

std::optional<std::uint64_t> address_allocator::host_number(const ip_address& address) const {
  const ip_prefix* p = prefix_of(address.family);
  if (p == nullptr || !p->contains(address)) return std::nullopt;
  const unsigned host_bits = width_of(address.family) - p->length;
  if (host_bits > 64) {
    // Only the low 2^64 addresses are ours to hand out: the bits between the
    // prefix and the last 64 must be zero.
    for (unsigned bit = p->length; bit < 64; ++bit)
      if (address.bytes[bit / 8] & (0x80u >> (bit % 8))) return std::nullopt;
    return low_bits(address);
  }
  const std::uint64_t mask = host_bits == 64 ? all_ones : (std::uint64_t{1} << host_bits) - 1;
  return low_bits(address) & mask;
}

ip_address address_allocator::address_of(ip_family family, std::uint64_t host) const {
  ip_address a = prefix_of(family)->address;
  if (family == ip_family::v4) return ip_address::v4(a.v4_host_order() | static_cast<std::uint32_t>(host));
  for (std::size_t i = 0; i < 8; ++i) a.bytes[15 - i] |= static_cast<std::uint8_t>(host >> (8 * i));
  return a;
}

std::optional<ip_address> address_allocator::server_ipv4() const {
  if (!ipv4_) return std::nullopt;
  return address_of(ip_family::v4, 1);
}

ip_address address_allocator::server_ipv6() const { return address_of(ip_family::v6, 1); }

bool address_allocator::is_device_address(const ip_address& address) const {
  const auto host = host_number(address);
  return host && *host >= 2 && *host <= last_device_host(address.family);
}

bool address_allocator::in_use(const ip_address& address) const {
  const auto host = host_number(address);
  if (!host) return false;
  const auto& used = address.family == ip_family::v4 ? used4_ : used6_;
  return used.count(*host) != 0;
}

result<ip_address> address_allocator::next_free(ip_family family) const {
  const ip_prefix* p = prefix_of(family);
  if (p == nullptr) return fail("IPv4 is off: lopower has no IPv4 device prefix");
  const auto& used = family == ip_family::v4 ? used4_ : used6_;
  const std::uint64_t last = last_device_host(family);
  std::uint64_t host = 2;
  for (auto it = used.lower_bound(2); it != used.end() && *it == host && host <= last; ++it) {
    if (host == all_ones) return fail(std::string("no free ") + name_of(family) + " address left in " + p->to_string());
    ++host;
  }
  if (host > last) return fail(std::string("no free ") + name_of(family) + " address left in " + p->to_string());
  return address_of(family, host);
}

result<ip_address> address_allocator::allocate(ip_family family) {
  auto next = next_free(family);
  if (next) (family == ip_family::v4 ? used4_ : used6_).insert(*host_number(*next));
  return next;
}

result<void> address_allocator::reserve(const ip_address& address) {
  const ip_prefix* p = prefix_of(address.family);
  if (p == nullptr) return fail(address.to_string() + " is an IPv4 address, but IPv4 is off");
  if (!is_device_address(address))
    return fail(address.to_string() + " is not a device address in " + p->to_string());
  auto& used = address.family == ip_family::v4 ? used4_ : used6_;
  if (!used.insert(*host_number(address)).second) return fail(address.to_string() + " is already in use");
  return {};
}

void address_allocator::release(const ip_address& address) {
  const auto host = host_number(address);
  if (!host) return;
  (address.family == ip_family::v4 ? used4_ : used6_).erase(*host);
}

}  // namespace lopower::enrollment
