// A deliberately plain Internet checksum (RFC 1071 §4.1's loop: 16-bit big-endian words,
// a zero pad byte at an odd end, end-around carries folded at the end), written
// independently of vsnoop::wire::InternetChecksum so tests can compare the two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace vsnoop::test_support {

inline std::uint16_t ReferenceChecksum(std::span<const std::uint8_t> bytes) {
  std::uint64_t sum = 0;
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) {
    sum += static_cast<std::uint64_t>(bytes[i]) << 8 | bytes[i + 1];
  }
  if (i < bytes.size()) sum += static_cast<std::uint64_t>(bytes[i]) << 8;
  while ((sum >> 16) != 0)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xFFFF);
}

// Stores a 16-bit value big-endian at bytes[at], at[at + 1].
inline void PutBe16(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint16_t value) {
  bytes[at] = static_cast<std::uint8_t>(value >> 8);
  bytes[at + 1] = static_cast<std::uint8_t>(value & 0xFF);
}

}  // namespace vsnoop::test_support
