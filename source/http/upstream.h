#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "source/common/buffer.h"
#include "source/http/filter.h"
#include "source/http/header_map.h"

namespace sluice::http {

// What the upstream side tells its stream.
class UpstreamRequestCallbacks {
 public:
  virtual ~UpstreamRequestCallbacks() = default;
  virtual void onUpstreamHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) = 0;
  virtual void onUpstreamData(Buffer& data, bool end_stream) = 0;
  virtual void onUpstreamTrailers(std::unique_ptr<HeaderMap> trailers) = 0;
  // The exchange failed: answer with the error's status and details (no response yet), or
  // reset the stream (a response had started); `flags` are ResponseFlag bits beyond the
  // kind's own (URX). Nothing else follows.
  virtual void onUpstreamError(UpstreamErrorKind kind, uint64_t flags) = 0;
  // Flow control: stop / resume reading the downstream (the upstream is not taking the body).
  virtual void readDisableDownstream(bool disable) = 0;
  // Request trailers could not go upstream: an HTTP/1 connection and a body framed by
  // Content-Length (HTTP/1.1 has trailers only after chunked bodies).
  virtual void onUpstreamTrailersDropped() {}
  // An attempt ended (only when UpstreamOptions::observe_attempts): before the end of the
  // response, or the failure, is passed on.
  virtual void onUpstreamAttemptDone(const UpstreamAttempt&) {}
  // With retries enabled (UpstreamExchange::enableRetries): asks the deciding filter whether
  // to make another attempt (see StreamFilter::onUpstreamRetry).
  virtual RetryVerdict onUpstreamRetry(const UpstreamAttempt&, RetryDecision&) {
    return RetryVerdict::kNo;
  }
  // An attempt started (the stream's count of attempts, for logs and plugins).
  virtual void onUpstreamAttemptStart() {}
  // ResponseFlag bits the stream ends with whatever comes next (URX on a response passed on
  // after the retries were used up).
  virtual void addResponseFlags(uint64_t) {}
};

// What carries a stream's request to where a filter sent it (UpstreamSpec): an HTTP exchange on
// a pooled connection, or a CONNECT tunnel that ends at this proxy. Built when the filter
// decides (UpstreamFactory::create), started once the request passed every filter; it reports
// through UpstreamRequestCallbacks, and after reset() nothing more is called back. The
// connection manager knows nothing of what is behind it (clusters, hosts, pools, protocols).
class UpstreamExchange {
 public:
  virtual ~UpstreamExchange() = default;
  // `head` must live until the response ends (the stream owns it). `tunnel`: an allowed
  // Upgrade or CONNECT request.
  virtual void start(RequestHead& head, bool end_stream, bool tunnel) = 0;
  // Before start(): keep the request for new attempts and ask onUpstreamRetry after each
  // (false: this kind of exchange does not retry — a tunnel that ends here).
  virtual bool enableRetries(const RetryOptions&) { return false; }
  virtual void sendData(Buffer& data, bool end_stream) = 0;
  virtual void sendTrailers(const HeaderMap& trailers) = 0;
  // Stops everything (the stream ended early). Idempotent.
  virtual void reset() = 0;
  // The downstream cannot take more of the response (its write buffer is full) / can again.
  virtual void readDisable(bool disable) = 0;
};

struct UpstreamOptions {
  // What the exchange may hold of the request before its connection is ready (and of a
  // request kept for a transparent retry).
  uint32_t buffer_limit = 0;
  // Report every attempt to UpstreamRequestCallbacks::onUpstreamAttemptDone (measured only
  // for a chain with a filter that observes them: the clock is read per attempt).
  bool observe_attempts = false;
  // Where the exchange records the last attempt's host and timings (the stream's info);
  // nullptr: not recorded.
  UpstreamInfo* upstream_info = nullptr;
};

// Builds the exchanges of a worker's streams (the router layer implements it; the connection
// manager gets it from its FilterContext). Worker thread only.
class UpstreamFactory {
 public:
  static constexpr size_t kExchangeAlign = 16;
  virtual ~UpstreamFactory() = default;
  // The bytes an exchange needs: the stream reserves them in its own block, so that a
  // proxied request allocates nothing for its upstream side.
  virtual size_t exchangeSize() const = 0;
  // Whether the config has a cluster named `cluster`.
  virtual bool hasCluster(std::string_view cluster) const = 0;
  // Builds in `storage` (exchangeSize() bytes, kExchangeAlign-aligned) the exchange that
  // carries a stream to `spec`; the caller destroys it (~UpstreamExchange) and must keep
  // `callbacks` alive as long. nullptr (storage untouched) when the config has no cluster
  // named `spec.cluster`.
  virtual UpstreamExchange* create(void* storage, const UpstreamSpec& spec,
                                   UpstreamRequestCallbacks& callbacks,
                                   const UpstreamOptions& options) = 0;
};

}  // namespace sluice::http
