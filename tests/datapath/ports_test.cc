// Tests of the I/O port adapters against the real kernel.
//
// PacketPort: a veth pair between two network namespaces made for each test (names start
// with "vst"); the port opens one end, a plain AF_PACKET socket on the other end injects
// and reads frames. These tests need root and `ip`, and skip themselves otherwise.
//
// StreamPort: the test plays qemu's part (`-netdev stream,server=off,addr.type=unix`) with
// a unix socket client in a temporary directory; no privileges needed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vsnoop/datapath/packet_port.h"
#include "vsnoop/datapath/stream_port.h"
#include "vsnoop/sim/frame_builder.h"
#include "vsnoop/wire/bytes.h"

namespace vsnoop::datapath {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Frame = std::vector<std::uint8_t>;

// struct virtio_net_hdr (<linux/virtio_net.h> does not compile as C++): 10 bytes,
// little-endian, as AF_PACKET reads and writes it.
struct virtio_net_hdr {
  std::uint8_t flags;
  std::uint8_t gso_type;
  std::uint16_t hdr_len;
  std::uint16_t gso_size;
  std::uint16_t csum_start;
  std::uint16_t csum_offset;
};
static_assert(sizeof(virtio_net_hdr) == 10);

// IEEE 802 local experimental EtherType: no stack on the path reacts to these frames.
constexpr std::uint16_t kTestEtherType = 0x88B5;
constexpr std::size_t kEthernetHeaderBytes = 14;

// A recognisable frame: a sequence number after the Ethernet header, then a pattern.
Frame TestFrame(std::uint32_t sequence, std::size_t size) {
  Frame frame(size);
  const std::uint8_t header[kEthernetHeaderBytes] = {0x02, 0, 0, 0, 0,    0x02, 0x02,
                                                     0,    0, 0, 0, 0x01, 0x88, 0xB5};
  std::memcpy(frame.data(), header, sizeof header);
  wire::StoreBe32(frame.data() + kEthernetHeaderBytes, sequence);
  for (std::size_t i = kEthernetHeaderBytes + 4; i < size; ++i) {
    frame[i] = static_cast<std::uint8_t>(sequence * 7 + i);
  }
  return frame;
}

bool IsTestFrame(std::span<const std::uint8_t> frame) {
  return frame.size() >= kEthernetHeaderBytes + 4 &&
         wire::LoadBe16(frame.data() + 12) == kTestEtherType;
}

std::uint32_t SequenceOf(std::span<const std::uint8_t> frame) {
  return wire::LoadBe32(frame.data() + kEthernetHeaderBytes);
}

struct Captured {
  Frame frame;
  VnetHeader vnet;
};

// Receives until `want` frames passing `keep` arrived or `timeout` passed. Frames the
// filter rejects are not returned.
template <typename Keep>
std::vector<Captured> ReceiveFrames(Port& port, std::size_t want, milliseconds timeout, Keep keep) {
  std::vector<Captured> got;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    port.ReceiveBurst(64, [&](const PacketView& view) {
      if (keep(view)) got.push_back({Frame(view.frame.begin(), view.frame.end()), view.vnet});
    });
    if (got.size() >= want) break;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{port.receive_fd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(left.count()));
  }
  return got;
}

std::vector<Captured> ReceiveTestFrames(Port& port, std::size_t want,
                                        milliseconds timeout = milliseconds(2000)) {
  return ReceiveFrames(port, want, timeout,
                       [](const PacketView& view) { return IsTestFrame(view.frame); });
}

// ---------------------------------------------------------------------------------------
// Network namespace plumbing.

