#include "dataplane/kernel_interface.h"

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>

namespace lopower {
namespace {

// MNL_SOCKET_BUFFER_SIZE depends on the page size at run time; our
// requests and the kernel's acknowledgements fit comfortably in this.
constexpr std::size_t netlink_buffer_size = 8192;

struct socket_closer {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};

// Sends one request and waits for the kernel's acknowledgement; returns 0 or
// the (positive) errno the kernel answered with.
int netlink_request(nlmsghdr* request) {
  std::unique_ptr<mnl_socket, socket_closer> nl(mnl_socket_open(NETLINK_ROUTE));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) return errno;
  request->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  request->nlmsg_seq = static_cast<unsigned>(time(nullptr));
  if (mnl_socket_sendto(nl.get(), request, request->nlmsg_len) < 0) return errno;
  char buf[netlink_buffer_size];
  const ssize_t got = mnl_socket_recvfrom(nl.get(), buf, sizeof buf);
  if (got < 0) return errno;
  const int rc = mnl_cb_run(buf, static_cast<size_t>(got), request->nlmsg_seq, mnl_socket_get_portid(nl.get()), nullptr, nullptr);
  return rc < 0 ? errno : 0;
}

int address_family(const ip_address& a) { return a.family == ip_family::v4 ? AF_INET : AF_INET6; }
std::size_t address_size(const ip_address& a) { return a.family == ip_family::v4 ? 4 : 16; }

void check(int err, const std::string& what) {
  if (err != 0 && err != EEXIST) throw std::runtime_error(what + ": " + std::strerror(err));
}

}  // namespace

kernel_interface::kernel_interface(std::string name) : name_(std::move(name)), index_(if_nametoindex(name_.c_str())) {
  if (index_ == 0) throw std::runtime_error("kernel interface " + name_ + " not found: " + std::strerror(errno));
}

void kernel_interface::add_address(const ip_prefix& prefix) const {
  char buf[netlink_buffer_size];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<unsigned char>(address_family(prefix.address));
  ifa->ifa_prefixlen = prefix.length;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = index_;
  // The port already owns this address on the wire: duplicate-address
  // detection through the TAP would only delay it.
  ifa->ifa_flags = IFA_F_NODAD;
  const auto len = static_cast<uint16_t>(address_size(prefix.address));
  mnl_attr_put(nlh, IFA_LOCAL, len, prefix.address.bytes.data());
  mnl_attr_put(nlh, IFA_ADDRESS, len, prefix.address.bytes.data());
  check(netlink_request(nlh), "cannot add " + prefix.to_string() + " to " + name_);
}

void kernel_interface::add_default_route(const ip_address& gateway, unsigned metric) const {
  char buf[netlink_buffer_size];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(address_family(gateway));
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put(nlh, RTA_GATEWAY, static_cast<uint16_t>(address_size(gateway)), gateway.bytes.data());
  mnl_attr_put_u32(nlh, RTA_OIF, index_);
  mnl_attr_put_u32(nlh, RTA_PRIORITY, metric);
  check(netlink_request(nlh), "cannot add a default route via " + gateway.to_string() + " on " + name_);
}

void kernel_interface::set_up() const {
  char buf[netlink_buffer_size];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWLINK;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = static_cast<int>(index_);
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  check(netlink_request(nlh), "cannot bring " + name_ + " up");
}

}  // namespace lopower
