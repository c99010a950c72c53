#include "control/config.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cerrno>
#include <cstdio>
#include <charconv>
#include <cstring>
#include <limits>
#include <span>
#include <string_view>
#include <utility>

#include <toml++/toml.h>

#include "lopower/dns_name.h"

namespace lopower {

unsigned config::main_lcore() const {
  if (dpdk.main_lcore) return *dpdk.main_lcore;
  // lcore_list is sorted; an unparsed default config has none, and EAL's own default is 0.
  return dpdk.lcore_list.empty() ? 0 : dpdk.lcore_list.front();
}

const port_config* config::uplink_port() const {
  const auto it = std::find_if(ports.begin(), ports.end(), [](const port_config& p) { return p.role == port_role::uplink; });
  return it == ports.end() ? nullptr : &*it;
}

std::vector<unsigned> config::worker_lcores() const {
  std::vector<unsigned> out;
  const unsigned main = main_lcore();
  for (unsigned id : dpdk.lcore_list) {
    if (id != main) out.push_back(id);
  }
  return out;
}

std::vector<std::string> eal_arguments(const config& cfg, const std::string& program) {
  const dpdk_config& d = cfg.dpdk;
  std::vector<std::string> args{program, "-l", d.lcores};
  if (d.main_lcore) args.insert(args.end(), {"--main-lcore", std::to_string(*d.main_lcore)});
  if (d.no_huge) args.emplace_back("--no-huge");
  // EAL 22.11 refuses --in-memory together with --no-huge; --no-shconf gives
  // the same isolation there (no shared runtime files, several instances).
  if (d.in_memory) args.emplace_back(d.no_huge ? "--no-shconf" : "--in-memory");
  if (d.no_pci) args.emplace_back("--no-pci");
  if (!d.file_prefix.empty()) args.insert(args.end(), {"--file-prefix", d.file_prefix});
  // Without hugepages EAL falls back to a tiny default that cannot hold the mbuf pools.
  const std::uint32_t memory = d.memory_mb == 0 && d.no_huge ? 512 : d.memory_mb;
  if (memory != 0) args.insert(args.end(), {"-m", std::to_string(memory)});
  args.insert(args.end(), d.extra_args.begin(), d.extra_args.end());
  return args;
}

dataplane_settings dataplane_settings_of(const config& cfg) {
  dataplane_settings s;
  s.config_path = cfg.path;
  s.dataplane = cfg.dataplane;
  s.ports = cfg.ports;
  s.wireguard_port = cfg.wireguard.listen_port;
  s.tailnet_port = cfg.tailnet.listen_port;
  s.crypto_backend = cfg.wireguard.crypto_backend;
  s.reject_after_seconds = cfg.wireguard.reject_after_seconds;
  s.device_ipv4_prefix = cfg.devices.ipv4_prefix;
  s.device_ipv6_prefix = cfg.devices.ipv6_prefix;
  s.device_mtu = cfg.devices.mtu;
  s.device_to_device = cfg.devices.device_to_device;
  s.inbound_routes = cfg.inbound.advertise_routes;
  s.inbound_snat = cfg.inbound.snat;
  s.dns_device_query_rate = cfg.dns.device_query_rate;
  s.handshake_load_threshold = cfg.wireguard.handshake_load_threshold;
  return s;
}

namespace {

constexpr unsigned max_lcores = 128;
constexpr std::size_t max_ifname = 15;     // IFNAMSIZ - 1
constexpr std::size_t max_sun_path = 107;  // sizeof(sockaddr_un::sun_path) - 1

// Strings go into messages quoted and with control characters escaped, so a
// stray newline in the file cannot forge a second line of log output.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\' || c == '"') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string quote(std::string_view text) { return "\"" + printable(text) + "\""; }

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

int line_of(const toml::node& node, int fallback) {
  const auto line = node.source().begin.line;
  if (line == 0 || line > static_cast<unsigned>(std::numeric_limits<int>::max())) return fallback;
  return static_cast<int>(line);
}

std::string range_text(std::int64_t lo, std::int64_t hi) { return std::to_string(lo) + ".." + std::to_string(hi); }

// Not std::isalnum: that one follows the locale.
bool is_ascii_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool is_power_of_two(std::int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

std::string join_quoted(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view w : words) out += (out.empty() ? "" : ", ") + quote(w);
  return out;
}

// One TOML table of the file plus what its messages need: the file name, the
// key path prefix ("dataplane", "port[2]") and the line of the table itself.
class section {
 public:
  section(const std::string& file, const toml::table& table, std::string prefix, int line)
      : file_(file), table_(table), prefix_(std::move(prefix)), line_(line) {}

  int line() const { return line_; }
  const std::string& file() const { return file_; }
  std::string key_path(std::string_view key) const { return prefix_ + "." + printable(key); }
  const toml::node* find(std::string_view key) const { return table_.get(key); }
  int line_of(const toml::node* node) const { return node ? lopower::line_of(*node, line_) : line_; }

  [[noreturn]] void refuse(const toml::node* node, std::string_view key, const std::string& problem) const {
    throw config_error(file_ + ":" + std::to_string(line_of(node)) + ": " + key_path(key) + ": " + problem);
  }

  // Refuses the earliest key (by line) that is not in `known`: a misspelt key
  // must not silently leave the default in place.
  void allow_only(std::span<const std::string_view> known) const {
    const toml::node* worst = nullptr;
    std::string_view worst_key;
    for (auto&& [key, node] : table_) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
      if (!worst || line_of(&node) < line_of(worst)) {
        worst = &node;
        worst_key = key.str();
      }
    }
    if (worst) refuse(worst, worst_key, "unknown key (expected one of " + join_quoted(known) + ")");
  }

  template <std::int64_t Lo, std::int64_t Hi, class T>
  bool read_int(std::string_view key, T& out) const {
    static_assert(std::in_range<T>(Lo) && std::in_range<T>(Hi), "range does not fit the field");
    const toml::node* node = find(key);
    if (!node) return false;
    out = static_cast<T>(int_in_range(*node, key, Lo, Hi, false));
    return true;
  }

  template <std::int64_t Lo, std::int64_t Hi, class T>
  bool read_power_of_two(std::string_view key, T& out) const {
    static_assert(std::in_range<T>(Lo) && std::in_range<T>(Hi), "range does not fit the field");
    const toml::node* node = find(key);
    if (!node) return false;
    out = static_cast<T>(int_in_range(*node, key, Lo, Hi, true));
    return true;
  }

  bool read_bool(std::string_view key, bool& out) const {
    const toml::node* node = find(key);
    if (!node) return false;
    const auto* value = node->as_boolean();
    if (!value) refuse(node, key, std::string("expected a boolean (true or false), got ") + type_name(*node));
    out = value->get();
    return true;
  }

