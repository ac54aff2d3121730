#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/epoll.h>

#include <array>
#include <chrono>
#include <utility>
#include <vector>

#include "source/event/dispatcher.h"

namespace sluice::event {

// The readiness of every EmbeddedFileEvent of one dispatcher, in one epoll set of our own that
// libevent polls as a single fd.
//
// Why not one libevent event per connection: libevent costs about 190 bytes of user-space
// memory per fd (its 128-byte `struct event`, the `evmap_io` entry and the fd-indexed slot),
// which was over a third of what an idle keep-alive connection cost in total. Here a connection
// pays only its EmbeddedFileEvent (32 bytes); the kernel's epoll entry is the same either way.
// nginx takes the same route (its own epoll, the event embedded in the connection).
//
// Level-triggered like libevent's, and with its conventions: an fd with no interest is removed
// from the set (otherwise a hung-up socket would report EPOLLHUP on every wait), and a hang-up
// or error reports every kind of readiness the event is interested in.
class IoPoller {
 public:
  // Polls the set through `base` (EV_READ | EV_PERSIST on the epoll fd). Aborts if the kernel
  // refuses an epoll fd: a dispatcher cannot run without one.
  explicit IoPoller(::event_base* base);
  ~IoPoller();
  IoPoller(const IoPoller&) = delete;
  IoPoller& operator=(const IoPoller&) = delete;

  // Makes the kernel's interest for `ev` match `events` (add, modify or remove).
  void update(EmbeddedFileEvent& ev, uint32_t events);
  // Removes `ev` for good: from the set, and from the batch being dispatched, so that a
  // readiness already collected for it is never delivered (it may be freed right after).
  void forget(EmbeddedFileEvent& ev);

  // See EmbeddedFileEvent::activate.
  void activate(EmbeddedFileEvent& ev, uint32_t ready);

  // See EmbeddedFileEvent::deferToEndOfCallback.
  bool deferToEndOfCallback(EmbeddedFileEvent::FlushCallback fn, void* owner);
  bool deferToEndOfBatch(EmbeddedFileEvent::FlushCallback fn, void* owner);
  void cancelDeferred(void* owner);

  // Events taken from the kernel per wake-up. More stay readable in the set; libevent calls us
  // again on its next iteration, after timers and other events had their turn.
  static constexpr int kBatch = 256;

  // While a batch is dispatched: the time it was taken from the kernel (as nginx caches its
  // time once per wake-up). Deadlines armed in the batch run from it: a request arms several
  // (stream idle, time to the response head, upstream idle — each re-armed as bytes move), and
  // a clock read for each showed in profiles. Staleness is the batch's own duration.
  bool inBatch() const { return batch_size_ != 0; }
  std::chrono::steady_clock::time_point batchTime() const { return batch_time_; }

 private:
  static void onReadable(evutil_socket_t, short, void* arg);
  static void onActivated(evutil_socket_t, short, void* arg);
  void dispatch();
  void dispatchActivated();
  // Runs one event's callback, then what it deferred.
  void deliver(EmbeddedFileEvent& ev, uint32_t ready);
  // Runs what the batch's callbacks deferred to its end (and what those defer in turn).
  void runBatchDeferred();

  int epfd_;
  struct ::event event_;
  // The batch being dispatched: entries of events forgotten meanwhile are cleared.
  std::array<epoll_event, kBatch> batch_;
  int batch_size_ = 0;
  int batch_next_ = 0;
  std::chrono::steady_clock::time_point batch_time_;
  bool in_callback_ = false;
  // Run after the current callback, in order (owners set to null were withdrawn).
  std::vector<std::pair<EmbeddedFileEvent::FlushCallback, void*>> deferred_;
  std::vector<std::pair<EmbeddedFileEvent::FlushCallback, void*>> running_;
  // Run after the current batch (deferToEndOfBatch).
  std::vector<std::pair<EmbeddedFileEvent::FlushCallback, void*>> batch_deferred_;
  std::vector<std::pair<EmbeddedFileEvent::FlushCallback, void*>> batch_running_;
  // Activated by hand (EmbeddedFileEvent::activate), delivered from `activate_event_`; entries
  // of events forgotten meanwhile are cleared.
  struct ::event activate_event_;
  std::vector<std::pair<EmbeddedFileEvent*, uint32_t>> activated_;
  std::vector<std::pair<EmbeddedFileEvent*, uint32_t>> activated_running_;
};

}  // namespace sluice::event
