#pragma once
// Port forwards on lopower's tailnet address: a TCP or UDP port there is
// carried to a device's address and port (an inbound flow, SNATed to
// lopower's device-side address). Published by the control thread when a
// forward is added or removed; immutable once published, replaced whole
// (RCU). A handful of entries: a linear scan. The device is named by its
// address and found in the device directory when a flow opens, so a device
// removed (or enrolled again) needs no new table.

#include <cstdint>
#include <vector>

namespace lopower {

struct forward_entry {
  std::uint8_t protocol = 0;  // 6 (TCP) or 17 (UDP)
  std::uint16_t port = 0;     // on lopower's tailnet address
  bool has_v4 = false, has_v6 = false;
  std::uint32_t device_v4_be = 0;
  std::uint8_t device_v6[16]{};
  std::uint16_t device_port = 0;
};

struct forward_table {
  std::vector<forward_entry> entries;

  const forward_entry* find(std::uint8_t protocol, std::uint16_t port) const noexcept {
    for (const forward_entry& e : entries)
      if (e.port == port && e.protocol == protocol) return &e;
    return nullptr;
  }
};

}  // namespace lopower
