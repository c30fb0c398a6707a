// PacketPort: AF_PACKET with a PACKET_MMAP receive ring and sendmmsg transmit.
//
// Ring layout (Documentation/networking/packet_mmap.rst): the kernel writes each frame at
// tp_mac from its slot header; with PACKET_VNET_HDR on, struct virtio_net_hdr sits in the
// 10 bytes right before tp_mac (net/packet/af_packet.c, tpacket_rcv). Ownership of a slot
// (V2) or block (V3) passes through its status word: TP_STATUS_USER when the kernel hands it
// over, TP_STATUS_KERNEL when we give it back; both sides order it with the frame bytes by
// acquire/release.
#include "vsnoop/datapath/packet_port.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace vsnoop::datapath {
namespace {

// struct virtio_net_hdr of <linux/virtio_net.h>, which C++ cannot include (a member is
// named `class`). AF_PACKET uses the 10-byte legacy layout, little-endian fields.
struct VirtioNetHeader {
  std::uint8_t flags;
  std::uint8_t gso_type;
  std::uint16_t hdr_len;
  std::uint16_t gso_size;
  std::uint16_t csum_start;
  std::uint16_t csum_offset;
};
constexpr std::size_t kVnetHeaderBytes = sizeof(VirtioNetHeader);
static_assert(kVnetHeaderBytes == 10);
constexpr std::size_t kMacAddressesBytes = 12;
constexpr std::size_t kVlanTagBytes = 4;
// Room the kernel takes in a ring slot in front of the frame: the tpacket header, the
// sockaddr_ll, alignment to the network header, the vnet header (tpacket_rcv's macoff),
// and for V3 the block descriptor. Generous on purpose: it only costs ring space.
constexpr std::size_t kSlotOverheadBytes = 256;
// Frames per sendmmsg call.
constexpr std::size_t kSendBatch = 64;

std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

std::size_t RoundUp(std::size_t value, std::size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// The status words live in memory the kernel writes concurrently (GCC atomic builtins:
// std::atomic_ref<const T> is not C++20).
std::uint32_t LoadStatus(const std::uint32_t& status) {
  return __atomic_load_n(&status, __ATOMIC_ACQUIRE);
}
void ReturnToKernel(std::uint32_t& status) {
  __atomic_store_n(&status, std::uint32_t{TP_STATUS_KERNEL}, __ATOMIC_RELEASE);
}

bool IsOffloadOnlyFrame(const VnetHeader& vnet) {
  return vnet.is_gso() || vnet.needs_csum();
}

}  // namespace

PacketPort::PacketPort(std::string ifname, const PacketPortOptions& options)
    : Port(std::move(ifname)), options_(options) {}

PacketPort::~PacketPort() { Close(); }

void PacketPort::Close() {
  if (ring_ != nullptr) munmap(ring_, ring_bytes_);
  if (fd_ >= 0) close(fd_);
  ring_ = nullptr;
  fd_ = -1;
}

bool PacketPort::Reattach() {
  if (!gone_ || if_nametoindex(name().c_str()) == 0) return false;
  Close();
  // The new interface's ring starts at its first unit; nothing of the old one is kept.
  current_unit_ = 0;
  frames_done_in_block_ = 0;
  next_frame_offset_ = 0;
  empty_receives_ = 0;
  tx_blocked_ = false;
  link_down_ = false;
  std::string why;
  if (!Setup(&why)) {
    Close();  // half set up: stays gone, and the next call tries again
    return false;
  }
  gone_ = false;
  return true;
}

std::unique_ptr<PacketPort> PacketPort::Open(const std::string& ifname,
                                             const PacketPortOptions& options, std::string* error) {
  std::unique_ptr<PacketPort> port(new PacketPort(ifname, options));
  std::string why;
  if (!port->Setup(&why)) {
    if (error != nullptr) *error = "packet port " + ifname + ": " + why;
    return nullptr;
  }
  return port;
}

bool PacketPort::Setup(std::string* error) {
  const std::string& ifname = name();
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    *error = "interface name \"" + ifname + "\" is not a valid interface name";
    return false;
  }
  // Protocol 0 until bind: no frame from any interface is queued before the ring exists.
  fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = (errno == EPERM || errno == EACCES) ? "AF_PACKET needs CAP_NET_RAW"
                                                 : Errno("socket(AF_PACKET)");
    return false;
  }
  ifindex_ = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex_ == 0) {
    *error = (errno == ENODEV || errno == ENXIO) ? "interface " + ifname + " does not exist"
                                                 : Errno("if_nametoindex");
    return false;
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size() + 1);
  if (ioctl(fd_, SIOCGIFHWADDR, &ifr) != 0) {
    *error = Errno("SIOCGIFHWADDR");
    return false;
  }
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    *error = "interface " + ifname + " is not an Ethernet interface";
    return false;
  }
  if (!ReadMtu()) {
    *error = Errno("SIOCGIFMTU");
    return false;
  }

  const int one = 1;
  auto set = [&](int level, int option, const void* value, socklen_t size, const char* what) {
    if (setsockopt(fd_, level, option, value, size) == 0) return true;
    *error = Errno(what);
    return false;
  };
  // The vnet header option must be set before the ring: the ring's frame layout depends on it.
  if (options_.vnet_headers == VnetHeaders::kOn &&
      !set(SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one, "PACKET_VNET_HDR")) {
    return false;
  }
  const int version = options_.ring_version == RingVersion::kV3 ? TPACKET_V3 : TPACKET_V2;
  if (!set(SOL_PACKET, PACKET_VERSION, &version, sizeof version, "PACKET_VERSION") ||
      !set(SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one, "PACKET_IGNORE_OUTGOING")) {
    return false;
  }
  if (options_.qdisc_bypass == QdiscBypass::kOn &&
      !set(SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one, "PACKET_QDISC_BYPASS")) {
    return false;
  }
  if (options_.send_buffer_bytes > 0) {
    const int bytes = options_.send_buffer_bytes;
    // SO_SNDBUFFORCE passes net.core.wmem_max when we may; otherwise take what is allowed.
    if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0 &&
        !set(SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes, "SO_SNDBUF")) {
      return false;
    }
  }

  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t slot_bytes =
      RoundUp(kSlotOverheadBytes + options_.max_frame_bytes, TPACKET_ALIGNMENT);
  if (options_.ring_version == RingVersion::kV3) {
    unit_bytes_ = RoundUp(std::max(options_.v3_block_bytes, slot_bytes), page);
    unit_count_ = std::max<std::size_t>(options_.rx_ring_bytes / unit_bytes_, 2);
    tpacket_req3 req{};
    req.tp_block_size = static_cast<unsigned>(unit_bytes_);
    req.tp_block_nr = static_cast<unsigned>(unit_count_);
    // V3 packs frames of any size; tp_frame_size only has to be consistent.
    req.tp_frame_size = TPACKET_ALIGNMENT << 7;
    req.tp_frame_nr = static_cast<unsigned>(unit_bytes_ / req.tp_frame_size * unit_count_);
    req.tp_retire_blk_tov = static_cast<unsigned>(
        std::max<std::chrono::milliseconds::rep>(options_.v3_block_timeout.count(), 1));
    if (!set(SOL_PACKET, PACKET_RX_RING, &req, sizeof req, "PACKET_RX_RING")) return false;
    ring_bytes_ = unit_bytes_ * unit_count_;
  } else {
    // A slot up to a page is a power of two so slots tile pages; a larger one goes in
    // blocks of at least 1 MiB (the kernel allocates blocks in powers of two pages, so a
    // block just above 64 KB would waste nearly half).
    std::size_t frame_bytes = slot_bytes;
    std::size_t block_bytes = page;
    if (frame_bytes <= page) {
      frame_bytes = std::bit_ceil(frame_bytes);
    } else {
      block_bytes = std::max<std::size_t>(std::bit_ceil(frame_bytes), std::size_t{1} << 20);
    }
    const std::size_t frames_per_block = block_bytes / frame_bytes;
    const std::size_t wanted = std::max<std::size_t>(options_.rx_ring_bytes / frame_bytes, 2);
    const std::size_t blocks = (wanted + frames_per_block - 1) / frames_per_block;
    tpacket_req req{};
    req.tp_block_size = static_cast<unsigned>(block_bytes);
    req.tp_block_nr = static_cast<unsigned>(blocks);
    req.tp_frame_size = static_cast<unsigned>(frame_bytes);
    req.tp_frame_nr = static_cast<unsigned>(blocks * frames_per_block);
    if (!set(SOL_PACKET, PACKET_RX_RING, &req, sizeof req, "PACKET_RX_RING")) return false;
    ring_bytes_ = block_bytes * blocks;
    unit_bytes_ = frame_bytes;
    unit_count_ = blocks * frames_per_block;
    v2_frames_per_block_ = frames_per_block;
    v2_block_bytes_ = block_bytes;
  }
  void* ring = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (ring == MAP_FAILED) {
    *error = Errno("mmap of the receive ring");
    return false;
  }
  ring_ = static_cast<std::uint8_t*>(ring);

  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = ifindex_;
  if (bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    *error = Errno("bind");
    return false;
  }
  // A bridge port takes frames for every MAC; the kernel drops the membership on close.
  packet_mreq membership{};
  membership.mr_ifindex = ifindex_;
  membership.mr_type = PACKET_MR_PROMISC;
  if (!set(SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof membership,
           "PACKET_ADD_MEMBERSHIP(PACKET_MR_PROMISC)")) {
    return false;
  }
  vlan_scratch_.reserve(options_.max_frame_bytes + kVlanTagBytes);
  return true;
}

