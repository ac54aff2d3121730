#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/network/transport_socket.h"
#include "source/upstream/host.h"

namespace sluice::upstream {

// Why a stream got no upstream connection.
enum class PoolFailure {
  kConnectFailure,  // refused, unreachable, reset while connecting
  kConnectTimeout,
  // A limit: the pool's queue (http_pool.max_pending_requests), or the cluster's circuit
  // breakers (max_pending_requests, max_requests). Answered at once, never queued.
  kOverflow,
  kTlsFailure,  // connected, but the TLS handshake failed (e.g. the certificate did not verify)
};

// What a stream learns with its place on a connection.
struct PoolStreamInfo {
  const Host& host;
  // The connection carried a stream before this one. A reused HTTP/1 connection that fails
  // before any response byte may have been closed by the upstream just as the request went
  // out (its keep-alive timeout): the request never reached it, and may be sent again.
  bool reused = false;
  http::Protocol protocol = http::Protocol::kHttp11;
};

// What a stream waiting for a connection is told, exactly once: ready or failed.
class PoolCallbacks {
 public:
  virtual ~PoolCallbacks() = default;
  // Send the request through `encoder`; the response goes to the ResponseDecoder given to
  // newStream. The encoder stays valid until the response ends or fails, or resetStream().
  virtual void onPoolReady(http::RequestEncoder& encoder, const PoolStreamInfo& info) = 0;
  virtual void onPoolFailure(PoolFailure failure) = 0;
};

// A pending request that can be withdrawn before a connection is ready.
class Cancellable {
 public:
  virtual ~Cancellable() = default;
  virtual void cancel() = 0;
};

// Streams to one upstream host from one worker, on connections it keeps: HTTP/1 one stream per
// connection, HTTP/2 many (ClientConnection::streamLimit). Worker thread only.
class ConnPool {
 public:
  virtual ~ConnPool() = default;
  // Asks for a stream. The callbacks run now (a connection with room, or overflow) or later;
  // in the latter case the returned handle withdraws the request until then. Returns nullptr
  // when the callbacks already ran. `fresh`: not on a connection that carried a stream before
  // (a request sent again after a reused connection failed under it).
  virtual Cancellable* newStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                                 bool fresh = false) = 0;
  virtual const Host& host() const = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  // The host left its cluster: no new streams come; idle connections close now, the others
  // once their streams end; streams already waiting are still served.
  // `drained` runs once when nothing is left (possibly inside this call).
  virtual void drain(std::function<void()> drained) = 0;
  // Streams on connections and streams waiting: the host's load on this worker, for
  // least-request picks.
  virtual size_t activeStreams() const = 0;
  virtual size_t pendingStreams() const = 0;
};
using ConnPoolPtr = std::unique_ptr<ConnPool>;

struct PoolSettings {
  // The cluster's transport (TLS to the upstream); null: plain TCP. Outlives the pools.
  const network::TransportSocketFactory* transport_socket_factory = nullptr;
  // The codec of each connection (HTTP/1, HTTP/2, or by ALPN). Outlives the pools.
  const http::ClientCodecFactory* codec_factory = nullptr;
  std::chrono::milliseconds connect_timeout{5000};
  // An idle connection is closed after this long.
  std::chrono::milliseconds idle_timeout{60000};
  // Streams one connection carries before it is closed (HTTP/2: drained); 0: no limit.
  uint32_t max_requests_per_connection = 0;
  // Streams waiting for a connection to this host (from this worker); beyond it: kOverflow.
  uint32_t max_pending = 1024;
  // Connections to this host from this worker, not counting idle ones.
  uint32_t max_connections = 1024;
  // Idle connections kept to this host (from this worker); beyond it the least recently used
  // one closes.
  uint32_t max_idle = 256;
  // An idle HTTP/1 connection reused after at least this long is checked for the upstream's
  // close first (idlePeerAlive: one syscall). Younger ones are not: an upstream's keep-alive
  // timeout is seconds, and the event loop sees a close within an iteration.
  std::chrono::milliseconds idle_check_after{200};
  uint32_t buffer_limit = 1024 * 1024;
};

struct PoolStats {
  stats::Counter& cx_total;
  stats::Gauge& cx_active;
  stats::Counter& cx_connect_fail;
  stats::Counter& cx_connect_timeout;
  stats::Counter& rq_total;
  // Requests sent on a connection that had carried one before (reuse ratio: this / rq_total).
  stats::Counter& rq_reused;
  // Requests refused at once: the pool's queue or the cluster's pending/request limits.
  stats::Counter& rq_pending_overflow;
  // Connections not opened for the cluster's max_connections (the request waits instead).
  stats::Counter& cx_overflow;
  stats::Counter& cx_idle_timeout;
  // Idle connections found closed by the upstream when about to be reused.
  stats::Counter& cx_stale_closed;
  stats::Gauge& rq_active;
  stats::Gauge& rq_pending_active;
  // HTTP/2: GOAWAY frames received; connections drained after their request maximum.
  stats::Counter& goaway_received;
  stats::Counter& cx_max_requests;
};

}  // namespace sluice::upstream
