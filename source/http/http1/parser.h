#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "source/common/buffer.h"
#include "source/http/header_map.h"

namespace sluice::http::http1 {

// Size limits of a message head; each has the status the RFCs and common practice give it.
struct Limits {
  uint32_t max_request_line = 8 * 1024;    // longer: 414 URI Too Long
  uint32_t max_header_bytes = 60 * 1024;   // whole head incl. request line; larger: 431
  uint32_t max_headers = 100;              // more fields: 431
  uint32_t max_chunk_extension = 1024;     // per chunk line, bytes of extensions; more: 400
  uint32_t max_trailer_bytes = 16 * 1024;  // larger: 431 (chunked trailers)
};

// Empty lines (CRLF) skipped before a request line (RFC 9112 §2.2: a server SHOULD ignore at
// least one, which some clients send after a POST body). More than this: the request line is
// empty, 400. Status lines get none (a server has no reason to send them).
inline constexpr uint32_t kMaxLeadingEmptyLines = 4;

// Why a message was rejected: the status to answer with (server side; 0 on the client side
// means "treat as an upstream protocol error") and a short reason for logs and counters.
// ParseResponseHead and ResponseFraming always report 0. ChunkedDecoder does not know its side
// and reports 400/431: a client-side codec treats any of its errors as an upstream protocol error.
struct ParseError {
  uint16_t status = 400;
  std::string reason;  // e.g. "both Content-Length and Transfer-Encoding"
};

// How the body of a message is delimited (RFC 9112 §6.3).
struct BodyFraming {
  enum class Kind { kNone, kContentLength, kChunked, kUntilClose } kind = Kind::kNone;
  uint64_t content_length = 0;
};

// Finds the end of a head ("\r\n\r\n") incrementally in a chain buffer without copying.
// Feed it the buffer each time more bytes arrive; it resumes where it stopped. The head starts
// at the front of `buffer`: do not drain it between calls (until kComplete or reset()).
//
// Line endings are checked here already: a LF not preceded by CR, or a CR not followed by LF,
// is kBadLineEnding (400) at once, so a peer ending lines with bare LF gets an answer instead of
// a wait for a "\r\n\r\n" that never comes. Limits are reported as soon as the head can no
// longer fit: kRequestLineTooLong (414) when the first line passes max_request_line,
// kHeadTooLarge (431) when the head cannot end within max_header_bytes. For requests, up to
// kMaxLeadingEmptyLines CRLFs before the request line are skipped (they count toward the head,
// and ParseRequestHead skips them again). When several rules are broken, the first in byte order
// decides, so the result never depends on how the bytes were split into reads. Any result other
// than kNeedMore is sticky until reset().
class HeadScanner {
 public:
  enum class Result { kNeedMore, kComplete, kRequestLineTooLong, kHeadTooLarge, kBadLineEnding };
  // On kComplete, headLength() is the number of bytes of the head including the final CRLFCRLF.
  // `is_request`: checks the first line against max_request_line (414) as well.
  Result scan(const Buffer& buffer, const Limits& limits, bool is_request);
  size_t headLength() const { return head_length_; }
  void reset();

