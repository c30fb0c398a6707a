// The two small servers vsnoopd runs inside its event loop, without threads: the control
// socket (vsnoopctl: one JSON request line, one JSON response line) and the metrics
// endpoint (HTTP GET /metrics on loopback). Both accept a bounded number of clients,
// answer one request each, and close.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct pollfd;

namespace vsnoop::daemon {

// Given what a client sent so far, returns the full response once the request is
// complete, or nullopt to wait for more.
using Responder = std::function<std::optional<std::string>(const std::string& received)>;

class RequestServer {
 public:
  // A unix stream socket at `path`. A stale socket file is replaced; a live one is an
  // error ("... is in use"), as is any other file there.
  static std::unique_ptr<RequestServer> ListenUnix(const std::string& path, Responder responder,
                                                   std::string* error);
  // TCP on 127.0.0.1:port.
  static std::unique_ptr<RequestServer> ListenLoopback(int port, Responder responder,
                                                       std::string* error);
  ~RequestServer();
  RequestServer(const RequestServer&) = delete;
  RequestServer& operator=(const RequestServer&) = delete;

  void CollectWaits(std::vector<pollfd>* out) const;
  // Accepts, reads and answers whatever is ready. Never blocks.
  void Serve();

 private:
  struct Client {
    int fd;
    std::string in;
    std::string out;
    std::size_t sent = 0;
  };
  RequestServer(int fd, std::string unlink_path, Responder responder)
      : listen_fd_(fd), unlink_path_(std::move(unlink_path)), responder_(std::move(responder)) {}
  void Close(std::size_t i);

  int listen_fd_;
  std::string unlink_path_;
  Responder responder_;
  std::vector<Client> clients_;
};

// Binds a listening unix stream socket at `path` (the same rules as ListenUnix); shared
// with the qemu stream port. Returns the fd, or -1 with *error set.
int BindUnixListener(const std::string& path, std::string* error);

}  // namespace vsnoop::daemon
