#include "vsnoop/datapath/mac_table.h"

namespace vsnoop::datapath {

std::uint64_t MacTable::KeyOf(const wire::MacAddress& mac, std::uint16_t vlan) {
  std::uint64_t k = vlan & 0x0FFF;
  for (std::uint8_t o : mac.octets) k = (k << 8) | o;
  return k;
}

void MacTable::Learn(const wire::MacAddress& mac, std::uint16_t vlan, std::uint32_t port,
                     Timestamp now) {
  if (mac.IsMulticast()) return;  // a source address is never a group address (IEEE 802.1D)
  const std::uint64_t key = KeyOf(mac, vlan);
  // Refreshing the entry's age once every 100 ms is plenty against a 300 s aging time.
  if (key == last_key_ && port == last_port_ && now - last_refresh_ < std::chrono::milliseconds(100)) {
    return;
  }
  last_key_ = key;
  last_port_ = port;
  last_refresh_ = now;
  const auto it = entries_.find(key);
  if (it != entries_.end()) {
    it->second = {port, now};
    return;
  }
  if (entries_.size() >= capacity_) {
    ++not_learnt_;
    return;
  }
  entries_.emplace(key, Entry{port, now});
}

std::optional<std::uint32_t> MacTable::Lookup(const wire::MacAddress& mac, std::uint16_t vlan,
                                              Timestamp now) const {
  if (mac.IsMulticast()) return std::nullopt;
  const auto it = entries_.find(KeyOf(mac, vlan));
  if (it == entries_.end() || now - it->second.seen > aging_) return std::nullopt;
  return it->second.port;
}

void MacTable::ForgetPort(std::uint32_t port) {
  last_key_ = ~std::uint64_t{0};
  std::erase_if(entries_, [port](const auto& kv) { return kv.second.port == port; });
}

std::size_t MacTable::Expire(Timestamp now) {
  last_key_ = ~std::uint64_t{0};
  return std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.seen > aging_; });
}

}  // namespace vsnoop::datapath
