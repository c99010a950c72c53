#pragma once
// Configures the kernel side of an exception-path TAP over rtnetlink:
// addresses, MTU, link state and routes, so the host kernel sees the port as
// if the NIC were still its own.

#include <string>

#include "lopower/net_addr.h"

namespace lopower {

class kernel_interface {
 public:
  // Throws std::runtime_error naming the interface when it does not exist.
  explicit kernel_interface(std::string name);

  const std::string& name() const { return name_; }
  unsigned index() const { return index_; }

  // Each throws std::runtime_error with the kernel's reason. Adding what is
  // already there is not an error.
  void add_address(const ip_prefix& prefix) const;
  void add_default_route(const ip_address& gateway, unsigned metric) const;
  void set_up() const;

 private:
  std::string name_;
  unsigned index_ = 0;
};

}  // namespace lopower
