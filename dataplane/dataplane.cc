#include "dataplane/dataplane.h"

#include <rte_mbuf_dyn.h>

#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include <stdexcept>
#include <string>

namespace lopower {
namespace {

constexpr unsigned neighbour_capacity = 4096;
// Three keypairs (previous, current, next) per peer, for thousands of devices.
constexpr unsigned session_capacity = 3 * 16384;

// lopower's own device-side addresses: the first host of each device prefix.
void set_local_addresses(worker_setup& s, const dataplane_settings& d) {
  if (d.device_ipv4_prefix) {
    s.has_local_v4 = true;
    std::memcpy(&s.local_v4_be, d.device_ipv4_prefix->address.bytes.data(), 4);
    reinterpret_cast<std::uint8_t*>(&s.local_v4_be)[3] |= 1;
  }
  s.has_local_v6 = true;
  std::memcpy(s.local_v6, d.device_ipv6_prefix.address.bytes.data(), 16);
  s.local_v6[15] |= 1;
}

// Reassembly holds at most an eighth of the packet pool (a datagram is up to
// 8 fragments), shared out among the workers. A device may have a sixteenth
// of its worker's datagrams in progress, so a flood from one fills its own
// share and leaves the rest to the others; a tailnet peer, which answers
// for every device that talks to it, a quarter.
// A device's DNS queries: `rate` a second on average, a second's worth at once.
void set_dns_pacing(worker_setup& s, const dataplane_settings& cfg) {
  if (cfg.dns_device_query_rate == 0) return;
  s.dns_query_interval_cycles = std::max<std::uint64_t>(1, rte_get_tsc_hz() / cfg.dns_device_query_rate);
  s.dns_query_burst = cfg.dns_device_query_rate;
}

void set_fragment_limits(worker_setup& s, const dataplane_settings& cfg, std::size_t workers) {
  const std::uint64_t held = cfg.dataplane.mbufs / 8 / fragments::max_fragments / workers;
  s.reassembly_datagrams = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(held, 16, 4096));
  s.reassembly_per_device = std::max<std::uint32_t>(s.reassembly_datagrams / 16, 2);
  s.reassembly_per_tailnet_peer = std::max<std::uint32_t>(s.reassembly_datagrams / 4, 4);
  s.device_mtu = cfg.device_mtu;
}

// A dynamic mbuf flag (DPDK's way to claim an ol_flags bit no PMD sets).
std::uint64_t register_inner_up_flag() {
  rte_mbuf_dynflag desc{};
  std::snprintf(desc.name, sizeof desc.name, "%s", "lopower_inner_up");
  const int bit = rte_mbuf_dynflag_register(&desc);
  if (bit < 0) throw std::runtime_error("cannot register an mbuf flag: " + std::string(rte_strerror(rte_errno)));
  return std::uint64_t{1} << bit;
}

rte_mempool* create_pool(const dataplane_config& dp) {
  rte_mempool* pool = rte_pktmbuf_pool_create("lopower_mbufs", dp.mbufs, dp.mbuf_cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              static_cast<int>(rte_socket_id()));
  if (pool == nullptr)
    throw std::runtime_error(std::string("cannot create the packet pool (dataplane.mbufs = ") + std::to_string(dp.mbufs) +
                             "): " + rte_strerror(rte_errno) + "; with --no-huge give EAL more memory (-m / dpdk.memory_mb)");
  return pool;
}

rte_ring* create_ring(const std::string& name, std::uint32_t size, unsigned esize) {
  rte_ring* r = rte_ring_create_elem(name.c_str(), esize, size, static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (r == nullptr) throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
  return r;
}

// Every element of every ring (one per worker) to `handler`, in ring order.
template <typename Element, typename Handler>
unsigned drain_elements(const std::vector<rte_ring*>& rings, const Handler& handler) {
  unsigned n = 0;
  Element e;
  for (rte_ring* r : rings)
    while (rte_ring_sc_dequeue_elem(r, &e, sizeof e) == 0) {
      handler(e);
      ++n;
    }
  return n;
}

int worker_main(void* arg) {
  auto* ctx = static_cast<std::pair<worker*, std::atomic<bool>*>*>(arg);
  ctx->first->run(*ctx->second);
  delete ctx;
  return 0;
}

}  // namespace

dataplane::dataplane(const dataplane_settings& cfg, const std::vector<unsigned>& worker_lcores)
    : neighbours_(neighbour_capacity), neighbour_timeout_ms_(std::uint64_t{cfg.dataplane.neighbour_timeout_s} * 1000),
      device_v4_prefix_(cfg.device_ipv4_prefix), device_v6_prefix_(cfg.device_ipv6_prefix) {
  if (worker_lcores.empty()) throw std::runtime_error("no worker lcore: give EAL at least two lcores (dpdk.lcores)");
  try {
    pool_ = create_pool(cfg.dataplane);
    rcu_ = std::make_unique<rcu_domain>(static_cast<unsigned>(worker_lcores.size()));
    neighbours_.share_with_workers(*rcu_);  // the uplink NAT reads next hops there
    sessions_ = std::make_unique<session_table>(session_capacity, *rcu_);
    flows_ = std::make_unique<flow_table>(cfg.dataplane.max_flows, *rcu_);
    create_rings(worker_lcores.size(), cfg.dataplane.ring_size);
    inner_up_flag_ = register_inner_up_flag();
    open_ports(cfg, static_cast<std::uint16_t>(worker_lcores.size()));
    for (std::size_t w = 0; w < worker_lcores.size(); ++w) {
      worker_setup s;
      s.lcore_id = worker_lcores[w];
      s.queue = static_cast<std::uint16_t>(w);
      s.burst_size = cfg.dataplane.burst_size;
      s.tx_drain_us = cfg.dataplane.tx_drain_us;
      s.adaptive_idle = cfg.dataplane.idle == idle_policy::adaptive;
      s.idle_sleep_max_us = cfg.dataplane.idle_sleep_max_us;
      s.idle_hold_us = cfg.dataplane.idle_hold_us;
      for (const port_runtime& p : ports_) s.ports.push_back(worker_port{p.index, p.port_id, p.tap_id, &p.identity});
      s.to_control = to_control_[w];
      s.guard = &published_guard_;
      s.handshakes_under_load = &handshakes_under_load_;
      set_dns_pacing(s, cfg);
      s.handshake_load_threshold = cfg.handshake_load_threshold;
      s.from_control = from_control_[w];
      s.neighbours = neighbour_rings_[w];
      s.wg_events = event_rings_[w];
      s.staged = staged_rings_[w];
      s.relay_out = relay_out_rings_[w];
      s.relay_in = relay_in_rings_[w];
      s.sessions = sessions_.get();
      s.crypto_backend = cfg.crypto_backend;
      s.qsbr = rcu_->qsbr();
      s.rcu_thread_id = static_cast<unsigned>(w);
      s.reject_after_cycles = rte_get_tsc_hz() * cfg.reject_after_seconds;
      set_local_addresses(s, cfg);
      s.tailnet = &tailnet_view_;
      s.devices = &devices_;
      s.forwards = &forwards_;
      s.inbound_routes = cfg.inbound_routes;
      s.inbound_snat = cfg.inbound_snat;
      s.device_to_device = cfg.device_to_device;
      s.inner_up_flag = inner_up_flag_;
      s.flows = flows_.get();
      s.max_flows_per_device = cfg.dataplane.max_flows_per_device;
      s.worker_index = static_cast<unsigned>(w);
      s.worker_count = static_cast<unsigned>(worker_lcores.size());
      s.max_flows = cfg.dataplane.max_flows;
      s.port_seed = rte_rand();
      s.released_ports = released_ports_[w];
      set_fragment_limits(s, cfg, worker_lcores.size());
      set_uplink(s);
      workers_.push_back(std::make_unique<worker>(std::move(s)));
    }
  } catch (...) {
    close_all();
    throw;
  }
}

void dataplane::set_uplink(worker_setup& s) const {
  for (const port_runtime& p : ports_) {
    if (p.config.role != port_role::uplink) continue;
    s.uplink = p.config;
    s.uplink_mac = p.mac;
    s.neighbour_macs = &neighbours_;
  }
}

dataplane::~dataplane() {
  stop();
  close_all();
  delete tailnet_view_.exchange(nullptr);  // the workers are gone
  delete devices_.exchange(nullptr);
  delete forwards_.exchange(nullptr);
  delete published_guard_.exchange(nullptr);
  for (auto& [peer, when] : removed_devices_) delete peer;  // after the flows that named them (close_all)
}

void dataplane::publish_tailnet_view(std::unique_ptr<tailnet_view> view) {
  if (view) view->routes.finish();  // routes added and never finished would be no route at all
  const tailnet_view* old = tailnet_view_.exchange(view.release(), std::memory_order_acq_rel);
  if (old != nullptr) rcu_->retire_object(const_cast<tailnet_view*>(old));
}

void dataplane::publish_devices(const std::vector<wg_peer*>& devices) {
  auto* next = new device_directory(device_v4_prefix_, device_v6_prefix_, devices);
  const device_directory* old = devices_.exchange(next, std::memory_order_acq_rel);
  if (old != nullptr) rcu_->retire_object(const_cast<device_directory*>(old));
}

void dataplane::publish_handshake_keys(listener l, const key32* mac1_key, const key32* cookie_secret) {
  handshake_guard::listener_keys& keys = guard_.of(l);
  keys.known = mac1_key != nullptr && cookie_secret != nullptr;
  keys.mac1_key = keys.known ? *mac1_key : key32{};
  keys.cookie_secret = keys.known ? *cookie_secret : key32{};
  const handshake_guard* old = published_guard_.exchange(new handshake_guard(guard_), std::memory_order_acq_rel);
  if (old == nullptr) return;
  if (rcu_) rcu_->retire_object(const_cast<handshake_guard*>(old));
  else delete old;  // the workers are gone
}

void dataplane::create_rings(std::size_t workers, std::uint32_t size) {
  for (std::size_t w = 0; w < workers; ++w) {
    const std::string n = std::to_string(w);
    auto& up = to_control_.emplace_back();
    for (std::size_t c = 0; c < up_ring_count; ++c) up[c] = create_ring("lp_up" + n + "_" + std::to_string(c), size, sizeof(void*));
    from_control_.push_back(create_ring("lp_down" + n, size, sizeof(void*)));
    neighbour_rings_.push_back(create_ring("lp_nbr" + n, size, sizeof(neighbour_note)));
    released_ports_.push_back(create_ring("lp_rel" + n, size * 4, sizeof(splice::flow_key)));
    event_rings_.push_back(create_ring("lp_wgev" + n, size, sizeof(wg_event)));
    staged_rings_.push_back(create_ring("lp_stage" + n, size, sizeof(staged_packet)));
    relay_out_rings_.push_back(create_ring("lp_rlyo" + n, size, sizeof(relay_packet)));
    relay_in_rings_.push_back(create_ring("lp_rlyi" + n, size, sizeof(void*)));
  }
}

void dataplane::open_ports(const dataplane_settings& cfg, std::uint16_t queues) {
  if (cfg.ports.size() > max_ports)
    throw std::runtime_error(cfg.config_path + ": at most " + std::to_string(max_ports) + " [[port]] tables are supported");
  ports_.reserve(cfg.ports.size());  // workers keep pointers to each port's identity
  for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
    port_runtime& p = ports_.emplace_back();
    p.config = cfg.ports[i];
    p.index = static_cast<std::uint8_t>(i);
    open_port(p, queues, pool_, cfg.wireguard_port, cfg.tailnet_port, cfg.config_path);
    if (p.config.exception_path) open_exception_path(p, queues, pool_);
  }
}