  bool read_string(std::string_view key, std::string& out) const {
    const toml::node* node = find(key);
    if (!node) return false;
    out = string_value(*node, key, "");
    return true;
  }

  // Returns the index of the chosen word, or nullopt when the key is absent.
  std::optional<std::size_t> read_choice(std::string_view key, std::span<const std::string_view> words) const {
    const toml::node* node = find(key);
    if (!node) return std::nullopt;
    const std::string text = string_value(*node, key, "");
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (words[i] == text) return i;
    }
    refuse(node, key, quote(text) + " is not a valid value (expected one of " + join_quoted(words) + ")");
  }

  // Array of strings (each element checked like a string value).
  bool read_string_array(std::string_view key, std::vector<std::string>& out) const {
    const toml::node* node = find(key);
    if (!node) return false;
    const auto* array = node->as_array();
    if (!array) refuse(node, key, std::string("expected an array of strings, got ") + type_name(*node));
    out.clear();
    for (const toml::node& element : *array) {
      out.push_back(string_value(element, key, " in the array"));
    }
    return true;
  }

  std::string string_value(const toml::node& node, std::string_view key, const char* where) const {
    const auto* value = node.as_string();
    if (!value) refuse(&node, key, std::string("expected a string") + where + ", got " + type_name(node));
    const std::string& text = value->get();
    const bool control = std::any_of(text.begin(), text.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u < 0x20 || u == 0x7f;
    });
    if (control) refuse(&node, key, quote(text) + " contains a control character");
    return text;
  }

 private:
  std::int64_t int_in_range(const toml::node& node, std::string_view key, std::int64_t lo, std::int64_t hi,
                            bool power_of_two) const {
    const std::string expected = "an integer " + range_text(lo, hi) + (power_of_two ? ", a power of two" : "");
    const auto* value = node.as_integer();
    if (!value) refuse(&node, key, "expected " + expected + ", got " + type_name(node));
    const std::int64_t x = value->get();
    if (x < lo || x > hi) refuse(&node, key, std::to_string(x) + " is out of range (expected " + expected + ")");
    if (power_of_two && !is_power_of_two(x)) {
      refuse(&node, key, std::to_string(x) + " is not a power of two (expected " + expected + ")");
    }
    return x;
  }

  const std::string& file_;
  const toml::table& table_;
  std::string prefix_;
  int line_;
};

[[noreturn]] void refuse_at(const std::string& file, int line, const std::string& key, const std::string& problem) {
  throw config_error(file + ":" + std::to_string(line) + ": " + key + ": " + problem);
}

// ---------------------------------------------------------------- [daemon]

void read_daemon(const section& s, daemon_config& d) {
  static constexpr std::array<std::string_view, 5> keys{"state_dir", "ctl_socket", "ctl_group", "log_level",
                                                        "core_dumps"};
  s.allow_only(keys);
  if (s.read_string("state_dir", d.state_dir) && d.state_dir.empty()) {
    s.refuse(s.find("state_dir"), "state_dir", "must not be empty (expected a directory path)");
  }
  if (!d.state_dir.empty() && d.state_dir.front() != '/')
    s.refuse(s.find("state_dir"), "state_dir",
             quote(d.state_dir) + " is not an absolute path (a daemon's working directory is nobody's guess)");
  if (s.read_string("ctl_socket", d.ctl_socket)) {
    if (d.ctl_socket.empty() || d.ctl_socket.front() != '/') {
      s.refuse(s.find("ctl_socket"), "ctl_socket", quote(d.ctl_socket) + " is not an absolute path (expected \"/...\")");
    }
    // bind() cannot take a longer path: the socket address holds 108 bytes.
    if (d.ctl_socket.size() > max_sun_path) {
      s.refuse(s.find("ctl_socket"), "ctl_socket", "path is " + std::to_string(d.ctl_socket.size()) +
                                                       " bytes long (expected at most " + std::to_string(max_sun_path) + ")");
    }
  }
  s.read_string("ctl_group", d.ctl_group);
  static constexpr std::array<std::string_view, 4> levels{"error", "warning", "info", "debug"};
  if (auto i = s.read_choice("log_level", levels)) d.log_level = levels[*i];
  s.read_bool("core_dumps", d.core_dumps);
}

// ---------------------------------------------------------------- [dpdk]

// Parses one lcore id: decimal digits only, below max_lcores.
std::optional<unsigned> parse_lcore_id(std::string_view text, std::string& problem) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  unsigned id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id >= max_lcores) {
    problem = "lcore " + std::string(text) + " is out of range (expected 0.." + std::to_string(max_lcores - 1) + ")";
    return std::nullopt;
  }
  return id;
}

// Adds "N" or "N-M" to `set`; returns a problem text ("" on success), `syntax` for malformed items.
std::string add_lcore_item(std::string_view item, std::bitset<max_lcores>& set, const std::string& syntax) {
  const auto dash = item.find('-');
  std::string problem;
  const auto lo = parse_lcore_id(item.substr(0, dash), problem);
  const auto hi = dash == std::string_view::npos ? lo : parse_lcore_id(item.substr(dash + 1), problem);
  if (!lo || !hi) return problem.empty() ? syntax : problem;
  if (*lo > *hi) return "range " + std::string(item) + " is reversed (expected low-high, e.g. \"0-1\")";
  for (unsigned id = *lo; id <= *hi; ++id) set.set(id);
  return "";
}

// EAL -l syntax without the '@' / '()' cpu mapping: "0-1", "0,2,4-5".
// A bitset (not a vector) keeps "0-127,0-127,..." from growing without bound.
std::string parse_lcore_list(std::string_view text, std::vector<unsigned>& out) {
  const std::string syntax = quote(text) + " is not a valid lcore list (expected ids 0.." +
                             std::to_string(max_lcores - 1) + " as \"0-1\" or \"0,2,4-5\")";
  std::bitset<max_lcores> set;
  std::size_t pos = 0;
  for (bool more = true; more;) {
    const auto comma = text.find(',', pos);
    more = comma != std::string_view::npos;
    const auto item = text.substr(pos, more ? comma - pos : std::string_view::npos);
    const std::string problem = add_lcore_item(item, set, syntax);
    if (!problem.empty()) return problem;
    pos = comma + 1;
  }
  out.clear();
  for (unsigned id = 0; id < max_lcores; ++id) {
    if (set.test(id)) out.push_back(id);
  }
  return "";
}

void read_lcores(const section& s, dpdk_config& d) {
  const toml::node* node = s.find("lcores");
  s.read_string("lcores", d.lcores);
  const std::string problem = parse_lcore_list(d.lcores, d.lcore_list);
  if (!problem.empty()) s.refuse(node, "lcores", problem);
  if (d.lcore_list.size() < 2) {
    s.refuse(node, "lcores", quote(d.lcores) + " has " + std::to_string(d.lcore_list.size()) +
                                 " lcore (expected at least 2: the main lcore and at least one worker)");
  }
}

