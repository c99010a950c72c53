#include "control/wireguard/interface.h"

#include <rte_cycles.h>
#include <sodium.h>

#include <cstring>
#include <ctime>
#include <stdexcept>

#include "control/clock.h"
#include "control/log.h"
#include "control/wireguard/engine/tai64n.h"
#include "dataplane/inner_packet.h"
#include "lopower/wireguard_messages.h"

namespace lopower {
namespace {

// Peer ids are unique across every interface: a staged packet names its
// peer by id, and both interfaces are offered it.
std::uint32_t next_peer_id = 1;

wg::packet_source source_of(const wg_endpoint& ep) {
  const std::uint16_t port = ntohs(ep.peer_port_be);
  return ep.ipv6 ? wg::packet_source::v6(ep.peer_ip, port) : wg::packet_source::v4(ep.peer_ip, port);
}

wg::timer_settings timer_settings_from(const wireguard_config& wg) {
  wg::timer_settings t;
  t.hz = rte_get_tsc_hz();
  t.rekey_after_s = wg.rekey_after_seconds;
  t.reject_after_s = wg.reject_after_seconds;
  t.keepalive_timeout_s = wg.keepalive_timeout_seconds;
  return t;
}

wg::static_identity identity_from(const private_key& key, const std::string& label) {
  wg::static_identity id(key);
  if (!id.valid()) throw std::runtime_error("the WireGuard key for " + label + "s is unusable");
  return id;
}

}  // namespace

nlohmann::json handshake_counters::to_json() const {
  nlohmann::json j;
#define LOPOWER_HS_JSON(name) j[#name] = name;
  LOPOWER_HANDSHAKE_COUNTERS(LOPOWER_HS_JSON)
#undef LOPOWER_HS_JSON
  // By name, only those that happened.
  nlohmann::json by_name = nlohmann::json::object();
  for (std::size_t e = 0; e < errors.size(); ++e)
    if (errors[e] != 0) by_name[wg::handshake_error_names[e]] = errors[e];
  j["errors"] = std::move(by_name);
  return j;
}


wireguard_interface::wireguard_interface(dataplane& dp, const config& cfg, const enrollment::device_registry& registry)
    : wireguard_interface(dp, cfg.wireguard, registry.server_private_key(), "device") {
  default_egress_ = cfg.egress.mode;
  devices_side_ = true;
  for (const enrollment::device& d : registry.list()) add_device_peer(d);
  publish_devices();
}

wireguard_interface::wireguard_interface(dataplane& dp, const wireguard_config& wg, const private_key& key, std::string label)
    : dp_(dp), label_(std::move(label)), identity_(identity_from(key, label_)),
      aead_(crypto::make_backend("libsodium")), tsc_hz_(rte_get_tsc_hz()), timer_settings_(timer_settings_from(wg)),
      max_staged_total_(std::min<std::size_t>(max_staged_total, dp.pool()->size / 8)) {
  if (!aead_) throw std::runtime_error("libsodium backend unavailable");
}

wireguard_interface::~wireguard_interface() {
  if (devices_side_) dp_.publish_devices({});  // before the peers it names are retired
  while (!peers_.empty()) drop_peer(*peers_.begin()->second);
  if (guarded_) dp_.publish_handshake_keys(*guarded_, nullptr, nullptr);
}

void wireguard_interface::guard_on_workers(listener l) {
  guarded_ = l;
  publish_guard(true);
}

// The workers' copy follows the cookie secret, which is renewed every 120 s.
void wireguard_interface::publish_guard(bool always) {
  if (!guarded_ || !identity_.valid()) return;
  const key32& secret = cookies_.secret(now_ns());
  if (!always && cookies_.secret_birth_ns() == guarded_secret_birth_ns_) return;
  guarded_secret_birth_ns_ = cookies_.secret_birth_ns();
  dp_.publish_handshake_keys(*guarded_, &identity_.mac1_key(), &secret);
}

wg::peer_handshake* wireguard_interface::by_static(const public_key& remote_static) {
  auto it = by_key_.find(remote_static);
  return it == by_key_.end() ? nullptr : it->second->hs.get();
}

wg::peer_handshake* wireguard_interface::by_index(std::uint32_t local_index) {
  auto it = by_index_.find(local_index);
  if (it == by_index_.end() || it->second->pending_index != local_index) return nullptr;
  return it->second->hs.get();
}

std::uint32_t wireguard_interface::fresh_index() {
  for (;;) {
    const std::uint32_t idx = randombytes_random();
    if (idx != 0 && !by_index_.contains(idx) && !dp_.sessions().contains(idx)) return idx;
  }
}

void wireguard_interface::add_device(const enrollment::device& d) {
  add_device_peer(d);
  publish_devices();
}

// The directory is rebuilt whole (one device added or removed at a time,
// by an operator): the workers' lookups stay one hash probe.
void wireguard_interface::publish_devices() {
  if (!devices_side_) return;
  std::vector<wg_peer*> devices;
  devices.reserve(peers_.size());
  for (const auto& [name, p] : peers_) devices.push_back(p->dp);
  dp_.publish_devices(devices);
  if (devices_changed_) devices_changed_();
}

void wireguard_interface::add_device_peer(const enrollment::device& d) {
  add_peer(d.name, d.public_key, [this, &d](wg_peer& wp) {
    if (d.ipv4) {
      wp.has_v4 = true;
      std::memcpy(&wp.v4_be, d.ipv4->bytes.data(), 4);
    }
    if (d.ipv6) {
      wp.has_v6 = true;
      std::memcpy(wp.v6, d.ipv6->bytes.data(), 16);
    }
    wp.egress.store(d.effective_egress(default_egress_), std::memory_order_relaxed);
  });
}

void wireguard_interface::set_device_egress(const enrollment::device& d) {
  if (wg_peer* wp = dataplane_peer(d.name)) wp->egress.store(d.effective_egress(default_egress_), std::memory_order_relaxed);
}

void wireguard_interface::add_peer(const std::string& name, const public_key& key,
                                const std::function<void(wg_peer&)>& configure) {
  if (peers_.contains(name) || by_key_.contains(key)) return;
  auto p = std::make_unique<peer>(name, key, identity_, timer_settings_);
  p->dp = new wg_peer;
  p->dp->id = next_peer_id++;
  configure(*p->dp);
  by_key_[key] = p.get();
  by_id_[p->dp->id] = p.get();
  peers_[name] = std::move(p);
}

void wireguard_interface::set_peer_endpoint(const std::string& name, const wg_endpoint& ep) {
  auto it = peers_.find(name);
  if (it != peers_.end()) set_endpoint(*it->second, ep);
}

void wireguard_interface::ensure_session(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;
  peer& p = *it->second;
  if (p.dp->current.load(std::memory_order_acquire) != nullptr || p.pending_index != 0) return;
  initiate(p, false);
}

void wireguard_interface::retry_handshake_soon(const std::string& name) {
  auto it = peers_.find(name);
  if (it != peers_.end() && it->second->pending_index != 0) it->second->retry_soon = true;
}

void wireguard_interface::peer_restarted(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;
  peer& p = *it->second;
  const bool had_session = p.slots[current] != 0 || p.slots[next] != 0 || p.pending_index != 0 || !p.staged.empty();
  if (!had_session) return;  // nothing to renew: the next packet starts a handshake
  ++counters_.peer_restarts;
  LOG_INFO("%s %s restarted: its sessions are gone, starting a new one", label_.c_str(), p.name.c_str());
  for (slot s : {previous, current, next}) erase_slot(p, s);
  forget_pending(p);
  p.timers.reset();
  want_session(p);
  ask_for_path(p);  // its paths are found again: a restarted tailscaled answers once it has one back
}

void wireguard_interface::renew_session(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end() || it->second->pending_index != 0 || it->second->slots[current] == 0) return;
  ++counters_.peer_restarts;
  initiate(*it->second, false);
}

