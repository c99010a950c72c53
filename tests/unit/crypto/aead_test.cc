// The transport AEAD backends (dataplane/crypto): known answers, agreement
// between backends, tamper detection, and bursts against one-at-a-time.
//
// How the known answers reach each backend, honestly:
// - RFC 8439 §2.8.2 and A.5 carry associated data, and §2.8.2's nonce has a
//   non-zero constant, so they cannot go through the WireGuard burst calls
//   (empty AAD, zero constant). They go through aead_backend::seal/open,
//   which take a full nonce and AAD and drive the same library calls as the
//   burst path (libsodium: the same function; ipsec-mb: the same job
//   submission, with the AAD fields set).
// - The burst calls themselves are checked against WireGuard-shaped known
//   answers (no AAD, nonce = 4 zero bytes || LE counter): vectors 002 (empty
//   data: a keepalive), 005 (1 byte) and 007 (256 bytes) of the Linux
//   kernel's lib/crypto/chacha20poly1305-selftest.c, whose 8-byte nonces are
//   exactly the little-endian counter, all checked independently against
//   OpenSSL (Python cryptography) when they were copied here.
// - Everything else compares the backends with each other (byte-identical
//   ciphertext and tag), with libsodium as the reference.
//
// When the ipsec-mb backend was not built, or does not initialise on this
// CPU, its tests are skipped with the reason, never passed silently. The
// backends are tested as their create() makes them, not through the
// factory's known-answer gate, so a backend that computes wrongly fails here
// rather than being skipped as "unavailable".

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/crypto/aead_batch.h"
#include "dataplane/crypto/sodium_backend.h"
#include "tests/unit/test_hex.h"
#if LOPOWER_HAVE_IPSEC_MB
#include "dataplane/crypto/ipsec_mb_backend.h"
#endif

namespace {

using namespace lopower::crypto;
using bytes = std::vector<std::uint8_t>;

using lopower::test_hex::hex;
using lopower::test_hex::unhex;

constexpr std::uint64_t max_counter = std::numeric_limits<std::uint64_t>::max() - 1;  // 2^64-2, WireGuard's last

// The backends as their own create() makes them, without the factory's
// known-answer gate: a backend that initialises but computes wrongly must fail
// these tests, not be skipped as "unavailable".
std::unique_ptr<aead_backend> raw_backend(std::string_view name) {
  if (name == "libsodium") return sodium_backend::create();
#if LOPOWER_HAVE_IPSEC_MB
  if (name == "ipsec-mb") return ipsec_mb_backend::create();
#endif
  return nullptr;
}

// Empty when the ipsec-mb backend can run here; otherwise why not (the reason
// the dependent tests are skipped with).
std::string ipsec_mb_missing_reason() {
#if !LOPOWER_HAVE_IPSEC_MB
  return "ipsec-mb backend not built (intel-ipsec-mb with ChaCha20-Poly1305 not found at configure time)";
#else
  if (raw_backend("ipsec-mb") == nullptr)
    return "ipsec-mb backend built but unavailable at runtime (intel-ipsec-mb does not initialise on this CPU)";
  return {};
#endif
}

std::mt19937_64& rng() {
  static std::mt19937_64 r(0x10b0'3e7c'0ffe'e5edULL);  // fixed: failures reproduce
  return r;
}
void fill_random(std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(rng()());
}
bytes random_bytes(std::size_t n) {
  bytes b(n);
  fill_random(b.data(), n);
  return b;
}

// One packet: data followed by room for the tag, as the dataplane lays it out.
struct packet {
  bytes buf;
  std::uint32_t length;
  bytes key;
  std::uint64_t counter;

  packet(std::uint32_t len, bytes k, std::uint64_t ctr)
      : buf(random_bytes(len + tag_size)), length(len), key(std::move(k)), counter(ctr) {}
  aead_op op() { return aead_op{buf.data(), length, buf.data() + length, key.data(), counter, false}; }
};

// ---------------------------------------------------------------------------
// Factory

TEST(CryptoFactory, ListsBackendsFastestFirst) {
  const std::vector<std::string> names = available_backends();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.back(), "libsodium");
  EXPECT_EQ(make_backend("no-such-backend"), nullptr);
  auto fastest = make_fastest_backend();
  ASSERT_NE(fastest, nullptr);
  EXPECT_EQ(fastest->name(), names.front());
  for (const std::string& n : names) {
    auto b = make_backend(n);
    ASSERT_NE(b, nullptr) << n;
    EXPECT_EQ(b->name(), n);
    std::printf("[          ] backend %s: %s\n", n.c_str(), b->describe().c_str());
  }
  if (const std::string why = ipsec_mb_missing_reason(); !why.empty()) GTEST_SKIP() << why;
  // It initialises here, so only a failed known-answer check keeps it out.
  EXPECT_NE(make_backend("ipsec-mb"), nullptr) << "ipsec-mb initialises but fails the factory's known-answer check";
  EXPECT_EQ(names, (std::vector<std::string>{"ipsec-mb", "libsodium"}));
}

TEST(CryptoFactory, WireguardNonceIsZeroPrefixAndLittleEndianCounter) {
  std::uint8_t n[nonce_size];
  wireguard_nonce(0x0807060504030201ULL, n);
  EXPECT_EQ(hex(n, nonce_size), "000000000102030405060708");
  wireguard_nonce(max_counter, n);
  EXPECT_EQ(hex(n, nonce_size), "00000000feffffffffffffff");
}

// ---------------------------------------------------------------------------
// Each backend on its own

class CryptoBackend : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "ipsec-mb") {
      if (const std::string why = ipsec_mb_missing_reason(); !why.empty()) GTEST_SKIP() << why;
    }
    backend_ = raw_backend(GetParam());
    ASSERT_NE(backend_, nullptr) << GetParam();
  }
  std::unique_ptr<aead_backend> backend_;
};