bool RunQuietly(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

// Moves the calling thread into a named namespace (`ip netns add`) for its lifetime.
// Sockets opened meanwhile stay in that namespace.
class InNamespace {
 public:
  explicit InNamespace(const std::string& name) {
    original_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    entered_ = original_ >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0;
    if (target >= 0) close(target);
  }
  ~InNamespace() {
    if (entered_) setns(original_, CLONE_NEWNET);
    if (original_ >= 0) close(original_);
  }
  InNamespace(const InNamespace&) = delete;
  InNamespace& operator=(const InNamespace&) = delete;
  bool entered() const { return entered_; }

 private:
  int original_ = -1;
  bool entered_ = false;
};

// A plain AF_PACKET socket on the far end of the veth: the port's peer.
class RawSocket {
 public:
  RawSocket(const std::string& netns, const std::string& ifname, VnetHeaders vnet) : vnet_(vnet) {
    InNamespace in(netns);
    if (!in.entered()) return;
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    if (vnet == VnetHeaders::kOn) setsockopt(fd_, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one);
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawSocket() {
    if (fd_ >= 0) close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool ok() const { return fd_ >= 0; }

  bool Send(const Frame& frame, const VnetHeader& vnet = {}) {
    virtio_net_hdr header{};
    header.flags = vnet.flags;
    header.gso_type = vnet.gso_type;
    header.hdr_len = htole16(vnet.hdr_len);
    header.gso_size = htole16(vnet.gso_size);
    header.csum_start = htole16(vnet.csum_start);
    header.csum_offset = htole16(vnet.csum_offset);
    iovec iov[2] = {{&header, sizeof header},
                    {const_cast<std::uint8_t*>(frame.data()), frame.size()}};
    const bool with_header = vnet_ == VnetHeaders::kOn;
    msghdr message{};
    message.msg_iov = with_header ? iov : iov + 1;
    message.msg_iovlen = with_header ? 2 : 1;
    return sendmsg(fd_, &message, 0) ==
           static_cast<ssize_t>(frame.size() + (with_header ? sizeof header : 0));
  }

  // The next test frame that arrives within `timeout`.
  std::optional<Captured> ReceiveTestFrame(milliseconds timeout = milliseconds(2000)) {
    const auto deadline = Clock::now() + timeout;
    std::vector<std::uint8_t> buffer(70000);
    for (;;) {
      const ssize_t got = recv(fd_, buffer.data(), buffer.size(), 0);
      if (got > 0) {
        Captured c;
        std::size_t offset = 0;
        if (vnet_ == VnetHeaders::kOn) {
          virtio_net_hdr header;
          std::memcpy(&header, buffer.data(), sizeof header);
          c.vnet.flags = header.flags;
          c.vnet.gso_type = header.gso_type;
          c.vnet.hdr_len = le16toh(header.hdr_len);
          c.vnet.gso_size = le16toh(header.gso_size);
          c.vnet.csum_start = le16toh(header.csum_start);
          c.vnet.csum_offset = le16toh(header.csum_offset);
          offset = sizeof header;
        }
        c.frame.assign(buffer.begin() + static_cast<std::ptrdiff_t>(offset), buffer.begin() + got);
        if (IsTestFrame(c.frame) || wire::LoadBe16(c.frame.data() + 12) == ETH_P_IP) return c;
        continue;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, static_cast<int>(left.count()));
    }
  }

 private:
  int fd_ = -1;
  VnetHeaders vnet_;
};

// Two namespaces joined by a veth pair: `port_side_` (ns A) for the port under test,
// `peer_side_` (ns B) for the plain socket. IPv6 is off so the kernel sends nothing on its
// own (no router solicitations, no MLD): every frame on the link is one a test made.
class VethTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, AF_PACKET)";
    if (!RunQuietly("ip -V")) GTEST_SKIP() << "needs the ip command (iproute2)";
    RemoveNamespacesOfDeadRuns();
    static int sequence = 0;
    const std::string id = std::to_string(getpid()) + "x" + std::to_string(sequence++);
    ns_a_ = "vst-" + id + "-a";
    ns_b_ = "vst-" + id + "-b";
    port_side_ = "vst" + id + "a";
    peer_side_ = "vst" + id + "b";
    ASSERT_LT(port_side_.size(), std::size_t{IFNAMSIZ});
    for (const std::string& ns : {ns_a_, ns_b_}) {
      ASSERT_TRUE(RunQuietly("ip netns add " + ns)) << ns;
      created_.push_back(ns);
      ASSERT_TRUE(RunQuietly("ip netns exec " + ns +
                             " sysctl -qw net.ipv6.conf.all.disable_ipv6=1"
                             " net.ipv6.conf.default.disable_ipv6=1"));
    }
    ASSERT_TRUE(RunQuietly("ip link add " + port_side_ + " netns " + ns_a_ +
                           " type veth peer name " + peer_side_ + " netns " + ns_b_));
    ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link set " + port_side_ + " up"));
    ASSERT_TRUE(RunQuietly("ip -n " + ns_b_ + " link set " + peer_side_ + " up"));
  }

  void TearDown() override {
    // Deleting a namespace destroys the veth end in it, and with it the pair.
    for (const std::string& ns : created_)
      RunQuietly("ip netns del " + ns);
  }

  // A run that crashed could not tear down; its namespaces carry its process id.
  static void RemoveNamespacesOfDeadRuns() {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", error)) {
      const std::string name = entry.path().filename().string();
      int pid = 0;
      int sequence = 0;
      char side = 0;
      if (std::sscanf(name.c_str(), "vst-%dx%d-%c", &pid, &sequence, &side) == 3 &&
          name == "vst-" + std::to_string(pid) + "x" + std::to_string(sequence) + "-" + side &&
          pid != getpid() && !std::filesystem::exists("/proc/" + std::to_string(pid))) {
        RunQuietly("ip netns del " + name);
      }
    }
  }

  std::unique_ptr<PacketPort> OpenPort(const PacketPortOptions& options) {
    InNamespace in(ns_a_);
    EXPECT_TRUE(in.entered());
    std::string error;
    auto port = PacketPort::Open(port_side_, options, &error);
    EXPECT_NE(port, nullptr) << error;
    return port;
  }

  bool SetMtu(int mtu) {
    return RunQuietly("ip -n " + ns_a_ + " link set " + port_side_ + " mtu " +
                      std::to_string(mtu)) &&
           RunQuietly("ip -n " + ns_b_ + " link set " + peer_side_ + " mtu " + std::to_string(mtu));
  }

  std::string ns_a_, ns_b_, port_side_, peer_side_;
  std::vector<std::string> created_;
};

class PacketPortTest : public VethTest, public ::testing::WithParamInterface<RingVersion> {
 protected:
  PacketPortOptions Options() const {
    PacketPortOptions options;
    options.ring_version = GetParam();
    return options;
  }
};

INSTANTIATE_TEST_SUITE_P(Rings, PacketPortTest,
                         ::testing::Values(RingVersion::kV3, RingVersion::kV2),
                         [](const ::testing::TestParamInfo<RingVersion>& param_info) {
                           return param_info.param == RingVersion::kV3 ? "V3" : "V2";
                         });

TEST_P(PacketPortTest, ReceivesInjectedFramesInOrder) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());

  std::vector<Frame> sent;
  for (std::uint32_t i = 0; i < 100; ++i) {
    sent.push_back(TestFrame(i, 60 + (i * 149) % 1455));  // 60 .. 1514 bytes
    ASSERT_TRUE(peer.Send(sent.back()));
  }
  const auto got = ReceiveTestFrames(*port, sent.size());
  ASSERT_EQ(got.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(got[i].frame, sent[i]) << "frame " << i;
    EXPECT_FALSE(got[i].vnet.is_gso());
    EXPECT_FALSE(got[i].vnet.needs_csum());
  }
  const PortStats stats = port->stats();
  EXPECT_EQ(stats.rx_frames, sent.size());
  EXPECT_EQ(stats.rx_dropped, 0u);
  EXPECT_EQ(port->packet_stats().rx_truncated, 0u);
}

