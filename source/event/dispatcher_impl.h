#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "source/event/dispatcher.h"
#include "source/event/io_poller.h"

namespace sluice::event {

class DispatcherImpl;

// What an armed Deadline points to; the kind tells which of its position fields is in use.
struct Deadline::Queue {
  explicit Queue(bool heap) : is_heap(heap) {}
  const bool is_heap;
};

// The deadlines of one duration, oldest first, and the timer set for the oldest.
struct Deadline::List : Deadline::Queue {
  List() : Queue(false) {}
  // On every arm and cancel (several per request): inline.
  __attribute__((always_inline)) void append(Deadline& d) {
    d.queue_ = this;
    d.links_ = Links{tail, nullptr};
    if (tail != nullptr) {
      tail->links_.next = &d;
    } else {
      head = &d;
    }
    tail = &d;
  }
  __attribute__((always_inline)) void unlink(Deadline& d) {
    Deadline* prev = d.links_.prev;
    Deadline* next = d.links_.next;
    if (prev != nullptr) {
      prev->links_.next = next;
    } else {
      head = next;
    }
    if (next != nullptr) {
      next->links_.prev = prev;
    } else {
      tail = prev;
    }
    d.links_ = Links{nullptr, nullptr};
  }

  DispatcherImpl* dispatcher = nullptr;
  std::chrono::milliseconds duration{0};
  Deadline* head = nullptr;
  Deadline* tail = nullptr;
  struct ::event timer;
  bool timer_armed = false;
};

// Deadlines of arbitrary durations: a 4-ary min-heap on (expiry, arming order) in an array, each
// Deadline knowing its index. 4-ary rather than binary: half the depth, so half the index writes
// into (scattered) Deadlines when one moves up on arming, for up to three more comparisons per
// level on the way down (cancel, pop); the four child pointers are adjacent in the array.
struct Deadline::Heap : Deadline::Queue {
  Heap() : Queue(true) {}
  bool empty() const { return entries.empty(); }
  Deadline* top() const { return entries.front(); }
  void push(Deadline& d);
  void remove(Deadline& d);
  // Restores the order after d's key (expiry, seq) changed in place.
  void update(Deadline& d);

  std::vector<Deadline*> entries;
  uint64_t next_seq = 0;
  struct ::event timer;
  bool timer_armed = false;
  std::chrono::steady_clock::time_point timer_expiry;  // what the timer is set for, when armed
  bool firing = false;  // inside the timer's pass: it sets the timer once done

 private:
  static bool Before(const Deadline* a, const Deadline* b);
  void place(Deadline* d, size_t i);
  void siftUp(size_t i);
  void siftDown(size_t i);
};

class DispatcherImpl : public Dispatcher {
 public:
  explicit DispatcherImpl(std::string name);
  ~DispatcherImpl() override;

  const std::string& name() const override { return name_; }
  FileEventPtr createFileEvent(int fd, FileReadyCb cb, uint32_t events) override;
  TimerPtr createTimer(std::function<void()> cb) override;
  void armDeadline(Deadline& deadline, std::chrono::milliseconds delay,
                   DeadlineCallbacks& callbacks) override;
  void armVariableDeadline(Deadline& deadline, std::chrono::milliseconds delay,
                           DeadlineCallbacks& callbacks) override;
  SignalEventPtr listenForSignal(int signum, std::function<void()> cb) override;
  void post(std::function<void()> cb) override;
  void deferredDelete(DeferredDeletablePtr obj) override;
  void run() override;
  void exit() override;
  bool isThreadSafe() const override;
  std::chrono::steady_clock::time_point now() override;

  ::event_base* base() { return base_; }
  IoPoller& poller() { return *poller_; }
  bool deferToEndOfBatch(EmbeddedFileEvent::FlushCallback fn, void* owner) override;
  void cancelDeferred(void* owner) override;

  // FIFO lists allocated (in use or kept spare): bounded by the durations in use, not by every
  // duration ever armed.
  size_t deadlineListCountForTest() const {
    return deadline_lists_.size() + spare_deadline_lists_.size();
  }
  // Retired lists kept for reuse, so that a duration armed and drained over and over (a
  // zero-delay resume, one lone idle connection) does not allocate each time.
  static constexpr size_t kMaxSpareDeadlineLists = 4;

 private:
  void runPosted();
  // The list of `duration` (a search over the few in use; made or revived when none).
  __attribute__((always_inline)) Deadline::List& deadlineList(std::chrono::milliseconds duration) {
    for (auto& l : deadline_lists_) {
      if (l->duration == duration) return *l;
    }
    return newDeadlineList(duration);
  }
  Deadline::List& newDeadlineList(std::chrono::milliseconds duration);
  void onListTimer(Deadline::List& list);
  void retireList(Deadline::List& list);
  void onHeapTimer();
  void clearDeferred();

  std::string name_;
  ::event_base* base_;
  std::thread::id run_thread_;
  // Wakes the loop for posted work; activated from any thread (libevent is pthreads-aware).
  ::event* post_event_;
  // Runs deferred deletions once the current batch of callbacks is done.
  ::event* deferred_event_;
  absl::Mutex post_mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(post_mu_);
  std::vector<DeferredDeletablePtr> to_delete_;
  // One FIFO (and timer) per Deadline duration in use; few exist, so a vector suffices.
  std::vector<std::unique_ptr<Deadline::List>> deadline_lists_;
  // Retired (empty, timer idle) lists, at most kMaxSpareDeadlineLists.
  std::vector<std::unique_ptr<Deadline::List>> spare_deadline_lists_;
  Deadline::Heap deadline_heap_;
  bool deferred_scheduled_ = false;
  // Readiness of the embedded file events (connections), polled as one libevent event.
  std::unique_ptr<IoPoller> poller_;
};

}  // namespace sluice::event
