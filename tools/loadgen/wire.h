#pragma once
// WireGuard frames as a device sends them to lopower: Ethernet, IPv4 and
// UDP (dataplane/outer_headers.h writes them, as lopower's own send stage
// does), then the WireGuard message.

#include <rte_mbuf.h>

#include <cstddef>
#include <cstdint>

#include "dataplane/outer_headers.h"
#include "dataplane/crypto/aead_batch.h"
#include "lopower/keys.h"
#include "lopower/replay_window.h"

namespace lopower::loadgen {

inline constexpr unsigned outer_size = outer_header_size(false);

// One transport keypair of a device (the initiator's side of it).
struct transport_session {
  key32 send_key;
  key32 receive_key;
  std::uint32_t local_index = 0;   // lopower puts it on the data it sends us
  std::uint32_t remote_index = 0;  // we put it on ours
  std::uint64_t next_counter = 0;
  std::uint64_t established_tsc = 0;
  replay_window replay;
};

// A frame carrying `length` bytes of `message` to lopower along `path`.
rte_mbuf* handshake_frame(rte_mempool* pool, const wg_endpoint& path, const void* message, std::size_t length);

// A transport frame whose plaintext (`plain_length` bytes, not yet padded)
// the caller writes at the returned pointer; the frame has room for the
// padding and the tag. nullptr when the pool is empty.
std::uint8_t* transport_frame(rte_mempool* pool, const wg_endpoint& path, std::size_t plain_length, rte_mbuf*& out);

// The encryption of a transport frame built by transport_frame: pads the
// plaintext with zeros, writes the header with the session's next counter,
// and fills `op` for aead_backend::encrypt_burst.
void prepare_seal(rte_mbuf* frame, std::size_t plain_length, transport_session& session, crypto::aead_op& op);

// A keepalive (an empty transport message), sealed at once.
rte_mbuf* keepalive_frame(rte_mempool* pool, const wg_endpoint& path, transport_session& session,
                          crypto::aead_backend& aead);

}  // namespace lopower::loadgen
