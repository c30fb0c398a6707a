// The simulated world of the property tests and its checks (see simulation.h).
#include "simulation.h"

#include <algorithm>
#include <bit>
#include <sstream>

#include "known_issues.h"
#include "vsnoop/bug.h"

namespace vsnoop::proptest {
namespace {

namespace flag = tcp_flags;

// Guest writes stay small: the direction under test is sender to guest.
constexpr std::int64_t kMaxGuestWrite = 4096;
constexpr int kDrainRounds = 5000;
constexpr std::size_t kFindingsKept = 3;

bool SeqAfter(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) > 0;
}
bool SeqBefore(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) < 0;
}
std::uint32_t Latest(std::uint32_t a, std::uint32_t b) {
  return SeqAfter(a, b) ? a : b;
}
std::uint32_t BytesBetween(std::uint32_t from, std::uint32_t to) {
  return SeqAfter(to, from) ? to - from : 0;
}

// VSNOOP_BUG reports: a broken internal invariant fails whichever property is running.
thread_local std::vector<std::string>* bug_reports = nullptr;
void RecordBug(const char* file, int line, const char* what) {
  if (bug_reports != nullptr) {
    bug_reports->push_back(std::string(file) + ":" + std::to_string(line) + ": " + what);
  }
}

std::string Hex(const Frame& f) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::uint8_t b : f) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

}  // namespace

const char* CheckName(Check check) {
  switch (check) {
    case Check::kEarlyAckSafety:
      return "early-ACK safety";
    case Check::kNoLoss:
      return "no data lost";
    case Check::kNoSuppressedNews:
      return "no news suppressed";
    case Check::kWindowEdges:
      return "window edges";
    case Check::kAckFormat:
      return "generated ACK format";
    case Check::kCounters:
      return "counters";
  }
  return "?";
}

void Findings::Add(Check check, std::string what) {
  ++counts_[Index(check)];
  if (first_[Index(check)].size() < kFindingsKept) first_[Index(check)].push_back(std::move(what));
}

void Findings::AddKnown(int issue, std::string what) {
  if (known_.size() < kFindingsKept) known_.emplace_back(issue, std::move(what));
}

std::string Findings::Describe(Check check) const {
  std::ostringstream os;
  os << CheckName(check) << ": " << counts_[Index(check)] << " finding(s)";
  for (const std::string& s : first_[Index(check)])
    os << "\n  - " << s;
  return os.str();
}

struct Simulation::Connection {
  Connection(const ConnectionSpec& s, std::size_t guest_index, std::uint8_t policy)
      : spec(s),
        guest(guest_index),
        sender(s),
        guest_tcp(s),
        shadow(s),
        window_update_policy(policy) {}

  ConnectionSpec spec;
  std::size_t guest;
  SenderModel sender;
  GuestTcp guest_tcp;
  // guest_tcp after reading every frame of this connection now in the guest's buffer.
  GuestTcp shadow;
  std::deque<Frame> link;       // sender -> host, in flight
  std::deque<Frame> back_link;  // host -> sender, in flight
  // What the host has sent toward the sender (whether or not it arrives).
  bool told = false;
  std::uint32_t told_ack = 0;
  std::uint32_t shown_edge = 0;
  std::uint32_t sender_first_tsval = 0;
  std::uint8_t window_update_policy;
  bool belief_violation_reported = false;
  bool ce_since_cwr = false;  // a CE mark reached the guest after the last CWR
};

