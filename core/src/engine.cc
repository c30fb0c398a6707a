#include "vsnoop/engine.h"

#include <algorithm>
#include <utility>

#include "vsnoop/bug.h"
#include "vsnoop/wire/checksum.h"

namespace vsnoop {
namespace {

using wire::TcpOptions;
namespace flag = wire::tcp_flag;

void PutAddress(std::array<std::uint8_t, 16>* out, const Segment& seg, const std::uint8_t* ip) {
  if (seg.family == 4) {
    out->fill(0);
    (*out)[10] = 0xFF;
    (*out)[11] = 0xFF;
    std::memcpy(out->data() + 12, ip, 4);
  } else {
    std::memcpy(out->data(), ip, 16);
  }
}

FlowKey KeyOf(const Segment& seg, bool from_guest) {
  FlowKey key;
  key.family = seg.family;
  PutAddress(&key.remote_ip, seg, from_guest ? seg.destination_ip : seg.source_ip);
  PutAddress(&key.guest_ip, seg, from_guest ? seg.source_ip : seg.destination_ip);
  key.remote_port = from_guest ? seg.tcp.destination_port() : seg.tcp.source_port();
  key.guest_port = from_guest ? seg.tcp.source_port() : seg.tcp.destination_port();
  return key;
}

SynOptions ReadSyn(const Segment& seg, const TcpOptions& opts) {
  SynOptions syn;
  syn.isn = SeqNum(seg.tcp.seq());
  syn.payload = seg.payload_size;
  syn.window = seg.tcp.window();
  syn.mss = opts.mss.value_or(0);
  if (opts.window_scale) syn.window_scale = *opts.window_scale;
  syn.timestamps = opts.has_timestamps;
  syn.ts_value = opts.ts_value;
  syn.sack_permitted = opts.sack_permitted;
  // RFC 3168 §6.1.1: an ECN-setup SYN has ECE and CWR; an ECN-setup SYN-ACK has ECE only.
  syn.ecn_setup = seg.tcp.Has(flag::kAck)
                      ? seg.tcp.Has(flag::kEce) && !seg.tcp.Has(flag::kCwr)
                      : seg.tcp.Has(flag::kEce) && seg.tcp.Has(flag::kCwr);
  syn.unsupported = opts.has_signature || opts.has_multipath;
  return syn;
}

// The remote's SYN as the guest's SYN-ACK shows it, for a SYN vSnoop did not see. An option
// appears on a SYN-ACK only if the SYN carried it: window scale (RFC 7323 §2.2), timestamps
// (§3.2), SACK-permitted (RFC 2018 §2, as Linux and every stack we know implement it); an
// ECN-setup SYN-ACK answers an ECN-setup SYN (RFC 3168 §6.1.1). The SYN-ACK's TSecr is the
// SYN's TSval. What it cannot show is left at its safest: the SYN's window is taken as 0
// (AckAcceptable then accepts no ACK behind the newest one seen), the remote's window
// scale as 0 (it is only reported), any Fast Open data as none (the guest's ACK field
// marks where the remote's data starts either way).
SynOptions SynImpliedBySynAck(const Segment& syn_ack, const TcpOptions& opts) {
  SynOptions syn;
  syn.isn = SeqNum(syn_ack.tcp.ack()) - 1;
  if (opts.window_scale) syn.window_scale = 0;
  syn.timestamps = opts.has_timestamps;
  syn.ts_value = opts.ts_echo;
  syn.sack_permitted = opts.sack_permitted;
  syn.ecn_setup = syn_ack.tcp.Has(flag::kEce) && !syn_ack.tcp.Has(flag::kCwr);
  return syn;
}

// Whether the guest's TCP stack will take a segment into its receive queue.
enum class Acceptance : std::uint8_t {
  kAccepted,   // certainly, if it is in order
  kUncertain,  // it might, or it needs the guest's own answer (CE, urgent data...)
  kRejected,   // certainly not: the guest drops it
};

Verdict MakeVerdict(Action action, Reason reason) {
  Verdict v;
  v.action = action;
  v.reason = reason;
  return v;
}

struct Judgement {
  Acceptance acceptance;
  Reason reason;
};

}  // namespace

// What of a frame to a guest reaches the guest's TCP stack.
struct detail::Arrival {
  bool fits = false;          // it goes into the buffer
  bool checksums_ok = false;  // the stack looks past its checksums
  TcpOptions opts;
  bool reaches_stack() const { return fits && checksums_ok; }
};

namespace {

}  // namespace

Engine::Engine(const EngineConfig& config)
    : config_(config), table_(std::max<std::size_t>(1, config.max_flows), config.hash_seed) {}

Verdict Engine::Pass(Reason reason) {
  ++counters_.by_reason[static_cast<std::size_t>(reason)];
  return MakeVerdict(Action::kForward, reason);
}

void Engine::Transition(Flow& flow, FlowState to) {
  if (flow.state == to) return;
  ++counters_.transitions[static_cast<std::size_t>(flow.state)][static_cast<std::size_t>(to)];
  flow.state = to;
  table_.SetAccelerated(&flow, IsAccelerated(to));
}

Flow* Engine::NewFlow(const FlowKey& key, const GuestContext& guest, Timestamp now) {
  bool evicted = false;
  Flow* flow = table_.Insert(key, now, &evicted);
  if (evicted) ++counters_.flows_evicted;
  if (flow == nullptr) return nullptr;
  ++counters_.flows_created;
  flow->guest = guest.id;
  return flow;
}

namespace {

Reason PassReasonFor(const Flow& flow) {
  switch (flow.state) {
    case FlowState::kHandshake:
      return Reason::kHandshake;
    case FlowState::kClosing:
      return Reason::kClosing;
    case FlowState::kClosed:
      return Reason::kReset;
    case FlowState::kMidStream:
      return Reason::kMidStream;
    case FlowState::kPassive:
      return flow.passive_reason;
    case FlowState::kActive:
    case FlowState::kNoBuffer:
    case FlowState::kUnexpectedSeq:
      break;
  }
  return Reason::kPassive;
}

// How far the guest may have received once [seq, end) reached it: nothing of a segment that
// starts at or beyond its right edge, which its stack drops as unacceptable (RFC 9293
// §3.10.7.4; Linux drops it in tcp_data_queue), all of one that starts inside (Linux may keep
// the part beyond the edge). Counting a dropped segment in rcv_high would keep UNEXPECTED_SEQ
// waiting for an ACK the guest never sends: one segment far ahead, spoofed on a known
// 4-tuple, would end acceleration of the flow for good.
SeqNum ReceivableEnd(const Flow& flow, SeqNum seq, SeqNum end) {
  return Before(seq, flow.guest_right_edge) ? end : flow.rcv_high;
}

void NoteGuestSegment(Flow& flow, const Segment& seg, const TcpOptions& opts) {
  const SeqNum next = SeqNum(seg.tcp.seq()) + seg.SequenceSpace();
  // A SYN starts the guest's sequence space; after it, the furthest point wins (a
  // retransmission carries an older sequence number).
  flow.guest_snd_nxt =
      seg.tcp.Has(wire::tcp_flag::kSyn) ? next : Latest(flow.guest_snd_nxt, next);
  flow.guest_ttl = seg.ttl;
  flow.guest_tos = seg.tos;
  flow.guest_flow_label = seg.flow_label;
  // Early ACKs carry the guest's newest TSval, so the sender's PAWS check (RFC 7323 §5.3)
  // sees the guest's clock move forward only.
  if (opts.has_timestamps && (seg.tcp.Has(wire::tcp_flag::kSyn) ||
                              !TimestampBefore(opts.ts_value, flow.guest_ts_value))) {
    flow.guest_ts_value = opts.ts_value;
  }
}

// RFC 9293 §3.10.7.4 (fifth check) and RFC 5961 §5.2: the guest discards a segment whose
// ACK field acknowledges data it never sent, or lies more than a maximum window behind its
// SND.UNA. vSnoop's bound is at least as strict as the guest's: remote_ack is the newest
// ACK among segments that reached the guest's stack (its SND.UNA is no newer), and
// remote_max_window is the window of the sender's SYN (its MAX.SND.WND is no smaller).
bool AckAcceptable(const Flow& flow, SeqNum ack) {
  return !After(ack, flow.guest_snd_nxt) && !Before(ack, flow.remote_ack - flow.remote_max_window);
}

// Learns from a segment that reached the guest's stack (fits, checksums valid).
void NoteSenderSegment(Flow& flow, const Segment& seg, const TcpOptions& opts) {
  const wire::TcpView& tcp = seg.tcp;
  if (tcp.Has(flag::kAck) && AckAcceptable(flow, SeqNum(tcp.ack()))) {
    flow.remote_ack = Latest(flow.remote_ack, SeqNum(tcp.ack()));
  }
  if (opts.has_timestamps && TimestampBefore(flow.ts_newest, opts.ts_value)) {
    flow.ts_newest = opts.ts_value;
  }
}

Judgement Judge(const Flow& flow, const Segment& seg, const detail::Arrival& arrival, SeqNum seq,
                SeqNum end) {
  const wire::TcpView& tcp = seg.tcp;
  const TcpOptions& opts = arrival.opts;
  if (!arrival.checksums_ok) {
    return {Acceptance::kRejected,
            seg.IpChecksumValid() ? Reason::kBadTcpChecksum : Reason::kBadIpChecksum};
  }
  if (!tcp.Has(flag::kAck)) return {Acceptance::kRejected, Reason::kNoAckFlag};
  if (!AckAcceptable(flow, SeqNum(tcp.ack()))) {
    return {Acceptance::kRejected, Reason::kAckUnacceptable};
  }
  if (opts.malformed) return {Acceptance::kUncertain, Reason::kMalformedOptions};
  if (opts.has_unknown || opts.has_signature || opts.has_multipath || opts.has_fast_open ||
      opts.mss || opts.window_scale || opts.sack_permitted) {
    return {Acceptance::kUncertain, Reason::kUnknownOption};
  }
  if (tcp.Has(flag::kUrg)) return {Acceptance::kUncertain, Reason::kUrgent};
  if (flow.timestamps) {
    // RFC 7323 §3.2 lets a receiver drop a segment without TSopt; §5.3 (PAWS) drops one
    // whose TSval is older than TS.Recent.
    if (!opts.has_timestamps) return {Acceptance::kUncertain, Reason::kMissingTimestamp};
    // The guest's TS.Recent comes from segments vSnoop may not count as in order (a
    // retransmission, a pure ACK: RFC 7323 §4.3), so compare with the newest TSval of any
    // segment that reached the guest's stack: at least as new as the guest's.
    if (TimestampBefore(opts.ts_value, flow.ts_newest)) {
      return {Acceptance::kUncertain, Reason::kPawsReject};
    }
  }
  // RFC 3168 §6.1.3: the guest must see CE and echo ECE itself.
  if (seg.ecn == wire::Ecn::kCe) return {Acceptance::kUncertain, Reason::kCeMarked};
  // A segment that starts at or beyond the right edge the sender was shown is a window
  // probe (RFC 9293 §3.8.6.1): the guest answers it, whatever room it really has.
  if (!After(flow.guest_right_edge, seq) || !After(flow.shown_edge, seq)) {
    return {Acceptance::kUncertain, Reason::kZeroWindow};
  }
  if (After(end, flow.guest_right_edge)) return {Acceptance::kUncertain, Reason::kBeyondWindow};
  return {Acceptance::kAccepted, Reason::kEarlyAck};
}

}  // namespace

Verdict Engine::OnFrameToGuest(wire::Bytes frame, const Offload& offload,
                               const GuestContext& guest, Timestamp now) {
  ++counters_.frames_to_guest;
  Reason why{};
  const std::optional<Segment> seg = ParseSegment(frame, &why);
  if (!seg) return Pass(why);
  const FlowKey key = KeyOf(*seg, /*from_guest=*/false);
  Flow* flow = table_.Find(key);
  const wire::TcpView& tcp = seg->tcp;
  if (tcp.Has(flag::kSyn)) return OnSyn(flow, key, *seg, /*from_guest=*/false, guest, now);
  if (flow == nullptr) return StartMidStream(key, *seg, guest, now);
  if (flow->guest != guest.id) return Pass(Reason::kGuestMismatch);
  table_.Touch(flow, now);
  ++flow->stats.segments_to_guest;
  flow->stats.payload_bytes_to_guest += seg->payload_size;
  if (!IsAccelerated(flow->state)) return Pass(PassReasonFor(*flow));

  // What of this frame reaches the guest's TCP stack: only a frame that fits the buffer,
  // and only with valid checksums does the stack look at it at all.
  detail::Arrival arrival;
  arrival.fits = seg->frame.size() <= guest.room.bytes && guest.room.frames > 0;
  arrival.checksums_ok = seg->IpChecksumValid() && (offload.checksum != ChecksumStatus::kUnverified ||
                                                    seg->TcpChecksumValid());
  arrival.opts = TcpOptions::Read(tcp.options());

  const SeqNum seq(tcp.seq());
  // RFC 5961 §3.2: an RST or FIN outside the guest's window is ignored by the guest, so a
  // blind one must not end vSnoop's help either.
  const bool plausible = arrival.reaches_stack() &&
                         !Before(seq + seg->payload_size, flow->rcv_nxt) &&
                         !After(seq, flow->guest_right_edge);
  if (tcp.Has(flag::kRst)) {
    if (plausible) Transition(*flow, FlowState::kClosed);
    return Pass(Reason::kReset);
  }
  if (tcp.Has(flag::kFin)) {
    // The sender has no more data: nothing is left to acknowledge early. (The guest's own
    // FIN only closes the guest's sending half, RFC 9293 §3.6, and changes nothing here.)
    if (plausible) {
      flow->rcv_high = Latest(flow->rcv_high, seq + seg->SequenceSpace());  // the guest will ACK it
      Transition(*flow, FlowState::kClosing);
    }
    return Pass(Reason::kClosing);
  }
  // RFC 3168 §6.1.3: after a CE mark the receiver sets ECE on its ACKs until a segment with
  // CWR arrives, and the ACK of that segment no longer carries it. Early ACKs do the same
  // (the CE-marked segment itself is left to the guest: it is never acknowledged early).
  if (arrival.reaches_stack() && flow->ecn) {
    if (seg->ecn == wire::Ecn::kCe) flow->ece_echo = true;
    if (tcp.Has(flag::kCwr)) flow->ece_echo = false;
  }
  Verdict verdict = OnDataToGuest(*flow, *seg, offload, arrival, guest);
  if (arrival.reaches_stack()) NoteSenderSegment(*flow, *seg, arrival.opts);
  return verdict;
}

Verdict Engine::OnDataToGuest(Flow& flow, const Segment& seg, const Offload& /*offload*/,
                              const detail::Arrival& arrival, const GuestContext& guest) {
  const SeqNum seq(seg.tcp.seq());
  if (seg.payload_size == 0) {
    // A segment without data below rcv_nxt is a window probe or a keepalive (the sender
    // repeats its last acknowledged byte's sequence number, RFC 9293 §3.8.6.1 and
    // §3.8.4): the guest will answer, and its answer must reach the sender.
    if (arrival.reaches_stack() && Before(seq, flow.rcv_nxt)) flow.answer_due = true;
    return Pass(Reason::kNoPayload);
  }
  const SeqNum end = seq + seg.payload_size;
  if (!arrival.fits) {
    // The datapath will drop this frame: nothing about it may be acknowledged.
    ++flow.stats.no_room;
    if (flow.state == FlowState::kActive) Transition(flow, FlowState::kNoBuffer);
    return Pass(Reason::kNoRoom);
  }
  // From here on the frame is placed in the guest's buffer.
  const TcpOptions& opts = arrival.opts;
  const Judgement judged = Judge(flow, seg, arrival, seq, end);
  if (judged.acceptance == Acceptance::kRejected) return Pass(judged.reason);

  if (flow.state == FlowState::kUnexpectedSeq) {
    // The brief's exit rule: the guest's cumulative ACK has caught up with everything
    // placed so far (no hole remains that it is still recovering), and this segment is the
    // next in order and one the guest will accept.
    const bool caught_up = flow.guest_ack == flow.rcv_high;
    if (!caught_up || seq != flow.rcv_high || judged.acceptance != Acceptance::kAccepted) {
      const Reason reason = !caught_up                 ? Reason::kUnexpectedSeq
                            : seq == flow.rcv_high     ? judged.reason
                            : After(seq, flow.rcv_high) ? Reason::kOutOfOrder
                                                        : Reason::kRetransmission;
      flow.rcv_high = Latest(flow.rcv_high, ReceivableEnd(flow, seq, end));
      return Pass(reason);
    }
    flow.rcv_nxt = flow.rcv_high;
    Transition(flow, FlowState::kActive);
  }
  if (seq != flow.rcv_nxt || judged.acceptance == Acceptance::kUncertain) {
    // A hole, a retransmission, or in-order data the guest may refuse or must answer
    // itself: responsibility goes back to the guest until its ACK catches up.
    const Reason reason = seq == flow.rcv_nxt ? judged.reason
                          : After(seq, flow.rcv_nxt) ? Reason::kOutOfOrder
                                                     : Reason::kRetransmission;
    flow.rcv_high = Latest(flow.rcv_high, ReceivableEnd(flow, seq, end));
    Transition(flow, FlowState::kUnexpectedSeq);
    return Pass(reason);
  }

  // In order, in the buffer, and the guest will accept it.
  flow.max_payload = std::max(flow.max_payload, seg.payload_size);
  flow.rcv_nxt = end;
  flow.rcv_high = end;
  if (flow.timestamps) flow.ts_recent = opts.ts_value;
  if (flow.state == FlowState::kNoBuffer) Transition(flow, FlowState::kActive);
  if (guest.acceleration == Acceleration::kOff) return Pass(Reason::kAccelerationOff);

  Verdict verdict = MakeVerdict(Action::kForwardAndAck, Reason::kEarlyAck);
  // Bytes the sender learns of from this ACK before the guest said so itself.
  const SeqNum before =
      flow.vsnoop_acked ? Latest(flow.vsnoop_ack, flow.guest_ack) : flow.guest_ack;
  // The room the buffer has left once this frame is in it.
  const BufferRoom left{.bytes = guest.room.bytes - seg.frame.size(),
                        .frames = guest.room.frames - 1};
  if (!BuildAck(flow, seg, /*seen_from_guest=*/false, end, opts.ts_value, left, &verdict.ack)) {
    return Pass(Reason::kWindowWouldShrink);
  }
  ++counters_.by_reason[static_cast<std::size_t>(Reason::kEarlyAck)];
  ++counters_.early_acks;
  ++flow.stats.early_acks;
  const std::uint32_t newly = BytesBetween(before, end);
  counters_.early_acked_bytes += newly;
  flow.stats.early_acked_bytes += newly;
  return verdict;
}

Verdict Engine::OnFrameFromGuest(wire::Bytes frame, const Offload& /*offload*/,
                                 const GuestContext& guest, Timestamp now) {
  ++counters_.frames_from_guest;
  Reason why{};
  const std::optional<Segment> seg = ParseSegment(frame, &why);
  if (!seg) return Pass(why);
  const FlowKey key = KeyOf(*seg, /*from_guest=*/true);
  Flow* flow = table_.Find(key);
  const wire::TcpView& tcp = seg->tcp;
  if (tcp.Has(flag::kSyn)) return OnSyn(flow, key, *seg, /*from_guest=*/true, guest, now);
  if (flow == nullptr) return StartMidStream(key, *seg, guest, now);
  if (flow->guest != guest.id) return Pass(Reason::kGuestMismatch);
  table_.Touch(flow, now);
  ++flow->stats.segments_from_guest;
  const TcpOptions opts = TcpOptions::Read(tcp.options());
  NoteGuestSegment(*flow, *seg, opts);
  // After the sender's FIN (CLOSING) the guest's redundant ACKs can still be suppressed.
  if (!IsAccelerated(flow->state) && flow->state != FlowState::kClosing) {
    return Pass(PassReasonFor(*flow));
  }
  if (tcp.Has(flag::kRst)) {
    Transition(*flow, FlowState::kClosed);
    return Pass(Reason::kReset);
  }
  return OnAckFromGuest(*flow, *seg, opts, guest);
}

Verdict Engine::OnAckFromGuest(Flow& flow, const Segment& seg, const TcpOptions& opts,
                               const GuestContext& guest) {
  const wire::TcpView& tcp = seg.tcp;
  if (!tcp.Has(flag::kAck)) return Pass(Reason::kGuestData);
  const SeqNum ack(tcp.ack());
  const SeqNum edge = ack + (static_cast<std::uint32_t>(tcp.window()) << flow.guest_window_scale);
  auto forward = [&](Reason reason) {
    Verdict verdict = Pass(reason);
    // The sender takes the window of an ACK no older than its SND.UNA; it ignores the
    // window of an older one (RFC 9293 §3.10.7.4), such as a D-SACK behind vSnoop's ACK,
    // and drops one that acknowledges data it has not sent: beyond the edge it was ever
    // shown (plus a probe's byte), it surely has not (a forged ACK, say).
    const bool sender_takes_window = (!flow.vsnoop_acked || !Before(ack, flow.vsnoop_ack)) &&
                                     !After(ack, flow.advertised_edge + 1);
    if (sender_takes_window) {
      SeqNum shown = edge;
      verdict.window_field = LimitedWindowField(flow, tcp, guest);
      if (verdict.window_field) {
        shown = ack + (static_cast<std::uint32_t>(*verdict.window_field) << flow.guest_window_scale);
        ++counters_.guest_windows_limited;
      }
      flow.advertised_edge = Latest(flow.advertised_edge, shown);
      flow.shown_edge = shown;
    }
    return verdict;
  };
  if (After(ack, flow.rcv_high)) return forward(Reason::kGuestAckBeyondData);
  flow.guest_ack = Latest(flow.guest_ack, ack);
  flow.guest_right_edge = edge;

  // The brief, section 5: suppress only a pure ACK that tells the sender nothing new.
  if (seg.payload_size > 0 || tcp.Has(flag::kUrg) || tcp.Has(flag::kFin)) {
    return forward(Reason::kGuestData);
  }
  if (opts.sack_block_count > 0) return forward(Reason::kGuestSack);
  if (!opts.only_timestamps()) return forward(Reason::kGuestOptions);
  if (tcp.Has(flag::kEce) || tcp.Has(flag::kCwr)) return forward(Reason::kGuestEcn);
  // In UNEXPECTED_SEQ the guest drives recovery: its duplicate ACKs must reach the sender.
  if (flow.state == FlowState::kUnexpectedSeq) return forward(Reason::kUnexpectedSeq);
  if (!flow.vsnoop_acked) return forward(Reason::kNothingAcked);
  if (guest.acceleration == Acceleration::kOff) return forward(Reason::kAccelerationOff);
  if (After(ack, flow.vsnoop_ack)) return forward(Reason::kGuestAckAdvances);
  // The guest's answer to a window probe or keepalive must reach the sender even when it
  // repeats what the sender was told: the sender may have missed that (a lost update).
  const bool answer_due = std::exchange(flow.answer_due, false);
  if (!After(edge, flow.advertised_edge) && !answer_due) return Suppress(flow);
  if (flow.state == FlowState::kClosing) return forward(Reason::kClosing);
  if (ack == flow.vsnoop_ack && WindowTarget(flow, ack, guest.room) == edge) {
    return forward(Reason::kGuestWindowExtends);  // the guest's own ACK says it all
  }
  if (answer_due && !After(edge, flow.advertised_edge)) {
    // Answer the probe at vSnoop's ACK number (the guest's own is older, and the sender
    // would discard it), with the window already shown.
    Verdict verdict = MakeVerdict(Action::kSuppressAndAck, Reason::kWindowUpdate);
    if (!BuildAck(flow, seg, /*seen_from_guest=*/true, flow.vsnoop_ack, flow.ts_recent,
                  guest.room, &verdict.ack)) {
      return forward(Reason::kGuestWindowExtends);
    }
    ++counters_.by_reason[static_cast<std::size_t>(Reason::kWindowUpdate)];
    ++counters_.window_updates;
    ++flow.stats.window_updates;
    return verdict;
  }

  // The guest opened its window. If its ACK number is behind the one vSnoop already sent,
  // the sender would discard it as an old ACK (RFC 9293 §3.10.7.4: SND.UNA > SEG.ACK) and
  // miss the window update; and with a buffer-aware window, the guest's own edge may invite
  // more than the buffer can hold while the guest is off its core. Either way vSnoop says
  // it at its own ACK number, with the window it may show.
  Verdict verdict = MakeVerdict(Action::kSuppressAndAck, Reason::kWindowUpdate);
  const SeqNum shown = flow.advertised_edge;
  if (!BuildAck(flow, seg, /*seen_from_guest=*/true, flow.vsnoop_ack, flow.ts_recent,
                guest.room, &verdict.ack)) {
    return forward(Reason::kGuestWindowExtends);
  }
  // Rounding to the window scale, or the buffer's room, left nothing new to say.
  if (flow.advertised_edge == shown) return Suppress(flow);
  ++counters_.by_reason[static_cast<std::size_t>(Reason::kWindowUpdate)];
  ++counters_.window_updates;
  ++flow.stats.window_updates;
  return verdict;
}

std::optional<std::uint16_t> Engine::LimitedWindowField(const Flow& flow, const wire::TcpView& tcp,
                                                       const GuestContext& guest) const {
  // A guest segment vSnoop forwards (data, SACK, FIN, an ACK ahead of vSnoop's) carries the
  // guest's own window, which the sender takes. While vSnoop acknowledges for the guest,
  // that window is held to what the early ACKs may show (WindowTarget: what the buffer can
  // hold beyond the ACK), but never left of an edge the sender was already shown, so it
  // never shrinks (RFC 9293 §3.8.6.2.1); rounding up to the scale keeps it there. Only on
  // flows with SACK: the window then follows the buffer from one duplicate ACK to the next,
  // and a sender without SACK would not count an ACK whose window changed as a duplicate
  // (RFC 5681 §2), nor retransmit fast.
  if (!config_.buffer_aware_window || guest.acceleration == Acceleration::kOff ||
      !flow.vsnoop_acked || !flow.sack || !IsAccelerated(flow.state)) {
    return std::nullopt;
  }
  const SeqNum ack(tcp.ack());
  const std::uint8_t scale = flow.guest_window_scale;
  const SeqNum edge = ack + (static_cast<std::uint32_t>(tcp.window()) << scale);
  const SeqNum floor = Latest(WindowTarget(flow, ack, guest.room), flow.advertised_edge);
  if (!Before(floor, edge)) return std::nullopt;
  const std::uint32_t bytes = After(floor, ack) ? BytesBetween(ack, floor) : 0;
  const std::uint32_t unit = std::uint32_t{1} << scale;
  const std::uint32_t field = std::min<std::uint32_t>((bytes + unit - 1) >> scale, tcp.window());
  if (field == tcp.window()) return std::nullopt;
  return static_cast<std::uint16_t>(field);
}

Verdict Engine::Suppress(Flow& flow) {
  ++counters_.by_reason[static_cast<std::size_t>(Reason::kSuppressed)];
  ++counters_.guest_acks_suppressed;
  ++flow.stats.guest_acks_suppressed;
  return MakeVerdict(Action::kSuppress, Reason::kSuppressed);
}

SeqNum Engine::WindowTarget(const Flow& flow, SeqNum ack, const BufferRoom& room) const {
  SeqNum target = flow.guest_right_edge;
  if (config_.buffer_aware_window) {
    const SeqNum by_buffer = ack + PayloadRoom(flow, room);
    if (Before(by_buffer, target)) {
      target = Latest(by_buffer, Earliest(flow.advertised_edge, flow.guest_right_edge));
    }
  }
  return target;
}

std::uint32_t Engine::PayloadRoom(const Flow& flow, const BufferRoom& room) const {
  // Each frame costs its headers too: count 80 bytes (Ethernet, VLAN, IP, TCP with
  // timestamps) for each MSS-sized segment, and no more payload per frame than the largest
  // segment this flow has brought (a GSO super-frame carries many MSS).
  const std::uint64_t mss = flow.guest_mss != 0 ? flow.guest_mss : 1460;
  const std::uint64_t per_frame = std::max<std::uint64_t>(mss, flow.max_payload);
  const std::uint64_t by_bytes = room.bytes * mss / (mss + 80);
  const std::uint64_t by_frames = room.frames * per_frame;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>({by_bytes, by_frames, 1u << 30}));
}

