// FlowTable: lookups, the capacity bound and LRU eviction of transient flows only, idle
// expiry with one timeout per list, and backward-shift deletion checked against a model
// under heavy hash collisions.
#include "vsnoop/flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <unordered_map>
#include <vector>

#include "vsnoop/bug.h"

namespace vsnoop {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

// remote 10.a.b.c (IPv4-mapped) : 40000 + n % 1000  ->  guest 10.0.0.2 : 5201, where
// a.b.c are the low 24 bits of n: distinct n give distinct keys.
FlowKey KeyNumber(std::uint32_t n) {
  FlowKey key;
  key.family = 4;
  key.remote_ip[10] = key.remote_ip[11] = 0xFF;
  key.remote_ip[12] = 10;
  key.remote_ip[13] = static_cast<std::uint8_t>(n >> 16);
  key.remote_ip[14] = static_cast<std::uint8_t>(n >> 8);
  key.remote_ip[15] = static_cast<std::uint8_t>(n);
  key.guest_ip[10] = key.guest_ip[11] = 0xFF;
  key.guest_ip[12] = 10;
  key.guest_ip[15] = 2;
  key.remote_port = static_cast<std::uint16_t>(40000 + n % 1000);
  key.guest_port = 5201;
  return key;
}

// Any VSNOOP_BUG (say, "flow missing from the index") fails the test that caused it.
void FailOnBug(const char* file, int line, const char* what) {
  ADD_FAILURE() << "VSNOOP_BUG at " << file << ":" << line << ": " << what;
}

class FlowTableTest : public ::testing::Test {
 protected:
  void SetUp() override { previous_handler_ = SetBugHandler(FailOnBug); }
  void TearDown() override { SetBugHandler(previous_handler_); }

  static Flow* InsertOrFail(FlowTable& table, std::uint32_t n, Timestamp now = Timestamp{0}) {
    bool evicted = true;
    Flow* flow = table.Insert(KeyNumber(n), now, &evicted);
    EXPECT_NE(flow, nullptr) << n;
    EXPECT_FALSE(evicted) << n;
    return flow;
  }
  static bool Has(const FlowTable& table, std::uint32_t n) {
    return table.Find(KeyNumber(n)) != nullptr;
  }

  BugHandler previous_handler_ = nullptr;
};

TEST_F(FlowTableTest, InsertFindErase) {
  FlowTable table(8, 1);
  EXPECT_EQ(table.capacity(), 8u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.Find(KeyNumber(1)), nullptr);

  bool evicted = true;
  Flow* flow = table.Insert(KeyNumber(1), Timestamp{seconds(5)}, &evicted);
  ASSERT_NE(flow, nullptr);
  EXPECT_FALSE(evicted);
  EXPECT_EQ(flow->key, KeyNumber(1));
  EXPECT_EQ(flow->state, FlowState::kHandshake);
  EXPECT_EQ(flow->created, Timestamp{seconds(5)});
  EXPECT_EQ(flow->last_seen, Timestamp{seconds(5)});
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.accelerated_count(), 0u);

  EXPECT_EQ(table.Find(KeyNumber(1)), flow);
  const FlowTable& const_table = table;
  EXPECT_EQ(const_table.Find(KeyNumber(1)), flow);
  EXPECT_EQ(table.Find(KeyNumber(2)), nullptr);

  Flow* second = InsertOrFail(table, 2);
  EXPECT_NE(second, flow);
  EXPECT_EQ(table.size(), 2u);

  table.Erase(flow);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.Find(KeyNumber(1)), nullptr);
  EXPECT_EQ(table.Find(KeyNumber(2)), second);
}

TEST_F(FlowTableTest, InsertResetsAReusedSlot) {
  FlowTable table(1, 1);
  Flow* flow = InsertOrFail(table, 1);
  flow->state = FlowState::kActive;
  flow->guest = 7;
  flow->stats.early_acks = 3;
  table.Erase(flow);
  Flow* again = InsertOrFail(table, 2, Timestamp{seconds(1)});
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->key, KeyNumber(2));
  EXPECT_EQ(again->state, FlowState::kHandshake);
  EXPECT_EQ(again->guest, 0u);
  EXPECT_EQ(again->stats.early_acks, 0u);
  EXPECT_EQ(again->created, Timestamp{seconds(1)});
}

