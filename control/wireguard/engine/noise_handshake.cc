#include "control/wireguard/engine/noise_handshake.h"

#include <sodium.h>

#include <chrono>
#include <cstring>

#include "control/wireguard/engine/noise_symmetric.h"
#include "control/wireguard/engine/primitives.h"

namespace lopower::wg {
namespace {

using crypto::bytes;

constexpr char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
constexpr char label_mac1[] = "mac1----";
constexpr char label_cookie[] = "cookie--";

constexpr std::uint64_t initiation_min_interval_ns =
    std::chrono::nanoseconds(std::chrono::seconds(1)).count() / initiations_per_second;

// A string constant without its terminating NUL.
template <std::size_t N>
bytes text(const char (&s)[N]) {
  return bytes(reinterpret_cast<const std::uint8_t*>(s), N - 1);
}

template <class T>
bytes view(const T& key) {
  return bytes(key.data(), key.size());
}

class system_random_source final : public random_source {
 public:
  void fill(std::uint8_t* out, std::size_t length) noexcept override {
    crypto::init();
    randombytes_buf(out, length);
  }
};

// C0 = HASH(construction), H0 = HASH(C0 || identifier): the same for every
// handshake, so computed once.
const std::optional<noise_symmetric_state>& initial() {
  static const std::optional<noise_symmetric_state> state = []() -> std::optional<noise_symmetric_state> {
    noise_symmetric_state s;
    if (!s.initialize(construction) || !s.mix_hash(text(identifier))) return std::nullopt;
    return s;
  }();
  return state;
}

// The symmetric half of a handshake in progress (noise_symmetric.h) with
// WireGuard's tokens.
struct symmetric : noise_symmetric_state {
  using noise_symmetric_state::noise_symmetric_state;

  // C and H of a fresh handshake with the responder `responder_static`.
  bool init(const public_key& responder_static) {
    const auto& s = initial();
    if (!s) return false;
    static_cast<noise_symmetric_state&>(*this) = *s;
    return mix_hash(view(responder_static));
  }

  // The `e` token (psk mode): H = HASH(H || e), C = KDF1(C, e).
  bool mix_ephemeral(const std::uint8_t e[public_key_size]) {
    const bytes eb(e, public_key_size);
    return mix_hash(eb) && mix_chaining_key(eb);
  }

