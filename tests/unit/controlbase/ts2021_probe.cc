// ts2021_probe HOST PORT [--capver N] [--server-key mkey:...] [--timeout SECONDS]
//                         [--register-authkey KEY]
//
// Speaks ts2021 to a real control server (headscale in tests/interop) with
// lopower's controlbase, step by step, and prints one JSON object saying how
// far it got:
//
//   1. GET /key?v=N                  -> the server's Noise key (unless --server-key)
//   2. POST /ts2021 with the initiation in X-Tailscale-Handshake -> 101
//   3. the Noise response            -> transport keys
//   4. the early payload             (records opened with the big-endian nonce)
//   5. HTTP/2 inside records: the server's SETTINGS frame; then our client
//      preface + SETTINGS in one record, and the server's SETTINGS ACK back
//      (proof that the server opened our records).
//
// With --register-authkey, step 5 is the real thing instead: h2_client in
// the records, POST /machine/register with a fresh node key and the
// pre-auth key, and the RegisterResponse reported ("register": status,
// headers, body, the parsed JSON, the stream's close code, and the frames
// the server sent, SETTINGS decoded).
//
// Exit status 0 when every step passed, 1 otherwise ("stage" and "error"
// say where and why). Test tool only; plain TCP, no TLS.

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "control/tailnet/controlbase/h2_client.h"
#include "control/tailnet/controlbase/key_text.h"
#include "control/tailnet/controlbase/noise_ik.h"
#include "control/tailnet/controlbase/record_stream.h"
#include "control/tailnet/controlbase/upgrade.h"
#include "lopower/byte_order.h"

namespace {

using namespace lopower;
using namespace lopower::tailnet;
using json = nlohmann::json;

struct probe_failure {
  std::string stage;
  std::string error;
};

class socket_conn {
 public:
  socket_conn(const std::string& host, const std::string& port, int timeout_s) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
      throw probe_failure{"connect", std::string("getaddrinfo: ") + gai_strerror(rc)};
    std::string last = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      const int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (fd < 0) continue;
      timeval tv{};
      tv.tv_sec = timeout_s;
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        fd_ = fd;
        break;
      }
      last = std::strerror(errno);
      ::close(fd);
    }
    freeaddrinfo(res);
    if (fd_ < 0) throw probe_failure{"connect", "connect: " + last};
  }
  ~socket_conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  socket_conn(const socket_conn&) = delete;
  socket_conn& operator=(const socket_conn&) = delete;

  void write_all(std::span<const std::uint8_t> bytes, const char* stage) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw probe_failure{stage, std::string("send: ") + std::strerror(errno)};
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
  }
  void write_all(std::string_view text, const char* stage) {
    write_all(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), stage);
  }
  // Some bytes; empty at end of stream. A timeout is a failure of `stage`.
  std::vector<std::uint8_t> read_some(const char* stage) {
    std::vector<std::uint8_t> buf(4096);
    for (;;) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        throw probe_failure{stage, errno == EAGAIN || errno == EWOULDBLOCK ? std::string("timed out waiting for the server")
                                                                           : std::string("recv: ") + std::strerror(errno)};
      }
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
  }

 private:
  int fd_ = -1;
};