TEST_F(FlowTableTest, FreedSlotsAreReusedWithoutEviction) {
  FlowTable table(4, 1);
  for (std::uint32_t n = 0; n < 4; ++n)
    InsertOrFail(table, n);
  table.Erase(table.Find(KeyNumber(1)));
  table.Erase(table.Find(KeyNumber(3)));
  InsertOrFail(table, 10);
  InsertOrFail(table, 11);
  EXPECT_EQ(table.size(), 4u);
  for (std::uint32_t n : {0u, 2u, 10u, 11u})
    EXPECT_TRUE(Has(table, n)) << n;
}

TEST_F(FlowTableTest, NeverHoldsMoreThanCapacityAndEvictsTheLeastRecentlyUsed) {
  constexpr std::uint32_t kCapacity = 8;
  FlowTable table(kCapacity, 1);
  for (std::uint32_t n = 0; n < 100; ++n) {
    bool evicted = false;
    Flow* flow = table.Insert(KeyNumber(n), Timestamp{seconds(n)}, &evicted);
    ASSERT_NE(flow, nullptr);
    EXPECT_EQ(evicted, n >= kCapacity) << n;
    EXPECT_LE(table.size(), kCapacity);
    if (n >= kCapacity) {
      EXPECT_FALSE(Has(table, n - kCapacity)) << "the oldest, " << n - kCapacity << ", goes";
      EXPECT_TRUE(Has(table, n - kCapacity + 1));
    }
  }
  EXPECT_EQ(table.size(), kCapacity);
  for (std::uint32_t n = 100 - kCapacity; n < 100; ++n)
    EXPECT_TRUE(Has(table, n)) << n;
}

TEST_F(FlowTableTest, TouchMakesAFlowTheMostRecentlyUsed) {
  FlowTable table(4, 1);
  for (std::uint32_t n = 0; n < 4; ++n)
    InsertOrFail(table, n);
  table.Touch(table.Find(KeyNumber(3)), Timestamp{seconds(9)});  // already the newest
  EXPECT_EQ(table.Find(KeyNumber(3))->last_seen, Timestamp{seconds(9)});
  table.Touch(table.Find(KeyNumber(0)), Timestamp{seconds(9)});
  table.Touch(table.Find(KeyNumber(1)), Timestamp{seconds(9)});
  // LRU order now, oldest first: 2, 3, 0, 1.
  for (const std::uint32_t expected_victim : {2u, 3u, 0u, 1u}) {
    bool evicted = false;
    ASSERT_NE(table.Insert(KeyNumber(100 + expected_victim), Timestamp{seconds(10)}, &evicted),
              nullptr);
    EXPECT_TRUE(evicted);
    EXPECT_FALSE(Has(table, expected_victim)) << expected_victim;
  }
}

TEST_F(FlowTableTest, EvictionPassesOverAcceleratedFlows) {
  FlowTable table(4, 1);
  for (std::uint32_t n = 0; n < 4; ++n)
    InsertOrFail(table, n);
  table.SetAccelerated(table.Find(KeyNumber(0)), true);  // the oldest
  table.SetAccelerated(table.Find(KeyNumber(2)), true);
  EXPECT_EQ(table.accelerated_count(), 2u);
  bool evicted = false;
  ASSERT_NE(table.Insert(KeyNumber(4), Timestamp{0}, &evicted), nullptr);
  EXPECT_TRUE(evicted);
  EXPECT_FALSE(Has(table, 1));
  ASSERT_NE(table.Insert(KeyNumber(5), Timestamp{0}, &evicted), nullptr);
  EXPECT_FALSE(Has(table, 3));
  ASSERT_NE(table.Insert(KeyNumber(6), Timestamp{0}, &evicted), nullptr);
  EXPECT_FALSE(Has(table, 4));
  EXPECT_TRUE(Has(table, 0));
  EXPECT_TRUE(Has(table, 2));
  EXPECT_EQ(table.size(), 4u);
  EXPECT_EQ(table.accelerated_count(), 2u);
}

TEST_F(FlowTableTest, FullOfAcceleratedFlowsInsertReturnsNull) {
  FlowTable table(4, 1);
  for (std::uint32_t n = 0; n < 4; ++n)
    table.SetAccelerated(InsertOrFail(table, n), true);
  EXPECT_EQ(table.accelerated_count(), 4u);
  bool evicted = true;
  EXPECT_EQ(table.Insert(KeyNumber(99), Timestamp{0}, &evicted), nullptr);
  EXPECT_FALSE(evicted);
  EXPECT_EQ(table.size(), 4u);
  EXPECT_FALSE(Has(table, 99));
  for (std::uint32_t n = 0; n < 4; ++n)
    EXPECT_TRUE(Has(table, n)) << n;
}

