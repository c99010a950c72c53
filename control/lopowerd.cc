// lopowerd: the lopower appliance daemon.
//
//   lopowerd [EAL options] -- --config FILE [--check-config]
//   lopowerd --config FILE [--check-config]      (EAL options from [dpdk])

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_version.h>
#include <systemd/sd-daemon.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "control/clock.h"
#include "control/af_packet_host.h"
#include "control/config.h"
#include "control/core_dumps.h"
#include "control/ctl/ctl_server.h"
#include "control/ctl/device_commands.h"
#include "control/dns/service.h"
#include "control/ctl/flow_commands.h"
#include "control/wireguard/interface.h"
#include "control/enrollment/device_registry.h"
#include "control/ctl/forward_commands.h"
#include "control/event_loop.h"
#include "control/log.h"
#include "control/metrics/service.h"
#include "control/ctl/status.h"
#include "control/ctl/tailnet_commands.h"
#include "control/tailnet/node.h"
#include "dataplane/dataplane.h"
#include "dataplane/inner_packet.h"
#include "lopower/build_info.h"
#include "lopower_build_config.h"

namespace lopower {
namespace {

constexpr auto control_poll_interval = std::chrono::microseconds(1000);
constexpr auto protocol_timer_interval = std::chrono::milliseconds(100);

struct options {
  std::vector<std::string> eal_args;  // empty: build them from the config
  std::string config_path;
  bool check_only = false;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: lopowerd [EAL options] -- --config FILE [--check-config]\n"
               "       lopowerd --config FILE [--check-config]\n"
               "       lopowerd --version\n"
               "Without EAL options on the command line they come from the config's [dpdk] table.\n");
}

// Returns nullopt after printing what was wrong (or --help/--version).
std::optional<options> parse_command_line(int argc, char** argv, int& exit_code) {
  options o;
  int first_app = 1;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--") == 0) {
      o.eal_args.assign(argv, argv + i);
      first_app = i + 1;
      break;
    }
  for (int i = first_app; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) o.config_path = argv[++i];
    else if (arg.rfind("--config=", 0) == 0) o.config_path = arg.substr(9);
    else if (arg == "--check-config") o.check_only = true;
    else if (arg == "--version") {
      // Release, revision, DPDK and the crypto backend "auto" picks here (no EAL needed).
      std::fputs(version_text(probe_crypto_backend()).c_str(), stdout);
      exit_code = 0;
      return std::nullopt;
    } else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      exit_code = 0;
      return std::nullopt;
    } else {
      std::fprintf(stderr, "lopowerd: unknown option %s (EAL options go before --)\n", arg.c_str());
      usage(stderr);
      exit_code = 2;
      return std::nullopt;
    }
  }
  if (o.config_path.empty()) {
    std::fprintf(stderr, "lopowerd: --config FILE is required\n");
    usage(stderr);
    exit_code = 2;
    return std::nullopt;
  }
  return o;
}

void make_state_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("daemon.state_dir: cannot create " + dir + ": " + ec.message());
  // Keys will live here: nobody but root may look.
  if (chmod(dir.c_str(), 0700) != 0) throw std::runtime_error("daemon.state_dir: cannot chmod " + dir);
}

// Packets the workers handed up: inner packets (replies to lopower's own
// pings) and everything on the tailnet listener go to the tailnet node,
// device handshakes to the device WireGuard server; the rest is counted and
// freed.
void handle_control_packet(dataplane& dp, wireguard_interface& devices, tailnet_node* tailnet, dns_service& dns,
                           rte_mbuf* m, bool under_load) {
  if (m->ol_flags & dp.inner_up_flag()) {  // decrypted, not a frame: a device's DNS query or a ping's reply
    const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
    const auto info = parse_inner(p, m->data_len);
    if (info && is_dns_query(p, *info)) return dns.handle_query_packet(m);
    if (tailnet != nullptr) return tailnet->handle_inner(m);
    return rte_pktmbuf_free(m);
  }
  const std::size_t index = dp.port_index_of(m->port);
  if (index >= dp.ports().size()) return rte_pktmbuf_free(m);
  // Classified once, by the worker that received it: its verdict came up with the frame.
  const classify_result r = stored_classify_result(m, classify_result_field());
  if (r.cls == packet_class::wg_handshake && r.to == listener::devices) return devices.handle_packet(m, r, under_load);
  if (r.to == listener::tailnet && tailnet != nullptr) return tailnet->handle_packet(m, r, under_load);
  dp.control_counters().drops[index].count(drop_reason::control_unhandled);
  rte_pktmbuf_free(m);
}

// Every forwarded DNS query holds a socket of its own (up to 4096), beside
// the control socket's clients and DPDK's files: the soft limit of 1024
// would turn a busy minute into SERVFAILs. Raised as far as the hard limit allows.
void raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t want = std::min<rlim_t>(lim.rlim_max, 65536);
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) LOG_WARNING("cannot raise the open-file limit: %s", std::strerror(errno));
}

