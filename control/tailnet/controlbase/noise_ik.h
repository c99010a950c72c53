#pragma once
// The ts2021 handshake, client side: Noise_IK_25519_ChaChaPoly_BLAKE2s
// (tailscale control/controlbase). Pure: bytes in, bytes out, no sockets.
//
//   prologue  "Tailscale Control Protocol v" + decimal version
//   <- s                  the control server's key, from GET /key
//   -> e, es, s, ss, {}   initiation: [u16 BE version][0x01][u16 BE 96]
//                                     [e 32][enc(s) 48][tag 16] = 101 bytes
//   <- e, ee, se, {}      response:   [0x02][u16 BE 48][e 32][tag 16] = 51 bytes
//                         or an error: [0x03][u16 BE length][text]
//   split                 client sends with the first key, receives with
//                         the second; records then use big-endian nonces
//                         (see record_stream.h)
//
// The version in the header and the prologue is the client's capability
// version (headscale 0.29 refuses anything below 113 once the handshake is
// done). Every handshake AEAD uses nonce 0 under a fresh key, so the
// nonce's byte order does not matter here.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/tailnet/controlbase/control_result.h"
#include "control/wireguard/engine/noise_symmetric.h"
#include "lopower/keys.h"

namespace lopower::tailnet {

inline constexpr std::string_view noise_protocol_name = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
inline constexpr std::string_view noise_prologue_prefix = "Tailscale Control Protocol v";

// Message types: the first byte of every message but the initiation (whose
// third byte it is).
inline constexpr std::uint8_t msg_type_initiation = 0x01;
inline constexpr std::uint8_t msg_type_response = 0x02;
inline constexpr std::uint8_t msg_type_error = 0x03;  // unauthenticated text: a hint only
inline constexpr std::uint8_t msg_type_record = 0x04;

inline constexpr std::size_t message_header_size = 3;     // type, u16 BE length
inline constexpr std::size_t initiation_header_size = 5;  // u16 BE version, type, u16 BE length
inline constexpr std::size_t initiation_size = 101;
inline constexpr std::size_t response_size = 51;
// What an error message may say before we stop reading it.
inline constexpr std::size_t max_error_text = 1024;

using initiation_message = std::array<std::uint8_t, initiation_size>;

// "Tailscale Control Protocol v119".
std::string noise_prologue(std::uint16_t version);

// What the handshake leaves for the transport.
struct transport_keys {
  key32 send;            // client -> server (c1 of the split)
  key32 receive;         // server -> client (c2)
  key32 handshake_hash;  // binds later messages to this connection
  std::uint16_t version = 0;
  public_key peer;       // the server's static key
};

// The server's reply as it comes off the stream in pieces of any size:
// bytes are taken until reply_size() of the first three says the reply is
// whole; what follows is not taken (the first records). Pure, so the
// fuzzer drives the code the connection runs.
class noise_reply_reader {
 public:
  // Takes from `bytes` what belongs to the reply: how many bytes it took,
  // or the refusal of a header reply_size() does not accept.
  control_result<std::size_t> feed(std::span<const std::uint8_t> bytes);
  bool whole() const noexcept;
  std::span<const std::uint8_t> reply() const noexcept { return reply_; }

 private:
  std::vector<std::uint8_t> reply_;
};

class noise_ik_initiator {
 public:
  // Starts a handshake with the control server `control` as machine
  // `machine` (its private key), announcing `version`. The ephemeral key
  // comes from libsodium's randomness unless the caller (a test) gives one.
  // Fails when a DH gives all zeros (a low-order or zero control key).
  static control_result<noise_ik_initiator> start(const private_key& machine, const public_key& control,
                                                  std::uint16_t version,
                                                  const std::optional<private_key>& ephemeral = std::nullopt);

  // Move-only: one copy of the handshake's secrets (a moved-from key is wiped).
  noise_ik_initiator(noise_ik_initiator&&) noexcept = default;
  noise_ik_initiator& operator=(noise_ik_initiator&&) noexcept = default;
  noise_ik_initiator(const noise_ik_initiator&) = delete;
  noise_ik_initiator& operator=(const noise_ik_initiator&) = delete;

  // The 101 bytes to send (base64 in the X-Tailscale-Handshake header).
  const initiation_message& initiation() const noexcept { return initiation_; }
  std::uint16_t version() const noexcept { return version_; }

  // How long the server's whole reply is, from its first 3 bytes: 51 for
  // a response, 3 + length for an error message (longer than
  // max_error_text: an error). Any other type, or a response whose length
  // field is not 48, is an error.
  static control_result<std::size_t> reply_size(std::span<const std::uint8_t> header);

  // Consumes the server's whole reply. A response that authenticates gives
  // the transport keys; an error message comes back as an error carrying
  // its (quoted) text. Once: a second call fails, and the machine and
  // ephemeral keys are wiped after the first.
  control_result<transport_keys> finish(std::span<const std::uint8_t> reply);

 private:
  noise_ik_initiator() = default;

  initiation_message initiation_{};
  std::uint16_t version_ = 0;
  private_key machine_;
  private_key ephemeral_;
  public_key control_;
  wg::noise_symmetric_state symmetric_;  // h, ck (and k) after the initiation; finish() wipes it
  bool finished_ = false;
};

}  // namespace lopower::tailnet
