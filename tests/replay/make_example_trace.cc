// make_example_trace: writes the bundled example capture, examples/consolidated-transfer.pcap
// (described in examples/README.md):
//
//   make_example_trace OUT.pcap
//
// It is what a host's uplink would see of one 1 MiB TCP transfer (iperf3-like) from a Linux
// sender on the LAN into a guest that shares its CPU core with busy VMs: the guest runs for
// 1 ms out of every 30 ms. While it waits, the sender's data keeps arriving (as far as the
// sender's congestion window and the guest's advertised window allow) and no ACK leaves;
// when the guest runs, it works through the backlog and its ACKs leave in a burst. No vSnoop
// is involved: this is the input vsnoop-replay shows vSnoop's effect on.
//
// The output is a deterministic function of the constants below (no randomness, no clock),
// so the committed file can be checked against a fresh run (tests/replay).
#include <pcap/pcap.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <iostream>
#include <queue>
#include <vector>

#include "pcap_file.h"
#include "vsnoop/sim/frame_builder.h"
#include "vsnoop/wire/tcp.h"

namespace {

using vsnoop::replay_test::PcapRecord;
using vsnoop::sim::Endpoint;
using vsnoop::sim::FrameBuilder;
namespace flag = vsnoop::wire::tcp_flag;
using Nanoseconds = std::int64_t;
using Frame = std::vector<std::uint8_t>;

constexpr Nanoseconds kMicrosecond = 1'000;
constexpr Nanoseconds kMillisecond = 1'000'000;

// The network: a 1 Gbit/s link, 100 us each way between the sender and the host.
constexpr Nanoseconds kOneWayDelay = 100 * kMicrosecond;
Nanoseconds WireTime(std::size_t frame_size) {
  return static_cast<Nanoseconds>(frame_size + 20) * 8;  // preamble and gap: 20 bytes
}

// The guest: runs 1 ms every 30 ms, starting 5 ms into the trace; takes 8 us per segment
// (a software-emulated guest's stack), ACKs every second segment and when its backlog is
// empty; its application reads once the backlog is worked through. Its receive buffer
// starts at 65152 bytes and doubles each time it runs (Linux receive-buffer auto-tuning),
// up to 3 MiB; the window it advertises is the free part of it.
constexpr Nanoseconds kGuestFirstRun = 5 * kMillisecond;
constexpr Nanoseconds kGuestPeriod = 30 * kMillisecond;
constexpr Nanoseconds kGuestRunLength = 1 * kMillisecond;
constexpr Nanoseconds kGuestPerSegment = 8 * kMicrosecond;
constexpr std::uint32_t kGuestInitialBuffer = 65152;
constexpr std::uint32_t kGuestMaxBuffer = 3 << 20;

// The connection: Linux defaults on both sides (mss 1460, sackOK, timestamps, window scale
// 7; timestamps tick every millisecond), an initial congestion window of 10 segments and
// slow start with appropriate byte counting (RFC 3465, L = 2 segments).
constexpr std::uint32_t kTransferBytes = 1 << 20;
constexpr std::uint16_t kSynMss = 1460;  // Ethernet's 1500 less 40 bytes of headers
constexpr std::uint32_t kMss = 1448;     // what a segment carries: 1460 less the timestamps
constexpr std::uint32_t kSenderIsn = 0x1C2D3E4F;
constexpr std::uint32_t kGuestIsn = 0x9A8B7C6D;
constexpr std::uint32_t kSenderTsBase = 2'100'000'000;
constexpr std::uint32_t kGuestTsBase = 400'000;
constexpr std::uint32_t kInitialCwnd = 10 * kMss;
constexpr std::uint16_t kSynAckWindow = 65160;
constexpr std::uint8_t kWindowScale = 7;
constexpr std::int64_t kTraceStartSeconds = 1'700'000'000;

// Linux's SYN option layout: mss, sackOK, TS, nop, wscale (20 bytes).
FrameBuilder& LinuxSynOptions(FrameBuilder& b, std::uint32_t ts_value, std::uint32_t ts_echo) {
  // mss (kind 2), sackOK (kind 4), TS (kind 8: value, echo), nop, wscale (kind 3).
  std::vector<std::uint8_t> o = {2, 4, kSynMss >> 8, kSynMss & 0xFF, 4, 2, 8, 10};
  o.resize(o.size() + 8);
  vsnoop::wire::StoreBe32(o.data() + 8, ts_value);
  vsnoop::wire::StoreBe32(o.data() + 12, ts_echo);
  o.insert(o.end(), {1, 3, 3, kWindowScale});
  return b.RawOption(o);
}

class ConsolidatedTransfer {
 public:
  std::vector<PcapRecord> Run() {
    Schedule(0, [this] { SenderConnect(); });
    while (!events_.empty()) {
      Event e = events_.top();
      events_.pop();
      now_ = e.time;
      e.action();
    }
    return std::move(trace_);
  }

