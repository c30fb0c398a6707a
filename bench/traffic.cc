#include "traffic.h"

#include <algorithm>
#include <random>

#include "vsnoop/sim/frame_builder.h"
#include "vsnoop/wire/checksum.h"

namespace vsnoop::bench {
namespace {

namespace flag = wire::tcp_flag;
using Frame = std::vector<std::uint8_t>;

// Offsets in an untagged Ethernet + IPv4 (no options) + TCP frame.
constexpr std::size_t kIp = 14;
constexpr std::size_t kIpChecksum = kIp + 10;
constexpr std::size_t kIpSource = kIp + 12;
constexpr std::size_t kIpDestination = kIp + 16;
constexpr std::size_t kTcp = kIp + 20;
constexpr std::size_t kTcpSeq = kTcp + 4;
constexpr std::size_t kTcpChecksum = kTcp + 16;

constexpr std::uint32_t kSenderIsn = EstablishedFlows::kFirstByte - 1;
constexpr std::uint32_t kGuestIsn = EstablishedFlows::kGuestSeq - 1;
constexpr std::uint32_t kSenderTs = 1'000;
constexpr std::uint32_t kGuestTs = 9'000;
constexpr std::uint16_t kFullWindow = 65535;  // << 7: 8 MiB

const sim::Endpoint& Sender() {
  static const sim::Endpoint e = sim::Endpoint::Parse("10.64.0.0:40000");
  return e;
}
const sim::Endpoint& Guest() {
  static const sim::Endpoint e = sim::Endpoint::Parse("10.0.0.2:5201");
  return e;
}

std::uint32_t SenderAddress(std::uint32_t flow) {
  return (10u << 24) + (64u << 16) + flow;
}

// Moves a frame built for flow 0 to flow k: rewrites the sender's address and recomputes
// both checksums.
Frame ForFlow(Frame f, std::uint32_t flow, bool from_sender) {
  wire::StoreBe32(f.data() + (from_sender ? kIpSource : kIpDestination), SenderAddress(flow));
  wire::StoreBe16(f.data() + kIpChecksum, 0);
  wire::StoreBe16(f.data() + kIpChecksum, wire::InternetChecksum::Of({f.data() + kIp, 20}));
  const auto tcp_size = static_cast<std::uint32_t>(f.size() - kTcp);
  wire::StoreBe16(f.data() + kTcpChecksum, 0);
  wire::InternetChecksum sum =
      wire::TcpPseudoHeaderV4(f.data() + kIpSource, f.data() + kIpDestination, tcp_size);
  sum.Add({f.data() + kTcp, tcp_size});
  wire::StoreBe16(f.data() + kTcpChecksum, sum.Finish());
  return f;
}

}  // namespace

Frame DataFrame(std::uint32_t flow, std::uint32_t seq) {
  return ForFlow(sim::FrameBuilder()
                     .From(Sender())
                     .To(Guest())
                     .Seq(seq)
                     .Ack(EstablishedFlows::kGuestSeq)
                     .Window(502)
                     .Timestamps(kSenderTs, kGuestTs)
                     .Payload(kPayload)
                     .Build(),
                 flow, /*from_sender=*/true);
}

Frame GuestAck(std::uint32_t flow, std::uint32_t ack, std::uint16_t window) {
  return ForFlow(sim::FrameBuilder()
                     .From(Guest())
                     .To(Sender())
                     .Seq(EstablishedFlows::kGuestSeq)
                     .Ack(ack)
                     .Window(window)
                     .Timestamps(kGuestTs, kSenderTs)
                     .Build(),
                 flow, /*from_sender=*/false);
}

EstablishedFlows::EstablishedFlows(std::size_t flows)
    : engine_(EngineConfig{.max_flows = flows}), visit_order_(flows) {
  // The handshake of flow 0 (Linux options both ways), moved to each flow in turn.
  const Frame syn = sim::FrameBuilder()
                        .From(Sender())
                        .To(Guest())
                        .Seq(kSenderIsn)
                        .Flags(flag::kSyn)
                        .Window(64240)
                        .Mss(1460)
                        .SackPermitted()
                        .Timestamps(kSenderTs, 0)
                        .WindowScale(7)
                        .Build();
  const Frame syn_ack = sim::FrameBuilder()
                            .From(Guest())
                            .To(Sender())
                            .Seq(kGuestIsn)
                            .Ack(kFirstByte)
                            .Flags(flag::kSyn)
                            .Window(65160)
                            .Mss(1460)
                            .SackPermitted()
                            .Timestamps(kGuestTs, kSenderTs)
                            .WindowScale(7)
                            .Build();
  const Frame ack = sim::FrameBuilder()
                        .From(Sender())
                        .To(Guest())
                        .Seq(kFirstByte)
                        .Ack(kGuestSeq)
                        .Window(502)
                        .Timestamps(kSenderTs, kGuestTs)
                        .Build();
  const Timestamp now{0};
  for (std::uint32_t k = 0; k < flows; ++k) {
    (void)engine_.OnFrameToGuest(ForFlow(syn, k, true), Offload{}, kGuest, now);
    (void)engine_.OnFrameFromGuest(ForFlow(syn_ack, k, false), Offload{}, kGuest, now);
    (void)engine_.OnFrameToGuest(ForFlow(ack, k, true), Offload{}, kGuest, now);
    // The guest opens its window fully (8 MiB), as Linux does once the transfer runs.
    (void)engine_.OnFrameFromGuest(GuestAck(k, kFirstByte, kFullWindow), Offload{}, kGuest, now);
  }
  if (engine_.counters().flows_established != flows) {
    error_ = "only " + std::to_string(engine_.counters().flows_established) + " of " +
             std::to_string(flows) + " flows established";
  }
  for (std::uint32_t k = 0; k < flows; ++k)
    visit_order_[k] = k;
  // Flows were inserted in index order: visiting them in a random order makes every lookup
  // land on an unrelated slot, as flows interleave on a real uplink.
  std::mt19937_64 rng(20100101);
  std::shuffle(visit_order_.begin(), visit_order_.end(), rng);
}

void EstablishedFlows::KeepWindowsOpen(std::uint64_t first, std::size_t count) {
  // 2048 rounds of 1448 bytes (2.97 MB) stay well inside an 8 MiB window.
  constexpr std::uint64_t kRoundsBetweenOpenings = 2048;
  const std::size_t flows = flow_count();
  const std::uint64_t last_round = (first + count - 1) / flows;
  if (last_round - windows_opened_at_round_ < kRoundsBetweenOpenings) return;
  const std::uint64_t round = first / flows;
  const std::uint64_t done_this_round = first % flows;
  for (std::size_t p = 0; p < flows; ++p) {
    // Segments [0, first) are offered: flows visited before position done_this_round have
    // had one more segment than the rest.
    const std::uint64_t received = round + (p < done_this_round ? 1 : 0);
    const auto ack = static_cast<std::uint32_t>(kFirstByte + received * kPayload);
    (void)engine_.OnFrameFromGuest(GuestAck(visit_order_[p], ack, kFullWindow), Offload{}, kGuest,
                                   Timestamp{0});
  }
  windows_opened_at_round_ = round;
}

SegmentRing::SegmentRing(std::size_t size, const std::vector<std::uint32_t>& visit_order)
    : size_(size), visit_order_(visit_order) {
  const Frame model = DataFrame(0, EstablishedFlows::kFirstByte);
  frame_size_ = model.size();
  buffer_.resize(size * kFrameStride);
  for (std::size_t i = 0; i < size; ++i) {
    std::copy(model.begin(), model.end(),
              buffer_.begin() + static_cast<std::ptrdiff_t>(i * kFrameStride));
  }
}

void SegmentRing::Fill(std::uint64_t first) {
  const std::size_t flows = visit_order_.size();
  for (std::size_t i = 0; i < size_; ++i) {
    const std::uint64_t n = first + i;
    std::uint8_t* f = buffer_.data() + i * kFrameStride;
    const std::uint32_t seq = EstablishedFlows::SeqOf(n, flows);
    const std::uint32_t address = SenderAddress(visit_order_[n % flows]);
    const std::uint32_t old_seq = wire::LoadBe32(f + kTcpSeq);
    const std::uint32_t old_address = wire::LoadBe32(f + kIpSource);
    // RFC 1624: the TCP checksum covers the sequence number and, through the pseudo header,
    // the source address; the IP header checksum covers the address.
    std::uint16_t tcp_sum = wire::LoadBe16(f + kTcpChecksum);
    tcp_sum = wire::ChecksumUpdate32(tcp_sum, old_seq, seq);
    tcp_sum = wire::ChecksumUpdate32(tcp_sum, old_address, address);
    wire::StoreBe16(f + kTcpChecksum, tcp_sum);
    wire::StoreBe16(f + kIpChecksum,
                    wire::ChecksumUpdate32(wire::LoadBe16(f + kIpChecksum), old_address, address));
    wire::StoreBe32(f + kTcpSeq, seq);
    wire::StoreBe32(f + kIpSource, address);
  }
}

}  // namespace vsnoop::bench
