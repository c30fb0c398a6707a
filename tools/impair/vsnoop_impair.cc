// vsnoop-impair: joins two interfaces and makes the link between them misbehave on purpose
// (loss at random and in bursts, reordering, duplication, delay with jitter, a rate limit,
// CE marks), each from a seed so a failing run can be replayed. This kernel has no tc netem;
// the safety tests put this forwarder between the sender and vsnoopd's uplink.
//
//   vsnoop-impair [--loss P] [--burst-loss R:L] [--burst-max 50ms] [--reorder P:GAP]
//                 [--reorder-hold 10ms]
//                 [--duplicate P] [--ce-mark P] [--delay 20ms] [--jitter 2ms]
//                 [--rate 200mbit] [--queue-limit 50ms] [--seed N]
//                 [--apply both|forward|reverse] [--gso segment|keep]
//                 [--stats-json FILE] [--seconds N] IF1 IF2
//
// "forward" is IF1 -> IF2. Each direction has its own generator (seeded from --seed and the
// direction), so the two directions' fates do not depend on each other's traffic.
//
// GSO super-frames: both ports run with virtio-net headers, so a sender's TSO/GSO frame (up
// to 64 KB) arrives whole. With --gso segment (the default) the forwarder cuts it into the
// MSS-sized frames the sender's NIC would have put on the wire (and completes partial
// checksums) before deciding, so loss and reordering act on wire-sized segments as on a
// real link. --gso keep decides once per super-frame and forwards it whole (one loss then
// removes up to 44 segments at once).
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "impairment.h"
#include "vsnoop/datapath/gso.h"
#include "vsnoop/datapath/packet_port.h"
#include "vsnoop/wire/ethernet.h"

namespace {

using vsnoop::datapath::OwnedPacket;
using vsnoop::datapath::PacketPort;
using vsnoop::datapath::PacketView;
using vsnoop::impair::Impairment;
using vsnoop::impair::ImpairmentConfig;
using vsnoop::impair::Timestamp;

Timestamp Now() {
  return std::chrono::duration_cast<Timestamp>(std::chrono::steady_clock::now().time_since_epoch());
}

// Where the IP header's ECN bits are, if the frame is IPv4 or IPv6 (after VLAN tags).
struct IpLocation {
  std::size_t offset = 0;
  int family = 0;  // 0: not IP
};

IpLocation LocateIp(std::span<const std::uint8_t> frame) {
  const auto eth = vsnoop::wire::EthernetView::Parse(frame);
  if (!eth) return {};
  const std::size_t off = eth->header_size();
  if (eth->ether_type() == vsnoop::wire::kEtherTypeIpv4 && frame.size() >= off + 20 &&
      (frame[off] >> 4) == 4) {
    return {off, 4};
  }
  if (eth->ether_type() == vsnoop::wire::kEtherTypeIpv6 && frame.size() >= off + 40 &&
      (frame[off] >> 4) == 6) {
    return {off, 6};
  }
  return {};
}

int EcnBits(std::span<const std::uint8_t> frame, const IpLocation& ip) {
  if (ip.family == 4) return frame[ip.offset + 1] & 0x03;
  if (ip.family == 6) return (frame[ip.offset + 1] >> 4) & 0x03;
  return 0;
}

// Sets CE (RFC 3168 §5) and, for IPv4, recomputes the header checksum.
void MarkCe(std::vector<std::uint8_t>& frame, const IpLocation& ip) {
  std::uint8_t* h = frame.data() + ip.offset;
  if (ip.family == 6) {
    h[1] = static_cast<std::uint8_t>(h[1] | 0x30);
    return;
  }
  h[1] = static_cast<std::uint8_t>(h[1] | 0x03);
  const std::size_t ihl = static_cast<std::size_t>(h[0] & 0x0F) * 4;
  if (ihl < 20 || ip.offset + ihl > frame.size()) return;
  h[10] = 0;
  h[11] = 0;
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < ihl; i += 2)
    sum += static_cast<std::uint32_t>(h[i] << 8 | h[i + 1]);
  while ((sum >> 16) != 0)
    sum = (sum & 0xFFFF) + (sum >> 16);
  const auto checksum = static_cast<std::uint16_t>(~sum);
  h[10] = static_cast<std::uint8_t>(checksum >> 8);
  h[11] = static_cast<std::uint8_t>(checksum & 0xFF);
}

