#pragma once
// WireGuard's handshake, Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (whitepaper
// 5.4.2-5.4.5), as pure functions over a per-peer state:
//
//   <- s                              (the responder's static key is known)
//   -> e, es, s, ss, {t}              create_initiation / consume_initiation
//   <- e, ee, se, psk, {}             create_response   / consume_response
//   transport keys                    derive_keypair
//
// The engine knows no tables. The caller owns peers and indices: it finds a
// peer by static key or by local index through `peer_lookup`, and hands in
// the index each new message announces. Clocks and randomness come in as
// arguments, so the same code serves the device side and, with node keys,
// the tailnet side, and the tests feed it known answers.
//
// The MACs of the messages are not the engine's business: create_* leave
// them zero for cookie_maker::add_macs, and consume_* expect the caller to
// have checked them with cookie_checker::validate (see cookie.h).
//
// Not thread-safe: one caller (the control thread) at a time per engine.
// Every intermediate secret lives in a self-wiping key32, so it is wiped
// on every exit path.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "lopower/enum_list.h"
#include "control/wireguard/engine/tai64n.h"
#include "lopower/keys.h"
#include "lopower/wireguard_messages.h"

namespace lopower::wg {

// Where ephemeral keys, cookie secrets and nonces come from. Tests inject
// fixed bytes; everything else uses system_random().
struct random_source {
  virtual ~random_source() = default;
  virtual void fill(std::uint8_t* out, std::size_t length) noexcept = 0;
};
// libsodium's randombytes_buf.
random_source& system_random() noexcept;

// Our side: the static key pair and the two keys derived from its public
// half (whitepaper 5.4.4): HASH("mac1----" || public) checks MAC1 of
// messages sent to us; HASH("cookie--" || public) encrypts our cookie replies.
class static_identity {
 public:
  // Clamps a copy of `key`. valid() is false if the key gives no public key.
  explicit static_identity(const private_key& key);

  bool valid() const noexcept { return valid_; }
  const private_key& static_private() const noexcept { return private_; }
  const public_key& static_public() const noexcept { return public_; }
  const key32& mac1_key() const noexcept { return mac1_key_; }
  const key32& cookie_key() const noexcept { return cookie_key_; }

 private:
  private_key private_;
  public_key public_;
  key32 mac1_key_;
  key32 cookie_key_;
  bool valid_ = false;
};

// HASH(label || public), label "mac1----" or "cookie--": also what the
// initiator side needs for the peer's key (cookie_maker).
std::optional<key32> mac1_key_for(const public_key& key);
std::optional<key32> cookie_key_for(const public_key& key);

// X(identifier): the enum, the names and the count come from this list.
#define LOPOWER_HANDSHAKE_STATES(X)                                                         \
  X(zeroed)              /* nothing in progress */                                          \
  X(created_initiation)  /* we sent an initiation; waiting for the response */              \
  X(consumed_initiation) /* we accepted an initiation; a response is to be sent */          \
  X(created_response)    /* we sent the response; keys can be derived (responder) */        \
  X(consumed_response)   /* we accepted the response; keys can be derived (initiator) */

enum class handshake_state : std::uint8_t { LOPOWER_HANDSHAKE_STATES(LOPOWER_ENUM_ENUMERATOR) };
inline constexpr std::size_t handshake_state_count = LOPOWER_ENUM_COUNT(LOPOWER_HANDSHAKE_STATES);
inline constexpr std::array<const char*, handshake_state_count> handshake_state_names{
    LOPOWER_HANDSHAKE_STATES(LOPOWER_ENUM_NAME)};
const char* to_string(handshake_state s) noexcept;

// Why a handshake step refused; each is a drop reason for the caller.
// X(identifier): the enum, the names and the count come from this list.
#define LOPOWER_HANDSHAKE_ERRORS(X)                                                                  \
  X(none)                                                                                            \
  X(no_identity)        /* the local static key is unusable */                                       \
  X(unusable_peer)      /* the peer's static key gives an all-zero DH with ours */                   \
  X(bad_ephemeral)      /* DH with the message's ephemeral key is all zero */                        \
  X(decrypt_static)     /* {s} of an initiation failed authentication */                             \
  X(unknown_peer)       /* the initiator's static key is no peer of ours */                          \
  X(decrypt_timestamp)  /* {t} failed authentication */                                              \
  X(replayed_timestamp) /* the timestamp is not after the last one accepted from the peer */         \
  X(initiation_flood)   /* the peer's previous initiation was consumed less than 1/50 s ago */       \
  X(unknown_index)      /* no handshake waits under the response's receiver index */                 \
  X(wrong_state)        /* the step does not follow from the peer's state */                         \
  X(decrypt_response)   /* {} of a response failed authentication */                                 \
  X(crypto_failure)     /* the crypto library failed (out of memory) */

enum class handshake_error : std::uint8_t { LOPOWER_HANDSHAKE_ERRORS(LOPOWER_ENUM_ENUMERATOR) };
inline constexpr std::size_t handshake_error_count = LOPOWER_ENUM_COUNT(LOPOWER_HANDSHAKE_ERRORS);
inline constexpr std::array<const char*, handshake_error_count> handshake_error_names{
    LOPOWER_HANDSHAKE_ERRORS(LOPOWER_ENUM_NAME)};

const char* to_string(handshake_error e) noexcept;

class peer_handshake;
class noise_symmetric_state;

// How the engine finds peers in the caller's tables.
struct peer_lookup {
  virtual ~peer_lookup() = default;
  // The peer with this static public key, or nullptr.
  virtual peer_handshake* by_static(const public_key& remote_static) = 0;
  // The peer whose initiation announced this index (the receiver index of
  // a response), or nullptr.
  virtual peer_handshake* by_index(std::uint32_t local_index) = 0;
};

struct consume_result {
  peer_handshake* peer = nullptr;  // set on success only
  handshake_error error = handshake_error::none;
  explicit operator bool() const noexcept { return error == handshake_error::none; }
};

// The keys of a new session (whitepaper 5.4.5).
struct transport_keys {
  key32 send;
  key32 receive;
  std::uint32_t local_index = 0;   // the receiver index peers put on data for us
  std::uint32_t remote_index = 0;  // the receiver index we put on data for them
  bool initiator = false;          // false: unconfirmed until the peer's first data packet arrives
};

// One peer's handshake: its static key, optional preshared key, the
// precomputed static-static DH, the handshake in progress, and the replay
// and flood state of the initiations it sent us. Only the functions below
// change it.
class peer_handshake {
 public:
  peer_handshake(const static_identity& local, const public_key& remote_static,
                 const std::optional<key32>& preshared_key = std::nullopt);

