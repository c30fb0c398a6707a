// Time in vSnoop is a value passed in by the caller (the daemon's monotonic clock, a pcap's
// timestamps, a test's fake clock); the core library never reads a clock.
#pragma once

#include <chrono>

namespace vsnoop {

using Timestamp = std::chrono::nanoseconds;  // since an epoch chosen by the caller
using Duration = std::chrono::nanoseconds;

}  // namespace vsnoop