Simulation::Simulation(const Scenario& scenario) : scenario_(scenario) {
  const std::size_t n = scenario.two_connections ? 2 : 1;
  guest_count_ = n == 2 && !scenario.shared_guest ? 2 : 1;
  auto endpoint = [&](int host, int port) {
    const std::string address =
        scenario.ipv6 ? "[fd00::" + std::to_string(host) + "]" : "10.0.0." + std::to_string(host);
    return sim::Endpoint::Parse(address + ":" + std::to_string(port));
  };
  std::uint16_t largest_mss = 1;
  std::vector<sim::IpAddress> guest_addresses;
  for (std::size_t i = 0; i < n; ++i) {
    const ConnectionPlan& p = scenario.connections[i];
    const std::size_t g = guest_count_ == 2 ? i : 0;
    ConnectionSpec s;
    s.sender = endpoint(1 + 2 * static_cast<int>(i), 40000 + static_cast<int>(i));
    s.guest = endpoint(2 + 2 * static_cast<int>(g), 5201 + static_cast<int>(i));
    if (guest_addresses.size() <= g) guest_addresses.push_back(s.guest.ip);
    if (scenario.vlan) s.vlan_tci = 100;
    s.guest_initiates = p.guest_initiates;
    s.sender_offer = p.sender_offer;
    s.guest_offer = p.guest_offer;
    s.sender_offer.window_scale = std::clamp(s.sender_offer.window_scale, -1, 14);
    s.guest_offer.window_scale = std::clamp(s.guest_offer.window_scale, -1, 14);
    s.negotiated = Negotiate(s.sender_offer, s.guest_offer);
    s.sender_isn = p.sender_isn;
    s.guest_isn = p.guest_isn;
    // The receive buffer: at least one window unit and 256 bytes, at most what the scale
    // can announce (and 1 MiB), spread over the powers of two.
    const std::uint8_t scale = s.negotiated.guest_scale;
    const std::uint32_t lowest = std::max<std::uint32_t>(256, 1u << scale);
    const std::uint32_t highest = std::min<std::uint32_t>(0xFFFFu << scale, 1u << 20);
    const int low_exp = std::bit_width(lowest) - 1;
    const int high_exp = std::bit_width(highest) - 1;
    const int exp = low_exp + static_cast<int>(p.rcvbuf_draw %
                                               static_cast<std::uint32_t>(high_exp - low_exp + 1));
    const std::uint32_t base = 1u << exp;
    s.guest_rcvbuf = std::clamp(base + (p.rcvbuf_draw >> 8) % base, lowest, highest);
    s.guest_syn_window =
        static_cast<std::uint16_t>(std::min<std::uint32_t>(s.guest_rcvbuf, 0xFFFF));
    s.mss = std::clamp<std::uint16_t>(p.mss, 1, 1460);
    largest_mss = std::max(largest_mss, s.mss);
    const std::uint32_t unit =
        std::max<std::uint32_t>(1, std::min<std::uint32_t>(s.mss, s.guest_rcvbuf / 2));
    s.stream_length = p.stream_units * unit + p.stream_extra % unit;
    // The guest's own writes must fit the sender's window.
    const std::uint32_t least_field = (2048u >> s.negotiated.sender_scale) + 1;
    s.sender_window =
        static_cast<std::uint16_t>(std::clamp<std::uint32_t>(p.sender_window, least_field, 0xFFFF));
    s.sender_ts_base = p.sender_ts_base;
    s.guest_ts_base = p.guest_ts_base;
    s.stream_salt = static_cast<std::uint8_t>(17 + 31 * i);
    s.guest_ack_every = static_cast<std::uint8_t>(1 + p.ack_every % 3);
    if (static_cast<std::uint64_t>(s.sender_isn) + 1 + s.stream_length > (1ull << 32)) {
      facts_.sequence_wrapped = true;
    }
    connections_.push_back(
        std::make_unique<Connection>(s, g, static_cast<std::uint8_t>(p.window_update_policy % 3)));
  }
  // Every frame fits an empty buffer; beyond that, from one frame to sixteen.
  const std::uint64_t largest_frame = 14 + 4 + 40 + 60 + largest_mss;
  BufferBounds bounds;
  bounds.bytes = scenario.roomy_buffer
                     ? std::uint64_t{1} << 26
                     : largest_frame + scenario.buffer_bytes_draw % (16 * largest_frame);
  bounds.frames = scenario.roomy_buffer ? 1u << 16 : 1 + scenario.buffer_frames_draw % 32;
  // A small table: a run has at most two flows, and a large one costs more to build than
  // the whole run (the table's bound has a property of its own).
  EngineConfig config;
  config.max_flows = 8;
  config.buffer_aware_window = scenario.buffer_aware_window;
  host_ = scenario.model_host ? MakeModelHost(guest_addresses, bounds, config)
                              : MakeEngineHost(guest_count_, bounds, config);
  buffered_reads_.resize(guest_count_);
}

Simulation::~Simulation() = default;

const Engine& Simulation::engine() const {
  return host_->engine();
}
const SenderModel& Simulation::sender(std::size_t i) const {
  return connections_[i]->sender;
}
const GuestTcp& Simulation::guest(std::size_t i) const {
  return connections_[i]->guest_tcp;
}
const ConnectionSpec& Simulation::spec(std::size_t i) const {
  return connections_[i]->spec;
}

std::string Simulation::Describe() const {
  std::ostringstream os;
  for (std::size_t i = 0; i < connections_.size(); ++i) {
    const ConnectionSpec& s = connections_[i]->spec;
    os << "c" << i << ": guest " << connections_[i]->guest << ", isn " << s.sender_isn << "/"
       << s.guest_isn << ", scales " << static_cast<int>(s.negotiated.sender_scale) << "/"
       << static_cast<int>(s.negotiated.guest_scale) << (s.negotiated.timestamps ? ", ts" : "")
       << (s.negotiated.sack ? ", sack" : "") << (s.negotiated.ecn ? ", ecn" : "") << ", mss "
       << s.mss << ", stream " << s.stream_length << ", rcvbuf " << s.guest_rcvbuf << ", ack every "
       << static_cast<int>(s.guest_ack_every) << "; ";
  }
  return os.str();
}

Timestamp Simulation::Now() const {
  return std::chrono::milliseconds(now_);
}

void Simulation::Run() {
  RunHandshakesAndEvents();
  Finish();
}

void Simulation::RunHandshakesAndEvents() {
  std::vector<std::string> bugs;
  bug_reports = &bugs;
  const BugHandler previous = SetBugHandler(&RecordBug);
  for (auto& c : connections_)
    Handshake(*c);
  for (const Event& e : scenario_.events)
    Apply(e);
  SetBugHandler(previous);
  bug_reports = nullptr;
  for (const std::string& b : bugs) {
    for (std::size_t c = 0; c < kCheckCount; ++c) {
      findings_.Add(static_cast<Check>(c), "VSNOOP_BUG: " + b);
    }
  }
}

void Simulation::Finish() {
  std::vector<std::string> bugs;
  bug_reports = &bugs;
  const BugHandler previous = SetBugHandler(&RecordBug);
  Drain();
  FinalChecks();
  SetBugHandler(previous);
  bug_reports = nullptr;
  for (const std::string& b : bugs) {
    for (std::size_t c = 0; c < kCheckCount; ++c) {
      findings_.Add(static_cast<Check>(c), "VSNOOP_BUG: " + b);
    }
  }
}

