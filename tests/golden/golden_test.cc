// The golden traces: one test per file in tests/golden/traces/. Each plays its %input
// through the host model and compares what the host put on a wire with %expect, and the
// engine's counters with %counters. VSNOOP_GOLDEN_UPDATE=1 rewrites both sections from
// the run instead (for a new trace; every expectation must then be checked by reading it
// against the brief). See docs/golden-traces.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "check.h"
#include "runner.h"
#include "trace.h"

namespace vsnoop::golden {
namespace {

struct TraceFile {
  std::filesystem::path path;
  std::string test_name;
};

// Printed by gtest in failure messages about a parameter.
void PrintTo(const TraceFile& file, std::ostream* os) {
  *os << file.path.string();
}

bool DeclaresDisabled(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("%disabled", 0) == 0) return true;
  }
  return false;
}

enum class Which : std::uint8_t { kAll, kEnabled, kDisabled };

std::vector<TraceFile> ListTraceFiles(Which which = Which::kAll) {
  std::vector<TraceFile> files;
  const std::filesystem::path dir(VSNOOP_GOLDEN_TRACE_DIR);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() != ".trace") continue;
    std::string name = entry.path().stem().string();
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    const bool disabled = DeclaresDisabled(entry.path());
    if ((which == Which::kEnabled && disabled) || (which == Which::kDisabled && !disabled)) {
      continue;
    }
    files.push_back(TraceFile{entry.path(), name});
  }
  std::sort(files.begin(), files.end(),
            [](const TraceFile& a, const TraceFile& b) { return a.path < b.path; });
  return files;
}

bool UpdateRequested() {
  const char* update = std::getenv("VSNOOP_GOLDEN_UPDATE");
  return update != nullptr && std::string(update) == "1";
}

class GoldenTrace : public ::testing::TestWithParam<TraceFile> {};

TEST_P(GoldenTrace, Replays) {
  const std::string path = GetParam().path.string();
  Trace trace;
  RunResult run;
  try {
    trace = LoadTrace(GetParam().path);
    run = RunTrace(trace);
  } catch (const TraceError& e) {
    ADD_FAILURE_AT(path.c_str(), e.line()) << path << ":" << e.line() << ": " << e.what();
    return;
  }
  if (!trace.disabled.empty()) {
    std::cout << path << ": disabled: " << trace.disabled << "\n";
  }
  if (UpdateRequested()) {
    std::ofstream(GetParam().path, std::ios::binary | std::ios::trunc)
        << RewriteExpectations(trace, run);
    std::cout << "rewrote %expect and %counters of " << path
              << ": read every line against the brief before committing it\n";
    return;
  }
  const CheckResult check = CheckTrace(trace, run);
  if (!check.ok) ADD_FAILURE_AT(path.c_str(), check.first_line) << check.report;
}

std::string TestName(const ::testing::TestParamInfo<TraceFile>& param_info) {
  return param_info.param.test_name;
}

INSTANTIATE_TEST_SUITE_P(Traces, GoldenTrace, ::testing::ValuesIn(ListTraceFiles(Which::kEnabled)),
                         TestName);
// Traces with %disabled document a disagreement between the engine and the brief. The
// DISABLED_ prefix makes gtest and ctest skip them; run them with
// --gtest_also_run_disabled_tests.
INSTANTIATE_TEST_SUITE_P(DISABLED_Traces, GoldenTrace,
                         ::testing::ValuesIn(ListTraceFiles(Which::kDisabled)), TestName);

// Guards against a wrong trace directory, which would otherwise run no trace at all.
TEST(GoldenTraceDirectory, HoldsTheScenarios) {
  EXPECT_GE(ListTraceFiles().size(), 30u) << "traces expected in " << VSNOOP_GOLDEN_TRACE_DIR;
}

}  // namespace
}  // namespace vsnoop::golden
