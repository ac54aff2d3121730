#include "source/event/dispatcher_impl.h"

#include <event2/event_struct.h>
#include <event2/thread.h>

#include <algorithm>
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
  evtimer_assign(
      &deadline_heap_.timer, base_,
      [](evutil_socket_t, short, void* arg) { static_cast<DispatcherImpl*>(arg)->onHeapTimer(); },
      this);
}

DispatcherImpl::~DispatcherImpl() {
  clearDeferred();
  runPosted();  // Posted closures may own resources; run them rather than leak.
  clearDeferred();
  // Owners outlive nothing here, but a Deadline left armed must not point into freed queues.
  for (auto& l : deadline_lists_) {
    while (l->head != nullptr) l->head->cancel();
    evtimer_del(&l->timer);
  }
  for (auto& l : spare_deadline_lists_) evtimer_del(&l->timer);
  for (Deadline* d : deadline_heap_.entries) d->queue_ = nullptr;
  deadline_heap_.entries.clear();
  evtimer_del(&deadline_heap_.timer);
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

// Five words: what every connection and stream pays per timeout (see Deadline).
static_assert(sizeof(Deadline) <= 5 * 8, "Deadline is embedded by the ten thousand: keep it small");

void Deadline::cancel() {
  if (queue_ == nullptr) return;
  if (queue_->is_heap) {
    static_cast<Heap*>(queue_)->remove(*this);
  } else {
    static_cast<List*>(queue_)->unlink(*this);
  }
  queue_ = nullptr;
  // The queue's timer may fire for nothing; it then re-arms for the new first or stops.
}

bool Deadline::Heap::Before(const Deadline* a, const Deadline* b) {
  if (a->expiry_ != b->expiry_) return a->expiry_ < b->expiry_;
  return a->slot_.seq < b->slot_.seq;
}

void Deadline::Heap::place(Deadline* d, size_t i) {
  entries[i] = d;
  d->slot_.index = static_cast<uint32_t>(i);
}

// Moves the hole, not the element, down the path: one write per level.
void Deadline::Heap::siftUp(size_t i) {
  Deadline* d = entries[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 4;
    if (!Before(d, entries[parent])) break;
    place(entries[parent], i);
    i = parent;
  }
  place(d, i);
}

void Deadline::Heap::siftDown(size_t i) {
  Deadline* d = entries[i];
  const size_t n = entries.size();
  for (;;) {
    const size_t first = 4 * i + 1;
    if (first >= n) break;
    const size_t last = std::min(first + 4, n);
    size_t best = first;
    for (size_t c = first + 1; c < last; ++c) {
      if (Before(entries[c], entries[best])) best = c;
    }
    if (!Before(entries[best], d)) break;
    place(entries[best], i);
    i = best;
  }
  place(d, i);
}

void Deadline::Heap::push(Deadline& d) {
  d.queue_ = this;
  entries.push_back(&d);
  d.slot_.index = static_cast<uint32_t>(entries.size() - 1);
  siftUp(entries.size() - 1);
}

void Deadline::Heap::remove(Deadline& d) {
  const size_t i = d.slot_.index;
  Deadline* last = entries.back();
  entries.pop_back();
  if (last == &d) return;
  // The last entry fills the hole; it may belong above it (another subtree) or below.
  place(last, i);
  update(*last);
}

void Deadline::Heap::update(Deadline& d) {
  const size_t i = d.slot_.index;
  if (i > 0 && Before(&d, entries[(i - 1) / 4])) {
    siftUp(i);
  } else {
    siftDown(i);
  }
}

namespace {
void ArmTimer(struct ::event& timer, std::chrono::steady_clock::time_point expiry) {
  auto wait = std::chrono::duration_cast<std::chrono::microseconds>(
      expiry - std::chrono::steady_clock::now());
  if (wait.count() < 0) wait = std::chrono::microseconds(0);
  struct timeval tv;
  tv.tv_sec = wait.count() / 1000000;
  tv.tv_usec = wait.count() % 1000000;
  evtimer_add(&timer, &tv);
}
}  // namespace

Deadline::List& DispatcherImpl::newDeadlineList(std::chrono::milliseconds duration) {
  if (!spare_deadline_lists_.empty()) {
    deadline_lists_.push_back(std::move(spare_deadline_lists_.back()));
    spare_deadline_lists_.pop_back();
  } else {
    deadline_lists_.push_back(std::make_unique<Deadline::List>());
    Deadline::List& fresh = *deadline_lists_.back();
    fresh.dispatcher = this;
    evtimer_assign(
        &fresh.timer, base_,
        [](evutil_socket_t, short, void* arg) {
          auto* list = static_cast<Deadline::List*>(arg);
          list->dispatcher->onListTimer(*list);
        },
        &fresh);
  }
  Deadline::List& list = *deadline_lists_.back();
  list.duration = duration;
  return list;
}

void DispatcherImpl::armDeadline(Deadline& d, std::chrono::milliseconds delay,
                                 DeadlineCallbacks& callbacks) {
  // Re-arming with the same duration (an idle timeout pushed back as bytes move, several times
  // per request) keeps the list: no search.
  Deadline::List* list = nullptr;
  if (d.queue_ != nullptr && !d.queue_->is_heap) {
    auto* current = static_cast<Deadline::List*>(d.queue_);
    if (current->duration == delay) list = current;
  }
  d.cancel();
  if (list == nullptr) list = &deadlineList(delay);
  d.callbacks_ = &callbacks;
  d.expiry_ = now() + delay;
  list->append(d);
  // Same duration, later arming: never earlier than the head, so only an idle list needs a
  // timer set here.
  if (!list->timer_armed) {
    ArmTimer(list->timer, d.expiry_);
    list->timer_armed = true;
  }
}

void DispatcherImpl::onListTimer(Deadline::List& list) {
  list.timer_armed = false;
  const auto now = std::chrono::steady_clock::now();
  // Callbacks may arm or cancel deadlines (this list's too): take one head at a time.
  while (list.head != nullptr && list.head->expiry_ <= now) {
    Deadline* d = list.head;
    d->cancel();
    d->callbacks_->onDeadline(*d);
  }
  if (list.head == nullptr) {
    // Nothing left of this duration: retire the list, so that lists follow the durations in use.
    // Only here, in its own timer's callback, so no pass over it is ever under way. Not the
    // zero-delay list: connections resume through it at every request, and retiring and
    // reviving it each time costs a search and two vector moves per request.
    if (list.duration.count() != 0) retireList(list);
    return;
  }
  if (!list.timer_armed) {
    ArmTimer(list.timer, list.head->expiry_);
    list.timer_armed = true;
  }
}

void DispatcherImpl::retireList(Deadline::List& list) {
  // A callback of the pass may have armed and cancelled one here, leaving the timer set.
  evtimer_del(&list.timer);
  list.timer_armed = false;
  for (size_t i = 0; i < deadline_lists_.size(); ++i) {
    if (deadline_lists_[i].get() != &list) continue;
    std::unique_ptr<Deadline::List> retired = std::move(deadline_lists_[i]);
    deadline_lists_[i] = std::move(deadline_lists_.back());
    deadline_lists_.pop_back();
    // Freeing it (from its own timer's callback) is fine: libevent no longer touches a
    // non-persistent timer once its callback runs.
    if (spare_deadline_lists_.size() < kMaxSpareDeadlineLists) {
      spare_deadline_lists_.push_back(std::move(retired));
    }
    return;
  }
}

void DispatcherImpl::armVariableDeadline(Deadline& d, std::chrono::milliseconds delay,
                                         DeadlineCallbacks& callbacks) {
  Deadline::Heap& heap = deadline_heap_;
  // A computed wait can come out negative (a Retry-After date already past): due now. Never in
  // the past, so that a pass (onHeapTimer) leaves nothing due behind what it arms.
  if (delay.count() < 0) delay = std::chrono::milliseconds(0);
  d.callbacks_ = &callbacks;
  if (d.queue_ == &heap) {
    // Already in the heap (a backoff re-armed): move it in place, one sift instead of two.
    d.expiry_ = now() + delay;
    d.slot_.seq = heap.next_seq++;
    heap.update(d);
  } else {
    d.cancel();
    d.expiry_ = now() + delay;
    d.slot_.seq = heap.next_seq++;
    heap.push(d);
  }
  // The timer only ever needs to come earlier here; a top that was cancelled or moved later
  // leaves it early, and the pass it triggers re-arms it for the real top.
  if (!heap.firing && heap.top() == &d && (!heap.timer_armed || d.expiry_ < heap.timer_expiry)) {
    ArmTimer(heap.timer, d.expiry_);
    heap.timer_armed = true;
    heap.timer_expiry = d.expiry_;
  }
}

void DispatcherImpl::onHeapTimer() {
  Deadline::Heap& heap = deadline_heap_;
  heap.timer_armed = false;
  heap.firing = true;
  const auto now = std::chrono::steady_clock::now();
  // Deadlines armed by this pass's callbacks wait for the next pass, even when due: a callback
  // that re-arms itself for "now" must not keep the loop here.
  const uint64_t pass_end = heap.next_seq;
  // One top at a time, popped before its callback: callbacks may arm, cancel or destroy any
  // deadline, including those due in this same pass, and the heap is whole between calls.
  while (!heap.empty()) {
    Deadline* d = heap.top();
    // A top armed during this pass expires no earlier than `now` (delays are not negative), so
    // every older due deadline sorts before it (an earlier expiry, or the same one and a smaller
    // seq): stopping here leaves none of them behind.
    if (d->expiry_ > now || d->slot_.seq >= pass_end) break;
    d->cancel();
    d->callbacks_->onDeadline(*d);
  }
  heap.firing = false;
  if (!heap.empty()) {
    Deadline* top = heap.top();
    ArmTimer(heap.timer, top->expiry_);
    heap.timer_armed = true;
    heap.timer_expiry = top->expiry_;
  }
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
