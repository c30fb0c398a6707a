// A deterministic simulation of TCP connections through a vSnoop host, and the checks the
// property tests make on it.
//
// The world: per connection, a sender (tcp_models.h) and a link to the host that holds the
// frames in flight (in order, until an event delivers, drops, reorders, duplicates,
// delays or edits them), and a reverse path from the host to the sender. The host
// (host_adapters.h) places frames in bounded per-guest buffers and runs the engine inline.
// A guest's TCP (tcp_models.h) reads its buffer only when the guest runs. The run ends
// with a drain: the links stop misbehaving, the guests run whenever there is work, the
// senders' timers fire when nothing else moves, until every byte is delivered to the
// guest's application (or a bound is hit: that is a violation too).
//
// "What the host has sent the sender" counts frames when the host emits them, lost on the
// way or not: vSnoop cannot know better.
//
// The oracle: a "shadow" copy of each guest TCP that has already read every frame waiting
// in the guest's buffer. It knows what the guest will accept from the buffer, so it bounds
// what vSnoop may acknowledge. It is a lower bound: between now and the guest's turn the
// guest can only advertise more window, send more data and send more ACKs, and none of
// these makes it refuse a segment it would accept now (more ACKs raise RCV.WUP, which only
// spares TS.Recent from updates).
//
// Checks, each a property of its own:
//   kEarlyAckSafety   every generated ACK's number <= the shadow's RCV.NXT, and no ACK
//                     comes with a frame that was not placed in the buffer;
//   kNoLoss           the sender never believes acknowledged a byte the guest will not
//                     get; after the drain every byte reached the guest's application, in
//                     order, intact;
//   kNoSuppressedNews no guest frame with news for the sender is suppressed: an ACK
//                     number past what the host has sent the sender, SACK, ECE/CWR, data,
//                     SYN/FIN/RST/URG, other options, or a right edge past the furthest one
//                     shown. Two exceptions: a guest ACK behind the sender's ACK number
//                     whose edge is less than 2^scale further (the sender ignores an old
//                     ACK's window, and the rounding docs/design.md allows leaves no window
//                     field at its ACK number that shows that edge), and, with the
//                     buffer-aware window on (docs/design.md), an edge past what the host's
//                     buffer can take;
//   kWindowEdges      a generated ACK's right edge is within the guest's latest right
//                     edge, and less than 2^scale left of the furthest edge shown;
//   kAckFormat        a generated ACK is a well-formed, checksummed pure ACK from the
//                     guest's address and port, at the guest's sequence number, with the
//                     timestamps the brief prescribes and ECE only as a receiver echoes it
//                     (a CE mark reached the host since the last CWR);
//   kCounters         every frame is counted under exactly one Reason, the one in its
//                     verdict, and the scalar counters agree with the reasons.
// A VSNOOP_BUG report during a run is a finding of every check.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host_adapters.h"
#include "scenario.h"
#include "tcp_models.h"

namespace vsnoop::proptest {

enum class Check : std::uint8_t {
  kEarlyAckSafety,
  kNoLoss,
  kNoSuppressedNews,
  kWindowEdges,
  kAckFormat,
  kCounters,
};
inline constexpr std::size_t kCheckCount = 6;
const char* CheckName(Check check);

class Findings {
 public:
  void Add(Check check, std::string what);
  bool Any(Check check) const { return counts_[Index(check)] > 0; }
  std::uint64_t Count(Check check) const { return counts_[Index(check)]; }
  // The first few findings of a check, one a line.
  std::string Describe(Check check) const;
  // A known engine issue (known_issues.h) met in this run.
  void AddKnown(int issue, std::string what);
  bool AnyKnown() const { return !known_.empty(); }
  const std::vector<std::pair<int, std::string>>& known() const { return known_; }

 private:
  static std::size_t Index(Check check) { return static_cast<std::size_t>(check); }
  std::array<std::uint64_t, kCheckCount> counts_{};
  std::array<std::vector<std::string>, kCheckCount> first_{};
  std::vector<std::pair<int, std::string>> known_;
};

// Facts about one run, for coverage notes and the clean-transfer property.
struct RunFacts {
  std::uint64_t data_frames_to_guests = 0;  // with payload, offered to the host
  std::uint64_t data_frames_placed = 0;
  bool sequence_wrapped = false;  // a sender's sequence numbers pass 2^32
  bool converged = false;         // the drain delivered everything
};

class Simulation {
 public:
  explicit Simulation(const Scenario& scenario);
  ~Simulation();

  // Handshakes, then the scenario's events, then the drain and the final checks.
  void Run();
  // Runs the handshakes and the events only.
  void RunHandshakesAndEvents();
  // Delivers everything in flight in both directions and lets the senders send what
  // their windows allow, until nothing moves; the guests do not run.
  void SettleWithoutGuests();
  // The drain and the final checks.
  void Finish();

  const Findings& findings() const { return findings_; }
  const RunFacts& facts() const { return facts_; }
  const Engine& engine() const;
  std::size_t connection_count() const { return connections_.size(); }
  const SenderModel& sender(std::size_t i) const;
  const GuestTcp& guest(std::size_t i) const;
  const ConnectionSpec& spec(std::size_t i) const;
  // A readable summary of the derived parameters (sizes, options, ISNs).
  std::string Describe() const;

 private:
  struct Connection;

  void Handshake(Connection& c);
  void Apply(const Event& e);
  void DeliverToHost(Connection& c, Frame frame);
  void SendFromGuest(Connection& c, Frame frame);
  void DeliverToSender(Connection& c, Frame frame);
  void Emit(Connection& c, const Frame& frame);
  void CheckLimitedWindow(Connection& c, const Frame& forwarded, const Frame& sent);
  struct GuestTurn {
    std::size_t max_frames = SIZE_MAX;
    int read_mode = 2;  // 0: nothing, 1: up to read_bytes, 2: everything
    std::uint32_t read_bytes = 0;
    std::uint32_t write_bytes = 0;
    bool flush_delayed_ack = true;
    bool retransmit = false;
    bool drain = false;  // window updates on any growth
  };
  void RunGuest(std::size_t guest, const GuestTurn& turn);
  void ResyncShadow(Connection& c);
  Connection* ConnectionOf(std::size_t guest, const ReadFrame& read);
  // Takes frames from a guest's buffer with their readings (made once, on placement).
  std::vector<std::pair<Frame, std::optional<ReadFrame>>> TakeFrames(std::size_t guest,
                                                                     std::size_t max_frames);
  void CheckGeneratedAck(Connection& c, const Frame& ack, const Frame& trigger, bool early);
  void CheckCounted(const Counters& before, const HostResult& result, bool to_guest);
  void CheckSenderBelief(Connection& c);
  void Drain();
  bool AllDone() const;
  void FinalChecks();
  Timestamp Now() const;
  void SendFromSender(Connection& c, std::vector<Frame>& frames);

  Scenario scenario_;
  std::unique_ptr<HostAdapter> host_;
  std::vector<std::unique_ptr<Connection>> connections_;
  // ReadTcpFrame of every frame in each guest's buffer, in the buffer's order.
  std::vector<std::deque<std::optional<ReadFrame>>> buffered_reads_;
  std::size_t guest_count_ = 1;
  Millis now_ = 1000;
  Acceleration acceleration_ = Acceleration::kOn;
  std::uint64_t frame_counter_ = 0;
  Findings findings_;
  RunFacts facts_;
};

}  // namespace vsnoop::proptest
