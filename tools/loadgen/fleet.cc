#include "tools/loadgen/fleet.h"

#include <arpa/inet.h>
#include <rte_cycles.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "control/wireguard/engine/tai64n.h"
#include "lopower/ctl_protocol.h"
#include "tools/loadgen/peers_file.h"

namespace lopower::loadgen {
namespace {

// A device's local indices: its number (plus one, so 0 never appears) in
// the high bits and the handshake generation in the low 12, so that data
// for an old keypair is told from the current one.
constexpr unsigned generation_bits = 12;
std::uint32_t local_index_for(std::size_t device_number, std::uint32_t generation) {
  return static_cast<std::uint32_t>(device_number + 1) << generation_bits | (generation & ((1u << generation_bits) - 1));
}

std::uint64_t ns_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch()).count());
}

// The value after "KEY = " on its line of a wg-quick config, "" if absent.
std::string config_value(const std::string& config, const std::string& key) {
  const std::string marker = "\n" + key + " = ";
  const auto at = ("\n" + config).find(marker);
  if (at == std::string::npos) return {};
  const auto start = at + marker.size() - 1;  // in `config`, which lacks the leading newline
  return config.substr(start, config.find('\n', start) - start);
}

std::uint32_t ipv4_be(const std::string& text, const std::string& what) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) throw std::runtime_error(what + " is not an IPv4 address: \"" + text + "\"");
  return a.s_addr;
}

// lopower's key, endpoint and inner address, from a device's config.
lopower_side lopower_of_config(const std::string& config) {
  lopower_side side;
  const auto key = public_key::from_base64(config_value(config, "PublicKey"));
  if (!key) throw std::runtime_error("the device config has no lopower public key");
  side.key = *key;
  const std::string endpoint = config_value(config, "Endpoint");
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("the device config has no Endpoint");
  side.endpoint_ip_be = ipv4_be(endpoint.substr(0, colon), "lopower's endpoint (devices.endpoint)");
  side.endpoint_port = static_cast<std::uint16_t>(std::stoul(endpoint.substr(colon + 1)));
  // DNS = lopower's own addresses inside the tunnels, IPv4 first.
  const std::string dns = config_value(config, "DNS");
  side.inner_ip_be = ipv4_be(dns.substr(0, dns.find(',')), "lopower's device-side address");
  return side;
}

nlohmann::json ctl_call(const std::string& socket, const std::string& command, const nlohmann::json& args) {
  const nlohmann::json reply = ctl::call(socket, {command, args});
  if (!reply.value("ok", false))
    throw std::runtime_error(command + ": " + reply.value("error", std::string("refused")));
  return reply["result"];
}

}  // namespace

fleet::fleet(const options& opts, const link_port& port, crypto::aead_backend& aead)
    : opts_(opts), port_(port), aead_(aead), hz_(rte_get_tsc_hz()) {}

void fleet::enrol() {
  if (opts_.peers_file.empty()) enrol_through_ctl();
  else enrol_from_peers_file();
}

void fleet::set_path(device& d, std::size_t number) {
  d.handshake = std::make_unique<wg::peer_handshake>(*d.identity, lopower_.key);
  d.cookies = std::make_unique<wg::cookie_maker>(lopower_.key);
  d.path.ipv6 = false;
  d.path.port_id = port_.id;
  std::memcpy(d.path.local_mac, port_.mac.addr_bytes, 6);
  std::memcpy(d.path.local_ip, &opts_.local_ip_be, 4);
  std::memcpy(d.path.peer_ip, &lopower_.endpoint_ip_be, 4);
  d.path.peer_port_be = htons(lopower_.endpoint_port);
  d.path.local_port_be = htons(static_cast<std::uint16_t>(opts_.first_udp_port + number));
}

void fleet::enrol_through_ctl() {
  devices_.resize(opts_.devices);
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    device& d = devices_[i];
    d.name = opts_.name_prefix + "-" + std::to_string(i);
    d.identity = std::make_unique<wg::static_identity>(generate_private_key());
    const nlohmann::json r = add_device(d);
    d.enrolled = true;
    if (!r.contains("ipv4") || !r["ipv4"].is_string())
      throw std::runtime_error("device " + d.name + " got no IPv4 address (the loadgen speaks IPv4)");
    d.inner_ip_be = ipv4_be(r["ipv4"].get<std::string>(), "the device address");
    if (i == 0) lopower_ = lopower_of_config(r.value("config", std::string()));
    set_path(d, i);
  }
}

