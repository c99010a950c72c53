// tailnet_node_probe: tailnet_node (tailnet_node.h) over a plain kernel UDP
// socket, for the interop test (tests/interop/test_loadgen_tailnet_node.py).
// It registers, waits for lopower in the netmap, handshakes with it, then
// proves the session: an ICMP echo request to lopower's tailnet IPv4
// address, sealed with the session's send key, and lopower's reply opened
// with its receive key; and a disco round both ways. Prints one JSON line
// and exits 0 when both happened, 1 otherwise.
//
//   tailnet_node_probe --control-url URL --auth-key-file FILE --hostname NAME
//     --lopower-hostname NAME --state-dir DIR --local IP:PORT [--timeout-ms N]
//     [--corrupt-send-key]   (the test's proof that it can fail)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "dataplane/inner_packet.h"
#include "lopower/byte_order.h"
#include "lopower/net_addr.h"
#include "lopower/wireguard_messages.h"
#include "tools/loadgen/tailnet/tailnet_node.h"

namespace {

using lopower::ip_address;
using lopower::loadgen::datagram;
using lopower::loadgen::tailnet_node;
using lopower::loadgen::tailnet_session;
using lopower::loadgen::udp_endpoint;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::string text_of(const udp_endpoint& e) {
  return ip_address::from_bytes(e.ipv6, e.ip).to_string() + (e.port ? ":" + std::to_string(e.port) : "");
}

std::optional<udp_endpoint> parse_ip_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto ip = ip_address::parse(host);
  if (!ip) return std::nullopt;
  udp_endpoint e;
  e.ipv6 = ip->family == lopower::ip_family::v6;
  std::memcpy(e.ip, ip->bytes.data(), 16);
  e.port = static_cast<std::uint16_t>(std::stoi(text.substr(colon + 1)));
  return e;
}

struct sockaddr_storage to_sockaddr(const udp_endpoint& e, socklen_t& len) {
  sockaddr_storage ss{};
  if (e.ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    std::memcpy(&a->sin6_addr, e.ip, 16);
    a->sin6_port = htons(e.port);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    std::memcpy(&a->sin_addr, e.ip, 4);
    a->sin_port = htons(e.port);
    len = sizeof *a;
  }
  return ss;
}

udp_endpoint from_sockaddr(const sockaddr_storage& ss) {
  udp_endpoint e;
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.ipv6 = true;
    std::memcpy(e.ip, &a->sin6_addr, 16);
    e.port = ntohs(a->sin6_port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(e.ip, &a->sin_addr, 4);
    e.port = ntohs(a->sin_port);
  }
  return e;
}

void send_all(int fd, std::vector<datagram>& out) {
  for (const datagram& d : out) {
    socklen_t len = 0;
    const sockaddr_storage to = to_sockaddr(d.peer, len);
    (void)sendto(fd, d.payload.data(), d.payload.size(), 0, reinterpret_cast<const sockaddr*>(&to), len);
  }
  out.clear();
}

// WireGuard's transport nonce: four zero bytes, then the counter, little-endian.
void nonce_of(std::uint64_t counter, std::uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES]) {
  std::memset(nonce, 0, crypto_aead_chacha20poly1305_IETF_NPUBBYTES);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
}

std::vector<std::uint8_t> seal_data(const tailnet_session& s, std::uint64_t counter, const std::uint8_t* inner,
                                    std::size_t length) {
  const std::size_t padded = lopower::wg::padded_size(length);
  std::vector<std::uint8_t> plain(padded, 0);
  std::memcpy(plain.data(), inner, length);
  std::vector<std::uint8_t> packet(lopower::wg::message_data_size(length));
  lopower::wg::write_data_header(packet.data(), s.remote_index, counter);
  std::uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
  nonce_of(counter, nonce);
  unsigned long long sealed = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(packet.data() + sizeof(lopower::wg::message_data), &sealed, plain.data(),
                                            plain.size(), nullptr, 0, nullptr, nonce, s.send_key);
  return packet;
}

// The plaintext of a transport message for our session, or nullopt.
std::optional<std::vector<std::uint8_t>> open_data(const tailnet_session& s, const std::vector<std::uint8_t>& packet) {
  const auto msg = lopower::wg::parse_message(packet.data(), packet.size());
  const auto* data = msg.transport();
  if (data == nullptr || data->receiver_index.get() != s.local_index) return std::nullopt;
  std::uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
  nonce_of(data->counter.get(), nonce);
  const std::size_t sealed = packet.size() - sizeof(lopower::wg::message_data);
  std::vector<std::uint8_t> plain(sealed);
  unsigned long long length = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(plain.data(), &length, nullptr, msg.transport_payload(), sealed,
                                                nullptr, 0, nonce, s.receive_key) != 0)
    return std::nullopt;
  plain.resize(length);
  return plain;
}

std::optional<ip_address> first_v4(const std::vector<udp_endpoint>& v) {
  for (const udp_endpoint& e : v)
    if (!e.ipv6) return ip_address::from_bytes(false, e.ip);
  return std::nullopt;
}

nlohmann::json counters_json(const lopower::loadgen::tailnet_node_counters& c) {
  nlohmann::json j;
  c.for_each([&j](const char* name, std::uint64_t value) { j[name] = value; });
  return j;
}