void Simulation::Handshake(Connection& c) {
  c.sender_first_tsval = c.sender.TsVal(now_);
  if (!c.spec.guest_initiates) {
    const Frame syn = c.sender.Syn(now_);
    c.guest_tcp.OnHandshake(syn);
    DeliverToHost(c, syn);
    TakeFrames(c.guest, SIZE_MAX);
    SendFromGuest(c, c.guest_tcp.SynAck(now_));
    while (!c.back_link.empty()) {
      c.sender.OnHandshake(c.back_link.front());
      c.back_link.pop_front();
    }
    const Frame ack = c.sender.HandshakeAck(now_);
    DeliverToHost(c, ack);
    for (const auto& [f, read] : TakeFrames(c.guest, SIZE_MAX)) {
      if (read) c.guest_tcp.Receive(f, *read);
    }
  } else {
    SendFromGuest(c, c.guest_tcp.Syn(now_));
    while (!c.back_link.empty()) {
      c.sender.OnHandshake(c.back_link.front());
      c.back_link.pop_front();
    }
    const Frame syn_ack = c.sender.SynAck(now_);
    c.guest_tcp.OnHandshake(syn_ack);
    DeliverToHost(c, syn_ack);
    TakeFrames(c.guest, SIZE_MAX);
    SendFromGuest(c, c.guest_tcp.HandshakeAck(now_));
    while (!c.back_link.empty()) {
      DeliverToSender(c, c.back_link.front());
      c.back_link.pop_front();
    }
  }
  ResyncShadow(c);
}

void Simulation::SendFromSender(Connection& c, std::vector<Frame>& frames) {
  for (Frame& f : frames)
    c.link.push_back(std::move(f));
  frames.clear();
}

void Simulation::Apply(const Event& e) {
  Connection& c = *connections_[e.connection % connections_.size()];
  std::vector<Frame> out;
  switch (e.kind) {
    case EventKind::kDeliver:
      for (int i = 0; i < 1 + e.a % 4 && !c.link.empty(); ++i) {
        Frame f = std::move(c.link.front());
        c.link.pop_front();
        DeliverToHost(c, std::move(f));
      }
      break;
    case EventKind::kSend: {
      const std::uint32_t size = e.b % 4 == 0 ? 0 : 1 + (e.b >> 2) % c.spec.mss;
      c.sender.SendData(1 + e.a % 8, size, now_, &out);
      SendFromSender(c, out);
      break;
    }
    case EventKind::kGuestRun: {
      GuestTurn turn;
      turn.max_frames = (e.a & 0x8000) != 0 ? SIZE_MAX : 1 + e.a % 16;
      turn.read_mode = static_cast<int>(e.b % 3);
      turn.read_bytes = (e.b >> 2) % (2u * c.spec.mss + 1);
      turn.write_bytes = (e.b >> 14) % 4 == 0 ? 1 + (e.b >> 16) % 200 : 0;
      turn.flush_delayed_ack = ((e.b >> 24) & 1) != 0;
      turn.retransmit = ((e.b >> 25) & 3) == 0;
      RunGuest(c.guest, turn);
      break;
    }
    case EventKind::kAckDeliver:
      for (int i = 0; i < 1 + e.a % 4 && !c.back_link.empty(); ++i) {
        Frame f = std::move(c.back_link.front());
        c.back_link.pop_front();
        DeliverToSender(c, std::move(f));
      }
      break;
    case EventKind::kTick:
      now_ += 1 + e.a % 200;
      break;
    case EventKind::kDrop:
      if (!c.link.empty()) c.link.pop_front();
      break;
    case EventKind::kReorder:
      if (c.link.size() >= 2) std::swap(c.link[0], c.link[1 + e.a % (c.link.size() - 1)]);
      break;
    case EventKind::kDuplicate:
      if (!c.link.empty()) {
        const Frame copy = c.link.front();
        c.link.insert(c.link.begin() + static_cast<std::ptrdiff_t>(1 + e.a % c.link.size()), copy);
      }
      break;
    case EventKind::kDelay:
      if (c.link.size() >= 2) {
        Frame f = std::move(c.link.front());
        c.link.pop_front();
        c.link.insert(c.link.begin() + static_cast<std::ptrdiff_t>(1 + e.a % c.link.size()),
                      std::move(f));
      }
      break;
    case EventKind::kCorruptTcp:
      if (!c.link.empty())
        CorruptTcpChecksum(c.link.front(), static_cast<std::uint16_t>(1 + e.b % 0xFFFE));
      break;
    case EventKind::kCorruptIp:
      if (!c.link.empty())
        CorruptIpChecksum(c.link.front(), static_cast<std::uint16_t>(1 + e.b % 0xFFFE));
      break;
    case EventKind::kMarkCe:
      if (!c.link.empty()) {
        const auto r = ReadTcpFrame(c.link.front());
        // RFC 3168 §5: routers mark CE only on ECN-capable packets.
        if (r && (r->ecn == 1 || r->ecn == 2)) SetEcn(c.link.front(), kEcnCe);
      }
      break;
    case EventKind::kForgeAck:
      if (!c.link.empty()) {
        const GuestTcp& g = c.guest_tcp;
        std::int64_t ack = 0;
        switch (e.a % 3) {
          case 0:  // acknowledges guest data never sent (nor ever to be: writes are capped)
            ack = g.snd_max() + 2 * kMaxGuestWrite + e.b % 1024;
            break;
          case 1:  // just over a maximum window old (RFC 5961 §5.2)
            ack = g.data_acked() - g.max_sender_window() - 1 - e.b % 64;
            break;
          default:  // old, but within a maximum window: acceptable
            ack = g.data_acked() - static_cast<std::int64_t>(
                                       e.b % static_cast<std::uint64_t>(g.max_sender_window() + 1));
            break;
        }
        SetAckField(c.link.front(), WireOf(ack, c.spec.guest_isn + 1));
      }
      break;
    case EventKind::kStripTimestamps:
      if (!c.link.empty()) StripTimestamps(c.link.front());
      break;
    case EventKind::kStaleTimestamp:
      if (!c.link.empty()) {
        const auto r = ReadTcpFrame(c.link.front(), Checksums::kSkip);
        if (r && r->has_timestamps) SetTsValue(c.link.front(), r->ts_value - 1 - e.b % 1000);
      }
      break;
    case EventKind::kAckDrop:
      if (!c.back_link.empty()) c.back_link.pop_front();
      break;
    case EventKind::kAckReorder:
      if (c.back_link.size() >= 2) {
        std::swap(c.back_link[0], c.back_link[1 + e.a % (c.back_link.size() - 1)]);
      }
      break;
    case EventKind::kTimeout:
      c.sender.OnTimeout(now_, &out);
      SendFromSender(c, out);
      break;
    case EventKind::kProbe:
      c.sender.SendProbe((e.a & 1) != 0, now_, &out);
      SendFromSender(c, out);
      break;
    case EventKind::kToggleAcceleration:
      acceleration_ = acceleration_ == Acceleration::kOn ? Acceleration::kOff : Acceleration::kOn;
      host_->SetAcceleration(acceleration_);
      break;
    case EventKind::kExpireIdle:
      now_ += 1000 * (31 + static_cast<Millis>(e.a % 600));
      host_->engine().ExpireIdle(Now());
      break;
  }
}

