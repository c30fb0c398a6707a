// libFuzzer target for every parser that reads untrusted bytes: ParseSegment, each wire
// view's Parse, TcpOptions::Read and DescribeFrame. Every accessor of whatever parsed is
// read (so AddressSanitizer sees any read out of bounds), and cheap consistency rules
// between the views are checked; a violation traps.
#include <cstddef>
#include <cstdint>
#include <string>

#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"
#include "vsnoop/wire/checksum.h"
#include "vsnoop/wire/ethernet.h"
#include "vsnoop/wire/ipv4.h"
#include "vsnoop/wire/ipv6.h"
#include "vsnoop/wire/tcp.h"

namespace {

using namespace vsnoop;        // NOLINT(google-build-using-namespace): a test driver
using namespace vsnoop::wire;  // NOLINT(google-build-using-namespace)

// Folds values into something the optimiser must compute.
volatile std::uint64_t sink;
void Use(std::uint64_t v) {
  sink = sink + v;
}
void Use(Bytes b) {
  Use(b.size());
  for (std::uint8_t x : b)
    Use(x);
}
void Check(bool ok) {
  if (!ok) __builtin_trap();
}
// True when `inner` lies within `outer`.
bool Within(Bytes inner, Bytes outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

void TouchOptions(Bytes options) {
  const TcpOptions o = TcpOptions::Read(options);
  Use(o.mss.value_or(0));
  Use(o.window_scale.value_or(0));
  Use(o.sack_permitted + o.has_timestamps + o.has_unknown + o.has_signature + o.has_multipath +
      o.has_fast_open + o.malformed + o.only_timestamps());
  Use(o.ts_value ^ o.ts_echo);
  Check(o.sack_block_count <= TcpOptions::kMaxSackBlocks);
  for (std::size_t i = 0; i < o.sack_block_count; ++i) {
    Use(o.sack_blocks[i].left ^ o.sack_blocks[i].right);
  }
  // The cursor must make progress: at most one option per two bytes.
  TcpOptionReader reader(options);
  TcpOption option;
  std::size_t count = 0;
  while (reader.Next(&option)) {
    ++count;
    Check(count <= options.size() / 2);
    Check(Within(option.data, options));
    Use(option.kind);
    Use(option.data);
  }
  Check(reader.malformed() == false || o.malformed);
  Check(!reader.Next(&option));
}

void TouchTcp(Bytes bytes) {
  TcpError error{};
  const auto tcp = TcpView::Parse(bytes, &error);
  if (!tcp) {
    Use(static_cast<std::uint64_t>(error));
    return;
  }
  Use(tcp->source_port() + tcp->destination_port() + tcp->seq() + tcp->ack());
  Use(tcp->flags() + tcp->window() + tcp->checksum() + tcp->urgent_pointer());
  for (int bit = 0; bit < 8; ++bit)
    Use(tcp->Has(static_cast<std::uint8_t>(1u << bit)));
  Check(tcp->header_size() >= kTcpMinHeaderSize && tcp->header_size() <= kTcpMaxHeaderSize);
  Check(tcp->options().size() == tcp->header_size() - kTcpMinHeaderSize);
  Check(tcp->options().size() + tcp->payload().size() + kTcpMinHeaderSize == bytes.size());
  Use(tcp->options());
  Use(tcp->payload());
  Use(tcp->segment());
  TouchOptions(tcp->options());
}

void TouchIpv4(Bytes bytes) {
  Ipv4Error error{};
  const auto ip = Ipv4View::Parse(bytes, &error);
  if (!ip) {
    Use(static_cast<std::uint64_t>(error));
    return;
  }
  Use(ip->tos() + static_cast<std::uint64_t>(ip->ecn()) + ip->total_length() +
      ip->identification() + ip->dont_fragment() + ip->more_fragments() + ip->fragment_offset() +
      ip->is_fragment() + ip->ttl() + ip->protocol() + ip->header_checksum() +
      ip->HeaderChecksumValid());
  Use(Bytes(ip->source(), 4));
  Use(Bytes(ip->destination(), 4));
  Use(ip->options());
  Use(ip->header());
  Use(ip->payload());
  Check(ip->header_size() >= kIpv4MinHeaderSize && ip->header_size() <= 60);
  Check(ip->header().size() + ip->payload().size() == ip->total_length());
  Check(ip->total_length() <= bytes.size());
  TouchTcp(ip->payload());
}

void TouchIpv6(Bytes bytes) {
  Ipv6Error error{};
  const auto ip = Ipv6View::Parse(bytes, &error);
  if (!ip) {
    Use(static_cast<std::uint64_t>(error));
    return;
  }
  Use(ip->traffic_class() + static_cast<std::uint64_t>(ip->ecn()) + ip->flow_label() +
      ip->payload_length() + ip->next_header() + ip->hop_limit() + ip->upper_protocol() +
      ip->extension_header_count() + ip->has_fragment_header() + ip->routing_segments_left());
  Use(Bytes(ip->source(), 16));
  Use(Bytes(ip->destination(), 16));
  Use(ip->payload());
  Check(ip->flow_label() <= 0xFFFFF);
  Check(ip->extension_header_count() <= kIpv6MaxExtensionHeaders);
  Check(ip->header_size() + ip->payload().size() == kIpv6HeaderSize + ip->payload_length());
  Check(ip->payload_length() != 0 && kIpv6HeaderSize + ip->payload_length() <= bytes.size());
  TouchTcp(ip->payload());
}

void TouchEthernet(Bytes frame) {
  const auto eth = EthernetView::Parse(frame);
  if (!eth) return;
  Use(eth->destination().octets[0] + eth->source().octets[5] + eth->destination().IsMulticast());
  Use(eth->ether_type());
  Check(eth->vlan_tag_count() <= kMaxVlanTags);
  for (std::size_t i = 0; i < eth->vlan_tag_count(); ++i)
    Use(eth->vlan_tci(i));
  Check(eth->header_size() + eth->payload().size() == frame.size());
  Use(eth->header());
  Use(eth->payload());
  Use(eth->frame());
  if (eth->ether_type() == kEtherTypeIpv4) TouchIpv4(eth->payload());
  if (eth->ether_type() == kEtherTypeIpv6) TouchIpv6(eth->payload());
}

void TouchSegment(Bytes frame) {
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  if (!seg) {
    Check(static_cast<std::size_t>(why) < kReasonCount);
    Use(ReasonLabel(why).size());
    return;
  }
  Check(seg->family == 4 || seg->family == 6);
  Check(Within(seg->l2_header, frame));
  Check(Within(seg->ip_header, frame));
  Check(Within(seg->tcp.segment(), frame));
  const std::size_t address_size = seg->family == 4 ? 4 : 16;
  Check(Within(Bytes(seg->source_ip, address_size), seg->ip_header));
  Check(Within(Bytes(seg->destination_ip, address_size), seg->ip_header));
  Check(seg->payload_size == seg->tcp.payload().size());
  Check(seg->SequenceSpace() >= seg->payload_size);
  Use(seg->tos + seg->ttl + seg->flow_label + static_cast<std::uint64_t>(seg->ecn));
  Use(seg->IpChecksumValid() + seg->TcpChecksumValid());
  Use(seg->tcp.seq() + seg->tcp.ack() + seg->tcp.window());
}

// Adding the bytes in two pieces at any point gives the checksum of adding them at once.
void CheckChecksumSplit(Bytes data) {
  if (data.empty()) return;
  const std::size_t split = data[0] % (data.size() + 1);
  InternetChecksum pieces;
  pieces.Add(data.first(split));
  pieces.Add(data.subspan(split));
  Check(pieces.Finish() == InternetChecksum::Of(data));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes input(data, size);
  TouchSegment(input);
  TouchEthernet(input);
  // Each view on the raw bytes too, so each parser meets input no outer layer filtered.
  TouchIpv4(input);
  TouchIpv6(input);
  TouchTcp(input);
  TouchOptions(input);  // may be longer than any real option list
  Use(sim::DescribeFrame(input).size());
  CheckChecksumSplit(input);
  return 0;
}
