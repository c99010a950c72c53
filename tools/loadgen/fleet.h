#pragma once
// The devices the loadgen plays: their keys, their enrolment through
// lopowerd's control socket (the request `lopower-ctl device add NAME
// --public-key B64` sends), and their WireGuard handshakes with lopower as
// the initiator (the project's Noise engine): started, retried, renewed
// before the keypair gets old, and kept alive.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "tools/loadgen/options.h"
#include "tools/loadgen/port.h"
#include "tools/loadgen/wire.h"

namespace lopower::loadgen {

// What enrolment told us about lopower.
struct lopower_side {
  public_key key;
  std::uint32_t endpoint_ip_be = 0;   // where devices send WireGuard
  std::uint16_t endpoint_port = 0;
  std::uint32_t inner_ip_be = 0;      // its own address inside the tunnels (answers echo)
  rte_ether_addr mac{};               // learnt by ARP
};

struct device {
  std::string name;
  bool enrolled = false;  // by this run through the control socket: removed again at exit
  std::uint32_t inner_ip_be = 0;
  wg_endpoint path;  // from this device to lopower
  std::unique_ptr<wg::static_identity> identity;
  std::unique_ptr<wg::peer_handshake> handshake;
  std::unique_ptr<wg::cookie_maker> cookies;
  std::unique_ptr<transport_session> current;
  std::unique_ptr<transport_session> previous;  // still accepted while lopower switches over
  std::uint32_t generation = 0;                 // of handshakes begun: part of the local index
  std::uint64_t initiation_tsc = 0;             // the one in flight; 0: none
  std::uint64_t last_sent_tsc = 0;
  // The first data sent since lopower last sent us anything; 0: none. A
  // WireGuard peer that hears nothing back for keepalive + rekey timeout
  // (15 s) starts a new handshake: after lopowerd restarts, its sessions are
  // gone and only a new handshake brings the device back.
  std::uint64_t first_unanswered_tsc = 0;
  unsigned initiations = 0;
  unsigned handshakes = 0;
  unsigned silences = 0;  // handshakes started because of that
};

class fleet final : public wg::peer_lookup {
 public:
  fleet(const options& opts, const link_port& port, crypto::aead_backend& aead);

  // Enrols every device; throws std::runtime_error naming the one refused.
  // A name taken already (an earlier run's, kept or left by a crash) is
  // removed first with --replace-devices, else refused with that advice.
  // With --peers-file the devices and the gateway come from the file instead.
  void enrol();
  // Removes the devices this run enrolled (unless --keep-devices), never
  // one it found; errors are reported, not thrown.
  void remove_all() noexcept;

  const lopower_side& lopower() const noexcept { return lopower_; }
  void set_lopower_mac(const rte_ether_addr& mac);

  // Starts handshakes that are due, retries unanswered ones, renews
  // keypairs before they age out (unless renewal is off: a pcap's keypair
  // must stay), starts a new one when data went unanswered too long, and
  // sends keepalives on idle sessions.
  void tick(std::uint64_t now_tsc);
  void set_renewal(bool on) noexcept { renew_ = on; }
  // Data went to lopower from `d` / something authentic came back to it.
  static void note_sent_data(device& d, std::uint64_t now_tsc) noexcept {
    d.last_sent_tsc = now_tsc;
    if (d.first_unanswered_tsc == 0) d.first_unanswered_tsc = now_tsc;
  }
  static void note_received(device& d) noexcept { d.first_unanswered_tsc = 0; }

  // A handshake response or cookie reply (MACs unchecked) from lopower.
  void on_handshake_message(const std::uint8_t* message, std::size_t length, std::uint64_t now_tsc);

  // The device and keypair a transport message's receiver index names, or {nullptr, nullptr}.
  std::pair<device*, transport_session*> session_for(std::uint32_t receiver_index) noexcept;

  std::vector<device>& devices() noexcept { return devices_; }
  const std::vector<device>& devices() const noexcept { return devices_; }
  unsigned established() const noexcept;
  std::uint64_t refused_handshake_messages() const noexcept { return refused_; }

 private:
  wg::peer_handshake* by_static(const public_key&) override { return nullptr; }
  wg::peer_handshake* by_index(std::uint32_t local_index) override;

  void enrol_through_ctl();
  nlohmann::json add_device(const device& d) const;
  bool device_exists(const std::string& name) const;
  void enrol_from_peers_file();
  void set_path(device& d, std::size_t number);
  device* device_of_index(std::uint32_t index) noexcept;
  void initiate(device& d, std::uint64_t now_tsc);
  void complete(device& d, std::uint64_t now_tsc);
  void send(rte_mbuf* frame, device& d, std::uint64_t now_tsc);

  const options& opts_;
  const link_port& port_;
  crypto::aead_backend& aead_;
  lopower_side lopower_;
  std::vector<device> devices_;
  bool renew_ = true;
  std::uint64_t refused_ = 0;
  std::uint64_t hz_;
};

}  // namespace lopower::loadgen