// Our initiation in flight, if any, is forgotten: its response would find nobody.
void wireguard_interface::forget_pending(peer& p) {
  if (p.pending_index != 0) by_index_.erase(p.pending_index);
  p.pending_index = 0;
}

// Without an endpoint there is nobody to send an initiation to: the owner
// finds a path (disco, for tailnet peers) and calls ensure_session; a
// device we never heard from will initiate itself.
void wireguard_interface::want_session(peer& p) {
  if (p.pending_index != 0) return;
  if (p.dp->endpoint.load(std::memory_order_acquire) != nullptr) {
    initiate(p, false);
  } else {
    ask_for_path(p);
  }
}

// At most once a second per peer: a burst of staged packets is one request.
void wireguard_interface::ask_for_path(peer& p) {
  const std::uint64_t now = now_tsc();
  if (!path_wanted_ || (p.path_wanted_tsc != 0 && now - p.path_wanted_tsc < tsc_hz_)) return;
  p.path_wanted_tsc = now;
  path_wanted_(p.name);
}

// Staged packets nobody is making a session for (no path turned up, the
// device is gone) are dropped after REKEY_TIMEOUT; with a handshake in
// flight they wait until it gives up.
void wireguard_interface::expire_staged(peer& p, std::uint64_t now) {
  const std::uint64_t limit = (p.pending_index != 0 ? timer_settings_.rekey_attempt_s : timer_settings_.rekey_timeout_s) * tsc_hz_;
  while (!p.staged.empty() && now > p.staged.front().tsc && now - p.staged.front().tsc >= limit)
    discard_oldest_staged(p, drop_reason::wg_staged_gave_up);
}

