#pragma once

#include <memory>

#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/network/connection.h"
#include "source/router/upstream_request.h"
#include "source/upstream/cluster.h"

namespace sluice::router {

// A CONNECT request that ends at sluice (the route says so: SL_UPSTREAM_TERMINATE_CONNECT): a
// TCP connection to a host of the cluster carries the tunnel, and the client is answered 200
// once it is up (Envoy's "CONNECT termination"). The request's own target is not used: which
// hosts a client may reach is the config's decision, not the client's. Both directions are
// relayed as they are, with watermark flow control; a half-close passes through either way.
// Failures before the 200: 503 (no host, refused, connect timeout) or 504 (route timeout).
class ConnectTunnel : public ExchangeBase,
                      private network::ConnectionCallbacks,
                      private network::ReadFilter,
                      private event::DeadlineCallbacks {
 public:
  ConnectTunnel(http::UpstreamRequestCallbacks& callbacks, event::Dispatcher& dispatcher,
                upstream::WorkerClusters& clusters, const UpstreamTarget& target,
                uint32_t buffer_limit);
  ~ConnectTunnel() override;

  void start(http::RequestHead& head, bool end_stream, bool tunnel) override;
  void sendData(Buffer& data, bool end_stream) override;
  void sendTrailers(const http::HeaderMap&) override {}  // a tunnel has none
  void reset() override;
  void readDisable(bool disable) override;

 private:
  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;
  // network::ReadFilter (through a ForwardingReadFilter: the connection does not own us)
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool end_stream) override;
  void onDeadline(event::Deadline& deadline) override;

  void fail(http::UpstreamErrorKind kind);
  void pauseDownstream(bool pause);
  void armIdle();
  void closeUpstream(network::CloseType how);
  void releaseActive();

  network::ConnectionPtr connection_;
  Buffer held_;  // the client's bytes before the connection is up (bounded)
  bool held_end_ = false;
  bool connected_ = false;
  bool done_ = false;  // failed, reset or ended: nothing more is called back
  bool downstream_paused_ = false;
  bool counted_active_ = false;  // in the cluster's upstream_cx_active
  event::Deadline connect_deadline_;
  event::Deadline timeout_deadline_;
  event::Deadline idle_deadline_;
};

}  // namespace sluice::router
