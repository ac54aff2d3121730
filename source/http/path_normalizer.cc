#include "source/http/path_normalizer.h"

#include <cstdint>

namespace sluice::http {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 §2.3.
bool IsUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// True when the path may change: a percent-encoding, a backslash, an empty segment or a segment
// starting with '.'. Most paths have none of them and are accepted after this one pass.
bool MayChange(std::string_view path, const PathNormalization& o) {
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%' || (c == '\\' && o.normalize)) return true;
    if (c == '/' && i + 1 < path.size()) {
      const char next = path[i + 1];
      if ((next == '/' && o.merge_slashes) || (next == '.' && o.normalize)) return true;
    }
  }
  return false;
}

// Removes "." and ".." segments (RFC 3986 §5.2.4) from `path`, which starts with '/'.
void RemoveDotSegments(std::string_view path, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i + 1);
    if (j == std::string_view::npos) j = path.size();
    const std::string_view segment = path.substr(i + 1, j - i - 1);
    const bool last = j == path.size();
    if (segment == ".") {
      if (last) out.push_back('/');
    } else if (segment == "..") {
      const size_t slash = out.rfind('/');
      out.resize(slash == std::string::npos ? 0 : slash);
      if (last) out.push_back('/');
    } else {
      out.push_back('/');
      out.append(segment);
    }
    i = j;
  }
  if (out.empty()) out.push_back('/');
}

}  // namespace

PathResult NormalizePath(std::string_view target, const PathNormalization& o, std::string& out,
                         const char*& reason) {
  if (target.empty() || target[0] != '/') return PathResult::kUnchanged;
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  if (!MayChange(path, o)) return PathResult::kUnchanged;

  // Pass 1: percent-decoding and slashes, merged as they are written.
  thread_local std::string decoded;
  decoded.clear();
  decoded.reserve(path.size());
  bool unescaped_slash = false;
  auto put_slash = [&] {
    if (o.merge_slashes && !decoded.empty() && decoded.back() == '/') return;
    decoded.push_back('/');
  };
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '/' || (c == '\\' && o.normalize)) {
      put_slash();
      continue;
    }
    if (c != '%') {
      decoded.push_back(c);
      continue;
    }
    const int h1 = i + 1 < path.size() ? HexValue(path[i + 1]) : -1;
    const int h2 = i + 2 < path.size() ? HexValue(path[i + 2]) : -1;
    if (h1 < 0 || h2 < 0) {
      if (o.normalize) {
        reason = "invalid percent-encoding in path";
        return PathResult::kReject;
      }
      decoded.push_back(c);  // not ours to judge: passed on as received
      continue;
    }
    const auto v = static_cast<unsigned char>(h1 * 16 + h2);
    i += 2;
    if (v == '/' || v == '\\') {
      switch (o.escaped_slashes) {
        case PathNormalization::EscapedSlashes::kReject:
          reason = "escaped slash in path";
          return PathResult::kReject;
        case PathNormalization::EscapedSlashes::kKeep:
          break;
        case PathNormalization::EscapedSlashes::kUnescapeAndRedirect:
        case PathNormalization::EscapedSlashes::kUnescapeAndForward:
          unescaped_slash = true;
          if (v == '/' || o.normalize) {
            put_slash();
          } else {
            decoded.push_back('\\');
          }
          continue;
      }
    } else if (o.normalize && IsUnreserved(v)) {
      decoded.push_back(static_cast<char>(v));
      continue;
    }
    static constexpr char kHex[] = "0123456789ABCDEF";
    decoded.push_back('%');
    decoded.push_back(o.normalize ? kHex[v >> 4] : path[i - 1]);
    decoded.push_back(o.normalize ? kHex[v & 15] : path[i]);
  }

  // Pass 2: dot segments (the decoding may have made some: "%2e%2e").
  if (o.normalize) {
    RemoveDotSegments(decoded, out);
  } else {
    out.assign(decoded);
  }
  if (q != std::string_view::npos) out.append(target.substr(q));
  if (unescaped_slash &&
      o.escaped_slashes == PathNormalization::EscapedSlashes::kUnescapeAndRedirect) {
    return PathResult::kRedirect;
  }
  if (out == target) {
    out.clear();
    return PathResult::kUnchanged;
  }
  return PathResult::kNormalized;
}

bool SplitAbsoluteForm(std::string_view target, std::string_view& authority,
                       std::string& origin_form) {
  size_t scheme_len = 0;
  auto starts_with_ci = [&](std::string_view prefix) {
    if (target.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      char c = target[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != prefix[i]) return false;
    }
    return true;
  };
  if (starts_with_ci("http://")) {
    scheme_len = 7;
  } else if (starts_with_ci("https://")) {
    scheme_len = 8;
  } else {
    return false;
  }
  const std::string_view rest = target.substr(scheme_len);
  const size_t end = rest.find_first_of("/?");
  authority = rest.substr(0, end);
  origin_form.clear();
  if (end == std::string_view::npos) {
    origin_form.push_back('/');
  } else {
    if (rest[end] == '?') origin_form.push_back('/');
    origin_form.append(rest.substr(end));
  }
  return true;
}

}  // namespace sluice::http