enrollment::device_registry open_registry(const config& cfg) {
  enrollment::registry_config rc;
  rc.state_dir = cfg.daemon.state_dir;
  rc.ipv4_prefix = cfg.devices.ipv4_prefix;
  rc.ipv6_prefix = cfg.devices.ipv6_prefix;
  rc.default_keepalive = cfg.devices.keepalive;
  rc.warn = [](const std::string& w) { LOG_WARNING("%s", w.c_str()); };
  auto reg = enrollment::device_registry::open(std::move(rc));
  if (!reg) throw std::runtime_error(reg.message());
  return std::move(*reg);
}

// Every device with its live WireGuard counters, as `device list` answers.
nlohmann::json device_list_json(const enrollment::device_registry& registry, const wireguard_interface& devices) {
  nlohmann::json out = nlohmann::json::array();
  for (const enrollment::device& d : registry.list()) {
    out.push_back(enrollment::device_summary_json(d));
    out.back()["wireguard"] = devices.device_json(d.name);
  }
  return out;
}

metrics::build_labels build_labels_of(const dataplane& dp) {
  return {build_version(), build_revision(), rte_version(),
          dp.workers().empty() ? "none" : std::string(dp.workers()[0]->crypto_backend())};
}

std::vector<unsigned> eal_worker_lcores() {
  std::vector<unsigned> out;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) out.push_back(lcore);
  return out;
}

int serve(const config& cfg, const std::string& config_path) {
  event_loop loop;
  loop.stop_on_signals({SIGINT, SIGTERM}, [](int sig) { LOG_INFO("signal %d: shutting down", sig); });
  make_state_dir(cfg.daemon.state_dir);
  enrollment::device_registry registry = open_registry(cfg);
  const af_packet_host_setup host_setup(cfg);  // before the ports open: the host never answers for lopower
  dataplane dp(dataplane_settings_of(cfg), eal_worker_lcores());
  wireguard_interface devices(dp, cfg, registry);
  devices.retire_peers_with([&dp](wg_peer* gone) { dp.retire_device_peer(gone); });
  std::unique_ptr<tailnet_node> tailnet;
  if (!cfg.tailnet.control_url.empty()) tailnet = std::make_unique<tailnet_node>(loop, dp, cfg);
  dns_service dns(loop, cfg, registry, devices);
  dns.answer_tailnet_through([&tailnet] { return tailnet ? tailnet->wireguard() : nullptr; });
  if (tailnet) tailnet->on_netmap_applied([&dns](const tailnet::netmap& nm) { dns.update(nm.self() ? &nm : nullptr); });
  ctl_server ctl(loop, cfg.daemon.ctl_socket, cfg.daemon.ctl_group);
  const daemon_info info{config_path, std::chrono::steady_clock::now(), rte_get_main_lcore()};
  auto full_status = [&] {
    nlohmann::json j = status_json(info, dp);
    j["core_dumps"] = core_dumps_enabled();
    j["wireguard"] = {{"public_key", registry.server_public_key().to_base64()},
                      {"listen_port", cfg.wireguard.listen_port},
                      {"crypto_backend", dp.workers().empty() ? "none" : std::string(dp.workers()[0]->crypto_backend())},
                      {"devices", registry.list().size()},
                      {"under_load", dp.handshakes_under_load()},
                      {"handshakes", devices.counters().to_json()}};
    j["tailnet"] = tailnet ? tailnet->status_json() : nlohmann::json{{"backend_state", "Disabled"}};
    j["egress"] = tailnet ? tailnet->exit_nodes_json() : nlohmann::json{{"exit_node", nullptr}, {"offered", nlohmann::json::array()}};
    j["egress"]["mode"] = name_of(cfg.egress.mode);
    j["egress"]["exit_nodes"] = cfg.egress.exit_nodes;
    j["dns"] = dns.status_json();
    j["control_socket"] = {{"served", ctl.served()}, {"refused", ctl.refused()}, {"evicted", ctl.evicted()}};
    return j;
  };
  ctl.handle("status", [&](const nlohmann::json&) { return full_status(); });
  register_device_commands(ctl, registry, devices, cfg);
  forward_service forwards(cfg.daemon.state_dir, registry, dp, cfg.forwards);
  register_forward_commands(ctl, forwards);
  devices.on_devices_changed([&forwards] { forwards.publish(); });
  register_tailnet_commands(ctl, tailnet.get());
  register_flow_commands(ctl, dp, devices);
  register_version_command(ctl, dp);
  ctl.handle("ping", [](const nlohmann::json&) { return nlohmann::json{{"pong", true}}; });
  // Workers never make system calls, so the control thread collects from
  // their rings on a short timer rather than being woken.
  devices.guard_on_workers(listener::devices);
  std::uint64_t loaded_until_ms = 0;
  loop.add_timer(control_poll_interval, control_poll_interval, [&] {
    dp.drain_neighbour_notes(monotonic_ms());
    dp.drain_wg_events([&](const wg_event& ev) {
      devices.handle_event(ev);
      if (tailnet) tailnet->handle_event(ev);
    });
    if (tailnet) dp.drain_relay_out([&](const relay_packet& rp) { tailnet->relay(rp); });
    else dp.drain_relay_out([](const relay_packet& rp) { rte_pktmbuf_free(rp.mbuf); });
    dp.drain_staged([&](const staged_packet& sp) {
      if (devices.stage(sp) || (tailnet && tailnet->stage(sp))) return;
      rte_pktmbuf_free(sp.mbuf);  // its peer went away meanwhile
    });
    // Under load once the handshake backlog passes the threshold, and for a
    // second after (as the Linux module), so cookies do not flicker on and off.
    const std::uint64_t now_ms = monotonic_ms();
    if (dp.handshake_backlog() > cfg.wireguard.handshake_load_threshold) loaded_until_ms = now_ms + 1000;
    const bool under_load = now_ms < loaded_until_ms;
    dp.set_handshakes_under_load(under_load);
    dp.drain_control_packets([&](rte_mbuf* m) { handle_control_packet(dp, devices, tailnet.get(), dns, m, under_load); });
    dp.rcu().reclaim();
  });
  metrics::service metrics(loop, cfg.metrics, dp, {full_status, [&] { return device_list_json(registry, devices); }},
                           build_labels_of(dp));
  // Idle flows go once a second: expiry is off the fast path (the flow
  // table's timer wheel: the flows whose deadline came, not the table). The
  // census for the metrics is kept as counts.
  loop.add_timer(std::chrono::seconds(1), std::chrono::seconds(1), [&] {
    flow_census census;
    const unsigned expired = dp.expire_flows(&census);
    metrics.second_passed(census, expired);
  });
  loop.add_timer(protocol_timer_interval, protocol_timer_interval, [&] {
    devices.tick();
    if (tailnet) tailnet->tick();
    dns.tick();
  });
  dp.start();
  if (tailnet) tailnet->start();
  for (const port_runtime& p : dp.ports())
    LOG_INFO("port %s: %s (%s) mac %s, %u queue(s)%s%s", p.config.name.c_str(), p.config.device.c_str(), p.driver.c_str(),
             mac_to_string(p.mac).c_str(), p.queues, p.rss ? ", RSS" : "",
             p.tap_id != no_port ? (", exception path " + p.config.tap_name).c_str() : "");
  LOG_INFO("lopowerd %s running: %zu worker lcore(s), control socket %s", LOPOWER_VERSION, dp.workers().size(),
           ctl.path().c_str());
  // The ports are up and the control socket answers: what systemd's
  // Type=notify waits for (nothing happens when not started by systemd).
  sd_notifyf(0, "READY=1\nSTATUS=%zu port(s), %zu worker(s), control socket %s\nMAINPID=%d", dp.ports().size(),
             dp.workers().size(), ctl.path().c_str(), static_cast<int>(getpid()));
  loop.run();
  sd_notify(0, "STOPPING=1");
  dp.stop();
  LOG_INFO("workers stopped");
  return 0;
}

