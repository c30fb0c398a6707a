// TCP sequence numbers as a strong type with wrap-safe comparisons (RFC 9293 §3.4): a is
// before b when the signed 32-bit difference b - a is positive, like the kernel's before()
// and after(). Comparisons are meaningful only within 2^31 of each other, which TCP's
// window limit (RFC 7323 §2.3: at most 2^30 bytes) guarantees for one connection.
#pragma once

#include <cstdint>

namespace vsnoop {

class SeqNum {
 public:
  constexpr SeqNum() = default;
  constexpr explicit SeqNum(std::uint32_t value) : value_(value) {}
  constexpr std::uint32_t value() const { return value_; }

  friend constexpr SeqNum operator+(SeqNum a, std::uint32_t n) { return SeqNum(a.value_ + n); }
  friend constexpr SeqNum operator-(SeqNum a, std::uint32_t n) { return SeqNum(a.value_ - n); }
  // Signed distance from b to a: positive when a is after b.
  friend constexpr std::int32_t operator-(SeqNum a, SeqNum b) {
    return static_cast<std::int32_t>(a.value_ - b.value_);
  }
  friend constexpr bool operator==(SeqNum a, SeqNum b) = default;

 private:
  std::uint32_t value_ = 0;
};

constexpr bool Before(SeqNum a, SeqNum b) { return (a - b) < 0; }
constexpr bool After(SeqNum a, SeqNum b) { return (a - b) > 0; }
constexpr bool BeforeOrAt(SeqNum a, SeqNum b) { return !After(a, b); }
constexpr bool AtOrAfter(SeqNum a, SeqNum b) { return !Before(a, b); }
constexpr SeqNum Latest(SeqNum a, SeqNum b) { return After(a, b) ? a : b; }
constexpr SeqNum Earliest(SeqNum a, SeqNum b) { return Before(a, b) ? a : b; }
// Bytes from a up to b; 0 when b is not after a.
constexpr std::uint32_t BytesBetween(SeqNum a, SeqNum b) {
  return After(b, a) ? static_cast<std::uint32_t>(b - a) : 0;
}

// RFC 7323 §5.2 (PAWS): timestamp values compare with the same wrap-safe rule.
constexpr bool TimestampBefore(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b) < 0;
}

}  // namespace vsnoop
