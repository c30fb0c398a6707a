// Runs a rapidcheck property inside a gtest the way RC_GTEST_PROP does, but with a fixed
// seed and a case count per property, so a run is deterministic and its size is chosen
// where the property is written.
//   - RC_PARAMS still works: its seed= and max_success= override the defaults (and
//     rapidcheck's reproduce= replays a printed counterexample);
//   - VSNOOP_PROPERTY_SCALE=f multiplies every case count (0.05 for a quick run);
//   - under AddressSanitizer the counts are divided by 50, the instrumented build being
//     that much slower.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VSNOOP_PROPERTY_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VSNOOP_PROPERTY_UNDER_ASAN 1
#endif

namespace vsnoop::proptest {

inline int CaseCount(int nominal) {
  double factor = 1.0;
#ifdef VSNOOP_PROPERTY_UNDER_ASAN
  factor = 0.02;
#endif
  if (const char* scale = std::getenv("VSNOOP_PROPERTY_SCALE"))
    factor *= std::strtod(scale, nullptr);
  return std::max(1, static_cast<int>(nominal * factor));
}

// Counts how many cases had some feature, to show what a property's cases covered:
//   [ coverage ] early ACKs 83.1%, NO_BUFFER 20.4%, ...
class Coverage {
 public:
  void Count(const std::string& label, bool present) {
    auto it = std::find_if(labels_.begin(), labels_.end(),
                           [&](const auto& l) { return l.first == label; });
    if (it == labels_.end()) it = labels_.insert(labels_.end(), {label, 0});
    if (present) ++it->second;
  }
  void Case() { ++cases_; }
  void Print(std::ostream& os) const {
    if (cases_ == 0) return;
    os << "[ coverage ] " << cases_ << " cases:";
    const char* sep = " ";
    for (const auto& [label, n] : labels_) {
      os << sep << label << " " << (100.0 * static_cast<double>(n) / static_cast<double>(cases_))
         << "%";
      sep = ", ";
    }
    os << std::endl;
  }

 private:
  std::vector<std::pair<std::string, std::uint64_t>> labels_;
  std::uint64_t cases_ = 0;
};

template <typename Testable>
void CheckProperty(std::uint64_t seed, int nominal_cases, Testable&& testable) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_suite_name()) + "/" + info->name();
  metadata.description = info->name();
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  const char* env = std::getenv("RC_PARAMS");
  const std::string overrides = env != nullptr ? env : "";
  if (overrides.find("seed=") == std::string::npos) params.seed = seed;
  if (overrides.find("max_success=") == std::string::npos) {
    params.maxSuccess = CaseCount(nominal_cases);
  }
  const auto result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata, params);
  if (result.template is<rc::detail::SuccessResult>()) {
    const auto success = result.template get<rc::detail::SuccessResult>();
    std::cout << "[ property ] " << metadata.id << ": " << success.numSuccess
              << " random cases passed (seed " << params.seed << ")" << std::endl;
    if (!success.distribution.empty()) {
      rc::detail::printResultMessage(result, std::cout);
      std::cout << std::endl;
    }
    ::testing::Test::RecordProperty("cases", success.numSuccess);
  } else {
    std::ostringstream message;
    rc::detail::printResultMessage(result, message);
    FAIL() << message.str() << "\n(seed " << params.seed << ")";
  }
}

}  // namespace vsnoop::proptest