TEST_F(FlowTableTest, FlowMovedBackToTransientIsEvictableAgain) {
  FlowTable table(2, 1);
  Flow* a = InsertOrFail(table, 0);
  Flow* b = InsertOrFail(table, 1);
  table.SetAccelerated(a, true);
  table.SetAccelerated(b, true);
  bool evicted = false;
  EXPECT_EQ(table.Insert(KeyNumber(2), Timestamp{0}, &evicted), nullptr);
  table.SetAccelerated(b, false);
  EXPECT_EQ(table.accelerated_count(), 1u);
  ASSERT_NE(table.Insert(KeyNumber(2), Timestamp{0}, &evicted), nullptr);
  EXPECT_TRUE(evicted);
  EXPECT_FALSE(Has(table, 1));
  EXPECT_TRUE(Has(table, 0));
}

TEST_F(FlowTableTest, ReinitializeClearsProtocolStateAndKeepsThePlaceInTheTable) {
  FlowTable table(3, 1);
  for (std::uint32_t n = 0; n < 3; ++n)
    InsertOrFail(table, n, Timestamp{seconds(n)});
  Flow* flow = table.Find(KeyNumber(1));
  flow->guest = 7;
  flow->state = FlowState::kClosed;
  flow->timestamps = true;
  flow->vsnoop_acked = true;
  flow->rcv_nxt = SeqNum(12345);
  flow->stats.early_acks = 5;
  table.Reinitialize(flow);
  EXPECT_EQ(table.Find(KeyNumber(1)), flow);
  EXPECT_EQ(flow->key, KeyNumber(1));
  EXPECT_EQ(flow->guest, 7u);
  EXPECT_EQ(flow->state, FlowState::kClosed);
  EXPECT_EQ(flow->created, Timestamp{seconds(1)});
  EXPECT_FALSE(flow->timestamps);
  EXPECT_FALSE(flow->vsnoop_acked);
  EXPECT_EQ(flow->rcv_nxt, SeqNum(0));
  EXPECT_EQ(flow->stats.early_acks, 0u);
  EXPECT_EQ(table.size(), 3u);
  // Still second in LRU order: new flows evict 0, then 1, then 2.
  for (const std::uint32_t expected_victim : {0u, 1u, 2u}) {
    bool evicted = false;
    ASSERT_NE(table.Insert(KeyNumber(100 + expected_victim), Timestamp{0}, &evicted), nullptr);
    EXPECT_TRUE(evicted);
    EXPECT_FALSE(Has(table, expected_victim)) << expected_victim;
  }
}

TEST_F(FlowTableTest, ReinitializedAcceleratedFlowStaysAccelerated) {
  FlowTable table(2, 1);
  Flow* flow = InsertOrFail(table, 0);
  table.SetAccelerated(flow, true);
  table.Reinitialize(flow);
  EXPECT_EQ(table.accelerated_count(), 1u);
  InsertOrFail(table, 1);
  bool evicted = false;
  ASSERT_NE(table.Insert(KeyNumber(2), Timestamp{0}, &evicted), nullptr);
  EXPECT_TRUE(Has(table, 0)) << "an accelerated flow is never evicted";
  EXPECT_FALSE(Has(table, 1));
}

TEST_F(FlowTableTest, ExpireIdleUsesEachListsOwnTimeout) {
  const Duration accelerated_timeout = seconds(300);
  const Duration transient_timeout = seconds(30);
  FlowTable table(8, 1);
  for (std::uint32_t n = 0; n < 4; ++n)
    InsertOrFail(table, n, Timestamp{0});
  table.SetAccelerated(table.Find(KeyNumber(2)), true);
  table.SetAccelerated(table.Find(KeyNumber(3)), true);
  table.Touch(table.Find(KeyNumber(1)), Timestamp{seconds(20)});

  EXPECT_EQ(table.ExpireIdle(Timestamp{seconds(30)}, accelerated_timeout, transient_timeout), 0u)
      << "idle for exactly the timeout is not yet expired";
  EXPECT_EQ(table.ExpireIdle(Timestamp{seconds(30) + nanoseconds(1)}, accelerated_timeout,
                             transient_timeout),
            1u);
  EXPECT_FALSE(Has(table, 0));
  EXPECT_TRUE(Has(table, 1));
  EXPECT_EQ(table.ExpireIdle(Timestamp{seconds(51)}, accelerated_timeout, transient_timeout), 1u);
  EXPECT_FALSE(Has(table, 1));
  EXPECT_EQ(table.size(), 2u);

  table.Touch(table.Find(KeyNumber(3)), Timestamp{seconds(100)});
  EXPECT_EQ(table.ExpireIdle(Timestamp{seconds(300)}, accelerated_timeout, transient_timeout), 0u);
  EXPECT_EQ(table.ExpireIdle(Timestamp{seconds(301)}, accelerated_timeout, transient_timeout), 1u);
  EXPECT_FALSE(Has(table, 2));
  EXPECT_TRUE(Has(table, 3));
  EXPECT_EQ(table.accelerated_count(), 1u);
  EXPECT_EQ(table.ExpireIdle(Timestamp{seconds(401)}, accelerated_timeout, transient_timeout), 1u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.accelerated_count(), 0u);
}

