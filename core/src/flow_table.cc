#include "vsnoop/flow_table.h"

#include <bit>
#include <cstring>

#include "vsnoop/bug.h"

namespace vsnoop {
namespace {

// The splitmix64 finaliser: a full-avalanche mix of 64 bits.
std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

FlowTable::FlowTable(std::size_t capacity, std::uint64_t hash_seed)
    : slots_(capacity), seed_(hash_seed) {
  // At most half full: linear probes stay short (expected < 2.5 probes per miss).
  const std::size_t index_size = std::bit_ceil(std::max<std::size_t>(16, capacity * 2));
  index_.assign(index_size, 0);
  mask_ = index_size - 1;
  for (std::size_t i = capacity; i-- > 0;) {
    slots_[i].lru_next_ = free_head_;
    free_head_ = static_cast<std::uint32_t>(i);
  }
}

std::uint64_t FlowTable::Hash(const FlowKey& key) const {
  // Seeded, so that a sender who does not know the seed cannot aim tuples at one bucket:
  // each word is folded in with a multiply by an odd constant, then the whole is mixed.
  std::uint64_t words[5];
  std::memcpy(words, &key, sizeof words);
  std::uint64_t h = seed_;
  for (std::uint64_t w : words) h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
  return Mix(h);
}

namespace {

// Keys compare as five 64-bit words (padding is always zero).
bool SameKey(const FlowKey& a, const FlowKey& b) {
  std::uint64_t x[5];
  std::uint64_t y[5];
  std::memcpy(x, &a, sizeof x);
  std::memcpy(y, &b, sizeof y);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

}  // namespace

const Flow* FlowTable::Find(const FlowKey& key) const {
  const std::uint64_t h = Hash(key) & 0xFFFFFFFF;
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    const std::uint64_t entry = index_[i];
    if (entry == 0) return nullptr;
    if ((entry >> 32) == h && SameKey(slots_[SlotOf(entry)].key, key)) {
      return &slots_[SlotOf(entry)];
    }
  }
}

Flow* FlowTable::Find(const FlowKey& key) {
  return const_cast<Flow*>(static_cast<const FlowTable*>(this)->Find(key));
}

Flow* FlowTable::Insert(const FlowKey& key, Timestamp now, bool* evicted) {
  *evicted = false;
  if (free_head_ == Flow::kNone) {
    const std::uint32_t victim = lists_[kTransient].tail;
    if (victim == Flow::kNone) return nullptr;
    Erase(&slots_[victim]);
    *evicted = true;
  }
  const std::uint32_t slot = free_head_;
  free_head_ = slots_[slot].lru_next_;
  Flow& flow = slots_[slot];
  flow = Flow{};
  flow.key = key;
  flow.created = now;
  flow.last_seen = now;
  flow.lru_stamp_ = now;
  Link(slot, kTransient);
  const std::uint64_t h = Hash(key) & 0xFFFFFFFF;
  std::size_t i = h & mask_;
  while (index_[i] != 0) i = (i + 1) & mask_;
  index_[i] = (h << 32) | (static_cast<std::uint64_t>(slot) + 1);
  ++size_;
  return &flow;
}

void FlowTable::Touch(Flow* flow, Timestamp now) {
  flow->last_seen = now;
  // Moving a flow to the head of its list writes to two neighbours in the table, each
  // likely a cache miss at a million flows; a busy flow does it at most once per
  // millisecond. The lists stay ordered by last use to within that.
  if (now - flow->lru_stamp_ < kRelinkInterval) return;
  flow->lru_stamp_ = now;
  const std::uint32_t slot = SlotIndex(flow);
  const std::uint8_t list = flow->lru_list_;
  if (lists_[list].head == slot) return;
  Unlink(slot);
  Link(slot, list);
}

void FlowTable::SetAccelerated(Flow* flow, bool accelerated) {
  const std::uint8_t list = accelerated ? kAccelerated : kTransient;
  if (flow->lru_list_ == list) return;
  const std::uint32_t slot = SlotIndex(flow);
  Unlink(slot);
  Link(slot, list);
}

std::size_t FlowTable::IndexPositionOf(const Flow& flow) const {
  const std::uint64_t h = Hash(flow.key) & 0xFFFFFFFF;
  const std::uint64_t wanted = (h << 32) | (static_cast<std::uint64_t>(SlotIndex(&flow)) + 1);
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    if (index_[i] == wanted) return i;
    if (index_[i] == 0) break;
  }
  VSNOOP_BUG("flow missing from the index");
  return index_.size();
}

void FlowTable::Erase(Flow* flow) {
  std::size_t hole = IndexPositionOf(*flow);
  if (hole == index_.size()) return;
  // Backward-shift deletion (Knuth, TAOCP 6.4, algorithm R): later entries of the probe run
  // move into the hole unless their home lies cyclically after the hole.
  index_[hole] = 0;
  for (std::size_t j = (hole + 1) & mask_; index_[j] != 0; j = (j + 1) & mask_) {
    const std::size_t home = HomeOf(index_[j]);
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    index_[hole] = index_[j];
    index_[j] = 0;
    hole = j;
  }
  const std::uint32_t slot = SlotIndex(flow);
  Unlink(slot);
  flow->lru_next_ = free_head_;
  free_head_ = slot;
  --size_;
}

void FlowTable::Reinitialize(Flow* flow) {
  Flow fresh;
  fresh.key = flow->key;
  fresh.guest = flow->guest;
  fresh.state = flow->state;
  fresh.created = flow->created;
  fresh.last_seen = flow->last_seen;
  fresh.lru_prev_ = flow->lru_prev_;
  fresh.lru_next_ = flow->lru_next_;
  fresh.lru_list_ = flow->lru_list_;
  fresh.lru_stamp_ = flow->lru_stamp_;
  *flow = fresh;
}

std::size_t FlowTable::ExpireIdle(Timestamp now, Duration accelerated_timeout,
                                  Duration transient_timeout) {
  std::size_t n = 0;
  const Duration timeouts[2] = {transient_timeout, accelerated_timeout};
  for (std::uint8_t l = 0; l < 2; ++l) {
    while (lists_[l].tail != Flow::kNone) {
      Flow& oldest = slots_[lists_[l].tail];
      if (now - oldest.last_seen <= timeouts[l]) break;
      Erase(&oldest);
      ++n;
    }
  }
  return n;
}

void FlowTable::Link(std::uint32_t slot, std::uint8_t list) {
  Flow& flow = slots_[slot];
  List& l = lists_[list];
  flow.lru_list_ = list;
  flow.lru_prev_ = Flow::kNone;
  flow.lru_next_ = l.head;
  if (l.head != Flow::kNone) slots_[l.head].lru_prev_ = slot;
  l.head = slot;
  if (l.tail == Flow::kNone) l.tail = slot;
  ++l.count;
}

void FlowTable::Unlink(std::uint32_t slot) {
  Flow& flow = slots_[slot];
  List& l = lists_[flow.lru_list_];
  if (flow.lru_prev_ != Flow::kNone) {
    slots_[flow.lru_prev_].lru_next_ = flow.lru_next_;
  } else {
    l.head = flow.lru_next_;
  }
  if (flow.lru_next_ != Flow::kNone) {
    slots_[flow.lru_next_].lru_prev_ = flow.lru_prev_;
  } else {
    l.tail = flow.lru_prev_;
  }
  flow.lru_prev_ = flow.lru_next_ = Flow::kNone;
  --l.count;
}

}  // namespace vsnoop
