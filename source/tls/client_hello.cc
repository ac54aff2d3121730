#include "source/tls/client_hello.h"

#include <algorithm>
#include <bitset>

namespace sluice::tls {
namespace {

constexpr uint8_t kContentTypeHandshake = 22;
constexpr uint8_t kHandshakeTypeClientHello = 1;
constexpr size_t kRecordHeaderSize = 5;
constexpr size_t kHandshakeHeaderSize = 4;
// RFC 8446 5.1: TLSPlaintext.length MUST NOT exceed 2^14.
constexpr size_t kMaxRecordPayload = size_t{1} << 14;

constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint8_t kNameTypeHostName = 0;
constexpr uint16_t kTls13 = 0x0304;
constexpr size_t kMaxHostNameSize = 255;
constexpr size_t kMaxSessionIdSize = 32;
constexpr size_t kRandomSize = 32;

// Checks the (possibly partial) record header at data[pos...], byte by byte so that a wrong first
// byte is decided without waiting for the rest. kDone: the header is whole and acceptable, and
// its payload length is in *payload_size.
ParseResult CheckRecordHeader(absl::Span<const uint8_t> data, size_t pos, bool first,
                              size_t* payload_size) {
  const size_t avail = data.size() - pos;
  // Only the connection's first record tells TLS from something else; a later record that is not
  // a handshake record breaks a ClientHello already under way.
  const ParseResult wrong = first ? ParseResult::kNotTls : ParseResult::kInvalid;
  if (avail >= 1 && data[pos] != kContentTypeHandshake) return wrong;
  if (avail >= 2 && data[pos + 1] != 3) return wrong;
  // legacy_record_version: TLS 1.0 to 1.2 are what clients send in a first flight (RFC 8446 5.1
  // and appendix D); SSL 3.0 is not spoken, and nothing newer is defined.
  if (avail >= 3 && (data[pos + 2] < 1 || data[pos + 2] > 3)) return ParseResult::kInvalid;
  if (avail < kRecordHeaderSize) return ParseResult::kNeedMore;
  const size_t length = (size_t{data[pos + 3]} << 8) | data[pos + 4];
  // Zero-length handshake fragments are forbidden (RFC 5246 6.2.1, RFC 8446 5.1).
  if (length == 0 || length > kMaxRecordPayload) return ParseResult::kInvalid;
  *payload_size = length;
  return ParseResult::kDone;
}

// Walks the records at the start of `data` until they hold a whole handshake message, checking
// each record header and the handshake header on the way. kDone: the message (header included)
// is *message_size bytes long and every one of them is in `data`.
ParseResult FindClientHello(absl::Span<const uint8_t> data, size_t max_size, size_t* message_size) {
  size_t pos = 0;    // the current record's header
  size_t seen = 0;   // bytes of the handshake message seen so far
  size_t total = 0;  // header + body of the message; 0 until its header is whole
  uint8_t header[kHandshakeHeaderSize];
  for (bool first = true;; first = false) {
    // The ClientHello cannot end before this record's header and the message bytes still to
    // come; past max_size it is too large, whatever the bytes that are not here yet say. This
    // bound is why a caller with max_size bytes never hears kNeedMore.
    const size_t still = total != 0 ? total - seen : kHandshakeHeaderSize - seen;
    if (pos + kRecordHeaderSize + still > max_size) return ParseResult::kTooLarge;

    size_t payload_size = 0;
    const ParseResult header_result = CheckRecordHeader(data, pos, first, &payload_size);
    if (header_result != ParseResult::kDone) return header_result;
    const size_t payload = pos + kRecordHeaderSize;
    const size_t avail = std::min(payload_size, data.size() - payload);

    size_t used = 0;  // bytes of this record's payload that belong to the message
    while (total == 0 && used < payload_size) {
      if (used == avail) return ParseResult::kNeedMore;
      header[seen++] = data[payload + used++];
      if (seen == 1 && header[0] != kHandshakeTypeClientHello) return ParseResult::kInvalid;
      if (seen == kHandshakeHeaderSize) {
        const size_t body = (size_t{header[1]} << 16) | (size_t{header[2]} << 8) | header[3];
        total = kHandshakeHeaderSize + body;
        if (payload + used + body > max_size) return ParseResult::kTooLarge;
      }
    }
    if (total != 0) {
      const size_t take = std::min(payload_size - used, total - seen);
      if (used + take > avail) return ParseResult::kNeedMore;
      seen += take;
      if (seen == total) {
        *message_size = total;
        return ParseResult::kDone;
      }
    }
    // The message goes on in the next record: this one is all message.
    pos = payload + payload_size;
  }
}

// Reads a handshake message as one byte stream although its bytes are spread over several
// records' payloads, skipping the record headers between them, without copying the message.
// FindClientHello has checked those headers; the reader still bounds every access by `data`.
// A Reader is a cheap value: Sub() hands out a copy limited to a length-prefixed field.
class Reader {
 public:
  // `pos` is the first byte to read, with `record_left` bytes of its record's payload from there.
  Reader(absl::Span<const uint8_t> data, size_t pos, size_t record_left, size_t remaining)
      : data_(data), pos_(pos), record_left_(record_left), remaining_(remaining) {}

