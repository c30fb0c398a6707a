// The per-flow states (the brief's state machine, section 3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vsnoop {

// X(name, LABEL, accelerated?)  "accelerated" states are the ones vSnoop protects from
// eviction: it is acknowledging, or will again, on the guest's behalf.
#define VSNOOP_FLOW_STATES(X)                                                            \
  X(Handshake, "HANDSHAKE", false)           /* SYN seen, learning options */            \
  X(Active, "ACTIVE", true)                  /* in-order data, room: early ACKs */        \
  X(NoBuffer, "NO_BUFFER", true)             /* guest buffer full: the guest paces */    \
  X(UnexpectedSeq, "UNEXPECTED_SEQ", true)   /* hole or retransmission: guest recovers */ \
  X(Closing, "CLOSING", false)               /* FIN seen */                              \
  X(Closed, "CLOSED", false)                 /* RST seen */                              \
  X(MidStream, "MID_STREAM", false)          /* no handshake seen: passive forever */    \
  X(Passive, "PASSIVE", false)               /* handshake not understood: passive */

enum class FlowState : std::uint8_t {
#define VSNOOP_STATE_ENUM(name, label, accelerated) k##name,
  VSNOOP_FLOW_STATES(VSNOOP_STATE_ENUM)
#undef VSNOOP_STATE_ENUM
};

inline constexpr std::size_t kFlowStateCount = 0
#define VSNOOP_STATE_COUNT(name, label, accelerated) +1
    VSNOOP_FLOW_STATES(VSNOOP_STATE_COUNT)
#undef VSNOOP_STATE_COUNT
    ;

std::string_view FlowStateLabel(FlowState state);
constexpr bool IsAccelerated(FlowState state) {
  switch (state) {
#define VSNOOP_STATE_ACCEL(name, label, accelerated) \
  case FlowState::k##name:                           \
    return accelerated;
    VSNOOP_FLOW_STATES(VSNOOP_STATE_ACCEL)
#undef VSNOOP_STATE_ACCEL
  }
  return false;
}

}  // namespace vsnoop
