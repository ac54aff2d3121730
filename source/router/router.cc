#include "source/router/router.h"

#include <new>

namespace sluice::router {

RouterExchange::RouterExchange(event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters,
                               const upstream::Cluster& cluster, const http::UpstreamSpec& spec,
                               http::UpstreamRequestCallbacks& callbacks,
                               const http::UpstreamOptions& options)
    : dispatcher_(dispatcher), clusters_(clusters), callbacks_(callbacks), options_(options) {
  target_.cluster = &cluster;
  target_.timeout = spec.timeout;
  target_.response_headers_timeout = spec.response_headers_timeout;
  // 0: the cluster's default; kNoTimeout: none.
  auto resolve = [](std::chrono::milliseconds route, std::chrono::milliseconds cluster) {
    if (route == http::UpstreamSpec::kNoTimeout) return std::chrono::milliseconds(0);
    return route.count() != 0 ? route : cluster;
  };
  target_.idle_timeout = resolve(spec.idle_timeout, cluster.readTimeout());
  target_.send_timeout = resolve(spec.send_timeout, cluster.sendTimeout());
  target_.connect_timeout = resolve(spec.connect_timeout, std::chrono::milliseconds(0));
  target_.per_try_timeout = resolve(spec.per_try_timeout, std::chrono::milliseconds(0));
  target_.hash_key.assign(spec.hash_key);
  target_.terminate_connect = spec.terminate_connect;
  target_.request_buffer_bytes = spec.request_buffer_bytes;
}

RouterExchange::~RouterExchange() = default;

void RouterExchange::start(http::RequestHead& head, bool end_stream, bool tunnel) {
  if (target_.terminate_connect && tunnel && head.method == "CONNECT") {
    tunnel_ = std::make_unique<ConnectTunnel>(callbacks_, dispatcher_, clusters_, target_,
                                              options_.buffer_limit);
    active_ = tunnel_.get();
  } else {
    UpstreamRequest& request =
        request_.emplace(callbacks_, dispatcher_, clusters_, target_, options_.buffer_limit);
    if (options_.observe_attempts) request.observeAttempts();
    request.recordInto(options_.upstream_info);
    if (retry_.has_value() && !tunnel) request.enableRetries(*retry_);
    active_ = &request;
  }
  active_->start(head, end_stream, tunnel);
}

bool RouterExchange::enableRetries(const http::RetryOptions& options) {
  retry_ = options;  // (a tunnel, which has nothing to re-send, ignores it at start)
  return true;
}

void RouterExchange::sendData(Buffer& data, bool end_stream) {
  if (active_ != nullptr) {
    active_->sendData(data, end_stream);
  } else {
    data.clear();
  }
}

void RouterExchange::sendTrailers(const http::HeaderMap& trailers) {
  if (active_ != nullptr) active_->sendTrailers(trailers);
}

void RouterExchange::reset() {
  if (active_ != nullptr) active_->reset();
}

void RouterExchange::readDisable(bool disable) {
  if (active_ != nullptr) active_->readDisable(disable);
}

http::UpstreamExchange* UpstreamFactoryImpl::create(void* storage, const http::UpstreamSpec& spec,
                                                    http::UpstreamRequestCallbacks& callbacks,
                                                    const http::UpstreamOptions& options) {
  static_assert(alignof(RouterExchange) <= kExchangeAlign);
  const upstream::Cluster* cluster = clusters_.manager().get(spec.cluster);
  if (cluster == nullptr) return nullptr;
  return new (storage) RouterExchange(dispatcher_, clusters_, *cluster, spec, callbacks, options);
}

}  // namespace sluice::router
