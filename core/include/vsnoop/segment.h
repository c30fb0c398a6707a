// A frame read as TCP over IPv4 or IPv6 over Ethernet: the one parse the engine does per
// frame, kept as offsets and views into the caller's bytes.
#pragma once

#include <optional>
#include <span>

#include "vsnoop/reasons.h"
#include "vsnoop/wire/ethernet.h"
#include "vsnoop/wire/ipv4.h"
#include "vsnoop/wire/ipv6.h"
#include "vsnoop/wire/tcp.h"

namespace vsnoop {

struct Segment {
  wire::Bytes frame;
  wire::Bytes l2_header;      // destination, source, VLAN tags, EtherType
  std::uint8_t family = 4;    // 4 or 6
  wire::Bytes ip_header;      // IPv4 header with options, or IPv6 header with extensions
  const std::uint8_t* source_ip = nullptr;       // 4 or 16 bytes
  const std::uint8_t* destination_ip = nullptr;  // 4 or 16 bytes
  wire::Ecn ecn = wire::Ecn::kNotEct;
  std::uint8_t tos = 0;           // IPv4 TOS or IPv6 traffic class
  std::uint8_t ttl = 0;           // IPv4 TTL or IPv6 hop limit
  std::uint32_t flow_label = 0;   // IPv6 only
  wire::TcpView tcp;  // no default: a Segment exists only once parsed
  std::uint32_t payload_size = 0;

  // RFC 9293 §3.4: SYN and FIN each occupy one sequence number.
  std::uint32_t SequenceSpace() const {
    return payload_size + (tcp.Has(wire::tcp_flag::kSyn) ? 1 : 0) +
           (tcp.Has(wire::tcp_flag::kFin) ? 1 : 0);
  }
  // IPv4 header checksum; always true for IPv6, which has none.
  bool IpChecksumValid() const;
  // Verifies the TCP checksum over pseudo header, header and payload.
  bool TcpChecksumValid() const;
};

// Reads a frame; on failure returns nullopt and says why (a Reason with a counter).
std::optional<Segment> ParseSegment(wire::Bytes frame, Reason* why);

// Writes `window_field` into the TCP header of `frame` (a segment ParseSegment reads) and
// updates its TCP checksum incrementally (RFC 1624), unless the checksum is left to offload
// (`checksum_partial`: the field then holds only the pseudo-header's sum, which the window
// is not part of). False, and no change, if the frame does not parse.
bool RewriteWindow(std::span<std::uint8_t> frame, std::uint16_t window_field,
                   bool checksum_partial);

}  // namespace vsnoop