TEST_P(PacketPortTest, ReceiveBurstStopsAtMaxAndResumes) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());
  for (std::uint32_t i = 0; i < 10; ++i)
    ASSERT_TRUE(peer.Send(TestFrame(i, 100)));
  // Wait until the frames are in the ring (V3: until the block is retired). On a busy
  // machine the ten frames may straddle a block retired by its 1 ms timeout; waiting well
  // past that timeout leaves all of them ready.
  pollfd p{port->receive_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  std::vector<std::uint32_t> order;
  auto sink = [&](const PacketView& view) { order.push_back(SequenceOf(view.frame)); };
  EXPECT_EQ(port->ReceiveBurst(3, sink), 3u);
  EXPECT_EQ(port->ReceiveBurst(4, sink), 4u);
  const auto rest = ReceiveTestFrames(*port, 3);
  for (const Captured& c : rest)
    order.push_back(SequenceOf(c.frame));
  EXPECT_EQ(order, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST_P(PacketPortTest, DropsAndCountsFramesLargerThanTheRingSlot) {
  PacketPortOptions options = Options();
  options.max_frame_bytes = 1518;
  options.v3_block_bytes = 4096;  // a V3 block holds at most ~4000 bytes of frame
  auto port = OpenPort(options);
  ASSERT_NE(port, nullptr);
  ASSERT_TRUE(SetMtu(9000));
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());

  ASSERT_TRUE(peer.Send(TestFrame(1, 200)));
  ASSERT_TRUE(peer.Send(TestFrame(2, 8000)));  // cannot fit: arrives truncated
  ASSERT_TRUE(peer.Send(TestFrame(3, 300)));
  const auto got = ReceiveTestFrames(*port, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].frame, TestFrame(1, 200));
  EXPECT_EQ(got[1].frame, TestFrame(3, 300));
  EXPECT_EQ(port->packet_stats().rx_truncated, 1u);
  EXPECT_EQ(port->stats().rx_dropped, 1u);
  EXPECT_EQ(port->stats().rx_frames, 2u);
}

TEST_P(PacketPortTest, CountsKernelDropsWhenTheRingIsFull) {
  PacketPortOptions options = Options();
  options.max_frame_bytes = 1518;
  options.rx_ring_bytes = 16384;  // V2: 8 slots of 2 KB
  options.v3_block_bytes = 8192;  // V3: 2 blocks of 8 KB, seven 1000-byte frames each
  auto port = OpenPort(options);
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());

  constexpr std::size_t kInjected = 20;
  for (std::uint32_t i = 0; i < kInjected; ++i)
    ASSERT_TRUE(peer.Send(TestFrame(i, 1000)));
  // Nothing was read while the frames arrived, so the ring overflowed.
  const auto got = ReceiveTestFrames(*port, kInjected, milliseconds(500));
  const PortStats stats = port->stats();
  EXPECT_GT(stats.rx_dropped, 0u);
  EXPECT_EQ(got.size() + stats.rx_dropped, kInjected);
  if (GetParam() == RingVersion::kV2) {
    EXPECT_EQ(got.size(), 8u);  // one frame per slot
  }
  // The frames that made it are the first ones, in order.
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(SequenceOf(got[i].frame), i);
}

TEST_P(PacketPortTest, RestoresTheVlanTagTheKernelStripped) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());
  Frame tagged = TestFrame(7, 200);
  const std::uint8_t tag[4] = {0x81, 0x00, 0x20, 0x05};  // 802.1Q, priority 1, VLAN 5
  tagged.insert(tagged.begin() + 12, tag, tag + 4);
  ASSERT_TRUE(peer.Send(tagged));

  const auto got =
      ReceiveFrames(*port, 1, milliseconds(2000), [](const PacketView&) { return true; });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frame, tagged);
  // The receive path moves the tag into the ring header; the port put it back.
  EXPECT_EQ(port->packet_stats().rx_vlan_restored, 1u);
}

TEST_P(PacketPortTest, VlanTagShiftsTheChecksumStartOfAGsoFrame) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOn);
  ASSERT_TRUE(peer.ok());
  Frame frame = sim::FrameBuilder()
                    .From(sim::Endpoint::Parse("10.77.0.2:40000"))
                    .To(sim::Endpoint::Parse("10.77.0.1:5201"))
                    .Seq(1000)
                    .Ack(1)
                    .Vlan(0x0005)
                    .Payload(3000)
                    .Build();
  VnetHeader gso;
  gso.flags = VnetHeader::kNeedsCsum;
  gso.gso_type = VnetHeader::kGsoTcpV4;
  gso.gso_size = 1000;
  gso.hdr_len = 14 + 4 + 20 + 20;
  gso.csum_start = 14 + 4 + 20;
  gso.csum_offset = 16;
  ASSERT_TRUE(peer.Send(frame, gso));

  const auto got =
      ReceiveFrames(*port, 1, milliseconds(2000), [](const PacketView&) { return true; });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frame, frame);
  EXPECT_EQ(got[0].vnet.gso_type, VnetHeader::kGsoTcpV4);
  EXPECT_EQ(got[0].vnet.gso_size, 1000);
  EXPECT_TRUE(got[0].vnet.needs_csum());
  EXPECT_EQ(got[0].vnet.csum_start, 14 + 4 + 20);
  EXPECT_EQ(got[0].vnet.csum_offset, 16);
}

