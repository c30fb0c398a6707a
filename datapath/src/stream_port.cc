// StreamPort: qemu's stream netdev over a unix socket, framed as a 4-byte big-endian length
// then the frame (qemu net/stream.c and net_fill_rstate in net/net.c).
#include "vsnoop/datapath/stream_port.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "vsnoop/wire/bytes.h"

namespace vsnoop::datapath {
namespace {

constexpr std::size_t kPrefixBytes = 4;
// Room for several frames per read; always enough for one frame of the largest size.
constexpr std::size_t kInboxBytes = 256 * 1024;
static_assert(kInboxBytes >= kPrefixBytes + StreamPort::kMaxFrameBytes);
// Frames per sendmsg call (two iovecs each, far below IOV_MAX).
constexpr std::size_t kSendBatch = 64;

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

bool FillAddress(const std::string& path, sockaddr_un* address) {
  *address = {};
  address->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address->sun_path) return false;
  std::memcpy(address->sun_path, path.c_str(), path.size() + 1);
  return true;
}

bool PeerHungUp(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

StreamPort::StreamPort(const std::string& path) : Port(path) {}

std::unique_ptr<StreamPort> StreamPort::Open(const std::string& path, std::string* error) {
  std::unique_ptr<StreamPort> port(new StreamPort(path));
  std::string why;
  if (!port->Listen(&why)) {
    if (error != nullptr) *error = "stream port: " + why;
    return nullptr;
  }
  return port;
}

bool StreamPort::Listen(std::string* error) {
  const std::string& socket_path = path();
  sockaddr_un address;
  if (!FillAddress(socket_path, &address)) {
    *error = "socket path \"" + socket_path + "\" is empty or longer than " +
             std::to_string(sizeof address.sun_path - 1) + " bytes";
    return false;
  }
  struct stat existing;
  if (lstat(socket_path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      *error = "socket path " + socket_path + " exists and is not a socket";
      return false;
    }
    // A socket file outlives its process. If a listener still answers, the path belongs
    // to someone else; if connecting is refused, the file is stale and can go.
    const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
      *error = Errno("socket(AF_UNIX)");
      return false;
    }
    const int connected =
        connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int connect_errno = errno;
    close(probe);
    if (connected == 0 || connect_errno == EAGAIN) {  // EAGAIN: a listener with a full backlog
      *error = "socket path " + socket_path + " is in use";
      return false;
    }
    if (connect_errno != ECONNREFUSED) {
      errno = connect_errno;
      *error = Errno("probing socket path " + socket_path);
      return false;
    }
    if (unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
      *error = Errno("removing stale socket " + socket_path);
      return false;
    }
  } else if (errno != ENOENT) {
    *error = Errno("lstat " + socket_path);
    return false;
  }

  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    *error = Errno("socket(AF_UNIX)");
    return false;
  }
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    *error = errno == EADDRINUSE ? "socket path " + socket_path + " is in use"
                                 : Errno("bind " + socket_path);
    return false;
  }
  struct stat created;
  if (lstat(socket_path.c_str(), &created) == 0) {
    socket_device_ = created.st_dev;
    socket_inode_ = created.st_ino;
  }
  if (listen(listen_fd_, 4) != 0) {
    *error = Errno("listen " + socket_path);
    return false;
  }
  return true;
}

StreamPort::~StreamPort() {
  if (connection_fd_ >= 0) close(connection_fd_);
  if (listen_fd_ >= 0) close(listen_fd_);
  struct stat current;
  if (socket_inode_ != 0 && lstat(path().c_str(), &current) == 0 &&
      current.st_dev == socket_device_ && current.st_ino == socket_inode_) {
    unlink(path().c_str());
  }
}

bool StreamPort::Accept() {
  bool attached = false;
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;  // EAGAIN: no more pending connections
    }
    if (connection_fd_ >= 0 && PeerHungUp(connection_fd_)) {
      // The attached peer is gone and we have not read its end of stream yet (a qemu that
      // was restarted, or a connection that only probed whether the path is in use): the
      // new peer replaces it.
      Disconnect();
    }
    if (connection_fd_ >= 0) {
      // One qemu per port: a second peer would interleave frames with the first.
      close(fd);
      ++stream_stats_.connections_refused;
      continue;
    }
    connection_fd_ = fd;
    ResetBuffers();
    ++stream_stats_.connections_accepted;
    attached = true;
  }
  return attached;
}

void StreamPort::ResetBuffers() {
  inbox_.resize(kInboxBytes);
  inbox_begin_ = inbox_end_ = 0;
  outbox_.clear();
  outbox_written_ = 0;
  send_blocked_ = false;
}

void StreamPort::Disconnect() {
  if (connection_fd_ < 0) return;
  close(connection_fd_);
  connection_fd_ = -1;
  ++connection_generation_;
  ++stream_stats_.disconnects;
  if (outbox_bytes() > 0) ++stream_stats_.outbox_frames_lost;
  ResetBuffers();
}

