#include "vsnoop/sim/frame_builder.h"

#include <arpa/inet.h>

#include <sstream>
#include <stdexcept>

#include "vsnoop/segment.h"
#include "vsnoop/wire/checksum.h"
#include "vsnoop/wire/ethernet.h"

namespace vsnoop::sim {

Endpoint Endpoint::Parse(const std::string& text) {
  Endpoint e;
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("bad endpoint: " + text);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("bad endpoint: " + text);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  const auto ip = IpAddress::FromString(host.c_str());
  if (!ip) throw std::invalid_argument("bad address: " + host);
  e.ip = *ip;
  e.port = static_cast<std::uint16_t>(std::stoul(port));
  // A locally administered unicast MAC derived from the address's last four bytes.
  const std::size_t n = ip->family == 4 ? 4 : 16;
  e.mac.octets = {0x02, 0x00, ip->bytes[n - 4], ip->bytes[n - 3], ip->bytes[n - 2],
                  ip->bytes[n - 1]};
  return e;
}

FrameBuilder& FrameBuilder::Payload(std::size_t n, std::uint8_t fill) {
  payload_.assign(n, fill);
  // Vary the bytes so a corrupted or misplaced payload changes the checksum.
  for (std::size_t i = 0; i < n; ++i) payload_[i] = static_cast<std::uint8_t>(fill + i * 7);
  return *this;
}

FrameBuilder& FrameBuilder::Mss(std::uint16_t mss) {
  return RawOption({wire::tcp_option::kMss, 4, static_cast<std::uint8_t>(mss >> 8),
                    static_cast<std::uint8_t>(mss & 0xFF)});
}

FrameBuilder& FrameBuilder::WindowScale(std::uint8_t shift) {
  return RawOption({wire::tcp_option::kNop, wire::tcp_option::kWindowScale, 3, shift});
}

FrameBuilder& FrameBuilder::SackPermitted() {
  return RawOption({wire::tcp_option::kNop, wire::tcp_option::kNop,
                    wire::tcp_option::kSackPermitted, 2});
}

FrameBuilder& FrameBuilder::Timestamps(std::uint32_t value, std::uint32_t echo) {
  std::vector<std::uint8_t> o = {wire::tcp_option::kNop, wire::tcp_option::kNop,
                                 wire::tcp_option::kTimestamps, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  wire::StoreBe32(o.data() + 4, value);
  wire::StoreBe32(o.data() + 8, echo);
  return RawOption(o);
}

FrameBuilder& FrameBuilder::Sack(std::uint32_t left, std::uint32_t right) {
  std::vector<std::uint8_t> o = {wire::tcp_option::kNop, wire::tcp_option::kNop,
                                 wire::tcp_option::kSack, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  wire::StoreBe32(o.data() + 4, left);
  wire::StoreBe32(o.data() + 8, right);
  return RawOption(o);
}

FrameBuilder& FrameBuilder::RawOption(const std::vector<std::uint8_t>& bytes) {
  options_.insert(options_.end(), bytes.begin(), bytes.end());
  return *this;
}

std::vector<std::uint8_t> FrameBuilder::Build() const {
  std::vector<std::uint8_t> options = options_;
  while (options.size() % 4 != 0) options.push_back(wire::tcp_option::kEnd);
  if (options.size() > 40) throw std::invalid_argument("TCP options longer than 40 bytes");
  const std::size_t tcp_size = 20 + options.size() + payload_.size();
  const bool v4 = from_.ip.family == 4;
  const std::size_t ip_size = v4 ? 20 : 40;

  std::vector<std::uint8_t> f;
  f.reserve(14 + 4 * vlans_.size() + ip_size + tcp_size);
  f.insert(f.end(), to_.mac.octets.begin(), to_.mac.octets.end());
  f.insert(f.end(), from_.mac.octets.begin(), from_.mac.octets.end());
  for (std::uint16_t tci : vlans_) {
    f.push_back(0x81);
    f.push_back(0x00);
    f.push_back(static_cast<std::uint8_t>(tci >> 8));
    f.push_back(static_cast<std::uint8_t>(tci & 0xFF));
  }
  const std::uint16_t type = v4 ? wire::kEtherTypeIpv4 : wire::kEtherTypeIpv6;
  f.push_back(static_cast<std::uint8_t>(type >> 8));
  f.push_back(static_cast<std::uint8_t>(type & 0xFF));
  const std::size_t ip_at = f.size();
  f.resize(ip_at + ip_size + tcp_size);
  std::uint8_t* ip = f.data() + ip_at;
  if (v4) {
    ip[0] = 0x45;
    ip[1] = static_cast<std::uint8_t>(ecn_);
    wire::StoreBe16(ip + 2, static_cast<std::uint16_t>(ip_size + tcp_size));
    wire::StoreBe16(ip + 6, 0x4000);
    ip[8] = ttl_;
    ip[9] = wire::kIpProtoTcp;
    std::memcpy(ip + 12, from_.ip.bytes.data(), 4);
    std::memcpy(ip + 16, to_.ip.bytes.data(), 4);
    std::uint16_t c = wire::InternetChecksum::Of({ip, 20});
    if (bad_ip_checksum_) c = static_cast<std::uint16_t>(c ^ 0x0101);
    wire::StoreBe16(ip + 10, c);
  } else {
    wire::StoreBe32(ip, (6u << 28) | (static_cast<std::uint32_t>(ecn_) << 20));
    wire::StoreBe16(ip + 4, static_cast<std::uint16_t>(tcp_size));
    ip[6] = wire::kIpProtoTcp;
    ip[7] = ttl_;
    std::memcpy(ip + 8, from_.ip.bytes.data(), 16);
    std::memcpy(ip + 24, to_.ip.bytes.data(), 16);
  }
  std::uint8_t* t = ip + ip_size;
  wire::StoreBe16(t, from_.port);
  wire::StoreBe16(t + 2, to_.port);
  wire::StoreBe32(t + 4, seq_);
  wire::StoreBe32(t + 8, ack_);
  t[12] = static_cast<std::uint8_t>(((20 + options.size()) / 4) << 4);
  t[13] = flags_;
  wire::StoreBe16(t + 14, window_);
  wire::StoreBe16(t + 18, urgent_);
  if (!options.empty()) std::memcpy(t + 20, options.data(), options.size());
  if (!payload_.empty()) std::memcpy(t + 20 + options.size(), payload_.data(), payload_.size());
  auto sum = v4 ? wire::TcpPseudoHeaderV4(ip + 12, ip + 16, static_cast<std::uint32_t>(tcp_size))
                : wire::TcpPseudoHeaderV6(ip + 8, ip + 24, static_cast<std::uint32_t>(tcp_size));
  sum.Add({t, tcp_size});
  std::uint16_t c = sum.Finish();
  if (bad_tcp_checksum_) c = static_cast<std::uint16_t>(c ^ 0x0101);
  wire::StoreBe16(t + 16, c);
  return f;
}

namespace {

std::string AddressText(std::uint8_t family, const std::uint8_t* ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == 4 ? AF_INET : AF_INET6, ip, buf, sizeof buf);
  if (family == 4) return buf;
  std::string bracketed = "[";  // (not "[" + std::string(buf): GCC 12 -O3 warns -Wrestrict)
  bracketed += buf;
  bracketed += "]";
  return bracketed;
}

std::string OptionsText(wire::Bytes bytes) {
  std::ostringstream os;
  wire::TcpOptionReader reader(bytes);
  wire::TcpOption o;
  bool first = true;
  auto sep = [&] {
    if (!first) os << ",";
    first = false;
  };
  while (reader.Next(&o)) {
    sep();
    switch (o.kind) {
      case wire::tcp_option::kMss:
        if (o.data.size() == 2) {
          os << "mss " << wire::LoadBe16(o.data.data());
          continue;
        }
        break;
      case wire::tcp_option::kWindowScale:
        if (o.data.size() == 1) {
          os << "wscale " << static_cast<int>(o.data[0]);
          continue;
        }
        break;
      case wire::tcp_option::kSackPermitted:
        os << "sackOK";
        continue;
      case wire::tcp_option::kTimestamps:
        if (o.data.size() == 8) {
          os << "ts " << wire::LoadBe32(o.data.data()) << " " << wire::LoadBe32(o.data.data() + 4);
          continue;
        }
        break;
      case wire::tcp_option::kSack:
        os << "sack";
        for (std::size_t i = 0; i + 8 <= o.data.size(); i += 8) {
          os << " " << wire::LoadBe32(o.data.data() + i) << ":"
             << wire::LoadBe32(o.data.data() + i + 4);
        }
        continue;
      default:
        break;
    }
    os << "opt" << static_cast<int>(o.kind) << "/" << o.data.size();
  }
  if (reader.malformed()) {
    sep();
    os << "malformed";
  }
  return os.str();
}

}  // namespace

std::string DescribeFrame(wire::Bytes frame) {
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  if (!seg) return "non-TCP frame (" + std::string(ReasonLabel(why)) + "), " +
                   std::to_string(frame.size()) + " bytes";
  const auto& t = seg->tcp;
  std::ostringstream os;
  const auto eth = wire::EthernetView::Parse(frame);
  for (std::size_t i = 0; i < eth->vlan_tag_count(); ++i) {
    os << "vlan " << (eth->vlan_tci(i) & 0x0FFF) << " ";
  }
  os << AddressText(seg->family, seg->source_ip) << ":" << t.source_port() << " > "
     << AddressText(seg->family, seg->destination_ip) << ":" << t.destination_port() << " ";
  std::string flags;
  if (t.Has(wire::tcp_flag::kSyn)) flags += 'S';
  if (t.Has(wire::tcp_flag::kFin)) flags += 'F';
  if (t.Has(wire::tcp_flag::kRst)) flags += 'R';
  if (t.Has(wire::tcp_flag::kPsh)) flags += 'P';
  if (t.Has(wire::tcp_flag::kUrg)) flags += 'U';
  if (t.Has(wire::tcp_flag::kEce)) flags += 'E';
  if (t.Has(wire::tcp_flag::kCwr)) flags += 'W';
  if (t.Has(wire::tcp_flag::kAck)) flags += '.';
  if (flags.empty()) flags = "none";
  os << flags << " seq " << t.seq();
  if (t.Has(wire::tcp_flag::kAck)) os << " ack " << t.ack();
  os << " win " << t.window() << " len " << seg->payload_size;
  if (seg->ecn == wire::Ecn::kCe) os << " ce";
  if (!t.options().empty()) os << " <" << OptionsText(t.options()) << ">";
  if (!seg->IpChecksumValid()) os << " bad-ip-csum";
  if (!seg->TcpChecksumValid()) os << " bad-tcp-csum";
  return os.str();
}

}  // namespace vsnoop::sim
