#include "vsnoop/bug.h"

#include <atomic>
#include <cstdlib>

namespace vsnoop {
namespace {
std::atomic<BugHandler> handler{nullptr};
}  // namespace

BugHandler SetBugHandler(BugHandler h) { return handler.exchange(h); }

void ReportBug(const char* file, int line, const char* what) {
  const BugHandler h = handler.load();
  if (h == nullptr) std::abort();
  h(file, line, what);
}

}  // namespace vsnoop
