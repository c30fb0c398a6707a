// The two TCP endpoints of a simulated connection, as small reference models: a sender on
// the network that streams a known byte pattern to a guest, and the guest's TCP receiver
// (a simplified Linux). The property tests put vSnoop between them and judge its decisions
// against what these models do.
//
// The sender (RFC 9293, 5681, 6675-style recovery, RFC 7323, RFC 3168):
//   - sends in-order segments of any size up to its MSS, within the window it was shown
//     (Linux's tcp_may_update_window decides which ACKs may change that window);
//   - counts duplicate ACKs and merges SACK blocks; the third duplicate ACK, or a duplicate
//     that carries new SACK information, starts recovery, which retransmits the holes one
//     segment per duplicate or partial ACK; a timeout goes back to the first unacknowledged
//     byte and forgets SACK information (RFC 2018 §8);
//   - stamps TSval from its clock and drops ACKs that fail PAWS (RFC 7323 §5.3), whose
//     sequence number is outside its receive window (Linux tcp_sequence; it answers with
//     an ACK), or that acknowledge data never sent; answers ECE with CWR on its next new segment,
//     once per window; marks new data ECT(0) when ECN was negotiated, never retransmissions;
//   - probes a zero window the Linux way (no data, sequence number one below SND.UNA) or the
//     BSD way (one byte past the window); acknowledges data the guest sends.
//   Left out: congestion control (cwnd, pacing), RTT estimation, FIN and RST, Nagle.
//
// The guest receiver, checks in the order of Linux's tcp_rcv_established slow path:
//   checksums; ACK flag; TSopt present when negotiated (RFC 7323 §3.2 SHOULD); PAWS against
//   TS.Recent (strictly older is rejected); tcp_sequence (end >= RCV.WUP and
//   seq <= RCV.NXT + window); the ACK field (RFC 9293 §3.10.7.4 for unsent data, RFC 5961
//   §5.2 for one more than a maximum window old); TS.Recent updated as Linux's
//   tcp_replace_ts_recent does (TSval not older and SEG.SEQ <= RCV.WUP); then data: in-order
//   bytes up to the advertised right edge, out-of-order bytes kept (and reported in SACK
//   blocks, the newest first), duplicates answered with a D-SACK, zero-window data dropped.
//   Every accepted byte is compared with the pattern the sender sent.
//   ACKs: immediate for anything out of order, duplicate, rejected or filling a hole; after
//   `guest_ack_every` in-order segments otherwise, or when the caller flushes (the delayed
//   ACK timer). The window is what the receive buffer has left after the bytes the
//   application has not read; it is never shrunk: like Linux's tcp_select_window, a window
//   that would pull the right edge back is rounded up to the scale instead. ECE on every
//   ACK from a CE-marked data segment until a segment with CWR (RFC 3168 §6.1.3).
//   The guest's application may also write small amounts, which the guest sends and
//   retransmits until acknowledged.
//   Left out: memory pressure (the window never promises more than the buffer holds, so
//   in-window data always fits), urgent data, FIN/RST, SYN retransmissions, Linux's
//   acceptance of in-order bytes past the window (this model trims them: stricter).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "vsnoop/sim/frame_builder.h"
#include "wire_reader.h"

namespace vsnoop::proptest {

using Millis = std::uint64_t;

// What one side offers in its SYN.
struct SynOffer {
  int window_scale = -1;  // -1: no option
  bool timestamps = false;
  bool sack_permitted = false;
  bool ecn = false;
};

// What the handshake settled (RFC 7323 §2.2 and §3.2, RFC 2018 §2, RFC 3168 §6.1.1).
struct Negotiated {
  std::uint8_t guest_scale = 0;   // shift of the windows the guest advertises
  std::uint8_t sender_scale = 0;  // shift of the windows the sender advertises
  bool timestamps = false;
  bool sack = false;
  bool ecn = false;
};

Negotiated Negotiate(const SynOffer& sender, const SynOffer& guest);

// The fixed facts of one connection, shared by its two endpoint models.
struct ConnectionSpec {
  sim::Endpoint sender;
  sim::Endpoint guest;
  std::optional<std::uint16_t> vlan_tci;
  bool guest_initiates = false;
  SynOffer sender_offer;
  SynOffer guest_offer;
  Negotiated negotiated;
  std::uint32_t sender_isn = 0;
  std::uint32_t guest_isn = 0;
  std::uint16_t mss = 1460;            // the sender's largest segment
  std::uint32_t stream_length = 0;     // bytes the sender's application sends
  std::uint32_t guest_rcvbuf = 65535;  // bounds the guest's window
  std::uint16_t guest_syn_window = 65535;
  std::uint16_t sender_window = 65535;  // the sender's window field (its own scale applies)
  std::uint32_t sender_ts_base = 0;
  std::uint32_t guest_ts_base = 0;
  std::uint8_t stream_salt = 0;
  std::uint8_t guest_ack_every = 2;
};

// Byte `offset` of a stream: what the sender sends and what the receiver must get.
std::uint8_t StreamByte(std::uint8_t salt, std::uint64_t offset);
// Whether `bytes` are the stream's bytes from `offset` on.
bool MatchesStream(std::uint8_t salt, std::uint64_t offset, FrameView bytes);

// Sequence numbers as offsets from a connection's first data byte, so the models never
// compare wrapped values. Valid within 2^31 of the base.
inline std::int64_t OffsetOf(std::uint32_t wire, std::uint32_t base) {
  return static_cast<std::int32_t>(wire - base);
}
inline std::uint32_t WireOf(std::int64_t offset, std::uint32_t base) {
  return base + static_cast<std::uint32_t>(offset);
}

class SenderModel {
 public:
  struct Stats {
    std::uint64_t segments_sent = 0;
    std::uint64_t retransmissions = 0;
    std::uint64_t dropped_bad_checksum = 0;
    std::uint64_t dropped_paws = 0;
    std::uint64_t dropped_ack_of_unsent = 0;
    std::uint64_t dropped_out_of_window = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t content_errors = 0;  // guest data that is not the guest's pattern
  };

