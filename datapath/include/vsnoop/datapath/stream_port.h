// StreamPort: the server end of qemu's stream netdev,
//   -netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH
// qemu connects to PATH and each frame travels as a 4-byte big-endian length followed by
// the frame. There is no vnet header, so frames are plain (SupportsOffload() is false): the
// datapath segments GSO super-frames and completes partial checksums before sending here.
//
// The port is lossless: a frame SendBurst takes is delivered while the peer stays
// connected. When the socket fills up, the unwritten rest of the frame being written waits
// in an outbox and no further frame is taken until it drains.
//
// Event loop contract:
//   - listen_fd() readable: call Accept(); it returns true when receive_fd()/send_fd()
//     changed (a peer attached). They also change when the peer goes (IsConnected() false).
//   - receive_fd() readable: call ReceiveBurst.
//   - CanSend() false while connected: wait until send_fd() is writable, then call
//     SendBurst (an empty span is fine): it writes the outbox first, then takes frames.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vsnoop/datapath/port.h"

namespace vsnoop::datapath {

struct StreamPortStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // a second peer while one is attached: closed
  std::uint64_t disconnects = 0;          // the peer closed, reset, or broke the protocol
  std::uint64_t protocol_errors = 0;      // a length prefix of 0 or above kMaxFrameBytes
  std::uint64_t outbox_frames_lost = 0;   // partly written frames lost with their peer
  std::uint64_t tx_oversized = 0;         // empty or above kMaxFrameBytes: not sent (tx_errors)
};

class StreamPort final : public Port {
 public:
  // qemu's receive buffer for one frame (NET_BUFSIZE in qemu's include/net/net.h): a longer
  // frame makes qemu drop the connection, so the port never sends one, and a longer length
  // from the peer is a protocol error.
  static constexpr std::size_t kMaxFrameBytes = 4096 + 65536;

  // Binds and listens on `path` (non-blocking). A stale socket file left by a previous run
  // is replaced; a path where something accepts connections, or that is not a socket,
  // is an error. On failure returns nullptr and says why in *error.
  static std::unique_ptr<StreamPort> Open(const std::string& path, std::string* error);
  // Closes the sockets and removes the socket file (if it is still the one this port made).
  ~StreamPort() override;

  std::size_t ReceiveBurst(std::size_t max, const FrameSink& sink) override;
  // Takes frames in order while the socket has room; a frame is taken when its first byte
  // is written. Returns 0 while no peer is connected (nothing is taken, nothing is lost).
  // REQUIRES: frames carry no offload metadata (SupportsOffload() is false).
  std::size_t SendBurst(std::span<const PacketView> frames) override;
  // True when connected, the outbox is empty and the socket is not known to be full.
  bool CanSend() const override;
  bool SupportsOffload() const override { return false; }
  bool IsConnected() const override { return connection_fd_ >= 0; }
  bool Fits(const PacketView& frame) const override {
    return !frame.frame.empty() && frame.frame.size() <= kMaxFrameBytes;
  }
  std::uint64_t tx_refused() const override { return stats_.tx_errors; }
  // A complete frame already buffered, or bytes (or the end of stream) on the socket.
  bool ReceivePending() const override;

  int receive_fd() const override { return connection_fd_; }
  int send_fd() const override { return connection_fd_; }
  int listen_fd() const override { return listen_fd_; }
  bool Accept() override;

  PortStats stats() const override { return stats_; }
  StreamPortStats stream_stats() const { return stream_stats_; }

  const std::string& path() const { return name(); }
  // Bytes of a partly written frame still waiting to go out.
  std::size_t outbox_bytes() const { return outbox_.size() - outbox_written_; }

 private:
  explicit StreamPort(const std::string& path);

  bool Listen(std::string* error);
  // Writes what the socket takes of the outbox; true when it is empty.
  bool FlushOutbox();
  void Disconnect();
  void ResetBuffers();

  int listen_fd_ = -1;
  int connection_fd_ = -1;
  // Bumped on every disconnect, so ReceiveBurst notices a sink that made the port drop
  // its peer (through SendBurst on the same port).
  std::uint64_t connection_generation_ = 0;
  // The socket file this port created, so the destructor never removes another's.
  dev_t socket_device_ = 0;
  ino_t socket_inode_ = 0;

  // Received bytes: frames in [inbox_begin_, inbox_end_), the last one possibly partial.
  std::vector<std::uint8_t> inbox_;
  std::size_t inbox_begin_ = 0;
  std::size_t inbox_end_ = 0;
  // The unwritten rest of one frame (length prefix included).
  std::vector<std::uint8_t> outbox_;
  std::size_t outbox_written_ = 0;

  mutable bool send_blocked_ = false;  // the last write found the socket full
  PortStats stats_;
  StreamPortStats stream_stats_;
};

}  // namespace vsnoop::datapath
