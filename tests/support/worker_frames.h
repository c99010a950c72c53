#pragma once
// Sessions and WireGuard frames for driving a worker on a ring port, as the
// tests and benchmarks share them: a keypair installed for a peer (as a
// completed handshake leaves it), a frame sealed the way a peer sends it,
// and a frame the worker sent opened again (outer headers read, payload
// decrypted with the receiving peer's key).

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dataplane/inner_packet.h"
#include "dataplane/wg_session.h"

namespace lopower::test_support {

// A current keypair for `peer` (as a completed handshake leaves it) with a
// random send key and receive key. The receive key is copied to `receive`
// (the peer seals its frames with it); the send key to `send` when given
// (the peer opens what lopower sends with it). The caller inserts it into
// a session table, which owns it.
inline wg_keypair* make_keypair(wg_peer& peer, std::uint32_t local, std::uint8_t (&receive)[32],
                                std::uint8_t* send = nullptr) {
  auto* kp = new wg_keypair;
  randombytes_buf(receive, 32);
  std::memcpy(kp->receive_key, receive, 32);
  randombytes_buf(kp->send_key, 32);
  if (send != nullptr) std::memcpy(send, kp->send_key, 32);
  kp->local_index = local;
  kp->remote_index = local + 100;
  kp->confirmed = true;
  kp->created_tsc = rte_rdtsc();
  kp->peer = &peer;
  peer.current.store(kp);
  return kp;
}

// Seals `m` as the next frame a peer sends.
using seal_fn = std::function<void(rte_mbuf* m)>;

// Writes into `m` the frame a peer at `from` (its endpoint as lopower sees
// it) sends: an inner packet of `inner` bytes written by `write_inner`,
// padded, sealed with `key` under `counter` for receiver index `receiver`.
inline void seal_frame(rte_mbuf* m, std::uint16_t inner, const std::function<void(std::uint8_t* ip)>& write_inner,
                       const std::uint8_t* key, std::uint64_t counter, std::uint32_t receiver, const wg_endpoint& from) {
  rte_pktmbuf_reset(m);
  const std::uint16_t padded = static_cast<std::uint16_t>((inner + 15) & ~15);
  const unsigned outer = outer_header_size(from.ipv6);
  auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(outer + 16 + padded + 16)));
  if (f == nullptr) throw std::runtime_error("frame larger than an mbuf");
  std::uint8_t* msg = f + outer;
  std::uint8_t* ip = msg + 16;
  std::memset(ip, 0, padded);
  write_inner(ip);
  msg[0] = 4;
  msg[1] = msg[2] = msg[3] = 0;
  std::memcpy(msg + 4, &receiver, 4);
  std::memcpy(msg + 8, &counter, 8);
  std::uint8_t nonce[12] = {};
  std::memcpy(nonce + 4, &counter, 8);
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(ip, ip + padded, nullptr, ip, padded, nullptr, 0, nullptr, nonce, key);
  wg_endpoint toward_lopower = from;  // the frame travels peer -> lopower
  std::swap(toward_lopower.peer_ip, toward_lopower.local_ip);
  std::swap(toward_lopower.peer_port_be, toward_lopower.local_port_be);
  std::swap(toward_lopower.peer_mac, toward_lopower.local_mac);
  write_outer_headers(f, toward_lopower, static_cast<std::uint16_t>(16 + padded + 16));
}

// The same, with the inner packet given whole.
inline void seal_packet(rte_mbuf* m, const std::vector<std::uint8_t>& packet, const std::uint8_t* key,
                        std::uint64_t counter, std::uint32_t receiver, const wg_endpoint& from) {
  seal_frame(
      m, static_cast<std::uint16_t>(packet.size()),
      [&packet](std::uint8_t* ip) { std::memcpy(ip, packet.data(), packet.size()); }, key, counter, receiver, from);
}

// Fills `rx` with `frames` sealed frames from `pool`.
inline void fill(rte_mempool* pool, rte_ring* rx, unsigned frames, const seal_fn& seal) {
  for (unsigned i = 0; i < frames; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) throw std::runtime_error("mbuf pool exhausted");
    seal(m);
    rte_ring_sp_enqueue(rx, m);
  }
}

