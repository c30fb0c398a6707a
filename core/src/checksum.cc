#include "vsnoop/wire/checksum.h"

namespace vsnoop::wire {
namespace {

constexpr bool kLittleEndian = std::endian::native == std::endian::little;

std::uint16_t Fold(std::uint64_t sum) {
  sum = (sum & 0xFFFFFFFF) + (sum >> 32);
  sum = (sum & 0xFFFFFFFF) + (sum >> 32);
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

std::uint16_t NativeToBe16(std::uint16_t v) {
  return kLittleEndian ? static_cast<std::uint16_t>(__builtin_bswap16(v)) : v;
}

// Sum of 32-bit native words, in two accumulators so the additions pipeline. Each 64-bit
// accumulator takes 2^32 additions before it can overflow: far beyond any frame.
std::uint64_t SumWords(const std::uint8_t* p, std::size_t n) {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  while (n >= 16) {
    std::uint64_t x;
    std::uint64_t y;
    std::memcpy(&x, p, 8);
    std::memcpy(&y, p + 8, 8);
    a += (x & 0xFFFFFFFF) + (x >> 32);
    b += (y & 0xFFFFFFFF) + (y >> 32);
    p += 16;
    n -= 16;
  }
  while (n >= 4) {
    std::uint32_t x;
    std::memcpy(&x, p, 4);
    a += x;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    std::uint16_t x;
    std::memcpy(&x, p, 2);
    b += x;
  }
  return a + b;
}

}  // namespace

void InternetChecksum::Add(Bytes bytes) {
  const std::uint8_t* p = bytes.data();
  std::size_t n = bytes.size();
  if (n == 0) return;
  if (odd_) {
    // This byte is the second (low-order, on the wire) byte of a 16-bit word.
    sum_ += kLittleEndian ? static_cast<std::uint64_t>(p[0]) << 8 : p[0];
    ++p;
    --n;
    odd_ = false;
  }
  sum_ += SumWords(p, n & ~std::size_t{1});
  if ((n & 1) != 0) {
    const std::uint8_t last = p[n - 1];
    sum_ += kLittleEndian ? last : static_cast<std::uint64_t>(last) << 8;
    odd_ = true;
  }
}

void InternetChecksum::AddBe16(std::uint16_t value) { sum_ += NativeToBe16(value); }

void InternetChecksum::AddBe32(std::uint32_t value) {
  AddBe16(static_cast<std::uint16_t>(value >> 16));
  AddBe16(static_cast<std::uint16_t>(value & 0xFFFF));
}

std::uint16_t InternetChecksum::Finish() const {
  return static_cast<std::uint16_t>(~NativeToBe16(Fold(sum_)));
}

std::uint16_t ChecksumUpdate16(std::uint16_t checksum, std::uint16_t old_value,
                               std::uint16_t new_value) {
  std::uint32_t sum = static_cast<std::uint16_t>(~checksum);
  sum += static_cast<std::uint16_t>(~old_value);
  sum += new_value;
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

std::uint16_t ChecksumUpdate32(std::uint16_t checksum, std::uint32_t old_value,
                               std::uint32_t new_value) {
  checksum = ChecksumUpdate16(checksum, static_cast<std::uint16_t>(old_value >> 16),
                              static_cast<std::uint16_t>(new_value >> 16));
  return ChecksumUpdate16(checksum, static_cast<std::uint16_t>(old_value & 0xFFFF),
                          static_cast<std::uint16_t>(new_value & 0xFFFF));
}

InternetChecksum TcpPseudoHeaderV4(const std::uint8_t* source, const std::uint8_t* destination,
                                   std::uint32_t length) {
  InternetChecksum c;
  c.Add(Bytes(source, 4));
  c.Add(Bytes(destination, 4));
  c.AddBe16(6);  // zero octet, protocol TCP
  c.AddBe16(static_cast<std::uint16_t>(length));
  return c;
}

InternetChecksum TcpPseudoHeaderV6(const std::uint8_t* source, const std::uint8_t* destination,
                                   std::uint32_t length) {
  InternetChecksum c;
  c.Add(Bytes(source, 16));
  c.Add(Bytes(destination, 16));
  c.AddBe32(length);
  c.AddBe32(6);  // three zero octets, next header TCP
  return c;
}

}  // namespace vsnoop::wire
