// The learning bridge's table: which port a (MAC, VLAN) was last seen on. Bounded: when
// full, new addresses are not learnt and their frames are flooded, so a flood of random
// source MACs costs memory up to the bound and no more.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>

#include "vsnoop/clock.h"
#include "vsnoop/wire/bytes.h"

namespace vsnoop::datapath {

class MacTable {
 public:
  MacTable(std::size_t capacity, Duration aging) : capacity_(capacity), aging_(aging) {}

  void Learn(const wire::MacAddress& mac, std::uint16_t vlan, std::uint32_t port, Timestamp now);
  std::optional<std::uint32_t> Lookup(const wire::MacAddress& mac, std::uint16_t vlan,
                                      Timestamp now) const;
  // Forgets every address learnt on a port (its guest went away).
  void ForgetPort(std::uint32_t port);
  std::size_t Expire(Timestamp now);
  std::size_t size() const { return entries_.size(); }
  std::uint64_t not_learnt() const { return not_learnt_; }

 private:
  static std::uint64_t KeyOf(const wire::MacAddress& mac, std::uint16_t vlan);
  struct Entry {
    std::uint32_t port;
    Timestamp seen;
  };
  std::size_t capacity_;
  Duration aging_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::uint64_t not_learnt_ = 0;
  // The address learnt last: a stream of frames from one source skips the map.
  std::uint64_t last_key_ = ~std::uint64_t{0};
  std::uint32_t last_port_ = 0;
  Timestamp last_refresh_{0};
};

}  // namespace vsnoop::datapath