// `device.add` for `d`; a name already taken is an earlier run's device
// (its keys died with that run): replaced on request, else refused saying how.
nlohmann::json fleet::add_device(const device& d) const {
  const nlohmann::json add{{"name", d.name}, {"public_key", d.identity->static_public().to_base64()}};
  nlohmann::json reply = ctl::call(opts_.ctl_socket, {"device.add", add});
  if (!reply.value("ok", false) && opts_.replace_devices && device_exists(d.name)) {
    ctl_call(opts_.ctl_socket, "device.remove", {{"name", d.name}});
    reply = ctl::call(opts_.ctl_socket, {"device.add", add});
  }
  if (reply.value("ok", false)) return reply["result"];
  std::string why = "device.add: " + reply.value("error", std::string("refused"));
  if (!opts_.replace_devices && device_exists(d.name))
    why += " (left by an earlier run with --keep-devices or one that crashed? --replace-devices removes such "
           "devices first, or choose another --name-prefix)";
  throw std::runtime_error(why);
}

bool fleet::device_exists(const std::string& name) const {
  const nlohmann::json list = ctl_call(opts_.ctl_socket, "device.list", nlohmann::json::object());
  if (!list.is_array()) return false;
  for (const nlohmann::json& entry : list)
    if (entry.is_object() && entry.value("name", std::string()) == name) return true;
  return false;
}

void fleet::enrol_from_peers_file() {
  static_peers peers = load_peers_file(opts_.peers_file);
  lopower_.key = peers.gateway_key;
  lopower_.endpoint_ip_be = peers.gateway_endpoint_ip_be;
  lopower_.endpoint_port = peers.gateway_endpoint_port;
  lopower_.inner_ip_be = peers.gateway_inner_ip_be;
  devices_.resize(peers.devices.size());
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    device& d = devices_[i];
    d.name = opts_.name_prefix + "-" + std::to_string(i);
    d.identity = std::make_unique<wg::static_identity>(std::move(peers.devices[i].key));
    d.inner_ip_be = peers.devices[i].inner_ip_be;
    set_path(d, i);
  }
}

void fleet::remove_all() noexcept {
  if (opts_.keep_devices || !opts_.peers_file.empty()) return;  // a peers file's devices were never enrolled
  for (const device& d : devices_) {
    if (!d.enrolled) continue;  // refused, or never reached: not ours to remove
    try {
      ctl_call(opts_.ctl_socket, "device.remove", {{"name", d.name}});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lopower-loadgen: removing %s: %s\n", d.name.c_str(), e.what());
    }
  }
}

void fleet::set_lopower_mac(const rte_ether_addr& mac) {
  lopower_.mac = mac;
  for (device& d : devices_) std::memcpy(d.path.peer_mac, mac.addr_bytes, 6);
}

unsigned fleet::established() const noexcept {
  unsigned n = 0;
  for (const device& d : devices_) n += d.current != nullptr;
  return n;
}

device* fleet::device_of_index(std::uint32_t index) noexcept {
  const std::size_t number = index >> generation_bits;
  return number == 0 || number > devices_.size() ? nullptr : &devices_[number - 1];
}

wg::peer_handshake* fleet::by_index(std::uint32_t local_index) {
  device* d = device_of_index(local_index);
  return d != nullptr && d->handshake->local_index() == local_index ? d->handshake.get() : nullptr;
}

std::pair<device*, transport_session*> fleet::session_for(std::uint32_t receiver_index) noexcept {
  device* d = device_of_index(receiver_index);
  if (d == nullptr) return {nullptr, nullptr};
  if (d->current && d->current->local_index == receiver_index) return {d, d->current.get()};
  if (d->previous && d->previous->local_index == receiver_index) return {d, d->previous.get()};
  return {nullptr, nullptr};
}

