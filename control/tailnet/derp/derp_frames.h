#pragma once
// DERP's framing and frame bodies, protocol version 2 (tailscale
// derp/derp.go, derp_client.go; ../shared/docs/DERP-EXIT.md section 1):
//
//   [type u8][length u32 BE][body]     body at most max_frame_body on receive
//
// A bounded incremental reader, builders for what a client sends (and, for
// tests, tools and benchmarks, what a server sends), and parsers for what a
// server sends. Pure apart from libsodium (the ClientInfo/ServerInfo box and
// random nonces); never throws on bad input, never reads past a span.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lopower/keys.h"
#include "lopower/result.h"

namespace lopower::tailnet::derp {

enum class frame_type : std::uint8_t {
  server_key = 0x01,      // S->C: magic + 32-byte server key
  client_info = 0x02,     // C->S: node key, nonce, box(JSON)
  server_info = 0x03,     // S->C: nonce, box(JSON)
  send_packet = 0x04,     // C->S: destination key + packet
  recv_packet = 0x05,     // S->C: source key + packet
  keep_alive = 0x06,      // S->C: empty
  note_preferred = 0x07,  // C->S: 1 byte, 1 = home region
  peer_gone = 0x08,       // S->C: key + reason
  peer_present = 0x09,    // mesh only
  forward_packet = 0x0a,  // mesh only
  watch_conns = 0x10,     // mesh only
  close_peer = 0x11,      // mesh only
  ping = 0x12,            // both: 8 bytes
  pong = 0x13,            // both: the ping's 8 bytes
  health = 0x14,          // S->C: problem text, empty = healthy
  restarting = 0x15,      // S->C: reconnect-in ms, try-for ms (u32 BE each)
};
// "server_key", ...; "unknown" for a value not listed above.
const char* to_string(frame_type t) noexcept;

inline constexpr int protocol_version = 2;
inline constexpr std::size_t frame_header_size = 5;
// The reader's bound, as the Go client's (1 MiB): a longer frame is an
// error, not something to buffer.
inline constexpr std::size_t max_frame_body = 1 << 20;
inline constexpr std::size_t max_packet_size = 64 * 1024;  // derp.MaxPacketSize
inline constexpr std::size_t nonce_size = 24;
inline constexpr std::size_t box_tag_size = 16;
// "DERP🔑"
inline constexpr std::array<std::uint8_t, 8> server_key_magic = {0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91};
inline constexpr std::size_t server_key_body_size = server_key_magic.size() + key_size;  // 40
inline constexpr std::size_t ping_data_size = 8;
using ping_data = std::array<std::uint8_t, ping_data_size>;

// Exactly what tailscaled 1.98 sends: note the keys' spellings (only
// "version" has a json tag in Go's ClientInfo).
inline constexpr std::string_view client_info_json = R"({"version":2,"CanAckPings":true})";

// --- reading ----------------------------------------------------------------

// One frame: `body` points into the reader's buffer and is valid until the
// next call to feed() or next().
struct frame {
  frame_type type{};
  std::span<const std::uint8_t> body;
};

// Frames out of a byte stream cut anywhere. Holds at most one partial frame
// (header + max_frame_body) plus what the last feed() brought.
class frame_reader {
 public:
  explicit frame_reader(std::size_t max_body = max_frame_body) : max_body_(max_body) {}

  void feed(std::span<const std::uint8_t> bytes);
  // The next whole frame; nullopt when more bytes are needed. A header
  // announcing more than max_body is an error, and every later call fails.
  result<std::optional<frame>> next();

  std::size_t buffered() const noexcept { return buf_.size() - consumed_; }
  bool failed() const noexcept { return failed_; }

