// The engine's counters as JSON: one schema for vsnoop-replay, vsnoopd and vsnoopctl.
#pragma once

#include <nlohmann/json.hpp>

#include "vsnoop/engine.h"

namespace vsnoop::sim {

// {"early_acks": ..., ..., "reasons": {label: n, ...}, "transitions": {"A->B": n, ...},
//  "flows": {"total": n, "by_state": {STATE: n}}}. Zero reasons and transitions are left out.
nlohmann::json CountersToJson(const Engine& engine);

}  // namespace vsnoop::sim
