#include "source/event/io_poller.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "source/common/logging.h"
#include "source/event/dispatcher_impl.h"

namespace sluice::event {

IoPoller::IoPoller(::event_base* base) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    SLUICE_LOG(kError, "epoll_create1: %s", std::strerror(errno));
    std::abort();
  }
  event_assign(&event_, base, epfd_, EV_READ | EV_PERSIST, &IoPoller::onReadable, this);
  event_add(&event_, nullptr);
  // No fd: made active by hand (event_active) only.
  event_assign(&activate_event_, base, -1, 0, &IoPoller::onActivated, this);
}

IoPoller::~IoPoller() {
  event_del(&activate_event_);
  event_del(&event_);
  ::close(epfd_);
}

void IoPoller::update(EmbeddedFileEvent& ev, uint32_t events) {
  if (events == 0) {
    if (ev.registered_) {
      // Nothing to report: leave the set, or a hung-up peer would wake every wait.
      epoll_ctl(epfd_, EPOLL_CTL_DEL, ev.fd_, nullptr);
      ev.registered_ = false;
    }
    return;
  }
  epoll_event e{};
  if (events & kRead) e.events |= EPOLLIN;
  if (events & kWrite) e.events |= EPOLLOUT;
  e.data.ptr = &ev;
  const int op = ev.registered_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epfd_, op, ev.fd_, &e) == 0) {
    ev.registered_ = true;
    return;
  }
  // ENOMEM or ENOSPC (fs.epoll.max_user_watches): the fd waits unpolled, as it would have with
  // libevent's event_add failing; its owner's timeouts still end it. Logged, not fatal.
  const int err = errno;
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true, std::memory_order_relaxed)) {
    SLUICE_LOG(kError, "epoll_ctl(%s) on fd %d: %s (further failures are not logged)",
               op == EPOLL_CTL_ADD ? "add" : "mod", ev.fd_, std::strerror(err));
  }
}

void IoPoller::forget(EmbeddedFileEvent& ev) {
  update(ev, 0);
  for (auto& a : activated_) {
    if (a.first == &ev) a.first = nullptr;
  }
  for (auto& a : activated_running_) {
    if (a.first == &ev) a.first = nullptr;
  }
  for (int i = batch_next_; i < batch_size_; ++i) {
    if (batch_[i].data.ptr == &ev) batch_[i].data.ptr = nullptr;
  }
}

void IoPoller::onReadable(evutil_socket_t, short, void* arg) {
  static_cast<IoPoller*>(arg)->dispatch();
}

void IoPoller::onActivated(evutil_socket_t, short, void* arg) {
  static_cast<IoPoller*>(arg)->dispatchActivated();
}

void IoPoller::activate(EmbeddedFileEvent& ev, uint32_t ready) {
  for (auto& a : activated_) {
    if (a.first == &ev) {
      a.second |= ready;
      return;
    }
  }
  if (activated_.empty()) event_active(&activate_event_, 0, 0);
  activated_.emplace_back(&ev, ready);
}

void IoPoller::dispatchActivated() {
  // Activations made by these callbacks run on the next pass of the loop, after the kernel's
  // readiness and the timers had their turn (one connection cannot monopolise the worker).
  activated_running_.swap(activated_);
  for (size_t i = 0; i < activated_running_.size(); ++i) {
    EmbeddedFileEvent* ev = activated_running_[i].first;
    if (ev == nullptr) continue;  // forgotten meanwhile
    const uint32_t ready = activated_running_[i].second & ev->enabled_;
    if (ready != 0) deliver(*ev, ready);
  }
  activated_running_.clear();
  runBatchDeferred();
}

void IoPoller::runBatchDeferred() {
  while (!batch_deferred_.empty()) {
    batch_running_.swap(batch_deferred_);
    for (size_t i = 0; i < batch_running_.size(); ++i) {
      if (batch_running_[i].second == nullptr) continue;  // withdrawn
      // As a callback of its own: what it writes to other connections is gathered too.
      in_callback_ = true;
      batch_running_[i].first(batch_running_[i].second);
      while (!deferred_.empty()) {
        running_.swap(deferred_);
        for (size_t j = 0; j < running_.size(); ++j) {
          if (running_[j].second != nullptr) running_[j].first(running_[j].second);
        }
        running_.clear();
      }
      in_callback_ = false;
    }
    batch_running_.clear();
  }
}

