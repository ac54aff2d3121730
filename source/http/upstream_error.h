#pragma once

#include <cstdint>
#include <string_view>

#include "source/http/response_flags.h"

namespace sluice::http {

// What went wrong with an upstream attempt: who is at fault is implied by the kind (all are the
// upstream's or the path to it; the downstream's own failures are stream resets), and whether
// the request may be sent again (RetrySafety). The values are the plugin ABI's
// SL_UPSTREAM_ERROR_* (a static_assert in the plugin layer keeps them equal).
enum class UpstreamErrorKind : uint8_t {
  kNone = 0,
  kConnectRefused = 1,    // refused, unreachable, reset during connect: nothing was sent
  kConnectTimeout = 2,    // the cluster's or the route's connect timeout
  kTlsFailure = 3,        // the handshake failed (an unverified certificate)
  kOverflow = 4,          // a circuit breaker or pool limit
  kNoHealthyHost = 5,     // the cluster has no host (or none resolved yet)
  kRefusedStream = 6,     // refused unprocessed: HTTP/2 REFUSED_STREAM, or above GOAWAY's id
  kConnectionClosed = 7,  // closed or reset before any response byte
  kReset = 8,             // closed or reset after the response started
  kProtocolError = 9,     // the response was not valid HTTP
  kTimeout = 10,          // the route's whole-exchange timeout
  kPerTryTimeout = 11,    // this attempt's timeout
  kIdleTimeout = 12,      // the upstream was silent too long (read timeout)
  kHeadersTimeout = 13,   // no response head within the route's response_headers_timeout
  kSendTimeout = 14,      // the upstream took no request body for send_timeout
};
inline constexpr int kUpstreamErrorKindCount = 15;

// Whether the request may be sent again after an attempt ended this way (SL_RETRY_SAFETY_*).
enum class RetrySafety : uint8_t {
  kSafe = 0,            // nothing reached the upstream application
  kIdempotentOnly = 1,  // the upstream may have acted on it
  kNever = 2,           // part of the response already went on
};

// What an error kind becomes when it ends the stream: the local reply's status, the response
// flag, the detail string (also the local reply's body), and the retry safety before any
// response byte arrived.
struct UpstreamErrorInfo {
  uint16_t status;
  ResponseFlag flag;
  std::string_view details;
  RetrySafety safety;
};
const UpstreamErrorInfo& DescribeUpstreamError(UpstreamErrorKind kind);

}  // namespace sluice::http
