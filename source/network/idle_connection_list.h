#pragma once

#include <cstddef>
#include <cstdint>

#include "source/network/idle_connections.h"

namespace sluice::network {

// An intrusive list of idle connections, least recently active first. A worker keeps one per
// listener (a listener's own limit can only be relieved by its own connections); the lists of
// one worker share a clock, so that the least recently active connection over all of them is
// found by comparing their heads. Used on one thread.
class IdleConnectionList : public IdleConnectionPool {
 public:
  // `clock` is shared by the lists to be ordered together (it only grows).
  explicit IdleConnectionList(uint64_t& clock) : clock_(clock) {}
  ~IdleConnectionList() override;
  IdleConnectionList(const IdleConnectionList&) = delete;
  IdleConnectionList& operator=(const IdleConnectionList&) = delete;

  // IdleConnectionPool
  void add(ReclaimableFilter& filter) override;
  void remove(ReclaimableFilter& filter) override;

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  // The clock reading at which the least recently active entry became idle (0 when empty).
  uint64_t oldestOrder() const { return head_ != nullptr ? head_->idle_order_ : 0; }

  // Asks the least recently active entry to close (ReclaimableFilter::reclaim). True when it
  // did; when it could not, it moves to the most recent end, so that repeated calls try each
  // entry once before coming back to it. False too when the list is empty.
  bool reclaimOldest();

 private:
  void unlink(ReclaimableFilter& filter);

  uint64_t& clock_;
  ReclaimableFilter* head_ = nullptr;  // least recently active
  ReclaimableFilter* tail_ = nullptr;  // most recently active
  size_t size_ = 0;
};

}  // namespace sluice::network