bool wireguard_interface::stage(const staged_packet& sp) {
  auto it = by_id_.find(sp.peer_id);
  if (it == by_id_.end()) return false;
  peer& p = *it->second;
  // The session may have come up while the packet was in the ring: it
  // goes now, behind whatever is still queued.
  if (wg_keypair* kp = p.dp->current.load(std::memory_order_acquire);
      kp != nullptr && p.dp->endpoint.load(std::memory_order_acquire) != nullptr) {
    enqueue_staged(p, sp.mbuf);
    flush_staged(p, kp);
    return true;
  }
  if (p.staged.size() >= max_staged_per_peer || staged_total_ >= max_staged_total_) {
    // Drop the oldest of this peer's own: one peer cannot push out another's.
    if (p.staged.empty()) {
      count_drop(sp.mbuf, drop_reason::wg_staged_overflow);
      rte_pktmbuf_free(sp.mbuf);
      return true;
    }
    discard_oldest_staged(p, drop_reason::wg_staged_overflow);
  }
  enqueue_staged(p, sp.mbuf);
  want_session(p);
  return true;
}

void wireguard_interface::enqueue_staged(peer& p, rte_mbuf* m) {
  p.staged.push_back({m, now_tsc()});
  ++staged_total_;
  ++counters_.packets_staged;
}

void wireguard_interface::discard_oldest_staged(peer& p, drop_reason why) {
  count_drop(p.staged.front().mbuf, why);
  rte_pktmbuf_free(p.staged.front().mbuf);
  p.staged.pop_front();
  --staged_total_;
}

// Staged packets go out in order, sealed here with the new keypair before
// the workers may use it, so they precede what the workers send next.
void wireguard_interface::flush_staged(peer& p, wg_keypair* kp) {
  const wg_endpoint* ep = p.dp->endpoint.load(std::memory_order_acquire);
  while (!p.staged.empty() && ep != nullptr) {
    rte_mbuf* m = p.staged.front().mbuf;
    p.staged.pop_front();
    --staged_total_;
    if (seal_with(p, kp, *ep, std::span<const std::uint8_t>(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len), true))
      ++counters_.staged_sent;
    rte_pktmbuf_free(m);
  }
}

void wireguard_interface::drop_staged(peer& p, drop_reason why) {
  while (!p.staged.empty()) discard_oldest_staged(p, why);
}

// Counted where the packet came in (mbuf->port survives the decrypt).
void wireguard_interface::count_drop(const rte_mbuf* m, drop_reason why) {
  ++counters_.staged_dropped;
  const std::size_t index = dp_.port_index_of(m->port);
  if (index < max_ports) dp_.control_counters().drops[index].count(why);
}

