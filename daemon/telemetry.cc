#include "telemetry.h"

#include <arpa/inet.h>

#include <map>
#include <sstream>

#include "vsnoop/sim/report.h"

namespace vsnoop::daemon {
namespace {

using datapath::Datapath;

std::string ScheduleState(const datapath::VmSchedule& s) {
  switch (s.state()) {
    case datapath::VmSchedule::State::kRunning:
      return "running";
    case datapath::VmSchedule::State::kQueued:
      return "queued";
    case datapath::VmSchedule::State::kBlocked:
      return "blocked";
  }
  return "unknown";
}

nlohmann::json PortJson(const datapath::Port& port) {
  const datapath::PortStats s = port.stats();
  return {{"rx_frames", s.rx_frames}, {"rx_bytes", s.rx_bytes},   {"tx_frames", s.tx_frames},
          {"tx_bytes", s.tx_bytes},   {"tx_errors", s.tx_errors}, {"rx_dropped", s.rx_dropped}};
}

std::string AddressText(const std::array<std::uint8_t, 16>& ip, std::uint8_t family) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 4) {
    inet_ntop(AF_INET, ip.data() + 12, buf, sizeof buf);
    return buf;
  }
  inet_ntop(AF_INET6, ip.data(), buf, sizeof buf);
  return std::string("[") + buf + "]";
}

// Escapes a Prometheus label value (text format 0.0.4: backslash, quote, newline).
std::string LabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Collects samples by family so HELP and TYPE are written once per metric name.
class Exposition {
 public:
  void Add(const std::string& name, std::string_view help, const char* type,
           const std::string& labels, double value) {
    auto [it, inserted] = families_.try_emplace(name);
    if (inserted) {
      order_.push_back(name);
      it->second.help = std::string(help);
      it->second.type = type;
    }
    it->second.samples.emplace_back(labels, value);
  }
  std::string Text() const {
    std::ostringstream os;
    for (const std::string& name : order_) {
      const Family& f = families_.at(name);
      os << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
      for (const auto& [labels, value] : f.samples) {
        os << name;
        if (!labels.empty()) os << "{" << labels << "}";
        os << " " << static_cast<std::uint64_t>(value) << "\n";
      }
    }
    return os.str();
  }

 private:
  struct Family {
    std::string help;
    const char* type = "counter";
    std::vector<std::pair<std::string, double>> samples;
  };
  std::map<std::string, Family> families_;
  std::vector<std::string> order_;
};

}  // namespace

nlohmann::json StatsJson(const Datapath& dp, Timestamp /*now*/) {
  nlohmann::json j;
  j["vsnoop"] = dp.acceleration() ? "on" : "off";
  j["engine"] = sim::CountersToJson(dp.engine());
  nlohmann::json bridge = nlohmann::json::object();
  dp.counters().ForEach([&](std::string_view n, std::string_view, std::uint64_t v) {
    bridge[std::string(n)] = v;
  });
  bridge["mac_addresses"] = dp.mac_table().size();
  j["bridge"] = bridge;
  j["uplink"] = {{"name", dp.uplink().name()}, {"port", PortJson(dp.uplink())}};
  nlohmann::json guests = nlohmann::json::array();
  for (std::size_t i = 0; i < dp.guest_count(); ++i) {
    const Datapath::GuestView g = dp.guest(i);
    nlohmann::json counters = nlohmann::json::object();
    g.counters.ForEach([&](std::string_view n, std::string_view, std::uint64_t v) {
      counters[std::string(n)] = v;
    });
    nlohmann::json guest = {
        {"name", g.name},
        {"connected", g.port.IsConnected()},
        {"vsnoop", g.accelerate && dp.acceleration() ? "on" : "off"},
        {"buffer",
         {{"bytes", g.buffer.bytes()},
          {"frames", g.buffer.frames()},
          {"max_bytes", g.buffer.max_bytes()},
          {"max_frames", g.buffer.max_frames()}}},
        {"counters", counters},
        {"port", PortJson(g.port)}};
    if (g.schedule) {
      guest["schedule"] = {
          {"config", g.schedule->config().ToString()},
          {"state", ScheduleState(*g.schedule)},
          {"turns", g.schedule->turns()},
          {"running_ms", std::chrono::duration<double, std::milli>(g.schedule->time_running()).count()}};
    }
    guests.push_back(guest);
  }
  j["guests"] = guests;
  return j;
}

