// vsnoopctl: asks a running vsnoopd for its counters and flows, and switches vSnoop on or
// off, over the daemon's control socket.
//
//   vsnoopctl --control PATH stats [--json]
//   vsnoopctl --control PATH flows [--guest NAME] [--limit N] [--json]
//   vsnoopctl --control PATH metrics
//   vsnoopctl --control PATH set vsnoop on|off [--guest NAME]
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

std::optional<json> Ask(const std::string& path, const json& request, std::string* error) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *error = "control path too long";
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    *error = "cannot reach vsnoopd at " + path + ": " + std::strerror(errno);
    ::close(fd);
    return std::nullopt;
  }
  const std::string line = request.dump() + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    *error = "cannot send the request";
    ::close(fd);
    return std::nullopt;
  }
  std::string reply;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  try {
    return json::parse(reply);
  } catch (const json::exception& e) {
    *error = std::string("bad reply from vsnoopd: ") + e.what();
    return std::nullopt;
  }
}

void PrintCounters(const std::string& title, const json& counters) {
  std::cout << title << "\n";
  for (const auto& [k, v] : counters.items()) {
    if (v.is_number()) std::cout << "  " << std::left << std::setw(34) << k << " " << v << "\n";
  }
}

void PrintStats(const json& s) {
  std::cout << "vSnoop: " << s["vsnoop"].get<std::string>() << "\n";
  const json& e = s["engine"];
  PrintCounters("engine", e);
  std::cout << "flows by state (" << e["flows"]["total"] << " in all)\n";
  for (const auto& [state, n] : e["flows"]["by_state"].items()) {
    std::cout << "  " << std::left << std::setw(34) << state << " " << n << "\n";
  }
  std::cout << "frames by reason\n";
  for (const auto& [reason, n] : e["reasons"].items()) {
    std::cout << "  " << std::left << std::setw(34) << reason << " " << n << "\n";
  }
  std::cout << "state transitions\n";
  for (const auto& [t, n] : e["transitions"].items()) {
    std::cout << "  " << std::left << std::setw(34) << t << " " << n << "\n";
  }
  PrintCounters("bridge", s["bridge"]);
  for (const json& g : s["guests"]) {
    std::cout << "guest " << g["name"].get<std::string>() << " ("
              << (g["connected"].get<bool>() ? "connected" : "not connected") << ", vSnoop "
              << g["vsnoop"].get<std::string>();
    if (g.contains("schedule")) {
      std::cout << ", " << g["schedule"]["config"].get<std::string>() << ", "
                << g["schedule"]["state"].get<std::string>();
    }
    std::cout << ")\n  buffer " << g["buffer"]["bytes"] << "/" << g["buffer"]["max_bytes"]
              << " bytes, " << g["buffer"]["frames"] << "/" << g["buffer"]["max_frames"]
              << " frames\n";
    for (const auto& [k, v] : g["counters"].items()) {
      std::cout << "  " << std::left << std::setw(34) << k << " " << v << "\n";
    }
  }
}

void PrintFlows(const json& flows) {
  std::cout << std::left << std::setw(24) << "REMOTE" << std::setw(24) << "GUEST" << std::setw(16)
            << "STATE" << std::setw(12) << "EARLY_ACKS" << std::setw(12) << "SUPPRESSED"
            << std::setw(10) << "WUPDATES" << "GUEST PORT\n";
  for (const json& f : flows) {
    std::cout << std::left << std::setw(24) << f["remote"].get<std::string>() << std::setw(24)
              << f["guest_address"].get<std::string>() << std::setw(16)
              << f["state"].get<std::string>() << std::setw(12)
              // nlohmann::json's operator<< ignores the stream's width: print the numbers.
              << f["stats"]["early_acks"].get<std::uint64_t>() << std::setw(12)
              << f["stats"]["guest_acks_suppressed"].get<std::uint64_t>() << std::setw(10)
              << f["stats"]["window_updates"].get<std::uint64_t>()
              << f["guest"].get<std::string>() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vsnoopctl: inspect and control a running vsnoopd"};
  std::string control = "/run/vsnoopd.sock";
  bool as_json = false;
  app.add_option("--control", control, "vsnoopd's control socket")->capture_default_str();
  app.add_flag("--json", as_json, "print the daemon's JSON reply as it is");
  app.require_subcommand(1);
  auto* stats = app.add_subcommand("stats", "counters: engine, bridge, per guest, per state");
  auto* flows = app.add_subcommand("flows", "the flow table");
  std::string guest;
  std::size_t limit = 1000;
  flows->add_option("--guest", guest, "only this guest's flows");
  flows->add_option("--limit", limit, "at most this many flows");
  auto* metrics = app.add_subcommand("metrics", "the Prometheus text exposition");
  auto* set = app.add_subcommand("set", "switch vSnoop on or off, globally or for one guest");
  std::string what;
  std::string value;
  set->add_option("what", what, "vsnoop")->required()->check(CLI::IsMember({"vsnoop"}));
  set->add_option("value", value, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
  set->add_option("--guest", guest, "only this guest (its name as given to --guest)");
  CLI11_PARSE(app, argc, argv);

  json request;
  if (*stats) request = {{"cmd", "stats"}};
  if (*flows) {
    request = {{"cmd", "flows"}, {"limit", limit}};
    if (!guest.empty()) request["guest"] = guest;
  }
  if (*metrics) request = {{"cmd", "metrics"}};
  if (*set) {
    request = {{"cmd", "set"}, {"vsnoop", value}};
    if (!guest.empty()) request["guest"] = guest;
  }
  std::string error;
  const auto reply = Ask(control, request, &error);
  if (!reply) {
    std::cerr << "vsnoopctl: " << error << "\n";
    return 1;
  }
  if (reply->contains("error")) {
    std::cerr << "vsnoopctl: " << (*reply)["error"].get<std::string>() << "\n";
    return 1;
  }
  if (as_json) {
    std::cout << reply->dump(2) << "\n";
  } else if (*stats) {
    PrintStats(*reply);
  } else if (*flows) {
    PrintFlows((*reply)["flows"]);
  } else if (*metrics) {
    std::cout << (*reply)["text"].get<std::string>();
  } else {
    std::cout << "ok\n";
  }
  return 0;
}
