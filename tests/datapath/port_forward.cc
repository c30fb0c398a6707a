// port_forward: joins two PacketPorts, every frame from one going out of the other (a
// two-port bridge without learning). It measures the ports alone, without the engine:
// tests/datapath/measure_ports.sh runs ping and iperf3 through it and through a Linux bridge.
//
//   port_forward [--ring v3|v2] [--vnet on|off] [--bypass on|off] [--block-timeout-ms N]
//                [--max-frame N] [--send batch|each] [--seconds N] IF1 IF2
//
// Run it in the namespace that holds both interfaces; it stops on SIGINT/SIGTERM (or after
// --seconds) and prints what each port counted. --send batch copies a received burst and
// sends it with one SendBurst; --send each sends every frame from inside the receive sink
// (no copy, one system call per frame).
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "vsnoop/datapath/packet_port.h"

namespace {

using vsnoop::datapath::OwnedPacket;
using vsnoop::datapath::PacketPort;
using vsnoop::datapath::PacketPortOptions;
using vsnoop::datapath::PacketView;
using vsnoop::datapath::Port;

volatile sig_atomic_t stop_requested = 0;
void RequestStop(int) {
  stop_requested = 1;
}

enum class SendMode { kBatch, kEach };

struct Config {
  PacketPortOptions options;
  SendMode send_mode = SendMode::kBatch;
  int seconds = 0;  // 0: until a signal
  std::string interfaces[2];
};

[[noreturn]] void Usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--ring v3|v2] [--vnet on|off] [--bypass on|off] "
               "[--block-timeout-ms N] [--max-frame N] [--send batch|each] [--seconds N] "
               "IF1 IF2\n",
               program);
  std::exit(2);
}

Config ParseArguments(int argc, char** argv) {
  Config config;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(argv[0]);
      return argv[++i];
    };
    if (arg == "--ring") {
      const std::string v = value();
      config.options.ring_version =
          v == "v2" ? vsnoop::datapath::RingVersion::kV2 : vsnoop::datapath::RingVersion::kV3;
    } else if (arg == "--vnet") {
      config.options.vnet_headers = value() == "off" ? vsnoop::datapath::VnetHeaders::kOff
                                                     : vsnoop::datapath::VnetHeaders::kOn;
    } else if (arg == "--bypass") {
      config.options.qdisc_bypass = value() == "off" ? vsnoop::datapath::QdiscBypass::kOff
                                                     : vsnoop::datapath::QdiscBypass::kOn;
    } else if (arg == "--block-timeout-ms") {
      config.options.v3_block_timeout = std::chrono::milliseconds(std::atoi(value().c_str()));
    } else if (arg == "--max-frame") {
      config.options.max_frame_bytes = static_cast<std::size_t>(std::atol(value().c_str()));
    } else if (arg == "--send") {
      config.send_mode = value() == "each" ? SendMode::kEach : SendMode::kBatch;
    } else if (arg == "--seconds") {
      config.seconds = std::atoi(value().c_str());
    } else if (positional < 2 && !arg.starts_with("--")) {
      config.interfaces[positional++] = arg;
    } else {
      Usage(argv[0]);
    }
  }
  if (positional != 2) Usage(argv[0]);
  return config;
}

// One direction: frames from `in` go out of `out`. Frames `out` did not take wait in
// `pending` (in order) and nothing more is received from `in` until they are gone.
struct Direction {
  Port* in = nullptr;
  Port* out = nullptr;
  std::deque<OwnedPacket> pending;
  std::vector<OwnedPacket> burst;  // storage reused from burst to burst
  std::vector<PacketView> views;
  std::uint64_t frames = 0;
};

constexpr std::size_t kBurst = 64;

bool FlushPending(Direction& d) {
  while (!d.pending.empty()) {
    const PacketView view = d.pending.front().view();
    if (d.out->SendBurst({&view, 1}) == 0) return false;
    d.pending.pop_front();
  }
  return true;
}

