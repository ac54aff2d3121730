#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>

#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/http1/parser.h"
#include "source/network/address.h"
#include "source/network/transport_socket.h"

namespace sluice::upstream {

// Why a stream got no upstream connection.
enum class PoolFailure {
  kConnectFailure,  // refused, unreachable, reset while connecting
  kConnectTimeout,
  kOverflow,    // too many streams already waiting for a connection to this host
  kTlsFailure,  // connected, but the TLS handshake failed (e.g. the certificate did not verify)
};

// The stream's side of an exchange on a pooled connection.
class PoolStream {
 public:
  virtual ~PoolStream() = default;
  // Gives up on the exchange (the downstream stream ended early): the connection is closed, as
  // whatever the upstream still sends could not be told apart from a next response.
  virtual void abandon() = 0;
  // Stops or resumes reading the upstream (flow control: the downstream cannot take more).
  virtual void readDisable(bool disable) = 0;
  // Bytes waiting to be written upstream (the request side's flow control).
  virtual size_t writeBufferLength() const = 0;
  // The connection carried an exchange before this one. A reused connection that fails before
  // any response byte may have been closed by the upstream just as the request went out (its
  // keep-alive timeout): the request never reached it, and may be sent again.
  virtual bool reused() const = 0;
};

// What a stream waiting for a connection is told, exactly once: ready or failed.
class PoolCallbacks {
 public:
  virtual ~PoolCallbacks() = default;
  // Send the request through `encoder`; the response goes to the ResponseDecoder given to
  // newStream. `stream` stays valid until the response ends, fails or the stream abandons it.
  virtual void onPoolReady(http::RequestEncoder& encoder, PoolStream& stream,
                           const network::Address& host) = 0;
  virtual void onPoolFailure(PoolFailure failure) = 0;
  // The request's bytes are now all written upstream / the upstream stopped taking them:
  // watermarks of the upstream connection's write buffer, for the request side's flow control.
  virtual void onUpstreamAboveWriteBufferHighWatermark() {}
  virtual void onUpstreamBelowWriteBufferLowWatermark() {}
};

// A pending request that can be withdrawn before a connection is ready.
class Cancellable {
 public:
  virtual ~Cancellable() = default;
  virtual void cancel() = 0;
};

struct PoolSettings {
  // The cluster's transport (TLS to the upstream); null: plain TCP. Outlives the pools.
  const network::TransportSocketFactory* transport_socket_factory = nullptr;
  std::chrono::milliseconds connect_timeout{5000};
  // An idle keep-alive connection is closed after this long.
  std::chrono::milliseconds idle_timeout{60000};
  // Requests one connection carries before it is closed; 0: no limit.
  uint32_t max_requests_per_connection = 0;
  // Streams waiting for a connection to this host (from this worker); beyond it: kOverflow.
  uint32_t max_pending = 1024;
  // Connections to this host from this worker, busy or connecting (idle ones not counted).
  uint32_t max_connections = 1024;
  // Idle connections kept to this host (from this worker); beyond it the least recently used
  // one closes.
  uint32_t max_idle = 256;
  // An idle connection reused after at least this long is checked for the upstream's close
  // first (idlePeerAlive: one syscall). Younger ones are not: an upstream's keep-alive timeout
  // is seconds, and the event loop sees a close within an iteration.
  std::chrono::milliseconds idle_check_after{200};
  uint32_t buffer_limit = 1024 * 1024;
  http::http1::Limits limits;
};

struct PoolStats {
  stats::Counter& cx_total;
  stats::Gauge& cx_active;
  stats::Counter& cx_connect_fail;
  stats::Counter& cx_connect_timeout;
  stats::Counter& rq_total;
  // Requests sent on a connection that had carried one before (reuse ratio: this / rq_total).
  stats::Counter& rq_reused;
  stats::Counter& rq_pending_overflow;
  stats::Counter& cx_idle_timeout;
  // Idle connections found closed by the upstream when about to be reused.
  stats::Counter& cx_stale_closed;
};

// Keep-alive HTTP/1.1 connections from one worker to one upstream host: idle connections are
// reused (most recently used first, so the rest can time out), new ones are opened while under
// max_connections, and streams wait in FIFO order (bounded) for one to free up. Worker thread
// only.
class HttpConnPool : public event::DeferredDeletable {
 public:
  HttpConnPool(event::Dispatcher& dispatcher, const network::Address& host,
               const PoolSettings& settings, PoolStats& stats);
  ~HttpConnPool() override;
  HttpConnPool(const HttpConnPool&) = delete;
  HttpConnPool& operator=(const HttpConnPool&) = delete;

  // Asks for a connection for one exchange. The callbacks run now (an idle connection, or
  // overflow) or later; in the latter case the returned handle withdraws the request until
  // then. Returns nullptr when the callbacks already ran.
  // `fresh`: not on an idle connection (a retry after a reused one failed).
  Cancellable* newStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                         bool fresh = false);

  const network::Address& host() const { return host_; }
  event::Dispatcher& dispatcher() { return dispatcher_; }
  // The host left its cluster: no new streams come; idle connections close now, busy ones as
  // their exchange ends, streams already waiting are still served. `drained` runs once when no
  // connection or waiting stream is left (possibly inside this call).
  void drain(std::function<void()> drained);
  size_t idleCount() const;
  size_t busyCount() const;
  size_t pendingCount() const;

 private:
  class ActiveClient;
  struct Pending;
  friend class ActiveClient;

  void createClient();
  void onClientConnected(ActiveClient& client);
  void onClientIdle(ActiveClient& client);
  void onClientClosed(ActiveClient& client, bool connected);
  void attach(ActiveClient& client, http::ResponseDecoder& decoder, PoolCallbacks& callbacks);
  void serveOrRelease(ActiveClient& client);
  void failPending(PoolFailure failure);

  event::Dispatcher& dispatcher_;
  const network::Address host_;
  const PoolSettings& settings_;
  PoolStats& stats_;
  std::list<std::unique_ptr<ActiveClient>> idle_;  // front: most recently used
  std::list<std::unique_ptr<ActiveClient>> busy_;  // connecting or in an exchange
  std::list<std::unique_ptr<Pending>> pending_;
  size_t connecting_ = 0;
  std::function<void()> drained_;  // set while draining
  void checkDrained();
};

}  // namespace sluice::upstream
