#include "source/event/dispatcher_impl.h"

#include <event2/event_struct.h>
#include <event2/thread.h>

#include <cassert>
#include <cstdlib>
#include <mutex>

#include "source/common/logging.h"

namespace sluice::event {

namespace {

// File events and timers embed their libevent `struct event` (one allocation per object, not
// two). Connections use EmbeddedFileEvent (io_poller.h) instead; these serve listeners and the
// like.
class FileEventImpl : public FileEvent {
 public:
  FileEventImpl(::event_base* base, int fd, FileReadyCb cb, uint32_t events)
      : base_(base), fd_(fd), cb_(std::move(cb)) {
    event_assign(&ev_, base_, fd_, 0, &FileEventImpl::onEvent, this);
    setEnabled(events);
  }
  ~FileEventImpl() override { event_del(&ev_); }

  void setEnabled(uint32_t events) override {
    if (events == enabled_) return;
    enabled_ = events;
    // Interest changes re-assign the event in place (they happen on every partial write).
    event_del(&ev_);
    if (events == 0) return;
    short what = EV_PERSIST;
    if (events & kRead) what |= EV_READ;
    if (events & kWrite) what |= EV_WRITE;
    event_assign(&ev_, base_, fd_, what, &FileEventImpl::onEvent, this);
    event_add(&ev_, nullptr);
  }
  uint32_t enabled() const override { return enabled_; }

 private:
  static void onEvent(evutil_socket_t, short what, void* arg) {
    auto* self = static_cast<FileEventImpl*>(arg);
    uint32_t ready = 0;
    if (what & EV_READ) ready |= kRead;
    if (what & EV_WRITE) ready |= kWrite;
    self->cb_(ready);
  }

  ::event_base* base_;
  int fd_;
  uint32_t enabled_ = 0;
  FileReadyCb cb_;
  struct ::event ev_;
};

class TimerImpl : public Timer {
 public:
  TimerImpl(::event_base* base, std::function<void()> cb) : cb_(std::move(cb)) {
    evtimer_assign(&ev_, base, &TimerImpl::onTimer, this);
  }
  ~TimerImpl() override { evtimer_del(&ev_); }
  void enableTimer(std::chrono::milliseconds delay) override {
    struct timeval tv;
    tv.tv_sec = delay.count() / 1000;
    tv.tv_usec = (delay.count() % 1000) * 1000;
    evtimer_add(&ev_, &tv);
  }
  void disableTimer() override { evtimer_del(&ev_); }
  bool enabled() const override { return evtimer_pending(&ev_, nullptr) != 0; }

 private:
  static void onTimer(evutil_socket_t, short, void* arg) { static_cast<TimerImpl*>(arg)->cb_(); }
  std::function<void()> cb_;
  struct ::event ev_;
};

class SignalEventImpl : public SignalEvent {
 public:
  SignalEventImpl(::event_base* base, int signum, std::function<void()> cb) : cb_(std::move(cb)) {
    ev_ = evsignal_new(base, signum, &SignalEventImpl::onSignal, this);
    evsignal_add(ev_, nullptr);
  }
  ~SignalEventImpl() override { event_free(ev_); }

 private:
  static void onSignal(evutil_socket_t, short, void* arg) {
    static_cast<SignalEventImpl*>(arg)->cb_();
  }
  std::function<void()> cb_;
  ::event* ev_;
};

}  // namespace

void InitializeLibevent() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (evthread_use_pthreads() != 0) {
      SLUICE_LOG(kError, "libevent: evthread_use_pthreads failed");
      std::abort();
    }
  });
}

DispatcherPtr CreateDispatcher(std::string name) {
  InitializeLibevent();
  return std::make_unique<DispatcherImpl>(std::move(name));
}

DispatcherImpl::DispatcherImpl(std::string name) : name_(std::move(name)) {
  event_config* cfg = event_config_new();
  // Precise timers are not needed; the cached time of the loop is good enough for timeouts.
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (base_ == nullptr) {
    SLUICE_LOG(kError, "libevent: event_base_new failed");
    std::abort();
  }
  event_base_priority_init(base_, 2);
  post_event_ = event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<DispatcherImpl*>(arg)->runPosted(); },
      this);
  deferred_event_ = event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<DispatcherImpl*>(arg)->clearDeferred(); },
      this);
  // Lower priority than I/O: deletions run after every I/O callback of this iteration.
  event_priority_set(deferred_event_, 1);
  event_priority_set(post_event_, 0);
  poller_ = std::make_unique<IoPoller>(base_);
}

DispatcherImpl::~DispatcherImpl() {
  clearDeferred();
  runPosted();  // Posted closures may own resources; run them rather than leak.
  clearDeferred();
  // Owners outlive nothing here, but a Deadline left armed must not point into freed lists.
  for (auto& l : deadline_lists_) {
    while (l->head != nullptr) l->head->cancel();
    evtimer_del(&l->timer);
  }
  poller_.reset();
  event_free(post_event_);
  event_free(deferred_event_);
  event_base_free(base_);
}

FileEventPtr DispatcherImpl::createFileEvent(int fd, FileReadyCb cb, uint32_t events) {
  return std::make_unique<FileEventImpl>(base_, fd, std::move(cb), events);
}

