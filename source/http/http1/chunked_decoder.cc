#include <sys/uio.h>

#include <cstring>
#include <limits>
#include <memory>

#include "source/http/http1/parser.h"
#include "source/http/http1/parser_internal.h"

// The chunked transfer coding (RFC 9112 §7.1), decoded incrementally. Most chunked smuggling
// tricks live in the size line (whitespace, "0x", overlong sizes that wrap), in what terminates
// a line (bare LF or CR inside extensions or after data) and in trailers; each is an error here.

namespace sluice::http::http1 {

using internal::Is;
using internal::IsOws;

namespace {

// Positions in the chunk-ext grammar (RFC 9112 §7.1.1):
//   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//   chunk-ext-val = token / quoted-string
enum ExtState : uint8_t {
  kExtAfterSemi,    // after ';': BWS, then a name
  kExtName,         // in a name
  kExtAfterName,    // BWS after a name: '=' or ';'
  kExtAfterEquals,  // BWS after '=': a value
  kExtToken,        // in a token value
  kExtQuoted,       // in a quoted-string
  kExtEscape,       // after '\' in a quoted-string
  kExtQuoteEnd,     // right after the closing quote
  kExtAfterValue,   // BWS after a value: ';' only
};

// Positions in a trailer line (kTrailers): tracking CRLFs only; the fields are checked by
// ParseFieldLines once the section is complete.
enum TrailerState : uint8_t {
  kTrailerContent,    // inside a line
  kTrailerCr,         // CR after content
  kTrailerLineStart,  // after a CRLF (or at the start of the section)
  kTrailerFinalCr,    // CR at the start of a line: the section's end if LF follows
};

// 16 hex digits hold any 63-bit size; more can only be leading zeros or an overflow.
constexpr uint32_t kMaxSizeDigits = 16;
constexpr uint64_t kMaxChunkSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

}  // namespace

void ChunkedDecoder::reset() {
  state_ = State::kSize;
  remaining_ = 0;
  size_digits_ = 0;
  extension_bytes_ = 0;
  substate_ = 0;
  trailer_block_.clear();
  trailers_.clear();
  error_ = ParseError{};
}

ChunkedDecoder::Result ChunkedDecoder::fail(uint16_t status, const char* reason) {
  state_ = State::kError;
  error_ = ParseError{status, reason};
  return Result::kError;
}

ChunkedDecoder::Result ChunkedDecoder::decode(Buffer& in, Buffer& out, const Limits& limits) {
  while (true) {
    if (state_ == State::kDone) {
      return Result::kDone;
    }
    if (state_ == State::kError) {
      return Result::kError;
    }
    if (in.empty()) {
      return Result::kNeedMore;
    }
    if (state_ == State::kData) {
      // Whole slices change hands by pointer; only a slice split by the chunk's end is copied.
      const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.length()));
      out.move(in, n);
      remaining_ -= n;
      if (remaining_ == 0) {
        state_ = State::kDataCr;
      }
      continue;
    }
    struct iovec iov;
    in.peek(&iov, 1);
    const auto* p = static_cast<const uint8_t*>(iov.iov_base);
    in.drain(step(p, p + iov.iov_len, limits));
  }
}

