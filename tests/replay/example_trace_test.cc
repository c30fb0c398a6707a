// The bundled example capture, examples/consolidated-transfer.pcap: it is what its
// generator writes today, it is what examples/README.md says it is, and vsnoop-replay
// acknowledges early on it while the guest waits for its CPU, without dropping anything.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pcap_file.h"
#include "replay_harness.h"
#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop::replay_test {
namespace {

using sim::Endpoint;
namespace flag = wire::tcp_flag;

const Endpoint kSender = Endpoint::Parse("192.168.50.10:43512");
const Endpoint kGuest = Endpoint::Parse("192.168.50.21:5201");
constexpr std::int64_t kMillisecond = 1'000'000;

bool SameAddress(const std::uint8_t* ip, const Endpoint& e) {
  return std::memcmp(ip, e.ip.bytes.data(), 4) == 0;
}

// Frames of the example, read as segments of the one connection it holds.
struct ExampleFrame {
  std::int64_t time = 0;  // ns
  bool from_guest = false;
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t payload = 0;
  wire::TcpOptions options;
};

std::vector<ExampleFrame> ReadConnection(const PcapContents& capture) {
  std::vector<ExampleFrame> frames;
  for (const PcapRecord& r : capture.records) {
    Reason why{};
    const auto seg = ParseSegment(r.bytes, &why);
    EXPECT_TRUE(seg.has_value()) << sim::DescribeFrame(r.bytes);
    if (!seg) continue;
    EXPECT_TRUE(seg->IpChecksumValid() && seg->TcpChecksumValid()) << sim::DescribeFrame(r.bytes);
    ExampleFrame f;
    f.time = r.TotalNanoseconds();
    f.from_guest = SameAddress(seg->source_ip, kGuest);
    const Endpoint& src = f.from_guest ? kGuest : kSender;
    const Endpoint& dst = f.from_guest ? kSender : kGuest;
    EXPECT_TRUE(SameAddress(seg->source_ip, src) && SameAddress(seg->destination_ip, dst) &&
                seg->tcp.source_port() == src.port && seg->tcp.destination_port() == dst.port)
        << "not the example's connection: " << sim::DescribeFrame(r.bytes);
    f.flags = seg->tcp.flags();
    f.seq = seg->tcp.seq();
    f.payload = seg->payload_size;
    f.options = wire::TcpOptions::Read(seg->tcp.options());
    frames.push_back(f);
  }
  return frames;
}

// The times at which the guest was silent for at least `at_least`, as [from, to) intervals
// between consecutive frames from the guest.
std::vector<std::pair<std::int64_t, std::int64_t>> GuestSilences(
    const std::vector<ExampleFrame>& frames, std::int64_t at_least) {
  std::vector<std::pair<std::int64_t, std::int64_t>> silences;
  std::optional<std::int64_t> last;
  for (const ExampleFrame& f : frames) {
    if (!f.from_guest) continue;
    if (last && f.time - *last >= at_least) silences.emplace_back(*last, f.time);
    last = f.time;
  }
  return silences;
}

class ExampleTraceTest : public ScratchDirTest {};

TEST_F(ExampleTraceTest, CommittedFileIsWhatTheGeneratorWrites) {
  const RunResult r = RunProgram(VSNOOP_MAKE_EXAMPLE_TRACE_BINARY, {Path("fresh.pcap")}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ReadWholeFile(Path("fresh.pcap")) == ReadWholeFile(VSNOOP_EXAMPLE_TRACE))
      << "examples/consolidated-transfer.pcap is stale: regenerate it with "
         "make_example_trace examples/consolidated-transfer.pcap";
}

TEST_F(ExampleTraceTest, HoldsOneMebibyteTransferWithGuestAcksInBursts) {
  const std::string bytes = ReadWholeFile(VSNOOP_EXAMPLE_TRACE);
  EXPECT_LT(bytes.size(), 2u << 20);
  const PcapContents capture = ReadPcap(VSNOOP_EXAMPLE_TRACE);
  EXPECT_EQ(capture.link_type, DLT_EN10MB);
  const std::vector<ExampleFrame> frames = ReadConnection(capture);
  ASSERT_GE(frames.size(), 3u);

  // The handshake, with Linux's options on both sides.
  for (std::size_t i : {0, 1}) {
    SCOPED_TRACE(i == 0 ? "SYN" : "SYN-ACK");
    EXPECT_EQ(frames[i].from_guest, i == 1);
    EXPECT_TRUE((frames[i].flags & flag::kSyn) != 0);
    EXPECT_EQ(frames[i].options.mss, 1460);
    EXPECT_TRUE(frames[i].options.sack_permitted);
    EXPECT_TRUE(frames[i].options.has_timestamps);
    EXPECT_EQ(frames[i].options.window_scale, 7);
  }

  // 1 MiB of data, in order, each byte once; timestamps on every segment.
  const std::uint32_t first_byte = frames[0].seq + 1;
  std::uint32_t next = first_byte;
  std::uint64_t data_frames = 0;
  for (const ExampleFrame& f : frames) {
    EXPECT_TRUE(f.options.has_timestamps);
    if (f.from_guest || f.payload == 0) continue;
    EXPECT_EQ(f.seq, next) << "data out of order or repeated";
    next = f.seq + f.payload;
    ++data_frames;
  }
  EXPECT_EQ(next - first_byte, 1u << 20);

  // Consolidation: the guest falls silent for tens of milliseconds while data keeps
  // arriving, then its ACKs leave in a burst.
  const auto silences = GuestSilences(frames, 20 * kMillisecond);
  EXPECT_GE(silences.size(), 2u);
  std::uint64_t data_during_silences = 0;
  for (const auto& [from, to] : silences) {
    std::uint64_t acks_in_next_ms = 0;
    for (const ExampleFrame& f : frames) {
      if (!f.from_guest && f.payload > 0 && f.time > from && f.time < to) ++data_during_silences;
      if (f.from_guest && f.time >= to && f.time < to + kMillisecond) ++acks_in_next_ms;
    }
    EXPECT_GE(acks_in_next_ms, 10u) << "no burst of guest ACKs when the guest runs again";
  }
  EXPECT_GE(data_during_silences, data_frames / 4);
}

TEST_F(ExampleTraceTest, ReplayAcknowledgesEarlyWhileTheGuestWaits) {
  const RunResult r =
      RunProgram(VSNOOP_REPLAY_BINARY,
                 {"--guest-ip", "192.168.50.21", VSNOOP_EXAMPLE_TRACE, Path("out.pcap")}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json counters = ParseCounters(r);
  const PcapContents in = ReadPcap(VSNOOP_EXAMPLE_TRACE);
  const PcapContents out = ReadPcap(Path("out.pcap"));
  EXPECT_EQ(counters["flows_seen"], 1);
  EXPECT_EQ(counters["frames_dropped_no_buffer"], 0);
  EXPECT_GT(counters["early_acks"], 0);
  EXPECT_GT(counters["guest_acks_suppressed"], 0);
  EXPECT_EQ(counters["frames_out"], out.records.size());

  // OUT is IN less the suppressed guest ACKs, plus generated ACKs, each stamped with the
  // time of the frame that caused it: a frame to the guest, or a guest ACK it replaces.
  auto from_guest = [](const PcapRecord& record) {
    Reason why{};
    const auto seg = ParseSegment(record.bytes, &why);
    return seg && SameAddress(seg->source_ip, kGuest);
  };
  std::size_t next_in = 0;
  std::optional<std::int64_t> last_cause;
  std::uint64_t generated = 0;
  std::uint64_t suppressed = 0;
  std::vector<std::int64_t> generated_times;
  for (const PcapRecord& o : out.records) {
    std::size_t k = next_in;
    while (k < in.records.size() && in.records[k].bytes != o.bytes && from_guest(in.records[k])) {
      ++k;
    }
    if (k < in.records.size() && in.records[k].bytes == o.bytes) {
      EXPECT_EQ(o.TotalNanoseconds(), in.records[k].TotalNanoseconds());
      suppressed += k - next_in;
      next_in = k + 1;
      last_cause = o.TotalNanoseconds();
      continue;
    }
    // Generated: caused by the last frame forwarded, or by a guest ACK not forwarded.
    ASSERT_TRUE(from_guest(o)) << "OUT has a frame that is not in IN: "
                               << sim::DescribeFrame(o.bytes);
    ++generated;
    generated_times.push_back(o.TotalNanoseconds());
    if (last_cause == o.TotalNanoseconds()) continue;
    std::size_t cause = next_in;
    while (cause < k && in.records[cause].TotalNanoseconds() != o.TotalNanoseconds())
      ++cause;
    ASSERT_LT(cause, k) << "a generated frame with no cause at its time";
    suppressed += cause + 1 - next_in;
    next_in = cause + 1;
    last_cause = o.TotalNanoseconds();
  }
  for (; next_in < in.records.size(); ++next_in) {
    EXPECT_TRUE(from_guest(in.records[next_in])) << "input frame " << next_in << " is not in OUT";
    ++suppressed;
  }
  EXPECT_EQ(suppressed, counters["guest_acks_suppressed"].get<std::uint64_t>() +
                            counters["window_updates"].get<std::uint64_t>());
  EXPECT_EQ(generated, counters["early_acks"].get<std::uint64_t>() +
                           counters["window_updates"].get<std::uint64_t>());
  ExpectAcksCoverOnlyDeliveredBytes(out, kSender, kGuest, ReadConnection(in).front().seq + 1);

  // The point of vSnoop: ACKs reach the sender while the guest is descheduled.
  std::uint64_t acks_while_guest_silent = 0;
  for (const auto& [from, to] : GuestSilences(ReadConnection(in), 20 * kMillisecond)) {
    for (const std::int64_t t : generated_times) {
      if (t > from && t < to) ++acks_while_guest_silent;
    }
  }
  EXPECT_GT(acks_while_guest_silent, 0u);
}

}  // namespace
}  // namespace vsnoop::replay_test
