// tls_stream against an OpenSSL server on 127.0.0.1 (a thread with blocking
// sockets), with a CA and a leaf certificate made at run time: verified
// with the CA, refused without it or for another name, the sha256-raw
// check both ways, insecure and log-only modes, and a server that does not
// speak TLS. The client side runs on the event loop as in lopowerd.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "control/event_loop.h"
#include "control/tailnet/client/tls_stream.h"

namespace lopower::tailnet {
namespace {

using verify_mode = tls_options::verify_mode;

EVP_PKEY* new_key() { return EVP_EC_gen("P-256"); }

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by `issuer_key` (and issued by
// `issuer`, or by itself when that is null).
X509* new_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, long serial, bool ca,
               const char* san) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer != nullptr ? issuer : cert;
  add_extension(cert, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  add_extension(cert, signer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (san != nullptr) add_extension(cert, signer, NID_subject_alt_name, san);
  X509_sign(cert, issuer_key, EVP_sha256());
  return cert;
}

std::string sha256_hex_of(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(der, static_cast<std::size_t>(len), digest, &n, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

// The test PKI: a CA (written to a PEM file) and a leaf for 127.0.0.1 and
// test.lopower.invalid signed by it.
struct pki {
  EVP_PKEY* ca_key = new_key();
  X509* ca = new_cert(ca_key, "lopower test CA", nullptr, ca_key, 1, true, nullptr);
  EVP_PKEY* leaf_key = new_key();
  X509* leaf = new_cert(leaf_key, "lopower test server", ca, ca_key, 2, false, "IP:127.0.0.1,DNS:test.lopower.invalid");
  std::string ca_file = ::testing::TempDir() + "lopower_tls_stream_test_ca.pem";
  std::string leaf_sha256 = sha256_hex_of(leaf);

  pki() {
    FILE* f = std::fopen(ca_file.c_str(), "w");
    PEM_write_X509(f, ca);
    std::fclose(f);
  }
  ~pki() {
    std::remove(ca_file.c_str());
    X509_free(leaf);
    EVP_PKEY_free(leaf_key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
  }
};

const pki& test_pki() {
  static const pki p;
  return p;
}

// Accepts connections until destroyed: TLS with the test leaf, echoing
// what it reads (echo) or saying "bye" and closing with close_notify
// (greet_and_close); or an HTTP error and a close, no TLS at all (plain).
class server {
 public:
  enum class behaviour { echo, greet_and_close, plain };
  explicit server(behaviour b = behaviour::echo) : behaviour_(b) {
    // OpenSSL writes to the socket with write(): a client gone first would
    // kill the test with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(listen_fd_, 4), 0);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_use_certificate(ctx_, test_pki().leaf);
    SSL_CTX_use_PrivateKey(ctx_, test_pki().leaf_key);
    thread_ = std::thread([this] { serve(); });
  }
  ~server() {
    shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(listen_fd_);
    SSL_CTX_free(ctx_);
  }
  std::uint16_t port() const { return port_; }

 private:
  void serve() {
    for (;;) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      if (behaviour_ == behaviour::plain) {
        const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)!::send(fd, junk, sizeof junk - 1, MSG_NOSIGNAL);
      } else {
        serve_tls(fd);
      }
      ::close(fd);
    }
  }
  void serve_tls(int fd) {
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      char buf[16384];
      if (behaviour_ == behaviour::greet_and_close) SSL_write(ssl, "bye", 3);
      else
        for (int n; (n = SSL_read(ssl, buf, sizeof buf)) > 0;)
          if (SSL_write(ssl, buf, n) != n) break;
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
  }

  behaviour behaviour_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  SSL_CTX* ctx_ = nullptr;
  std::thread thread_;
};

// One client connection on an event loop: sends `payload` once connected
// and stops when it has all come back, or the stream closed, or 10 s passed.
struct outcome {
  bool connected = false;
  bool closed = false;
  std::string reason;
  std::string echoed;
};

outcome run_client(tls_options options, std::uint16_t port, const std::string& payload = "hello over TLS") {
  event_loop loop;
  outcome out;
  std::unique_ptr<tls_stream> stream;
  stream = std::make_unique<tls_stream>(
      loop, std::move(options),
      byte_stream::handlers{[&] {
                              out.connected = true;
                              stream->send({reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()});
                            },
                            [&](std::span<const std::uint8_t> b) {
                              out.echoed.append(reinterpret_cast<const char*>(b.data()), b.size());
                              if (out.echoed.size() >= payload.size()) loop.stop();
                            },
                            [&](const std::string& reason) {
                              out.closed = true;
                              out.reason = reason;
                              loop.stop();
                            }});
  auto started = stream->connect("127.0.0.1", port);
  EXPECT_TRUE(started) << started.message();
  if (!started) return out;
  loop.add_timer(std::chrono::seconds(10), std::chrono::microseconds(0), [&] {
    out.reason = "test timeout";
    loop.stop();
  });
  loop.run();
  if (out.closed) std::printf("    closed: \"%s\"\n", out.reason.c_str());  // what an operator would see
  return out;
}

tls_options verified(std::string ca_file, std::string server_name = {}) {
  tls_options o;
  o.ca_file = std::move(ca_file);
  o.server_name = std::move(server_name);
  return o;
}

TEST(TlsStream, VerifiedWithTheCaFileEchoesBothWays) {
  server s;
  outcome o = run_client(verified(test_pki().ca_file), s.port());
  EXPECT_TRUE(o.connected) << o.reason;
  EXPECT_EQ(o.echoed, "hello over TLS");
  EXPECT_FALSE(o.closed) << o.reason;
}

TEST(TlsStream, ManyRecordsEachWay) {
  server s;
  std::string big(300 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 1000);
  outcome o = run_client(verified(test_pki().ca_file), s.port(), big);
  EXPECT_TRUE(o.connected) << o.reason;
  EXPECT_EQ(o.echoed.size(), big.size());
  EXPECT_TRUE(o.echoed == big);
}

TEST(TlsStream, VerifiesADnsNameFromTheSan) {
  server s;
  outcome o = run_client(verified(test_pki().ca_file, "test.lopower.invalid"), s.port());
  EXPECT_TRUE(o.connected) << o.reason;
  EXPECT_EQ(o.echoed, "hello over TLS");
}

TEST(TlsStream, UnknownCaIsRefusedWithAReason) {
  server s;
  outcome o = run_client(verified(""), s.port());
  EXPECT_FALSE(o.connected);
  EXPECT_TRUE(o.closed);
  EXPECT_EQ(o.reason.rfind("tls: certificate verify failed: ", 0), 0u) << o.reason;
  EXPECT_NE(o.reason.find("(127.0.0.1)"), std::string::npos) << o.reason;
}

TEST(TlsStream, WrongNameIsRefused) {
  server s;
  outcome dns = run_client(verified(test_pki().ca_file, "other.lopower.invalid"), s.port());
  EXPECT_FALSE(dns.connected);
  EXPECT_EQ(dns.reason, "tls: certificate verify failed: hostname mismatch (other.lopower.invalid)");
  outcome ip = run_client(verified(test_pki().ca_file, "127.0.0.2"), s.port());
  EXPECT_FALSE(ip.connected);
  EXPECT_EQ(ip.reason, "tls: certificate verify failed: IP address mismatch (127.0.0.2)");
}

TEST(TlsStream, Sha256RawChecksTheLeafHashOnly) {
  server s;
  tls_options good;
  good.mode = verify_mode::sha256_raw;
  good.expected_sha256_hex = test_pki().leaf_sha256;
  outcome ok = run_client(good, s.port());
  EXPECT_TRUE(ok.connected) << ok.reason;
  EXPECT_EQ(ok.echoed, "hello over TLS");

  tls_options bad = good;
  bad.expected_sha256_hex = std::string(64, '0');
  outcome refused = run_client(bad, s.port());
  EXPECT_FALSE(refused.connected);
  EXPECT_EQ(refused.reason.rfind("tls: certificate verify failed: SHA-256 ", 0), 0u) << refused.reason;
}

TEST(TlsStream, InsecureConnectsToAnyCertificate) {
  server s;
  tls_options o;
  o.mode = verify_mode::insecure;
  outcome r = run_client(o, s.port());
  EXPECT_TRUE(r.connected) << r.reason;
  EXPECT_EQ(r.echoed, "hello over TLS");
}

TEST(TlsStream, LogOnlyGoesOnDespiteAnUnknownCa) {
  server s;
  tls_options o;
  o.log_only_verify_errors = true;
  outcome r = run_client(o, s.port());
  EXPECT_TRUE(r.connected) << r.reason;
  EXPECT_EQ(r.echoed, "hello over TLS");
}

TEST(TlsStream, AServerThatIsNotTlsIsAClose) {
  server s(server::behaviour::plain);
  tls_options o;
  o.mode = verify_mode::insecure;
  outcome r = run_client(o, s.port());
  EXPECT_FALSE(r.connected);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.reason.rfind("tls: ", 0), 0u) << r.reason;
}

TEST(TlsStream, ConnectFailuresAndBadCaFiles) {
  std::uint16_t closed_port;
  {
    server s;
    closed_port = s.port();
  }
  outcome r = run_client(verified(test_pki().ca_file), closed_port);
  EXPECT_FALSE(r.connected);
  EXPECT_EQ(r.reason, "connect: Connection refused");

  event_loop loop;
  tls_stream missing(loop, verified("/nonexistent/ca.pem"), {});
  auto started = missing.connect("127.0.0.1", closed_port);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.message().rfind("tls: ca_file /nonexistent/ca.pem: ", 0), 0u) << started.message();
}

TEST(TlsStream, CloseNotifyIsACleanClose) {
  server s(server::behaviour::greet_and_close);
  tls_options o;
  o.mode = verify_mode::insecure;
  outcome r = run_client(o, s.port(), "");
  EXPECT_TRUE(r.connected);
  EXPECT_EQ(r.echoed, "bye");
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.reason, "");
}

// Bytes sent before the handshake wait for it; a data handler that frees
// the stream is allowed (the sanitizer build checks nothing is touched after).
TEST(TlsStream, SendEarlyAndFreeFromAHandler) {
  server s;
  event_loop loop;
  std::string got;
  std::unique_ptr<tls_stream> stream;
  stream = std::make_unique<tls_stream>(loop, verified(test_pki().ca_file),
                                        byte_stream::handlers{{},
                                                              [&](std::span<const std::uint8_t> b) {
                                                                got.assign(reinterpret_cast<const char*>(b.data()),
                                                                           b.size());
                                                                loop.stop();
                                                                stream.reset();  // last: frees this lambda
                                                              },
                                                              [&](const std::string&) { loop.stop(); }});
  ASSERT_TRUE(stream->connect("127.0.0.1", s.port()));
  const std::string early = "sent before the handshake";
  stream->send({reinterpret_cast<const std::uint8_t*>(early.data()), early.size()});
  EXPECT_EQ(stream->queued(), early.size());
  loop.add_timer(std::chrono::seconds(10), std::chrono::microseconds(0), [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(got, early);
  EXPECT_EQ(stream, nullptr);
}

TEST(TlsOptions, DerpNodeRules) {
  auto plain = tls_options::for_derp_node("derp.example.com", "", false, "");
  EXPECT_EQ(plain.mode, verify_mode::verify);
  EXPECT_EQ(plain.server_name, "derp.example.com");
  EXPECT_TRUE(plain.verify_name.empty());

  auto named = tls_options::for_derp_node("198.18.40.2", "derp.example.com", false, "/ca.pem");
  EXPECT_EQ(named.mode, verify_mode::verify);
  EXPECT_EQ(named.verify_name, "derp.example.com");
  EXPECT_EQ(named.ca_file, "/ca.pem");

  auto hashed = tls_options::for_derp_node("198.18.40.2", "sha256-raw:ABCdef", false, "");
  EXPECT_EQ(hashed.mode, verify_mode::sha256_raw);
  EXPECT_EQ(hashed.expected_sha256_hex, "abcdef");

  EXPECT_EQ(tls_options::for_derp_node("h", "", true, "").mode, verify_mode::insecure);
  EXPECT_EQ(tls_options::for_derp_node("h", "sha256-raw:00", true, "").mode, verify_mode::sha256_raw);
}

}  // namespace
}  // namespace lopower::tailnet