size_t ChunkedDecoder::step(const uint8_t* const begin, const uint8_t* const end,
                            const Limits& limits) {
  const uint8_t* p = begin;
  const auto used = [&] { return static_cast<size_t>(p - begin); };
  while (p < end) {
    const uint8_t c = *p;
    switch (state_) {
      case State::kSize:
        if (Is(c, internal::kHexChar)) {
          const uint64_t digit = static_cast<uint64_t>(internal::HexValue(c));
          if (++size_digits_ > kMaxSizeDigits || remaining_ > (kMaxChunkSize - digit) / 16) {
            fail(400, "chunk size too large");
            return used();
          }
          remaining_ = remaining_ * 16 + digit;
        } else if (size_digits_ == 0) {
          fail(400, "invalid chunk size");  // empty, "0x", leading whitespace, a sign...
          return used();
        } else if (c == ';') {
          state_ = State::kExtension;
          substate_ = kExtAfterSemi;
          extension_bytes_ = 1;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else {
          // Trailing whitespace before ';' is BWS in the grammar, but servers disagree on it (and
          // on anything else here), so the size must end at ';' or CRLF.
          fail(400, c == '\n' ? "bare LF after chunk size" : "invalid character after chunk size");
          return used();
        }
        ++p;
        break;

      case State::kExtension: {
        if (c == '\r') {
          if (substate_ != kExtName && substate_ != kExtToken && substate_ != kExtQuoteEnd) {
            fail(400, "incomplete chunk extension");
            return used();
          }
          state_ = State::kSizeLf;
          ++p;
          break;
        }
        if (++extension_bytes_ > limits.max_chunk_extension) {
          fail(400, "chunk extension too long");
          return used();
        }
        const bool ows = IsOws(static_cast<char>(c));
        const bool token = Is(c, internal::kTokenChar);
        bool ok = true;
        switch (substate_) {
          case kExtAfterSemi:
            ok = ows || token;
            if (token) substate_ = kExtName;
            break;
          case kExtName:
          case kExtAfterName:
            if (token && substate_ == kExtName) {
            } else if (ows) {
              substate_ = kExtAfterName;
            } else if (c == '=') {
              substate_ = kExtAfterEquals;
            } else if (c == ';') {
              substate_ = kExtAfterSemi;
            } else {
              ok = false;
            }
            break;
          case kExtAfterEquals:
            if (c == '"') {
              substate_ = kExtQuoted;
            } else if (token) {
              substate_ = kExtToken;
            } else {
              ok = ows;
            }
            break;
          case kExtToken:
          case kExtQuoteEnd:
          case kExtAfterValue:
            if (token && substate_ == kExtToken) {
            } else if (ows) {
              substate_ = kExtAfterValue;
            } else if (c == ';') {
              substate_ = kExtAfterSemi;
            } else {
              ok = false;
            }
            break;
          case kExtQuoted:
            if (c == '"') {
              substate_ = kExtQuoteEnd;
            } else if (c == '\\') {
              substate_ = kExtEscape;
            } else {
              ok = Is(c, internal::kQdTextChar);
            }
            break;
          case kExtEscape:
            ok = Is(c, internal::kFieldValueChar);
            substate_ = kExtQuoted;
            break;
        }
        if (!ok) {
          // Includes a bare LF: parsers that end the line there and parsers that do not read
          // different chunk data from the same bytes.
          fail(400, c == '\n' ? "bare LF in chunk extension" : "invalid chunk extension");
          return used();
        }
        ++p;
        break;
      }

      case State::kSizeLf:
        if (c != '\n') {
          fail(400, "bare CR in chunk size line");
          return used();
        }
        ++p;
        if (remaining_ == 0) {
          state_ = State::kTrailers;
          substate_ = kTrailerLineStart;
          trailer_block_.clear();
          break;
        }
        state_ = State::kData;
        return used();

      case State::kDataCr:
        if (c != '\r') {
          fail(400, "chunk data not followed by CRLF");
          return used();
        }
        state_ = State::kDataLf;
        ++p;
        break;

      case State::kDataLf:
        if (c != '\n') {
          fail(400, "chunk data not followed by CRLF");
          return used();
        }
        state_ = State::kSize;
        remaining_ = 0;
        size_digits_ = 0;
        extension_bytes_ = 0;
        ++p;
        break;

      case State::kTrailers: {
        if (trailer_block_.size() >= limits.max_trailer_bytes) {
          fail(431, "trailers too large");
          return used();
        }
        trailer_block_.push_back(static_cast<char>(c));
        ++p;
        bool ok = true;
        switch (substate_) {
          case kTrailerContent:
            ok = c != '\n';
            if (c == '\r') substate_ = kTrailerCr;
            break;
          case kTrailerCr:
            ok = c == '\n';
            substate_ = kTrailerLineStart;
            break;
          case kTrailerLineStart:
            ok = c != '\n';
            substate_ = c == '\r' ? kTrailerFinalCr : kTrailerContent;
            break;
          case kTrailerFinalCr:
            if (c != '\n') {
              ok = false;
              break;
            }
            finishTrailers(limits);
            return used();
        }
        if (!ok) {
          fail(400, c == '\n' ? "bare LF in trailers" : "bare CR in trailers");
          return used();
        }
        break;
      }

      case State::kData:
      case State::kDone:
      case State::kError:
        return used();
    }
  }
  return used();
}

bool ChunkedDecoder::finishTrailers(const Limits& limits) {
  const size_t n = trailer_block_.size();
  auto storage = std::make_unique_for_overwrite<char[]>(n);
  std::memcpy(storage.get(), trailer_block_.data(), n);
  const char* p = storage.get();
  trailers_.clear();
  trailers_.adoptStorage(std::move(storage));
  trailer_block_.clear();
  trailer_block_.shrink_to_fit();
  if (auto error = internal::ParseFieldLines(p, p + n, limits.max_headers, 400, 431, trailers_)) {
    fail(error->status, "invalid trailer section");
    error_.reason = "trailers: " + error->reason;
    return false;
  }
  // RFC 9110 §6.5.1: framing and routing fields are not allowed in trailers. A server that
  // merges trailers into the head anyway would reframe or reroute the message.
  if (trailers_.count(KnownHeader::kContentLength) != 0 ||
      trailers_.count(KnownHeader::kTransferEncoding) != 0 ||
      trailers_.count(KnownHeader::kHost) != 0) {
    fail(400, "framing or routing field in trailers");
    return false;
  }
  state_ = State::kDone;
  return true;
}

}  // namespace sluice::http::http1
