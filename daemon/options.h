// vsnoopd's command line and configuration file, parsed into plain values. Kept apart from
// main() so the parsing is tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vsnoop/datapath/schedule.h"

namespace vsnoop::daemon {

struct GuestSpec {
  enum class Kind : std::uint8_t { kVeth, kQemu };
  Kind kind = Kind::kVeth;
  std::string target;  // interface name, or the qemu stream socket's path
  std::string text;    // the spec as written, which names the guest in stats
  std::optional<datapath::ScheduleConfig> schedule;
  std::optional<std::uint64_t> buffer_bytes;
  std::optional<std::uint32_t> buffer_frames;
  bool accelerate = true;

  // "veth:IFNAME[,sched=rr:vms=K:slice_ms=30:turn=I][,buffer-bytes=N][,buffer-frames=N]
  //  [,vsnoop=off]" or "qemu:SOCKET_PATH[,...]".
  static std::optional<GuestSpec> Parse(const std::string& text, std::string* error);
};

struct DaemonOptions {
  std::string uplink;
  std::vector<GuestSpec> guests;
  bool no_vsnoop = false;
  std::string engine = "on";  // "off": a plain bridge, for measuring the engine's cost
  bool buffer_aware_window = true;
  std::uint64_t buffer_bytes = 1 << 20;
  std::uint32_t buffer_frames = 1024;
  std::size_t max_flows = 65536;
  std::string control_path;
  std::string pcap_out;
  int metrics_port = 0;  // 0: no metrics endpoint
  std::string ring = "v2";
  std::size_t ring_mb = 64;  // each AF_PACKET receive ring
  bool vnet_headers = true;
  bool qdisc_bypass = true;
  std::size_t burst = 64;
  int cpu = -1;  // pin the datapath thread to this CPU
  std::string log_level = "info";
};

// Parses argv (and --config FILE, a TOML file whose keys are the long option names).
// Returns the options, or nullopt with *exit_code set (0 after --help, non-zero on error,
// the message already printed).
std::optional<DaemonOptions> ParseDaemonOptions(int argc, char** argv, int* exit_code);

}  // namespace vsnoop::daemon
