#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::json {

namespace internal {
// Printable ASCII but '"' and '\\', as a table: a value is scanned at a few instructions a byte.
struct PlainTable {
  bool plain[256];
  constexpr PlainTable() : plain() {
    for (int c = 0x20; c < 0x7f; ++c) plain[c] = c != '"' && c != '\\';
  }
};
inline constexpr PlainTable kPlain;
}  // namespace internal

// Whether `c` stands as it is in a JSON string: printable ASCII but '"' and '\\' (UTF-8 aside).
// The access log's text escaping starts from the same set.
inline bool IsPlain(char c) { return internal::kPlain.plain[static_cast<unsigned char>(c)]; }

// The length of the well-formed UTF-8 sequence that starts `s` (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 (empty, ASCII, or not well-formed).
size_t Utf8SequenceLength(std::string_view s);

// Appends `value` escaped for the inside of a JSON string (RFC 8259 §7), always a valid one:
// '"' and '\\' escaped; \n, \r and \t as such; other control characters and DEL as \u00XX;
// well-formed UTF-8 as it is; any other byte (obs-text in a header, a cut sequence) as the code
// point of its value, \u00XX (Latin-1), so that a reader sees every byte and the document parses.
// Runs that need nothing are copied at once: a value is scanned at a few instructions a byte.
void AppendEscaped(std::string& out, std::string_view value);

// `value` as a quoted JSON string, appended to `out`.
void AppendString(std::string& out, std::string_view value);
std::string Quote(std::string_view value);

}  // namespace sluice::json