void dataplane::close_all() {
  workers_.clear();
  // Retired keypairs go first (their release touches the session table).
  if (rcu_) rcu_->drain();
  // The deferred releases first: they free slots of the session and flow tables.
  rcu_.reset();
  sessions_.reset();
  flows_.reset();
  for (port_runtime& p : ports_) close_port(p);
  ports_.clear();
  auto free_mbuf_ring = [](rte_ring* r) {
    void* m;
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(r);
  };
  for (auto& up : to_control_)
    for (rte_ring* r : up) free_mbuf_ring(r);
  to_control_.clear();
  for (auto* rings : {&from_control_, &relay_in_rings_}) {
    for (rte_ring* r : *rings) free_mbuf_ring(r);
    rings->clear();
  }
  for (rte_ring* r : staged_rings_) {
    staged_packet sp;
    while (rte_ring_sc_dequeue_elem(r, &sp, sizeof sp) == 0) rte_pktmbuf_free(sp.mbuf);
    rte_ring_free(r);
  }
  staged_rings_.clear();
  for (rte_ring* r : relay_out_rings_) {
    relay_packet rp;
    while (rte_ring_sc_dequeue_elem(r, &rp, sizeof rp) == 0) rte_pktmbuf_free(rp.mbuf);
    rte_ring_free(r);
  }
  relay_out_rings_.clear();
  for (auto* rings : {&neighbour_rings_, &event_rings_, &released_ports_}) {
    for (rte_ring* r : *rings) rte_ring_free(r);
    rings->clear();
  }
  rte_mempool_free(pool_);
  pool_ = nullptr;
}