TEST_F(FlowTableTest, EraseIfErasesFromBothListsAndReturnsTheCount) {
  FlowTable table(32, 1);
  for (std::uint32_t n = 0; n < 20; ++n) {
    Flow* flow = InsertOrFail(table, n);
    flow->guest = n % 3;
    if (n % 2 == 0) table.SetAccelerated(flow, true);
  }
  const std::size_t erased = table.EraseIf([](const Flow& f) { return f.guest == 1; });
  EXPECT_EQ(erased, 7u);  // 1, 4, 7, 10, 13, 16, 19
  EXPECT_EQ(table.size(), 13u);
  EXPECT_EQ(table.accelerated_count(), 7u);  // even n, minus 4, 10 and 16
  std::vector<std::uint32_t> visited;
  table.ForEach([&](const Flow& f) {
    EXPECT_NE(f.guest, 1u);
    visited.push_back(f.key.remote_ip[15]);
  });
  std::sort(visited.begin(), visited.end());
  EXPECT_EQ(visited, (std::vector<std::uint32_t>{0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}));
  for (std::uint32_t n = 0; n < 20; ++n)
    EXPECT_EQ(Has(table, n), n % 3 != 1) << n;
  EXPECT_EQ(table.EraseIf([](const Flow&) { return false; }), 0u);
  EXPECT_EQ(table.EraseIf([](const Flow&) { return true; }), 13u);
  EXPECT_EQ(table.size(), 0u);
}

TEST_F(FlowTableTest, HashDependsOnTheSeed) {
  const FlowTable a(8, 1);
  const FlowTable b(8, 2);
  const FlowTable a_again(8, 1);
  for (std::uint32_t n = 0; n < 100; ++n) {
    EXPECT_NE(a.Hash(KeyNumber(n)), b.Hash(KeyNumber(n))) << n;
    EXPECT_EQ(a.Hash(KeyNumber(n)), a_again.Hash(KeyNumber(n))) << n;
    EXPECT_NE(a.Hash(KeyNumber(n)), a.Hash(KeyNumber(n + 1))) << n;
  }
  // Every field is hashed: keys differing only in the guest port or the family differ.
  FlowKey other_port = KeyNumber(1);
  other_port.guest_port = 5202;
  EXPECT_NE(a.Hash(other_port), a.Hash(KeyNumber(1)));
  FlowKey other_family = KeyNumber(1);
  other_family.family = 6;
  EXPECT_NE(a.Hash(other_family), a.Hash(KeyNumber(1)));
}

// Keys whose hashes put them in a handful of neighbouring buckets of the index, across its
// wrap-around point, so probe runs are long and wrap: the hard cases for backward-shift
// deletion. The table keeps its index at twice the capacity, rounded up to a power of two
// and at least 16; masking with any smaller power of two still makes these keys collide.
std::vector<FlowKey> CollidingKeys(const FlowTable& table, std::size_t index_size,
                                   std::size_t count) {
  std::vector<FlowKey> keys;
  for (std::uint32_t n = 0; keys.size() < count; ++n) {
    const std::size_t home = (table.Hash(KeyNumber(n)) & 0xFFFFFFFF) & (index_size - 1);
    if (home >= index_size - 2 || home <= 1) keys.push_back(KeyNumber(n));
  }
  return keys;
}