 private:
  struct Event {
    Nanoseconds time;
    std::uint64_t order;  // ties run in the order they were scheduled
    std::function<void()> action;
    bool operator>(const Event& o) const {
      return time != o.time ? time > o.time : order > o.order;
    }
  };
  // What the guest's stack finds in its receive queue.
  struct Arrival {
    std::uint32_t length = 0;  // payload bytes
    std::uint32_t ts_value = 0;
    bool syn = false;
    bool fin = false;
  };

  void Schedule(Nanoseconds at, std::function<void()> action) {
    events_.push(Event{at, next_order_++, std::move(action)});
  }

  // The capture point is the host: a frame is recorded when it reaches it (from the sender)
  // or leaves the guest. Microsecond timestamps, as tcpdump writes by default.
  void Record(const Frame& frame) {
    const Nanoseconds t = now_ - now_ % kMicrosecond;
    PcapRecord r;
    r.seconds = kTraceStartSeconds + t / 1'000'000'000;
    r.nanoseconds = static_cast<std::uint32_t>(t % 1'000'000'000);
    r.bytes = frame;
    trace_.push_back(std::move(r));
  }

  static std::uint32_t TsClock(std::uint32_t base, Nanoseconds t) {
    return base + static_cast<std::uint32_t>(t / kMillisecond);
  }

  // ---- The sender

  FrameBuilder FromSender() const { return FrameBuilder().From(sender_).To(guest_); }

  // Puts a frame on the link (after what is queued); it reaches the host one delay later.
  void Transmit(const Frame& frame, const Arrival& arrival) {
    const Nanoseconds start = std::max(now_, link_free_);
    link_free_ = start + WireTime(frame.size());
    Schedule(link_free_ + kOneWayDelay, [this, frame, arrival] { ArriveAtHost(frame, arrival); });
  }

  void SenderConnect() {
    FrameBuilder syn = FromSender().Seq(kSenderIsn).Flags(flag::kSyn).Window(64240);
    const std::uint32_t ts = TsClock(kSenderTsBase, now_);
    Transmit(LinuxSynOptions(syn, ts, 0).Build(), {.ts_value = ts, .syn = true});
  }

  void SenderGetsSynAck(std::uint32_t guest_ts) {
    sender_ts_echo_ = guest_ts;
    right_edge_ = kSynAckWindow;  // from the first data byte: SYN windows are never scaled
    const std::uint32_t ts = TsClock(kSenderTsBase, now_);
    Transmit(FromSender()
                 .Seq(kSenderIsn + 1)
                 .Ack(kGuestIsn + 1)
                 .Window(502)
                 .Timestamps(ts, sender_ts_echo_)
                 .Build(),
             {.ts_value = ts});
    SenderSend();
  }

  // Sends what the congestion window and the guest's window allow.
  void SenderSend() {
    while (snd_nxt_ < kTransferBytes) {
      const std::uint32_t length = std::min(kMss, kTransferBytes - snd_nxt_);
      if (snd_nxt_ + length - snd_una_ > cwnd_ || snd_nxt_ + length > right_edge_) return;
      const std::uint32_t ts = TsClock(kSenderTsBase, std::max(now_, link_free_));
      Transmit(FromSender()
                   .Seq(kSenderIsn + 1 + snd_nxt_)
                   .Ack(kGuestIsn + 1)
                   .Window(502)
                   .Timestamps(ts, sender_ts_echo_)
                   .Payload(length, static_cast<std::uint8_t>(snd_nxt_ / kMss))
                   .Build(),
               {.length = length, .ts_value = ts});
      snd_nxt_ += length;
    }
    if (!fin_sent_) {
      // iperf3 closes as soon as its last write is queued.
      fin_sent_ = true;
      const std::uint32_t ts = TsClock(kSenderTsBase, std::max(now_, link_free_));
      Transmit(FromSender()
                   .Seq(kSenderIsn + 1 + kTransferBytes)
                   .Ack(kGuestIsn + 1)
                   .Window(502)
                   .Flags(flag::kFin)
                   .Timestamps(ts, sender_ts_echo_)
                   .Build(),
               {.ts_value = ts, .fin = true});
    }
  }

  void SenderGetsAck(std::uint32_t ack, std::uint16_t window, std::uint32_t guest_ts, bool fin) {
    sender_ts_echo_ = guest_ts;
    const std::uint32_t acked = ack - (kSenderIsn + 1);
    if (fin) {
      // The guest's FIN: acknowledge it; the connection is closed.
      const std::uint32_t ts = TsClock(kSenderTsBase, now_);
      Transmit(FromSender()
                   .Seq(kSenderIsn + 2 + kTransferBytes)
                   .Ack(kGuestIsn + 2)
                   .Window(502)
                   .Timestamps(ts, sender_ts_echo_)
                   .Build(),
               {.ts_value = ts});
      return;
    }
    if (acked > snd_una_ && acked <= kTransferBytes) {
      cwnd_ += std::min(acked - snd_una_, 2 * kMss);  // slow start, RFC 3465 §2.2
      snd_una_ = acked;
    }
    right_edge_ =
        std::max(right_edge_, acked + (static_cast<std::uint32_t>(window) << kWindowScale));
    SenderSend();
  }

  // ---- The host and the guest

  void ArriveAtHost(const Frame& frame, const Arrival& arrival) {
    Record(frame);
    backlog_.push_back(arrival);
    if (!guest_busy_) {
      guest_busy_ = true;
      GuestStep();
    }
  }

  bool GuestRunning(Nanoseconds t) const {
    return t >= kGuestFirstRun && (t - kGuestFirstRun) % kGuestPeriod < kGuestRunLength;
  }
  Nanoseconds NextGuestRun(Nanoseconds t) const {
    if (t < kGuestFirstRun) return kGuestFirstRun;
    return kGuestFirstRun + ((t - kGuestFirstRun) / kGuestPeriod + 1) * kGuestPeriod;
  }

  // The guest takes the next segment of its backlog, if it is running.
  void GuestStep() {
    if (backlog_.empty()) {
      guest_busy_ = false;
      return;
    }
    if (!GuestRunning(now_)) {
      Schedule(NextGuestRun(now_), [this] { GuestStep(); });
      return;
    }
    const Arrival a = backlog_.front();
    backlog_.pop_front();
    Schedule(now_ + kGuestPerSegment, [this, a] {
      GuestProcess(a);
      GuestStep();
    });
  }

  void GuestProcess(const Arrival& a) {
    // Receive-buffer auto-tuning: the buffer grows each time the guest gets to run.
    const std::int64_t run = (now_ - kGuestFirstRun) / kGuestPeriod;
    if (run > buffer_grown_in_run_) {
      if (buffer_grown_in_run_ >= 0) guest_buffer_ = std::min(guest_buffer_ * 2, kGuestMaxBuffer);
      buffer_grown_in_run_ = run;
    }
    if (a.syn) {
      const std::uint32_t ts = TsClock(kGuestTsBase, now_);
      FrameBuilder syn_ack = FrameBuilder()
                                 .From(guest_)
                                 .To(sender_)
                                 .Seq(kGuestIsn)
                                 .Ack(kSenderIsn + 1)
                                 .Flags(flag::kSyn)
                                 .Window(kSynAckWindow);
      LinuxSynOptions(syn_ack, ts, a.ts_value);
      Record(syn_ack.Build());
      Schedule(now_ + kOneWayDelay, [this, ts] { SenderGetsSynAck(ts); });
      return;
    }
    if (a.length == 0 && !a.fin) return;  // a pure ACK: nothing to answer
    rcv_nxt_ += a.length + (a.fin ? 1 : 0);
    unread_ += a.length;
    ts_recent_ = a.ts_value;
    ++unacked_segments_;
    const bool drained = backlog_.empty();
    // The sender's FIN: the application has everything and closes too (FIN with the ACK).
    if (a.fin || unacked_segments_ >= 2 || drained) GuestAck(a.fin);
    if (drained && !a.fin) {
      // The kernel has worked through the backlog: the application (scheduled after it)
      // reads everything, and the kernel announces the window if that at least doubles it
      // (as Linux's tcp_cleanup_rbuf does).
      unread_ = 0;
      if (guest_buffer_ >= 2 * (advertised_edge_ - rcv_nxt_)) GuestAck(false);
    }
  }

  // The window as Linux's tcp_select_window computes it: the free buffer space rounded down
  // to the scale, but never less than what is left of the window already advertised
  // (rounded up to the scale then): the right edge never moves left.
  void GuestAck(bool fin) {
    unacked_segments_ = 0;
    const std::uint32_t unit = 1u << kWindowScale;
    const std::uint32_t free_space = guest_buffer_ - std::min(unread_, guest_buffer_);
    const std::uint32_t left = advertised_edge_ - rcv_nxt_;
    std::uint32_t window = free_space / unit * unit;
    if (window < left) window = (left + unit - 1) / unit * unit;
    advertised_edge_ = rcv_nxt_ + window;
    const auto field = static_cast<std::uint16_t>(window >> kWindowScale);
    const std::uint32_t ts = TsClock(kGuestTsBase, now_);
    const std::uint32_t ack = kSenderIsn + 1 + rcv_nxt_;
    FrameBuilder reply = FrameBuilder()
                             .From(guest_)
                             .To(sender_)
                             .Seq(kGuestIsn + 1)
                             .Ack(ack)
                             .Window(field)
                             .Timestamps(ts, ts_recent_);
    if (fin) reply.Flags(flag::kFin);
    Record(reply.Build());
    Schedule(now_ + kOneWayDelay,
             [this, ack, field, ts, fin] { SenderGetsAck(ack, field, ts, fin); });
  }

  const Endpoint sender_ = Endpoint::Parse("192.168.50.10:43512");
  const Endpoint guest_ = Endpoint::Parse("192.168.50.21:5201");

  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t next_order_ = 0;
  Nanoseconds now_ = 0;
  std::vector<PcapRecord> trace_;

  // Sender (offsets from the first data byte).
  Nanoseconds link_free_ = 0;
  std::uint32_t snd_una_ = 0;
  std::uint32_t snd_nxt_ = 0;
  std::uint32_t cwnd_ = kInitialCwnd;
  std::uint32_t right_edge_ = 0;
  std::uint32_t sender_ts_echo_ = 0;
  bool fin_sent_ = false;

  // Guest.
  std::deque<Arrival> backlog_;
  bool guest_busy_ = false;
  std::uint32_t rcv_nxt_ = 0;
  std::uint32_t ts_recent_ = 0;
  std::uint32_t unacked_segments_ = 0;
  std::uint32_t unread_ = 0;  // received, not yet read by the application
  std::uint32_t guest_buffer_ = kGuestInitialBuffer;
  std::int64_t buffer_grown_in_run_ = -1;
  std::uint32_t advertised_edge_ = kSynAckWindow;  // offset from the first data byte
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_example_trace OUT.pcap\n";
    return 2;
  }
  try {
    const std::vector<PcapRecord> trace = ConsolidatedTransfer().Run();
    vsnoop::replay_test::WritePcap(argv[1], trace, vsnoop::replay_test::TimestampPrecision::kMicro,
                                   DLT_EN10MB);
  } catch (const std::exception& e) {
    std::cerr << "make_example_trace: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
