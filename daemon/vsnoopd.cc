// vsnoopd: the host datapath with vSnoop inline.
//
//   vsnoopd --uplink IFNAME --guest veth:IFNAME[,sched=rr:vms=K:slice_ms=30:turn=I]
//           --guest qemu:SOCKET_PATH ... [--no-vsnoop] [--buffer-bytes N] [--buffer-frames N]
//           [--max-flows N] [--control PATH] [--pcap-out FILE] [--metrics-port N]
//           [--config FILE]
//
// Read top-down like an l2fwd: configuration, ports, the datapath, the servers, the loop
// (wait for a ready descriptor or the next deadline, then one datapath step), shutdown.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <random>

#include "options.h"
#include "pcapng.h"
#include "servers.h"
#include "telemetry.h"
#include "vsnoop/bug.h"
#include "vsnoop/datapath/datapath.h"
#include "vsnoop/datapath/packet_port.h"
#include "vsnoop/datapath/stream_port.h"

namespace {

using namespace vsnoop;
using daemon::DaemonOptions;
using daemon::GuestSpec;

std::uint64_t bugs_seen = 0;

void LogBug(const char* file, int line, const char* what) {
  ++bugs_seen;
  spdlog::critical("internal bug at {}:{}: {}", file, line, what);
}

Timestamp MonotonicNow() {
  return std::chrono::duration_cast<Timestamp>(
      std::chrono::steady_clock::now().time_since_epoch());
}

datapath::PacketPortOptions PortOptions(const DaemonOptions& o) {
  datapath::PacketPortOptions p;
  p.ring_version = o.ring == "v3" ? datapath::RingVersion::kV3 : datapath::RingVersion::kV2;
  p.vnet_headers = o.vnet_headers ? datapath::VnetHeaders::kOn : datapath::VnetHeaders::kOff;
  p.qdisc_bypass = o.qdisc_bypass ? datapath::QdiscBypass::kOn : datapath::QdiscBypass::kOff;
  // V2 slots hold a 64 KB GSO frame each: a burst of small frames (ACKs) needs many of them.
  p.rx_ring_bytes = o.ring_mb << 20;
  return p;
}

std::unique_ptr<datapath::Port> OpenGuestPort(const GuestSpec& g, const DaemonOptions& o,
                                              std::string* error) {
  if (g.kind == GuestSpec::Kind::kVeth) {
    return datapath::PacketPort::Open(g.target, PortOptions(o), error);
  }
  return datapath::StreamPort::Open(g.target, error);
}

// One JSON request line from vsnoopctl, one JSON response line back.
std::optional<std::string> Control(datapath::Datapath& dp, const std::string& received) {
  const auto eol = received.find('\n');
  if (eol == std::string::npos) return std::nullopt;
  nlohmann::json reply;
  const Timestamp now = MonotonicNow();
  try {
    const auto request = nlohmann::json::parse(received.substr(0, eol));
    const std::string cmd = request.value("cmd", "");
    if (cmd == "stats") {
      reply = daemon::StatsJson(dp, now);
    } else if (cmd == "flows") {
      std::optional<std::string> guest;
      if (request.contains("guest")) guest = request["guest"].get<std::string>();
      reply = {{"flows", daemon::FlowsJson(dp, request.value("limit", 1000), guest, now)}};
    } else if (cmd == "metrics") {
      reply = {{"text", daemon::PrometheusText(dp, now)}};
    } else if (cmd == "set") {
      const std::string value = request.value("vsnoop", "");
      if (value != "on" && value != "off") {
        reply = {{"error", "set needs vsnoop=on or vsnoop=off"}};
      } else if (request.contains("guest")) {
        const std::string guest = request["guest"].get<std::string>();
        if (dp.SetGuestAcceleration(guest, value == "on")) {
          spdlog::info("vSnoop {} for guest {} (vsnoopctl)", value, guest);
          reply = {{"ok", true}};
        } else {
          reply = {{"error", "no guest named " + guest}};
        }
      } else {
        dp.SetAcceleration(value == "on");
        spdlog::info("vSnoop {} for all guests (vsnoopctl)", value);
        reply = {{"ok", true}};
      }
    } else {
      reply = {{"error", "unknown command '" + cmd + "' (stats, flows, metrics, set)"}};
    }
  } catch (const nlohmann::json::exception& e) {
    reply = {{"error", std::string("bad request: ") + e.what()}};
  }
  return reply.dump() + "\n";
}

std::optional<std::string> Metrics(const datapath::Datapath& dp, const std::string& received) {
  if (received.find("\r\n\r\n") == std::string::npos && received.find("\n\n") == std::string::npos) {
    return std::nullopt;
  }
  const bool wanted = received.rfind("GET /metrics", 0) == 0;
  const std::string body = wanted ? daemon::PrometheusText(dp, MonotonicNow())
                                  : std::string("see /metrics\n");
  return std::string(wanted ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.0 404 Not Found\r\n") +
         "Content-Type: text/plain; version=0.0.4\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

int BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<DaemonOptions> parsed = daemon::ParseDaemonOptions(argc, argv, &exit_code);
  if (!parsed) return exit_code;
  const DaemonOptions& o = *parsed;
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ vsnoopd: %v");
  SetBugHandler(&LogBug);

  if (o.cpu >= 0) {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(o.cpu, &cpus);
    if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) {
      spdlog::error("cannot pin to CPU {}: {}", o.cpu, std::strerror(errno));
      return 1;
    }
  }
  const int signal_fd = BlockShutdownSignals();

  // Ports.
  std::string error;
  std::unique_ptr<datapath::Port> uplink = datapath::PacketPort::Open(o.uplink, PortOptions(o), &error);
  if (!uplink) {
    spdlog::error("uplink {}: {}", o.uplink, error);
    return 1;
  }
  std::vector<datapath::GuestPortConfig> guests;
  for (const GuestSpec& g : o.guests) {
    std::unique_ptr<datapath::Port> port = OpenGuestPort(g, o, &error);
    if (!port) {
      spdlog::error("guest {}: {}", g.text, error);
      return 1;
    }
    guests.push_back({.name = g.text,
                      .port = std::move(port),
                      .schedule = g.schedule,
                      .buffer_bytes = g.buffer_bytes.value_or(o.buffer_bytes),
                      .buffer_frames = g.buffer_frames.value_or(o.buffer_frames),
                      .accelerate = g.accelerate});
  }

  // The datapath.
  datapath::DatapathConfig config;
  config.accelerate = !o.no_vsnoop;
  config.run_engine = o.engine == "on";
  config.burst = o.burst;
  config.engine.max_flows = o.max_flows;
  config.engine.buffer_aware_window = o.buffer_aware_window;
  config.engine.hash_seed = std::random_device{}() * 0x9E3779B97F4A7C15ULL ^ std::random_device{}();
  datapath::Datapath dp(config, std::move(uplink), std::move(guests), MonotonicNow());

  std::unique_ptr<daemon::PcapngWriter> pcap;
  if (!o.pcap_out.empty()) {
    const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() -
                      MonotonicNow().count();
    pcap = daemon::PcapngWriter::Open(o.pcap_out, wall, &error);
    if (!pcap) {
      spdlog::error("{}", error);
      return 1;
    }
    dp.set_observer(pcap.get());
  }
  std::unique_ptr<daemon::RequestServer> control;
  if (!o.control_path.empty()) {
    control = daemon::RequestServer::ListenUnix(
        o.control_path, [&dp](const std::string& in) { return Control(dp, in); }, &error);
    if (!control) {
      spdlog::error("control: {}", error);
      return 1;
    }
  }
  std::unique_ptr<daemon::RequestServer> metrics;
  if (o.metrics_port != 0) {
    metrics = daemon::RequestServer::ListenLoopback(
        o.metrics_port, [&dp](const std::string& in) { return Metrics(dp, in); }, &error);
    if (!metrics) {
      spdlog::error("metrics: {}", error);
      return 1;
    }
  }
  spdlog::info("ready: uplink {}, {} guest(s), vSnoop {}, buffer {} bytes / {} frames per guest",
               o.uplink, o.guests.size(), o.no_vsnoop ? "off" : "on", o.buffer_bytes,
               o.buffer_frames);
  for (const GuestSpec& g : o.guests) {
    spdlog::info("guest {}{}", g.text, g.schedule ? " scheduled " + g.schedule->ToString() : "");
  }

  // The loop.
  std::vector<pollfd> waits;
  Timestamp last_flush = MonotonicNow();
  for (;;) {
    const Timestamp now = MonotonicNow();
    dp.Step(now);
    if (control) control->Serve();
    if (metrics) metrics->Serve();
    if (pcap && now - last_flush > std::chrono::seconds(1)) {
      pcap->Flush();
      last_flush = now;
    }
    waits.clear();
    waits.push_back(pollfd{.fd = signal_fd, .events = POLLIN, .revents = 0});
    dp.CollectWaits(&waits);
    if (control) control->CollectWaits(&waits);
    if (metrics) metrics->CollectWaits(&waits);
    const Duration wait = dp.NextDeadline(now) - MonotonicNow();
    const auto ns = std::max<std::int64_t>(0, wait.count());
    const timespec timeout{.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    if (ppoll(waits.data(), waits.size(), &timeout, nullptr) < 0 && errno != EINTR) {
      spdlog::error("ppoll: {}", std::strerror(errno));
      return 1;
    }
    if ((waits[0].revents & POLLIN) != 0) break;
  }

  // Before going: hand every guest what its buffer holds. Some of it was acknowledged on
  // the guest's behalf, and the sender will never send it again.
  const Timestamp drain_until = MonotonicNow() + std::chrono::seconds(5);
  std::uint64_t undelivered = dp.Drain();
  while (undelivered > 0 && MonotonicNow() < drain_until) {
    waits.clear();
    dp.CollectWaits(&waits);
    const timespec step{.tv_sec = 0, .tv_nsec = 10'000'000};
    ppoll(waits.data(), waits.size(), &step, nullptr);
    undelivered = dp.Drain();
  }
  if (undelivered > 0) {
    spdlog::error("shutting down with {} bytes still in guest buffers (their guests did not "
                  "take them within 5 s); early-acknowledged data among them is lost",
                  undelivered);
  }

  const Counters& c = dp.engine().counters();
  spdlog::info("shutting down: {} early ACKs, {} guest ACKs suppressed, {} window updates, "
               "{} flows seen, {} internal bugs",
               c.early_acks, c.guest_acks_suppressed, c.window_updates, c.flows_created, bugs_seen);
  if (pcap) pcap->Flush();
  return bugs_seen == 0 ? 0 : 3;
}
