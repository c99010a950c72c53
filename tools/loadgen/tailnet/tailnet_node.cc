#include "tools/loadgen/tailnet/tailnet_node.h"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "control/event_loop.h"
#include "control/state_store.h"
#include "control/tailnet/client/coordination_client.h"
#include "control/tailnet/disco/disco_message.h"
#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "lopower/wireguard_messages.h"

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

udp_endpoint to_udp(const ip_address& a, std::uint16_t port) {
  udp_endpoint e;
  e.ipv6 = a.family == ip_family::v6;
  std::memcpy(e.ip, a.bytes.data(), e.ipv6 ? 16 : 4);
  e.port = port;
  return e;
}

ip_address to_ip(const udp_endpoint& e) { return ip_address::from_bytes(e.ipv6, e.ip); }

wg::packet_source source_of(const udp_endpoint& e) {
  return e.ipv6 ? wg::packet_source::v6(e.ip, e.port) : wg::packet_source::v4(e.ip, e.port);
}

template <typename Message>
std::vector<std::uint8_t> bytes_of(const Message& m) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
  return {p, p + sizeof m};
}

// What the node needs of lopower's netmap entry.
struct lopower_peer {
  public_key node_key, disco_key;
  std::vector<ip_address> addresses;
  std::vector<udp_endpoint> endpoints;
};

}  // namespace

struct tailnet_node::impl final : wg::peer_lookup {
  explicit impl(tailnet_node_options o) : options(std::move(o)) {}

  // --- the control thread --------------------------------------------------

  bool start(std::string& error);
  void stop();
  void on_netmap(const tailnet::netmap& nm);

  // --- the caller's thread (under mu) --------------------------------------

  void receive(const datagram& in, std::uint64_t now, std::vector<datagram>& out);
  void poll(std::uint64_t now, std::vector<datagram>& out);
  void on_disco(const datagram& in, std::vector<datagram>& out);
  void on_handshake(const wg::parsed_message& msg, const datagram& in, std::uint64_t now, std::vector<datagram>& out);
  void on_initiation(const wg::message_handshake_initiation& msg, const udp_endpoint& from, std::uint64_t now,
                     std::vector<datagram>& out);
  void on_response(const wg::message_handshake_response& msg, const udp_endpoint& from, std::uint64_t now,
                   std::vector<datagram>& out);
  void ping_endpoints(std::uint64_t now, std::vector<datagram>& out);
  void send_ping(const udp_endpoint& to, std::uint64_t now, std::vector<datagram>& out);
  void initiate(std::uint64_t now, std::vector<datagram>& out);
  void install(const wg::transport_keys& keys, const udp_endpoint& lopower, std::uint64_t now);
  bool seal_keepalive(std::vector<datagram>& out);
  bool rekey_due(std::uint64_t now) const;
  std::optional<udp_endpoint> handshake_destination() const;
  bool ensure_peer();

  // wg::peer_lookup: lopower is the only peer.
  wg::peer_handshake* by_static(const public_key& key) override {
    return peer && peer->remote_static() == key ? &*peer : nullptr;
  }
  wg::peer_handshake* by_index(std::uint32_t index) override {
    return peer && pending_index != 0 && index == pending_index ? &*peer : nullptr;
  }

  tailnet_node_options options;
  event_loop loop;
  std::thread thread;
  std::unique_ptr<state_store> store;
  std::unique_ptr<tailnet::coordination_client> client;
  std::atomic<bool> stopping{false};

  mutable std::mutex mu;
  std::condition_variable netmap_seen;
  std::optional<lopower_peer> lopower;  // from the last netmap
  std::vector<ip_address> own;          // our tailnet addresses
  private_key disco_private;
  public_key disco_public;
  std::optional<key32> disco_shared;    // with lopower's disco key
  std::optional<wg::static_identity> identity;
  std::optional<wg::peer_handshake> peer;
  std::optional<wg::cookie_maker> maker;
  wg::cookie_checker cookies;

  std::map<disco::transaction_id, std::pair<udp_endpoint, std::uint64_t>> pending_pings;  // tx -> (to, sent)
  std::optional<udp_endpoint> best;  // the endpoint of lopower's that answered our last ping
  std::uint64_t last_ping_round = 0;
  bool pinged_once = false;

  std::uint32_t pending_index = 0;  // of our initiation in flight
  std::uint64_t initiation_sent_at = 0;
  std::optional<tailnet_session> current;
  bool current_initiator = false;
  std::uint64_t session_born_at = 0;
  std::uint64_t generation = 0;
  tailnet_node_counters stats;
};

// --- start and the netmap ----------------------------------------------------