  explicit SenderModel(const ConnectionSpec& spec);

  Frame Syn(Millis now) const;
  Frame SynAck(Millis now) const;
  Frame HandshakeAck(Millis now) const;
  // Learns the guest's SYN (guest initiated) or SYN-ACK: its window and TSval.
  void OnHandshake(FrameView frame);

  // Up to `max_segments` segments of at most `size_hint` bytes (0: MSS) within the window.
  void SendData(int max_segments, std::uint32_t size_hint, Millis now, std::vector<Frame>* out);
  // The retransmission timer fired; with nothing outstanding and a zero window, the
  // persist timer: a probe of one byte or none.
  void OnTimeout(Millis now, std::vector<Frame>* out, bool one_byte_probe = false);
  void SendProbe(bool one_byte, Millis now, std::vector<Frame>* out);
  // A frame from the guest's direction: ACKs (the guest's or vSnoop's) and guest data.
  void OnFrame(FrameView frame, Millis now, std::vector<Frame>* out);

  std::int64_t acked() const { return una_; }
  std::int64_t sent_max() const { return max_; }
  std::int64_t window_end() const { return una_ + snd_wnd_; }
  bool HasUnsent() const { return max_ < spec_.stream_length || nxt_ < max_; }
  bool HasOutstanding() const { return una_ < max_; }
  bool Finished() const { return una_ == static_cast<std::int64_t>(spec_.stream_length); }
  std::int64_t guest_bytes_received() const { return rcv_nxt_; }
  std::uint32_t TsVal(Millis now) const {
    return spec_.sender_ts_base + static_cast<std::uint32_t>(now);
  }
  const Stats& stats() const { return stats_; }

 private:
  Frame Segment(std::int64_t offset, std::uint32_t length, std::uint8_t flags, bool ect,
                Millis now);
  void Transmit(std::int64_t offset, std::uint32_t length, Millis now, std::vector<Frame>* out);
  void RetransmitNextHole(Millis now, std::vector<Frame>* out);
  bool AddSacked(std::int64_t left, std::int64_t right);
  bool IsSacked(std::int64_t offset, std::int64_t* range_end) const;
  std::int64_t NextSackedStart(std::int64_t from) const;
  std::uint32_t DataBase() const { return spec_.sender_isn + 1; }
  std::uint32_t GuestDataBase() const { return spec_.guest_isn + 1; }

  ConnectionSpec spec_;
  // Send side, as offsets from the first data byte.
  std::int64_t una_ = 0;
  std::int64_t nxt_ = 0;
  std::int64_t max_ = 0;
  std::int64_t snd_wnd_ = 0;
  std::uint32_t snd_wl1_ = 0;  // the guest's sequence number of the last window update
  int dupacks_ = 0;
  std::map<std::int64_t, std::int64_t> sacked_;  // left -> right
  bool in_recovery_ = false;
  std::int64_t recovery_end_ = 0;
  std::int64_t retransmit_next_ = 0;
  bool in_cwr_ = false;
  std::int64_t cwr_end_ = 0;
  bool cwr_pending_ = false;
  std::uint32_t ts_recent_ = 0;  // the guest's TSval, echoed
  std::uint64_t window_toggle_ = 0;
  // Receive side (guest data), offsets from the guest's first data byte.
  std::int64_t rcv_nxt_ = 0;
  std::int64_t rcv_wup_ = 0;  // rcv_nxt_ when the sender last sent a segment (an ACK)
  Stats stats_;
};

class GuestTcp {
 public:
  struct Stats {
    std::uint64_t bytes_accepted = 0;
    std::uint64_t content_errors = 0;  // accepted bytes that are not the sender's pattern
    std::uint64_t dropped_checksum = 0;
    std::uint64_t dropped_paws = 0;
    std::uint64_t dropped_out_of_window = 0;
    std::uint64_t dropped_bad_ack = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t out_of_order = 0;
  };

