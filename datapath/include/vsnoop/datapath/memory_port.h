// An in-memory port for tests (like Open vSwitch's netdev-dummy): frames injected by the
// test are received by the datapath, frames the datapath sends are collected for the test.
// It can be lossless with a limited send window, to play a guest that stops reading.
#pragma once

#include <deque>
#include <limits>
#include <utility>
#include <vector>

#include "vsnoop/datapath/port.h"

namespace vsnoop::datapath {

class MemoryPort final : public Port {
 public:
  explicit MemoryPort(std::string name, bool offload = true)
      : Port(std::move(name)), offload_(offload) {}

  // Test side.
  void Inject(std::vector<std::uint8_t> frame, VnetHeader vnet = {}) {
    inbox_.push_back({std::move(frame), vnet});
  }
  std::vector<OwnedPacket> TakeSent() { return std::exchange(sent_, {}); }
  const std::vector<OwnedPacket>& sent() const { return sent_; }
  // How many more frames SendBurst takes before it reports back-pressure.
  void set_send_window(std::size_t frames) { send_window_ = frames; }
  void set_connected(bool c) { connected_ = c; }
  // Plays an interface with an MTU: longer plain frames do not fit (see Fits).
  void set_max_frame_bytes(std::size_t bytes) { max_frame_bytes_ = bytes; }
  // Plays a link that refuses the next `frames` frames it is given (consumed, unsent).
  void refuse_next(std::size_t frames) { refuse_next_ = frames; }
  // Plays a stream socket whose peer reads slowly: after each frame taken, the port holds
  // "part of it" and takes nothing more until a call to SendBurst (even an empty one)
  // finishes it, as StreamPort's outbox does.
  void set_holds_part_of_each_frame(bool on) { holds_part_ = on; }

  // Port.
  std::size_t ReceiveBurst(std::size_t max, const FrameSink& sink) override {
    std::size_t n = 0;
    while (n < max && !inbox_.empty()) {
      const OwnedPacket p = std::move(inbox_.front());
      inbox_.pop_front();
      ++stats_.rx_frames;
      stats_.rx_bytes += p.frame.size();
      sink(p.view());
      ++n;
    }
    return n;
  }
  std::size_t SendBurst(std::span<const PacketView> frames) override {
    if (holding_) {
      holding_ = false;  // the held part goes out; nothing else this call
      return 0;
    }
    std::size_t n = 0;
    for (const PacketView& f : frames) {
      if (!connected_ || send_window_ == 0 || holding_) break;
      if (refuse_next_ > 0) {
        --refuse_next_;
        ++stats_.tx_errors;
        ++n;
        continue;
      }
      holding_ = holds_part_;
      if (send_window_ != kUnlimited) --send_window_;
      sent_.push_back({std::vector<std::uint8_t>(f.frame.begin(), f.frame.end()), f.vnet});
      ++stats_.tx_frames;
      stats_.tx_bytes += f.frame.size();
      ++n;
    }
    return n;
  }
  bool CanSend() const override { return connected_ && send_window_ != 0 && !holding_; }
  bool SupportsOffload() const override { return offload_; }
  bool ReceivePending() const override { return !inbox_.empty(); }
  bool IsConnected() const override { return connected_; }
  bool Fits(const PacketView& frame) const override {
    return frame.vnet.is_gso() || frame.frame.size() <= max_frame_bytes_;
  }
  std::uint64_t tx_refused() const override { return stats_.tx_errors; }
  PortStats stats() const override { return stats_; }

 private:
  static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
  bool offload_;
  bool connected_ = true;
  bool holds_part_ = false;
  bool holding_ = false;
  std::size_t send_window_ = kUnlimited;
  std::size_t max_frame_bytes_ = kUnlimited;
  std::size_t refuse_next_ = 0;
  std::deque<OwnedPacket> inbox_;
  std::vector<OwnedPacket> sent_;
  PortStats stats_;
};

}  // namespace vsnoop::datapath
