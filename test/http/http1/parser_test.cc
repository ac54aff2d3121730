#include "source/http/http1/parser.h"

#include <sys/uio.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

// The HTTP/1.1 parser's corpus: every case runs the whole read path (HeadScanner over a chain
// buffer, Parse*Head, *Framing, then the body by Content-Length, ChunkedDecoder or until close),
// fed in one piece, one byte per slice, and split in two at every byte boundary. All three must
// produce the same outcome, and that outcome must be the expected one.

namespace sluice::http::http1 {
namespace {

using namespace std::string_view_literals;

constexpr int kAccept = 200;  // a case's `status` when the message must be accepted

// Appends `piece` to `buffer` as a slice of its own. Buffer::add would copy it into the tail's
// free room and Buffer::move copies small slices likewise, so the piece is first placed at the
// very end of an otherwise drained, exactly full slice, which then moves by pointer.
void AddAsSlice(Buffer& buffer, std::string_view piece) {
  if (piece.empty()) {
    return;
  }
  if (piece.size() > Slice::kDefaultCapacity) {
    buffer.add(piece);
    return;
  }
  static const std::string kFiller(Slice::kDefaultCapacity, 'F');
  const size_t filler = Slice::kDefaultCapacity - piece.size();
  Buffer staging;
  staging.add(kFiller.data(), filler);
  staging.add(piece);
  staging.drain(filler);
  buffer.move(staging);
}

std::string FieldsToString(const HeaderMap& map) {
  std::string out;
  map.forEach([&](const HeaderMap::Entry& e) {
    out.append(e.name).append(": ").append(e.value).append("\n");
    return true;
  });
  return out;
}

const char* KindName(BodyFraming::Kind kind) {
  switch (kind) {
    case BodyFraming::Kind::kNone:
      return "none";
    case BodyFraming::Kind::kContentLength:
      return "length";
    case BodyFraming::Kind::kChunked:
      return "chunked";
    case BodyFraming::Kind::kUntilClose:
      return "close";
  }
  return "?";
}

struct Message {
  std::string start_line;  // "GET / 1" or "200 OK 1"
  std::string headers;
  BodyFraming::Kind kind = BodyFraming::Kind::kNone;
  std::string body;
  std::string trailers;
};

struct Outcome {
  int status = kAccept;  // kAccept, or the status of the first error
  std::string stage;     // where it failed: scan, head, framing, body; "incomplete" at EOF
  std::string reason;
  std::vector<Message> messages;

  std::string describe() const {
    std::string s = "status=" + std::to_string(status) + " stage=" + stage + " reason=" + reason;
    for (const Message& m : messages) {
      s += "\n  [" + m.start_line + "] " + KindName(m.kind) + " body=" + m.body +
           " trailers=" + m.trailers + " headers=" + m.headers;
    }
    return s;
  }
};

// A reader in the shape of the codec's: a chain buffer that grows as bytes arrive, a scanner
// over it, the head copied out once, then the body.
class Reader {
 public:
  Reader(bool is_request, const Limits& limits, std::string_view request_method)
      : is_request_(is_request), limits_(limits), request_method_(request_method) {}

  void feed(std::string_view bytes, bool as_slice) {
    if (as_slice) {
      AddAsSlice(in_, bytes);
    } else {
      in_.add(bytes);
    }
    process();
  }

  // End of input: an until-close body ends here; anything else unfinished is incomplete.
  const Outcome& finish() {
    if (!failed_) {
      if (in_body_ && framing_.kind == BodyFraming::Kind::kUntilClose) {
        complete();
      }
      if (in_body_ || !in_.empty()) {
        fail(-1, "incomplete", "input ended inside a message");
      }
    }
    return outcome_;
  }

 private:
  void fail(int status, const char* stage, std::string reason) {
    failed_ = true;
    outcome_.status = status;
    outcome_.stage = stage;
    outcome_.reason = std::move(reason);
  }

  void complete() {
    current_.kind = framing_.kind;
    current_.body = body_.toString();
    current_.trailers = FieldsToString(decoder_.trailers());
    outcome_.messages.push_back(std::move(current_));
    current_ = Message();
    body_.clear();
    in_body_ = false;
  }

  void process() {
    while (!failed_) {
      if (!in_body_) {
        if (in_.empty()) {
          return;
        }
        switch (scanner_.scan(in_, limits_, is_request_)) {
          case HeadScanner::Result::kNeedMore:
            return;
          case HeadScanner::Result::kRequestLineTooLong:
            return fail(414, "scan", "request line too long");
          case HeadScanner::Result::kHeadTooLarge:
            return fail(431, "scan", "head too large");
          case HeadScanner::Result::kBadLineEnding:
            return fail(400, "scan", "bad line ending");
          case HeadScanner::Result::kComplete:
            break;
        }
        const size_t n = scanner_.headLength();
        auto storage = std::make_unique<char[]>(n);
        in_.copyOut(0, n, storage.get());
        in_.drain(n);
        scanner_.reset();
        if (!startMessage(std::move(storage), n)) {
          return;
        }
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
          if (remaining_ != 0) {
            return;
          }
          complete();
          break;
        }
        case BodyFraming::Kind::kChunked:
          switch (decoder_.decode(in_, body_, limits_)) {
            case ChunkedDecoder::Result::kNeedMore:
              return;
            case ChunkedDecoder::Result::kError:
              return fail(decoder_.error().status, "body", decoder_.error().reason);
            case ChunkedDecoder::Result::kDone:
              complete();
              break;
          }
          break;
        case BodyFraming::Kind::kUntilClose:
          body_.move(in_);
          return;
      }
    }
  }

  bool startMessage(std::unique_ptr<char[]> storage, size_t n) {
    decoder_.reset();
    std::optional<ParseError> error;
    if (is_request_) {
      RequestHead head;
      error = ParseRequestHead(std::move(storage), n, limits_, head);
      if (error) {
        fail(error->status, "head", error->reason);
        return false;
      }
      current_.start_line = std::string(head.method) + " " + std::string(head.path) + " " +
                            std::to_string(head.version_minor);
      current_.headers = FieldsToString(head.headers);
      error = RequestFraming(head, framing_);
    } else {
      ResponseHead head;
      error = ParseResponseHead(std::move(storage), n, limits_, head);
      if (error) {
        fail(error->status, "head", error->reason);
        return false;
      }
      current_.start_line = std::to_string(head.status) + " " + std::string(head.reason) + " " +
                            std::to_string(head.version_minor);
      current_.headers = FieldsToString(head.headers);
      error = ResponseFraming(head, request_method_, framing_);
    }
    if (error) {
      fail(error->status, "framing", error->reason);
      return false;
    }
    remaining_ = framing_.content_length;
    return true;
  }