// Options that would contradict the lcore split computed from [dpdk], or end EAL's argv early.
bool conflicting_eal_arg(std::string_view arg) {
  static constexpr std::array<std::string_view, 4> prefixes{"--lcores", "--main-lcore", "--master-lcore", "-c"};
  if (arg == "--" || (arg.starts_with("-l") && !arg.starts_with("--"))) return true;
  return std::any_of(prefixes.begin(), prefixes.end(), [&](std::string_view p) { return arg.starts_with(p); });
}

void read_extra_args(const section& s, dpdk_config& d) {
  if (!s.read_string_array("extra_args", d.extra_args)) return;
  for (const std::string& arg : d.extra_args) {
    if (conflicting_eal_arg(arg)) {
      s.refuse(s.find("extra_args"), "extra_args",
               quote(arg) + " is not allowed here (expected no lcore options and no \"--\": use dpdk.lcores and dpdk.main_lcore)");
    }
  }
}

bool valid_file_prefix(std::string_view p) {
  // It becomes a file name under /var/run/dpdk: no '/', no leading '.'.
  return p.size() <= 64 && (p.empty() || p.front() != '.') && std::all_of(p.begin(), p.end(), [](char c) {
           return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.';
         });
}

void read_dpdk(const section& s, dpdk_config& d) {
  static constexpr std::array<std::string_view, 8> keys{"lcores",    "main_lcore",  "no_huge",   "in_memory",
                                                        "no_pci",    "file_prefix", "memory_mb", "extra_args"};
  s.allow_only(keys);
  d.line = s.line();
  read_lcores(s, d);
  unsigned main = 0;
  if (s.read_int<0, max_lcores - 1>("main_lcore", main)) {
    if (!std::binary_search(d.lcore_list.begin(), d.lcore_list.end(), main)) {
      s.refuse(s.find("main_lcore"), "main_lcore",
               "lcore " + std::to_string(main) + " is not in dpdk.lcores " + quote(d.lcores) + " (expected one of its lcores)");
    }
    d.main_lcore = main;
  }
  s.read_bool("no_huge", d.no_huge);
  s.read_bool("in_memory", d.in_memory);
  s.read_bool("no_pci", d.no_pci);
  if (s.read_string("file_prefix", d.file_prefix) && !valid_file_prefix(d.file_prefix)) {
    s.refuse(s.find("file_prefix"), "file_prefix",
             quote(d.file_prefix) + " is not a valid prefix (expected up to 64 of [A-Za-z0-9_.-], not starting with '.')");
  }
  s.read_int<0, 1048576>("memory_mb", d.memory_mb);
  read_extra_args(s, d);
}

// ---------------------------------------------------------------- [dataplane]

void read_dataplane(const section& s, dataplane_config& d) {
  static constexpr std::array<std::string_view, 11> keys{"burst_size",  "mbufs",     "mbuf_cache",
                                                         "idle",        "idle_sleep_max_us", "idle_hold_us",
                                                         "tx_drain_us", "ring_size", "max_flows",
                                                         "max_flows_per_device", "neighbour_timeout"};
  s.allow_only(keys);
  s.read_int<1, 256>("burst_size", d.burst_size);
  s.read_int<1024, 16777216>("mbufs", d.mbufs);
  s.read_int<0, 512>("mbuf_cache", d.mbuf_cache);
  static constexpr std::array<std::string_view, 2> idles{"poll", "adaptive"};
  if (auto i = s.read_choice("idle", idles)) d.idle = *i == 0 ? idle_policy::poll : idle_policy::adaptive;
  s.read_int<1, 100000>("idle_sleep_max_us", d.idle_sleep_max_us);
  s.read_int<0, 100000>("idle_hold_us", d.idle_hold_us);
  s.read_int<1, 10000>("tx_drain_us", d.tx_drain_us);
  s.read_power_of_two<64, 65536>("ring_size", d.ring_size);
  s.read_int<64, 4194304>("max_flows", d.max_flows);
  s.read_int<1, 4194304>("max_flows_per_device", d.max_flows_per_device);
  s.read_int<5, 86400>("neighbour_timeout", d.neighbour_timeout_s);
  if (d.max_flows_per_device > d.max_flows)
    s.refuse(s.find("max_flows_per_device"), "max_flows_per_device",
             std::to_string(d.max_flows_per_device) + " is more than max_flows (" + std::to_string(d.max_flows) + ")");
}

// ---------------------------------------------------------------- [wireguard] [tailnet]

bool valid_endpoint(std::string_view e);

// "198.18.0.1:41641" or "[fd00::1]:41641": an address, not a name.
bool valid_ip_endpoint(std::string_view e) {
  if (!valid_endpoint(e)) return false;
  return e.front() == '[' || ip_address::parse(e.substr(0, e.rfind(':'))).has_value();
}

// [dns]: upstream resolvers, as addresses ("198.18.0.53", "[fd00::53]:53").
void read_dns(const section& s, dns_config_table& d) {
  static constexpr std::array<std::string_view, 3> keys{"upstreams", "device_query_rate", "device_domain"};
  s.allow_only(keys);
  d.line = s.line();
  s.read_int<0, 1000000>("device_query_rate", d.device_query_rate);
  if (s.read_string("device_domain", d.device_domain) && !d.device_domain.empty() && !is_hostname(d.device_domain))
    s.refuse(s.find("device_domain"), "device_domain",
             quote(d.device_domain) +
                 " is not a DNS name (expected labels of letters, digits and '-', e.g. \"lopower.internal\", or \"\" for off)");
  if (!s.read_string_array("upstreams", d.upstreams)) return;
  for (const std::string& u : d.upstreams)
    if (!ip_address::parse(u) && !valid_ip_endpoint(u))
      s.refuse(s.find("upstreams"), "upstreams",
               quote(u) + " is not a resolver address (\"198.18.0.53\", \"198.18.0.53:5353\" or \"[fd00::53]:53\")");
}

