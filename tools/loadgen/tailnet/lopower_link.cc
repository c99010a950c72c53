#include "tools/loadgen/tailnet/lopower_link.h"

#include <sodium.h>

#include <chrono>
#include <cstring>

namespace lopower::loadgen {

namespace disco = tailnet::disco;

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t ns(std::chrono::nanoseconds d) { return static_cast<std::uint64_t>(d.count()); }

// tailscale's magicsock heartbeat: how often lopower's endpoints are pinged.
constexpr std::uint64_t disco_ping_interval_ns = ns(3s);
// A disco ping not answered by then is forgotten.
constexpr std::uint64_t disco_ping_lifetime_ns = ns(10s);
// Before rekeying a session lopower initiated, give lopower's own rekey
// (at rekey_after_time) a head start, so the two do not cross.
constexpr std::uint64_t responder_rekey_grace_ns = ns(10s);

ip_address to_ip(const udp_endpoint& e) { return ip_address::from_bytes(e.ipv6, e.ip); }

wg::packet_source source_of(const udp_endpoint& e) {
  return e.ipv6 ? wg::packet_source::v6(e.ip, e.port) : wg::packet_source::v4(e.ip, e.port);
}

template <typename Message>
std::vector<std::uint8_t> bytes_of(const Message& m) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
  return {p, p + sizeof m};
}

}  // namespace

udp_endpoint to_udp(const ip_address& a, std::uint16_t port) {
  udp_endpoint e;
  e.ipv6 = a.family == ip_family::v6;
  std::memcpy(e.ip, a.bytes.data(), e.ipv6 ? 16 : 4);
  e.port = port;
  return e;
}

lopower_link::lopower_link(const private_key& node_private, const private_key& disco_private,
                           const udp_endpoint& local)
    : identity_(node_private), local_(local) {
  node_public_ = identity_.static_public();
  set_disco_key(disco_private);
}

void lopower_link::set_disco_key(const private_key& disco_private) {
  disco_private_ = disco_private;
  disco_public_ = public_from_private(disco_private);
  disco_shared_.reset();
  if (lopower_ && !lopower_->disco_key.is_zero()) disco_shared_ = disco::shared_key(disco_private_, lopower_->disco_key);
}

void lopower_link::set_lopower(std::optional<lopower_peer> peer) {
  const bool same_node = peer && lopower_ && peer->node_key == lopower_->node_key;
  if (!same_node) {  // a new lopower (or none): start over
    peer_.reset();
    maker_.reset();
    current_.reset();
    best_.reset();
    pending_index_ = 0;
    pending_pings_.clear();
    last_ping_round_.reset();
  }
  lopower_ = std::move(peer);
  if (lopower_ && !same_node) {
    peer_.emplace(identity_, lopower_->node_key);
    maker_.emplace(lopower_->node_key);
  }
  set_disco_key(disco_private_);
}

wg::peer_handshake* lopower_link::by_static(const public_key& key) {
  return peer_ && peer_->remote_static() == key ? &*peer_ : nullptr;
}

wg::peer_handshake* lopower_link::by_index(std::uint32_t index) {
  return peer_ && pending_index_ != 0 && index == pending_index_ ? &*peer_ : nullptr;
}

// --- datagrams ---------------------------------------------------------------

void lopower_link::receive(const datagram& in, std::uint64_t now, std::vector<datagram>& out) {
  if (!peer_ || !peer_->usable() || !maker_->valid()) return void(++stats_.not_ready);
  if (disco::looks_like_disco(in.payload)) return on_disco(in, now, out);
  const wg::parsed_message msg = wg::parse_message(in.payload.data(), in.payload.size());
  if (msg.transport() != nullptr) return void(++stats_.transport_ignored);  // the data path's
  if (!msg.valid()) return void(++stats_.malformed);
  on_handshake(msg, in, now, out);
}

