#pragma once
// TLS (OpenSSL 3, TLS >= 1.2) over a tcp_stream, on the control thread's
// event loop: the transport to an https:// control server and to DERP.
// OpenSSL never touches the socket: it reads and writes memory BIOs that
// this class fills from and drains into the non-blocking tcp_stream, so
// nothing here ever blocks.
//
// on_connected runs only after the handshake and the certificate checks;
// a failed check closes the stream with on_closed("tls: certificate verify
// failed: <reason> (<name>)"). Every other TLS error is a close with a
// reason too: nothing the peer sends can do worse.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "control/event_loop.h"
#include "control/tailnet/client/byte_stream.h"
#include "control/tailnet/client/tcp_stream.h"
#include "lopower/result.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct bio_st BIO;

namespace lopower::tailnet {

struct tls_options {
  // SNI (sent only for names, not IP literals) and the name the certificate
  // must carry (an IP literal: an IP SAN). Empty: the host given to connect().
  std::string server_name;
  // The name to verify when it differs from the SNI (a DERP node's
  // CertName). Empty: server_name.
  std::string verify_name;
  enum class verify_mode : std::uint8_t {
    verify,      // the chain to a trusted root, and the name
    sha256_raw,  // only the SHA-256 of the leaf certificate's DER
    insecure,    // nothing (DERP's InsecureForTests)
  };
  verify_mode mode = verify_mode::verify;
  std::string expected_sha256_hex;  // sha256_raw: lowercase hex of SHA-256(leaf DER)
  // A PEM bundle trusted besides the system roots (which honour
  // SSL_CERT_FILE/SSL_CERT_DIR).
  std::string ca_file;
  std::vector<std::string> alpn;  // offered protocols; empty: no ALPN
  // ts2021 over TLS: Noise authenticates the server, so a bad certificate
  // is logged, not fatal (as tailscaled does).
  bool log_only_verify_errors = false;

  // A DERP node's TLS as tailscaled's derphttp does it: verify HostName;
  // a CertName "sha256-raw:<hex>" is a hash check, any other CertName the
  // name to verify instead; InsecureForTests verifies nothing.
  static tls_options for_derp_node(const std::string& host_name, const std::string& cert_name,
                                   bool insecure_for_tests, const std::string& ca_file);
};

class tls_stream final : public byte_stream {
 public:
  tls_stream(event_loop& loop, tls_options options, handlers h);
  ~tls_stream() override;
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  // Fails at once for a name that does not resolve or a ca_file that does
  // not load.
  result<void> connect(const std::string& host, std::uint16_t port) override;
  // Plaintext; queued until the handshake is done.
  void send(std::span<const std::uint8_t> bytes) override;
  void close() override;

  bool connected() const noexcept override { return established_; }
  bool open() const noexcept override { return ssl_ != nullptr; }
  std::size_t queued() const noexcept override;

 private:
  void on_tcp_data(std::span<const std::uint8_t> bytes);
  void on_tcp_closed(const std::string& reason);
  void drive();
  bool continue_handshake();
  bool finish_handshake();
  bool check_certificate();
  bool check_hash();
  bool check_chain();
  bool read_plaintext();
  bool write_plaintext();
  bool push_ciphertext();
  std::string ssl_failure(int rc, const char* during) const;
  void close_with(const std::string& reason);
  bool stop(const std::string& reason);  // close_with, and false for the caller to return

  tls_options options_;
  handlers handlers_;
  tcp_stream tcp_;
  SSL* ssl_ = nullptr;
  BIO* from_net_ = nullptr;  // owned by ssl_: ciphertext received, for OpenSSL to read
  BIO* to_net_ = nullptr;    // owned by ssl_: ciphertext OpenSSL wrote, to send
  std::string name_;         // the name checked, for messages
  bool established_ = false;
  std::vector<std::uint8_t> out_;  // plaintext not yet given to SSL_write
  std::vector<std::uint8_t> scratch_;
  // Shared with each handler call: false once the stream is destroyed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lopower::tailnet
