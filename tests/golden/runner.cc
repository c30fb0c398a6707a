// Plays a golden trace through sim::HostModel (see runner.h and docs/golden-traces.md).
#include "runner.h"

#include <algorithm>
#include <optional>

#include "vsnoop/flow_state.h"
#include "vsnoop/reasons.h"
#include "vsnoop/sim/host_model.h"

namespace vsnoop::golden {
namespace {

// The engine's key for a flow: remote -> guest, IPv4 addresses IPv4-mapped (vsnoop/flow.h).
FlowKey KeyOf(const FlowSpec& flow) {
  FlowKey key;
  key.family = flow.guest.ip.family;
  auto put = [](std::array<std::uint8_t, 16>* out, const sim::IpAddress& ip) {
    if (ip.family == 4) {
      out->fill(0);
      (*out)[10] = 0xFF;
      (*out)[11] = 0xFF;
      std::copy_n(ip.bytes.begin(), 4, out->begin() + 12);
    } else {
      *out = ip.bytes;
    }
  };
  put(&key.remote_ip, flow.sender.ip);
  put(&key.guest_ip, flow.guest.ip);
  key.remote_port = flow.sender.port;
  key.guest_port = flow.guest.port;
  return key;
}

std::string FlowLabel(const std::string& name) {
  return name.empty() ? "" : " " + name;
}

// The one reason the engine counted for the last frame (every frame is counted under
// exactly one); several or none are shown as they are, so a broken count shows in a diff.
std::string ReasonOfLastFrame(const Counters& before, const Counters& after) {
  std::string out;
  for (std::size_t r = 0; r < kReasonCount; ++r) {
    const std::uint64_t n = after.by_reason[r] - before.by_reason[r];
    for (std::uint64_t k = 0; k < n; ++k) {
      if (!out.empty()) out += '+';
      out += ReasonLabel(static_cast<Reason>(r));
    }
  }
  return out.empty() ? "no-reason" : out;
}

std::map<std::string, std::uint64_t> CollectCounters(const sim::HostModel& host) {
  std::map<std::string, std::uint64_t> out;
  const Engine& engine = host.engine();
  const Counters& c = engine.counters();
  c.ForEachScalar([&out](std::string_view name, std::string_view, std::uint64_t value) {
    out[std::string(name)] = value;
  });
  for (std::size_t r = 0; r < kReasonCount; ++r) {
    out["reason." + std::string(ReasonLabel(static_cast<Reason>(r)))] = c.by_reason[r];
  }
  for (std::size_t from = 0; from < kFlowStateCount; ++from) {
    for (std::size_t to = 0; to < kFlowStateCount; ++to) {
      out["transition." + std::string(FlowStateLabel(static_cast<FlowState>(from))) + "->" +
          std::string(FlowStateLabel(static_cast<FlowState>(to)))] = c.transitions[from][to];
    }
  }
  out["flows"] = engine.flows().size();
  const auto per_state = engine.FlowsPerState();
  for (std::size_t s = 0; s < kFlowStateCount; ++s) {
    out["flows." + std::string(FlowStateLabel(static_cast<FlowState>(s)))] = per_state[s];
  }
  std::uint64_t placed = 0;
  std::uint64_t dropped = 0;
  std::uint64_t runs = 0;
  for (std::size_t g = 0; g < host.guest_count(); ++g) {
    placed += host.buffer_stats(g).frames_placed;
    dropped += host.buffer_stats(g).frames_dropped;
    runs += host.buffer_stats(g).runs;
  }
  out["buffer.placed"] = placed;
  out["buffer.dropped"] = dropped;
  out["buffer.runs"] = runs;
  return out;
}

std::string_view KindOf(sim::Output::Kind kind) {
  switch (kind) {
    case sim::Output::Kind::kToGuest:
      return "guest";
    case sim::Output::Kind::kFromGuest:
      return "sender";
    case sim::Output::Kind::kEarlyAck:
      return "ack";
    case sim::Output::Kind::kWindowUpdate:
      return "update";
    case sim::Output::Kind::kPassThrough:
      return "pass";
  }
  return "?";
}

}  // namespace

std::string FormatOutputLine(std::string_view kind, std::string_view frame_text,
                             std::string_view reason) {
  std::string line(kind);
  line.resize(std::max<std::size_t>(line.size() + 1, 9), ' ');
  // Direction and flags get their own columns: "<   .    seq=..."
  std::size_t pos = 0;
  for (const std::size_t width : {4, 4}) {
    const auto space = frame_text.find(' ', pos);
    const std::string_view word = frame_text.substr(pos, space - pos);
    line += word;
    line.append(word.size() < width ? width - word.size() : 1, ' ');
    if (space == std::string_view::npos) {
      pos = frame_text.size();
      break;
    }
    pos = space + 1;
  }
  line += frame_text.substr(pos);
  while (!line.empty() && line.back() == ' ')
    line.pop_back();
  if (!reason.empty()) {
    line += "  [";
    line += reason;
    line += ']';
  }
  return line;
}

RunResult RunTrace(const Trace& trace) {
  // One guest per distinct guest address, in the order the flows name them.
  std::vector<sim::IpAddress> guests;
  for (const FlowSpec& f : trace.flows) {
    if (std::find(guests.begin(), guests.end(), f.guest.ip) == guests.end()) {
      guests.push_back(f.guest.ip);
    }
  }
  sim::HostModel host(
      trace.config.engine, guests,
      sim::BufferLimits{.bytes = trace.config.buffer_bytes, .frames = trace.config.buffer_frames});
  Timestamp now{0};
  RunResult result;
  auto emit = [&result](int line, std::string text) {
    result.lines.push_back(OutputLine{std::move(text), line});
  };

  for (const Step& step : trace.steps) {
    switch (step.kind) {
      case StepKind::kFrame: {
        const FlowSpec& flow = trace.flow(step.frame.flow);
        std::vector<std::uint8_t> frame;
        try {
          frame = BuildFrame(step.frame, flow);
        } catch (const std::exception& e) {
          throw TraceError(step.line, std::string("cannot build the frame: ") + e.what());
        }
        const Counters before = host.engine().counters();
        std::vector<sim::Output> outputs;
        const sim::InputFate fate = host.Process(frame, now, &outputs);
        const std::string reason = ReasonOfLastFrame(before, host.engine().counters());
        // The input frame's fate comes first, with the engine's reason; then what the host
        // generated because of it.
        std::size_t first_generated = 0;
        switch (fate) {
          case sim::InputFate::kPlaced:
          case sim::InputFate::kForwarded:
          case sim::InputFate::kPassedThrough:
            // outputs[0] is the input frame itself, on its way.
            emit(step.line, FormatOutputLine(KindOf(outputs.at(0).kind),
                                             DescribeTraceFrame(outputs[0].bytes, trace.flows),
                                             fate == sim::InputFate::kPassedThrough ? "" : reason));
            first_generated = 1;
            break;
          case sim::InputFate::kDropped:
            emit(step.line,
                 FormatOutputLine("drop", DescribeTraceFrame(frame, trace.flows), reason));
            break;
          case sim::InputFate::kSuppressed:
            emit(step.line,
                 FormatOutputLine("suppress", DescribeTraceFrame(frame, trace.flows), reason));
            break;
        }
        for (std::size_t i = first_generated; i < outputs.size(); ++i) {
          emit(step.line, FormatOutputLine(KindOf(outputs[i].kind),
                                           DescribeTraceFrame(outputs[i].bytes, trace.flows), ""));
        }
        break;
      }
      case StepKind::kRun: {
        const auto index = host.GuestIndex(trace.flow(step.flow).guest.ip);
        host.RunGuest(*index);  // every flow's guest is one of the model's guests
        break;
      }
      case StepKind::kAccel:
        host.set_acceleration(step.acceleration_on ? Acceleration::kOn : Acceleration::kOff);
        break;
      case StepKind::kTime:
        now += step.advance;
        break;
      case StepKind::kExpire:
        emit(step.line, "expire   " + std::to_string(host.engine().ExpireIdle(now)));
        break;
      case StepKind::kState: {
        const Flow* f = host.engine().flows().Find(KeyOf(trace.flow(step.flow)));
        emit(step.line, "state" + FlowLabel(step.flow) + "    " +
                            (f == nullptr ? "none" : std::string(FlowStateLabel(f->state))));
        break;
      }
      case StepKind::kNegotiated: {
        const Flow* f = host.engine().flows().Find(KeyOf(trace.flow(step.flow)));
        std::string text = "negotiated" + FlowLabel(step.flow);
        if (f == nullptr) {
          text += " none";
        } else {
          auto on_off = [](bool b) { return b ? "on" : "off"; };
          text += " wscale=" + std::to_string(f->guest_window_scale) + "/" +
                  std::to_string(f->remote_window_scale) + " ts=" + on_off(f->timestamps) +
                  " sack=" + on_off(f->sack) + " ecn=" + on_off(f->ecn) +
                  " mss=" + std::to_string(f->guest_mss);
        }
        emit(step.line, text);
        break;
      }
    }
  }
  result.counters = CollectCounters(host);
  return result;
}

}  // namespace vsnoop::golden