  explicit GuestTcp(const ConnectionSpec& spec);

  Frame Syn(Millis now);
  Frame SynAck(Millis now);
  Frame HandshakeAck(Millis now);
  // Learns the sender's SYN or SYN-ACK: TS.Recent and the sender's window.
  void OnHandshake(FrameView frame);

  // The guest's TCP takes one frame from its buffer (`read` is ReadTcpFrame(frame)).
  void Receive(FrameView frame);
  void Receive(FrameView frame, const ReadFrame& read);
  // An immediate ACK is owed, or the delayed-ACK segment count is reached.
  bool AckDue() const;
  // In-order data arrived since the last ACK.
  bool AckPending() const { return unacked_segments_ > 0 || ack_now_; }
  // Sends a pure ACK with the current state.
  Frame Ack(Millis now);
  void AppRead(std::uint64_t max_bytes);
  // How far an ACK sent now would move the right edge (0 if not at all).
  std::int64_t WindowGrowth() const;
  void AppWrite(std::uint32_t bytes) { written_ += bytes; }
  // Sends the application's unsent bytes within the sender's window.
  void SendData(Millis now, std::vector<Frame>* out);
  // Goes back to the first unacknowledged byte of its own data.
  void Retransmit(Millis now, std::vector<Frame>* out);
  bool HasUnackedData() const { return snd_una_ < written_; }

  std::int64_t rcv_nxt() const { return rcv_nxt_; }
  std::int64_t app_read() const { return app_read_; }
  std::int64_t advertised_edge() const { return adv_edge_; }
  std::int64_t snd_max() const { return snd_max_; }
  std::uint32_t last_tsval() const { return last_tsval_; }
  std::uint32_t ts_recent() const { return ts_recent_; }
  std::int64_t written() const { return written_; }
  std::int64_t data_acked() const { return snd_una_; }
  std::int64_t max_sender_window() const { return max_sender_window_; }
  const Stats& stats() const { return stats_; }
  std::uint32_t TsVal(Millis now) const {
    return spec_.guest_ts_base + static_cast<std::uint32_t>(now);
  }
  // Right edge, window field and ACK number an ACK sent now would carry.
  void NextWindow(std::int64_t* edge, std::uint16_t* field) const;

  // Why the latest segment carrying byte `offset` as the next in-order byte was refused.
  enum class Refusal : std::uint8_t { kNone, kPaws, kAckTooOld, kAckOfUnsentData };
  Refusal RefusalAt(std::int64_t offset) const {
    return last_refusal_.first == offset ? last_refusal_.second : Refusal::kNone;
  }

 private:
  void Accept(std::int64_t from, std::int64_t to);
  void KeepOutOfOrder(std::int64_t from, std::int64_t to);
  Frame Build(std::uint8_t extra_flags, std::int64_t data_offset, std::uint32_t data_length,
              Millis now);
  std::uint32_t DataBase() const { return spec_.sender_isn + 1; }
  std::uint32_t OwnDataBase() const { return spec_.guest_isn + 1; }

  ConnectionSpec spec_;
  // Receive side, offsets from the sender's first data byte.
  std::int64_t rcv_nxt_ = 0;
  std::int64_t rcv_wup_ = 0;   // RCV.NXT when the last window was advertised
  std::int64_t adv_edge_ = 0;  // right edge last advertised
  std::int64_t app_read_ = 0;
  std::map<std::int64_t, std::int64_t> out_of_order_;  // left -> right
  std::int64_t newest_out_of_order_ = -1;              // left edge of the block that changed last
  std::optional<std::pair<std::int64_t, std::int64_t>> dsack_;
  std::uint32_t ts_recent_ = 0;
  bool ece_ = false;
  bool ack_now_ = false;
  int unacked_segments_ = 0;
  // Send side (its own data), offsets from its first data byte.
  std::int64_t snd_una_ = 0;
  std::int64_t snd_nxt_ = 0;
  std::int64_t snd_max_ = 0;
  std::int64_t written_ = 0;
  std::int64_t sender_window_ = 0;  // bytes, scaled
  std::int64_t max_sender_window_ = 0;
  std::uint32_t last_tsval_ = 0;
  std::pair<std::int64_t, Refusal> last_refusal_{-1, Refusal::kNone};
  Stats stats_;
};

}  // namespace vsnoop::proptest
