// Tests of the golden-trace machinery itself: frame lines survive a round trip through a
// built frame, mistakes in a trace are reported at their line, and differences are
// reported and rewritten as documented in docs/golden-traces.md.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "check.h"
#include "runner.h"
#include "trace.h"

namespace vsnoop::golden {
namespace {

std::vector<FlowSpec> TwoFlows() {
  return {
      FlowSpec{"", sim::Endpoint::Parse("10.0.0.1:40000"), sim::Endpoint::Parse("10.0.0.2:5201")},
      FlowSpec{"b", sim::Endpoint::Parse("[fd00::1]:40001"),
               sim::Endpoint::Parse("[fd00::2]:5201")}};
}

std::string RoundTrip(const std::string& line) {
  const std::vector<FlowSpec> flows = TwoFlows();
  const FrameSpec spec = ParseFrameLine(line, flows, 1);
  const FlowSpec& flow = spec.flow.empty() ? flows[0] : flows[1];
  return DescribeTraceFrame(BuildFrame(spec, flow), flows);
}

TEST(TraceFormat, FrameLinesRoundTrip) {
  for (const std::string line : {
           "> S seq=1000 win=64240 <mss 1460,sackOK,ts 100 0,wscale 7>",
           "< S. seq=5000 ack=1001 win=65160 <mss 1460,sackOK,ts 200 100,wscale 7>",
           "> SEW seq=1 win=100",
           "> P. seq=1001 ack=5001 win=502 len=1448 <ts 101 200> ce",
           "< . seq=5001 ack=2001 win=500 <ts 201 102,sack 3001:4001 5001:6001>",
           "> U. seq=7 ack=8 win=9 len=10 urp=3 ect0 vlan=100 vlan=200 ttl=9",
           "> F. seq=1 ack=2 win=3 bad-ip-csum bad-tcp-csum",
           "> R seq=4294967295 win=0",
           "> none seq=1 win=2 len=3",
           "> . seq=1 ack=2 win=3 <opt 254 beef>",
           ">b . seq=1 ack=2 win=3 len=4 ttl=255",
           "<b S. seq=1 ack=2 win=3 <mss 1440>",
       }) {
    EXPECT_EQ(RoundTrip(line), line);
  }
}

TEST(TraceFormat, FrameOfNoDeclaredFlowShowsItsAddresses) {
  const std::vector<FlowSpec> flows = TwoFlows();
  FlowSpec other{"", sim::Endpoint::Parse("10.0.0.9:1"), sim::Endpoint::Parse("10.0.0.2:5201")};
  const FrameSpec spec = ParseFrameLine("> . seq=1 ack=2 win=3", flows, 1);
  EXPECT_EQ(DescribeTraceFrame(BuildFrame(spec, other), flows),
            "10.0.0.9:1>10.0.0.2:5201 . seq=1 ack=2 win=3");
}

// The line number a parse fails at, or 0 when it parses.
int FailingLine(const std::string& text) {
  try {
    ParseTrace(text, "t.trace");
  } catch (const TraceError& e) {
    return e.line();
  }
  return 0;
}

TEST(TraceFormat, MistakesAreReportedAtTheirLine) {
  const std::string head = "# comment\n%input\n";
  EXPECT_EQ(FailingLine(head + "> S win=1\n%expect\n"), 3);               // no seq
  EXPECT_EQ(FailingLine(head + "> S seq=1 ack=2\n%expect\n"), 3);         // ack without '.'
  EXPECT_EQ(FailingLine(head + "> . seq=1\n%expect\n"), 3);               // '.' without ack
  EXPECT_EQ(FailingLine(head + "> S seq=1 shiny\n%expect\n"), 3);         // unknown modifier
  EXPECT_EQ(FailingLine(head + "> S seq=1 <md5>\n%expect\n"), 3);         // unknown option
  EXPECT_EQ(FailingLine(head + ">z S seq=1\n%expect\n"), 3);              // undeclared flow
  EXPECT_EQ(FailingLine(head + "> S seq=4294967296\n%expect\n"), 3);      // out of range
  EXPECT_EQ(FailingLine(head + "run\nsleep\n%expect\n"), 4);              // unknown step
  EXPECT_EQ(FailingLine(head + "time 5ms\n%expect\n"), 3);                // time needs '+'
  EXPECT_EQ(FailingLine("%config buffer_size=1\n%input\n%expect\n"), 1);  // unknown key
  EXPECT_EQ(FailingLine("stray\n%input\n%expect\n"), 1);
  EXPECT_EQ(FailingLine(head + "%config max_flows=1\n%expect\n"), 3);  // after %input
  EXPECT_EQ(FailingLine(head + "%expect\n%counters\nearly_acks\n"), 5);
  EXPECT_NE(FailingLine(head), 0);  // no %expect
  EXPECT_EQ(FailingLine("%flow b sender=10.0.0.1:1 guest=10.0.0.3:2\n%input\n>b S seq=1\n"
                        "%expect\n"),
            0);
}

TEST(TraceFormat, CommentsAndSpacingDoNotMatter) {
  EXPECT_EQ(NormalizeLine("  ack   <   .  seq=1   # early ACK\t"), "ack < . seq=1");
  EXPECT_EQ(NormalizeLine("# only a comment"), "");
}

TEST(TraceFormat, DiffFindsChangedLines) {
  const auto ops = DiffLines({"a", "b", "c"}, {"a", "x", "c", "d"});
  std::string script;
  for (const DiffOp& op : ops) {
    script += op.kind == DiffOp::Kind::kSame           ? '='
              : op.kind == DiffOp::Kind::kExpectedOnly ? '-'
                                                       : '+';
  }
  EXPECT_EQ(script, "=-+=+");
}

constexpr const char* kSmallTrace =
    "# A SYN, passed to the guest.\n"
    "%input\n"
    "> S seq=1000 win=64240\n"
    "state\n"
    "%expect\n"
    "guest    >   S   seq=1000 win=64240  [handshake]   # learnt, not acknowledged\n"
    "state    HANDSHAKE\n"
    "%counters\n"
    "flows_created=1 reason.handshake=1\n";

TEST(TraceFormat, MatchingTracePasses) {
  const Trace trace = ParseTrace(kSmallTrace, "small.trace");
  const CheckResult check = CheckTrace(trace, RunTrace(trace));
  EXPECT_TRUE(check.ok) << check.report;
}

TEST(TraceFormat, DifferencesAreReportedWithFileAndLine) {
  std::string text = kSmallTrace;
  text.replace(text.find("HANDSHAKE"), 9, "ACTIVE");
  text.replace(text.find("flows_created=1"), 15, "flows_created=2");
  const Trace trace = ParseTrace(text, "small.trace");
  const CheckResult check = CheckTrace(trace, RunTrace(trace));
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.first_line, 7);
  EXPECT_NE(check.report.find("- 7\t  state ACTIVE"), std::string::npos) << check.report;
  EXPECT_NE(check.report.find("+ \t  state HANDSHAKE    (from input line 4)"), std::string::npos)
      << check.report;
  EXPECT_NE(check.report.find("small.trace:9: counter flows_created: expected 2, got 1"),
            std::string::npos)
      << check.report;
}

TEST(TraceFormat, UnknownCounterIsAMistake) {
  std::string text = kSmallTrace;
  text += "early_ack_count=0\n";
  const Trace trace = ParseTrace(text, "small.trace");
  const CheckResult check = CheckTrace(trace, RunTrace(trace));
  EXPECT_FALSE(check.ok);
  EXPECT_NE(check.report.find("unknown counter 'early_ack_count'"), std::string::npos);
}

TEST(TraceFormat, RewriteKeepsCommentsOfUnchangedLines) {
  std::string text = kSmallTrace;
  text.replace(text.find("HANDSHAKE"), 9, "ACTIVE");
  text.replace(text.find("flows_created=1"), 15, "flows_created=7");
  const Trace trace = ParseTrace(text, "small.trace");
  const std::string rewritten = RewriteExpectations(trace, RunTrace(trace));
  EXPECT_EQ(rewritten, kSmallTrace);
}

}  // namespace
}  // namespace vsnoop::golden
