#include "vsnoop/wire/ethernet.h"

namespace vsnoop::wire {

std::optional<EthernetView> EthernetView::Parse(Bytes frame) {
  if (frame.size() < kEthernetHeaderSize) return std::nullopt;
  std::size_t tags = 0;
  std::size_t type_offset = 12;
  std::uint16_t type = LoadBe16(frame.data() + type_offset);
  while (type == kEtherTypeVlan || type == kEtherTypeQinQ) {
    if (tags == kMaxVlanTags) return std::nullopt;  // deeper stacks are forwarded untouched
    ++tags;
    type_offset += kVlanTagSize;
    if (frame.size() < type_offset + 2) return std::nullopt;
    type = LoadBe16(frame.data() + type_offset);
  }
  return EthernetView(frame, tags, type);
}

MacAddress EthernetView::destination() const {
  MacAddress m;
  std::memcpy(m.octets.data(), frame_.data(), 6);
  return m;
}

MacAddress EthernetView::source() const {
  MacAddress m;
  std::memcpy(m.octets.data(), frame_.data() + 6, 6);
  return m;
}

std::uint16_t EthernetView::vlan_tci(std::size_t i) const {
  return LoadBe16(frame_.data() + 12 + i * kVlanTagSize + 2);
}

}  // namespace vsnoop::wire
