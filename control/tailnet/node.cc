#include "control/tailnet/node.h"

#include <rte_cycles.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <cstring>

#include "control/log.h"
#include "control/tailnet/client/tcp_stream.h"
#include "control/tailnet/client/tls_stream.h"
#include "control/tailnet/controlbase/key_text.h"
#include "control/tailnet/disco/disco_message.h"
#include "control/tailnet/exit_nodes.h"
#include "dataplane/splice/translate.h"
#include "lopower_build_config.h"
#include "lopower/byte_order.h"
#include "lopower/wireguard_messages.h"

namespace lopower {

namespace {

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

state_store open_store(const config& cfg) {
  auto s = state_store::open(cfg.daemon.state_dir);
  if (!s) throw std::runtime_error(s.message());
  return std::move(*s);
}

// [inbound] advertise_routes: the device prefixes, as subnet routes.
std::vector<ip_prefix> advertised_prefixes(const config& cfg) {
  if (!cfg.inbound.advertise_routes) return {};
  std::vector<ip_prefix> out;
  if (cfg.devices.ipv4_prefix) out.push_back(*cfg.devices.ipv4_prefix);
  out.push_back(cfg.devices.ipv6_prefix);
  return out;
}

std::vector<std::string> advertised_routes(const config& cfg) {
  std::vector<std::string> out;
  for (const ip_prefix& p : advertised_prefixes(cfg)) out.push_back(p.to_string());
  return out;
}

tailnet::coordination_config coordination_from(const config& cfg) {
  tailnet::coordination_config c;
  auto url = tailnet::control_url::parse(cfg.tailnet.control_url);
  if (!url) throw config_error(cfg.path + ":" + std::to_string(cfg.tailnet.line) + ": tailnet.control_url: " + url.message());
  c.server = std::move(*url);
  c.ca_file = cfg.tailnet.ca_file;
  c.hostinfo.hostname = cfg.tailnet.hostname;
  c.hostinfo.ipn_version = std::string("lopower ") + LOPOWER_VERSION;
  c.hostinfo.request_tags = cfg.tailnet.advertise_tags;
  c.hostinfo.routable_ips = advertised_routes(cfg);
  c.ephemeral = cfg.tailnet.ephemeral;
  c.auth_key = read_auth_key(cfg.tailnet);
  return c;
}

// [derp] as the relays take it; a map_file is read and checked here, once.
derp_settings derp_settings_from(const config& cfg) {
  derp_settings s;
  s.enabled = cfg.derp.enabled;
  s.plain_http = cfg.derp.plain_http;
  s.ca_file = cfg.tailnet.ca_file;
  if (!cfg.derp.enabled || cfg.derp.map_file.empty()) return s;
  auto text = read_file(cfg.derp.map_file);
  if (!text) throw config_error(cfg.path + ":" + std::to_string(cfg.derp.line) + ": derp.map_file: " + text.message());
  // The file is a tailcfg.DERPMap: read as the DERPMap of a map response,
  // with every check the netmap's own gets.
  auto parsed = tailnet::parse_map_response("{\"DERPMap\":" + *text + "}");
  if (!parsed || !parsed.response->derp || !parsed.response->derp->regions || parsed.response->derp->regions->empty())
    throw config_error(cfg.path + ":" + std::to_string(cfg.derp.line) + ": derp.map_file: " + cfg.derp.map_file +
                       ": not a DERP map with regions" + (parsed ? "" : " (" + parsed.error + ")"));
  s.map_override = parsed.response->derp;
  return s;
}

// A peer's packets reached through DERP: the endpoint the workers and the
// WireGuard interface take as "through region N".
wg_endpoint relay_endpoint(int region) {
  wg_endpoint ep;
  ep.relay_region = static_cast<std::uint16_t>(region);
  return ep;
}

bool looks_like_disco(std::span<const std::uint8_t> p) {
  const auto& magic = tailnet::disco::magic;
  return p.size() >= magic.size() && std::equal(magic.begin(), magic.end(), p.begin());
}

nlohmann::json prefixes_json(const std::vector<ip_prefix>& ps, bool addresses_only) {
  nlohmann::json a = nlohmann::json::array();
  for (const ip_prefix& p : ps) a.push_back(addresses_only ? p.address.to_string() : p.to_string());
  return a;
}

}  // namespace

std::string read_auth_key(const tailnet_config& cfg) {
  if (!cfg.auth_key_file.empty()) {
    auto text = read_file(cfg.auth_key_file);
    if (!text) throw std::runtime_error("tailnet.auth_key_file: " + text.message());
    std::string key = trim(std::move(*text));
    if (key.empty()) throw std::runtime_error("tailnet.auth_key_file: " + cfg.auth_key_file + " holds no key");
    return key;
  }
  if (const char* env = std::getenv("LOPOWER_AUTHKEY"); env != nullptr && *env != '\0') {
    std::string key = trim(env);
    unsetenv("LOPOWER_AUTHKEY");  // nothing started later inherits it
    return key;
  }
  return {};
}

tailnet_node::tailnet_node(event_loop& loop, dataplane& dp, const config& cfg)
    : loop_(loop), dp_(dp), cfg_(cfg), store_(open_store(cfg)), derp_settings_(derp_settings_from(cfg)),
      tsc_hz_(rte_get_tsc_hz()) {
  client_ = std::make_unique<tailnet::coordination_client>(
      loop_, coordination_from(cfg), store_,
      tailnet::coordination_client::handlers{
          [this](const tailnet::netmap& nm, const tailnet::netmap_changes& ch) { on_netmap(nm, ch); }, {},
          [this](const private_key& priv, const public_key& pub) {
            if (disco_) disco_->set_key(priv, pub);
          }});
  const std::uint16_t listen = cfg.tailnet.listen_port;
  disco_ = std::make_unique<disco_paths>(
      client_->disco_private(), client_->disco_public(), client_->node_public(),
      disco_paths::hooks{
          [this, listen](const ip_address& ip, std::uint16_t port, std::span<const std::uint8_t> packet) {
            auto ep = dp_.route_udp(ip, port, listen, true);
            return ep && dp_.send_udp(*ep, packet);
          },
          [this](const wg_endpoint& to, std::span<const std::uint8_t> packet) { dp_.send_udp(to, packet); },
          [this](tailnet::node_id id, const wg_endpoint& ep) {
            if (wg_) wg_->set_peer_endpoint(std::to_string(id), ep);
          },
          [this](tailnet::node_id id) {
            if (wg_) wg_->retry_handshake_soon(std::to_string(id));
          },
          [this](tailnet::node_id id, int region, std::span<const std::uint8_t> packet) {
            const tailnet::node* n = client_->current() ? client_->current()->peer_by_id(id) : nullptr;
            if (n == nullptr) return false;
            if (region == 0) region = relay_region_for(*n);
            if (region == 0) return false;
            return relays_->send(region, n->key, packet);
          }});
}

tailnet_node::~tailnet_node() { dp_.publish_tailnet_view(nullptr); }

void tailnet_node::start() {
  report_endpoints();
  client_->start();
}

// Our own addresses (type 1), and where STUN saw us when that differs
// (type 2: behind a NAT, the address peers elsewhere must use); with them
// the home region and its latencies (NetInfo).
void tailnet_node::report_endpoints() {
  std::vector<tailnet::endpoint> eps = local_endpoints();
  std::vector<int> types(eps.size(), 1);
  if (relays_ && cfg_.tailnet.advertise_endpoints.empty())
    if (auto mapped = relays_->mapped_endpoint(); mapped && std::find(eps.begin(), eps.end(), *mapped) == eps.end()) {
      eps.push_back(*mapped);
      types.push_back(2);
    }
  disco_->set_own_endpoints(eps);
  client_->set_endpoints(std::move(eps), std::move(types));
  if (relays_ && relays_->home() != 0) client_->set_net_info(relays_->home(), relays_->latencies());
}

std::vector<tailnet::endpoint> tailnet_node::local_endpoints() const {
  std::vector<tailnet::endpoint> out;
  if (!cfg_.tailnet.advertise_endpoints.empty()) {
    for (const std::string& text : cfg_.tailnet.advertise_endpoints)
      if (auto e = tailnet::endpoint::parse(text)) out.push_back(*e);
    return out;
  }
  for (const port_runtime& p : dp_.ports()) {
    if (!serves_tailnet(p.config.role)) continue;
    for (const ip_prefix& a : p.config.addresses) out.push_back({a.address, cfg_.tailnet.listen_port});
  }
  return out;
}

void tailnet_node::on_netmap(const tailnet::netmap& nm, const tailnet::netmap_changes& changes) {
  if (changes.peers_changed())
    LOG_INFO("tailnet: peers +%zu -%zu ~%zu (now %zu)", changes.added.size(), changes.removed.size(),
             changes.changed.size(), nm.peer_count());
  // The netmap synced last time, changed since only by `changes`: only the
  // peers they name are looked at (a peer coming online in a tailnet of
  // thousands touches that peer, not every one). Any other netmap (a new
  // stream, a logout) is synced as a whole.
  std::vector<tailnet::node_id> touched;
  const std::vector<tailnet::node_id>* only = nullptr;
  if (nm.serial() == synced_serial_) {
    touched.reserve(changes.added.size() + changes.removed.size() + changes.changed.size());
    for (const auto* ids : {&changes.added, &changes.removed, &changes.changed})
      touched.insert(touched.end(), ids->begin(), ids->end());
    std::sort(touched.begin(), touched.end());
    only = &touched;
  }
  synced_serial_ = nm.serial();
  // A new exit node (or none) changes two peers' AllowedIPs: synced as changed.
  if (follow_exit_node(nm, only, touched) && only != nullptr) {
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  }
  // Peers first (new ones must exist before a route names them), then the
  // workers' view, then the peers that went away: retired only after the
  // view that routed to them is unpublished. The view is rebuilt when what
  // it holds moved (a route, our addresses, the filter), and always for a
  // whole netmap.
  bool routes_moved = false;
  const std::vector<tailnet::node_id> stale = sync_wireguard(nm, only, routes_moved);
  if (only == nullptr || routes_moved || !stale.empty() || changes.self_changed || changes.packet_filter_changed)
    publish_view(nm, stale);
  for (tailnet::node_id id : stale) {
    wg_->remove_peer(std::to_string(id));
    wg_peers_.erase(id);
  }
  if (!stale.empty()) publish_view(nm, sync_wireguard(nm, only, routes_moved));  // peers whose key changed come back
  if (only == nullptr || !disco_->update_peers(nm, *only)) disco_->set_peers(nm);
  sync_relays(nm);
  follow_restarts(nm, only);
  // The DNS names follow what names resolve to (not online flags, endpoints
  // or keys: most of what a large tailnet's map stream says).
  if (netmap_listener_ && (only == nullptr || changes.names_changed || changes.dns_changed)) netmap_listener_(nm);
}

// The node-key interface and the disco keys follow the identity: a login
// after a logout brings a new node key, and with it a new interface.
std::vector<tailnet::node_id> tailnet_node::sync_wireguard(const tailnet::netmap& nm,
                                                          const std::vector<tailnet::node_id>* only,
                                                          bool& routes_moved) {
  std::vector<tailnet::node_id> stale;
  if (!wg_ || !(wg_key_ == client_->node_public())) {
    only = nullptr;  // every peer is new to it
    wg_.reset();
    wg_peers_.clear();
    refused_.clear();
    wg_key_ = client_->node_public();
    wg_ = std::make_unique<wireguard_interface>(dp_, cfg_.wireguard, client_->node_private(), "tailnet peer");
    wg_->guard_on_workers(listener::tailnet);
    wg_->on_path_wanted([this](const std::string& name) { find_path(name); });
    wg_->send_relayed_with([this](std::uint16_t region, const public_key& to, std::span<const std::uint8_t> msg) {
      send_relayed(region, to, msg);
    });
  }
  // Wanted: every peer with a key that has not expired. The netmap's index
  // answers for each peer we hold; stale comes out sorted, as wg_peers_ is.
  // With `only`, the peers it names are looked at, and those refused
  // earlier (they may be let in now): the rest are as they were.
  const auto wanted = [](const tailnet::node& n) { return !n.expired && !n.key.is_zero(); };
  const auto check_held = [&](tailnet::node_id id, const public_key& key) {
    const tailnet::node* n = nm.peer_by_id(id);
    if (n == nullptr || !wanted(*n) || !(n->key == key)) stale.push_back(id);
  };
  if (only == nullptr) {
    for (const auto& [id, key] : wg_peers_) check_held(id, key);
  } else {
    for (const tailnet::node_id id : *only)
      if (auto it = wg_peers_.find(id); it != wg_peers_.end()) check_held(id, it->second);
  }
  const auto sync_peer = [&](const tailnet::node& n) {
    if (!wanted(n)) return;
    auto allowed = allowed_for(n);
    const std::string name = std::to_string(n.id);
    if (wg_peers_.contains(n.id)) {
      if (std::binary_search(stale.begin(), stale.end(), n.id)) return;  // a new key: re-added later
      // Same key: only its AllowedIPs may have moved (unchanged, the
      // workers keep reading the ones they have: nothing to retire).
      if (wg_peer* wp = wg_->dataplane_peer(name)) {
        const allowed_prefixes* now = wp->allowed.load(std::memory_order_acquire);
        if (now != nullptr && now->prefixes == allowed->prefixes) return;
        if (const allowed_prefixes* old = wp->allowed.exchange(allowed.release(), std::memory_order_acq_rel))
          dp_.rcu().retire_object(const_cast<allowed_prefixes*>(old));
        routes_moved = true;
      }
      return;
    }
    wg_->add_peer(name, n.key, [&allowed](wg_peer& wp) {
      wp.tailnet = true;
      wp.allowed.store(allowed.release(), std::memory_order_relaxed);
    });
    // Refused when another peer already has this key (a netmap the server
    // got wrong): that one keeps it, and this one is tried again later.
    if (wg_->has_peer(name)) {
      wg_peers_.emplace(n.id, n.key);
      refused_.erase(n.id);
      routes_moved = true;
    } else {
      refused_.insert(n.id);
    }
  };
  if (only == nullptr) {
    refused_.clear();
    for (const tailnet::node& n : nm.peers()) sync_peer(n);
    return stale;
  }
  // In ID order, as a whole netmap is (of two peers with one key, the
  // lower ID is tried first).
  std::vector<tailnet::node_id> ids(*only);
  for (const tailnet::node_id id : refused_)
    if (!std::binary_search(only->begin(), only->end(), id)) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (const tailnet::node_id id : ids) {
    const tailnet::node* n = nm.peer_by_id(id);
    if (n == nullptr || !wanted(*n)) refused_.erase(id);
    if (n != nullptr) sync_peer(*n);
  }
  return stale;
}

// AllowedIPs (null = Addresses) without what lopower did not ask for: the
// default routes only of the chosen exit node (its replies come from
// anywhere), subnet routes only with tailnet.accept_routes.
std::unique_ptr<allowed_prefixes> tailnet_node::allowed_for(const tailnet::node& peer) const {
  auto out = std::make_unique<allowed_prefixes>();
  for (const ip_prefix& p : peer.allowed_ips) {
    if (p.length == 0) {
      if (peer.id == exit_node_) out->prefixes.push_back(p);
      continue;
    }
    const bool own_address = std::find(peer.addresses.begin(), peer.addresses.end(), p) != peer.addresses.end();
    if (!own_address && !cfg_.tailnet.accept_routes) continue;
    out->prefixes.push_back(p);
  }
  return out;
}

bool tailnet_node::follow_exit_node(const tailnet::netmap& nm, const std::vector<tailnet::node_id>* only,
                                    std::vector<tailnet::node_id>& touched) {
  // A delta can move the choice only through the exit node in use or a peer
  // offering one now: the rest of a large tailnet's updates skip the scan.
  const auto moves_choice = [&](tailnet::node_id id) {
    const tailnet::node* n = nm.peer_by_id(id);
    return id == exit_node_ || (n != nullptr && tailnet::offers_exit(*n));
  };
  if (only != nullptr && std::none_of(only->begin(), only->end(), moves_choice)) return false;
  const tailnet::node_id chosen = tailnet::choose_exit_node(
      nm.peers(), cfg_.egress.exit_nodes, exit_node_, [this](tailnet::node_id id) { return disco_->latency_ms(id); });
  if (chosen == exit_node_) return false;
  const tailnet::node* n = chosen ? nm.peer_by_id(chosen) : nullptr;
  if (n != nullptr) LOG_INFO("egress: exit node %s", n->name.c_str());
  else LOG_INFO("egress: no exit node available");
  for (const tailnet::node_id id : {exit_node_, chosen})
    if (id != 0) touched.push_back(id);
  exit_node_ = chosen;
  return true;
}

nlohmann::json tailnet_node::exit_nodes_json() const {
  nlohmann::json j = {{"exit_node", nullptr}, {"offered", nlohmann::json::array()}};
  const tailnet::netmap* nm = client_->current();
  if (nm == nullptr) return j;
  for (const tailnet::node& n : nm->peers()) {
    if (!tailnet::offers_exit(n)) continue;
    const std::string ip = n.addresses.empty() ? "" : n.addresses[0].address.to_string();
    const bool in_use = n.id == exit_node_;
    j["offered"].push_back({{"name", n.name}, {"ip", ip}, {"online", n.online.value_or(true)}, {"in_use", in_use}});
    if (in_use) j["exit_node"] = {{"name", n.name}, {"ip", ip}};
  }
  return j;
}

void tailnet_node::publish_view(const tailnet::netmap& nm, const std::vector<tailnet::node_id>& stale) {
  const tailnet::node* self = nm.self();
  if (self == nullptr) return dp_.publish_tailnet_view(nullptr);
  auto view = std::make_unique<tailnet_view>();
  for (const ip_prefix& a : self->addresses) {
    if (a.address.family == ip_family::v4 && !view->has_v4) {
      view->has_v4 = true;
      std::memcpy(&view->v4_be, a.address.bytes.data(), 4);
    } else if (a.address.family == ip_family::v6 && !view->has_v6) {
      view->has_v6 = true;
      std::memcpy(view->v6, a.address.bytes.data(), 16);
    }
  }
  view->filter = nm.packet_filter();
  // Where spliced flows go: each WireGuard peer's AllowedIPs.
  for (const auto& [id, key] : wg_peers_) {
    if (std::binary_search(stale.begin(), stale.end(), id)) continue;  // sync_wireguard's, sorted
    wg_peer* wp = wg_->dataplane_peer(std::to_string(id));
    const allowed_prefixes* allowed = wp ? wp->allowed.load(std::memory_order_acquire) : nullptr;
    if (allowed == nullptr) continue;
    // A default route is only ever the exit node's (`add` leaves it out):
    // egress decides who uses it.
    for (const ip_prefix& p : allowed->prefixes) view->routes.add(p, wp);
    if (id == exit_node_) view->exit_node = wp;
  }
  view->routes.finish();  // two peers claiming one prefix: the lower node ID keeps it (wg_peers_ is by ID)
  dp_.publish_tailnet_view(std::move(view));
}

void tailnet_node::handle_packet(rte_mbuf* m, const classify_result& r, bool under_load) {
  if (r.cls == packet_class::wg_handshake && wg_) return wg_->handle_packet(m, r, under_load);
  if (r.cls == packet_class::disco && disco_) {
    const std::uint8_t* frame = rte_pktmbuf_mtod(m, const std::uint8_t*);
    const wg_endpoint from = endpoint_of_frame(frame, m->port, r.l4_offset);
    disco_->handle(std::span<const std::uint8_t>(frame + r.payload_offset, r.payload_length), from);
    return rte_pktmbuf_free(m);
  }
  if (r.cls == packet_class::stun && relays_) {
    relays_->handle_stun(std::span<const std::uint8_t>(rte_pktmbuf_mtod(m, const std::uint8_t*) + r.payload_offset,
                                                       r.payload_length));
    return rte_pktmbuf_free(m);
  }
  // lopower runs no STUN server: requests to it are not answered.
  const std::size_t index = dp_.port_index_of(m->port);
  if (index < max_ports) dp_.control_counters().drops[index].count(drop_reason::control_unhandled);
  rte_pktmbuf_free(m);
}

void tailnet_node::handle_event(const wg_event& ev) {
  if (wg_) wg_->handle_event(ev);
}

bool tailnet_node::stage(const staged_packet& sp) { return wg_ && wg_->stage(sp); }

// --- DERP ------------------------------------------------------------------------

void tailnet_node::sync_relays(const tailnet::netmap& nm) {
  if (!derp_settings_.enabled) return;
  if (!relays_ || !(relays_key_ == client_->node_public())) {
    relays_key_ = client_->node_public();
    const std::uint16_t listen = cfg_.tailnet.listen_port;
    relays_ = std::make_unique<derp_relays>(
        loop_, client_->node_private(), derp_settings_,
        derp_relays::hooks{
            [this](int region, const public_key& src, std::span<const std::uint8_t> p) { on_relayed(region, src, p); },
            [this, listen](const ip_address& ip, std::uint16_t port, std::span<const std::uint8_t> packet) {
              auto ep = dp_.route_udp(ip, port, listen, true);
              return ep && dp_.send_udp(*ep, packet);
            },
            [this] { report_endpoints(); },
            [this](const tailnet::derp_node& node, tailnet::byte_stream::handlers h) -> std::unique_ptr<tailnet::byte_stream> {
              if (derp_settings_.plain_http) return std::make_unique<tailnet::tcp_stream>(loop_, std::move(h));
              return std::make_unique<tailnet::tls_stream>(
                  loop_,
                  tailnet::tls_options::for_derp_node(node.host_name, node.cert_name, node.insecure_for_tests,
                                                      derp_settings_.ca_file),
                  std::move(h));
            }});
  }
  if (const tailnet::derp_map* map = nm.derp()) relays_->set_map(*map);
}

// What a relay brought: disco to the disco paths; WireGuard handshakes to
// the interface; transport data down to a worker (decrypted there, as any).
void tailnet_node::on_relayed(int region, const public_key& src, std::span<const std::uint8_t> packet) {
  if (looks_like_disco(packet)) {
    disco_->handle(packet, relay_endpoint(region));
    return;
  }
  if (!wg_) return;
  // Anyone on the relay can send us anything: checked as the classifier
  // checks what a port receives (the workers rely on a whole header and tag).
  const wg::parsed_message msg = wg::parse_message(packet.data(), packet.size());
  if (!msg.valid() || packet.size() > UINT16_MAX) return dp_.count_tailnet_drop(drop_reason::wg_malformed);
  if (!msg.transport()) return wg_->handle_message(packet, relay_endpoint(region), false);
  rte_mbuf* m = rte_pktmbuf_alloc(dp_.pool());
  if (m == nullptr) return;
  char* data = rte_pktmbuf_append(m, static_cast<std::uint16_t>(packet.size()));
  if (data == nullptr) return rte_pktmbuf_free(m);  // larger than a buffer: no relayed packet is
  std::memcpy(data, packet.data(), packet.size());
  std::uint64_t spread = 0;
  std::memcpy(&spread, src.data(), sizeof spread);  // one peer, one worker
  dp_.inject_relayed(m, static_cast<std::uint16_t>(region), spread);
}

void tailnet_node::send_relayed(int region, const public_key& to, std::span<const std::uint8_t> packet) {
  if (!relays_ || !relays_->send(region, to, packet)) dp_.count_tailnet_drop(drop_reason::relay_unavailable);
}

void tailnet_node::relay(const relay_packet& rp) {
  const public_key* key = wg_ ? wg_->key_of(rp.peer_id) : nullptr;
  if (key != nullptr) send_relayed(rp.region, *key, std::span<const std::uint8_t>(rte_pktmbuf_mtod(rp.mbuf, const std::uint8_t*), rp.mbuf->data_len));
  rte_pktmbuf_free(rp.mbuf);
}

int tailnet_node::relay_region_for(const tailnet::node& peer) const {
  if (!relays_ || !relays_->enabled()) return 0;
  if (const int r = relays_->region_of(peer.key); r != 0 && relays_->has_region(r)) return r;
  return relays_->has_region(peer.home_derp) ? peer.home_derp : 0;
}

// A busy peer whose direct pings have gone unanswered for a few seconds
// moves to its relay, when that relay is connected; a pong (disco's
// on_path) or a packet straight from it (the workers' roaming) brings it
// back.
void tailnet_node::fall_back_to_relays() {
  if (!wg_ || !relays_) return;
  const tailnet::netmap* nm = client_->current();
  if (nm == nullptr) return;
  for (const auto& [id, key] : wg_peers_) {
    // Every tick, every peer: the cheap test first (most have no direct
    // path going unanswered), the peer's endpoint only for those that do.
    if (!disco_->direct_lost(id)) continue;
    const wg_peer* wp = wg_->dataplane_peer(std::to_string(id));
    const wg_endpoint* ep = wp ? wp->endpoint.load(std::memory_order_acquire) : nullptr;
    if (ep == nullptr || ep->relay_region != 0) continue;
    const tailnet::node* n = nm->peer_by_id(id);
    const int region = n ? relay_region_for(*n) : 0;
    if (region == 0 || !relays_->ready(region)) continue;  // a relay that is down is no way either
    LOG_INFO("tailnet peer %s: direct path %s stopped answering, using derp(%d)", n->name.c_str(),
             endpoint_string(*ep).c_str(), region);
    wg_->set_peer_endpoint(std::to_string(id), relay_endpoint(region));
  }
}

// A peer needs a session and has no endpoint, or its path went quiet: a
// disco round looks for a direct path (on_path sets it), then a handshake.
// With a relay, the session need not wait: it starts through the relay at
// once, and moves to the direct path when one answers.
void tailnet_node::find_path(const std::string& name) {
  const auto id = static_cast<tailnet::node_id>(std::stoll(name));
  // Only a relay that is up: a handshake sent into one still dialling (or
  // never answering) would wait out its retry even once disco finds a
  // direct path.
  auto use_relay = [this, id, name] {
    const tailnet::node* n = client_->current() ? client_->current()->peer_by_id(id) : nullptr;
    const int region = n ? relay_region_for(*n) : 0;
    if (region == 0 || !wg_ || !relays_->ready(region)) return false;
    const wg_peer* wp = wg_->dataplane_peer(name);
    const wg_endpoint* ep = wp ? wp->endpoint.load(std::memory_order_acquire) : nullptr;
    if (ep != nullptr && (ep->relay_region != 0 || !disco_->direct_lost(id))) return true;  // keep what works
    wg_->set_peer_endpoint(name, relay_endpoint(region));
    return true;
  };
  const wg_peer* wp = wg_ ? wg_->dataplane_peer(name) : nullptr;
  if (wp != nullptr && wp->endpoint.load(std::memory_order_acquire) == nullptr && use_relay()) wg_->ensure_session(name);
  disco_->ping(id, std::chrono::seconds(5), [this, name, use_relay](const disco_paths::ping_outcome& o) {
    if (!wg_) return;
    if ((o.answered && !o.relayed) || use_relay()) wg_->ensure_session(name);
  });
}

// A peer whose disco key changed has restarted: whatever sessions we had
// with it are gone on its side. One that comes back online may have dropped
// them too, or only flapped in the server's view: a new handshake at once,
// but the session it may still have keeps working meanwhile.
void tailnet_node::follow_restarts(const tailnet::netmap& nm, const std::vector<tailnet::node_id>* only) {
  if (only != nullptr) {  // the others are as they were
    for (const tailnet::node_id id : *only) {
      const tailnet::node* n = nm.peer_by_id(id);
      if (n == nullptr) {
        liveness_.erase(id);
        continue;
      }
      if (auto before = liveness_.find(id); before != liveness_.end()) {
        follow_restart(*n, before->second);
        before->second = liveness_of(*n);
      } else {
        liveness_.emplace(id, liveness_of(*n));
      }
    }
    return;
  }
  std::map<tailnet::node_id, peer_liveness> now;
  for (const tailnet::node& n : nm.peers()) {
    now.emplace(n.id, liveness_of(n));
    auto before = liveness_.find(n.id);
    if (before != liveness_.end()) follow_restart(n, before->second);
  }
  liveness_ = std::move(now);
}

void tailnet_node::follow_restart(const tailnet::node& n, const peer_liveness& before) {
  if (!wg_peers_.contains(n.id)) return;
  const peer_liveness live = liveness_of(n);
  const bool new_disco = !before.disco_key.is_zero() && !(before.disco_key == live.disco_key);
  const bool back_online = !before.online && live.online;
  if (before.online != live.online) LOG_DEBUG("tailnet peer %s: %s", n.name.c_str(), live.online ? "online" : "offline");
  if (new_disco) {
    LOG_INFO("tailnet peer %s: new disco key (restarted)", n.name.c_str());
    wg_->peer_restarted(std::to_string(n.id));
  } else if (back_online) {
    LOG_INFO("tailnet peer %s: back online", n.name.c_str());
    wg_->renew_session(std::to_string(n.id));
  }
}

bool tailnet_node::busy(tailnet::node_id id) const {
  if (!wg_) return false;
  const wg_peer* wp = wg_->dataplane_peer(std::to_string(id));
  if (wp == nullptr) return false;
  const std::uint64_t now = rte_rdtsc();
  // Stamps a worker made after `now` was read count as fresh.
  return splice::seconds_since(wp->last_rx_tsc.load(std::memory_order_relaxed), now, tsc_hz_) < 5 ||
         splice::seconds_since(wp->last_tx_tsc.load(std::memory_order_relaxed), now, tsc_hz_) < 5;
}

void tailnet_node::tick() {
  if (relays_) relays_->tick();
  fall_back_to_relays();
  if (wg_) wg_->tick();
  disco_->tick([this](tailnet::node_id id) { return busy(id); });
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(icmp_pings_, [&](icmp_ping& p) {
    if (now < p.deadline) return advance(p), false;
    finish_ping(p.id, {{"peer", p.name}, {"ip", p.dst.to_string()}, {"answered", false}});
    return true;
  });
}

const tailnet::node* tailnet_node::find_peer(const std::string& what) const {
  const tailnet::netmap* nm = client_->current();
  if (nm == nullptr) return nullptr;
  if (auto ip = ip_address::parse(what)) return nm->peer_by_address(*ip);
  for (const tailnet::node& n : nm->peers())
    if (tailnet::names_node(n, what)) return &n;
  return nullptr;
}

result<std::uint64_t> tailnet_node::start_ping(const std::string& peer, std::chrono::milliseconds timeout,
                                               ping_mode mode) {
  const tailnet::node* n = find_peer(peer);
  if (n == nullptr) return fail("no tailnet peer named " + peer);
  const tailnet::node* self = client_->current() ? client_->current()->self() : nullptr;
  if (self == nullptr) return fail("not on the tailnet yet");
  const std::uint64_t id = next_ping_++;
  if (pings_.size() > 256) pings_.erase(pings_.begin());  // forgotten results do not pile up
  const std::string name = n->name, first_ip = n->addresses.empty() ? "" : n->addresses[0].address.to_string();
  if (mode == ping_mode::icmp) {
    icmp_ping p;
    p.id = id;
    p.peer = n->id;
    p.name = name;
    // The address asked for, else the peer's first address of a family
    // lopower has an address in too.
    const auto asked = ip_address::parse(peer);
    for (const ip_prefix& theirs : n->addresses)
      for (const ip_prefix& ours : self->addresses)
        if (!p.seq && asked && theirs.address == *asked && theirs.address.family == ours.address.family) {
          p.dst = theirs.address;
          p.src = ours.address;
          p.seq = next_seq_++;
        }
    for (const ip_prefix& theirs : n->addresses)
      for (const ip_prefix& ours : self->addresses)
        if (!p.seq && theirs.address.family == ours.address.family) {
          p.dst = theirs.address;
          p.src = ours.address;
          p.seq = next_seq_++;
        }
    if (next_seq_ == 0) next_seq_ = 1;  // 0 means "none chosen" above
    if (!p.seq) return fail(peer + " has no address in a family lopower has");
    if (!wg_ || !wg_->has_peer(std::to_string(n->id))) return fail(peer + " is not a WireGuard peer (expired?)");
    p.deadline = std::chrono::steady_clock::now() + timeout;
    pings_[id] = nullptr;
    icmp_pings_.push_back(p);
    advance(icmp_pings_.back());
    return id;
  }
  if (n->disco_key.is_zero()) return fail(peer + " speaks no disco");
  pings_[id] = nullptr;
  disco_->ping(n->id, timeout, [this, id, name, first_ip](const disco_paths::ping_outcome& o) {
    finish_ping(id, {{"peer", name}, {"ip", first_ip}, {"answered", o.answered}, {"latency_ms", o.latency_ms},
                     {"path", o.path.empty() || o.relayed ? o.path : "direct " + o.path}});
  });
  return id;
}

void tailnet_node::finish_ping(std::uint64_t id, nlohmann::json outcome) {
  if (auto it = pings_.find(id); it != pings_.end()) it->second = std::move(outcome);
}

void tailnet_node::advance(icmp_ping& p) {
  if (p.sent || !wg_) return;
  const std::string name = std::to_string(p.peer);
  if (wg_->has_session(name)) {
    std::uint8_t packet[40 + 8 + 32];
    const std::uint16_t len = write_echo_request(packet, p.src, p.dst, p.seq, 32);
    if (wg_->send_data(name, std::span<const std::uint8_t>(packet, len))) {
      p.sent = true;
      p.sent_at = std::chrono::steady_clock::now();
    }
    return;
  }
  const wg_peer* wp = wg_->dataplane_peer(name);
  if (wp != nullptr && wp->endpoint.load(std::memory_order_acquire) != nullptr) return wg_->ensure_session(name);
  if (!p.disco_asked) {  // no path yet: a direct one, or the peer's relay (find_path sets the endpoint)
    p.disco_asked = true;
    find_path(name);
  }
}

void tailnet_node::handle_inner(rte_mbuf* m) {
  auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const auto info = parse_inner(p, m->data_len);
  if (info && is_lopower_echo_reply(p, *info)) {
    const std::uint16_t seq = load_be16(p + info->l4_offset + 6);
    for (auto it = icmp_pings_.begin(); it != icmp_pings_.end(); ++it) {
      if (!it->sent || it->seq != seq || std::memcmp(info->src, it->dst.bytes.data(), info->ipv6 ? 16 : 4) != 0)
        continue;
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - it->sent_at).count();
      const wg_peer* wp = wg_ ? wg_->dataplane_peer(std::to_string(it->peer)) : nullptr;
      const wg_endpoint* ep = wp ? wp->endpoint.load(std::memory_order_acquire) : nullptr;
      finish_ping(it->id, {{"peer", it->name}, {"ip", it->dst.to_string()}, {"answered", true}, {"latency_ms", ms},
                           {"path", ep ? "ICMP, direct " + endpoint_string(*ep) : "ICMP"}});
      icmp_pings_.erase(it);
      break;
    }
  }
  rte_pktmbuf_free(m);
}