// [egress]: the mode devices get by default and the exit nodes, in order.
void read_egress(const section& s, egress_config& e) {
  static constexpr std::array<std::string_view, 2> keys{"mode", "exit_nodes"};
  s.allow_only(keys);
  e.line = s.line();
  static constexpr std::array<std::string_view, egress_mode_count> modes{LOPOWER_EGRESS_MODES(LOPOWER_ENUM_NAME)};
  if (auto i = s.read_choice("mode", modes)) {
    e.mode = static_cast<egress_mode>(*i);
    e.mode_line = s.line_of(s.find("mode"));
  }
  if (!s.read_string_array("exit_nodes", e.exit_nodes)) return;
  const toml::node* node = s.find("exit_nodes");
  if (e.exit_nodes.empty())
    s.refuse(node, "exit_nodes", "empty (expected tailnet peer names or IPs in failover order, or [\"auto\"])");
  for (std::size_t i = 0; i < e.exit_nodes.size(); ++i) {
    const std::string& n = e.exit_nodes[i];
    if (n == "auto" && e.exit_nodes.size() > 1)
      s.refuse(node, "exit_nodes", "\"auto\" stands alone (expected [\"auto\"] or a list of peers)");
    const bool name = std::all_of(n.begin(), n.end(), [](char c) { return is_ascii_alnum(c) || c == '-' || c == '.'; });
    if (n.empty() || (!name && !ip_address::parse(n)))
      s.refuse(node, "exit_nodes", quote(n) + " is not a tailnet peer name or IP (expected \"exit1\", "
                                   "\"exit1.tailnet.example\" or \"100.64.0.7\")");
    if (std::find(e.exit_nodes.begin(), e.exit_nodes.begin() + static_cast<std::ptrdiff_t>(i), n) !=
        e.exit_nodes.begin() + static_cast<std::ptrdiff_t>(i))
      s.refuse(node, "exit_nodes", quote(n) + " appears twice");
  }
}

// [metrics]: where the Prometheus endpoint listens ("127.0.0.1:9586").
void read_metrics(const section& s, metrics_config& m) {
  static constexpr std::array<std::string_view, 1> keys{"listen"};
  s.allow_only(keys);
  m.line = s.line();
  if (!s.read_string("listen", m.listen) || m.listen.empty()) return;
  const std::size_t colon = m.listen.rfind(':');
  std::string_view host = std::string_view(m.listen).substr(0, colon == std::string::npos ? 0 : colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto address = ip_address::parse(host);
  unsigned long port = 0;
  if (valid_ip_endpoint(m.listen) && address) port = std::strtoul(m.listen.c_str() + colon + 1, nullptr, 10);
  if (port == 0 || port > 65535)
    s.refuse(s.find("listen"), "listen",
             quote(m.listen) + " is not an address and port (\"127.0.0.1:9586\" or \"[::1]:9586\")");
  m.address = *address;
  m.port = static_cast<std::uint16_t>(port);
}

void read_derp(const section& s, derp_config& d) {
  static constexpr std::array<std::string_view, 3> keys{"enabled", "plain_http", "map_file"};
  s.allow_only(keys);
  d.line = s.line();
  s.read_bool("enabled", d.enabled);
  s.read_bool("plain_http", d.plain_http);
  if (s.read_string("map_file", d.map_file) && (d.map_file.empty() || d.map_file.front() != '/'))
    s.refuse(s.find("map_file"), "map_file", quote(d.map_file) + " is not an absolute path (expected \"/...\")");
}

bool valid_hostname_label(std::string_view h) {
  return !h.empty() && h.size() <= 63 && h.front() != '-' && h.back() != '-' &&
         std::all_of(h.begin(), h.end(), [](char c) { return is_ascii_alnum(c) || c == '-'; });
}

bool valid_tag(std::string_view t) {
  return t.size() > 4 && t.substr(0, 4) == "tag:" && t.size() <= 4 + 63 &&
         std::all_of(t.begin() + 4, t.end(), [](char c) { return is_ascii_alnum(c) || c == '-' || c == '_'; });
}

// Returns the line of listen_port when it was given, 0 otherwise.
int read_tailnet(const section& s, tailnet_config& t) {
  static constexpr std::array<std::string_view, 9> keys{"listen_port", "control_url", "hostname", "auth_key_file",
                                                        "advertise_tags", "ephemeral", "accept_routes",
                                                        "advertise_endpoints", "ca_file"};
  s.allow_only(keys);
  t.line = s.line();
  const int port_line = s.read_int<1, 65535>("listen_port", t.listen_port) ? s.line_of(s.find("listen_port")) : 0;
  if (s.read_string("control_url", t.control_url) && t.control_url.rfind("http://", 0) != 0 &&
      t.control_url.rfind("https://", 0) != 0)
    s.refuse(s.find("control_url"), "control_url", quote(t.control_url) + " is not an http:// or https:// URL");
  if (s.read_string("hostname", t.hostname) && !valid_hostname_label(t.hostname))
    s.refuse(s.find("hostname"), "hostname", quote(t.hostname) + " is not a DNS label (letters, digits, '-'; 1..63)");
  if (s.read_string("auth_key_file", t.auth_key_file) && (t.auth_key_file.empty() || t.auth_key_file.front() != '/'))
    s.refuse(s.find("auth_key_file"), "auth_key_file", quote(t.auth_key_file) + " is not an absolute path (expected \"/...\")");
  if (s.read_string("ca_file", t.ca_file) && (t.ca_file.empty() || t.ca_file.front() != '/'))
    s.refuse(s.find("ca_file"), "ca_file", quote(t.ca_file) + " is not an absolute path (expected \"/...\")");
  if (s.read_string_array("advertise_tags", t.advertise_tags))
    for (const std::string& tag : t.advertise_tags)
      if (!valid_tag(tag)) s.refuse(s.find("advertise_tags"), "advertise_tags", quote(tag) + " is not a tag (expected \"tag:name\")");
  s.read_bool("ephemeral", t.ephemeral);
  s.read_bool("accept_routes", t.accept_routes);
  if (s.read_string_array("advertise_endpoints", t.advertise_endpoints))
    for (const std::string& e : t.advertise_endpoints)
      if (!valid_ip_endpoint(e))
        s.refuse(s.find("advertise_endpoints"), "advertise_endpoints",
                 quote(e) + " is not an address and port (\"198.18.0.1:41641\" or \"[fd00::1]:41641\")");
  return port_line;
}

void read_wireguard(const section& s, wireguard_config& w) {
  static constexpr std::array<std::string_view, 6> keys{"listen_port", "crypto_backend", "rekey_after_seconds",
                                                        "reject_after_seconds", "keepalive_timeout_seconds",
                                                        "handshake_load_threshold"};
  s.allow_only(keys);
  s.read_int<1, 65535>("listen_port", w.listen_port);
  static constexpr std::array<std::string_view, 3> backends{"auto", "ipsec-mb", "libsodium"};
  if (auto i = s.read_choice("crypto_backend", backends)) w.crypto_backend = std::string(backends[*i]);
  s.read_int<2, 86400>("rekey_after_seconds", w.rekey_after_seconds);
  s.read_int<3, 86400>("reject_after_seconds", w.reject_after_seconds);
  s.read_int<1, 3600>("keepalive_timeout_seconds", w.keepalive_timeout_seconds);
  s.read_int<1, 65536>("handshake_load_threshold", w.handshake_load_threshold);
  if (w.reject_after_seconds <= w.rekey_after_seconds)
    s.refuse(s.find("reject_after_seconds"), "reject_after_seconds",
             std::to_string(w.reject_after_seconds) + " must be greater than rekey_after_seconds (" +
                 std::to_string(w.rekey_after_seconds) + ")");
}

// ---------------------------------------------------------------- [devices]

const char* family_name(ip_family f);

// A device prefix is written as its network ("10.90.0.0/24"); lopower takes
// the first host address and devices the ones after it.
ip_prefix read_device_prefix(const section& s, std::string_view key, ip_family family, unsigned min_len, unsigned max_len) {
  const toml::node* node = s.find(key);
  const std::string text = s.string_value(*node, key, "");
  const auto p = ip_prefix::parse(text);
  const std::string expected = std::string("an ") + family_name(family) + " network with a length " +
                               std::to_string(min_len) + ".." + std::to_string(max_len);
  if (!p || p->address.family != family) s.refuse(node, key, quote(text) + " is not " + expected);
  if (p->length < min_len || p->length > max_len) s.refuse(node, key, quote(text) + " has the wrong length (expected " + expected + ")");
  ip_prefix network = *p;
  for (unsigned bit = p->length; bit < (family == ip_family::v4 ? 32u : 128u); ++bit)
    network.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  if (network.address != p->address)
    s.refuse(node, key, quote(text) + " has host bits set (expected the network, e.g. \"" + network.to_string() + "\")");
  return network;
}

bool valid_endpoint(std::string_view e) {
  const auto colon = e.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == e.size()) return false;
  const std::string_view host = e.substr(0, colon), port = e.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const int p = std::stoi(std::string(port));
  if (p < 1 || p > 65535) return false;
  if (host.front() == '[') return host.back() == ']' && ip_address::parse(host.substr(1, host.size() - 2)).has_value();
  if (ip_address::parse(host)) return ip_address::parse(host)->family == ip_family::v4;
  return host.size() <= 253 && std::all_of(host.begin(), host.end(), [](char c) { return is_ascii_alnum(c) || c == '-' || c == '.'; });
}