int run(const options& opt) {
  const config cfg = load_config_file(opt.config_path);
  if (!log::set_level(cfg.daemon.log_level)) throw config_error("daemon.log_level: unknown level");
  if (const auto problems = environment_problems(cfg); !problems.empty()) {
    for (const std::string& p : problems) std::fprintf(stderr, "lopowerd: %s\n", p.c_str());
    return 2;
  }
  if (opt.check_only) {
    std::printf("%s: OK (%zu port(s), lcores %s)\n", opt.config_path.c_str(), cfg.ports.size(), cfg.dpdk.lcores.c_str());
    return 0;
  }
  // Block the signals before EAL starts its threads so that only the
  // control thread's signalfd ever takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_open_file_limit();

  std::vector<std::string> eal = opt.eal_args.empty() ? eal_arguments(cfg, "lopowerd") : opt.eal_args;
  std::vector<char*> argv;
  for (std::string& a : eal) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(eal.size()), argv.data()) < 0) {
    LOG_ERROR("EAL initialisation failed: %s", rte_strerror(rte_errno));
    return 1;
  }
  apply_core_dump_policy(cfg.daemon.core_dumps);  // before the first key is read
  int rc = 1;
  try {
    rc = serve(cfg, opt.config_path);
  } catch (const std::exception& e) {
    LOG_ERROR("%s", e.what());
  }
  rte_eal_cleanup();
  LOG_INFO("stopped");
  return rc;
}

}  // namespace
}  // namespace lopower

int main(int argc, char** argv) {
  int exit_code = 0;
  auto opt = lopower::parse_command_line(argc, argv, exit_code);
  if (!opt) return exit_code;
  try {
    return lopower::run(*opt);
  } catch (const lopower::config_error& e) {
    std::fprintf(stderr, "lopowerd: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lopowerd: %s\n", e.what());
    return 1;
  }
}