bool tailnet_node::impl::start(std::string& error) {
  auto url = tailnet::control_url::parse(options.control_url);
  if (!url) return error = "control_url: " + url.message(), false;
  auto opened = state_store::open(options.state_dir);
  if (!opened) return error = "state_dir: " + opened.message(), false;
  store = std::make_unique<state_store>(std::move(*opened));
  tailnet::coordination_config cfg;
  cfg.server = std::move(*url);
  cfg.hostinfo.hostname = options.hostname;
  cfg.hostinfo.ipn_version = "lopower-loadgen";
  cfg.auth_key = options.auth_key;
  cfg.ephemeral = true;  // a load generator leaves no node behind
  cfg.netmap_cache = false;
  try {
    client = std::make_unique<tailnet::coordination_client>(
        loop, std::move(cfg), *store,
        tailnet::coordination_client::handlers{
            [this](const tailnet::netmap& nm, const tailnet::netmap_changes&) { on_netmap(nm); }, {},
            [this](const private_key& priv, const public_key& pub) {
              std::lock_guard lock(mu);
              disco_private = priv;
              disco_public = pub;
              disco_shared.reset();  // recomputed with lopower's key on the next netmap
            }});
  } catch (const std::exception& e) {
    return error = e.what(), false;
  }
  {
    std::lock_guard lock(mu);
    disco_private = client->disco_private();
    disco_public = client->disco_public();
    identity.emplace(client->node_private());
    if (!identity->valid()) return error = "the node key is unusable", false;
  }
  // Lopower pings the endpoint we announce; the loadgen's port answers there.
  client->set_endpoints({tailnet::endpoint{to_ip(options.local), options.local.port}}, {1});
  // The loop cannot be woken from another thread: a short timer lets stop() end it.
  loop.add_timer(50ms, 50ms, [this] {
    if (stopping.load()) loop.stop();
  });
  client->start();
  thread = std::thread([this] { loop.run(); });
  std::unique_lock lock(mu);
  const bool found = netmap_seen.wait_for(lock, std::chrono::milliseconds(options.start_timeout_ms),
                                          [this] { return lopower.has_value() && !own.empty(); });
  if (!found) {
    error = "no peer named " + options.lopower_hostname + " in the netmap after " +
            std::to_string(options.start_timeout_ms) + " ms (backend state " + tailnet::to_string(client->state()) +
            (client->last_error().empty() ? "" : ", " + client->last_error()) + ")";
    lock.unlock();
    stop();
    return false;
  }
  return true;
}

void tailnet_node::impl::stop() {
  stopping.store(true);
  if (thread.joinable()) thread.join();
  client.reset();
}

void tailnet_node::impl::on_netmap(const tailnet::netmap& nm) {
  std::lock_guard lock(mu);
  if (const tailnet::node* self = nm.self()) {
    own.clear();
    for (const ip_prefix& p : self->addresses) own.push_back(p.address);
  }
  const tailnet::node* found = nullptr;
  for (const tailnet::node& n : nm.peers())
    if (n.hostname == options.lopower_hostname) found = &n;
  if (found == nullptr) {
    lopower.reset();
  } else {
    lopower_peer p{found->key, found->disco_key, {}, {}};
    for (const ip_prefix& a : found->addresses) p.addresses.push_back(a.address);
    for (const tailnet::endpoint& e : found->endpoints) p.endpoints.push_back(to_udp(e.address, e.port));
    if (!lopower || !(lopower->disco_key == p.disco_key)) disco_shared.reset();
    if (!lopower || !(lopower->node_key == p.node_key)) {  // a new lopower (or key): start over
      peer.reset();
      current.reset();
      best.reset();
    }
    lopower = std::move(p);
  }
  netmap_seen.notify_all();
}

// --- datagrams ---------------------------------------------------------------

bool tailnet_node::impl::ensure_peer() {
  if (!lopower || !identity) return false;
  if (!peer) {
    peer.emplace(*identity, lopower->node_key);
    maker.emplace(lopower->node_key);
  }
  if (!disco_shared && !lopower->disco_key.is_zero()) disco_shared = disco::shared_key(disco_private, lopower->disco_key);
  return peer->usable() && maker->valid();
}

void tailnet_node::impl::receive(const datagram& in, std::uint64_t now, std::vector<datagram>& out) {
  if (!ensure_peer()) return void(++stats.not_ready);
  if (disco::looks_like_disco(in.payload)) return on_disco(in, out);
  const wg::parsed_message msg = wg::parse_message(in.payload.data(), in.payload.size());
  if (msg.transport() != nullptr) return void(++stats.transport_ignored);  // the data path's
  if (!msg.valid()) return void(++stats.malformed);
  on_handshake(msg, in, now, out);
}

