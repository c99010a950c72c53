#pragma once
// The SIMD backend: Intel's intel-ipsec-mb (Debian libipsec-mb 1.3), job API,
// cipher IMB_CIPHER_CHACHA20_POLY1305 with hash IMB_AUTH_CHACHA20_POLY1305.
// A burst is submitted job by job and then flushed, so that a library which
// runs this algorithm on parallel lanes can do so. (1.3 itself does not: its
// ChaCha20-Poly1305 jobs complete synchronously on submission, one packet at
// a time, with AVX2 or AVX-512 code for the packet; see ipsec_mb_backend.cc.)
// The library only computes tags: decrypt compares the computed tag with the
// received one here, in constant time.

#include <memory>
#include <string>

#include "dataplane/crypto/aead_batch.h"

struct IMB_MGR;  // <intel-ipsec-mb.h>, kept out of this header
struct IMB_JOB;

namespace lopower::crypto {

class ipsec_mb_backend final : public aead_backend {
 public:
  // nullptr when the library does not initialise on this CPU.
  static std::unique_ptr<ipsec_mb_backend> create();
  ~ipsec_mb_backend() override;

  std::string_view name() const noexcept override { return "ipsec-mb"; }
  std::string describe() const override;   // version, arch, IFMA, SAFE_DATA
  std::string_view arch() const noexcept;  // the code path init_mb_mgr_auto() chose: "avx512", "avx2", ...

  void encrypt_burst(aead_op* ops, unsigned n) noexcept override;
  void decrypt_burst(aead_op* ops, unsigned n) noexcept override;
  bool seal(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad, std::size_t aad_length,
            std::uint8_t* data, std::uint32_t length, std::uint8_t* tag) noexcept override;
  bool open(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad, std::size_t aad_length,
            std::uint8_t* data, std::uint32_t length, const std::uint8_t* tag) noexcept override;

 private:
  // Per in-flight job: what the job points at must outlive it, and decrypt
  // needs the received tag and somewhere to put the result.
  struct slot {
    std::uint8_t nonce[nonce_size];
    std::uint8_t computed_tag[tag_size];   // decrypt: the library's tag, compared with `expected_tag`
    const std::uint8_t* expected_tag;      // decrypt only
    bool* ok;
  };

  ipsec_mb_backend(IMB_MGR* mgr, int arch);
  // encrypt: tag_out receives the tag; decrypt: expected_tag is compared with the computed one.
  void submit(slot& s, const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad,
              std::size_t aad_length, std::uint8_t* data, std::uint32_t length, std::uint8_t* tag_out,
              const std::uint8_t* expected_tag) noexcept;
  void complete(IMB_JOB* job) noexcept;
  void flush() noexcept;
  void burst(aead_op* ops, unsigned n, bool encrypt) noexcept;

  IMB_MGR* mgr_;
  int arch_;                         // IMB_ARCH
  std::unique_ptr<slot[]> slots_;    // max_burst of them, allocated once
  std::uint8_t dummy_[64] = {};      // src/dst for zero-length data (never read or written)
};

}  // namespace lopower::crypto
