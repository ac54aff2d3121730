#pragma once

#include <chrono>
#include <memory>

#include "source/network/connection.h"
#include "source/network/filter_context.h"
#include "source/upstream/cluster.h"

namespace sluice::tcp_proxy {

struct TcpProxyConfig {
  const upstream::Cluster* cluster;
  // 0: no idle timeout.
  std::chrono::milliseconds idle_timeout;
};

// L4 proxy: pipes a downstream connection to a new upstream connection, both directions, with
// backpressure (a write buffer above its high watermark stops reads on the other side),
// half-close propagation, an idle timeout, and the cluster's connect timeout.
class TcpProxyFilter : public network::ReadFilter, private network::ConnectionCallbacks {
 public:
  TcpProxyFilter(std::shared_ptr<const TcpProxyConfig> config, network::FilterContext& context);
  ~TcpProxyFilter() override;

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override;
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(Buffer& data, bool end_stream) override;

 private:
  class UpstreamCallbacks;

  // Downstream connection events and watermarks.
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

  // Upstream side (through UpstreamCallbacks).
  void onUpstreamEvent(network::ConnectionEvent event);
  void onUpstreamData(Buffer& data, bool end_stream);
  void onUpstreamAboveHighWatermark();
  void onUpstreamBelowLowWatermark();

  void resetIdleTimer();
  void onIdleTimeout();
  void onConnectTimeout();
  // Lets go of the upstream connection; `flush`: hand it over to finish writing first.
  void releaseUpstream(bool flush);

  std::shared_ptr<const TcpProxyConfig> config_;
  network::FilterContext& context_;
  network::Connection* downstream_ = nullptr;
  network::ConnectionPtr upstream_;
  std::unique_ptr<UpstreamCallbacks> upstream_callbacks_;
  event::TimerPtr connect_timer_;
  event::TimerPtr idle_timer_;
  bool connected_ = false;
  bool connect_timed_out_ = false;
  bool upstream_counted_ = false;
};

// The factory for a "tcp_proxy" entry of a listener's filters.
network::FilterFactory TcpProxyFilterFactory(std::shared_ptr<const TcpProxyConfig> config);

}  // namespace sluice::tcp_proxy