void tailnet_node::impl::on_disco(const datagram& in, std::vector<datagram>& out) {
  const auto sender = disco::sender_key(in.payload);
  if (!disco_shared || !sender || !(*sender == lopower->disco_key)) return void(++stats.disco_not_from_lopower);
  auto msg = disco::open(in.payload, *disco_shared);
  if (!msg) return void(++stats.disco_undecryptable);
  if (const auto* ping = std::get_if<disco::ping>(&*msg)) {
    ++stats.disco_pings_received;
    if (ping->node_key && !(*ping->node_key == lopower->node_key)) return void(++stats.disco_ping_for_another_key);
    const disco::pong pong{ping->tx_id, {to_ip(in.peer), in.peer.port}};
    auto sealed = disco::seal(disco::message{pong}, *disco_shared, disco_public);
    if (sealed.empty()) return;
    out.push_back({in.peer, std::move(sealed)});
    ++stats.disco_pongs_sent;
  } else if (const auto* pong = std::get_if<disco::pong>(&*msg)) {
    auto it = pending_pings.find(pong->tx_id);
    if (it == pending_pings.end()) return void(++stats.disco_unexpected_pong);  // not ours, or too late
    ++stats.disco_pongs_received;
    best = it->second.first;
    pending_pings.erase(it);
  } else if (const auto* cmm = std::get_if<disco::call_me_maybe>(&*msg)) {
    ++stats.call_me_maybe_received;
    for (const disco::ip_port& e : cmm->endpoints)
      if ((e.address.family == ip_family::v6) == options.local.ipv6) send_ping(to_udp(e.address, e.port), 0, out);
  }
}

void tailnet_node::impl::on_handshake(const wg::parsed_message& msg, const datagram& in, std::uint64_t now,
                                      std::vector<datagram>& out) {
  if (const auto* cookie = msg.cookie_reply()) {
    if (pending_index != 0 && cookie->receiver_index.get() == pending_index && maker->consume_reply(*cookie, now))
      ++stats.cookie_replies_received;
    else
      ++stats.cookie_reply_unexpected;
    return;
  }
  // Never under load: a load generator answers every handshake it is sent.
  if (cookies.validate(*identity, msg.data, msg.length, source_of(in.peer), false, now) == wg::mac_status::invalid_mac)
    return void(++stats.handshake_invalid_mac);
  if (const auto* init = msg.initiation()) on_initiation(*init, in.peer, now, out);
  else if (const auto* resp = msg.response()) on_response(*resp, in.peer, now, out);
}

void tailnet_node::impl::on_initiation(const wg::message_handshake_initiation& msg, const udp_endpoint& from,
                                       std::uint64_t now, std::vector<datagram>& out) {
  ++stats.initiations_received;
  const wg::consume_result res = wg::consume_initiation(msg, *identity, *this, now);
  if (!res) return void(++stats.handshake_refused);
  pending_index = 0;  // lopower's initiation replaces ours
  wg::message_handshake_response resp{};
  if (wg::create_response(resp, *peer, *identity, randombytes_random()) != wg::handshake_error::none)
    return void(++stats.handshake_refused);
  maker->add_macs(resp, now);
  auto keys = wg::derive_keypair(*peer);
  if (!keys) return void(++stats.handshake_refused);
  install(*keys, from, now);
  out.push_back({from, bytes_of(resp)});
  ++stats.responses_sent;
}

void tailnet_node::impl::on_response(const wg::message_handshake_response& msg, const udp_endpoint& from,
                                     std::uint64_t now, std::vector<datagram>& out) {
  ++stats.responses_received;
  const wg::consume_result res = wg::consume_response(msg, *identity, *this);
  if (!res) return void(++stats.handshake_refused);
  auto keys = wg::derive_keypair(*peer);
  if (!keys) return void(++stats.handshake_refused);
  pending_index = 0;
  install(*keys, from, now);
  // lopower, the responder, confirms the session on our first data: a
  // keepalive, as the data path may have nothing to send yet.
  if (seal_keepalive(out)) {
    current->first_send_counter = 1;
    ++stats.keepalives_sent;
  }
}

void tailnet_node::impl::install(const wg::transport_keys& keys, const udp_endpoint& lopower_ep, std::uint64_t now) {
  tailnet_session s{};
  std::memcpy(s.send_key, keys.send.data(), 32);
  std::memcpy(s.receive_key, keys.receive.data(), 32);
  s.local_index = keys.local_index;
  s.remote_index = keys.remote_index;
  s.lopower = lopower_ep;
  s.generation = ++generation;
  current = s;
  current_initiator = keys.initiator;
  session_born_at = now;
  ++stats.handshakes_completed;
}

// An empty transport message with counter 0 (whitepaper 6.5).
bool tailnet_node::impl::seal_keepalive(std::vector<datagram>& out) {
  std::vector<std::uint8_t> packet(wg::message_data_min_size);
  wg::write_data_header(packet.data(), current->remote_index, 0);
  std::uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES]{};  // 4 zero bytes, then the counter (0)
  unsigned long long length = 0;
  if (crypto_aead_chacha20poly1305_ietf_encrypt(packet.data() + sizeof(wg::message_data), &length, nullptr, 0,
                                                nullptr, 0, nullptr, nonce, current->send_key) != 0)
    return false;
  out.push_back({current->lopower, std::move(packet)});
  return true;
}