std::string param_name(const testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}
INSTANTIATE_TEST_SUITE_P(Backends, CryptoBackend, testing::Values("libsodium", "ipsec-mb"), param_name);

// RFC 8439 §2.8.2: AEAD encryption ("Ladies and Gentlemen of the class of '99...").
TEST_P(CryptoBackend, Rfc8439Section282Encryption) {
  const bytes key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const bytes nonce = unhex("070000004041424344454647");
  const bytes aad = unhex("50515253c0c1c2c3c4c5c6c7");
  const std::string_view text =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
  const bytes plaintext(text.begin(), text.end());
  const std::string expected_ct =
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
      "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
      "3ff4def08e4b7a9de576d26586cec64b6116";
  const std::string expected_tag = "1ae10b594f09e26a7e902ecbd0600691";

  bytes data = plaintext;
  std::uint8_t tag[tag_size] = {};
  ASSERT_TRUE(backend_->seal(key.data(), nonce.data(), aad.data(), aad.size(), data.data(),
                             static_cast<std::uint32_t>(data.size()), tag));
  EXPECT_EQ(hex(data), expected_ct);
  EXPECT_EQ(hex(tag, tag_size), expected_tag);

  const bytes ciphertext = data;
  ASSERT_TRUE(backend_->open(key.data(), nonce.data(), aad.data(), aad.size(), data.data(),
                             static_cast<std::uint32_t>(data.size()), tag));
  EXPECT_EQ(data, plaintext);

  // Any change to ciphertext, tag, AAD or nonce is refused.
  data = ciphertext;
  data[57] ^= 0x10;
  EXPECT_FALSE(backend_->open(key.data(), nonce.data(), aad.data(), aad.size(), data.data(),
                              static_cast<std::uint32_t>(data.size()), tag));
  data = ciphertext;
  tag[15] ^= 0x80;
  EXPECT_FALSE(backend_->open(key.data(), nonce.data(), aad.data(), aad.size(), data.data(),
                              static_cast<std::uint32_t>(data.size()), tag));
  tag[15] ^= 0x80;
  bytes aad2 = aad;
  aad2[0] ^= 1;
  EXPECT_FALSE(backend_->open(key.data(), nonce.data(), aad2.data(), aad2.size(), data.data(),
                              static_cast<std::uint32_t>(data.size()), tag));
  data = ciphertext;
  bytes nonce2 = nonce;
  nonce2[0] = 0;  // the WireGuard-shaped nonce with the same counter is a different nonce
  EXPECT_FALSE(backend_->open(key.data(), nonce2.data(), aad.data(), aad.size(), data.data(),
                              static_cast<std::uint32_t>(data.size()), tag));
}

