#include "control/tailnet/client/tls_stream.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

#include "control/log.h"

namespace lopower::tailnet {

namespace {

constexpr std::size_t read_chunk = 16 * 1024;  // one TLS record
// DERP servers may append a "meta cert" to their chain; tailscaled skips it
// when checking a sha256-raw hash ([ts] net/tlsdial, derp/derpconst).
constexpr std::string_view meta_cert_cn_prefix = "derpkey";

// The reason of the newest queued OpenSSL error, and the queue cleared.
std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  const char* r = e != 0 ? ERR_reason_error_string(e) : nullptr;
  return r != nullptr ? r : "unknown error";
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// SSL_set_tlsext_host_name is a macro with a C cast in it.
bool set_sni(SSL* ssl, const std::string& name) {
  return SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) == 1;
}

struct ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

result<SSL_CTX*> new_context(const std::string& ca_file) {
  std::unique_ptr<SSL_CTX, ctx_free> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail("tls: " + openssl_reason());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // No system store is not an error: a ca_file (or sha256_raw) may do.
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) ERR_clear_error();
  if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1)
    return fail("tls: ca_file " + ca_file + ": " + openssl_reason());
  return ctx.release();
}

// One context per CA file for the process: loading the system roots is
// the expensive part of a connection. A changed file is read again only by
// a restart, as any other configuration.
result<SSL_CTX*> shared_context(const std::string& ca_file) {
  static std::mutex lock;
  static std::map<std::string, std::unique_ptr<SSL_CTX, ctx_free>> contexts;
  const std::lock_guard<std::mutex> hold(lock);
  if (auto it = contexts.find(ca_file); it != contexts.end()) return it->second.get();
  auto ctx = new_context(ca_file);
  if (!ctx) return ctx;  // not kept: the file may be fixed meanwhile
  contexts.emplace(ca_file, *ctx);
  return *ctx;
}

// ALPN's wire form: each protocol as a length byte and its name.
result<std::vector<unsigned char>> alpn_wire(const std::vector<std::string>& protocols) {
  std::vector<unsigned char> wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) return fail("tls: ALPN protocol names are 1..255 bytes");
    wire.push_back(static_cast<unsigned char>(p.size()));
    wire.insert(wire.end(), p.begin(), p.end());
  }
  return wire;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string sha256_hex(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) return {};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const int ok = EVP_Digest(der, static_cast<std::size_t>(len), digest, &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < digest_len; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 0xf]);
  }
  return out;
}

bool is_meta_cert(X509* cert) {
  char cn[256] = {};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  return n > 0 && std::string_view(cn, static_cast<std::size_t>(n)).starts_with(meta_cert_cn_prefix);
}

}  // namespace

tls_options tls_options::for_derp_node(const std::string& host_name, const std::string& cert_name,
                                       bool insecure_for_tests, const std::string& ca_file) {
  tls_options o;
  o.server_name = host_name;
  o.ca_file = ca_file;
  // As derphttp's tlsClient: a CertName is applied after InsecureForTests
  // and wins over it.
  constexpr std::string_view hash_prefix = "sha256-raw:";
  if (cert_name.starts_with(hash_prefix)) {
    o.mode = verify_mode::sha256_raw;
    o.expected_sha256_hex = lowercase(cert_name.substr(hash_prefix.size()));
  } else if (!cert_name.empty()) {
    o.verify_name = cert_name;
  } else if (insecure_for_tests) {
    o.mode = verify_mode::insecure;
  }
  return o;
}

tls_stream::tls_stream(event_loop& loop, tls_options options, handlers h)
    : options_(std::move(options)),
      handlers_(std::move(h)),
      tcp_(loop, tcp_stream::handlers{[this] { drive(); },
                                      [this](std::span<const std::uint8_t> b) { on_tcp_data(b); },
                                      [this](const std::string& reason) { on_tcp_closed(reason); }}) {}

tls_stream::~tls_stream() {
  *alive_ = false;
  close();
}

