#pragma once
// WireGuard's DoS cookies (whitepaper 5.3, 5.4.4, 5.4.7).
//
// Every initiation and response ends in two MACs:
//   mac1 = MAC(HASH("mac1----" || receiver's static public), message up to mac1)
//   mac2 = MAC(cookie, message up to mac2), or zero without a fresh cookie
// where MAC is keyed BLAKE2s-128. A responder under load answers a message
// without a valid MAC2 with a cookie reply instead of doing the DH work:
//   cookie = MAC(Rm, source IP || source UDP port), Rm random, renewed every 120 s
//   reply  = XAEAD(HASH("cookie--" || responder's static public), 24-byte nonce,
//                  cookie, mac1 of the message answered)
//
// cookie_checker is the responder side (one per static identity);
// cookie_maker the initiator side (one per peer). Receiving a handshake
// message, the caller does what the Linux module does:
//
//   under_load = <handshake backlog is long>;
//   switch (checker.validate(id, msg, len, src, under_load, now)) {
//     case mac_status::invalid_mac: drop;
//     case mac_status::valid_mac_no_cookie:
//       if (under_load) { checker.create_reply(...); send it; drop; }
//       break;
//     case mac_status::valid_mac_with_cookie:
//       if (under_load && !ratelimiter.allow(src.ip, src.ipv6, now)) drop;
//       break;
//   }
//   consume_initiation / consume_response ...
//
// Times are nanoseconds of a monotonic clock the caller reads. Not
// thread-safe.

#include <array>
#include <cstddef>
#include <cstdint>

#include "control/wireguard/engine/noise_handshake.h"
#include "lopower/keys.h"
#include "lopower/wireguard_messages.h"

namespace lopower::wg {

// Where a handshake message came from: what its cookie is bound to.
struct packet_source {
  std::array<std::uint8_t, 16> ip{};  // IPv4 in the first four bytes
  bool ipv6 = false;
  std::uint16_t port = 0;  // host byte order

  static packet_source v4(const std::uint8_t address[4], std::uint16_t port) noexcept;
  static packet_source v6(const std::uint8_t address[16], std::uint16_t port) noexcept;
};

enum class mac_status : std::uint8_t {
  invalid_mac,            // MAC1 wrong (or the message is no initiation/response): drop silently
  valid_mac_no_cookie,    // MAC1 right; MAC2 not checked or wrong
  valid_mac_with_cookie,  // MAC1 right and MAC2 made with the current cookie for the source
};
const char* to_string(mac_status s) noexcept;

// MAC(secret, ip || port): the cookie the responder's secret Rm gives `source`
// (whitepaper 5.4.7). False only if the MAC could not be computed.
bool cookie_for(std::uint8_t out[cookie_size], const key32& secret, const packet_source& source) noexcept;

// A handshake message's MACs checked without any state: MAC1 against
// `mac1_key` (HASH("mac1----" || receiver's static public)) and, when
// `cookie_secret` is given, MAC2 against the cookie that secret gives
// `source`. The workers run it on every initiation and response they
// receive (dataplane/handshake_guard.h), so junk never reaches the control
// thread; cookie_checker::validate is the same check with its own secret.
mac_status check_macs(const std::uint8_t* message, std::size_t length, const key32& mac1_key,
                      const key32* cookie_secret, const packet_source& source) noexcept;

class cookie_checker {
 public:
  explicit cookie_checker(random_source& rng = system_random()) noexcept : rng_(&rng) {}

  // Checks MAC1 of an initiation (148 bytes) or response (92 bytes) sent to
  // `local`, and MAC2 as well when `check_cookie` (under load).
  mac_status validate(const static_identity& local, const std::uint8_t* message, std::size_t length,
                      const packet_source& source, bool check_cookie, std::uint64_t now_ns);

  // The cookie reply to `message` (an initiation or response from
  // `source`): addressed to its sender index, encrypted with its MAC1 as
  // associated data. False if `message` is neither, or crypto failed.
  bool create_reply(message_handshake_cookie& out, const static_identity& local, const std::uint8_t* message,
                    std::size_t length, const packet_source& source, std::uint64_t now_ns);

  // Replaces the secret Rm as if it had been drawn at `now_ns` (known
  // answers in tests); it still expires 120 s later.
  void set_secret(const key32& secret, std::uint64_t now_ns) noexcept;
  // The secret Rm in use at `now_ns` (a new one once the old is 120 s old),
  // and when it was drawn: the workers check MAC2 with a copy.
  const key32& secret(std::uint64_t now_ns);
  std::uint64_t secret_birth_ns() const noexcept { return secret_birth_ns_; }

 private:
  // MAC(Rm, ip || port), drawing a new Rm first when it is 120 s old.
  bool make_cookie(std::uint8_t out[cookie_size], const packet_source& source, std::uint64_t now_ns);

  random_source* rng_;
  key32 secret_;
  std::uint64_t secret_birth_ns_ = 0;
  bool have_secret_ = false;
};

class cookie_maker {
 public:
  // For messages to the peer with this static public key.
  explicit cookie_maker(const public_key& remote_static);
  cookie_maker(const cookie_maker&) = default;
  cookie_maker& operator=(const cookie_maker&) = default;
  ~cookie_maker() { secure_wipe(cookie_, sizeof cookie_); }

  bool valid() const noexcept { return valid_; }

  // Fills MAC1 and MAC2 of an initiation or response about to be sent;
  // MAC2 only while the latest cookie is younger than 120 - 5 s, else zero.
  // Remembers MAC1 for the cookie reply that may answer it.
  bool add_macs(std::uint8_t* message, std::size_t length, std::uint64_t now_ns);
  bool add_macs(message_handshake_initiation& m, std::uint64_t now_ns) {
    return add_macs(reinterpret_cast<std::uint8_t*>(&m), sizeof m, now_ns);
  }
  bool add_macs(message_handshake_response& m, std::uint64_t now_ns) {
    return add_macs(reinterpret_cast<std::uint8_t*>(&m), sizeof m, now_ns);
  }

  // Takes the cookie from a reply to the last message we MACed. False (and
  // nothing changes) if we sent nothing since the last cookie or the reply
  // does not decrypt. The caller found this maker by the reply's receiver index.
  bool consume_reply(const message_handshake_cookie& reply, std::uint64_t now_ns);

  // A cookie young enough to be used for MAC2.
  bool has_cookie(std::uint64_t now_ns) const noexcept;

 private:
  key32 mac1_key_;
  key32 cookie_key_;
  std::uint8_t cookie_[cookie_size]{};
  std::uint64_t cookie_birth_ns_ = 0;
  bool cookie_valid_ = false;
  std::uint8_t last_mac1_sent_[cookie_size]{};
  bool have_sent_mac1_ = false;
  bool valid_ = false;
};

}  // namespace lopower::wg
