#include "tools/loadgen/tailnet/tailnet_node.h"

#include <sodium.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "control/event_loop.h"
#include "control/state_store.h"
#include "control/tailnet/client/coordination_client.h"
#include "tools/loadgen/tailnet/lopower_link.h"

namespace lopower::loadgen {

namespace {

using namespace std::chrono_literals;

ip_address to_ip(const udp_endpoint& e) { return ip_address::from_bytes(e.ipv6, e.ip); }

}  // namespace

// The control half: the coordination client on its own event loop thread,
// feeding lopower's netmap entry to the link (lopower_link.h), which the
// caller's thread drives; `mu` is between the two.
struct tailnet_node::impl {
  explicit impl(tailnet_node_options o) : options(std::move(o)) {}

  bool start(std::string& error);
  void stop();
  void on_netmap(const tailnet::netmap& nm);

  tailnet_node_options options;
  event_loop loop;
  std::thread thread;
  std::unique_ptr<state_store> store;
  std::unique_ptr<tailnet::coordination_client> client;
  std::atomic<bool> stopping{false};

  mutable std::mutex mu;
  std::condition_variable netmap_seen;
  std::unique_ptr<lopower_link> link;     // once the keys are known
  std::vector<ip_address> own;            // our tailnet addresses
  std::vector<ip_address> lopower_ips;    // lopower's
  std::vector<udp_endpoint> lopower_eps;  // lopower's endpoints
  bool lopower_seen = false;
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
            [this](const private_key& priv, const public_key&) {
              std::lock_guard lock(mu);
              link->set_disco_key(priv);
            }});
  } catch (const std::exception& e) {
    return error = e.what(), false;
  }
  {
    std::lock_guard lock(mu);
    link = std::make_unique<lopower_link>(client->node_private(), client->disco_private(), options.local);
    if (!link->valid()) return error = "the node key is unusable", false;
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
                                          [this] { return lopower_seen && !own.empty(); });
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
  lopower_seen = found != nullptr;
  lopower_ips.clear();
  lopower_eps.clear();
  if (found == nullptr) {
    link->set_lopower(std::nullopt);
  } else {
    for (const ip_prefix& a : found->addresses) lopower_ips.push_back(a.address);
    for (const tailnet::endpoint& e : found->endpoints) lopower_eps.push_back(to_udp(e.address, e.port));
    link->set_lopower(lopower_peer{found->key, found->disco_key, lopower_eps});
  }
  netmap_seen.notify_all();
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
  if (impl_->link) impl_->link->receive(in, now_ns, out);
}

void tailnet_node::poll(std::uint64_t now_ns, std::vector<datagram>& out) {
  std::lock_guard lock(impl_->mu);
  if (impl_->link) impl_->link->poll(now_ns, out);
}

std::optional<tailnet_session> tailnet_node::session() const {
  std::lock_guard lock(impl_->mu);
  return impl_->link ? impl_->link->session() : std::nullopt;
}

tailnet_node_counters tailnet_node::counters() const {
  std::lock_guard lock(impl_->mu);
  return impl_->link ? impl_->link->counters() : tailnet_node_counters{};
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
  for (const ip_address& a : impl_->lopower_ips) out.push_back(to_udp(a, 0));
  return out;
}

std::vector<udp_endpoint> tailnet_node::lopower_endpoints() const {
  std::lock_guard lock(impl_->mu);
  return impl_->lopower_eps;
}

}  // namespace lopower::loadgen
