#include "control/tailnet/derp_relays.h"

#include <algorithm>
#include <random>

#include "control/log.h"
#include "control/tailnet/client/tcp_stream.h"

namespace lopower {

namespace {

using namespace std::chrono_literals;

// magicsock/netcheck timings (DERP-EXIT.md sections 2 and 3).
constexpr auto idle_close_after = 60s;    // a non-home region without writes
constexpr auto stun_round_timeout = 3s;  // answers later than this are not counted
constexpr auto latency_history = 5min;    // home is chosen over this window
constexpr auto max_backoff = std::chrono::milliseconds(5000);
constexpr std::size_t max_pending_per_region = 32;
// Re-STUN every 20-26 s (magicsock's endpoint refresh while active).
std::chrono::milliseconds next_round_delay() {
  static std::mt19937 rng{std::random_device{}()};
  return std::chrono::milliseconds(20000 + std::uniform_int_distribution<int>(0, 6000)(rng));
}

// "198.18.40.2", or empty when the field names no address ("", "none").
std::optional<ip_address> literal(const std::string& s) { return s.empty() ? std::nullopt : ip_address::parse(s); }

std::string latency_key(int region, bool ipv6) { return std::to_string(region) + (ipv6 ? "-v6" : "-v4"); }

}  // namespace

derp_relays::derp_relays(event_loop& loop, const private_key& node_key, derp_settings settings, hooks h)
    : loop_(loop), node_key_(node_key), settings_(std::move(settings)), hooks_(std::move(h)) {
  if (settings_.map_override) {
    if (settings_.map_override->regions) regions_ = *settings_.map_override->regions;
  }
}

derp_relays::~derp_relays() { *alive_ = false; }

void derp_relays::set_map(const tailnet::derp_map& map) {
  if (settings_.map_override || !map.regions) return;
  regions_.clear();
  for (const auto& [id, r] : *map.regions)
    if (!r.nodes.empty()) regions_.emplace(id, r);
  std::erase_if(connections_, [&](const auto& kv) { return !regions_.contains(kv.first); });
  if (home_ != 0 && !regions_.contains(home_)) home_ = 0;
  next_round_ = clock::time_point{};  // measure the new map at once
}

const tailnet::derp_node* derp_relays::node_for(int region, std::size_t index) const {
  auto it = regions_.find(region);
  if (it == regions_.end()) return nullptr;
  std::vector<const tailnet::derp_node*> relays;
  for (const auto& n : it->second.nodes)
    if (!n.stun_only) relays.push_back(&n);
  return relays.empty() ? nullptr : relays[index % relays.size()];
}

bool derp_relays::wanted(int region) const { return region == home_ || connections_.contains(region); }

derp_relays::connection& derp_relays::open_connection(int region) {
  auto [it, fresh] = connections_.try_emplace(region);
  if (fresh) dial(region, it->second);
  return it->second;
}

void derp_relays::dial(int region, connection& c) {
  c.ready = false;
  c.client.reset();
  const tailnet::derp_node* node = node_for(region, c.node);
  if (node == nullptr || !settings_.enabled) {
    c.last_error = "region has no DERP node";
    c.retry_at = clock::now() + max_backoff;
    return;
  }
  // An address given in the map is dialled as is.
  std::optional<ip_address> addr = literal(node->ipv4);
  if (!addr) addr = literal(node->ipv6);
  if (!addr) addr = literal(node->host_name);
  const int port = node->derp_port != 0 ? node->derp_port : settings_.plain_http ? 3340 : 443;
  auto alive = alive_;
  auto client = std::make_unique<tailnet::derp::client>(
      loop_, node_key_,
      [this, node](tailnet::byte_stream::handlers sh) { return hooks_.make_stream(*node, std::move(sh)); },
      tailnet::derp::client::handlers{
          [this, alive, region] { if (*alive) on_ready(region); },
          [this, alive, region](const public_key& src, std::span<const std::uint8_t> packet) {
            if (!*alive) return;
            ++counters_.packets_received;
            last_region_of_[src] = region;
            if (hooks_.on_packet) hooks_.on_packet(region, src, packet);
          },
          [this, alive](const public_key& peer, tailnet::derp::peer_gone_reason) {
            if (*alive) last_region_of_.erase(peer);
          },
          [this, alive, region](std::chrono::milliseconds reconnect_in, std::chrono::milliseconds) {
            if (!*alive) return;
            if (auto it = connections_.find(region); it != connections_.end())
              it->second.backoff = std::max(reconnect_in, std::chrono::milliseconds(1));
          },
          [region](const std::string& problem) {
            if (!problem.empty()) LOG_WARNING("derp(%d): server reports: %s", region, problem.c_str());
          },
          [this, alive, region](const std::string& reason) { if (*alive) on_closed(region, reason); }});
  ++counters_.connects;
  c.last_write = clock::now();
  // No address in the map: the host name, resolved off the control thread.
  const std::string target = addr ? addr->to_string() : node->host_name;
  if (auto r = client->connect(target, static_cast<std::uint16_t>(port), node->host_name, region == home_); !r) {
    c.last_error = r.message();
    c.retry_at = clock::now() + max_backoff;
    ++counters_.connect_failures;
    return;
  }
  LOG_DEBUG("derp(%d): dialling %s port %d", region, target.c_str(), port);
  c.client = std::move(client);
}

void derp_relays::on_ready(int region) {
  auto it = connections_.find(region);
  if (it == connections_.end()) return;
  connection& c = it->second;
  c.ready = true;
  c.backoff = std::chrono::milliseconds(0);
  c.last_error.clear();
  LOG_INFO("derp(%d): connected%s", region, region == home_ ? " (home)" : "");
  while (!c.pending.empty() && c.client) {
    pending_packet p = std::move(c.pending.front());
    c.pending.pop_front();
    if (c.client->send_packet(p.to, p.bytes)) ++counters_.packets_sent;
    else ++counters_.send_dropped_refused;
  }
}

void derp_relays::on_closed(int region, const std::string& reason) {
  auto it = connections_.find(region);
  if (it == connections_.end()) return;
  connection& c = it->second;
  if (c.ready || c.last_error != reason) LOG_WARNING("derp(%d): connection lost: %s", region, reason.empty() ? "closed" : reason.c_str());
  if (!c.ready) ++counters_.connect_failures;
  c.ready = false;
  c.last_error = reason.empty() ? "server closed the connection" : reason;
  // Freed from the loop, not from inside its own handler.
  loop_.add_timer(std::chrono::microseconds(1), std::chrono::microseconds(0),
                  [client = std::shared_ptr<tailnet::derp::client>(std::move(c.client))] {});
  c.backoff = c.backoff == std::chrono::milliseconds(0) ? std::chrono::milliseconds(500)
                                                        : std::min(c.backoff * 2, max_backoff);
  c.retry_at = clock::now() + c.backoff;
  ++c.node;  // the next node of the region, if it has more
}

bool derp_relays::send(int region, const public_key& to, std::span<const std::uint8_t> packet) {
  if (!settings_.enabled || !regions_.contains(region)) {
    ++counters_.send_dropped_no_region;
    return false;
  }
  connection& c = open_connection(region);
  c.last_write = clock::now();
  if (c.ready && c.client) {
    if (!c.client->send_packet(to, packet)) {
      ++counters_.send_dropped_refused;
      return false;
    }
    ++counters_.packets_sent;
    return true;
  }
  if (c.pending.size() >= max_pending_per_region) {
    ++counters_.send_dropped_queue_full;
    return false;
  }
  c.pending.push_back({to, std::vector<std::uint8_t>(packet.begin(), packet.end())});
  ++counters_.send_queued;
  return true;
}

bool derp_relays::ready(int region) const {
  auto it = connections_.find(region);
  return it != connections_.end() && it->second.ready;
}

int derp_relays::region_of(const public_key& peer) const {
  auto it = last_region_of_.find(peer);
  return it == last_region_of_.end() ? 0 : it->second;
}

void derp_relays::tick() {
  if (!settings_.enabled || regions_.empty()) return;
  const auto now = clock::now();
  if (!round_open_ && now >= next_round_) start_stun_round(now);
  if (round_open_ && now >= round_ends_) finish_stun_round();
  if (home_ != 0 && !connections_.contains(home_)) open_connection(home_);
  close_idle(now);
  redial_due(now);
}

void derp_relays::close_idle(clock::time_point now) {
  std::erase_if(connections_, [&](auto& kv) {
    const bool idle = kv.first != home_ && now - kv.second.last_write > idle_close_after;
    if (idle) LOG_DEBUG("derp(%d): closed after a minute idle", kv.first);
    return idle;
  });
}

void derp_relays::redial_due(clock::time_point now) {
  for (auto& [region, c] : connections_)
    if (!c.client && now >= c.retry_at) dial(region, c);
}

// --- netcheck -------------------------------------------------------------------

void derp_relays::start_stun_round(clock::time_point now) {
  probes_.clear();
  round_mappings_.clear();
  for (const auto& [id, r] : regions_) {
    for (const tailnet::derp_node& n : r.nodes) {
      if (n.stun_port < 0) continue;
      const std::uint16_t port = static_cast<std::uint16_t>(n.stun_port == 0 ? 3478 : n.stun_port);
      std::optional<ip_address> targets[] = {literal(n.stun_test_ip), literal(n.ipv6)};
      if (!targets[0]) targets[0] = literal(n.ipv4);
      if (!targets[0]) targets[0] = literal(n.host_name);
      for (const auto& t : targets) {
        if (!t) continue;
        const auto txid = tailnet::stun::new_transaction_id();
        const auto req = tailnet::stun::binding_request(txid);
        if (!hooks_.send_stun(*t, port, req)) {
          ++counters_.stun_no_route;
          continue;
        }
        ++counters_.stun_sent;
        probes_[txid] = {id, t->family == ip_family::v6, now};
      }
      break;  // one node per region is enough to measure it
    }
  }
  round_open_ = true;
  round_ends_ = now + stun_round_timeout;
  next_round_ = now + next_round_delay();
}

void derp_relays::handle_stun(std::span<const std::uint8_t> payload) {
  const auto resp = tailnet::stun::parse_binding_response(payload);
  if (!resp) return;
  auto it = probes_.find(resp->txid);
  if (it == probes_.end()) return;  // not ours, or from an earlier round
  ++counters_.stun_received;
  const auto now = clock::now();
  const double seconds = std::chrono::duration<double>(now - it->second.sent).count();
  history_[latency_key(it->second.region, it->second.ipv6)].push_back({now, seconds});
  const tailnet::endpoint mapped{resp->address, resp->port};
  if (resp->address.family == ip_family::v4) round_mappings_.push_back(mapped);
  auto& slot = resp->address.family == ip_family::v6 ? mapped_v6_ : mapped_v4_;
  if (slot != mapped) {
    if (slot) LOG_INFO("netcheck: mapped endpoint %s (was %s)", mapped.to_string().c_str(), slot->to_string().c_str());
    slot = mapped;
    if (hooks_.on_net_info) hooks_.on_net_info();
  }
  probes_.erase(it);
  if (probes_.empty() && round_open_) finish_stun_round();
}

void derp_relays::finish_stun_round() {
  round_open_ = false;
  probes_.clear();
  ++rounds_;
  if (round_mappings_.size() >= 2)
    mapping_varies_ = std::any_of(round_mappings_.begin(), round_mappings_.end(),
                                  [&](const tailnet::endpoint& e) { return !(e == round_mappings_.front()); });
  const auto cutoff = clock::now() - latency_history;
  for (auto& [key, samples] : history_)
    while (!samples.empty() && samples.front().at < cutoff) samples.pop_front();
  std::erase_if(history_, [](const auto& kv) { return kv.second.empty(); });
  choose_home();
  if (hooks_.on_net_info) hooks_.on_net_info();
}

std::map<std::string, double> derp_relays::latencies() const {
  std::map<std::string, double> out;
  for (const auto& [key, samples] : history_) {
    double best = samples.front().seconds;
    for (const latency_sample& s : samples) best = std::min(best, s.seconds);
    out[key] = best;
  }
  return out;
}

// netcheck's addReportHistoryAndSetPreferredDERP: the lowest latency wins,
// but the old home stays unless the new one is clearly better (10 ms and a
// third); with no measurement at all, the old home stays, else the lowest
// region ID (tailscale picks at random; one region is the common case).
void derp_relays::choose_home() {
  std::map<int, double> best;  // per region, over both families
  for (const auto& [key, seconds] : latencies()) {
    const int region = std::stoi(key.substr(0, key.find('-')));
    if (!regions_.contains(region) || regions_.at(region).no_measure_no_home || node_for(region, 0) == nullptr) continue;
    auto [it, fresh] = best.try_emplace(region, seconds);
    if (!fresh) it->second = std::min(it->second, seconds);
  }
  int pick = home_;
  if (!best.empty()) {
    const auto winner = std::min_element(best.begin(), best.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    pick = winner->first;
    if (auto old = best.find(home_); old != best.end() && old->first != winner->first) {
      const double gain = old->second - winner->second;
      if (gain < 0.010 || winner->second > old->second * 2 / 3) pick = home_;
    }
  } else if (pick == 0 || !regions_.contains(pick)) {
    for (const auto& [id, r] : regions_)
      if (!r.avoid && node_for(id, 0) != nullptr) {
        pick = id;
        break;
      }
  }
  if (pick != home_) set_home(pick);
}

void derp_relays::set_home(int region) {
  const int old = home_;
  home_ = region;
  LOG_INFO("derp: home region %d%s", region, old != 0 ? (" (was " + std::to_string(old) + ")").c_str() : "");
  for (auto& [id, c] : connections_)
    if (c.ready && c.client) c.client->note_preferred(id == home_);
  if (home_ != 0) open_connection(home_);
}

std::optional<tailnet::endpoint> derp_relays::mapped_endpoint() const { return mapped_v4_ ? mapped_v4_ : mapped_v6_; }

// --- status ---------------------------------------------------------------------

nlohmann::json derp_relays::status_json() const {
  nlohmann::json regions = nlohmann::json::object();
  for (const auto& [id, c] : connections_) {
    nlohmann::json r{{"connected", c.ready}, {"home", id == home_}};
    if (!c.last_error.empty()) r["error"] = c.last_error;
    if (c.client) r["counters"] = c.client->stats().to_json();
    regions[std::to_string(id)] = r;
  }
  nlohmann::json counters;
#define LOPOWER_DERP_COUNTER_JSON(name) counters[#name] = counters_.name;
  LOPOWER_DERP_COUNTERS(LOPOWER_DERP_COUNTER_JSON)
#undef LOPOWER_DERP_COUNTER_JSON
  nlohmann::json j{{"enabled", settings_.enabled}, {"home", home_}, {"connections", regions}, {"counters", counters}};
  if (home_ != 0) {
    const auto l = latencies();
    for (const char* fam : {"-v4", "-v6"})
      if (auto it = l.find(std::to_string(home_) + fam); it != l.end())
        j["home_latency_ms"] = std::min(j.value("home_latency_ms", 1e9), it->second * 1000);
  }
  return j;
}

nlohmann::json derp_relays::netcheck_json() const {
  nlohmann::json latency = nlohmann::json::object();
  for (const auto& [key, seconds] : latencies()) latency[key] = seconds * 1000;
  nlohmann::json regions = nlohmann::json::array();
  for (const auto& [id, r] : regions_) regions.push_back({{"id", id}, {"code", r.region_code}, {"name", r.region_name}});
  bool udp = false;
  for (const auto& [key, samples] : history_) udp |= !samples.empty();
  return {{"udp", udp},
          {"ipv4", mapped_v4_ ? nlohmann::json(mapped_v4_->to_string()) : nlohmann::json()},
          {"ipv6", mapped_v6_ ? nlohmann::json(mapped_v6_->to_string()) : nlohmann::json()},
          {"home", home_},
          {"mapping_varies_by_dest", mapping_varies_ ? nlohmann::json(*mapping_varies_) : nlohmann::json()},
          {"latency_ms", latency},
          {"regions", regions},
          {"rounds", rounds_}};
}

}  // namespace lopower
