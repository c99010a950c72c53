#include "control/tailnet/disco_paths.h"

#include <rte_byteorder.h>
#include <sodium.h>

#include <cstring>

#include "control/log.h"
#include "dataplane/inner_packet.h"

namespace lopower {

namespace disco = tailnet::disco;

namespace {

// wgengine/magicsock endpoint.go: how long a pong vouches for a path, and
// how often a busy peer's paths are re-checked.
constexpr auto trust_path_for = std::chrono::milliseconds(6500);
constexpr auto heartbeat_interval = std::chrono::seconds(3);

ip_address peer_address(const wg_endpoint& ep) { return ip_address::from_bytes(ep.ipv6, ep.peer_ip); }

// What a pong through DERP region N names as the ping's source
// (tailcfg.DerpMagicIP): an address peers know to ignore as an endpoint.
constexpr std::uint32_t derp_magic_ip = 0x7f030328;  // 127.3.3.40

// How long direct pings may go unanswered before the path counts as lost.
constexpr auto direct_lost_after = std::chrono::seconds(5);

}  // namespace

disco_paths::disco_paths(private_key disco_private, public_key disco_public, public_key node_public, hooks h)
    : disco_private_(std::move(disco_private)), disco_public_(disco_public), node_public_(node_public),
      hooks_(std::move(h)) {}

void disco_paths::set_peers(const tailnet::netmap& nm) {
  std::map<tailnet::node_id, peer_state> next;
  by_disco_.clear();
  for (const tailnet::node& n : nm.peers()) {
    if (n.disco_key.is_zero()) continue;  // a peer that speaks no disco (WireGuard-only)
    peer_state p;
    if (auto old = peers_.find(n.id); old != peers_.end() && old->second.disco_key == n.disco_key) {
      p = std::move(old->second);  // keep the path it has
    } else {
      auto shared = disco::shared_key(disco_private_, n.disco_key);
      if (!shared) continue;  // a low-order key: nothing can be sealed to it
      p.shared = *shared;
      p.disco_key = n.disco_key;
    }
    p.node_key = n.key;
    p.endpoints = n.endpoints;
    by_disco_[n.disco_key] = n.id;
    next.emplace(n.id, std::move(p));
  }
  peers_ = std::move(next);
}

void disco_paths::set_key(private_key disco_private, public_key disco_public) {
  disco_private_ = std::move(disco_private);
  disco_public_ = disco_public;
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto shared = disco::shared_key(disco_private_, it->second.disco_key);
    if (!shared) {  // cannot be, as set_peers took it; but nothing may be sealed to it
      by_disco_.erase(it->second.disco_key);
      it = peers_.erase(it);
      continue;
    }
    it->second.shared = *shared;
    ++it;
  }
}

bool disco_paths::update_peers(const tailnet::netmap& nm, std::span<const tailnet::node_id> ids) {
  for (const tailnet::node_id id : ids) {
    const tailnet::node* n = nm.peer_by_id(id);
    if (n == nullptr) return false;
    const auto it = peers_.find(id);
    if (it == peers_.end()) {
      if (n->disco_key.is_zero()) continue;  // speaks no disco, as before
      return false;
    }
    if (!(it->second.disco_key == n->disco_key)) return false;
  }
  // What set_peers would do for each: the path it has stays.
  for (const tailnet::node_id id : ids) {
    const auto it = peers_.find(id);
    if (it == peers_.end()) continue;
    const tailnet::node* n = nm.peer_by_id(id);
    it->second.node_key = n->key;
    it->second.endpoints = n->endpoints;
  }
  return true;
}

bool disco_paths::handle(std::span<const std::uint8_t> packet, const wg_endpoint& from) {
  const auto sender = disco::sender_key(packet);
  const auto it = sender ? by_disco_.find(*sender) : by_disco_.end();
  if (it == by_disco_.end()) {
    ++counters_.unknown_sender;
    return false;
  }
  peer_state& p = peers_.at(it->second);
  if (from.relay_region != 0) ++counters_.relayed_received;
  auto msg = disco::open(packet, p.shared);
  if (!msg) {
    ++counters_.undecryptable;
    LOG_DEBUG("disco from %s: %s", endpoint_string(from).c_str(), msg.message().c_str());
    return false;
  }
  if (const auto* ping = std::get_if<disco::ping>(&*msg)) on_ping(*ping, p, from);
  else if (const auto* pong = std::get_if<disco::pong>(&*msg)) on_pong(*pong, it->second, p, from);
  else if (const auto* cmm = std::get_if<disco::call_me_maybe>(&*msg)) {
    ++counters_.call_me_maybe;
    for (const disco::ip_port& e : cmm->endpoints) send_ping(it->second, p, e.address, e.port);
  }
  return true;
}

