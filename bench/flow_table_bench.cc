// vsnoop_bench, flow lookups: FlowTable::Find at 1k, 100k and 1M flows, for keys in the
// table (drawn at random) and keys that are not. The table is sized to its flows (index half
// full, as FlowTable makes it). Queries come from a 1 Mi-key array read in order (40 MiB, so
// at 1M flows the table's slots are not all in cache); each Time is per lookup.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "vsnoop/flow_table.h"

namespace vsnoop::bench {
namespace {

constexpr std::size_t kQueries = 1 << 20;
constexpr std::size_t kBatch = 1024;

// Flow k: sender 10.64.0.0 + k port 40000, guest 10.0.0.2 port `guest_port` (IPv4-mapped,
// as the engine keys IPv4 flows).
FlowKey KeyOf(std::uint32_t flow, std::uint16_t guest_port) {
  FlowKey key;
  key.family = 4;
  const std::uint32_t sender = (10u << 24) + (64u << 16) + flow;
  key.remote_ip[10] = key.guest_ip[10] = 0xFF;
  key.remote_ip[11] = key.guest_ip[11] = 0xFF;
  for (int b = 0; b < 4; ++b)
    key.remote_ip[12 + b] = static_cast<std::uint8_t>(sender >> (24 - 8 * b));
  key.guest_ip[12] = 10;
  key.guest_ip[15] = 2;
  key.remote_port = 40000;
  key.guest_port = guest_port;
  return key;
}

struct Lookups {
  explicit Lookups(std::size_t flows) : table(flows, 0x5EED5EED5EED5EEDULL) {
    for (std::uint32_t k = 0; k < flows; ++k) {
      bool evicted = false;
      table.Insert(KeyOf(k, 5201), Timestamp{0}, &evicted);
    }
    std::mt19937_64 rng(flows);
    std::uniform_int_distribution<std::uint32_t> pick(0, static_cast<std::uint32_t>(flows - 1));
    present.reserve(kQueries);
    absent.reserve(kQueries);
    for (std::size_t i = 0; i < kQueries; ++i) {
      present.push_back(KeyOf(pick(rng), 5201));
      // Same senders, another guest port: in no table.
      absent.push_back(KeyOf(pick(rng), 5202));
    }
  }
  FlowTable table;
  std::vector<FlowKey> present;
  std::vector<FlowKey> absent;
};

Lookups& LookupsFor(std::size_t flows) {
  static std::map<std::size_t, std::unique_ptr<Lookups>> cache;
  auto& entry = cache[flows];
  if (!entry) entry = std::make_unique<Lookups>(flows);
  return *entry;
}

enum class Expect : std::uint8_t { kPresent, kAbsent };

void BM_FlowTableFind(benchmark::State& state, Expect expect) {
  Lookups& lookups = LookupsFor(static_cast<std::size_t>(state.range(0)));
  const FlowTable& table = lookups.table;
  const std::vector<FlowKey>& queries =
      expect == Expect::kPresent ? lookups.present : lookups.absent;
  std::size_t next = 0;
  bool failed = false;
  while (!failed && state.KeepRunningBatch(kBatch)) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      const Flow* flow = table.Find(queries[next + i]);
      if ((flow != nullptr) != (expect == Expect::kPresent)) {
        state.SkipWithError("a lookup found what it should not, or missed");
        failed = true;
        break;
      }
      benchmark::DoNotOptimize(flow);
    }
    next = (next + kBatch) % kQueries;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_FlowTableFind, Present, Expect::kPresent)
    ->ArgName("flows")
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000);
BENCHMARK_CAPTURE(BM_FlowTableFind, Absent, Expect::kAbsent)
    ->ArgName("flows")
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000);

}  // namespace
}  // namespace vsnoop::bench