  const bool is_request_;
  const Limits limits_;
  const std::string request_method_;
  Buffer in_;
  HeadScanner scanner_;
  BodyFraming framing_;
  ChunkedDecoder decoder_;
  Buffer body_;
  uint64_t remaining_ = 0;
  bool in_body_ = false;
  bool failed_ = false;
  Message current_;
  Outcome outcome_;
};

struct Case {
  const char* name;
  std::string_view raw;
  int status;                  // kAccept, or the status the message must be rejected with
  const char* cite;            // why: the RFC section or the attack it is
  std::string_view body = {};  // the first message's decoded body
  size_t messages = 1;         // accepted cases: how many complete messages
  Limits limits = {};
  std::string_view trailers = {};           // "Name: value\n"..., checked when non-empty
  std::string_view request_method = "GET";  // responses: the method they answer
};

// Runs `c` whole, one byte per slice, and split at every boundary; all must agree with the
// expectation (and so with each other).
void RunCase(const Case& c, bool is_request) {
  SCOPED_TRACE(std::string(c.name) + " — " + c.cite);
  const auto run = [&](const std::vector<std::string_view>& pieces, bool as_slices) {
    Reader reader(is_request, c.limits, c.request_method);
    for (std::string_view piece : pieces) {
      reader.feed(piece, as_slices);
    }
    return reader.finish();
  };
  const Outcome whole = run({c.raw}, false);
  const std::string expected = whole.describe();
  // Response-side errors are all "upstream protocol error" to a client codec; the head and
  // framing report status 0 for them; the scanner and the chunked decoder
  // do not know the side.
  int status = whole.status;
  if (!is_request && status != kAccept && whole.stage != "incomplete") {
    status = 0;
  }
  EXPECT_EQ(status, c.status) << expected;
  if (c.status == kAccept) {
    EXPECT_EQ(whole.messages.size(), c.messages) << expected;
    if (!whole.messages.empty()) {
      EXPECT_EQ(whole.messages[0].body, c.body) << expected;
      if (!c.trailers.empty()) {
        EXPECT_EQ(whole.messages[0].trailers, c.trailers) << expected;
      }
    }
  }

  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < c.raw.size(); ++i) {
    bytes.push_back(c.raw.substr(i, 1));
  }
  EXPECT_EQ(run(bytes, true).describe(), expected) << "fed one byte per slice";
  for (size_t k = 1; k < c.raw.size(); ++k) {
    const Outcome split = run({c.raw.substr(0, k), c.raw.substr(k)}, true);
    ASSERT_EQ(split.describe(), expected) << "split at " << k;
  }
}

Limits Tight() {
  Limits l;
  l.max_request_line = 32;
  l.max_header_bytes = 96;
  l.max_headers = 4;
  l.max_chunk_extension = 16;
  l.max_trailer_bytes = 32;
  return l;
}