nlohmann::json FlowsJson(const Datapath& dp, std::size_t limit,
                         const std::optional<std::string>& guest, Timestamp now) {
  nlohmann::json flows = nlohmann::json::array();
  auto add = [&](const Flow& f) {
    if (flows.size() >= limit) return;
    const std::string guest_name = f.guest >= 1 && f.guest <= dp.guest_count()
                                       ? dp.guest(f.guest - 1).name
                                       : std::to_string(f.guest);
    if (guest && *guest != guest_name) return;
    flows.push_back({
        {"remote", AddressText(f.key.remote_ip, f.key.family) + ":" + std::to_string(f.key.remote_port)},
        {"guest_address", AddressText(f.key.guest_ip, f.key.family) + ":" + std::to_string(f.key.guest_port)},
        {"guest", guest_name},
        {"state", std::string(FlowStateLabel(f.state))},
        {"idle_ms", std::chrono::duration<double, std::milli>(now - f.last_seen).count()},
        {"options",
         {{"wscale_guest", f.guest_window_scale},
          {"wscale_remote", f.remote_window_scale},
          {"timestamps", f.timestamps},
          {"sack", f.sack},
          {"ecn", f.ecn},
          {"mss", f.guest_mss}}},
        {"rcv_nxt", f.rcv_nxt.value()},
        {"rcv_high", f.rcv_high.value()},
        {"guest_ack", f.guest_ack.value()},
        {"guest_right_edge", f.guest_right_edge.value()},
        {"vsnoop_ack", f.vsnoop_acked ? nlohmann::json(f.vsnoop_ack.value()) : nlohmann::json()},
        {"advertised_edge", f.advertised_edge.value()},
        {"stats",
         {{"segments_to_guest", f.stats.segments_to_guest},
          {"payload_bytes_to_guest", f.stats.payload_bytes_to_guest},
          {"segments_from_guest", f.stats.segments_from_guest},
          {"early_acks", f.stats.early_acks},
          {"early_acked_bytes", f.stats.early_acked_bytes},
          {"window_updates", f.stats.window_updates},
          {"guest_acks_suppressed", f.stats.guest_acks_suppressed},
          {"no_room", f.stats.no_room}}}});
  };
  // Accelerated flows first: with a limit, the flows being helped are the ones to see.
  dp.engine().flows().ForEach([&](const Flow& f) {
    if (IsAccelerated(f.state)) add(f);
  });
  dp.engine().flows().ForEach([&](const Flow& f) {
    if (!IsAccelerated(f.state)) add(f);
  });
  return flows;
}

std::string PrometheusText(const Datapath& dp, Timestamp /*now*/) {
  Exposition e;
  const Counters& c = dp.engine().counters();
  e.Add("vsnoop_enabled", "1 when vSnoop acknowledges early, 0 when it only observes", "gauge",
        "", dp.acceleration() ? 1 : 0);
  c.ForEachScalar([&](std::string_view n, std::string_view help, std::uint64_t v) {
    e.Add("vsnoop_" + std::string(n) + "_total", help, "counter", "", static_cast<double>(v));
  });
  for (std::size_t r = 0; r < kReasonCount; ++r) {
    const auto reason = static_cast<Reason>(r);
    e.Add("vsnoop_frames_by_reason_total", "frames by what the engine did and why", "counter",
          "reason=\"" + std::string(ReasonLabel(reason)) + "\"", static_cast<double>(c.by_reason[r]));
  }
  for (std::size_t from = 0; from < kFlowStateCount; ++from) {
    for (std::size_t to = 0; to < kFlowStateCount; ++to) {
      if (c.transitions[from][to] == 0) continue;
      e.Add("vsnoop_flow_transitions_total", "flow state transitions", "counter",
            "from=\"" + std::string(FlowStateLabel(static_cast<FlowState>(from))) + "\",to=\"" +
                std::string(FlowStateLabel(static_cast<FlowState>(to))) + "\"",
            static_cast<double>(c.transitions[from][to]));
    }
  }
  const auto per_state = dp.engine().FlowsPerState();
  for (std::size_t s = 0; s < kFlowStateCount; ++s) {
    e.Add("vsnoop_flows", "flows in the table by state", "gauge",
          "state=\"" + std::string(FlowStateLabel(static_cast<FlowState>(s))) + "\"",
          static_cast<double>(per_state[s]));
  }
  dp.counters().ForEach([&](std::string_view n, std::string_view help, std::uint64_t v) {
    e.Add("vsnoop_bridge_" + std::string(n) + "_total", help, "counter", "", static_cast<double>(v));
  });
  for (std::size_t i = 0; i < dp.guest_count(); ++i) {
    const Datapath::GuestView g = dp.guest(i);
    const std::string label = "guest=\"" + LabelValue(g.name) + "\"";
    g.counters.ForEach([&](std::string_view n, std::string_view help, std::uint64_t v) {
      const bool gauge = n == "buffer_high_water_bytes";
      e.Add("vsnoop_guest_" + std::string(n) + (gauge ? "" : "_total"), help,
            gauge ? "gauge" : "counter", label, static_cast<double>(v));
    });
    e.Add("vsnoop_guest_buffer_bytes", "bytes in the guest's receive buffer", "gauge", label,
          static_cast<double>(g.buffer.bytes()));
    e.Add("vsnoop_guest_buffer_frames", "frames in the guest's receive buffer", "gauge", label,
          static_cast<double>(g.buffer.frames()));
    e.Add("vsnoop_guest_connected", "1 when the guest's port has a peer", "gauge", label,
          g.port.IsConnected() ? 1 : 0);
  }
  return e.Text();
}

}  // namespace vsnoop::daemon
