// Checking a golden trace's run against its expectations (see check.h).
#include "check.h"

#include <algorithm>
#include <sstream>

namespace vsnoop::golden {
namespace {

std::vector<std::string> ExpectedTexts(const Trace& trace) {
  std::vector<std::string> out;
  for (const ExpectedLine& e : trace.expect)
    out.push_back(e.text);
  return out;
}

std::vector<std::string> ActualTexts(const RunResult& run) {
  std::vector<std::string> out;
  for (const OutputLine& l : run.lines)
    out.push_back(NormalizeLine(l.text));
  return out;
}

}  // namespace

std::vector<DiffOp> DiffLines(const std::vector<std::string>& expected,
                              const std::vector<std::string>& actual) {
  const std::size_t n = expected.size();
  const std::size_t m = actual.size();
  // lcs[i][j]: length of the longest common subsequence of expected[i..] and actual[j..].
  std::vector<std::vector<std::size_t>> lcs(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t j = m; j-- > 0;) {
      lcs[i][j] =
          expected[i] == actual[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::vector<DiffOp> ops;
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] == actual[j]) {
      ops.push_back({DiffOp::Kind::kSame, i++, j++});
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push_back({DiffOp::Kind::kExpectedOnly, i++, j});  // '-' before '+', as diff does
    } else {
      ops.push_back({DiffOp::Kind::kActualOnly, i, j++});
    }
  }
  return ops;
}

CheckResult CheckTrace(const Trace& trace, const RunResult& run) {
  CheckResult result;
  std::ostringstream report;
  const std::vector<std::string> expected = ExpectedTexts(trace);
  const std::vector<std::string> actual = ActualTexts(run);
  const std::vector<DiffOp> ops = DiffLines(expected, actual);
  const bool output_differs = std::any_of(
      ops.begin(), ops.end(), [](const DiffOp& op) { return op.kind != DiffOp::Kind::kSame; });
  auto note_first = [&result](int line) {
    if (result.ok) {
      result.ok = false;
      result.first_line = line;
    }
  };

  if (output_differs) {
    // The trace line a difference is reported at: the expected line itself, or for an extra
    // actual line, the next expected line (or the end of %expect).
    auto line_of = [&](const DiffOp& op) {
      if (op.expected < trace.expect.size()) return trace.expect[op.expected].line;
      return trace.expect_end;
    };
    for (const DiffOp& op : ops) {
      if (op.kind != DiffOp::Kind::kSame) {
        note_first(line_of(op));
        break;
      }
    }
    report << trace.path << ":" << result.first_line
           << ": output differs from %expect ('-' expected, '+' actual; context ' '):\n";
    // Show changed lines with two lines of context; elide long runs of equal lines.
    constexpr std::size_t kContext = 2;
    std::vector<bool> shown(ops.size(), false);
    for (std::size_t k = 0; k < ops.size(); ++k) {
      if (ops[k].kind == DiffOp::Kind::kSame) continue;
      const std::size_t from = k >= kContext ? k - kContext : 0;
      const std::size_t to = std::min(ops.size(), k + kContext + 1);
      for (std::size_t q = from; q < to; ++q)
        shown[q] = true;
    }
    bool elided = false;
    for (std::size_t k = 0; k < ops.size(); ++k) {
      if (!shown[k]) {
        if (!elided) report << "    ...\n";
        elided = true;
        continue;
      }
      elided = false;
      const DiffOp& op = ops[k];
      switch (op.kind) {
        case DiffOp::Kind::kSame:
          report << "  " << trace.expect[op.expected].line << "\t  " << expected[op.expected]
                 << "\n";
          break;
        case DiffOp::Kind::kExpectedOnly:
          report << "- " << trace.expect[op.expected].line << "\t  " << expected[op.expected]
                 << "\n";
          break;
        case DiffOp::Kind::kActualOnly:
          report << "+ "
                 << "\t  " << actual[op.actual] << "    (from input line "
                 << run.lines[op.actual].input_line << ")\n";
          break;
      }
    }
  }

  for (const CounterAssertion& c : trace.counters) {
    const auto it = run.counters.find(c.name);
    if (it == run.counters.end()) {
      note_first(c.line);
      report << trace.path << ":" << c.line << ": unknown counter '" << c.name
             << "' (see docs/golden-traces.md for the names)\n";
    } else if (it->second != c.value) {
      note_first(c.line);
      report << trace.path << ":" << c.line << ": counter " << c.name << ": expected " << c.value
             << ", got " << it->second << "\n";
    }
  }
  result.report = report.str();
  return result;
}

std::string RewriteExpectations(const Trace& trace, const RunResult& run) {
  std::vector<std::string> out(trace.lines.begin(), trace.lines.begin() + trace.expect_header + 1);
  const std::vector<DiffOp> ops = DiffLines(ExpectedTexts(trace), ActualTexts(run));
  // Lines of %expect that are not expectations (comments, blank lines) stay where they were,
  // before the expectation that followed them.
  int next_raw = trace.expect_header + 1;
  auto copy_raw_until = [&](int line_index) {
    for (; next_raw < line_index; ++next_raw)
      out.push_back(trace.lines[next_raw]);
  };
  for (const DiffOp& op : ops) {
    switch (op.kind) {
      case DiffOp::Kind::kSame:
        copy_raw_until(trace.expect[op.expected].line - 1);
        out.push_back(trace.lines[next_raw++]);  // unchanged: its comment is kept
        break;
      case DiffOp::Kind::kExpectedOnly:
        copy_raw_until(trace.expect[op.expected].line - 1);
        ++next_raw;  // dropped
        break;
      case DiffOp::Kind::kActualOnly:
        out.push_back(run.lines[op.actual].text);
        break;
    }
  }
  // Trailing comments and blank lines of %expect, and everything after it.
  for (int i = next_raw; i < static_cast<int>(trace.lines.size()); ++i) {
    std::string line = trace.lines[i];
    const int line_no = i + 1;
    for (const CounterAssertion& c : trace.counters) {
      if (c.line != line_no) continue;
      const auto it = run.counters.find(c.name);
      if (it == run.counters.end()) continue;
      const std::string key = c.name + "=";
      // The token that starts with "name=" (not one that merely ends with it).
      std::size_t at = line.find(key);
      while (at != std::string::npos && at > 0 && line[at - 1] != ' ' && line[at - 1] != '\t') {
        at = line.find(key, at + 1);
      }
      if (at == std::string::npos) continue;
      const auto value_end = line.find_first_of(" \t#", at + key.size());
      line.replace(at + key.size(),
                   (value_end == std::string::npos ? line.size() : value_end) - at - key.size(),
                   std::to_string(it->second));
    }
    out.push_back(std::move(line));
  }
  std::string text;
  for (const std::string& line : out)
    text += line + "\n";
  return text;
}

}  // namespace vsnoop::golden
