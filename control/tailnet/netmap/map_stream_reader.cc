#include "control/tailnet/netmap/map_stream_reader.h"

#include <algorithm>
#include <new>
#include <utility>

#include <zstd.h>

#include "lopower/byte_order.h"

namespace lopower::tailnet {

namespace {

ZSTD_DCtx* dctx_of(void* p) { return static_cast<ZSTD_DCtx*>(p); }

// The largest window a frame may ask for: no message can be larger than
// max_message_bytes, so neither need its window be (and a hostile header
// cannot make us reserve the library's default 128 MiB).
int window_log_for(std::size_t max_message_bytes) {
  int log = 10;  // ZSTD_WINDOWLOG_ABSOLUTEMIN
  while (log < 31 && (std::size_t{1} << log) < max_message_bytes) ++log;
  return log;
}

// The words every size refusal uses: `lopower-ctl status` shows them.
std::string frame_too_large(std::uint64_t bytes, std::size_t limit) {
  return "map response of " + std::to_string(bytes) + " bytes (compressed) exceeds the limit of " +
         std::to_string(limit);
}

std::string message_too_large(std::uint64_t bytes, std::size_t limit) {
  return "map response of " + std::to_string(bytes) + " bytes exceeds the limit of " + std::to_string(limit);
}

}  // namespace

map_stream_reader::map_stream_reader() : map_stream_reader(limits{}) {}

map_stream_reader::map_stream_reader(const limits& l) : limits_(l) {
  if (limits_.compressed) {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    if (d == nullptr) {
      error_ = "zstd: cannot create a decompression context";
      return;
    }
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, window_log_for(limits_.max_message_bytes));
    dctx_ = d;
  }
}

map_stream_reader::~map_stream_reader() { ZSTD_freeDCtx(dctx_of(dctx_)); }

map_stream_reader::map_stream_reader(map_stream_reader&& other) noexcept
    : limits_(other.limits_),
      dctx_(std::exchange(other.dctx_, nullptr)),
      buffer_(std::move(other.buffer_)),
      consumed_(std::exchange(other.consumed_, 0)),
      error_(std::move(other.error_)),
      messages_(other.messages_) {
  other.buffer_.clear();
  other.error_ = "moved from";
}

map_stream_reader& map_stream_reader::operator=(map_stream_reader&& other) noexcept {
  if (this != &other) {
    ZSTD_freeDCtx(dctx_of(dctx_));
    limits_ = other.limits_;
    dctx_ = std::exchange(other.dctx_, nullptr);
    buffer_ = std::move(other.buffer_);
    consumed_ = std::exchange(other.consumed_, 0);
    error_ = std::move(other.error_);
    messages_ = other.messages_;
    other.buffer_.clear();
    other.error_ = "moved from";
  }
  return *this;
}

bool map_stream_reader::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  buffer_.clear();
  buffer_.shrink_to_fit();
  consumed_ = 0;
  return false;
}

bool map_stream_reader::feed(std::span<const std::uint8_t> bytes) {
  if (failed()) return false;
  try {
    // Drop what was handed out before growing.
    if (consumed_ > 0 && (consumed_ == buffer_.size() || consumed_ >= buffer_.size() / 2)) {
      buffer_.erase(0, consumed_);
      consumed_ = 0;
    }
    buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  } catch (const std::bad_alloc&) {
    return fail("out of memory buffering the map stream");
  }
  // A length over the limit is refused before its body arrives. Only the
  // next length is looked at: later ones are checked in their turn.
  if (buffered() >= 4) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(buffer_.data() + consumed_);
    const std::uint32_t len = load_le32(p);
    if (len > limits_.max_frame_bytes) return fail(frame_too_large(len, limits_.max_frame_bytes));
  }
  return true;
}

std::optional<std::string> map_stream_reader::next() {
  if (failed() || buffered() < 4) return std::nullopt;
  const auto* p = reinterpret_cast<const std::uint8_t*>(buffer_.data() + consumed_);
  const std::uint32_t len = load_le32(p);
  if (len > limits_.max_frame_bytes) {
    fail(frame_too_large(len, limits_.max_frame_bytes));
    return std::nullopt;
  }
  if (buffered() - 4 < len) return std::nullopt;
  const std::string_view body(buffer_.data() + consumed_ + 4, len);
  std::optional<std::string> out;
  if (limits_.compressed) {
    out = decompress(body);
    if (!out) return std::nullopt;
  } else {
    if (body.size() > limits_.max_message_bytes) {
      fail(message_too_large(body.size(), limits_.max_message_bytes));
      return std::nullopt;
    }
    try {
      out = std::string(body);
    } catch (const std::bad_alloc&) {
      fail("out of memory copying a map message");
      return std::nullopt;
    }
  }
  consumed_ += 4 + len;
  ++messages_;
  // The next length, if already here, is checked now rather than later.
  if (buffered() >= 4) feed(std::span<const std::uint8_t>());
  return out;
}