void Simulation::DeliverToHost(Connection& c, Frame frame) {
  ++frame_counter_;
  const auto read = ReadTcpFrame(frame);
  const bool checksums_ok = read && read->ip_checksum_ok && read->tcp_checksum_ok;
  const bool has_data = read && read->payload_size > 0;
  // A quarter of the frames with right checksums arrive vouched for by the NIC.
  const bool verified = checksums_ok && frame_counter_ % 4 == 0;
  const Counters before = host_->engine().counters();
  HostResult result = host_->ToGuest(c.guest, frame, verified, Now());
  CheckCounted(before, result, /*to_guest=*/true);
  if (has_data) ++facts_.data_frames_to_guests;
  if (result.passed) {
    // RFC 3168 §6.1.3 counts CE and CWR the receiver gets: frames placed in its buffer with
    // checksums its stack accepts.
    if (checksums_ok && read->ecn == kEcnCe) c.ce_since_cwr = true;
    if (checksums_ok && read->Has(flag::kCwr)) c.ce_since_cwr = false;
    buffered_reads_[c.guest].push_back(read);
    if (read) c.shadow.Receive(frame, *read);
    if (has_data) ++facts_.data_frames_placed;
  } else if (result.action == Action::kSuppress) {
    findings_.Add(Check::kNoLoss,
                  "a frame to the guest was suppressed: " + sim::DescribeFrame(frame));
  }
  if (!result.acks.empty() && !result.passed) {
    findings_.Add(Check::kEarlyAckSafety,
                  "ACK generated for a frame that was not placed in the buffer: " +
                      sim::DescribeFrame(frame));
  }
  for (const Frame& ack : result.acks) {
    CheckGeneratedAck(c, ack, frame, /*early=*/true);
    Emit(c, ack);
  }
}

void Simulation::SendFromGuest(Connection& c, Frame frame) {
  ++frame_counter_;
  const auto r = ReadTcpFrame(frame, Checksums::kSkip);  // the guest model's own frame
  const std::uint8_t scale = c.spec.negotiated.guest_scale;
  const Counters before = host_->engine().counters();
  HostResult result = host_->FromGuest(c.guest, frame, Now());
  CheckCounted(before, result, /*to_guest=*/false);
  if (!result.passed && r) {
    // The brief, section 5: only a pure ACK that tells the sender nothing new may go.
    std::string news;
    if (r->Has(flag::kSyn | flag::kFin | flag::kRst | flag::kUrg) || !r->Has(flag::kAck)) {
      news += " control-flags";
    }
    if (r->payload_size > 0) news += " data";
    if (!r->sack_blocks.empty()) news += " SACK";
    if (r->Has(flag::kEce | flag::kCwr)) news += " ECE/CWR";
    if (r->has_other_options || r->options_malformed) news += " options";
    if (r->Has(flag::kAck)) {
      const std::uint32_t edge = r->ack + (static_cast<std::uint32_t>(r->window) << scale);
      if (!c.told || SeqAfter(r->ack, c.told_ack)) news += " ACK-number";
      const std::uint32_t gain = c.told ? BytesBetween(c.shown_edge, edge) : 1;
      const std::uint32_t unit = 1u << scale;
      // With a buffer-aware window the engine shows the sender no more than the host's
      // buffer can take, by design: a guest edge beyond that is not news it passes on.
      if (gain > 0 && !scenario_.buffer_aware_window) {
        if (result.acks.empty()) {
          // Tolerated: an ACK behind the one the sender has is ignored by it, window
          // included (RFC 9293 §3.10.7.4), and a window field at the sender's ACK number
          // cannot show an edge less than 2^scale further than the one already shown.
          if (!(c.told && SeqBefore(r->ack, c.told_ack) && gain < unit)) news += " right-edge";
        } else {
          const auto replacement = ReadTcpFrame(result.acks.front());
          if (replacement) {
            const std::uint32_t shown =
                replacement->ack + (static_cast<std::uint32_t>(replacement->window) << scale);
            if (BytesBetween(shown, edge) >= unit) news += " right-edge(replacement shows less)";
          }
        }
      }
    }
    if (!news.empty()) {
      std::ostringstream os;
      os << "suppressed a guest frame with news:" << news << ": " << sim::DescribeFrame(frame)
         << " (sender told ack " << c.told_ack << ", shown edge " << c.shown_edge << ")";
      findings_.Add(Check::kNoSuppressedNews, os.str());
    }
  }
  if (result.passed && result.forwarded) CheckLimitedWindow(c, *result.forwarded, frame);
  if (result.passed) Emit(c, result.forwarded ? *result.forwarded : frame);
  for (const Frame& ack : result.acks) {
    CheckGeneratedAck(c, ack, frame, /*early=*/false);
    Emit(c, ack);
  }
}

