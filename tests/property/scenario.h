// What rapidcheck draws for one simulated run: the topology (one or two connections, one
// or two guests, IPv4 or IPv6, a VLAN tag, which host), the negotiated options and sizes of
// each connection, the host's buffer bounds, and a sequence of events (sends, link
// impairments, guest runs, timers). Raw draws are mapped to the simulation's parameters by
// Simulation (simulation.cc), so every draw is valid and shrinking moves toward small,
// plain cases.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <vector>

#include "tcp_models.h"

namespace vsnoop::proptest {

enum class EventKind : std::uint8_t {
  // Plain progress. Listed first: shrinking moves toward them.
  kDeliver,     // the link delivers its first frames to the host
  kSend,        // the sender sends what its window allows (a few segments)
  kGuestRun,    // a guest gets the CPU: takes frames, ACKs, reads, writes
  kAckDeliver,  // the reverse path delivers frames to the sender
  kTick,        // time passes
  // The link from the sender to the host.
  kDrop,
  kReorder,  // swap the first frame with a later one
  kDuplicate,
  kDelay,            // the first frame falls behind others
  kCorruptTcp,       // TCP checksum wrong
  kCorruptIp,        // IPv4 header checksum wrong
  kMarkCe,           // a router marks CE (ECT frames only)
  kForgeAck,         // the ACK field is rewritten (checksum fixed): blind or stale
  kStripTimestamps,  // a middlebox removes the timestamp option
  kStaleTimestamp,   // the TSval is rewritten older (checksum fixed): PAWS must refuse it
  // The path from the host to the sender.
  kAckDrop,
  kAckReorder,
  // The sender's timers.
  kTimeout,
  kProbe,
  // The host.
  kToggleAcceleration,
  kExpireIdle,  // a long pause, then the engine forgets idle flows
};
inline constexpr int kEventKindCount = static_cast<int>(EventKind::kExpireIdle) + 1;

struct Event {
  EventKind kind = EventKind::kDeliver;
  std::uint8_t connection = 0;  // modulo the number of connections
  std::uint16_t a = 0;          // meaning depends on kind (counts, positions)
  std::uint32_t b = 0;          // meaning depends on kind (sizes, masks, modes)
};

struct ConnectionPlan {
  std::uint32_t sender_isn = 0;
  std::uint32_t guest_isn = 0;
  bool guest_initiates = false;
  SynOffer sender_offer;
  SynOffer guest_offer;
  std::uint16_t mss = 1460;
  std::uint16_t stream_units = 0;  // stream length in segments of the connection's unit
  std::uint32_t stream_extra = 0;  // plus a partial segment
  std::uint32_t rcvbuf_draw = 0;   // picks the guest's receive buffer for its scale
  std::uint16_t sender_window = 65535;
  std::uint32_t sender_ts_base = 0;
  std::uint32_t guest_ts_base = 0;
  std::uint8_t ack_every = 2;             // 1..3
  std::uint8_t window_update_policy = 0;  // 0: any growth, 1: an MSS, 2: half the buffer
};

struct Scenario {
  bool ipv6 = false;
  bool vlan = false;
  bool model_host = false;  // sim::HostModel instead of the engine with our buffer
  bool two_connections = false;
  bool shared_guest = false;  // both connections to one guest (one buffer)
  bool roomy_buffer = false;
  bool buffer_aware_window = false;  // EngineConfig::buffer_aware_window
  std::uint32_t buffer_bytes_draw = 0;
  std::uint32_t buffer_frames_draw = 0;
  std::array<ConnectionPlan, 2> connections;
  std::vector<Event> events;
};

const char* EventKindName(EventKind kind);
void showValue(const Event& event, std::ostream& os);
void showValue(const SynOffer& offer, std::ostream& os);
void showValue(const ConnectionPlan& plan, std::ostream& os);
void showValue(const Scenario& scenario, std::ostream& os);

}  // namespace vsnoop::proptest