void lopower_link::on_disco(const datagram& in, std::uint64_t now, std::vector<datagram>& out) {
  const auto sender = disco::sender_key(in.payload);
  if (!disco_shared_ || !sender || !(*sender == lopower_->disco_key)) return void(++stats_.disco_not_from_lopower);
  auto msg = disco::open(in.payload, *disco_shared_);
  if (!msg) return void(++stats_.disco_undecryptable);
  if (const auto* ping = std::get_if<disco::ping>(&*msg)) {
    ++stats_.disco_pings_received;
    if (ping->node_key && !(*ping->node_key == lopower_->node_key)) return void(++stats_.disco_ping_for_another_key);
    const disco::pong pong{ping->tx_id, {to_ip(in.peer), in.peer.port}};
    auto sealed = disco::seal(disco::message{pong}, *disco_shared_, disco_public_);
    if (sealed.empty()) return;
    out.push_back({in.peer, std::move(sealed)});
    ++stats_.disco_pongs_sent;
  } else if (const auto* pong = std::get_if<disco::pong>(&*msg)) {
    auto it = pending_pings_.find(pong->tx_id);
    if (it == pending_pings_.end()) return void(++stats_.disco_unexpected_pong);  // not ours, or too late
    ++stats_.disco_pongs_received;
    best_ = it->second.first;
    pending_pings_.erase(it);
  } else if (const auto* cmm = std::get_if<disco::call_me_maybe>(&*msg)) {
    ++stats_.call_me_maybe_received;
    for (const disco::ip_port& e : cmm->endpoints)
      if ((e.address.family == ip_family::v6) == local_.ipv6)
        send_ping(to_udp(e.address, e.port), now, out);
  }
}

void lopower_link::on_handshake(const wg::parsed_message& msg, const datagram& in, std::uint64_t now,
                                std::vector<datagram>& out) {
  if (const auto* cookie = msg.cookie_reply()) {
    if (pending_index_ != 0 && cookie->receiver_index.get() == pending_index_ && maker_->consume_reply(*cookie, now))
      ++stats_.cookie_replies_received;
    else
      ++stats_.cookie_reply_unexpected;
    return;
  }
  // Never under load: a load generator answers every handshake it is sent.
  if (cookies_.validate(identity_, msg.data, msg.length, source_of(in.peer), false, now) == wg::mac_status::invalid_mac)
    return void(++stats_.handshake_invalid_mac);
  if (const auto* init = msg.initiation()) on_initiation(*init, in.peer, now, out);
  else if (const auto* resp = msg.response()) on_response(*resp, in.peer, now, out);
}

void lopower_link::on_initiation(const wg::message_handshake_initiation& msg, const udp_endpoint& from,
                                 std::uint64_t now, std::vector<datagram>& out) {
  ++stats_.initiations_received;
  const wg::consume_result res = wg::consume_initiation(msg, identity_, *this, now);
  if (!res) return void(++stats_.handshake_refused);
  pending_index_ = 0;  // lopower's initiation replaces ours
  wg::message_handshake_response resp{};
  if (wg::create_response(resp, *peer_, identity_, randombytes_random()) != wg::handshake_error::none)
    return void(++stats_.handshake_refused);
  maker_->add_macs(resp, now);
  auto keys = wg::derive_keypair(*peer_);
  if (!keys) return void(++stats_.handshake_refused);
  install(*keys, from, now);
  out.push_back({from, bytes_of(resp)});
  ++stats_.responses_sent;
}

void lopower_link::on_response(const wg::message_handshake_response& msg, const udp_endpoint& from,
                               std::uint64_t now, std::vector<datagram>& out) {
  ++stats_.responses_received;
  const wg::consume_result res = wg::consume_response(msg, identity_, *this);
  if (!res) return void(++stats_.handshake_refused);
  auto keys = wg::derive_keypair(*peer_);
  if (!keys) return void(++stats_.handshake_refused);
  pending_index_ = 0;
  install(*keys, from, now);
  // lopower, the responder, confirms the session on our first data: a
  // keepalive, as the data path may have nothing to send yet.
  if (seal_keepalive(out)) {
    current_->first_send_counter = 1;
    ++stats_.keepalives_sent;
  }
}