void disco_paths::on_ping(const disco::ping& m, peer_state& p, const wg_endpoint& from) {
  ++counters_.pings_received;
  // A ping naming another node key is for someone else's session: ignore it.
  if (m.node_key && !(*m.node_key == p.node_key)) return;
  const tailnet::node_id id = by_disco_.at(p.disco_key);
  const bool relayed = from.relay_region != 0;
  disco::pong reply{m.tx_id, {peer_address(from), rte_be_to_cpu_16(from.peer_port_be)}};
  if (relayed) reply.src = {ip_address::v4(derp_magic_ip), from.relay_region};
  const auto sealed = disco::seal(disco::message{reply}, p.shared, disco_public_);
  if (sealed.empty()) return;
  if (!relayed) hooks_.reply_to(from, sealed);
  else if (hooks_.send_relay && hooks_.send_relay(id, from.relay_region, sealed)) ++counters_.relayed_sent;
  ++counters_.pongs_sent;
  if (hooks_.on_peer_heard) hooks_.on_peer_heard(id);
  // The peer reaches us from there; check the way back, as tailscale does.
  // Through a relay, it is looking for a direct path: look too (a round a
  // second at most: each round pings through the relay, which the peer
  // may answer with pings of its own).
  if (relayed && !direct_trusted(id) && clock::now() - p.last_ping_round >= std::chrono::seconds(1)) ping_endpoints(id, p);
  else if (!relayed && !p.best) send_ping(id, p, peer_address(from), rte_be_to_cpu_16(from.peer_port_be));
}

void disco_paths::on_pong(const disco::pong& m, tailnet::node_id id, peer_state& p, const wg_endpoint& from) {
  auto it = pending_.find(m.tx_id);
  if (it == pending_.end() || it->second.peer != id) return;  // not a ping of ours (or to someone else)
  ++counters_.pongs_received;
  const auto now = clock::now();
  const double latency = std::chrono::duration<double, std::milli>(now - it->second.sent).count();
  pending_.erase(it);
  if (from.relay_region != 0) {  // an answer, but no direct path
    finish_waiters(id, {id, true, latency, endpoint_string(from), true});
    return;
  }
  // The path answers again after going quiet: the peer may have been moved
  // to its relay meanwhile, so the path is handed on even if it is the same.
  const bool was_lost = direct_lost(id);
  p.unanswered_since = clock::time_point{};
  const bool better = !p.best || now > p.best_until || latency < p.best_latency_ms * 0.9 ||
                      p.best->same_path(from);
  if (better) {
    const bool changed = !p.best || !p.best->same_path(from);
    p.best = from;
    p.best_text = endpoint_string(from);
    p.best_latency_ms = latency;
    p.best_until = now + trust_path_for;
    if (changed || was_lost) {
      LOG_INFO("tailnet peer %lld: direct path %s (%.2f ms)", static_cast<long long>(id), p.best_text.c_str(), latency);
      hooks_.on_path(id, from);
    }
  }
  finish_waiters(id, {id, true, latency, endpoint_string(from)});
  if (hooks_.on_peer_heard) hooks_.on_peer_heard(id);
}

// Callbacks run after the list is settled: they may start new pings.
void disco_paths::finish_waiters(tailnet::node_id id, const ping_outcome& outcome) {
  std::vector<waiter> ready;
  std::erase_if(waiters_, [&](waiter& w) {
    if (w.peer != id) return false;
    ready.push_back(std::move(w));
    return true;
  });
  for (waiter& w : ready) w.done(outcome);
}

bool disco_paths::send_ping(tailnet::node_id id, peer_state& p, const ip_address& ip, std::uint16_t port) {
  disco::ping m;
  randombytes_buf(m.tx_id.data(), m.tx_id.size());
  m.node_key = node_public_;
  const auto sealed = disco::seal(disco::message{m}, p.shared, disco_public_);
  if (sealed.empty()) return true;  // nothing to send to this key: not a path problem
  if (!hooks_.send_to(ip, port, sealed)) {
    ++counters_.no_route;
    LOG_DEBUG("disco ping to %s: no way there yet", tailnet::endpoint{ip, port}.to_string().c_str());
    return false;
  }
  ++counters_.pings_sent;
  const auto now = clock::now();
  pending_[m.tx_id] = {id, now, tailnet::endpoint{ip, port}.to_string()};
  if (p.unanswered_since == clock::time_point{}) p.unanswered_since = now;
  return true;
}

