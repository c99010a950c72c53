// wg_initiator: sends one WireGuard handshake initiation with a chosen
// TAI64N timestamp and reports whether a valid response came back. Tests use
// it to play a device without a real-time clock (after a reboot its
// timestamps restart near 1970), which no real WireGuard client can be made
// to do on demand.
//
//   wg_initiator SERVER_PUBLIC_B64 DEVICE_PRIVATE_B64 HOST PORT UNIX_SECONDS
// prints {"response": true|false} and exits 0 when a response authenticated.

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"

namespace {

using namespace lopower;

struct one_peer : wg::peer_lookup {
  wg::peer_handshake* peer;
  std::uint32_t index;
  wg::peer_handshake* by_static(const public_key&) override { return nullptr; }
  wg::peer_handshake* by_index(std::uint32_t i) override { return i == index ? peer : nullptr; }
};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: wg_initiator SERVER_PUBLIC_B64 DEVICE_PRIVATE_B64 HOST PORT UNIX_SECONDS\n");
    return 2;
  }
  const auto server = public_key::from_base64(argv[1]);
  const auto device = private_key::from_base64(argv[2]);
  if (!server || !device) {
    std::fprintf(stderr, "wg_initiator: bad key\n");
    return 2;
  }
  const wg::static_identity me(*device);
  wg::peer_handshake peer(me, *server);
  wg::cookie_maker maker(*server);
  one_peer lookup;
  lookup.peer = &peer;
  lookup.index = 0x1234567;
  wg::message_handshake_initiation init{};
  if (wg::create_initiation(init, peer, me, lookup.index, wg::tai64n::from_unix(std::atoll(argv[5]), 0)) !=
      wg::handshake_error::none)
    return 2;
  maker.add_macs(init, now_ns());

  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[4])));
  inet_pton(AF_INET, argv[3], &to.sin_addr);
  sendto(fd, &init, sizeof init, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  bool answered = false;
  pollfd p{fd, POLLIN, 0};
  while (!answered && poll(&p, 1, 3000) == 1) {
    std::uint8_t buf[256];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    const wg::parsed_message msg = wg::parse_message(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    if (const auto* resp = msg.response()) answered = static_cast<bool>(wg::consume_response(*resp, me, lookup));
  }
  close(fd);
  std::printf("{\"response\": %s}\n", answered ? "true" : "false");
  return answered ? 0 : 1;
}
