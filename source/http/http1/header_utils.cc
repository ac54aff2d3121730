#include "source/http/http1/header_utils.h"

#include "absl/container/inlined_vector.h"
#include "source/http/http1/parser_internal.h"

namespace sluice::http::http1 {

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!internal::Is(c, internal::kTokenChar)) return false;
  }
  return true;
}

bool ContainsToken(std::string_view list, std::string_view token) {
  bool found = false;
  ForEachListItem(list, [&](std::string_view item) {
    found = HeaderNameEquals(item, token);
    return !found;
  });
  return found;
}

bool AnyHeaderHasToken(const HeaderMap& headers, KnownHeader h, std::string_view token) {
  if (headers.count(h) == 0) return false;
  // Direct iteration: forEach's std::function may allocate, and this runs per message.
  for (const HeaderMap::Entry& e : headers.entries()) {
    if (e.known == h && !e.name.empty() && ContainsToken(e.value, token)) return true;
  }
  return false;
}

void RemoveHopByHop(HeaderMap& headers, bool keep_upgrade) {
  // Views into the head's storage, which removing fields does not free; inline for the usual
  // "Connection: keep-alive" so that the common case allocates nothing.
  absl::InlinedVector<std::string_view, 4> named;
  if (headers.count(KnownHeader::kConnection) != 0) {
    for (const HeaderMap::Entry& e : headers.entries()) {
      if (e.known != KnownHeader::kConnection || e.name.empty()) continue;
      ForEachListItem(e.value, [&](std::string_view item) {
        if (!item.empty()) named.emplace_back(item);
        return true;
      });
    }
  }
  for (const auto& n : named) {
    if (keep_upgrade && HeaderNameEquals(n, "upgrade")) continue;
    headers.remove(n);
  }
  headers.remove(KnownHeader::kConnection);
  headers.remove(KnownHeader::kKeepAlive);
  headers.remove(KnownHeader::kProxyConnection);
  headers.remove(KnownHeader::kTransferEncoding);
  headers.remove(KnownHeader::kTe);
  if (!keep_upgrade) headers.remove(KnownHeader::kUpgrade);
}

bool FitToLength(Buffer& data, bool end_stream, uint64_t& remaining) {
  bool matches = true;
  if (data.length() > remaining) {
    Buffer announced;
    announced.move(data, remaining);
    data.clear();
    data.move(announced);
    matches = false;
  }
  remaining -= data.length();
  if (end_stream && remaining != 0) matches = false;
  return matches;
}

}  // namespace sluice::http::http1
