// lopower-ctl: the operator's command line for lopowerd.
//
//   lopower-ctl [--socket PATH] COMMAND [ARGS]   (`lopower-ctl help` lists them)

#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lopower/build_info.h"
#include "lopower/ctl_protocol.h"
#include "tools/lopower-ctl/device_cli.h"
#include "tools/lopower-ctl/flow_view.h"
#include "tools/lopower-ctl/status_view.h"
#include "tools/lopower-ctl/top_cli.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: lopower-ctl [--socket PATH] COMMAND [ARGS]\n"
               "commands:\n"
               "  status [--json]   daemon, ports, lcores, counters and drops by reason\n"
               "  top [--interval SECONDS] [--once]   live view (also `watch`): ports' packets/s and bit/s,\n"
               "                    workers' busy share, the busiest devices, drops that rose; q or Ctrl-C quits;\n"
               "                    --once prints one frame (rates over one interval) and exits\n"
               "  device list [--json]   the devices, as `wg show` shows peers: endpoint, latest handshake,\n"
               "                    transfer, persistent keepalive\n"
               "  device show NAME [--qr] [--json]   its block, its spliced flows, its wg-quick config\n"
               "  device add|set|remove|reset-timestamp ...   enrol and manage WireGuard devices (`device` for usage)\n"
               "  flows [--device NAME] [--json]   spliced flows: device side, tailnet side, state, bytes\n"
               "  forward add tcp|udp PORT DEVICE DEVICE_PORT | list | remove tcp|udp PORT [--json]\n"
               "                    ports on lopower's tailnet address carried to a device\n"
               "  logout            leave the tailnet (the node key is expired at the server)\n"
               "  login             join again after a logout\n"
               "  ping [--icmp] [--c N] [--timeout SECONDS] PEER   ping a tailnet peer (name or IP) with disco,\n"
               "                    or ICMP through WireGuard: latency and path (direct or DERP); without\n"
               "                    --c, up to 10 pings until one comes back on a direct path\n"
               "  netcheck [--json] UDP, the endpoint STUN sees, latency to each DERP region, home region\n"
               "  version [--json]  lopower-ctl's version and revision, and lopowerd's (with DPDK and crypto)\n"
               "The socket defaults to $LOPOWER_CTL_SOCKET, else %s.\n",
               lopower::ctl::default_socket);
}

struct command_line {
  std::string socket;
  std::string command;
  std::vector<std::string> args;
};

bool parse(int argc, char** argv, command_line& cl) {
  const char* env = std::getenv("LOPOWER_CTL_SOCKET");
  cl.socket = env != nullptr && *env != '\0' ? env : lopower::ctl::default_socket;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc) cl.socket = argv[++i];
    else if (std::strncmp(argv[i], "--socket=", 9) == 0) cl.socket = argv[i] + 9;
    else if (std::strcmp(argv[i], "--version") == 0) {
      cl.command = "version";
      return true;
    } else return false;
  }
  if (i == argc) return false;
  cl.command = argv[i++];
  cl.args.assign(argv + i, argv + argc);
  return true;
}

// Sends the request and returns its result; throws std::runtime_error with
// the daemon's error, or the socket's.
nlohmann::json call(const command_line& cl, const lopower::ctl::request& req) {
  nlohmann::json reply = lopower::ctl::call(cl.socket, req);
  if (!reply.is_object() || !reply.value("ok", false))
    throw std::runtime_error(reply.is_object() ? reply.value("error", std::string("request failed")) : "request failed");
  return reply["result"];
}

// Sends the request; prints the daemon's error and returns nullopt on failure.
std::optional<nlohmann::json> request(const command_line& cl, const lopower::ctl::request& req) {
  try {
    return call(cl, req);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lopower-ctl: %s\n", e.what());
    return std::nullopt;
  }
}

