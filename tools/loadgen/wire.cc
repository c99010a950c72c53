#include "tools/loadgen/wire.h"

#include <cstring>

#include "lopower/wireguard_messages.h"

namespace lopower::loadgen {

rte_mbuf* handshake_frame(rte_mempool* pool, const wg_endpoint& path, const void* message, std::size_t length) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  auto* frame = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(outer_size + length)));
  if (frame == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memcpy(frame + outer_size, message, length);
  write_outer_headers(frame, path, static_cast<std::uint16_t>(length));
  return m;
}

std::uint8_t* transport_frame(rte_mempool* pool, const wg_endpoint& path, std::size_t plain_length, rte_mbuf*& out) {
  out = rte_pktmbuf_alloc(pool);
  if (out == nullptr) return nullptr;
  const std::size_t message = wg::message_data_size(plain_length);
  auto* frame = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(out, static_cast<std::uint16_t>(outer_size + message)));
  if (frame == nullptr) {
    rte_pktmbuf_free(out);
    out = nullptr;
    return nullptr;
  }
  write_outer_headers(frame, path, static_cast<std::uint16_t>(message));
  return frame + outer_size + sizeof(wg::message_data);
}

void prepare_seal(rte_mbuf* frame, std::size_t plain_length, transport_session& session, crypto::aead_op& op) {
  auto* message = rte_pktmbuf_mtod_offset(frame, std::uint8_t*, outer_size);
  const std::size_t padded = wg::padded_size(plain_length);
  std::uint8_t* plain = message + sizeof(wg::message_data);
  std::memset(plain + plain_length, 0, padded - plain_length);
  const std::uint64_t counter = session.next_counter++;
  wg::write_data_header(message, session.remote_index, counter);
  op = crypto::aead_op{plain, static_cast<std::uint32_t>(padded), plain + padded, session.send_key.data(), counter, false};
}

rte_mbuf* keepalive_frame(rte_mempool* pool, const wg_endpoint& path, transport_session& session,
                          crypto::aead_backend& aead) {
  rte_mbuf* m = nullptr;
  if (transport_frame(pool, path, 0, m) == nullptr) return nullptr;
  crypto::aead_op op{};
  prepare_seal(m, 0, session, op);
  aead.encrypt_burst(&op, 1);
  if (!op.ok) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  return m;
}

}  // namespace lopower::loadgen
