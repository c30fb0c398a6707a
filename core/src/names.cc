#include "vsnoop/flow_state.h"
#include "vsnoop/reasons.h"

namespace vsnoop {

std::string_view ReasonLabel(Reason reason) {
  switch (reason) {
#define VSNOOP_REASON_LABEL(name, label, doc) \
  case Reason::k##name:                       \
    return label;
    VSNOOP_REASONS(VSNOOP_REASON_LABEL)
#undef VSNOOP_REASON_LABEL
  }
  return "unknown";
}

std::string_view ReasonDescription(Reason reason) {
  switch (reason) {
#define VSNOOP_REASON_DOC(name, label, doc) \
  case Reason::k##name:                     \
    return doc;
    VSNOOP_REASONS(VSNOOP_REASON_DOC)
#undef VSNOOP_REASON_DOC
  }
  return "";
}

std::string_view FlowStateLabel(FlowState state) {
  switch (state) {
#define VSNOOP_STATE_LABEL(name, label, accelerated) \
  case FlowState::k##name:                           \
    return label;
    VSNOOP_FLOW_STATES(VSNOOP_STATE_LABEL)
#undef VSNOOP_STATE_LABEL
  }
  return "UNKNOWN";
}

}  // namespace vsnoop