// A guest segment forwarded with a window vSnoop cut to the buffer: its checksums still
// right, the rest of it as the guest sent it, its edge within the guest's, and not left of
// an edge the sender was shown (by more than the scale's rounding).
void Simulation::CheckLimitedWindow(Connection& c, const Frame& forwarded, const Frame& sent) {
  const auto r = ReadTcpFrame(forwarded);
  const auto original = ReadTcpFrame(sent, Checksums::kSkip);
  std::ostringstream bad;
  if (!r || !original) {
    bad << " does not read (checksums)";
  } else {
    if (forwarded.size() != sent.size() || r->ack != original->ack || r->seq != original->seq ||
        r->window > original->window) {
      bad << " changed more than its window (or widened it)";
    }
    const std::uint8_t scale = c.spec.negotiated.guest_scale;
    const std::uint32_t edge = r->ack + (static_cast<std::uint32_t>(r->window) << scale);
    if (c.told && !SeqBefore(r->ack, c.told_ack) && SeqBefore(edge, c.shown_edge) &&
        BytesBetween(edge, c.shown_edge) >= (1u << scale)) {
      bad << " pulls the right edge back from " << c.shown_edge << " to " << edge;
    }
  }
  if (!bad.str().empty()) {
    findings_.Add(Check::kWindowEdges,
                  "forwarded guest segment" + bad.str() + ": " + sim::DescribeFrame(forwarded));
  }
}

void Simulation::Emit(Connection& c, const Frame& frame) {
  const auto r = ReadTcpFrame(frame, Checksums::kSkip);
  if (r && r->Has(flag::kAck)) {
    const std::uint8_t scale = r->Has(flag::kSyn) ? 0 : c.spec.negotiated.guest_scale;
    const std::uint32_t edge = r->ack + (static_cast<std::uint32_t>(r->window) << scale);
    if (!c.told) {
      c.told = true;
      c.told_ack = r->ack;
      c.shown_edge = edge;
    } else if (!SeqBefore(r->ack, c.told_ack)) {
      // The sender ignores the window of an ACK older than its SND.UNA (RFC 9293
      // §3.10.7.4): only an ACK at or past the latest one shows it an edge.
      c.told_ack = r->ack;
      c.shown_edge = Latest(c.shown_edge, edge);
    }
  }
  c.back_link.push_back(frame);
}

void Simulation::DeliverToSender(Connection& c, Frame frame) {
  std::vector<Frame> out;
  c.sender.OnFrame(frame, now_, &out);
  CheckSenderBelief(c);
  SendFromSender(c, out);
}

void Simulation::CheckSenderBelief(Connection& c) {
  if (findings_.AnyKnown()) return;  // the known issue explains it
  if (c.sender.acked() > c.shadow.rcv_nxt() && !c.belief_violation_reported) {
    c.belief_violation_reported = true;
    std::ostringstream os;
    os << "the sender holds bytes up to " << c.sender.acked()
       << " acknowledged, but the guest will only have " << c.shadow.rcv_nxt()
       << " (guest RCV.NXT now " << c.guest_tcp.rcv_nxt() << ")";
    findings_.Add(Check::kNoLoss, os.str());
  }
}

Simulation::Connection* Simulation::ConnectionOf(std::size_t guest, const ReadFrame& read) {
  for (auto& c : connections_) {
    if (c->guest == guest && c->spec.guest.port == read.destination_port &&
        c->spec.sender.port == read.source_port) {
      return c.get();
    }
  }
  return nullptr;
}

std::vector<std::pair<Frame, std::optional<ReadFrame>>> Simulation::TakeFrames(
    std::size_t guest, std::size_t max_frames) {
  std::vector<std::pair<Frame, std::optional<ReadFrame>>> taken;
  for (Frame& f : host_->Take(guest, max_frames)) {
    std::optional<ReadFrame> read;
    if (!buffered_reads_[guest].empty()) {
      read = buffered_reads_[guest].front();
      buffered_reads_[guest].pop_front();
    } else {
      findings_.Add(Check::kCounters, "the host gave the guest a frame that was not placed");
    }
    taken.emplace_back(std::move(f), read);
  }
  return taken;
}

