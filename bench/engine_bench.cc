// vsnoop_bench, the engine's per-segment costs (docs/performance.md, "Engine (bench/)"):
//   BM_ParseSegment           ParseSegment on one MTU-sized data frame
//   BM_Baseline               parse and copy the frame, nothing else: the reference
//   BM_EarlyAck/...           Engine::OnFrameToGuest on in-order 1448-byte segments, each
//                             acknowledged early (ACK built, checksummed), over 1 to 1M flows;
//                             checksum vouched for by offload (kPartial) or verified (kUnverified)
//   BM_GuestAckSuppressed     Engine::OnFrameFromGuest on redundant pure ACKs
//   BM_Harness                the measuring loop alone (ring refills happen with the timer
//                             paused; this is what the pauses still cost per segment)
// Flow-table lookups are in flow_table_bench.cc. Every Time is per segment (per lookup).
//
// Frames come from a ring of 512 prepared frames (1 MiB, as an RX ring would hold), refilled
// with the next segments while the timer is paused; each verdict is checked in the loop, and
// a benchmark stops with an error if a segment is not handled as the path it measures.
#include <benchmark/benchmark.h>

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "traffic.h"
#include "vsnoop/segment.h"

namespace vsnoop::bench {
namespace {

constexpr std::size_t kRing = 512;
constexpr Timestamp kNow{0};

// One engine per flow count, kept across benchmark runs (setting up a million flows takes
// seconds); the stream goes on where the previous run left it.
EstablishedFlows& DataPathFlows(std::size_t flows) {
  static std::map<std::size_t, std::unique_ptr<EstablishedFlows>> cache;
  auto& entry = cache[flows];
  if (!entry) entry = std::make_unique<EstablishedFlows>(flows);
  return *entry;
}

void BM_ParseSegment(benchmark::State& state) {
  static const std::vector<std::uint32_t> one_flow = {0};
  SegmentRing ring(1, one_flow);
  ring.Fill(0);
  const wire::Bytes frame = ring.frame(0);
  for (auto _ : state) {
    Reason why{};
    std::optional<Segment> seg = ParseSegment(frame, &why);
    benchmark::DoNotOptimize(seg);
  }
  Reason why{};
  if (!ParseSegment(frame, &why)) state.SkipWithError("the frame does not parse");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseSegment);

// The least any datapath does with a frame: read its headers and copy it (into one 2 KiB
// buffer, so the copy is as cheap as it gets). Same frames and same loop as BM_EarlyAck.
void BM_Baseline(benchmark::State& state) {
  static const std::vector<std::uint32_t> one_flow = {0};
  static std::uint64_t next_segment = 0;
  SegmentRing ring(kRing, one_flow);
  ring.Fill(next_segment);
  alignas(64) static std::array<std::uint8_t, kFrameStride> copy;
  bool failed = false;
  while (!failed && state.KeepRunningBatch(kRing)) {
    for (std::size_t i = 0; i < kRing; ++i) {
      const wire::Bytes frame = ring.frame(i);
      Reason why{};
      std::optional<Segment> seg = ParseSegment(frame, &why);
      if (!seg) {
        state.SkipWithError("a frame does not parse");
        failed = true;
        break;
      }
      std::memcpy(copy.data(), frame.data(), frame.size());
      benchmark::DoNotOptimize(seg);
      benchmark::DoNotOptimize(copy.data());
      benchmark::ClobberMemory();
    }
    if (failed) break;
    state.PauseTiming();
    next_segment += kRing;
    ring.Fill(next_segment);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline);

// The full per-segment path for in-order data: parse, flow lookup, the checks of the brief's
// section 4, state update, and the early ACK built with its checksums.
void BM_EarlyAck(benchmark::State& state, ChecksumStatus checksum) {
  EstablishedFlows& flows = DataPathFlows(static_cast<std::size_t>(state.range(0)));
  if (!flows.error().empty()) {
    state.SkipWithError(flows.error().c_str());
    return;
  }
  Engine& engine = flows.engine();
  const Offload offload{.checksum = checksum};
  SegmentRing ring(kRing, flows.visit_order());
  flows.KeepWindowsOpen(flows.next_segment, kRing);
  ring.Fill(flows.next_segment);
  bool failed = false;
  while (!failed && state.KeepRunningBatch(kRing)) {
    for (std::size_t i = 0; i < kRing; ++i) {
      const Verdict v = engine.OnFrameToGuest(ring.frame(i), offload, kGuest, kNow);
      if (v.action != Action::kForwardAndAck) {
        state.SkipWithError(
            ("a segment was not acknowledged early: " + std::string(ReasonLabel(v.reason)))
                .c_str());
        failed = true;
        break;
      }
      benchmark::DoNotOptimize(v);
    }
    if (failed) break;
    state.PauseTiming();
    flows.next_segment += kRing;
    flows.KeepWindowsOpen(flows.next_segment, kRing);
    ring.Fill(flows.next_segment);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_EarlyAck, ChecksumPartial, ChecksumStatus::kPartial)
    ->ArgName("flows")
    ->Arg(1)
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000);
BENCHMARK_CAPTURE(BM_EarlyAck, ChecksumUnverified, ChecksumStatus::kUnverified)
    ->ArgName("flows")
    ->Arg(1)
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000);

// The guest's redundant ACKs: pure ACKs for data vSnoop already acknowledged, with a right
// edge no further than vSnoop advertised. Each is suppressed; the flow's state is unchanged
// by them, so the same 64 frames can be offered again and again.
void BM_GuestAckSuppressed(benchmark::State& state) {
  constexpr std::size_t kAcks = 64;
  static EstablishedFlows flows(1);
  static std::vector<std::vector<std::uint8_t>> acks;
  if (acks.empty()) {
    // vSnoop acknowledges 64 segments early...
    SegmentRing data(kAcks, flows.visit_order());
    data.Fill(0);
    for (std::size_t i = 0; i < kAcks; ++i) {
      (void)flows.engine().OnFrameToGuest(data.frame(i), Offload{}, kGuest, kNow);
    }
    // ...then the guest acknowledges them one by one, its right edge where it was (the
    // guest opened its window to 65535 << 7 from the first byte).
    const std::uint32_t edge = EstablishedFlows::kFirstByte + (65535u << 7);
    for (std::size_t j = 1; j <= kAcks; ++j) {
      const auto ack = static_cast<std::uint32_t>(EstablishedFlows::kFirstByte + j * kPayload);
      acks.push_back(GuestAck(0, ack, static_cast<std::uint16_t>((edge - ack) >> 7)));
    }
  }
  if (!flows.error().empty()) {
    state.SkipWithError(flows.error().c_str());
    return;
  }
  Engine& engine = flows.engine();
  bool failed = false;
  while (!failed && state.KeepRunningBatch(kAcks)) {
    for (const auto& frame : acks) {
      const Verdict v = engine.OnFrameFromGuest(frame, Offload{}, kGuest, kNow);
      if (v.action != Action::kSuppress) {
        state.SkipWithError(
            ("a guest ACK was not suppressed: " + std::string(ReasonLabel(v.reason))).c_str());
        failed = true;
        break;
      }
      benchmark::DoNotOptimize(v);
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GuestAckSuppressed);

// The loop of BM_Baseline and BM_EarlyAck with nothing in it: what the timer pauses at each
// refill leave in the per-segment figures.
void BM_Harness(benchmark::State& state) {
  static const std::vector<std::uint32_t> one_flow = {0};
  SegmentRing ring(kRing, one_flow);
  ring.Fill(0);
  while (state.KeepRunningBatch(kRing)) {
    for (std::size_t i = 0; i < kRing; ++i)
      benchmark::DoNotOptimize(ring.frame(i).data());
    state.PauseTiming();
    ring.Fill(0);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Harness);

}  // namespace
}  // namespace vsnoop::bench

BENCHMARK_MAIN();