std::size_t PacketPort::ReceiveBurst(std::size_t max, const FrameSink& sink) {
  if (ring_ == nullptr) return 0;
  const std::size_t n =
      options_.ring_version == RingVersion::kV3 ? ReceiveV3(max, sink) : ReceiveV2(max, sink);
  // A socket error makes every poll return at once: the loop then calls here again and
  // again with nothing to read, and the check (two system calls) runs soon enough.
  if (n == 0 && ++empty_receives_ % 64 == 0) CheckInterface();
  return n;
}

void PacketPort::CheckInterface() const {
  // When the interface goes down or away, the kernel sets an error on the socket (ENETDOWN)
  // and polls report POLLERR until it is read: read it, or the event loop would spin. An
  // interface that no longer exists under our index (a VM's namespace deleted with its
  // veth) will not come back: the port is gone.
  pollfd p{fd_, 0, 0};
  if (poll(&p, 1, 0) != 1 || (p.revents & POLLERR) == 0) return;
  int error = 0;
  socklen_t length = sizeof error;
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
  if (static_cast<int>(if_nametoindex(name().c_str())) != ifindex_) gone_ = true;
}

bool PacketPort::ReadMtu() {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name().c_str(), name().size() + 1);
  if (ioctl(fd_, SIOCGIFMTU, &ifr) != 0) return false;
  mtu_ = static_cast<std::size_t>(ifr.ifr_mtu);
  return true;
}

