// Printing scenarios, so a shrunk counterexample reads as a list of events.
#include "scenario.h"

#include <ostream>

namespace vsnoop::proptest {

const char* EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kDeliver:
      return "Deliver";
    case EventKind::kSend:
      return "Send";
    case EventKind::kGuestRun:
      return "GuestRun";
    case EventKind::kAckDeliver:
      return "AckDeliver";
    case EventKind::kTick:
      return "Tick";
    case EventKind::kDrop:
      return "Drop";
    case EventKind::kReorder:
      return "Reorder";
    case EventKind::kDuplicate:
      return "Duplicate";
    case EventKind::kDelay:
      return "Delay";
    case EventKind::kCorruptTcp:
      return "CorruptTcp";
    case EventKind::kCorruptIp:
      return "CorruptIp";
    case EventKind::kMarkCe:
      return "MarkCe";
    case EventKind::kForgeAck:
      return "ForgeAck";
    case EventKind::kStripTimestamps:
      return "StripTimestamps";
    case EventKind::kStaleTimestamp:
      return "StaleTimestamp";
    case EventKind::kAckDrop:
      return "AckDrop";
    case EventKind::kAckReorder:
      return "AckReorder";
    case EventKind::kTimeout:
      return "Timeout";
    case EventKind::kProbe:
      return "Probe";
    case EventKind::kToggleAcceleration:
      return "ToggleAcceleration";
    case EventKind::kExpireIdle:
      return "ExpireIdle";
  }
  return "?";
}

void showValue(const Event& e, std::ostream& os) {
  os << EventKindName(e.kind) << "(c" << static_cast<int>(e.connection) << " a=" << e.a
     << " b=" << e.b << ")";
}

void showValue(const SynOffer& o, std::ostream& os) {
  os << "{ws=" << o.window_scale << (o.timestamps ? " ts" : "") << (o.sack_permitted ? " sack" : "")
     << (o.ecn ? " ecn" : "") << "}";
}

void showValue(const ConnectionPlan& p, std::ostream& os) {
  os << "{sender_isn=" << p.sender_isn << " guest_isn=" << p.guest_isn
     << (p.guest_initiates ? " guest-initiates" : "") << " sender_offer=";
  showValue(p.sender_offer, os);
  os << " guest_offer=";
  showValue(p.guest_offer, os);
  os << " mss=" << p.mss << " stream_units=" << p.stream_units << " stream_extra=" << p.stream_extra
     << " rcvbuf_draw=" << p.rcvbuf_draw << " sender_window=" << p.sender_window
     << " sender_ts_base=" << p.sender_ts_base << " guest_ts_base=" << p.guest_ts_base
     << " ack_every=" << static_cast<int>(p.ack_every)
     << " window_update_policy=" << static_cast<int>(p.window_update_policy) << "}";
}

void showValue(const Scenario& s, std::ostream& os) {
  os << "Scenario{" << (s.ipv6 ? "ipv6" : "ipv4") << (s.vlan ? " vlan" : "")
     << (s.model_host ? " HostModel" : " Engine+buffer")
     << (s.two_connections
             ? (s.shared_guest ? " 2 connections, 1 guest" : " 2 connections, 2 guests")
             : " 1 connection")
     << (s.roomy_buffer ? " roomy-buffer" : "")
     << (s.buffer_aware_window ? " buffer-aware-window" : "")
     << " buffer_bytes_draw=" << s.buffer_bytes_draw
     << " buffer_frames_draw=" << s.buffer_frames_draw << "\n  c0=";
  showValue(s.connections[0], os);
  if (s.two_connections) {
    os << "\n  c1=";
    showValue(s.connections[1], os);
  }
  os << "\n  events (" << s.events.size() << "):";
  for (std::size_t i = 0; i < s.events.size(); ++i) {
    os << (i % 6 == 0 ? "\n    " : " ");
    showValue(s.events[i], os);
  }
  os << "}";
}

}  // namespace vsnoop::proptest
