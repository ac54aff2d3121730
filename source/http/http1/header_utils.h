#pragma once

// Field helpers both HTTP/1 codecs (server and client side) use.

#include <string_view>

#include "source/common/buffer.h"
#include "source/http/header_map.h"

namespace sluice::http::http1 {

// Calls `fn` with each element of a comma-separated list (Connection, Expect, ...), trimmed of
// optional whitespace, until it returns false.
template <class F>
void ForEachListItem(std::string_view list, F&& fn) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(pos, comma - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!fn(item)) return;
    pos = comma + 1;
  }
}

// A non-empty RFC 9110 token (field names, methods, protocol names).
bool IsToken(std::string_view s);
// True if the comma-separated `list` has `token` (case-insensitive).
bool ContainsToken(std::string_view list, std::string_view token);
// True if any field `h` holds `token` in its list.
bool AnyHeaderHasToken(const HeaderMap& headers, KnownHeader h, std::string_view token);
// Fields that describe one hop (RFC 9110 §7.6.1), plus those the Connection field names: never
// forwarded; the codec writes its own framing and connection fields. `keep_upgrade` keeps
// Upgrade (and its mention in Connection) for a protocol switch.
void RemoveHopByHop(HeaderMap& headers, bool keep_upgrade);

// For a body framed by Content-Length: keeps at most `remaining` bytes of `data` (what is past
// the announced length would be read as the start of a next message: dropped) and counts them
// off. False when the body did not match its length (longer, or short at `end_stream`).
bool FitToLength(Buffer& data, bool end_stream, uint64_t& remaining);

}  // namespace sluice::http::http1
