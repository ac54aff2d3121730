#include "source/network/listener_impl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "source/common/logging.h"

namespace sluice::network {

TcpListenerImpl::TcpListenerImpl(event::Dispatcher& dispatcher, int fd,
                                 ListenerCallbacks& callbacks, uint32_t max_accepts_per_event)
    : dispatcher_(dispatcher),
      fd_(fd),
      callbacks_(callbacks),
      max_accepts_(max_accepts_per_event == 0 ? 1 : max_accepts_per_event) {
  file_event_ = dispatcher_.createFileEvent(
      fd_, [this](uint32_t) { onReadable(); }, 0);
  backoff_timer_ = dispatcher_.createTimer([this] {
    if (enabled_) file_event_->setEnabled(event::kRead);
  });
}

TcpListenerImpl::~TcpListenerImpl() = default;

void TcpListenerImpl::enable() {
  enabled_ = true;
  paused_ = false;
  if (!backoff_timer_->enabled()) file_event_->setEnabled(event::kRead);
}

void TcpListenerImpl::disable() {
  enabled_ = false;
  file_event_->setEnabled(0);
  backoff_timer_->disableTimer();
}

void TcpListenerImpl::onReadable() {
  bool freed_fds = false;
  for (uint32_t i = 0; i < max_accepts_; ++i) {
    if (!callbacks_.reserveConnection()) {
      // At the limit. Only this event's first accept knows that a connection waits: room made
      // later in the batch could be for nobody. Level-triggered polling brings the next one.
      const auto action = callbacks_.onLimitReached(/*waiting=*/i == 0);
      if (action == ListenerCallbacks::AtLimit::kRetry && callbacks_.reserveConnection()) {
        // Room made: accept below.
      } else if (action != ListenerCallbacks::AtLimit::kPause) {
        // kWait, or the room went to another worker first: ask again at the next readiness.
        return;
      } else {
        // Stop polling; the kernel's backlog absorbs the burst until resume.
        paused_ = true;
        file_event_->setEnabled(0);
        callbacks_.onPaused();
        return;
      }
    }
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      callbacks_.onAccept(fd, Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
      if (!enabled_) return;  // The callback may have disabled us (drain).
      continue;
    }
    const int err = errno;
    callbacks_.unreserveConnection();
    switch (err) {
      case EAGAIN:
#if EAGAIN != EWOULDBLOCK
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
      case EPERM:  // firewall rules
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        // Out of descriptors or memory: polling again at once would spin on the same error,
        // unless the callee freed descriptors (closed idle connections) — once per event, in
        // case other threads take them first.
        if (callbacks_.onFdExhausted(/*may_free=*/!freed_fds)) {
          freed_fds = true;
          continue;
        }
        file_event_->setEnabled(0);
        backoff_timer_->enableTimer(kFdExhaustedBackoff);
        return;
      default:
        SLUICE_LOG(kWarn, "accept4 on fd %d: %s", fd_, strerror(err));
        return;
    }
  }
}

}  // namespace sluice::network