wg_peer* wireguard_interface::dataplane_peer(const std::string& name) const {
  auto it = peers_.find(name);
  return it == peers_.end() ? nullptr : it->second->dp;
}

std::string wireguard_interface::name_of(const wg_peer* wp) const {
  for (const auto& [name, p] : peers_)
    if (p->dp == wp) return name;
  return {};
}

std::int64_t wireguard_interface::last_handshake(const std::string& name) const {
  auto it = peers_.find(name);
  return it == peers_.end() ? 0 : it->second->last_handshake_unix;
}

void wireguard_interface::remove_device(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;
  drop_peer(*it->second);
  publish_devices();
}

void wireguard_interface::drop_peer(peer& p) {
  drop_staged(p, drop_reason::wg_staged_gave_up);
  by_id_.erase(p.dp->id);
  for (slot s : {previous, current, next}) erase_slot(p, s);
  forget_pending(p);
  p.dp->removed.store(true, std::memory_order_relaxed);
  p.dp->current.store(nullptr, std::memory_order_release);
  if (const wg_endpoint* ep = p.dp->endpoint.exchange(nullptr)) dp_.rcu().retire_object(const_cast<wg_endpoint*>(ep));
  if (retire_peer_) retire_peer_(p.dp);  // after what refers to it
  else dp_.rcu().retire_object(p.dp);
  by_key_.erase(p.key);
  peers_.erase(p.name);
}

void wireguard_interface::reset_timestamp(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return;
  // A fresh handshake state forgets the latest timestamp (and any handshake
  // in flight); the sessions already published stay up.
  peer& p = *it->second;
  forget_pending(p);
  p.timers.abandon_handshake();
  p.hs = std::make_unique<wg::peer_handshake>(identity_, p.key);
}

void wireguard_interface::handle_packet(rte_mbuf* m, const classify_result& r, bool under_load) {
  const std::uint8_t* frame = rte_pktmbuf_mtod(m, const std::uint8_t*);
  handle_message(std::span<const std::uint8_t>(frame + r.payload_offset, r.payload_length),
                 endpoint_of_frame(frame, m->port, r.l4_offset), under_load);
  rte_pktmbuf_free(m);
}

void wireguard_interface::handle_message(std::span<const std::uint8_t> message, const wg_endpoint& from, bool under_load) {
  const wg::parsed_message msg = wg::parse_message(message.data(), message.size());
  const std::uint64_t now = now_ns();
  if (const auto* cookie = msg.cookie_reply()) return on_cookie_reply(*cookie);
  const wg::packet_source src = source_of(from);
  switch (cookies_.validate(identity_, msg.data, msg.length, src, under_load, now)) {
    case wg::mac_status::invalid_mac:
      ++counters_.invalid_mac1;
      return;
    case wg::mac_status::valid_mac_no_cookie:
      if (under_load) return send_cookie_reply(msg.data, msg.length, src, from);  // prove your address first: no Diffie-Hellman for free
      break;
    case wg::mac_status::valid_mac_with_cookie:
      if (under_load && !limiter_.allow(src.ip.data(), src.ipv6, now)) {
        ++counters_.rate_limited;
        return;
      }
      break;
  }
  if (const auto* init = msg.initiation()) on_initiation(*init, from);
  else if (const auto* resp = msg.response()) on_response(*resp, from);
}

std::string wireguard_interface::name_of_id(std::uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? std::string() : it->second->name;
}

const public_key* wireguard_interface::key_of(std::uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second->key;
}

void wireguard_interface::on_initiation(const wg::message_handshake_initiation& msg, const wg_endpoint& from) {
  ++counters_.initiations_received;
  const wg::consume_result res = wg::consume_initiation(msg, identity_, *this, now_ns());
  if (!res) {
    ++counters_.handshake_errors;
    ++counters_.errors[static_cast<std::size_t>(res.error)];
    return;
  }
  peer& p = *by_key_.at(res.peer->remote_static());
  learn_endpoint(p, from);  // the handshake authenticated this source
  wg::message_handshake_response resp{};
  if (auto err = wg::create_response(resp, *p.hs, identity_, fresh_index()); err != wg::handshake_error::none) {
    ++counters_.errors[static_cast<std::size_t>(err)];
    return;
  }
  p.maker.add_macs(resp, now_ns());
  if (auto keys = wg::derive_keypair(*p.hs)) install_keypair(p, *keys);
  send_frame(from, &p.key, reinterpret_cast<const std::uint8_t*>(&resp), sizeof resp);
  ++counters_.responses_sent;
}

