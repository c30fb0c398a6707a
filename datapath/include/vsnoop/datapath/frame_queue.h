// A bounded FIFO of frames, copied into one contiguous byte ring: the per-guest receive
// buffer that vSnoop's safety rests on (a frame acknowledged early is in here, and leaves
// only to the guest), and the uplink's transmit backlog. Bounded in bytes and in frames;
// memory is allocated once, at construction.
#pragma once

#include <cstdint>
#include <vector>

#include "vsnoop/datapath/packet.h"

namespace vsnoop::datapath {

class FrameQueue {
 public:
  // The largest frame a queue holds: a 64 KB GSO super-frame with Ethernet and VLAN headers.
  static constexpr std::size_t kMaxFrame = 65536 + 64;

  FrameQueue(std::uint64_t max_bytes, std::uint32_t max_frames);

  // The free bytes and frame slots, as the engine is told (its buffer-aware window invites
  // the sender to fill all of it). A frame of at most kMaxFrame bytes fits iff its size is
  // at most room().bytes and room().frames >= 1: exactly the test Push applies.
  BufferRoom room() const;
  // room() as it applies to one frame: no room at all for a frame above kMaxFrame.
  BufferRoom RoomFor(std::size_t frame_size) const;
  // Copies the frame in; false (and no change) if it does not fit.
  bool Push(const PacketView& packet);
  bool empty() const { return count_ == 0; }
  std::uint32_t frames() const { return count_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t max_bytes() const { return max_bytes_; }
  std::uint32_t max_frames() const { return static_cast<std::uint32_t>(entries_.size()); }
  // The i-th frame from the front. REQUIRES: i < frames().
  PacketView At(std::uint32_t i) const;
  PacketView Front() const { return At(0); }
  // Removes n frames from the front. REQUIRES: n <= frames().
  void Pop(std::uint32_t n = 1);
  void Clear();

 private:
  struct Entry {
    std::uint64_t offset = 0;
    std::uint32_t size = 0;
    VnetHeader vnet;
  };
  std::uint64_t max_bytes_;
  std::vector<std::uint8_t> ring_;  // max_bytes + kMaxFrame: a fitting frame always has a gap
  std::vector<Entry> entries_;      // circular, max_frames long
  std::uint32_t first_ = 0;
  std::uint32_t count_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t tail_ = 0;  // where the next frame's bytes start, unless it must wrap
};

}  // namespace vsnoop::datapath