void disco_paths::ping_endpoints(tailnet::node_id id, peer_state& p) {
  p.last_ping_round = clock::now();
  bool missed = false;
  for (const tailnet::endpoint& e : p.endpoints) missed |= !send_ping(id, p, e.address, e.port);
  p.missed_rounds = missed ? static_cast<std::uint8_t>(std::min(p.missed_rounds + 1, 255)) : 0;
  if (!direct_trusted(id)) ping_through_relay(id, p);
}

// No trusted direct path: a ping through the peer's relay (an answer, and
// its latency, even when no direct path opens) and a call-me-maybe with our
// endpoints, so the peer pings them while we ping its own.
void disco_paths::ping_through_relay(tailnet::node_id id, peer_state& p) {
  if (!hooks_.send_relay) return;
  disco::ping m;
  randombytes_buf(m.tx_id.data(), m.tx_id.size());
  m.node_key = node_public_;
  const auto ping = disco::seal(disco::message{m}, p.shared, disco_public_);
  if (ping.empty() || !hooks_.send_relay(id, 0, ping)) return;
  ++counters_.relayed_sent;
  pending_[m.tx_id] = {id, clock::now(), "derp"};
  disco::call_me_maybe cmm;
  for (const tailnet::endpoint& e : own_endpoints_) cmm.endpoints.push_back({e.address, e.port});
  const auto sealed = disco::seal(disco::message{cmm}, p.shared, disco_public_);
  if (!sealed.empty() && hooks_.send_relay(id, 0, sealed)) ++counters_.call_me_maybe_sent;
}

bool disco_paths::direct_trusted(tailnet::node_id peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.best && clock::now() < it->second.best_until;
}

bool disco_paths::direct_lost(tailnet::node_id peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return false;
  const auto since = it->second.unanswered_since;
  return since != clock::time_point{} && clock::now() - since > direct_lost_after;
}

void disco_paths::ping(tailnet::node_id peer, std::chrono::milliseconds timeout, ping_callback done) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return done({peer, false, 0, ""});
  waiters_.push_back({peer, clock::now() + timeout, std::move(done)});
  ping_endpoints(peer, it->second);
}

void disco_paths::tick(const std::function<bool(tailnet::node_id)>& busy) {
  const auto now = clock::now();
  for (auto& [id, p] : peers_) {
    const auto peer_id = id;  // clang 14 cannot capture a structured binding
    // A ping round may meet a neighbour not learned yet: the next round
    // (after the ARP/ND answer) gets through, and the first such goes at
    // the next tick -- the answer takes a millisecond, not a second.
    const auto interval = p.missed_rounds == 1 ? std::chrono::milliseconds(100)
                          : waiters_.empty() ? heartbeat_interval : std::chrono::seconds(1);
    if (now - p.last_ping_round < interval) continue;  // before asking busy(): every tick, every peer
    const bool wanted =
        busy(id) || std::any_of(waiters_.begin(), waiters_.end(), [&](const waiter& w) { return w.peer == peer_id; });
    if (wanted) ping_endpoints(id, p);
  }
  std::vector<waiter> expired;
  std::erase_if(waiters_, [&](waiter& w) {
    if (now < w.deadline) return false;
    expired.push_back(std::move(w));
    return true;
  });
  for (waiter& w : expired) w.done({w.peer, false, 0, ""});
  std::erase_if(pending_, [&](const auto& kv) { return now - kv.second.sent > std::chrono::seconds(10); });
}

std::string disco_paths::path_text(tailnet::node_id peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.best || direct_lost(peer)) return {};
  return "direct " + it->second.best_text;
}

std::optional<double> disco_paths::latency_ms(tailnet::node_id peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.best) return std::nullopt;
  return it->second.best_latency_ms;
}

nlohmann::json disco_paths::counters_json() const {
  nlohmann::json j;
#define LOPOWER_DISCO_COUNTER_JSON(name) j[#name] = counters_.name;
  LOPOWER_DISCO_COUNTERS(LOPOWER_DISCO_COUNTER_JSON)
#undef LOPOWER_DISCO_COUNTER_JSON
  return j;
}

}  // namespace lopower
