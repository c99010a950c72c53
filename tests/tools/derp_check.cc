// derp_check: lopower's DERP client and STUN codec against a real server
// (tests/interop/test_derp_client.py runs it against the pinned derper).
//
//   derp_check derp HOST PORT [SECONDS]
//     Two clients with fresh node keys (A, B) connect over plain TCP. Once
//     both are ready: A sends a packet to B and B one to A (each must arrive
//     with the sender's key as source), A pings the server (its Pong must
//     come back), and A sends a disco-looking packet to a key nobody holds
//     (the server must answer PeerGone(NotHere) for that key). Sends are
//     repeated every 250 ms until answered: the server may register a
//     client a moment after sending its ServerInfo.
//   derp_check stun HOST PORT
//     One binding request (our builder) from a fresh UDP socket; the answer
//     read with our parser.
//   derp_check stun-request TXID_HEX
//     Prints the request bytes for that transaction ID, in hex.
//
// Prints one JSON line with what happened; exit status 0 only if every
// check passed, 1 if one failed, 2 on bad usage.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "control/event_loop.h"
#include "control/tailnet/client/tcp_stream.h"
#include "control/tailnet/derp/derp_client.h"
#include "control/tailnet/stun/stun.h"
#include "lopower/hex.h"

namespace {

using namespace lopower;
using namespace lopower::tailnet;
using bytes = std::vector<std::uint8_t>;

constexpr std::array<std::uint8_t, 6> disco_magic = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};  // "TS💬"

bytes text_bytes(const std::string& s) { return bytes(s.begin(), s.end()); }

// Magic, then a sender key, nonce and box tag's worth of random bytes: what
// the server takes for disco (disco.LooksLikeDiscoWrapper).
bytes disco_looking_packet() {
  bytes p(disco_magic.begin(), disco_magic.end());
  p.resize(p.size() + 32 + 24 + 16);
  randombytes_buf(p.data() + disco_magic.size(), p.size() - disco_magic.size());
  return p;
}

struct peer_side {
  std::string name;
  private_key key = generate_private_key();
  public_key pub = public_from_private(key);
  std::unique_ptr<derp::client> client;
  bool ready = false;
  std::optional<std::string> closed;
  bool got_expected = false;  // the other side's packet, from the other side's key
  std::vector<std::string> unexpected;
};

class derp_run {
 public:
  derp_run(std::string host, std::uint16_t port, int seconds) : host_(std::move(host)), port_(port), seconds_(seconds) {
    a_.name = "A";
    b_.name = "B";
  }

  int run() {
    for (peer_side* p : {&a_, &b_}) start(*p);
    if (!failed_start_) {
      loop_.add_timer(std::chrono::seconds(seconds_), {}, [this] { loop_.stop(); });
      loop_.add_timer(std::chrono::milliseconds(250), std::chrono::milliseconds(250), [this] { tick(); });
      loop_.run();
    }
    return report();
  }

 private:
  void start(peer_side& p) {
    p.client = std::make_unique<derp::client>(
        loop_, p.key, [this](byte_stream::handlers h) { return std::make_unique<tcp_stream>(loop_, std::move(h)); },
        handlers_for(p));
    if (auto r = p.client->connect(host_, port_, host_, /*preferred=*/&p == &a_); !r) {
      p.closed = r.message();
      failed_start_ = true;
    }
  }

  derp::client::handlers handlers_for(peer_side& p) {
    peer_side& other = &p == &a_ ? b_ : a_;
    derp::client::handlers h;
    h.on_ready = [this, &p] {
      p.ready = true;
      tick();
    };
    h.on_packet = [this, &p, &other](const public_key& src, std::span<const std::uint8_t> packet) {
      if (src == other.pub && bytes(packet.begin(), packet.end()) == text_bytes("hello from " + other.name))
        p.got_expected = true;
      else
        p.unexpected.push_back(to_hex(packet.first(std::min<std::size_t>(packet.size(), 16))));
      finish_if_done();
    };
    h.on_peer_gone = [this, &p](const public_key& peer, derp::peer_gone_reason reason) {
      if (&p == &a_ && peer == absent_) gone_reason_ = static_cast<int>(reason);
      finish_if_done();
    };
    h.on_closed = [this, &p](const std::string& reason) {
      p.closed = reason;
      if (a_.closed && b_.closed) loop_.stop();  // both reasons go in the report
    };
    return h;
  }

  // (Re)sends whatever is still unanswered.
  void tick() {
    if (!a_.ready || !b_.ready) return;
    if (!b_.got_expected) a_.client->send_packet(b_.pub, text_bytes("hello from A"));
    if (!a_.got_expected) b_.client->send_packet(a_.pub, text_bytes("hello from B"));
    if (!gone_reason_) a_.client->send_packet(absent_, disco_looking_packet());
    if (!ping_rtt_ && !ping_sent_) {
      ping_sent_ = true;
      a_.client->ping([this](std::chrono::microseconds rtt) {
        ping_rtt_ = rtt;
        finish_if_done();
      });
    }
  }

