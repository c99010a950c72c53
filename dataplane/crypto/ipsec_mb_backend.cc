#include "dataplane/crypto/ipsec_mb_backend.h"

// Keep the library's pre-0.53 compatibility macros (ENCRYPT, MD5, SHA1, ...)
// out of our namespace.
#define NO_COMPAT_IMB_API_053
#include <intel-ipsec-mb.h>
#include <sodium.h>

#include <algorithm>
#include <string>

// How intel-ipsec-mb 1.3 runs IMB_CIPHER_CHACHA20_POLY1305 jobs (read from its
// sources, lib/x86_64/chacha20_poly1305.c and lib/include/mb_mgr_job_api.h):
// - the job is processed synchronously when it is submitted: one packet at a
//   time, no out-of-order manager and no lanes shared between packets. The
//   SIMD width goes into each packet instead: AVX-512 generates up to 16
//   ChaCha20 blocks at once and, with AVX512-IFMA, Poly1305 uses 52-bit
//   multiplies; AVX2 does 8 blocks with scalar Poly1305;
// - completed jobs come back in submission order (IMB_SUBMIT_JOB, then
//   IMB_GET_COMPLETED_JOB, then IMB_FLUSH_JOB at the end of the burst); an
//   invalid job comes back too, with status IMB_STATUS_INVALID_ARGS;
// - on decrypt the library writes the tag it computed over the ciphertext to
//   auth_tag_output and does not compare it: that is done here;
// - zero-length data is allowed (src/dst may then be anything), AAD may be
//   null when its length is 0; key 32 bytes, IV 12 bytes, tag 16 bytes.
// The job API is used as a multi-buffer API anyway (submit the whole burst,
// then flush): it is the contract that lets a newer library run lanes in
// parallel without this code changing.