  // After our static key changed: recompute the static-static DH.
  void set_identity(const static_identity& local);
  void set_preshared_key(const std::optional<key32>& preshared_key);
  // Abandon the handshake in progress (Linux handshake_zero). The latest
  // timestamp and the flood clock survive: they guard against replays.
  void clear() noexcept;

  const public_key& remote_static() const noexcept { return remote_static_; }
  bool has_preshared_key() const noexcept { return !preshared_key_.is_zero(); }
  // False when DH(our static, the peer's static) is all zero: no handshake
  // with this peer can succeed.
  bool usable() const noexcept { return !precomputed_static_static_.is_zero(); }
  handshake_state state() const noexcept { return state_; }
  std::uint32_t local_index() const noexcept { return local_index_; }    // announced in our last message
  std::uint32_t remote_index() const noexcept { return remote_index_; }  // announced by the peer
  const tai64n& latest_timestamp() const noexcept { return latest_timestamp_; }
  // The handshake hash so far (channel binding; for tests and diagnostics).
  const key32& hash() const noexcept { return hash_; }

 private:
  friend handshake_error create_initiation(message_handshake_initiation&, peer_handshake&, const static_identity&,
                                           std::uint32_t, const tai64n&, random_source&);
  friend consume_result consume_initiation(const message_handshake_initiation&, const static_identity&,
                                                  peer_lookup&, std::uint64_t);
  friend handshake_error create_response(message_handshake_response&, peer_handshake&, const static_identity&,
                                         std::uint32_t, random_source&);
  friend consume_result consume_response(const message_handshake_response&, const static_identity&,
                                                peer_lookup&);
  friend std::optional<transport_keys> derive_keypair(peer_handshake&);

  // Keeps C and H of a step that succeeded (the message key dies with it).
  void keep(const noise_symmetric_state& s) noexcept;

  public_key remote_static_;
  key32 preshared_key_;  // all zero without one, as the protocol defines
  key32 precomputed_static_static_;

  handshake_state state_ = handshake_state::zeroed;
  private_key ephemeral_private_;
  public_key remote_ephemeral_;
  key32 hash_;
  key32 chaining_key_;
  std::uint32_t local_index_ = 0;
  std::uint32_t remote_index_ = 0;

  tai64n latest_timestamp_;
  std::uint64_t last_initiation_consumption_ns_ = 0;
  bool consumed_any_initiation_ = false;
};

// Initiator: fills `out` (MACs zero) and moves the peer to
// created_initiation, whatever it was doing. `sender_index` is the local
// index the caller reserved; the peer's previous local index, if any, is
// the caller's to release. `now` is tai64n_now() outside tests.
[[nodiscard]] handshake_error create_initiation(message_handshake_initiation& out, peer_handshake& peer,
                                                const static_identity& local, std::uint32_t sender_index,
                                                const tai64n& now, random_source& rng = system_random());

// Responder: authenticates an initiation (MAC1 already checked), finds its
// peer by the static key inside, rejects replayed timestamps and floods
// (`now_ns`: a monotonic clock), and moves that peer to consumed_initiation.
[[nodiscard]] consume_result consume_initiation(const message_handshake_initiation& in, const static_identity& local,
                                                peer_lookup& peers, std::uint64_t now_ns);

// Responder, after consume_initiation: fills `out` (MACs zero), moves the
// peer to created_response. derive_keypair may follow at once.
[[nodiscard]] handshake_error create_response(message_handshake_response& out, peer_handshake& peer,
                                              const static_identity& local, std::uint32_t sender_index,
                                              random_source& rng = system_random());

// Initiator: finds the handshake by the response's receiver index,
// authenticates the response and moves the peer to consumed_response.
[[nodiscard]] consume_result consume_response(const message_handshake_response& in, const static_identity& local,
                                              peer_lookup& peers);

// After created_response or consumed_response: the session keys. The
// handshake is cleared (back to zeroed); nullopt in any other state.
[[nodiscard]] std::optional<transport_keys> derive_keypair(peer_handshake& peer);

}  // namespace lopower::wg