// RFC 8439 Appendix A.5: AEAD decryption ("Internet-Drafts are draft documents...").
// Its nonce (00000000 0102030405060708) happens to be WireGuard-shaped, but it
// carries AAD, so it goes through open/seal.
TEST_P(CryptoBackend, Rfc8439AppendixA5Decryption) {
  const bytes key = unhex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0");
  const bytes nonce = unhex("000000000102030405060708");
  const bytes aad = unhex("f33388860000000000004e91");
  const bytes ciphertext = unhex(
      "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0"
      "bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
      "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e9"
      "9040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
      "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130"
      "305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b");
  const bytes tag = unhex("eead9d67890cbb22392336fea1851f38");
  const bytes plaintext = unhex(
      "496e7465726e65742d4472616674732061726520647261667420646f63756d656e74732076616c696420666f72206120"
      "6d6178696d756d206f6620736978206d6f6e74687320616e64206d617920626520757064617465642c207265706c6163"
      "65642c206f72206f62736f6c65746564206279206f7468657220646f63756d656e747320617420616e792074696d652e"
      "20497420697320696e617070726f70726961746520746f2075736520496e7465726e65742d4472616674732061732072"
      "65666572656e6365206d6174657269616c206f7220746f2063697465207468656d206f74686572207468616e20617320"
      "2fe2809c776f726b20696e2070726f67726573732e2fe2809d");
  ASSERT_EQ(ciphertext.size(), 265u);
  ASSERT_EQ(plaintext.size(), 265u);

  bytes data = ciphertext;
  ASSERT_TRUE(backend_->open(key.data(), nonce.data(), aad.data(), aad.size(), data.data(),
                             static_cast<std::uint32_t>(data.size()), tag.data()));
  EXPECT_EQ(data, plaintext);

  std::uint8_t tag2[tag_size] = {};
  ASSERT_TRUE(backend_->seal(key.data(), nonce.data(), aad.data(), aad.size(), data.data(),
                             static_cast<std::uint32_t>(data.size()), tag2));
  EXPECT_EQ(data, ciphertext);
  EXPECT_EQ(hex(tag2, tag_size), hex(tag));
}

