// The sender and guest TCP models of the property tests (see tcp_models.h for what they
// model and what they leave out).
#include "tcp_models.h"

#include <algorithm>
#include <cstring>

namespace vsnoop::proptest {
namespace {

namespace flag = tcp_flags;

// RFC 7323 §5.2: timestamps compare modulo 2^32.
bool TsBefore(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) < 0;
}
bool SeqAfter(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) > 0;
}

// The guest's own data uses another pattern, so a mix-up of directions shows.
constexpr std::uint8_t kGuestSaltFlip = 0x5A;
constexpr std::int64_t kGuestSegmentSize = 536;

sim::FrameBuilder Base(const sim::Endpoint& from, const sim::Endpoint& to,
                       std::optional<std::uint16_t> vlan) {
  sim::FrameBuilder b;
  b.From(from).To(to);
  if (vlan) b.Vlan(*vlan);
  return b;
}

// 1 MiB of bytes from a 64-bit mix (splitmix64): a stream byte is a lookup, so building
// and checking payloads costs a copy and a compare.
constexpr std::size_t kPatternSize = std::size_t{1} << 20;
const std::vector<std::uint8_t>& PatternTable() {
  static const std::vector<std::uint8_t> table = [] {
    std::vector<std::uint8_t> t(kPatternSize);
    std::uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (std::size_t i = 0; i < kPatternSize; i += 8) {
      std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      z ^= z >> 31;
      for (std::size_t j = 0; j < 8; ++j)
        t[i + j] = static_cast<std::uint8_t>(z >> (8 * j));
    }
    return t;
  }();
  return table;
}

std::size_t PatternIndex(std::uint8_t salt, std::uint64_t offset) {
  return static_cast<std::size_t>((offset + salt * 7919u) % kPatternSize);
}

std::vector<std::uint8_t> Pattern(std::uint8_t salt, std::int64_t offset, std::int64_t length) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(length));
  const std::vector<std::uint8_t>& table = PatternTable();
  std::size_t at = PatternIndex(salt, static_cast<std::uint64_t>(offset));
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = std::min(bytes.size() - i, kPatternSize - at);
    std::memcpy(bytes.data() + i, table.data() + at, n);
    i += n;
    at = 0;
  }
  return bytes;
}

void AddOffers(sim::FrameBuilder& b, const SynOffer& offer, std::uint32_t ts_value,
               std::uint32_t ts_echo) {
  b.Mss(1460);
  if (offer.window_scale >= 0) b.WindowScale(static_cast<std::uint8_t>(offer.window_scale));
  if (offer.sack_permitted) b.SackPermitted();
  if (offer.timestamps) b.Timestamps(ts_value, ts_echo);
}

// The options a SYN-ACK carries: those the SYN offered that the responder also wants.
SynOffer Answer(const SynOffer& initiator, const SynOffer& responder) {
  SynOffer a;
  a.window_scale = initiator.window_scale >= 0 ? responder.window_scale : -1;
  a.timestamps = initiator.timestamps && responder.timestamps;
  a.sack_permitted = initiator.sack_permitted && responder.sack_permitted;
  a.ecn = initiator.ecn && responder.ecn;
  return a;
}

}  // namespace

Negotiated Negotiate(const SynOffer& sender, const SynOffer& guest) {
  Negotiated n;
  if (sender.window_scale >= 0 && guest.window_scale >= 0) {
    n.sender_scale = static_cast<std::uint8_t>(std::min(sender.window_scale, 14));
    n.guest_scale = static_cast<std::uint8_t>(std::min(guest.window_scale, 14));
  }
  n.timestamps = sender.timestamps && guest.timestamps;
  n.sack = sender.sack_permitted && guest.sack_permitted;
  n.ecn = sender.ecn && guest.ecn;
  return n;
}

std::uint8_t StreamByte(std::uint8_t salt, std::uint64_t offset) {
  return PatternTable()[PatternIndex(salt, offset)];
}

