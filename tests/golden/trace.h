// The golden-trace format (docs/golden-traces.md): a trace file holds a scenario's input
// segments, one a line, and the output vSnoop's host must produce for them. This header
// reads trace files, builds the frames their input lines describe, and prints frames back
// in the same notation, so expected output reads like the input.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vsnoop/clock.h"
#include "vsnoop/engine.h"
#include "vsnoop/sim/frame_builder.h"
#include "vsnoop/wire/bytes.h"
#include "vsnoop/wire/ipv4.h"

namespace vsnoop::golden {

// A mistake in a trace file, with the 1-based line it is on.
class TraceError : public std::runtime_error {
 public:
  TraceError(int line, const std::string& message)
      : std::runtime_error("line " + std::to_string(line) + ": " + message), line_(line) {}
  int line() const { return line_; }

 private:
  int line_;
};

// One TCP connection of a trace: the remote endpoint ("sender", outside the host) and the
// guest endpoint behind the host. The default flow has the empty name.
struct FlowSpec {
  std::string name;
  sim::Endpoint sender;
  sim::Endpoint guest;
};

// One frame line of %input.
struct FrameSpec {
  std::string flow;         // "" for the default flow
  bool from_guest = false;  // '<' (guest -> sender) rather than '>' (sender -> guest)
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint16_t window = 65535;
  std::size_t payload = 0;
  std::optional<std::uint16_t> urgent_pointer;
  std::vector<std::uint8_t> options;  // raw option bytes, in the order written
  wire::Ecn ecn = wire::Ecn::kNotEct;
  std::vector<std::uint16_t> vlans;  // outermost first
  std::uint8_t ttl = 64;
  bool bad_tcp_checksum = false;
  bool bad_ip_checksum = false;
};

enum class StepKind : std::uint8_t {
  kFrame,       // a frame enters the host
  kRun,         // a guest runs: its buffer empties
  kAccel,       // acceleration on or off
  kTime,        // the fake clock moves forward
  kExpire,      // Engine::ExpireIdle
  kState,       // print a flow's state
  kNegotiated,  // print what the engine learnt from a flow's handshake
};

struct Step {
  StepKind kind = StepKind::kFrame;
  int line = 0;
  FrameSpec frame;              // kFrame
  std::string flow;             // kRun, kState, kNegotiated
  bool acceleration_on = true;  // kAccel
  Duration advance{0};          // kTime
};

// One line of %expect (or %counters): its text without comment, whitespace collapsed.
struct ExpectedLine {
  std::string text;
  int line = 0;
};

struct CounterAssertion {
  std::string name;
  std::uint64_t value = 0;
  int line = 0;
};

struct TraceConfig {
  std::uint64_t buffer_bytes = 1 << 20;
  std::uint32_t buffer_frames = 1024;
  EngineConfig engine;
};

struct Trace {
  std::string path;
  std::vector<std::string> lines;  // the file as read, for rewriting it
  std::string disabled;            // why the trace is disabled, from %disabled
  TraceConfig config;
  std::vector<FlowSpec> flows;  // flows[0] is the default flow
  std::vector<Step> steps;
  std::vector<ExpectedLine> expect;
  std::vector<CounterAssertion> counters;
  // 0-based indexes into `lines`: the %expect and %counters headers, and the first line
  // after each section (-1 when the section is absent).
  int expect_header = -1;
  int expect_end = -1;
  int counters_header = -1;
  int counters_end = -1;

  // REQUIRES: the name was declared (the parser checks every use).
  const FlowSpec& flow(const std::string& name) const;
};

// Parses a trace; throws TraceError on the first mistake.
Trace ParseTrace(std::string_view text, const std::string& path);
Trace LoadTrace(const std::filesystem::path& path);

// Parses one frame line of %input ("> S seq=1000 win=64240 <mss 1460>"); `flows` are the
// declared flows, for checking the direction's flow name.
FrameSpec ParseFrameLine(std::string_view line, const std::vector<FlowSpec>& flows, int line_no);

// The frame an input line describes.
std::vector<std::uint8_t> BuildFrame(const FrameSpec& spec, const FlowSpec& flow);

// One frame in trace notation: "<b . seq=5001 ack=2449 win=497 <ts 200 101> vlan=100".
// The direction is given by the flow whose endpoints the frame joins ('>' sender to guest,
// '<' guest to sender, followed by the flow's name); a frame of no declared flow shows its
// addresses instead.
std::string DescribeTraceFrame(wire::Bytes frame, const std::vector<FlowSpec>& flows);

// A line as compared: comment ('#' to the end) removed, whitespace runs made one space,
// no leading or trailing space.
std::string NormalizeLine(std::string_view line);

}  // namespace vsnoop::golden
