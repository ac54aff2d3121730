#include "source/common/json_string.h"

namespace sluice::json {

namespace {

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

size_t Utf8SequenceLength(std::string_view s) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t n;
  // The second byte's range narrows for the lead bytes where overlongs (E0, F0), surrogates
  // (ED) or code points past U+10FFFF (F4) would start.
  unsigned char lo = 0x80, hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (n > s.size()) return 0;
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[k]);
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return n;
}

void AppendEscaped(std::string& out, std::string_view value) {
  size_t clean = 0;  // the start of the run not yet appended
  size_t i = 0;
  while (i < value.size()) {
    const auto u = static_cast<unsigned char>(value[i]);
    if (IsPlain(static_cast<char>(u))) {
      ++i;
      continue;
    }
    if (u >= 0x80) {
      const size_t n = Utf8SequenceLength(value.substr(i));
      if (n != 0) {
        i += n;
        continue;
      }
    }
    out.append(value.data() + clean, i - clean);
    switch (u) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 0xf]};
        out.append(esc, 6);
        break;
      }
    }
    ++i;
    clean = i;
  }
  out.append(value.data() + clean, value.size() - clean);
}

void AppendString(std::string& out, std::string_view value) {
  out.push_back('"');
  AppendEscaped(out, value);
  out.push_back('"');
}

std::string Quote(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  AppendString(out, value);
  return out;
}

}  // namespace sluice::json