void Simulation::ResyncShadow(Connection& c) {
  c.shadow = c.guest_tcp;
  const std::deque<Frame>& frames = host_->Buffered(c.guest);
  const std::deque<std::optional<ReadFrame>>& reads = buffered_reads_[c.guest];
  for (std::size_t i = 0; i < frames.size() && i < reads.size(); ++i) {
    if (reads[i]) c.shadow.Receive(frames[i], *reads[i]);
  }
}

void Simulation::RunGuest(std::size_t guest, const GuestTurn& turn) {
  for (const auto& [f, read] : TakeFrames(guest, turn.max_frames)) {
    if (!read) continue;
    Connection* c = ConnectionOf(guest, *read);
    if (c == nullptr) continue;
    c->guest_tcp.Receive(f, *read);
    if (c->guest_tcp.AckDue()) SendFromGuest(*c, c->guest_tcp.Ack(now_));
  }
  for (auto& owned : connections_) {
    Connection& c = *owned;
    if (c.guest != guest) continue;
    GuestTcp& g = c.guest_tcp;
    if (turn.read_mode == 2) g.AppRead(std::uint64_t{1} << 40);
    if (turn.read_mode == 1) g.AppRead(turn.read_bytes);
    // When the application's reads open the window enough, the guest says so
    // (Linux: tcp_cleanup_rbuf; the thresholds are the model's choice).
    std::int64_t threshold = 1;
    if (!turn.drain && c.window_update_policy == 1) threshold = c.spec.mss;
    if (!turn.drain && c.window_update_policy == 2) threshold = c.spec.guest_rcvbuf / 2;
    if (g.WindowGrowth() >= threshold) SendFromGuest(c, g.Ack(now_));
    if (turn.write_bytes > 0 && g.written() < kMaxGuestWrite) g.AppWrite(turn.write_bytes);
    std::vector<Frame> out;
    if (turn.retransmit) {
      g.Retransmit(now_, &out);
    } else {
      g.SendData(now_, &out);
    }
    for (Frame& f : out)
      SendFromGuest(c, std::move(f));
    if (turn.flush_delayed_ack && g.AckPending()) SendFromGuest(c, g.Ack(now_));
    ResyncShadow(c);
  }
}

void Simulation::CheckGeneratedAck(Connection& c, const Frame& ack, const Frame& trigger_frame,
                                   bool early) {
  const char* what = early ? "early ACK" : "window update";
  const auto trigger = ReadTcpFrame(trigger_frame);
  const auto r = ReadTcpFrame(ack);
  if (!r) {
    findings_.Add(Check::kAckFormat, std::string(what) + " does not parse: " + Hex(ack));
    return;
  }
  const ConnectionSpec& s = c.spec;
  const std::uint32_t data_base = s.sender_isn + 1;
  std::ostringstream bad;
  const std::size_t address_size = s.guest.ip.family == 4 ? 4 : 16;
  if (r->family != s.guest.ip.family) bad << " family";
  if (!std::equal(r->source_ip.begin(),
                  r->source_ip.begin() + static_cast<std::ptrdiff_t>(address_size),
                  s.guest.ip.bytes.begin())) {
    bad << " source-address";
  }
  if (!std::equal(r->destination_ip.begin(),
                  r->destination_ip.begin() + static_cast<std::ptrdiff_t>(address_size),
                  s.sender.ip.bytes.begin())) {
    bad << " destination-address";
  }
  if (r->source_port != s.guest.port || r->destination_port != s.sender.port) bad << " ports";
  if (r->source_mac != s.guest.mac.octets || r->destination_mac != s.sender.mac.octets)
    bad << " macs";
  const bool vlan_right = s.vlan_tci ? r->vlan_tcis.size() == 1 && r->vlan_tcis[0] == *s.vlan_tci
                                     : r->vlan_tcis.empty();
  if (!vlan_right) bad << " vlan";
  if (!r->ip_checksum_ok) bad << " ip-checksum";
  if (!r->tcp_checksum_ok) bad << " tcp-checksum";
  // The ACK flag, and ECE only as RFC 3168 §6.1.3 has a receiver echo it: ECN negotiated
  // and a CE mark arrived since the last CWR.
  const bool ece_allowed = s.negotiated.ecn && c.ce_since_cwr;
  if (r->flags != flag::kAck && !(ece_allowed && r->flags == (flag::kAck | flag::kEce))) {
    bad << " flags=" << static_cast<int>(r->flags);
  }
  if (r->payload_size != 0) bad << " payload";
  if (r->frame_size != r->ip_offset + r->ip_total_size) bad << " trailing-bytes";
  if (!r->sack_blocks.empty()) bad << " sack";
  if (r->has_other_options || r->options_malformed) bad << " options";
  if (r->ecn != 0) bad << " ecn-bits";
  if (r->ttl != 64) bad << " ttl";
  if (r->seq != WireOf(c.guest_tcp.snd_max(), s.guest_isn + 1)) {
    bad << " seq=" << r->seq << "(guest snd " << WireOf(c.guest_tcp.snd_max(), s.guest_isn + 1)
        << ")";
  }
  if (s.negotiated.timestamps) {
    if (!r->has_timestamps || r->tcp_header_size != 32) {
      bad << " no-timestamps";
    } else {
      if (r->ts_value != c.guest_tcp.last_tsval()) {
        bad << " TSval=" << r->ts_value << "(guest's latest " << c.guest_tcp.last_tsval() << ")";
      }
      if (early) {
        if (!trigger || !trigger->has_timestamps || r->ts_echo != trigger->ts_value) {
          bad << " TSecr=" << r->ts_echo << "(acknowledged segment's TSval "
              << (trigger ? trigger->ts_value : 0) << ")";
        }
      } else {
        // A window update echoes a TSval the sender sent: not older than its first, not
        // newer than its clock.
        const std::uint32_t newest = c.sender.TsVal(now_);
        if (static_cast<std::int32_t>(r->ts_echo - c.sender_first_tsval) < 0 ||
            static_cast<std::int32_t>(newest - r->ts_echo) < 0) {
          bad << " TSecr=" << r->ts_echo << "(sender's TSvals " << c.sender_first_tsval << ".."
              << newest << ")";
        }
      }
    }
  } else if (r->has_timestamps || r->tcp_header_size != 20) {
    bad << " unexpected-options";
  }
  if (!bad.str().empty()) {
    findings_.Add(Check::kAckFormat,
                  std::string(what) + ":" + bad.str() + ": " + sim::DescribeFrame(ack));
  }

  // Early-ACK safety: nothing past what the guest will have in order.
  const std::int64_t acked = OffsetOf(r->ack, data_base);
  if (acked > c.shadow.rcv_nxt()) {
    std::ostringstream os;
    os << what << " acknowledges " << r->ack << " (offset " << acked
       << ") but the guest will have only up to offset " << c.shadow.rcv_nxt() << " (guest RCV.NXT "
       << c.guest_tcp.rcv_nxt() << ", TS.Recent " << c.shadow.ts_recent()
       << "); prompted by: " << sim::DescribeFrame(trigger_frame);
    using Refusal = GuestTcp::Refusal;
    const Refusal why = c.shadow.RefusalAt(c.shadow.rcv_nxt());
    if (why == Refusal::kPaws && known_issues::kEngineTsRecentLagsGuest) {
      findings_.AddKnown(4, os.str());
    } else if (why == Refusal::kAckTooOld && known_issues::kAckBoundLearntFromRefusedFrames) {
      findings_.AddKnown(3, os.str());
    } else {
      findings_.Add(Check::kEarlyAckSafety, os.str());
    }
  }

  // Window edges.
  const std::uint8_t scale = s.negotiated.guest_scale;
  const std::int64_t edge = acked + (static_cast<std::int64_t>(r->window) << scale);
  if (edge > c.guest_tcp.advertised_edge()) {
    std::ostringstream os;
    os << what << " shows right edge offset " << edge << ", past the guest's latest "
       << c.guest_tcp.advertised_edge() << ": " << sim::DescribeFrame(ack);
    findings_.Add(Check::kWindowEdges, os.str());
  }
  if (c.told) {
    const std::int64_t shown = OffsetOf(c.shown_edge, data_base);
    if (shown - edge >= (std::int64_t{1} << scale)) {
      std::ostringstream os;
      os << what << " pulls the right edge back from offset " << shown << " to " << edge
         << " (scale " << static_cast<int>(scale) << "): " << sim::DescribeFrame(ack);
      findings_.Add(Check::kWindowEdges, os.str());
    }
  }
}