// A real TCP transfer from the peer's namespace into the port's: the sender's kernel uses
// TSO on the veth, so the port must see GSO super-frames with partial checksums, reported
// whole in the vnet header.
TEST_P(PacketPortTest, ReportsGsoSuperFramesOfATcpTransfer) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " addr add 10.77.0.1/24 dev " + port_side_));
  ASSERT_TRUE(RunQuietly("ip -n " + ns_b_ + " addr add 10.77.0.2/24 dev " + peer_side_));

  int listener = -1;
  int client = -1;
  sockaddr_in server_address{};
  server_address.sin_family = AF_INET;
  server_address.sin_addr.s_addr = htonl(0x0A4D0001);  // 10.77.0.1
  {
    InNamespace in(ns_a_);
    ASSERT_TRUE(in.entered());
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(
        bind(listener, reinterpret_cast<const sockaddr*>(&server_address), sizeof server_address),
        0);
    ASSERT_EQ(listen(listener, 1), 0);
    socklen_t size = sizeof server_address;
    getsockname(listener, reinterpret_cast<sockaddr*>(&server_address), &size);
  }
  {
    InNamespace in(ns_b_);
    ASSERT_TRUE(in.entered());
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(
        connect(client, reinterpret_cast<const sockaddr*>(&server_address), sizeof server_address),
        0);
  }
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  int mss = 0;
  socklen_t mss_size = sizeof mss;
  ASSERT_EQ(getsockopt(client, IPPROTO_TCP, TCP_MAXSEG, &mss, &mss_size), 0);
  fcntl(client, F_SETFL, O_NONBLOCK);
  fcntl(server, F_SETFL, O_NONBLOCK);

  std::vector<Captured> data_frames;
  auto keep_data = [&](const PacketView& view) {
    const auto f = view.frame;
    if (f.size() > 54 && wire::LoadBe16(f.data() + 12) == ETH_P_IP && f[23] == IPPROTO_TCP &&
        f.size() > 14u + 20u + 32u + 1u) {
      data_frames.push_back({Frame(f.begin(), f.end()), view.vnet});
    }
  };
  constexpr std::size_t kBytes = 4 << 20;
  std::vector<std::uint8_t> chunk(256 * 1024, 0x5A);
  std::size_t written = 0;
  std::size_t read_bytes = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (read_bytes < kBytes && Clock::now() < deadline) {
    if (written < kBytes) {
      const ssize_t n = send(client, chunk.data(), std::min(chunk.size(), kBytes - written), 0);
      if (n > 0) written += static_cast<std::size_t>(n);
    }
    const ssize_t n = recv(server, chunk.data(), chunk.size(), 0);
    if (n > 0) read_bytes += static_cast<std::size_t>(n);
    port->ReceiveBurst(256, keep_data);
    pollfd p[2] = {{server, POLLIN, 0}, {client, POLLOUT, 0}};
    poll(p, 2, 5);
  }
  close(client);
  close(server);
  close(listener);
  EXPECT_EQ(read_bytes, kBytes);
  ReceiveFrames(*port, 0, milliseconds(50), [&](const PacketView& view) {
    keep_data(view);
    return false;
  });

  std::size_t super_frames = 0;
  for (const Captured& c : data_frames) {
    if (!c.vnet.is_gso()) continue;
    ++super_frames;
    SCOPED_TRACE("super-frame of " + std::to_string(c.frame.size()) + " bytes");
    EXPECT_EQ(c.vnet.gso_type, VnetHeader::kGsoTcpV4);
    EXPECT_EQ(c.vnet.gso_size, mss);
    EXPECT_TRUE(c.vnet.needs_csum());
    EXPECT_EQ(c.vnet.csum_start, 14 + 20);
    EXPECT_EQ(c.vnet.csum_offset, 16);  // offsetof(tcphdr, check)
    EXPECT_GT(c.frame.size(), 1514u);
    // The whole super-frame is there: its IP total length covers the rest of the frame.
    EXPECT_EQ(wire::LoadBe16(c.frame.data() + 14 + 2), c.frame.size() - 14);
  }
  EXPECT_GT(super_frames, 0u) << data_frames.size() << " TCP data frames, none GSO";
  EXPECT_EQ(port->packet_stats().rx_truncated, 0u);
}

TEST_P(PacketPortTest, SendsFramesInOrder) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());

  std::vector<Frame> frames;
  for (std::uint32_t i = 0; i < 50; ++i)
    frames.push_back(TestFrame(i, 60 + (i * 211) % 1455));
  std::vector<PacketView> views;
  for (const Frame& f : frames)
    views.push_back({f, {}});
  EXPECT_TRUE(port->CanSend());
  EXPECT_EQ(port->SendBurst(views), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto got = peer.ReceiveTestFrame();
    ASSERT_TRUE(got.has_value()) << "frame " << i;
    EXPECT_EQ(got->frame, frames[i]);
  }
  const PortStats stats = port->stats();
  EXPECT_EQ(stats.tx_frames, frames.size());
  EXPECT_EQ(stats.tx_errors, 0u);
}

TEST_P(PacketPortTest, SendsAGsoFrameWithItsVnetHeader) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOn);
  ASSERT_TRUE(peer.ok());
  const Frame frame = sim::FrameBuilder()
                          .From(sim::Endpoint::Parse("10.77.0.1:5201"))
                          .To(sim::Endpoint::Parse("10.77.0.2:40000"))
                          .Seq(5000)
                          .Ack(1)
                          .Payload(4000)
                          .Build();
  VnetHeader gso;
  gso.flags = VnetHeader::kNeedsCsum;
  gso.gso_type = VnetHeader::kGsoTcpV4;
  gso.gso_size = 1000;
  gso.hdr_len = 54;
  gso.csum_start = 34;
  gso.csum_offset = 16;
  const PacketView view{frame, gso};
  EXPECT_EQ(port->SendBurst({&view, 1}), 1u);

  const auto got = peer.ReceiveTestFrame();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->frame, frame);
  EXPECT_EQ(got->vnet.gso_type, VnetHeader::kGsoTcpV4);
  EXPECT_EQ(got->vnet.gso_size, 1000);
  EXPECT_TRUE(got->vnet.needs_csum());
  EXPECT_EQ(got->vnet.csum_start, 34);
  EXPECT_EQ(got->vnet.csum_offset, 16);
  EXPECT_EQ(port->stats().tx_errors, 0u);
}

