#pragma once
// lopower's counters as DPDK telemetry commands (/lopower/ports, /drops,
// /devices, /tailnet, /flows, /dns), so dpdk-telemetry.py shows them beside
// the ports' xstats. DPDK answers telemetry on a thread of its own, which must
// not read the control thread's state: it reads a snapshot the control thread
// publishes, refreshed every second while someone is asking (and on demand
// when a request finds it stale).

#include <nlohmann/json.hpp>

namespace lopower::metrics {

// Registers the commands (once per process).
void register_telemetry_commands();

// Control thread: whether a telemetry client wants a fresh snapshot.
bool telemetry_wanted();
// Control thread: publishes the data the commands answer with: an object of
// command name ("ports", ...) -> object (nested once at most, as DPDK's
// telemetry allows).
void publish_telemetry(nlohmann::json snapshot);

}  // namespace lopower::metrics
