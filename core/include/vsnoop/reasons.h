// Why the engine did what it did with a frame. Every verdict carries exactly one reason, and
// every reason has a counter, so an operator can account for every frame: the reasons a
// segment was passed over are what Click's CheckTCPHeader calls its drop reasons, except that
// vSnoop never drops: it forwards what it does not handle, untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vsnoop {

// X(name, snake_case label, description)
#define VSNOOP_REASONS(X)                                                                   \
  /* what vSnoop did */                                                                     \
  X(EarlyAck, "early_ack", "in-order data placed in the guest buffer: acknowledged early") \
  X(InOrderNotAcked, "in_order_not_acked",                                                 \
    "in-order data the guest will accept, covered by a later early ACK")                    \
  X(WindowUpdate, "window_update",                                                          \
    "stale guest ACK that opens the window, replaced by a window update at vSnoop's ACK")  \
  X(Suppressed, "suppressed", "guest pure ACK that tells the sender nothing new")          \
  /* frames vSnoop does not parse as TCP over IP over Ethernet */                           \
  X(BadEthernet, "bad_ethernet", "Ethernet header cut short or more than two VLAN tags")   \
  X(NotIp, "not_ip", "not IPv4 or IPv6")                                                    \
  X(Ipv4Truncated, "ipv4_truncated", "IPv4 header cut short")                               \
  X(Ipv4BadVersion, "ipv4_bad_version", "IPv4 EtherType with another version")             \
  X(Ipv4BadHeaderLength, "ipv4_bad_header_length", "IPv4 IHL below 5 or past the frame")   \
  X(Ipv4BadTotalLength, "ipv4_bad_total_length", "IPv4 total length inconsistent")         \
  X(Ipv4Fragment, "ipv4_fragment", "IPv4 fragment: transport header not interpreted")     \
  X(Ipv6Truncated, "ipv6_truncated", "IPv6 header or extension header cut short")          \
  X(Ipv6BadVersion, "ipv6_bad_version", "IPv6 EtherType with another version")             \
  X(Ipv6BadPayloadLength, "ipv6_bad_payload_length", "IPv6 payload length 0 or too long") \
  X(Ipv6ChainTooLong, "ipv6_chain_too_long", "more than 8 IPv6 extension headers")         \
  X(Ipv6Fragment, "ipv6_fragment", "IPv6 fragment header: transport not interpreted")     \
  X(Ipv6Routing, "ipv6_routing", "IPv6 routing header with segments left")                 \
  X(NotTcp, "not_tcp", "IP payload is not TCP")                                             \
  X(TcpTruncated, "tcp_truncated", "TCP header cut short")                                  \
  X(TcpBadDataOffset, "tcp_bad_data_offset", "TCP data offset below 5 or past the segment") \
  /* flow-level reasons */                                                                  \
  X(Handshake, "handshake", "SYN or SYN-ACK: learnt, never acknowledged by vSnoop")         \
  X(HandshakeMismatch, "handshake_mismatch",                                                \
    "SYN-ACK that does not answer the SYN seen: flow left to the endpoints")               \
  X(UnsupportedOptions, "unsupported_options",                                              \
    "MD5/TCP-AO signature or MPTCP negotiated: flow left to the endpoints")                \
  X(MidStream, "mid_stream", "flow picked up without its handshake: passive")              \
  X(FlowTableFull, "flow_table_full", "no room for a new flow: not tracked")                \
  X(GuestMismatch, "guest_mismatch", "flow belongs to another guest port")                  \
  X(Closing, "closing", "FIN seen: the endpoints close the flow")                           \
  X(Reset, "reset", "RST seen")                                                             \
  X(Passive, "passive", "flow left to the endpoints")                                       \
  /* data to a guest that vSnoop does not acknowledge early */                              \
  X(NoPayload, "no_payload", "segment carries no data")                                     \
  X(NoRoom, "no_room", "frame does not fit in the guest's buffer: the datapath drops it")  \
  X(BadIpChecksum, "bad_ip_checksum", "IPv4 header checksum wrong: the guest drops it")    \
  X(BadTcpChecksum, "bad_tcp_checksum", "TCP checksum wrong: the guest drops it")          \
  X(MalformedOptions, "malformed_options", "TCP options cut short or wrong lengths")        \
  X(UnknownOption, "unknown_option", "TCP option vSnoop cannot vouch for")                  \
  X(NoAckFlag, "no_ack_flag", "data without ACK flag: RFC 9293 §3.10.7.4 drops it")         \
  X(AckUnacceptable, "ack_unacceptable",                                                    \
    "segment's ACK field for unsent data or too old: the guest discards it")               \
  X(MissingTimestamp, "missing_timestamp", "timestamps negotiated but absent")              \
  X(PawsReject, "paws_reject", "timestamp older than the last accepted (RFC 7323 §5)")      \
  X(BeyondWindow, "beyond_window", "data past the guest's advertised right edge")          \
  X(ZeroWindow, "zero_window", "guest advertises a zero window: probe left to the guest")  \
  X(CeMarked, "ce_marked", "ECN CE mark: the guest must echo ECE")                          \
  X(Urgent, "urgent", "URG flag set")                                                       \
  X(OutOfOrder, "out_of_order", "data beyond a hole: the guest recovers it")                \
  X(Retransmission, "retransmission", "data already seen: the guest answers it")            \
  X(UnexpectedSeq, "unexpected_seq",                                                        \
    "flow in UNEXPECTED_SEQ: the guest acknowledges until it catches up")                   \
  X(WindowWouldShrink, "window_would_shrink",                                               \
    "guest shrank its window: an early ACK would shrink the advertised right edge")         \
  X(AccelerationOff, "acceleration_off", "vSnoop switched off for this guest: observe only") \
  X(NothingAcked, "nothing_acked", "vSnoop has not acknowledged anything on this flow")     \
  /* guest frames that are forwarded */                                                     \
  X(GuestData, "guest_data", "guest segment carries data or SYN/FIN/RST/URG")               \
  X(GuestAckAdvances, "guest_ack_advances", "guest ACK beyond what the sender has")         \
  X(GuestWindowExtends, "guest_window_extends", "guest ACK moves the right edge further")  \
  X(GuestSack, "guest_sack", "guest ACK carries SACK blocks")                               \
  X(GuestEcn, "guest_ecn", "guest ACK carries ECE or CWR")                                  \
  X(GuestOptions, "guest_options", "guest ACK carries an option other than timestamps")    \
  X(GuestAckBeyondData, "guest_ack_beyond_data",                                            \
    "guest acknowledges data that never reached it: state not updated")

enum class Reason : std::uint8_t {
#define VSNOOP_REASON_ENUM(name, label, doc) k##name,
  VSNOOP_REASONS(VSNOOP_REASON_ENUM)
#undef VSNOOP_REASON_ENUM
};

inline constexpr std::size_t kReasonCount = 0
#define VSNOOP_REASON_COUNT(name, label, doc) +1
    VSNOOP_REASONS(VSNOOP_REASON_COUNT)
#undef VSNOOP_REASON_COUNT
    ;

std::string_view ReasonLabel(Reason reason);
std::string_view ReasonDescription(Reason reason);

}  // namespace vsnoop
