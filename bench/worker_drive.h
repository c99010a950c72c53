#pragma once
// The timed loop the worker benchmarks share: frames circulate between a
// ring port's RX and TX rings; every `refill_every` bursts the sent frames
// are sealed afresh (counters must stay new for the replay window) outside
// the timed region.

#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>
#include <functional>
#include <stdexcept>

#include <sodium.h>

#include <cstring>
#include <utility>

#include "dataplane/inner_packet.h"
#include "dataplane/worker.h"

namespace lopower::bench {

// A current keypair for `peer` (as a completed handshake leaves it) with a
// random send key and receive key; the receive key is copied to `receive`:
// the benchmark seals the peer's frames with it.
inline wg_keypair* make_keypair(wg_peer& peer, std::uint32_t local, std::uint8_t (&receive)[32]) {
  auto* kp = new wg_keypair;
  randombytes_buf(receive, 32);
  std::memcpy(kp->receive_key, receive, 32);
  randombytes_buf(kp->send_key, 32);
  kp->local_index = local;
  kp->remote_index = local + 100;
  kp->confirmed = true;
  kp->created_tsc = rte_rdtsc();
  kp->peer = &peer;
  peer.current.store(kp);
  return kp;
}

// Seals `m` as the next frame the peer sends.
using seal_fn = std::function<void(rte_mbuf* m)>;

// Writes into `m` the frame a device at `device` (as lopower sees it) sends:
// an inner packet of `inner` bytes written by `write_inner`, padded,
// sealed with `key` under `counter` for receiver index `receiver`.
inline void seal_device_frame(rte_mbuf* m, std::uint16_t inner, const std::function<void(std::uint8_t* ip)>& write_inner,
                              const std::uint8_t* key, std::uint64_t counter, std::uint32_t receiver,
                              const wg_endpoint& device) {
  rte_pktmbuf_reset(m);
  const std::uint16_t padded = static_cast<std::uint16_t>((inner + 15) & ~15);
  const unsigned outer = outer_header_size(false);
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
  wg_endpoint from_device = device;  // the frame travels device -> lopower
  std::swap(from_device.peer_ip, from_device.local_ip);
  std::swap(from_device.peer_port_be, from_device.local_port_be);
  write_outer_headers(f, from_device, static_cast<std::uint16_t>(16 + padded + 16));
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

// Runs the worker for the benchmark's iterations; returns the packets moved.
inline std::uint64_t drive(benchmark::State& state, worker& w, rte_ring* rx, rte_ring* tx, rte_ring* events,
                           unsigned refill_every, const seal_fn& seal) {
  std::uint64_t moved = 0;
  unsigned bursts = 0;
  for (auto _ : state) {
    moved += w.poll_once();
    if (++bursts != refill_every) continue;
    state.PauseTiming();
    w.flush();
    void* objs[256];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(tx, objs, 256, nullptr)) != 0)
      for (unsigned i = 0; i < n; ++i) {
        seal(static_cast<rte_mbuf*>(objs[i]));
        rte_ring_sp_enqueue(rx, objs[i]);
      }
    wg_event ev;
    while (rte_ring_sc_dequeue_elem(events, &ev, sizeof ev) == 0) {}
    bursts = 0;
    state.ResumeTiming();
  }
  w.flush();
  return moved;
}

// Frees every frame left in the rings.
inline void drain(std::initializer_list<rte_ring*> rings) {
  void* m;
  for (rte_ring* r : rings)
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
}

}  // namespace lopower::bench
