#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/http/header_map.h"

namespace sluice::http {

// How a callout ended. Mirrors sl_type_attempt_outcome (the plugin ABI reports it as that).
enum class CalloutOutcome {
  kResponse,        // a whole response arrived (status, headers, body)
  kConnectFailure,  // no connection could be made (refused, unreachable, connect timeout, no host)
  kReset,           // the upstream closed or reset the connection before the response was whole
  kProtocolError,   // the upstream sent something that is not a valid HTTP response
  kTimeout,         // the whole exchange took longer than its timeout
  kOverflow,        // the response body was larger than allowed, or the pool's queue was full
};

// A request a filter sends on its own to a cluster (Envoy's AsyncClient). Protocol-neutral:
// pseudo-headers are fields here and the codec of the connection the pool gives maps them.
struct CalloutRequest {
  std::string method;
  std::string path;
  // Sent as the Host field (HTTP/1) / :authority; empty: the cluster's name.
  std::string authority;
  // Fields in order. Framing fields (Content-Length, Transfer-Encoding) and hop-by-hop fields
  // are the client's: any given are dropped.
  HeaderMap headers;
  std::string body;
};

struct CalloutOptions {
  // The whole exchange, from send() to the end of the response. Must be above 0.
  std::chrono::milliseconds timeout{5000};
  // The most response body bytes kept; a larger body ends the callout as kOverflow (the
  // connection is closed: the rest is not read).
  uint64_t max_response_bytes = 1024 * 1024;
};

struct CalloutResponse {
  CalloutOutcome outcome = CalloutOutcome::kReset;
  // With kResponse; also with kOverflow when the head had arrived (then body is empty). 0 else.
  uint16_t status = 0;
  // With kResponse (and kOverflow after a head): the response's fields. Empty otherwise.
  HeaderMap headers;
  // With kResponse: the whole body, contiguous (a callout's consumer wants one view of it).
  std::string body;
};

// Told exactly once how a callout ended, from the event loop: never inside CalloutClient::send()
// nor inside the codec's or the pool's callbacks (a whole exchange's connection is back in its
// pool by then, so a callout started from the completion reuses it), and never after the
// Callout was destroyed or cancelled.
class CalloutCallbacks {
 public:
  virtual ~CalloutCallbacks() = default;
  // `response` lives until this returns.
  virtual void onCalloutComplete(CalloutResponse& response) = 0;
};

// A callout in flight. Destroying it (or cancel()) withdraws it: a request waiting for a
// connection leaves the queue, an exchange under way closes its connection (what the upstream
// still sends could not be told apart from a next response), and no callback follows.
// Destroying it from inside its own onCalloutComplete is not allowed: hand it to the
// dispatcher's deferredDelete() there.
class Callout : public event::DeferredDeletable {
 public:
  ~Callout() override = default;
  virtual void cancel() = 0;
};
using CalloutPtr = std::unique_ptr<Callout>;

// A worker's client for callouts: requests to a named cluster of the config, on that worker's
// connection pools (shared with proxied traffic: same limits, same counters). The router layer
// implements it (router::CalloutClientImpl). Worker thread only.
class CalloutClient {
 public:
  virtual ~CalloutClient() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  // Whether the config has a cluster named `cluster`.
  virtual bool hasCluster(std::string_view cluster) const = 0;
  // Starts a callout. NotFound when the config has no such cluster, InvalidArgument for a
  // request without a method or path, a CONNECT, or a zero timeout. Every other failure
  // (no host, no connection, ...) is an outcome told to `callbacks`, later.
  virtual absl::StatusOr<CalloutPtr> send(std::string_view cluster, CalloutRequest request,
                                          const CalloutOptions& options,
                                          CalloutCallbacks& callbacks) = 0;
};

}  // namespace sluice::http