// WireGuard-shaped known answers through the burst calls themselves.
TEST_P(CryptoBackend, WireguardShapedKnownAnswersThroughBursts) {
  struct vector {
    const char* key;
    std::uint64_t counter;  // the kernel vector's 8 nonce bytes, read little-endian
    const char* plaintext;
    const char* ciphertext;
    const char* tag;
  };
  const vector vectors[] = {
      {"4cf5968338e6ae7f2d292576d5752786919a277afb46c5ef9481795714594068", 0x8e7745327133bfcaULL, "", "",
       "eae01e9e2c91aae1db5d993f8af76992"},
      {"66ca9c232a4b4b310e92898bf493c78798a3d839f8f4a701c02e0aa67e5a7887", 0x3092bf9c5faa1c20ULL, "2d", "bf",
       "e15b0bdb6bf55e6c5d84443981c19cac"},
      {"8db89148f0e70abdf93fcdd9a01e424ce7de253da3d705808df282ac44165101", 0xb0681b65c3ef7bdeULL,
       "9b18dbdd9a0f3ea51517dedf089d650a673012e234774bc1d9c61fabc6185017a79d3ca6c5358c1cc0a17c9f0389cae1"
       "e6e9d4d388dbb4519decb4fc52ee6df17542c6fdbd7a8e86fc44b34ff3ea675a4113bab0dce1d32a7c22b3caac6a3798"
       "3e1d4097f79b1d366bb328bd60824734aa2f7de9a8708157d4b9770a9d29a784524fc24a403b3cd4c92adb4a53c4be80"
       "e9517f8fc7a2ce825c911e74d9d0bdd5f3fdda4d25b4bb2dac2f3d71857bcf3c7b3e0e22780c29bfe4f457b3cb49a0fc"
       "1e054e16bcd5a8a3ee0535c67cab6014551a8ec5885dd581c281a5c460dbaf7791e1cea27e7f42e3b0131c1f256021e2"
       "405f99b773ec9b2bf06511c8d00a9fd3",
       "8504c2ed8dfd975cd2b7e2c16ba3baf8c950c3c6a5e3a47cc323495ea9b932eb8a7ccae5ecfb7cc0cb7ddc2c9d925521"
       "0ac84363590a317082674103f8dff2aca702d4d58a2dc8991966d0f6882c77d9d40d6cbd98dee77fad7e8afbe94be5f7"
       "e550a0903fd62253e3fe1bcc793bec124752a7d604e352e6939091327379b8d031de1f9f2f0538542f350439e0a7bac6"
       "52f637654c07a97eb3216f748cc9dedb651b9baa60b103306bb203c41c04f80f64af46e4659949e2eace7800d88bd52e"
       "cffc4049e858dc349c8c61bf0a8eec39a930055ad25601c7da8f4ebb43a33af9152ad0a07a873482fe8ad12d5ec7bf04"
       "535f3b36d4255c347a8dd505ce72caef",
       "7a4bbcb0105c96423a0098cd15e8b753"},
  };
  // All three in one burst, then each alone.
  std::vector<bytes> keys, bufs;
  for (const vector& v : vectors) {
    keys.push_back(unhex(v.key));
    bytes b = unhex(v.plaintext);
    b.resize(b.size() + tag_size);
    bufs.push_back(b);
  }
  std::vector<aead_op> ops;
  for (std::size_t i = 0; i < std::size(vectors); ++i) {
    const auto len = static_cast<std::uint32_t>(bufs[i].size() - tag_size);
    ops.push_back(aead_op{bufs[i].data(), len, bufs[i].data() + len, keys[i].data(), vectors[i].counter, false});
  }
  backend_->encrypt_burst(ops.data(), static_cast<unsigned>(ops.size()));
  for (std::size_t i = 0; i < std::size(vectors); ++i) {
    EXPECT_TRUE(ops[i].ok) << i;
    EXPECT_EQ(hex(ops[i].data, ops[i].length), vectors[i].ciphertext) << i;
    EXPECT_EQ(hex(ops[i].tag, tag_size), vectors[i].tag) << i;
  }
  backend_->decrypt_burst(ops.data(), static_cast<unsigned>(ops.size()));
  for (std::size_t i = 0; i < std::size(vectors); ++i) {
    EXPECT_TRUE(ops[i].ok) << i;
    EXPECT_EQ(hex(ops[i].data, ops[i].length), vectors[i].plaintext) << i;
  }
  for (std::size_t i = 0; i < std::size(vectors); ++i) {
    backend_->encrypt_burst(&ops[i], 1);
    EXPECT_EQ(hex(ops[i].data, ops[i].length), vectors[i].ciphertext) << i;
    EXPECT_EQ(hex(ops[i].tag, tag_size), vectors[i].tag) << i;
  }
}

