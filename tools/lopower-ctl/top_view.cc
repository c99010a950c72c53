#include "tools/lopower-ctl/top_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "tools/lopower-ctl/device_view.h"

namespace lopower {
namespace {

using json = nlohmann::json;

const json& member(const json& j, const char* key) {
  static const json none;
  if (!j.is_object()) return none;
  auto it = j.find(key);
  return it == j.end() ? none : *it;
}

std::uint64_t count_of(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() > 0) return static_cast<std::uint64_t>(j.get<std::int64_t>());
  return 0;
}
std::uint64_t count_of(const json& j, const char* key) { return count_of(member(j, key)); }

// What a terminal may be shown: printable ASCII (names come from the
// config and the registry, but a frame must never carry an escape).
std::string printable(std::string s) {
  for (char& c : s)
    if (c < 0x20 || c > 0x7e) c = '?';
  return s;
}

std::string text_of(const json& j, const char* key, const char* otherwise = "-") {
  const json& v = member(j, key);
  if (v.is_string()) return printable(v.get<std::string>());
  if (v.is_number()) return v.dump();
  return otherwise;
}

std::string uptime_text(std::uint64_t s) {
  char buf[48];
  if (s >= 86400)
    std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s % 86400 / 3600));
  else
    std::snprintf(buf, sizeof buf, "%02llu:%02llu:%02llu", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60), static_cast<unsigned long long>(s % 60));
  return buf;
}

// The rate of a counter between two samples; nullopt without a previous one.
// A counter that went backwards (the daemon restarted, a device was removed
// and enrolled again) counts as no change rather than as 2^64.
struct rates {
  const json* before;  // the previous sample's object, or nullptr
  const json& after;
  double interval;

  std::optional<double> of(const char* key) const {
    if (before == nullptr || interval <= 0) return std::nullopt;
    const std::uint64_t a = count_of(after, key), b = count_of(*before, key);
    return a > b ? static_cast<double>(a - b) / interval : 0.0;
  }
};

std::string or_dash(const std::optional<double>& v, std::string (*format)(double)) { return v ? format(*v) : "-"; }

std::string byte_rate(double bytes_per_second) {
  return wg_bytes(static_cast<std::uint64_t>(bytes_per_second + 0.5)) + "/s";
}

// The element of `array` whose `key` is `value` (a port or device by name).
const json* find_by(const json& array, const char* key, const json& value) {
  if (!array.is_array() || value.is_null()) return nullptr;
  for (const json& e : array)
    if (e.is_object() && member(e, key) == value) return &e;
  return nullptr;
}

// A section of the frame: a title line and rows, of which only as many as
// fit are shown. The title's first column (`head`, padded to `head_width`)
// also says how many rows were left out.
struct section {
  std::string head;
  std::size_t head_width = 0;
  std::string rest;  // the other column titles, already laid out
  std::vector<std::string> rows;
  std::size_t shown = 0;
  std::size_t min_rows = 0, max_rows = 0;  // what the layout gives it first, and at most

  std::string title() const {
    std::string t = head;
    if (shown < rows.size()) t += " (+" + std::to_string(rows.size() - shown) + ")";
    if (t.size() < head_width) t.append(head_width - t.size(), ' ');
    return t + rest;
  }
};

std::string fixed(const char* format, const std::string& a, const std::string& b, const std::string& c,
                  const std::string& d, const std::string& e) {
  char line[512];
  std::snprintf(line, sizeof line, format, a.c_str(), b.c_str(), c.c_str(), d.c_str(), e.c_str());
  return line;
}

// Column titles: the first column is the section's head.
void set_columns(section& s, const char* format, std::size_t head_width, const char* head, const char* b,
                 const char* c, const char* d, const char* e) {
  s.head = head;
  s.head_width = head_width;
  s.rest = fixed(format, "", b, c, d, e).substr(head_width);
}

constexpr const char* port_format = "%-14.14s%13s%15s%13s%15s";
constexpr const char* device_format = "%-22.22s%13s%13s%14s%14s";
constexpr const char* drop_format = "%-40.40s%12s%16s";

section ports_section(const top_sample* previous, const top_sample& current, double interval) {
  section s;
  set_columns(s, port_format, 14, "PORT", "RX PKT/S", "RX BIT/S", "TX PKT/S", "TX BIT/S");
  const json& ports = member(current.status, "ports");
  if (!ports.is_array()) return s;
  for (const json& p : ports) {
    const json* before = previous ? find_by(member(previous->status, "ports"), "name", member(p, "name")) : nullptr;
    const rates r{before, p, interval};
    auto bits = [](const std::optional<double>& bytes) { return bytes ? bit_rate(*bytes * 8) : std::string("-"); };
    s.rows.push_back(fixed(port_format, text_of(p, "name"), or_dash(r.of("rx_packets"), si_rate),
                           bits(r.of("rx_bytes")), or_dash(r.of("tx_packets"), si_rate), bits(r.of("tx_bytes"))));
  }
  return s;
}

