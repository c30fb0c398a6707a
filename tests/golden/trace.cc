// Reading golden-trace files and printing frames in their notation (docs/golden-traces.md).
#include "trace.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

#include "vsnoop/segment.h"
#include "vsnoop/wire/ethernet.h"
#include "vsnoop/wire/tcp.h"

namespace vsnoop::golden {
namespace {

namespace flag = wire::tcp_flag;
namespace option = wire::tcp_option;

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

std::vector<std::string_view> SplitWhitespace(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t')
      ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

template <typename T>
T ParseNumber(std::string_view text, int line, std::string_view what) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() ||
      value > std::numeric_limits<T>::max()) {
    throw TraceError(line, "bad " + std::string(what) + " '" + std::string(text) + "'");
  }
  return static_cast<T>(value);
}

// "300s", "250ms", "10us".
Duration ParseDuration(std::string_view text, int line) {
  const auto digits = text.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string_view::npos) {
    throw TraceError(line, "bad duration '" + std::string(text) + "' (use 5s, 250ms or 10us)");
  }
  const auto n = ParseNumber<std::uint32_t>(text.substr(0, digits), line, "duration");
  const std::string_view unit = text.substr(digits);
  if (unit == "s") return std::chrono::seconds(n);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "us") return std::chrono::microseconds(n);
  throw TraceError(line, "bad duration unit '" + std::string(unit) + "' (use s, ms or us)");
}

sim::Endpoint ParseEndpoint(std::string_view text, int line) {
  try {
    return sim::Endpoint::Parse(std::string(text));
  } catch (const std::exception& e) {
    throw TraceError(line, e.what());
  }
}

// "key=value" -> (key, value); a bare word gives an empty value and has_value false.
struct KeyValue {
  std::string_view key;
  std::string_view value;
  bool has_value = false;
};

KeyValue SplitKeyValue(std::string_view token) {
  const auto eq = token.find('=');
  if (eq == std::string_view::npos) return {token, {}, false};
  return {token.substr(0, eq), token.substr(eq + 1), true};
}

std::uint8_t ParseFlags(std::string_view text, int line) {
  if (text == "none") return 0;
  std::uint8_t flags = 0;
  for (const char c : text) {
    switch (c) {
      case 'S':
        flags |= flag::kSyn;
        break;
      case 'F':
        flags |= flag::kFin;
        break;
      case 'R':
        flags |= flag::kRst;
        break;
      case 'P':
        flags |= flag::kPsh;
        break;
      case 'U':
        flags |= flag::kUrg;
        break;
      case 'E':
        flags |= flag::kEce;
        break;
      case 'W':
        flags |= flag::kCwr;
        break;
      case '.':
        flags |= flag::kAck;
        break;
      default:
        throw TraceError(line, "bad flags '" + std::string(text) +
                                   "' (letters S F R P U E W and '.' for ACK, or 'none')");
    }
  }
  return flags;
}

void AppendBe32(std::vector<std::uint8_t>* out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<std::uint8_t>(v >> shift));
  }
}

