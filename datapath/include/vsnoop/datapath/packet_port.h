// PacketPort: a bridge port on a Linux interface (a veth end, a tap, a NIC) through an
// AF_PACKET socket. Frames arrive through a PACKET_MMAP receive ring (TPACKET_V3 blocks or
// TPACKET_V2 frame slots) and leave through sendmmsg. With vnet headers on, the kernel
// hands GSO super-frames (up to 64 KB) and partial checksums through intact and the port
// reports them in each frame's VnetHeader; on transmit the header goes in front of the frame.
//
// The socket is promiscuous (PACKET_MR_PROMISC: the port forwards frames for any MAC) and
// ignores outgoing frames (PACKET_IGNORE_OUTGOING: without it the port would read back what
// it and the host transmit on the interface).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vsnoop/datapath/port.h"

namespace vsnoop::datapath {

enum class RingVersion : std::uint8_t {
  kV3,  // variable-length frames packed in blocks; a block is handed over when full or
        // when its retire timer fires, so sparse traffic waits up to the block timeout
  kV2,  // one fixed-size slot per frame, handed over at once
};

enum class VnetHeaders : std::uint8_t {
  kOn,   // PACKET_VNET_HDR: GSO and partial checksums pass through, reported per frame
  kOff,  // plain frames; the interface must have checksum and segmentation offloads off
};

enum class QdiscBypass : std::uint8_t {
  kOn,   // PACKET_QDISC_BYPASS: transmit straight to the driver, no qdisc, no tc
  kOff,  // transmit through the interface's qdisc
};

struct PacketPortOptions {
  RingVersion ring_version = RingVersion::kV3;
  VnetHeaders vnet_headers = VnetHeaders::kOn;
  QdiscBypass qdisc_bypass = QdiscBypass::kOn;

  // The largest frame (Ethernet header included) the ring must hold whole. The default
  // fits a 64 KB GSO super-frame with two VLAN tags. A larger frame arrives truncated: the
  // port counts and drops it. With offloads off, 1518 (MTU 1500, one tag) saves memory.
  std::size_t max_frame_bytes = 65536 + 14 + 8;

  // Memory for the receive ring (at least two blocks or slots). TPACKET_V3 divides it into
  // blocks of `v3_block_bytes` (a multiple of the page size, raised to hold one frame of
  // max_frame_bytes); TPACKET_V2 into one slot per frame, each sized for max_frame_bytes:
  // 16 MiB is about 250 slots for 64 KB frames, 8192 slots for 1518-byte frames.
  std::size_t rx_ring_bytes = std::size_t{16} << 20;
  std::size_t v3_block_bytes = std::size_t{1} << 20;
  // How long the kernel keeps a partly filled V3 block before handing it over
  // (tp_retire_blk_tov, at least 1 ms). Sparse traffic waits up to this long per port.
  std::chrono::milliseconds v3_block_timeout{1};

  // SO_SNDBUF of the socket (frames queued in the kernel on transmit). 0 keeps the default.
  int send_buffer_bytes = 4 << 20;
};

// Counters beyond PortStats, for diagnosis.
struct PacketPortStats {
  std::uint64_t rx_truncated = 0;      // frames larger than the ring slot: dropped, never forwarded
  std::uint64_t rx_kernel_drops = 0;   // PACKET_STATISTICS tp_drops: the ring was full
  std::uint64_t rx_ring_freezes = 0;   // TPACKET_V3 tp_freeze_q_cnt: no free block
  std::uint64_t rx_vlan_restored = 0;  // frames whose VLAN tag the kernel had stripped
  std::uint64_t tx_blocked = 0;        // SendBurst stopped on EAGAIN or ENOBUFS
  std::uint64_t tx_rejected = 0;       // offload metadata the port cannot send (vnet headers off)
  std::uint64_t tx_link_down = 0;      // SendBurst stopped on ENETDOWN: the frames wait
};

class PacketPort final : public Port {
 public:
  // Opens `ifname` in the caller's network namespace. On failure returns nullptr and says
  // why in *error ("interface vh1 does not exist", "AF_PACKET needs CAP_NET_RAW", ...).
  static std::unique_ptr<PacketPort> Open(const std::string& ifname,
                                          const PacketPortOptions& options, std::string* error);
  ~PacketPort() override;