void wireguard_interface::on_response(const wg::message_handshake_response& msg, const wg_endpoint& from) {
  ++counters_.responses_received;
  const wg::consume_result res = wg::consume_response(msg, identity_, *this);
  if (!res) {
    ++counters_.handshake_errors;
    ++counters_.errors[static_cast<std::size_t>(res.error)];
    return;
  }
  peer& p = *by_key_.at(res.peer->remote_static());
  auto keys = wg::derive_keypair(*p.hs);
  if (!keys) return;
  forget_pending(p);
  learn_endpoint(p, from);
  const bool staged = !p.staged.empty();
  install_keypair(p, *keys);
  // The first data confirms the keypair to the responder; a keepalive when
  // there is none.
  if (!staged) send_keepalive(p);
}

void wireguard_interface::on_cookie_reply(const wg::message_handshake_cookie& msg) {
  auto it = by_index_.find(msg.receiver_index.get());
  if (it == by_index_.end()) return;
  if (it->second->maker.consume_reply(msg, now_ns())) ++counters_.cookie_replies_received;
}

void wireguard_interface::send_cookie_reply(const std::uint8_t* msg, std::size_t len, const wg::packet_source& src,
                                         const wg_endpoint& to) {
  wg::message_handshake_cookie reply{};
  if (!cookies_.create_reply(reply, identity_, msg, len, src, now_ns())) return;
  send_frame(to, nullptr, reinterpret_cast<const std::uint8_t*>(&reply), sizeof reply);
  ++counters_.cookie_replies_sent;
}

bool wireguard_interface::initiate(peer& p, bool retry) {
  const wg_endpoint* ep = p.dp->endpoint.load(std::memory_order_acquire);
  if (ep == nullptr) return false;  // a device we never heard from: it will initiate
  forget_pending(p);
  p.pending_index = fresh_index();
  by_index_[p.pending_index] = &p;
  wg::message_handshake_initiation msg{};
  if (wg::create_initiation(msg, *p.hs, identity_, p.pending_index, wg::tai64n_now()) != wg::handshake_error::none) return false;
  p.maker.add_macs(msg, now_ns());
  send_frame(*ep, &p.key, reinterpret_cast<const std::uint8_t*>(&msg), sizeof msg);
  // Retries spread over up to a third of a second (wireguard-go's jitter).
  const std::uint64_t jitter = tsc_hz_ / 1000 * randombytes_uniform(wg::rekey_jitter_choices_ms);
  p.timers.initiation_sent(now_tsc(), jitter, retry);
  ++counters_.initiations_sent;
  LOG_DEBUG("%s %s: handshake initiation%s to %s", label_.c_str(), p.name.c_str(), retry ? " (again)" : "",
            endpoint_string(*ep).c_str());
  return true;
}

