#include "pcap_file.h"

#include <pcap/pcap.h>

#include <memory>
#include <stdexcept>

namespace vsnoop::replay_test {
namespace {

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
struct DumperCloser {
  void operator()(pcap_dumper_t* d) const { pcap_dump_close(d); }
};

}  // namespace

void WritePcap(const std::string& path, const std::vector<PcapRecord>& records,
               TimestampPrecision precision, int link_type) {
  const bool nano = precision == TimestampPrecision::kNano;
  std::unique_ptr<pcap_t, PcapCloser> handle(pcap_open_dead_with_tstamp_precision(
      link_type, 262144, nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO));
  if (!handle) throw std::runtime_error("pcap_open_dead failed");
  std::unique_ptr<pcap_dumper_t, DumperCloser> dumper(pcap_dump_open(handle.get(), path.c_str()));
  if (!dumper) throw std::runtime_error(path + ": " + pcap_geterr(handle.get()));
  for (const PcapRecord& r : records) {
    if (!nano && r.nanoseconds % 1000 != 0) {
      throw std::invalid_argument("a microsecond pcap cannot hold " +
                                  std::to_string(r.nanoseconds) + " ns");
    }
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<time_t>(r.seconds);
    // In a nanosecond file libpcap stores tv_usec as nanoseconds.
    header.ts.tv_usec = static_cast<suseconds_t>(nano ? r.nanoseconds : r.nanoseconds / 1000);
    header.caplen = static_cast<bpf_u_int32>(r.bytes.size());
    header.len = r.original_length != 0 ? r.original_length : header.caplen;
    pcap_dump(reinterpret_cast<u_char*>(dumper.get()), &header, r.bytes.data());
  }
  if (pcap_dump_flush(dumper.get()) != 0) throw std::runtime_error(path + ": write failed");
}

PcapContents ReadPcap(const std::string& path) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> handle(
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
  if (!handle) throw std::runtime_error(errbuf);
  PcapContents contents;
  contents.link_type = pcap_datalink(handle.get());
  pcap_pkthdr* header = nullptr;
  const u_char* data = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(handle.get(), &header, &data)) == 1) {
    PcapRecord r;
    r.seconds = header->ts.tv_sec;
    r.nanoseconds = static_cast<std::uint32_t>(header->ts.tv_usec);
    r.bytes.assign(data, data + header->caplen);
    r.original_length = header->len;
    contents.records.push_back(std::move(r));
  }
  if (rc != PCAP_ERROR_BREAK) throw std::runtime_error(path + ": " + pcap_geterr(handle.get()));
  return contents;
}

}  // namespace vsnoop::replay_test