// "mss 1460,sackOK,ts 100 0,wscale 7,sack 1:2 3:4,opt 254 beef,nop,eol" -> option bytes,
// laid out as FrameBuilder lays them (NOPs before window scale, SACK-permitted, SACK and
// timestamps, as Linux sends them).
std::vector<std::uint8_t> ParseOptions(std::string_view text, int line) {
  std::vector<std::uint8_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view item = Trim(text.substr(start, comma - start));
    start = comma + 1;
    const auto words = SplitWhitespace(item);
    if (words.empty()) throw TraceError(line, "empty TCP option in <" + std::string(text) + ">");
    const std::string_view kind = words[0];
    auto expect_words = [&](std::size_t n) {
      if (words.size() != n) {
        throw TraceError(line, "option '" + std::string(item) + "' takes " + std::to_string(n - 1) +
                                   " value(s)");
      }
    };
    if (kind == "mss") {
      expect_words(2);
      const auto mss = ParseNumber<std::uint16_t>(words[1], line, "mss");
      out.insert(out.end(), {option::kMss, 4, static_cast<std::uint8_t>(mss >> 8),
                             static_cast<std::uint8_t>(mss & 0xFF)});
    } else if (kind == "wscale") {
      expect_words(2);
      out.insert(out.end(), {option::kNop, option::kWindowScale, 3,
                             ParseNumber<std::uint8_t>(words[1], line, "wscale")});
    } else if (kind == "sackOK") {
      expect_words(1);
      out.insert(out.end(), {option::kNop, option::kNop, option::kSackPermitted, 2});
    } else if (kind == "ts") {
      expect_words(3);
      out.insert(out.end(), {option::kNop, option::kNop, option::kTimestamps, 10});
      AppendBe32(&out, ParseNumber<std::uint32_t>(words[1], line, "TSval"));
      AppendBe32(&out, ParseNumber<std::uint32_t>(words[2], line, "TSecr"));
    } else if (kind == "sack") {
      if (words.size() < 2) throw TraceError(line, "sack needs at least one block L:R");
      out.insert(out.end(), {option::kNop, option::kNop, option::kSack,
                             static_cast<std::uint8_t>(2 + 8 * (words.size() - 1))});
      for (std::size_t i = 1; i < words.size(); ++i) {
        const auto colon = words[i].find(':');
        if (colon == std::string_view::npos) {
          throw TraceError(line, "sack block '" + std::string(words[i]) + "' is not L:R");
        }
        AppendBe32(&out, ParseNumber<std::uint32_t>(words[i].substr(0, colon), line, "sack"));
        AppendBe32(&out, ParseNumber<std::uint32_t>(words[i].substr(colon + 1), line, "sack"));
      }
    } else if (kind == "opt") {
      // Any option: its kind, then its data as hex ("opt 19 00112233").
      if (words.size() != 2 && words.size() != 3) {
        throw TraceError(line, "opt takes a kind and optional hex data");
      }
      const auto opt_kind = ParseNumber<std::uint8_t>(words[1], line, "option kind");
      std::vector<std::uint8_t> data;
      if (words.size() == 3) {
        const std::string_view hex = words[2];
        if (hex.size() % 2 != 0)
          throw TraceError(line, "odd hex length in '" + std::string(hex) + "'");
        for (std::size_t i = 0; i < hex.size(); i += 2) {
          std::uint8_t byte = 0;
          const auto [end, error] = std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
          if (error != std::errc() || end != hex.data() + i + 2) {
            throw TraceError(line, "bad hex '" + std::string(hex) + "'");
          }
          data.push_back(byte);
        }
      }
      out.push_back(opt_kind);
      out.push_back(static_cast<std::uint8_t>(2 + data.size()));
      out.insert(out.end(), data.begin(), data.end());
    } else if (kind == "nop") {
      expect_words(1);
      out.push_back(option::kNop);
    } else if (kind == "eol") {
      expect_words(1);
      out.push_back(option::kEnd);
    } else {
      throw TraceError(line, "unknown TCP option '" + std::string(kind) +
                                 "' (mss, wscale, sackOK, ts, sack, opt, nop, eol)");
    }
  }
  return out;
}

void RequireFlow(const std::vector<FlowSpec>& flows, const std::string& name, int line) {
  for (const FlowSpec& f : flows) {
    if (f.name == name) return;
  }
  throw TraceError(line, "no flow named '" + name + "' (declare it with %flow)");
}

// The flow name after a one-character prefix ("<b" -> "b"), checked against the flows.
std::string FlowSuffix(std::string_view token, const std::vector<FlowSpec>& flows, int line) {
  std::string name(token.substr(1));
  RequireFlow(flows, name, line);
  return name;
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
    const std::size_t n = o.data.size();
    if (o.kind == option::kMss && n == 2) {
      os << "mss " << wire::LoadBe16(o.data.data());
    } else if (o.kind == option::kWindowScale && n == 1) {
      os << "wscale " << static_cast<int>(o.data[0]);
    } else if (o.kind == option::kSackPermitted && n == 0) {
      os << "sackOK";
    } else if (o.kind == option::kTimestamps && n == 8) {
      os << "ts " << wire::LoadBe32(o.data.data()) << " " << wire::LoadBe32(o.data.data() + 4);
    } else if (o.kind == option::kSack && n > 0 && n % 8 == 0) {
      os << "sack";
      for (std::size_t i = 0; i < n; i += 8) {
        os << " " << wire::LoadBe32(o.data.data() + i) << ":"
           << wire::LoadBe32(o.data.data() + i + 4);
      }
    } else {
      os << "opt " << static_cast<int>(o.kind);
      if (n > 0) {
        os << " ";
        static constexpr char kHex[] = "0123456789abcdef";
        for (const std::uint8_t b : o.data)
          os << kHex[b >> 4] << kHex[b & 0x0F];
      }
    }
  }
  if (reader.malformed()) {
    sep();
    os << "malformed";
  }
  return os.str();
}