void wireguard_interface::install_keypair(peer& p, const wg::transport_keys& keys) {
  auto* kp = new wg_keypair;
  std::memcpy(kp->send_key, keys.send.data(), 32);
  std::memcpy(kp->receive_key, keys.receive.data(), 32);
  kp->local_index = keys.local_index;
  kp->remote_index = keys.remote_index;
  kp->initiator = keys.initiator;
  kp->created_tsc = now_tsc();
  kp->peer = p.dp;
  kp->confirmed.store(keys.initiator, std::memory_order_relaxed);
  if (!dp_.sessions().insert(kp)) {
    LOG_WARNING("%s %s: session table full, handshake dropped", label_.c_str(), p.name.c_str());
    return;
  }
  by_index_[keys.local_index] = &p;
  const std::size_t staged_before = p.staged.size();
  p.timers.session_made(now_tsc());
  if (!keys.initiator) forget_pending(p);  // the peer's handshake crossed ours: it wins
  if (keys.initiator) {
    // Our own handshake: the new keypair is current at once.
    erase_slot(p, next);
    erase_slot(p, previous);
    p.slots[previous] = p.slots[current];
    p.slots[current] = keys.local_index;
    flush_staged(p, kp);
    p.dp->current.store(kp, std::memory_order_release);
  } else if (p.dp->current.load(std::memory_order_relaxed) == nullptr && p.slots[current] == 0) {
    // The initiator's, and nothing else to send with: it becomes current at
    // once, so the reply to the first data packet (which confirms it on a
    // worker, a moment before the control thread hears of it) is not lost.
    // Should our response have been lost, what we send is dropped unread by
    // the initiator, who retries the handshake.
    erase_slot(p, next);
    p.slots[current] = keys.local_index;
    flush_staged(p, kp);
    p.dp->current.store(kp, std::memory_order_release);
  } else {
    // The initiator's: it waits in `next` until the peer's first data
    // packet proves it has our response.
    erase_slot(p, next);
    p.slots[next] = keys.local_index;
  }
  p.last_handshake_unix = std::time(nullptr);
  LOG_DEBUG("%s %s: session made (%s), %zu staged packet(s) sent", label_.c_str(), p.name.c_str(),
            keys.initiator ? "we initiated" : "it initiated", staged_before - p.staged.size());
  ++p.handshakes;
  ++counters_.handshakes_completed;
}

void wireguard_interface::promote_next(peer& p) {
  wg_keypair* kp = dp_.sessions().find(p.slots[next]);
  if (kp == nullptr) return;
  erase_slot(p, previous);
  p.slots[previous] = p.slots[current];
  p.slots[current] = p.slots[next];
  p.slots[next] = 0;
  flush_staged(p, kp);
  p.dp->current.store(kp, std::memory_order_release);
}

void wireguard_interface::erase_slot(peer& p, slot s) {
  const std::uint32_t idx = p.slots[s];
  if (idx == 0) return;
  wg_keypair* kp = dp_.sessions().find(idx);
  // Unpublish before retiring: no worker may pick it up as current again.
  if (kp != nullptr && p.dp->current.load(std::memory_order_relaxed) == kp) p.dp->current.store(nullptr, std::memory_order_release);
  dp_.sessions().erase(idx);
  by_index_.erase(idx);
  p.slots[s] = 0;
}

// A handshake through a relay does not move a peer off a direct path (as the
// workers' roaming, note_endpoint): a tailscaled unsure of its direct path
// sends over both; the tailnet node falls back to the relay itself when the
// direct path stops answering.
void wireguard_interface::learn_endpoint(peer& p, const wg_endpoint& from) {
  const wg_endpoint* known = p.dp->endpoint.load(std::memory_order_relaxed);
  if (from.relay_region != 0 && known != nullptr && known->relay_region == 0) return;
  set_endpoint(p, from);
}

void wireguard_interface::set_endpoint(peer& p, const wg_endpoint& ep) {
  const wg_endpoint* old = p.dp->endpoint.load(std::memory_order_relaxed);
  if (old != nullptr && old->same_path(ep)) return;
  p.dp->endpoint.store(new wg_endpoint(ep), std::memory_order_release);
  if (old != nullptr) {
    ++counters_.endpoint_changes;
    LOG_INFO("%s %s roamed to %s", label_.c_str(), p.name.c_str(), endpoint_string(ep).c_str());
    dp_.rcu().retire_object(const_cast<wg_endpoint*>(old));
  }
}

void wireguard_interface::handle_event(const wg_event& ev) {
  auto it = by_index_.find(ev.local_index);
  if (it == by_index_.end()) return;  // the keypair went away meanwhile
  peer& p = *it->second;
  if (ev.kind == wg_event::keypair_confirmed && p.slots[next] == ev.local_index) promote_next(p);
  if (ev.kind == wg_event::endpoint_changed) set_endpoint(p, ev.endpoint);
}

