#include "vsnoop/sim/report.h"

#include <string>

namespace vsnoop::sim {

nlohmann::json CountersToJson(const Engine& engine) {
  const Counters& c = engine.counters();
  nlohmann::json j = nlohmann::json::object();
  c.ForEachScalar([&j](std::string_view name, std::string_view, std::uint64_t value) {
    j[std::string(name)] = value;
  });
  nlohmann::json reasons = nlohmann::json::object();
  for (std::size_t r = 0; r < kReasonCount; ++r) {
    if (c.by_reason[r] != 0) reasons[std::string(ReasonLabel(static_cast<Reason>(r)))] = c.by_reason[r];
  }
  j["reasons"] = reasons;
  nlohmann::json transitions = nlohmann::json::object();
  for (std::size_t from = 0; from < kFlowStateCount; ++from) {
    for (std::size_t to = 0; to < kFlowStateCount; ++to) {
      if (c.transitions[from][to] == 0) continue;
      const std::string key = std::string(FlowStateLabel(static_cast<FlowState>(from))) + "->" +
                              std::string(FlowStateLabel(static_cast<FlowState>(to)));
      transitions[key] = c.transitions[from][to];
    }
  }
  j["transitions"] = transitions;
  nlohmann::json by_state = nlohmann::json::object();
  const auto per_state = engine.FlowsPerState();
  for (std::size_t s = 0; s < kFlowStateCount; ++s) {
    by_state[std::string(FlowStateLabel(static_cast<FlowState>(s)))] = per_state[s];
  }
  j["flows"] = {{"total", engine.flows().size()}, {"by_state", by_state}};
  return j;
}

}  // namespace vsnoop::sim
