#include "options.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>

namespace vsnoop::daemon {
namespace {

std::optional<std::uint64_t> ParseCount(const std::string& s) {
  if (s.empty() || s.size() > 15 || s.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoull(s);
}

}  // namespace

std::optional<GuestSpec> GuestSpec::Parse(const std::string& text, std::string* error) {
  GuestSpec spec;
  spec.text = text;
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    *error = "guest '" + text + "' must be veth:IFNAME or qemu:SOCKET_PATH";
    return std::nullopt;
  }
  const std::string kind = text.substr(0, colon);
  if (kind == "veth") {
    spec.kind = Kind::kVeth;
  } else if (kind == "qemu") {
    spec.kind = Kind::kQemu;
  } else {
    *error = "guest '" + text + "': unknown kind '" + kind + "' (veth or qemu)";
    return std::nullopt;
  }
  std::vector<std::string> fields;
  std::istringstream in(text.substr(colon + 1));
  for (std::string f; std::getline(in, f, ',');) fields.push_back(f);
  if (fields.empty() || fields[0].empty()) {
    *error = "guest '" + text + "' names no " + (kind == "veth" ? "interface" : "socket path");
    return std::nullopt;
  }
  spec.target = fields[0];
  for (std::size_t i = 1; i < fields.size(); ++i) {
    const auto eq = fields[i].find('=');
    const std::string key = fields[i].substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : fields[i].substr(eq + 1);
    if (key == "sched") {
      std::string why;
      spec.schedule = datapath::ScheduleConfig::Parse(value, &why);
      if (!spec.schedule) {
        *error = "guest '" + text + "': " + why;
        return std::nullopt;
      }
    } else if (key == "buffer-bytes" || key == "buffer-frames") {
      const auto n = ParseCount(value);
      if (!n || *n == 0) {
        *error = "guest '" + text + "': " + key + " needs a positive number";
        return std::nullopt;
      }
      if (key == "buffer-bytes") {
        spec.buffer_bytes = *n;
      } else {
        spec.buffer_frames = static_cast<std::uint32_t>(*n);
      }
    } else if (key == "vsnoop" && (value == "on" || value == "off")) {
      spec.accelerate = value == "on";
    } else {
      *error = "guest '" + text + "': unknown field '" + fields[i] + "'";
      return std::nullopt;
    }
  }
  if (spec.schedule && spec.kind == Kind::kQemu) {
    *error = "guest '" + text + "': qemu guests are scheduled by the host's CPU scheduler; "
             "sched= is for namespace guests (veth)";
    return std::nullopt;
  }
  return spec;
}

std::optional<DaemonOptions> ParseDaemonOptions(int argc, char** argv, int* exit_code) {
  DaemonOptions o;
  std::vector<std::string> guests;
  CLI::App app{
      "vsnoopd: the host datapath with vSnoop inline. Bridges an uplink to guest ports,\n"
      "keeps a bounded receive buffer per guest, and acknowledges in-order TCP data on a\n"
      "guest's behalf once it is in that buffer."};
  app.set_config("--config", "", "read options from a TOML file (keys: the long option names)");
  // A misspelt key in the file is an error, as a misspelt flag is.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option("--uplink", o.uplink, "the network-side interface (AF_PACKET)")->required();
  app.add_option("--guest", guests,
                 "a guest port: veth:IFNAME[,sched=rr:vms=K:slice_ms=30:turn=I"
                 "[:neighbours=burn|yield][:neighbour_ms=N][:idle_us=N][:wake_passes=N]] or "
                 "qemu:SOCKET_PATH; options ,buffer-bytes=N ,buffer-frames=N ,vsnoop=off")
      ->required();
  app.add_flag("--no-vsnoop", o.no_vsnoop,
               "observe only: forward everything, acknowledge nothing (the baseline)");
  app.add_option("--engine", o.engine,
                 "off: do not run the engine at all (a plain learning bridge with per-guest "
                 "buffers), to measure what it costs")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_flag("!--no-buffer-aware-window", o.buffer_aware_window,
               "show senders the guest's own window even when its buffer cannot hold it");
  app.add_option("--buffer-bytes", o.buffer_bytes, "each guest's receive buffer, bytes")
      ->check(CLI::Range(std::uint64_t{2048}, std::uint64_t{1} << 32));
  app.add_option("--buffer-frames", o.buffer_frames, "each guest's receive buffer, frames")
      ->check(CLI::Range(1u, 1u << 24));
  app.add_option("--max-flows", o.max_flows, "flow table capacity")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--control", o.control_path, "unix socket for vsnoopctl");
  app.add_option("--pcap-out", o.pcap_out,
                 "write every early ACK, window update and suppressed guest ACK to this "
                 "pcapng file (each packet commented with what vSnoop did)");
  app.add_option("--metrics-port", o.metrics_port,
                 "serve Prometheus metrics on 127.0.0.1:PORT/metrics")
      ->check(CLI::Range(1, 65535));
  app.add_option("--ring", o.ring,
                 "AF_PACKET receive ring: v2 (a slot per frame, handed over at once) or v3 "
                 "(blocks, handed over when full or after 1 ms: adds latency)")
      ->check(CLI::IsMember({"v2", "v3"}));
  app.add_option("--ring-mb", o.ring_mb, "size of each AF_PACKET receive ring, MiB")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  app.add_flag("!--no-vnet-hdr", o.vnet_headers,
               "AF_PACKET without virtio-net headers (interfaces need offloads off)");
  app.add_flag("!--no-qdisc-bypass", o.qdisc_bypass, "transmit through the interfaces' qdiscs");
  app.add_option("--burst", o.burst, "frames per receive or send call")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  app.add_option("--cpu", o.cpu, "pin the datapath thread to this CPU")->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);  // prints help (exit 0) or the error (non-zero)
    return std::nullopt;
  }
  for (const std::string& g : guests) {
    std::string error;
    auto spec = GuestSpec::Parse(g, &error);
    if (!spec) {
      std::cerr << "vsnoopd: " << error << "\n";
      *exit_code = 2;
      return std::nullopt;
    }
    o.guests.push_back(std::move(*spec));
  }
  return o;
}

}  // namespace vsnoop::daemon