void fleet::send(rte_mbuf* frame, device& d, std::uint64_t now_tsc) {
  if (frame == nullptr) return;
  send_burst(port_, &frame, 1);
  d.last_sent_tsc = now_tsc;
}

void fleet::initiate(device& d, std::uint64_t now_tsc) {
  const std::size_t number = static_cast<std::size_t>(&d - devices_.data());
  wg::message_handshake_initiation msg{};
  if (wg::create_initiation(msg, *d.handshake, *d.identity, local_index_for(number, ++d.generation), wg::tai64n_now()) !=
      wg::handshake_error::none)
    return;
  d.cookies->add_macs(msg, ns_now());
  d.initiation_tsc = now_tsc;
  ++d.initiations;
  send(handshake_frame(port_.pool, d.path, &msg, sizeof msg), d, now_tsc);
}

void fleet::complete(device& d, std::uint64_t now_tsc) {
  auto keys = wg::derive_keypair(*d.handshake);
  if (!keys) return;
  auto s = std::make_unique<transport_session>();
  s->send_key = keys->send;
  s->receive_key = keys->receive;
  s->local_index = keys->local_index;
  s->remote_index = keys->remote_index;
  s->established_tsc = now_tsc;
  d.previous = std::move(d.current);
  d.current = std::move(s);
  d.initiation_tsc = 0;
  d.first_unanswered_tsc = 0;
  ++d.handshakes;
  // The responder uses the keypair once data arrives on it: confirm at once.
  send(keepalive_frame(port_.pool, d.path, *d.current, aead_), d, now_tsc);
}

void fleet::on_handshake_message(const std::uint8_t* message, std::size_t length, std::uint64_t now_tsc) {
  const wg::parsed_message parsed = wg::parse_message(message, length);
  if (const auto* cookie = parsed.cookie_reply()) {
    device* d = device_of_index(cookie->receiver_index.get());
    // A cookie means lopower is under load: the retry carries MAC2 at once.
    if (d != nullptr && d->initiation_tsc != 0 && d->cookies->consume_reply(*cookie, ns_now())) initiate(*d, now_tsc);
    else ++refused_;
    return;
  }
  const auto* response = parsed.response();
  device* d = response != nullptr ? device_of_index(response->receiver_index.get()) : nullptr;
  if (d == nullptr ||
      wg::check_macs(message, length, d->identity->mac1_key(), nullptr, wg::packet_source{}) == wg::mac_status::invalid_mac) {
    ++refused_;
    return;
  }
  if (!wg::consume_response(*response, *d->identity, *this)) {
    ++refused_;
    return;
  }
  complete(*d, now_tsc);
}

void fleet::tick(std::uint64_t now_tsc) {
  const std::uint64_t retry = static_cast<std::uint64_t>(wg::rekey_timeout.count()) * hz_;
  const std::uint64_t renew_age = static_cast<std::uint64_t>(wg::rekey_after_time.count()) * hz_;
  const std::uint64_t keepalive = static_cast<std::uint64_t>(wg::keepalive_timeout.count()) * hz_;
  const std::uint64_t silence = keepalive + retry;
  // Times stamped on receipt can be a little later than `now_tsc` (taken
  // at the top of the loop's turn): an age is never negative.
  auto age = [now_tsc](std::uint64_t then) { return now_tsc > then ? now_tsc - then : 0; };
  for (device& d : devices_) {
    const bool in_flight = d.initiation_tsc != 0;
    if (in_flight && age(d.initiation_tsc) >= retry) initiate(d, now_tsc);
    else if (!in_flight && d.current == nullptr) initiate(d, now_tsc);
    else if (!in_flight && renew_ && age(d.current->established_tsc) >= renew_age) initiate(d, now_tsc);
    else if (!in_flight && d.first_unanswered_tsc != 0 && age(d.first_unanswered_tsc) >= silence) {
      ++d.silences;
      d.first_unanswered_tsc = 0;
      initiate(d, now_tsc);
    }
    else if (d.current != nullptr && age(d.last_sent_tsc) >= keepalive)
      send(keepalive_frame(port_.pool, d.path, *d.current, aead_), d, now_tsc);
  }
}

}  // namespace lopower::loadgen
