// The retry plugin's policy: what its config says (Policy, built and checked from PolicyInput)
// and the decision for one failed attempt (Decide). Pure logic: no host function is called, so
// the unit test links it without a host. The plugin (retry.cc) fills PolicyInput from the
// protobuf config and calls Decide from sl_on_upstream_retry.

#ifndef SLUICE_EXTENSIONS_FILTERS_HTTP_RETRY_POLICY_H_
#define SLUICE_EXTENSIONS_FILTERS_HTTP_RETRY_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/plugin/v1/sluice_plugin.h"

namespace sluice::retry {

// retry_on conditions, as bits.
enum RetryOn : uint32_t {
  kRetryOn5xx = 1u << 0,
  kRetryOnGatewayError = 1u << 1,
  kRetryOnConnectFailure = 1u << 2,
  kRetryOnReset = 1u << 3,
  kRetryOnRefusedStream = 1u << 4,
  kRetryOnRetriableStatusCodes = 1u << 5,
  kRetryOnRetriableHeaders = 1u << 6,
  kRetryOnPerTryTimeout = 1u << 7,
};

// The bit of a retry_on name ("5xx", ...), or 0 for an unknown one.
uint32_t RetryOnBit(std::string_view name);
// Every name RetryOnBit knows, comma-separated (for errors).
const char* RetryOnNames();

// A protobuf Duration as the config gave it.
struct DurationInput {
  bool set = false;
  int64_t seconds = 0;
  int32_t nanos = 0;
};

struct HeaderInput {
  std::string name;
  enum class Match { kPresent, kExact, kAbsent } match = Match::kPresent;
  std::string exact;
};

// Everything a RetryPolicy message says, presence included, before any check.
struct PolicyInput {
  std::vector<std::string> retry_on;
  std::optional<uint32_t> num_retries;
  DurationInput per_try_timeout;
  std::vector<uint32_t> retriable_status_codes;
  std::vector<HeaderInput> retriable_headers;
  DurationInput base_interval;
  DurationInput max_interval;
  DurationInput max_retry_after;
  std::optional<double> budget_percent;
  std::optional<uint32_t> min_retry_concurrency;
  bool retry_non_idempotent = false;
  bool attempt_count_header = false;
  uint64_t max_replay_bytes = 0;
};

struct HeaderMatcher {
  std::string name;  // lowercase
  HeaderInput::Match match = HeaderInput::Match::kPresent;
  std::string exact;
};

// A checked policy, with every default applied.
struct Policy {
  uint32_t retry_on = 0;  // RetryOn bits
  uint32_t num_retries = 1;
  uint64_t per_try_timeout_ms = 0;  // 0: the route's
  std::vector<uint32_t> retriable_status_codes;
  std::vector<HeaderMatcher> retriable_headers;
  uint64_t base_interval_ms = 25;
  uint64_t max_interval_ms = 250;
  uint64_t max_retry_after_ms = 10000;
  double budget_percent = 20.0;
  uint32_t min_retry_concurrency = 3;
  bool retry_non_idempotent = false;
  bool attempt_count_header = false;
  uint64_t max_replay_bytes = 0;  // 0: the stream's buffer limit

  // Whether a stream under this policy asks the core for retries at all.
  bool enabled() const { return num_retries > 0 && retry_on != 0; }
};

// Checks `in` and applies the defaults. On error returns nullopt and sets *error to a message
// that starts with the field's path under `where` (e.g. "policy.retry_on[2]: ...").
std::optional<Policy> BuildPolicy(const PolicyInput& in, std::string_view where,
                                  std::string* error);

// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2; case-sensitive, as methods are).
bool IsIdempotentMethod(std::string_view method);

// Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date (IMF-fixdate, or the obsolete
// RFC 850 and asctime forms recipients must accept). The pause in milliseconds from
// `now_unix_seconds` (0 for a date not in the future); nullopt for anything else. Huge deltas
// saturate (they are "too long" for any max_retry_after).
std::optional<uint64_t> ParseRetryAfterMs(std::string_view value, int64_t now_unix_seconds);

// Seconds since the epoch of an HTTP-date, or nullopt.
std::optional<int64_t> ParseHttpDate(std::string_view value);

// Where a backoff's randomness comes from (injected by tests).
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Uniform in [0, max_inclusive].
  virtual uint64_t Uniform(uint64_t max_inclusive) = 0;
};

// A per-thread std::mt19937_64 seeded from std::random_device: backoff jitter needs no
// cryptographic quality, and workers must not share (or lock) a generator.
RandomSource& ThreadRandom();

// The pause before retry `retry_index` (0 for the first): uniform in
// [0, min(base << retry_index, max)] (Envoy's fully-jittered exponential backoff).
uint64_t BackoffMs(const Policy& policy, uint32_t retry_index, RandomSource& random);

// What Decide concluded.
enum class Verdict {
  kNotRetriable,       // the condition does not match (or never retriable): the outcome stands
  kRetry,              // try again after delay_ms
  kLimitExceeded,      // it matched, but num_retries are used up
  kNotIdempotent,      // it matched, but the request may have been processed and its method
                       // is not idempotent (and retry_non_idempotent is off)
  kRetryAfterTooLong,  // it matched, but the response's Retry-After exceeds max_retry_after
};

struct Decision {
  Verdict verdict = Verdict::kNotRetriable;
  uint64_t delay_ms = 0;
  bool retry_after_honoured = false;  // delay_ms is the response's Retry-After
};

// Whether the attempt's outcome matches the policy's retry_on (ignoring counts and safety).
bool ConditionMatches(const Policy& policy, const sl_type_attempt_result& result);

// The decision for one attempt that ended as `result`. `idempotent`: the request's method is;
// `retries_done`: retries this stream already made (granted by this filter).
Decision Decide(const Policy& policy, const sl_type_attempt_result& result, bool idempotent,
                uint32_t retries_done, RandomSource& random, int64_t now_unix_seconds);

}  // namespace sluice::retry

#endif  // SLUICE_EXTENSIONS_FILTERS_HTTP_RETRY_POLICY_H_