enum class GsoMode { kSegment, kKeep };

struct DirectionStats {
  std::uint64_t received = 0;          // frames read from the input port
  std::uint64_t segmented = 0;         // super-frames cut into wire-sized frames
  std::uint64_t unoffload_failed = 0;  // super-frames that could not be cut: forwarded whole
  std::uint64_t sent = 0;
  std::uint64_t send_dropped = 0;  // copies dropped: too many frames waiting
};

// One direction of the link: frames from `in` are impaired and leave through `out`.
struct Direction {
  std::string name;
  PacketPort* in = nullptr;
  PacketPort* out = nullptr;
  Impairment impairment;
  struct Stored {
    OwnedPacket packet;
    std::uint32_t copies_left = 0;
  };
  std::unordered_map<std::uint64_t, Stored> stored;
  std::deque<OwnedPacket> unsent;  // released, but the output port had no room
  std::uint64_t next_id = 0;
  DirectionStats stats;

  Direction(std::string n, PacketPort* i, PacketPort* o, const ImpairmentConfig& c)
      : name(std::move(n)), in(i), out(o), impairment(c) {}
};

constexpr std::size_t kBurst = 64;
// Frames held at once per direction (delay x rate): beyond it new frames are dropped.
constexpr std::size_t kMaxStored = 200000;

void Offer(Direction& d, OwnedPacket packet, Timestamp now) {
  const IpLocation ip = LocateIp(packet.frame);
  const int ecn = EcnBits(packet.frame, ip);
  const std::uint64_t id = d.next_id++;
  const auto result = d.impairment.Offer(now, id, static_cast<std::uint32_t>(packet.frame.size()),
                                         ecn == 1 || ecn == 2);
  if (result.copies == 0) return;
  if (d.stored.size() >= kMaxStored) {
    d.stats.send_dropped += result.copies;
    // The model still returns the id; PopDue skips ids it cannot find.
    return;
  }
  if (result.mark_ce) MarkCe(packet.frame, ip);
  d.stored.emplace(id, Direction::Stored{std::move(packet), result.copies});
}

void Receive(Direction& d, GsoMode gso, Timestamp now) {
  std::vector<OwnedPacket> frames;
  d.stats.received += d.in->ReceiveBurst(kBurst, [&](const PacketView& view) {
    if (gso == GsoMode::kSegment && !view.vnet.plain()) {
      const std::size_t before = frames.size();
      if (vsnoop::datapath::Unoffload(view, &frames) == vsnoop::datapath::GsoResult::kDone) {
        if (view.vnet.is_gso()) ++d.stats.segmented;
        return;
      }
      frames.resize(before);
      ++d.stats.unoffload_failed;
    }
    frames.push_back({{view.frame.begin(), view.frame.end()}, view.vnet});
  });
  for (OwnedPacket& p : frames)
    Offer(d, std::move(p), now);
}

// Sends what is due; false if the output port stopped taking frames.
bool Release(Direction& d, Timestamp now) {
  while (!d.unsent.empty()) {
    const PacketView view = d.unsent.front().view();
    if (d.out->SendBurst({&view, 1}) == 0) return false;
    d.unsent.pop_front();
    ++d.stats.sent;
  }
  while (const auto id = d.impairment.PopDue(now)) {
    auto it = d.stored.find(*id);
    if (it == d.stored.end()) continue;  // dropped for lack of room when offered
    const PacketView view = it->second.packet.view();
    const bool last = --it->second.copies_left == 0;
    if (d.out->SendBurst({&view, 1}) == 1) {
      ++d.stats.sent;
    } else {
      d.unsent.push_back(it->second.packet);
    }
    if (last) d.stored.erase(it);
    if (!d.unsent.empty()) return false;
  }
  return true;
}

