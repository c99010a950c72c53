#pragma once
// `lopower-ctl top`: one frame of the live view, as a pure function of two
// samples of the daemon (its `status` and `device.list` replies) taken
// `interval_seconds` apart. Rates are the differences over the interval;
// without a previous sample (the first frame) they show as "-".

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lopower {

struct top_sample {
  nlohmann::json status;   // `status`
  nlohmann::json devices;  // `device.list` (an array)
};

// At most `height` lines, none longer than `width` characters (plain ASCII,
// no terminal escapes): header, ports (packets/s and bit/s each way), worker
// lcores (busy share of their polls), the busiest devices by bytes/s, and the
// drop reasons whose counters rose. Sections are cut to fit, the busiest
// devices kept longest. Counters that went backwards (a restart) count as 0.
std::vector<std::string> render_top(const top_sample* previous, const top_sample& current, double interval_seconds,
                                    unsigned width, unsigned height);

// Rates as top shows them: "950", "1.23k", "45.6M" (per second), and bit/s.
std::string si_rate(double per_second);
std::string bit_rate(double bits_per_second);

}  // namespace lopower
