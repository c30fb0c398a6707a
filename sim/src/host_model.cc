#include "vsnoop/sim/host_model.h"

#include <arpa/inet.h>

#include "vsnoop/bug.h"
#include "vsnoop/wire/ethernet.h"
#include "vsnoop/wire/ipv4.h"
#include "vsnoop/wire/ipv6.h"

namespace vsnoop::sim {

std::optional<IpAddress> IpAddress::FromString(const char* text) {
  IpAddress a;
  if (inet_pton(AF_INET, text, a.bytes.data()) == 1) {
    a.family = 4;
    return a;
  }
  if (inet_pton(AF_INET6, text, a.bytes.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

std::optional<std::pair<IpAddress, IpAddress>> FrameAddresses(wire::Bytes frame) {
  const auto eth = wire::EthernetView::Parse(frame);
  if (!eth) return std::nullopt;
  const wire::Bytes l3 = eth->payload();
  IpAddress src;
  IpAddress dst;
  // Only the address fields are read: a frame with a broken IP header still belongs to the
  // guest it is addressed to, and the engine decides what to make of it.
  if (eth->ether_type() == wire::kEtherTypeIpv4 && l3.size() >= 20 && (l3[0] >> 4) == 4) {
    src.family = dst.family = 4;
    std::memcpy(src.bytes.data(), l3.data() + 12, 4);
    std::memcpy(dst.bytes.data(), l3.data() + 16, 4);
  } else if (eth->ether_type() == wire::kEtherTypeIpv6 && l3.size() >= 40 &&
             (l3[0] >> 4) == 6) {
    src.family = dst.family = 6;
    std::memcpy(src.bytes.data(), l3.data() + 8, 16);
    std::memcpy(dst.bytes.data(), l3.data() + 24, 16);
  } else {
    return std::nullopt;
  }
  return std::make_pair(src, dst);
}

HostModel::HostModel(const EngineConfig& config, std::vector<IpAddress> guests,
                     BufferLimits limits)
    : engine_(config), limits_(limits) {
  for (const IpAddress& a : guests) guests_.push_back(Guest{.address = a});
}

std::optional<std::size_t> HostModel::GuestIndex(const IpAddress& address) const {
  for (std::size_t i = 0; i < guests_.size(); ++i) {
    if (guests_[i].address == address) return i;
  }
  return std::nullopt;
}

void HostModel::RunGuest(std::size_t guest_index) {
  Guest& g = guests_[guest_index];
  g.used_bytes = 0;
  g.used_frames = 0;
  ++g.stats.runs;
}

std::uint64_t HostModel::frames_dropped() const {
  std::uint64_t n = 0;
  for (const Guest& g : guests_) n += g.stats.frames_dropped;
  return n;
}

InputFate HostModel::Process(wire::Bytes frame, Timestamp now, std::vector<Output>* out) {
  auto emit = [out](Output::Kind kind, wire::Bytes bytes) {
    out->push_back(Output{kind, std::vector<std::uint8_t>(bytes.begin(), bytes.end())});
  };
  std::vector<std::uint8_t> limited;  // the frame with its window rewritten, if it is
  const auto addresses = FrameAddresses(frame);
  std::optional<std::size_t> to;
  std::optional<std::size_t> from;
  if (addresses) {
    to = GuestIndex(addresses->second);
    from = GuestIndex(addresses->first);
  }
  // A frame between two guests is both: it comes from one (who ran, and whose frame the
  // engine sees as a guest's) and goes to the other.
  if (from) {
    RunGuest(*from);
    const GuestContext ctx{.id = static_cast<GuestId>(*from),
                           .room = {.bytes = limits_.bytes, .frames = limits_.frames},
                           .acceleration = acceleration_};
    const Verdict v = engine_.OnFrameFromGuest(frame, Offload{}, ctx, now);
    if (v.has_ack()) emit(Output::Kind::kWindowUpdate, v.ack.view());
    if (!v.forwards()) return InputFate::kSuppressed;
    if (v.window_field) {
      // Forwarded with the window the engine chose (its checksum updated with it).
      limited.assign(frame.begin(), frame.end());
      if (RewriteWindow(limited, *v.window_field, /*checksum_partial=*/false)) frame = limited;
    }
    if (!to) {
      emit(Output::Kind::kFromGuest, frame);
      return InputFate::kForwarded;
    }
  }
  if (to) {
    Guest& g = guests_[*to];
    const GuestContext ctx{
        .id = static_cast<GuestId>(*to),
        .room = {.bytes = limits_.bytes - g.used_bytes, .frames = limits_.frames - g.used_frames},
        .acceleration = acceleration_};
    const Verdict v = engine_.OnFrameToGuest(frame, Offload{}, ctx, now);
    if (frame.size() > ctx.room.bytes || ctx.room.frames == 0) {
      if (v.has_ack()) VSNOOP_BUG("early ACK for a frame that does not fit the buffer");
      ++g.stats.frames_dropped;
      return InputFate::kDropped;
    }
    g.used_bytes += frame.size();
    ++g.used_frames;
    ++g.stats.frames_placed;
    emit(Output::Kind::kToGuest, frame);
    if (v.has_ack()) emit(Output::Kind::kEarlyAck, v.ack.view());
    return InputFate::kPlaced;
  }
  emit(Output::Kind::kPassThrough, frame);
  return InputFate::kPassedThrough;
}

}  // namespace vsnoop::sim