 private:
  size_t scanned_ = 0;
  size_t head_length_ = 0;
  // Bytes of the current line before its CR.
  size_t line_length_ = 0;
  bool first_line_done_ = false;
  uint8_t leading_lines_ = 0;
  // Bytes of the current "\r\n\r\n" candidate matched so far (0: inside a line's content).
  uint8_t match_ = 0;
  Result result_ = Result::kNeedMore;
};

// Parses a complete request head (as found by HeadScanner, copied into contiguous storage that
// `head.headers` adopts) strictly per RFC 9112/9110: the method is a token; the target has no
// whitespace, controls or bytes >= 0x7f; the version is HTTP/1.0 or HTTP/1.1; field names are
// tokens with no whitespace before the colon; field values have no NUL/CR/LF/controls (HTAB ok)
// and no obs-fold; line endings are CRLF (a bare CR or LF is an error). The views in `head`
// point into `storage`. Returns nullopt on success.
//
// `head` is reset first (its previous fields and storage are dropped). The target must be
// origin-form ("/..."), absolute-form ("http://" or "https://" authority, no userinfo), "*" for
// OPTIONS only, or authority-form "host:port" for CONNECT only (and CONNECT takes nothing else).
// Statuses: 414 request line longer than max_request_line; 431 head larger than
// max_header_bytes or more than max_headers fields; 505 a well-formed version other than
// HTTP/1.0 and HTTP/1.1 ("HTTP/2.0"); 400 for everything else.
std::optional<ParseError> ParseRequestHead(std::unique_ptr<char[]> storage, size_t length,
                                           const Limits& limits, RequestHead& head);
// Status line: "HTTP/1.x" SP 3DIGIT (100-999) SP reason, where the SP before an empty reason may
// be missing (common in the wild; nothing depends on it). Errors have status 0.
std::optional<ParseError> ParseResponseHead(std::unique_ptr<char[]> storage, size_t length,
                                            const Limits& limits, ResponseHead& head);

// Message framing from the parsed fields (RFC 9112 §6): rejects both Content-Length and
// Transfer-Encoding, differing or non-1*DIGIT Content-Length values, a Transfer-Encoding that is
// not exactly a final "chunked" (HTTP/1.1; any Transfer-Encoding in HTTP/1.0 is an error), a
// missing Host on HTTP/1.1 or more than one Host, Content-Length on 1xx/204/304 handled by the
// caller. Requests without framing have no body.
//
// Policies (all 400 unless noted):
// - Content-Length: every value, across repeated fields and comma lists ("5, 5"), must be 1*DIGIT
//   and byte-identical to the others ("5" and "05" differ); the value must fit in 63 bits.
//   Exact duplicates are accepted as one length (RFC 9110 §8.6 allows either choice).
// - Transfer-Encoding: the combined list must be exactly one "chunked" (any case). "chunked"
//   twice or not last: 400. Any other coding ("gzip", "gzip, chunked"): 501 (RFC 9112 §6.1: a
//   coding the server does not understand). Empty list elements: 400.
// - Host (exactly one on HTTP/1.1, at most one on HTTP/1.0) must be a valid uri-host [":" port]
//   or empty. With absolute-form the target's authority wins (RFC 9112 §3.2.2); Host is still
//   required.
// A Content-Length of 0 is reported as kContentLength with content_length 0.
std::optional<ParseError> RequestFraming(const RequestHead& head, BodyFraming& framing);
// Responses: `request_method` and status decide (HEAD, 1xx, 204, 304 have none; CONNECT 2xx is a
// tunnel); without length or chunked, the body runs until close.
//
// The same Content-Length / Transfer-Encoding rules as requests apply (both at once, or any
// coding but a lone "chunked", is an error here too: a front end does not pass ambiguous framing
// on), except for a 2xx to CONNECT, whose CL/TE are ignored (RFC 9110 §9.3.6) and which is
// reported as kUntilClose: the connection is a tunnel from here on. Errors have status 0.
std::optional<ParseError> ResponseFraming(const ResponseHead& head, std::string_view request_method,
                                          BodyFraming& framing);

// Decodes a chunked body incrementally from a chain buffer, moving data bytes (zero-copy where
// whole slices) into `out`. Strict: chunk-size is 1*HEXDIG (bounded to 2^63), extensions are
// bounded, each chunk ends with CRLF, the last chunk is followed by trailers and a CRLF.
class ChunkedDecoder {
 public:
  enum class Result { kNeedMore, kDone, kError };
  // Consumes from `in` what it can. Data goes to `out`; once the last chunk and its trailer
  // section have been read, returns kDone with trailers() filled (possibly empty). On kError,
  // error() says why. Nothing after the end of the chunked body is consumed (a pipelined next
  // message stays in `in`); kDone and kError are sticky until reset().
  //
  // Strictness: chunk-size is 1..16 hex digits with no whitespace around it; extensions follow
  // RFC 9112 §7.1.1 (token names, token or quoted-string values, BWS only around ';' and '=')
  // and are at most max_chunk_extension bytes per line (400); every line ends in CRLF (a bare CR
  // or LF anywhere is 400); trailer fields follow the head's field rules, may not be
  // Content-Length, Transfer-Encoding or Host (RFC 9110 §6.5.1), and are bounded by
  // max_trailer_bytes and max_headers (431).
  Result decode(Buffer& in, Buffer& out, const Limits& limits);
  HeaderMap& trailers() { return trailers_; }
  const ParseError& error() const { return error_; }
  // Ready for the next message.
  void reset();

 private:
  enum class State {
    kSize,
    kExtension,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailers,
    kDone,
    kError
  };
  Result fail(uint16_t status, const char* reason);
  // Consumes bytes of [p, end) in the non-data states; returns how many.
  size_t step(const uint8_t* p, const uint8_t* end, const Limits& limits);
  bool finishTrailers(const Limits& limits);

  State state_ = State::kSize;
  uint64_t remaining_ = 0;
  uint32_t size_digits_ = 0;
  uint32_t extension_bytes_ = 0;
  // Position inside the extension grammar (kExtension) or the trailer line grammar (kTrailers).
  uint8_t substate_ = 0;
  std::string trailer_block_;
  HeaderMap trailers_;
  ParseError error_;
};

// Encoders: write a head into `out` (one add() per head: callers then write it with one syscall).
void EncodeRequestHead(const RequestHead& head, Buffer& out);
void EncodeResponseHead(const ResponseHead& head, Buffer& out);
// One chunk ("<hex>\r\n" data "\r\n") moving `data` into `out`; the last chunk with trailers.
// An empty `data` writes nothing (an empty chunk would be the last chunk).
void EncodeChunk(Buffer& data, Buffer& out);
void EncodeLastChunk(const HeaderMap* trailers, Buffer& out);
// Heads are always written as HTTP/1.1 (RFC 9110 §2.5: an intermediary sends its own version);
// an empty reason is filled from ReasonPhrase(). Names and values are written verbatim: whoever
// lets a plugin set a field checks it with IsValidFieldName/IsValidFieldValue first.

// The standard reason phrase of `status` ("Not Found"), or "" for codes without one.
std::string_view ReasonPhrase(uint16_t status);

// The Content-Length of a response head about to be sent, checked with the same rules as a
// received one (every value 1*DIGIT and equal, fits 63 bits). False when absent or invalid.
bool ParseResponseContentLength(const HeaderMap& headers, uint64_t& length);

// RFC 9110 §5.1 / §5.5: a name is a non-empty token; a value is *(VCHAR / obs-text / SP / HTAB)
// (no CR, LF, NUL or other controls). For checking fields set through the plugin ABI.
bool IsValidFieldName(std::string_view name);
bool IsValidFieldValue(std::string_view value);

}  // namespace sluice::http::http1
