#pragma once
// What a net_af_packet port needs from the host. Such a port reads a kernel
// interface through a packet socket, so the interface stays the kernel's:
// without help the host's own stack would answer ARP, pings and TCP for the
// addresses it sees there too (every ping would come back twice), and GRO
// would hand lopower 64 KB super-frames instead of the frames on the wire.
// lopowerd therefore, for each such port with host_stack = "bypass":
//   - installs an nftables netdev ingress hook that drops every frame (it runs
//     after packet sockets have seen it, so lopower still gets them all), in a
//     table of its own (lopower_<interface>), removed again at a clean stop;
//   - turns GRO and TX checksum offload off on the interface (frames leave
//     whole, and arrive as they were sent).
// When it cannot, it refuses to start and says the exact commands to run.

#include <string>
#include <vector>

#include "control/config.h"

namespace lopower {

// The kernel interface behind a net_af_packet device string ("iface=..."),
// empty for any other device.
std::string af_packet_interface(const std::string& device);

// The commands an operator would run by hand for `ifname`.
std::string af_packet_bypass_commands(const std::string& ifname);

class af_packet_host_setup {
 public:
  // Applies the bypass to every net_af_packet port that asks for it; throws
  // std::runtime_error naming the port, the reason and the commands.
  explicit af_packet_host_setup(const config& cfg);
  // Removes the ingress tables it installed.
  ~af_packet_host_setup();
  af_packet_host_setup(const af_packet_host_setup&) = delete;
  af_packet_host_setup& operator=(const af_packet_host_setup&) = delete;

  const std::vector<std::string>& interfaces() const { return interfaces_; }

 private:
  void apply(const config& cfg);
  void remove();

  std::vector<std::string> interfaces_;
};

}  // namespace lopower