// A frame lopower sent, read back: Ethernet, IPv4 or IPv6, UDP, a
// WireGuard message.
struct sent_frame {
  std::vector<std::uint8_t> bytes;  // the whole frame
  bool ipv6 = false;
  std::size_t ip_offset = 14, udp_offset = 0, message_offset = 0;
  std::uint8_t src_ip[16]{}, dst_ip[16]{};
  std::uint16_t src_port = 0, dst_port = 0, udp_length = 0;
  std::uint8_t type = 0;  // the WireGuard message type
  std::uint32_t receiver = 0;
  std::uint64_t counter = 0;

  static std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

  // nullopt unless the frame is Ethernet + IP + UDP with a message in it.
  static std::optional<sent_frame> read(const rte_mbuf* m) {
    sent_frame f;
    f.bytes.assign(rte_pktmbuf_mtod(m, const std::uint8_t*), rte_pktmbuf_mtod(m, const std::uint8_t*) + m->data_len);
    const auto& b = f.bytes;
    if (b.size() < 14 + 20 + 8 + 4) return std::nullopt;
    const std::uint16_t ethertype = be16(&b[12]);
    if (ethertype == 0x0800) {
      if ((b[14] >> 4) != 4 || b[23] != 17) return std::nullopt;
      f.udp_offset = 14 + 4u * (b[14] & 15);
      std::memcpy(f.src_ip, &b[26], 4);
      std::memcpy(f.dst_ip, &b[30], 4);
    } else if (ethertype == 0x86dd) {
      if (b.size() < 14 + 40 + 8 + 4 || b[20] != 17) return std::nullopt;
      f.ipv6 = true;
      f.udp_offset = 14 + 40;
      std::memcpy(f.src_ip, &b[22], 16);
      std::memcpy(f.dst_ip, &b[38], 16);
    } else {
      return std::nullopt;
    }
    f.src_port = be16(&b[f.udp_offset]);
    f.dst_port = be16(&b[f.udp_offset + 2]);
    f.udp_length = be16(&b[f.udp_offset + 4]);
    f.message_offset = f.udp_offset + 8;
    if (f.message_offset + 4 > b.size()) return std::nullopt;
    f.type = b[f.message_offset];
    if (f.type == 4 && f.message_offset + 32 <= b.size()) {
      std::memcpy(&f.receiver, &b[f.message_offset + 4], 4);
      std::memcpy(&f.counter, &b[f.message_offset + 8], 8);
    }
    return f;
  }

  // The transport message's plaintext (padding included), opened with
  // `key`; nullopt if it is no transport message or fails authentication.
  std::optional<std::vector<std::uint8_t>> open(const std::uint8_t* key) const {
    if (type != 4 || message_offset + 32 > bytes.size()) return std::nullopt;
    const std::size_t length = bytes.size() - message_offset - 32;
    std::vector<std::uint8_t> plain(length);
    std::uint8_t nonce[12] = {};
    std::memcpy(nonce + 4, &counter, 8);
    const std::uint8_t* c = &bytes[message_offset + 16];
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(plain.data(), nullptr, c, length, c + length, nullptr, 0,
                                                           nonce, key) != 0)
      return std::nullopt;
    return plain;
  }
};

// Everything the worker sent to `tx`, read back (each mbuf freed).
inline std::vector<sent_frame> take_sent(rte_ring* tx) {
  std::vector<sent_frame> out;
  void* m;
  while (rte_ring_sc_dequeue(tx, &m) == 0) {
    auto* mb = static_cast<rte_mbuf*>(m);
    if (auto f = sent_frame::read(mb)) out.push_back(std::move(*f));
    else out.push_back(sent_frame{{rte_pktmbuf_mtod(mb, const std::uint8_t*), rte_pktmbuf_mtod(mb, const std::uint8_t*) + mb->data_len}});
    rte_pktmbuf_free(mb);
  }
  return out;
}

}  // namespace lopower::test_support