// clang-format off
const Case kRejectedRequests[] = {
  // --- Content-Length / Transfer-Encoding: request smuggling -------------------------------
  {"cl_then_te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"sv, 400, "RFC 9112 §6.3 ¶3 (CL.TE smuggling, PortSwigger 2019)"},
  {"te_then_cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"sv, 400, "RFC 9112 §6.3 ¶3 (TE.CL smuggling, PortSwigger 2019)"},
  {"te_identity_and_cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 1\r\n\r\nx"sv, 400, "RFC 9112 §6.3 ¶3 (CL+TE, any coding)"},
  {"cl_differs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"sv, 400, "RFC 9110 §8.6 ¶8 (CL.CL smuggling)"},
  {"cl_list_differs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!"sv, 400, "RFC 9110 §8.6 ¶8 (differing list values)"},
  {"cl_field_and_list_differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\nhello!"sv, 400, "RFC 9110 §8.6 ¶8"},
  {"cl_leading_zero_differs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 (policy: duplicates must be byte-identical)"},
  {"cl_negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"sv, 400, "RFC 9110 §8.6 Content-Length = 1*DIGIT"},
  {"cl_plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 1*DIGIT (sign)"},
  {"cl_hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 1*DIGIT (hex)"},
  {"cl_inner_space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n0123456789"sv, 400, "RFC 9110 §8.6 1*DIGIT (space inside)"},
  {"cl_empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"sv, 400, "RFC 9110 §8.6 1*DIGIT (empty)"},
  {"cl_decimal_point", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 1*DIGIT"},
  {"cl_trailing_junk", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 1*DIGIT"},
  {"cl_empty_list_element", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 (list must be identical values)"},
  {"cl_2pow63", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"sv, 400, "overflow: CL beyond 2^63-1"},
  {"cl_wraps_to_5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\nhello"sv, 400, "overflow: 2^64+5 wraps to 5 in a 64-bit parser"},
  {"cl_non_ascii_digit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xd9\xa5\r\n\r\nhello"sv, 400, "RFC 9110 §8.6 DIGIT is ASCII"},
  {"te_chunked_not_last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §6.1 ¶13 (chunked must be final)"},
  {"te_gzip_only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"sv, 501, "RFC 9112 §6.1 ¶16 (unknown coding: 501)"},
  {"te_gzip_chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"sv, 501, "RFC 9112 §6.1 (policy: only a lone chunked)"},
  {"te_identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"sv, 501, "RFC 9112 §6.1 (identity was removed in RFC 7230)"},
  {"te_xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"sv, 501, "PortSwigger TE obfuscation (xchunked)"},
  {"te_chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n0\r\n\r\n"sv, 501, "PortSwigger TE obfuscation"},
  {"te_chunked_twice_list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §6.1 ¶12 (chunked at most once)"},
  {"te_chunked_twice_fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §6.1 ¶12"},
  {"te_chunked_then_gzip_field", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §6.1 (fields combine into one list; chunked not final)"},
  {"te_chunked_params", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7 (chunked has no parameters)"},
  {"te_empty_element", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n"sv, 400, "PortSwigger TE obfuscation (empty list element)"},
  {"te_trailing_comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9110 §5.6.1 (policy: no empty elements)"},
  {"te_quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9110 §10.1.4 transfer-coding is a token"},
  {"te_empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"sv, 400, "RFC 9112 §6.1 (empty coding list)"},
  {"te_vertical_tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9110 §5.5 CTL in value (PortSwigger \\x0b)"},
  {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §6.1 ¶15 (TE in HTTP/1.0)"},
  {"te_space_before_colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §5.1 ¶2 (whitespace before colon)"},
  {"te_tab_before_colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §5.1 ¶2"},
  {"te_obs_fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n chunked\r\n\r\n0\r\n\r\n"sv, 400, "RFC 9112 §5.2 obs-fold"},
  // --- field syntax --------------------------------------------------------------------------
  {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n"sv, 400, "RFC 9112 §5.2 obs-fold"},
  {"space_before_first_field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"sv, 400, "RFC 9112 §2.2 ¶8 (whitespace after start-line)"},
  {"bare_lf_everywhere", "GET / HTTP/1.1\nHost: a\n\n"sv, 400, "RFC 9112 §2.2 (policy: CRLF only, bare LF)"},
  {"bare_lf_field", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"sv, 400, "RFC 9112 §2.2 bare LF"},
  {"bare_lf_end_of_head", "GET / HTTP/1.1\r\nHost: a\r\n\n"sv, 400, "RFC 9112 §2.2 bare LF"},
  {"bare_cr_field", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"sv, 400, "RFC 9112 §2.2 ¶4 bare CR"},
  {"bare_cr_value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"sv, 400, "RFC 9112 §2.2 ¶4 bare CR"},
  {"cr_cr_lf", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.2 bare CR"},
  {"nul_in_value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"sv, 400, "RFC 9110 §5.5 ¶5 NUL"},
  {"nul_in_name", "GET / HTTP/1.1\r\nHost: a\r\nX-\0A: b\r\n\r\n"sv, 400, "RFC 9110 §5.1 token"},
  {"ctl_in_value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01" "c\r\n\r\n"sv, 400, "RFC 9110 §5.5 CTL"},
  {"esc_in_value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[31m\r\n\r\n"sv, 400, "RFC 9110 §5.5 CTL (log injection)"},
  {"del_in_value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n"sv, 400, "RFC 9110 §5.5 (DEL is not VCHAR)"},
  {"ctl_in_name", "GET / HTTP/1.1\r\nHost: a\r\nX-\x1f" "A: b\r\n\r\n"sv, 400, "RFC 9110 §5.1 token"},
  {"empty_name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"sv, 400, "RFC 9110 §5.1 field-name = token (1*tchar)"},
  {"paren_in_name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"sv, 400, "RFC 9110 §5.6.2 token"},
  {"slash_in_name", "GET / HTTP/1.1\r\nHost: a\r\nX/A: b\r\n\r\n"sv, 400, "RFC 9110 §5.6.2 token"},
  {"non_ascii_name", "GET / HTTP/1.1\r\nHost: a\r\nX-\xe9: b\r\n\r\n"sv, 400, "RFC 9110 §5.6.2 token"},
  {"no_colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n"sv, 400, "RFC 9112 §5 field-line"},
  {"space_in_name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n"sv, 400, "RFC 9110 §5.6.2 token"},
  // --- request line ---------------------------------------------------------------------------
  {"method_not_token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9110 §9.1 method = token"},
  {"method_ctl", "GE\x01T / HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9110 §9.1 method = token"},
  {"leading_space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3 (method first)"},
  {"target_space", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2 (no whitespace in target)"},
  {"target_ctl", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2"},
  {"target_nul", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2"},
  {"target_del", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 3986 §2 (DEL)"},
  {"target_obs_text", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 3986 §2 (raw non-ASCII)"},
  {"target_empty", "GET  HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3 (exactly one SP)"},
  {"double_space_before_version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3 (exactly one SP)"},
  {"trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3 (exactly one SP)"},
  {"tab_separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3 (SP, not HTAB)"},
  {"connect_origin_form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2.3 (CONNECT: authority-form)"},
  {"connect_no_port", "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"sv, 400, "RFC 9110 §9.3.6 (port required)"},
  {"connect_path", "CONNECT example.com:443/x HTTP/1.1\r\nHost: example.com\r\n\r\n"sv, 400, "RFC 9112 §3.2.3 authority-form"},
  {"connect_userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"sv, 400, "RFC 9112 §3.2.3 (no userinfo)"},
  {"connect_port_range", "CONNECT example.com:70000 HTTP/1.1\r\nHost: example.com\r\n\r\n"sv, 400, "RFC 9110 §4.2.1 port"},
  {"asterisk_on_get", "GET * HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2.4 (asterisk-form: OPTIONS only)"},
  {"authority_form_on_get", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2.3 (authority-form: CONNECT only)"},
  {"relative_target", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2.1 origin-form starts with /"},
  {"ftp_absolute", "GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2.2 (policy: http/https only)"},
  {"absolute_userinfo", "GET http://u:p@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9110 §4.2.4 (userinfo is an error)"},
  {"absolute_empty_authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9110 §4.2.1 (http URI needs a host)"},
  {"fragment", "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2 (no fragment in request-target)"},
  {"http20", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"sv, 505, "RFC 9110 §15.6.6 (HTTP/2.0 in an HTTP/1 request line)"},
  {"h2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"sv, 505, "RFC 9113 §3.4 preface on an HTTP/1 port"},
  {"http12", "GET / HTTP/1.2\r\nHost: a\r\n\r\n"sv, 505, "RFC 9112 §2.3 (policy: only 1.0 and 1.1)"},
  {"http30", "GET / HTTP/3.0\r\nHost: a\r\n\r\n"sv, 505, "RFC 9110 §15.6.6"},
  {"http09_no_version", "GET /\r\n\r\n"sv, 400, "RFC 9112 §3 (HTTP/0.9 is not supported)"},
  {"lowercase_version", "GET / http/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.3 (HTTP-name is case-sensitive)"},
  {"version_two_digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.3 DIGIT \".\" DIGIT"},
  {"version_no_dot", "GET / HTTP/11\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.3"},
  {"version_garbage", "GET / FOO/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.3"},
  // --- Host -----------------------------------------------------------------------------------
  {"missing_host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"sv, 400, "RFC 9112 §3.2 ¶6 (Host required in HTTP/1.1)"},
  {"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"sv, 400, "RFC 9112 §3.2 ¶6 (more than one Host)"},
  {"two_identical_hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2 ¶6"},
  {"two_hosts_http10", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"sv, 400, "RFC 9112 §3.2 ¶6"},
  {"host_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"sv, 400, "RFC 9110 §7.2 uri-host"},
  {"host_userinfo", "GET / HTTP/1.1\r\nHost: evil@good\r\n\r\n"sv, 400, "RFC 9110 §7.2 (no userinfo)"},
  {"host_path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"sv, 400, "RFC 9110 §7.2 uri-host"},
  {"host_bad_port", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n"sv, 400, "RFC 3986 §3.2.3 port = *DIGIT"},
  {"host_list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"sv, 400, "RFC 9110 §7.2 (Host is not a list)"},
  // --- limits ---------------------------------------------------------------------------------
  {"request_line_too_long", "GET /0123456789012345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n"sv, 414, "RFC 9112 §3 ¶5 / RFC 9110 §15.5.15", {}, 1, Tight()},
  {"request_line_too_long_unterminated", "GET /012345678901234567890123456789"sv, 414, "RFC 9110 §15.5.15 (answered before the line ends)", {}, 1, Tight()},
  {"line_limit_before_bare_lf", "GET /0123456789012345678901234567890123456789\nHost: a\n\n"sv, 414, "fuzz regression: the first violation in byte order wins, however the bytes were split", {}, 1, Tight()},
  {"bare_lf_before_line_limit", "GET /0123\n5678901234567890123456789012345678901234567890\r\n\r\n"sv, 400, "RFC 9112 §2.2 (bare LF comes first)", {}, 1, Tight()},
  {"head_limit_before_bare_lf", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789012345678901234567890123456789012345678901234567890123456789\n\r\n"sv, 431, "RFC 6585 §5 (limit crossed before the bare LF)", {}, 1, Tight()},
  {"head_too_large", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n"sv, 431, "RFC 6585 §5", {}, 1, Tight()},
  {"head_too_large_unterminated", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 01234567890123456789012345678901234567890123456789012345678901234567890123456789"sv, 431, "RFC 6585 §5 (answered before the head ends)", {}, 1, Tight()},
  {"too_many_fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"sv, 431, "RFC 6585 §5 (field count)", {}, 1, Tight()},
  // --- leading empty lines ----------------------------------------------------------------
  {"five_leading_crlfs", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.2 ¶6 (policy: at most 4 ignored)"},
  {"leading_bare_lf", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §2.2 (bare LF)"},
  // --- chunked body ---------------------------------------------------------------------------
  {"chunk_size_not_hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"sv, 400, "RFC 9112 §7.1 chunk-size = 1*HEXDIG"},
  {"chunk_size_empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (empty chunk-size)"},
  {"chunk_size_leading_space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (whitespace around chunk-size)"},
  {"chunk_size_trailing_space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (policy: no BWS after chunk-size)"},
  {"chunk_size_tab_then_ext", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\t;a\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1.1 (policy: no BWS after chunk-size)"},
  {"chunk_size_0x", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 1*HEXDIG (0x prefix)"},
  {"chunk_size_plus", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 1*HEXDIG (sign)"},
  {"chunk_size_2pow63", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nx\r\n"sv, 400, "overflow: chunk size beyond 2^63-1"},
  {"chunk_size_wraps", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"sv, 400, "overflow: 2^64+5 wraps to 5 in a 64-bit parser"},
  {"chunk_size_17_digits", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n"sv, 400, "policy: at most 16 hex digits"},
  {"chunk_data_no_crlf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (chunk-data CRLF; TE.TE desync)"},
  {"chunk_data_too_long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (data longer than size)"},
  {"chunk_data_bare_lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (bare LF after data)"},
  {"chunk_size_bare_lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (bare LF after size)"},
  {"chunk_size_bare_cr", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1 (bare CR after size)"},
  {"chunk_ext_bare_lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nxx\r\nhello\r\n0\r\n\r\n"sv, 400, "\"Funky chunks\" (Weikop 2025): LF in chunk-ext"},
  {"chunk_ext_bare_cr", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rxx\r\nhello\r\n0\r\n\r\n"sv, 400, "\"Funky chunks\": CR in chunk-ext"},
  {"chunk_ext_too_long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;aaaaaaaaaaaaaaaaaaaa\r\nhello\r\n0\r\n\r\n"sv, 400, "CVE-2023-39326 (unbounded chunk extensions)", {}, 1, Tight()},
  {"chunk_ext_no_name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1.1 chunk-ext-name = token"},
  {"chunk_ext_empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1.1 chunk-ext-name = token"},
  {"chunk_ext_unterminated_quote", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9110 §5.6.4 quoted-string"},
  {"chunk_ext_two_names", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a b\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9112 §7.1.1"},
  {"chunk_ext_nul", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\0\"\r\nhello\r\n0\r\n\r\n"sv, 400, "RFC 9110 §5.6.4 qdtext"},
  {"last_chunk_bare_lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n"sv, 400, "RFC 9112 §7.1 (bare LF ends the body)"},
  {"trailer_obs_fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: b\r\n c\r\n\r\n"sv, 400, "RFC 9112 §7.1.2 + §5.2 obs-fold"},
  {"trailer_bare_cr", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: b\rc\r\n\r\n"sv, 400, "RFC 9112 §2.2 bare CR (trailers)"},
  {"trailer_space_before_colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A : b\r\n\r\n"sv, 400, "RFC 9112 §5.1 (trailers)"},
  {"trailer_content_length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n"sv, 400, "RFC 9110 §6.5.1 (framing field in trailers)"},
  {"trailer_transfer_encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"sv, 400, "RFC 9110 §6.5.1"},
  {"trailer_host", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nHost: evil\r\n\r\n"sv, 400, "RFC 9110 §6.5.1 (routing field in trailers)"},
  {"trailers_too_large", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 0123456789012345678901234567890\r\n\r\n"sv, 431, "RFC 6585 §5 (trailer section size)", {}, 1, Tight()},
  {"too_many_trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"sv, 431, "RFC 6585 §5 (trailer count)", {}, 1, [] { Limits l; l.max_headers = 4; return l; }()},
};

const Case kAcceptedRequests[] = {
  {"simple_get", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"sv, kAccept, "RFC 9112 §3"},
  {"get_query", "GET /a/b?c=d&e=f HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"sv, kAccept, "RFC 9112 §3.2.1 origin-form"},
  {"post_cl", "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"sv, kAccept, "RFC 9112 §6.2", "hello"},
  {"cl_zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 9110 §8.6"},
  {"cl_identical_fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"sv, kAccept, "RFC 9110 §8.6 ¶8 (identical duplicates: policy accepts)", "hello"},
  {"cl_identical_list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"sv, kAccept, "RFC 9110 §8.6 ¶8 (\"42, 42\")", "hello"},
  {"cl_leading_zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello"sv, kAccept, "RFC 9110 §8.6 1*DIGIT", "hello"},
  {"cl_ows", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t5 \r\n\r\nhello"sv, kAccept, "RFC 9112 §5.1 (OWS around the value)", "hello"},
  {"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §7.1", "hello world"},
  {"chunked_mixed_case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §7 (codings are case-insensitive)", "hello"},
  {"chunked_upper", "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §7", "hello"},
  {"chunked_ows", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §5.1 OWS", "hello"},
  {"chunk_size_hex_upper", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §7.1 HEXDIG", "0123456789abcdefghijk"},
  {"chunk_size_leading_zeros", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n000\r\n\r\n"sv, kAccept, "RFC 9112 §7.1 (16 digits)", "hello"},
  {"chunk_extensions", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1;a;b=\"q \\\" s\";c = d\r\n!\r\n0;last\r\n\r\n"sv, kAccept, "RFC 9112 §7.1.1 chunk-ext", "hello!"},
  {"chunk_ext_at_limit", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;aaaaaaaaaaaaaaa\r\nhello\r\n0\r\n\r\n"sv, kAccept, "limit: extension of exactly max_chunk_extension", "hello", 1, Tight()},
  {"trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:  two words \r\n\r\n"sv, kAccept, "RFC 9112 §7.1.2 trailer section", "hello", 1, {}, "X-Sum: abc\nX-Other: two words\n"},
  {"trailers_at_limit", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 01234567890123456789012\r\n\r\n"sv, kAccept, "limit: trailers of exactly max_trailer_bytes", "", 1, Tight()},
  {"many_chunks", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n1\r\nc\r\n2\r\nde\r\n3\r\nfgh\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §7.1", "abcdefgh"},
  {"chunk_data_with_crlf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n"sv, kAccept, "RFC 9112 §7.1 (data is opaque)", "\r\n0\r\n\r\n"},
  {"chunked_get", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"sv, kAccept, "RFC 9110 §9.3.1 (content allowed, framing still applies)"},
  {"htab_in_value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\tc\r\n\r\n"sv, kAccept, "RFC 9110 §5.5 (HTAB inside a value)"},
  {"empty_value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\n\r\n"sv, kAccept, "RFC 9110 §5.5 field-value = *field-content"},
  {"obs_text_value", "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \x80\xff\r\n\r\n"sv, kAccept, "RFC 9110 §5.5 obs-text"},
  {"value_with_colons", "GET / HTTP/1.1\r\nHost: a\r\nX-Time: 12:34:56\r\n\r\n"sv, kAccept, "RFC 9112 §5 (first colon ends the name)"},
  {"value_no_space", "GET / HTTP/1.1\r\nHost:a\r\nX-A:b\r\n\r\n"sv, kAccept, "RFC 9112 §5 (OWS is optional)"},
  {"token_name_chars", "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09AZaz: x\r\nX_Under: y\r\n\r\n"sv, kAccept, "RFC 9110 §5.6.2 tchar"},
  {"name_case", "GET / HTTP/1.1\r\nhOsT: a\r\n\r\n"sv, kAccept, "RFC 9110 §5.1 (names are case-insensitive)"},
  {"leading_crlf", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §2.2 ¶6 (ignore a CRLF before the request line)"},
  {"four_leading_crlfs", "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §2.2 ¶6 (policy: up to 4)"},
  {"absolute_form", "GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"sv, kAccept, "RFC 9112 §3.2.2 absolute-form"},
  {"absolute_form_https_port", "GET HTTPS://example.com:8443 HTTP/1.1\r\nHost: other\r\n\r\n"sv, kAccept, "RFC 9112 §3.2.2 (scheme case-insensitive; Host ignored)"},
  {"absolute_form_ipv6", "GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"sv, kAccept, "RFC 3986 §3.2.2 IP-literal"},
  {"options_asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §3.2.4 asterisk-form"},
  {"options_path", "OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9110 §9.3.7"},
  {"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"sv, kAccept, "RFC 9112 §3.2.3 authority-form"},
  {"connect_ipv6", "CONNECT [2001:db8::1]:8080 HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n"sv, kAccept, "RFC 9112 §3.2.3"},
  {"http10_no_host", "GET / HTTP/1.0\r\n\r\n"sv, kAccept, "RFC 9112 §3.2 (Host required only in 1.1)"},
  {"http10_cl", "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"sv, kAccept, "RFC 9112 §6.2", "abc"},
  {"host_port", "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"sv, kAccept, "RFC 9110 §7.2"},
  {"host_empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n"sv, kAccept, "RFC 9112 §3.2 (empty Host when no authority)"},
  {"host_ipv6", "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n"sv, kAccept, "RFC 3986 §3.2.2"},
  {"host_pct", "GET / HTTP/1.1\r\nHost: ex%41mple.com\r\n\r\n"sv, kAccept, "RFC 3986 §3.2.2 reg-name pct-encoded"},
  {"lowercase_method", "get / HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9110 §9.1 (any token; case-sensitive)"},
  {"extension_method", "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"sv, 400, "RFC 9112 §3.2.4 (asterisk is for OPTIONS)"},
  {"extension_method_path", "M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9110 §9.1 method = token"},
  {"target_special_chars", "GET /a%20b;p=1/c?x=[1]&y={2}|^`\"<> HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §3.2 (visible ASCII; URI rules are the router's)"},
  {"pipelined", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §9.3.2 pipelining", "", 2},
  {"pipelined_after_body", "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §6.3 (CL ends the body exactly)", "ok", 2},
  {"pipelined_after_chunked_crlf", "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "RFC 9112 §2.2 ¶6 (extra CRLF after a body)", "ok", 2},
  {"cl_zero_then_request", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "two requests, exactly as the front end frames them", "", 2},
  {"request_line_at_limit", "GET /012345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n"sv, kAccept, "limit: request line of exactly max_request_line", "", 1, Tight()},
  {"head_at_limit", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 01234567890123456789012345678901234567890123456789012345678901\r\n\r\n"sv, kAccept, "limit: head of exactly max_header_bytes", "", 1, Tight()},
  {"fields_at_limit", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"sv, kAccept, "limit: exactly max_headers fields", "", 1, Tight()},
};

const Case kResponses[] = {
  {"cl_body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"sv, kAccept, "RFC 9112 §6.3 ¶5", "hello"},
  {"chunked_body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"sv, kAccept, "RFC 9112 §6.3 ¶4", "hello", 1, {}, "X-T: 1\n"},
  {"until_close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\r\n\r\nuntil close"sv, kAccept, "RFC 9112 §6.3 ¶8", "all of it\r\n\r\nuntil close"},
  {"http10_until_close", "HTTP/1.0 200 OK\r\n\r\nbody"sv, kAccept, "RFC 9112 §6.3 ¶8", "body"},
  {"no_content", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 9112 §6.3 ¶2 (204 has no content)", "", 2},
  {"not_modified_with_cl", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n"sv, kAccept, "RFC 9110 §8.6 (304 CL is the representation's)"},
  {"head_response", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"sv, kAccept, "RFC 9112 §6.3 ¶2 (HEAD)", "", 1, {}, {}, "HEAD"},
  {"head_response_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"sv, kAccept, "RFC 9112 §6.3 ¶2 (HEAD)", "", 1, {}, {}, "HEAD"},
  {"continue_then_ok", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"sv, kAccept, "RFC 9110 §15.2 (1xx has no content)", "", 2},
  {"switching_protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"sv, kAccept, "RFC 9110 §15.2.2"},
  {"early_hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 8297", "", 2},
  {"connect_tunnel", "HTTP/1.1 200 Connection Established\r\nContent-Length: 3\r\n\r\ntunnel bytes"sv, kAccept, "RFC 9110 §9.3.6 (2xx to CONNECT: tunnel, CL ignored)", "tunnel bytes", 1, {}, {}, "CONNECT"},
  {"connect_refused", "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"sv, kAccept, "RFC 9110 §9.3.6 (non-2xx: a normal response)", "no", 1, {}, {}, "CONNECT"},
  {"no_reason_no_space", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 9112 §4 (tolerated: missing SP before empty reason)"},
  {"empty_reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 9112 §4 reason-phrase optional"},
  {"obs_text_reason", "HTTP/1.1 200 D\xe9j\xe0 vu\r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 9112 §4 obs-text"},
  {"status_999", "HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n"sv, kAccept, "RFC 9110 §15 (unknown codes are x00-class)"},
  {"cl_identical_dup", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"sv, kAccept, "RFC 9110 §8.6", "ok"},
  {"cl_te", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"sv, 0, "RFC 9112 §6.3 ¶3 (response splitting)"},
  {"cl_differs", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"sv, 0, "RFC 9110 §8.6"},
  {"cl_negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"sv, 0, "RFC 9110 §8.6 1*DIGIT"},
  {"te_gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"sv, 0, "RFC 9112 §6.1 (policy: only a lone chunked)"},
  {"te_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"sv, 0, "RFC 9112 §6.1 ¶15"},
  {"status_two_digits", "HTTP/1.1 20 OK\r\n\r\n"sv, 0, "RFC 9112 §4 status-code = 3DIGIT"},
  {"status_four_digits", "HTTP/1.1 2000 OK\r\n\r\n"sv, 0, "RFC 9112 §4 status-code = 3DIGIT"},
  {"status_below_100", "HTTP/1.1 099 Odd\r\n\r\n"sv, 0, "RFC 9110 §15 (100-599, tolerated up to 999)"},
  {"http20_response", "HTTP/2.0 200 OK\r\n\r\n"sv, 0, "RFC 9112 §2.3"},
  {"lowercase_version", "http/1.1 200 OK\r\n\r\n"sv, 0, "RFC 9112 §2.3 (case-sensitive)"},
  {"no_space_after_version", "HTTP/1.1200 OK\r\n\r\n"sv, 0, "RFC 9112 §4"},
  {"bare_lf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"sv, 0, "RFC 9112 §2.2 bare LF"},
  {"obs_fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n"sv, 0, "RFC 9112 §5.2 obs-fold"},
  {"ctl_in_reason", "HTTP/1.1 200 O\x01K\r\n\r\n"sv, 0, "RFC 9112 §4 reason-phrase"},
  {"leading_crlf", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"sv, 0, "RFC 9112 §2.2 (skipped before requests only)"},
  {"bad_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"sv, 0, "RFC 9112 §7.1"},
  {"header_name_space", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"sv, 0, "RFC 9112 §5.1 ¶2"},
};
// clang-format on

class RejectedRequestTest : public ::testing::TestWithParam<Case> {};
TEST_P(RejectedRequestTest, Rejected) {
  ASSERT_NE(GetParam().status, kAccept);
  RunCase(GetParam(), true);
}
INSTANTIATE_TEST_SUITE_P(Corpus, RejectedRequestTest, ::testing::ValuesIn(kRejectedRequests),
                         [](const auto& info) { return std::string(info.param.name); });

class AcceptedRequestTest : public ::testing::TestWithParam<Case> {};
TEST_P(AcceptedRequestTest, Accepted) { RunCase(GetParam(), true); }
INSTANTIATE_TEST_SUITE_P(Corpus, AcceptedRequestTest, ::testing::ValuesIn(kAcceptedRequests),
                         [](const auto& info) { return std::string(info.param.name); });

class ResponseTest : public ::testing::TestWithParam<Case> {};
TEST_P(ResponseTest, Framed) { RunCase(GetParam(), false); }
INSTANTIATE_TEST_SUITE_P(Corpus, ResponseTest, ::testing::ValuesIn(kResponses),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CorpusTest, Size) {
  size_t accepted = 0;
  for (const Case& c : kAcceptedRequests) {
    accepted += c.status == kAccept;
  }
  EXPECT_GE(std::size(kRejectedRequests), 60u);
  EXPECT_GE(accepted, 25u);
}

// gtest prints parameters; the name is what identifies a case.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// ---------------------------------------------------------------------------------------------
// HeadScanner

HeadScanner::Result ScanByteByByte(std::string_view raw, const Limits& limits, bool is_request,
                                   size_t* fed) {
  Buffer buffer;
  HeadScanner scanner;
  HeadScanner::Result r = HeadScanner::Result::kNeedMore;
  *fed = 0;
  for (char c : raw) {
    AddAsSlice(buffer, std::string_view(&c, 1));
    ++*fed;
    r = scanner.scan(buffer, limits, is_request);
    if (r != HeadScanner::Result::kNeedMore) {
      return r;
    }
  }
  return r;
}

TEST(HeadScannerTest, RequestLineLimitReportedAtTheFirstByteOver) {
  Limits limits;
  limits.max_request_line = 20;
  const std::string line = "GET /" + std::string(100, 'a');  // never ends
  size_t fed = 0;
  EXPECT_EQ(ScanByteByByte(line, limits, true, &fed), HeadScanner::Result::kRequestLineTooLong);
  EXPECT_EQ(fed, 21u);
  // Responses have no request-line limit.
  EXPECT_EQ(ScanByteByByte(line, limits, false, &fed), HeadScanner::Result::kNeedMore);
}

TEST(HeadScannerTest, HeadLimitReportedAsSoonAsTheHeadCannotFit) {
  Limits limits;
  limits.max_header_bytes = 64;
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(200, 'v');
  size_t fed = 0;
  EXPECT_EQ(ScanByteByByte(head, limits, true, &fed), HeadScanner::Result::kHeadTooLarge);
  // After 61 bytes inside a line, the shortest ending ("\r\n\r\n") would make 65 > 64.
  EXPECT_EQ(fed, 61u);

  // A head of exactly the limit is complete; one byte more is not.
  const std::string exact =
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(64 - 34, 'v') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 64u);
  EXPECT_EQ(ScanByteByByte(exact, limits, true, &fed), HeadScanner::Result::kComplete);
  const std::string over =
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(64 - 33, 'v') + "\r\n\r\n";
  EXPECT_EQ(ScanByteByByte(over, limits, true, &fed), HeadScanner::Result::kHeadTooLarge);
  EXPECT_EQ(fed, 61u);  // the last 'v': "\r\n\r\n" after it would make 65
}

TEST(HeadScannerTest, BareLineEndingsReportedAtOnce) {
  size_t fed = 0;
  EXPECT_EQ(ScanByteByByte("GET / HTTP/1.1\nHost: a\n\n", Limits(), true, &fed),
            HeadScanner::Result::kBadLineEnding);
  EXPECT_EQ(fed, 15u);
  EXPECT_EQ(ScanByteByByte("GET / HTTP/1.1\rX", Limits(), true, &fed),
            HeadScanner::Result::kBadLineEnding);
  EXPECT_EQ(fed, 16u);
  EXPECT_EQ(ScanByteByByte("GET / HTTP/1.1\r\n\n", Limits(), true, &fed),
            HeadScanner::Result::kBadLineEnding);
  EXPECT_EQ(ScanByteByByte("GET / HTTP/1.1\r\nA: b\r\n\rX", Limits(), true, &fed),
            HeadScanner::Result::kBadLineEnding);
}

TEST(HeadScannerTest, HeadLengthLeadingLinesAndPipelinedBytes) {
  Buffer buffer;
  buffer.add("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next");
  HeadScanner scanner;
  ASSERT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kComplete);
  EXPECT_EQ(scanner.headLength(), 4u + 16 + 9 + 2);
  // Sticky until reset.
  EXPECT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kComplete);
  buffer.drain(scanner.headLength());
  scanner.reset();
  EXPECT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kNeedMore);
  buffer.add(" HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kComplete);
  EXPECT_EQ(scanner.headLength(), buffer.length());
}

TEST(HeadScannerTest, ResponsesSkipNoEmptyLines) {
  Buffer buffer;
  buffer.add("\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
  HeadScanner scanner;
  ASSERT_EQ(scanner.scan(buffer, Limits(), false), HeadScanner::Result::kComplete);
  EXPECT_EQ(scanner.headLength(), 4u);  // an empty status line: ParseResponseHead rejects it
}

TEST(HeadScannerTest, ErrorIsSticky) {
  Buffer buffer;
  buffer.add("GET / HTTP/1.1\n");
  HeadScanner scanner;
  EXPECT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kBadLineEnding);
  buffer.add("Host: a\r\n\r\n");
  EXPECT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kBadLineEnding);
}

TEST(HeadScannerTest, ManySlices) {
  // More slices than the scanner's inline iovec array.
  const std::string head = "GET /" + std::string(40, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  Buffer buffer;
  HeadScanner scanner;
  for (size_t i = 0; i < head.size(); i += 2) {
    AddAsSlice(buffer, std::string_view(head).substr(i, 2));
  }
  ASSERT_GT(buffer.sliceCount(), 16u);
  ASSERT_EQ(scanner.scan(buffer, Limits(), true), HeadScanner::Result::kComplete);
  EXPECT_EQ(scanner.headLength(), head.size());
}

// ---------------------------------------------------------------------------------------------
// Heads

std::unique_ptr<char[]> Storage(std::string_view s) {
  auto p = std::make_unique<char[]>(s.size());
  std::memcpy(p.get(), s.data(), s.size());
  return p;
}

TEST(ParseRequestHeadTest, ViewsPointIntoTheAdoptedStorage) {
  const std::string raw =
      "\r\nPOST /p?q HTTP/1.0\r\nHost:  example.com \t\r\nX-Empty:\r\nX-A: b c\r\n\r\n";
  auto storage = Storage(raw);
  const char* base = storage.get();
  RequestHead head;
  ASSERT_FALSE(ParseRequestHead(std::move(storage), raw.size(), Limits(), head));
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.method.data(), base + 2);
  EXPECT_EQ(head.path, "/p?q");
  EXPECT_EQ(head.version_minor, 0);
  EXPECT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers.get(KnownHeader::kHost)->value, "example.com");  // OWS trimmed
  EXPECT_EQ(head.headers.get(KnownHeader::kHost)->value.data(), base + 29);
  EXPECT_EQ(head.headers.get("x-empty")->value, "");
  EXPECT_EQ(head.headers.get("x-a")->value, "b c");
  // The head owns the bytes: moving it keeps every view valid.
  RequestHead moved = std::move(head);
  EXPECT_EQ(moved.headers.get("X-A")->value.data(), moved.headers.get("x-a")->value.data());
  EXPECT_EQ(moved.method, "POST");
}

TEST(ParseRequestHeadTest, ResetsTheHead) {
  RequestHead head;
  head.headers.add("X-Stale", "1");
  const std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_FALSE(ParseRequestHead(Storage(raw), raw.size(), Limits(), head));
  EXPECT_EQ(head.headers.get("x-stale"), nullptr);
  EXPECT_EQ(head.headers.size(), 1u);
}

TEST(ParseRequestHeadTest, DirectInputsTheScannerWouldNotProduce) {
  const auto parse = [](std::string_view raw, const Limits& limits = Limits()) {
    RequestHead head;
    auto error = ParseRequestHead(Storage(raw), raw.size(), limits, head);
    return error ? static_cast<int>(error->status) : kAccept;
  };
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\nextra"), 400);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n"), 400);
  EXPECT_EQ(parse("GET / HTTP/1.1"), 400);
  EXPECT_EQ(parse(""), 400);
  EXPECT_EQ(parse("\r\n\r\n"), 400);
  EXPECT_EQ(parse("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
  Limits small;
  small.max_header_bytes = 10;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", small), 431);
  small = Limits();
  small.max_request_line = 5;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", small), 414);
  EXPECT_EQ(parse("GET / HTTP/1.1", small), 414);
}

TEST(ParseResponseHeadTest, FieldsAndErrorsHaveStatusZero) {
  const std::string raw = "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n";
  ResponseHead head;
  ASSERT_FALSE(ParseResponseHead(Storage(raw), raw.size(), Limits(), head));
  EXPECT_EQ(head.status, 404);
  EXPECT_EQ(head.reason, "Not Found");
  EXPECT_EQ(head.version_minor, 0);
  EXPECT_EQ(head.headers.get(KnownHeader::kServer)->value, "x");
  for (std::string_view bad : {"HTTP/1.1 20 OK\r\n\r\n"sv, "HTTP/1.1 200 OK\r\nA : b\r\n\r\n"sv,
                               "HTTP/1.1 200 OK\r\n"sv, "HTTP/9.9 200 OK\r\n\r\n"sv}) {
    auto error = ParseResponseHead(Storage(bad), bad.size(), Limits(), head);
    ASSERT_TRUE(error) << bad;
    EXPECT_EQ(error->status, 0) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Framing

RequestHead Request(std::string_view raw) {
  RequestHead head;
  EXPECT_FALSE(ParseRequestHead(Storage(raw), raw.size(), Limits(), head)) << raw;
  return head;
}

ResponseHead Response(std::string_view raw) {
  ResponseHead head;
  EXPECT_FALSE(ParseResponseHead(Storage(raw), raw.size(), Limits(), head)) << raw;
  return head;
}

TEST(FramingTest, RequestKinds) {
  BodyFraming f;
  ASSERT_FALSE(RequestFraming(Request("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), f));
  EXPECT_EQ(f.kind, BodyFraming::Kind::kNone);
  ASSERT_FALSE(
      RequestFraming(Request("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), f));
  EXPECT_EQ(f.kind, BodyFraming::Kind::kContentLength);
  EXPECT_EQ(f.content_length, 0u);
  ASSERT_FALSE(RequestFraming(
      Request("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"), f));
  EXPECT_EQ(f.content_length, 9223372036854775807u);
  ASSERT_FALSE(RequestFraming(
      Request("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), f));
  EXPECT_EQ(f.kind, BodyFraming::Kind::kChunked);
}

TEST(FramingTest, ResponseKinds) {
  struct {
    std::string_view raw;
    std::string_view method;
    BodyFraming::Kind kind;
    uint64_t length;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", "GET", BodyFraming::Kind::kContentLength, 7},
      {"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", "HEAD", BodyFraming::Kind::kNone, 0},
      {"HTTP/1.1 200 OK\r\n\r\n", "GET", BodyFraming::Kind::kUntilClose, 0},
      {"HTTP/1.1 204 No Content\r\n\r\n", "GET", BodyFraming::Kind::kNone, 0},
      {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
       BodyFraming::Kind::kNone, 0},
      {"HTTP/1.1 100 Continue\r\n\r\n", "POST", BodyFraming::Kind::kNone, 0},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", BodyFraming::Kind::kChunked,
       0},
      // A tunnel: CL and TE (even both) are ignored on a 2xx to CONNECT.
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "CONNECT",
       BodyFraming::Kind::kUntilClose, 0},
      {"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\n\r\n", "CONNECT",
       BodyFraming::Kind::kContentLength, 5},
  };
  for (const auto& c : cases) {
    BodyFraming f;
    ASSERT_FALSE(ResponseFraming(Response(c.raw), c.method, f)) << c.raw;
    EXPECT_EQ(f.kind, c.kind) << c.raw << " " << c.method;
    EXPECT_EQ(f.content_length, c.length) << c.raw;
  }
}

// ---------------------------------------------------------------------------------------------
// ChunkedDecoder

struct Decoded {
  ChunkedDecoder::Result result;
  std::string body;
  std::string trailers;
  std::string rest;  // bytes left in the input
  uint16_t status = 0;
};

Decoded DecodePieces(const std::vector<std::string_view>& pieces, const Limits& limits = {}) {
  Buffer in;
  Buffer out;
  ChunkedDecoder decoder;
  Decoded d{ChunkedDecoder::Result::kNeedMore};
  for (std::string_view piece : pieces) {
    AddAsSlice(in, piece);
    d.result = decoder.decode(in, out, limits);
  }
  d.body = out.toString();
  d.trailers = FieldsToString(decoder.trailers());
  d.rest = in.toString();
  d.status = decoder.error().status;
  return d;
}

TEST(ChunkedDecoderTest, EverySplitIntoThreePieces) {
  const std::string_view samples[] = {
      "4;a=1\r\nWiki\r\n5\r\npedia\r\nE; x = \"y\\\"\"\r\n in\r\n\r\nchunks.\r\n0\r\nX-A: 1\r\n\r\nNEXT"sv,
      "1\r\nx\r\n0\r\n\r\nGET"sv,
  };
  for (std::string_view sample : samples) {
    const Decoded whole = DecodePieces({sample});
    ASSERT_EQ(whole.result, ChunkedDecoder::Result::kDone) << sample;
    ASSERT_EQ(whole.rest.size(), sample.size() - sample.rfind("\r\n\r\n") - 4) << sample;
    for (size_t i = 0; i <= sample.size(); ++i) {
      for (size_t j = i; j <= sample.size(); ++j) {
        const Decoded d =
            DecodePieces({sample.substr(0, i), sample.substr(i, j - i), sample.substr(j)});
        ASSERT_EQ(d.result, whole.result) << i << "," << j;
        ASSERT_EQ(d.body, whole.body) << i << "," << j;
        ASSERT_EQ(d.trailers, whole.trailers) << i << "," << j;
        ASSERT_EQ(d.rest, whole.rest) << i << "," << j;
      }
    }
  }
  EXPECT_EQ(DecodePieces({samples[0]}).body, "Wikipedia in\r\n\r\nchunks.");
  EXPECT_EQ(DecodePieces({samples[0]}).trailers, "X-A: 1\n");
  EXPECT_EQ(DecodePieces({samples[0]}).rest, "NEXT");
}

TEST(ChunkedDecoderTest, MovesWholeSlicesByPointer) {
  const std::string data(Slice::kDefaultCapacity, 'd');
  Buffer in;
  AddAsSlice(in, "4000\r\n");
  AddAsSlice(in, data);
  AddAsSlice(in, "\r\n0\r\n\r\n");
  struct iovec iov[3];
  ASSERT_EQ(in.peek(iov, 3), 3u);
  const void* data_slice = iov[1].iov_base;
  Buffer out;
  ChunkedDecoder decoder;
  ASSERT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kDone);
  ASSERT_EQ(out.length(), data.size());
  ASSERT_EQ(out.sliceCount(), 1u);
  struct iovec got;
  out.peek(&got, 1);
  EXPECT_EQ(got.iov_base, data_slice);  // the same slice, not a copy
  EXPECT_TRUE(in.empty());
}

TEST(ChunkedDecoderTest, LargeChunkAcrossManyCalls) {
  Buffer in;
  Buffer out;
  ChunkedDecoder decoder;
  in.add("100000\r\n");  // 1 MiB
  const std::string piece(4096, 'z');
  size_t fed = 0;
  while (fed < (1u << 20)) {
    in.add(piece);
    fed += piece.size();
    ASSERT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kNeedMore);
    ASSERT_EQ(out.length(), fed);
  }
  in.add("\r\n0\r\n\r\n");
  EXPECT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kDone);
  EXPECT_EQ(out.length(), 1u << 20);
}

TEST(ChunkedDecoderTest, ErrorIsStickyAndResetReuses) {
  Buffer in;
  Buffer out;
  ChunkedDecoder decoder;
  in.add("g\r\n");
  EXPECT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kError);
  EXPECT_EQ(decoder.error().status, 400);
  EXPECT_FALSE(decoder.error().reason.empty());
  in.clear();
  in.add("0\r\n\r\n");
  EXPECT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kError);
  decoder.reset();
  EXPECT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kDone);
  EXPECT_TRUE(decoder.trailers().empty());
  // Done is sticky and consumes nothing more.
  in.add("5\r\nhello\r\n");
  EXPECT_EQ(decoder.decode(in, out, Limits()), ChunkedDecoder::Result::kDone);
  EXPECT_EQ(in.length(), 10u);
}

TEST(ChunkedDecoderTest, MaxChunkSize) {
  // 2^63-1 is accepted as a size (the body is then just never complete).
  const Decoded d = DecodePieces({"7fffffffffffffff\r\nabc"});
  EXPECT_EQ(d.result, ChunkedDecoder::Result::kNeedMore);
  EXPECT_EQ(d.body, "abc");
}

// ---------------------------------------------------------------------------------------------
// Encoders

TEST(EncoderTest, RequestRoundTrip) {
  RequestHead head;
  head.method = "PATCH";
  head.path = "/items/7?x=1";
  head.version_minor = 0;  // encoders always speak HTTP/1.1
  head.headers.add("Host", "example.com");
  head.headers.add("X-Removed", "no");
  head.headers.add("Content-Length", "3");
  head.headers.add("X-Obs", "caf\xc3\xa9\tok");
  head.headers.remove("x-removed");
  Buffer out;
  EncodeRequestHead(head, out);
  EXPECT_EQ(out.sliceCount(), 1u);
  EXPECT_EQ(out.toString(),
            "PATCH /items/7?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n"
            "X-Obs: caf\xc3\xa9\tok\r\n\r\n");
  HeadScanner scanner;
  ASSERT_EQ(scanner.scan(out, Limits(), true), HeadScanner::Result::kComplete);
  ASSERT_EQ(scanner.headLength(), out.length());
  auto storage = std::make_unique<char[]>(out.length());
  out.copyOut(0, out.length(), storage.get());
  RequestHead parsed;
  ASSERT_FALSE(ParseRequestHead(std::move(storage), out.length(), Limits(), parsed));
  EXPECT_EQ(parsed.method, head.method);
  EXPECT_EQ(parsed.path, head.path);
  EXPECT_EQ(parsed.version_minor, 1);
  EXPECT_EQ(FieldsToString(parsed.headers), FieldsToString(head.headers));
}

TEST(EncoderTest, ResponseRoundTripAndDefaultReason) {
  ResponseHead head;
  head.status = 404;
  head.headers.add("Content-Length", "0");
  head.headers.add("Server", "sluice");
  Buffer out;
  EncodeResponseHead(head, out);
  EXPECT_EQ(out.toString(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nServer: sluice\r\n\r\n");
  const std::string raw = out.toString();
  ResponseHead parsed;
  ASSERT_FALSE(ParseResponseHead(Storage(raw), raw.size(), Limits(), parsed));
  EXPECT_EQ(parsed.status, 404);
  EXPECT_EQ(parsed.reason, "Not Found");
  EXPECT_EQ(FieldsToString(parsed.headers), FieldsToString(head.headers));

  ResponseHead custom;
  custom.status = 299;  // no standard phrase: empty reason, SP kept
  Buffer out2;
  EncodeResponseHead(custom, out2);
  EXPECT_EQ(out2.toString(), "HTTP/1.1 299 \r\n\r\n");
  custom.reason = "Fine";
  Buffer out3;
  EncodeResponseHead(custom, out3);
  EXPECT_EQ(out3.toString(), "HTTP/1.1 299 Fine\r\n\r\n");
}

TEST(EncoderTest, ChunksRoundTrip) {
  Buffer out;
  Buffer data;
  EncodeChunk(data, out);  // empty: nothing, or it would be the last chunk
  EXPECT_TRUE(out.empty());
  data.add("hello");
  EncodeChunk(data, out);
  EXPECT_TRUE(data.empty());
  const std::string big(300, 'b');
  data.add(big);
  EncodeChunk(data, out);
  HeaderMap trailers;
  trailers.add("X-Checksum", "abc");
  EncodeLastChunk(&trailers, out);
  EXPECT_EQ(out.toString(), "5\r\nhello\r\n12c\r\n" + big + "\r\n0\r\nX-Checksum: abc\r\n\r\n");
  Buffer body;
  ChunkedDecoder decoder;
  ASSERT_EQ(decoder.decode(out, body, Limits()), ChunkedDecoder::Result::kDone);
  EXPECT_EQ(body.toString(), "hello" + big);
  EXPECT_EQ(FieldsToString(decoder.trailers()), "X-Checksum: abc\n");
  EXPECT_TRUE(out.empty());

  Buffer last;
  EncodeLastChunk(nullptr, last);
  EXPECT_EQ(last.toString(), "0\r\n\r\n");
  HeaderMap empty;
  Buffer last2;
  EncodeLastChunk(&empty, last2);
  EXPECT_EQ(last2.toString(), "0\r\n\r\n");
}

TEST(EncoderTest, ReasonPhrases) {
  EXPECT_EQ(ReasonPhrase(200), "OK");
  EXPECT_EQ(ReasonPhrase(404), "Not Found");
  EXPECT_EQ(ReasonPhrase(413), "Content Too Large");
  EXPECT_EQ(ReasonPhrase(414), "URI Too Long");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(501), "Not Implemented");
  EXPECT_EQ(ReasonPhrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(ReasonPhrase(0), "");
  EXPECT_EQ(ReasonPhrase(299), "");
  for (uint16_t s = 100; s < 600; ++s) {
    EXPECT_TRUE(IsValidFieldValue(ReasonPhrase(s))) << s;
  }
}

TEST(EncoderTest, FieldValidators) {
  EXPECT_TRUE(IsValidFieldName("X-Good_Name.1"));
  EXPECT_FALSE(IsValidFieldName(""));
  EXPECT_FALSE(IsValidFieldName("X Bad"));
  EXPECT_FALSE(IsValidFieldName("X:Bad"));
  EXPECT_FALSE(IsValidFieldName("X\r\nInjected"));
  EXPECT_TRUE(IsValidFieldValue(""));
  EXPECT_TRUE(IsValidFieldValue("a b\tc \x80\xff"));
  EXPECT_FALSE(IsValidFieldValue("a\r\nSet-Cookie: x"));
  EXPECT_FALSE(IsValidFieldValue("a\nb"));
  EXPECT_FALSE(IsValidFieldValue("a\0b"sv));
  EXPECT_FALSE(IsValidFieldValue("a\x7f"));
}

}  // namespace
}  // namespace sluice::http::http1
