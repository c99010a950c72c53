#include "tools/loadgen/pcap_file.h"

#include <pcap/pcap.h>
#include <sys/time.h>

#include <stdexcept>

namespace lopower::loadgen {

pcap_file::pcap_file(const std::string& path) : pcap_(pcap_open_dead(DLT_EN10MB, 65535)), dumper_(nullptr) {
  if (pcap_ == nullptr) throw std::runtime_error("pcap_open_dead failed");
  dumper_ = pcap_dump_open(pcap_, path.c_str());
  if (dumper_ == nullptr) {
    const std::string why = pcap_geterr(pcap_);
    pcap_close(pcap_);
    throw std::runtime_error("cannot write " + path + ": " + why);
  }
}

pcap_file::~pcap_file() {
  pcap_dump_close(dumper_);
  pcap_close(pcap_);
}

void pcap_file::write(const rte_mbuf* frame) {
  pcap_pkthdr header{};
  gettimeofday(&header.ts, nullptr);
  header.caplen = header.len = rte_pktmbuf_data_len(frame);
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, rte_pktmbuf_mtod(frame, const u_char*));
}

}  // namespace lopower::loadgen
