#include "vsnoop/datapath/schedule.h"

#include <sstream>
#include <vector>

namespace vsnoop::datapath {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep))
    out.push_back(item);
  return out;
}

bool ParseUint(const std::string& s, std::uint64_t* out) {
  if (s.empty() || s.size() > 12) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<ScheduleConfig> ScheduleConfig::Parse(const std::string& text, std::string* error) {
  const auto parts = Split(text, ':');
  if (parts.empty() || parts[0] != "rr") {
    *error = "schedule must start with 'rr:' (round-robin), got '" + text + "'";
    return std::nullopt;
  }
  ScheduleConfig c;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const auto eq = parts[i].find('=');
    if (eq == std::string::npos) {
      *error = "schedule field '" + parts[i] + "' is not key=value";
      return std::nullopt;
    }
    const std::string key = parts[i].substr(0, eq);
    const std::string value = parts[i].substr(eq + 1);
    std::uint64_t n = 0;
    if (key == "neighbours" || key == "neighbors") {
      if (value == "burn") {
        c.neighbours = Neighbours::kBurn;
      } else if (value == "yield") {
        c.neighbours = Neighbours::kYield;
      } else {
        *error = "neighbours must be burn or yield, got '" + value + "'";
        return std::nullopt;
      }
      continue;
    }
    if (!ParseUint(value, &n)) {
      *error = "schedule field '" + key + "' needs a whole number, got '" + value + "'";
      return std::nullopt;
    }
    if (key == "vms") {
      c.vms = static_cast<std::uint32_t>(n);
    } else if (key == "turn") {
      c.turn = static_cast<std::uint32_t>(n);
    } else if (key == "slice_ms") {
      c.slice = std::chrono::milliseconds(n);
    } else if (key == "neighbour_ms" || key == "neighbor_ms") {
      c.neighbour_run = std::chrono::milliseconds(n);
    } else if (key == "idle_us") {
      c.idle_yield = std::chrono::microseconds(n);
    } else if (key == "wake_passes") {
      c.wake_passes = static_cast<std::uint32_t>(n);
    } else {
      *error = "unknown schedule field '" + key + "'";
      return std::nullopt;
    }
  }
  if (c.vms < 1 || c.vms > 64) {
    *error = "vms must be between 1 and 64";
    return std::nullopt;
  }
  if (c.turn < 1 || c.turn > c.vms) {
    *error = "turn must be between 1 and vms";
    return std::nullopt;
  }
  if (c.wake_passes < 1 || c.wake_passes > 8) {
    *error = "wake_passes must be between 1 and 8";
    return std::nullopt;
  }
  if (c.slice <= Duration::zero()) {
    *error = "slice_ms must be positive";
    return std::nullopt;
  }
  return c;
}

std::string ScheduleConfig::ToString() const {
  std::ostringstream os;
  os << "rr:vms=" << vms
     << ":slice_ms=" << std::chrono::duration_cast<std::chrono::milliseconds>(slice).count()
     << ":turn=" << turn << ":neighbours=" << (neighbours == Neighbours::kBurn ? "burn" : "yield");
  if (neighbours == Neighbours::kYield) {
    os << ":neighbour_ms="
       << std::chrono::duration_cast<std::chrono::milliseconds>(neighbour_run).count();
  }
  os << ":idle_us=" << std::chrono::duration_cast<std::chrono::microseconds>(idle_yield).count();
  if (wake_passes != 1) os << ":wake_passes=" << wake_passes;
  return os.str();
}

VmSchedule::VmSchedule(const ScheduleConfig& config, Timestamp start) : config_(config) {
  if (config_.vms <= 1) {
    StartRunning(start);
    return;
  }
  // The first round: the neighbours before this VM's turn run first.
  state_ = State::kQueued;
  since_ = start;
  until_ = start + NeighbourTurn() * (config_.turn - 1);
  if (config_.turn == 1) StartRunning(start);
}

Duration VmSchedule::NeighbourTurn() const {
  return config_.neighbours == ScheduleConfig::Neighbours::kBurn ? config_.slice
                                                                 : config_.neighbour_run;
}

void VmSchedule::StartRunning(Timestamp at) {
  state_ = State::kRunning;
  since_ = at;
  until_ = at + config_.slice;
  last_activity_ = at;
  ++turns_;
}

void VmSchedule::StopRunning(Timestamp at, State next) {
  time_running_ += at - since_;
  state_ = next;
  since_ = at;
  // Queued behind all k-1 neighbours.
  if (next == State::kQueued) until_ = at + NeighbourTurn() * (config_.vms - 1);
}

void VmSchedule::Advance(Timestamp now, bool runnable) {
  runnable_ = runnable;
  if (config_.vms <= 1) {
    // Alone on its core: always running (time_running is not meaningful).
    return;
  }
  // Several transitions may be due at once (a long pause between calls): loop.
  for (int guard = 0; guard < 1000; ++guard) {
    switch (state_) {
      case State::kRunning:
        if (now >= until_) {
          // Slice used up: preempted, back of the queue if there is still work.
          const Timestamp end = until_;
          StopRunning(end, runnable ? State::kQueued : State::kBlocked);
          continue;
        }
        if (!runnable && now - last_activity_ >= config_.idle_yield) {
          StopRunning(last_activity_ + config_.idle_yield, State::kBlocked);
          continue;
        }
        return;
      case State::kQueued:
        if (now >= until_) {
          StartRunning(until_);
          continue;
        }
        return;
      case State::kBlocked: {
        if (!runnable) return;
        // Woken at `now`: neighbours have been taking turns since the VM blocked. It waits
        // for the current turn to end, then for the other k-2 neighbours; with more than one
        // wake pass, for whole further rounds of the k-1 neighbours.
        const Duration turn = NeighbourTurn();
        const Duration into = (now - since_) % turn;
        state_ = State::kQueued;
        until_ = now + (turn - into) + turn * (config_.vms - 2) +
                 turn * ((config_.vms - 1) * (config_.wake_passes - 1));
        since_ = now;
        continue;
      }
    }
  }
}

std::optional<Timestamp> VmSchedule::NextEvent() const {
  switch (state_) {
    case State::kRunning:
      if (config_.vms <= 1) return std::nullopt;
      // Runnable, the VM cannot block: an idle deadline already past would only make the
      // event loop spin until the slice ends (a VM whose frames cannot leave, say).
      if (runnable_) return until_;
      return std::min(until_, last_activity_ + config_.idle_yield);
    case State::kQueued:
      return until_;
    case State::kBlocked:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace vsnoop::datapath
