// vsnoop-replay: runs a capture through the vSnoop engine and a model of the host's guest
// buffers, and writes what the host would have put on a wire.
//
//   vsnoop-replay --guest-ip ADDR [--guest-ip ADDR ...] [--buffer-bytes N]
//                 [--buffer-frames N] IN.pcap OUT.pcap
//
// IN.pcap: Ethernet frames of both directions. A frame to a guest address enters that
// guest's buffer if it fits (else it is dropped); a frame from a guest empties that guest's
// buffer first (the guest ran). OUT.pcap: frames forwarded to and from guests, and the ACKs
// vSnoop generated, each stamped with the time of the input frame that caused it. Stdout:
// the engine's counters as one JSON object.
#include <pcap/pcap.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "vsnoop/sim/host_model.h"
#include "vsnoop/sim/report.h"

namespace {

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
struct DumperCloser {
  void operator()(pcap_dumper_t* d) const { pcap_dump_close(d); }
};

int Fail(const std::string& message) {
  std::cerr << "vsnoop-replay: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Replay a capture through the vSnoop engine and a model of the guests' buffers"};
  std::vector<std::string> guest_ips;
  std::uint64_t buffer_bytes = 1 << 20;
  std::uint32_t buffer_frames = 1024;
  std::string in_path;
  std::string out_path;
  app.add_option("--guest-ip", guest_ips, "address of a guest behind the host (IPv4 or IPv6)")
      ->required();
  app.add_option("--buffer-bytes", buffer_bytes, "each guest's receive buffer, bytes")
      ->check(CLI::PositiveNumber);
  app.add_option("--buffer-frames", buffer_frames, "each guest's receive buffer, frames")
      ->check(CLI::PositiveNumber);
  app.add_option("IN.pcap", in_path, "capture to replay (Ethernet)")->required();
  app.add_option("OUT.pcap", out_path, "what the host puts on a wire")->required();
  CLI11_PARSE(app, argc, argv);

  std::vector<vsnoop::sim::IpAddress> guests;
  for (const std::string& text : guest_ips) {
    const auto a = vsnoop::sim::IpAddress::FromString(text.c_str());
    if (!a) return Fail("not an IP address: " + text);
    guests.push_back(*a);
  }

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> in(
      pcap_open_offline_with_tstamp_precision(in_path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
  if (!in) return Fail(errbuf);
  if (pcap_datalink(in.get()) != DLT_EN10MB) {
    return Fail(in_path + ": link type is not Ethernet (EN10MB)");
  }
  std::unique_ptr<pcap_t, PcapCloser> out_handle(
      pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO));
  std::unique_ptr<pcap_dumper_t, DumperCloser> out(
      pcap_dump_open(out_handle.get(), out_path.c_str()));
  if (!out) return Fail(pcap_geterr(out_handle.get()));

  vsnoop::sim::HostModel host(vsnoop::EngineConfig{}, guests,
                              {.bytes = buffer_bytes, .frames = buffer_frames});
  std::vector<vsnoop::sim::Output> outputs;
  pcap_pkthdr* header = nullptr;
  const std::uint8_t* data = nullptr;
  int rc = 0;
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  while ((rc = pcap_next_ex(in.get(), &header, &data)) == 1) {
    ++frames_in;
    const auto now = std::chrono::seconds(header->ts.tv_sec) +
                     std::chrono::nanoseconds(header->ts.tv_usec);  // nanosecond precision
    outputs.clear();
    // A frame cut by the capture's snap length is replayed as captured: the engine sees an
    // IP length beyond the bytes present and passes it over (ipv4_bad_total_length). When it
    // is forwarded, OUT keeps its original length, as a capture of the host's wire would.
    (void)host.Process({data, header->caplen}, now, &outputs);
    for (const auto& o : outputs) {
      pcap_pkthdr h = *header;
      h.caplen = static_cast<bpf_u_int32>(o.bytes.size());
      const bool generated = o.kind == vsnoop::sim::Output::Kind::kEarlyAck ||
                             o.kind == vsnoop::sim::Output::Kind::kWindowUpdate;
      h.len = generated ? h.caplen : header->len;
      pcap_dump(reinterpret_cast<u_char*>(out.get()), &h, o.bytes.data());
      ++frames_out;
    }
  }
  if (rc == PCAP_ERROR) return Fail(pcap_geterr(in.get()));

  nlohmann::json j = vsnoop::sim::CountersToJson(host.engine());
  j["frames_in"] = frames_in;
  j["frames_out"] = frames_out;
  j["flows_seen"] = host.engine().counters().flows_created;
  j["frames_dropped_no_buffer"] = host.frames_dropped();
  std::cout << j.dump() << "\n";
  return 0;
}