nlohmann::json tailnet_node::ping_result(std::uint64_t id) {
  auto it = pings_.find(id);
  if (it == pings_.end()) return {{"error", "no such ping"}};
  if (it->second.is_null()) return {{"done", false}};
  nlohmann::json out = it->second;
  out["done"] = true;
  pings_.erase(it);
  return out;
}

nlohmann::json tailnet_node::netcheck_json() const {
  if (!derp_settings_.enabled) return {{"error", "DERP is off ([derp] enabled = false)"}};
  if (!relays_) return {{"error", "no DERP map yet (not on the tailnet)"}};
  return relays_->netcheck_json();
}

// The subnet routes lopower advertises, each approved when the server put
// it in the self node's AllowedIPs (or made lopower its primary router).
nlohmann::json tailnet_node::routes_json(const tailnet::node& self) const {
  nlohmann::json out = nlohmann::json::array();
  for (const ip_prefix& route : advertised_prefixes(cfg_)) {
    const auto has = [&route](const std::vector<ip_prefix>& v) { return std::find(v.begin(), v.end(), route) != v.end(); };
    out.push_back({{"prefix", route.to_string()}, {"approved", has(self.allowed_ips) || has(self.primary_routes)}});
  }
  return out;
}

nlohmann::json tailnet_node::status_json() const {
  nlohmann::json j = client_->status_json();
  const tailnet::netmap* nm = client_->current();
  nlohmann::json peers = nlohmann::json::array();
  if (nm != nullptr && nm->self() != nullptr) {
    const tailnet::node& self = *nm->self();
    j["self"] = {{"name", self.name},
                 {"id", self.id},
                 {"addresses", prefixes_json(self.addresses, true)},
                 {"key_expiry", self.key_expiry.is_zero() ? nlohmann::json() : nlohmann::json(self.key_expiry.to_string())},
                 {"expired", self.expired}};
    j["tailnet"] = nm->domain();
    j["routes"] = routes_json(self);
    j["packet_filter"] = {{"rules", nm->packet_filter_rules().size()},
                          {"matches", nm->packet_filter().size()},
                          {"error", nm->packet_filter_error()}};
    for (const tailnet::node& p : nm->peers()) {
      nlohmann::json eps = nlohmann::json::array();
      for (const auto& e : p.endpoints) eps.push_back(e.to_string());
      peers.push_back({{"name", p.name},
                       {"id", p.id},
                       {"hostname", p.hostname},
                       {"node_key", tailnet::format_node_key(p.key)},
                       {"addresses", prefixes_json(p.addresses, true)},
                       {"allowed_ips", prefixes_json(p.allowed_ips, false)},
                       {"online", p.online ? nlohmann::json(*p.online) : nlohmann::json()},
                       {"endpoints", eps},
                       {"home_derp", p.home_derp}});
      nlohmann::json& pj = peers.back();
      pj["path"] = disco_->path_text(p.id);
      if (auto l = disco_->latency_ms(p.id)) pj["latency_ms"] = *l;
      if (const wg_peer* wp = wg_ ? wg_->dataplane_peer(std::to_string(p.id)) : nullptr) {
        // The path traffic takes: the relay when the peer is on one.
        if (const wg_endpoint* ep = wp->endpoint.load(std::memory_order_acquire)) {
          if (ep->relay_region != 0) pj["path"] = endpoint_string(*ep);
          else if (pj["path"].get<std::string>().empty()) pj["path"] = "direct " + endpoint_string(*ep);
        }
        const std::int64_t hs = wg_->last_handshake(std::to_string(p.id));
        if (hs != 0) pj["last_handshake_seconds"] = std::max<std::int64_t>(0, std::time(nullptr) - hs);
        pj["rx_bytes"] = wp->rx_bytes.load(std::memory_order_relaxed);
        pj["tx_bytes"] = wp->tx_bytes.load(std::memory_order_relaxed);
      }
    }
  }
  j["peers"] = peers;
  j["disco"] = disco_->counters_json();
  if (relays_) j["derp"] = relays_->status_json();
  if (wg_) j["handshakes"] = wg_->counters().to_json();
  return j;
}

}  // namespace lopower
