// vsnoop-flood: sends spoofed TCP SYNs and data segments on random 4-tuples to one guest,
// as fast as an AF_PACKET socket takes them (sendmmsg, qdisc bypassed), to check that
// vsnoopd's flow table stays within its capacity and its memory stays bounded while an
// accelerated connection keeps being accelerated (tests/safety/flood_test.py).
//
//   vsnoop-flood --interface IF --dst-mac MAC --dst-ip ADDR --src-mac MAC --count N
//                [--syn-share 0.5] [--seed N] [--payload 64] [--avoid-port 5001]
//                [--random-src-mac] [--rate FRAMES_PER_SECOND]
//
// Sources are random addresses in 198.18.0.0/15 (RFC 2544's benchmarking range) or, for an
// IPv6 destination, in 2001:2::/48 (RFC 5180); the guest has no route to them, so its
// answers go nowhere. Ports, sequence and acknowledgement numbers are random; every
// checksum is valid, so the engine takes each frame as far as it can. Prints one JSON line:
// frames sent, seconds, frames per second.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string interface;
  std::string dst_mac = "ff:ff:ff:ff:ff:ff";
  std::string src_mac = "02:00:00:00:00:fe";
  std::string dst_ip;
  std::uint64_t count = 1'000'000;
  double syn_share = 0.5;
  std::uint64_t seed = 1;
  std::size_t payload = 64;
  std::uint16_t avoid_port = 5001;
  bool random_src_mac = false;
  double rate = 0;  // frames per second; 0: as fast as the socket takes them
};

bool ParseMac(const std::string& text, std::uint8_t* out) {
  unsigned v[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    return false;
  }
  for (int i = 0; i < 6; ++i) out[i] = static_cast<std::uint8_t>(v[i]);
  return true;
}

void Put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void Put32(std::uint8_t* p, std::uint32_t v) {
  Put16(p, static_cast<std::uint16_t>(v >> 16));
  Put16(p + 2, static_cast<std::uint16_t>(v));
}