bool PacketPort::InterfaceUp() const {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name().c_str(), name().size() + 1);
  if (ioctl(fd_, SIOCGIFFLAGS, &ifr) != 0) {
    if (errno == ENODEV || errno == ENXIO) gone_ = true;
    return false;
  }
  return (ifr.ifr_flags & IFF_UP) != 0;
}

bool PacketPort::Fits(const PacketView& frame) const {
  if (options_.vnet_headers == VnetHeaders::kOn && frame.vnet.is_gso()) return true;
  // packet_snd in the kernel: MTU plus the link header, plus one 802.1Q tag when the
  // frame carries one.
  const std::span<const std::uint8_t> f = frame.frame;
  const bool tagged = f.size() >= 14 && f[12] == 0x81 && f[13] == 0x00;
  return f.size() <= mtu_ + 14 + (tagged ? kVlanTagBytes : 0);
}

bool PacketPort::ReceivePending() const {
  if (ring_ == nullptr || gone_) return false;  // gone, and not attached again yet
  const std::uint8_t* unit = options_.ring_version == RingVersion::kV3
                                 ? ring_ + current_unit_ * unit_bytes_
                                 : ring_ + current_unit_ / v2_frames_per_block_ * v2_block_bytes_ +
                                       current_unit_ % v2_frames_per_block_ * unit_bytes_;
  const std::uint32_t& status =
      options_.ring_version == RingVersion::kV3
          ? reinterpret_cast<const tpacket_block_desc*>(unit)->hdr.bh1.block_status
          : reinterpret_cast<const tpacket2_hdr*>(unit)->tp_status;
  const bool pending = (LoadStatus(status) & TP_STATUS_USER) != 0;
  // Asked every step for a VM that is off its core, whose port is not read meanwhile: a
  // socket error would otherwise wake the loop for ever without being looked at.
  if (!pending && ++empty_receives_ % 64 == 0) CheckInterface();
  return pending;
}