void Simulation::CheckCounted(const Counters& before, const HostResult& result, bool to_guest) {
  const Counters& after = host_->engine().counters();
  int reasons_moved = 0;
  std::size_t which = 0;
  for (std::size_t i = 0; i < kReasonCount; ++i) {
    const std::uint64_t d = after.by_reason[i] - before.by_reason[i];
    if (d == 0) continue;
    ++reasons_moved;
    which = i;
    if (d != 1) {
      findings_.Add(Check::kCounters, "reason " + std::string(ReasonLabel(static_cast<Reason>(i))) +
                                          " counted " + std::to_string(d) + " times for one frame");
    }
  }
  if (reasons_moved != 1) {
    findings_.Add(Check::kCounters,
                  "a frame was counted under " + std::to_string(reasons_moved) + " reasons");
    return;
  }
  const auto reason = static_cast<Reason>(which);
  if (result.reason && *result.reason != reason) {
    findings_.Add(Check::kCounters, "verdict says " + std::string(ReasonLabel(*result.reason)) +
                                        ", counter says " + std::string(ReasonLabel(reason)));
  }
  auto expect = [&](const char* name, std::uint64_t delta, bool expected) {
    if (delta != (expected ? 1u : 0u)) {
      findings_.Add(Check::kCounters, std::string(name) + " moved by " + std::to_string(delta) +
                                          " for a frame counted as " +
                                          std::string(ReasonLabel(reason)));
    }
  };
  expect("frames_to_guest", after.frames_to_guest - before.frames_to_guest, to_guest);
  expect("frames_from_guest", after.frames_from_guest - before.frames_from_guest, !to_guest);
  expect("early_acks", after.early_acks - before.early_acks, reason == Reason::kEarlyAck);
  expect("window_updates", after.window_updates - before.window_updates,
         reason == Reason::kWindowUpdate);
  expect("guest_acks_suppressed", after.guest_acks_suppressed - before.guest_acks_suppressed,
         reason == Reason::kSuppressed);
  // The verdict and the reason agree: an ACK exactly when the reason says one was made.
  const bool generated = !result.acks.empty();
  if (generated != (reason == Reason::kEarlyAck || reason == Reason::kWindowUpdate)) {
    findings_.Add(Check::kCounters, std::string(generated ? "an ACK" : "no ACK") +
                                        " for a frame counted as " +
                                        std::string(ReasonLabel(reason)));
  }
  if (!to_guest &&
      result.passed == (reason == Reason::kSuppressed || reason == Reason::kWindowUpdate)) {
    findings_.Add(Check::kCounters, std::string(result.passed ? "forwarded" : "suppressed") +
                                        " a guest frame counted as " +
                                        std::string(ReasonLabel(reason)));
  }
}

