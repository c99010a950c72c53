#pragma once
// Device addresses in lopower's device prefixes. lopower itself is the first
// host address (`10.90.0.1`, `fd7a:115c:a1e0:9909::1`); devices get the
// lowest free address after it (.2, .3, ... and ::2, ::3, ...), so freed
// addresses are reused lowest first. IPv4 skips the network and broadcast
// addresses (a /24 gives devices .2 to .254); IPv6 skips the all-zero
// (subnet-router anycast) address. IPv4 may be off (no IPv4 prefix).
//
// Host numbers are counted in 64 bits: an IPv6 prefix shorter than /64 only
// uses its low 2^64 addresses, which is more than any box will enroll.

#include <cstdint>
#include <optional>
#include <set>

#include "control/enrollment/result.h"
#include "lopower/net_addr.h"

namespace lopower::enrollment {

class address_allocator {
 public:
  // Prefixes are taken as networks (host bits are ignored). Each must leave
  // room for lopower and at least one device: IPv4 /30 or shorter, IPv6 /126
  // or shorter.
  static result<address_allocator> create(std::optional<ip_prefix> ipv4, ip_prefix ipv6);

  bool ipv4_enabled() const { return ipv4_.has_value(); }
  const std::optional<ip_prefix>& ipv4_prefix() const { return ipv4_; }
  const ip_prefix& ipv6_prefix() const { return ipv6_; }

  // lopower's own addresses (host number 1); no IPv4 address when IPv4 is off.
  std::optional<ip_address> server_ipv4() const;
  ip_address server_ipv6() const;

  // The address allocate() would return, without taking it. Errors when the
  // family is off or its prefix has no free address left.
  result<ip_address> next_free(ip_family family) const;
  // Takes the lowest free address.
  result<ip_address> allocate(ip_family family);
  // Marks an address in use (state loaded from disk). Errors when it is not
  // a device address of the prefix, or already in use.
  result<void> reserve(const ip_address& address);
  // Frees a device address; addresses not in use are ignored.
  void release(const ip_address& address);

  bool in_use(const ip_address& address) const;
  // Whether `address` is one a device could be given in the prefixes.
  bool is_device_address(const ip_address& address) const;
  std::size_t used(ip_family family) const { return family == ip_family::v4 ? used4_.size() : used6_.size(); }
  // How many device addresses the family's prefix has (saturating at 2^64-1).
  std::uint64_t capacity(ip_family family) const;

 private:
  address_allocator(std::optional<ip_prefix> ipv4, ip_prefix ipv6) : ipv4_(ipv4), ipv6_(ipv6) {}

  const ip_prefix* prefix_of(ip_family family) const;
  std::optional<std::uint64_t> host_number(const ip_address& address) const;
  ip_address address_of(ip_family family, std::uint64_t host) const;
  std::uint64_t last_device_host(ip_family family) const;

  std::optional<ip_prefix> ipv4_;
  ip_prefix ipv6_;
  std::set<std::uint64_t> used4_, used6_;
};

}  // namespace lopower::enrollment