std::size_t PacketPort::ReceiveV3(std::size_t max, const FrameSink& sink) {
  std::size_t delivered = 0;
  while (delivered < max) {
    auto* block = reinterpret_cast<tpacket_block_desc*>(ring_ + current_unit_ * unit_bytes_);
    if ((LoadStatus(block->hdr.bh1.block_status) & TP_STATUS_USER) == 0) break;
    const std::uint32_t frame_count = block->hdr.bh1.num_pkts;
    if (frames_done_in_block_ == 0) next_frame_offset_ = block->hdr.bh1.offset_to_first_pkt;
    while (frames_done_in_block_ < frame_count && delivered < max) {
      const auto* base = reinterpret_cast<const std::uint8_t*>(block) + next_frame_offset_;
      const auto* header = reinterpret_cast<const tpacket3_hdr*>(base);
      Deliver(base + header->tp_mac, header->tp_snaplen, header->tp_len, header->tp_status,
              static_cast<std::uint16_t>(header->hv1.tp_vlan_tci), header->hv1.tp_vlan_tpid, sink);
      next_frame_offset_ += header->tp_next_offset;
      ++frames_done_in_block_;
      ++delivered;
    }
    if (frames_done_in_block_ < frame_count) break;  // `max` reached inside the block
    ReturnToKernel(block->hdr.bh1.block_status);
    frames_done_in_block_ = 0;
    current_unit_ = (current_unit_ + 1) % unit_count_;
  }
  return delivered;
}

std::size_t PacketPort::ReceiveV2(std::size_t max, const FrameSink& sink) {
  std::size_t delivered = 0;
  while (delivered < max) {
    // Slots do not cross blocks: a block may end with unused bytes.
    std::uint8_t* slot = ring_ + current_unit_ / v2_frames_per_block_ * v2_block_bytes_ +
                         current_unit_ % v2_frames_per_block_ * unit_bytes_;
    auto* header = reinterpret_cast<tpacket2_hdr*>(slot);
    const std::uint32_t status = LoadStatus(header->tp_status);
    if ((status & TP_STATUS_USER) == 0) break;
    Deliver(slot + header->tp_mac, header->tp_snaplen, header->tp_len, status, header->tp_vlan_tci,
            header->tp_vlan_tpid, sink);
    ReturnToKernel(header->tp_status);
    current_unit_ = (current_unit_ + 1) % unit_count_;
    ++delivered;
  }
  return delivered;
}

