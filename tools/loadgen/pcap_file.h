#pragma once
// --write-pcap: frames written to a classic pcap file (libpcap), which
// pktgen-dpdk replays.

#include <rte_mbuf.h>

#include <string>

typedef struct pcap pcap_t;
typedef struct pcap_dumper pcap_dumper_t;

namespace lopower::loadgen {

class pcap_file {
 public:
  // Throws std::runtime_error when the file cannot be created.
  explicit pcap_file(const std::string& path);
  ~pcap_file();
  pcap_file(const pcap_file&) = delete;
  pcap_file& operator=(const pcap_file&) = delete;

  void write(const rte_mbuf* frame);

 private:
  pcap_t* pcap_;
  pcap_dumper_t* dumper_;
};

}  // namespace lopower::loadgen