// Randomised inserts, touches and erases against a model (a map plus a use clock for LRU
// order): after every operation the table holds exactly the model's flows.
void RunAgainstModel(std::size_t capacity, std::size_t index_size, bool colliding,
                     std::uint32_t seed, int operations) {
  FlowTable table(capacity, seed);
  std::vector<FlowKey> keys;
  if (colliding) {
    keys = CollidingKeys(table, index_size, capacity * 3);
  } else {
    for (std::uint32_t n = 0; n < capacity * 3; ++n)
      keys.push_back(KeyNumber(n * 7919));
  }
  struct Entry {
    std::uint32_t value;
    std::uint64_t last_use;
  };
  std::unordered_map<std::size_t, Entry> model;  // by index into keys
  std::uint64_t clock = 0;
  std::mt19937 rng(seed);
  for (int op = 0; op < operations; ++op) {
    // A millisecond apart: Touch moves a flow to the head of its list at most once per
    // millisecond (FlowTable::kRelinkInterval), so the order is exact only at that spacing.
    const Timestamp now{std::chrono::milliseconds(op + 1)};
    const std::size_t k = rng() % keys.size();
    const auto it = model.find(k);
    if (it == model.end()) {
      // Insert; a full table evicts the least recently used flow (all flows are transient).
      std::size_t victim = keys.size();
      if (model.size() == capacity) {
        auto oldest = std::min_element(
            model.begin(), model.end(),
            [](const auto& x, const auto& y) { return x.second.last_use < y.second.last_use; });
        victim = oldest->first;
      }
      bool evicted = false;
      Flow* flow = table.Insert(keys[k], now, &evicted);
      ASSERT_NE(flow, nullptr);
      ASSERT_EQ(evicted, victim != keys.size()) << op;
      if (evicted) model.erase(victim);
      const auto value = static_cast<std::uint32_t>(rng());
      flow->guest = value;
      model[k] = Entry{value, ++clock};
    } else if (rng() % 3 == 0) {
      Flow* flow = table.Find(keys[k]);
      ASSERT_NE(flow, nullptr);
      table.Touch(flow, now);
      it->second.last_use = ++clock;
    } else {
      Flow* flow = table.Find(keys[k]);
      ASSERT_NE(flow, nullptr);
      table.Erase(flow);
      model.erase(it);
    }
    ASSERT_EQ(table.size(), model.size()) << op;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const Flow* flow = table.Find(keys[i]);
      const auto m = model.find(i);
      if (m == model.end()) {
        ASSERT_EQ(flow, nullptr) << "op " << op << " key " << i << " should be absent";
      } else {
        ASSERT_NE(flow, nullptr) << "op " << op << " key " << i << " lost";
        ASSERT_EQ(flow->key, keys[i]);
        ASSERT_EQ(flow->guest, m->second.value);
      }
    }
  }
}

TEST_F(FlowTableTest, TouchWithinAMillisecondKeepsTheOrder) {
  FlowTable table(4, 1);
  bool evicted = false;
  const Timestamp t0{std::chrono::seconds(1)};
  Flow* a = table.Insert(KeyNumber(1), t0, &evicted);
  table.Insert(KeyNumber(2), t0 + std::chrono::milliseconds(2), &evicted);
  table.Insert(KeyNumber(3), t0 + std::chrono::milliseconds(4), &evicted);
  table.Insert(KeyNumber(4), t0 + std::chrono::milliseconds(6), &evicted);
  // a was used again half a millisecond after it last moved: it stays the oldest...
  table.Touch(a, t0 + std::chrono::microseconds(500));
  EXPECT_EQ(a->last_seen, t0 + std::chrono::microseconds(500));
  table.Insert(KeyNumber(5), t0 + std::chrono::milliseconds(7), &evicted);
  EXPECT_TRUE(evicted);
  EXPECT_EQ(table.Find(KeyNumber(1)), nullptr);
  // ...while a flow touched a millisecond or more after its last move goes to the head.
  Flow* b = table.Find(KeyNumber(2));
  table.Touch(b, t0 + std::chrono::milliseconds(8));
  table.Insert(KeyNumber(6), t0 + std::chrono::milliseconds(9), &evicted);
  EXPECT_NE(table.Find(KeyNumber(2)), nullptr);
  EXPECT_EQ(table.Find(KeyNumber(3)), nullptr);
}

TEST_F(FlowTableTest, EraseUnderHeavyCollisionsKeepsEveryOtherKeyFindable) {
  RunAgainstModel(/*capacity=*/16, /*index_size=*/32, /*colliding=*/true, /*seed=*/20240607,
                  /*operations=*/100000);
}

TEST_F(FlowTableTest, EraseAtSmallestIndexKeepsEveryOtherKeyFindable) {
  // Capacity 5 still gets a 16-entry index: runs wrap around it quickly.
  RunAgainstModel(5, 16, /*colliding=*/true, 99, 100000);
}

TEST_F(FlowTableTest, RandomKeysAgainstModel) {
  RunAgainstModel(64, 128, /*colliding=*/false, 7, 20000);
}

}  // namespace
}  // namespace vsnoop
