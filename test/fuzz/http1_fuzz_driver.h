#pragma once

// The read path of an HTTP/1 codec, driven by fuzz input: HeadScanner over a chain buffer fed in
// input-chosen pieces, Parse*Head, *Framing, then the body by Content-Length, ChunkedDecoder or
// until close, message after message. Shared by the libFuzzer targets and fuzz_corpus_replay.
//
// Input layout: byte 0 picks the limits and (responses) the request method; byte 1 seeds the
// piece sizes; the rest is the byte stream. Invariants checked (a violation aborts):
// - feeding the stream whole and in pieces gives the same outcome, message for message;
// - a head that parses re-encodes into one that scans and parses back to the same fields;
// - a body never holds more bytes than the stream.

#include <sys/uio.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "source/common/buffer.h"
#include "source/http/http1/parser.h"

namespace sluice::http::http1::fuzz {

#define SLUICE_FUZZ_CHECK(cond)                                                         \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

inline std::string Fields(const HeaderMap& map) {
  std::string out;
  map.forEach([&](const HeaderMap::Entry& e) {
    out.append(e.name).append(": ").append(e.value).append("\n");
    return true;
  });
  return out;
}

// Re-encodes a parsed request head and parses it again: the codec forwards what it parsed, so
// what it writes must read back as the same message.
inline void CheckRequestRoundTrip(const RequestHead& head, const Limits& limits) {
  Buffer out;
  EncodeRequestHead(head, out);
  HeadScanner scanner;
  Limits roomy = limits;
  roomy.max_header_bytes = static_cast<uint32_t>(out.length() + 1);
  roomy.max_request_line = static_cast<uint32_t>(out.length() + 1);
  SLUICE_FUZZ_CHECK(scanner.scan(out, roomy, true) == HeadScanner::Result::kComplete);
  SLUICE_FUZZ_CHECK(scanner.headLength() == out.length());
  auto storage = std::make_unique<char[]>(out.length());
  out.copyOut(0, out.length(), storage.get());
  RequestHead again;
  SLUICE_FUZZ_CHECK(!ParseRequestHead(std::move(storage), out.length(), roomy, again));
  SLUICE_FUZZ_CHECK(again.method == head.method);
  SLUICE_FUZZ_CHECK(again.path == head.path);
  SLUICE_FUZZ_CHECK(Fields(again.headers) == Fields(head.headers));
}

inline void CheckResponseRoundTrip(const ResponseHead& head, const Limits& limits) {
  Buffer out;
  EncodeResponseHead(head, out);
  HeadScanner scanner;
  Limits roomy = limits;
  roomy.max_header_bytes = static_cast<uint32_t>(out.length() + 1);
  SLUICE_FUZZ_CHECK(scanner.scan(out, roomy, false) == HeadScanner::Result::kComplete);
  SLUICE_FUZZ_CHECK(scanner.headLength() == out.length());
  auto storage = std::make_unique<char[]>(out.length());
  out.copyOut(0, out.length(), storage.get());
  ResponseHead again;
  SLUICE_FUZZ_CHECK(!ParseResponseHead(std::move(storage), out.length(), roomy, again));
  SLUICE_FUZZ_CHECK(again.status == head.status);
  SLUICE_FUZZ_CHECK(head.reason.empty() || again.reason == head.reason);
  SLUICE_FUZZ_CHECK(Fields(again.headers) == Fields(head.headers));
}

class Reader {
 public:
  Reader(bool is_request, const Limits& limits, std::string_view method)
      : is_request_(is_request), limits_(limits), method_(method) {}

  void feed(const uint8_t* p, size_t n) {
    in_.add(p, n);
    process();
  }

  // The whole outcome as text, for comparing runs.
  const std::string& finish() {
    if (!failed_ && in_body_ && framing_.kind == BodyFraming::Kind::kUntilClose) {
      complete();
    }
    if (!failed_ && (in_body_ || !in_.empty())) {
      log_ += "incomplete\n";
    }
    return log_;
  }

 private:
  void fail(const std::string& what) {
    failed_ = true;
    log_ += "error " + what + "\n";
  }

  void complete() {
    SLUICE_FUZZ_CHECK(body_.length() <= total_fed_);
    log_ += "body " + std::to_string(body_.length()) + " " + body_.toString() + "\n";
    log_ += "trailers " + Fields(decoder_.trailers());
    body_.clear();
    in_body_ = false;
  }