void dataplane::start() {
  stop_ = false;
  for (auto& w : workers_) {
    auto* ctx = new std::pair<worker*, std::atomic<bool>*>(w.get(), &stop_);
    if (int rc = rte_eal_remote_launch(worker_main, ctx, w->setup().lcore_id); rc != 0) {
      delete ctx;
      stop();
      throw std::runtime_error("cannot launch the worker on lcore " + std::to_string(w->setup().lcore_id));
    }
  }
  running_ = true;
}

void dataplane::stop() {
  stop_ = true;
  if (!running_) return;
  for (auto& w : workers_) rte_eal_wait_lcore(w->setup().lcore_id);
  running_ = false;
}

namespace {

// On the port's link: inside one of its prefixes, or IPv6 link-local.
bool on_link(const port_runtime& p, const ip_address& ip) {
  if (ip.family == ip_family::v6 && ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80) return true;
  return std::any_of(p.config.addresses.begin(), p.config.addresses.end(), [&](const ip_prefix& a) { return a.contains(ip); });
}

bool is_own_address(const port_runtime& p, const ip_address& ip) {
  return std::any_of(p.config.addresses.begin(), p.config.addresses.end(), [&](const ip_prefix& a) { return a.address == ip; });
}

ip_address address_of(ip_family family, const std::uint8_t* bytes) { return ip_address::from_bytes(family == ip_family::v6, bytes); }

constexpr std::uint64_t solicitation_answer_window_ms = 5000;

}  // namespace