// One body: one zstd frame (tailscale's decoder also takes several frames
// back to back, and skippable frames; so does this). The decoded size stops
// at the limit whatever the frame header says.
std::optional<std::string> map_stream_reader::decompress(std::string_view body) {
  std::string out;
  if (body.empty()) return out;  // an empty body decodes to nothing, as in Go
  // A frame header that declares more than the limit is refused before
  // anything is decoded (and the refusal can say how large the map was).
  const unsigned long long declared = ZSTD_getFrameContentSize(body.data(), body.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
      declared > limits_.max_message_bytes) {
    fail(message_too_large(declared, limits_.max_message_bytes));
    return std::nullopt;
  }
  ZSTD_DCtx* d = dctx_of(dctx_);
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  ZSTD_inBuffer in{body.data(), body.size(), 0};
  std::size_t produced = 0;
  std::size_t last = 1;  // ZSTD_decompressStream: 0 when a frame is done
  try {
    out.resize(std::min<std::size_t>(limits_.max_message_bytes, std::max<std::size_t>(4 * body.size(), 4096)));
    for (;;) {
      if (produced == out.size()) {
        if (out.size() >= limits_.max_message_bytes) {
          // At the limit: one byte of room tells whether more would come.
          char probe;
          ZSTD_outBuffer o{&probe, 1, 0};
          const std::size_t r = ZSTD_decompressStream(d, &o, &in);
          if (ZSTD_isError(r)) {
            fail(std::string("zstd: ") + ZSTD_getErrorName(r));
            return std::nullopt;
          }
          if (o.pos > 0) {
            fail("map response decompresses to more than the limit of " +
                 std::to_string(limits_.max_message_bytes) + " bytes");
            return std::nullopt;
          }
          last = r;
          if (in.pos == in.size) break;
          continue;
        }
        out.resize(std::min(limits_.max_message_bytes, out.size() * 2));
      }
      ZSTD_outBuffer o{out.data() + produced, out.size() - produced, 0};
      const std::size_t r = ZSTD_decompressStream(d, &o, &in);
      if (ZSTD_isError(r)) {
        fail(std::string("zstd: ") + ZSTD_getErrorName(r));
        return std::nullopt;
      }
      produced += o.pos;
      last = r;
      // All input used and either the frame is done and flushed, or room
      // was left over (the decoder has given all it can). Probing a done
      // frame would start waiting for the next one.
      if (in.pos == in.size && (r == 0 || o.pos < o.size)) break;
    }
  } catch (const std::bad_alloc&) {
    fail("out of memory decompressing a map message");
    return std::nullopt;
  }
  if (last != 0) {
    fail("zstd: truncated frame");
    return std::nullopt;
  }
  out.resize(produced);
  return out;
}

std::optional<map_response> map_stream_reader::next_response(const parse_limits& pl) {
  auto text = next();
  if (!text) return std::nullopt;
  auto parsed = parse_map_response(*text, pl);
  if (!parsed) {
    fail(std::move(parsed.error));
    return std::nullopt;
  }
  return std::move(parsed.response);
}

std::string map_stream_reader::frame(std::string_view json, bool compressed, int level) {
  std::string body;
  if (compressed) {
    body.resize(ZSTD_compressBound(json.size()));
    const std::size_t n = ZSTD_compress(body.data(), body.size(), json.data(), json.size(), level);
    if (ZSTD_isError(n)) return {};
    body.resize(n);
  } else {
    body.assign(json);
  }
  const auto len = static_cast<std::uint32_t>(body.size());
  std::string out;
  out.reserve(4 + body.size());
  std::uint8_t prefix[4];
  store_le32(prefix, len);
  out.append(reinterpret_cast<const char*>(prefix), sizeof prefix);
  out += body;
  return out;
}

}  // namespace lopower::tailnet
