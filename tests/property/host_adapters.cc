// The two hosts of the property tests (see host_adapters.h).
#include "host_adapters.h"

namespace vsnoop::proptest {
namespace {

class EngineHost : public HostAdapter {
 public:
  EngineHost(std::size_t guests, BufferBounds bounds, const EngineConfig& config)
      : engine_(config), bounds_(bounds), buffers_(guests) {}

  HostResult ToGuest(std::size_t guest, const Frame& frame, bool checksum_verified,
                     Timestamp now) override {
    Buffer& b = buffers_[guest];
    const GuestContext ctx{
        .id = static_cast<GuestId>(guest), .room = Room(guest), .acceleration = acceleration_};
    const Offload offload{.checksum = checksum_verified ? ChecksumStatus::kVerified
                                                        : ChecksumStatus::kUnverified};
    const Verdict v = engine_.OnFrameToGuest(frame, offload, ctx, now);
    HostResult result;
    result.action = v.action;
    result.reason = v.reason;
    // The datapath's rule: a frame that does not fit is dropped, whatever the verdict.
    const bool fits = frame.size() <= ctx.room.bytes && ctx.room.frames > 0;
    if (fits && v.forwards()) {
      b.frames.push_back(frame);
      b.bytes += frame.size();
      result.passed = true;
    }
    if (v.has_ack()) result.acks.emplace_back(v.ack.view().begin(), v.ack.view().end());
    return result;
  }

  HostResult FromGuest(std::size_t guest, const Frame& frame, Timestamp now) override {
    const GuestContext ctx{
        .id = static_cast<GuestId>(guest), .room = Room(guest), .acceleration = acceleration_};
    const Verdict v = engine_.OnFrameFromGuest(frame, Offload{}, ctx, now);
    HostResult result;
    result.action = v.action;
    result.reason = v.reason;
    result.passed = v.forwards();
    if (v.has_ack()) result.acks.emplace_back(v.ack.view().begin(), v.ack.view().end());
    if (result.passed && v.window_field) {
      Frame limited = frame;
      if (RewriteWindow(limited, *v.window_field, /*checksum_partial=*/false)) {
        result.forwarded = std::move(limited);
      }
    }
    return result;
  }

  std::vector<Frame> Take(std::size_t guest, std::size_t max_frames) override {
    Buffer& b = buffers_[guest];
    std::vector<Frame> taken;
    while (!b.frames.empty() && taken.size() < max_frames) {
      b.bytes -= b.frames.front().size();
      taken.push_back(std::move(b.frames.front()));
      b.frames.pop_front();
    }
    return taken;
  }

  const std::deque<Frame>& Buffered(std::size_t guest) const override {
    return buffers_[guest].frames;
  }
  Engine& engine() override { return engine_; }
  void SetAcceleration(Acceleration acceleration) override { acceleration_ = acceleration; }

 private:
  struct Buffer {
    std::deque<Frame> frames;
    std::uint64_t bytes = 0;
  };
  BufferRoom Room(std::size_t guest) const {
    const Buffer& b = buffers_[guest];
    return {.bytes = bounds_.bytes - b.bytes,
            .frames = bounds_.frames - static_cast<std::uint32_t>(b.frames.size())};
  }
  Engine engine_;
  BufferBounds bounds_;
  std::vector<Buffer> buffers_;
  Acceleration acceleration_ = Acceleration::kOn;
};

class ModelHost : public HostAdapter {
 public:
  ModelHost(const std::vector<sim::IpAddress>& guests, BufferBounds bounds,
            const EngineConfig& config)
      : model_(config, guests, sim::BufferLimits{.bytes = bounds.bytes, .frames = bounds.frames}),
        placed_(guests.size()) {}

  HostResult ToGuest(std::size_t guest, const Frame& frame, bool /*checksum_verified*/,
                     Timestamp now) override {
    std::vector<sim::Output> out;
    const sim::InputFate fate = model_.Process(frame, now, &out);
    HostResult result;
    result.passed = fate == sim::InputFate::kPlaced;
    for (sim::Output& o : out) {
      if (o.kind == sim::Output::Kind::kToGuest) placed_[guest].push_back(std::move(o.bytes));
      if (o.kind == sim::Output::Kind::kEarlyAck) result.acks.push_back(std::move(o.bytes));
    }
    return result;
  }

  HostResult FromGuest(std::size_t guest, const Frame& frame, Timestamp now) override {
    std::vector<sim::Output> out;
    const sim::InputFate fate = model_.Process(frame, now, &out);
    // HostModel empties the guest's buffer before a frame from it: the guest ran.
    placed_[guest].clear();
    HostResult result;
    result.passed = fate == sim::InputFate::kForwarded;
    for (sim::Output& o : out) {
      if (o.kind == sim::Output::Kind::kWindowUpdate) result.acks.push_back(std::move(o.bytes));
      if (o.kind == sim::Output::Kind::kFromGuest && o.bytes != frame) {
        result.forwarded = std::move(o.bytes);
      }
    }
    return result;
  }

  std::vector<Frame> Take(std::size_t guest, std::size_t /*max_frames*/) override {
    model_.RunGuest(guest);
    std::vector<Frame> taken(std::make_move_iterator(placed_[guest].begin()),
                             std::make_move_iterator(placed_[guest].end()));
    placed_[guest].clear();
    return taken;
  }

  const std::deque<Frame>& Buffered(std::size_t guest) const override { return placed_[guest]; }
  Engine& engine() override { return model_.engine(); }
  void SetAcceleration(Acceleration acceleration) override {
    model_.set_acceleration(acceleration);
  }

 private:
  sim::HostModel model_;
  std::vector<std::deque<Frame>> placed_;  // what HostModel's buffer holds, in order
};

}  // namespace

std::unique_ptr<HostAdapter> MakeEngineHost(std::size_t guests, BufferBounds bounds,
                                            const EngineConfig& config) {
  return std::make_unique<EngineHost>(guests, bounds, config);
}

std::unique_ptr<HostAdapter> MakeModelHost(const std::vector<sim::IpAddress>& guests,
                                           BufferBounds bounds, const EngineConfig& config) {
  return std::make_unique<ModelHost>(guests, bounds, config);
}

}  // namespace vsnoop::proptest
