#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "source/network/address.h"

namespace sluice::network {

// A cap on connections open at once, shared by every worker (one per listener, one global).
// Lock-free: a slot is reserved with one atomic add before accept4() and returned on close.
class ConnectionLimit {
 public:
  explicit ConnectionLimit(uint64_t max) : max_(max) {}
  // True when a slot was taken. Unlimited when max is 0.
  bool tryAcquire() {
    if (max_ == 0) {
      active_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (active_.fetch_add(1, std::memory_order_acq_rel) >= max_) {
      active_.fetch_sub(1, std::memory_order_acq_rel);
      return false;
    }
    return true;
  }
  void release() { active_.fetch_sub(1, std::memory_order_acq_rel); }
  uint64_t active() const { return active_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_; }

 private:
  const uint64_t max_;
  std::atomic<uint64_t> active_{0};
};

// What a worker's listener asks of its owner.
class ListenerCallbacks {
 public:
  virtual ~ListenerCallbacks() = default;
  // Reserve room for one more connection before accepting it. False: the listener pauses
  // (stops polling its socket) until resume().
  virtual bool reserveConnection() = 0;
  // Give back a reservation that no connection used (accept4 failed).
  virtual void unreserveConnection() = 0;
  // A new connection: the callee owns `fd`.
  virtual void onAccept(int fd, const Address& remote) = 0;
  // What to do when reserveConnection() said no.
  enum class AtLimit {
    kRetry,  // room was made (an idle connection closed): reserve again, then accept
    kWait,   // keep polling: room can be made for a connection known to wait (next readiness)
    kPause,  // stop polling until enable(); onPaused() follows
  };
  // `waiting`: a connection is known to wait in the backlog (the first accept of a readiness
  // event); otherwise the backlog may as well be empty, and closing an idle connection for it
  // could be for nothing.
  virtual AtLimit onLimitReached(bool waiting) { return AtLimit::kPause; }
  // The listener paused because reserveConnection() said no.
  virtual void onPaused() = 0;
  // accept4 failed with EMFILE/ENFILE (or ENOBUFS/ENOMEM). With `may_free` (once per readiness
  // event) the callee may close idle connections to free descriptors, and returns true when it
  // did: accept again at once. False: the listener backs off for a moment.
  virtual bool onFdExhausted(bool may_free) = 0;
};

// A worker's view of one listening socket: polls it and accepts in batches.
class Listener {
 public:
  virtual ~Listener() = default;
  // Start or resume polling (also after a pause for the connection limit).
  virtual void enable() = 0;
  // Stop polling (draining, or paused).
  virtual void disable() = 0;
  virtual bool paused() const = 0;
};
using ListenerPtr = std::unique_ptr<Listener>;

}  // namespace sluice::network