// Workers only, several to a line: "  1 [####......]  42%".
section workers_section(const top_sample* previous, const top_sample& current, unsigned width) {
  section s;
  s.head = "WORKER LCORES  busy share of polls";
  std::vector<std::string> cells;
  const json& lcores = member(current.status, "lcores");
  if (lcores.is_array())
    for (const json& l : lcores) {
      if (text_of(l, "role") != "worker") continue;
      const json* before = previous ? find_by(member(previous->status, "lcores"), "lcore", member(l, "lcore")) : nullptr;
      std::string bar = "..........", share = "-";
      if (before != nullptr) {
        const std::uint64_t polls = count_of(l, "polls"), polls_before = count_of(*before, "polls");
        const std::uint64_t busy = count_of(l, "busy_polls"), busy_before = count_of(*before, "busy_polls");
        if (polls > polls_before) {
          const double ratio = std::min(1.0, static_cast<double>(busy > busy_before ? busy - busy_before : 0) /
                                                 static_cast<double>(polls - polls_before));
          const auto filled = static_cast<std::size_t>(ratio * 10 + 0.5);
          bar = std::string(filled, '#') + std::string(10 - filled, '.');
          char pct[16];
          // Tenths below 10%: a worker at a few hundred packets a second is busy well under 1%.
          std::snprintf(pct, sizeof pct, ratio < 0.0995 ? "%.1f%%" : "%.0f%%", ratio * 100);
          share = pct;
        }
      }
      char cell[64];
      std::snprintf(cell, sizeof cell, "%3.3s [%s] %4s", text_of(l, "lcore").c_str(), bar.c_str(), share.c_str());
      cells.emplace_back(cell);
    }
  constexpr std::size_t cell_width = 21, gap = 3;
  const std::size_t per_line = std::max<std::size_t>(1, (width + gap) / (cell_width + gap));
  for (std::size_t i = 0; i < cells.size(); i += per_line) {
    std::string row;
    for (std::size_t k = i; k < std::min(cells.size(), i + per_line); ++k) row += (k > i ? "   " : "") + cells[k];
    s.rows.push_back(row);
  }
  if (cells.empty()) s.rows.push_back("none");
  return s;
}

section devices_section(const top_sample* previous, const top_sample& current, double interval) {
  struct row {
    std::string name;
    std::optional<double> rx, tx;
    std::uint64_t received, sent;
  };
  std::vector<row> rows;
  if (current.devices.is_array())
    for (const json& d : current.devices) {
      const json& wg = member(d, "wireguard");
      const json* before = previous ? find_by(previous->devices, "name", member(d, "name")) : nullptr;
      const rates r{before ? &member(*before, "wireguard") : nullptr, wg, interval};
      rows.push_back({text_of(d, "name"), r.of("rx_bytes"), r.of("tx_bytes"), count_of(wg, "rx_bytes"),
                      count_of(wg, "tx_bytes")});
    }
  // Busiest first; before there are rates, the most traffic so far.
  std::stable_sort(rows.begin(), rows.end(), [](const row& a, const row& b) {
    const double ra = a.rx.value_or(0) + a.tx.value_or(0), rb = b.rx.value_or(0) + b.tx.value_or(0);
    if (ra != rb) return ra > rb;
    return a.received + a.sent > b.received + b.sent;
  });
  section s;
  set_columns(s, device_format, 22, "DEVICE", "RX/S", "TX/S", "RECEIVED", "SENT");
  for (const row& r : rows)
    s.rows.push_back(fixed(device_format, r.name, or_dash(r.rx, byte_rate), or_dash(r.tx, byte_rate),
                           wg_bytes(r.received), wg_bytes(r.sent)));
  if (rows.empty()) s.rows.push_back("no devices enrolled");
  return s;
}

// Every port's drops summed by reason.
std::map<std::string, std::uint64_t> drops_by_reason(const json& status) {
  std::map<std::string, std::uint64_t> out;
  const json& ports = member(status, "ports");
  if (!ports.is_array()) return out;
  for (const json& p : ports) {
    const json& drops = member(p, "drops");
    if (!drops.is_object()) continue;
    for (auto it = drops.begin(); it != drops.end(); ++it) out[it.key()] += count_of(*it);
  }
  return out;
}

