#pragma once

// A TLS ClientHello parser for the TLS inspector: it reads the first bytes of a connection, before
// any handshake, to learn what a listener needs to pick a filter chain (server name, ALPN) and
// whether the connection speaks TLS at all. A pure function over bytes: no socket, no BoringSSL,
// no state kept between calls — the caller passes every byte read so far each time.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace sluice::tls {

// What the ClientHello tells. Every field but `tls` is meaningful only after kDone.
struct ClientHelloInfo {
  // The first host_name of the server_name extension, lower-cased; empty without one.
  std::string server_name;
  // The ALPN protocol names in the client's order; empty without the extension.
  std::vector<std::string> alpn;
  // The connection starts with a TLS handshake record header (content type 22, version 3.x).
  // Set as soon as the first three bytes say so, whatever the result, so that a caller can tell
  // "TLS but broken or too large" from "not TLS".
  bool tls = false;
  // ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3 clients).
  uint16_t legacy_version = 0;
  // The supported_versions extension offers TLS 1.3 (0x0304).
  bool has_supported_versions_13 = false;
};

enum class ParseResult {
  kNeedMore,  // every byte so far is consistent with a ClientHello: read more and call again
  kNotTls,    // the connection does not start with a TLS handshake record (e.g. HTTP, SSLv2)
  kDone,      // a whole, well-formed ClientHello: `out` is filled
  kInvalid,   // a TLS handshake record, but malformed (lengths, fields, duplicate extensions)
  kTooLarge,  // the ClientHello would end past `max_size` bytes of the connection
};

std::string_view ParseResultName(ParseResult result);

// Parses the ClientHello at the start of `data`, the bytes read from the connection so far,
// starting at its first byte. The ClientHello may be fragmented over several handshake records.
//
// `max_size` bounds the bytes of the connection the ClientHello may span, record headers
// included. kTooLarge comes as soon as the lengths read so far prove the ClientHello ends past it,
// so a caller never needs to buffer more than `max_size` bytes: with data.size() >= max_size the
// result is never kNeedMore.
//
// Decisions depend only on the bytes read so far, in order: on any prefix of an input, the result
// is kNeedMore or the input's own result. Bytes after the ClientHello (the rest of its record,
// later records) are not looked at; the TLS stack judges them.
//
// Never reads outside `data`; allocates only for the strings it returns.
ParseResult ParseClientHello(absl::Span<const uint8_t> data, ClientHelloInfo* out,
                             size_t max_size = 16384);

}  // namespace sluice::tls