TimerPtr DispatcherImpl::createTimer(std::function<void()> cb) {
  return std::make_unique<TimerImpl>(base_, std::move(cb));
}

void Deadline::cancel() {
  if (list_ == nullptr) return;
  if (prev_ != nullptr)
    prev_->next_ = next_;
  else
    list_->head = next_;
  if (next_ != nullptr)
    next_->prev_ = prev_;
  else
    list_->tail = prev_;
  prev_ = next_ = nullptr;
  list_ = nullptr;
  // The list's timer may fire for nothing; it then re-arms for the new head or stops.
}

namespace {
void ArmListTimer(Deadline::List& list, std::chrono::steady_clock::time_point expiry) {
  auto wait = std::chrono::duration_cast<std::chrono::microseconds>(
      expiry - std::chrono::steady_clock::now());
  if (wait.count() < 0) wait = std::chrono::microseconds(0);
  struct timeval tv;
  tv.tv_sec = wait.count() / 1000000;
  tv.tv_usec = wait.count() % 1000000;
  evtimer_add(&list.timer, &tv);
  list.timer_armed = true;
}
}  // namespace

void DispatcherImpl::armDeadline(Deadline& d, std::chrono::milliseconds delay,
                                 DeadlineCallbacks& callbacks) {
  // Re-arming with the same duration (an idle timeout pushed back as bytes move, several times
  // per request) keeps the list: no search.
  Deadline::List* list = d.list_ != nullptr && d.list_->duration == delay ? d.list_ : nullptr;
  d.cancel();
  if (list == nullptr) {
    for (auto& l : deadline_lists_) {
      if (l->duration == delay) {
        list = l.get();
        break;
      }
    }
  }
  if (list == nullptr) {
    deadline_lists_.push_back(std::make_unique<Deadline::List>());
    list = deadline_lists_.back().get();
    list->duration = delay;
    evtimer_assign(&list->timer, base_, &DispatcherImpl::onDeadlineTimer, list);
  }
  d.callbacks_ = &callbacks;
  d.expiry_ = now() + delay;
  d.list_ = list;
  d.prev_ = list->tail;
  d.next_ = nullptr;
  if (list->tail != nullptr) {
    list->tail->next_ = &d;
  } else {
    list->head = &d;
  }
  list->tail = &d;
  // Same duration, later arming: never earlier than the head, so only an idle list needs a
  // timer set here.
  if (!list->timer_armed) ArmListTimer(*list, d.expiry_);
}

void DispatcherImpl::onDeadlineTimer(evutil_socket_t, short, void* arg) {
  auto* list = static_cast<Deadline::List*>(arg);
  list->timer_armed = false;
  const auto now = std::chrono::steady_clock::now();
  // Callbacks may arm or cancel deadlines (this list's too): take one head at a time.
  while (list->head != nullptr && list->head->expiry_ <= now) {
    Deadline* d = list->head;
    d->cancel();
    d->callbacks_->onDeadline(*d);
  }
  if (list->head != nullptr && !list->timer_armed) ArmListTimer(*list, list->head->expiry_);
}

SignalEventPtr DispatcherImpl::listenForSignal(int signum, std::function<void()> cb) {
  return std::make_unique<SignalEventImpl>(base_, signum, std::move(cb));
}

void DispatcherImpl::post(std::function<void()> cb) {
  bool was_empty;
  {
    absl::MutexLock lock(&post_mu_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(cb));
  }
  if (was_empty) event_active(post_event_, 0, 0);
}

void DispatcherImpl::runPosted() {
  std::vector<std::function<void()>> batch;
  {
    absl::MutexLock lock(&post_mu_);
    batch.swap(posted_);
  }
  for (auto& cb : batch) cb();
}

void DispatcherImpl::deferredDelete(DeferredDeletablePtr obj) {
  to_delete_.push_back(std::move(obj));
  if (!deferred_scheduled_) {
    deferred_scheduled_ = true;
    event_active(deferred_event_, 0, 0);
  }
}

void DispatcherImpl::clearDeferred() {
  // Destructors may defer more deletions; keep going until none are left.
  while (!to_delete_.empty()) {
    std::vector<DeferredDeletablePtr> batch;
    batch.swap(to_delete_);
    batch.clear();
  }
  deferred_scheduled_ = false;
}

void DispatcherImpl::run() {
  run_thread_ = std::this_thread::get_id();
  // Keep looping while no event is registered: work may arrive through post().
  event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  // Work posted just before exit (e.g. final cleanup) still runs.
  runPosted();
  clearDeferred();
}

void DispatcherImpl::exit() {
  post([this] { event_base_loopbreak(base_); });
}

bool DispatcherImpl::isThreadSafe() const { return std::this_thread::get_id() == run_thread_; }

std::chrono::steady_clock::time_point DispatcherImpl::now() {
  // Inside a batch of I/O events, the batch's time (see IoPoller::batchTime); elsewhere (timers,
  // posted work, other threads' setup) the clock: monotonic, unlike libevent's cached wall clock.
  if (poller_ && poller_->inBatch()) return poller_->batchTime();
  return std::chrono::steady_clock::now();
}

}  // namespace sluice::event
