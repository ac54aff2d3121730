#pragma once

#include <cstdint>

#include "source/network/connection.h"

namespace sluice::network {

class IdleConnectionList;

// A network filter that runs a request/response protocol on its connection (the HTTP/1
// connection manager; HTTP/2's later) and knows when the connection is idle: no request in
// progress and nothing to send. An idle connection can be closed at once without failing
// anything, so a worker at its connection limit (or out of descriptors) closes the least recently
// active ones to admit new clients instead of leaving those in the listen backlog, as nginx does
// with its reusable connections (ngx_drain_connections).
//
// A ReadFilter itself, so that one vtable pointer serves both roles: every byte here is paid
// per idle connection. The list links are embedded: entering and leaving a list (twice per
// request) are a few pointer writes, with no allocation and no lookup.
class ReclaimableFilter : public ReadFilter {
 public:
  // Closes the connection now, since its slot is needed. Called only while the filter is in an
  // IdleConnectionPool, from the worker's loop (never from inside this filter's own calls).
  // True means closed on return: the worker accepts into the freed slot at once (a protocol with
  // something to say first, such as HTTP/2's GOAWAY, writes it without waiting for the peer and
  // closes without flushing what the socket does not take). False when it cannot go without a
  // loss after all: bytes of the last response are still being written, or the client's next
  // request already waits unread. It then stays idle (as recently active).
  virtual bool reclaim() = 0;

  // In an IdleConnectionPool now.
  bool idleListed() const { return idle_order_ != 0; }

 private:
  friend class IdleConnectionList;
  ReclaimableFilter* idle_prev_ = nullptr;
  ReclaimableFilter* idle_next_ = nullptr;
  // When it last became idle, on its pool's clock (which orders every list of one worker); 0 while
  // not listed.
  uint64_t idle_order_ = 0;
};

// Where a filter registers its connection as idle (FilterContext::idleConnections()). Used on
// the connection's worker only; both calls are O(1).
class IdleConnectionPool {
 public:
  virtual ~IdleConnectionPool() = default;
  // `filter`'s connection is idle from now on; it becomes the most recently active one. Must
  // not be listed already.
  virtual void add(ReclaimableFilter& filter) = 0;
  // It is busy again, or closing. No-op when not listed.
  virtual void remove(ReclaimableFilter& filter) = 0;
};

}  // namespace sluice::network
