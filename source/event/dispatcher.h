#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sluice::event {

// Readiness kinds for file events (bit mask).
enum FileReadyType : uint32_t {
  kRead = 0x1,
  kWrite = 0x2,
};

// Interest in one fd's readiness, level-triggered. Destroying it removes the interest; it never
// closes the fd.
class FileEvent {
 public:
  virtual ~FileEvent() = default;
  // Replaces the interest set (a FileReadyType mask; 0 = none).
  virtual void setEnabled(uint32_t events) = 0;
  virtual uint32_t enabled() const = 0;
};
using FileEventPtr = std::unique_ptr<FileEvent>;
using FileReadyCb = std::function<void(uint32_t ready)>;

// A one-shot timer; re-arm it from its own callback for periodic work.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void enableTimer(std::chrono::milliseconds delay) = 0;
  virtual void disableTimer() = 0;
  virtual bool enabled() const = 0;
};
using TimerPtr = std::unique_ptr<Timer>;

class SignalEvent {
 public:
  virtual ~SignalEvent() = default;
};
using SignalEventPtr = std::unique_ptr<SignalEvent>;

class Dispatcher;
class IoPoller;

// A file event stored inside its owner, for objects that exist by the ten thousand
// (connections): no allocation, no std::function, 32 bytes. The owner supplies a plain function
// (see Trampoline) called with the owner and the ready mask. Level-triggered, like FileEvent.
// Used on its dispatcher's thread only. Once reset() (or destroyed), no readiness collected
// earlier is delivered, even within the batch being dispatched, so an owner may free itself or
// another owner from its callback.
class EmbeddedFileEvent {
 public:
  using RawCallback = void (*)(void* owner, uint32_t ready);

  EmbeddedFileEvent() = default;
  ~EmbeddedFileEvent() { reset(); }
  EmbeddedFileEvent(const EmbeddedFileEvent&) = delete;
  EmbeddedFileEvent& operator=(const EmbeddedFileEvent&) = delete;

  // Binds to `fd` with no interest yet.
  void assign(Dispatcher& dispatcher, int fd, RawCallback callback, void* owner);
  // Replaces the interest set (a FileReadyType mask).
  void setEnabled(uint32_t events);
  uint32_t enabled() const { return enabled_; }
  bool assigned() const { return poller_ != nullptr; }
  // Removes any interest and unbinds (before the fd is closed).
  void reset();
  // Delivers `ready` (masked by the interest at delivery time) soon, from the loop, as if the
  // kernel had reported it: for readiness the socket cannot report (a TLS layer holding
  // decrypted bytes already taken from the kernel). Repeated calls before delivery merge.
  void activate(uint32_t ready);

  // While the dispatcher is running an embedded event's callback (this one's or another's),
  // queues `fn(owner)` to run once that callback has returned, and returns true; returns false
  // (nothing queued) otherwise. For gathering writes: what several callbacks of one event write
  // to a connection (a proxied response's head and body) goes out in one syscall.
  using FlushCallback = void (*)(void* owner);
  bool deferToEndOfCallback(FlushCallback fn, void* owner);
  // The same, but `fn(owner)` runs once every event of the current batch (all the readiness the
  // kernel reported in one wake-up) had its callback: for a connection that the events of many
  // others write to (HTTP/2: each upstream's response arrives on its own connection), one
  // syscall for all of them.
  bool deferToEndOfBatch(FlushCallback fn, void* owner);
  // Withdraws what either queued for `owner` (it is going away).
  void cancelDeferred(void* owner);

  // A RawCallback that calls `(owner->*Method)(ready_mask)`.
  template <class Owner, void (Owner::*Method)(uint32_t)>
  static void Trampoline(void* owner, uint32_t ready) {
    (static_cast<Owner*>(owner)->*Method)(ready);
  }

 private:
  friend class IoPoller;
  IoPoller* poller_ = nullptr;
  RawCallback callback_ = nullptr;
  void* owner_ = nullptr;
  int fd_ = -1;
  uint8_t enabled_ = 0;      // FileReadyType mask asked for
  bool registered_ = false;  // in the kernel's set (not while the mask is 0)
};

class Deadline;

// Who is told when a Deadline passes.
class DeadlineCallbacks {
 public:
  virtual ~DeadlineCallbacks() = default;
  virtual void onDeadline(Deadline& deadline) = 0;
};

