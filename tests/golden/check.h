// Compares what a trace produced with its %expect and %counters sections, renders the
// differences readably (file:line, '-' expected, '+' actual), and rewrites the sections
// for VSNOOP_GOLDEN_UPDATE=1.
#pragma once

#include <string>
#include <vector>

#include "runner.h"
#include "trace.h"

namespace vsnoop::golden {

struct DiffOp {
  enum class Kind : std::uint8_t { kSame, kExpectedOnly, kActualOnly };
  Kind kind;
  std::size_t expected = 0;  // index into the expected lines (kSame, kExpectedOnly)
  std::size_t actual = 0;    // index into the actual lines (kSame, kActualOnly)
};

// A shortest edit script between two line lists (longest common subsequence).
std::vector<DiffOp> DiffLines(const std::vector<std::string>& expected,
                              const std::vector<std::string>& actual);

struct CheckResult {
  bool ok = true;
  int first_line = 0;  // the trace line of the first difference, for the failure's location
  std::string report;  // empty when ok
};

CheckResult CheckTrace(const Trace& trace, const RunResult& run);

// The trace file's text with %expect replaced by the run's output (comments of lines that
// did not change are kept) and each %counters value replaced by the run's.
std::string RewriteExpectations(const Trace& trace, const RunResult& run);

}  // namespace vsnoop::golden