void wireguard_interface::send_frame(const wg_endpoint& to, const public_key* to_key, const std::uint8_t* payload,
                                     std::size_t len) {
  if (to.relay_region != 0) {
    if (relay_sender_ && to_key != nullptr) relay_sender_(to.relay_region, *to_key, std::span<const std::uint8_t>(payload, len));
    return;
  }
  dp_.send_udp(to, std::span<const std::uint8_t>(payload, len));
}

void wireguard_interface::send_keepalive(peer& p) {
  if (seal_and_send(p, {}, false)) {
    ++counters_.keepalives_sent;
    p.timers.keepalive_sent(now_tsc());
  }
}

// One transport message from the control thread (keepalives, lopower's own
// pings): padded to 16 bytes, sealed with the current keypair.
bool wireguard_interface::seal_and_send(peer& p, std::span<const std::uint8_t> inner, bool data) {
  wg_keypair* kp = p.dp->current.load(std::memory_order_acquire);
  const wg_endpoint* ep = p.dp->endpoint.load(std::memory_order_acquire);
  return kp != nullptr && ep != nullptr && seal_with(p, kp, *ep, inner, data);
}

// `data`: stamped as data sent (the timers wait for an answer to it);
// keepalives are not.
bool wireguard_interface::seal_with(peer& p, wg_keypair* kp, const wg_endpoint& to, std::span<const std::uint8_t> inner,
                                 bool data) {
  if (inner.size() > max_control_inner) return false;
  const std::size_t padded = wg::padded_size(inner.size());
  std::vector<std::uint8_t> msg(wg::message_data_size(inner.size()), 0);
  std::uint8_t* plaintext = msg.data() + sizeof(wg::message_data);
  if (!inner.empty()) std::memcpy(plaintext, inner.data(), inner.size());  // a keepalive has none
  const std::uint64_t counter = kp->send_counter.fetch_add(1, std::memory_order_relaxed);
  wg::write_data_header(msg.data(), kp->remote_index, counter);
  crypto::aead_op op{plaintext, static_cast<std::uint32_t>(padded), plaintext + padded, kp->send_key, counter, false};
  aead_->encrypt_burst(&op, 1);
  if (!op.ok) return false;
  send_frame(to, &p.key, msg.data(), msg.size());
  if (data) p.dp->last_tx_tsc.store(now_tsc(), std::memory_order_relaxed);
  p.dp->tx_packets.fetch_add(1, std::memory_order_relaxed);
  p.dp->tx_bytes.fetch_add(inner.size(), std::memory_order_relaxed);
  return true;
}

bool wireguard_interface::send_data(const std::string& name, std::span<const std::uint8_t> inner) {
  auto it = peers_.find(name);
  return it != peers_.end() && seal_and_send(*it->second, inner, true);
}

std::uint64_t wireguard_interface::handshakes_with(const std::string& name) const {
  auto it = peers_.find(name);
  return it == peers_.end() ? 0 : it->second->handshakes;
}

nlohmann::json wireguard_interface::device_json(const std::string& name) const {
  auto it = peers_.find(name);
  if (it == peers_.end()) return nullptr;
  const peer& p = *it->second;
  const wg_endpoint* ep = p.dp->endpoint.load(std::memory_order_acquire);
  const wg_keypair* kp = p.dp->current.load(std::memory_order_acquire);
  nlohmann::json j;
  j["endpoint"] = ep ? nlohmann::json(endpoint_string(*ep)) : nlohmann::json();
  j["latest_handshake"] = p.last_handshake_unix;
  j["handshakes"] = p.handshakes;
  j["session"] = kp != nullptr;
  j["session_age_seconds"] = kp ? (now_tsc() - kp->created_tsc) / tsc_hz_ : 0;
  j["session_initiated_by_lopower"] = kp ? kp->initiator : false;
  j["rx_packets"] = p.dp->rx_packets.load(std::memory_order_relaxed);
  j["rx_bytes"] = p.dp->rx_bytes.load(std::memory_order_relaxed);
  j["tx_packets"] = p.dp->tx_packets.load(std::memory_order_relaxed);
  j["tx_bytes"] = p.dp->tx_bytes.load(std::memory_order_relaxed);
  return j;
}

}  // namespace lopower
