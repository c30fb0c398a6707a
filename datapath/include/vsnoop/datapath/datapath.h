// The host datapath: the "driver domain" of the vSnoop paper. It joins one uplink port to
// one port per guest as a learning bridge, keeps a bounded receive buffer per guest, runs
// the vSnoop engine inline on every unicast frame to or from a guest, and emulates CPU
// scheduling for guests that are network namespaces.
//
// It does no I/O of its own: ports move the frames, the caller supplies the time and calls
// Step() whenever a port's descriptor is ready or NextDeadline() has passed. The same code
// therefore runs in vsnoopd and, with in-memory ports and a fake clock, in tests.
#pragma once

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vsnoop/datapath/frame_queue.h"
#include "vsnoop/datapath/mac_table.h"
#include "vsnoop/datapath/port.h"
#include "vsnoop/datapath/schedule.h"
#include "vsnoop/engine.h"

struct pollfd;

namespace vsnoop::datapath {

struct GuestPortConfig {
  std::string name;  // as the operator wrote it: "veth:vm1", "qemu:/run/vm1.sock"
  std::unique_ptr<Port> port;
  std::optional<ScheduleConfig> schedule;  // emulated scheduling; none: always running
  std::uint64_t buffer_bytes = 1 << 20;
  std::uint32_t buffer_frames = 1024;
  bool accelerate = true;
};

struct DatapathConfig {
  EngineConfig engine;
  bool accelerate = true;  // the global switch; --no-vsnoop turns it off
  // Run the engine at all. Off, the datapath is a plain learning bridge with per-guest
  // buffers: the reference for measuring what the engine costs (vsnoopd --engine off).
  bool run_engine = true;
  std::size_t burst = 64;  // frames per receive or send call
  std::size_t mac_table_size = 4096;
  Duration mac_aging = std::chrono::seconds(300);
  std::uint64_t uplink_backlog_bytes = 4 << 20;
  std::uint32_t uplink_backlog_frames = 4096;
};

// Counters per guest port, exported by vsnoopctl and the metrics endpoint.
#define VSNOOP_GUEST_COUNTERS(X)                                                         \
  X(frames_to_guest, "frames addressed to the guest")                                    \
  X(frames_placed, "frames placed in the guest's receive buffer")                        \
  X(frames_dropped_no_room, "frames dropped: the guest's buffer was full (never acked)") \
  X(frames_dropped_unoffload, "frames dropped: offload metadata the port cannot carry")  \
  X(frames_dropped_too_big, "frames dropped: longer than the guest's port carries (never acked)") \
  X(frames_refused, "frames the guest's port consumed but could not send (lost)")      \
  X(early_acks_withheld, "early ACKs not sent: the port refused the frame they were for") \
  X(frames_delivered, "frames handed to the guest's port")                               \
  X(bytes_delivered, "bytes handed to the guest's port")                                 \
  X(frames_from_guest, "frames read from the guest")                                     \
  X(early_acks, "early ACKs sent for this guest")                                        \
  X(early_acks_coalesced, "early ACKs replaced by a later one for the same flow and burst") \
  X(window_updates, "window updates sent in place of stale guest ACKs")                  \
  X(guest_acks_suppressed, "guest ACKs suppressed")                                      \
  X(guest_windows_limited, "guest segments forwarded with their window cut to the buffer") \
  X(gso_segmented, "GSO super-frames segmented for a port without offloads")            \
  X(disconnects, "times the guest went away (its flows were forgotten)")                 \
  X(reattaches, "times the guest's interface came back and the port attached to it again")

struct GuestCounters {
#define VSNOOP_GUEST_FIELD(name, doc) std::uint64_t name = 0;
  VSNOOP_GUEST_COUNTERS(VSNOOP_GUEST_FIELD)
#undef VSNOOP_GUEST_FIELD
  std::uint64_t buffer_high_water_bytes = 0;

  template <typename Fn>
  void ForEach(Fn&& fn) const {
#define VSNOOP_GUEST_VISIT(name, doc) fn(std::string_view(#name), std::string_view(doc), name);
    VSNOOP_GUEST_COUNTERS(VSNOOP_GUEST_VISIT)
#undef VSNOOP_GUEST_VISIT
    fn(std::string_view("buffer_high_water_bytes"),
       std::string_view("most bytes the buffer held at once"), buffer_high_water_bytes);
  }
};

#define VSNOOP_BRIDGE_COUNTERS(X)                                                         \
  X(frames_from_uplink, "frames received on the uplink")                                  \
  X(frames_to_uplink, "frames sent on the uplink")                                        \
  X(frames_flooded, "frames flooded: broadcast, multicast or unknown destination")        \
  X(frames_filtered, "frames whose destination is the port they came from")              \
  X(frames_runt, "frames shorter than an Ethernet header")                                \
  X(uplink_backlog_dropped, "frames dropped: the uplink stayed busy and its backlog full") \
  X(generated_acks_dropped, "generated ACKs dropped: their destination had no room")      \
  X(internal_bugs, "broken internal invariants (see the log)")

struct BridgeCounters {
#define VSNOOP_BRIDGE_FIELD(name, doc) std::uint64_t name = 0;
  VSNOOP_BRIDGE_COUNTERS(VSNOOP_BRIDGE_FIELD)
#undef VSNOOP_BRIDGE_FIELD
  template <typename Fn>
  void ForEach(Fn&& fn) const {
#define VSNOOP_BRIDGE_VISIT(name, doc) fn(std::string_view(#name), std::string_view(doc), name);
    VSNOOP_BRIDGE_COUNTERS(VSNOOP_BRIDGE_VISIT)
#undef VSNOOP_BRIDGE_VISIT
  }
};

// Sees every frame vSnoop generated or suppressed (vsnoopd's --pcap-out).
class DecisionObserver {
 public:
  enum class Kind : std::uint8_t { kEarlyAck, kWindowUpdate, kSuppressed, kWindowLimited };
  virtual ~DecisionObserver() = default;
  virtual void OnDecision(Kind kind, const std::string& guest, wire::Bytes frame,
                          Timestamp now) = 0;
};

class Datapath {
 public:
  static constexpr std::uint32_t kUplink = 0;  // port index; guest i is port i + 1

