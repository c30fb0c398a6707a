// The Internet checksum (RFC 1071), its incremental update (RFC 1624), and the TCP pseudo
// headers of IPv4 (RFC 9293 §3.1) and IPv6 (RFC 8200 §8.1).
//
// Sums are kept in the machine's byte order and swapped once at the end (RFC 1071 §2(B):
// the one's-complement sum is independent of byte order), so the loop loads whole words.
#pragma once

#include "vsnoop/wire/bytes.h"

namespace vsnoop::wire {

class InternetChecksum {
 public:
  // Adds bytes that follow the previous ones in the checksummed stream; odd lengths are
  // handled, so a stream may be added in pieces of any size.
  void Add(Bytes bytes);
  // Adds a 16- or 32-bit field given in host order, as it would appear on the wire.
  // REQUIRES: the stream so far has an even length.
  void AddBe16(std::uint16_t value);
  void AddBe32(std::uint32_t value);
  // The value to store in a checksum field (host order). Over data that includes a correct
  // checksum field, Finish() returns 0.
  std::uint16_t Finish() const;

  static std::uint16_t Of(Bytes bytes) {
    InternetChecksum c;
    c.Add(bytes);
    return c.Finish();
  }

 private:
  std::uint64_t sum_ = 0;  // native byte order, folded at Finish
  bool odd_ = false;       // the stream so far has an odd number of bytes
};

// Fast paths for short headers whose length is a multiple of 4 (IPv4 headers, the TCP
// headers vSnoop writes): the sum of their 32-bit words in machine order, and its fold.
// Inline so a fixed length unrolls; the result equals InternetChecksum over the same bytes.
inline std::uint64_t SumWords32(const std::uint8_t* p, std::size_t n) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i + 4 <= n; i += 4) {
    std::uint32_t w;
    std::memcpy(&w, p + i, 4);
    sum += w;
  }
  return sum;
}
// The same for a length known at compile time: fully unrolled.
template <std::size_t N>
inline std::uint64_t SumWords32(const std::uint8_t* p) {
  static_assert(N % 4 == 0);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < N; i += 4) {
    std::uint32_t w;
    std::memcpy(&w, p + i, 4);
    sum += w;
  }
  return sum;
}
// The checksum field value (host order) for a machine-order sum: fold, complement, swap.
inline std::uint16_t ChecksumFromSum(std::uint64_t sum) {
  sum = (sum & 0xFFFFFFFF) + (sum >> 32);
  sum = (sum & 0xFFFFFFFF) + (sum >> 32);
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  const auto folded = static_cast<std::uint16_t>(~sum);
  return std::endian::native == std::endian::little
             ? static_cast<std::uint16_t>(__builtin_bswap16(folded))
             : folded;
}

// RFC 1624 eqn. 3: the checksum after one 16-bit field changes from old_value to new_value,
// without touching the rest of the data: HC' = ~(~HC + ~m + m').
std::uint16_t ChecksumUpdate16(std::uint16_t checksum, std::uint16_t old_value,
                               std::uint16_t new_value);
std::uint16_t ChecksumUpdate32(std::uint16_t checksum, std::uint32_t old_value,
                               std::uint32_t new_value);

// Starts a TCP checksum with the pseudo header. `length` is the TCP header plus payload.
InternetChecksum TcpPseudoHeaderV4(const std::uint8_t* source, const std::uint8_t* destination,
                                   std::uint32_t length);
InternetChecksum TcpPseudoHeaderV6(const std::uint8_t* source, const std::uint8_t* destination,
                                   std::uint32_t length);

}  // namespace vsnoop::wire
