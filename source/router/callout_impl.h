#pragma once

#include <string_view>

#include "source/event/dispatcher.h"
#include "source/http/callout.h"
#include "source/upstream/cluster.h"

namespace sluice::router {

// http::CalloutClient on a worker's clusters: each callout takes a stream from the pool of a
// host the cluster's load balancer picks, as proxied requests do.
class CalloutClientImpl : public http::CalloutClient {
 public:
  CalloutClientImpl(event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters)
      : dispatcher_(dispatcher), clusters_(clusters) {}

  event::Dispatcher& dispatcher() override { return dispatcher_; }
  bool hasCluster(std::string_view cluster) const override;
  absl::StatusOr<http::CalloutPtr> send(std::string_view cluster, http::CalloutRequest request,
                                        const http::CalloutOptions& options,
                                        http::CalloutCallbacks& callbacks) override;

 private:
  event::Dispatcher& dispatcher_;
  upstream::WorkerClusters& clusters_;
};

}  // namespace sluice::router