void read_devices(const section& s, devices_config& d) {
  static constexpr std::array<std::string_view, 8> keys{"ipv4_prefix", "ipv6_prefix", "ipv4",      "endpoint",
                                                        "mtu",         "route_all_ipv4", "keepalive", "device_to_device"};
  static constexpr std::array<std::string_view, 2> device_to_device{"deny", "allow"};
  s.allow_only(keys);
  d.line = s.line();
  if (s.find("ipv4_prefix")) d.ipv4_prefix = read_device_prefix(s, "ipv4_prefix", ip_family::v4, 8, 30);
  if (s.find("ipv6_prefix")) d.ipv6_prefix = read_device_prefix(s, "ipv6_prefix", ip_family::v6, 64, 126);
  bool ipv4 = true;
  if (s.read_bool("ipv4", ipv4) && !ipv4) d.ipv4_prefix.reset();
  if (s.read_string("endpoint", d.endpoint) && !valid_endpoint(d.endpoint))
    s.refuse(s.find("endpoint"), "endpoint",
             quote(d.endpoint) + " is not a usable endpoint (expected \"host:port\", \"198.18.0.1:51820\" or \"[fd00::1]:51820\")");
  s.read_int<1280, 9000>("mtu", d.mtu);
  s.read_bool("route_all_ipv4", d.route_all_ipv4);
  s.read_int<0, 65535>("keepalive", d.keepalive);
  if (auto i = s.read_choice("device_to_device", device_to_device)) d.device_to_device = *i == 1;
}

// ---------------------------------------------------------------- [inbound]

void read_inbound(const section& s, inbound_config& in) {
  static constexpr std::array<std::string_view, 2> keys{"advertise_routes", "snat"};
  s.allow_only(keys);
  in.line = s.line();
  s.read_bool("advertise_routes", in.advertise_routes);
  s.read_bool("snat", in.snat);
}

// ---------------------------------------------------------------- [[port]]

bool valid_port_name(std::string_view n) {
  return !n.empty() && n.size() <= 12 && std::all_of(n.begin(), n.end(), [](char c) {
    return is_ascii_alnum(c) || c == '_' || c == '-';
  });
}

bool valid_tap_name(std::string_view n) {
  // The kernel refuses "." and ".." (dev_valid_name) and anything over IFNAMSIZ-1.
  return !n.empty() && n.size() <= max_ifname && n != "." && n != ".." && std::all_of(n.begin(), n.end(), [](char c) {
    return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.';
  });
}

// Addresses no interface (or gateway) may have; nullptr for ordinary unicast.
const char* special_address(const ip_address& a) {
  if (a.family == ip_family::v4) {
    const std::uint32_t x = a.v4_host_order();
    if (x == 0) return "the unspecified address";
    if ((x >> 24) == 127) return "a loopback address";
    if ((x >> 28) == 0xe) return "a multicast address";
    if (x == 0xffffffffu) return "the broadcast address";
    return nullptr;
  }
  if (a.bytes[0] == 0xff) return "a multicast address";
  const bool zero_head = std::all_of(a.bytes.begin(), a.bytes.end() - 1, [](std::uint8_t b) { return b == 0; });
  if (zero_head && a.bytes[15] == 0) return "the unspecified address";
  if (zero_head && a.bytes[15] == 1) return "a loopback address";
  return nullptr;
}

bool is_link_local_v6(const ip_address& a) {
  return a.family == ip_family::v6 && a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80;
}

const char* family_name(ip_family f) { return f == ip_family::v4 ? "IPv4" : "IPv6"; }

ip_prefix parse_interface_address(const section& s, const toml::node& node, const std::string& text) {
  const auto refuse = [&](const std::string& why) { s.refuse(&node, "addresses", quote(text) + " " + why); };
  const auto slash = text.find('/');
  if (slash == std::string::npos) refuse("has no prefix length (expected \"address/length\", e.g. \"198.18.0.1/24\")");
  const auto address = ip_address::parse(std::string_view(text).substr(0, slash));
  if (!address) refuse("is not a valid IP address (expected \"address/length\", e.g. \"198.18.0.1/24\" or \"fd00::1/64\")");
  const std::string width = address->family == ip_family::v4 ? "1..32 for IPv4" : "1..128 for IPv6";
  const auto prefix = ip_prefix::parse(text);
  if (!prefix) refuse("has a bad prefix length (expected " + width + ")");
  if (prefix->length == 0) refuse("has prefix length /0, which is not allowed (expected " + width + ")");
  if (const char* special = special_address(prefix->address)) {
    refuse(std::string("is ") + special + " (expected a unicast interface address)");
  }
  return *prefix;
}

