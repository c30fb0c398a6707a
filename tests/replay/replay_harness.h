// Shared by the replay tests: running a program with its output captured, a scratch
// directory per test, and checks that hold for any output of vsnoop-replay.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "pcap_file.h"
#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

extern char** environ;

namespace vsnoop::replay_test {

struct RunResult {
  int exit_code = -1;  // 128 + signal number when the program was killed by a signal
  std::string out;
  std::string err;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `binary args...` with stdout and stderr captured in files under `dir`.
inline RunResult RunProgram(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& dir) {
  const std::string out_path = dir + "/stdout.txt";
  const std::string err_path = dir + "/stderr.txt";
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid = 0;
  const int spawn_error =
      posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  RunResult result;
  if (spawn_error != 0) {
    result.err = "posix_spawn " + binary + ": " + std::strerror(spawn_error);
    return result;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  result.out = ReadWholeFile(out_path);
  result.err = ReadWholeFile(err_path);
  return result;
}

// A test with a directory of its own, removed afterwards unless the test failed.
class ScratchDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "vsnoop_replay_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    dir_ = pattern;
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "files kept in " << dir_ << "\n";
    } else {
      std::filesystem::remove_all(dir_);
    }
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

// One line per frame, for failure messages.
inline std::string Describe(const std::vector<PcapRecord>& records) {
  std::ostringstream s;
  for (std::size_t i = 0; i < records.size(); ++i) {
    s << "  [" << i << "] " << records[i].seconds << "." << records[i].nanoseconds << " "
      << sim::DescribeFrame(records[i].bytes) << "\n";
  }
  return s.str();
}

// The counters vsnoop-replay prints: one JSON object, on one line.
inline nlohmann::json ParseCounters(const RunResult& r) {
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  return nlohmann::json::parse(r.out);
}

// The safety rule, checked on OUT alone: an ACK from the guest's address to the sender (the
// guest's own or vSnoop's) never covers a byte that did not reach the guest, in sequence, in
// a frame forwarded to it earlier in OUT. `first_byte` is the sender's ISN + 1.
inline void ExpectAcksCoverOnlyDeliveredBytes(const PcapContents& out, const sim::Endpoint& sender,
                                              const sim::Endpoint& guest,
                                              std::uint32_t first_byte) {
  std::uint32_t delivered_end = first_byte;  // end of the contiguous bytes delivered so far
  for (std::size_t i = 0; i < out.records.size(); ++i) {
    Reason why{};
    const auto seg = ParseSegment(out.records[i].bytes, &why);
    if (!seg || seg->family != guest.ip.family) continue;
    const std::size_t n = seg->family == 4 ? 4 : 16;
    const bool to_guest = std::memcmp(seg->destination_ip, guest.ip.bytes.data(), n) == 0 &&
                          std::memcmp(seg->source_ip, sender.ip.bytes.data(), n) == 0 &&
                          seg->tcp.destination_port() == guest.port &&
                          seg->tcp.source_port() == sender.port;
    const bool from_guest = std::memcmp(seg->source_ip, guest.ip.bytes.data(), n) == 0 &&
                            std::memcmp(seg->destination_ip, sender.ip.bytes.data(), n) == 0 &&
                            seg->tcp.source_port() == guest.port &&
                            seg->tcp.destination_port() == sender.port;
    if (to_guest) {
      const std::uint32_t seq = seg->tcp.seq();
      const std::uint32_t end =
          seq + seg->SequenceSpace() - (seg->tcp.Has(wire::tcp_flag::kSyn) ? 1u : 0u);
      // Wrap-safe: seq <= delivered_end < end extends the contiguous run.
      if (static_cast<std::int32_t>(seq - delivered_end) <= 0 &&
          static_cast<std::int32_t>(end - delivered_end) > 0) {
        delivered_end = end;
      }
    } else if (from_guest && seg->tcp.Has(wire::tcp_flag::kAck) &&
               !seg->tcp.Has(wire::tcp_flag::kSyn)) {
      EXPECT_LE(static_cast<std::int32_t>(seg->tcp.ack() - delivered_end), 0)
          << "OUT frame " << i << " acknowledges up to " << seg->tcp.ack()
          << " but only bytes up to " << delivered_end
          << " reached the guest: " << sim::DescribeFrame(out.records[i].bytes);
    }
  }
}

}  // namespace vsnoop::replay_test
