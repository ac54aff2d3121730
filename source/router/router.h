#pragma once

#include <memory>
#include <optional>

#include "source/event/dispatcher.h"
#include "source/http/upstream.h"
#include "source/router/connect_tunnel.h"
#include "source/router/upstream_request.h"
#include "source/upstream/cluster.h"

namespace sluice::router {

// The exchange of one stream (http::UpstreamExchange): the filter's decision with its cluster
// found, and, once started, what carries it: an HTTP request on a pooled connection (kept in
// place: no allocation per request) or, for a CONNECT that ends here, a TCP tunnel.
class RouterExchange : public http::UpstreamExchange {
 public:
  RouterExchange(event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters,
                 const upstream::Cluster& cluster, const http::UpstreamSpec& spec,
                 http::UpstreamRequestCallbacks& callbacks, const http::UpstreamOptions& options);
  ~RouterExchange() override;

  void start(http::RequestHead& head, bool end_stream, bool tunnel) override;
  void sendData(Buffer& data, bool end_stream) override;
  void sendTrailers(const http::HeaderMap& trailers) override;
  void reset() override;
  void readDisable(bool disable) override;
  bool enableRetries(const http::RetryOptions& options) override;

 private:
  event::Dispatcher& dispatcher_;
  upstream::WorkerClusters& clusters_;
  http::UpstreamRequestCallbacks& callbacks_;
  const http::UpstreamOptions options_;
  UpstreamTarget target_;
  std::optional<http::RetryOptions> retry_;
  std::optional<UpstreamRequest> request_;
  std::unique_ptr<ConnectTunnel> tunnel_;     // rare: a CONNECT ending here
  http::UpstreamExchange* active_ = nullptr;  // whichever of the two carries the stream
};

// The worker's http::UpstreamFactory: finds the cluster a filter named, and builds the stream's
// exchange in the storage the stream reserved.
class UpstreamFactoryImpl : public http::UpstreamFactory {
 public:
  UpstreamFactoryImpl(event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters)
      : dispatcher_(dispatcher), clusters_(clusters) {}

  size_t exchangeSize() const override { return sizeof(RouterExchange); }
  bool hasCluster(std::string_view cluster) const override {
    return clusters_.manager().get(cluster) != nullptr;
  }
  http::UpstreamExchange* create(void* storage, const http::UpstreamSpec& spec,
                                 http::UpstreamRequestCallbacks& callbacks,
                                 const http::UpstreamOptions& options) override;

 private:
  event::Dispatcher& dispatcher_;
  upstream::WorkerClusters& clusters_;
};

}  // namespace sluice::router
