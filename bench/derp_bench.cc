// The DERP frame codec on the path of every packet relayed through DERP:
//   BM_FrameSendPacket   one SendPacket appended into a reused buffer, as
//                        derp::client::send_packet does (header, key, copy)
//   BM_ReadRecvPacket    RecvPacket frames out of a buffer of 64 of them fed
//                        in one piece, as a read from the socket brings them:
//                        frame_reader::feed + next + parse_recv_packet
//   BM_ReadRecvPacketTcpChunks  the same stream fed in 1448-byte pieces (one
//                        TCP segment each), so frames straddle feeds
// Arg: the packet size (64 B, 1280 B). items/s = packets/s.
//   ninja -C <build> bench/derp_bench && <build>/bench/derp_bench

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "control/tailnet/derp/derp_frames.h"

namespace {

namespace derp = lopower::tailnet::derp;

constexpr int frames_per_buffer = 64;

lopower::public_key some_key() {
  std::array<std::uint8_t, lopower::key_size> raw{};
  raw.fill(0x42);
  return lopower::public_key(raw);
}

std::vector<std::uint8_t> recv_stream(std::size_t packet_size) {
  const std::vector<std::uint8_t> packet(packet_size, 0xab);
  std::vector<std::uint8_t> stream;
  for (int i = 0; i < frames_per_buffer; ++i) derp::append_recv_packet(stream, some_key(), packet);
  return stream;
}

void BM_FrameSendPacket(benchmark::State& state) {
  const std::vector<std::uint8_t> packet(static_cast<std::size_t>(state.range(0)), 0xab);
  const auto dst = some_key();
  std::vector<std::uint8_t> out;
  for (auto _ : state) {
    out.clear();
    derp::append_send_packet(out, dst, packet);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_FrameSendPacket)->Arg(64)->Arg(1280);

// Reads every frame of `stream`, fed in pieces of `piece` bytes; returns
// the packet bytes seen (so the work cannot be dropped).
std::size_t read_all(derp::frame_reader& reader, const std::vector<std::uint8_t>& stream, std::size_t piece) {
  std::size_t seen = 0;
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    reader.feed(std::span(stream).subspan(at, std::min(piece, stream.size() - at)));
    for (;;) {
      auto next = reader.next();
      if (!next.ok() || !*next) break;
      auto packet = derp::parse_recv_packet((*next)->body);
      if (packet.ok()) seen += packet->packet.size();
    }
  }
  return seen;
}

void read_bench(benchmark::State& state, std::size_t piece) {
  const auto stream = recv_stream(static_cast<std::size_t>(state.range(0)));
  derp::frame_reader reader;
  for (auto _ : state) benchmark::DoNotOptimize(read_all(reader, stream, piece));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * frames_per_buffer);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * frames_per_buffer * state.range(0));
}

void BM_ReadRecvPacket(benchmark::State& state) { read_bench(state, SIZE_MAX); }
BENCHMARK(BM_ReadRecvPacket)->Arg(64)->Arg(1280);

void BM_ReadRecvPacketTcpChunks(benchmark::State& state) { read_bench(state, 1448); }
BENCHMARK(BM_ReadRecvPacketTcpChunks)->Arg(64)->Arg(1280);

}  // namespace

BENCHMARK_MAIN();
