// vSnoop's memory bound over random floods of 4-tuples.
//
// The model: an engine with a small max_flows (1..64) and a pool of up to four times as
// many 4-tuples (IPv4 and IPv6, guests 0..2), hit by random frames: handshakes in either
// direction (which make flows accelerated), data and ACKs for tuples never seen (which
// start mid-stream flows), RSTs, FINs, frames on the wrong guest port, time passing and
// idle expiry. The reference is the table's contract (flow_table.h): it never holds more
// than max_flows flows, its per-state census adds up, a new tuple never pushes out an
// accelerated flow (only idle expiry removes one), and every frame is counted under
// exactly one Reason.
// Left out: payload contents and checksums (the transfer properties cover them); the flow
// table's internals (hash collisions are covered by the unit tests).
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <vector>

#include "property_runner.h"
#include "vsnoop/engine.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop::proptest {
namespace {

namespace flag = wire::tcp_flag;

enum class TableEventKind : std::uint8_t {
  kRemoteSyn,
  kGuestSynAck,
  kGuestSyn,
  kRemoteSynAck,
  kData,
  kGuestAck,
  kReset,
  kFin,
  kTick,
  kExpire,
};

struct TableEvent {
  TableEventKind kind = TableEventKind::kRemoteSyn;
  std::uint16_t tuple = 0;       // modulo the pool
  std::uint8_t guest_shift = 0;  // non-zero: the frame comes on another guest's port
  std::uint16_t a = 0;
};

struct TableScenario {
  std::uint16_t max_flows = 1;
  std::uint16_t pool = 1;
  std::vector<TableEvent> events;
};

void showValue(const TableEvent& e, std::ostream& os) {
  static const char* names[] = {"RemoteSyn", "GuestSynAck", "GuestSyn", "RemoteSynAck", "Data",
                                "GuestAck",  "Reset",       "Fin",      "Tick",         "Expire"};
  os << names[static_cast<int>(e.kind)] << "(t" << e.tuple << " g+"
     << static_cast<int>(e.guest_shift) << " a=" << e.a << ")";
}

void showValue(const TableScenario& s, std::ostream& os) {
  os << "TableScenario{max_flows=" << s.max_flows << " pool=" << s.pool << " events:";
  for (const TableEvent& e : s.events) {
    os << " ";
    showValue(e, os);
  }
  os << "}";
}

rc::Gen<TableScenario> AnyTableScenario() {
  const auto kind = rc::gen::weightedElement<TableEventKind>({{4, TableEventKind::kRemoteSyn},
                                                              {4, TableEventKind::kGuestSynAck},
                                                              {1, TableEventKind::kGuestSyn},
                                                              {1, TableEventKind::kRemoteSynAck},
                                                              {4, TableEventKind::kData},
                                                              {2, TableEventKind::kGuestAck},
                                                              {1, TableEventKind::kReset},
                                                              {1, TableEventKind::kFin},
                                                              {1, TableEventKind::kTick},
                                                              {1, TableEventKind::kExpire}});
  const auto event = rc::gen::apply(
      [](TableEventKind k, std::uint16_t tuple, bool other_guest, std::uint16_t a) {
        return TableEvent{.kind = k,
                          .tuple = tuple,
                          .guest_shift = static_cast<std::uint8_t>(other_guest ? 1 : 0),
                          .a = a};
      },
      kind, rc::gen::arbitrary<std::uint16_t>(),
      rc::gen::map(rc::gen::inRange(0, 10), [](int x) { return x == 9; }),
      rc::gen::arbitrary<std::uint16_t>());
  return rc::gen::apply(
      [](std::uint16_t max_flows, std::uint16_t pool_factor, std::vector<TableEvent> events) {
        return TableScenario{.max_flows = max_flows,
                             .pool = static_cast<std::uint16_t>(max_flows * pool_factor),
                             .events = std::move(events)};
      },
      rc::gen::resize(100, rc::gen::inRange<std::uint16_t>(1, 65)),
      rc::gen::resize(100, rc::gen::inRange<std::uint16_t>(1, 5)),
      rc::gen::scale(4.0,
                     rc::gen::container<std::vector<TableEvent>>(rc::gen::resize(100, event))));
}

// The two ends of tuple t: a remote sender and a guest port (guest t % 3).
struct Tuple {
  sim::Endpoint remote;
  sim::Endpoint guest;
  GuestId guest_id;
  std::uint32_t remote_isn;
  std::uint32_t guest_isn;
};

Tuple TupleOf(std::uint32_t t) {
  const bool v6 = t % 3 == 0;
  const std::string remote =
      v6 ? "[fd00::1:" + std::to_string(t % 4096) + "]"
         : "10.1." + std::to_string(t / 256 % 256) + "." + std::to_string(t % 256);
  const std::string guest =
      v6 ? "[fd00::2:" + std::to_string(t % 3) + "]" : "10.2.0." + std::to_string(1 + t % 3);
  return Tuple{.remote = sim::Endpoint::Parse(remote + ":" + std::to_string(1024 + t % 60000)),
               .guest = sim::Endpoint::Parse(guest + ":80"),
               .guest_id = t % 3,
               .remote_isn = t * 2654435761u,
               .guest_isn = t * 40503u + 7};
}

std::vector<FlowKey> Keys(const Engine& engine, bool accelerated_only) {
  std::vector<FlowKey> keys;
  engine.flows().ForEach([&](const Flow& f) {
    if (!accelerated_only || IsAccelerated(f.state)) keys.push_back(f.key);
  });
  return keys;
}

bool SameKey(const FlowKey& a, const FlowKey& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Property 6: the flow table never holds more than max_flows flows.
TEST(FlowTableProperty, NeverExceedsMaxFlowsAndKeepsAcceleratedFlows) {
  CheckProperty(0x5AFE0010, 5000, [] {
    const TableScenario scenario = *AnyTableScenario();
    EngineConfig config;
    config.max_flows = scenario.max_flows;
    Engine engine(config);
    Timestamp now{0};
    const GuestContext base_ctx{.room = {.bytes = 1 << 20, .frames = 1024}};
    for (const TableEvent& e : scenario.events) {
      const std::uint32_t t = e.tuple % scenario.pool;
      const Tuple tuple = TupleOf(t);
      GuestContext ctx = base_ctx;
      ctx.id = (tuple.guest_id + e.guest_shift) % 3;
      const std::vector<FlowKey> accelerated_before = Keys(engine, /*accelerated_only=*/true);
      const Counters before = engine.counters();
      auto to_guest = sim::FrameBuilder().From(tuple.remote).To(tuple.guest);
      auto from_guest = sim::FrameBuilder().From(tuple.guest).To(tuple.remote);
      std::vector<std::uint8_t> frame;
      bool toward_guest = true;
      switch (e.kind) {
        case TableEventKind::kRemoteSyn:
          frame = to_guest.Seq(tuple.remote_isn)
                      .Flags(flag::kSyn)
                      .WindowScale(7)
                      .Timestamps(1, 0)
                      .Build();
          break;
        case TableEventKind::kGuestSynAck:
          frame = from_guest.Seq(tuple.guest_isn)
                      .Ack(tuple.remote_isn + 1)
                      .Flags(flag::kSyn)
                      .WindowScale(7)
                      .Timestamps(5, 1)
                      .Build();
          toward_guest = false;
          break;
        case TableEventKind::kGuestSyn:
          frame = from_guest.Seq(tuple.guest_isn).Flags(flag::kSyn).Build();
          toward_guest = false;
          break;
        case TableEventKind::kRemoteSynAck:
          frame = to_guest.Seq(tuple.remote_isn).Ack(tuple.guest_isn + 1).Flags(flag::kSyn).Build();
          break;
        case TableEventKind::kData:
          frame = to_guest.Seq(tuple.remote_isn + 1 + e.a)
                      .Ack(tuple.guest_isn + 1)
                      .Payload(1 + e.a % 100)
                      .Build();
          break;
        case TableEventKind::kGuestAck:
          frame = from_guest.Seq(tuple.guest_isn + 1).Ack(tuple.remote_isn + 1 + e.a).Build();
          toward_guest = false;
          break;
        case TableEventKind::kReset:
        case TableEventKind::kFin: {
          const std::uint8_t f = e.kind == TableEventKind::kReset ? flag::kRst : flag::kFin;
          toward_guest = (e.a & 1) == 0;
          frame =
              toward_guest
                  ? to_guest.Seq(tuple.remote_isn + 1).Ack(tuple.guest_isn + 1).Flags(f).Build()
                  : from_guest.Seq(tuple.guest_isn + 1).Ack(tuple.remote_isn + 1).Flags(f).Build();
          break;
        }
        case TableEventKind::kTick:
          now += std::chrono::milliseconds(e.a);
          continue;
        case TableEventKind::kExpire:
          now += std::chrono::seconds(e.a % 400);
          engine.ExpireIdle(now);
          RC_ASSERT(engine.flows().size() <= scenario.max_flows);
          continue;
      }
      const Verdict v = toward_guest ? engine.OnFrameToGuest(frame, Offload{}, ctx, now)
                                     : engine.OnFrameFromGuest(frame, Offload{}, ctx, now);
      const Counters& after = engine.counters();

      // The bound, and a census that adds up.
      RC_ASSERT(engine.flows().size() <= scenario.max_flows);
      std::size_t census = 0;
      for (std::size_t n : engine.FlowsPerState())
        census += n;
      RC_ASSERT(census == engine.flows().size());
      RC_ASSERT(engine.flows().accelerated_count() <= engine.flows().size());

      // A new tuple never pushes out a flow vSnoop is accelerating.
      const std::vector<FlowKey> now_present = Keys(engine, /*accelerated_only=*/false);
      for (const FlowKey& k : accelerated_before) {
        const bool present = std::any_of(now_present.begin(), now_present.end(),
                                         [&](const FlowKey& p) { return SameKey(p, k); });
        RC_ASSERT(present);
      }

      // One frame, one reason: the verdict's.
      std::uint64_t moved = 0;
      for (std::size_t i = 0; i < kReasonCount; ++i)
        moved += after.by_reason[i] - before.by_reason[i];
      RC_ASSERT(moved == 1u);
      RC_ASSERT(after.reason(v.reason) == before.reason(v.reason) + 1);
      RC_ASSERT(after.frames_to_guest + after.frames_from_guest ==
                before.frames_to_guest + before.frames_from_guest + 1);
    }
    RC_CLASSIFY(engine.counters().reason(Reason::kFlowTableFull) > 0,
                "table full of accelerated flows");
    RC_CLASSIFY(engine.counters().flows_evicted > 0, "transient flows evicted");
    RC_CLASSIFY(engine.counters().flows_established > 0, "flows established");
  });
}

}  // namespace
}  // namespace vsnoop::proptest