void IoPoller::deliver(EmbeddedFileEvent& ev, uint32_t ready) {
  in_callback_ = true;
  ev.callback_(ev.owner_, ready);
  // What the callback deferred (gathered writes) runs now; those may defer more.
  while (!deferred_.empty()) {
    running_.swap(deferred_);
    for (size_t i = 0; i < running_.size(); ++i) {
      if (running_[i].second != nullptr) running_[i].first(running_[i].second);
    }
    running_.clear();
  }
  in_callback_ = false;
}

void IoPoller::dispatch() {
  const int n = epoll_wait(epfd_, batch_.data(), kBatch, 0);
  if (n <= 0) return;  // EINTR, or readiness consumed meanwhile: libevent asks again
  batch_time_ = std::chrono::steady_clock::now();
  batch_size_ = n;
  for (batch_next_ = 0; batch_next_ < batch_size_;) {
    const epoll_event& e = batch_[batch_next_++];
    auto* ev = static_cast<EmbeddedFileEvent*>(e.data.ptr);
    if (ev == nullptr) continue;  // forgotten during this batch
    uint32_t ready = 0;
    if (e.events & (EPOLLERR | EPOLLHUP)) {
      ready = kRead | kWrite;
    } else {
      if (e.events & EPOLLIN) ready |= kRead;
      if (e.events & EPOLLOUT) ready |= kWrite;
    }
    // The interest may have narrowed earlier in this batch.
    ready &= ev->enabled_;
    if (ready == 0) continue;
    deliver(*ev, ready);
  }
  batch_size_ = batch_next_ = 0;
  runBatchDeferred();
}

bool IoPoller::deferToEndOfCallback(EmbeddedFileEvent::FlushCallback fn, void* owner) {
  if (!in_callback_) return false;
  deferred_.emplace_back(fn, owner);
  return true;
}

bool IoPoller::deferToEndOfBatch(EmbeddedFileEvent::FlushCallback fn, void* owner) {
  if (!in_callback_) return false;
  batch_deferred_.emplace_back(fn, owner);
  return true;
}

void IoPoller::cancelDeferred(void* owner) {
  for (auto* list : {&deferred_, &running_, &batch_deferred_, &batch_running_}) {
    for (auto& d : *list) {
      if (d.second == owner) d.second = nullptr;
    }
  }
}

bool EmbeddedFileEvent::deferToEndOfCallback(FlushCallback fn, void* owner) {
  return poller_ != nullptr && poller_->deferToEndOfCallback(fn, owner);
}

bool DispatcherImpl::deferToEndOfBatch(EmbeddedFileEvent::FlushCallback fn, void* owner) {
  return poller_->deferToEndOfBatch(fn, owner);
}

void DispatcherImpl::cancelDeferred(void* owner) { poller_->cancelDeferred(owner); }

bool EmbeddedFileEvent::deferToEndOfBatch(FlushCallback fn, void* owner) {
  return poller_ != nullptr && poller_->deferToEndOfBatch(fn, owner);
}

void EmbeddedFileEvent::cancelDeferred(void* owner) {
  if (poller_ != nullptr) poller_->cancelDeferred(owner);
}

void EmbeddedFileEvent::assign(Dispatcher& dispatcher, int fd, RawCallback callback, void* owner) {
  reset();
  poller_ = &static_cast<DispatcherImpl&>(dispatcher).poller();
  callback_ = callback;
  owner_ = owner;
  fd_ = fd;
  enabled_ = 0;
}

void EmbeddedFileEvent::setEnabled(uint32_t events) {
  if (poller_ == nullptr || events == enabled_) return;
  enabled_ = static_cast<uint8_t>(events);
  poller_->update(*this, events);
}

void EmbeddedFileEvent::activate(uint32_t ready) {
  if (poller_ != nullptr) poller_->activate(*this, ready);
}

void EmbeddedFileEvent::reset() {
  if (poller_ == nullptr) return;
  enabled_ = 0;
  poller_->forget(*this);
  poller_ = nullptr;
}

}  // namespace sluice::event
