#include "servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vsnoop::daemon {
namespace {

constexpr std::size_t kMaxClients = 16;
constexpr std::size_t kMaxRequest = 16 * 1024;

}  // namespace

int BindUnixListener(const std::string& path, std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    *error = "socket path '" + path + "' is empty or too long";
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + " exists and is not a socket";
      return -1;
    }
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live =
        ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live) {
      *error = "socket path " + path + " is in use by another process";
      return -1;
    }
    ::unlink(path.c_str());  // stale: nobody listens
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 8) != 0) {
    *error = "cannot listen on " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

std::unique_ptr<RequestServer> RequestServer::ListenUnix(const std::string& path,
                                                         Responder responder,
                                                         std::string* error) {
  const int fd = BindUnixListener(path, error);
  if (fd < 0) return nullptr;
  return std::unique_ptr<RequestServer>(new RequestServer(fd, path, std::move(responder)));
}

std::unique_ptr<RequestServer> RequestServer::ListenLoopback(int port, Responder responder,
                                                             std::string* error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 8) != 0) {
    *error = "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<RequestServer>(new RequestServer(fd, "", std::move(responder)));
}

RequestServer::~RequestServer() {
  while (!clients_.empty()) Close(clients_.size() - 1);
  ::close(listen_fd_);
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

void RequestServer::CollectWaits(std::vector<pollfd>* out) const {
  out->push_back(pollfd{.fd = listen_fd_, .events = POLLIN, .revents = 0});
  for (const Client& c : clients_) {
    out->push_back(pollfd{.fd = c.fd,
                          .events = static_cast<short>(c.out.empty() ? POLLIN : POLLOUT),
                          .revents = 0});
  }
}

void RequestServer::Close(std::size_t i) {
  ::close(clients_[i].fd);
  clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
}

void RequestServer::Serve() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) break;
    if (clients_.size() >= kMaxClients) {
      ::close(fd);
      continue;
    }
    clients_.push_back(Client{.fd = fd, .in = {}, .out = {}});
  }
  for (std::size_t i = clients_.size(); i-- > 0;) {
    Client& c = clients_[i];
    if (c.out.empty()) {
      char buf[4096];
      const ssize_t n = ::read(c.fd, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        Close(i);
        continue;
      }
      if (n > 0) c.in.append(buf, static_cast<std::size_t>(n));
      if (c.in.size() > kMaxRequest) {
        Close(i);
        continue;
      }
      std::optional<std::string> response = responder_(c.in);
      if (!response) continue;
      c.out = std::move(*response);
    }
    const ssize_t w = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      Close(i);
      continue;
    }
    if (w > 0) c.sent += static_cast<std::size_t>(w);
    if (c.sent == c.out.size()) Close(i);
  }
}

}  // namespace vsnoop::daemon
