// The map stream framing: [u32 LE length][zstd frame of JSON], read from
// chunks of any size, with every limit enforced and every error clean.
#include <gtest/gtest.h>

#include <zstd.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/tailnet/netmap/map_stream_reader.h"
#include "control/tailnet/netmap/netmap.h"
#include "lopower/byte_order.h"
#include "netmap_test_util.h"

namespace lopower::tailnet {
namespace {

std::string le32(std::uint32_t v) {
  std::uint8_t b[4];
  store_le32(b, v);
  return std::string(reinterpret_cast<const char*>(b), sizeof b);
}

std::string zstd(const std::string& text, int level = 3) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), level);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::vector<std::string> alpha_session_texts() {
  std::vector<std::string> out;
  for (const auto& f : test::session("alpha")) out.push_back(test::read_fixture(f));
  // The manifest lists 28 recorded responses for "alpha": none would pass vacuously.
  if (out.size() < 2) throw std::runtime_error("the alpha session has " + std::to_string(out.size()) + " responses");
  return out;
}

std::vector<std::string> drain(map_stream_reader& r) {
  std::vector<std::string> out;
  while (auto m = r.next()) out.push_back(std::move(*m));
  return out;
}

TEST(MapStreamReader, RoundTripOfEveryRecordedResponse) {
  const auto texts = alpha_session_texts();
  std::string stream;
  for (const auto& t : texts) stream += le32(static_cast<std::uint32_t>(zstd(t).size())) + zstd(t);
  map_stream_reader r;
  ASSERT_TRUE(r.feed(stream));
  EXPECT_EQ(drain(r), texts);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.buffered(), 0u);
  EXPECT_EQ(r.messages(), texts.size());
}

TEST(MapStreamReader, ByteAtATimeGivesTheSameMessagesAndNetmap) {
  const auto texts = alpha_session_texts();
  std::string stream;
  for (const auto& t : texts) stream += map_stream_reader::frame(t);
  map_stream_reader r;
  netmap nm;
  std::size_t got = 0;
  for (const char c : stream) {
    ASSERT_TRUE(r.feed(std::string_view(&c, 1)));
    while (auto resp = r.next_response()) {
      ASSERT_TRUE(nm.apply(std::move(*resp)).ok());
      ++got;
    }
  }
  EXPECT_EQ(got, texts.size());
  EXPECT_FALSE(r.failed());
  ASSERT_EQ(nm.peer_count(), 1u);
  EXPECT_EQ(nm.peers()[0].id, 3);
}

TEST(MapStreamReader, RandomChunks) {
  const auto texts = alpha_session_texts();
  std::string stream;
  for (const auto& t : texts) stream += map_stream_reader::frame(t, true, 1);
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    map_stream_reader r;
    std::vector<std::string> got;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      const std::size_t n = std::min<std::size_t>(stream.size() - pos, rng() % 3000);
      ASSERT_TRUE(r.feed(std::string_view(stream).substr(pos, n)));
      pos += n;
      for (auto& m : drain(r)) got.push_back(std::move(m));
    }
    EXPECT_EQ(got, texts);
  }
}

TEST(MapStreamReader, UncompressedStream) {
  map_stream_reader::limits l;
  l.compressed = false;
  map_stream_reader r(l);
  const std::string ka = "{\"KeepAlive\":true}";
  ASSERT_TRUE(r.feed(map_stream_reader::frame(ka, false) + map_stream_reader::frame(ka, false)));
  EXPECT_EQ(drain(r), (std::vector<std::string>{ka, ka}));
}

TEST(MapStreamReader, PartialFrameWaits) {
  const std::string f = map_stream_reader::frame("{\"KeepAlive\":true}");
  map_stream_reader r;
  ASSERT_TRUE(r.feed(std::string_view(f).substr(0, 3)));
  EXPECT_FALSE(r.next());
  ASSERT_TRUE(r.feed(std::string_view(f).substr(3, f.size() - 4)));
  EXPECT_FALSE(r.next());
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.buffered(), f.size() - 1);
  ASSERT_TRUE(r.feed(std::string_view(f).substr(f.size() - 1)));
  EXPECT_EQ(r.next(), std::optional<std::string>("{\"KeepAlive\":true}"));
}

TEST(MapStreamReader, TruncatedZstdFrameIsAnError) {
  const std::string body = zstd(test::read_fixture(test::manifest()["examples"]["full"]));
  const std::string cut = body.substr(0, body.size() / 2);
  map_stream_reader r;
  ASSERT_TRUE(r.feed(le32(static_cast<std::uint32_t>(cut.size())) + cut));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());
  EXPECT_NE(r.error().find("zstd"), std::string::npos) << r.error();
  // Dead from then on.
  EXPECT_FALSE(r.feed(map_stream_reader::frame("{}")));
  EXPECT_FALSE(r.next());
}