Verdict Engine::OnSyn(Flow* flow, const FlowKey& key, const Segment& seg, bool from_guest,
                      const GuestContext& guest, Timestamp now) {
  const wire::TcpView& tcp = seg.tcp;
  const TcpOptions opts = TcpOptions::Read(tcp.options());
  if (opts.window_scale && *opts.window_scale > wire::kMaxWindowScale) {
    ++counters_.window_scale_clamped;
  }
  if (flow != nullptr && flow->guest != guest.id) return Pass(Reason::kGuestMismatch);

  if (!tcp.Has(flag::kAck)) {
    // A SYN opens a connection; remember what its sender offered.
    if (flow == nullptr) {
      flow = NewFlow(key, guest, now);
      if (flow == nullptr) return Pass(Reason::kFlowTableFull);
    } else if (IsAccelerated(flow->state)) {
      // A retransmitted or spoofed SYN on a live connection: the guest answers it (with a
      // challenge ACK, RFC 5961 §4); vSnoop keeps its state.
      ++counters_.syn_on_accelerated_flow;
      table_.Touch(flow, now);
      return Pass(Reason::kHandshake);
    }
    table_.Touch(flow, now);
    Transition(*flow, FlowState::kHandshake);
    table_.Reinitialize(flow);  // a new connection: nothing of an earlier one carries over
    flow->guest_initiated = from_guest;
    flow->syn = ReadSyn(seg, opts);
    if (from_guest) NoteGuestSegment(*flow, seg, opts);
    return Pass(Reason::kHandshake);
  }

  // A SYN-ACK answers the other side's SYN.
  if (flow == nullptr) {
    // A SYN-ACK from the remote tells nothing of the guest's window scale: without its
    // SYN, the flow cannot be acknowledged for.
    if (!from_guest) return Pass(Reason::kHandshakeMismatch);
    // The guest answers a SYN vSnoop did not see: a bridge floods a frame to a MAC it has
    // not learnt (a guest silent since vsnoopd started, or longer than the MAC table's
    // aging), and flooded frames skip the engine. The SYN-ACK shows what the flow needs.
    flow = NewFlow(key, guest, now);
    if (flow == nullptr) return Pass(Reason::kFlowTableFull);
    ++counters_.flows_from_syn_ack;
    Transition(*flow, FlowState::kHandshake);
    table_.Reinitialize(flow);
    flow->guest_initiated = false;
    flow->syn = SynImpliedBySynAck(seg, opts);
  }
  table_.Touch(flow, now);
  const bool answers_syn = flow->guest_initiated != from_guest;
  const SeqNum ack(tcp.ack());
  if (IsAccelerated(flow->state) && answers_syn && ack == flow->syn.isn + 1 + flow->syn.payload) {
    // A retransmitted SYN-ACK. The guest's TSval in it is its newest: the sender takes
    // TS.Recent from it (RFC 7323 §4.3), and early ACKs must not go behind it (§5.3).
    if (from_guest && opts.has_timestamps &&
        !TimestampBefore(opts.ts_value, flow->guest_ts_value)) {
      flow->guest_ts_value = opts.ts_value;
    }
    return Pass(Reason::kHandshake);
  }
  if (flow->state != FlowState::kHandshake || !answers_syn) {
    flow->passive_reason = Reason::kHandshakeMismatch;
    Transition(*flow, FlowState::kPassive);
    return Pass(Reason::kHandshakeMismatch);
  }
  if (from_guest) NoteGuestSegment(*flow, seg, opts);
  return Establish(*flow, seg, from_guest);
}

