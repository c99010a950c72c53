#pragma once
// Where a device's traffic goes when no tailnet route covers its
// destination: refused ("none"), through a tailnet exit node ("exit"), or
// out of a DPDK port with role uplink ("uplink"). Global default in
// [egress] mode; a device may carry its own (the device registry).

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "lopower/enum_list.h"

#define LOPOWER_EGRESS_MODES(X) X(none) X(exit) X(uplink)

namespace lopower {

enum class egress_mode : std::uint8_t { LOPOWER_EGRESS_MODES(LOPOWER_ENUM_ENUMERATOR) };

inline constexpr std::size_t egress_mode_count = LOPOWER_ENUM_COUNT(LOPOWER_EGRESS_MODES);
inline constexpr std::array<const char*, egress_mode_count> egress_mode_names{LOPOWER_EGRESS_MODES(LOPOWER_ENUM_NAME)};

constexpr const char* name_of(egress_mode m) noexcept { return name_in(egress_mode_names, m, "?"); }

constexpr std::optional<egress_mode> egress_mode_named(std::string_view text) noexcept {
  for (std::size_t i = 0; i < egress_mode_count; ++i)
    if (text == egress_mode_names[i]) return static_cast<egress_mode>(i);
  return std::nullopt;
}

}  // namespace lopower
