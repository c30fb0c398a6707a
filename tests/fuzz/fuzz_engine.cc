// libFuzzer target for the engine inside sim::HostModel. The input is a program of steps on
// one model (64 flows at most, two guests with small buffers): frames to a guest, frames
// from a guest, guest runs, time advancing, idle expiry, a guest going away, acceleration
// switched off and on, and raw or mutated frames. Frames are built with sim::FrameBuilder
// from fuzzed fields over a few fixed endpoints, so flows collide; sequence and ACK numbers
// are fuzzed either absolutely or relative to what each side last sent, so handshakes and
// in-order data are easy to reach. After every step the model's invariants are checked and
// a violation traps (__builtin_trap), as does any VSNOOP_BUG:
//   - the flow table never holds more than its capacity;
//   - every ACK vSnoop generates parses, has valid IP and TCP checksums, the ACK flag (and
//     ECE only if ECN was negotiated), no payload, no option but timestamps, and goes from
//     the guest to the sender of the frame it answers; its right edge is never beyond the
//     guest's own, nor left of what the sender was shown (but for rounding to the window
//     scale);
//   - an early ACK follows a placed, in-order data segment with valid checksums, the ACK
//     flag and no SYN, FIN, RST, URG or CE mark, acknowledges exactly up to its end and
//     echoes its TSval; a window update repeats the ACK number of the latest early ACK;
//   - no early ACK for a frame that did not fit the guest's buffer;
//   - every frame is counted under exactly one reason.
//
// Input format (tests/fuzz/make_corpus.py writes seeds in it; integers are big-endian and
// read as 0 once the input is exhausted):
//   step := u8 op, then by op % 9:
//     0 frame to a guest      FrameSpec
//     1 frame from a guest    FrameSpec
//     2 guest runs            u8 guest
//     3 time advances         u16 amount, u8 unit (% 4: us, ms, s, 10 s)
//     4 ExpireIdle
//     5 ForgetGuest           u8 guest
//     6 raw frame             u8 length, that many bytes
//     7 mutated frame         u8 direction (bit 0: from the guest), FrameSpec,
//                             u8 count (% 5), count x (u16 position, u8 value), u8 cut
//     8 acceleration          u8 (bit 0: off)
//   FrameSpec := u8 tuple [u8 wide_port], u8 flags, u8 seq_mode, u32 seq, u8 ack_mode,
//                u32 ack, u16 window, u16 payload (% 4096), u8 options, option fields
//     tuple bit 0: guest (0: 10.0.0.2, 1: fd00::2); bit 1: remote (.1 or .3);
//           bits 2-3: remote port 40000 + n; bit 4: remote port 1024 + wide_port instead;
//           bit 5: guest port 22 instead of 5201; bits 6-7: VLAN tags (3 is one too many)
//     seq_mode % 4: 0 absolute; 1 this side's next; 2 next + seq % 65536; 3 next - seq % 65536
//     ack_mode: the same, relative to the other side's next
//     options bit 0 timestamps: u8 mode; mode bit 0: u32 tsval, u32 tsecr; else tsval =
//                  this side's last + (mode >> 1), tsecr = the other side's last
//             bit 1 MSS: u16; bit 2 window scale: u8; bit 3 SACK-permitted;
//             bit 4 SACK block: u32 left, u32 right; bit 5 raw option: u8 n (% 13), n bytes;
//             bit 6 ECN: u8 (% 4); bit 7 bad checksum: u8 (bit 0 IP, bit 1 TCP)
//
// With VSNOOP_FUZZ_TRACE set in the environment, each step is printed (DescribeFrame lines),
// to read what a seed or a crashing input does: fuzz_engine INPUT_FILE.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "vsnoop/bug.h"
#include "vsnoop/engine.h"
#include "vsnoop/segment.h"
#include "vsnoop/seq.h"
#include "vsnoop/sim/frame_builder.h"
#include "vsnoop/sim/host_model.h"