  std::size_t ReceiveBurst(std::size_t max, const FrameSink& sink) override;
  // Sends in order without blocking. A frame the kernel refuses for lack of room (EAGAIN,
  // ENOBUFS) or because the interface is down (ENETDOWN) is not taken: SendBurst returns
  // how many were sent and CanSend() stays false until the socket has room again or the
  // interface is up again. Any other failure counts in tx_errors and the frame is taken
  // (dropped). Frames with offload metadata need vnet headers on.
  std::size_t SendBurst(std::span<const PacketView> frames) override;
  // False after SendBurst stopped for lack of room, until the socket polls writable; and
  // while the interface is down (asked of the kernel on every call until it is up).
  bool CanSend() const override;
  // False once the interface is gone (deleted, or replaced by another of the same name).
  bool IsConnected() const override { return !gone_; }
  // A plain frame fits the interface's MTU (read when the port opens, and again when the
  // kernel refuses a frame as too long); GSO super-frames are segmented by the kernel.
  bool Fits(const PacketView& frame) const override;
  std::uint64_t tx_refused() const override { return stats_.tx_errors; }
  bool SupportsOffload() const override { return options_.vnet_headers == VnetHeaders::kOn; }
  // Reads the ring's status word: no system call.
  bool ReceivePending() const override;

  // A new socket and ring on the interface that now has this port's name.
  bool Reattach() override;

  int receive_fd() const override { return fd_; }
  // None while the interface is down: the socket polls writable then, and the loop would
  // spin. The loop's next deadline (one second at most) asks again.
  int send_fd() const override { return link_down_ ? -1 : fd_; }

  // Reads PACKET_STATISTICS (which the kernel resets on every read) into running totals.
  PortStats stats() const override;
  PacketPortStats packet_stats() const;

  const PacketPortOptions& options() const { return options_; }
  int ifindex() const { return ifindex_; }

 private:
  PacketPort(std::string ifname, const PacketPortOptions& options);

  bool Setup(std::string* error);
  void Close();
  std::size_t ReceiveV3(std::size_t max, const FrameSink& sink);
  std::size_t ReceiveV2(std::size_t max, const FrameSink& sink);
  // Hands one ring frame to the sink. `mac` is the frame's start in the ring; the vnet
  // header, when on, sits just before it.
  void Deliver(const std::uint8_t* mac, std::uint32_t snaplen, std::uint32_t len,
               std::uint32_t status, std::uint16_t vlan_tci, std::uint16_t vlan_tpid,
               const FrameSink& sink);
  void ReadKernelStats() const;
  void CheckInterface() const;
  // SIOCGIFMTU and SIOCGIFFLAGS on the interface by name; false when it is gone.
  bool ReadMtu();
  bool InterfaceUp() const;

  PacketPortOptions options_;
  int fd_ = -1;
  int ifindex_ = 0;
  mutable bool gone_ = false;  // CheckInterface runs from the const ReceivePending too
  mutable std::uint64_t empty_receives_ = 0;
  mutable bool link_down_ = false;  // the last send found the interface down (ENETDOWN)
  std::size_t mtu_ = 0;

  // The mmapped receive ring.
  std::uint8_t* ring_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::size_t unit_bytes_ = 0;  // V3: block size; V2: frame slot size
  std::size_t unit_count_ = 0;  // V3: blocks; V2: frame slots
  std::size_t v2_frames_per_block_ = 1;
  std::size_t v2_block_bytes_ = 0;
  std::size_t current_unit_ = 0;
  // V3: how far into the current block the previous burst stopped.
  std::uint32_t frames_done_in_block_ = 0;
  std::uint32_t next_frame_offset_ = 0;

  // A frame with its VLAN tag put back (the kernel strips it into the ring header).
  std::vector<std::uint8_t> vlan_scratch_;

  mutable bool tx_blocked_ = false;
  mutable PortStats stats_;
  mutable PacketPortStats packet_stats_;
};

}  // namespace vsnoop::datapath
