// Byte spans and big-endian loads and stores. Every access to packet bytes in vSnoop goes
// through these helpers: memcpy-based, so unaligned fields never trap and byte order never
// leaks to callers.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace vsnoop::wire {

using Bytes = std::span<const std::uint8_t>;
using MutableBytes = std::span<std::uint8_t>;

namespace detail {
template <typename T>
constexpr T FromBigEndian(T v) {
  if constexpr (std::endian::native == std::endian::big) {
    return v;
  } else if constexpr (sizeof(T) == 2) {
    return static_cast<T>(__builtin_bswap16(v));
  } else if constexpr (sizeof(T) == 4) {
    return static_cast<T>(__builtin_bswap32(v));
  } else {
    return static_cast<T>(__builtin_bswap64(v));
  }
}
}  // namespace detail

// REQUIRES: p points at sizeof(T) readable bytes (views check bounds once, at Parse).
inline std::uint16_t LoadBe16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return detail::FromBigEndian(v);
}
inline std::uint32_t LoadBe32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return detail::FromBigEndian(v);
}
inline void StoreBe16(std::uint8_t* p, std::uint16_t v) {
  v = detail::FromBigEndian(v);
  std::memcpy(p, &v, sizeof v);
}
inline void StoreBe32(std::uint8_t* p, std::uint32_t v) {
  v = detail::FromBigEndian(v);
  std::memcpy(p, &v, sizeof v);
}

struct MacAddress {
  std::array<std::uint8_t, 6> octets{};
  friend bool operator==(const MacAddress&, const MacAddress&) = default;
  bool IsMulticast() const { return (octets[0] & 0x01) != 0; }  // broadcast included
};

}  // namespace vsnoop::wire