 private:
  std::size_t max_body_;
  std::vector<std::uint8_t> buf_;
  std::size_t consumed_ = 0;  // bytes of buf_ already returned as frames
  bool failed_ = false;
};

// --- client -> server -------------------------------------------------------

// Appends [type][len] for a body of `body_size` bytes.
void append_frame_header(std::vector<std::uint8_t>& out, frame_type t, std::size_t body_size);

// ClientInfo: our node key, a random nonce, crypto_box_easy(json) to the
// server key. Fails only when the server key is a low-order point.
result<std::vector<std::uint8_t>> client_info_frame(const private_key& node_private, const public_key& node_public,
                                                    const public_key& server_key,
                                                    std::string_view json = client_info_json);
// SendPacket, appended to `out` (which is not cleared: a caller may batch).
void append_send_packet(std::vector<std::uint8_t>& out, const public_key& dst, std::span<const std::uint8_t> packet);
std::vector<std::uint8_t> send_packet_frame(const public_key& dst, std::span<const std::uint8_t> packet);
std::vector<std::uint8_t> note_preferred_frame(bool preferred);
std::vector<std::uint8_t> ping_frame(const ping_data& data);
std::vector<std::uint8_t> pong_frame(const ping_data& data);

// --- server -> client: parsers --------------------------------------------------

// ServerKey: at least magic + key (later bytes are for future versions).
result<public_key> parse_server_key(std::span<const std::uint8_t> body);

struct server_info {
  std::string json;  // as opened
  int version = 0;   // "version", 0 when absent
  std::optional<std::uint64_t> token_bucket_bytes_per_second;  // "TokenBucketBytesPerSecond"
  std::optional<std::uint64_t> token_bucket_bytes_burst;       // "TokenBucketBytesBurst"
};
// ServerInfo: opens the box (server key -> our node key) and reads the JSON.
result<server_info> open_server_info(std::span<const std::uint8_t> body, const private_key& node_private,
                                     const public_key& server_key);

struct recv_packet {
  public_key src;
  std::span<const std::uint8_t> packet;  // into the body
};
result<recv_packet> parse_recv_packet(std::span<const std::uint8_t> body);

struct peer_gone {
  public_key peer;
  // 0 disconnected, 1 not here; absent = 0. Other values are passed
  // through as sent (newer servers may add reasons).
  std::uint8_t reason = 0;
};
result<peer_gone> parse_peer_gone(std::span<const std::uint8_t> body);

struct restarting {
  std::chrono::milliseconds reconnect_in{0};
  std::chrono::milliseconds try_for{0};
};
result<restarting> parse_restarting(std::span<const std::uint8_t> body);

// Ping and Pong: the first 8 bytes (servers may send up to 1000).
result<ping_data> parse_ping_data(std::span<const std::uint8_t> body);
// Health: the problem text with control characters and non-ASCII bytes as
// '?' (it goes to logs), cut at max_health_text bytes; empty = healthy.
inline constexpr std::size_t max_health_text = 1000;
std::string parse_health(std::span<const std::uint8_t> body);

// --- server side: for tests, tools and benchmarks ---------------------------------

std::vector<std::uint8_t> server_key_frame(const public_key& server_key);
struct client_info {
  public_key node_key;
  std::string json;
};
// Opens a ClientInfo body with the server's private key.
result<client_info> open_client_info(std::span<const std::uint8_t> body, const private_key& server_private);
result<std::vector<std::uint8_t>> server_info_frame(const private_key& server_private, const public_key& client_key,
                                                    std::string_view json = R"({"version":2})");
void append_recv_packet(std::vector<std::uint8_t>& out, const public_key& src, std::span<const std::uint8_t> packet);
std::vector<std::uint8_t> peer_gone_frame(const public_key& peer, std::uint8_t reason);
std::vector<std::uint8_t> restarting_frame(std::uint32_t reconnect_in_ms, std::uint32_t try_for_ms);
std::vector<std::uint8_t> health_frame(std::string_view problem);
std::vector<std::uint8_t> keep_alive_frame();

}  // namespace lopower::tailnet::derp
