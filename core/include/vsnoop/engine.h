// The vSnoop engine: per-flow TCP state for every guest behind this host's datapath, the
// decision to acknowledge in-order data early on a guest's behalf, and the decision to
// suppress a guest's redundant ACKs. No I/O: the caller passes each frame, the time, and
// the room in the guest's receive buffer, and acts on the returned Verdict.
//
// Safety rests on one contract with the caller (the "driver domain"):
//   A verdict with an ACK for a frame going to a guest is valid only if the caller places
//   that frame in the guest's receive buffer, which it promised has `room`, before it
//   sends the ACK; the buffer then delivers the frame to the guest without loss.
// The engine itself acknowledges a byte only when every byte before it was placed in that
// buffer in a segment the guest's TCP stack will accept (see docs/design.md).
#pragma once

#include <array>
#include <cstdint>

#include "vsnoop/clock.h"
#include "vsnoop/counters.h"
#include "vsnoop/flow.h"
#include "vsnoop/flow_table.h"
#include "vsnoop/segment.h"
#include "vsnoop/wire/bytes.h"

namespace vsnoop {

struct EngineConfig {
  std::size_t max_flows = 65536;
  // Idle flows are forgotten (safe: vSnoop just stops helping them).
  Duration accelerated_idle_timeout = std::chrono::seconds(300);
  Duration transient_idle_timeout = std::chrono::seconds(30);
  // Seed of the flow-table hash; the daemon draws it at random.
  std::uint64_t hash_seed = 0x5EED5EED5EED5EEDULL;
  // Grow the window shown to the sender no further than the guest's buffer can take
  // (see docs/design.md). Off: the guest's own right edge, as the paper does.
  bool buffer_aware_window = true;
};

// How the caller vouches for a frame's TCP checksum (virtio-net header semantics).
enum class ChecksumStatus : std::uint8_t {
  kUnverified,  // verify in software
  kPartial,     // locally generated, checksum to be completed on transmit (NEEDS_CSUM)
  kVerified,    // already verified by a device or the host stack (DATA_VALID)
};

struct Offload {
  ChecksumStatus checksum = ChecksumStatus::kUnverified;
  // Non-zero for a GSO/TSO super-frame: for vSnoop it is one in-order range of bytes.
  std::uint16_t gso_size = 0;
};

// Free room in the guest's receive buffer before this frame is placed.
struct BufferRoom {
  std::uint64_t bytes = 0;
  std::uint32_t frames = 0;
};

enum class Acceleration : std::uint8_t {
  kOn,   // acknowledge early and suppress
  kOff,  // observe only: state is kept, nothing is generated or suppressed
};

struct GuestContext {
  GuestId id = 0;
  BufferRoom room;  // free room in the guest's receive buffer now
  Acceleration acceleration = Acceleration::kOn;
};

enum class Action : std::uint8_t {
  kForward,          // pass the frame on, unchanged
  kForwardAndAck,    // place the frame in the guest's buffer, then send `ack` to the sender
  kSuppress,         // a redundant guest ACK: do not send it
  kSuppressAndAck,   // a stale guest ACK: send `ack` (a window update) in its place
};

// An ACK frame vSnoop generated: Ethernet (with the data frame's VLAN tags), IPv4 or IPv6,
// TCP with timestamps when negotiated.
struct AckFrame {
  static constexpr std::size_t kCapacity = 14 + 2 * 4 + 40 + 32;
  std::array<std::uint8_t, kCapacity> bytes;  // not cleared: only the first `size` count
  std::uint8_t size = 0;
  wire::Bytes view() const { return {bytes.data(), size}; }
};

struct [[nodiscard]] Verdict {
  Action action = Action::kForward;
  Reason reason = Reason::kPassive;
  AckFrame ack;  // when action is kForwardAndAck or kSuppressAndAck
  // For a guest segment that is forwarded: the TCP window field to write into it first
  // (RewriteWindow), when the guest's own would invite the sender to send more than the
  // guest's buffer can hold (the buffer-aware window, docs/design.md).
  std::optional<std::uint16_t> window_field;

  bool forwards() const { return action == Action::kForward || action == Action::kForwardAndAck; }
  bool has_ack() const {
    return action == Action::kForwardAndAck || action == Action::kSuppressAndAck;
  }
};

namespace detail {
struct Arrival;  // what of a frame reaches the guest's stack (engine.cc)
}  // namespace detail

class Engine {
 public:
  explicit Engine(const EngineConfig& config = {});

  // A frame on its way to guest `guest.id`, before it is placed in its buffer.
  Verdict OnFrameToGuest(wire::Bytes frame, const Offload& offload, const GuestContext& guest,
                         Timestamp now);
  // A frame the guest sent, before it leaves the host.
  Verdict OnFrameFromGuest(wire::Bytes frame, const Offload& offload, const GuestContext& guest,
                           Timestamp now);

  // Forgets flows idle past their timeout. Call about once a second.
  std::size_t ExpireIdle(Timestamp now);
  // Forgets every flow of a guest that went away.
  std::size_t ForgetGuest(GuestId guest);

  const Counters& counters() const { return counters_; }
  const FlowTable& flows() const { return table_; }
  std::array<std::size_t, kFlowStateCount> FlowsPerState() const;
  const EngineConfig& config() const { return config_; }

 private:
  Verdict Pass(Reason reason);
  Verdict OnSyn(Flow* flow, const FlowKey& key, const Segment& seg, bool from_guest,
                const GuestContext& guest, Timestamp now);
  Verdict Establish(Flow& flow, const Segment& syn_ack, bool syn_ack_from_guest);
  Verdict StartMidStream(const FlowKey& key, const Segment& seg, const GuestContext& guest,
                         Timestamp now);
  Verdict OnDataToGuest(Flow& flow, const Segment& seg, const Offload& offload,
                        const detail::Arrival& arrival, const GuestContext& guest);
  Verdict OnAckFromGuest(Flow& flow, const Segment& seg, const wire::TcpOptions& opts,
                         const GuestContext& guest);
  // The window field a forwarded guest segment should carry instead of its own, if any.
  std::optional<std::uint16_t> LimitedWindowField(const Flow& flow, const wire::TcpView& tcp,
                                                  const GuestContext& guest) const;
  Flow* NewFlow(const FlowKey& key, const GuestContext& guest, Timestamp now);
  void Transition(Flow& flow, FlowState to);
  // Writes an ACK of `ack` on the guest's behalf into *out, echoing ts_echo; `seen` is the
  // frame that prompted it (to the guest, or from it). Returns false, writing nothing, when
  // the window rules forbid an ACK now.
  bool BuildAck(Flow& flow, const Segment& seen, bool seen_from_guest, SeqNum ack,
                std::uint32_t ts_echo, const BufferRoom& room, AckFrame* out);
  Verdict Suppress(Flow& flow);
  // The right edge an ACK of `ack` may show: the guest's, or less with a buffer-aware
  // window, never left of one already shown.
  SeqNum WindowTarget(const Flow& flow, SeqNum ack, const BufferRoom& room) const;
  // How many payload bytes the buffer's room holds, for this flow's segment sizes.
  std::uint32_t PayloadRoom(const Flow& flow, const BufferRoom& room) const;

  EngineConfig config_;
  FlowTable table_;
  Counters counters_;
};

}  // namespace vsnoop