std::size_t StreamPort::ReceiveBurst(std::size_t max, const FrameSink& sink) {
  if (connection_fd_ < 0) return 0;
  const std::uint64_t generation = connection_generation_;
  std::size_t delivered = 0;
  while (delivered < max) {
    const std::size_t buffered = inbox_end_ - inbox_begin_;
    std::size_t frame_bytes = 0;
    if (buffered >= kPrefixBytes) {
      frame_bytes = wire::LoadBe32(inbox_.data() + inbox_begin_);
      if (frame_bytes == 0 || frame_bytes > kMaxFrameBytes) {
        // The stream has lost its framing; nothing after this point can be trusted.
        ++stream_stats_.protocol_errors;
        Disconnect();
        break;
      }
      if (buffered >= kPrefixBytes + frame_bytes) {
        PacketView view;
        view.frame = {inbox_.data() + inbox_begin_ + kPrefixBytes, frame_bytes};
        inbox_begin_ += kPrefixBytes + frame_bytes;
        ++stats_.rx_frames;
        stats_.rx_bytes += frame_bytes;
        ++delivered;
        sink(view);
        if (connection_generation_ != generation) break;
        continue;
      }
    }
    // Too few bytes for the next frame: make room at the end, then read.
    if (inbox_begin_ == inbox_end_) {
      inbox_begin_ = inbox_end_ = 0;
    } else if (inbox_.size() - inbox_begin_ < kPrefixBytes + kMaxFrameBytes) {
      std::memmove(inbox_.data(), inbox_.data() + inbox_begin_, buffered);
      inbox_begin_ = 0;
      inbox_end_ = buffered;
    }
    const ssize_t got =
        read(connection_fd_, inbox_.data() + inbox_end_, inbox_.size() - inbox_end_);
    if (got > 0) {
      inbox_end_ += static_cast<std::size_t>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Disconnect();  // end of stream (qemu exited) or a reset
    break;
  }
  return delivered;
}

bool StreamPort::ReceivePending() const {
  if (connection_fd_ < 0) return false;
  const std::size_t buffered = inbox_end_ - inbox_begin_;
  if (buffered >= kPrefixBytes &&
      buffered >= kPrefixBytes + wire::LoadBe32(inbox_.data() + inbox_begin_)) {
    return true;
  }
  return Port::ReceivePending();
}

bool StreamPort::FlushOutbox() {
  while (outbox_written_ < outbox_.size()) {
    const ssize_t wrote = send(connection_fd_, outbox_.data() + outbox_written_,
                               outbox_.size() - outbox_written_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (wrote > 0) {
      outbox_written_ += static_cast<std::size_t>(wrote);
      continue;
    }
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      send_blocked_ = true;
      return false;
    }
    Disconnect();
    return false;
  }
  outbox_.clear();
  outbox_written_ = 0;
  return true;
}

std::size_t StreamPort::SendBurst(std::span<const PacketView> frames) {
  if (connection_fd_ < 0) return 0;
  send_blocked_ = false;
  if (!FlushOutbox()) return 0;

  std::uint8_t prefixes[kSendBatch][kPrefixBytes];
  iovec iovecs[2 * kSendBatch];
  std::size_t taken = 0;
  while (taken < frames.size()) {
    if (frames[taken].frame.empty() || frames[taken].frame.size() > kMaxFrameBytes) {
      // qemu would take the length as a protocol error and drop the connection.
      ++stream_stats_.tx_oversized;
      ++stats_.tx_errors;
      ++taken;
      continue;
    }
    std::size_t batch = 0;
    std::size_t batch_bytes = 0;
    while (batch < kSendBatch && taken + batch < frames.size()) {
      const auto frame = frames[taken + batch].frame;
      if (frame.empty() || frame.size() > kMaxFrameBytes) break;
      wire::StoreBe32(prefixes[batch], static_cast<std::uint32_t>(frame.size()));
      iovecs[2 * batch] = {prefixes[batch], kPrefixBytes};
      iovecs[2 * batch + 1] = {const_cast<std::uint8_t*>(frame.data()), frame.size()};
      batch_bytes += kPrefixBytes + frame.size();
      ++batch;
    }
    msghdr message{};
    message.msg_iov = iovecs;
    message.msg_iovlen = 2 * batch;
    const ssize_t wrote = sendmsg(connection_fd_, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        send_blocked_ = true;
      } else {
        Disconnect();  // EPIPE, ECONNRESET: frames not taken stay with the caller
      }
      break;
    }
    // Walk the batch: whole frames are done; a frame cut short goes to the outbox.
    auto remaining = static_cast<std::size_t>(wrote);
    for (std::size_t i = 0; i < batch && remaining > 0; ++i) {
      const auto frame = frames[taken].frame;
      const std::size_t total = kPrefixBytes + frame.size();
      if (remaining < total) {
        if (remaining < kPrefixBytes) {
          outbox_.insert(outbox_.end(), prefixes[i] + remaining, prefixes[i] + kPrefixBytes);
          remaining = kPrefixBytes;
        }
        outbox_.insert(outbox_.end(),
                       frame.begin() + static_cast<std::ptrdiff_t>(remaining - kPrefixBytes),
                       frame.end());
        remaining = 0;
      } else {
        remaining -= total;
      }
      ++stats_.tx_frames;
      stats_.tx_bytes += frame.size();
      ++taken;
    }
    // After a short write the socket was full: push the outbox again (the peer may have
    // read meanwhile) and go on only if it drained; the next sendmsg tells whether there is
    // room now.
    if (static_cast<std::size_t>(wrote) < batch_bytes && !FlushOutbox()) break;
  }
  return taken;
}

bool StreamPort::CanSend() const {
  if (connection_fd_ < 0 || outbox_bytes() > 0) return false;
  if (!send_blocked_) return true;
  pollfd p{connection_fd_, POLLOUT, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0) send_blocked_ = false;
  return !send_blocked_;
}

}  // namespace vsnoop::datapath
