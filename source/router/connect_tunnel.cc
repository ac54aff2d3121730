#include "source/router/connect_tunnel.h"

#include "source/common/logging.h"

namespace sluice::router {

ConnectTunnel::ConnectTunnel(http::UpstreamRequestCallbacks& callbacks,
                             event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters,
                             const UpstreamTarget& target, uint32_t buffer_limit)
    : ExchangeBase(callbacks, dispatcher, clusters, target, buffer_limit) {}

ConnectTunnel::~ConnectTunnel() { reset(); }

void ConnectTunnel::start(http::RequestHead&, bool end_stream, bool) {
  held_end_ = end_stream;
  const upstream::Host* host = clusters_.pickHost(*target_.cluster);
  if (host == nullptr) {
    fail(http::UpstreamErrorKind::kNoHealthyHost);
    return;
  }
  const upstream::Cluster& cluster = *target_.cluster;
  connection_ = network::CreateClientConnection(dispatcher_, host->address(),
                                                cluster.poolSettings().transport_socket_factory);
  connection_->enableHalfClose(true);
  connection_->setBufferLimits(cluster.bufferLimit());
  connection_->addConnectionCallbacks(*this);
  network::ReadFilter& reader = *this;
  connection_->addReadFilter(std::make_unique<network::ForwardingReadFilter>(reader));
  cluster.stats().upstream_cx_total.inc();
  cluster.stats().upstream_cx_active.inc();
  counted_active_ = true;
  dispatcher_.armDeadline(connect_deadline_, cluster.connectTimeout(), *this);
  // The route's timeouts bound the wait for the tunnel to open (the shorter one), not its life.
  std::chrono::milliseconds wait = target_.timeout;
  const std::chrono::milliseconds head = target_.response_headers_timeout;
  if (head.count() > 0 && (wait.count() == 0 || head < wait)) wait = head;
  if (wait.count() > 0) dispatcher_.armDeadline(timeout_deadline_, wait, *this);
  connection_->connect();
}

void ConnectTunnel::onEvent(network::ConnectionEvent event) {
  if (event != network::ConnectionEvent::kConnected) releaseActive();
  if (done_) return;
  if (event == network::ConnectionEvent::kConnected) {
    connected_ = true;
    connect_deadline_.cancel();
    timeout_deadline_.cancel();
    armIdle();
    auto head = std::make_unique<http::ResponseHead>();
    head->status = 200;
    head->reason = "Connection Established";
    callbacks_.onUpstreamHeaders(std::move(head), false);
    if (done_ || connection_ == nullptr) return;
    if (!held_.empty() || held_end_) connection_->write(held_, held_end_);
    pauseDownstream(false);
    return;
  }
  if (!connected_) {
    target_.cluster->stats().upstream_cx_connect_fail.inc();
    fail(http::UpstreamErrorKind::kConnectRefused);
    return;
  }
  // The host closed (or reset) its side for good: the tunnel is over.
  done_ = true;
  idle_deadline_.cancel();
  Buffer empty;
  callbacks_.onUpstreamData(empty, true);
}

network::FilterStatus ConnectTunnel::onData(Buffer& data, bool end_stream) {
  if (done_) {
    data.clear();
    return network::FilterStatus::kStopIteration;
  }
  armIdle();
  if (end_stream) {
    // The host finished sending: pass its half-close on; the stream ends with it.
    done_ = true;
    idle_deadline_.cancel();
  }
  callbacks_.onUpstreamData(data, end_stream);
  return network::FilterStatus::kStopIteration;
}

void ConnectTunnel::sendData(Buffer& data, bool end_stream) {
  if (done_ || connection_ == nullptr) {
    data.clear();
    return;
  }
  if (!connected_) {
    // Bytes before the 200 come only from a filter (the codec holds the client's): keep them,
    // bounded, until the connection is up.
    held_.move(data);
    held_end_ = held_end_ || end_stream;
    if (held_.length() > buffer_limit_) pauseDownstream(true);
    return;
  }
  armIdle();
  connection_->write(data, end_stream);  // the client's half-close becomes ours
}

void ConnectTunnel::readDisable(bool disable) {
  if (connection_ != nullptr && !done_) connection_->readDisable(disable);
}

void ConnectTunnel::onAboveWriteBufferHighWatermark() { pauseDownstream(true); }
void ConnectTunnel::onBelowWriteBufferLowWatermark() { pauseDownstream(false); }

void ConnectTunnel::pauseDownstream(bool pause) {
  if (pause == downstream_paused_) return;
  downstream_paused_ = pause;
  callbacks_.readDisableDownstream(pause);
}

void ConnectTunnel::armIdle() {
  if (target_.idle_timeout.count() > 0 && !done_) {
    dispatcher_.armDeadline(idle_deadline_, target_.idle_timeout, *this);
  }
}

void ConnectTunnel::onDeadline(event::Deadline& deadline) {
  if (&deadline == &connect_deadline_) {
    target_.cluster->stats().upstream_cx_connect_timeout.inc();
    fail(http::UpstreamErrorKind::kConnectTimeout);
  } else if (&deadline == &timeout_deadline_) {
    fail(http::UpstreamErrorKind::kTimeout);
  } else {
    fail(http::UpstreamErrorKind::kIdleTimeout);
  }
}

void ConnectTunnel::fail(http::UpstreamErrorKind kind) {
  if (done_) return;
  reset();
  SLUICE_LOG(kDebug, "CONNECT tunnel to cluster %s failed: %s", target_.cluster->name(),
             http::DescribeUpstreamError(kind).details);
  // Before the 200 the client gets this answer; after it, the stream is reset.
  callbacks_.onUpstreamError(kind, 0);
}

void ConnectTunnel::reset() {
  done_ = true;
  connect_deadline_.cancel();
  timeout_deadline_.cancel();
  idle_deadline_.cancel();
  pauseDownstream(false);
  closeUpstream(network::CloseType::kNoFlush);
}

void ConnectTunnel::releaseActive() {
  // Exactly once per connection, whichever side closed it first.
  if (!counted_active_) return;
  counted_active_ = false;
  target_.cluster->stats().upstream_cx_active.dec();
}

void ConnectTunnel::closeUpstream(network::CloseType how) {
  if (connection_ == nullptr) return;
  if (connection_->state() != network::ConnectionState::kClosed) {
    connection_->removeConnectionCallbacks(*this);
    connection_->close(how);
  }
  releaseActive();
  // Freed after the event we may be in (the connection's own, possibly).
  dispatcher_.deferredDelete(std::move(connection_));
}

}  // namespace sluice::router