bool Simulation::AllDone() const {
  for (const auto& c : connections_) {
    if (!c->sender.Finished()) return false;
    if (c->guest_tcp.app_read() != static_cast<std::int64_t>(c->spec.stream_length)) return false;
    if (c->guest_tcp.data_acked() != c->guest_tcp.written()) return false;
    if (c->sender.guest_bytes_received() != c->guest_tcp.written()) return false;
  }
  return true;
}

void Simulation::Drain() {
  int quiet_rounds = 0;
  for (int round = 0; round < kDrainRounds; ++round) {
    if (AllDone()) {
      facts_.converged = true;
      return;
    }
    bool moved = false;
    for (auto& c : connections_) {
      while (!c->link.empty()) {
        Frame f = std::move(c->link.front());
        c->link.pop_front();
        DeliverToHost(*c, std::move(f));
        moved = true;
      }
    }
    std::size_t back_before = 0;
    for (auto& c : connections_)
      back_before += c->back_link.size();
    for (std::size_t g = 0; g < guest_count_; ++g) {
      GuestTurn turn;
      turn.drain = true;
      turn.retransmit = quiet_rounds > 0;
      RunGuest(g, turn);
    }
    std::size_t back_after = 0;
    for (auto& c : connections_)
      back_after += c->back_link.size();
    moved = moved || back_after != back_before;
    for (auto& c : connections_) {
      while (!c->back_link.empty()) {
        Frame f = std::move(c->back_link.front());
        c->back_link.pop_front();
        DeliverToSender(*c, std::move(f));
        moved = true;
      }
      std::vector<Frame> out;
      c->sender.SendData(1 << 20, 0, now_, &out);
      moved = moved || !out.empty();
      SendFromSender(*c, out);
    }
    if (moved) {
      quiet_rounds = 0;
    } else if (findings_.AnyKnown() && quiet_rounds > 50) {
      return;  // a known issue lost data: waiting longer shows nothing new
    } else {
      // Nothing moves: the senders' timers fire (retransmission or zero-window probe).
      ++quiet_rounds;
      for (auto& c : connections_) {
        std::vector<Frame> out;
        c->sender.OnTimeout(now_, &out, known_issues::kProbeAnswerSuppressed);
        SendFromSender(*c, out);
      }
    }
    now_ += 10;
  }
  if (findings_.AnyKnown()) return;  // a known issue lost data: the stall is its consequence
  std::ostringstream os;
  os << "the transfer did not finish after " << kDrainRounds << " rounds:";
  for (std::size_t i = 0; i < connections_.size(); ++i) {
    const Connection& c = *connections_[i];
    os << " [c" << i << " sender acked " << c.sender.acked() << "/" << c.spec.stream_length
       << " sent " << c.sender.sent_max() << " window end " << c.sender.window_end()
       << "; guest rcv_nxt " << c.guest_tcp.rcv_nxt() << " read " << c.guest_tcp.app_read()
       << " edge " << c.guest_tcp.advertised_edge() << "; guest data " << c.guest_tcp.data_acked()
       << "/" << c.guest_tcp.written() << " received " << c.sender.guest_bytes_received() << "]";
  }
  const auto states = host_->engine().FlowsPerState();
  os << " flows by state:";
  for (std::size_t i = 0; i < states.size(); ++i) {
    if (states[i] > 0) os << " " << FlowStateLabel(static_cast<FlowState>(i)) << "=" << states[i];
  }
  findings_.Add(Check::kNoLoss, os.str());
}

void Simulation::SettleWithoutGuests() {
  for (int round = 0; round < kDrainRounds; ++round) {
    bool moved = false;
    for (auto& c : connections_) {
      while (!c->link.empty()) {
        Frame f = std::move(c->link.front());
        c->link.pop_front();
        DeliverToHost(*c, std::move(f));
        moved = true;
      }
      while (!c->back_link.empty()) {
        Frame f = std::move(c->back_link.front());
        c->back_link.pop_front();
        DeliverToSender(*c, std::move(f));
        moved = true;
      }
      std::vector<Frame> out;
      c->sender.SendData(1 << 20, 0, now_, &out);
      moved = moved || !out.empty();
      SendFromSender(*c, out);
    }
    if (!moved) return;
  }
}

void Simulation::FinalChecks() {
  for (std::size_t i = 0; i < connections_.size(); ++i) {
    const Connection& c = *connections_[i];
    if (c.guest_tcp.stats().content_errors > 0 || c.sender.stats().content_errors > 0) {
      findings_.Add(Check::kNoLoss, "c" + std::to_string(i) + ": bytes differ from those sent");
    }
  }
  const Counters& counters = host_->engine().counters();
  std::uint64_t total = 0;
  for (std::uint64_t n : counters.by_reason)
    total += n;
  if (total != counters.frames_to_guest + counters.frames_from_guest) {
    findings_.Add(Check::kCounters,
                  "reasons add up to " + std::to_string(total) + ", frames to " +
                      std::to_string(counters.frames_to_guest + counters.frames_from_guest));
  }
}

}  // namespace vsnoop::proptest
