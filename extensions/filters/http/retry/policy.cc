#include "extensions/filters/http/retry/policy.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
#include <random>

namespace sluice::retry {
namespace {

struct NamedBit {
  const char* name;
  uint32_t bit;
};
constexpr NamedBit kRetryOn[] = {
    {"5xx", kRetryOn5xx},
    {"gateway-error", kRetryOnGatewayError},
    {"connect-failure", kRetryOnConnectFailure},
    {"reset", kRetryOnReset},
    {"refused-stream", kRetryOnRefusedStream},
    {"retriable-status-codes", kRetryOnRetriableStatusCodes},
    {"retriable-headers", kRetryOnRetriableHeaders},
    {"per-try-timeout", kRetryOnPerTryTimeout},
};

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// RFC 9110 §5.6.2: a field name is a token.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum &&
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool IsFieldValue(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

std::string Quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  out.append(s);
  out.push_back('"');
  return out;
}

// A config duration in whole milliseconds, checked as the router checks its timeouts: not
// negative, and no fraction of a millisecond alone (it would silently become 0, "none").
bool DurationMs(const DurationInput& d, uint64_t* ms, std::string* why) {
  if (d.seconds < 0 || d.nanos < 0 || d.nanos >= 1000000000 || d.seconds > 315576000000) {
    *why = "must be a duration from 0s up, got " + std::to_string(d.seconds) + "s " +
           std::to_string(d.nanos) + "ns";
    return false;
  }
  if (d.seconds == 0 && d.nanos > 0 && d.nanos < 1000000) {
    *why = "must be 0s or at least 1ms (durations count whole milliseconds), got " +
           std::to_string(d.nanos) + "ns";
    return false;
  }
  *ms = static_cast<uint64_t>(d.seconds) * 1000 + static_cast<uint64_t>(d.nanos) / 1000000;
  return true;
}

std::string At(std::string_view where, std::string_view field) {
  if (where.empty()) return std::string(field);
  return std::string(where) + "." + std::string(field);
}

// What kind of failure an attempt was, for matching retry_on.
enum class FailureClass { kConnect, kRefused, kReset, kPerTryTimeout, kTimeout, kNever };

FailureClass ClassOf(const sl_type_attempt_result& r) {
  uint32_t kind = SL_UPSTREAM_ERROR_NONE;
  if (r.size >= offsetof(sl_type_attempt_result, error_kind) + sizeof(r.error_kind)) {
    kind = r.error_kind;
  }
  switch (kind) {
    case SL_UPSTREAM_ERROR_CONNECT_REFUSED:
    case SL_UPSTREAM_ERROR_CONNECT_TIMEOUT:
    case SL_UPSTREAM_ERROR_TLS_FAILURE:
      return FailureClass::kConnect;
    case SL_UPSTREAM_ERROR_REFUSED_STREAM:
      return FailureClass::kRefused;
    case SL_UPSTREAM_ERROR_CONNECTION_CLOSED:
    case SL_UPSTREAM_ERROR_RESET:
    case SL_UPSTREAM_ERROR_PROTOCOL_ERROR:
      return FailureClass::kReset;
    case SL_UPSTREAM_ERROR_PER_TRY_TIMEOUT:
      return FailureClass::kPerTryTimeout;
    case SL_UPSTREAM_ERROR_IDLE_TIMEOUT:
    case SL_UPSTREAM_ERROR_HEADERS_TIMEOUT:
    case SL_UPSTREAM_ERROR_SEND_TIMEOUT:
      return FailureClass::kTimeout;
    // A circuit breaker or an empty cluster is no fault of a host: another attempt would only
    // add load where there is none to spare (Envoy never retries an overflow). The route's
    // whole timeout leaves no time for one.
    case SL_UPSTREAM_ERROR_OVERFLOW:
    case SL_UPSTREAM_ERROR_NO_HEALTHY_HOST:
    case SL_UPSTREAM_ERROR_TIMEOUT:
      return FailureClass::kNever;
    default:
      break;
  }
  // No kind, or one newer than this plugin: the coarser outcome decides.
  switch (r.outcome) {
    case SL_ATTEMPT_CONNECT_FAILURE:
      return FailureClass::kConnect;
    case SL_ATTEMPT_RESET:
    case SL_ATTEMPT_PROTOCOL_ERROR:
      return FailureClass::kReset;
    case SL_ATTEMPT_TIMEOUT:
      return FailureClass::kPerTryTimeout;
    default:
      return FailureClass::kNever;
  }
}

std::optional<std::string_view> ResponseHeader(const sl_type_attempt_result& r,
                                               std::string_view name) {
  if (r.size < offsetof(sl_type_attempt_result, header_count) + sizeof(r.header_count) ||
      r.headers == nullptr) {
    return std::nullopt;
  }
  for (size_t i = 0; i < r.header_count; ++i) {
    const sl_type_str& n = r.headers[i].name;
    if (EqualsIgnoreCase(std::string_view(n.data, n.len), name)) {
      const sl_type_str& v = r.headers[i].value;
      return v.data == nullptr ? std::string_view() : std::string_view(v.data, v.len);
    }
  }
  return std::nullopt;
}

bool HeaderMatches(const HeaderMatcher& m, const sl_type_attempt_result& r) {
  const std::optional<std::string_view> value = ResponseHeader(r, m.name);
  switch (m.match) {
    case HeaderInput::Match::kPresent:
      return value.has_value();
    case HeaderInput::Match::kAbsent:
      return !value.has_value();
    case HeaderInput::Match::kExact:
      return value.has_value() && *value == m.exact;
  }
  return false;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool Digits(std::string_view s, size_t n, int* out) {
  if (s.size() != n) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

int MonthIndex(std::string_view m) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == kMonths[i]) return i + 1;
  }
  return 0;
}

bool IsDayName(std::string_view d, bool long_form) {
  static constexpr const char* kShort[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr const char* kLong[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};
  for (int i = 0; i < 7; ++i) {
    if (d == (long_form ? kLong[i] : kShort[i])) return true;
  }
  return false;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
// days_from_civil): no timegm, whose time zone handling is the C library's.
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// "HH:MM:SS"
bool ParseTime(std::string_view s, int* h, int* m, int* sec) {
  return s.size() == 8 && s[2] == ':' && s[5] == ':' && Digits(s.substr(0, 2), 2, h) &&
         Digits(s.substr(3, 2), 2, m) && Digits(s.substr(6, 2), 2, sec) && *h <= 23 && *m <= 59 &&
         *sec <= 60;  // 60: a leap second, which a date may name
}

std::optional<int64_t> ToEpoch(int year, int month, int day, int h, int m, int s) {
  if (month < 1 || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  return DaysFromCivil(year, month, day) * 86400 + h * 3600 + m * 60 + s;
}

}  // namespace

uint32_t RetryOnBit(std::string_view name) {
  for (const auto& n : kRetryOn) {
    if (name == n.name) return n.bit;
  }
  return 0;
}

const char* RetryOnNames() {
  return "5xx, gateway-error, connect-failure, reset, refused-stream, retriable-status-codes, "
         "retriable-headers, per-try-timeout";
}

std::optional<Policy> BuildPolicy(const PolicyInput& in, std::string_view where,
                                  std::string* error) {
  Policy p;
  for (size_t i = 0; i < in.retry_on.size(); ++i) {
    const uint32_t bit = RetryOnBit(in.retry_on[i]);
    if (bit == 0) {
      *error = At(where, "retry_on[" + std::to_string(i) + "]") + ": " + Quoted(in.retry_on[i]) +
               " is not a retry condition (one of: " + RetryOnNames() + ")";
      return std::nullopt;
    }
    p.retry_on |= bit;
  }
  if (in.num_retries) p.num_retries = *in.num_retries;
  std::string why;
  if (in.per_try_timeout.set && !DurationMs(in.per_try_timeout, &p.per_try_timeout_ms, &why)) {
    *error = At(where, "per_try_timeout") + ": " + why;
    return std::nullopt;
  }

  // Lists that only act with their retry_on condition, and conditions that need their list: a
  // config with one and not the other does nothing its author meant.
  for (size_t i = 0; i < in.retriable_status_codes.size(); ++i) {
    const uint32_t code = in.retriable_status_codes[i];
    if (code < 100 || code > 599) {
      *error = At(where, "retriable_status_codes[" + std::to_string(i) + "]") + ": " +
               std::to_string(code) + " is not an HTTP status (100-599)";
      return std::nullopt;
    }
    p.retriable_status_codes.push_back(code);
  }
  if (!p.retriable_status_codes.empty() && !(p.retry_on & kRetryOnRetriableStatusCodes)) {
    *error = At(where, "retriable_status_codes") +
             ": given, but retry_on lacks \"retriable-status-codes\" (they would never apply)";
    return std::nullopt;
  }
  if ((p.retry_on & kRetryOnRetriableStatusCodes) && p.retriable_status_codes.empty()) {
    *error = At(where, "retry_on") +
             ": \"retriable-status-codes\" needs retriable_status_codes (none are given)";
    return std::nullopt;
  }
  for (size_t i = 0; i < in.retriable_headers.size(); ++i) {
    const HeaderInput& h = in.retriable_headers[i];
    const std::string at = At(where, "retriable_headers[" + std::to_string(i) + "]");
    if (!IsToken(h.name)) {
      *error = at + ".name: " + Quoted(h.name) + " is not a field name";
      return std::nullopt;
    }
    if (h.match == HeaderInput::Match::kExact && !IsFieldValue(h.exact)) {
      *error = at + ".exact: must not contain CR, LF, NUL or other control characters";
      return std::nullopt;
    }
    HeaderMatcher m;
    m.name.reserve(h.name.size());
    for (char c : h.name) m.name.push_back(Lower(c));
    m.match = h.match;
    m.exact = h.exact;
    p.retriable_headers.push_back(std::move(m));
  }
  if (!p.retriable_headers.empty() && !(p.retry_on & kRetryOnRetriableHeaders)) {
    *error = At(where, "retriable_headers") +
             ": given, but retry_on lacks \"retriable-headers\" (they would never apply)";
    return std::nullopt;
  }
  if ((p.retry_on & kRetryOnRetriableHeaders) && p.retriable_headers.empty()) {
    *error =
        At(where, "retry_on") + ": \"retriable-headers\" needs retriable_headers (none are given)";
    return std::nullopt;
  }

  if (in.base_interval.set) {
    if (!DurationMs(in.base_interval, &p.base_interval_ms, &why)) {
      *error = At(where, "backoff.base_interval") + ": " + why;
      return std::nullopt;
    }
    if (p.base_interval_ms == 0) {
      *error = At(where, "backoff.base_interval") + ": must be at least 1ms";
      return std::nullopt;
    }
  }
  p.max_interval_ms = p.base_interval_ms * 10;  // Envoy's default
  if (in.max_interval.set) {
    if (!DurationMs(in.max_interval, &p.max_interval_ms, &why)) {
      *error = At(where, "backoff.max_interval") + ": " + why;
      return std::nullopt;
    }
    if (p.max_interval_ms < p.base_interval_ms) {
      *error = At(where, "backoff.max_interval") + ": must be at least base_interval (" +
               std::to_string(p.base_interval_ms) + "ms), got " +
               std::to_string(p.max_interval_ms) + "ms";
      return std::nullopt;
    }
  }
  if (in.max_retry_after.set && !DurationMs(in.max_retry_after, &p.max_retry_after_ms, &why)) {
    *error = At(where, "max_retry_after") + ": " + why;
    return std::nullopt;
  }
  if (in.budget_percent) {
    const double b = *in.budget_percent;
    if (!(b >= 0.0 && b <= 100.0)) {  // NaN fails both
      char got[32];
      std::snprintf(got, sizeof(got), "%g", b);
      *error = At(where, "retry_budget.budget_percent") + ": must be from 0 to 100, got " + got;
      return std::nullopt;
    }
    p.budget_percent = b;
  }
  if (in.min_retry_concurrency) p.min_retry_concurrency = *in.min_retry_concurrency;
  p.retry_non_idempotent = in.retry_non_idempotent;
  p.attempt_count_header = in.attempt_count_header;
  p.max_replay_bytes = in.max_replay_bytes;
  return p;
}

bool IsIdempotentMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

std::optional<int64_t> ParseHttpDate(std::string_view v) {
  int day = 0, year = 0, h = 0, m = 0, s = 0;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (v.size() == 29 && v[3] == ',' && v[4] == ' ' && v[7] == ' ' && v[11] == ' ' && v[16] == ' ' &&
      v[25] == ' ' && v.substr(26) == "GMT" && IsDayName(v.substr(0, 3), false)) {
    const int month = MonthIndex(v.substr(8, 3));
    if (month == 0 || !Digits(v.substr(5, 2), 2, &day) || !Digits(v.substr(12, 4), 4, &year) ||
        !ParseTime(v.substr(17, 8), &h, &m, &s)) {
      return std::nullopt;
    }
    return ToEpoch(year, month, day, h, m, s);
  }
  // asctime: "Sun Nov  6 08:49:37 1994" (the day padded with a space)
  if (v.size() == 24 && v[3] == ' ' && v[7] == ' ' && v[10] == ' ' && v[19] == ' ' &&
      IsDayName(v.substr(0, 3), false)) {
    const int month = MonthIndex(v.substr(4, 3));
    std::string_view d = v.substr(8, 2);
    if (d[0] == ' ') d.remove_prefix(1);
    if (month == 0 || d.empty() || !Digits(d, d.size(), &day) ||
        !ParseTime(v.substr(11, 8), &h, &m, &s) || !Digits(v.substr(20, 4), 4, &year)) {
      return std::nullopt;
    }
    return ToEpoch(year, month, day, h, m, s);
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
  const size_t comma = v.find(',');
  if (comma != std::string_view::npos && IsDayName(v.substr(0, comma), true)) {
    std::string_view rest = v.substr(comma);
    if (rest.size() != 24 || rest[1] != ' ' || rest[4] != '-' || rest[8] != '-' ||
        rest[11] != ' ' || rest[20] != ' ' || rest.substr(21) != "GMT") {
      return std::nullopt;
    }
    const int month = MonthIndex(rest.substr(5, 3));
    int yy = 0;
    if (month == 0 || !Digits(rest.substr(2, 2), 2, &day) || !Digits(rest.substr(9, 2), 2, &yy) ||
        !ParseTime(rest.substr(12, 8), &h, &m, &s)) {
      return std::nullopt;
    }
    // A two-digit year: 70-99 are 19xx, 00-69 20xx (a Retry-After date is near now, and no
    // server writes this obsolete form for a year past 2069).
    year = yy >= 70 ? 1900 + yy : 2000 + yy;
    return ToEpoch(year, month, day, h, m, s);
  }
  return std::nullopt;
}

std::optional<uint64_t> ParseRetryAfterMs(std::string_view value, int64_t now_unix_seconds) {
  value = TrimOws(value);
  if (value.empty()) return std::nullopt;
  if (value.front() >= '0' && value.front() <= '9') {
    // delta-seconds = 1*DIGIT; saturating, so that a huge value stays "too long".
    constexpr uint64_t kMaxSeconds = std::numeric_limits<uint64_t>::max() / 1000;
    uint64_t seconds = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return std::nullopt;
      seconds = seconds > kMaxSeconds / 10 ? kMaxSeconds
                                           : std::min(kMaxSeconds, seconds * 10 + (c - '0'));
    }
    return seconds * 1000;
  }
  const std::optional<int64_t> at = ParseHttpDate(value);
  if (!at) return std::nullopt;
  if (*at <= now_unix_seconds) return 0;
  return static_cast<uint64_t>(*at - now_unix_seconds) * 1000;
}

RandomSource& ThreadRandom() {
  class Mt : public RandomSource {
   public:
    Mt() : engine_(std::random_device{}()) {}
    uint64_t Uniform(uint64_t max_inclusive) override {
      return std::uniform_int_distribution<uint64_t>(0, max_inclusive)(engine_);
    }

   private:
    std::mt19937_64 engine_;
  };
  thread_local Mt random;
  return random;
}

uint64_t BackoffMs(const Policy& policy, uint32_t retry_index, RandomSource& random) {
  // min(base << k, max) without overflowing the shift.
  uint64_t ceiling = policy.max_interval_ms;
  if (retry_index < 63 && policy.base_interval_ms <= (policy.max_interval_ms >> retry_index)) {
    ceiling = policy.base_interval_ms << retry_index;
  }
  return random.Uniform(ceiling);
}

bool ConditionMatches(const Policy& policy, const sl_type_attempt_result& r) {
  const uint32_t on = policy.retry_on;
  if (r.outcome == SL_ATTEMPT_RESPONSE) {
    const uint32_t status = r.status;
    if ((on & kRetryOn5xx) && status >= 500 && status <= 599) return true;
    if ((on & kRetryOnGatewayError) && (status == 502 || status == 503 || status == 504)) {
      return true;
    }
    if ((on & kRetryOnRetriableStatusCodes) &&
        std::find(policy.retriable_status_codes.begin(), policy.retriable_status_codes.end(),
                  status) != policy.retriable_status_codes.end()) {
      return true;
    }
    if (on & kRetryOnRetriableHeaders) {
      for (const HeaderMatcher& m : policy.retriable_headers) {
        if (HeaderMatches(m, r)) return true;
      }
    }
    return false;
  }
  // Every failure that is a host's (not an overflow) counts under 5xx, gateway-error and reset,
  // as in Envoy, where each becomes a 502, 503 or 504 and "reset" means "did not answer".
  constexpr uint32_t kAnyFailure = kRetryOn5xx | kRetryOnGatewayError | kRetryOnReset;
  switch (ClassOf(r)) {
    case FailureClass::kConnect:
      return (on & (kAnyFailure | kRetryOnConnectFailure)) != 0;
    case FailureClass::kRefused:
      return (on & (kAnyFailure | kRetryOnRefusedStream)) != 0;
    case FailureClass::kReset:
    case FailureClass::kTimeout:
      return (on & kAnyFailure) != 0;
    case FailureClass::kPerTryTimeout:
      return (on & (kAnyFailure | kRetryOnPerTryTimeout)) != 0;
    case FailureClass::kNever:
      return false;
  }
  return false;
}

Decision Decide(const Policy& policy, const sl_type_attempt_result& r, bool idempotent,
                uint32_t retries_done, RandomSource& random, int64_t now_unix_seconds) {
  Decision d;
  if (!ConditionMatches(policy, r)) return d;
  uint32_t safety = SL_RETRY_SAFETY_IDEMPOTENT_ONLY;
  if (r.size >= offsetof(sl_type_attempt_result, retry_safety) + sizeof(r.retry_safety)) {
    safety = r.retry_safety;
  }
  if (safety != SL_RETRY_SAFETY_SAFE && safety != SL_RETRY_SAFETY_IDEMPOTENT_ONLY) {
    return d;  // NEVER, or a value newer than this plugin: read as the strictest
  }
  if (safety == SL_RETRY_SAFETY_IDEMPOTENT_ONLY && !idempotent && !policy.retry_non_idempotent) {
    d.verdict = Verdict::kNotIdempotent;
    return d;
  }
  if (retries_done >= policy.num_retries) {
    d.verdict = Verdict::kLimitExceeded;
    return d;
  }
  if (r.outcome == SL_ATTEMPT_RESPONSE) {
    if (const auto header = ResponseHeader(r, "retry-after")) {
      if (const auto ms = ParseRetryAfterMs(*header, now_unix_seconds)) {
        if (*ms > policy.max_retry_after_ms) {
          d.verdict = Verdict::kRetryAfterTooLong;
          return d;
        }
        d.verdict = Verdict::kRetry;
        d.delay_ms = *ms;
        d.retry_after_honoured = true;
        return d;
      }
      // An unreadable Retry-After is ignored: the backoff applies.
    }
  }
  d.verdict = Verdict::kRetry;
  d.delay_ms = BackoffMs(policy, retries_done, random);
  return d;
}

}  // namespace sluice::retry
