#include "control/tailnet/disco/disco_message.h"

#include <sodium.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "control/wireguard/engine/primitives.h"
#include "lopower/byte_order.h"
#include "lopower/hex.h"

namespace lopower::tailnet::disco {

namespace {

using bytes = std::span<const std::uint8_t>;

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static_assert(crypto_box_NONCEBYTES == nonce_size);
static_assert(crypto_box_MACBYTES == box_tag_size);
static_assert(crypto_box_BEFORENMBYTES == key32::size_bytes);
static_assert(crypto_box_PUBLICKEYBYTES == key_size && crypto_box_SECRETKEYBYTES == key_size);

failure error(parse_error e, const std::string& detail) { return fail(std::string(to_string(e)) + ": " + detail); }

std::string hex_byte(std::uint8_t b) { return "0x" + to_hex(std::span(&b, 1)); }

// --- addresses ----------------------------------------------------------------

// 16 bytes and a big-endian port; ::ffff:a.b.c.d comes out as IPv4
// (netip.AddrFrom16(...).Unmap()).
ip_port read_ip_port(bytes wire) noexcept {
  ip_port out;
  if (std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(), wire.begin())) {
    out.address.family = ip_family::v4;
    std::copy_n(wire.begin() + 12, 4, out.address.bytes.begin());
  } else {
    out.address.family = ip_family::v6;
    std::copy_n(wire.begin(), 16, out.address.bytes.begin());
  }
  out.port = load_be16(&wire[16]);
  return out;
}

void append_ip_port(std::vector<std::uint8_t>& out, const ip_port& ep) {
  if (ep.address.family == ip_family::v4) {
    out.insert(out.end(), v4_mapped_prefix.begin(), v4_mapped_prefix.end());
    out.insert(out.end(), ep.address.bytes.begin(), ep.address.bytes.begin() + 4);
  } else {
    out.insert(out.end(), ep.address.bytes.begin(), ep.address.bytes.end());
  }
  out.resize(out.size() + 2);
  store_be16(out.data() + out.size() - 2, ep.port);
}

// --- parsing the bodies ---------------------------------------------------------

result<message> parse_ping(bytes body) {
  if (body.size() < ping_body_min_size)
    return error(parse_error::too_short, "ping body of " + std::to_string(body.size()) + " bytes, at least 12");
  ping m;
  std::copy_n(body.begin(), tx_id_size, m.tx_id.begin());
  m.padding = body.size() - tx_id_size;
  // Lax on longer bodies, as disco.go: the key when there is room for it,
  // then whatever follows is padding.
  if (body.size() >= ping_body_with_key_size) {
    auto key = public_key::from_bytes(body.data() + tx_id_size);
    if (!key.is_zero()) m.node_key = std::move(key);
    m.padding -= key_size;
  }
  return message{std::move(m)};
}

result<message> parse_pong(bytes body) {
  if (body.size() < pong_body_size)
    return error(parse_error::too_short, "pong body of " + std::to_string(body.size()) + " bytes, at least 30");
  pong m;
  std::copy_n(body.begin(), tx_id_size, m.tx_id.begin());
  m.src = read_ip_port(body.subspan(tx_id_size, endpoint_wire_size));
  return message{std::move(m)};
}

// A body that is not whole endpoints, or a version other than 0, is an
// empty call-me-maybe in disco.go, not an error: it still asks for pings.
result<message> parse_call_me_maybe(std::uint8_t version, bytes body) {
  call_me_maybe m;
  if (version != 0 || body.size() % endpoint_wire_size != 0) return message{std::move(m)};
  m.endpoints.reserve(body.size() / endpoint_wire_size);
  for (std::size_t at = 0; at < body.size(); at += endpoint_wire_size)
    m.endpoints.push_back(read_ip_port(body.subspan(at, endpoint_wire_size)));
  return message{std::move(m)};
}

bool is_relay_type(std::uint8_t t) noexcept {
  return t >= static_cast<std::uint8_t>(message_type::bind_udp_relay_endpoint) &&
         t <= static_cast<std::uint8_t>(message_type::allocate_udp_relay_endpoint_response);
}

// --- encoding the bodies ----------------------------------------------------------

// The node key goes on the wire only when set and not zero, as tailscale
// writes it (a zero key would read back as none anyway).
bool sends_node_key(const ping& m) noexcept { return m.node_key && !m.node_key->is_zero(); }

std::size_t saturating_add(std::size_t a, std::size_t b) noexcept {
  return b > std::numeric_limits<std::size_t>::max() - a ? std::numeric_limits<std::size_t>::max() : a + b;
}

void append_header(std::vector<std::uint8_t>& out, message_type t) {
  out.push_back(static_cast<std::uint8_t>(t));
  out.push_back(0);  // version 0: the only one tailscale writes
}

void append_body(std::vector<std::uint8_t>& out, const ping& m) {
  out.insert(out.end(), m.tx_id.begin(), m.tx_id.end());
  if (sends_node_key(m)) out.insert(out.end(), m.node_key->begin(), m.node_key->end());
  out.resize(out.size() + m.padding, 0);
}

void append_body(std::vector<std::uint8_t>& out, const pong& m) {
  out.insert(out.end(), m.tx_id.begin(), m.tx_id.end());
  append_ip_port(out, m.src);
}

void append_body(std::vector<std::uint8_t>& out, const call_me_maybe& m) {
  for (const ip_port& ep : m.endpoints) append_ip_port(out, ep);
}

// --- the packet -------------------------------------------------------------------

// Everything about the packet that needs no key.
std::optional<failure> header_problem(bytes packet) {
  if (packet.size() < magic.size())
    return error(parse_error::too_short, "packet of " + std::to_string(packet.size()) + " bytes");
  if (!std::equal(magic.begin(), magic.end(), packet.begin())) return error(parse_error::bad_magic, "no disco magic");
  if (packet.size() < min_packet_size)
    return error(parse_error::too_short, "packet of " + std::to_string(packet.size()) + " bytes, at least " +
                                             std::to_string(min_packet_size));
  if (packet.size() > max_packet_size)
    return error(parse_error::too_large, "packet of " + std::to_string(packet.size()) + " bytes, at most " +
                                             std::to_string(max_packet_size));
  return std::nullopt;
}

// The header is known good.
result<message> open_box(bytes packet, const key32& shared) {
  const bytes box = packet.subspan(box_offset);
  std::vector<std::uint8_t> plain(box.size() - box_tag_size);
  if (crypto_box_open_easy_afternm(plain.data(), box.data(), box.size(), packet.data() + nonce_offset,
                                   shared.data()) != 0)
    return error(parse_error::decrypt_failed, "the box does not open with this key");
  return parse_plaintext(plain);
}

}  // namespace

