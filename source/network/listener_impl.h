#pragma once

#include <chrono>

#include "source/event/dispatcher.h"
#include "source/network/listener.h"

namespace sluice::network {

// Non-blocking accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) in a loop of up to `max_accepts_per_event`
// per readiness event ("multi accept"), until EAGAIN. The fd is borrowed: the listen-socket
// registry owns it, so that a hot restart can hand it to the next process.
class TcpListenerImpl : public Listener {
 public:
  TcpListenerImpl(event::Dispatcher& dispatcher, int fd, ListenerCallbacks& callbacks,
                  uint32_t max_accepts_per_event);
  ~TcpListenerImpl() override;

  void enable() override;
  void disable() override;
  bool paused() const override { return paused_; }

  // How long accepting pauses after EMFILE/ENFILE: long enough not to spin on a full fd table,
  // short enough that service resumes quickly once descriptors are freed.
  static constexpr std::chrono::milliseconds kFdExhaustedBackoff{100};

 private:
  void onReadable();

  event::Dispatcher& dispatcher_;
  const int fd_;
  ListenerCallbacks& callbacks_;
  const uint32_t max_accepts_;
  event::FileEventPtr file_event_;
  event::TimerPtr backoff_timer_;
  bool enabled_ = false;
  bool paused_ = false;
};

}  // namespace sluice::network