TEST_P(PacketPortTest, CountsAFrameTheKernelRefusesAndGoesOn) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());
  // 3000 bytes without GSO metadata exceed the 1500-byte MTU: EMSGSIZE.
  const Frame frames[3] = {TestFrame(1, 100), TestFrame(2, 3000), TestFrame(3, 100)};
  const PacketView views[3] = {{frames[0], {}}, {frames[1], {}}, {frames[2], {}}};
  EXPECT_EQ(port->SendBurst(views), 3u);
  EXPECT_TRUE(port->CanSend());
  const PortStats stats = port->stats();
  EXPECT_EQ(stats.tx_frames, 2u);
  EXPECT_EQ(stats.tx_errors, 1u);
  const auto first = peer.ReceiveTestFrame();
  const auto second = peer.ReceiveTestFrame();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(SequenceOf(first->frame), 1u);
  EXPECT_EQ(SequenceOf(second->frame), 3u);
}

TEST_P(PacketPortTest, FitsSaysWhatTheInterfacesMtuCarries) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  const Frame full = TestFrame(1, 1514);
  const Frame over = TestFrame(2, 1515);
  Frame tagged = TestFrame(3, 1518);  // MTU 1500 plus one 802.1Q tag
  tagged[12] = 0x81;
  tagged[13] = 0x00;
  EXPECT_TRUE(port->Fits({full, {}}));
  EXPECT_FALSE(port->Fits({over, {}}));
  EXPECT_TRUE(port->Fits({tagged, {}}));
  VnetHeader gso;
  gso.gso_type = VnetHeader::kGsoTcpV4;
  gso.gso_size = 1448;
  const Frame super = TestFrame(4, 30000);
  EXPECT_TRUE(port->Fits({super, gso}));  // the kernel segments it

  // The MTU lowered under a running port: the first frame the kernel refuses as too long
  // makes the port read the MTU again.
  ASSERT_TRUE(SetMtu(1400));
  EXPECT_TRUE(port->Fits({full, {}}));
  const PacketView view{full, {}};
  EXPECT_EQ(port->SendBurst({&view, 1}), 1u);
  EXPECT_EQ(port->tx_refused(), 1u);
  EXPECT_FALSE(port->Fits({full, {}}));
  EXPECT_TRUE(port->Fits({TestFrame(5, 1414), {}}));
}

TEST_P(PacketPortTest, FramesWaitWhileTheInterfaceIsDown) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());
  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link set " + port_side_ + " down"));
  const Frame frames[2] = {TestFrame(1, 100), TestFrame(2, 100)};
  const PacketView views[2] = {{frames[0], {}}, {frames[1], {}}};
  // Down: nothing is taken (the caller keeps the frames), nothing is lost, and there is
  // no descriptor to wait on (a down interface's socket polls writable for ever).
  EXPECT_EQ(port->SendBurst(views), 0u);
  EXPECT_FALSE(port->CanSend());
  EXPECT_EQ(port->send_fd(), -1);
  EXPECT_EQ(port->tx_refused(), 0u);
  EXPECT_EQ(port->packet_stats().tx_link_down, 1u);
  EXPECT_TRUE(port->IsConnected());

  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link set " + port_side_ + " up"));
  EXPECT_TRUE(port->CanSend());
  EXPECT_GE(port->send_fd(), 0);
  // The carrier follows a moment later; until then the kernel says ENOBUFS (no room):
  // still nothing is taken.
  std::size_t taken = 0;
  for (int i = 0; i < 200 && taken == 0; ++i) {
    taken = port->SendBurst(views);
    if (taken == 0) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(taken, 2u);
  EXPECT_EQ(port->tx_refused(), 0u);
  const auto first = peer.ReceiveTestFrame();
  const auto second = peer.ReceiveTestFrame();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(SequenceOf(first->frame), 1u);
  EXPECT_EQ(SequenceOf(second->frame), 2u);

  // Deleted while down: the port says it is gone instead of waiting for ever.
  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link set " + port_side_ + " down"));
  EXPECT_EQ(port->SendBurst(views), 0u);
  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link del " + port_side_));
  EXPECT_FALSE(port->CanSend());
  EXPECT_FALSE(port->IsConnected());
}

TEST_P(PacketPortTest, AttachesAgainWhenTheInterfaceComesBack) {
  auto port = OpenPort(Options());
  ASSERT_NE(port, nullptr);
  EXPECT_FALSE(port->Reattach());  // not gone: nothing to do
  // The VM goes away with its interface, and the port notices when it next sends.
  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link del " + port_side_));
  const Frame frame = TestFrame(1, 100);
  const PacketView view{frame, {}};
  port->SendBurst({&view, 1});
  EXPECT_FALSE(port->CanSend() && port->IsConnected());
  EXPECT_FALSE(port->IsConnected());
  EXPECT_FALSE(port->Reattach());  // nothing of that name yet
  EXPECT_FALSE(port->ReceivePending());

  // The VM comes back: a new veth pair under the same names.
  ASSERT_TRUE(RunQuietly("ip link add " + port_side_ + " netns " + ns_a_ + " type veth peer name " +
                         peer_side_ + " netns " + ns_b_));
  ASSERT_TRUE(RunQuietly("ip -n " + ns_a_ + " link set " + port_side_ + " up"));
  ASSERT_TRUE(RunQuietly("ip -n " + ns_b_ + " link set " + peer_side_ + " up"));
  {
    InNamespace in(ns_a_);  // the name is looked up in the caller's namespace
    ASSERT_TRUE(port->Reattach());
  }
  EXPECT_TRUE(port->IsConnected());
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());
  ASSERT_TRUE(peer.Send(TestFrame(7, 100)));
  const auto got = ReceiveTestFrames(*port, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(SequenceOf(got[0].frame), 7u);
  std::size_t taken = 0;
  for (int i = 0; i < 200 && taken == 0; ++i) {  // until the new pair's carrier is up
    taken = port->SendBurst({&view, 1});
    if (taken == 0) std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(taken, 1u);
  const auto sent = peer.ReceiveTestFrame();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(SequenceOf(sent->frame), 1u);
}

TEST_P(PacketPortTest, WithoutVnetHeadersRefusesOffloadMetadata) {
  PacketPortOptions options = Options();
  options.vnet_headers = VnetHeaders::kOff;
  auto port = OpenPort(options);
  ASSERT_NE(port, nullptr);
  EXPECT_FALSE(port->SupportsOffload());
  RawSocket peer(ns_b_, peer_side_, VnetHeaders::kOff);
  ASSERT_TRUE(peer.ok());
  const Frame frame = TestFrame(1, 100);
  VnetHeader partial;
  partial.flags = VnetHeader::kNeedsCsum;
  partial.csum_start = 34;
  partial.csum_offset = 16;
  const PacketView views[2] = {{frame, partial}, {frame, {}}};
  EXPECT_EQ(port->SendBurst(views), 2u);
  EXPECT_EQ(port->packet_stats().tx_rejected, 1u);
  EXPECT_EQ(port->stats().tx_errors, 1u);
  EXPECT_EQ(port->stats().tx_frames, 1u);
  ASSERT_TRUE(peer.ReceiveTestFrame().has_value());
  EXPECT_FALSE(peer.ReceiveTestFrame(milliseconds(100)).has_value());

  // Frames in arrive without metadata.
  ASSERT_TRUE(peer.Send(TestFrame(2, 100)));
  const auto got = ReceiveTestFrames(*port, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].vnet.plain());
}