// The same address twice, on this port or another, would make ARP/ND answers ambiguous.
void check_address_unique(const section& s, const toml::node& node, const ip_prefix& p,
                          const std::vector<port_config>& others, const std::vector<ip_prefix>& mine) {
  const auto same = [&](const ip_prefix& q) { return q.address == p.address; };
  if (std::any_of(mine.begin(), mine.end(), same)) {
    s.refuse(&node, "addresses", "address " + p.address.to_string() + " is listed twice (expected each address once)");
  }
  for (std::size_t i = 0; i < others.size(); ++i) {
    if (std::any_of(others[i].addresses.begin(), others[i].addresses.end(), same)) {
      s.refuse(&node, "addresses", "address " + p.address.to_string() + " is already used by port[" +
                                       std::to_string(i + 1) + "] (expected each address on one port only)");
    }
  }
}

void read_addresses(const section& s, port_config& p, const std::vector<port_config>& others) {
  const toml::node* node = s.find("addresses");
  if (!node) s.refuse(nullptr, "addresses", "missing (expected an array of \"address/length\" strings)");
  const auto* array = node->as_array();
  if (!array) s.refuse(node, "addresses", std::string("expected an array of \"address/length\" strings, got ") + type_name(*node));
  if (array->empty()) s.refuse(node, "addresses", "is empty (expected at least one \"address/length\")");
  for (const toml::node& element : *array) {
    const std::string text = s.string_value(element, "addresses", " in the array");
    const ip_prefix prefix = parse_interface_address(s, element, text);
    check_address_unique(s, element, prefix, others, p.addresses);
    p.addresses.push_back(prefix);
  }
}

std::optional<ip_address> read_gateway(const section& s, std::string_view key, ip_family family) {
  std::string text;
  if (!s.read_string(key, text)) return std::nullopt;
  const toml::node* node = s.find(key);
  const std::string expected = std::string("expected an ") + family_name(family) + " address";
  const auto address = ip_address::parse(text);
  if (!address) s.refuse(node, key, quote(text) + " is not a valid IP address (" + expected + ")");
  if (address->family != family) {
    s.refuse(node, key, quote(text) + " is an " + family_name(address->family) + " address (" + expected + ")");
  }
  if (const char* special = special_address(*address)) {
    s.refuse(node, key, quote(text) + " is " + special + " (" + expected + " of a router)");
  }
  return address;
}

void check_gateway(const section& s, std::string_view key, const port_config& p, const ip_address& gw) {
  const toml::node* node = s.find(key);
  bool inside = false;
  for (const ip_prefix& prefix : p.addresses) {
    if (prefix.address == gw) s.refuse(node, key, gw.to_string() + " is the port's own address (expected a router)");
    inside = inside || prefix.contains(gw);
  }
  // An IPv6 router is usually known by its link-local address, which no prefix covers.
  if (inside || is_link_local_v6(gw)) return;
  const std::string family = family_name(gw.family);
  s.refuse(node, key, gw.to_string() + " is not inside any of the port's " + family + " prefixes (expected an address on the port's " + family +
                          " subnet" + (gw.family == ip_family::v6 ? " or a link-local fe80::/10 address)" : ")"));
}

void read_gateways(const section& s, port_config& p) {
  p.gateway4 = read_gateway(s, "gateway4", ip_family::v4);
  if (p.gateway4) check_gateway(s, "gateway4", p, *p.gateway4);
  p.gateway6 = read_gateway(s, "gateway6", ip_family::v6);
  if (p.gateway6) check_gateway(s, "gateway6", p, *p.gateway6);
}

void read_mtu(const section& s, port_config& p) {
  s.read_int<576, 9000>("mtu", p.mtu);
  const auto v6 = std::find_if(p.addresses.begin(), p.addresses.end(),
                               [](const ip_prefix& a) { return a.address.family == ip_family::v6; });
  if (v6 != p.addresses.end() && p.mtu < 1280) {
    s.refuse(s.find("mtu"), "mtu", std::to_string(p.mtu) + " is below 1280, the IPv6 minimum, and the port has IPv6 address " +
                                       v6->to_string() + " (expected 1280..9000)");
  }
}

void read_name(const section& s, port_config& p, const std::vector<port_config>& others) {
  if (!s.read_string("name", p.name)) s.refuse(nullptr, "name", "missing (expected a port name)");
  const toml::node* node = s.find("name");
  if (!valid_port_name(p.name)) {
    s.refuse(node, "name", quote(p.name) + " is not a valid port name (expected 1..12 of [A-Za-z0-9_-])");
  }
  for (std::size_t i = 0; i < others.size(); ++i) {
    if (others[i].name == p.name) {
      s.refuse(node, "name", quote(p.name) + " is already the name of port[" + std::to_string(i + 1) + "] (expected unique names)");
    }
  }
}

void read_device(const section& s, port_config& p, const std::vector<port_config>& others) {
  if (!s.read_string("device", p.device)) {
    s.refuse(nullptr, "device", "missing (expected a PCI address or a vdev string)");
  }
  const toml::node* node = s.find("device");
  if (p.device.empty()) s.refuse(node, "device", "is empty (expected a PCI address or a vdev string)");
  for (std::size_t i = 0; i < others.size(); ++i) {
    if (others[i].device == p.device) {
      s.refuse(node, "device", quote(p.device) + " is already the device of port[" + std::to_string(i + 1) + "] (expected unique devices)");
    }
  }
}

void read_tap(const section& s, port_config& p, const std::vector<port_config>& others) {
  p.tap_name = "lp-" + p.name;
  s.read_string("tap_name", p.tap_name);
  const toml::node* node = s.find("tap_name");
  if (!valid_tap_name(p.tap_name)) {
    s.refuse(node, "tap_name", quote(p.tap_name) + " is not a valid interface name (expected 1..15 of [A-Za-z0-9_.-])");
  }
  for (std::size_t i = 0; i < others.size(); ++i) {
    if (others[i].tap_name == p.tap_name) {
      s.refuse(node, "tap_name", quote(p.tap_name) + " is already the tap_name of port[" + std::to_string(i + 1) + "] (expected unique names)");
    }
  }
}

// The kernel's default ephemeral range (net.ipv4.ip_local_port_range): its
// own connections on an uplink address (through the TAP) take their source
// ports there, so NATed flows must not.
constexpr std::uint16_t kernel_ephemeral_first = 32768, kernel_ephemeral_last = 60999;