std::string AddressText(const sim::IpAddress& ip, std::uint16_t port) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.family == 4 ? AF_INET : AF_INET6, ip.bytes.data(), buf, sizeof buf);
  return (ip.family == 4 ? std::string(buf) : "[" + std::string(buf) + "]") + ":" +
         std::to_string(port);
}

std::string MacText(const wire::MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac.octets[0], mac.octets[1],
                mac.octets[2], mac.octets[3], mac.octets[4], mac.octets[5]);
  return buf;
}

bool SameEndpoint(const sim::Endpoint& e, const sim::IpAddress& ip, std::uint16_t port) {
  return e.ip == ip && e.port == port;
}

}  // namespace

const FlowSpec& Trace::flow(const std::string& name) const {
  for (const FlowSpec& f : flows) {
    if (f.name == name) return f;
  }
  return flows.front();
}

std::string NormalizeLine(std::string_view line) {
  const auto hash = line.find('#');
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  std::string out;
  for (const std::string_view word : SplitWhitespace(line)) {
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

FrameSpec ParseFrameLine(std::string_view line, const std::vector<FlowSpec>& flows, int line_no) {
  std::string text = NormalizeLine(line);
  FrameSpec spec;
  const auto first_space = text.find(' ');
  const std::string direction = text.substr(0, first_space);
  if (direction.empty() || (direction[0] != '>' && direction[0] != '<')) {
    throw TraceError(line_no, "a frame line starts with '>' or '<'");
  }
  spec.from_guest = direction[0] == '<';
  spec.flow = FlowSuffix(direction, flows, line_no);
  std::string rest = first_space == std::string::npos ? "" : text.substr(first_space + 1);

  // The options, between '<' and '>', may hold spaces: take them out first.
  const auto open = rest.find('<');
  if (open != std::string::npos) {
    const auto close = rest.find('>', open);
    if (close == std::string::npos) throw TraceError(line_no, "'<' without '>' in options");
    spec.options = ParseOptions(std::string_view(rest).substr(open + 1, close - open - 1), line_no);
    rest.erase(open, close - open + 1);
  }
  const auto tokens = SplitWhitespace(rest);
  if (tokens.empty()) throw TraceError(line_no, "frame line without flags");
  spec.flags = ParseFlags(tokens[0], line_no);
  bool has_seq = false;
  bool has_ack = false;
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    const KeyValue kv = SplitKeyValue(tokens[i]);
    if (kv.has_value) {
      if (kv.key == "seq") {
        spec.seq = ParseNumber<std::uint32_t>(kv.value, line_no, "seq");
        has_seq = true;
      } else if (kv.key == "ack") {
        spec.ack = ParseNumber<std::uint32_t>(kv.value, line_no, "ack");
        has_ack = true;
      } else if (kv.key == "win") {
        spec.window = ParseNumber<std::uint16_t>(kv.value, line_no, "win");
      } else if (kv.key == "len") {
        spec.payload = ParseNumber<std::uint32_t>(kv.value, line_no, "len");
      } else if (kv.key == "urp") {
        spec.urgent_pointer = ParseNumber<std::uint16_t>(kv.value, line_no, "urp");
      } else if (kv.key == "vlan") {
        spec.vlans.push_back(ParseNumber<std::uint16_t>(kv.value, line_no, "vlan"));
      } else if (kv.key == "ttl") {
        spec.ttl = ParseNumber<std::uint8_t>(kv.value, line_no, "ttl");
      } else {
        throw TraceError(line_no, "unknown field '" + std::string(kv.key) + "'");
      }
    } else if (kv.key == "ce") {
      spec.ecn = wire::Ecn::kCe;
    } else if (kv.key == "ect0") {
      spec.ecn = wire::Ecn::kEct0;
    } else if (kv.key == "ect1") {
      spec.ecn = wire::Ecn::kEct1;
    } else if (kv.key == "bad-tcp-csum") {
      spec.bad_tcp_checksum = true;
    } else if (kv.key == "bad-ip-csum") {
      spec.bad_ip_checksum = true;
    } else {
      throw TraceError(line_no, "unknown modifier '" + std::string(kv.key) + "'");
    }
  }
  if (!has_seq) throw TraceError(line_no, "frame line without seq=");
  const bool ack_flag = (spec.flags & flag::kAck) != 0;
  if (ack_flag && !has_ack) throw TraceError(line_no, "'.' (ACK flag) without ack=");
  if (!ack_flag && has_ack) throw TraceError(line_no, "ack= without '.' (ACK flag)");
  if (spec.urgent_pointer && (spec.flags & flag::kUrg) == 0) {
    throw TraceError(line_no, "urp= without U (URG flag)");
  }
  return spec;
}

std::vector<std::uint8_t> BuildFrame(const FrameSpec& spec, const FlowSpec& flow) {
  const sim::Endpoint& from = spec.from_guest ? flow.guest : flow.sender;
  const sim::Endpoint& to = spec.from_guest ? flow.sender : flow.guest;
  sim::FrameBuilder b;
  b.From(from).To(to).Seq(spec.seq).Window(spec.window).Ecn(spec.ecn).Ttl(spec.ttl);
  // Ack() also sets the ACK flag, so it is called only when the line has '.'.
  if ((spec.flags & flag::kAck) != 0) b.Ack(spec.ack);
  b.Flags(spec.flags);
  if ((spec.flags & flag::kUrg) != 0) b.Urgent(spec.urgent_pointer.value_or(0));
  if (spec.payload > 0) b.Payload(spec.payload);
  if (!spec.options.empty()) b.RawOption(spec.options);
  for (const std::uint16_t tci : spec.vlans)
    b.Vlan(tci);
  if (spec.bad_tcp_checksum) b.BadTcpChecksum();
  if (spec.bad_ip_checksum) b.BadIpChecksum();
  return b.Build();
}

std::string DescribeTraceFrame(wire::Bytes frame, const std::vector<FlowSpec>& flows) {
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  if (!seg) {
    return "non-tcp " + std::string(ReasonLabel(why)) + " " + std::to_string(frame.size()) +
           " bytes";
  }
  const auto eth = wire::EthernetView::Parse(frame);  // ParseSegment succeeded: it parses
  const wire::TcpView& t = seg->tcp;
  sim::IpAddress src;
  sim::IpAddress dst;
  src.family = dst.family = seg->family;
  const std::size_t ip_size = seg->family == 4 ? 4 : 16;
  std::memcpy(src.bytes.data(), seg->source_ip, ip_size);
  std::memcpy(dst.bytes.data(), seg->destination_ip, ip_size);

  std::ostringstream os;
  // Direction: which declared flow the frame belongs to, and which way it goes.
  const sim::Endpoint* expected_from = nullptr;
  const sim::Endpoint* expected_to = nullptr;
  for (const FlowSpec& f : flows) {
    if (SameEndpoint(f.sender, src, t.source_port()) &&
        SameEndpoint(f.guest, dst, t.destination_port())) {
      os << '>' << f.name;
      expected_from = &f.sender;
      expected_to = &f.guest;
      break;
    }
    if (SameEndpoint(f.guest, src, t.source_port()) &&
        SameEndpoint(f.sender, dst, t.destination_port())) {
      os << '<' << f.name;
      expected_from = &f.guest;
      expected_to = &f.sender;
      break;
    }
  }
  if (expected_from == nullptr) {
    os << AddressText(src, t.source_port()) << '>' << AddressText(dst, t.destination_port());
  }

  std::string flags;
  if (t.Has(flag::kSyn)) flags += 'S';
  if (t.Has(flag::kFin)) flags += 'F';
  if (t.Has(flag::kRst)) flags += 'R';
  if (t.Has(flag::kPsh)) flags += 'P';
  if (t.Has(flag::kUrg)) flags += 'U';
  if (t.Has(flag::kEce)) flags += 'E';
  if (t.Has(flag::kCwr)) flags += 'W';
  if (t.Has(flag::kAck)) flags += '.';
  if (flags.empty()) flags = "none";
  os << ' ' << flags << " seq=" << t.seq();
  if (t.Has(flag::kAck)) os << " ack=" << t.ack();
  os << " win=" << t.window();
  if (seg->payload_size > 0) os << " len=" << seg->payload_size;
  if (t.Has(flag::kUrg) || t.urgent_pointer() != 0) os << " urp=" << t.urgent_pointer();
  if (!t.options().empty()) {
    const std::string opts = OptionsText(t.options());
    if (!opts.empty()) os << " <" << opts << ">";
  }
  switch (seg->ecn) {
    case wire::Ecn::kNotEct:
      break;
    case wire::Ecn::kEct0:
      os << " ect0";
      break;
    case wire::Ecn::kEct1:
      os << " ect1";
      break;
    case wire::Ecn::kCe:
      os << " ce";
      break;
  }
  for (std::size_t i = 0; i < eth->vlan_tag_count(); ++i)
    os << " vlan=" << eth->vlan_tci(i);
  if (seg->ttl != 64) os << " ttl=" << static_cast<int>(seg->ttl);
  if ((seg->tos & 0xFC) != 0) os << " dscp=" << (seg->tos >> 2);
  if (seg->flow_label != 0) os << " flowlabel=" << seg->flow_label;
  if (expected_from != nullptr &&
      (eth->source() != expected_from->mac || eth->destination() != expected_to->mac)) {
    os << " mac=" << MacText(eth->source()) << '>' << MacText(eth->destination());
  }
  if (!seg->IpChecksumValid()) os << " bad-ip-csum";
  if (!seg->TcpChecksumValid()) os << " bad-tcp-csum";
  return os.str();
}

Trace ParseTrace(std::string_view text, const std::string& path) {
  Trace trace;
  trace.path = path;
  {
    std::size_t start = 0;
    while (start < text.size()) {
      auto end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      std::string line(text.substr(start, end - start));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      trace.lines.push_back(std::move(line));
      start = end + 1;
    }
  }
  trace.flows.push_back(FlowSpec{.name = "",
                                 .sender = sim::Endpoint::Parse("10.0.0.1:40000"),
                                 .guest = sim::Endpoint::Parse("10.0.0.2:5201")});

  enum class Section : std::uint8_t { kPreamble, kInput, kExpect, kCounters };
  Section section = Section::kPreamble;
  bool seen_input = false;
  auto close_section = [&](int index) {
    if (section == Section::kExpect) trace.expect_end = index;
    if (section == Section::kCounters) trace.counters_end = index;
  };

  for (std::size_t i = 0; i < trace.lines.size(); ++i) {
    const int line_no = static_cast<int>(i) + 1;
    const std::string normalized = NormalizeLine(trace.lines[i]);
    if (normalized.empty()) continue;
    const auto words = SplitWhitespace(normalized);

    if (words[0][0] == '%') {
      const std::string_view directive = words[0];
      if (directive == "%input" || directive == "%expect" || directive == "%counters") {
        if (words.size() != 1) throw TraceError(line_no, std::string(directive) + " takes nothing");
        close_section(static_cast<int>(i));
        if (directive == "%input") {
          if (seen_input) throw TraceError(line_no, "second %input");
          seen_input = true;
          section = Section::kInput;
        } else if (directive == "%expect") {
          if (!seen_input || trace.expect_header >= 0) {
            throw TraceError(line_no, "%expect comes once, after %input");
          }
          trace.expect_header = static_cast<int>(i);
          section = Section::kExpect;
        } else {
          if (trace.expect_header < 0 || trace.counters_header >= 0) {
            throw TraceError(line_no, "%counters comes once, after %expect");
          }
          trace.counters_header = static_cast<int>(i);
          section = Section::kCounters;
        }
        continue;
      }
      if (section != Section::kPreamble) {
        throw TraceError(line_no, std::string(directive) + " belongs before %input");
      }
      if (directive == "%disabled") {
        trace.disabled = normalized.size() > 10 ? normalized.substr(10) : "no reason given";
      } else if (directive == "%config") {
        for (std::size_t w = 1; w < words.size(); ++w) {
          const KeyValue kv = SplitKeyValue(words[w]);
          if (!kv.has_value) throw TraceError(line_no, "%config takes key=value pairs");
          if (kv.key == "sender") {
            trace.flows[0].sender = ParseEndpoint(kv.value, line_no);
          } else if (kv.key == "guest") {
            trace.flows[0].guest = ParseEndpoint(kv.value, line_no);
          } else if (kv.key == "buffer_bytes") {
            trace.config.buffer_bytes = ParseNumber<std::uint64_t>(kv.value, line_no, "bytes");
          } else if (kv.key == "buffer_frames") {
            trace.config.buffer_frames = ParseNumber<std::uint32_t>(kv.value, line_no, "frames");
          } else if (kv.key == "max_flows") {
            trace.config.engine.max_flows = ParseNumber<std::uint32_t>(kv.value, line_no, "count");
          } else if (kv.key == "buffer_aware_window") {
            trace.config.engine.buffer_aware_window =
                ParseNumber<std::uint32_t>(kv.value, line_no, "0 or 1") != 0;
          } else if (kv.key == "accelerated_idle") {
            trace.config.engine.accelerated_idle_timeout = ParseDuration(kv.value, line_no);
          } else if (kv.key == "transient_idle") {
            trace.config.engine.transient_idle_timeout = ParseDuration(kv.value, line_no);
          } else {
            throw TraceError(line_no, "unknown %config key '" + std::string(kv.key) + "'");
          }
        }
      } else if (directive == "%flow") {
        if (words.size() != 4) {
          throw TraceError(line_no, "%flow NAME sender=IP:PORT guest=IP:PORT");
        }
        FlowSpec f;
        f.name = std::string(words[1]);
        if (f.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") !=
            std::string::npos) {
          throw TraceError(line_no, "a flow name is lower-case letters, digits and '_'");
        }
        for (const FlowSpec& existing : trace.flows) {
          if (existing.name == f.name) throw TraceError(line_no, "flow '" + f.name + "' twice");
        }
        for (std::size_t w = 2; w < 4; ++w) {
          const KeyValue kv = SplitKeyValue(words[w]);
          if (kv.key == "sender" && kv.has_value) {
            f.sender = ParseEndpoint(kv.value, line_no);
          } else if (kv.key == "guest" && kv.has_value) {
            f.guest = ParseEndpoint(kv.value, line_no);
          } else {
            throw TraceError(line_no, "%flow NAME sender=IP:PORT guest=IP:PORT");
          }
        }
        trace.flows.push_back(std::move(f));
      } else {
        throw TraceError(line_no, "unknown directive '" + std::string(directive) + "'");
      }
      continue;
    }

    switch (section) {
      case Section::kPreamble:
        throw TraceError(line_no, "text before %input must be a comment or a % directive");
      case Section::kInput: {
        Step step;
        step.line = line_no;
        const std::string_view command = words[0];
        if (command[0] == '>' || command[0] == '<') {
          step.kind = StepKind::kFrame;
          step.frame = ParseFrameLine(normalized, trace.flows, line_no);
        } else if (command == "run" || command == "state" || command == "negotiated") {
          step.kind = command == "run"     ? StepKind::kRun
                      : command == "state" ? StepKind::kState
                                           : StepKind::kNegotiated;
          if (words.size() > 2) throw TraceError(line_no, std::string(command) + " [FLOW]");
          if (words.size() == 2) step.flow = std::string(words[1]);
          RequireFlow(trace.flows, step.flow, line_no);
        } else if (command == "accel") {
          if (words.size() != 2 || (words[1] != "on" && words[1] != "off")) {
            throw TraceError(line_no, "accel on|off");
          }
          step.kind = StepKind::kAccel;
          step.acceleration_on = words[1] == "on";
        } else if (command == "time") {
          if (words.size() != 2 || words[1][0] != '+') throw TraceError(line_no, "time +DURATION");
          step.kind = StepKind::kTime;
          step.advance = ParseDuration(words[1].substr(1), line_no);
        } else if (command == "expire") {
          if (words.size() != 1) throw TraceError(line_no, "expire takes nothing");
          step.kind = StepKind::kExpire;
        } else {
          throw TraceError(line_no, "unknown input line '" + std::string(command) +
                                        "' (a frame '>' '<', run, accel, time, expire, state, "
                                        "negotiated)");
        }
        trace.steps.push_back(std::move(step));
        break;
      }
      case Section::kExpect:
        trace.expect.push_back(ExpectedLine{normalized, line_no});
        break;
      case Section::kCounters:
        for (const std::string_view word : words) {
          const KeyValue kv = SplitKeyValue(word);
          if (!kv.has_value) throw TraceError(line_no, "%counters takes name=value pairs");
          trace.counters.push_back(
              CounterAssertion{std::string(kv.key),
                               ParseNumber<std::uint64_t>(kv.value, line_no, "count"), line_no});
        }
        break;
    }
  }
  close_section(static_cast<int>(trace.lines.size()));
  if (!seen_input) throw TraceError(1, "no %input section");
  if (trace.expect_header < 0) {
    throw TraceError(static_cast<int>(trace.lines.size()), "no %expect section (it may be empty)");
  }
  return trace;
}

Trace LoadTrace(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TraceError(0, "cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return ParseTrace(text.str(), path.string());
}

}  // namespace vsnoop::golden