TEST_F(VethTest, OpenExplainsFailures) {
  InNamespace in(ns_a_);
  ASSERT_TRUE(in.entered());
  std::string error;
  EXPECT_EQ(PacketPort::Open("vstnosuch0", {}, &error), nullptr);
  EXPECT_NE(error.find("interface vstnosuch0 does not exist"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(PacketPort::Open("lo", {}, &error), nullptr);
  EXPECT_NE(error.find("not an Ethernet interface"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(PacketPort::Open("a-name-longer-than-ifnamsiz", {}, &error), nullptr);
  EXPECT_NE(error.find("not a valid interface name"), std::string::npos) << error;
}

TEST(PacketPortPrivileges, OpenWithoutCapNetRawSaysSo) {
  if (geteuid() == 0) GTEST_SKIP() << "runs only without root";
  std::string error;
  EXPECT_EQ(PacketPort::Open("lo", {}, &error), nullptr);
  EXPECT_NE(error.find("AF_PACKET needs CAP_NET_RAW"), std::string::npos) << error;
}

// ---------------------------------------------------------------------------------------
// StreamPort, with the test as qemu.

Frame Framed(const Frame& frame) {
  Frame out(4);
  wire::StoreBe32(out.data(), static_cast<std::uint32_t>(frame.size()));
  out.insert(out.end(), frame.begin(), frame.end());
  return out;
}

// qemu's end of the stream socket.
class QemuPeer {
 public:
  explicit QemuPeer(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~QemuPeer() { Close(); }
  QemuPeer(const QemuPeer&) = delete;
  QemuPeer& operator=(const QemuPeer&) = delete;

  bool connected() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  bool Write(const Frame& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // Reads what is there without waiting; returns false at end of stream.
  bool ReadAvailable() {
    std::uint8_t buffer[65536];
    for (;;) {
      const ssize_t got = recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
      if (got > 0) {
        received_.insert(received_.end(), buffer, buffer + got);
        continue;
      }
      return got != 0;
    }
  }

  // Waits up to `timeout` for the end of stream.
  bool SeesEndOfStream(milliseconds timeout = milliseconds(1000)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    return !ReadAvailable();
  }

  // Complete frames received so far, removed from the buffer.
  std::vector<Frame> TakeFrames() {
    std::vector<Frame> frames;
    std::size_t at = 0;
    while (received_.size() - at >= 4) {
      const std::size_t size = wire::LoadBe32(received_.data() + at);
      if (received_.size() - at - 4 < size) break;
      frames.emplace_back(received_.begin() + static_cast<std::ptrdiff_t>(at + 4),
                          received_.begin() + static_cast<std::ptrdiff_t>(at + 4 + size));
      at += 4 + size;
    }
    received_.erase(received_.begin(), received_.begin() + static_cast<std::ptrdiff_t>(at));
    return frames;
  }
  std::size_t pending_bytes() const { return received_.size(); }

 private:
  int fd_ = -1;
  std::vector<std::uint8_t> received_;
};

class StreamPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vst-stream-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/port.sock";
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<StreamPort> OpenPort() {
    std::string error;
    auto port = StreamPort::Open(path_, &error);
    EXPECT_NE(port, nullptr) << error;
    return port;
  }

  // Connects a peer and lets the port accept it.
  std::unique_ptr<QemuPeer> Attach(StreamPort& port) {
    auto peer = std::make_unique<QemuPeer>(path_);
    EXPECT_TRUE(peer->connected());
    pollfd p{port.listen_fd(), POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 1000), 1);
    EXPECT_TRUE(port.Accept());
    EXPECT_TRUE(port.IsConnected());
    return peer;
  }

  // A unix stream socket takes a whole sendmsg or nothing while the data fits one socket
  // buffer (half of SO_SNDBUF); with a small buffer, writes end inside frames, which is
  // what the outbox is for.
  static void ShrinkSendBuffer(StreamPort& port) {
    const int bytes = 8192;
    ASSERT_EQ(setsockopt(port.send_fd(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes), 0);
  }

  static std::vector<Frame> ReceiveAll(StreamPort& port, std::size_t max = 1000) {
    std::vector<Frame> frames;
    port.ReceiveBurst(max, [&](const PacketView& view) {
      EXPECT_TRUE(view.vnet.plain());
      frames.emplace_back(view.frame.begin(), view.frame.end());
    });
    return frames;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(StreamPortTest, CarriesFramesBothWays) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  EXPECT_FALSE(port->IsConnected());
  EXPECT_FALSE(port->CanSend());
  EXPECT_FALSE(port->SupportsOffload());
  auto peer = Attach(*port);
  EXPECT_GE(port->receive_fd(), 0);
  EXPECT_TRUE(port->CanSend());

  // Guest to host, the byte stream cut at arbitrary points (fixed seed).
  std::vector<Frame> sent;
  Frame stream;
  for (std::uint32_t i = 0; i < 40; ++i) {
    sent.push_back(TestFrame(i, 60 + (i * 331) % 1455));
    const Frame framed = Framed(sent.back());
    stream.insert(stream.end(), framed.begin(), framed.end());
  }
  std::mt19937 random(12345);
  std::vector<Frame> got;
  for (std::size_t at = 0; at < stream.size();) {
    const std::size_t piece = std::min<std::size_t>(1 + random() % 3000, stream.size() - at);
    ASSERT_TRUE(peer->Write(Frame(stream.begin() + static_cast<std::ptrdiff_t>(at),
                                  stream.begin() + static_cast<std::ptrdiff_t>(at + piece))));
    at += piece;
    for (Frame& f : ReceiveAll(*port))
      got.push_back(std::move(f));
  }
  EXPECT_EQ(got, sent);
  EXPECT_EQ(port->stats().rx_frames, sent.size());

  // Host to guest.
  std::vector<PacketView> views;
  for (const Frame& f : sent)
    views.push_back({f, {}});
  EXPECT_EQ(port->SendBurst(views), sent.size());
  ASSERT_TRUE(peer->ReadAvailable());
  EXPECT_EQ(peer->TakeFrames(), sent);
  EXPECT_EQ(peer->pending_bytes(), 0u);
  EXPECT_EQ(port->stats().tx_frames, sent.size());
}

TEST_F(StreamPortTest, ReceiveBurstHandsAtMostMax) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto peer = Attach(*port);
  for (std::uint32_t i = 0; i < 5; ++i)
    ASSERT_TRUE(peer->Write(Framed(TestFrame(i, 100))));
  EXPECT_EQ(ReceiveAll(*port, 2).size(), 2u);
  const auto rest = ReceiveAll(*port);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(SequenceOf(rest[0]), 2u);
}

// The guest stops reading: the port takes fewer frames, says it cannot send, and loses
// nothing; once the guest reads again every frame arrives exactly once, in order.
TEST_F(StreamPortTest, APeerThatStopsReadingLosesNothing) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto peer = Attach(*port);
  ShrinkSendBuffer(*port);

  constexpr std::size_t kFrames = 4000;  // about 5 MB: far more than a socket buffer
  std::vector<Frame> frames;
  for (std::uint32_t i = 0; i < kFrames; ++i)
    frames.push_back(TestFrame(i, 700 + (i * 97) % 801));
  std::vector<PacketView> views;
  for (const Frame& f : frames)
    views.push_back({f, {}});
  const std::span<const PacketView> all(views);

  std::size_t next = 0;
  bool took_fewer = false;
  bool saw_outbox = false;
  while (next < kFrames) {
    const std::size_t offered = std::min<std::size_t>(64, kFrames - next);
    const std::size_t took = port->SendBurst(all.subspan(next, offered));
    next += took;
    saw_outbox = saw_outbox || port->outbox_bytes() > 0;
    if (took < offered) {
      took_fewer = true;
      break;
    }
  }
  ASSERT_TRUE(took_fewer);
  EXPECT_FALSE(port->CanSend());
  EXPECT_EQ(port->SendBurst(all.subspan(next, 1)), 0u);  // still full: nothing taken

  // The guest reads again; the host sends whenever the socket is writable.
  std::vector<Frame> got;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (got.size() < kFrames && Clock::now() < deadline) {
    ASSERT_TRUE(peer->ReadAvailable());
    for (Frame& f : peer->TakeFrames())
      got.push_back(std::move(f));
    pollfd p{port->send_fd(), POLLOUT, 0};
    if (port->CanSend() || poll(&p, 1, 0) == 1) {
      next += port->SendBurst(all.subspan(next));
      saw_outbox = saw_outbox || port->outbox_bytes() > 0;
    }
  }
  ASSERT_EQ(got.size(), kFrames);
  for (std::size_t i = 0; i < kFrames; ++i)
    ASSERT_EQ(got[i], frames[i]) << "frame " << i;
  EXPECT_EQ(peer->pending_bytes(), 0u);
  EXPECT_TRUE(saw_outbox) << "no write ended inside a frame; the outbox went untested";
  EXPECT_EQ(port->stats().tx_frames, kFrames);
  EXPECT_EQ(port->stats().tx_errors, 0u);
  EXPECT_TRUE(port->CanSend());
}

TEST_F(StreamPortTest, DisconnectThenReconnect) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto peer = Attach(*port);
  ASSERT_TRUE(peer->Write(Framed(TestFrame(1, 100))));
  ASSERT_TRUE(peer->Write(Framed(TestFrame(2, 100))));
  const Frame partial = Framed(TestFrame(3, 100));
  ASSERT_TRUE(peer->Write(Frame(partial.begin(), partial.begin() + 50)));
  peer->Close();  // qemu exits

  // Complete frames before the end of stream are delivered; the cut one is not.
  std::vector<Frame> got = ReceiveAll(*port);
  if (port->IsConnected()) {
    for (Frame& f : ReceiveAll(*port))
      got.push_back(std::move(f));
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(port->IsConnected());
  EXPECT_EQ(port->stream_stats().disconnects, 1u);
  const Frame frame = TestFrame(4, 100);
  const PacketView view{frame, {}};
  EXPECT_EQ(port->SendBurst({&view, 1}), 0u);  // nobody there: nothing taken
  EXPECT_FALSE(port->CanSend());

  // A restarted qemu attaches to the same path.
  auto again = Attach(*port);
  EXPECT_EQ(port->SendBurst({&view, 1}), 1u);
  ASSERT_TRUE(again->ReadAvailable());
  EXPECT_EQ(again->TakeFrames(), std::vector<Frame>{frame});
  ASSERT_TRUE(again->Write(Framed(TestFrame(5, 80))));
  const auto back = ReceiveAll(*port);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0], TestFrame(5, 80));
  EXPECT_EQ(port->stream_stats().connections_accepted, 2u);
}

TEST_F(StreamPortTest, APeerLostWithAPartFrameInTheOutboxIsCounted) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto peer = Attach(*port);
  ShrinkSendBuffer(*port);
  std::vector<Frame> frames;
  for (std::uint32_t i = 0; i < 4000; ++i)
    frames.push_back(TestFrame(i, 1001));
  std::vector<PacketView> views;
  for (const Frame& f : frames)
    views.push_back({f, {}});
  std::size_t next = 0;
  while (next < frames.size() && port->outbox_bytes() == 0) {
    next += port->SendBurst(std::span<const PacketView>(views).subspan(next, 64));
  }
  ASSERT_GT(port->outbox_bytes(), 0u);
  peer->Close();

  EXPECT_EQ(port->SendBurst(std::span<const PacketView>(views).subspan(next)), 0u);
  EXPECT_FALSE(port->IsConnected());
  EXPECT_EQ(port->stream_stats().outbox_frames_lost, 1u);
  EXPECT_EQ(port->outbox_bytes(), 0u);

  // The next peer starts on a frame boundary: none of the old frame's rest reaches it.
  auto again = Attach(*port);
  const Frame frame = TestFrame(9999, 64);
  const PacketView view{frame, {}};
  EXPECT_EQ(port->SendBurst({&view, 1}), 1u);
  ASSERT_TRUE(again->ReadAvailable());
  EXPECT_EQ(again->TakeFrames(), std::vector<Frame>{frame});
  EXPECT_EQ(again->pending_bytes(), 0u);
}

TEST_F(StreamPortTest, RefusesASecondPeer) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto first = Attach(*port);
  QemuPeer second(path_);
  ASSERT_TRUE(second.connected());  // the kernel queues it; the port then closes it
  pollfd p{port->listen_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 1000), 1);
  EXPECT_FALSE(port->Accept());
  EXPECT_EQ(port->stream_stats().connections_refused, 1u);
  EXPECT_TRUE(second.SeesEndOfStream());

  const Frame frame = TestFrame(1, 100);
  const PacketView view{frame, {}};
  EXPECT_EQ(port->SendBurst({&view, 1}), 1u);
  ASSERT_TRUE(first->ReadAvailable());
  EXPECT_EQ(first->TakeFrames(), std::vector<Frame>{frame});
}

