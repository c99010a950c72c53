#pragma once
// `lopower-ctl device list|show` in the words of `wg show`: pure functions
// from the daemon's JSON (or plain numbers) to text. Missing or mistyped
// fields (an older or newer daemon) show as "(none)" rather than failing.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace lopower {

// wg's pretty_time: "2 hours, 1 minute, 5 seconds" (years, days, hours,
// minutes, seconds; the zero ones left out); "" for 0.
std::string wg_duration(std::uint64_t seconds);
// wg's latest handshake: "1 minute, 3 seconds ago"; "Now" for 0, as wg says.
std::string wg_ago(std::uint64_t seconds);
// wg's transfer units: "1023 B", then KiB, MiB, GiB, TiB with 2 decimals ("1.21 KiB").
std::string wg_bytes(std::uint64_t bytes);
// wg's persistent keepalive: "every 25 seconds"; "off" for 0.
std::string wg_keepalive(std::uint64_t seconds);

// The header: lopower's device-side interface (`device.list` with
// "with_interface": its "interface" object).
std::string render_device_interface(const nlohmann::json& interface);
// One device's block (an element of `device.list`, or `device.show`).
// `now_unix` is used only when the daemon did not say how old the handshake is.
std::string render_device_block(const nlohmann::json& device, std::int64_t now_unix);
// Header, then every device's block, a blank line between them.
std::string render_device_list(const nlohmann::json& interface, const nlohmann::json& devices, std::int64_t now_unix);

}  // namespace lopower
