#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

// W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent and tracestate
// fields, parsed and written; random trace ids, span ids and request ids. No state but a
// per-thread random generator: usable from any thread, unit-tested alone.
namespace sluice::http::tracing {

// A per-thread xorshift128+ generator seeded from getrandom(2) on first use: no syscall and no
// lock per call. Unique enough for ids (trace, span, request); not for secrets.
uint64_t RandomU64();

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// The sampled bit of trace-flags (§3.2.2.5).
inline constexpr uint8_t kSampledFlag = 0x01;

// What a valid traceparent says.
struct TraceParent {
  uint8_t version = 0;
  TraceId trace_id{};
  SpanId parent_id{};
  uint8_t flags = 0;
  bool sampled() const { return (flags & kSampledFlag) != 0; }
};

// §3.2 (traceparent), version 00, and §4.3 for later versions: nullopt when `value` is not a
// valid traceparent. Rules: "vv-<32>-<16>-<2>" in lowercase hex (uppercase is invalid); version
// ff invalid; version 00 exactly 55 characters; a later version at least 55, parsed by the 00
// rules with anything after a '-' at position 55 ignored; trace id and parent id not all zeros.
std::optional<TraceParent> ParseTraceparent(std::string_view value);

// §3.3 (tracestate): whether a tracestate value — every tracestate field of a request joined
// with ',' — may be passed on: at most 32 list members (empty ones, OWS only, do not count) and
// 512 bytes, every member a valid key=value, no key twice. When not, the whole field is dropped.
inline constexpr size_t kMaxTracestateMembers = 32;
inline constexpr size_t kMaxTracestateBytes = 512;
bool IsValidTracestate(std::string_view value);

// "00-<trace id>-<span id>-<flags>", kTraceparentSize characters, written into `out`.
inline constexpr size_t kTraceparentSize = 55;
void FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags,
                       char (&out)[kTraceparentSize]);

// Random ids, never all zeros (an all-zero id is invalid).
TraceId NewTraceId();
SpanId NewSpanId();

// Lowercase hex of `n` bytes into `out` (2n characters).
void HexEncode(const uint8_t* bytes, size_t n, char* out);

// A random UUID version 4 ("3b1f0c52-8c1e-4f7a-9d2e-6a0b7c5d4e21"), kUuidSize characters.
inline constexpr size_t kUuidSize = 36;
void NewUuid4(char (&out)[kUuidSize]);

}  // namespace sluice::http::tracing