// A binding may update an entry it names; it may add one only when lopower
// asked for it (an answer within a few seconds of our solicitation, or an
// answer to one of the port's addresses: the host stack behind the
// exception path asks from them too) or when the neighbour asks for one of
// lopower's addresses (it is about to talk to us, RFC 826's merge rule).
// Off-link bindings never enter, gratuitous ones and answers to others do
// not add. So a host spraying ARP/ND cannot fill the table with addresses
// nobody uses, and what it does get in ages out or gives way to what is in use.
bool dataplane::admit_neighbour(const neighbour_note& note, std::uint64_t now_ms) {
  const std::size_t index = port_index_of(note.port);
  if (index >= ports_.size()) return false;
  const port_runtime& p = ports_[index];
  const ip_address ip = address_of(note.family, note.ip);
  if (!on_link(p, ip)) {
    control_stats_.drops[index].count(drop_reason::neighbour_off_link);
    return false;
  }
  if (neighbours_.contains(note.port, note.family, note.ip)) return true;
  bool wanted = false;
  if (is_own_address(p, address_of(note.family, note.target))) {
    wanted = true;  // a question for us, or an answer to us
  } else if (note.op == neighbour_op::answers) {
    const auto it = solicited_.find({note.port, ip.bytes});
    wanted = it != solicited_.end() && now_ms - it->second <= solicitation_answer_window_ms;
  }
  if (!wanted) control_stats_.drops[index].count(drop_reason::neighbour_unsolicited);
  return wanted;
}

unsigned dataplane::drain_neighbour_notes(std::uint64_t now_ms) {
  unsigned n = 0;
  neighbour_note note;
  for (rte_ring* r : neighbour_rings_)
    while (rte_ring_sc_dequeue_elem(r, &note, sizeof note) == 0) {
      if (admit_neighbour(note, now_ms)) neighbours_.learn(note, now_ms);
      ++n;
    }
  if (now_ms - last_neighbour_expiry_ms_ >= 1000) {  // once a second is plenty for minutes of age
    last_neighbour_expiry_ms_ = now_ms;
    neighbours_.expire(now_ms, neighbour_timeout_ms_);
    std::erase_if(solicited_, [&](const auto& s) { return now_ms - s.second > solicitation_answer_window_ms; });
    solicit_uplink_gateways(now_ms);
  }
  return n;
}

unsigned dataplane::drain_control_packets(const packet_handler& handler) {
  // Per call (every millisecond), from each worker: handshakes worth
  // answering first, then disco/STUN and lopower's own inner packets, and
  // fewer of the unproven (each costs a cookie reply at most).
  static constexpr unsigned budget[up_ring_count] = {64, 32, 64, 64};
  unsigned n = 0;
  rte_mbuf* pkts[64];
  for (const auto& up : to_control_)
    for (std::size_t c = 0; c < up_ring_count; ++c) {
      const unsigned got = rte_ring_sc_dequeue_burst(up[c], reinterpret_cast<void**>(pkts), budget[c], nullptr);
      for (unsigned i = 0; i < got; ++i) handler(pkts[i]);
      n += got;
    }
  return n;
}

unsigned dataplane::drain_wg_events(const event_handler& handler) { return drain_elements<wg_event>(event_rings_, handler); }

unsigned dataplane::drain_staged(const staged_handler& handler) { return drain_elements<staged_packet>(staged_rings_, handler); }

unsigned dataplane::drain_relay_out(const relay_handler& handler) {
  return drain_elements<relay_packet>(relay_out_rings_, handler);
}

