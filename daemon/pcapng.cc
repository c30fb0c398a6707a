#include "pcapng.h"

#include <cstring>
#include <vector>

namespace vsnoop::daemon {
namespace {

// pcapng block and option codes (draft-ietf-opsawg-pcapng §4).
constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr std::uint32_t kInterfaceDescription = 1;
constexpr std::uint32_t kEnhancedPacket = 6;
constexpr std::uint16_t kOptEnd = 0;
constexpr std::uint16_t kOptComment = 1;
constexpr std::uint16_t kShbUserAppl = 4;
constexpr std::uint16_t kIfName = 2;
constexpr std::uint16_t kIfTsresol = 9;
constexpr std::uint16_t kLinkTypeEthernet = 1;

class Block {
 public:
  explicit Block(std::uint32_t type) {
    Put32(type);
    Put32(0);  // total length, filled in by WriteTo
  }
  void Put16(std::uint16_t v) { Append(&v, 2); }
  void Put32(std::uint32_t v) { Append(&v, 4); }
  void Append(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
  }
  void Pad() {
    while (bytes_.size() % 4 != 0) bytes_.push_back(0);
  }
  void Option(std::uint16_t code, const void* p, std::size_t n) {
    Put16(code);
    Put16(static_cast<std::uint16_t>(n));
    Append(p, n);
    Pad();
  }
  void EndOptions() {
    Put16(kOptEnd);
    Put16(0);
  }
  bool WriteTo(std::FILE* f) {
    const auto total = static_cast<std::uint32_t>(bytes_.size() + 4);
    std::memcpy(bytes_.data() + 4, &total, 4);
    Put32(total);
    return std::fwrite(bytes_.data(), 1, bytes_.size(), f) == bytes_.size();
  }

 private:
  std::vector<std::uint8_t> bytes_;
};

const char* KindName(datapath::DecisionObserver::Kind k) {
  switch (k) {
    case datapath::DecisionObserver::Kind::kEarlyAck:
      return "early-ack";
    case datapath::DecisionObserver::Kind::kWindowUpdate:
      return "window-update";
    case datapath::DecisionObserver::Kind::kSuppressed:
      return "suppressed";
    case datapath::DecisionObserver::Kind::kWindowLimited:
      return "window-limited";
  }
  return "unknown";
}

}  // namespace

std::unique_ptr<PcapngWriter> PcapngWriter::Open(const std::string& path,
                                                 std::int64_t wall_at_zero, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  Block shb(kSectionHeader);
  shb.Put32(0x1A2B3C4D);  // byte-order magic, in the writer's order
  shb.Put16(1);           // version 1.0
  shb.Put16(0);
  shb.Put32(0xFFFFFFFF);  // section length unknown
  shb.Put32(0xFFFFFFFF);
  const char appl[] = "vsnoopd";
  shb.Option(kShbUserAppl, appl, sizeof appl - 1);
  shb.EndOptions();
  Block idb(kInterfaceDescription);
  idb.Put16(kLinkTypeEthernet);
  idb.Put16(0);
  idb.Put32(0);  // no snap length limit
  const char name[] = "vsnoop-decisions";
  idb.Option(kIfName, name, sizeof name - 1);
  const std::uint8_t nanoseconds = 9;
  idb.Option(kIfTsresol, &nanoseconds, 1);
  idb.EndOptions();
  if (!shb.WriteTo(f) || !idb.WriteTo(f)) {
    *error = "cannot write " + path;
    std::fclose(f);
    return nullptr;
  }
  return std::unique_ptr<PcapngWriter>(new PcapngWriter(f, wall_at_zero));
}

PcapngWriter::~PcapngWriter() { std::fclose(file_); }

void PcapngWriter::OnDecision(Kind kind, const std::string& guest, wire::Bytes frame,
                              Timestamp now) {
  const auto ts = static_cast<std::uint64_t>(wall_at_zero_ + now.count());
  Block epb(kEnhancedPacket);
  epb.Put32(0);  // interface 0
  epb.Put32(static_cast<std::uint32_t>(ts >> 32));
  epb.Put32(static_cast<std::uint32_t>(ts & 0xFFFFFFFF));
  epb.Put32(static_cast<std::uint32_t>(frame.size()));
  epb.Put32(static_cast<std::uint32_t>(frame.size()));
  epb.Append(frame.data(), frame.size());
  epb.Pad();
  const std::string comment = std::string(KindName(kind)) + " guest=" + guest;
  epb.Option(kOptComment, comment.data(), comment.size());
  epb.EndOptions();
  epb.WriteTo(file_);
  ++packets_;
}

void PcapngWriter::Flush() { std::fflush(file_); }

}  // namespace vsnoop::daemon
