#include "control/tailnet/derp/derp_frames.h"

#include <sodium.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "control/tailnet/controlbase/printable.h"
#include "lopower/byte_order.h"

namespace lopower::tailnet::derp {

namespace {

using bytes = std::span<const std::uint8_t>;

static_assert(crypto_box_NONCEBYTES == nonce_size);
static_assert(crypto_box_MACBYTES == box_tag_size);

std::string size_text(std::size_t n) { return std::to_string(n) + " bytes"; }

std::vector<std::uint8_t> frame_with_body(frame_type t, bytes body) {
  std::vector<std::uint8_t> out;
  out.reserve(frame_header_size + body.size());
  append_frame_header(out, t, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// [peer key 32][nonce 24][box]: the layout ClientInfo uses (ServerInfo
// lacks the key). `sender_public` goes in front when non-null.
result<std::vector<std::uint8_t>> sealed_frame(frame_type t, const public_key* sender_public, const private_key& sender,
                                               const public_key& receiver, std::string_view json) {
  const std::size_t key_part = sender_public ? key_size : 0;
  const std::size_t body_size = key_part + nonce_size + box_tag_size + json.size();
  std::vector<std::uint8_t> out;
  out.reserve(frame_header_size + body_size);
  append_frame_header(out, t, body_size);
  if (sender_public) out.insert(out.end(), sender_public->begin(), sender_public->end());
  const std::size_t nonce_at = out.size();
  out.resize(frame_header_size + body_size);
  randombytes_buf(out.data() + nonce_at, nonce_size);
  if (crypto_box_easy(out.data() + nonce_at + nonce_size, reinterpret_cast<const std::uint8_t*>(json.data()),
                      json.size(), out.data() + nonce_at, receiver.data(), sender.data()) != 0)
    return fail("crypto_box: the peer's key is a low-order point");
  return out;
}

// Opens nonce(24) ‖ box from `sender` to `receiver`.
result<std::string> open_box(bytes nonce_and_box, const public_key& sender, const private_key& receiver,
                             const char* what) {
  if (nonce_and_box.size() < nonce_size + box_tag_size)
    return fail(std::string(what) + ": " + size_text(nonce_and_box.size()) + ", shorter than a nonce and a box");
  const bytes box = nonce_and_box.subspan(nonce_size);
  std::string plain(box.size() - box_tag_size, '\0');
  if (crypto_box_open_easy(reinterpret_cast<std::uint8_t*>(plain.data()), box.data(), box.size(),
                           nonce_and_box.data(), sender.data(), receiver.data()) != 0)
    return fail(std::string(what) + ": the box does not open (wrong key or corrupt)");
  return plain;
}

std::optional<std::uint64_t> optional_unsigned(const nlohmann::json& doc, const char* name) {
  const auto it = doc.find(name);
  if (it == doc.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

}  // namespace

const char* to_string(frame_type t) noexcept {
  switch (t) {
    case frame_type::server_key: return "server_key";
    case frame_type::client_info: return "client_info";
    case frame_type::server_info: return "server_info";
    case frame_type::send_packet: return "send_packet";
    case frame_type::recv_packet: return "recv_packet";
    case frame_type::keep_alive: return "keep_alive";
    case frame_type::note_preferred: return "note_preferred";
    case frame_type::peer_gone: return "peer_gone";
    case frame_type::peer_present: return "peer_present";
    case frame_type::forward_packet: return "forward_packet";
    case frame_type::watch_conns: return "watch_conns";
    case frame_type::close_peer: return "close_peer";
    case frame_type::ping: return "ping";
    case frame_type::pong: return "pong";
    case frame_type::health: return "health";
    case frame_type::restarting: return "restarting";
  }
  return "unknown";
}

// --- reading ----------------------------------------------------------------

void frame_reader::feed(std::span<const std::uint8_t> bytes_in) {
  if (failed_ || bytes_in.empty()) return;
  // Drop what was returned already, so the buffer holds one partial frame
  // plus this feed at most.
  if (consumed_ > 0) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  buf_.insert(buf_.end(), bytes_in.begin(), bytes_in.end());
}

result<std::optional<frame>> frame_reader::next() {
  if (failed_) return fail("derp: frame stream already failed");
  const std::size_t available = buf_.size() - consumed_;
  if (available < frame_header_size) return std::optional<frame>();
  const std::uint8_t* header = buf_.data() + consumed_;
  const std::size_t length = load_be32(header + 1);
  if (length > max_body_) {
    failed_ = true;
    return fail("derp: frame of type " + std::to_string(header[0]) + " announces " + size_text(length) +
                ", more than " + std::to_string(max_body_));
  }
  if (available < frame_header_size + length) return std::optional<frame>();
  frame f{static_cast<frame_type>(header[0]), bytes(header + frame_header_size, length)};
  consumed_ += frame_header_size + length;
  return std::optional<frame>(f);
}

// --- client -> server -------------------------------------------------------

void append_frame_header(std::vector<std::uint8_t>& out, frame_type t, std::size_t body_size) {
  const std::size_t at = out.size();
  out.resize(at + frame_header_size);
  out[at] = static_cast<std::uint8_t>(t);
  store_be32(out.data() + at + 1, static_cast<std::uint32_t>(body_size));
}

result<std::vector<std::uint8_t>> client_info_frame(const private_key& node_private, const public_key& node_public,
                                                    const public_key& server_key, std::string_view json) {
  return sealed_frame(frame_type::client_info, &node_public, node_private, server_key, json);
}

void append_send_packet(std::vector<std::uint8_t>& out, const public_key& dst, std::span<const std::uint8_t> packet) {
  append_frame_header(out, frame_type::send_packet, key_size + packet.size());
  out.insert(out.end(), dst.begin(), dst.end());
  out.insert(out.end(), packet.begin(), packet.end());
}

std::vector<std::uint8_t> send_packet_frame(const public_key& dst, std::span<const std::uint8_t> packet) {
  std::vector<std::uint8_t> out;
  out.reserve(frame_header_size + key_size + packet.size());
  append_send_packet(out, dst, packet);
  return out;
}

std::vector<std::uint8_t> note_preferred_frame(bool preferred) {
  const std::uint8_t flag = preferred ? 1 : 0;
  return frame_with_body(frame_type::note_preferred, bytes(&flag, 1));
}

std::vector<std::uint8_t> ping_frame(const ping_data& data) { return frame_with_body(frame_type::ping, data); }
std::vector<std::uint8_t> pong_frame(const ping_data& data) { return frame_with_body(frame_type::pong, data); }

// --- server -> client: parsers --------------------------------------------------

result<public_key> parse_server_key(std::span<const std::uint8_t> body) {
  if (body.size() < server_key_body_size)
    return fail("derp: ServerKey of " + size_text(body.size()) + ", at least 40");
  if (!std::equal(server_key_magic.begin(), server_key_magic.end(), body.begin()))
    return fail("derp: ServerKey without the DERP magic: " +
                detail::printable(std::string_view(reinterpret_cast<const char*>(body.data()), 8)));
  return public_key::from_bytes(body.data() + server_key_magic.size());
}

result<server_info> open_server_info(std::span<const std::uint8_t> body, const private_key& node_private,
                                     const public_key& server_key) {
  auto plain = open_box(body, server_key, node_private, "derp: ServerInfo");
  if (!plain) return plain.error();
  const auto doc = nlohmann::json::parse(*plain, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return fail("derp: ServerInfo is not a JSON object: " + detail::printable(*plain));
  server_info out;
  if (const auto v = optional_unsigned(doc, "version"); v && *v < 1000) out.version = static_cast<int>(*v);
  out.token_bucket_bytes_per_second = optional_unsigned(doc, "TokenBucketBytesPerSecond");
  out.token_bucket_bytes_burst = optional_unsigned(doc, "TokenBucketBytesBurst");
  out.json = std::move(*plain);
  return out;
}

result<recv_packet> parse_recv_packet(std::span<const std::uint8_t> body) {
  if (body.size() < key_size) return fail("derp: RecvPacket of " + size_text(body.size()) + ", shorter than a key");
  return recv_packet{public_key::from_bytes(body.data()), body.subspan(key_size)};
}

result<peer_gone> parse_peer_gone(std::span<const std::uint8_t> body) {
  if (body.size() < key_size) return fail("derp: PeerGone of " + size_text(body.size()) + ", shorter than a key");
  peer_gone out{public_key::from_bytes(body.data()), 0};
  if (body.size() > key_size) out.reason = body[key_size];
  return out;
}

result<restarting> parse_restarting(std::span<const std::uint8_t> body) {
  if (body.size() < 8) return fail("derp: Restarting of " + size_text(body.size()) + ", at least 8");
  return restarting{std::chrono::milliseconds(load_be32(body.data())),
                    std::chrono::milliseconds(load_be32(body.data() + 4))};
}

result<ping_data> parse_ping_data(std::span<const std::uint8_t> body) {
  if (body.size() < ping_data_size) return fail("derp: Ping/Pong of " + size_text(body.size()) + ", at least 8");
  ping_data out{};
  std::copy_n(body.begin(), ping_data_size, out.begin());
  return out;
}

std::string parse_health(std::span<const std::uint8_t> body) {
  const std::size_t n = std::min(body.size(), max_health_text);
  std::string out(n, '?');
  for (std::size_t i = 0; i < n; ++i)
    if (body[i] >= 0x20 && body[i] < 0x7f) out[i] = static_cast<char>(body[i]);
  return out;
}

// --- server side -------------------------------------------------------------------

std::vector<std::uint8_t> server_key_frame(const public_key& server_key) {
  std::vector<std::uint8_t> body(server_key_magic.begin(), server_key_magic.end());
  body.insert(body.end(), server_key.begin(), server_key.end());
  return frame_with_body(frame_type::server_key, body);
}

result<client_info> open_client_info(std::span<const std::uint8_t> body, const private_key& server_private) {
  if (body.size() < key_size) return fail("derp: ClientInfo of " + size_text(body.size()) + ", shorter than a key");
  client_info out{public_key::from_bytes(body.data()), {}};
  auto plain = open_box(body.subspan(key_size), out.node_key, server_private, "derp: ClientInfo");
  if (!plain) return plain.error();
  out.json = std::move(*plain);
  return out;
}

result<std::vector<std::uint8_t>> server_info_frame(const private_key& server_private, const public_key& client_key,
                                                    std::string_view json) {
  return sealed_frame(frame_type::server_info, nullptr, server_private, client_key, json);
}

void append_recv_packet(std::vector<std::uint8_t>& out, const public_key& src, std::span<const std::uint8_t> packet) {
  append_frame_header(out, frame_type::recv_packet, key_size + packet.size());
  out.insert(out.end(), src.begin(), src.end());
  out.insert(out.end(), packet.begin(), packet.end());
}

std::vector<std::uint8_t> peer_gone_frame(const public_key& peer, std::uint8_t reason) {
  std::vector<std::uint8_t> body(peer.begin(), peer.end());
  body.push_back(reason);
  return frame_with_body(frame_type::peer_gone, body);
}

std::vector<std::uint8_t> restarting_frame(std::uint32_t reconnect_in_ms, std::uint32_t try_for_ms) {
  std::array<std::uint8_t, 8> body{};
  store_be32(body.data(), reconnect_in_ms);
  store_be32(body.data() + 4, try_for_ms);
  return frame_with_body(frame_type::restarting, body);
}

std::vector<std::uint8_t> health_frame(std::string_view problem) {
  return frame_with_body(frame_type::health, bytes(reinterpret_cast<const std::uint8_t*>(problem.data()), problem.size()));
}

std::vector<std::uint8_t> keep_alive_frame() { return frame_with_body(frame_type::keep_alive, {}); }

}  // namespace lopower::tailnet::derp