Verdict Engine::Establish(Flow& flow, const Segment& syn_ack, bool syn_ack_from_guest) {
  const TcpOptions opts = TcpOptions::Read(syn_ack.tcp.options());
  const SynOptions& first = flow.syn;
  const SynOptions second = ReadSyn(syn_ack, opts);
  const SeqNum ack(syn_ack.tcp.ack());
  // The SYN-ACK acknowledges the SYN, and possibly the Fast Open data it carried.
  if (Before(ack, first.isn + 1) || After(ack, first.isn + 1 + first.payload)) {
    flow.passive_reason = Reason::kHandshakeMismatch;
    Transition(flow, FlowState::kPassive);
    return Pass(Reason::kHandshakeMismatch);
  }
  if (first.unsupported || second.unsupported) {
    flow.passive_reason = Reason::kUnsupportedOptions;
    Transition(flow, FlowState::kPassive);
    return Pass(Reason::kUnsupportedOptions);
  }
  const SynOptions& by_guest = syn_ack_from_guest ? second : first;
  const SynOptions& by_remote = syn_ack_from_guest ? first : second;
  // RFC 7323 §2.2: scaling is in effect only when both SYNs carry the option; §2.3: shifts
  // above 14 are read as 14.
  if (by_guest.window_scale >= 0 && by_remote.window_scale >= 0) {
    flow.guest_window_scale = static_cast<std::uint8_t>(
        std::min<int>(by_guest.window_scale, wire::kMaxWindowScale));
    flow.remote_window_scale = static_cast<std::uint8_t>(
        std::min<int>(by_remote.window_scale, wire::kMaxWindowScale));
  } else {
    flow.guest_window_scale = 0;
    flow.remote_window_scale = 0;
  }
  flow.timestamps = by_guest.timestamps && by_remote.timestamps;  // RFC 7323 §3.2
  flow.sack = by_guest.sack_permitted && by_remote.sack_permitted;  // RFC 2018 §2
  flow.ecn = first.ecn_setup && second.ecn_setup;                   // RFC 3168 §6.1.1
  flow.guest_mss = by_guest.mss;

  // SYN windows are never scaled (RFC 7323 §2.2). The window in the guest's SYN or SYN-ACK
  // covers the sequence space from the remote's ISN + 1.
  const SeqNum remote_data_start = syn_ack_from_guest ? ack : second.isn + 1;
  flow.rcv_nxt = remote_data_start;
  flow.rcv_high = remote_data_start;
  flow.guest_ack = remote_data_start;
  flow.guest_right_edge = remote_data_start + by_guest.window;
  flow.advertised_edge = flow.guest_right_edge;
  flow.shown_edge = flow.guest_right_edge;
  flow.guest_snd_nxt = by_guest.isn + 1 + by_guest.payload;
  flow.guest_ts_value = by_guest.ts_value;
  flow.ts_recent = by_remote.ts_value;
  flow.ts_newest = by_remote.ts_value;
  flow.remote_ack = syn_ack_from_guest ? second.isn : ack;
  flow.remote_max_window = by_remote.window;
  flow.vsnoop_acked = false;
  Transition(flow, FlowState::kActive);
  ++counters_.flows_established;
  return Pass(Reason::kHandshake);
}