std::string host_header(const std::string& host, const std::string& port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

public_key fetch_server_key(const std::string& host, const std::string& port, std::uint16_t capver, int timeout_s,
                            json& report) {
  socket_conn conn(host, port, timeout_s);
  conn.write_all(build_key_request(host_header(host, port), capver), "key");
  std::string whole;
  for (;;) {
    const auto bytes = conn.read_some("key");
    if (bytes.empty()) break;
    whole.append(bytes.begin(), bytes.end());
    if (whole.size() > 64 * 1024) throw probe_failure{"key", "/key response longer than 64 KiB"};
  }
  auto response = parse_http_response(whole);
  if (!response) throw probe_failure{"key", response.message()};
  if (response->head.status != 200)
    throw probe_failure{"key", "/key answered HTTP " + std::to_string(response->head.status) + ": " + response->body};
  auto keys = parse_key_response(response->body);
  if (!keys) throw probe_failure{"key", keys.message()};
  report["key_response"] = response->body;
  if (keys->legacy) report["legacy_key"] = format_machine_key(*keys->legacy);
  return keys->noise;
}

struct http2_frame {
  std::uint32_t length;
  std::uint8_t type;
  std::uint8_t flags;
  std::uint32_t stream;
};

// Lists the HTTP/2 frames in the server's plaintext as it passes (frames
// may span reads): type, flags, stream, length; SETTINGS with their values,
// WINDOW_UPDATE with its increment, GOAWAY and RST_STREAM with their codes.
class frame_log {
 public:
  void add(std::span<const std::uint8_t> bytes) {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    while (buf_.size() >= 9) {
      const std::uint32_t length = load_be32(&buf_[0]) >> 8;  // 24 bits
      if (buf_.size() < 9 + length) return;
      const std::span<const std::uint8_t> payload(buf_.data() + 9, length);
      json f = {{"type", buf_[3]}, {"flags", buf_[4]},
                {"stream", load_be32(&buf_[5]) & 0x7fffffff}, {"length", length}};
      if (buf_[3] == 0x04) {
        json values = json::object();
        for (std::size_t i = 0; i + 6 <= payload.size(); i += 6)
          values[std::to_string(load_be16(&payload[i]))] = load_be32(&payload[i + 2]);
        f["settings"] = values;
      } else if (buf_[3] == 0x08 && length == 4) {
        f["increment"] = load_be32(payload.data()) & 0x7fffffff;
      } else if (buf_[3] == 0x03 && length == 4) {
        f["error_code"] = load_be32(payload.data());
      } else if (buf_[3] == 0x07 && length >= 8) {
        f["error_code"] = load_be32(&payload[4]);
      }
      frames_.push_back(std::move(f));
      buf_.erase(buf_.begin(), buf_.begin() + 9 + static_cast<std::ptrdiff_t>(length));
    }
  }
  const json& frames() const { return frames_; }

 private:
  std::vector<std::uint8_t> buf_;
  json frames_ = json::array();
};

// POST /machine/register over h2_client, inside the records. `h2` holds
// what the server sent after its early payload so far; `read_more` adds
// to it.
template <class ReadMore>
void register_node(socket_conn& conn, record_transport& transport, std::vector<std::uint8_t>& h2, ReadMore read_more,
                   const std::string& authority, std::uint16_t capver, const std::string& authkey, json& report) {
  const private_key node = generate_private_key();
  const json request = {{"Version", capver},
                        {"NodeKey", format_node_key(public_from_private(node))},
                        {"Auth", {{"AuthKey", authkey}}},
                        {"Hostinfo", {{"Hostname", "probe"}, {"OS", "linux"}}}};
  json& out = report["register"];
  out["node_key"] = request["NodeKey"];

  h2_client client;
  std::optional<std::uint32_t> closed;
  std::string body;
  const std::int32_t id = client.request(
      {.method = "POST",
       .path = "/machine/register",
       .authority = authority,
       .headers = {{"content-type", "application/json"}},
       .body = request.dump()},
      {.on_response =
           [&](int status, const std::vector<http_header>& headers) {
             out["status"] = status;
             json h = json::object();
             for (const auto& f : headers) h[f.name] = f.value;
             out["headers"] = h;
           },
       .on_data = [&](std::span<const std::uint8_t> chunk) { body.append(chunk.begin(), chunk.end()); },
       .on_close = [&](std::uint32_t code) { closed = code; }});
  if (id < 0) throw probe_failure{"register", std::string("request: ") + h2_strerror(id)};

  frame_log frames;
  std::vector<std::uint8_t> plain_out, wire;
  const auto flush = [&] {
    plain_out.clear();
    client.take_output(plain_out);
    if (plain_out.empty()) return;
    wire.clear();
    if (const auto e = transport.tx.seal(plain_out, wire); e != record_error::none)
      throw probe_failure{"register", std::string("sealing: ") + to_string(e)};
    conn.write_all(wire, "register");
  };
  flush();  // preface, SETTINGS, WINDOW_UPDATE and the request, at once
  while (!closed) {
    if (h2.empty()) {
      read_more("register");
      continue;
    }
    frames.add(h2);
    const auto fed = client.feed(h2);
    h2.clear();
    if (!fed) throw probe_failure{"register", fed.message()};
    flush();
  }
  out["server_frames"] = frames.frames();
  out["close_code"] = *closed;
  out["body"] = body;
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  out["response"] = parsed.is_discarded() ? json(nullptr) : parsed;
  client.shutdown();
  flush();
  if (*closed != h2_no_error) throw probe_failure{"register", "the stream closed with code " + std::to_string(*closed)};
}

void run(const std::string& host, const std::string& port, std::uint16_t capver,
         const std::optional<public_key>& given_key, int timeout_s, const std::optional<std::string>& register_authkey,
         json& report) {
  report["capver"] = capver;
  // 1. The server's key.
  const public_key server_key = given_key ? *given_key : fetch_server_key(host, port, capver, timeout_s, report);
  report["server_key"] = format_machine_key(server_key);

  // 2. Upgrade, carrying the initiation.
  const private_key machine = generate_private_key();
  report["machine_key"] = format_machine_key(public_from_private(machine));
  auto initiator = noise_ik_initiator::start(machine, server_key, capver);
  if (!initiator) throw probe_failure{"handshake", initiator.message()};
  socket_conn conn(host, port, timeout_s);
  conn.write_all(build_upgrade_request(host_header(host, port), initiator->initiation()), "upgrade");
  upgrade_response_reader upgrade;
  for (;;) {
    const auto bytes = conn.read_some("upgrade");
    if (bytes.empty()) throw probe_failure{"upgrade", "the server closed the connection before answering"};
    const auto done = upgrade.feed(bytes);
    if (!done) throw probe_failure{"upgrade", done.message()};
    if (*done) break;
  }
  report["upgrade_status"] = upgrade.head().status;

  // 3. The Noise reply, right behind the head.
  std::vector<std::uint8_t> pending(upgrade.surplus().begin(), upgrade.surplus().end());
  std::size_t reply_size = 0;
  for (;;) {
    if (reply_size == 0 && pending.size() >= message_header_size) {
      const auto size = noise_ik_initiator::reply_size(std::span(pending).first(message_header_size));
      if (!size) throw probe_failure{"handshake", size.message()};
      reply_size = *size;
    }
    if (reply_size != 0 && pending.size() >= reply_size) break;
    const auto bytes = conn.read_some("handshake");
    if (bytes.empty())
      throw probe_failure{"handshake", "the server closed the connection before its handshake reply (" +
                                           std::to_string(pending.size()) + " bytes of it came)"};
    pending.insert(pending.end(), bytes.begin(), bytes.end());
  }
  auto keys = initiator->finish(std::span(pending).first(reply_size));
  if (!keys) throw probe_failure{"handshake", keys.message()};
  pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(reply_size));
  report["handshake"] = "ok";
  report["handshake_hash"] = keys->handshake_hash.to_hex();

  // 4. Records: the early payload, then HTTP/2.
  record_transport transport(*keys);
  early_payload_reader early;
  std::vector<std::uint8_t> plain, h2;
  const auto pump = [&](const char* stage) {
    if (pending.empty()) {
      pending = conn.read_some(stage);
      if (pending.empty()) throw probe_failure{stage, "the server closed the connection"};
    }
    plain.clear();
    if (const auto e = transport.rx.feed(pending, plain); e != record_error::none)
      throw probe_failure{stage, std::string("bad record from the server: ") + to_string(e)};
    pending.clear();
    if (const auto r = early.feed(plain, h2); !r) throw probe_failure{"early_payload", r.message()};
  };
  while (!early.done()) pump("early_payload");
  report["records_received"] = transport.rx.records();
  if (early.payload()) {
    json p;
    p["json"] = early.payload()->json;
    p["node_key_challenge"] =
        early.payload()->node_key_challenge ? json(format_key_text(key_text_kind::challenge, *early.payload()->node_key_challenge))
                                            : json(nullptr);
    report["early_payload"] = p;
  } else {
    report["early_payload"] = nullptr;
  }

  if (register_authkey) {
    register_node(conn, transport, h2, pump, host_header(host, port), capver, *register_authkey, report);
    return;
  }

  // 5. HTTP/2 frames, read whole from the plaintext stream.
  const auto next_frame = [&](const char* stage) {
    while (h2.size() < 9) pump(stage);
    http2_frame f{load_be32(&h2[0]) >> 8, h2[3], h2[4], load_be32(&h2[5]) & 0x7fffffff};
    if (f.length > 1 << 20) throw probe_failure{stage, "HTTP/2 frame of " + std::to_string(f.length) + " bytes"};
    while (h2.size() < 9 + f.length) pump(stage);
    h2.erase(h2.begin(), h2.begin() + 9 + static_cast<std::ptrdiff_t>(f.length));
    return f;
  };
  const http2_frame first = next_frame("http2");
  report["http2_first_frame"] = {{"type", first.type}, {"flags", first.flags}, {"stream", first.stream},
                                 {"length", first.length}};
  if (first.type != 0x04 || (first.flags & 0x01) != 0 || first.stream != 0)
    throw probe_failure{"http2", "the server's first HTTP/2 frame is not SETTINGS"};

  // Our preface and an empty SETTINGS, and the ACK of theirs, in one record.
  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  out += std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  out += std::string("\x00\x00\x00\x04\x01\x00\x00\x00\x00", 9);
  std::vector<std::uint8_t> wire;
  if (const auto e = transport.tx.seal(std::span(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()), wire);
      e != record_error::none)
    throw probe_failure{"http2", std::string("sealing: ") + to_string(e)};
  conn.write_all(wire, "http2");
  report["records_sent"] = transport.tx.next_nonce();

  json seen = json::array();
  for (int i = 0; i < 16; ++i) {
    const http2_frame f = next_frame("http2_ack");
    seen.push_back({{"type", f.type}, {"flags", f.flags}, {"stream", f.stream}, {"length", f.length}});
    if (f.type == 0x07) throw probe_failure{"http2_ack", "the server sent GOAWAY"};
    if (f.type == 0x04 && (f.flags & 0x01) != 0 && f.length == 0) {
      report["http2_frames_after_preface"] = seen;
      report["http2_settings_ack"] = true;
      return;
    }
  }
  report["http2_frames_after_preface"] = seen;
  throw probe_failure{"http2_ack", "no SETTINGS ACK in the first 16 frames"};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: ts2021_probe HOST PORT [--capver N] [--server-key mkey:...] [--timeout SECONDS]"
                 " [--register-authkey KEY]\n";
    return 2;
  }
  const std::string host = argv[1], port = argv[2];
  std::uint16_t capver = 119;
  int timeout_s = 10;
  std::optional<public_key> server_key;
  std::optional<std::string> register_authkey;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--capver") {
      capver = static_cast<std::uint16_t>(std::stoul(value));
    } else if (flag == "--timeout") {
      timeout_s = std::stoi(value);
    } else if (flag == "--register-authkey") {
      register_authkey = value;
    } else if (flag == "--server-key") {
      auto k = parse_machine_key(value);
      if (!k) {
        std::cerr << k.message() << "\n";
        return 2;
      }
      server_key = *k;
    } else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  json report;
  bool ok = false;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    run(host, port, capver, server_key, timeout_s, register_authkey, report);
    ok = true;
  } catch (const probe_failure& f) {
    report["stage"] = f.stage;
    report["error"] = f.error;
  }
  report["ok"] = ok;
  report["elapsed_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::cout << report.dump(2) << std::endl;
  return ok ? 0 : 1;
}
