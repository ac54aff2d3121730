#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>

#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "source/event/dispatcher.h"
#include "source/event/io_poller.h"

namespace sluice::event {

// The deadlines of one duration, oldest first, and the timer set for the oldest.
struct Deadline::List {
  std::chrono::milliseconds duration;
  Deadline* head = nullptr;
  Deadline* tail = nullptr;
  struct ::event timer;
  bool timer_armed = false;
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

 private:
  void runPosted();
  static void onDeadlineTimer(evutil_socket_t, short, void* arg);
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
  // One FIFO (and timer) per distinct Deadline duration; few exist, so a vector suffices.
  std::vector<std::unique_ptr<Deadline::List>> deadline_lists_;
  bool deferred_scheduled_ = false;
  // Readiness of the embedded file events (connections), polled as one libevent event.
  std::unique_ptr<IoPoller> poller_;
};

}  // namespace sluice::event
