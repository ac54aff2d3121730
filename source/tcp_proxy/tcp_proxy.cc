#include "source/tcp_proxy/tcp_proxy.h"

#include "source/common/logging.h"
#include "source/network/connection.h"
#include "source/network/transport_socket.h"

namespace sluice::tcp_proxy {

using network::Address;
using network::CloseType;
using network::Connection;
using network::ConnectionCallbacks;
using network::ConnectionEvent;
using network::ConnectionPtr;
using network::ConnectionState;
using network::FilterContext;
using network::FilterFactory;
using network::FilterStatus;
using network::ForwardingReadFilter;
using network::ReadFilter;
using network::ReadFilterCallbacks;

// Upstream connection callbacks: a separate object so that the upstream's events and data are
// not confused with the downstream's in one set of overrides.
class TcpProxyFilter::UpstreamCallbacks : public ReadFilter, public ConnectionCallbacks {
 public:
  explicit UpstreamCallbacks(TcpProxyFilter* parent) : parent_(parent) {}
  void detach() { parent_ = nullptr; }

  void initializeReadFilterCallbacks(ReadFilterCallbacks&) override {}
  FilterStatus onData(Buffer& data, bool end_stream) override {
    if (parent_ != nullptr) {
      parent_->onUpstreamData(data, end_stream);
    } else {
      data.clear();
    }
    return FilterStatus::kStopIteration;
  }
  void onEvent(ConnectionEvent event) override {
    if (parent_ != nullptr) parent_->onUpstreamEvent(event);
  }
  void onAboveWriteBufferHighWatermark() override {
    if (parent_ != nullptr) parent_->onUpstreamAboveHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() override {
    if (parent_ != nullptr) parent_->onUpstreamBelowLowWatermark();
  }

 private:
  TcpProxyFilter* parent_;
};

TcpProxyFilter::TcpProxyFilter(std::shared_ptr<const TcpProxyConfig> config, FilterContext& context)
    : config_(std::move(config)), context_(context) {}

TcpProxyFilter::~TcpProxyFilter() {
  if (upstream_callbacks_) upstream_callbacks_->detach();
  releaseUpstream(/*flush=*/false);
}

void TcpProxyFilter::initializeReadFilterCallbacks(ReadFilterCallbacks& callbacks) {
  downstream_ = &callbacks.connection();
  downstream_->addConnectionCallbacks(*this);
}

FilterStatus TcpProxyFilter::onNewConnection() {
  const upstream::Cluster& cluster = *config_->cluster;
  // Half-close both ways: a FIN from one side becomes a FIN to the other, and the response
  // keeps flowing after the request side is done.
  downstream_->enableHalfClose(true);
  // Nothing to send until the upstream connects: don't read (memory stays bounded).
  downstream_->readDisable(true);

  const upstream::Host* picked = context_.clusters().pickHost(cluster);
  if (picked == nullptr) {
    // No hosts (a DNS name that has not resolved yet): nothing to connect to.
    downstream_->close(CloseType::kNoFlush);
    return FilterStatus::kStopIteration;
  }
  const Address host = picked->address();
  upstream_callbacks_ = std::make_unique<UpstreamCallbacks>(this);
  auto upstream = network::CreateClientConnection(context_.dispatcher(), host,
                                                  cluster.poolSettings().transport_socket_factory);
  upstream->enableHalfClose(true);
  upstream->setBufferLimits(cluster.bufferLimit());
  upstream->addConnectionCallbacks(*upstream_callbacks_);
  // The upstream owns its filters; ours stays with the proxy so it can be detached.
  upstream->addReadFilter(std::make_unique<ForwardingReadFilter>(*upstream_callbacks_));
  upstream_ = std::move(upstream);
  cluster.stats().upstream_cx_total.inc();
  cluster.stats().upstream_cx_active.inc();
  upstream_counted_ = true;

  connect_timer_ = context_.dispatcher().createTimer([this] { onConnectTimeout(); });
  connect_timer_->enableTimer(cluster.connectTimeout());
  if (config_->idle_timeout.count() > 0) {
    idle_timer_ = context_.dispatcher().createTimer([this] { onIdleTimeout(); });
  }
  upstream_->connect();
  return FilterStatus::kStopIteration;
}

FilterStatus TcpProxyFilter::onData(Buffer& data, bool end_stream) {
  resetIdleTimer();
  if (upstream_ && upstream_->state() == ConnectionState::kOpen) {
    upstream_->write(data, end_stream);
  } else {
    data.clear();
  }
  return FilterStatus::kStopIteration;
}

void TcpProxyFilter::onEvent(ConnectionEvent event) {
  if (event == ConnectionEvent::kConnected) return;
  // The downstream is gone: let the upstream finish writing what it has, then close.
  if (connect_timer_) connect_timer_->disableTimer();
  if (idle_timer_) idle_timer_->disableTimer();
  releaseUpstream(/*flush=*/connected_);
}

void TcpProxyFilter::onAboveWriteBufferHighWatermark() {
  // The client reads slower than the upstream sends: stop reading from the upstream.
  if (upstream_) upstream_->readDisable(true);
}

void TcpProxyFilter::onBelowWriteBufferLowWatermark() {
  if (upstream_) upstream_->readDisable(false);
}

void TcpProxyFilter::onUpstreamEvent(ConnectionEvent event) {
  const upstream::Cluster& cluster = *config_->cluster;
  if (event == ConnectionEvent::kConnected) {
    connected_ = true;
    connect_timer_->disableTimer();
    resetIdleTimer();
    downstream_->readDisable(false);
    return;
  }
  if (!connected_) {
    if (connect_timed_out_) {
      cluster.stats().upstream_cx_connect_timeout.inc();
    } else {
      cluster.stats().upstream_cx_connect_fail.inc();
    }
    SLUICE_LOG(kDebug, "[C%d] upstream connect to cluster %s failed", downstream_->id(),
               cluster.name());
  }
  if (connect_timer_) connect_timer_->disableTimer();
  if (idle_timer_) idle_timer_->disableTimer();
  // The upstream closed or reset: pass on what it sent, then close the client cleanly.
  releaseUpstream(/*flush=*/false);
  downstream_->close(CloseType::kFlushWrite);
}

void TcpProxyFilter::onUpstreamData(Buffer& data, bool end_stream) {
  resetIdleTimer();
  downstream_->write(data, end_stream);
}

void TcpProxyFilter::onUpstreamAboveHighWatermark() {
  // The upstream reads slower than the client sends: stop reading from the client.
  downstream_->readDisable(true);
}

void TcpProxyFilter::onUpstreamBelowLowWatermark() { downstream_->readDisable(false); }

void TcpProxyFilter::resetIdleTimer() {
  if (idle_timer_) idle_timer_->enableTimer(config_->idle_timeout);
}

void TcpProxyFilter::onIdleTimeout() {
  SLUICE_LOG(kDebug, "[C%d] tcp_proxy idle timeout", downstream_->id());
  releaseUpstream(/*flush=*/false);
  downstream_->close(CloseType::kNoFlush);
}

void TcpProxyFilter::onConnectTimeout() {
  connect_timed_out_ = true;
  // Closing raises kLocalClose on the upstream, which onUpstreamEvent handles as a failure.
  if (upstream_) upstream_->close(CloseType::kNoFlush);
}

void TcpProxyFilter::releaseUpstream(bool flush) {
  if (!upstream_) return;
  if (upstream_callbacks_) upstream_callbacks_->detach();
  if (upstream_counted_) {
    config_->cluster->stats().upstream_cx_active.dec();
    upstream_counted_ = false;
  }
  ConnectionPtr upstream = std::move(upstream_);
  // The callbacks object must outlive any event the connection may still raise.
  upstream->removeConnectionCallbacks(*upstream_callbacks_);
  if (flush && upstream->state() == ConnectionState::kOpen) {
    upstream->close(CloseType::kFlushWrite);
  } else if (upstream->state() != ConnectionState::kClosed) {
    upstream->close(CloseType::kNoFlush);
  }
  if (upstream->state() == ConnectionState::kClosed) {
    // We may be inside one of its callbacks: free it after the current event.
    context_.dispatcher().deferredDelete(std::move(upstream));
  } else {
    context_.adoptClosingConnection(std::move(upstream));
  }
}

FilterFactory TcpProxyFilterFactory(std::shared_ptr<const TcpProxyConfig> config) {
  return [config](Connection& connection, FilterContext& context) {
    connection.addReadFilter(std::make_unique<TcpProxyFilter>(config, context));
  };
}

}  // namespace sluice::tcp_proxy