TEST(MapStreamReader, GarbageBodyIsAnError) {
  map_stream_reader r;
  ASSERT_TRUE(r.feed(le32(5) + "hello"));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());
}

TEST(MapStreamReader, TrailingBytesAfterTheFrameAreAnError) {
  const std::string body = zstd("{}") + "xyz";
  map_stream_reader r;
  ASSERT_TRUE(r.feed(le32(static_cast<std::uint32_t>(body.size())) + body));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());
}

TEST(MapStreamReader, ConcatenatedAndSkippableFramesInOneBody) {
  // Tailscale's decoder (DecodeAll) takes these; so does this reader.
  std::string skippable = le32(0x184D2A50) + le32(3) + "abc";
  const std::string body = zstd("{\"Keep") + skippable + zstd("Alive\":true}");
  map_stream_reader r;
  ASSERT_TRUE(r.feed(le32(static_cast<std::uint32_t>(body.size())) + body));
  EXPECT_EQ(r.next(), std::optional<std::string>("{\"KeepAlive\":true}"));
}

TEST(MapStreamReader, EmptyBodyIsAnEmptyMessageThatDoesNotParse) {
  map_stream_reader r;
  ASSERT_TRUE(r.feed(le32(0)));
  EXPECT_EQ(r.next(), std::optional<std::string>(""));
  ASSERT_TRUE(r.feed(le32(0)));
  EXPECT_FALSE(r.next_response());
  EXPECT_TRUE(r.failed());
  EXPECT_NE(r.error().find("JSON"), std::string::npos);
}

TEST(MapStreamReader, OversizedLengthIsRefusedBeforeTheBody) {
  map_stream_reader::limits l;
  l.max_frame_bytes = 1000;
  {
    map_stream_reader r(l);
    ASSERT_TRUE(r.feed(std::string_view("\xe9\x03", 2)));  // 1001, low bytes only so far
    EXPECT_FALSE(r.feed(std::string_view("\x00\x00", 2)));
    EXPECT_TRUE(r.failed());
    EXPECT_EQ(r.error(), "map response of 1001 bytes (compressed) exceeds the limit of 1000");
  }
  {
    map_stream_reader r(l);
    ASSERT_TRUE(r.feed(le32(1000)));  // exactly the limit is fine
    EXPECT_FALSE(r.failed());
  }
  {
    // The largest length the field can hold: no overflow, no allocation.
    map_stream_reader r;
    EXPECT_FALSE(r.feed(le32(0xffffffffu)));
    EXPECT_TRUE(r.failed());
    EXPECT_LT(r.buffered(), 8u);
  }
  {
    // A bad length behind a good message is caught once that message is taken.
    map_stream_reader r(l);
    ASSERT_TRUE(r.feed(map_stream_reader::frame("{}") + le32(5000)));
    EXPECT_EQ(r.next(), std::optional<std::string>("{}"));
    EXPECT_TRUE(r.failed());
  }
}

// A zstd frame that decodes to `total` zero bytes, written without ever
// holding them; with the size in its header, or (`declared` false) not.
std::string zstd_bomb(std::size_t total, int window_log, bool declared = true) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  if (declared)
    ZSTD_CCtx_setPledgedSrcSize(c, total);
  else
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  std::string chunk(1 << 20, '\0');
  std::string out;
  std::string buf(ZSTD_CStreamOutSize(), '\0');
  std::size_t left = total;
  while (true) {
    const std::size_t n = std::min(left, chunk.size());
    left -= n;
    ZSTD_inBuffer in{chunk.data(), n, 0};
    const ZSTD_EndDirective mode = left == 0 ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      const std::size_t rem = ZSTD_compressStream2(c, &o, &in, mode);
      EXPECT_FALSE(ZSTD_isError(rem));
      out.append(buf.data(), o.pos);
      if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size) break;
    }
    if (left == 0) break;
  }
  ZSTD_freeCCtx(c);
  return out;
}

TEST(MapStreamReader, ADeclaredSizeOverTheLimitIsRefusedBeforeDecoding) {
  map_stream_reader::limits l;
  l.max_message_bytes = 1 << 20;
  const std::string bomb = zstd_bomb(std::size_t{256} << 20, 17);
  map_stream_reader r(l);
  ASSERT_TRUE(r.feed(le32(static_cast<std::uint32_t>(bomb.size())) + bomb));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(r.error(), "map response of 268435456 bytes exceeds the limit of 1048576");
}

