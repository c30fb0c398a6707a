// rapidcheck generators for the simulated scenarios (scenario.h). Numbers are drawn at full
// range whatever rapidcheck's size parameter; the size sets only how many events a run
// has (up to three times the size: 300 at the default maximum size of 100). Shrinking
// removes events, moves event kinds toward plain delivery, and options toward "off".
#pragma once

#include <rapidcheck.h>

#include "known_issues.h"
#include "scenario.h"

namespace vsnoop::proptest::gens {

enum class Profile : std::uint8_t {
  kImpaired,  // every event kind, buffers of any size
  kClean,     // no loss, no reordering, no edits, no timers; a roomy buffer
};

// True with probability n/d; shrinks toward false.
inline rc::Gen<bool> Chance(int n, int d) {
  return rc::gen::map(rc::gen::inRange(0, d), [n, d](int x) { return x >= d - n; });
}

// Half the time within 4 KiB below 2^32, so sequence numbers (or timestamps) wrap.
inline rc::Gen<std::uint32_t> NearWrapOrAny() {
  return rc::gen::weightedOneOf<std::uint32_t>(
      {{1, rc::gen::arbitrary<std::uint32_t>()},
       {1, rc::gen::map(rc::gen::inRange<std::uint32_t>(0, 4096),
                        [](std::uint32_t x) { return 0xFFFFFFFFu - x; })}});
}

inline rc::Gen<SynOffer> Offer() {
  return rc::gen::build<SynOffer>(
      rc::gen::set(
          &SynOffer::window_scale,
          rc::gen::weightedOneOf<int>({{1, rc::gen::just(-1)}, {4, rc::gen::inRange(0, 15)}})),
      rc::gen::set(&SynOffer::timestamps, Chance(3, 4)),
      rc::gen::set(&SynOffer::sack_permitted, Chance(2, 3)),
      rc::gen::set(&SynOffer::ecn, Chance(2, 3)));
}

inline rc::Gen<ConnectionPlan> Plan(Profile profile) {
  const bool unscaled_guest =
      profile == Profile::kClean && known_issues::kRoundedEdgeLooksLikeProbe;
  auto guest_offer = unscaled_guest ? rc::gen::map(Offer(),
                                                   [](SynOffer o) {
                                                     o.window_scale = std::min(o.window_scale, 0);
                                                     return o;
                                                   })
                                    : Offer();
  return rc::gen::build<ConnectionPlan>(
      rc::gen::set(&ConnectionPlan::sender_isn, NearWrapOrAny()),
      rc::gen::set(&ConnectionPlan::guest_isn, NearWrapOrAny()),
      rc::gen::set(&ConnectionPlan::guest_initiates, Chance(1, 3)),
      rc::gen::set(&ConnectionPlan::sender_offer, Offer()),
      rc::gen::set(&ConnectionPlan::guest_offer, guest_offer),
      rc::gen::set(&ConnectionPlan::mss, rc::gen::weightedOneOf<std::uint16_t>(
                                             {{2, rc::gen::inRange<std::uint16_t>(1, 65)},
                                              {3, rc::gen::inRange<std::uint16_t>(65, 1461)},
                                              {2, rc::gen::just<std::uint16_t>(1460)}})),
      rc::gen::set(
          &ConnectionPlan::stream_units,
          rc::gen::weightedOneOf<std::uint16_t>({{8, rc::gen::inRange<std::uint16_t>(0, 41)},
                                                 {1, rc::gen::inRange<std::uint16_t>(41, 161)}})),
      rc::gen::set(&ConnectionPlan::stream_extra, rc::gen::arbitrary<std::uint32_t>()),
      rc::gen::set(&ConnectionPlan::rcvbuf_draw, rc::gen::arbitrary<std::uint32_t>()),
      rc::gen::set(&ConnectionPlan::sender_window, rc::gen::arbitrary<std::uint16_t>()),
      rc::gen::set(&ConnectionPlan::sender_ts_base, NearWrapOrAny()),
      rc::gen::set(&ConnectionPlan::guest_ts_base, NearWrapOrAny()),
      rc::gen::set(&ConnectionPlan::ack_every, rc::gen::inRange<std::uint8_t>(0, 3)),
      rc::gen::set(&ConnectionPlan::window_update_policy, rc::gen::inRange<std::uint8_t>(0, 3)));
}

// Event kinds and their weights. The first entry is where shrinking leads.
struct KindWeight {
  EventKind kind;
  std::uint32_t weight;
};
inline constexpr KindWeight kCleanKinds[] = {{EventKind::kDeliver, 20},
                                             {EventKind::kSend, 14},
                                             {EventKind::kGuestRun, 10},
                                             {EventKind::kAckDeliver, 14},
                                             {EventKind::kTick, 4}};
inline constexpr KindWeight kImpairedKinds[] = {
    {EventKind::kDeliver, 80},       {EventKind::kSend, 56},
    {EventKind::kGuestRun, 40},      {EventKind::kAckDeliver, 56},
    {EventKind::kTick, 16},          {EventKind::kDrop, 12},
    {EventKind::kReorder, 12},       {EventKind::kDuplicate, 8},
    {EventKind::kDelay, 12},         {EventKind::kCorruptTcp, 4},
    {EventKind::kCorruptIp, 4},      {EventKind::kMarkCe, 12},
    {EventKind::kForgeAck, 4},       {EventKind::kStripTimestamps, 4},
    {EventKind::kStaleTimestamp, 4}, {EventKind::kAckDrop, 8},
    {EventKind::kAckReorder, 8},     {EventKind::kTimeout, 12},
    {EventKind::kProbe, 4},          {EventKind::kToggleAcceleration, 1},
    {EventKind::kExpireIdle, 1}};

// One 64-bit draw per event (cheap to generate, and shrinking it toward 0 moves the kind
// toward the first of the table and the parameters toward 0): bits 0-15 pick the kind by
// weight, bit 16 the connection, bits 17-32 `a`, bits 33-63 `b`.
template <std::size_t N>
Event DecodeEvent(std::uint64_t draw, const KindWeight (&kinds)[N]) {
  std::uint32_t total = 0;
  for (const KindWeight& k : kinds)
    total += k.weight;
  std::uint32_t pick = static_cast<std::uint32_t>(draw & 0xFFFF) % total;
  EventKind kind = kinds[0].kind;
  for (const KindWeight& k : kinds) {
    if (pick < k.weight) {
      kind = k.kind;
      break;
    }
    pick -= k.weight;
  }
  return Event{.kind = kind,
               .connection = static_cast<std::uint8_t>((draw >> 16) & 1),
               .a = static_cast<std::uint16_t>((draw >> 17) & 0xFFFF),
               .b = static_cast<std::uint32_t>(draw >> 33)};
}

inline rc::Gen<Event> AnyEvent(Profile profile) {
  return rc::gen::map(rc::gen::arbitrary<std::uint64_t>(), [profile](std::uint64_t draw) {
    return profile == Profile::kClean ? DecodeEvent(draw, kCleanKinds)
                                      : DecodeEvent(draw, kImpairedKinds);
  });
}

inline rc::Gen<Scenario> AnyScenario(Profile profile) {
  const bool clean = profile == Profile::kClean;
  rc::Gen<Scenario> setup = rc::gen::resize(
      100,
      rc::gen::build<Scenario>(
          rc::gen::set(&Scenario::ipv6, Chance(1, 3)), rc::gen::set(&Scenario::vlan, Chance(1, 4)),
          rc::gen::set(&Scenario::model_host, Chance(1, 4)),
          rc::gen::set(&Scenario::two_connections, Chance(1, 4)),
          rc::gen::set(&Scenario::shared_guest, Chance(1, 2)),
          rc::gen::set(&Scenario::roomy_buffer, clean ? rc::gen::just(true) : Chance(1, 4)),
          rc::gen::set(&Scenario::buffer_aware_window, Chance(1, 2)),
          rc::gen::set(&Scenario::buffer_bytes_draw, rc::gen::arbitrary<std::uint32_t>()),
          rc::gen::set(&Scenario::buffer_frames_draw, rc::gen::arbitrary<std::uint32_t>()),
          rc::gen::set(&Scenario::connections, rc::gen::apply(
                                                   [](ConnectionPlan a, ConnectionPlan b) {
                                                     return std::array<ConnectionPlan, 2>{a, b};
                                                   },
                                                   Plan(profile), Plan(profile)))));
  rc::Gen<std::vector<Event>> events = rc::gen::scale(
      3.0, rc::gen::container<std::vector<Event>>(rc::gen::resize(100, AnyEvent(profile))));
  return rc::gen::apply(
      [](Scenario s, std::vector<Event> e) {
        s.events = std::move(e);
        return s;
      },
      setup, events);
}

}  // namespace vsnoop::proptest::gens
