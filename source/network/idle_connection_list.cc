#include "source/network/idle_connection_list.h"

namespace sluice::network {

IdleConnectionList::~IdleConnectionList() {
  // Owners close their connections first; entries left behind must not point into a dead list.
  while (head_ != nullptr) unlink(*head_);
}

void IdleConnectionList::add(ReclaimableFilter& filter) {
  filter.idle_order_ = ++clock_;
  filter.idle_prev_ = tail_;
  filter.idle_next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->idle_next_ = &filter;
  } else {
    head_ = &filter;
  }
  tail_ = &filter;
  ++size_;
}

void IdleConnectionList::remove(ReclaimableFilter& filter) {
  if (filter.idleListed()) unlink(filter);
}

void IdleConnectionList::unlink(ReclaimableFilter& filter) {
  if (filter.idle_prev_ != nullptr) {
    filter.idle_prev_->idle_next_ = filter.idle_next_;
  } else {
    head_ = filter.idle_next_;
  }
  if (filter.idle_next_ != nullptr) {
    filter.idle_next_->idle_prev_ = filter.idle_prev_;
  } else {
    tail_ = filter.idle_prev_;
  }
  filter.idle_prev_ = filter.idle_next_ = nullptr;
  filter.idle_order_ = 0;
  --size_;
}

bool IdleConnectionList::reclaimOldest() {
  if (head_ == nullptr) return false;
  ReclaimableFilter& oldest = *head_;
  // Unlinked before the call: closing runs the filter's own removal, which is then a no-op.
  unlink(oldest);
  if (oldest.reclaim()) return true;
  add(oldest);  // still idle, but active just now
  return false;
}

}  // namespace sluice::network
