#include "control/af_packet_host.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "control/log.h"

namespace lopower {
namespace {

std::string table_of(const std::string& ifname) {
  std::string t = "lopower_" + ifname;
  for (char& c : t)
    if (c == '-' || c == '.') c = '_';
  return t;
}

struct nft_deleter {
  void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};

// Runs nft commands; the error text nft gives, empty on success.
std::string run_nft(const std::string& commands) {
  std::unique_ptr<nft_ctx, nft_deleter> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) return "cannot create an nftables context";
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), commands.c_str()) == 0) return {};
  std::string error = nft_ctx_get_error_buffer(ctx.get());
  while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
  return error.empty() ? "nftables refused" : error;
}

std::string nft_rules(const std::string& ifname) {
  const std::string table = table_of(ifname);
  return "add table netdev " + table + "\n" + "add chain netdev " + table + " ingress { type filter hook ingress device \"" +
         ifname + "\" priority 0; policy drop; }\n";
}

// Sets an ethtool on/off value (ETHTOOL_STXCSUM, ETHTOOL_SGRO) to off unless
// it already is; false with errno when the driver will not.
bool ethtool_off(int fd, const std::string& ifname, std::uint32_t get_cmd, std::uint32_t set_cmd) {
  ethtool_value v{};
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&v);
  v.cmd = get_cmd;
  if (ioctl(fd, SIOCETHTOOL, &ifr) == 0 && v.data == 0) return true;
  v.cmd = set_cmd;
  v.data = 0;
  return ioctl(fd, SIOCETHTOOL, &ifr) == 0;
}

void turn_offloads_off(const std::string& ifname) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const bool tx = ethtool_off(fd, ifname, ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM);
  const int tx_errno = errno;
  const bool gro = ethtool_off(fd, ifname, ETHTOOL_GGRO, ETHTOOL_SGRO);
  const int gro_errno = errno;
  close(fd);
  if (!tx) throw std::runtime_error(std::string("cannot turn TX checksum offload off: ") + std::strerror(tx_errno));
  if (!gro) throw std::runtime_error(std::string("cannot turn GRO off: ") + std::strerror(gro_errno));
}

}  // namespace

std::string af_packet_interface(const std::string& device) {
  if (device.rfind("net_af_packet", 0) != 0) return {};
  const std::size_t at = device.find("iface=");
  if (at == std::string::npos) return {};
  return device.substr(at + 6, device.find(',', at) - at - 6);
}

std::string af_packet_bypass_commands(const std::string& ifname) {
  const std::string table = table_of(ifname);
  return "nft add table netdev " + table + "; nft add chain netdev " + table + " ingress '{ type filter hook ingress device \"" +
         ifname + "\" priority 0; policy drop; }'; ethtool -K " + ifname + " tx off gro off";
}

af_packet_host_setup::af_packet_host_setup(const config& cfg) {
  try {
    apply(cfg);
  } catch (...) {
    remove();  // no destructor runs for a constructor that throws
    throw;
  }
}

void af_packet_host_setup::apply(const config& cfg) {
  for (const port_config& p : cfg.ports) {
    const std::string ifname = af_packet_interface(p.device);
    if (ifname.empty() || !p.host_stack_bypass) continue;
    const auto refuse = [&](const std::string& why) {
      throw std::runtime_error(cfg.path + ":" + std::to_string(p.line) + ": port " + p.name + " (" + ifname + "): " + why +
                               ". Run as root: " + af_packet_bypass_commands(ifname) +
                               " -- or set host_stack = \"shared\" to leave the interface to the host");
    };
    if (if_nametoindex(ifname.c_str()) == 0) {
      throw std::runtime_error(cfg.path + ":" + std::to_string(p.line) + ": port " + p.name + ": no network interface " +
                               ifname + " (net_af_packet iface=)");
    }
    if (const std::string error = run_nft(nft_rules(ifname)); !error.empty())
      refuse("cannot install the ingress drop that keeps the host's stack off the interface (" + error + ")");
    interfaces_.push_back(ifname);
    try {
      turn_offloads_off(ifname);
    } catch (const std::runtime_error& e) {
      refuse(e.what());
    }
    LOG_INFO("port %s: host stack kept off %s (nftables netdev table %s drops its ingress; TX checksum offload and GRO off)",
             p.name.c_str(), ifname.c_str(), table_of(ifname).c_str());
  }
}

af_packet_host_setup::~af_packet_host_setup() { remove(); }

void af_packet_host_setup::remove() {
  for (const std::string& ifname : interfaces_)
    if (const std::string error = run_nft("delete table netdev " + table_of(ifname) + "\n"); !error.empty())
      LOG_WARNING("%s: cannot remove nftables table %s: %s", ifname.c_str(), table_of(ifname).c_str(), error.c_str());
  interfaces_.clear();
}

}  // namespace lopower
