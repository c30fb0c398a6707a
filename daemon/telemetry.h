// What vsnoopd reports about itself, from one place: the counters of the engine, the
// bridge, each guest and each flow, as JSON (vsnoopctl) and as Prometheus text (the
// metrics endpoint). Pure functions of the datapath's state.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "vsnoop/datapath/datapath.h"

namespace vsnoop::daemon {

// {"vsnoop": on/off, "engine": {...counters, reasons, transitions, flows}, "bridge": {...},
//  "uplink": {...port stats}, "guests": [{"name", "connected", "vsnoop", "schedule",
//  "buffer": {...}, "counters": {...}, "port": {...}}]}
nlohmann::json StatsJson(const datapath::Datapath& dp, Timestamp now);

// Up to `limit` flows, most recently active first within each class, optionally only one
// guest's: key, guest, state, sequence state and per-flow counters.
nlohmann::json FlowsJson(const datapath::Datapath& dp, std::size_t limit,
                         const std::optional<std::string>& guest, Timestamp now);

// Prometheus text exposition format 0.0.4.
std::string PrometheusText(const datapath::Datapath& dp, Timestamp now);

}  // namespace vsnoop::daemon
