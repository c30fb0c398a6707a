// One TCP connection as vSnoop tracks it: who the guest is, what was negotiated, what the
// guest has been sent and has said, and what the sender has been told.
#pragma once

#include <array>
#include <cstdint>

#include "vsnoop/clock.h"
#include "vsnoop/flow_state.h"
#include "vsnoop/reasons.h"
#include "vsnoop/seq.h"

namespace vsnoop {

// Identifies the guest port a flow belongs to. The datapath assigns them; a frame from
// another guest port never changes a flow (it may be spoofing).
using GuestId = std::uint32_t;

// The TCP 4-tuple, oriented remote -> guest whatever the frame's direction. IPv4 addresses
// are stored IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) so both families share a key.
struct FlowKey {
  std::array<std::uint8_t, 16> remote_ip{};
  std::array<std::uint8_t, 16> guest_ip{};
  std::uint16_t remote_port = 0;
  std::uint16_t guest_port = 0;
  std::uint8_t family = 4;  // 4 or 6
  std::array<std::uint8_t, 3> padding{};  // zero, so keys compare and hash as bytes

  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};
static_assert(sizeof(FlowKey) == 40);

// What one side said in its SYN, kept until the other side's SYN-ACK completes the
// handshake (RFC 7323 §2.2: options only count when both SYNs carry them).
struct SynOptions {
  SeqNum isn;
  std::uint32_t payload = 0;        // TCP Fast Open data carried by the SYN
  std::uint16_t window = 0;         // SYN windows are never scaled (RFC 7323 §2.2)
  std::uint16_t mss = 0;            // 0: absent
  std::int16_t window_scale = -1;   // -1: absent
  bool timestamps = false;
  std::uint32_t ts_value = 0;
  bool sack_permitted = false;
  bool ecn_setup = false;           // ECE+CWR on a SYN, ECE alone on a SYN-ACK (RFC 3168 §6.1.1)
  bool unsupported = false;         // signature or MPTCP option
};

// Per-flow counters, shown by `vsnoopctl flows`.
struct FlowStats {
  std::uint64_t segments_to_guest = 0;
  std::uint64_t payload_bytes_to_guest = 0;
  std::uint64_t segments_from_guest = 0;
  std::uint64_t early_acks = 0;
  std::uint64_t early_acked_bytes = 0;
  std::uint64_t window_updates = 0;
  std::uint64_t guest_acks_suppressed = 0;
  std::uint64_t no_room = 0;
};

// The fields the per-segment path reads and writes come first, so that with the key they
// fill the first two cache lines of a 64-byte-aligned slot; the handshake's scratch, the
// less used counters and the table's links follow.
struct alignas(64) Flow {
  FlowKey key;
  GuestId guest = 0;
  FlowState state = FlowState::kHandshake;
  std::uint8_t guest_window_scale = 0;   // shift for windows the guest advertises
  bool timestamps = false;
  bool ecn = false;
  bool ece_echo = false;    // CE seen, CWR not yet: ACKs carry ECE (RFC 3168 §6.1.3)
  bool answer_due = false;  // a probe or keepalive reached the guest: its answer goes out
  bool vsnoop_acked = false;
  std::uint8_t guest_ttl = 64;
  std::uint8_t guest_tos = 0;  // DSCP, copied to early ACKs (ECN bits never: RFC 3168 §6.1.4)
  std::uint16_t guest_mss = 0;

  // Data from the sender to the guest.
  SeqNum rcv_nxt;    // end of the in-order bytes placed in the buffer that the guest accepts
  SeqNum rcv_high;   // end of the furthest byte placed in the buffer (rcv_high >= rcv_nxt)
  std::uint32_t max_payload = 0;  // largest in-order segment seen (a GSO frame: many MSS)
  std::uint32_t ts_recent = 0;  // TSval of the last in-order segment acknowledged (echoed)
  std::uint32_t ts_newest = 0;  // newest TSval that reached the guest's stack (PAWS)
  SeqNum remote_ack;                   // newest acceptable ACK that reached the guest
  std::uint32_t remote_max_window = 0;  // the sender's SYN window: a floor of its MAX.SND.WND

  // What the guest has said.
  SeqNum guest_ack;         // its highest cumulative ACK
  SeqNum guest_right_edge;  // its latest ACK + window << scale
  SeqNum guest_snd_nxt;     // the sequence number its next segment would carry
  std::uint32_t guest_ts_value = 0;
  std::uint32_t guest_flow_label = 0;

  // What the sender has been told, by the guest's forwarded segments and by vSnoop.
  SeqNum vsnoop_ack;         // highest ACK number vSnoop sent
  SeqNum advertised_edge;    // furthest right edge the sender has been shown
  SeqNum shown_edge;         // the right edge of the latest ACK the sender got

  Timestamp last_seen{0};
  FlowStats stats;

  // Negotiated in the handshake, read rarely.
  std::uint8_t remote_window_scale = 0;  // shift for windows the sender advertises
  bool sack = false;
  bool guest_initiated = false;              // the guest sent the first SYN
  Reason passive_reason = Reason::kPassive;  // why, when state is PASSIVE
  SynOptions syn;  // the first SYN, until the SYN-ACK
  Timestamp created{0};

 private:
  friend class FlowTable;
  static constexpr std::uint32_t kNone = 0xFFFFFFFF;
  Timestamp lru_stamp_{0};  // when the flow last moved to the head of its list
  std::uint32_t lru_prev_ = kNone;
  std::uint32_t lru_next_ = kNone;
  std::uint8_t lru_list_ = 0;
};

}  // namespace vsnoop