struct probe_args {
  lopower::loadgen::tailnet_node_options node;
  std::uint32_t timeout_ms = 60'000;
  bool corrupt_send_key = false;
};

bool parse_args(int argc, char** argv, probe_args& a, std::string& error) {
  std::map<std::string, std::string> v;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--corrupt-send-key") a.corrupt_send_key = true;
    else if (i + 1 < argc) v[k] = argv[++i];
    else return error = "missing value for " + k, false;
  }
  for (const char* needed : {"--control-url", "--auth-key-file", "--hostname", "--lopower-hostname", "--state-dir", "--local"})
    if (!v.contains(needed)) return error = std::string("missing ") + needed, false;
  a.node.control_url = v["--control-url"];
  std::ifstream key_file(v["--auth-key-file"]);
  std::getline(key_file, a.node.auth_key);
  a.node.hostname = v["--hostname"];
  a.node.lopower_hostname = v["--lopower-hostname"];
  a.node.state_dir = v["--state-dir"];
  auto local = parse_ip_port(v["--local"]);
  if (!local) return error = "--local: not IP:PORT", false;
  a.node.local = *local;
  if (v.contains("--timeout-ms")) a.timeout_ms = static_cast<std::uint32_t>(std::stoul(v["--timeout-ms"]));
  a.node.start_timeout_ms = a.timeout_ms;
  return true;
}

int bind_socket(const udp_endpoint& local, std::string& error) {
  const int fd = socket(local.ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  socklen_t len = 0;
  const sockaddr_storage addr = to_sockaddr(local, len);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    error = std::string("bind ") + text_of(local) + ": " + std::strerror(errno);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  probe_args args;
  std::string error;
  if (!parse_args(argc, argv, args, error)) return std::fprintf(stderr, "tailnet_node_probe: %s\n", error.c_str()), 2;
  const int fd = bind_socket(args.node.local, error);
  if (fd < 0) return std::fprintf(stderr, "tailnet_node_probe: %s\n", error.c_str()), 2;
  tailnet_node node(args.node);
  if (!node.start(error)) return std::fprintf(stderr, "tailnet_node_probe: %s\n", error.c_str()), 1;
  const auto src = first_v4(node.own_addresses()), dst = first_v4(node.lopower_addresses());
  if (!src || !dst) return std::fprintf(stderr, "tailnet_node_probe: no IPv4 tailnet addresses\n"), 1;

  nlohmann::json result = {{"self", src->to_string()}, {"lopower", dst->to_string()}, {"echo_reply", false}};
  const std::uint64_t deadline = now_ns() + std::uint64_t{args.timeout_ms} * 1'000'000;
  std::vector<datagram> out;
  std::uint64_t counter = 0, last_echo = 0, session_generation = 0;
  std::uint16_t seq = 0;
  // Done when the echo came back and a disco round went both ways (our
  // ping answered; lopower's ping to the endpoint we advertised answered).
  const auto done = [&] {
    const auto c = node.counters();
    return result["echo_reply"].get<bool>() && c.disco_pongs_received > 0 && c.disco_pongs_sent > 0;
  };
  while (now_ns() < deadline && !done()) {
    node.poll(now_ns(), out);
    if (auto s = node.session()) {
      if (s->generation != session_generation) {  // a new keypair: its counters start over
        session_generation = s->generation;
        counter = s->first_send_counter;
        result["handshake"] = true;
        result["session_lopower"] = text_of(s->lopower);
      }
      if (!result["echo_reply"].get<bool>() && now_ns() - last_echo > 1'000'000'000) {  // once a second until answered
        last_echo = now_ns();
        std::uint8_t packet[20 + 8 + 32];
        const std::uint16_t len = lopower::write_echo_request(packet, *src, *dst, ++seq, 32);
        tailnet_session sealing = *s;
        if (args.corrupt_send_key) sealing.send_key[0] ^= 1;  // lopower must drop what this seals
        out.push_back({s->lopower, seal_data(sealing, counter++, packet, len)});
      }
    }
    send_all(fd, out);
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 20) <= 0) continue;
    std::vector<std::uint8_t> buf(65536);
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0) continue;
    buf.resize(static_cast<std::size_t>(n));
    datagram in{from_sockaddr(from), std::move(buf)};
    const auto s = node.session();
    if (in.payload.size() >= 4 && in.payload[0] == 4 && s) {  // transport data: the data path's (ours here)
      auto plain = open_data(*s, in.payload);
      if (!plain || plain->empty()) continue;  // undecryptable, or lopower's keepalive
      const auto info = lopower::parse_inner(plain->data(), static_cast<std::uint32_t>(plain->size()));
      if (info && lopower::is_lopower_echo_reply(plain->data(), *info) &&
          std::memcmp(info->src, dst->bytes.data(), 4) == 0) {
        result["echo_reply"] = true;
        result["echo_seq"] = lopower::load_be16(plain->data() + info->l4_offset + 6);
      }
      continue;
    }
    node.receive(in, now_ns(), out);
  }
  const auto final_counters = node.counters();
  result["disco_both_ways"] = final_counters.disco_pongs_received > 0 && final_counters.disco_pongs_sent > 0;
  result["counters"] = counters_json(final_counters);
  std::printf("%s\n", result.dump().c_str());
  std::fflush(stdout);
  node.stop();
  close(fd);
  return done() ? 0 : 1;
}