  void process() {
    while (!failed_) {
      if (!in_body_) {
        if (in_.empty()) return;
        const HeadScanner::Result r = scanner_.scan(in_, limits_, is_request_);
        if (r == HeadScanner::Result::kNeedMore) return;
        if (r != HeadScanner::Result::kComplete) {
          return fail("scan " + std::to_string(static_cast<int>(r)));
        }
        const size_t n = scanner_.headLength();
        SLUICE_FUZZ_CHECK(n >= 4 && n <= in_.length() && n <= limits_.max_header_bytes);
        auto storage = std::make_unique<char[]>(n);
        in_.copyOut(0, n, storage.get());
        in_.drain(n);
        scanner_.reset();
        if (!start(std::move(storage), n)) return;
        in_body_ = true;
      }
      switch (framing_.kind) {
        case BodyFraming::Kind::kNone:
          complete();
          break;
        case BodyFraming::Kind::kContentLength: {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in_.length()));
          body_.move(in_, n);
          remaining_ -= n;
          if (remaining_ != 0) return;
          complete();
          break;
        }
        case BodyFraming::Kind::kChunked: {
          const ChunkedDecoder::Result r = decoder_.decode(in_, body_, limits_);
          if (r == ChunkedDecoder::Result::kNeedMore) {
            SLUICE_FUZZ_CHECK(in_.empty());  // it consumed everything it could
            return;
          }
          if (r == ChunkedDecoder::Result::kError) {
            return fail("body " + std::to_string(decoder_.error().status) + " " +
                        decoder_.error().reason);
          }
          const size_t left = in_.length();
          Buffer scratch;
          SLUICE_FUZZ_CHECK(decoder_.decode(in_, scratch, limits_) ==
                            ChunkedDecoder::Result::kDone);
          SLUICE_FUZZ_CHECK(in_.length() == left && scratch.empty());
          complete();
          break;
        }
        case BodyFraming::Kind::kUntilClose:
          body_.move(in_);
          return;
      }
    }
  }

  bool start(std::unique_ptr<char[]> storage, size_t n) {
    decoder_.reset();
    std::optional<ParseError> error;
    if (is_request_) {
      RequestHead head;
      if ((error = ParseRequestHead(std::move(storage), n, limits_, head))) {
        fail("head " + std::to_string(error->status) + " " + error->reason);
        return false;
      }
      SLUICE_FUZZ_CHECK(head.version_minor <= 1);
      CheckRequestRoundTrip(head, limits_);
      log_ += "request " + std::string(head.method) + " " + std::string(head.path) + "\n" +
              Fields(head.headers);
      error = RequestFraming(head, framing_);
    } else {
      ResponseHead head;
      if ((error = ParseResponseHead(std::move(storage), n, limits_, head))) {
        SLUICE_FUZZ_CHECK(error->status == 0);
        fail("head " + error->reason);
        return false;
      }
      SLUICE_FUZZ_CHECK(head.status >= 100 && head.status <= 999);
      CheckResponseRoundTrip(head, limits_);
      log_ += "response " + std::to_string(head.status) + "\n" + Fields(head.headers);
      error = ResponseFraming(head, method_, framing_);
      SLUICE_FUZZ_CHECK(!error || error->status == 0);
    }
    if (error) {
      fail("framing " + std::to_string(error->status) + " " + error->reason);
      return false;
    }
    if (framing_.kind == BodyFraming::Kind::kContentLength) {
      SLUICE_FUZZ_CHECK(framing_.content_length <= static_cast<uint64_t>(INT64_MAX));
    }
    remaining_ = framing_.content_length;
    log_ += "framing " + std::to_string(static_cast<int>(framing_.kind)) + "\n";
    return true;
  }

 public:
  size_t total_fed_ = 0;

 private:
  const bool is_request_;
  const Limits limits_;
  const std::string method_;
  Buffer in_;
  HeadScanner scanner_;
  BodyFraming framing_;
  ChunkedDecoder decoder_;
  Buffer body_;
  uint64_t remaining_ = 0;
  bool in_body_ = false;
  bool failed_ = false;
  std::string log_;
};

inline void RunHttp1(const uint8_t* data, size_t size, bool is_request) {
  if (size < 2) {
    return;
  }
  const uint8_t flags = data[0];
  uint32_t seed = data[1] * 2654435761u + 1;
  data += 2;
  size -= 2;

  Limits limits;
  if (flags & 1) {
    // Tight limits, so the fuzzer reaches every limit with short inputs.
    limits.max_request_line = 64;
    limits.max_header_bytes = 256;
    limits.max_headers = 8;
    limits.max_chunk_extension = 32;
    limits.max_trailer_bytes = 64;
  }
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "CONNECT", "POST"};
  const std::string_view method = kMethods[(flags >> 1) & 3];

  Reader whole(is_request, limits, method);
  whole.total_fed_ = size;
  whole.feed(data, size);
  const std::string expected = whole.finish();

  Reader pieces(is_request, limits, method);
  pieces.total_fed_ = size;
  for (size_t at = 0; at < size;) {
    seed = seed * 1103515245u + 12345u;
    // Mostly tiny pieces (1-8 bytes), sometimes large ones.
    const size_t want = (seed >> 16) % 8 == 0 ? (seed >> 8) % 512 + 1 : (seed >> 16) % 8 + 1;
    const size_t n = std::min(want, size - at);
    pieces.feed(data + at, n);
    at += n;
  }
  const std::string& got = pieces.finish();
  if (got != expected) {
    std::fprintf(stderr, "whole:\n%s\npieces:\n%s\n", expected.c_str(), got.c_str());
  }
  SLUICE_FUZZ_CHECK(got == expected);
}

}  // namespace sluice::http::http1::fuzz
