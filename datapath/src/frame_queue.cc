#include "vsnoop/datapath/frame_queue.h"

#include <algorithm>
#include <cstring>

#include "vsnoop/bug.h"

namespace vsnoop::datapath {

FrameQueue::FrameQueue(std::uint64_t max_bytes, std::uint32_t max_frames)
    : max_bytes_(max_bytes), ring_(max_bytes + kMaxFrame), entries_(std::max(1u, max_frames)) {}

BufferRoom FrameQueue::room() const {
  return {.bytes = max_bytes_ - bytes_, .frames = max_frames() - count_};
}

BufferRoom FrameQueue::RoomFor(std::size_t frame_size) const {
  BufferRoom r = room();
  if (frame_size > kMaxFrame) r.bytes = 0;
  return r;
}

bool FrameQueue::Push(const PacketView& packet) {
  const std::size_t size = packet.frame.size();
  const BufferRoom r = room();
  if (size == 0 || size > kMaxFrame || size > r.bytes || r.frames == 0) return false;
  // Frames are stored contiguously. With logical use L + size <= max_bytes and a ring of
  // max_bytes + kMaxFrame bytes, either the space after the tail or the space before the
  // head is large enough (the one gap at the ring's end is smaller than kMaxFrame).
  std::uint64_t at = tail_;
  if (at + size > ring_.size()) at = 0;
  if (count_ > 0) {
    const std::uint64_t head = entries_[first_].offset;
    const bool wrapped = tail_ <= head;
    if ((wrapped || at < tail_) && at + size > head) {
      VSNOOP_BUG("frame queue: no contiguous room although the frame fits");
      return false;
    }
  }
  std::memcpy(ring_.data() + at, packet.frame.data(), size);
  entries_[(first_ + count_) % entries_.size()] = {at, static_cast<std::uint32_t>(size),
                                                    packet.vnet};
  ++count_;
  bytes_ += size;
  tail_ = at + size;
  return true;
}

PacketView FrameQueue::At(std::uint32_t i) const {
  const Entry& e = entries_[(first_ + i) % entries_.size()];
  return {{ring_.data() + e.offset, e.size}, e.vnet};
}

void FrameQueue::Pop(std::uint32_t n) {
  for (std::uint32_t i = 0; i < n && count_ > 0; ++i) {
    bytes_ -= entries_[first_].size;
    first_ = static_cast<std::uint32_t>((first_ + 1) % entries_.size());
    --count_;
  }
  if (count_ == 0) Clear();
}

void FrameQueue::Clear() {
  first_ = 0;
  count_ = 0;
  bytes_ = 0;
  tail_ = 0;
}

}  // namespace vsnoop::datapath
