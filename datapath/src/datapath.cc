#include "vsnoop/datapath/datapath.h"

#include <poll.h>

#include <algorithm>

#include "vsnoop/bug.h"
#include "vsnoop/datapath/gso.h"
#include "vsnoop/wire/ethernet.h"

namespace vsnoop::datapath {
namespace {

constexpr Duration kHousekeeping = std::chrono::seconds(1);

struct L2Addresses {
  wire::MacAddress destination;
  wire::MacAddress source;
  std::uint16_t vlan = 0;  // VLAN ID of the outermost tag, 0 when untagged
};

L2Addresses ReadL2(wire::Bytes frame) {
  L2Addresses a;
  std::memcpy(a.destination.octets.data(), frame.data(), 6);
  std::memcpy(a.source.octets.data(), frame.data() + 6, 6);
  if (const auto eth = wire::EthernetView::Parse(frame); eth && eth->vlan_tag_count() > 0) {
    a.vlan = eth->vlan_tci(0) & 0x0FFF;
  }
  return a;
}

}  // namespace

Datapath::Datapath(const DatapathConfig& config, std::unique_ptr<Port> uplink,
                   std::vector<GuestPortConfig> guests, Timestamp now)
    : config_(config),
      engine_(config.engine),
      uplink_(std::move(uplink)),
      mac_(config.mac_table_size, config.mac_aging),
      uplink_backlog_(config.uplink_backlog_bytes, config.uplink_backlog_frames),
      now_(now),
      last_housekeeping_(now) {
  guests_.reserve(guests.size());
  for (GuestPortConfig& c : guests) {
    std::optional<VmSchedule> schedule;
    if (c.schedule) schedule.emplace(*c.schedule, now);
    guests_.push_back(Guest{.name = std::move(c.name),
                            .port = std::move(c.port),
                            .buffer = FrameQueue(c.buffer_bytes, c.buffer_frames),
                            .schedule = std::move(schedule),
                            .accelerate = c.accelerate,
                            .was_connected = false,
                            .counters = {},
                            .sink = {}});
  }
  for (std::uint32_t i = 0; i < guests_.size(); ++i) {
    const std::uint32_t port = i + 1;
    guests_[i].was_connected = guests_[i].port->IsConnected();
    guests_[i].sink = [this, port](const PacketView& p) { OnFrame(port, p); };
  }
  uplink_sink_ = [this](const PacketView& p) { OnFrame(kUplink, p); };
  send_batch_.reserve(config_.burst);
  held_acks_.reserve(config_.burst);
}

Datapath::GuestView Datapath::guest(std::size_t i) const {
  const Guest& g = guests_[i];
  return GuestView{g.name, *g.port, g.buffer, g.schedule, g.counters, g.accelerate};
}

bool Datapath::SetGuestAcceleration(const std::string& name, bool on) {
  for (Guest& g : guests_) {
    if (g.name == name) {
      g.accelerate = on;
      return true;
    }
  }
  return false;
}

void Datapath::Step(Timestamp now) {
  now_ = now;
  const bool housekeeping = now - last_housekeeping_ >= kHousekeeping;
  if (housekeeping) {
    last_housekeeping_ = now;
    engine_.ExpireIdle(now);
    mac_.Expire(now);
  }
  for (std::uint32_t i = 0; i < guests_.size(); ++i) {
    Guest& g = guests_[i];
    if (g.port->listen_fd() >= 0) g.port->Accept();
    bool connected = g.port->IsConnected();
    if (g.was_connected && !connected) OnGuestGone(i + 1);
    // Only after the old VM's flows are forgotten may its interface's successor attach.
    if (!connected && housekeeping && g.port->Reattach()) {
      ++g.counters.reattaches;
      connected = true;
    }
    g.was_connected = connected;
  }

  holding_acks_ = true;
  counters_.frames_from_uplink += uplink_->ReceiveBurst(config_.burst, uplink_sink_);
  holding_acks_ = false;
  ReleaseHeldAcks();
  FlushUplinkBacklog();

  for (Guest& g : guests_) {
    if (g.schedule) g.schedule->Advance(now, Runnable(g));
    if (!Running(g) || !g.port->IsConnected()) continue;
    const std::size_t read = g.port->ReceiveBurst(config_.burst, g.sink);
    g.counters.frames_from_guest += read;
    const std::uint64_t delivered_before = g.counters.frames_delivered;
    Deliver(g);
    if (g.schedule) {
      if (read > 0 || g.counters.frames_delivered != delivered_before) {
        g.schedule->NoteActivity(now);
      }
      // The guest has done what it could: if nothing is left for it now, its turn may end
      // here (with idle_yield 0, at once, like a vCPU that halts when it runs out of work).
      g.schedule->Advance(now, Runnable(g));
    }
  }
  FlushUplinkBacklog();
}

bool Datapath::Runnable(const Guest& g) {
  // A guest whose port has no VM behind it (gone, not attached yet) has nothing to run
  // for, whatever its ring or buffer still hold.
  return g.port->IsConnected() && (!g.buffer.empty() || g.port->ReceivePending());
}

Timestamp Datapath::NextDeadline(Timestamp now) const {
  Timestamp deadline = last_housekeeping_ + kHousekeeping;
  for (const Guest& g : guests_) {
    if (!g.schedule) continue;
    if (const auto e = g.schedule->NextEvent()) deadline = std::min(deadline, *e);
    // A blocked VM that has been given frames since its schedule last advanced (by a VM
    // later in this step's order) wakes now, not at the next unrelated event.
    if (g.schedule->state() == VmSchedule::State::kBlocked && !g.buffer.empty()) return now;
  }
  return std::max(deadline, now);
}

void Datapath::CollectWaits(std::vector<pollfd>* out) const {
  auto want = [out](int fd, short events) {
    if (fd >= 0) out->push_back(pollfd{.fd = fd, .events = events, .revents = 0});
  };
  want(uplink_->receive_fd(), POLLIN);
  if (!uplink_backlog_.empty() && !uplink_->CanSend()) want(uplink_->send_fd(), POLLOUT);
  for (const Guest& g : guests_) {
    want(g.port->listen_fd(), POLLIN);
    if (!g.port->IsConnected()) continue;
    // A queued guest is already runnable: its descriptor would only wake the loop for
    // frames that must wait for its turn anyway.
    const bool queued = g.schedule && g.schedule->state() == VmSchedule::State::kQueued;
    if (!queued) want(g.port->receive_fd(), POLLIN);
    if (Running(g) && !g.buffer.empty() && !g.port->CanSend()) want(g.port->send_fd(), POLLOUT);
  }
}

void Datapath::OnFrame(std::uint32_t in, const PacketView& packet) {
  if (packet.frame.size() < wire::kEthernetHeaderSize) {
    ++counters_.frames_runt;
    return;
  }
  const L2Addresses l2 = ReadL2(packet.frame);
  mac_.Learn(l2.source, l2.vlan, in, now_);
  const std::optional<std::uint32_t> out = mac_.Lookup(l2.destination, l2.vlan, now_);
  if (out && *out == in) {
    ++counters_.frames_filtered;
    return;
  }
  const PacketView* forward = &packet;
  PacketView limited;
  if (in != kUplink && config_.run_engine) {
    Guest& g = GuestAt(in);
    const Offload offload = ToOffload(packet.vnet);
    const GuestContext ctx{.id = in, .room = g.buffer.room(), .acceleration = AccelerationFor(g)};
    const Verdict v = engine_.OnFrameFromGuest(packet.frame, offload, ctx, now_);
    if (v.action == Action::kSuppress || v.action == Action::kSuppressAndAck) {
      ++g.counters.guest_acks_suppressed;
      Observe(DecisionObserver::Kind::kSuppressed, g, packet.frame);
      if (v.has_ack()) {
        ++g.counters.window_updates;
        Observe(DecisionObserver::Kind::kWindowUpdate, g, v.ack.view());
        SendGenerated(in, v.ack.view());
      }
      return;
    }
    if (v.window_field) {
      // The guest's window would invite more than its buffer holds: a copy with the
      // window the engine chose leaves instead (the received frame is read-only).
      rewritten_.assign(packet.frame.begin(), packet.frame.end());
      if (RewriteWindow(rewritten_, *v.window_field,
                        offload.checksum == ChecksumStatus::kPartial)) {
        limited = {rewritten_, packet.vnet};
        forward = &limited;
        ++g.counters.guest_windows_limited;
        Observe(DecisionObserver::Kind::kWindowLimited, g, limited.frame);
      }
    }
  }
  if (!out) {
    // Flooded frames skip the engine: a unicast TCP segment that reaches several guests is
    // not one guest's to acknowledge.
    ++counters_.frames_flooded;
    for (std::uint32_t p = 0; p < PortCount(); ++p) {
      if (p != in) Output(p, in, *forward, /*run_engine=*/false);
    }
    return;
  }
  Output(*out, in, *forward, /*run_engine=*/config_.run_engine);
}

void Datapath::Output(std::uint32_t out, std::uint32_t /*in*/, const PacketView& packet,
                      bool run_engine) {
  if (out == kUplink) {
    ToUplink(packet);
  } else {
    ToGuest(out, packet, run_engine);
  }
}

void Datapath::ToGuest(std::uint32_t out, const PacketView& packet, bool run_engine) {
  Guest& g = GuestAt(out);
  if (!g.port->IsConnected()) return;  // no VM attached: nobody to deliver to
  if (packet.vnet.plain() || g.port->SupportsOffload()) {
    PlaceForGuest(g, out, packet, run_engine);
    return;
  }
  scratch_.clear();
  if (Unoffload(packet, &scratch_) != GsoResult::kDone) {
    ++g.counters.frames_to_guest;
    ++g.counters.frames_dropped_unoffload;
    return;
  }
  if (packet.vnet.is_gso()) ++g.counters.gso_segmented;
  // PlaceForGuest may reuse scratch_ through SendGenerated -> ToGuest for VM-to-VM ACKs;
  // take the frames out first.
  std::vector<OwnedPacket> frames = std::move(scratch_);
  scratch_ = {};
  for (const OwnedPacket& p : frames) PlaceForGuest(g, out, p.view(), run_engine);
}

void Datapath::PlaceForGuest(Guest& g, std::uint32_t out, const PacketView& packet,
                             bool run_engine) {
  ++g.counters.frames_to_guest;
  if (!g.port->Fits(packet)) {
    // The port would refuse it (longer than the guest interface's MTU): the VM can never
    // have it, so the engine must not see it, let alone acknowledge it.
    ++g.counters.frames_dropped_too_big;
    return;
  }
  Verdict v;
  if (run_engine) {
    const GuestContext ctx{.id = out, .room = g.buffer.RoomFor(packet.frame.size()),
                           .acceleration = AccelerationFor(g)};
    v = engine_.OnFrameToGuest(packet.frame, ToOffload(packet.vnet), ctx, now_);
  }
  // A guest on its core with nothing queued takes the frame straight from the port it
  // came in on (cut-through: no copy into the buffer). Delivered is as good as placed: the
  // early ACK may follow. Otherwise the frame waits in the buffer.
  const std::uint64_t refused_before = g.counters.frames_refused;
  if (Running(g) && g.buffer.empty() && g.port->IsConnected() && g.port->CanSend() &&
      SendToGuest(g, {&packet, 1}) == 1) {
    if (g.schedule) g.schedule->NoteActivity(now_);
    if (g.counters.frames_refused != refused_before && v.has_ack()) {
      // Fits() said yes and the kernel said no (an MTU lowered at run time, say): the VM
      // does not have these bytes. Their ACK is withheld, but the engine has counted them
      // in and a later ACK of the flow would cover them: the counter is the alarm.
      ++g.counters.early_acks_withheld;
      return;
    }
  } else if (!g.buffer.Push(packet)) {
    ++g.counters.frames_dropped_no_room;
    if (v.has_ack()) {
      // The engine was told the room and said it fits; the buffer disagrees. Never send
      // an ACK for a frame that is not in the buffer.
      ++counters_.internal_bugs;
      VSNOOP_BUG("engine acknowledged a frame the guest buffer refused");
    }
    return;
  }
  ++g.counters.frames_placed;
  g.counters.buffer_high_water_bytes =
      std::max(g.counters.buffer_high_water_bytes, g.buffer.bytes());
  if (v.has_ack()) {
    if (holding_acks_) {
      HoldEarlyAck(out, v.ack);
    } else {
      SendEarlyAck(out, v.ack.view());
    }
  }
  // A guest on its core takes what is queued as soon as its port can.
  if (Running(g) && !g.buffer.empty()) {
    const std::uint64_t before = g.counters.frames_delivered;
    Deliver(g);
    if (g.schedule && g.counters.frames_delivered != before) g.schedule->NoteActivity(now_);
  }
}

void Datapath::HoldEarlyAck(std::uint32_t from, const AckFrame& ack) {
  // The engine's ACKs for one flow never go back: a later one acknowledges at least as
  // much, shows an edge at least as far right, and echoes a timestamp at least as recent,
  // so it says everything an earlier one of the same burst would have said.
  const FlowId id = FlowIdOf(ack.view());
  for (HeldAck& held : held_acks_) {
    if (held.from == from && held.id == id) {
      held.frame = ack;
      ++GuestAt(from).counters.early_acks_coalesced;
      return;
    }
  }
  held_acks_.push_back({from, id, ack});
}

Datapath::FlowId Datapath::FlowIdOf(wire::Bytes frame) {
  // The L2 header (addresses, VLAN tags), the IP addresses and the ports. The engine's
  // ACKs always parse; an id left empty would only keep an ACK from being coalesced.
  FlowId id{};
  Reason why{};
  const std::optional<Segment> seg = ParseSegment(frame, &why);
  if (!seg) return id;
  const std::size_t ip_bytes = seg->family == 4 ? 4 : 16;
  auto put = [&id](const std::uint8_t* p, std::size_t n) {
    n = std::min(n, id.bytes.size() - id.size);
    std::copy_n(p, n, id.bytes.begin() + static_cast<std::ptrdiff_t>(id.size));
    id.size += static_cast<std::uint8_t>(n);
  };
  put(seg->l2_header.data(), seg->l2_header.size());
  put(seg->source_ip, ip_bytes);
  put(seg->destination_ip, ip_bytes);
  const std::uint16_t ports[2] = {seg->tcp.source_port(), seg->tcp.destination_port()};
  put(reinterpret_cast<const std::uint8_t*>(ports), sizeof ports);
  return id;
}

void Datapath::ReleaseHeldAcks() {
  defer_uplink_sends_ = true;
  for (const HeldAck& held : held_acks_) SendEarlyAck(held.from, held.frame.view());
  defer_uplink_sends_ = false;
  held_acks_.clear();
}

void Datapath::SendEarlyAck(std::uint32_t from, wire::Bytes frame) {
  Guest& g = GuestAt(from);
  ++g.counters.early_acks;
  Observe(DecisionObserver::Kind::kEarlyAck, g, frame);
  SendGenerated(from, frame);
}

void Datapath::SendGenerated(std::uint32_t from, wire::Bytes frame) {
  // An ACK vSnoop made on guest `from`'s behalf travels as if that guest had sent it.
  const L2Addresses l2 = ReadL2(frame);
  const std::optional<std::uint32_t> out = mac_.Lookup(l2.destination, l2.vlan, now_);
  const PacketView packet{frame, {}};
  if (!out || *out == kUplink) {
    ToUplink(packet);
    return;
  }
  if (*out == from) return;
  Guest& peer = GuestAt(*out);
  if (!peer.port->IsConnected() || !peer.buffer.Push(packet)) {
    ++counters_.generated_acks_dropped;
  }
}

void Datapath::ToUplink(const PacketView& packet) {
  if (!packet.vnet.plain() && !uplink_->SupportsOffload()) {
    std::vector<OwnedPacket> frames;
    if (Unoffload(packet, &frames) != GsoResult::kDone) {
      ++counters_.uplink_backlog_dropped;
      return;
    }
    for (const OwnedPacket& p : frames) ToUplink(p.view());
    return;
  }
  // Held ACKs queue up and leave in one send call (FlushUplinkBacklog).
  if (defer_uplink_sends_ && uplink_backlog_.Push(packet)) return;
  if (uplink_backlog_.empty() && uplink_->SendBurst({&packet, 1}) == 1) {
    ++counters_.frames_to_uplink;
    return;
  }
  if (!uplink_backlog_.Push(packet)) ++counters_.uplink_backlog_dropped;
}

void Datapath::FlushUplinkBacklog() {
  // A port that holds part of a frame from an earlier call finishes it first.
  if (!uplink_backlog_.empty() && !uplink_->CanSend()) uplink_->SendBurst({});
  while (!uplink_backlog_.empty() && uplink_->CanSend()) {
    send_batch_.clear();
    const std::uint32_t n =
        std::min<std::uint32_t>(uplink_backlog_.frames(), static_cast<std::uint32_t>(config_.burst));
    for (std::uint32_t i = 0; i < n; ++i) send_batch_.push_back(uplink_backlog_.At(i));
    const std::size_t sent = uplink_->SendBurst(send_batch_);
    counters_.frames_to_uplink += sent;
    uplink_backlog_.Pop(static_cast<std::uint32_t>(sent));
    if (sent < n) break;
  }
}

void Datapath::Deliver(Guest& g) {
  if (!g.buffer.empty() && !g.port->CanSend()) g.port->SendBurst({});
  while (!g.buffer.empty() && g.port->CanSend()) {
    send_batch_.clear();
    const std::uint32_t n =
        std::min<std::uint32_t>(g.buffer.frames(), static_cast<std::uint32_t>(config_.burst));
    for (std::uint32_t i = 0; i < n; ++i) send_batch_.push_back(g.buffer.At(i));
    const std::size_t sent = SendToGuest(g, send_batch_);
    g.buffer.Pop(static_cast<std::uint32_t>(sent));
    if (sent < n) break;
  }
}

std::size_t Datapath::SendToGuest(Guest& g, std::span<const PacketView> frames) {
  const std::uint64_t refused_before = g.port->tx_refused();
  const std::size_t taken = g.port->SendBurst(frames);
  const std::uint64_t refused = g.port->tx_refused() - refused_before;
  // Refused frames are rare (Fits() keeps out the ones a port is known to refuse); their
  // bytes are counted as delivered, which keeps this free of a per-frame check.
  for (std::size_t i = 0; i < taken; ++i) g.counters.bytes_delivered += frames[i].frame.size();
  g.counters.frames_delivered += taken - refused;
  g.counters.frames_refused += refused;
  return taken;
}

std::uint64_t Datapath::Drain() {
  // Frames in a guest's buffer may have been acknowledged early: on the way out they go to
  // their guest whatever its emulated schedule says, and nothing new is read.
  std::uint64_t left = 0;
  for (Guest& g : guests_) {
    if (g.port->IsConnected()) Deliver(g);
    left += g.buffer.bytes();
  }
  FlushUplinkBacklog();
  return left;
}

void Datapath::OnGuestGone(std::uint32_t port) {
  Guest& g = GuestAt(port);
  ++g.counters.disconnects;
  // The VM and its TCP state are gone: what vSnoop knew of its flows, and the frames that
  // waited for it, no longer mean anything.
  engine_.ForgetGuest(port);
  mac_.ForgetPort(port);
  g.buffer.Clear();
}

void Datapath::Observe(DecisionObserver::Kind kind, const Guest& g, wire::Bytes frame) {
  if (observer_ != nullptr) observer_->OnDecision(kind, g.name, frame, now_);
}

}  // namespace vsnoop::datapath