const char* to_string(message_type t) noexcept {
  switch (t) {
#define LOPOWER_DISCO_TYPE_NAME(id, value) \
  case message_type::id: return #id;
    LOPOWER_DISCO_MESSAGE_TYPES(LOPOWER_DISCO_TYPE_NAME)
#undef LOPOWER_DISCO_TYPE_NAME
  }
  return "unknown";
}

const char* to_string(parse_error e) noexcept { return name_in(parse_error_names, e, "unknown"); }

std::optional<parse_error> parse_error_of(const failure& f) {
  for (std::size_t i = 0; i < parse_error_count; ++i) {
    const std::string prefix = std::string(parse_error_names[i]) + ": ";
    if (f.message.starts_with(prefix)) return static_cast<parse_error>(i);
  }
  return std::nullopt;
}

std::string ip_port::to_string() const {
  const std::string port_text = ":" + std::to_string(port);
  if (address.family == ip_family::v4) return address.to_string() + port_text;
  return "[" + address.to_string() + "]" + port_text;
}

message_type type_of(const message& m) noexcept {
  switch (m.index()) {
    case 0: return message_type::ping;
    case 1: return message_type::pong;
    default: return message_type::call_me_maybe;
  }
}

result<message> parse_plaintext(std::span<const std::uint8_t> plaintext) {
  if (plaintext.size() < message_header_size)
    return error(parse_error::too_short, "plaintext of " + std::to_string(plaintext.size()) + " bytes");
  if (plaintext.size() > max_plaintext_size)
    return error(parse_error::too_large, "plaintext of " + std::to_string(plaintext.size()) + " bytes");
  const std::uint8_t type = plaintext[0];
  const std::uint8_t version = plaintext[1];
  const bytes body = plaintext.subspan(message_header_size);
  // Ping and pong ignore the version (disco.go): a newer one only appends.
  switch (type) {
    case static_cast<std::uint8_t>(message_type::ping): return parse_ping(body);
    case static_cast<std::uint8_t>(message_type::pong): return parse_pong(body);
    case static_cast<std::uint8_t>(message_type::call_me_maybe): return parse_call_me_maybe(version, body);
    default: break;
  }
  if (is_relay_type(type))
    return error(parse_error::unsupported_type,
                 std::string(to_string(static_cast<message_type>(type))) + " (" + hex_byte(type) + ")");
  return error(parse_error::unknown_type, "message type " + hex_byte(type));
}