TEST_F(StreamPortTest, ProtocolErrorsCloseTheConnection) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  for (const std::uint32_t bad_length : {0u, 70000u}) {
    SCOPED_TRACE("length " + std::to_string(bad_length));
    auto peer = Attach(*port);
    ASSERT_TRUE(peer->Write(Framed(TestFrame(1, 100))));
    Frame bad(4);
    wire::StoreBe32(bad.data(), bad_length);
    bad.resize(200, 0);
    ASSERT_TRUE(peer->Write(bad));
    // The good frame before the bad length still arrives.
    EXPECT_EQ(ReceiveAll(*port).size(), 1u);
    EXPECT_FALSE(port->IsConnected());
    EXPECT_TRUE(peer->SeesEndOfStream());
  }
  EXPECT_EQ(port->stream_stats().protocol_errors, 2u);
  EXPECT_EQ(port->stream_stats().disconnects, 2u);
}

TEST_F(StreamPortTest, DoesNotSendFramesQemuCannotTake) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto peer = Attach(*port);
  const Frame huge = TestFrame(1, StreamPort::kMaxFrameBytes + 1);
  const Frame fine = TestFrame(2, 100);
  const PacketView views[2] = {{huge, {}}, {fine, {}}};
  EXPECT_EQ(port->SendBurst(views), 2u);
  EXPECT_EQ(port->stats().tx_errors, 1u);
  EXPECT_EQ(port->stream_stats().tx_oversized, 1u);
  ASSERT_TRUE(peer->ReadAvailable());
  EXPECT_EQ(peer->TakeFrames(), std::vector<Frame>{fine});
}

