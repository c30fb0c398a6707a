// Ethernet II header with up to two VLAN tags (802.1Q, and 802.1ad outer tags for QinQ).
#pragma once

#include <optional>

#include "vsnoop/wire/bytes.h"

namespace vsnoop::wire {

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr std::uint16_t kEtherTypeVlan = 0x8100;      // 802.1Q
inline constexpr std::uint16_t kEtherTypeQinQ = 0x88A8;      // 802.1ad service tag
inline constexpr std::size_t kEthernetHeaderSize = 14;
inline constexpr std::size_t kVlanTagSize = 4;
inline constexpr std::size_t kMaxVlanTags = 2;

// A non-owning view of an Ethernet frame. Created only by Parse, which checks that the
// header and every VLAN tag it announces are present.
class EthernetView {
 public:
  static std::optional<EthernetView> Parse(Bytes frame);

  MacAddress destination() const;
  MacAddress source() const;
  // The EtherType after all VLAN tags: what the payload is.
  std::uint16_t ether_type() const { return ether_type_; }
  std::size_t vlan_tag_count() const { return vlan_tags_; }
  // Tag control information (PCP, DEI, VLAN ID) of tag i, outermost first.
  // REQUIRES: i < vlan_tag_count().
  std::uint16_t vlan_tci(std::size_t i) const;
  // Destination, source, tags and the final EtherType: 14, 18 or 22 bytes.
  std::size_t header_size() const { return kEthernetHeaderSize + vlan_tags_ * kVlanTagSize; }
  Bytes header() const { return frame_.first(header_size()); }
  Bytes payload() const { return frame_.subspan(header_size()); }
  Bytes frame() const { return frame_; }

 private:
  EthernetView(Bytes frame, std::size_t tags, std::uint16_t type)
      : frame_(frame), vlan_tags_(tags), ether_type_(type) {}
  Bytes frame_;
  std::size_t vlan_tags_;
  std::uint16_t ether_type_;
};

}  // namespace vsnoop::wire