bool dataplane::inject_relayed(rte_mbuf* m, std::uint16_t region, std::uint64_t spread) {
  if (relay_in_rings_.empty()) {
    rte_pktmbuf_free(m);
    return false;
  }
  m->hash.usr = region;
  if (rte_ring_sp_enqueue(relay_in_rings_[spread % relay_in_rings_.size()], m) == 0) return true;
  count_tailnet_drop(drop_reason::relay_in_ring_full);
  rte_pktmbuf_free(m);
  return false;
}

void dataplane::count_tailnet_drop(drop_reason why) {
  for (const port_runtime& p : ports_)
    if (serves_tailnet(p.config.role)) return control_stats_.drops[p.index].count(why);
}

unsigned dataplane::handshake_backlog() const {
  unsigned n = 0;
  for (const auto& up : to_control_)
    n += rte_ring_count(up[static_cast<std::size_t>(up_ring::handshakes)]) +
         rte_ring_count(up[static_cast<std::size_t>(up_ring::unproven)]);
  return n;
}

bool dataplane::transmit(rte_mbuf* m) {
  // Any worker can send on any port (each has a queue on every port); spread
  // the control plane's frames over them.
  rte_ring* r = from_control_[next_tx_worker_++ % from_control_.size()];
  if (rte_ring_sp_enqueue(r, m) == 0) return true;
  rte_pktmbuf_free(m);
  return false;
}

std::size_t dataplane::port_index_of(std::uint16_t port_id) const {
  for (const port_runtime& p : ports_)
    if (p.port_id == port_id || p.tap_id == port_id) return p.index;
  return max_ports;
}

unsigned dataplane::expire_flows(flow_census* census) { return expire_flows(census, rte_rdtsc()); }

unsigned dataplane::expire_flows(flow_census* census, std::uint64_t now) {
  const std::uint64_t hz = rte_get_tsc_hz();
  std::vector<flow*> done;
  flows_->collect_expired(now, hz, device_removed_, done);
  device_removed_ = false;
  release_backlog_.resize(released_ports_.size());
  for (flow* f : done) end_flow(f);
  if (census != nullptr) *census = flows_->census();
  for (std::size_t w = 0; w < released_ports_.size(); ++w) {
    auto& backlog = release_backlog_[w];
    const unsigned sent = rte_ring_sp_enqueue_burst_elem(released_ports_[w], backlog.data(), sizeof(splice::flow_key),
                                                         static_cast<unsigned>(backlog.size()), nullptr);
    backlog.erase(backlog.begin(), backlog.begin() + sent);
  }
  // Removed devices whose flows are all retired now (the FIFO of the defer
  // queue frees the flows first).
  std::erase_if(removed_devices_, [&](const auto& entry) {
    if (now < entry.second + hz) return false;
    rcu_->retire_object(entry.first);
    return true;
  });
  return static_cast<unsigned>(done.size());
}

// Out of the table, its port back to its worker (the reply-direction key it
// was allocated in), its device's count down.
void dataplane::end_flow(flow* f) {
  f->device->flows.fetch_sub(1, std::memory_order_relaxed);
  if (f->kind == flow_kind::spliced) release_backlog_[f->owner_worker].push_back(f->tailnet_key);
  else if (f->kind == flow_kind::inbound_ported) release_backlog_[f->owner_worker].push_back(f->device_key);
  flows_->erase(f);
}

unsigned dataplane::end_forward_flows(std::uint8_t protocol, std::uint16_t port) {
  const tailnet_view* view = tailnet_view_.load(std::memory_order_acquire);
  if (view == nullptr) return 0;
  std::vector<flow*> ended;
  flows_->for_each([&](flow& f) {
    const splice::flow_key& k = f.tailnet_key;
    if (f.kind != flow_kind::spliced && k.protocol == protocol && k.dst_port == port &&
        view->owns(k.family == ip_family::v6, k.dst))
      ended.push_back(&f);
  });
  release_backlog_.resize(released_ports_.size());
  for (flow* f : ended) end_flow(f);  // the ports reach their workers with the next expire_flows
  return static_cast<unsigned>(ended.size());
}

void dataplane::publish_forwards(std::unique_ptr<forward_table> forwards) {
  const forward_table* old = forwards_.exchange(forwards.release(), std::memory_order_acq_rel);
  if (old != nullptr) rcu_->retire_object(const_cast<forward_table*>(old));
}

void dataplane::retire_device_peer(wg_peer* peer) {
  removed_devices_.emplace_back(peer, rte_rdtsc());
  device_removed_ = true;  // the next expire_flows looks for its flows
}

}  // namespace lopower
