// Plays a golden trace through the host model (sim::HostModel, engine inline) and records,
// in trace notation, everything the host put on a wire, what became of each input frame
// and why, plus the engine's counters at the end.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "trace.h"

namespace vsnoop::golden {

struct OutputLine {
  std::string text;    // formatted in columns; compare NormalizeLine(text)
  int input_line = 0;  // the %input line that produced it
};

struct RunResult {
  std::vector<OutputLine> lines;
  // Every counter a %counters line may name, with its value after the last step.
  std::map<std::string, std::uint64_t> counters;
};

// REQUIRES: `trace` came from ParseTrace. Throws TraceError when an input line's frame
// cannot be built (options longer than 40 bytes, a payload too large for IP).
RunResult RunTrace(const Trace& trace);

// "ack", "< . seq=5001 ack=2449 win=497 <ts 200 101>", "" -> the line in aligned columns.
std::string FormatOutputLine(std::string_view kind, std::string_view frame_text,
                             std::string_view reason);

}  // namespace vsnoop::golden