std::size_t plaintext_size(const message& m) noexcept {
  if (const auto* p = std::get_if<ping>(&m))
    return saturating_add(message_header_size + tx_id_size + (sends_node_key(*p) ? key_size : 0), p->padding);
  if (std::holds_alternative<pong>(m)) return message_header_size + pong_body_size;
  const std::size_t n = std::get<call_me_maybe>(m).endpoints.size();
  if (n > max_call_me_maybe_endpoints) return std::numeric_limits<std::size_t>::max();
  return message_header_size + n * endpoint_wire_size;
}

std::vector<std::uint8_t> encode_plaintext(const message& m) {
  const std::size_t size = plaintext_size(m);
  if (size > max_plaintext_size) return {};
  std::vector<std::uint8_t> out;
  out.reserve(size);
  append_header(out, type_of(m));
  std::visit([&out](const auto& body) { append_body(out, body); }, m);
  return out;
}

bool looks_like_disco(std::span<const std::uint8_t> udp_payload) noexcept {
  return udp_payload.size() >= packet_header_size &&
         std::equal(magic.begin(), magic.end(), udp_payload.begin());
}

std::optional<public_key> sender_key(std::span<const std::uint8_t> packet) noexcept {
  if (!looks_like_disco(packet)) return std::nullopt;
  return public_key::from_bytes(packet.data() + sender_key_offset);
}

std::optional<key32> shared_key(const private_key& mine, const public_key& peer) noexcept {
  wg::crypto::init();
  key32 shared;
  if (crypto_box_beforenm(shared.data(), peer.data(), mine.data()) != 0) return std::nullopt;
  return shared;
}

result<message> open(std::span<const std::uint8_t> packet, const private_key& my_private, const public_key& sender) {
  if (auto problem = header_problem(packet)) return std::move(*problem);
  if (public_key::from_bytes(packet.data() + sender_key_offset) != sender)
    return error(parse_error::sender_mismatch, "the packet names another sender");
  const auto shared = shared_key(my_private, sender);
  if (!shared) return error(parse_error::bad_key, "the sender's key is a low-order point");
  return open_box(packet, *shared);
}

result<message> open(std::span<const std::uint8_t> packet, const key32& shared) {
  if (auto problem = header_problem(packet)) return std::move(*problem);
  return open_box(packet, shared);
}

std::vector<std::uint8_t> seal(const message& m, const key32& shared, const public_key& my_public, const nonce& n) {
  const std::vector<std::uint8_t> plain = encode_plaintext(m);
  if (plain.empty()) return {};
  std::vector<std::uint8_t> out(packet_overhead + plain.size());
  std::copy(magic.begin(), magic.end(), out.begin());
  std::copy(my_public.begin(), my_public.end(), out.begin() + sender_key_offset);
  std::copy(n.begin(), n.end(), out.begin() + nonce_offset);
  // Fails only beyond libsodium's message size limit, far above ours.
  if (crypto_box_easy_afternm(out.data() + box_offset, plain.data(), plain.size(), n.data(), shared.data()) != 0)
    return {};
  return out;
}

std::vector<std::uint8_t> seal(const message& m, const key32& shared, const public_key& my_public) {
  wg::crypto::init();
  nonce n;
  randombytes_buf(n.data(), n.size());
  return seal(m, shared, my_public, n);
}

std::vector<std::uint8_t> seal(const message& m, const private_key& my_private, const public_key& my_public,
                               const public_key& receiver) {
  const auto shared = shared_key(my_private, receiver);
  if (!shared) return {};
  return seal(m, *shared, my_public);
}

}  // namespace lopower::tailnet::disco
