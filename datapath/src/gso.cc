#include "vsnoop/datapath/gso.h"

#include <cstring>

#include "vsnoop/segment.h"
#include "vsnoop/wire/checksum.h"

namespace vsnoop::datapath {
namespace {

// Completes a partial checksum (virtio-net NEEDS_CSUM): the field at csum_start +
// csum_offset holds the pseudo-header sum; the checksum covers csum_start to the end.
bool CompleteChecksum(std::vector<std::uint8_t>* frame, const VnetHeader& vnet) {
  const std::size_t start = vnet.csum_start;
  const std::size_t field = start + vnet.csum_offset;
  if (field + 2 > frame->size() || start >= frame->size()) return false;
  const std::uint16_t c = wire::InternetChecksum::Of(
      {frame->data() + start, frame->size() - start});
  wire::StoreBe16(frame->data() + field, c);
  return true;
}

}  // namespace

GsoResult Unoffload(const PacketView& packet, std::vector<OwnedPacket>* out) {
  if (packet.vnet.plain() || (!packet.vnet.is_gso() && !packet.vnet.needs_csum())) {
    out->push_back({std::vector<std::uint8_t>(packet.frame.begin(), packet.frame.end()), {}});
    return GsoResult::kDone;
  }
  if (!packet.vnet.is_gso()) {
    OwnedPacket p{std::vector<std::uint8_t>(packet.frame.begin(), packet.frame.end()), {}};
    if (!CompleteChecksum(&p.frame, packet.vnet)) return GsoResult::kMalformed;
    out->push_back(std::move(p));
    return GsoResult::kDone;
  }
  const std::uint8_t type = packet.vnet.gso_type & ~VnetHeader::kGsoEcn;
  if (type != VnetHeader::kGsoTcpV4 && type != VnetHeader::kGsoTcpV6) return GsoResult::kNotTcp;
  Reason why{};
  const auto seg = ParseSegment(packet.frame, &why);
  if (!seg || packet.vnet.gso_size == 0) return GsoResult::kMalformed;
  const std::size_t l2 = seg->l2_header.size();
  const std::size_t ip_size = seg->ip_header.size();
  const std::size_t tcp_header = seg->tcp.header_size();
  const std::size_t headers = l2 + ip_size + tcp_header;
  const std::size_t mss = packet.vnet.gso_size;
  const std::uint8_t* payload = seg->tcp.payload().data();
  const std::size_t total = seg->payload_size;
  const std::uint8_t flags = seg->tcp.flags();
  const std::uint32_t seq = seg->tcp.seq();
  const std::uint16_t ip_id =
      seg->family == 4 ? wire::LoadBe16(packet.frame.data() + l2 + 4) : std::uint16_t{0};
  const std::size_t first = out->size();
  for (std::size_t offset = 0, i = 0; offset < total || (total == 0 && i == 0);
       offset += mss, ++i) {
    const std::size_t n = std::min(mss, total - offset);
    const bool last = offset + n >= total;
    OwnedPacket p;
    p.frame.resize(headers + n);
    std::memcpy(p.frame.data(), packet.frame.data(), headers);
    if (n > 0) std::memcpy(p.frame.data() + headers, payload + offset, n);
    std::uint8_t* ip = p.frame.data() + l2;
    std::uint8_t* tcp = ip + ip_size;
    if (seg->family == 4) {
      // Consecutive IP IDs, as a NIC's TSO engine assigns them.
      wire::StoreBe16(ip + 2, static_cast<std::uint16_t>(ip_size + tcp_header + n));
      wire::StoreBe16(ip + 4, static_cast<std::uint16_t>(ip_id + i));
      wire::StoreBe16(ip + 10, 0);
      wire::StoreBe16(ip + 10, wire::InternetChecksum::Of({ip, ip_size}));
    } else {
      wire::StoreBe16(ip + 4, static_cast<std::uint16_t>(ip_size - 40 + tcp_header + n));
    }
    wire::StoreBe32(tcp + 4, seq + static_cast<std::uint32_t>(offset));
    // FIN and PSH belong to the last segment; CWR to the first (RFC 3168 §6.1.2 and the
    // kernel's tcp_gso_segment).
    std::uint8_t f = flags;
    if (!last) f &= static_cast<std::uint8_t>(~(wire::tcp_flag::kFin | wire::tcp_flag::kPsh));
    if (i != 0) f &= static_cast<std::uint8_t>(~wire::tcp_flag::kCwr);
    tcp[13] = f;
    wire::StoreBe16(tcp + 16, 0);
    const auto length = static_cast<std::uint32_t>(tcp_header + n);
    auto sum = seg->family == 4 ? wire::TcpPseudoHeaderV4(ip + 12, ip + 16, length)
                                : wire::TcpPseudoHeaderV6(ip + 8, ip + 24, length);
    sum.Add({tcp, length});
    wire::StoreBe16(tcp + 16, sum.Finish());
    out->push_back(std::move(p));
    if (last) break;
  }
  return out->size() > first ? GsoResult::kDone : GsoResult::kMalformed;
}

}  // namespace vsnoop::datapath
