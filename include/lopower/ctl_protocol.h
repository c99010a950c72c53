#pragma once
// The lopower-ctl protocol: one JSON object per connection each way, each on
// one line. Request: {"command": "status", "args": {...}}. Reply:
// {"ok": true, "result": ...} or {"ok": false, "error": "message"}.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace lopower::ctl {

inline constexpr std::size_t max_request_bytes = 64 * 1024;
inline constexpr std::size_t max_reply_bytes = 16 * 1024 * 1024;
inline constexpr unsigned max_nesting = 16;
inline constexpr const char* default_socket = "/run/lopower/lopower.sock";

struct request {
  std::string command;
  nlohmann::json args = nlohmann::json::object();
};

// A request line from an untrusted client: either the request or the error
// message to send back. Never throws.
std::variant<request, std::string> parse_request(std::string_view line);

std::string encode_request(const request& r);
std::string encode_ok(const nlohmann::json& result);
std::string encode_error(std::string_view message);

// Client side: sends one request and returns the parsed reply. Throws
// ctl::unavailable when nothing listens on the socket, std::runtime_error for
// other failures (permission, timeout, garbled reply).
class unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
nlohmann::json call(const std::string& socket_path, const request& r,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

}  // namespace lopower::ctl
