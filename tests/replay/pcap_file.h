// Pcap files for the replay tests and the example trace: written and read back through
// libpcap itself, so the files are exactly what tcpdump and vsnoop-replay see.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vsnoop::replay_test {

// How a file stores the fraction of a second (its magic number says which).
enum class TimestampPrecision : std::uint8_t { kMicro, kNano };

// One captured frame. The time is kept in nanoseconds whatever the file's precision; a
// microsecond file can only hold multiples of 1000.
struct PcapRecord {
  std::int64_t seconds = 0;
  std::uint32_t nanoseconds = 0;
  std::vector<std::uint8_t> bytes;
  std::uint32_t original_length = 0;  // 0 when written: the frame's size

  std::int64_t TotalNanoseconds() const { return seconds * 1'000'000'000 + nanoseconds; }
};

struct PcapContents {
  int link_type = 0;  // DLT_*
  std::vector<PcapRecord> records;
};

// Writes a capture; throws std::runtime_error when libpcap cannot. link_type is a DLT_*
// value (DLT_EN10MB for Ethernet).
void WritePcap(const std::string& path, const std::vector<PcapRecord>& records,
               TimestampPrecision precision, int link_type);

// Reads a whole capture with nanosecond timestamps (libpcap scales microsecond files);
// throws std::runtime_error on any error.
PcapContents ReadPcap(const std::string& path);

}  // namespace vsnoop::replay_test