namespace {

using namespace vsnoop;  // NOLINT(google-build-using-namespace): a test driver
namespace flag = wire::tcp_flag;

constexpr std::size_t kMaxFlows = 64;
constexpr std::size_t kMaxSteps = 4096;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool tracing = false;

void Trace(const char* what, wire::Bytes frame) {
  if (tracing) std::fprintf(stderr, "%s %s\n", what, sim::DescribeFrame(frame).c_str());
}

[[noreturn]] void TrapOnBug(const char* /*file*/, int /*line*/, const char* /*what*/) {
  __builtin_trap();
}

// Reads the input front to back; past the end every read gives zeros.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return at_ >= size_; }
  std::uint8_t U8() { return at_ < size_ ? data_[at_++] : 0; }
  // Two statements each: the operands of | are not sequenced, the bytes' order must be.
  std::uint16_t U16() {
    const std::uint16_t high = U8();
    return static_cast<std::uint16_t>(high << 8 | U8());
  }
  std::uint32_t U32() {
    const std::uint32_t high = U16();
    return high << 16 | U16();
  }
  std::vector<std::uint8_t> Take(std::size_t n) {
    std::vector<std::uint8_t> out;
    while (n-- > 0 && !empty())
      out.push_back(U8());
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// What each side of a tuple sent last: sequence space and TSval. Index 0 is the remote
// sender (to the guest), 1 the guest.
struct TupleState {
  std::uint32_t next[2] = {1000, 5000};
  std::uint32_t ts[2] = {100, 200};
};
using TupleId = std::tuple<int, int, std::uint16_t, std::uint16_t>;

class Harness {
 public:
  Harness()
      : model_(EngineConfig{.max_flows = kMaxFlows},
               {*sim::IpAddress::FromString("10.0.0.2"), *sim::IpAddress::FromString("fd00::2")},
               sim::BufferLimits{.bytes = 12000, .frames = 8}) {}

  void Run(ByteReader& in) {
    for (std::size_t step = 0; step < kMaxSteps && !in.empty(); ++step) {
      switch (in.U8() % 9) {
        case 0:
          Process(BuildFrame(in, /*from_guest=*/false));
          break;
        case 1:
          Process(BuildFrame(in, /*from_guest=*/true));
          break;
        case 2:
          model_.RunGuest(in.U8() % model_.guest_count());
          if (tracing) std::fprintf(stderr, "guest runs\n");
          break;
        case 3: {
          const std::uint16_t amount = in.U16();
          // At most 4096 steps of 65535 x 10 s: far from overflowing 64-bit nanoseconds.
          static constexpr Duration kUnits[] = {std::chrono::microseconds(1),
                                                std::chrono::milliseconds(1),
                                                std::chrono::seconds(1), std::chrono::seconds(10)};
          now_ += amount * kUnits[in.U8() % 4];
          if (tracing) std::fprintf(stderr, "time %lld ns\n", static_cast<long long>(now_.count()));
          break;
        }
        case 4: {
          const std::size_t n = model_.engine().ExpireIdle(now_);
          if (tracing) std::fprintf(stderr, "expired %zu\n", n);
          break;
        }
        case 5: {
          const std::size_t n = model_.engine().ForgetGuest(in.U8() % model_.guest_count());
          if (tracing) std::fprintf(stderr, "forgot %zu\n", n);
          break;
        }
        case 6: {
          const std::size_t n = in.U8();
          Process(in.Take(n));
          break;
        }
        case 7: {
          const bool from_guest = (in.U8() & 1) != 0;
          std::vector<std::uint8_t> frame = BuildFrame(in, from_guest);
          const int count = in.U8() % 5;
          for (int i = 0; i < count; ++i) {
            const std::uint16_t position = in.U16();
            const std::uint8_t value = in.U8();
            frame[position % frame.size()] = value;
          }
          const std::size_t cut = in.U8();
          if (cut < frame.size()) frame.resize(frame.size() - cut);
          Process(frame);
          break;
        }
        case 8:
          model_.set_acceleration((in.U8() & 1) != 0 ? Acceleration::kOff : Acceleration::kOn);
          break;
      }
      CheckTable();
    }
  }

 private:
  static std::uint32_t Relative(std::uint8_t mode, std::uint32_t value, std::uint32_t next) {
    switch (mode % 4) {
      case 0:
        return value;
      case 1:
        return next;
      case 2:
        return next + (value % 65536);
      default:
        return next - (value % 65536);
    }
  }

  std::vector<std::uint8_t> BuildFrame(ByteReader& in, bool from_guest) {
    const std::uint8_t tuple = in.U8();
    const int guest = tuple & 1;
    const int remote = (tuple >> 1) & 1;
    const std::uint16_t remote_port = (tuple & 0x10) != 0
                                          ? static_cast<std::uint16_t>(1024 + in.U8())
                                          : static_cast<std::uint16_t>(40000 + ((tuple >> 2) & 3));
    const std::uint16_t guest_port = (tuple & 0x20) != 0 ? 22 : 5201;
    const int vlan_tags = tuple >> 6;
    sim::Endpoint guest_end = guests_[guest];
    guest_end.port = guest_port;
    sim::Endpoint remote_end = remotes_[guest][remote];
    remote_end.port = remote_port;
    TupleState& state = tuples_[TupleId{guest, remote, remote_port, guest_port}];
    const int me = from_guest ? 1 : 0;
    const int peer = 1 - me;

    sim::FrameBuilder b;
    b.From(from_guest ? guest_end : remote_end).To(from_guest ? remote_end : guest_end);
    for (int i = 0; i < vlan_tags; ++i)
      b.Vlan(static_cast<std::uint16_t>(10 + i));
    const std::uint8_t flags = in.U8();
    const std::uint8_t seq_mode = in.U8();
    const std::uint32_t seq = Relative(seq_mode, in.U32(), state.next[me]);
    const std::uint8_t ack_mode = in.U8();
    const std::uint32_t ack = Relative(ack_mode, in.U32(), state.next[peer]);
    b.Seq(seq).Window(in.U16());
    if ((flags & flag::kAck) != 0) b.Ack(ack);
    b.Flags(static_cast<std::uint8_t>(flags & ~flag::kAck));
    const std::size_t payload = in.U16() % 4096;
    b.Payload(payload, static_cast<std::uint8_t>(seq));

    const std::uint8_t options = in.U8();
    std::size_t option_bytes = 0;
    auto room = [&option_bytes](std::size_t n) {
      if (option_bytes + n > wire::kTcpMaxHeaderSize - wire::kTcpMinHeaderSize) return false;
      option_bytes += n;
      return true;
    };
    if ((options & 0x01) != 0) {
      const std::uint8_t mode = in.U8();
      std::uint32_t tsval = state.ts[me] + (mode >> 1);
      std::uint32_t tsecr = state.ts[peer];
      if ((mode & 1) != 0) {
        tsval = in.U32();
        tsecr = in.U32();
      }
      if (room(12)) {
        b.Timestamps(tsval, tsecr);
        state.ts[me] = tsval;
      }
    }
    if ((options & 0x02) != 0) {
      const std::uint16_t mss = in.U16();
      if (room(4)) b.Mss(mss);
    }
    if ((options & 0x04) != 0) {
      const std::uint8_t shift = in.U8();
      if (room(4)) b.WindowScale(shift);
    }
    if ((options & 0x08) != 0 && room(4)) b.SackPermitted();
    if ((options & 0x10) != 0) {
      const std::uint32_t left = in.U32();
      const std::uint32_t right = in.U32();
      if (room(12)) b.Sack(left, right);
    }
    if ((options & 0x20) != 0) {
      const std::vector<std::uint8_t> raw = in.Take(in.U8() % 13);
      if (room(raw.size())) b.RawOption(raw);
    }
    if ((options & 0x40) != 0) b.Ecn(static_cast<wire::Ecn>(in.U8() % 4));
    if ((options & 0x80) != 0) {
      const std::uint8_t bad = in.U8();
      if ((bad & 1) != 0) b.BadIpChecksum();
      if ((bad & 2) != 0) b.BadTcpChecksum();
    }

    // This side's next sequence number moves to the end of what it just sent.
    const SeqNum end = SeqNum(seq) + static_cast<std::uint32_t>(payload) +
                       ((flags & flag::kSyn) != 0 ? 1 : 0) + ((flags & flag::kFin) != 0 ? 1 : 0);
    if (seq_mode % 4 == 0 || After(end, SeqNum(state.next[me]))) state.next[me] = end.value();
    return b.Build();
  }

  // The flow a parsed frame belongs to, oriented as the engine keys it (remote -> guest,
  // IPv4 addresses IPv4-mapped), when the frame is to or from a guest.
  std::optional<FlowKey> KeyOf(const Segment& seg) const {
    const auto addresses = sim::FrameAddresses(seg.frame);
    if (!addresses) return std::nullopt;
    const bool to_guest = model_.GuestIndex(addresses->second).has_value();
    if (!to_guest && !model_.GuestIndex(addresses->first)) return std::nullopt;
    auto put = [&seg](std::array<std::uint8_t, 16>* out, const std::uint8_t* ip) {
      if (seg.family == 4) {
        (*out)[10] = (*out)[11] = 0xFF;
        std::memcpy(out->data() + 12, ip, 4);
      } else {
        std::memcpy(out->data(), ip, 16);
      }
    };
    FlowKey key;
    key.family = seg.family;
    put(&key.remote_ip, to_guest ? seg.source_ip : seg.destination_ip);
    put(&key.guest_ip, to_guest ? seg.destination_ip : seg.source_ip);
    key.remote_port = to_guest ? seg.tcp.source_port() : seg.tcp.destination_port();
    key.guest_port = to_guest ? seg.tcp.destination_port() : seg.tcp.source_port();
    return key;
  }

  void Process(wire::Bytes frame) {
    Reason why{};
    const std::optional<Segment> seen = ParseSegment(frame, &why);
    const std::optional<FlowKey> key = seen ? KeyOf(*seen) : std::nullopt;
    // What the sender had been shown of the guest's window before this frame.
    std::optional<SeqNum> edge_shown;
    if (key) {
      if (const Flow* flow = model_.engine().flows().Find(*key)) edge_shown = flow->advertised_edge;
    }

    std::vector<sim::Output> out;
    const sim::InputFate fate = model_.Process(frame, now_, &out);
    if (tracing) {
      static const char* const kFates[] = {"placed", "dropped", "forwarded", "suppressed",
                                           "passed"};
      Trace(kFates[static_cast<int>(fate)], frame);
      for (const sim::Output& o : out) {
        if (o.kind == sim::Output::Kind::kEarlyAck) Trace("  early-ack", o.bytes);
        if (o.kind == sim::Output::Kind::kWindowUpdate) Trace("  window-update", o.bytes);
      }
    }

    for (const sim::Output& o : out) {
      const bool early = o.kind == sim::Output::Kind::kEarlyAck;
      if (!early && o.kind != sim::Output::Kind::kWindowUpdate) continue;
      // An early ACK follows a frame placed in the buffer; a window update replaces a
      // guest frame.
      Check(early ? fate == sim::InputFate::kPlaced : fate == sim::InputFate::kSuppressed);
      Check(seen.has_value() && key.has_value() && edge_shown.has_value());
      const std::optional<Segment> ack = ParseSegment(o.bytes, &why);
      Check(ack.has_value());
      Check(ack->IpChecksumValid());
      Check(ack->TcpChecksumValid());
      // ACK, and ECE only on a flow that negotiated ECN (RFC 3168 §6.1.3: echoing a CE
      // mark until the sender's CWR).
      Check(ack->tcp.flags() == flag::kAck || ack->tcp.flags() == (flag::kAck | flag::kEce));
      Check(ack->payload_size == 0);
      Check(ack->family == seen->family);
      // Timestamps at most: no SACK blocks, nothing else (the brief, section 4).
      const wire::TcpOptions ack_options = wire::TcpOptions::Read(ack->tcp.options());
      Check(ack_options.only_timestamps());
      const std::size_t address_size = seen->family == 4 ? 4 : 16;
      // From the guest to the remote sender.
      const std::uint8_t* guest_ip = early ? seen->destination_ip : seen->source_ip;
      const std::uint8_t* remote_ip = early ? seen->source_ip : seen->destination_ip;
      const std::uint16_t guest_port =
          early ? seen->tcp.destination_port() : seen->tcp.source_port();
      const std::uint16_t remote_port =
          early ? seen->tcp.source_port() : seen->tcp.destination_port();
      Check(std::memcmp(ack->source_ip, guest_ip, address_size) == 0);
      Check(std::memcmp(ack->destination_ip, remote_ip, address_size) == 0);
      Check(ack->tcp.source_port() == guest_port);
      Check(ack->tcp.destination_port() == remote_port);

      // The window: never beyond the guest's own right edge, and never left of what the
      // sender was already shown, except by the rounding to the window scale (less than
      // one unit, RFC 7323 §2.4).
      const Flow* flow = model_.engine().flows().Find(*key);
      Check(flow != nullptr);
      Check(!ack->tcp.Has(flag::kEce) || flow->ecn);
      const std::uint8_t scale = flow->guest_window_scale;
      const SeqNum edge =
          SeqNum(ack->tcp.ack()) + (static_cast<std::uint32_t>(ack->tcp.window()) << scale);
      Check(!After(edge, flow->guest_right_edge));
      Check(!Before(edge + ((std::uint32_t{1} << scale) - 1), *edge_shown));

      std::vector<std::uint8_t> tuple(ack->source_ip, ack->source_ip + address_size);
      tuple.insert(tuple.end(), ack->destination_ip, ack->destination_ip + address_size);
      tuple.push_back(static_cast<std::uint8_t>(guest_port >> 8));
      tuple.push_back(static_cast<std::uint8_t>(guest_port));
      tuple.push_back(static_cast<std::uint8_t>(remote_port >> 8));
      tuple.push_back(static_cast<std::uint8_t>(remote_port));
      if (early) {
        // Only data the guest will accept, in order (the brief, section 4): never beyond the
        // data placed, exactly the end of this segment.
        const wire::TcpView& data = seen->tcp;
        Check(ack->tcp.ack() == data.seq() + seen->payload_size);
        Check(seen->payload_size > 0);
        Check(!data.Has(flag::kSyn) && !data.Has(flag::kFin) && !data.Has(flag::kRst) &&
              !data.Has(flag::kUrg) && data.Has(flag::kAck));
        Check(seen->ecn != wire::Ecn::kCe);
        Check(seen->IpChecksumValid() && seen->TcpChecksumValid());
        // TSecr echoes the TSval of the segment acknowledged.
        if (ack_options.has_timestamps) {
          const wire::TcpOptions data_options = wire::TcpOptions::Read(data.options());
          Check(data_options.has_timestamps && ack_options.ts_echo == data_options.ts_value);
        }
        last_early_ack_[tuple] = ack->tcp.ack();
      } else {
        // A window update says nothing new about data: it carries vSnoop's latest ACK.
        const auto last = last_early_ack_.find(tuple);
        Check(last != last_early_ack_.end() && last->second == ack->tcp.ack());
      }
    }
    if (fate == sim::InputFate::kDropped) {
      for (const sim::Output& o : out)
        Check(o.kind != sim::Output::Kind::kEarlyAck);
    }
  }

  void CheckTable() {
    const Engine& engine = model_.engine();
    const FlowTable& table = engine.flows();
    Check(table.capacity() == kMaxFlows);
    Check(table.size() <= table.capacity());
    Check(table.accelerated_count() <= table.size());
    std::size_t per_state = 0;
    for (const std::size_t n : engine.FlowsPerState())
      per_state += n;
    Check(per_state == table.size());
    // Every frame is counted under exactly one reason.
    const Counters& c = engine.counters();
    std::uint64_t reasons = 0;
    for (const std::uint64_t n : c.by_reason)
      reasons += n;
    Check(reasons == c.frames_to_guest + c.frames_from_guest);
  }

  // Indexed by the guest's family (0: IPv4, 1: IPv6), then by remote.
  const sim::Endpoint guests_[2] = {sim::Endpoint::Parse("10.0.0.2:0"),
                                    sim::Endpoint::Parse("[fd00::2]:0")};
  const sim::Endpoint remotes_[2][2] = {
      {sim::Endpoint::Parse("10.0.0.1:0"), sim::Endpoint::Parse("10.0.0.3:0")},
      {sim::Endpoint::Parse("[fd00::1]:0"), sim::Endpoint::Parse("[fd00::3]:0")}};
  sim::HostModel model_;
  Timestamp now_{std::chrono::seconds(1)};
  std::map<TupleId, TupleState> tuples_;
  // By (guest IP, remote IP, guest port, remote port): the ACK number of the last early ACK.
  std::map<std::vector<std::uint8_t>, std::uint32_t> last_early_ack_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  SetBugHandler(TrapOnBug);
  tracing = std::getenv("VSNOOP_FUZZ_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteReader in(data, size);
  Harness harness;
  harness.Run(in);
  return 0;
}
