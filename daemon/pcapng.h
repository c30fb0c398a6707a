// --pcap-out: a pcapng capture of what vSnoop generated and suppressed. pcapng rather than
// pcap because each packet carries a comment saying what vSnoop did and for which guest
// ("early-ack guest=veth:vm1"); Wireshark shows it, and `tshark -Y 'frame.comment'` filters
// on it. Written by hand (libpcap 1.10 writes only pcap): a Section Header Block, one
// Interface Description Block (Ethernet, nanosecond timestamps), Enhanced Packet Blocks.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "vsnoop/datapath/datapath.h"

namespace vsnoop::daemon {

class PcapngWriter final : public datapath::DecisionObserver {
 public:
  // `wall_at_zero`: the wall-clock time (ns since the epoch) of monotonic time zero, so
  // packets carry real dates.
  static std::unique_ptr<PcapngWriter> Open(const std::string& path, std::int64_t wall_at_zero,
                                            std::string* error);
  ~PcapngWriter() override;

  void OnDecision(Kind kind, const std::string& guest, wire::Bytes frame, Timestamp now) override;
  void Flush();
  std::uint64_t packets() const { return packets_; }

 private:
  PcapngWriter(std::FILE* file, std::int64_t wall_at_zero) : file_(file), wall_at_zero_(wall_at_zero) {}
  std::FILE* file_;
  std::int64_t wall_at_zero_;
  std::uint64_t packets_ = 0;
};

}  // namespace vsnoop::daemon