void lopower_link::install(const wg::transport_keys& keys, const udp_endpoint& lopower_ep, std::uint64_t now) {
  tailnet_session s{};
  std::memcpy(s.send_key, keys.send.data(), 32);
  std::memcpy(s.receive_key, keys.receive.data(), 32);
  s.local_index = keys.local_index;
  s.remote_index = keys.remote_index;
  s.lopower = lopower_ep;
  s.generation = ++generation_;
  current_ = s;
  current_initiator_ = keys.initiator;
  session_born_at_ = now;
  ++stats_.handshakes_completed;
}

// An empty transport message with counter 0 (whitepaper 6.5).
bool lopower_link::seal_keepalive(std::vector<datagram>& out) {
  std::vector<std::uint8_t> packet(wg::message_data_min_size);
  wg::write_data_header(packet.data(), current_->remote_index, 0);
  std::uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES]{};  // 4 zero bytes, then the counter (0)
  unsigned long long length = 0;
  if (crypto_aead_chacha20poly1305_ietf_encrypt(packet.data() + sizeof(wg::message_data), &length, nullptr, 0,
                                                nullptr, 0, nullptr, nonce, current_->send_key) != 0)
    return false;
  out.push_back({current_->lopower, std::move(packet)});
  return true;
}

// --- timers --------------------------------------------------------------------

void lopower_link::poll(std::uint64_t now, std::vector<datagram>& out) {
  if (!peer_ || !peer_->usable() || !maker_->valid()) return;
  std::erase_if(pending_pings_, [now](const auto& kv) { return now - kv.second.second > disco_ping_lifetime_ns; });
  if (!last_ping_round_ || now - *last_ping_round_ >= disco_ping_interval_ns) ping_endpoints(now, out);
  if (current_ && now - session_born_at_ >= ns(wg::reject_after_time)) current_.reset();  // no longer to be used
  const bool waiting = pending_index_ != 0 && now - initiation_sent_at_ < ns(wg::rekey_timeout);
  if (!waiting && (!current_ || rekey_due(now))) initiate(now, out);
}

bool lopower_link::rekey_due(std::uint64_t now) const {
  return now - session_born_at_ >= ns(wg::rekey_after_time) + (current_initiator_ ? 0 : responder_rekey_grace_ns);
}

void lopower_link::ping_endpoints(std::uint64_t now, std::vector<datagram>& out) {
  last_ping_round_ = now;
  for (const udp_endpoint& e : lopower_->endpoints)
    if (e.ipv6 == local_.ipv6) send_ping(e, now, out);
}

void lopower_link::send_ping(const udp_endpoint& to, std::uint64_t now, std::vector<datagram>& out) {
  if (!disco_shared_) return;
  disco::ping m;
  randombytes_buf(m.tx_id.data(), m.tx_id.size());
  m.node_key = node_public_;
  auto sealed = disco::seal(disco::message{m}, *disco_shared_, disco_public_);
  if (sealed.empty()) return;
  pending_pings_[m.tx_id] = {to, now};
  out.push_back({to, std::move(sealed)});
  ++stats_.disco_pings_sent;
}

// The endpoint that answered a disco ping, else lopower's first endpoint
// of our family (lopower answers a handshake wherever it comes from).
std::optional<udp_endpoint> lopower_link::handshake_destination() const {
  if (best_) return best_;
  for (const udp_endpoint& e : lopower_->endpoints)
    if (e.ipv6 == local_.ipv6) return e;
  return std::nullopt;
}

void lopower_link::initiate(std::uint64_t now, std::vector<datagram>& out) {
  const auto to = handshake_destination();
  if (!to) return;
  do pending_index_ = randombytes_random();
  while (pending_index_ == 0);  // 0 means none in flight
  wg::message_handshake_initiation msg{};
  if (wg::create_initiation(msg, *peer_, identity_, pending_index_, wg::tai64n_now()) != wg::handshake_error::none) {
    pending_index_ = 0;
    return void(++stats_.handshake_refused);
  }
  maker_->add_macs(msg, now);
  initiation_sent_at_ = now;
  out.push_back({*to, bytes_of(msg)});
  ++stats_.initiations_sent;
}

}  // namespace lopower::loadgen