  bool empty() const { return remaining_ == 0; }

  bool ReadU8(uint8_t* value) {
    if (remaining_ == 0 || !Refill()) return false;
    *value = data_[pos_];
    Advance(1);
    return true;
  }

  bool ReadU16(uint16_t* value) {
    uint8_t high, low;
    if (!ReadU8(&high) || !ReadU8(&low)) return false;
    *value = static_cast<uint16_t>((high << 8) | low);
    return true;
  }

  bool Skip(size_t n) { return Consume(n, nullptr); }

  bool AppendTo(size_t n, std::string* out) { return Consume(n, out); }

  // Splits off the next n bytes as a reader of their own; this one continues after them.
  bool Sub(size_t n, Reader* sub) {
    if (n > remaining_) return false;
    *sub = *this;
    sub->remaining_ = n;
    return Skip(n);
  }

 private:
  // Moves to the next record's payload when this one is read; false if no byte is left in data.
  bool Refill() {
    while (record_left_ == 0) {
      if (data_.size() - pos_ < kRecordHeaderSize) return false;
      record_left_ = (size_t{data_[pos_ + 3]} << 8) | data_[pos_ + 4];
      pos_ += kRecordHeaderSize;
    }
    return pos_ < data_.size();
  }

  void Advance(size_t n) {
    pos_ += n;
    record_left_ -= n;
    remaining_ -= n;
  }

  bool Consume(size_t n, std::string* out) {
    if (n > remaining_) return false;
    while (n > 0) {
      if (!Refill()) return false;
      const size_t step = std::min({n, record_left_, data_.size() - pos_});
      if (out != nullptr) out->append(reinterpret_cast<const char*>(&data_[pos_]), step);
      Advance(step);
      n -= step;
    }
    return true;
  }

