#pragma once

// Pieces shared by the HTTP/1 head parser, the chunked decoder and the encoders. Not an
// interface: only source/http/http1/*.cc include this.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "source/http/header_map.h"
#include "source/http/http1/parser.h"

namespace sluice::http::http1::internal {

// Byte classes, one bit each, looked up in a 256-entry table: one load per byte, no branches on
// ranges, no locale.
enum CharClass : uint8_t {
  kTokenChar = 1 << 0,       // tchar (RFC 9110 §5.6.2)
  kFieldValueChar = 1 << 1,  // VCHAR / obs-text / SP / HTAB (RFC 9110 §5.5)
  kTargetChar = 1 << 2,      // visible ASCII 0x21-0x7e (request-target; finer URI rules elsewhere)
  kHexChar = 1 << 3,         // HEXDIG
  kHostChar = 1 << 4,        // reg-name / IP-literal bytes: unreserved, sub-delims, '%', ':[]'
  kQdTextChar = 1 << 5,      // qdtext (RFC 9110 §5.6.4): HTAB SP 0x21 0x23-0x5b 0x5d-0x7e obs-text
};

constexpr std::array<uint8_t, 256> MakeCharTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t bits = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
      bits |= kTokenChar;
    }
    if (c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80) {
      bits |= kFieldValueChar;
    }
    if (c >= 0x21 && c <= 0x7e) {
      bits |= kTargetChar;
    }
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
      bits |= kHexChar;
    }
    if (alpha || digit ||
        std::string_view("-._~!$&'()*+,;=%:[]").find(static_cast<char>(c)) !=
            std::string_view::npos) {
      bits |= kHostChar;
    }
    if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
        (c >= 0x5d && c <= 0x7e) || c >= 0x80) {
      bits |= kQdTextChar;
    }
    t[c] = bits;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kCharTable = MakeCharTable();

inline bool Is(uint8_t c, CharClass cls) { return (kCharTable[c] & cls) != 0; }
inline bool Is(char c, CharClass cls) { return Is(static_cast<uint8_t>(c), cls); }
inline bool IsOws(char c) { return c == ' ' || c == '\t'; }

inline int HexValue(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;  // caller checked kHexChar
}

// Parses the field lines of a head or trailer section: [p, end) is the lines after the
// start-line, ending with the empty line's CRLF exactly at `end`. Adds each field to `map` as a
// reference into [p, end) (so that storage must be adopted by `map` or outlive it). More than
// `max_fields` fields is `too_many_status`; any other violation is `error_status`.
std::optional<ParseError> ParseFieldLines(const char* p, const char* end, uint32_t max_fields,
                                          uint16_t error_status, uint16_t too_many_status,
                                          HeaderMap& map);

}  // namespace sluice::http::http1::internal