int cmd_status(const command_line& cl) {
  bool json = false;
  for (const std::string& a : cl.args) {
    if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "lopower-ctl status: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  auto result = request(cl, {"status", nlohmann::json::object()});
  if (!result) return 1;
  if (json) std::printf("%s\n", result->dump(2).c_str());
  else std::fputs(lopower::render_status(*result).c_str(), stdout);
  return 0;
}

int cmd_flows(const command_line& cl) {
  bool json = false;
  nlohmann::json args = nlohmann::json::object();
  for (std::size_t i = 0; i < cl.args.size(); ++i) {
    if (cl.args[i] == "--json") json = true;
    else if (cl.args[i] == "--device" && i + 1 < cl.args.size()) args["device"] = cl.args[++i];
    else {
      std::fprintf(stderr, "usage: lopower-ctl flows [--device NAME] [--json]\n");
      return 2;
    }
  }
  auto result = request(cl, {"flows", args});
  if (!result) return 1;
  if (json) {
    std::printf("%s\n", result->dump(2).c_str());
    return 0;
  }
  std::fputs(lopower::render_flows(*result).c_str(), stdout);
  return 0;
}

// Port forwards: `forward add tcp|udp PORT DEVICE DEVICE_PORT`, `forward
// list`, `forward remove tcp|udp PORT` (each with --json).
int forward_usage() {
  std::fprintf(stderr,
               "usage: lopower-ctl forward add tcp|udp PORT DEVICE DEVICE_PORT [--json]\n"
               "       lopower-ctl forward list [--json]\n"
               "       lopower-ctl forward remove tcp|udp PORT [--json]\n");
  return 2;
}

std::optional<long> port_number(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stol(text);
}

std::string forward_text(const nlohmann::json& f) {
  auto num = [&f](const char* k) { return f.contains(k) && f[k].is_number() ? std::to_string(f[k].get<long>()) : "?"; };
  auto str = [&f](const char* k) { return f.contains(k) && f[k].is_string() ? f[k].get<std::string>() : "?"; };
  return str("protocol") + " " + num("port") + " -> " + str("device") + ":" + num("device_port") +
         (f.value("configured", false) ? "  (configuration file)" : "");
}

int cmd_forward(const command_line& cl) {
  std::vector<std::string> words;
  bool json = false;
  for (const std::string& a : cl.args) {
    if (a == "--json") json = true;
    else words.push_back(a);
  }
  if (words.empty()) return forward_usage();
  nlohmann::json args = nlohmann::json::object();
  const std::string& verb = words[0];
  if (verb == "add" && words.size() == 5) {
    const auto port = port_number(words[2]), device_port = port_number(words[4]);
    if (!port || !device_port) return forward_usage();
    args = {{"protocol", words[1]}, {"port", *port}, {"device", words[3]}, {"device_port", *device_port}};
  } else if (verb == "remove" && words.size() == 3) {
    const auto port = port_number(words[2]);
    if (!port) return forward_usage();
    args = {{"protocol", words[1]}, {"port", *port}};
  } else if (verb != "list" || words.size() != 1) {
    return forward_usage();
  }
  auto result = request(cl, {"forward." + verb, args});
  if (!result) return 1;
  if (json) std::printf("%s\n", result->dump(2).c_str());
  else if (verb == "list") {
    const auto list = result->value("forwards", nlohmann::json::array());
    if (list.empty()) std::printf("no forwards\n");
    for (const auto& f : list) std::printf("%s\n", forward_text(f).c_str());
  } else {
    std::printf("%s %s\n", verb == "add" ? "added" : "removed", forward_text(*result).c_str());
  }
  return 0;
}

// `tailscale ping`, disco flavour: one round per count, each waited for;
// without --c, as tailscale: up to 10, until a pong comes on a direct path.
int cmd_ping(const command_line& cl) {
  int count = 10;
  bool until_direct = true;
  double timeout_s = 5;
  std::string mode = "disco";
  std::string peer;
  for (std::size_t i = 0; i < cl.args.size(); ++i) {
    const std::string& a = cl.args[i];
    try {
      if ((a == "--c" || a == "-c") && i + 1 < cl.args.size()) {
        count = std::stoi(cl.args[++i]);
        until_direct = false;
      }
      else if (a == "--timeout" && i + 1 < cl.args.size()) timeout_s = std::stod(cl.args[++i]);
      else if (a == "--icmp") mode = "icmp";
      else if (!a.empty() && a[0] != '-' && peer.empty()) peer = a;
      else throw std::invalid_argument(a);
    } catch (const std::exception&) {
      std::fprintf(stderr, "lopower-ctl ping: bad argument %s\n", a.c_str());
      return 2;
    }
  }
  if (peer.empty() || count < 1 || count > 1000 || timeout_s < 0.1 || timeout_s > 60) {
    std::fprintf(stderr, "usage: lopower-ctl ping [--icmp] [--c N (1..1000)] [--timeout SECONDS (0.1..60)] PEER\n");
    return 2;
  }
  bool any = false;
  for (int n = 0; n < count; ++n) {
    // A round a second at most, as tailscale ping: a pong through a relay
    // comes back in a millisecond, and the direct path needs time to open.
    if (n > 0) {
      struct timespec second = {1, 0};
      nanosleep(&second, nullptr);
    }
    auto started = request(cl, {"tailnet.ping", {{"peer", peer}, {"mode", mode}, {"timeout_ms", static_cast<int>(timeout_s * 1000)}}});
    if (!started) return 1;
    const std::uint64_t id = (*started)["id"].get<std::uint64_t>();
    std::optional<nlohmann::json> r;
    do {
      struct timespec pause = {0, 20'000'000};
      nanosleep(&pause, nullptr);
      r = request(cl, {"tailnet.ping_result", {{"id", id}}});
      if (!r) return 1;
    } while (!r->value("done", false));
    if (r->value("answered", false)) {
      any = true;
      const std::string path = r->value("path", std::string());
      std::printf("pong from %s (%s) via %s in %.2fms\n", r->value("peer", std::string()).c_str(),
                  r->value("ip", std::string()).c_str(), path.c_str(), r->value("latency_ms", 0.0));
      if (until_direct && path.rfind("derp", 0) != 0) return 0;
    } else {
      std::printf("ping \"%s\" timed out\n", peer.c_str());
      if (until_direct && !any) break;  // nothing answers at all: no point in nine more
    }
  }
  if (!any) std::printf("no reply\n");
  else if (until_direct) std::printf("direct connection not established\n");
  return any ? 0 : 1;
}

// `tailscale netcheck`: what the last STUN rounds found.
int cmd_netcheck(const command_line& cl) {
  const bool json = cl.args.size() == 1 && cl.args[0] == "--json";
  if (!cl.args.empty() && !json) {
    std::fprintf(stderr, "usage: lopower-ctl netcheck [--json]\n");
    return 2;
  }
  auto r = request(cl, {"tailnet.netcheck", nlohmann::json::object()});
  if (!r) return 1;
  if (json) {
    std::printf("%s\n", r->dump(2).c_str());
    return 0;
  }
  if (r->contains("error")) {
    std::printf("netcheck: %s\n", (*r)["error"].get<std::string>().c_str());
    return 1;
  }
  auto text = [&](const char* k) { return (*r)[k].is_string() ? (*r)[k].get<std::string>() : std::string("(none)"); };
  const auto& varies = (*r)["mapping_varies_by_dest"];
  std::printf("Report:\n\t* UDP: %s\n\t* IPv4: %s\n\t* IPv6: %s\n\t* MappingVariesByDestIP: %s\n"
              "\t* Nearest DERP: %s\n\t* DERP latency:\n",
              r->value("udp", false) ? "true" : "false", text("ipv4").c_str(), text("ipv6").c_str(),
              varies.is_boolean() ? (varies.get<bool>() ? "true" : "false") : "(unknown: one STUN server)",
              r->value("home", 0) ? std::to_string(r->value("home", 0)).c_str() : "(none)");
  for (const auto& region : (*r)["regions"]) {
    const std::string id = std::to_string(region.value("id", 0));
    std::string lat = "(no answer)";
    for (const char* fam : {"-v4", "-v6"})
      if ((*r)["latency_ms"].contains(id + fam)) {
        char buf[48];
        std::snprintf(buf, sizeof buf, "%.1fms%s", (*r)["latency_ms"][id + fam].get<double>(), fam);
        lat = buf;
        break;
      }
    std::printf("\t\t- %s %-10s %s (%s)\n", id.c_str(), region.value("code", std::string()).c_str(), lat.c_str(),
                region.value("name", std::string()).c_str());
  }
  return 0;
}

// `lopower-ctl version`: this program's version and revision, then, if the
// daemon answers, its own with its DPDK and crypto backend.
int cmd_version(const command_line& cl) {
  const bool json = cl.args.size() == 1 && cl.args[0] == "--json";
  if (!cl.args.empty() && !json) {
    std::fprintf(stderr, "usage: lopower-ctl version [--json]\n");
    return 2;
  }
  nlohmann::json daemon;
  std::string why;
  try {
    daemon = call(cl, {"version", nlohmann::json::object()});
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (json) {
    nlohmann::json out = {{"lopower_ctl", {{"version", lopower::build_version()}, {"revision", lopower::build_revision()}}},
                          {"lopowerd", daemon}};
    if (!why.empty()) out["lopowerd_error"] = why;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("lopower-ctl %s\n  revision %s\n", lopower::build_version(), lopower::build_revision());
  if (!why.empty()) {
    std::printf("lopowerd: %s\n", why.c_str());
    return 0;
  }
  auto text = [&](const char* key) {
    const auto it = daemon.is_object() ? daemon.find(key) : daemon.end();
    return it != daemon.end() && it->is_string() && !it->get<std::string>().empty() ? it->get<std::string>() : "-";
  };
  std::printf("lopowerd %s\n  revision %s\n  %s\n  crypto %s", text("version").c_str(), text("revision").c_str(),
              text("dpdk").c_str(), text("crypto_backend").c_str());
  if (text("crypto") != "-") std::printf(" (%s)", text("crypto").c_str());
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  command_line cl;
  if (!parse(argc, argv, cl)) {
    usage(stderr);
    return 2;
  }
  if (cl.command == "status") return cmd_status(cl);
  if (cl.command == "device")
    return lopower::run_device_command(cl.args, [&](const lopower::ctl::request& r) { return request(cl, r); });
  if (cl.command == "ping") return cmd_ping(cl);
  if (cl.command == "flows") return cmd_flows(cl);
  if (cl.command == "forward") return cmd_forward(cl);
  if (cl.command == "netcheck") return cmd_netcheck(cl);
  if (cl.command == "top" || cl.command == "watch")
    return lopower::run_top_command(cl.args, [&](const lopower::ctl::request& r) { return call(cl, r); });
  if (cl.command == "version") return cmd_version(cl);
  if (cl.command == "logout" || cl.command == "login") {
    auto result = request(cl, {cl.command, nlohmann::json::object()});
    if (!result) return 1;
    std::printf("%s: %s\n", cl.command.c_str(), result->value("backend_state", std::string("?")).c_str());
    return 0;
  }
  if (cl.command == "help" || cl.command == "--help") {
    usage(stdout);
    return 0;
  }
  std::fprintf(stderr, "lopower-ctl: unknown command %s\n", cl.command.c_str());
  usage(stderr);
  return 2;
}