void PacketPort::Deliver(const std::uint8_t* mac, std::uint32_t snaplen, std::uint32_t len,
                         std::uint32_t status, std::uint16_t vlan_tci, std::uint16_t vlan_tpid,
                         const FrameSink& sink) {
  if (snaplen < len || len < kMacAddressesBytes + 2) {
    // Part of the frame is missing: forwarding it would corrupt it.
    ++packet_stats_.rx_truncated;
    return;
  }
  PacketView view;
  view.frame = {mac, len};
  if (options_.vnet_headers == VnetHeaders::kOn) {
    VirtioNetHeader raw;
    std::memcpy(&raw, mac - kVnetHeaderBytes, sizeof raw);
    // AF_PACKET writes the header in little-endian (vio_le() on every little-endian host).
    view.vnet.flags = raw.flags;
    view.vnet.gso_type = raw.gso_type;
    view.vnet.hdr_len = le16toh(raw.hdr_len);
    view.vnet.gso_size = le16toh(raw.gso_size);
    view.vnet.csum_start = le16toh(raw.csum_start);
    view.vnet.csum_offset = le16toh(raw.csum_offset);
  }
  if ((status & TP_STATUS_VLAN_VALID) != 0) {
    // The kernel moved the outer VLAN tag into the ring header (receive VLAN offload, or
    // skb_vlan_untag on the receive path); a bridge port must forward the frame as it came.
    const std::uint16_t tpid =
        (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? vlan_tpid : std::uint16_t{0x8100};
    vlan_scratch_.resize(len + kVlanTagBytes);
    std::uint8_t* out = vlan_scratch_.data();
    std::memcpy(out, mac, kMacAddressesBytes);
    out[12] = static_cast<std::uint8_t>(tpid >> 8);
    out[13] = static_cast<std::uint8_t>(tpid);
    out[14] = static_cast<std::uint8_t>(vlan_tci >> 8);
    out[15] = static_cast<std::uint8_t>(vlan_tci);
    std::memcpy(out + kMacAddressesBytes + kVlanTagBytes, mac + kMacAddressesBytes,
                len - kMacAddressesBytes);
    view.frame = {out, vlan_scratch_.size()};
    // Offsets in the vnet header count from the frame start (tun does the same: its
    // virtio_net_hdr_from_skb call passes the VLAN header length).
    if (view.vnet.needs_csum()) view.vnet.csum_start += kVlanTagBytes;
    if (view.vnet.hdr_len != 0) view.vnet.hdr_len += kVlanTagBytes;
    ++packet_stats_.rx_vlan_restored;
  }
  ++stats_.rx_frames;
  stats_.rx_bytes += view.frame.size();
  sink(view);
}

std::size_t PacketPort::SendBurst(std::span<const PacketView> frames) {
  if (fd_ < 0) return 0;
  const bool vnet_on = options_.vnet_headers == VnetHeaders::kOn;
  VirtioNetHeader headers[kSendBatch];
  iovec iovecs[kSendBatch][2];
  mmsghdr messages[kSendBatch];
  tx_blocked_ = false;

  std::size_t taken = 0;
  while (taken < frames.size()) {
    if (!vnet_on && IsOffloadOnlyFrame(frames[taken].vnet)) {
      // Without a vnet header the kernel would send a partial checksum or an oversized
      // frame as it is; the caller should have segmented it (SupportsOffload() is false).
      ++packet_stats_.tx_rejected;
      ++stats_.tx_errors;
      ++taken;
      continue;
    }
    std::size_t batch = 0;
    while (batch < kSendBatch && taken + batch < frames.size()) {
      const PacketView& frame = frames[taken + batch];
      if (!vnet_on && IsOffloadOnlyFrame(frame.vnet)) break;
      std::memset(&messages[batch], 0, sizeof messages[batch]);
      iovec* iov = iovecs[batch];
      std::size_t iov_count = 0;
      if (vnet_on) {
        VirtioNetHeader& h = headers[batch];
        h.flags = frame.vnet.flags;
        h.gso_type = frame.vnet.gso_type;
        h.hdr_len = htole16(frame.vnet.hdr_len);
        h.gso_size = htole16(frame.vnet.gso_size);
        h.csum_start = htole16(frame.vnet.csum_start);
        h.csum_offset = htole16(frame.vnet.csum_offset);
        iov[iov_count++] = {&h, sizeof h};
      }
      iov[iov_count++] = {const_cast<std::uint8_t*>(frame.frame.data()), frame.frame.size()};
      messages[batch].msg_hdr.msg_iov = iov;
      messages[batch].msg_hdr.msg_iovlen = iov_count;
      ++batch;
    }
    const int sent = sendmmsg(fd_, messages, static_cast<unsigned>(batch), MSG_DONTWAIT);
    if (sent > 0) {
      for (int i = 0; i < sent; ++i) {
        ++stats_.tx_frames;
        stats_.tx_bytes += frames[taken + static_cast<std::size_t>(i)].frame.size();
      }
      taken += static_cast<std::size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      // No room in the socket's send buffer or the device queue: the caller keeps the rest.
      tx_blocked_ = true;
      ++packet_stats_.tx_blocked;
      break;
    }
    if (errno == ENETDOWN) {
      // The interface is down (an operator's `ip link set down`, or the first step of its
      // deletion): its frames wait, as for a VM off its core. Some may have been
      // acknowledged early, and the interface may come back up.
      link_down_ = true;
      ++packet_stats_.tx_link_down;
      break;
    }
    // The frame itself was refused (EMSGSIZE, EINVAL for a bad vnet header, ...).
    if (errno == ENXIO || errno == ENODEV) gone_ = true;  // the interface no longer exists
    if (errno == EMSGSIZE) ReadMtu();  // the MTU was lowered: Fits() should say so
    ++stats_.tx_errors;
    ++taken;
  }
  return taken;
}

bool PacketPort::CanSend() const {
  if (link_down_) {
    if (!InterfaceUp()) return false;
    link_down_ = false;
  }
  if (!tx_blocked_) return true;
  pollfd p{fd_, POLLOUT, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0) tx_blocked_ = false;
  return !tx_blocked_;
}

void PacketPort::ReadKernelStats() const {
  // The kernel resets its counters on every read, so keep running totals.
  if (options_.ring_version == RingVersion::kV3) {
    tpacket_stats_v3 s{};
    socklen_t size = sizeof s;
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &s, &size) == 0) {
      packet_stats_.rx_kernel_drops += s.tp_drops;
      packet_stats_.rx_ring_freezes += s.tp_freeze_q_cnt;
    }
  } else {
    tpacket_stats s{};
    socklen_t size = sizeof s;
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &s, &size) == 0) {
      packet_stats_.rx_kernel_drops += s.tp_drops;
    }
  }
}

PortStats PacketPort::stats() const {
  ReadKernelStats();
  PortStats s = stats_;
  s.rx_dropped = packet_stats_.rx_kernel_drops + packet_stats_.rx_truncated;
  return s;
}

PacketPortStats PacketPort::packet_stats() const {
  ReadKernelStats();
  return packet_stats_;
}

}  // namespace vsnoop::datapath