result<void> tls_stream::connect(const std::string& host, std::uint16_t port) {
  close();
  const std::string sni = options_.server_name.empty() ? host : options_.server_name;
  name_ = options_.verify_name.empty() ? sni : options_.verify_name;
  auto ctx = shared_context(options_.ca_file);
  if (!ctx) return fail(ctx.message());
  auto alpn = alpn_wire(options_.alpn);
  if (!alpn) return fail(alpn.message());
  ssl_ = SSL_new(*ctx);
  if (ssl_ == nullptr) return fail("tls: " + openssl_reason());
  from_net_ = BIO_new(BIO_s_mem());
  to_net_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, from_net_, to_net_);  // owned by ssl_ from here, even when one is null
  if (from_net_ == nullptr || to_net_ == nullptr) {
    close();
    return fail("tls: out of memory");
  }
  // An empty BIO means "no bytes yet", not end of file.
  BIO_set_mem_eof_return(from_net_, -1);
  SSL_set_connect_state(ssl_);
  bool ok = true;
  if (!is_ip_literal(sni)) ok = set_sni(ssl_, sni);  // RFC 6066: no IPs in SNI
  if (ok && !alpn->empty()) ok = SSL_set_alpn_protos(ssl_, alpn->data(), static_cast<unsigned>(alpn->size())) == 0;
  if (ok && options_.mode == tls_options::verify_mode::verify) {
    ok = is_ip_literal(name_) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name_.c_str()) == 1
                              : SSL_set1_host(ssl_, name_.c_str()) == 1;
    // Strict: the handshake itself fails (and the server hears why).
    // Log-only: the result is read after it.
    SSL_set_verify(ssl_, options_.log_only_verify_errors ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_set_verify(ssl_, SSL_VERIFY_NONE, nullptr);  // checked after the handshake, if at all
  }
  if (!ok) {
    const std::string why = "tls: setting up for " + name_ + ": " + openssl_reason();
    close();
    return fail(why);
  }
  if (auto r = tcp_.connect(host, port); !r) {
    close();
    return r;
  }
  return {};
}

void tls_stream::send(std::span<const std::uint8_t> bytes) {
  if (ssl_ == nullptr || bytes.empty()) return;
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  if (established_ && write_plaintext()) push_ciphertext();
}

void tls_stream::close() {
  tcp_.close();
  if (ssl_ != nullptr) SSL_free(ssl_);  // and both BIOs with it
  ssl_ = nullptr;
  from_net_ = to_net_ = nullptr;
  established_ = false;
  out_.clear();
}

std::size_t tls_stream::queued() const noexcept {
  const std::size_t sealed = to_net_ != nullptr ? BIO_ctrl_pending(to_net_) : 0;
  return out_.size() + sealed + tcp_.queued();
}

void tls_stream::close_with(const std::string& reason) {
  close();
  if (handlers_.on_closed) handlers_.on_closed(reason);  // last: it may destroy us
}

bool tls_stream::stop(const std::string& reason) {
  close_with(reason);
  return false;
}

void tls_stream::on_tcp_data(std::span<const std::uint8_t> bytes) {
  if (ssl_ == nullptr) return;
  if (BIO_write(from_net_, bytes.data(), static_cast<int>(bytes.size())) != static_cast<int>(bytes.size()))
    return close_with("tls: out of memory for received bytes");
  drive();
}

void tls_stream::on_tcp_closed(const std::string& reason) {
  if (!reason.empty()) return close_with(reason);
  if (!established_) return close_with("tls: connection closed during the handshake");
  // A close without close_notify is taken as a clean end, as TCP's: the
  // protocols on top (HTTP with a Content-Length, Noise records, DERP
  // frames) notice a truncation themselves.
  close_with("");
}

// Moves everything along: the handshake, received plaintext to on_data,
// queued plaintext into records, records to the socket.
void tls_stream::drive() {
  if (ssl_ == nullptr) return;
  if (!established_) {
    if (!continue_handshake()) return;
    auto alive = alive_;
    if (handlers_.on_connected) handlers_.on_connected();
    if (!*alive || ssl_ == nullptr) return;
  }
  if (!read_plaintext()) return;
  if (!write_plaintext()) return;
  push_ciphertext();
}

// True once the handshake is done and the certificate accepted; false while
// it waits for bytes, or when the stream was closed.
bool tls_stream::continue_handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  const int err = SSL_get_error(ssl_, rc);
  const bool waiting = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
  // Read before sending: the error queue is only good until the next call.
  const std::string failure = rc == 1 || waiting ? std::string() : ssl_failure(rc, "handshake");
  if (!push_ciphertext()) return false;  // our flight, or the alert that ends it
  if (waiting) return false;
  if (rc != 1) return stop(failure);
  if (!check_certificate()) return false;
  established_ = true;
  return true;
}

