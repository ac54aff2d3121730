#include "source/upstream/http_conn_pool.h"

#include <iterator>

#include "source/common/logging.h"
#include "source/http/http1/client_codec.h"
#include "source/network/connection.h"

namespace sluice::upstream {

// A stream waiting for a connection.
struct HttpConnPool::Pending : public Cancellable {
  Pending(HttpConnPool& pool, http::ResponseDecoder& decoder, PoolCallbacks& callbacks)
      : pool(pool), decoder(decoder), callbacks(callbacks) {}
  void cancel() override { pool.pending_.erase(self); }  // destroys this
  HttpConnPool& pool;
  http::ResponseDecoder& decoder;
  PoolCallbacks& callbacks;
  std::list<std::unique_ptr<Pending>>::iterator self;  // where it waits: O(1) withdrawal
};

// One upstream connection with its codec. Its exchanges' decoders are the streams'; the pool
// learns from the codec when an exchange ends and whether the connection may be reused.
class HttpConnPool::ActiveClient : public event::DeferredDeletable,
                                   public network::ConnectionCallbacks,
                                   public network::ReadFilter,
                                   public http::http1::ClientConnectionImpl::Callbacks,
                                   public PoolStream {
 public:
  explicit ActiveClient(HttpConnPool& pool)
      : pool_(pool),
        connection_(network::CreateClientConnection(pool.dispatcher_, pool.host_,
                                                    pool.settings_.transport_socket_factory)),
        codec_(*connection_, *this, pool.settings_.limits) {
    connection_->setBufferLimits(pool.settings_.buffer_limit);
    connection_->addConnectionCallbacks(*this);
    connection_->addReadFilter(std::make_unique<network::ForwardingReadFilter>(*this));
    timer_ = pool.dispatcher_.createTimer([this] { onTimer(); });
    timer_->enableTimer(pool.settings_.connect_timeout);
    connection_->connect();
  }
  ~ActiveClient() override {
    if (connection_->state() != network::ConnectionState::kClosed) {
      connection_->removeConnectionCallbacks(*this);
      connection_->close(network::CloseType::kNoFlush);
    }
  }

  bool connectTimedOut() const { return connect_timed_out_; }
  bool tlsFailed() const { return tls_failed_; }
  uint64_t requests() const { return requests_; }
  // Whether an idle connection can carry a next exchange (see PoolSettings::idle_check_after).
  bool usable() {
    if (pool_.dispatcher_.now() - idle_since_ < pool_.settings_.idle_check_after) return true;
    return connection_->idlePeerAlive();
  }

  void startExchange(http::ResponseDecoder& decoder, PoolCallbacks& callbacks) {
    timer_->disableTimer();
    callbacks_ = &callbacks;
    ++requests_;
    http::RequestEncoder& encoder = codec_.newExchange(decoder);
    callbacks.onPoolReady(encoder, *this, pool_.host_);
  }
  void armIdleTimer() {
    callbacks_ = nullptr;
    idle_since_ = pool_.dispatcher_.now();
    if (pool_.settings_.idle_timeout.count() > 0) timer_->enableTimer(pool_.settings_.idle_timeout);
  }
  void close() { connection_->close(network::CloseType::kNoFlush); }

  // PoolStream
  void abandon() override {
    callbacks_ = nullptr;
    codec_.abandonExchange();
    close();
  }
  void readDisable(bool disable) override { connection_->readDisable(disable); }
  size_t writeBufferLength() const override { return connection_->writeBufferLength(); }
  bool reused() const override { return requests_ > 1; }

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool) override {
    codec_.dispatch(data);
    return network::FilterStatus::kStopIteration;
  }

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::kConnected) {
      connected_ = true;
      pool_.onClientConnected(*this);
      return;
    }
    timer_->disableTimer();
    const bool was_connected = connected_;
    if (!was_connected) {
      tls_failed_ = !connection_->transportFailureReason().empty();
      if (tls_failed_) {
        SLUICE_LOG(kDebug, "[C%d] upstream %s: %s", connection_->id(), pool_.host_.asString(),
                   connection_->transportFailureReason());
      }
      if (connect_timed_out_) {
        pool_.stats_.cx_connect_timeout.inc();
      } else {
        pool_.stats_.cx_connect_fail.inc();
      }
    }
    // An exchange in progress fails (or a close-delimited body ends) through its decoder.
    codec_.onUpstreamClosed();
    pool_.onClientClosed(*this, was_connected);  // may destroy this (deferred)
  }
  void onAboveWriteBufferHighWatermark() override {
    if (callbacks_ != nullptr) callbacks_->onUpstreamAboveWriteBufferHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() override {
    if (callbacks_ != nullptr) callbacks_->onUpstreamBelowWriteBufferLowWatermark();
  }

  // ClientConnectionImpl::Callbacks
  void onExchangeComplete(bool reusable) override {
    callbacks_ = nullptr;
    const uint32_t max = pool_.settings_.max_requests_per_connection;
    if (!reusable || (max != 0 && requests_ >= max)) {
      close();
      return;
    }
    pool_.onClientIdle(*this);
  }
  void onCodecFailed() override {
    callbacks_ = nullptr;
    close();
  }

  std::list<std::unique_ptr<ActiveClient>>::iterator self;
  bool in_idle = false;

 private:
  void onTimer() {
    if (!connected_) {
      connect_timed_out_ = true;
      close();  // onEvent reports the failure
      return;
    }
    pool_.stats_.cx_idle_timeout.inc();
    close();
  }

  HttpConnPool& pool_;
  network::ConnectionPtr connection_;
  http::http1::ClientConnectionImpl codec_;
  event::TimerPtr timer_;  // connect timeout, then idle timeout
  PoolCallbacks* callbacks_ = nullptr;
  std::chrono::steady_clock::time_point idle_since_;
  uint64_t requests_ = 0;
  bool connected_ = false;
  bool connect_timed_out_ = false;
  bool tls_failed_ = false;
};

