// One interface for every way frames enter and leave vsnoopd (like Open vSwitch's
// netdev_class): AF_PACKET on a Linux interface, qemu's stream socket, an in-memory port
// for tests. A port receives bursts, sends bursts, and says whether it can take more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "vsnoop/datapath/packet.h"

namespace vsnoop::datapath {

struct PortStats {
  std::uint64_t rx_frames = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_frames = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t tx_errors = 0;    // frames the port could not send and dropped (lossy ports only)
  std::uint64_t rx_dropped = 0;   // frames the kernel dropped before we read them, when known
};

using FrameSink = std::function<void(const PacketView&)>;

class Port {
 public:
  explicit Port(std::string name) : name_(std::move(name)) {}
  virtual ~Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  const std::string& name() const { return name_; }

  // Hands up to `max` received frames to `sink`, in arrival order; returns how many.
  // A frame's bytes are valid only during its sink call.
  virtual std::size_t ReceiveBurst(std::size_t max, const FrameSink& sink) = 0;
  // Sends frames in order; returns how many the port took. A port takes fewer when its
  // peer or the kernel cannot take more now (the qemu stream socket when qemu does not
  // read, AF_PACKET on EAGAIN/ENOBUFS): the caller keeps the rest and retries when
  // send_fd() is writable. Frames it fails to send for other reasons are consumed and
  // counted (tx_errors). An empty span only flushes what the port still holds of an
  // earlier frame: CanSend() becomes true when that is done.
  virtual std::size_t SendBurst(std::span<const PacketView> frames) = 0;
  virtual bool CanSend() const { return true; }
  // Whether frames may carry GSO and partial checksums (VnetHeader); others get plain frames.
  virtual bool SupportsOffload() const = 0;
  // Whether frames wait to be received, without receiving them: the emulated scheduler
  // wakes a descheduled guest when its own stack has something to send.
  virtual bool ReceivePending() const;
  // Whether a peer is attached (a qemu process connected to the stream socket, say).
  virtual bool IsConnected() const { return true; }
  // Whether the port can carry `frame` at all: AF_PACKET refuses a plain frame longer than
  // the interface's MTU allows. Asked before vSnoop may acknowledge a frame, because a
  // frame the port refuses never reaches the VM.
  virtual bool Fits(const PacketView& /*frame*/) const { return true; }
  // Frames SendBurst consumed without sending (the tx_errors of stats(), without its cost).
  virtual std::uint64_t tx_refused() const { return 0; }

  // File descriptors for the event loop: readable when frames wait, writable when CanSend()
  // may have become true. -1 when the port has none (in-memory).
  virtual int receive_fd() const { return -1; }
  virtual int send_fd() const { return -1; }
  // For ports that accept a peer (the stream socket's listening fd): called when it is
  // readable. Returns true if the port's fds changed.
  virtual int listen_fd() const { return -1; }
  virtual bool Accept() { return false; }
  // For a port whose interface went away (IsConnected() false) and may come back under
  // the same name, as a VM's veth or tap does when the VM restarts: attaches to it again
  // if it exists now. Returns true if it did. Called about once a second while gone.
  virtual bool Reattach() { return false; }

  virtual PortStats stats() const = 0;

 private:
  std::string name_;
};

}  // namespace vsnoop::datapath
