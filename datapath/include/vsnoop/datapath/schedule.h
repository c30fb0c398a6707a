// Emulated CPU scheduling for a guest that is a network namespace: k VMs share one core,
// round-robin with fixed slices (Xen's credit scheduler, or Linux SCHED_RR with
// sched_rr_timeslice_ms = 30). While the guest is not on the core, frames to it stay in its
// buffer and frames from it are not read, as for a descheduled VM. No clock is read here:
// the datapath passes the time in.
//
// The model (documented with its calibration in docs/emulation.md):
//   - The guest runs until its slice is used up (then it queues behind the k-1 neighbours)
//     or until it has had nothing to do for `idle_yield` (it blocks, like an I/O-bound guest
//     waiting for an interrupt).
//   - Neighbours are CPU-bound (each burns a whole slice per turn) or I/O-bound (each runs
//     `neighbour_run` per turn). While the guest is blocked they take turns back to back.
//   - A blocked guest becomes runnable when a frame arrives for it or its own stack has
//     something to send (a timer fired). Like a woken SCHED_RR task, it queues behind every
//     neighbour: it waits for the running neighbour's turn to end and for the others'.
//   - `wake_passes` > 1 makes that wait longer by whole rounds of the neighbours: a qemu VM
//     whose I/O thread shares the core must first wait for that thread's turn (it moves the
//     frame into the guest and raises the interrupt) and only then queues its vCPU behind
//     the neighbours again. 1 is the Xen-like case (the backend runs on another core).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "vsnoop/clock.h"

namespace vsnoop::datapath {

struct ScheduleConfig {
  enum class Neighbours : std::uint8_t { kBurn, kYield };

  std::uint32_t vms = 1;   // k: VMs sharing the core, this one included
  std::uint32_t turn = 1;  // 1..k: this VM's place in the first round
  Duration slice = std::chrono::milliseconds(30);
  Neighbours neighbours = Neighbours::kBurn;
  Duration neighbour_run = std::chrono::milliseconds(1);  // per turn, when they yield
  Duration idle_yield = std::chrono::microseconds(500);
  std::uint32_t wake_passes = 1;  // rounds of the neighbours a woken VM waits through

  // "rr:vms=3:slice_ms=30:turn=2[:neighbours=burn|yield][:neighbour_ms=1][:idle_us=500]
  //  [:wake_passes=1]"
  static std::optional<ScheduleConfig> Parse(const std::string& text, std::string* error);
  std::string ToString() const;
};

class VmSchedule {
 public:
  enum class State : std::uint8_t {
    kRunning,  // on the core
    kQueued,   // runnable, waiting for its turn
    kBlocked,  // nothing to do: neighbours run
  };

  VmSchedule(const ScheduleConfig& config, Timestamp start);

  // Whether the VM is on the core at `now`. Call Advance first.
  bool running() const { return state_ == State::kRunning; }
  State state() const { return state_; }
  // Moves the state machine to `now`. `runnable`: frames wait for the VM or from it.
  void Advance(Timestamp now, bool runnable);
  // The VM did work (a frame delivered or read) at `now`: it is not idle.
  void NoteActivity(Timestamp now) { last_activity_ = now; }
  // When Advance should next be called even if nothing happens (a turn boundary, or the
  // moment an idle running VM blocks); nullopt while blocked. A running VM that was
  // runnable at the last Advance does not block while it stays so: its next event is the
  // end of its slice (a new frame or a drained buffer comes with a call to Advance).
  std::optional<Timestamp> NextEvent() const;

  const ScheduleConfig& config() const { return config_; }
  std::uint64_t turns() const { return turns_; }
  Duration time_running() const { return time_running_; }

 private:
  Duration NeighbourTurn() const;
  void StartRunning(Timestamp at);
  void StopRunning(Timestamp at, State next);

  ScheduleConfig config_;
  State state_ = State::kBlocked;
  Timestamp since_{0};  // start of the current state
  Timestamp until_{0};  // kRunning: end of slice; kQueued: start of the turn
  Timestamp last_activity_{0};
  bool runnable_ = false;  // as of the last Advance
  std::uint64_t turns_ = 0;
  Duration time_running_{0};
};

}  // namespace vsnoop::datapath
