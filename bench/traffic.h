// Traffic for the engine benchmarks, prepared outside the measured loop: an engine holding
// F established flows (Linux-like handshakes: timestamps, window scale 7) of one guest, and
// rings of MTU-sized in-order data frames (1448 bytes of payload, 1514-byte frames) that
// visit the flows round-robin in a fixed random order, every segment in sequence.
//
// Segment n of the stream goes to flow visit_order[n % F] and carries that flow's bytes
// [first + (n / F) * 1448, + 1448): every flow gets the same number of segments per round,
// so no per-flow bookkeeping is needed to know where each flow is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vsnoop/engine.h"
#include "vsnoop/wire/bytes.h"

namespace vsnoop::bench {

inline constexpr std::uint32_t kPayload = 1448;    // mss 1460 less the timestamp option
inline constexpr std::size_t kFrameStride = 2048;  // one frame per 2 KiB, as in an RX ring

// The guest's buffer always has room: the benchmarks measure the engine, not back-pressure.
inline constexpr GuestContext kGuest{.id = 0, .room = {.bytes = 1u << 30, .frames = 1u << 20}};

// An engine with `flows` established flows, and the position of the data stream they get.
class EstablishedFlows {
 public:
  explicit EstablishedFlows(std::size_t flows);

  Engine& engine() { return engine_; }
  std::size_t flow_count() const { return visit_order_.size(); }
  const std::vector<std::uint32_t>& visit_order() const { return visit_order_; }
  // Empty unless setting up went wrong (a handshake the engine did not take).
  const std::string& error() const { return error_; }

  // The next segment of the stream to offer; advanced by the benchmarks as they consume.
  std::uint64_t next_segment = 0;

  // Before segments [first, first + count) are offered: when the flows' windows would run
  // out, every flow's guest acknowledges what it has received with a fully open window
  // (65535 << 7 bytes). Engine work, done outside the timed region; rare (once every 2048
  // rounds).
  void KeepWindowsOpen(std::uint64_t first, std::size_t count);

  // The data frame of segment n (for building guest ACKs and checking).
  static std::uint32_t SeqOf(std::uint64_t n, std::size_t flows) {
    return kFirstByte + static_cast<std::uint32_t>(n / flows) * kPayload;
  }
  static constexpr std::uint32_t kFirstByte = 1'000'001;  // the senders' ISN + 1
  static constexpr std::uint32_t kGuestSeq = 5'000'001;   // the guest's ISN + 1

 private:
  Engine engine_;
  std::vector<std::uint32_t> visit_order_;
  std::uint64_t windows_opened_at_round_ = 0;
  std::string error_;
};

// `size` data frames for consecutive segments of the stream over `flows` flows.
class SegmentRing {
 public:
  SegmentRing(std::size_t size, const std::vector<std::uint32_t>& visit_order);

  // Rewrites the ring to hold segments [first, first + size()): sequence number and sender
  // address, with IP and TCP checksums updated (RFC 1624), so every frame is valid.
  void Fill(std::uint64_t first);

  std::size_t size() const { return size_; }
  wire::Bytes frame(std::size_t i) const {
    return {buffer_.data() + i * kFrameStride, frame_size_};
  }

 private:
  std::size_t size_;
  const std::vector<std::uint32_t>& visit_order_;
  std::size_t frame_size_ = 0;
  std::vector<std::uint8_t> buffer_;
};

// Frames of flow k (its sender is 10.64.0.0 + k, port 40000; the guest is 10.0.0.2:5201).
std::vector<std::uint8_t> DataFrame(std::uint32_t flow, std::uint32_t seq);
std::vector<std::uint8_t> GuestAck(std::uint32_t flow, std::uint32_t ack, std::uint16_t window);

}  // namespace vsnoop::bench