// [[port]] nat_ports = "first-last", on uplink ports only.
void read_nat_ports(const section& s, port_config& p) {
  std::string text;
  if (!s.read_string("nat_ports", text)) return;
  const toml::node* node = s.find("nat_ports");
  if (p.role != port_role::uplink) s.refuse(node, "nat_ports", "is for ports with role \"uplink\" only");
  const std::string expected = "expected \"first-last\" with 1024 <= first <= last <= 65535, outside " +
                               std::to_string(kernel_ephemeral_first) + "-" + std::to_string(kernel_ephemeral_last) +
                               ", the kernel's ephemeral ports";
  unsigned first = 0, last = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%5u-%5u%c", &first, &last, &tail) != 2 || first < 1024 || last > 65535 || first > last)
    s.refuse(node, "nat_ports", quote(text) + " is not a port range (" + expected + ")");
  if (first <= kernel_ephemeral_last && last >= kernel_ephemeral_first)
    s.refuse(node, "nat_ports", quote(text) + " overlaps the kernel's ephemeral ports (" + expected + ")");
  p.nat_first_port = static_cast<std::uint16_t>(first);
  p.nat_last_port = static_cast<std::uint16_t>(last);
}

port_config read_port(const section& s, const std::vector<port_config>& others) {
  static constexpr std::array<std::string_view, 13> keys{
      "name", "device",         "role",           "addresses",      "gateway4", "gateway6",
      "mtu",  "tap_name",       "exception_path", "rx_descriptors", "tx_descriptors", "host_stack",
      "nat_ports"};
  s.allow_only(keys);
  port_config p;
  p.line = s.line();
  read_name(s, p, others);
  read_device(s, p, others);
  static constexpr std::array<std::string_view, 4> roles{"devices", "tailnet", "both", "uplink"};
  // `roles` lists the names in the enum's order.
  if (auto i = s.read_choice("role", roles)) p.role = static_cast<port_role>(*i);
  read_addresses(s, p, others);
  read_gateways(s, p);
  read_mtu(s, p);
  read_nat_ports(s, p);
  read_tap(s, p, others);
  s.read_bool("exception_path", p.exception_path);
  static constexpr std::array<std::string_view, 2> host_stacks{"bypass", "shared"};
  if (auto i = s.read_choice("host_stack", host_stacks)) p.host_stack_bypass = *i == 0;
  s.read_power_of_two<64, 16384>("rx_descriptors", p.rx_descriptors);
  s.read_power_of_two<64, 16384>("tx_descriptors", p.tx_descriptors);
  return p;
}

// Each table of the array of tables [[name]] at `node`, as a section named
// "name[N]", to `read_one`; `required`: an empty array is refused.
template <class ReadOne>
void read_each_table(const std::string& file, const toml::node& node, const std::string& name, bool required,
                     ReadOne read_one) {
  const auto* array = node.as_array();
  const int line = line_of(node, 1);
  if (!array)
    refuse_at(file, line, name, "expected an array of tables [[" + name + "]], got " + std::string(type_name(node)));
  if (required && array->empty()) refuse_at(file, line, name, "is empty (expected at least one [[" + name + "]])");
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string prefix = name + "[" + std::to_string(i + 1) + "]";
    const auto* table = element.as_table();
    if (!table) refuse_at(file, line_of(element, line), prefix, std::string("expected a table, got ") + type_name(element));
    read_one(section(file, *table, prefix, line_of(element, line)));
  }
}

void read_ports(const std::string& file, const toml::table& root, std::vector<port_config>& ports) {
  const toml::node* node = root.get("port");
  if (!node) refuse_at(file, 1, "port", "no [[port]] table (expected at least one)");
  read_each_table(file, *node, "port", true, [&](const section& s) { ports.push_back(read_port(s, ports)); });
}

// ---------------------------------------------------------------- [[forward]]

forward_config read_forward(const section& s, const std::vector<forward_config>& others) {
  static constexpr std::array<std::string_view, 4> keys{"protocol", "port", "device", "device_port"};
  static constexpr std::array<std::string_view, 2> protocols{"tcp", "udp"};
  s.allow_only(keys);
  forward_config f;
  f.line = s.line();
  const auto protocol = s.read_choice("protocol", protocols);
  if (!protocol) s.refuse(nullptr, "protocol", "missing (expected \"tcp\" or \"udp\")");
  f.protocol = protocols[*protocol];
  if (!s.read_int<1, 65535>("port", f.port)) s.refuse(nullptr, "port", "missing (expected a port 1..65535)");
  if (!s.read_string("device", f.device) || f.device.empty())
    s.refuse(s.find("device"), "device", "missing (expected the name of an enrolled device)");
  if (!s.read_int<1, 65535>("device_port", f.device_port))
    s.refuse(nullptr, "device_port", "missing (expected a port 1..65535)");
  for (std::size_t i = 0; i < others.size(); ++i)
    if (others[i].protocol == f.protocol && others[i].port == f.port)
      s.refuse(s.find("port"), "port", f.protocol + " port " + std::to_string(f.port) + " is already forwarded by forward[" +
                                           std::to_string(i + 1) + "] (expected one forward per port)");
  return f;
}

void read_forwards(const std::string& file, const toml::table& root, std::vector<forward_config>& forwards) {
  const toml::node* node = root.get("forward");
  if (!node) return;
  read_each_table(file, *node, "forward", false, [&](const section& s) { forwards.push_back(read_forward(s, forwards)); });
}

// ---------------------------------------------------------------- cross-table rules

// One uplink at most (the NAT has one address per family to answer on), and
// it must have an address to NAT to.
void check_uplink(const config& cfg) {
  const port_config* first = nullptr;
  for (const port_config& p : cfg.ports) {
    if (p.role != port_role::uplink) continue;
    if (first != nullptr)
      refuse_at(cfg.path, p.line, "port.role", "\"uplink\" is already the role of port " + quote(first->name) +
                                                   " (expected at most one uplink port)");
    if (p.addresses.empty())
      refuse_at(cfg.path, p.line, "port.addresses", "an uplink port needs an address (expected the address lopower NATs to)");
    first = &p;
  }
}

// [egress] mode "uplink" needs an uplink port; without a mode, a box with
// an uplink uses it, as a home router does (none otherwise).
void check_egress(config& cfg) {
  const bool has_uplink = cfg.uplink_port() != nullptr;
  if (cfg.egress.mode_line == 0) {
    if (has_uplink) cfg.egress.mode = egress_mode::uplink;
    return;
  }
  if (cfg.egress.mode == egress_mode::uplink && !has_uplink)
    refuse_at(cfg.path, cfg.egress.mode_line, "egress.mode",
              "\"uplink\" needs a [[port]] with role uplink, which this file does not have (expected \"none\" or \"exit\", or an uplink port)");
}

void check_layout(const config& cfg) {
  const auto any_serves = [&](bool (*serves)(port_role)) {
    return std::any_of(cfg.ports.begin(), cfg.ports.end(), [&](const port_config& p) { return serves(p.role); });
  };
  const int line = cfg.ports.front().line;
  if (!any_serves(serves_devices)) {
    refuse_at(cfg.path, line, "port.role", "no port serves devices (expected at least one [[port]] with role \"devices\" or \"both\")");
  }
  if (!any_serves(serves_tailnet)) {
    refuse_at(cfg.path, line, "port.role", "no port serves the tailnet (expected at least one [[port]] with role \"tailnet\" or \"both\")");
  }
  check_uplink(cfg);
}

