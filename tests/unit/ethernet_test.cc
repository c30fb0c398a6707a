// EthernetView: untagged frames, 802.1Q and 802.1ad (QinQ) tags, deeper tag stacks that
// vSnoop leaves alone, and frames cut short anywhere in the header.
#include "vsnoop/wire/ethernet.h"

#include <gtest/gtest.h>

#include <vector>

namespace vsnoop::wire {
namespace {

// clang-format off
// (byte arrays laid out by header field)

// Destination 02:00:0a:00:00:02, source 02:00:0a:00:00:01, IPv4, four payload bytes.
constexpr std::uint8_t kUntaggedIpv4Frame[] = {
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x02,  // destination
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x01,  // source
    0x08, 0x00,                          // IPv4
    0x45, 0x00, 0x00, 0x14};

// One 802.1Q tag: PCP 5, DEI 0, VLAN 100 (TCI 0xA064), carrying IPv6.
constexpr std::uint8_t kSingleTaggedIpv6Frame[] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // broadcast destination
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x01,  // source
    0x81, 0x00, 0xa0, 0x64,              // 802.1Q, TCI
    0x86, 0xdd,                          // IPv6
    0x60, 0x00};

// QinQ: an 802.1ad service tag (VLAN 10) outside an 802.1Q customer tag (VLAN 200, DEI set).
constexpr std::uint8_t kQinQIpv4Frame[] = {
    0x01, 0x00, 0x5e, 0x00, 0x00, 0x01,  // IPv4 multicast destination
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x01,  // source
    0x88, 0xa8, 0x00, 0x0a,              // 802.1ad, TCI 0x000A
    0x81, 0x00, 0x10, 0xc8,              // 802.1Q, TCI 0x10C8
    0x08, 0x00,                          // IPv4
    0x45};

// Two 802.1Q tags (the pre-802.1ad way of stacking): accepted like QinQ.
constexpr std::uint8_t kDoubleDot1QFrame[] = {
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x02,  // destination
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x01,  // source
    0x81, 0x00, 0x00, 0x01,              // VLAN 1
    0x81, 0x00, 0x00, 0x02,              // VLAN 2
    0x08, 0x06};                         // ARP, no payload

// Three tags (802.1ad, 802.1Q, 802.1Q): deeper than vSnoop reads, so not parsed at all.
constexpr std::uint8_t kThreeTagFrame[] = {
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x02,  // destination
    0x02, 0x00, 0x0a, 0x00, 0x00, 0x01,  // source
    0x88, 0xa8, 0x00, 0x01,              // 802.1ad
    0x81, 0x00, 0x00, 0x02,              // 802.1Q
    0x81, 0x00, 0x00, 0x03,              // 802.1Q
    0x08, 0x00, 0x45, 0x00};             // IPv4

// clang-format on

Bytes First(const auto& array, std::size_t n) {
  return Bytes(array, n);
}

TEST(EthernetView, ParsesUntaggedFrame) {
  const auto eth = EthernetView::Parse(kUntaggedIpv4Frame);
  ASSERT_TRUE(eth.has_value());
  EXPECT_EQ(eth->destination(), (MacAddress{{0x02, 0x00, 0x0a, 0x00, 0x00, 0x02}}));
  EXPECT_EQ(eth->source(), (MacAddress{{0x02, 0x00, 0x0a, 0x00, 0x00, 0x01}}));
  EXPECT_EQ(eth->ether_type(), kEtherTypeIpv4);
  EXPECT_EQ(eth->vlan_tag_count(), 0u);
  EXPECT_EQ(eth->header_size(), 14u);
  EXPECT_EQ(eth->header().data(), kUntaggedIpv4Frame);
  EXPECT_EQ(eth->header().size(), 14u);
  EXPECT_EQ(eth->payload().data(), kUntaggedIpv4Frame + 14);
  EXPECT_EQ(eth->payload().size(), 4u);
  EXPECT_EQ(eth->frame().size(), sizeof kUntaggedIpv4Frame);
  EXPECT_FALSE(eth->destination().IsMulticast());
}

TEST(EthernetView, HeaderOnlyFrameHasEmptyPayload) {
  const auto eth = EthernetView::Parse(First(kUntaggedIpv4Frame, 14));
  ASSERT_TRUE(eth.has_value());
  EXPECT_TRUE(eth->payload().empty());
}

TEST(EthernetView, ParsesOneDot1QTag) {
  const auto eth = EthernetView::Parse(kSingleTaggedIpv6Frame);
  ASSERT_TRUE(eth.has_value());
  EXPECT_EQ(eth->ether_type(), kEtherTypeIpv6);
  ASSERT_EQ(eth->vlan_tag_count(), 1u);
  EXPECT_EQ(eth->vlan_tci(0), 0xA064);
  EXPECT_EQ(eth->vlan_tci(0) & 0x0FFF, 100);  // VLAN ID
  EXPECT_EQ(eth->vlan_tci(0) >> 13, 5);       // PCP
  EXPECT_EQ(eth->header_size(), 18u);
  EXPECT_EQ(eth->payload().data(), kSingleTaggedIpv6Frame + 18);
  EXPECT_EQ(eth->payload().size(), 2u);
  EXPECT_TRUE(eth->destination().IsMulticast());  // broadcast counts as multicast
}

TEST(EthernetView, ParsesQinQServiceTagThenCustomerTag) {
  const auto eth = EthernetView::Parse(kQinQIpv4Frame);
  ASSERT_TRUE(eth.has_value());
  EXPECT_EQ(eth->ether_type(), kEtherTypeIpv4);
  ASSERT_EQ(eth->vlan_tag_count(), 2u);
  EXPECT_EQ(eth->vlan_tci(0), 0x000A);  // outermost first
  EXPECT_EQ(eth->vlan_tci(1), 0x10C8);
  EXPECT_EQ(eth->header_size(), 22u);
  EXPECT_EQ(eth->header().size(), 22u);
  ASSERT_EQ(eth->payload().size(), 1u);
  EXPECT_EQ(eth->payload()[0], 0x45);
  EXPECT_TRUE(eth->destination().IsMulticast());
}

TEST(EthernetView, ParsesTwoDot1QTags) {
  const auto eth = EthernetView::Parse(kDoubleDot1QFrame);
  ASSERT_TRUE(eth.has_value());
  EXPECT_EQ(eth->ether_type(), kEtherTypeArp);
  ASSERT_EQ(eth->vlan_tag_count(), 2u);
  EXPECT_EQ(eth->vlan_tci(0), 1);
  EXPECT_EQ(eth->vlan_tci(1), 2);
  EXPECT_TRUE(eth->payload().empty());
}

TEST(EthernetView, RejectsThreeTags) {
  EXPECT_FALSE(EthernetView::Parse(kThreeTagFrame).has_value());
}

TEST(EthernetView, RejectsUntaggedFrameShorterThanHeader) {
  for (std::size_t n = 0; n < 14; ++n) {
    EXPECT_FALSE(EthernetView::Parse(First(kUntaggedIpv4Frame, n)).has_value()) << n;
  }
}

TEST(EthernetView, RejectsTaggedFrameTruncatedAtEveryLength) {
  // 18 bytes hold the MACs, the tag and the inner EtherType; any fewer cannot be read.
  for (std::size_t n = 0; n <= 17; ++n) {
    EXPECT_FALSE(EthernetView::Parse(First(kSingleTaggedIpv6Frame, n)).has_value()) << n;
  }
  const auto eth = EthernetView::Parse(First(kSingleTaggedIpv6Frame, 18));
  ASSERT_TRUE(eth.has_value());
  EXPECT_EQ(eth->ether_type(), kEtherTypeIpv6);
  EXPECT_TRUE(eth->payload().empty());
}

TEST(EthernetView, RejectsQinQFrameTruncatedAtEveryLength) {
  for (std::size_t n = 0; n <= 21; ++n) {
    EXPECT_FALSE(EthernetView::Parse(First(kQinQIpv4Frame, n)).has_value()) << n;
  }
  EXPECT_TRUE(EthernetView::Parse(First(kQinQIpv4Frame, 22)).has_value());
}

TEST(EthernetView, ReadsAnyEtherType) {
  std::vector<std::uint8_t> frame(kUntaggedIpv4Frame, kUntaggedIpv4Frame + 14);
  frame[12] = 0x88;  // 0x88CC, LLDP: not IP, but a well-formed Ethernet frame
  frame[13] = 0xCC;
  const auto eth = EthernetView::Parse(frame);
  ASSERT_TRUE(eth.has_value());
  EXPECT_EQ(eth->ether_type(), 0x88CC);
  EXPECT_EQ(eth->vlan_tag_count(), 0u);
}

}  // namespace
}  // namespace vsnoop::wire
