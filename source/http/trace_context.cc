#include "source/http/trace_context.h"

#include <sys/random.h>

#include <cstring>
#include <string_view>

namespace sluice::http::tracing {

namespace {

// xorshift128+ (Vigna); state zero means "not seeded yet".
constinit thread_local uint64_t t_state[2] = {0, 0};

void Seed() {
  if (getrandom(t_state, sizeof(t_state), 0) != static_cast<ssize_t>(sizeof(t_state)) ||
      (t_state[0] == 0 && t_state[1] == 0)) {
    // No entropy (a very early boot): distinct per thread at least.
    t_state[0] = reinterpret_cast<uintptr_t>(&t_state) ^ 0x9e3779b97f4a7c15ull;
    t_state[1] = 0xbf58476d1ce4e5b9ull;
  }
}

constexpr char kHex[] = "0123456789abcdef";

// The value of a lowercase hex digit, or -1 (uppercase is invalid in traceparent: §3.2.2).
int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// `2n` lowercase hex characters into `n` bytes; false when one is not a lowercase hex digit.
bool HexDecode(std::string_view hex, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const int hi = LowerHexValue(hex[2 * i]);
    const int lo = LowerHexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool AllZero(const std::array<uint8_t, N>& id) {
  for (uint8_t b : id) {
    if (b != 0) return false;
  }
  return true;
}

template <size_t N>
void FillRandom(std::array<uint8_t, N>& id) {
  do {
    for (size_t i = 0; i < N; i += 8) {
      const uint64_t r = RandomU64();
      std::memcpy(id.data() + i, &r, N - i < 8 ? N - i : 8);
    }
  } while (AllZero(id));
}

bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// The characters after a key's first: lcalpha / DIGIT / "_" / "-" / "*" / "/".
bool IsKeyChar(char c) {
  return IsLcAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

// §3.3.1.3.1: simple-key = lcalpha 0*255(keychar); multi-tenant-key = tenant-id "@" system-id,
// tenant-id = (lcalpha / DIGIT) 0*240(keychar), system-id = lcalpha 0*13(keychar).
bool IsValidKey(std::string_view key) {
  const size_t at = key.find('@');
  auto chars_ok = [](std::string_view s) {
    for (size_t i = 1; i < s.size(); ++i) {
      if (!IsKeyChar(s[i])) return false;
    }
    return true;
  };
  if (at == std::string_view::npos) {
    return !key.empty() && key.size() <= 256 && IsLcAlpha(key[0]) && chars_ok(key);
  }
  const std::string_view tenant = key.substr(0, at);
  const std::string_view system = key.substr(at + 1);
  return !tenant.empty() && tenant.size() <= 241 && (IsLcAlpha(tenant[0]) || IsDigit(tenant[0])) &&
         chars_ok(tenant) && !system.empty() && system.size() <= 14 && IsLcAlpha(system[0]) &&
         chars_ok(system);
}

// §3.3.1.3.2: value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr;
// nblk-chr = %x21-2B / %x2D-3C / %x3E-7E (printable ASCII but ',' and '=').
bool IsValidValue(std::string_view value) {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  }
  return true;
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

uint64_t RandomU64() {
  if (t_state[0] == 0 && t_state[1] == 0) [[unlikely]] {
    Seed();
  }
  uint64_t s1 = t_state[0];
  const uint64_t s0 = t_state[1];
  t_state[0] = s0;
  s1 ^= s1 << 23;
  t_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return t_state[1] + s0;
}

std::optional<TraceParent> ParseTraceparent(std::string_view v) {
  if (v.size() < kTraceparentSize) return std::nullopt;
  TraceParent tp;
  uint8_t version;
  if (!HexDecode(v.substr(0, 2), &version, 1) || version == 0xff) return std::nullopt;
  if (version == 0) {
    if (v.size() != kTraceparentSize) return std::nullopt;
  } else if (v.size() > kTraceparentSize && v[kTraceparentSize] != '-') {
    // A later version may append fields, each after a '-' (§4.3).
    return std::nullopt;
  }
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  if (!HexDecode(v.substr(3, 32), tp.trace_id.data(), 16) ||
      !HexDecode(v.substr(36, 16), tp.parent_id.data(), 8) ||
      !HexDecode(v.substr(53, 2), &tp.flags, 1)) {
    return std::nullopt;
  }
  if (AllZero(tp.trace_id) || AllZero(tp.parent_id)) return std::nullopt;
  tp.version = version;
  return tp;
}

bool IsValidTracestate(std::string_view value) {
  if (value.size() > kMaxTracestateBytes) return false;
  // Keys seen so far (views into `value`): at most 32, so a linear search is cheapest.
  std::string_view keys[kMaxTracestateMembers];
  size_t members = 0;
  while (true) {
    const size_t comma = value.find(',');
    const std::string_view member = TrimOws(value.substr(0, comma));
    if (!member.empty()) {
      const size_t eq = member.find('=');
      if (eq == std::string_view::npos) return false;
      const std::string_view key = member.substr(0, eq);
      if (!IsValidKey(key) || !IsValidValue(member.substr(eq + 1))) return false;
      if (members == kMaxTracestateMembers) return false;
      for (size_t i = 0; i < members; ++i) {
        if (keys[i] == key) return false;
      }
      keys[members++] = key;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return true;
}

void HexEncode(const uint8_t* bytes, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
}

void FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags,
                       char (&out)[kTraceparentSize]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  HexEncode(trace_id.data(), trace_id.size(), out + 3);
  out[35] = '-';
  HexEncode(span_id.data(), span_id.size(), out + 36);
  out[52] = '-';
  HexEncode(&flags, 1, out + 53);
}

TraceId NewTraceId() {
  TraceId id;
  FillRandom(id);
  return id;
}

SpanId NewSpanId() {
  SpanId id;
  FillRandom(id);
  return id;
}

void NewUuid4(char (&out)[kUuidSize]) {
  uint8_t b[16];
  const uint64_t hi = RandomU64(), lo = RandomU64();
  std::memcpy(b, &hi, 8);
  std::memcpy(b + 8, &lo, 8);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // variant 10
  char* p = out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = kHex[b[i] >> 4];
    *p++ = kHex[b[i] & 0xf];
  }
}

}  // namespace sluice::http::tracing