// A timeout embedded in its owner: no allocation and no libevent event of its own. Every
// connection and stream carries a few, so it is kept to five words (40 bytes on 64-bit).
//
// The dispatcher keeps armed Deadlines in one of two kinds of queue, chosen by the caller:
// - Dispatcher::armDeadline, for durations fixed by config (idle, request headers, keepalive):
//   Deadlines armed with the same duration expire in the order they were armed, so one FIFO per
//   distinct duration, with one timer for its head, keeps them sorted for free: arming and
//   cancelling are O(1) list operations, which matters for the idle timeout pushed back as bytes
//   move, several times per request. A list left empty is retired when its timer next fires
//   (at most a few retired lists are kept for reuse), so only the durations in use cost
//   anything, not every duration ever used.
// - Dispatcher::armVariableDeadline, for durations that differ from one arming to the next
//   (backoff with jitter, Retry-After, per-request timeouts from headers): a FIFO per duration
//   would mean a list and a timer per value, so these go in one min-heap (one timer for its top),
//   O(log n) to arm, re-arm and cancel.
// Re-arming an armed Deadline, with either call, moves it (to the other kind if need be).
// cancel() and destruction work for both. Deadlines due at the same instant in one queue fire in
// the order they were armed. A callback may arm, cancel or destroy any Deadline, including others
// due in the same pass. In the heap, one armed from a callback fires on a later pass even when
// already due, so a zero-delay re-arm cannot keep the loop from I/O.
// Used on the dispatcher's thread only.
class Deadline {
 public:
  Deadline() = default;
  ~Deadline() { cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  bool armed() const { return queue_ != nullptr; }
  void cancel();

  // The dispatcher's bookkeeping (defined by the implementation): Queue is what an armed
  // Deadline points to, a List (FIFO) or the Heap.
  struct Queue;
  struct List;
  struct Heap;

 private:
  friend class DispatcherImpl;
  // Where the Deadline sits in its queue; which member is in use follows queue_'s kind, so the
  // two kinds share the space (this is what keeps the size of a FIFO-only Deadline).
  struct Links {
    Deadline* prev;
    Deadline* next;
  };
  struct HeapSlot {
    uint64_t seq;    // arming order: breaks ties between equal expiries
    uint32_t index;  // position in the heap's array, for O(log n) removal
  };
  union {
    Links links_{nullptr, nullptr};
    HeapSlot slot_;
  };
  Queue* queue_ = nullptr;  // null while not armed
  std::chrono::steady_clock::time_point expiry_;
  DeadlineCallbacks* callbacks_ = nullptr;
};

// An object whose destruction must wait until the current event has been handled, e.g. a
// connection that closes itself from inside its own callback.
class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};
using DeferredDeletablePtr = std::unique_ptr<DeferredDeletable>;

// One event loop, run by exactly one thread. Everything but post() and exit() must be called on
// that thread.
class Dispatcher {
 public:
  virtual ~Dispatcher() = default;

  virtual const std::string& name() const = 0;
  virtual FileEventPtr createFileEvent(int fd, FileReadyCb cb, uint32_t events) = 0;
  virtual TimerPtr createTimer(std::function<void()> cb) = 0;
  // (Re-)arms `deadline` to call `callbacks` after `delay`, in the FIFO of that duration: for
  // durations fixed by config, few and reused (see Deadline).
  virtual void armDeadline(Deadline& deadline, std::chrono::milliseconds delay,
                           DeadlineCallbacks& callbacks) = 0;
  // The same for a duration computed per use (backoff, Retry-After, a timeout from a header):
  // the Deadline goes in a min-heap, so arbitrary values cost no list or timer each.
  virtual void armVariableDeadline(Deadline& deadline, std::chrono::milliseconds delay,
                                   DeadlineCallbacks& callbacks) = 0;
  // Signals are process-wide: listen on the main dispatcher only.
  virtual SignalEventPtr listenForSignal(int signum, std::function<void()> cb) = 0;

  // Runs `cb` on this dispatcher's thread soon. Safe from any thread; callbacks run in post order.
  virtual void post(std::function<void()> cb) = 0;
  // Destroys `obj` after the current event's callbacks have returned.
  virtual void deferredDelete(DeferredDeletablePtr obj) = 0;

  // Runs the loop until exit(). Posted callbacks still queued at exit are run first.
  virtual void run() = 0;
  // Makes run() return. Safe from any thread.
  virtual void exit() = 0;
  // True when called on the thread running this dispatcher.
  virtual bool isThreadSafe() const = 0;
  // The monotonic clock.
  virtual std::chrono::steady_clock::time_point now() = 0;
  // While an event callback runs: queues `fn(owner)` to run once every event of the current
  // batch had its callback (EmbeddedFileEvent::deferToEndOfBatch) and returns true; false (nothing
  // queued) outside of one. cancelDeferred withdraws it.
  virtual bool deferToEndOfBatch(EmbeddedFileEvent::FlushCallback, void*) { return false; }
  virtual void cancelDeferred(void*) {}
};
using DispatcherPtr = std::unique_ptr<Dispatcher>;

// libevent must be told about pthreads before the first event_base exists; call once at start.
void InitializeLibevent();
DispatcherPtr CreateDispatcher(std::string name);

}  // namespace sluice::event
