#include "vsnoop/datapath/port.h"

#include <poll.h>

namespace vsnoop::datapath {

bool Port::ReceivePending() const {
  const int fd = receive_fd();
  if (fd < 0) return false;
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
}

}  // namespace vsnoop::datapath
