// Broken internal invariants, as opposed to bad input (which is counted, never asserted on),
// go to VSNOOP_BUG. The core library cannot log, so the program installs a handler: the
// daemon logs and counts, tests fail. Without a handler, the process aborts.
#pragma once

namespace vsnoop {

using BugHandler = void (*)(const char* file, int line, const char* what);

// Returns the previous handler.
BugHandler SetBugHandler(BugHandler handler);
[[gnu::cold]] void ReportBug(const char* file, int line, const char* what);

}  // namespace vsnoop

#define VSNOOP_BUG(what) ::vsnoop::ReportBug(__FILE__, __LINE__, (what))