bool MatchesStream(std::uint8_t salt, std::uint64_t offset, FrameView bytes) {
  const std::vector<std::uint8_t>& table = PatternTable();
  std::size_t at = PatternIndex(salt, offset);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const std::size_t n = std::min(bytes.size() - done, kPatternSize - at);
    if (std::memcmp(bytes.data() + done, table.data() + at, n) != 0) return false;
    done += n;
    at = 0;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Sender

SenderModel::SenderModel(const ConnectionSpec& spec) : spec_(spec) {}

Frame SenderModel::Syn(Millis now) const {
  auto b = Base(spec_.sender, spec_.guest, spec_.vlan_tci);
  b.Seq(spec_.sender_isn).Flags(flag::kSyn).Window(spec_.sender_window);
  if (spec_.sender_offer.ecn) b.Flags(flag::kEce | flag::kCwr);
  AddOffers(b, spec_.sender_offer, TsVal(now), 0);
  return b.Build();
}

Frame SenderModel::SynAck(Millis now) const {
  const SynOffer answer = Answer(spec_.guest_offer, spec_.sender_offer);
  auto b = Base(spec_.sender, spec_.guest, spec_.vlan_tci);
  b.Seq(spec_.sender_isn).Ack(GuestDataBase()).Flags(flag::kSyn).Window(spec_.sender_window);
  if (answer.ecn) b.Flags(flag::kEce);
  AddOffers(b, answer, TsVal(now), ts_recent_);
  return b.Build();
}

Frame SenderModel::HandshakeAck(Millis now) const {
  auto b = Base(spec_.sender, spec_.guest, spec_.vlan_tci);
  b.Seq(DataBase()).Ack(GuestDataBase()).Window(spec_.sender_window);
  if (spec_.negotiated.timestamps) b.Timestamps(TsVal(now), ts_recent_);
  return b.Build();
}

void SenderModel::OnHandshake(FrameView frame) {
  const auto r = ReadTcpFrame(frame);
  if (!r) return;
  snd_wnd_ = r->window;  // SYN windows are never scaled (RFC 7323 §2.2)
  snd_wl1_ = r->seq;
  if (r->has_timestamps) ts_recent_ = r->ts_value;
}

Frame SenderModel::Segment(std::int64_t offset, std::uint32_t length, std::uint8_t flags, bool ect,
                           Millis now) {
  // The window the sender offers for the guest's data varies, so the guest's RFC 5961
  // bound (a maximum window) and vSnoop's estimate of it can differ.
  const std::uint16_t window =
      (window_toggle_++ % 3 == 2)
          ? static_cast<std::uint16_t>(std::max<int>(spec_.sender_window / 2, 1))
          : spec_.sender_window;
  auto b = Base(spec_.sender, spec_.guest, spec_.vlan_tci);
  b.Seq(WireOf(offset, DataBase())).Ack(WireOf(rcv_nxt_, GuestDataBase())).Window(window);
  if (flags != 0) b.Flags(flags);
  if (spec_.negotiated.timestamps) b.Timestamps(TsVal(now), ts_recent_);
  if (ect) b.Ecn(wire::Ecn::kEct0);
  if (length > 0) b.Payload(Pattern(spec_.stream_salt, offset, length));
  ++stats_.segments_sent;
  rcv_wup_ = rcv_nxt_;
  return b.Build();
}

void SenderModel::Transmit(std::int64_t offset, std::uint32_t length, Millis now,
                           std::vector<Frame>* out) {
  const bool new_data = offset >= max_;
  std::uint8_t flags = flag::kPsh;
  // RFC 3168 §6.1.2 and §6.1.5: CWR on the first new segment after the reduction; ECT on
  // new data only, never on retransmissions.
  if (new_data && cwr_pending_) {
    flags |= flag::kCwr;
    cwr_pending_ = false;
  }
  if (!new_data) ++stats_.retransmissions;
  out->push_back(Segment(offset, length, flags, new_data && spec_.negotiated.ecn, now));
  max_ = std::max(max_, offset + length);
}

void SenderModel::SendData(int max_segments, std::uint32_t size_hint, Millis now,
                           std::vector<Frame>* out) {
  const std::int64_t size =
      size_hint == 0 ? spec_.mss : std::min<std::int64_t>(size_hint, spec_.mss);
  for (int i = 0; i < max_segments; ++i) {
    const std::int64_t room = window_end() - nxt_;
    // After a timeout, old data goes again first (go-back-N), then new data.
    const std::int64_t limit = nxt_ < max_ ? max_ : static_cast<std::int64_t>(spec_.stream_length);
    const std::int64_t length = std::min({size, room, limit - nxt_});
    if (length <= 0) break;
    Transmit(nxt_, static_cast<std::uint32_t>(length), now, out);
    nxt_ += length;
  }
}

void SenderModel::OnTimeout(Millis now, std::vector<Frame>* out, bool one_byte_probe) {
  if (una_ < max_) {
    // RFC 6298 §5.4 and RFC 2018 §8: retransmit the first unacknowledged segment, whatever
    // the window, and forget what SACK said.
    ++stats_.timeouts;
    sacked_.clear();
    in_recovery_ = false;
    dupacks_ = 0;
    const std::int64_t length = std::min<std::int64_t>(spec_.mss, max_ - una_);
    Transmit(una_, static_cast<std::uint32_t>(length), now, out);
    nxt_ = una_ + length;
    retransmit_next_ = nxt_;
  } else if (HasUnsent() && window_end() <= nxt_) {
    SendProbe(one_byte_probe, now, out);
  }
}

void SenderModel::SendProbe(bool one_byte, Millis now, std::vector<Frame>* out) {
  if (one_byte) {
    // BSD persist: one byte of data past the window.
    if (nxt_ >= static_cast<std::int64_t>(spec_.stream_length)) return;
    Transmit(nxt_, 1, now, out);
    ++nxt_;
    return;
  }
  // Linux tcp_xmit_probe_skb: no data, sequence number SND.UNA - 1, so the guest answers
  // with an ACK that carries its window.
  out->push_back(Segment(una_ - 1, 0, 0, false, now));
}

bool SenderModel::AddSacked(std::int64_t left, std::int64_t right) {
  // Merge [left, right) into the scoreboard; report whether it covered anything new.
  std::int64_t covered_before = 0;
  for (const auto& [l, r] : sacked_)
    covered_before += r - l;
  auto it = sacked_.upper_bound(left);
  if (it != sacked_.begin() && std::prev(it)->second >= left) {
    --it;
    left = std::min(left, it->first);
  }
  while (it != sacked_.end() && it->first <= right) {
    right = std::max(right, it->second);
    it = sacked_.erase(it);
  }
  sacked_[left] = right;
  std::int64_t covered_after = 0;
  for (const auto& [l, r] : sacked_)
    covered_after += r - l;
  return covered_after > covered_before;
}

bool SenderModel::IsSacked(std::int64_t offset, std::int64_t* range_end) const {
  auto it = sacked_.upper_bound(offset);
  if (it == sacked_.begin()) return false;
  --it;
  if (offset < it->second) {
    *range_end = it->second;
    return true;
  }
  return false;
}

std::int64_t SenderModel::NextSackedStart(std::int64_t from) const {
  const auto it = sacked_.upper_bound(from);
  return it == sacked_.end() ? max_ : it->first;
}

void SenderModel::RetransmitNextHole(Millis now, std::vector<Frame>* out) {
  std::int64_t start = std::max(una_, retransmit_next_);
  std::int64_t end = 0;
  while (IsSacked(start, &end))
    start = end;
  if (start >= max_) return;
  const std::int64_t stop = std::min({start + spec_.mss, max_, NextSackedStart(start)});
  Transmit(start, static_cast<std::uint32_t>(stop - start), now, out);
  retransmit_next_ = stop;
}

void SenderModel::OnFrame(FrameView frame, Millis now, std::vector<Frame>* out) {
  const auto r = ReadTcpFrame(frame);
  if (!r || !r->ip_checksum_ok || !r->tcp_checksum_ok) {
    ++stats_.dropped_bad_checksum;
    return;
  }
  if (r->source_port != spec_.guest.port || r->destination_port != spec_.sender.port) return;
  if (r->Has(flag::kSyn) || r->Has(flag::kRst) || !r->Has(flag::kAck)) return;
  const Negotiated& n = spec_.negotiated;
  if (n.timestamps) {
    if (!r->has_timestamps) return;
    if (TsBefore(r->ts_value, ts_recent_)) {  // RFC 7323 §5.3 R1
      ++stats_.dropped_paws;
      return;
    }
  }
  // Linux tcp_sequence, with the window this sender offers the guest's data.
  const std::int64_t guest_seq = OffsetOf(r->seq, GuestDataBase());
  const std::int64_t own_window = static_cast<std::int64_t>(spec_.sender_window)
                                  << spec_.negotiated.sender_scale;
  if (guest_seq + static_cast<std::int64_t>(r->payload_size) < rcv_wup_ ||
      guest_seq > rcv_nxt_ + own_window) {
    ++stats_.dropped_out_of_window;
    out->push_back(Segment(std::min(max_, std::max(window_end(), una_)), 0, 0, false, now));
    return;
  }
  const std::int64_t ack = OffsetOf(r->ack, DataBase());
  if (ack > max_) {  // RFC 9293 §3.10.7.4: acknowledges something not yet sent
    ++stats_.dropped_ack_of_unsent;
    return;
  }
  bool new_sack = false;
  if (n.sack) {
    for (const SackRange& block : r->sack_blocks) {
      const std::int64_t left = OffsetOf(block.left, DataBase());
      const std::int64_t right = OffsetOf(block.right, DataBase());
      if (left < right && right <= max_ && right > una_) {
        new_sack = AddSacked(std::max(left, una_), right) || new_sack;
      }
    }
  }
  if (ack >= una_) {
    const std::int64_t window = static_cast<std::int64_t>(r->window) << n.guest_scale;
    // RFC 5681 §2: a duplicate ACK carries no data, does not move the window, and arrives
    // while data is outstanding.
    const bool duplicate = ack == una_ && r->payload_size == 0 && window == snd_wnd_ && max_ > una_;
    // Linux tcp_may_update_window.
    if (ack > una_ || SeqAfter(r->seq, snd_wl1_) ||
        (r->seq == snd_wl1_ && (window > snd_wnd_ || window == 0))) {
      snd_wnd_ = window;
      snd_wl1_ = r->seq;
    }
    if (ack > una_) {
      una_ = ack;
      dupacks_ = 0;
      while (!sacked_.empty() && sacked_.begin()->first < una_) {
        const std::int64_t right = sacked_.begin()->second;
        sacked_.erase(sacked_.begin());
        if (right > una_) sacked_[una_] = right;
      }
      nxt_ = std::max(nxt_, una_);
      retransmit_next_ = std::max(retransmit_next_, una_);
      if (in_cwr_ && una_ >= cwr_end_) in_cwr_ = false;
      if (in_recovery_) {
        if (una_ >= recovery_end_) {
          in_recovery_ = false;
        } else {
          RetransmitNextHole(now, out);  // a partial ACK (RFC 6582 §3.2 step 3)
        }
      }
    } else if (duplicate) {
      ++dupacks_;
      if (in_recovery_ || dupacks_ >= 3 || (n.sack && new_sack)) {
        if (!in_recovery_) {
          in_recovery_ = true;
          recovery_end_ = max_;
          retransmit_next_ = una_;
        }
        RetransmitNextHole(now, out);
      }
    }
    // RFC 3168 §6.1.2: react to ECE at most once per window of data.
    if (n.ecn && r->Has(flag::kEce) && !in_cwr_) {
      in_cwr_ = true;
      cwr_end_ = max_;
      cwr_pending_ = true;
    }
    // RFC 7323 §4.3: TS.Recent from segments at or before the last ACK sent.
    if (n.timestamps && !SeqAfter(r->seq, WireOf(rcv_nxt_, GuestDataBase())) &&
        !TsBefore(r->ts_value, ts_recent_)) {
      ts_recent_ = r->ts_value;
    }
  }
  if (r->payload_size > 0) {
    const std::int64_t seq = OffsetOf(r->seq, GuestDataBase());
    const std::int64_t end = seq + static_cast<std::int64_t>(r->payload_size);
    if (seq <= rcv_nxt_ && end > rcv_nxt_) {
      const FrameView fresh = r->Payload(frame).subspan(static_cast<std::size_t>(rcv_nxt_ - seq));
      if (!MatchesStream(spec_.stream_salt ^ kGuestSaltFlip, static_cast<std::uint64_t>(rcv_nxt_),
                         fresh)) {
        ++stats_.content_errors;
      }
      rcv_nxt_ = end;
    }
    // Acknowledge at once, at Linux's tcp_acceptable_seq.
    out->push_back(Segment(std::min(max_, std::max(window_end(), una_)), 0, 0, false, now));
  }
}

// ---------------------------------------------------------------------------------------
// Guest

GuestTcp::GuestTcp(const ConnectionSpec& spec) : spec_(spec), adv_edge_(spec.guest_syn_window) {}

Frame GuestTcp::Syn(Millis now) {
  auto b = Base(spec_.guest, spec_.sender, spec_.vlan_tci);
  b.Seq(spec_.guest_isn).Flags(flag::kSyn).Window(spec_.guest_syn_window);
  if (spec_.guest_offer.ecn) b.Flags(flag::kEce | flag::kCwr);
  last_tsval_ = TsVal(now);
  AddOffers(b, spec_.guest_offer, last_tsval_, 0);
  return b.Build();
}

Frame GuestTcp::SynAck(Millis now) {
  const SynOffer answer = Answer(spec_.sender_offer, spec_.guest_offer);
  auto b = Base(spec_.guest, spec_.sender, spec_.vlan_tci);
  b.Seq(spec_.guest_isn).Ack(DataBase()).Flags(flag::kSyn).Window(spec_.guest_syn_window);
  if (answer.ecn) b.Flags(flag::kEce);
  last_tsval_ = TsVal(now);
  AddOffers(b, answer, last_tsval_, ts_recent_);
  return b.Build();
}

Frame GuestTcp::HandshakeAck(Millis now) {
  return Ack(now);
}

void GuestTcp::OnHandshake(FrameView frame) {
  const auto r = ReadTcpFrame(frame);
  if (!r) return;
  if (r->has_timestamps) ts_recent_ = r->ts_value;
  sender_window_ = r->window;
  max_sender_window_ = r->window;
}

void GuestTcp::Receive(FrameView frame) {
  const auto read = ReadTcpFrame(frame);
  if (read) Receive(frame, *read);
}

void GuestTcp::Receive(FrameView frame, const ReadFrame& read) {
  const ReadFrame* r = &read;
  if (r->source_port != spec_.sender.port || r->destination_port != spec_.guest.port) return;
  if (!r->ip_checksum_ok || !r->tcp_checksum_ok) {
    ++stats_.dropped_checksum;
    return;
  }
  // Handshake frames were learnt by OnHandshake; RST and FIN are not part of the model.
  if (r->Has(flag::kSyn) || r->Has(flag::kRst) || r->Has(flag::kFin)) return;
  if (!r->Has(flag::kAck)) return;  // Linux: SKB_DROP_REASON_TCP_FLAGS
  const Negotiated& n = spec_.negotiated;
  const std::int64_t seq = OffsetOf(r->seq, DataBase());
  const std::int64_t end = seq + static_cast<std::int64_t>(r->payload_size);
  // Why a segment that carries the next in-order byte was refused (see RefusalAt).
  auto refuse_in_order = [&](Refusal why) {
    if (seq <= rcv_nxt_ && end > rcv_nxt_) last_refusal_ = {rcv_nxt_, why};
  };
  if (n.timestamps) {
    if (!r->has_timestamps) return;           // RFC 7323 §3.2: SHOULD be dropped
    if (TsBefore(r->ts_value, ts_recent_)) {  // PAWS, RFC 7323 §5.3 R1
      ++stats_.dropped_paws;
      refuse_in_order(Refusal::kPaws);
      ack_now_ = true;
      return;
    }
  }
  // Linux tcp_sequence: the segment must reach RCV.WUP and start within the window.
  if (end < rcv_wup_ || seq > adv_edge_) {
    ++stats_.dropped_out_of_window;
    ack_now_ = true;
    return;
  }
  const std::int64_t ack = OffsetOf(r->ack, OwnDataBase());
  // RFC 9293 §3.10.7.4: an ACK of something not yet sent; RFC 5961 §5.2: an ACK more than
  // a maximum window old. Both are dropped (and answered).
  if (ack > snd_max_ || ack < snd_una_ - max_sender_window_) {
    ++stats_.dropped_bad_ack;
    refuse_in_order(ack > snd_max_ ? Refusal::kAckOfUnsentData : Refusal::kAckTooOld);
    ack_now_ = true;
    return;
  }
  if (ack >= snd_una_) {
    snd_una_ = ack;
    snd_nxt_ = std::max(snd_nxt_, snd_una_);
    sender_window_ = static_cast<std::int64_t>(r->window) << n.sender_scale;
    max_sender_window_ = std::max(max_sender_window_, sender_window_);
    // Linux tcp_replace_ts_recent: only from a segment that starts at or before RCV.WUP.
    if (n.timestamps && seq <= rcv_wup_ && !TsBefore(r->ts_value, ts_recent_)) {
      ts_recent_ = r->ts_value;
    }
  }
  if (r->payload_size == 0) return;

  // Linux tcp_data_queue.
  if (n.ecn && r->Has(flag::kCwr)) ece_ = false;
  const bool ce = n.ecn && r->ecn == kEcnCe;
  const FrameView payload = r->Payload(frame);
  auto verify = [&](std::int64_t from, std::int64_t to) {
    const FrameView bytes =
        payload.subspan(static_cast<std::size_t>(from - seq), static_cast<std::size_t>(to - from));
    if (!MatchesStream(spec_.stream_salt, static_cast<std::uint64_t>(from), bytes)) {
      ++stats_.content_errors;
    }
  };
  if (end <= rcv_nxt_) {
    ++stats_.duplicates;
    if (n.sack) dsack_ = std::make_pair(seq, end);  // RFC 2883
    ack_now_ = true;
    return;
  }
  if (seq >= adv_edge_ || adv_edge_ == rcv_nxt_) {
    ++stats_.dropped_out_of_window;  // past the window, or a zero window
    ack_now_ = true;
    return;
  }
  if (seq <= rcv_nxt_) {
    if (seq < rcv_nxt_ && n.sack) dsack_ = std::make_pair(seq, rcv_nxt_);
    const std::int64_t to = std::min(end, adv_edge_);
    verify(rcv_nxt_, to);
    Accept(rcv_nxt_, to);
    if (ce) {
      ece_ = true;
      ack_now_ = true;
    }
    return;
  }
  // Out of order: keep it, ask for the hole at once.
  ++stats_.out_of_order;
  const std::int64_t to = std::min(end, adv_edge_);
  verify(seq, to);
  KeepOutOfOrder(seq, to);
  if (ce) ece_ = true;
  ack_now_ = true;
}

void GuestTcp::Accept(std::int64_t from, std::int64_t to) {
  stats_.bytes_accepted += static_cast<std::uint64_t>(to - from);
  rcv_nxt_ = to;
  const bool had_out_of_order = !out_of_order_.empty();
  while (!out_of_order_.empty() && out_of_order_.begin()->first <= rcv_nxt_) {
    rcv_nxt_ = std::max(rcv_nxt_, out_of_order_.begin()->second);
    out_of_order_.erase(out_of_order_.begin());
  }
  // Linux acknowledges at once while the out-of-order queue was not empty.
  if (had_out_of_order) ack_now_ = true;
  ++unacked_segments_;
}

void GuestTcp::KeepOutOfOrder(std::int64_t from, std::int64_t to) {
  auto it = out_of_order_.upper_bound(from);
  if (it != out_of_order_.begin() && std::prev(it)->second >= from) {
    --it;
    from = std::min(from, it->first);
  }
  while (it != out_of_order_.end() && it->first <= to) {
    to = std::max(to, it->second);
    it = out_of_order_.erase(it);
  }
  out_of_order_[from] = to;
  newest_out_of_order_ = from;
}

bool GuestTcp::AckDue() const {
  return ack_now_ || unacked_segments_ >= std::max<int>(1, spec_.guest_ack_every);
}

void GuestTcp::NextWindow(std::int64_t* edge, std::uint16_t* field) const {
  const std::uint8_t scale = spec_.negotiated.guest_scale;
  const std::int64_t room = std::max<std::int64_t>(0, app_read_ + spec_.guest_rcvbuf - rcv_nxt_);
  std::int64_t f = std::min<std::int64_t>(room >> scale, 0xFFFF);
  std::int64_t e = rcv_nxt_ + (f << scale);
  if (e < adv_edge_) {
    // Linux tcp_select_window: never shrink; round the old window up to the scale.
    const std::int64_t unit = std::int64_t{1} << scale;
    f = (adv_edge_ - rcv_nxt_ + unit - 1) / unit;
    e = rcv_nxt_ + (f << scale);
  }
  *edge = e;
  *field = static_cast<std::uint16_t>(f);
}

std::int64_t GuestTcp::WindowGrowth() const {
  std::int64_t edge = 0;
  std::uint16_t field = 0;
  NextWindow(&edge, &field);
  return std::max<std::int64_t>(0, edge - adv_edge_);
}

void GuestTcp::AppRead(std::uint64_t max_bytes) {
  app_read_ += static_cast<std::int64_t>(
      std::min<std::uint64_t>(max_bytes, static_cast<std::uint64_t>(rcv_nxt_ - app_read_)));
}

Frame GuestTcp::Build(std::uint8_t extra_flags, std::int64_t data_offset, std::uint32_t data_length,
                      Millis now) {
  const Negotiated& n = spec_.negotiated;
  std::int64_t edge = 0;
  std::uint16_t field = 0;
  NextWindow(&edge, &field);
  auto b = Base(spec_.guest, spec_.sender, spec_.vlan_tci);
  b.Seq(WireOf(data_offset, OwnDataBase())).Ack(WireOf(rcv_nxt_, DataBase())).Window(field);
  std::uint8_t flags = extra_flags;
  if (ece_) flags |= flag::kEce;
  if (flags != 0) b.Flags(flags);
  if (n.timestamps) {
    last_tsval_ = TsVal(now);
    b.Timestamps(last_tsval_, ts_recent_);
  }
  if (n.sack) {
    // RFC 2018 §4: the first block reports the newest segment; RFC 2883: a D-SACK first.
    std::vector<std::pair<std::int64_t, std::int64_t>> blocks;
    if (dsack_) blocks.push_back(*dsack_);
    const auto newest = out_of_order_.find(newest_out_of_order_);
    if (newest != out_of_order_.end()) blocks.emplace_back(newest->first, newest->second);
    for (const auto& [l, r] : out_of_order_) {
      if (l != newest_out_of_order_) blocks.emplace_back(l, r);
    }
    const std::size_t limit = n.timestamps ? 3 : 4;
    if (blocks.size() > limit) blocks.resize(limit);
    if (!blocks.empty()) {
      std::vector<std::uint8_t> option = {1, 1, 5,
                                          static_cast<std::uint8_t>(2 + 8 * blocks.size())};
      for (const auto& [l, r] : blocks) {
        for (std::uint32_t v : {WireOf(l, DataBase()), WireOf(r, DataBase())}) {
          for (int shift = 24; shift >= 0; shift -= 8) {
            option.push_back(static_cast<std::uint8_t>(v >> shift));
          }
        }
      }
      b.RawOption(option);
    }
  }
  if (data_length > 0) {
    b.Flags(flag::kPsh);
    b.Payload(Pattern(spec_.stream_salt ^ kGuestSaltFlip, data_offset, data_length));
  }
  adv_edge_ = edge;
  rcv_wup_ = rcv_nxt_;
  ack_now_ = false;
  unacked_segments_ = 0;
  dsack_.reset();
  return b.Build();
}

Frame GuestTcp::Ack(Millis now) {
  return Build(0, snd_max_, 0, now);
}

void GuestTcp::SendData(Millis now, std::vector<Frame>* out) {
  while (snd_nxt_ < written_) {
    const std::int64_t limit = snd_una_ + sender_window_;
    const std::int64_t length =
        std::min({written_ - snd_nxt_, kGuestSegmentSize, limit - snd_nxt_});
    if (length <= 0) break;
    out->push_back(Build(0, snd_nxt_, static_cast<std::uint32_t>(length), now));
    snd_nxt_ += length;
    snd_max_ = std::max(snd_max_, snd_nxt_);
  }
}

void GuestTcp::Retransmit(Millis now, std::vector<Frame>* out) {
  if (snd_una_ >= snd_max_) return;
  snd_nxt_ = snd_una_;
  SendData(now, out);
}

}  // namespace vsnoop::proptest