  Datapath(const DatapathConfig& config, std::unique_ptr<Port> uplink,
           std::vector<GuestPortConfig> guests, Timestamp now);

  // Receives what is ready, forwards it, delivers buffered frames to guests on their core,
  // and advances the emulated schedules.
  void Step(Timestamp now);
  // For shutdown: delivers what the guests' buffers hold (early-acknowledged data among
  // it) to every attached guest, scheduled or not, without reading anything new. Returns
  // the bytes still buffered; call again when the ports can send (CollectWaits).
  std::uint64_t Drain();
  // The latest time by which Step must run again even if no descriptor becomes ready.
  Timestamp NextDeadline(Timestamp now) const;
  // The descriptors Step wants to hear about now (POLLIN/POLLOUT).
  void CollectWaits(std::vector<pollfd>* out) const;

  void set_observer(DecisionObserver* observer) { observer_ = observer; }
  void SetAcceleration(bool on) { config_.accelerate = on; }
  bool acceleration() const { return config_.accelerate; }
  // Returns false if there is no guest of that name.
  bool SetGuestAcceleration(const std::string& guest, bool on);

  struct GuestView {
    const std::string& name;
    const Port& port;
    const FrameQueue& buffer;
    const std::optional<VmSchedule>& schedule;
    const GuestCounters& counters;
    bool accelerate;
  };
  std::size_t guest_count() const { return guests_.size(); }
  GuestView guest(std::size_t i) const;
  const Port& uplink() const { return *uplink_; }
  const Engine& engine() const { return engine_; }
  const BridgeCounters& counters() const { return counters_; }
  const MacTable& mac_table() const { return mac_; }

 private:
  struct Guest {
    std::string name;
    std::unique_ptr<Port> port;
    FrameQueue buffer;
    std::optional<VmSchedule> schedule;
    bool accelerate;
    bool was_connected;
    GuestCounters counters;
    FrameSink sink;
  };

  bool Running(const Guest& g) const { return !g.schedule || g.schedule->running(); }
  Guest& GuestAt(std::uint32_t port) { return guests_[port - 1]; }
  Port& PortAt(std::uint32_t port) { return port == kUplink ? *uplink_ : *GuestAt(port).port; }
  std::size_t PortCount() const { return guests_.size() + 1; }
  Acceleration AccelerationFor(const Guest& g) const {
    return config_.accelerate && g.accelerate ? Acceleration::kOn : Acceleration::kOff;
  }

  void OnFrame(std::uint32_t in, const PacketView& packet);
  void Output(std::uint32_t out, std::uint32_t in, const PacketView& packet, bool run_engine);
  void ToGuest(std::uint32_t out, const PacketView& packet, bool run_engine);
  void PlaceForGuest(Guest& g, std::uint32_t out, const PacketView& packet, bool run_engine);
  void SendGenerated(std::uint32_t from, wire::Bytes frame);
  void HoldEarlyAck(std::uint32_t from, const AckFrame& ack);
  void SendEarlyAck(std::uint32_t from, wire::Bytes frame);
  void ReleaseHeldAcks();
  void ToUplink(const PacketView& packet);
  void FlushUplinkBacklog();
  void Deliver(Guest& g);
  // Whether the guest's emulated vCPU has work: frames wait for it or from it.
  static bool Runnable(const Guest& g);
  // SendBurst to the guest's port, counting what it delivered and what it refused.
  std::size_t SendToGuest(Guest& g, std::span<const PacketView> frames);
  void OnGuestGone(std::uint32_t port);
  void Observe(DecisionObserver::Kind kind, const Guest& g, wire::Bytes frame);

  DatapathConfig config_;
  Engine engine_;
  std::unique_ptr<Port> uplink_;
  std::vector<Guest> guests_;
  MacTable mac_;
  FrameQueue uplink_backlog_;
  BridgeCounters counters_;
  DecisionObserver* observer_ = nullptr;
  Timestamp now_{0};
  Timestamp last_housekeeping_{0};
  FrameSink uplink_sink_;
  std::vector<OwnedPacket> scratch_;     // unoffloaded frames
  std::vector<PacketView> send_batch_;
  std::vector<std::uint8_t> rewritten_;  // a guest frame whose window the engine limited
  // Early ACKs made while a burst from the uplink is read: sent together after it (one
  // send call), and only the latest of each flow (it acknowledges everything the earlier
  // ones did, with a window at least as far right).
  struct FlowId {
    std::array<std::uint8_t, 64> bytes;
    std::uint8_t size;
    bool operator==(const FlowId& o) const {
      return size == o.size && std::equal(bytes.begin(), bytes.begin() + size, o.bytes.begin());
    }
  };
  static FlowId FlowIdOf(wire::Bytes frame);
  struct HeldAck {
    std::uint32_t from;
    FlowId id;
    AckFrame frame;
  };
  bool holding_acks_ = false;
  bool defer_uplink_sends_ = false;
  std::vector<HeldAck> held_acks_;
};

}  // namespace vsnoop::datapath