// Returns how many frames moved.
std::size_t Step(Direction& d, SendMode mode) {
  if (!FlushPending(d)) return 0;
  std::size_t received = 0;
  if (mode == SendMode::kEach) {
    received = d.in->ReceiveBurst(kBurst, [&](const PacketView& view) {
      if (!d.pending.empty() || d.out->SendBurst({&view, 1}) == 0) {
        d.pending.push_back({{view.frame.begin(), view.frame.end()}, view.vnet});
      }
    });
  } else {
    received = d.in->ReceiveBurst(kBurst, [&](const PacketView& view) {
      if (d.burst.size() < d.views.size() + 1) d.burst.emplace_back();
      OwnedPacket& slot = d.burst[d.views.size()];
      slot.frame.assign(view.frame.begin(), view.frame.end());
      slot.vnet = view.vnet;
      d.views.push_back(slot.view());
    });
    const std::size_t sent = d.out->SendBurst(d.views);
    for (std::size_t i = sent; i < d.views.size(); ++i)
      d.pending.push_back(d.burst[i]);
    d.views.clear();
  }
  d.frames += received;
  return received;
}

void PrintPort(const PacketPort& port) {
  const auto s = port.stats();
  const auto p = port.packet_stats();
  std::printf(
      "  %s: rx %llu frames %llu bytes, tx %llu frames %llu bytes, tx_errors %llu, "
      "rx_dropped %llu (kernel %llu, truncated %llu, freezes %llu), tx_blocked %llu\n",
      port.name().c_str(), static_cast<unsigned long long>(s.rx_frames),
      static_cast<unsigned long long>(s.rx_bytes), static_cast<unsigned long long>(s.tx_frames),
      static_cast<unsigned long long>(s.tx_bytes), static_cast<unsigned long long>(s.tx_errors),
      static_cast<unsigned long long>(s.rx_dropped),
      static_cast<unsigned long long>(p.rx_kernel_drops),
      static_cast<unsigned long long>(p.rx_truncated),
      static_cast<unsigned long long>(p.rx_ring_freezes),
      static_cast<unsigned long long>(p.tx_blocked));
}

}  // namespace

int main(int argc, char** argv) {
  const Config config = ParseArguments(argc, argv);
  std::unique_ptr<PacketPort> ports[2];
  for (int i = 0; i < 2; ++i) {
    std::string error;
    ports[i] = PacketPort::Open(config.interfaces[i], config.options, &error);
    if (ports[i] == nullptr) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  }
  signal(SIGINT, RequestStop);
  signal(SIGTERM, RequestStop);
  std::fprintf(stderr, "forwarding %s <-> %s\n", config.interfaces[0].c_str(),
               config.interfaces[1].c_str());

  Direction directions[2];
  directions[0].in = ports[0].get();
  directions[0].out = ports[1].get();
  directions[1].in = ports[1].get();
  directions[1].out = ports[0].get();

  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::seconds(config.seconds);
  while (stop_requested == 0 && (config.seconds == 0 || std::chrono::steady_clock::now() < end)) {
    std::size_t moved = 0;
    for (Direction& d : directions)
      moved += Step(d, config.send_mode);
    if (moved > 0) continue;
    // Idle: sleep until a port has frames or a blocked port has room.
    pollfd fds[4];
    nfds_t count = 0;
    for (const Direction& d : directions) {
      if (d.pending.empty()) {
        fds[count++] = {d.in->receive_fd(), POLLIN, 0};
      } else {
        fds[count++] = {d.out->send_fd(), POLLOUT, 0};
      }
    }
    poll(fds, count, 100);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int i = 0; i < 2; ++i) {
    std::printf("%s -> %s: %llu frames, %.0f frames/s\n", config.interfaces[i].c_str(),
                config.interfaces[1 - i].c_str(),
                static_cast<unsigned long long>(directions[i].frames),
                static_cast<double>(directions[i].frames) / seconds);
  }
  for (const auto& port : ports)
    PrintPort(*port);
  return 0;
}