HttpConnPool::HttpConnPool(event::Dispatcher& dispatcher, const network::Address& host,
                           const PoolSettings& settings, PoolStats& stats)
    : dispatcher_(dispatcher), host_(host), settings_(settings), stats_(stats) {}

HttpConnPool::~HttpConnPool() {
  pending_.clear();
  idle_.clear();
  busy_.clear();
}

void HttpConnPool::drain(std::function<void()> drained) {
  drained_ = std::move(drained);
  // Closing removes each from the list (onClientClosed).
  while (!idle_.empty()) idle_.front()->close();
  checkDrained();
}

void HttpConnPool::checkDrained() {
  if (drained_ && idle_.empty() && busy_.empty() && pending_.empty()) {
    std::function<void()> done = std::move(drained_);
    drained_ = nullptr;
    done();
  }
}

size_t HttpConnPool::idleCount() const { return idle_.size(); }
size_t HttpConnPool::busyCount() const { return busy_.size(); }
size_t HttpConnPool::pendingCount() const { return pending_.size(); }

Cancellable* HttpConnPool::newStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                                     bool fresh) {
  stats_.rq_total.inc();
  // The upstream may have closed an idle connection since its last event: those go first.
  while (!fresh && !idle_.empty() && !idle_.front()->usable()) {
    stats_.cx_stale_closed.inc();
    idle_.front()->close();  // removes it from the list (onClientClosed)
  }
  if (!fresh && !idle_.empty()) {
    // Most recently used first: it is the likeliest to be alive, and the others may time out.
    // Moved between the lists by splicing: no list node allocated per request.
    ActiveClient& c = *idle_.front();
    busy_.splice(busy_.begin(), idle_, idle_.begin());
    c.in_idle = false;
    stats_.rq_reused.inc();
    c.startExchange(decoder, callbacks);
    return nullptr;
  }
  if (pending_.size() >= settings_.max_pending) {
    stats_.rq_pending_overflow.inc();
    callbacks.onPoolFailure(PoolFailure::kOverflow);
    return nullptr;
  }
  pending_.push_back(std::make_unique<Pending>(*this, decoder, callbacks));
  Pending* p = pending_.back().get();
  p->self = std::prev(pending_.end());
  // A new connection unless enough are already on their way for those waiting.
  if (connecting_ < pending_.size() && busy_.size() < settings_.max_connections) createClient();
  return p;
}

void HttpConnPool::createClient() {
  stats_.cx_total.inc();
  stats_.cx_active.inc();
  ++connecting_;
  busy_.push_front(std::make_unique<ActiveClient>(*this));
  busy_.front()->self = busy_.begin();
}

void HttpConnPool::onClientConnected(ActiveClient& client) {
  --connecting_;
  serveOrRelease(client);
}

void HttpConnPool::onClientIdle(ActiveClient& client) { serveOrRelease(client); }

void HttpConnPool::serveOrRelease(ActiveClient& client) {
  if (!pending_.empty()) {
    std::unique_ptr<Pending> p = std::move(pending_.front());
    pending_.pop_front();
    if (client.requests() > 0) stats_.rq_reused.inc();
    client.startExchange(p->decoder, p->callbacks);
    return;
  }
  if (drained_) {
    client.close();  // the host left: no reuse (onClientClosed follows)
    return;
  }
  // Nobody waits: idle, most recently used at the front (the iterator stays valid).
  idle_.splice(idle_.begin(), busy_, client.self);
  client.in_idle = true;
  client.armIdleTimer();
  // Over the cap: the least recently used goes (the likeliest to have been closed by the
  // upstream's own idle timeout anyway). Closing removes it from the list.
  if (idle_.size() > settings_.max_idle) idle_.back()->close();
}

void HttpConnPool::onClientClosed(ActiveClient& client, bool connected) {
  if (!connected) --connecting_;
  stats_.cx_active.dec();
  auto& list = client.in_idle ? idle_ : busy_;
  std::unique_ptr<ActiveClient> owned = std::move(*client.self);
  list.erase(client.self);
  const bool timed_out = owned->connectTimedOut();
  const bool tls_failed = owned->tlsFailed();
  // We are inside the connection's own event: free it after.
  dispatcher_.deferredDelete(std::move(owned));
  if (!connected && connecting_ < pending_.size()) {
    // A connect failed while streams wait. Fail one (the one this connection was for) rather
    // than retrying in a loop against a host that refuses: the stream, and a retry policy
    // above it, decide what comes next.
    failPending(timed_out    ? PoolFailure::kConnectTimeout
                : tls_failed ? PoolFailure::kTlsFailure
                             : PoolFailure::kConnectFailure);
  } else if (connecting_ < pending_.size() && busy_.size() < settings_.max_connections) {
    createClient();
  }
  checkDrained();
}

void HttpConnPool::failPending(PoolFailure failure) {
  // Only as many as the connections that will not come: one per failed connect.
  if (pending_.empty()) return;
  std::unique_ptr<Pending> p = std::move(pending_.front());
  pending_.pop_front();
  p->callbacks.onPoolFailure(failure);
}

}  // namespace sluice::upstream