TEST(MapStreamReader, DecompressionBombStopsAtTheLimit) {
  map_stream_reader::limits l;
  l.max_message_bytes = 1 << 20;
  // 256 MiB of zeros in a frame with a window the reader accepts, its size
  // not in the header: decoding stops at the limit.
  const std::string bomb = zstd_bomb(std::size_t{256} << 20, 17, false);
  EXPECT_LT(bomb.size(), 64u * 1024);
  map_stream_reader r(l);
  ASSERT_TRUE(r.feed(le32(static_cast<std::uint32_t>(bomb.size())) + bomb));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());
  EXPECT_NE(r.error().find("more than"), std::string::npos) << r.error();

  // The default limits, too (64 MiB): refused, not decoded to the end.
  map_stream_reader d;
  ASSERT_TRUE(d.feed(le32(static_cast<std::uint32_t>(bomb.size())) + bomb));
  EXPECT_FALSE(d.next());
  EXPECT_TRUE(d.failed());
  EXPECT_NE(d.error().find("more than"), std::string::npos) << d.error();

  // A frame whose window is larger than any message may be is refused
  // before anything is decoded.
  const std::string wide = zstd_bomb(std::size_t{4} << 20, 22, false);
  map_stream_reader w(l);
  ASSERT_TRUE(w.feed(le32(static_cast<std::uint32_t>(wide.size())) + wide));
  EXPECT_FALSE(w.next());
  EXPECT_NE(w.error().find("memory"), std::string::npos) << w.error();
}

TEST(MapStreamReader, MessageOfExactlyTheLimitPasses) {
  map_stream_reader::limits l;
  l.max_message_bytes = 10000;
  std::string text = "{\"Domain\":\"" + std::string(10000 - 13, 'a') + "\"}";
  ASSERT_EQ(text.size(), 10000u);
  map_stream_reader r(l);
  ASSERT_TRUE(r.feed(map_stream_reader::frame(text)));
  EXPECT_EQ(r.next(), std::optional<std::string>(text)) << r.error();
  text.insert(1, " ");
  ASSERT_TRUE(r.feed(map_stream_reader::frame(text)));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());
}

TEST(MapStreamReader, FrameHeaderClaimsAreNotTrusted) {
  // A hand-made frame: single segment, 8-byte content size of 1 GiB, then
  // one raw block of 5 bytes. The claimed size asks for a 1 GiB window,
  // beyond what the reader lets a frame ask for.
  std::string frame = le32(0xFD2FB528);
  frame += '\xe0';
  std::string fcs(8, '\0');
  fcs[3] = 0x40;  // 1 << 30, little-endian
  frame += fcs;
  frame += std::string("\x29\x00\x00", 3) + "hello";
  map_stream_reader r;
  ASSERT_TRUE(r.feed(le32(static_cast<std::uint32_t>(frame.size())) + frame));
  EXPECT_FALSE(r.next());
  EXPECT_TRUE(r.failed());

  // Claiming 2 bytes and holding 5 is corruption, not an overflow.
  std::string small = le32(0xFD2FB528);
  small += '\x20';  // single segment, 1-byte content size
  small += '\x02';
  small += std::string("\x29\x00\x00", 3) + "hello";
  map_stream_reader s;
  ASSERT_TRUE(s.feed(le32(static_cast<std::uint32_t>(small.size())) + small));
  EXPECT_FALSE(s.next());
  EXPECT_TRUE(s.failed());

  // And an honest hand-made frame decodes.
  std::string good = le32(0xFD2FB528);
  good += '\x20';
  good += '\x05';
  good += std::string("\x29\x00\x00", 3) + "{\"a\"}";
  map_stream_reader g;
  ASSERT_TRUE(g.feed(le32(static_cast<std::uint32_t>(good.size())) + good));
  EXPECT_EQ(g.next(), std::optional<std::string>("{\"a\"}"));
}

TEST(MapStreamReader, ParseErrorsKillTheStream) {
  map_stream_reader r;
  ASSERT_TRUE(r.feed(map_stream_reader::frame("{\"Peers\":5}") + map_stream_reader::frame("{}")));
  EXPECT_FALSE(r.next_response());
  EXPECT_TRUE(r.failed());
  EXPECT_NE(r.error().find("Peers"), std::string::npos);
  EXPECT_FALSE(r.next_response());
}

TEST(MapStreamReader, MovedReaderKeepsGoing) {
  const std::string f = map_stream_reader::frame("{\"KeepAlive\":true}");
  map_stream_reader a;
  ASSERT_TRUE(a.feed(std::string_view(f).substr(0, 6)));
  map_stream_reader b(std::move(a));
  ASSERT_TRUE(b.feed(std::string_view(f).substr(6)));
  EXPECT_EQ(b.next(), std::optional<std::string>("{\"KeepAlive\":true}"));
  map_stream_reader c;
  c = std::move(b);
  ASSERT_TRUE(c.feed(f));
  EXPECT_TRUE(c.next());
}

}  // namespace
}  // namespace lopower::tailnet