// RFC 1071 one's-complement sum of big-endian 16-bit words.
std::uint32_t Sum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if ((n & 1) != 0) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  return sum;
}
std::uint16_t Fold(std::uint32_t sum) {
  while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

class FrameMaker {
 public:
  FrameMaker(const Options& o, const std::uint8_t* dst_mac, const std::uint8_t* src_mac, bool ipv6,
             const std::uint8_t* dst_ip)
      : o_(o), ipv6_(ipv6), rng_(o.seed) {
    std::memcpy(dst_mac_, dst_mac, 6);
    std::memcpy(src_mac_, src_mac, 6);
    std::memcpy(dst_ip_, dst_ip, ipv6 ? 16 : 4);
  }

  // Writes one frame into `out`; returns its length.
  std::size_t Make(std::uint8_t* out) {
    const std::uint64_t r1 = rng_();
    const std::uint64_t r2 = rng_();
    const bool syn = static_cast<double>(r1 & 0xFFFF) / 65536.0 < o_.syn_share;
    const std::size_t payload = syn ? 0 : o_.payload;
    std::memcpy(out, dst_mac_, 6);
    std::memcpy(out + 6, src_mac_, 6);
    if (o_.random_src_mac) {
      // Locally administered unicast, random: each frame teaches the bridge a new address.
      out[6] = 0x02;
      Put32(out + 8, static_cast<std::uint32_t>(r2 >> 32));
    }
    Put16(out + 12, ipv6_ ? 0x86DD : 0x0800);
    std::uint8_t* ip = out + 14;
    const std::size_t ip_size = ipv6_ ? 40 : 20;
    const std::size_t tcp_size = 20 + payload;
    std::uint8_t src_ip[16] = {};
    if (ipv6_) {
      // 2001:2::/48 with a random interface part.
      src_ip[0] = 0x20; src_ip[1] = 0x01; src_ip[3] = 0x02;
      Put32(src_ip + 8, static_cast<std::uint32_t>(r1 >> 32));
      Put32(src_ip + 12, static_cast<std::uint32_t>(r2));
      Put32(ip, 6u << 28);
      Put16(ip + 4, static_cast<std::uint16_t>(tcp_size));
      ip[6] = 6;
      ip[7] = 64;
      std::memcpy(ip + 8, src_ip, 16);
      std::memcpy(ip + 24, dst_ip_, 16);
    } else {
      // 198.18.0.0/15.
      const std::uint32_t host = static_cast<std::uint32_t>(r1 >> 32) & 0x1FFFF;
      Put32(src_ip, (198u << 24 | 18u << 16) + host);
      ip[0] = 0x45;
      ip[1] = 0;
      Put16(ip + 2, static_cast<std::uint16_t>(ip_size + tcp_size));
      Put16(ip + 4, static_cast<std::uint16_t>(r2));
      Put16(ip + 6, 0x4000);
      ip[8] = 64;
      ip[9] = 6;
      Put16(ip + 10, 0);
      std::memcpy(ip + 12, src_ip, 4);
      std::memcpy(ip + 16, dst_ip_, 4);
      Put16(ip + 10, Fold(Sum(ip, 20)));
    }
    std::uint8_t* tcp = ip + ip_size;
    const auto sport = static_cast<std::uint16_t>(1024 + (r2 >> 16) % 64000);
    auto dport = static_cast<std::uint16_t>(1 + (r2 >> 40) % 65535);
    if (dport == o_.avoid_port) ++dport;
    Put16(tcp, sport);
    Put16(tcp + 2, dport);
    Put32(tcp + 4, static_cast<std::uint32_t>(rng_()));
    Put32(tcp + 8, syn ? 0 : static_cast<std::uint32_t>(rng_()));
    tcp[12] = 5 << 4;
    tcp[13] = syn ? 0x02 : 0x18;  // SYN, or PSH+ACK with data
    Put16(tcp + 14, 65535);
    Put16(tcp + 16, 0);
    Put16(tcp + 18, 0);
    for (std::size_t i = 0; i < payload; ++i) tcp[20 + i] = static_cast<std::uint8_t>('a' + i % 26);
    // Pseudo header (RFC 9293 §3.1, RFC 8200 §8.1).
    std::uint32_t sum = Sum(src_ip, ipv6_ ? 16 : 4);
    sum = Sum(dst_ip_, ipv6_ ? 16 : 4, sum);
    sum += 6 + static_cast<std::uint32_t>(tcp_size);
    sum = Sum(tcp, tcp_size, sum);
    Put16(tcp + 16, Fold(sum));
    return 14 + ip_size + tcp_size;
  }

 private:
  Options o_;
  bool ipv6_;
  std::mt19937_64 rng_;
  std::uint8_t dst_mac_[6];
  std::uint8_t src_mac_[6];
  std::uint8_t dst_ip_[16];
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"vsnoop-flood: spoofed SYNs and data segments on random 4-tuples, as fast as possible"};
  app.add_option("--interface", o.interface, "send on this interface")->required();
  app.add_option("--dst-mac", o.dst_mac, "the guest's MAC");
  app.add_option("--src-mac", o.src_mac, "source MAC of every frame");
  app.add_option("--dst-ip", o.dst_ip, "the guest's address (IPv4 or IPv6)")->required();
  app.add_option("--count", o.count, "frames to send");
  app.add_option("--syn-share", o.syn_share, "share of SYNs (the rest: data segments)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", o.seed, "seed of the random tuples");
  app.add_option("--payload", o.payload, "bytes of data per data segment")->check(CLI::Range(0, 1400));
  app.add_option("--avoid-port", o.avoid_port, "never send to this destination port");
  app.add_flag("--random-src-mac", o.random_src_mac, "a random source MAC per frame");
  app.add_option("--rate", o.rate, "frames per second (0: as fast as possible)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  std::uint8_t dst_mac[6], src_mac[6], dst_ip[16] = {};
  bool ipv6 = false;
  if (!ParseMac(o.dst_mac, dst_mac) || !ParseMac(o.src_mac, src_mac)) {
    std::fprintf(stderr, "vsnoop-flood: bad MAC address\n");
    return 2;
  }
  if (inet_pton(AF_INET, o.dst_ip.c_str(), dst_ip) == 1) {
    ipv6 = false;
  } else if (inet_pton(AF_INET6, o.dst_ip.c_str(), dst_ip) == 1) {
    ipv6 = true;
  } else {
    std::fprintf(stderr, "vsnoop-flood: bad address %s\n", o.dst_ip.c_str());
    return 2;
  }

  const int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (fd < 0) {
    std::perror("vsnoop-flood: socket (needs CAP_NET_RAW)");
    return 1;
  }
  const int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  const int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(if_nametoindex(o.interface.c_str()));
  if (addr.sll_ifindex == 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("vsnoop-flood: bind");
    return 1;
  }

  constexpr std::size_t kBatch = 64;
  constexpr std::size_t kFrameMax = 14 + 40 + 20 + 1400;
  std::vector<std::array<std::uint8_t, kFrameMax>> frames(kBatch);
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> msgs{};
  FrameMaker maker(o, dst_mac, src_mac, ipv6, dst_ip);
  std::uint64_t sent = 0, retries = 0;
  const auto start = std::chrono::steady_clock::now();
  while (sent < o.count) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, o.count - sent));
    for (std::size_t i = 0; i < n; ++i) {
      iov[i] = {frames[i].data(), maker.Make(frames[i].data())};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    std::size_t done = 0;
    while (done < n) {
      const int r = sendmmsg(fd, msgs.data() + done, static_cast<unsigned>(n - done), 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
          ++retries;
          usleep(50);
          continue;
        }
        std::perror("vsnoop-flood: sendmmsg");
        return 1;
      }
      done += static_cast<std::size_t>(r);
    }
    sent += n;
    if (o.rate > 0) {
      // Pace by batch: wait until this many frames are due.
      const auto due = start + std::chrono::duration<double>(static_cast<double>(sent) / o.rate);
      std::this_thread::sleep_until(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(due));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"sent\": %llu, \"seconds\": %.3f, \"frames_per_second\": %.0f, \"retries\": %llu}\n",
              static_cast<unsigned long long>(sent), seconds, static_cast<double>(sent) / seconds,
              static_cast<unsigned long long>(retries));
  close(fd);
  return 0;
}