bool tls_stream::check_certificate() {
  switch (options_.mode) {
    case tls_options::verify_mode::insecure: return true;
    case tls_options::verify_mode::sha256_raw: return check_hash();
    case tls_options::verify_mode::verify: return check_chain();
  }
  return false;
}

// As tailscaled's SetConfigExpectedCertHash: exactly one certificate besides
// meta certs, and its hash the expected one.
bool tls_stream::check_hash() {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_);  // a client's view includes the leaf
  X509* leaf = nullptr;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    if (is_meta_cert(cert)) continue;
    if (leaf != nullptr)
      return stop("tls: certificate verify failed: more than one certificate for sha256-raw (" + name_ + ")");
    leaf = cert;
  }
  if (leaf == nullptr) return stop("tls: certificate verify failed: no certificate (" + name_ + ")");
  const std::string got = sha256_hex(leaf);
  if (got != lowercase(options_.expected_sha256_hex))
    return stop("tls: certificate verify failed: SHA-256 " + got + " is not the expected " +
                options_.expected_sha256_hex + " (" + name_ + ")");
  return true;
}

// Strict verification already failed the handshake on a bad chain; this
// sees the log-only case (and a server that sent no certificate at all).
bool tls_stream::check_chain() {
  const long verdict = SSL_get_verify_result(ssl_);
  if (verdict == X509_V_OK && SSL_get0_peer_certificate(ssl_) != nullptr) return true;
  const std::string why = std::string("tls: certificate verify failed: ") +
                          (verdict == X509_V_OK ? "no certificate" : X509_verify_cert_error_string(verdict)) + " (" +
                          name_ + ")";
  if (!options_.log_only_verify_errors) return stop(why);
  LOG_WARNING("%s; going on (what the connection carries is authenticated by itself)", why.c_str());
  return true;
}

// False when the stream was closed (maybe destroyed) on the way.
bool tls_stream::read_plaintext() {
  auto alive = alive_;
  std::uint8_t buf[read_chunk];
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      if (handlers_.on_data) handlers_.on_data(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
      if (!*alive || ssl_ == nullptr) return false;
      continue;
    }
    const int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
    if (err == SSL_ERROR_ZERO_RETURN) return stop("");  // the peer's close_notify
    return stop(ssl_failure(n, "read"));
  }
}

bool tls_stream::write_plaintext() {
  if (out_.empty()) return true;
  ERR_clear_error();
  // A memory BIO takes any amount: all of it is sealed at once.
  const int n = SSL_write(ssl_, out_.data(), static_cast<int>(out_.size()));
  if (n > 0) {
    out_.erase(out_.begin(), out_.begin() + n);
    return true;
  }
  const int err = SSL_get_error(ssl_, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
  return stop(ssl_failure(n, "write"));
}

// Hands OpenSSL's output to the socket. False when that closed the stream.
bool tls_stream::push_ciphertext() {
  if (to_net_ == nullptr) return false;
  const std::size_t pending = BIO_ctrl_pending(to_net_);
  if (pending == 0) return true;
  scratch_.resize(pending);
  const int n = BIO_read(to_net_, scratch_.data(), static_cast<int>(pending));
  if (n <= 0) return true;
  auto alive = alive_;
  tcp_.send(std::span<const std::uint8_t>(scratch_.data(), static_cast<std::size_t>(n)));
  return *alive && ssl_ != nullptr;
}

std::string tls_stream::ssl_failure(int rc, const char* during) const {
  const int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_SSL) {
    const long verdict = SSL_get_verify_result(ssl_);
    if (verdict != X509_V_OK && options_.mode == tls_options::verify_mode::verify) {
      ERR_clear_error();
      return std::string("tls: certificate verify failed: ") + X509_verify_cert_error_string(verdict) + " (" +
             name_ + ")";
    }
    return std::string("tls: ") + during + ": " + openssl_reason();
  }
  if (err == SSL_ERROR_ZERO_RETURN) return std::string("tls: ") + during + ": the peer closed the session";
  // SSL_ERROR_SYSCALL and the like: with memory BIOs there is no system
  // call, so whatever OpenSSL queued (if anything) is the reason.
  const bool queued_reason = ERR_peek_last_error() != 0;
  return std::string("tls: ") + during + ": " +
         (queued_reason ? openssl_reason() : "OpenSSL error " + std::to_string(err));
}

}  // namespace lopower::tailnet