// --- timers --------------------------------------------------------------------

void tailnet_node::impl::poll(std::uint64_t now, std::vector<datagram>& out) {
  if (!ensure_peer()) return;
  std::erase_if(pending_pings, [now](const auto& kv) { return now - kv.second.second > disco_ping_lifetime_ns; });
  if (!pinged_once || now - last_ping_round >= disco_ping_interval_ns) ping_endpoints(now, out);
  const bool waiting = pending_index != 0 && now - initiation_sent_at < ns(wg::rekey_timeout);
  if (!waiting && (!current || rekey_due(now))) initiate(now, out);
}

bool tailnet_node::impl::rekey_due(std::uint64_t now) const {
  const std::uint64_t age = now - session_born_at;
  return age >= ns(wg::rekey_after_time) + (current_initiator ? 0 : responder_rekey_grace_ns);
}

void tailnet_node::impl::ping_endpoints(std::uint64_t now, std::vector<datagram>& out) {
  pinged_once = true;
  last_ping_round = now;
  for (const udp_endpoint& e : lopower->endpoints)
    if (e.ipv6 == options.local.ipv6) send_ping(e, now, out);
}

void tailnet_node::impl::send_ping(const udp_endpoint& to, std::uint64_t now, std::vector<datagram>& out) {
  if (!disco_shared) return;
  disco::ping m;
  randombytes_buf(m.tx_id.data(), m.tx_id.size());
  m.node_key = client->node_public();
  auto sealed = disco::seal(disco::message{m}, *disco_shared, disco_public);
  if (sealed.empty()) return;
  pending_pings[m.tx_id] = {to, now};
  out.push_back({to, std::move(sealed)});
  ++stats.disco_pings_sent;
}

// The endpoint that answered a disco ping, else lopower's first endpoint
// of our family (lopower answers a handshake wherever it comes from).
std::optional<udp_endpoint> tailnet_node::impl::handshake_destination() const {
  if (best) return best;
  for (const udp_endpoint& e : lopower->endpoints)
    if (e.ipv6 == options.local.ipv6) return e;
  return std::nullopt;
}

void tailnet_node::impl::initiate(std::uint64_t now, std::vector<datagram>& out) {
  const auto to = handshake_destination();
  if (!to) return;
  pending_index = randombytes_random();
  wg::message_handshake_initiation msg{};
  if (wg::create_initiation(msg, *peer, *identity, pending_index, wg::tai64n_now()) != wg::handshake_error::none) {
    pending_index = 0;
    return void(++stats.handshake_refused);
  }
  maker->add_macs(msg, now);
  initiation_sent_at = now;
  out.push_back({*to, bytes_of(msg)});
  ++stats.initiations_sent;
}

// --- the public face -------------------------------------------------------------

tailnet_node::tailnet_node(tailnet_node_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
tailnet_node::~tailnet_node() { stop(); }

bool tailnet_node::start(std::string& error) {
  if (sodium_init() < 0) return error = "libsodium failed to initialise", false;
  return impl_->start(error);
}

void tailnet_node::stop() { impl_->stop(); }

void tailnet_node::receive(const datagram& in, std::uint64_t now_ns, std::vector<datagram>& out) {
  std::lock_guard lock(impl_->mu);
  impl_->receive(in, now_ns, out);
}

void tailnet_node::poll(std::uint64_t now_ns, std::vector<datagram>& out) {
  std::lock_guard lock(impl_->mu);
  impl_->poll(now_ns, out);
}

std::optional<tailnet_session> tailnet_node::session() const {
  std::lock_guard lock(impl_->mu);
  return impl_->current;
}

tailnet_node_counters tailnet_node::counters() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

std::vector<udp_endpoint> tailnet_node::own_addresses() const {
  std::lock_guard lock(impl_->mu);
  std::vector<udp_endpoint> out;
  for (const ip_address& a : impl_->own) out.push_back(to_udp(a, 0));
  return out;
}

std::vector<udp_endpoint> tailnet_node::lopower_addresses() const {
  std::lock_guard lock(impl_->mu);
  std::vector<udp_endpoint> out;
  if (impl_->lopower)
    for (const ip_address& a : impl_->lopower->addresses) out.push_back(to_udp(a, 0));
  return out;
}

std::vector<udp_endpoint> tailnet_node::lopower_endpoints() const {
  std::lock_guard lock(impl_->mu);
  return impl_->lopower ? impl_->lopower->endpoints : std::vector<udp_endpoint>{};
}

}  // namespace lopower::loadgen