void check_listen_ports(const config& cfg, int wireguard_line, int tailnet_line) {
  if (cfg.wireguard.listen_port != cfg.tailnet.listen_port) return;
  // Both defaults differ, so at least one of the two was written in the file.
  const bool blame_tailnet = tailnet_line != 0;
  refuse_at(cfg.path, blame_tailnet ? tailnet_line : wireguard_line,
            blame_tailnet ? "tailnet.listen_port" : "wireguard.listen_port",
            std::to_string(cfg.tailnet.listen_port) +
                " is used by both wireguard.listen_port and tailnet.listen_port (expected two different ports: "
                "a \"both\" port could not tell device traffic from tailnet traffic)");
}

// ---------------------------------------------------------------- root

constexpr std::array<std::string_view, 13> root_tables{"daemon", "dpdk",    "dataplane", "wireguard", "devices",
                                                       "tailnet", "derp",   "dns",       "egress",    "metrics",
                                                       "port",    "inbound", "forward"};

// Refuses the earliest (by line) top-level name that is not one of root_tables.
void check_root_keys(const std::string& file, const toml::table& root) {
  const toml::node* worst = nullptr;
  std::string_view worst_key;
  for (auto&& [key, node] : root) {
    if (std::find(root_tables.begin(), root_tables.end(), key.str()) != root_tables.end()) continue;
    if (!worst || line_of(node, 1) < line_of(*worst, 1)) {
      worst = &node;
      worst_key = key.str();
    }
  }
  if (!worst) return;
  const bool table = worst->is_table() || worst->is_array_of_tables();
  refuse_at(file, line_of(*worst, 1), printable(worst_key),
            std::string(table ? "unknown table" : "unknown key") + " (expected one of the tables " + join_quoted(root_tables) + ")");
}

// Runs `read` on table `name` when the file has it.
template <class F>
void with_table(const std::string& file, const toml::table& root, std::string_view name, F&& read) {
  const toml::node* node = root.get(name);
  if (!node) return;
  const auto* table = node->as_table();
  if (!table) {
    refuse_at(file, line_of(*node, 1), std::string(name),
              "expected a table [" + std::string(name) + "], got " + type_name(*node));
  }
  read(section(file, *table, std::string(name), line_of(*node, 1)));
}

toml::table parse_toml(std::string_view text, const std::string& path) {
  try {
    return toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw config_error(path + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                       ": TOML syntax error: " + printable(e.description()));
  }
}

}  // namespace

config parse_config(std::string_view text, const std::string& path) {
  const toml::table root = parse_toml(text, path);
  config cfg;
  cfg.path = path;
  check_root_keys(path, root);
  with_table(path, root, "daemon", [&](const section& s) { read_daemon(s, cfg.daemon); });
  // [dpdk] absent still needs lcore_list expanded from the default "0-1".
  if (!root.get("dpdk")) parse_lcore_list(cfg.dpdk.lcores, cfg.dpdk.lcore_list);
  with_table(path, root, "dpdk", [&](const section& s) { read_dpdk(s, cfg.dpdk); });
  with_table(path, root, "dataplane", [&](const section& s) { read_dataplane(s, cfg.dataplane); });
  int wireguard_line = 0;
  int tailnet_line = 0;
  with_table(path, root, "wireguard", [&](const section& s) {
    read_wireguard(s, cfg.wireguard);
    wireguard_line = s.find("listen_port") ? s.line_of(s.find("listen_port")) : 0;
  });
  with_table(path, root, "devices", [&](const section& s) { read_devices(s, cfg.devices); });
  with_table(path, root, "dns", [&](const section& s) { read_dns(s, cfg.dns); });
  with_table(path, root, "egress", [&](const section& s) { read_egress(s, cfg.egress); });
  with_table(path, root, "tailnet", [&](const section& s) { tailnet_line = read_tailnet(s, cfg.tailnet); });
  with_table(path, root, "derp", [&](const section& s) { read_derp(s, cfg.derp); });
  with_table(path, root, "inbound", [&](const section& s) { read_inbound(s, cfg.inbound); });
  with_table(path, root, "metrics", [&](const section& s) { read_metrics(s, cfg.metrics); });
  check_listen_ports(cfg, wireguard_line, tailnet_line);
  read_ports(path, root, cfg.ports);
  read_forwards(path, root, cfg.forwards);
  check_layout(cfg);
  check_egress(cfg);
  return cfg;
}

config load_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw config_error(path + ": cannot read: " + std::strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;  // close() may overwrite errno
      ::close(fd);
      throw config_error(path + ": cannot read: " + std::strerror(err));
    }
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_config_bytes) {
      ::close(fd);
      throw config_error(path + ": larger than " + std::to_string(max_config_bytes / 1024) +
                         " KiB: not a lopower configuration");
    }
  }
  ::close(fd);
  return parse_config(text, path);
}

namespace {

// Why `path` could not be read at start-up, if it could not: one line,
// after `where` ("file: key: "), into `out`.
void check_readable_file(const std::string& where, const std::string& path, std::vector<std::string>& out) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    out.push_back(where + path + ": " + std::strerror(errno));
  else if (!S_ISREG(st.st_mode))
    out.push_back(where + path + " is not a regular file");
  else if (::access(path.c_str(), R_OK) != 0)
    out.push_back(where + "cannot read " + path + ": " + std::strerror(errno));
  else if (st.st_size == 0)
    out.push_back(where + path + " is empty");
}

}  // namespace

std::vector<std::string> environment_problems(const config& cfg) {
  std::vector<std::string> out;
  const std::string& f = cfg.path;
  if (!cfg.daemon.ctl_group.empty() && getgrnam(cfg.daemon.ctl_group.c_str()) == nullptr)
    out.push_back(f + ": daemon.ctl_group: no group named " + quote(cfg.daemon.ctl_group));
  if (!cfg.tailnet.control_url.empty() && !cfg.tailnet.auth_key_file.empty())
    check_readable_file(f + ": tailnet.auth_key_file: ", cfg.tailnet.auth_key_file, out);
  if (!cfg.tailnet.control_url.empty() && cfg.derp.enabled && !cfg.derp.map_file.empty())
    check_readable_file(f + ": derp.map_file: ", cfg.derp.map_file, out);
  if (!cfg.tailnet.control_url.empty() && !cfg.tailnet.ca_file.empty())
    check_readable_file(f + ": tailnet.ca_file: ", cfg.tailnet.ca_file, out);
  return out;
}

}  // namespace lopower
