// The engine's counters, declared once. The daemon exports them (vsnoopctl, Prometheus),
// the replay tool prints them as JSON, tests assert on them by name.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "vsnoop/flow_state.h"
#include "vsnoop/reasons.h"

namespace vsnoop {

// X(name, description)
#define VSNOOP_ENGINE_COUNTERS(X)                                                          \
  X(frames_to_guest, "frames offered to the engine on their way to a guest")               \
  X(frames_from_guest, "frames offered to the engine on their way from a guest")           \
  X(early_acks, "ACKs vSnoop sent on a guest's behalf for in-order data")                  \
  X(early_acked_bytes, "bytes acknowledged by vSnoop before the guest did")                \
  X(window_updates, "stale guest ACKs replaced by a window update at vSnoop's ACK")        \
  X(guest_windows_limited, "forwarded guest segments whose window was cut to the buffer")  \
  X(guest_acks_suppressed, "guest pure ACKs suppressed as redundant")                      \
  X(flows_created, "flows that entered the table")                                         \
  X(flows_established, "handshakes completed: flows that became ACTIVE")                   \
  X(flows_mid_stream, "flows picked up without their handshake (left passive)")            \
  X(flows_from_syn_ack, "flows learnt from the guest's SYN-ACK (the SYN was not seen)")     \
  X(flows_evicted, "transient flows evicted to make room for a new one")                   \
  X(flows_expired, "flows removed after being idle")                                       \
  X(flows_forgotten, "flows removed because their guest went away")                        \
  X(window_scale_clamped, "SYNs with a window scale above 14, read as 14 (RFC 7323 §2.3)") \
  X(syn_on_accelerated_flow, "SYNs for a tuple vSnoop is accelerating: ignored")

struct Counters {
#define VSNOOP_COUNTER_FIELD(name, doc) std::uint64_t name = 0;
  VSNOOP_ENGINE_COUNTERS(VSNOOP_COUNTER_FIELD)
#undef VSNOOP_COUNTER_FIELD
  // One per Reason: every frame is counted under exactly one.
  std::array<std::uint64_t, kReasonCount> by_reason{};
  // transitions[from][to]
  std::array<std::array<std::uint64_t, kFlowStateCount>, kFlowStateCount> transitions{};

  std::uint64_t reason(Reason r) const { return by_reason[static_cast<std::size_t>(r)]; }
  std::uint64_t transition(FlowState from, FlowState to) const {
    return transitions[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
  }

  // Calls fn(name, description, value) for each scalar counter.
  template <typename Fn>
  void ForEachScalar(Fn&& fn) const {
#define VSNOOP_COUNTER_VISIT(name, doc) fn(std::string_view(#name), std::string_view(doc), name);
    VSNOOP_ENGINE_COUNTERS(VSNOOP_COUNTER_VISIT)
#undef VSNOOP_COUNTER_VISIT
  }
};

}  // namespace vsnoop
