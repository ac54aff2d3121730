#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::http {

// Why a stream ended as it did (Envoy's response flags): a bit set in StreamInfo, so that the
// access log, the counters and plugins see the same typed reasons. The values are the plugin
// ABI's SL_RESPONSE_FLAG_* bit numbers (a static_assert in the plugin layer keeps them equal).
enum class ResponseFlag : uint8_t {
  kFailedLocalHealthCheck = 0,            // LH
  kNoHealthyUpstream = 1,                 // UH: the cluster had no host to try
  kUpstreamRequestTimeout = 2,            // UT: the route's timeout (whole, headers, idle)
  kLocalReset = 3,                        // LR: we reset the stream
  kUpstreamRemoteReset = 4,               // UR: the upstream reset it mid-response
  kUpstreamConnectionFailure = 5,         // UF: no connection (refused, timeout, TLS)
  kUpstreamConnectionTermination = 6,     // UC: the connection closed before a response
  kUpstreamOverflow = 7,                  // UO: a circuit breaker
  kNoRouteFound = 8,                      // NR
  kRateLimited = 9,                       // RL
  kUnauthorizedExternalService = 10,      // UAEX
  kUpstreamRetryLimitExceeded = 11,       // URX: the retry policy's tries were used up
  kStreamIdleTimeout = 12,                // SI
  kDownstreamConnectionTermination = 13,  // DC: the client went away / reset the stream
  kUpstreamProtocolError = 14,            // UPE
  kDownstreamProtocolError = 15,          // DPE
  kNoClusterFound = 16,                   // NC
  kDurationTimeout = 17,                  // DT: a downstream timeout (request body)
  kBufferLimit = 18,                      // BL: a body over the buffer limit
  kPluginFailure = 19,                    // PF: a plugin failed or misused the ABI
  kUpstreamPerTryTimeout = 20,            // UPT: an attempt's timeout (with no retry after it)
};
inline constexpr int kResponseFlagCount = 21;

constexpr uint64_t FlagBit(ResponseFlag flag) { return uint64_t{1} << static_cast<int>(flag); }

// "UF", "URX", ... (Envoy's short forms; sluice's own: DT, BL, PF, UPT).
std::string_view ResponseFlagShortName(ResponseFlag flag);
// The set as the access log prints it: short names joined by ',', "-" for none.
std::string ResponseFlagsToString(uint64_t flags);

}  // namespace sluice::http