Verdict Engine::StartMidStream(const FlowKey& key, const Segment& seg, const GuestContext& guest,
                               Timestamp now) {
  if (seg.tcp.Has(flag::kRst)) return Pass(Reason::kMidStream);
  Flow* flow = NewFlow(key, guest, now);
  if (flow == nullptr) return Pass(Reason::kFlowTableFull);
  ++counters_.flows_mid_stream;
  Transition(*flow, FlowState::kMidStream);
  return Pass(Reason::kMidStream);
}

bool Engine::BuildAck(Flow& flow, const Segment& seen, bool seen_from_guest, SeqNum ack,
                      std::uint32_t ts_echo, const BufferRoom& room, AckFrame* out) {
  // Window (the brief, section 4): never beyond the guest's right edge, so the field is
  // rounded down to the scale. Rounding may show an edge up to 2^scale - 1 bytes left of
  // one shown before (RFC 7323 §2.4 and Appendix F accept this); any larger retreat would
  // shrink the window (RFC 9293 §3.8.6.2.1), and vSnoop then stays silent.
  //
  // With a buffer-aware window [ours], the edge also grows no further than the buffer can
  // take beyond this ACK, so a sender never overruns the buffer while the guest is off its
  // core (a frame that does not fit is dropped, and a tail drop the guest never sees costs
  // the sender a retransmission timeout). It never moves left of an edge already shown.
  const SeqNum target = WindowTarget(flow, ack, room);
  const std::uint8_t scale = flow.guest_window_scale;
  const std::uint32_t field = std::min<std::uint32_t>(BytesBetween(ack, target) >> scale, 0xFFFF);
  const SeqNum edge = ack + (field << scale);
  if (Before(edge, flow.advertised_edge) &&
      BytesBetween(edge, flow.advertised_edge) >= (std::uint32_t{1} << scale)) {
    return false;
  }

  std::uint8_t* p = out->bytes.data();
  const wire::Bytes l2 = seen.l2_header;
  // Ethernet: the seen frame's header (VLAN tags kept), addressed from the guest's MAC to
  // the sender's.
  std::memcpy(p, l2.data(), l2.size());
  if (!seen_from_guest) {
    std::memcpy(p, l2.data() + 6, 6);
    std::memcpy(p + 6, l2.data(), 6);
  }
  const std::uint8_t* guest_ip = seen_from_guest ? seen.source_ip : seen.destination_ip;
  const std::uint8_t* remote_ip = seen_from_guest ? seen.destination_ip : seen.source_ip;
  const std::uint16_t guest_port =
      seen_from_guest ? seen.tcp.source_port() : seen.tcp.destination_port();
  const std::uint16_t remote_port =
      seen_from_guest ? seen.tcp.destination_port() : seen.tcp.source_port();
  const std::size_t tcp_size = flow.timestamps ? 32 : 20;
  std::size_t offset = l2.size();
  std::uint8_t* ip = p + offset;
  // DSCP as the guest sets it; ECN bits Not-ECT, as for any pure ACK (RFC 3168 §6.1.4).
  const auto dscp = static_cast<std::uint8_t>(flow.guest_tos & 0xFC);
  if (seen.family == 4) {
    ip[0] = 0x45;
    ip[1] = dscp;
    wire::StoreBe16(ip + 2, static_cast<std::uint16_t>(20 + tcp_size));
    wire::StoreBe16(ip + 4, 0);       // identification: unused with DF (RFC 6864 §4.1)
    wire::StoreBe16(ip + 6, 0x4000);  // DF
    ip[8] = flow.guest_ttl;
    ip[9] = wire::kIpProtoTcp;
    wire::StoreBe16(ip + 10, 0);
    std::memcpy(ip + 12, guest_ip, 4);
    std::memcpy(ip + 16, remote_ip, 4);
    wire::StoreBe16(ip + 10, wire::ChecksumFromSum(wire::SumWords32<20>(ip)));
    offset += 20;
  } else {
    wire::StoreBe32(ip, (6u << 28) | (static_cast<std::uint32_t>(dscp) << 20) |
                            (flow.guest_flow_label & 0xFFFFF));
    wire::StoreBe16(ip + 4, static_cast<std::uint16_t>(tcp_size));
    ip[6] = wire::kIpProtoTcp;
    ip[7] = flow.guest_ttl;
    std::memcpy(ip + 8, guest_ip, 16);
    std::memcpy(ip + 24, remote_ip, 16);
    offset += 40;
  }
  std::uint8_t* t = p + offset;
  wire::StoreBe16(t, guest_port);
  wire::StoreBe16(t + 2, remote_port);
  wire::StoreBe32(t + 4, flow.guest_snd_nxt.value());
  wire::StoreBe32(t + 8, ack.value());
  t[12] = static_cast<std::uint8_t>((tcp_size / 4) << 4);
  t[13] = flow.ece_echo ? wire::tcp_flag::kAck | wire::tcp_flag::kEce : wire::tcp_flag::kAck;
  wire::StoreBe16(t + 14, static_cast<std::uint16_t>(field));
  wire::StoreBe16(t + 16, 0);
  wire::StoreBe16(t + 18, 0);
  if (flow.timestamps) {
    // RFC 7323 §3.2 and Appendix A layout: NOP, NOP, kind 8, length 10, TSval, TSecr.
    t[20] = wire::tcp_option::kNop;
    t[21] = wire::tcp_option::kNop;
    t[22] = wire::tcp_option::kTimestamps;
    t[23] = 10;
    wire::StoreBe32(t + 24, flow.guest_ts_value);
    wire::StoreBe32(t + 28, ts_echo);
  }
  // The TCP checksum over the pseudo header (RFC 9293 §3.1, RFC 8200 §8.1) and the
  // header: all 32-bit words, summed in machine order (RFC 1071 §2(B)).
  std::uint8_t tail[8] = {};  // IPv4: zero, protocol, length; IPv6: length, zeros, next header
  if (seen.family == 4) {
    tail[1] = wire::kIpProtoTcp;
    wire::StoreBe16(tail + 2, static_cast<std::uint16_t>(tcp_size));
  } else {
    wire::StoreBe32(tail, static_cast<std::uint32_t>(tcp_size));
    tail[7] = wire::kIpProtoTcp;
  }
  std::uint64_t sum = seen.family == 4
                         ? wire::SumWords32<4>(guest_ip) + wire::SumWords32<4>(remote_ip) +
                               wire::SumWords32<4>(tail)
                         : wire::SumWords32<16>(guest_ip) + wire::SumWords32<16>(remote_ip) +
                               wire::SumWords32<8>(tail);
  sum += flow.timestamps ? wire::SumWords32<32>(t) : wire::SumWords32<20>(t);
  wire::StoreBe16(t + 16, wire::ChecksumFromSum(sum));
  out->size = static_cast<std::uint8_t>(offset + tcp_size);

  flow.advertised_edge = Latest(flow.advertised_edge, edge);
  flow.shown_edge = edge;
  flow.vsnoop_ack = flow.vsnoop_acked ? Latest(flow.vsnoop_ack, ack) : ack;
  flow.vsnoop_acked = true;
  return true;
}

std::size_t Engine::ExpireIdle(Timestamp now) {
  const std::size_t n = table_.ExpireIdle(now, config_.accelerated_idle_timeout,
                                          config_.transient_idle_timeout);
  counters_.flows_expired += n;
  return n;
}

std::size_t Engine::ForgetGuest(GuestId guest) {
  const std::size_t n = table_.EraseIf([guest](const Flow& f) { return f.guest == guest; });
  counters_.flows_forgotten += n;
  return n;
}

std::array<std::size_t, kFlowStateCount> Engine::FlowsPerState() const {
  std::array<std::size_t, kFlowStateCount> n{};
  table_.ForEach([&n](const Flow& f) { ++n[static_cast<std::size_t>(f.state)]; });
  return n;
}

}  // namespace vsnoop