section drops_section(const top_sample* previous, const top_sample& current, double interval) {
  section s;
  if (previous == nullptr || interval <= 0) {
    s.head = "DROPS rising: from the next frame";
    return s;
  }
  const auto before = drops_by_reason(previous->status);
  std::vector<std::pair<std::string, std::pair<double, std::uint64_t>>> rising;
  for (const auto& [reason, total] : drops_by_reason(current.status)) {
    auto b = before.find(reason);
    const std::uint64_t was = b == before.end() ? 0 : b->second;
    if (total > was) rising.push_back({reason, {static_cast<double>(total - was) / interval, total}});
  }
  std::stable_sort(rising.begin(), rising.end(),
                   [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  if (rising.empty()) {
    s.head = "DROPS rising: none";
    return s;
  }
  set_columns(s, drop_format, 40, "DROPS rising", "PER S", "TOTAL", "", "");
  for (const auto& [reason, v] : rising)
    s.rows.push_back(fixed(drop_format, printable(reason), si_rate(v.first), std::to_string(v.second), "", ""));
  return s;
}

// Gives each section its minimum, then what is left, in the order given
// (each up to its maximum).
void lay_out(std::vector<section*> by_priority, std::size_t room) {
  for (section* s : by_priority) {
    s->shown = std::min({s->min_rows, s->rows.size(), room});
    room -= s->shown;
  }
  for (section* s : by_priority) {
    const std::size_t cap = std::min(s->max_rows, s->rows.size());
    if (s->shown >= cap) continue;
    const std::size_t more = std::min(cap - s->shown, room);
    s->shown += more;
    room -= more;
  }
}

}  // namespace

std::string si_rate(double v) {
  static constexpr const char* prefixes[] = {"", "k", "M", "G", "T"};
  if (!(v > 0)) return "0";
  if (!std::isfinite(v)) return "-";
  unsigned p = 0;
  while (v >= 999.5 && p + 1 < std::size(prefixes)) {
    v /= 1000;
    ++p;
  }
  char buf[32];
  if (p == 0 && v < 10) std::snprintf(buf, sizeof buf, "%.1f", v);
  else if (p == 0) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, v < 9.995 ? "%.2f%s" : v < 99.95 ? "%.1f%s" : "%.0f%s", v, prefixes[p]);
  return buf;
}

std::string bit_rate(double bits_per_second) {
  std::string s = si_rate(bits_per_second);
  // "1.23M" -> "1.23 Mbit/s"; "950" -> "950 bit/s".
  const char last = s.back();
  if (last < '0' || last > '9') return s.substr(0, s.size() - 1) + " " + last + "bit/s";
  return s + " bit/s";
}

std::vector<std::string> render_top(const top_sample* previous, const top_sample& current, double interval,
                                    unsigned width, unsigned height) {
  const json& st = current.status;
  const bool rated = previous != nullptr && interval > 0;
  std::vector<std::string> lines;
  {
    std::string l = "lopowerd " + text_of(st, "version");
    if (member(st, "revision").is_string()) l += " (" + text_of(st, "revision") + ")";
    l += "  up " + uptime_text(count_of(st, "uptime_seconds"));
    char every[48];
    std::snprintf(every, sizeof every, "  rates over %.1f s", interval);
    l += rated ? every : "  rates from the next frame";
    lines.push_back(l);
    const json& tailnet = member(st, "tailnet");
    const json& peers = member(tailnet, "peers");
    std::size_t online = 0;
    if (peers.is_array())
      for (const json& p : peers) online += member(p, "online") == json(true);
    const json& pool = member(st, "packet_pool");
    const std::string enrolled = current.devices.is_array() ? std::to_string(current.devices.size()) : "-";
    lines.push_back("tailnet " + text_of(tailnet, "backend_state") + "  devices " +
                    text_of(member(st, "wireguard"), "devices", enrolled.c_str()) + "  peers " + std::to_string(peers.is_array() ? peers.size() : 0) + " (" + std::to_string(online) +
                    " online)  pool " + std::to_string(count_of(pool, "in_use")) + " of " +
                    std::to_string(count_of(pool, "size")));
  }
  section ports = ports_section(previous, current, interval);
  section workers = workers_section(previous, current, width);
  section devices = devices_section(previous, current, interval);
  section drops = drops_section(previous, current, interval);
  ports.min_rows = 2, ports.max_rows = ports.rows.size();
  workers.min_rows = 1, workers.max_rows = workers.rows.size();
  devices.min_rows = 5, devices.max_rows = 8;
  drops.min_rows = 3, drops.max_rows = drops.rows.size();
  const std::size_t chrome = lines.size() + 4 * 2;  // a blank line and a title per section
  lay_out({&devices, &ports, &workers, &drops}, height > chrome ? height - chrome : 0);
  for (section* s : {&ports, &workers, &devices, &drops}) {
    lines.emplace_back();
    lines.push_back(s->title());
    for (std::size_t i = 0; i < s->shown; ++i) lines.push_back(s->rows[i]);
  }
  if (lines.size() > height) lines.resize(height);
  for (std::string& l : lines) {
    while (!l.empty() && l.back() == ' ') l.pop_back();
    if (l.size() > width) l.resize(width);
  }
  return lines;
}

}  // namespace lopower