// A keepalive: no data at all (data == nullptr), the tag alone.
TEST_P(CryptoBackend, KeepaliveWithNullData) {
  const bytes key = unhex("4cf5968338e6ae7f2d292576d5752786919a277afb46c5ef9481795714594068");
  std::uint8_t tag[tag_size] = {};
  aead_op op{nullptr, 0, tag, key.data(), 0x8e7745327133bfcaULL, false};
  backend_->encrypt_burst(&op, 1);
  EXPECT_TRUE(op.ok);
  EXPECT_EQ(hex(tag, tag_size), "eae01e9e2c91aae1db5d993f8af76992");
  op.ok = false;
  backend_->decrypt_burst(&op, 1);
  EXPECT_TRUE(op.ok);
  op.counter += 1;
  backend_->decrypt_burst(&op, 1);
  EXPECT_FALSE(op.ok);
}

// A flipped bit anywhere in data or tag, a wrong counter or a wrong key: ok = false.
TEST_P(CryptoBackend, TamperingIsRefused) {
  for (std::uint32_t len : {0u, 1u, 15u, 16u, 17u, 63u, 64u, 65u, 255u, 256u, 1420u, 1500u, 65535u}) {
    SCOPED_TRACE("length " + std::to_string(len));
    packet p(len, random_bytes(key_size), rng()());
    aead_op op = p.op();
    backend_->encrypt_burst(&op, 1);
    ASSERT_TRUE(op.ok);
    const bytes sealed = p.buf;
    auto fresh = [&] {
      p.buf = sealed;
      return p.op();
    };
    // Untouched: opens.
    op = fresh();
    backend_->decrypt_burst(&op, 1);
    EXPECT_TRUE(op.ok);
    // Every tag bit.
    for (unsigned bit = 0; bit < 8 * tag_size; ++bit) {
      op = fresh();
      op.tag[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      backend_->decrypt_burst(&op, 1);
      EXPECT_FALSE(op.ok) << "tag bit " << bit;
    }
    // Data bits: first, last and some in between.
    if (len > 0) {
      std::vector<std::uint64_t> bits = {0, 7, 8ull * len - 1};
      for (int i = 0; i < 16; ++i) bits.push_back(rng()() % (8ull * len));
      for (std::uint64_t bit : bits) {
        op = fresh();
        op.data[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        backend_->decrypt_burst(&op, 1);
        EXPECT_FALSE(op.ok) << "data bit " << bit;
      }
    }
    // Wrong counters.
    for (std::uint64_t delta : {1ull, 2ull, 1ull << 32, 1ull << 63}) {
      op = fresh();
      op.counter ^= delta;
      backend_->decrypt_burst(&op, 1);
      EXPECT_FALSE(op.ok) << "counter ^ " << delta;
    }
    // Wrong key (one bit).
    op = fresh();
    std::uint8_t key2[key_size];
    std::memcpy(key2, p.key.data(), key_size);
    key2[31] ^= 0x40;
    op.key = key2;
    backend_->decrypt_burst(&op, 1);
    EXPECT_FALSE(op.ok);
    // A truncated message is refused too.
    if (len > 0) {
      op = fresh();
      op.length = len - 1;
      backend_->decrypt_burst(&op, 1);
      EXPECT_FALSE(op.ok);
    }
  }
}

// Bursts of 1..256 ops (and beyond, which the interface allows) mixing keys,
// lengths and counters give exactly what one-at-a-time calls give; a burst in
// which some packets are forged verifies each packet on its own.
TEST_P(CryptoBackend, BurstsEqualOneAtATime) {
  std::vector<bytes> keys;
  for (int i = 0; i < 5; ++i) keys.push_back(random_bytes(key_size));
  std::vector<unsigned> sizes = {1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256,
                                 257, 300, 512, 600};
  for (int i = 0; i < 8; ++i) sizes.push_back(1 + static_cast<unsigned>(rng()() % max_burst));
  for (unsigned n : sizes) {
    SCOPED_TRACE("burst of " + std::to_string(n));
    std::vector<packet> burst, single;
    for (unsigned i = 0; i < n; ++i) {
      std::uint32_t len;
      switch (rng()() % 8) {
        case 0: len = 0; break;
        case 1: len = static_cast<std::uint32_t>(rng()() % 64); break;
        case 2: len = 1420; break;
        case 3: len = (i % 37 == 0) ? 65535 : 1500; break;
        default: len = static_cast<std::uint32_t>(rng()() % 1501); break;
      }
      const std::uint64_t counters[] = {0, 1, max_counter, rng()()};
      burst.emplace_back(len, keys[rng()() % keys.size()], counters[rng()() % 4]);
    }
    single = burst;

    std::vector<aead_op> ops;
    for (packet& p : burst) ops.push_back(p.op());
    backend_->encrypt_burst(ops.data(), n);
    for (unsigned i = 0; i < n; ++i) {
      aead_op one = single[i].op();
      backend_->encrypt_burst(&one, 1);
      ASSERT_TRUE(ops[i].ok && one.ok) << i;
      ASSERT_EQ(burst[i].buf, single[i].buf) << "op " << i << " length " << burst[i].length;
    }

    // Forge every fifth packet (data, tag or counter), then decrypt both ways.
    for (unsigned i = 0; i < n; i += 5) {
      packet* forged[] = {&burst[i], &single[i]};
      for (packet* p : forged) {
        switch (i % 3) {
          case 0: p->buf[p->length + 3] ^= 0x01; break;            // tag
          case 1: p->buf[p->length / 2] ^= 0x80; break;            // data (the tag when length 0)
          default: p->counter ^= 0x100; break;                     // counter
        }
      }
    }
    ops.clear();
    for (packet& p : burst) ops.push_back(p.op());
    backend_->decrypt_burst(ops.data(), n);
    for (unsigned i = 0; i < n; ++i) {
      aead_op one = single[i].op();
      backend_->decrypt_burst(&one, 1);
      ASSERT_EQ(ops[i].ok, one.ok) << i;
      ASSERT_EQ(ops[i].ok, i % 5 != 0) << i;
      if (ops[i].ok) {
        ASSERT_EQ(std::memcmp(burst[i].buf.data(), single[i].buf.data(), burst[i].length), 0) << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The backends against each other (libsodium is the reference)

class CryptoCrossCheck : public testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = ipsec_mb_missing_reason(); !why.empty()) GTEST_SKIP() << why;
    sodium_ = raw_backend("libsodium");
    ipsec_ = raw_backend("ipsec-mb");
    ASSERT_NE(sodium_, nullptr);
    ASSERT_NE(ipsec_, nullptr);
  }
  std::unique_ptr<aead_backend> sodium_, ipsec_;
};

// Every length 0..1500 and 65535, random keys, counters including 0 and
// 2^64-2: byte-identical ciphertext and tag, and each backend opens what the
// other sealed. Tags live apart from the data here (the interface allows it).
TEST_F(CryptoCrossCheck, IdenticalOutputForEveryLength) {
  std::vector<std::uint32_t> lengths;
  for (std::uint32_t len = 0; len <= 1500; ++len) lengths.push_back(len);
  lengths.push_back(65535);
  const std::uint64_t fixed_counters[] = {0, max_counter, 1, 0xffffffffULL, 0x100000000ULL};

  constexpr unsigned chunk = 64;  // sealed in bursts of up to 64 mixed lengths
  for (std::size_t base = 0; base < lengths.size(); base += chunk) {
    const unsigned n = static_cast<unsigned>(std::min<std::size_t>(chunk, lengths.size() - base));
    std::vector<bytes> plain(n), a(n), b(n), tag_a(n), tag_b(n), keys(n);
    std::vector<std::uint64_t> counters(n);
    std::vector<aead_op> ops_a(n), ops_b(n);
    for (unsigned i = 0; i < n; ++i) {
      const std::uint32_t len = lengths[base + i];
      plain[i] = random_bytes(len);
      a[i] = plain[i];
      b[i] = plain[i];
      tag_a[i].assign(tag_size, 0);
      tag_b[i].assign(tag_size, 0xff);
      keys[i] = random_bytes(key_size);
      const std::size_t k = base + i;
      counters[i] = k % 4 == 0 ? fixed_counters[(k / 4) % std::size(fixed_counters)] : rng()();
      ops_a[i] = aead_op{a[i].data(), len, tag_a[i].data(), keys[i].data(), counters[i], false};
      ops_b[i] = aead_op{b[i].data(), len, tag_b[i].data(), keys[i].data(), counters[i], false};
    }
    sodium_->encrypt_burst(ops_a.data(), n);
    ipsec_->encrypt_burst(ops_b.data(), n);
    for (unsigned i = 0; i < n; ++i) {
      ASSERT_TRUE(ops_a[i].ok && ops_b[i].ok) << "length " << ops_a[i].length;
      ASSERT_EQ(a[i], b[i]) << "ciphertext differs, length " << ops_a[i].length << " counter " << counters[i];
      ASSERT_EQ(tag_a[i], tag_b[i]) << "tag differs, length " << ops_a[i].length << " counter " << counters[i];
      if (plain[i].size() >= 16) {  // shorter ones may coincide by chance
        ASSERT_NE(a[i], plain[i]) << "length " << ops_a[i].length;
      }
    }
    // Each opens the other's output.
    sodium_->decrypt_burst(ops_b.data(), n);  // libsodium opens ipsec-mb's
    ipsec_->decrypt_burst(ops_a.data(), n);   // ipsec-mb opens libsodium's
    for (unsigned i = 0; i < n; ++i) {
      ASSERT_TRUE(ops_a[i].ok) << "ipsec-mb refused libsodium's output, length " << ops_a[i].length;
      ASSERT_TRUE(ops_b[i].ok) << "libsodium refused ipsec-mb's output, length " << ops_b[i].length;
      ASSERT_EQ(a[i], plain[i]) << "length " << ops_a[i].length;
      ASSERT_EQ(b[i], plain[i]) << "length " << ops_b[i].length;
    }
  }
}

// Same through seal/open with AAD of every length 0..64 (not a WireGuard
// path; it keeps the AAD handling the RFC vectors rely on honest).
TEST_F(CryptoCrossCheck, IdenticalOutputWithAad) {
  for (std::size_t aad_len = 0; aad_len <= 64; ++aad_len) {
    const bytes key = random_bytes(key_size), nonce = random_bytes(nonce_size), aad = random_bytes(aad_len);
    for (std::uint32_t len : {0u, 1u, 16u, 100u, 1420u}) {
      const bytes plain = random_bytes(len);
      bytes a = plain, b = plain;
      std::uint8_t ta[tag_size], tb[tag_size];
      ASSERT_TRUE(sodium_->seal(key.data(), nonce.data(), aad.data(), aad.size(), a.data(), len, ta));
      ASSERT_TRUE(ipsec_->seal(key.data(), nonce.data(), aad.data(), aad.size(), b.data(), len, tb));
      ASSERT_EQ(a, b) << "aad " << aad_len << " length " << len;
      ASSERT_EQ(hex(ta, tag_size), hex(tb, tag_size)) << "aad " << aad_len << " length " << len;
      ASSERT_TRUE(ipsec_->open(key.data(), nonce.data(), aad.data(), aad.size(), a.data(), len, tb));
      ASSERT_TRUE(sodium_->open(key.data(), nonce.data(), aad.data(), aad.size(), b.data(), len, ta));
      ASSERT_EQ(a, plain);
      ASSERT_EQ(b, plain);
    }
  }
}

}  // namespace
