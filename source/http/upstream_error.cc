#include "source/http/upstream_error.h"

namespace sluice::http {

namespace {
using F = ResponseFlag;
using S = RetrySafety;
// Indexed by UpstreamErrorKind. Statuses follow Envoy and nginx: no connection 503, a broken
// exchange 502, a timeout 504.
constexpr UpstreamErrorInfo kInfo[kUpstreamErrorKindCount] = {
    {0, F::kLocalReset, "", S::kNever},
    {503, F::kUpstreamConnectionFailure, "upstream_connect_failure", S::kSafe},
    {503, F::kUpstreamConnectionFailure, "upstream_connect_timeout", S::kSafe},
    {503, F::kUpstreamConnectionFailure, "upstream_tls_failure", S::kSafe},
    {503, F::kUpstreamOverflow, "upstream_overflow", S::kSafe},
    {503, F::kNoHealthyUpstream, "no_healthy_upstream", S::kSafe},
    {502, F::kUpstreamConnectionTermination, "upstream_refused_stream", S::kSafe},
    {502, F::kUpstreamConnectionTermination, "upstream_reset", S::kIdempotentOnly},
    {502, F::kUpstreamRemoteReset, "upstream_reset", S::kNever},
    {502, F::kUpstreamProtocolError, "upstream_protocol_error", S::kIdempotentOnly},
    {504, F::kUpstreamRequestTimeout, "upstream_request_timeout", S::kIdempotentOnly},
    {504, F::kUpstreamPerTryTimeout, "upstream_per_try_timeout", S::kIdempotentOnly},
    {504, F::kUpstreamRequestTimeout, "upstream_idle_timeout", S::kIdempotentOnly},
    {504, F::kUpstreamRequestTimeout, "upstream_response_headers_timeout", S::kIdempotentOnly},
    {504, F::kUpstreamRequestTimeout, "upstream_send_timeout", S::kIdempotentOnly},
};
}  // namespace

const UpstreamErrorInfo& DescribeUpstreamError(UpstreamErrorKind kind) {
  const int i = static_cast<int>(kind);
  return kInfo[i < kUpstreamErrorKindCount ? i : 0];
}

}  // namespace sluice::http