  absl::Span<const uint8_t> data_;
  size_t pos_;
  size_t record_left_;
  size_t remaining_;
};

// A host_name (RFC 6066 3): 1 to 255 bytes of letters, digits, '-', '_' and '.', without empty
// labels (so without a leading or trailing dot, which RFC 6066 excludes). '_' is not valid in
// host names but common in internal ones, and harmless to match on. Stored lower-cased, since
// names match case-insensitively and the filter chains' names are lower-cased too.
bool ReadHostName(Reader name, size_t size, std::string* out) {
  if (size == 0 || size > kMaxHostNameSize) return false;
  out->clear();
  out->reserve(size);
  char previous = '.';
  for (size_t i = 0; i < size; ++i) {
    uint8_t byte;
    if (!name.ReadU8(&byte)) return false;
    char c = static_cast<char>(byte);
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    } else if (c == '.') {
      if (previous == '.') return false;
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
    out->push_back(c);
    previous = c;
  }
  return previous != '.';
}

// server_name extension_data (RFC 6066 3): ServerName server_name_list<1..2^16-1>, each entry
// a NameType and an opaque<1..2^16-1>. Every entry is checked; the host_name is kept.
bool ParseServerName(Reader ext, ClientHelloInfo* out) {
  uint16_t list_size;
  Reader list(ext);
  if (!ext.ReadU16(&list_size) || !ext.Sub(list_size, &list) || !ext.empty() || list.empty()) {
    return false;
  }
  bool have_host_name = false;
  while (!list.empty()) {
    uint8_t type;
    uint16_t size;
    Reader name(list);
    if (!list.ReadU8(&type) || !list.ReadU16(&size) || size == 0 || !list.Sub(size, &name)) {
      return false;
    }
    if (type != kNameTypeHostName) continue;
    // "The ServerNameList MUST NOT contain more than one name of the same name_type."
    if (have_host_name) return false;
    have_host_name = true;
    if (!ReadHostName(name, size, &out->server_name)) return false;
  }
  return true;
}

// application_layer_protocol_negotiation extension_data (RFC 7301 3.1):
// ProtocolName protocol_name_list<2..2^16-1>, each ProtocolName an opaque<1..2^8-1>.
bool ParseAlpn(Reader ext, ClientHelloInfo* out) {
  uint16_t list_size;
  Reader list(ext);
  if (!ext.ReadU16(&list_size) || !ext.Sub(list_size, &list) || !ext.empty() || list.empty()) {
    return false;
  }
  while (!list.empty()) {
    uint8_t size;
    if (!list.ReadU8(&size) || size == 0) return false;
    std::string& protocol = out->alpn.emplace_back();
    protocol.reserve(size);
    if (!list.AppendTo(size, &protocol)) return false;
  }
  return true;
}

// supported_versions extension_data in a ClientHello (RFC 8446 4.2.1):
// ProtocolVersion versions<2..254>.
bool ParseSupportedVersions(Reader ext, ClientHelloInfo* out) {
  uint8_t list_size;
  Reader list(ext);
  if (!ext.ReadU8(&list_size) || list_size < 2 || list_size % 2 != 0 ||
      !ext.Sub(list_size, &list) || !ext.empty()) {
    return false;
  }
  while (!list.empty()) {
    uint16_t version;
    if (!list.ReadU16(&version)) return false;
    if (version == kTls13) out->has_supported_versions_13 = true;
  }
  return true;
}

// The ClientHello body (RFC 8446 4.1.2; RFC 5246 7.4.1.2 for the optional extensions).
bool ParseBody(Reader body, ClientHelloInfo* out) {
  uint8_t session_id_size, compression_size;
  uint16_t cipher_suites_size;
  if (!body.ReadU16(&out->legacy_version) || !body.Skip(kRandomSize) ||
      !body.ReadU8(&session_id_size) || session_id_size > kMaxSessionIdSize ||
      !body.Skip(session_id_size) ||
      // CipherSuite cipher_suites<2..2^16-2>: whole two-byte suites, at least one.
      !body.ReadU16(&cipher_suites_size) || cipher_suites_size == 0 ||
      cipher_suites_size % 2 != 0 || !body.Skip(cipher_suites_size) ||
      // opaque legacy_compression_methods<1..2^8-1>.
      !body.ReadU8(&compression_size) || compression_size == 0 || !body.Skip(compression_size)) {
    return false;
  }
  // Before TLS 1.3 a ClientHello may end here, without an extensions block.
  if (body.empty()) return true;

  uint16_t extensions_size;
  Reader extensions(body);
  if (!body.ReadU16(&extensions_size) || !body.Sub(extensions_size, &extensions) || !body.empty()) {
    return false;
  }
  // RFC 8446 4.2: "There MUST NOT be more than one extension of the same type". A bit per type
  // keeps the check linear in the number of extensions, which a large ClientHello makes large.
  std::bitset<65536> seen;
  while (!extensions.empty()) {
    uint16_t type, size;
    Reader ext(extensions);
    if (!extensions.ReadU16(&type) || !extensions.ReadU16(&size) || !extensions.Sub(size, &ext)) {
      return false;
    }
    if (seen.test(type)) return false;
    seen.set(type);
    switch (type) {
      case kExtServerName:
        if (!ParseServerName(ext, out)) return false;
        break;
      case kExtAlpn:
        if (!ParseAlpn(ext, out)) return false;
        break;
      case kExtSupportedVersions:
        if (!ParseSupportedVersions(ext, out)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace

std::string_view ParseResultName(ParseResult result) {
  switch (result) {
    case ParseResult::kNeedMore:
      return "need_more";
    case ParseResult::kNotTls:
      return "not_tls";
    case ParseResult::kDone:
      return "done";
    case ParseResult::kInvalid:
      return "invalid";
    case ParseResult::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

ParseResult ParseClientHello(absl::Span<const uint8_t> data, ClientHelloInfo* out,
                             size_t max_size) {
  *out = ClientHelloInfo{};
  out->tls = data.size() >= 2 && data[0] == kContentTypeHandshake && data[1] == 3;

  size_t message_size = 0;
  const ParseResult found = FindClientHello(data, max_size, &message_size);
  if (found != ParseResult::kDone) return found;

  const size_t first_record_size = (size_t{data[3]} << 8) | data[4];
  Reader message(data, kRecordHeaderSize, first_record_size, message_size);
  Reader body(message);
  if (!message.Skip(kHandshakeHeaderSize) ||
      !message.Sub(message_size - kHandshakeHeaderSize, &body) || !ParseBody(body, out)) {
    const bool tls = out->tls;
    *out = ClientHelloInfo{};
    out->tls = tls;
    return ParseResult::kInvalid;
  }
  return ParseResult::kDone;
}

}  // namespace sluice::tls
