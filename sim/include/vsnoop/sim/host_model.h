// A host datapath in miniature, with no I/O: guests identified by IP address, one bounded
// receive buffer per guest, and the engine inline. It is the model behind vsnoop-replay,
// the golden traces and the property tests:
//   - a frame whose IP destination is a guest's goes to that guest: it enters the guest's
//     buffer if it fits (else it is dropped), and an early ACK may follow it;
//   - a frame whose IP source is a guest's comes from that guest: the guest ran, so its
//     buffer is emptied first, then the frame is forwarded, suppressed or replaced;
//   - anything else passes through.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "vsnoop/engine.h"

namespace vsnoop::sim {

struct IpAddress {
  std::uint8_t family = 4;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4 bytes
  friend bool operator==(const IpAddress&, const IpAddress&) = default;

  static std::optional<IpAddress> FromString(const char* text);
};

struct BufferLimits {
  std::uint64_t bytes = 1 << 20;
  std::uint32_t frames = 1024;
};

struct GuestBufferStats {
  std::uint64_t frames_placed = 0;
  std::uint64_t frames_dropped = 0;  // did not fit
  std::uint64_t runs = 0;            // times the guest ran and emptied its buffer
};

// What the host puts on a wire because of one input frame.
struct Output {
  enum class Kind : std::uint8_t {
    kToGuest,      // a frame placed in a guest's buffer (delivered when the guest runs)
    kFromGuest,    // a guest's frame forwarded to the network
    kEarlyAck,     // an ACK vSnoop generated for data to a guest
    kWindowUpdate, // an ACK vSnoop generated in place of a stale guest ACK
    kPassThrough,  // not to or from a guest
  };
  Kind kind;
  std::vector<std::uint8_t> bytes;
};

// What the model did with one input frame, besides its outputs.
enum class InputFate : std::uint8_t {
  kPlaced,       // to a guest, in its buffer
  kDropped,      // to a guest, no room
  kForwarded,    // from a guest, forwarded
  kSuppressed,   // from a guest, suppressed (maybe replaced by a window update)
  kPassedThrough,
};

class HostModel {
 public:
  HostModel(const EngineConfig& config, std::vector<IpAddress> guests, BufferLimits limits);

  // Processes one frame; appends what goes on a wire to *out.
  InputFate Process(wire::Bytes frame, Timestamp now, std::vector<Output>* out);
  // The guest at index i runs: its buffer empties (the frames reach its TCP stack).
  void RunGuest(std::size_t guest_index);
  // Index of the guest with this address, if any.
  std::optional<std::size_t> GuestIndex(const IpAddress& address) const;

  void set_acceleration(Acceleration a) { acceleration_ = a; }
  const Engine& engine() const { return engine_; }
  Engine& engine() { return engine_; }
  const GuestBufferStats& buffer_stats(std::size_t guest_index) const {
    return guests_[guest_index].stats;
  }
  std::uint64_t frames_dropped() const;
  std::size_t guest_count() const { return guests_.size(); }

 private:
  struct Guest {
    IpAddress address;
    std::uint64_t used_bytes = 0;
    std::uint32_t used_frames = 0;
    GuestBufferStats stats;
  };
  Engine engine_;
  BufferLimits limits_;
  std::vector<Guest> guests_;
  Acceleration acceleration_ = Acceleration::kOn;
};

// The guest-facing addresses of a frame: (source, destination) IP, when it is IPv4 or IPv6.
std::optional<std::pair<IpAddress, IpAddress>> FrameAddresses(wire::Bytes frame);

}  // namespace vsnoop::sim