  // ss from the value precomputed per peer; all zero means DH failed.
  bool mix_static_static(const key32& precomputed) { return !precomputed.is_zero() && mix_key(view(precomputed)); }
};

// A fresh ephemeral key pair from `rng`.
bool generate_ephemeral(private_key& priv, std::uint8_t pub[public_key_size], random_source& rng) {
  rng.fill(priv.data(), priv.size());
  clamp_private_key(priv);
  const public_key p = public_from_private(priv);
  if (p.is_zero()) return false;
  std::memcpy(pub, p.data(), public_key_size);
  return true;
}

std::optional<key32> labelled_key(const char (&label)[9], const public_key& key) {
  key32 out;
  if (!crypto::hash(out.data(), {text(label), view(key)})) return std::nullopt;
  return out;
}

}  // namespace

random_source& system_random() noexcept {
  static system_random_source source;
  return source;
}

std::optional<key32> mac1_key_for(const public_key& key) { return labelled_key(label_mac1, key); }
std::optional<key32> cookie_key_for(const public_key& key) { return labelled_key(label_cookie, key); }

static_identity::static_identity(const private_key& key) : private_(key) {
  crypto::init();
  clamp_private_key(private_);
  public_ = public_from_private(private_);
  auto mac1 = mac1_key_for(public_);
  auto cookie = cookie_key_for(public_);
  if (public_.is_zero() || !mac1 || !cookie) return;
  mac1_key_ = *mac1;
  cookie_key_ = *cookie;
  valid_ = true;
}

const char* to_string(handshake_state s) noexcept { return name_in(handshake_state_names, s, "?"); }

const char* to_string(handshake_error e) noexcept { return name_in(handshake_error_names, e, "?"); }

peer_handshake::peer_handshake(const static_identity& local, const public_key& remote_static,
                               const std::optional<key32>& preshared_key)
    : remote_static_(remote_static) {
  set_preshared_key(preshared_key);
  set_identity(local);
}

void peer_handshake::set_identity(const static_identity& local) {
  crypto::init();
  // An unusable pair leaves this all zero, which every handshake refuses.
  if (!local.valid() ||
      !crypto::dh(precomputed_static_static_.data(), local.static_private().data(), remote_static_.data()))
    precomputed_static_static_.wipe();
  clear();
}

void peer_handshake::set_preshared_key(const std::optional<key32>& preshared_key) {
  if (preshared_key)
    preshared_key_ = *preshared_key;
  else
    preshared_key_.wipe();
}

void peer_handshake::keep(const noise_symmetric_state& s) noexcept {
  hash_ = s.hash();
  chaining_key_ = s.chaining_key();
}

void peer_handshake::clear() noexcept {
  state_ = handshake_state::zeroed;
  ephemeral_private_.wipe();
  remote_ephemeral_.wipe();
  hash_.wipe();
  chaining_key_.wipe();
  remote_index_ = 0;
}

handshake_error create_initiation(message_handshake_initiation& out, peer_handshake& peer, const static_identity& local,
                                  std::uint32_t sender_index, const tai64n& now, random_source& rng) {
  if (!local.valid()) return handshake_error::no_identity;
  if (!peer.usable()) return handshake_error::unusable_peer;
  peer.clear();
  std::memset(&out, 0, sizeof out);
  out.header.type = static_cast<std::uint8_t>(message_type::handshake_initiation);
  out.sender_index.set(sender_index);

  symmetric s;
  if (!s.init(peer.remote_static_)) return handshake_error::crypto_failure;

  // e
  private_key ephemeral;
  if (!generate_ephemeral(ephemeral, out.unencrypted_ephemeral, rng)) return handshake_error::bad_ephemeral;
  if (!s.mix_ephemeral(out.unencrypted_ephemeral)) return handshake_error::crypto_failure;

  // es
  if (!s.mix_dh(ephemeral, peer.remote_static_.data())) return handshake_error::unusable_peer;

  // s
  if (!s.encrypt_and_hash(out.encrypted_static, view(local.static_public()))) return handshake_error::crypto_failure;

  // ss
  if (!s.mix_static_static(peer.precomputed_static_static_)) return handshake_error::unusable_peer;

  // {t}
  if (!s.encrypt_and_hash(out.encrypted_timestamp, bytes(now.bytes.data(), now.bytes.size())))
    return handshake_error::crypto_failure;

  peer.ephemeral_private_ = std::move(ephemeral);
  peer.keep(s);
  peer.local_index_ = sender_index;
  peer.state_ = handshake_state::created_initiation;
  return handshake_error::none;
}

consume_result consume_initiation(const message_handshake_initiation& in, const static_identity& local,
                                  peer_lookup& peers, std::uint64_t now_ns) {
  if (!local.valid()) return {nullptr, handshake_error::no_identity};

  symmetric s;
  if (!s.init(local.static_public())) return {nullptr, handshake_error::crypto_failure};

  // e
  if (!s.mix_ephemeral(in.unencrypted_ephemeral)) return {nullptr, handshake_error::crypto_failure};

  // es
  if (!s.mix_dh(local.static_private(), in.unencrypted_ephemeral)) return {nullptr, handshake_error::bad_ephemeral};

  // s
  public_key initiator_static;
  if (!s.decrypt_and_hash(initiator_static.data(), bytes(in.encrypted_static, sizeof in.encrypted_static)))
    return {nullptr, handshake_error::decrypt_static};

  // Which peer is this?
  peer_handshake* peer = peers.by_static(initiator_static);
  if (peer == nullptr) return {nullptr, handshake_error::unknown_peer};

  // ss
  if (!s.mix_static_static(peer->precomputed_static_static_)) return {nullptr, handshake_error::unusable_peer};

  // {t}
  tai64n timestamp;
  if (!s.decrypt_and_hash(timestamp.bytes.data(), bytes(in.encrypted_timestamp, sizeof in.encrypted_timestamp)))
    return {nullptr, handshake_error::decrypt_timestamp};

  // Replays and floods: only a strictly newer timestamp is accepted, and
  // at most initiations_per_second from one peer.
  if (!tai64n_after(timestamp, peer->latest_timestamp_)) return {nullptr, handshake_error::replayed_timestamp};
  if (peer->consumed_any_initiation_ && now_ns - peer->last_initiation_consumption_ns_ < initiation_min_interval_ns)
    return {nullptr, handshake_error::initiation_flood};

  // Accepted: this replaces whatever the peer's handshake was doing.
  peer->clear();
  peer->remote_ephemeral_ = public_key::from_bytes(in.unencrypted_ephemeral);
  peer->latest_timestamp_ = timestamp;
  peer->keep(s);
  peer->remote_index_ = in.sender_index.get();
  if (!peer->consumed_any_initiation_ || now_ns > peer->last_initiation_consumption_ns_)
    peer->last_initiation_consumption_ns_ = now_ns;
  peer->consumed_any_initiation_ = true;
  peer->state_ = handshake_state::consumed_initiation;
  return {peer, handshake_error::none};
}

handshake_error create_response(message_handshake_response& out, peer_handshake& peer, const static_identity& local,
                                std::uint32_t sender_index, random_source& rng) {
  if (!local.valid()) return handshake_error::no_identity;
  if (peer.state_ != handshake_state::consumed_initiation) return handshake_error::wrong_state;
  std::memset(&out, 0, sizeof out);
  out.header.type = static_cast<std::uint8_t>(message_type::handshake_response);
  out.sender_index.set(sender_index);
  out.receiver_index.set(peer.remote_index_);

  symmetric s(peer.chaining_key_, peer.hash_);

  // e
  private_key ephemeral;
  if (!generate_ephemeral(ephemeral, out.unencrypted_ephemeral, rng)) return handshake_error::bad_ephemeral;
  if (!s.mix_ephemeral(out.unencrypted_ephemeral)) return handshake_error::crypto_failure;

  // ee
  if (!s.mix_dh(ephemeral, peer.remote_ephemeral_.data())) return handshake_error::bad_ephemeral;

  // se
  if (!s.mix_dh(ephemeral, peer.remote_static_.data())) return handshake_error::unusable_peer;

  // psk
  if (!s.mix_key_and_hash(view(peer.preshared_key_))) return handshake_error::crypto_failure;

  // {}
  if (!s.encrypt_and_hash(out.encrypted_nothing, bytes())) return handshake_error::crypto_failure;

  peer.ephemeral_private_ = std::move(ephemeral);
  peer.keep(s);
  peer.local_index_ = sender_index;
  peer.state_ = handshake_state::created_response;
  return handshake_error::none;
}

consume_result consume_response(const message_handshake_response& in, const static_identity& local,
                                peer_lookup& peers) {
  if (!local.valid()) return {nullptr, handshake_error::no_identity};
  const std::uint32_t receiver = in.receiver_index.get();
  peer_handshake* peer = peers.by_index(receiver);
  if (peer == nullptr) return {nullptr, handshake_error::unknown_index};
  if (peer->state_ != handshake_state::created_initiation || peer->local_index_ != receiver)
    return {nullptr, handshake_error::wrong_state};

  // Work on a copy: the peer changes only if the response authenticates.
  symmetric s(peer->chaining_key_, peer->hash_);

  // e
  if (!s.mix_ephemeral(in.unencrypted_ephemeral)) return {nullptr, handshake_error::crypto_failure};

  // ee
  if (!s.mix_dh(peer->ephemeral_private_, in.unencrypted_ephemeral)) return {nullptr, handshake_error::bad_ephemeral};

  // se
  if (!s.mix_dh(local.static_private(), in.unencrypted_ephemeral)) return {nullptr, handshake_error::bad_ephemeral};

  // psk
  if (!s.mix_key_and_hash(view(peer->preshared_key_))) return {nullptr, handshake_error::crypto_failure};

  // {}
  if (!s.decrypt_and_hash(nullptr, bytes(in.encrypted_nothing, sizeof in.encrypted_nothing)))
    return {nullptr, handshake_error::decrypt_response};

  peer->remote_ephemeral_ = public_key::from_bytes(in.unencrypted_ephemeral);
  peer->keep(s);
  peer->remote_index_ = in.sender_index.get();
  peer->state_ = handshake_state::consumed_response;
  return {peer, handshake_error::none};
}

std::optional<transport_keys> derive_keypair(peer_handshake& peer) {
  const bool initiator = peer.state_ == handshake_state::consumed_response;
  if (!initiator && peer.state_ != handshake_state::created_response) return std::nullopt;
  // (T_send_i, T_recv_i) = KDF2(C, empty); the responder's are swapped.
  transport_keys keys;
  key32& first = initiator ? keys.send : keys.receive;
  key32& second = initiator ? keys.receive : keys.send;
  const bool ok = noise_symmetric_state(peer.chaining_key_, peer.hash_).split(first, second);
  keys.local_index = peer.local_index_;
  keys.remote_index = peer.remote_index_;
  keys.initiator = initiator;
  peer.clear();
  if (!ok) return std::nullopt;
  return keys;
}

}  // namespace lopower::wg
