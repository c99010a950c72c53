#pragma once
// The framing of a streamed /machine/map response: each message is
// [u32 little-endian length][body], the body one JSON MapResponse, compressed
// as zstd when the MapRequest asked for Compress:"zstd" (tailscale's
// controlclient reads exactly this; headscale writes it in poll.go).
//
// The reader takes the bytes as they arrive, in chunks of any size, and
// hands back whole decompressed messages. It trusts nothing in the stream:
// a length over max_frame_bytes is refused as soon as its four bytes are in,
// a zstd frame whose header declares more than max_message_bytes before it
// is decoded, and decompression stops at max_message_bytes whatever the
// header claims (ZSTD_decompressStream into a buffer grown on demand; the
// window a frame may demand is capped as well). After an error the stream is
// dead: feed() and next() keep failing. Size refusals read "map response of
// N bytes exceeds the limit of M" (what `lopower-ctl status` then shows).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "control/tailnet/netmap/map_response.h"

namespace lopower::tailnet {

class map_stream_reader {
 public:
  struct limits {
    std::size_t max_frame_bytes = std::size_t{16} << 20;    // the body as sent
    std::size_t max_message_bytes = std::size_t{64} << 20;  // the body decompressed
    bool compressed = true;                                 // zstd bodies
  };

  map_stream_reader();
  explicit map_stream_reader(const limits& l);
  ~map_stream_reader();
  map_stream_reader(const map_stream_reader&) = delete;
  map_stream_reader& operator=(const map_stream_reader&) = delete;
  map_stream_reader(map_stream_reader&& other) noexcept;
  map_stream_reader& operator=(map_stream_reader&& other) noexcept;

  // Takes more bytes of the stream. False once the stream is in error (a
  // length over the limit is caught here).
  bool feed(std::span<const std::uint8_t> bytes);
  bool feed(std::string_view bytes) {
    return feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  }

  // The next whole message (decompressed JSON), or nullopt when none is
  // complete yet or the stream is in error (see failed()).
  std::optional<std::string> next();
  // next() parsed; parse errors, too, leave the stream in error.
  std::optional<map_response> next_response(const parse_limits& pl = {});

  bool failed() const noexcept { return !error_.empty(); }
  const std::string& error() const noexcept { return error_; }
  // Bytes taken but not yet returned as a message.
  std::size_t buffered() const noexcept { return buffer_.size() - consumed_; }
  std::uint64_t messages() const noexcept { return messages_; }

  // One body for the wire: [u32 LE length][zstd frame of json] (or the
  // plain JSON when !compressed). For tests, tools and the fake server side.
  static std::string frame(std::string_view json, bool compressed = true, int level = 1);

 private:
  bool fail(std::string why);
  std::optional<std::string> decompress(std::string_view body);

  limits limits_;
  void* dctx_ = nullptr;  // ZSTD_DCtx
  std::string buffer_;
  std::size_t consumed_ = 0;
  std::string error_;
  std::uint64_t messages_ = 0;
};

}  // namespace lopower::tailnet
