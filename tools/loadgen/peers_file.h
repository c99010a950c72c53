#pragma once
// --peers-file: the devices and the gateway given in a file instead of
// enrolled through lopowerd's control socket, so that the loadgen can drive
// any WireGuard gateway (wireguard-go in bench/e2e_side_by_side.py). TOML,
// read with toml++ (the project's config parser):
//
//   [gateway]
//   public_key = "<base64>"          # the gateway's WireGuard public key
//   endpoint = "198.18.40.70:51820"  # where devices send WireGuard (IPv4)
//   inner_ip = "10.91.0.1"           # its own address inside the tunnels (--target lopower pings it)
//
//   [[device]]                       # one per device, in order
//   private_key = "<base64>"
//   address = "10.91.0.2"            # the device's address inside the tunnel
//
// The file is input from outside: every defect is refused with
// "FILE:LINE: KEY: what is wrong", never a crash.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lopower/keys.h"

namespace lopower::loadgen {

struct peers_file_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct static_device {
  private_key key;
  std::uint32_t inner_ip_be = 0;
};

struct static_peers {
  public_key gateway_key;
  std::uint32_t gateway_endpoint_ip_be = 0;
  std::uint16_t gateway_endpoint_port = 0;
  std::uint32_t gateway_inner_ip_be = 0;
  std::vector<static_device> devices;
};

// Throws peers_file_error naming `path`, the line and the key.
static_peers parse_peers_file(std::string_view text, const std::string& path);
static_peers load_peers_file(const std::string& path);

}  // namespace lopower::loadgen
