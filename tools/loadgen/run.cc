#include "tools/loadgen/run.h"

#include <rte_cycles.h>

#include <algorithm>
#include <cstdio>

#include "tools/loadgen/pcap_file.h"

namespace lopower::loadgen {
namespace {

std::uint64_t seconds_to_tsc(double s, std::uint64_t hz) { return static_cast<std::uint64_t>(s * static_cast<double>(hz)); }

}  // namespace

run::run(const options& opts, const link_port& port, fleet& devices, crypto::aead_backend& aead,
         const std::atomic<bool>& stop, tailnet_path* tailnet)
    : opts_(opts), port_(port), fleet_(devices), source_(opts, port, devices, aead), receiver_(opts, port, devices, aead),
      stop_(stop), tailnet_(tailnet), report_(!opts.quiet), hz_(rte_get_tsc_hz()) {
  if (tailnet != nullptr && !tailnet->own_port()) receiver_.set_tailnet(tailnet);
}

unsigned run::poll(std::uint64_t now_tsc) {
  // Receiving comes first: with --tailnet every packet sent comes back
  // twice (at the node, then the echo's reply at the device), and one
  // burst in per burst out let the RX ring overflow. A bound, so that the
  // timers below still run under any load.
  constexpr unsigned max_bursts_per_turn = 4;
  unsigned received = 0;
  if (tailnet_ != nullptr) {
    tailnet_->send_backlog();
    if (tailnet_->own_port()) received += tailnet_->poll_port(now_tsc, report_.now());
  }
  for (unsigned i = 0; i < max_bursts_per_turn; ++i) {
    const unsigned n = receiver_.poll(now_tsc, report_.now());
    received += n;
    if (n < burst_size) break;
  }
  // The timers are seconds long: a millisecond's resolution is plenty, and
  // walking every device on each turn showed in the profile (3 %).
  if (now_tsc - last_tick_tsc_ >= hz_ / 1000) {
    fleet_.tick(now_tsc);
    if (tailnet_ != nullptr) tailnet_->tick(now_tsc);
    last_tick_tsc_ = now_tsc;
  }
  return received;
}

void run::rest(bool worked) {
  // Spinning on an empty queue starved lopowerd's control thread when both
  // shared a core (handshakes answered only once the loadgen exited): an
  // idle turn sleeps, a microsecond longer each time up to max_rest_us.
  constexpr unsigned max_rest_us = 100;
  if (worked || opts_.busy_poll) {
    rest_us_ = 0;
    return;
  }
  rest_us_ = std::min(rest_us_ + 1, max_rest_us);
  rte_delay_us_sleep(rest_us_);
}

bool run::find_lopower() {
  const std::uint64_t start = rte_get_tsc_cycles();
  std::uint64_t asked = 0;
  rte_ether_addr mac;
  counters ignored;
  while (!receiver_.lopower_mac(mac)) {
    const std::uint64_t now = rte_get_tsc_cycles();
    if (stopped() || now - start > seconds_to_tsc(opts_.handshake_timeout_s, hz_)) {
      std::fputs("lopower-loadgen: lopower's endpoint does not answer ARP\n", stderr);
      return false;
    }
    if (asked == 0 || now - asked > hz_) {
      if (rte_mbuf* m = arp_request(port_, opts_.local_ip_be, fleet_.lopower().endpoint_ip_be)) send_burst(port_, &m, 1);
      asked = now;
    }
    rest(receiver_.poll(now, ignored) != 0);
  }
  fleet_.set_lopower_mac(mac);
  if (tailnet_ != nullptr && !tailnet_->own_port()) tailnet_->set_lopower_mac(mac);  // one lopower on the link
  return true;
}

bool run::establish_sessions() {
  const std::uint64_t start = rte_get_tsc_cycles();
  while (!all_established()) {
    const std::uint64_t now = rte_get_tsc_cycles();
    if (stopped() || now - start > seconds_to_tsc(opts_.handshake_timeout_s, hz_)) {
      std::fprintf(stderr, "lopower-loadgen: %u of %zu devices have a session after %.0f s%s\n", fleet_.established(),
                   fleet_.devices().size(), opts_.handshake_timeout_s,
                   tailnet_ != nullptr && !tailnet_->established() ? "; the tailnet node has none" : "");
      return false;
    }
    rest(poll(now) != 0);
  }
  handshake_s_ = static_cast<double>(rte_get_tsc_cycles() - start) / static_cast<double>(hz_);
  if (!opts_.quiet)
    std::fprintf(stderr, "lopower-loadgen: %zu devices have sessions (%.3f s)\n", fleet_.devices().size(), handshake_s_);
  return true;
}

bool run::all_established() const noexcept {
  return fleet_.established() == fleet_.devices().size() && (tailnet_ == nullptr || tailnet_->established());
}

unsigned run::budget(std::uint64_t now_tsc, std::uint64_t start_tsc, std::uint64_t built) const noexcept {
  if (opts_.rate_pps == 0) return burst_size;
  // In double: TSC ticks times packets per second overflows 64 bits within hours.
  const auto allowed = static_cast<std::uint64_t>(static_cast<double>(now_tsc - start_tsc) *
                                                  static_cast<double>(opts_.rate_pps) / static_cast<double>(hz_));
  return allowed > built ? static_cast<unsigned>(std::min<std::uint64_t>(allowed - built, burst_size)) : 0;
}

void run::maybe_close_second(std::uint64_t now_tsc, std::uint64_t start_tsc, std::uint64_t& second_start) {
  if (now_tsc - second_start < hz_) return;
  report_.close_second(static_cast<double>(now_tsc - start_tsc) / static_cast<double>(hz_),
                       static_cast<double>(now_tsc - second_start) / static_cast<double>(hz_));
  second_start = now_tsc;
}

void run::send_traffic() {
  const std::uint64_t start = rte_get_tsc_cycles();
  const std::uint64_t end = start + seconds_to_tsc(opts_.duration_s, hz_);
  std::uint64_t second_start = start, built = 0, now = start;
  rte_mbuf* frames[burst_size];
  std::uint16_t sizes[burst_size];
  while (!stopped() && (now = rte_get_tsc_cycles()) < end) {
    unsigned sent = 0;
    const bool echoes_waiting = tailnet_ != nullptr && tailnet_->backlogged();
    if (const unsigned want = echoes_waiting ? 0 : budget(now, start, built)) {
      const unsigned n = source_.build(frames, sizes, want, now);
      built += n;
      sent = send_burst(port_, frames, n);
      counters& c = report_.now();
      c.offered_packets += sent;
      for (unsigned i = 0; i < sent; ++i) c.offered_bytes += sizes[i];
    }
    const unsigned received = poll(now);
    maybe_close_second(now, start, second_start);
    rest(sent + received != 0);
  }
  traffic_s_ = static_cast<double>(now - start) / static_cast<double>(hz_);
  // The replies still on their way: until all came back or --drain passed.
  const std::uint64_t drain_end = now + seconds_to_tsc(opts_.drain_s, hz_);
  while (!stopped() && (now = rte_get_tsc_cycles()) < drain_end &&
         report_.total().delivered_packets + report_.now().delivered_packets <
             report_.total().offered_packets + report_.now().offered_packets) {
    const unsigned received = poll(now);
    maybe_close_second(now, start, second_start);
    rest(received != 0);
  }
  report_.close_second(static_cast<double>(now - start) / static_cast<double>(hz_),
                       static_cast<double>(now - second_start) / static_cast<double>(hz_));
}

bool run::write_pcap() {
  fleet_.set_renewal(false);  // the pcap's keypair must be the one lopower holds while it is replayed
  try {
    pcap_file out(opts_.pcap_file);
    rte_mbuf* frames[burst_size];
    std::uint16_t sizes[burst_size];
    for (unsigned written = 0; written < opts_.pcap_packets;) {
      const unsigned n = source_.build(frames, sizes, std::min(burst_size, opts_.pcap_packets - written), rte_get_tsc_cycles());
      if (n == 0) {
        std::fputs("lopower-loadgen: out of mbufs while writing the pcap\n", stderr);
        return false;
      }
      for (unsigned i = 0; i < n; ++i) out.write(frames[i]);
      rte_pktmbuf_free_bulk(frames, n);
      written += n;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lopower-loadgen: %s\n", e.what());
    return false;
  }
  std::fprintf(stderr, "lopower-loadgen: wrote %u frames to %s; keeping the session alive for %.0f s\n", opts_.pcap_packets,
               opts_.pcap_file.c_str(), opts_.duration_s);
  return true;
}

void run::keep_session() {
  const std::uint64_t start = rte_get_tsc_cycles();
  const std::uint64_t end = start + seconds_to_tsc(opts_.duration_s, hz_);
  std::uint64_t second_start = start, now = start;
  while (!stopped() && (now = rte_get_tsc_cycles()) < end) {
    const unsigned received = poll(now);
    maybe_close_second(now, start, second_start);
    rest(received != 0);
  }
  traffic_s_ = static_cast<double>(now - start) / static_cast<double>(hz_);
  report_.close_second(traffic_s_, static_cast<double>(now - second_start) / static_cast<double>(hz_));
}

nlohmann::json run::report_json(const nlohmann::json& setup) const {
  nlohmann::json devices = nlohmann::json::array();
  for (const device& d : fleet_.devices())
    devices.push_back({{"name", d.name}, {"established", d.current != nullptr}, {"handshakes", d.handshakes},
                       {"initiations", d.initiations}, {"after_silence", d.silences}});
  nlohmann::json out = report_.final_json(traffic_s_, setup, devices, receiver_.drops());
  out["handshake_s"] = handshake_s_;
  out["refused_handshake_messages"] = fleet_.refused_handshake_messages();
  if (tailnet_ != nullptr) out["tailnet"] = tailnet_json();
  return out;
}

nlohmann::json run::tailnet_json() const {
  nlohmann::json out = tailnet_->to_json();
  const tailnet_path_counters& s = tailnet_->stats();
  const double seconds = traffic_s_ > 0 ? traffic_s_ : 1;
  const auto direction = [seconds](std::uint64_t offered, std::uint64_t delivered) {
    return nlohmann::json{{"offered", offered},
                          {"delivered", delivered},
                          {"lost", offered > delivered ? offered - delivered : 0},
                          {"delivered_pps", static_cast<double>(delivered) / seconds}};
  };
  // Called after the traffic: its last second is closed, the totals are complete.
  const std::uint64_t offered = report_.total().offered_packets;
  out["device_to_tailnet"] = direction(offered, s.opened);
  const std::uint64_t back = opts_.tailnet.echo ? report_.total().delivered_packets : 0;
  out["tailnet_to_device"] = direction(s.echoed, back);
  // Every packet lopower moved, either way, was opened once and sealed once there.
  out["lopower_moved_pps"] = static_cast<double>(s.opened + back) / seconds;
  return out;
}

}  // namespace lopower::loadgen
