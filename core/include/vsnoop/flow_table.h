// A fixed-capacity flow table: open addressing with linear probing over a preallocated slot
// array, so lookups take constant time and memory is set by the capacity alone, whatever
// arrives. Each flow sits on one of two least-recently-used lists:
//   - accelerated flows (ACTIVE, NO_BUFFER, UNEXPECTED_SEQ): vSnoop is acknowledging for
//     them; a flood of new tuples never evicts one, only idle expiry does;
//   - transient flows (handshakes, mid-stream pick-ups, closing, passive): the oldest is
//     evicted when a new flow needs a slot.
// Forgetting a flow is always safe: vSnoop then merely stops helping it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vsnoop/flow.h"

namespace vsnoop {

class FlowTable {
 public:
  // REQUIRES: capacity >= 1 and < 2^31.
  FlowTable(std::size_t capacity, std::uint64_t hash_seed);

  Flow* Find(const FlowKey& key);
  const Flow* Find(const FlowKey& key) const;
  // Adds a flow in state HANDSHAKE (a transient flow). When the table is full, the least
  // recently used transient flow is evicted first (*evicted is set); when every flow is
  // accelerated, returns nullptr. REQUIRES: no flow with this key exists.
  Flow* Insert(const FlowKey& key, Timestamp now, bool* evicted);
  // Marks the flow as just used.
  void Touch(Flow* flow, Timestamp now);
  // Moves the flow to the accelerated or the transient list, after a state change.
  void SetAccelerated(Flow* flow, bool accelerated);
  void Erase(Flow* flow);
  // Clears a flow's protocol state and counters for a new connection on the same tuple,
  // keeping its key, guest, state and place in the table.
  void Reinitialize(Flow* flow);
  // Erases flows idle for longer than their list's timeout; returns how many.
  std::size_t ExpireIdle(Timestamp now, Duration accelerated_timeout, Duration transient_timeout);

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return slots_.size(); }
  std::size_t accelerated_count() const { return lists_[kAccelerated].count; }

  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const List& list : lists_) {
      for (std::uint32_t i = list.head; i != Flow::kNone; i = slots_[i].lru_next_) fn(slots_[i]);
    }
  }
  // Erases every flow for which pred returns true; returns how many.
  template <typename Pred>
  std::size_t EraseIf(Pred&& pred) {
    std::size_t n = 0;
    for (List& list : lists_) {
      for (std::uint32_t i = list.head; i != Flow::kNone;) {
        const std::uint32_t next = slots_[i].lru_next_;
        if (pred(slots_[i])) {
          Erase(&slots_[i]);
          ++n;
        }
        i = next;
      }
    }
    return n;
  }

  std::uint64_t Hash(const FlowKey& key) const;

 private:
  static constexpr Duration kRelinkInterval = std::chrono::milliseconds(1);
  static constexpr std::uint8_t kTransient = 0;
  static constexpr std::uint8_t kAccelerated = 1;
  struct List {
    std::uint32_t head = Flow::kNone;  // most recently used
    std::uint32_t tail = Flow::kNone;  // least recently used
    std::size_t count = 0;
  };
  // Index entries: 0 is empty; otherwise (low 32 bits of the hash) << 32 | (slot + 1).
  static std::uint32_t SlotOf(std::uint64_t entry) {
    return static_cast<std::uint32_t>(entry & 0xFFFFFFFF) - 1;
  }
  std::size_t HomeOf(std::uint64_t entry) const { return (entry >> 32) & mask_; }
  std::size_t IndexPositionOf(const Flow& flow) const;
  std::uint32_t SlotIndex(const Flow* flow) const {
    return static_cast<std::uint32_t>(flow - slots_.data());
  }
  void Link(std::uint32_t slot, std::uint8_t list);
  void Unlink(std::uint32_t slot);

  std::vector<Flow> slots_;
  std::vector<std::uint64_t> index_;
  std::size_t mask_;
  std::uint64_t seed_;
  std::uint32_t free_head_ = Flow::kNone;  // free slots, chained through lru_next_
  std::size_t size_ = 0;
  List lists_[2];
};

}  // namespace vsnoop
