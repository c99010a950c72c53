#pragma once
// The HTTP/1.1 around ts2021 (tailscale control/controlhttp, headscale
// hscontrol/handlers.go and noise.go):
//
//   GET /key?v=<capver>      -> 200 {"publicKey":"mkey:...","legacyPublicKey":"mkey:..."}
//   POST /ts2021 with Upgrade: tailscale-control-protocol, Connection: upgrade,
//        X-Tailscale-Handshake: base64 (standard, padded) of the initiation
//                            -> 101 Switching Protocols, Upgrade: tailscale-control-protocol,
//                               and the Noise reply right behind the head
//
// Builders and bounded parsers only; the caller owns the socket.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/tailnet/controlbase/control_result.h"
#include "lopower/keys.h"

namespace lopower::tailnet {

inline constexpr std::string_view upgrade_path = "/ts2021";
inline constexpr std::string_view upgrade_protocol = "tailscale-control-protocol";
inline constexpr std::string_view handshake_header_name = "X-Tailscale-Handshake";
// Larger heads are refused: real ones are a few hundred bytes.
inline constexpr std::size_t max_http_head = 16 * 1024;
inline constexpr std::size_t max_http_headers = 100;

// Standard base64 with padding (RFC 4648 section 4).
std::string base64_standard(std::span<const std::uint8_t> bytes);

// `host` is the Host header: "127.0.0.1:8080", "[fd00::1]:8080" or a name.
// Both refuse (empty string) a host with characters that could end the
// line or the header (CR, LF, NUL, space...).
std::string build_key_request(std::string_view host, std::uint16_t capability_version);
std::string build_upgrade_request(std::string_view host, std::span<const std::uint8_t> initiation);

struct http_header {
  std::string name;
  std::string value;
};

struct http_response_head {
  int status = 0;
  std::string reason;
  std::vector<http_header> headers;
  // The first value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

// The size of the response head in `bytes` through its "\r\n\r\n", or 0
// when it is not all in yet.
std::size_t http_head_size(std::span<const std::uint8_t> bytes) noexcept;
// Parses a head (status line, header lines, the blank line): HTTP/1.x, a
// three-digit status, token header names, no folded lines, no control
// characters, at most max_http_headers.
control_result<http_response_head> parse_http_response_head(std::string_view head);

struct http_response {
  http_response_head head;
  std::string body;
};
// A whole response read until the server closed: the body by
// Content-Length, chunked, or to the end. Truncated bodies are errors.
control_result<http_response> parse_http_response(std::string_view whole);

// Waits for the 101 and keeps what follows the head: the start of the
// server's Noise reply, which arrives in the same segment.
class upgrade_response_reader {
 public:
  explicit upgrade_response_reader(std::size_t max_head = max_http_head) : max_head_(max_head) {}

  // false: more bytes needed; true: switched (see surplus()). Anything but
  // a 101 naming tailscale-control-protocol in its Upgrade header is an
  // error (a refusal quotes the start of its body); so is a head longer
  // than max_head. After true or an error, feed() fails.
  control_result<bool> feed(std::span<const std::uint8_t> bytes);

  const http_response_head& head() const noexcept { return head_; }
  // The bytes after the head, once switched.
  std::span<const std::uint8_t> surplus() const noexcept { return surplus_; }

 private:
  std::size_t max_head_;
  std::vector<std::uint8_t> buf_;
  std::size_t scanned_ = 0;  // bytes of buf_ known not to end the head
  http_response_head head_;
  std::vector<std::uint8_t> surplus_;
  bool finished_ = false;
};

// The JSON body of GET /key (tailcfg.OverTLSPublicKeyResponse).
struct server_keys {
  public_key noise;                  // "publicKey": the ts2021 static key, never all zero
  std::optional<public_key> legacy;  // "legacyPublicKey" when present (headscale: all zero)
};
control_result<server_keys> parse_key_response(std::string_view json);

}  // namespace lopower::tailnet