namespace lopower::crypto {

namespace {

std::string_view arch_name(int arch) noexcept {
  switch (arch) {
    case IMB_ARCH_NOAESNI: return "sse-no-aesni";
    case IMB_ARCH_SSE: return "sse";
    case IMB_ARCH_AVX: return "avx";
    case IMB_ARCH_AVX2: return "avx2";
    case IMB_ARCH_AVX512: return "avx512";
    default: return "none";
  }
}

}  // namespace

std::unique_ptr<ipsec_mb_backend> ipsec_mb_backend::create() {
  IMB_MGR* mgr = alloc_mb_mgr(0);
  if (mgr == nullptr) return nullptr;
  IMB_ARCH arch = IMB_ARCH_NONE;
  init_mb_mgr_auto(mgr, &arch);  // the best code path for this CPU's features
  if (imb_get_errno(mgr) != 0 || arch == IMB_ARCH_NONE) {
    free_mb_mgr(mgr);
    return nullptr;
  }
  return std::unique_ptr<ipsec_mb_backend>(new ipsec_mb_backend(mgr, arch));
}

ipsec_mb_backend::ipsec_mb_backend(IMB_MGR* mgr, int arch)
    : mgr_(mgr), arch_(arch), slots_(new slot[max_burst]) {}

// Every public call flushes before it returns: no job is left in the manager.
ipsec_mb_backend::~ipsec_mb_backend() { free_mb_mgr(mgr_); }

std::string_view ipsec_mb_backend::arch() const noexcept { return arch_name(arch_); }

std::string ipsec_mb_backend::describe() const {
  std::string s = std::string("intel-ipsec-mb ") + imb_get_version_str() + " " + std::string(arch());
  if (arch_ == IMB_ARCH_AVX512 && (mgr_->features & IMB_FEATURE_AVX512_IFMA) != 0) s += " +ifma";
  if ((mgr_->features & IMB_FEATURE_SAFE_DATA) != 0) s += " safe-data";
  return s;
}

void ipsec_mb_backend::submit(slot& s, const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad,
                              std::size_t aad_length, std::uint8_t* data, std::uint32_t length,
                              std::uint8_t* tag_out, const std::uint8_t* expected_tag) noexcept {
  const bool encrypt = expected_tag == nullptr;
  IMB_JOB* job = IMB_GET_NEXT_JOB(mgr_);
  // Jobs are recycled queue entries: every field the algorithm reads is set.
  job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
  job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
  job->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  job->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
  job->enc_keys = key;
  job->dec_keys = key;
  job->key_len_in_bytes = key_size;
  std::uint8_t* d = data != nullptr ? data : dummy_;
  job->src = d;
  job->dst = d;
  job->cipher_start_src_offset_in_bytes = 0;
  job->msg_len_to_cipher_in_bytes = length;
  job->hash_start_src_offset_in_bytes = 0;
  job->msg_len_to_hash_in_bytes = length;
  job->iv = nonce;
  job->iv_len_in_bytes = nonce_size;
  job->u.CHACHA20_POLY1305.aad = aad;
  job->u.CHACHA20_POLY1305.aad_len_in_bytes = aad_length;
  job->u.CHACHA20_POLY1305.ctx = nullptr;
  job->auth_tag_output = encrypt ? tag_out : s.computed_tag;
  job->auth_tag_output_len_in_bytes = tag_size;
  s.expected_tag = expected_tag;
  job->user_data = &s;
  job->user_data2 = nullptr;

  // The checked submit: a malformed job comes back as IMB_STATUS_INVALID_ARGS
  // (and so ok = false) instead of being run.
  for (job = IMB_SUBMIT_JOB(mgr_); job != nullptr; job = IMB_GET_COMPLETED_JOB(mgr_)) complete(job);
}

void ipsec_mb_backend::complete(IMB_JOB* job) noexcept {
  slot& s = *static_cast<slot*>(job->user_data);
  bool ok = job->status == IMB_STATUS_COMPLETED;
  if (s.expected_tag != nullptr) {
    // Always compare, so that the time taken does not depend on the status either.
    // crypto_verify_16 (constant time, as sodium_memcmp) compares the fixed 16
    // bytes without sodium_memcmp's byte loop over a run-time length: it was
    // 1.4 % of the 64 B splice's profile.
    static_assert(tag_size == crypto_verify_16_BYTES);
    const bool match = crypto_verify_16(s.computed_tag, s.expected_tag) == 0;
    ok = ok && match;
  }
  *s.ok = ok;
}

void ipsec_mb_backend::flush() noexcept {
  while (IMB_JOB* job = IMB_FLUSH_JOB(mgr_)) complete(job);
}

void ipsec_mb_backend::burst(aead_op* ops, unsigned n, bool encrypt) noexcept {
  // One slot per op in flight: a chunk of up to max_burst ops (the number of
  // slots) is submitted, then flushed before the next chunk reuses the slots.
  // (When the library's queue of IMB_MAX_JOBS fills up, submitting completes
  // the oldest job; that changes nothing here.)
  while (n > 0) {
    const unsigned chunk = std::min(n, max_burst);
    for (unsigned i = 0; i < chunk; ++i) {
      aead_op& op = ops[i];
      if (!encrypt && i + 1 < n) prefetch_sealed(ops[i + 1]);  // a received frame: cold (aead_batch.h)
      slot& s = slots_[i];
      wireguard_nonce(op.counter, s.nonce);
      s.ok = &op.ok;
      if (encrypt) {
        submit(s, op.key, s.nonce, nullptr, 0, op.data, op.length, op.tag, nullptr);
      } else {
        submit(s, op.key, s.nonce, nullptr, 0, op.data, op.length, nullptr, op.tag);
      }
    }
    flush();
    ops += chunk;
    n -= chunk;
  }
}

void ipsec_mb_backend::encrypt_burst(aead_op* ops, unsigned n) noexcept { burst(ops, n, true); }
void ipsec_mb_backend::decrypt_burst(aead_op* ops, unsigned n) noexcept { burst(ops, n, false); }

bool ipsec_mb_backend::seal(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad,
                            std::size_t aad_length, std::uint8_t* data, std::uint32_t length,
                            std::uint8_t* tag) noexcept {
  bool ok = false;
  slot& s = slots_[0];
  s.ok = &ok;
  submit(s, key, nonce, aad, aad_length, data, length, tag, nullptr);
  flush();
  return ok;
}

bool ipsec_mb_backend::open(const std::uint8_t* key, const std::uint8_t* nonce, const std::uint8_t* aad,
                            std::size_t aad_length, std::uint8_t* data, std::uint32_t length,
                            const std::uint8_t* tag) noexcept {
  bool ok = false;
  slot& s = slots_[0];
  s.ok = &ok;
  // The library decrypts regardless of the tag; on a mismatch the plaintext
  // is wiped so that nothing unauthenticated is left behind.
  submit(s, key, nonce, aad, aad_length, data, length, nullptr, tag);
  flush();
  if (!ok && data != nullptr) sodium_memzero(data, length);
  return ok;
}

}  // namespace lopower::crypto
