#pragma once
// One loadgen run on the main lcore, in phases: find lopower on the link
// (ARP), bring every device's session up, send the traffic (or write it to
// a pcap and keep its session alive), let the replies drain, report.

#include <atomic>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "tools/loadgen/fleet.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/traffic.h"

namespace lopower::loadgen {

class run {
 public:
  run(const options& opts, const link_port& port, fleet& devices, crypto::aead_backend& aead,
      const std::atomic<bool>& stop, tailnet_path* tailnet = nullptr);

  // Each false after a message on stderr.
  bool find_lopower();
  bool establish_sessions();
  void send_traffic();
  bool write_pcap();
  // The pcap's session, kept alive (no renewal) until --duration ends.
  void keep_session();

  nlohmann::json report_json(const nlohmann::json& setup) const;
  void print_summary() const { report_.print_summary(traffic_s_); }

 private:
  // One turn of the loop: a received burst and the handshake timers; how many frames arrived.
  unsigned poll(std::uint64_t now_tsc);
  // After a turn: sleeps a little when it did nothing (unless --busy-poll).
  void rest(bool worked);
  bool stopped() const noexcept { return stop_.load(std::memory_order_relaxed); }
  // How many packets the rate allows now, at most one burst.
  unsigned budget(std::uint64_t now_tsc, std::uint64_t start_tsc, std::uint64_t built) const noexcept;
  // Closes the report's second when one has passed since `second_start`.
  void maybe_close_second(std::uint64_t now_tsc, std::uint64_t start_tsc, std::uint64_t& second_start);
  bool all_established() const noexcept;
  // --tailnet: the node's side and each direction's offered and delivered.
  nlohmann::json tailnet_json() const;

  const options& opts_;
  const link_port& port_;
  fleet& fleet_;
  traffic_source source_;
  receiver receiver_;
  const std::atomic<bool>& stop_;
  tailnet_path* tailnet_;
  run_report report_;
  std::uint64_t hz_;
  std::uint64_t last_tick_tsc_ = 0;
  unsigned rest_us_ = 0;
  double handshake_s_ = 0;
  double traffic_s_ = 0;
};

}  // namespace lopower::loadgen
