// Builds Ethernet/IP/TCP frames for tests, traces and benchmarks:
//   FrameBuilder().From(sender).To(guest).Seq(1000).Ack(5001).Window(502).Payload(1448).Build()
// Checksums are correct unless a test asks for them to be wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vsnoop/sim/host_model.h"
#include "vsnoop/wire/bytes.h"
#include "vsnoop/wire/ipv4.h"
#include "vsnoop/wire/tcp.h"

namespace vsnoop::sim {

struct Endpoint {
  wire::MacAddress mac;
  IpAddress ip;
  std::uint16_t port = 0;

  // "10.0.0.2:5201" or "[fd00::2]:5201"; the MAC is derived from the address.
  static Endpoint Parse(const std::string& text);
};

class FrameBuilder {
 public:
  FrameBuilder& From(const Endpoint& e) { from_ = e; return *this; }
  FrameBuilder& To(const Endpoint& e) { to_ = e; return *this; }
  FrameBuilder& Seq(std::uint32_t s) { seq_ = s; return *this; }
  // Sets the ACK flag and number.
  FrameBuilder& Ack(std::uint32_t a) { ack_ = a; flags_ |= wire::tcp_flag::kAck; return *this; }
  FrameBuilder& Flags(std::uint8_t f) { flags_ |= f; return *this; }
  FrameBuilder& Window(std::uint16_t w) { window_ = w; return *this; }
  FrameBuilder& Payload(std::size_t n, std::uint8_t fill = 0x61);
  FrameBuilder& Payload(const std::vector<std::uint8_t>& bytes) { payload_ = bytes; return *this; }
  FrameBuilder& Mss(std::uint16_t mss);
  FrameBuilder& WindowScale(std::uint8_t shift);
  FrameBuilder& SackPermitted();
  FrameBuilder& Timestamps(std::uint32_t value, std::uint32_t echo);
  FrameBuilder& Sack(std::uint32_t left, std::uint32_t right);
  // Any option bytes, appended as given (kind, length, data...).
  FrameBuilder& RawOption(const std::vector<std::uint8_t>& bytes);
  FrameBuilder& Ecn(wire::Ecn ecn) { ecn_ = ecn; return *this; }
  FrameBuilder& Vlan(std::uint16_t tci) { vlans_.push_back(tci); return *this; }
  FrameBuilder& Ttl(std::uint8_t ttl) { ttl_ = ttl; return *this; }
  FrameBuilder& Urgent(std::uint16_t pointer) { urgent_ = pointer; flags_ |= wire::tcp_flag::kUrg; return *this; }
  FrameBuilder& BadTcpChecksum() { bad_tcp_checksum_ = true; return *this; }
  FrameBuilder& BadIpChecksum() { bad_ip_checksum_ = true; return *this; }

  std::vector<std::uint8_t> Build() const;

 private:
  Endpoint from_;
  Endpoint to_;
  std::uint32_t seq_ = 0;
  std::uint32_t ack_ = 0;
  std::uint8_t flags_ = 0;
  std::uint16_t window_ = 65535;
  std::uint16_t urgent_ = 0;
  std::vector<std::uint8_t> payload_;
  std::vector<std::uint8_t> options_;
  wire::Ecn ecn_ = wire::Ecn::kNotEct;
  std::vector<std::uint16_t> vlans_;
  std::uint8_t ttl_ = 64;
  bool bad_tcp_checksum_ = false;
  bool bad_ip_checksum_ = false;
};

// One line describing a frame, tcpdump-like, used by the golden traces and by logs:
//   "10.0.0.1:40000 > 10.0.0.2:5201 . seq 1001 ack 5001 win 502 len 1448 <nop,nop,ts 101 200>"
// Flags: S F R P U E(CE) W(CWR) and '.' for ACK, as tcpdump prints them.
std::string DescribeFrame(wire::Bytes frame);

}  // namespace vsnoop::sim