TEST_F(StreamPortTest, ReplacesAStaleSocketFile) {
  {
    // A socket file whose listener is gone, as a crashed daemon leaves it.
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    close(fd);
  }
  ASSERT_TRUE(std::filesystem::is_socket(path_));
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  auto peer = Attach(*port);
  ASSERT_TRUE(peer->Write(Framed(TestFrame(1, 100))));
  EXPECT_EQ(ReceiveAll(*port).size(), 1u);
}

TEST_F(StreamPortTest, APathInUseIsAnError) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  std::string error;
  EXPECT_EQ(StreamPort::Open(path_, &error), nullptr);
  EXPECT_NE(error.find("socket path " + path_ + " is in use"), std::string::npos) << error;
  EXPECT_TRUE(std::filesystem::is_socket(path_));  // the first port's file is untouched

  // The probe that found the path in use does not take the first port's peer slot.
  auto peer = Attach(*port);
  const Frame frame = TestFrame(1, 100);
  const PacketView view{frame, {}};
  EXPECT_EQ(port->SendBurst({&view, 1}), 1u);
  ASSERT_TRUE(peer->ReadAvailable());
  EXPECT_EQ(peer->TakeFrames(), std::vector<Frame>{frame});
}

TEST_F(StreamPortTest, APathThatIsNotASocketIsLeftAlone) {
  { std::ofstream(path_) << "not a socket"; }
  std::string error;
  EXPECT_EQ(StreamPort::Open(path_, &error), nullptr);
  EXPECT_NE(error.find("is not a socket"), std::string::npos) << error;
  EXPECT_TRUE(std::filesystem::is_regular_file(path_));
}

TEST_F(StreamPortTest, RemovesItsSocketFileOnDestruction) {
  auto port = OpenPort();
  ASSERT_NE(port, nullptr);
  EXPECT_TRUE(std::filesystem::is_socket(path_));
  port.reset();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

}  // namespace
}  // namespace vsnoop::datapath