  bool all_passed() const {
    return a_.got_expected && b_.got_expected && ping_rtt_ && gone_reason_ == 1 && a_.unexpected.empty() &&
           b_.unexpected.empty() && !a_.closed && !b_.closed;
  }

  void finish_if_done() {
    if (all_passed()) loop_.stop();
  }

  int report() {
    nlohmann::json out;
    out["ok"] = all_passed();
    for (const peer_side* p : {&a_, &b_}) {
      nlohmann::json side = {{"ready", p->ready},
                             {"received_from_other", p->got_expected},
                             {"unexpected_packets", p->unexpected},
                             {"closed", p->closed ? nlohmann::json(*p->closed) : nlohmann::json(nullptr)},
                             {"node_key", p->pub.to_hex()}};
      if (p->client) {
        side["server_key"] = p->client->server_key().to_hex();
        side["stats"] = p->client->stats().to_json();
      }
      out[p->name] = side;
    }
    out["ping_rtt_us"] = ping_rtt_ ? nlohmann::json(ping_rtt_->count()) : nlohmann::json(nullptr);
    out["peer_gone"] = !gone_reason_ ? nlohmann::json(nullptr)
                       : *gone_reason_ == 1 ? nlohmann::json("not_here")
                       : *gone_reason_ == 0 ? nlohmann::json("disconnected")
                                            : nlohmann::json(*gone_reason_);
    std::printf("%s\n", out.dump().c_str());
    return all_passed() ? 0 : 1;
  }

  event_loop loop_;
  std::string host_;
  std::uint16_t port_;
  int seconds_;
  peer_side a_, b_;
  public_key absent_ = public_from_private(generate_private_key());
  std::optional<int> gone_reason_;
  bool ping_sent_ = false;
  std::optional<std::chrono::microseconds> ping_rtt_;
  bool failed_start_ = false;
};

// One binding request from a fresh UDP socket to HOST:PORT (IPv4), the
// answer awaited for 3 s.
int stun_run(const std::string& host, std::uint16_t port) {
  nlohmann::json out{{"ok", false}};
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(port);
  socklen_t len = sizeof local;
  if (fd < 0 || inet_pton(AF_INET, host.c_str(), &server.sin_addr) != 1 ||
      bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    out["error"] = std::string("socket setup: ") + std::strerror(errno);
    std::printf("%s\n", out.dump().c_str());
    return 1;
  }
  out["local_port"] = ntohs(local.sin_port);
  const auto txid = stun::new_transaction_id();
  const auto request = stun::binding_request(txid);
  out["request"] = to_hex(request);
  sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&server), sizeof server);
  pollfd pfd{fd, POLLIN, 0};
  std::uint8_t buf[1500];
  if (poll(&pfd, 1, 3000) == 1) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    const std::span<const std::uint8_t> reply(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    out["response"] = to_hex(reply);
    out["is_binding_response"] = stun::is_binding_response(reply);
    if (const auto r = stun::parse_binding_response(reply)) {
      out["mapped_address"] = r->address.to_string();
      out["mapped_port"] = r->port;
      out["txid_matches"] = r->txid == txid;
      out["ok"] = r->txid == txid && r->port == ntohs(local.sin_port);
    }
  } else {
    out["error"] = "no answer in 3 s";
  }
  close(fd);
  std::printf("%s\n", out.dump().c_str());
  return out["ok"] ? 0 : 1;
}

int stun_request(const std::string& txid_hex) {
  const auto raw = from_hex(txid_hex);
  stun::transaction_id txid{};
  if (!raw || raw->size() != txid.size()) {
    std::fprintf(stderr, "derp_check: TXID_HEX must be 24 hex digits\n");
    return 2;
  }
  std::copy(raw->begin(), raw->end(), txid.begin());
  std::printf("%s\n", to_hex(stun::binding_request(txid)).c_str());
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: derp_check derp HOST PORT [SECONDS]\n"
               "       derp_check stun HOST PORT\n"
               "       derp_check stun-request TXID_HEX\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  if (mode == "stun-request" && argc == 3) return stun_request(argv[2]);
  if (argc < 4) return usage();
  const int port = std::atoi(argv[3]);
  if (port <= 0 || port > 65535) return usage();
  if (mode == "derp" && argc <= 5)
    return derp_run(argv[2], static_cast<std::uint16_t>(port), argc == 5 ? std::atoi(argv[4]) : 10).run();
  if (mode == "stun" && argc == 4) return stun_run(argv[2], static_cast<std::uint16_t>(port));
  return usage();
}