nlohmann::json StatsJson(const Direction& d) {
  const auto& s = d.impairment.stats();
  return {{"received", d.stats.received},
          {"segmented", d.stats.segmented},
          {"unoffload_failed", d.stats.unoffload_failed},
          {"offered", s.offered},
          {"lost_random", s.lost_random},
          {"lost_burst", s.lost_burst},
          {"lost_queue", s.lost_queue},
          {"duplicated", s.duplicated},
          {"reordered", s.reordered},
          {"ce_marked", s.ce_marked},
          {"released", s.released},
          {"sent", d.stats.sent},
          {"send_dropped", d.stats.send_dropped},
          {"config", d.impairment.config().ToString()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "vsnoop-impair: a link between two interfaces that loses, reorders, duplicates,\n"
      "delays and rate-limits frames on purpose, from a seed (for replay)."};
  ImpairmentConfig config;
  std::string burst_loss, burst_max = "0", reorder, reorder_hold = "10ms", delay = "0", jitter = "0",
              rate = "0",
                                   queue_limit = "50ms", apply = "both", gso = "segment",
                                   stats_json;
  std::string interfaces[2];
  int seconds = 0;
  app.add_option("--loss", config.loss, "probability each frame is lost")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--burst-loss", burst_loss,
                 "R:L: lose R of all frames in bursts of L frames on average (Gilbert-Elliott)");
  app.add_option("--burst-max", burst_max, "a burst also ends once it has lasted this long (0: never)");
  app.add_option("--reorder", reorder,
                 "P:GAP: hold a frame back with probability P until GAP later frames overtook it");
  app.add_option("--reorder-hold", reorder_hold, "longest a held frame waits for overtakers");
  app.add_option("--duplicate", config.duplicate, "probability each frame is sent twice")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--ce-mark", config.ce_mark, "probability an ECN-capable frame is marked CE")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--delay", delay, "one-way delay (20ms, 500us)");
  app.add_option("--jitter", jitter, "delay varies within +-jitter (order kept)");
  app.add_option("--rate", rate, "rate limit (200mbit, 1gbit; 0: none)");
  app.add_option("--queue-limit", queue_limit,
                 "frames that would wait longer for the rate limit are dropped");
  app.add_option("--seed", config.seed, "seed of the pseudo-random decisions");
  app.add_option("--apply", apply, "directions impaired: both, forward (IF1->IF2), reverse")
      ->check(CLI::IsMember({"both", "forward", "reverse"}));
  app.add_option("--gso", gso, "segment: cut GSO super-frames into wire frames first; keep: whole")
      ->check(CLI::IsMember({"segment", "keep"}));
  app.add_option("--stats-json", stats_json, "write what happened to each direction here at exit");
  app.add_option("--seconds", seconds, "stop after N seconds (0: at SIGINT/SIGTERM)");
  app.add_option("IF1", interfaces[0], "first interface")->required();
  app.add_option("IF2", interfaces[1], "second interface")->required();
  CLI11_PARSE(app, argc, argv);

  const auto burst = burst_loss.empty() ? std::make_optional(std::make_pair(0.0, 1.0))
                                        : vsnoop::impair::ParsePair(burst_loss);
  const auto reorder_pair = reorder.empty() ? std::make_optional(std::make_pair(0.0, 3.0))
                                            : vsnoop::impair::ParsePair(reorder);
  const auto hold = vsnoop::impair::ParseDuration(reorder_hold);
  const auto burst_max_d = vsnoop::impair::ParseDuration(burst_max);
  const auto delay_d = vsnoop::impair::ParseDuration(delay);
  const auto jitter_d = vsnoop::impair::ParseDuration(jitter);
  const auto rate_bps = vsnoop::impair::ParseRate(rate);
  const auto queue_d = vsnoop::impair::ParseDuration(queue_limit);
  if (!burst || burst->first > 1 || !burst_max_d || !reorder_pair || reorder_pair->first > 1 || !hold ||
      !delay_d || !jitter_d || !rate_bps || !queue_d) {
    std::cerr << "vsnoop-impair: malformed value (see --help for the forms)\n";
    return 2;
  }
  config.burst_loss = {.rate = burst->first,
                       .mean_length = burst->second > 0 ? burst->second : 1,
                       .max_duration = *burst_max_d};
  config.reorder = {
      .probability = reorder_pair->first,
      .gap = reorder_pair->second > 0 ? static_cast<std::uint32_t>(reorder_pair->second) : 3,
      .max_hold = *hold};
  config.delay = *delay_d;
  config.jitter = *jitter_d;
  config.rate_bits_per_second = *rate_bps;
  config.queue_limit = *queue_d;

  vsnoop::datapath::PacketPortOptions options;
  options.ring_version = vsnoop::datapath::RingVersion::kV2;  // frames handed over at once
  std::unique_ptr<PacketPort> ports[2];
  for (int i = 0; i < 2; ++i) {
    std::string error;
    ports[i] = PacketPort::Open(interfaces[i], options, &error);
    if (ports[i] == nullptr) {
      std::cerr << "vsnoop-impair: " << interfaces[i] << ": " << error << "\n";
      return 1;
    }
  }
  // Each direction draws from its own sequence; an unimpaired direction gets a config
  // with nothing set (its frames still pass through the same code).
  ImpairmentConfig directions_config[2] = {config, config};
  directions_config[0].seed = config.seed * 2 + 0;
  directions_config[1].seed = config.seed * 2 + 1;
  if (apply == "forward")
    directions_config[1] = ImpairmentConfig{.seed = directions_config[1].seed};
  if (apply == "reverse")
    directions_config[0] = ImpairmentConfig{.seed = directions_config[0].seed};
  Direction directions[2] = {Direction(interfaces[0] + "->" + interfaces[1], ports[0].get(),
                                       ports[1].get(), directions_config[0]),
                             Direction(interfaces[1] + "->" + interfaces[0], ports[1].get(),
                                       ports[0].get(), directions_config[1])};
  const GsoMode gso_mode = gso == "keep" ? GsoMode::kKeep : GsoMode::kSegment;

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  std::fprintf(stderr, "vsnoop-impair: %s <-> %s: forward %s; reverse %s\n", interfaces[0].c_str(),
               interfaces[1].c_str(), directions_config[0].ToString().c_str(),
               directions_config[1].ToString().c_str());

  const Timestamp end = Now() + std::chrono::seconds(seconds);
  for (;;) {
    Timestamp now = Now();
    if (seconds > 0 && now >= end) break;
    bool blocked[2] = {false, false};
    for (int i = 0; i < 2; ++i) {
      Direction& d = directions[i];
      Receive(d, gso_mode, now);
      blocked[i] = !Release(d, now);
    }
    // Wait for frames, room on a blocked port, the next departure, or a signal.
    pollfd fds[5];
    nfds_t count = 0;
    fds[count++] = {signal_fd, POLLIN, 0};
    for (int i = 0; i < 2; ++i) {
      fds[count++] = {directions[i].in->receive_fd(), POLLIN, 0};
      if (blocked[i]) fds[count++] = {directions[i].out->send_fd(), POLLOUT, 0};
    }
    now = Now();
    std::int64_t wait_ns = 100'000'000;
    for (const Direction& d : directions) {
      if (const auto next = d.impairment.NextEvent()) {
        wait_ns = std::min<std::int64_t>(wait_ns, std::max<std::int64_t>(0, (*next - now).count()));
      }
    }
    if (directions[0].in->ReceivePending() || directions[1].in->ReceivePending()) wait_ns = 0;
    const timespec timeout{.tv_sec = wait_ns / 1'000'000'000, .tv_nsec = wait_ns % 1'000'000'000};
    ppoll(fds, count, &timeout, nullptr);
    if ((fds[0].revents & POLLIN) != 0) break;
  }

  nlohmann::json report = {{directions[0].name, StatsJson(directions[0])},
                           {directions[1].name, StatsJson(directions[1])}};
  std::fprintf(stderr, "vsnoop-impair: %s\n", report.dump().c_str());
  if (!stats_json.empty()) {
    std::ofstream out(stats_json);
    out << report.dump(2) << "\n";
  }
  return 0;
}
