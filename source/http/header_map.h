#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "source/common/block_cache.h"

namespace sluice::http {

// Header names the core looks up on every message: they get O(1) lookups through a slot table
// that is filled as entries are added (no string compare on the hot path).
enum class KnownHeader : uint8_t {
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kUpgrade,
  kExpect,
  kTe,
  kTrailer,
  kDate,
  kServer,
  kContentType,
  kVia,
  kXForwardedFor,
  kXForwardedProto,
  // Removed from every proxied request (forward_client_cert_details SANITIZE): known, so that
  // the removal costs nothing when it is absent.
  kXForwardedClientCert,
  // Read once per request by access logs and tracing (and set by request ids): known, so that
  // reading them is an index, not a scan of the head.
  kUserAgent,
  kXRequestId,
  kCount,  // not a header
};

// The lowercase name of a known header ("content-length").
std::string_view KnownHeaderName(KnownHeader h);
// The known header `name` is (case-insensitive), or KnownHeader::kCount.
KnownHeader LookupKnownHeader(std::string_view name);

// Case-insensitive ASCII equality for header names.
bool HeaderNameEquals(std::string_view a, std::string_view b);

// An ordered multimap of header fields. Names keep the case they arrived in (HTTP/1 peers see
// what was sent) and compare case-insensitively. Entries are views: either into storage the map
// adopted from the codec (the parsed header block; no per-field copy) or into the map's own
// arena for fields added later. Not thread-safe (one stream, one worker).
class HeaderMap {
 public:
  struct Entry {
    std::string_view name;
    std::string_view value;
    KnownHeader known;  // kCount when not a known header
  };

  HeaderMap() = default;
  HeaderMap(const HeaderMap&) = delete;
  HeaderMap& operator=(const HeaderMap&) = delete;
  // Moves leave `other` empty and reusable (a defaulted move would leave it with stale counts and
  // slot indices into an emptied vector).
  HeaderMap(HeaderMap&& other) noexcept;
  HeaderMap& operator=(HeaderMap&& other) noexcept;

  // Keeps `storage` alive as long as the map: addReference() views may point into it.
  void adoptStorage(std::unique_ptr<char[]> storage);
  // Appends a field whose bytes live in adopted storage (or are static).
  void addReference(std::string_view name, std::string_view value);
  // Appends a copy of the field. An empty name is ignored (it marks removed entries).
  void add(std::string_view name, std::string_view value);
  // Replaces every field named `name` with one field (at the position of the first, or at the
  // end when there was none).
  void set(std::string_view name, std::string_view value);
  // Removes every field named `name`; returns how many.
  size_t remove(std::string_view name);
  size_t remove(KnownHeader h);
  void clear();

  // The first field named `name`, or nullptr. Valid until the map is next modified.
  const Entry* get(std::string_view name) const;
  const Entry* get(KnownHeader h) const;
  // Every value of `name`, in order.
  std::vector<std::string_view> getAll(std::string_view name) const;
  size_t count(std::string_view name) const;
  size_t count(KnownHeader h) const;

  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // Sum of name and value lengths (what a header-size limit counts).
  size_t byteSize() const { return bytes_; }
  // In order; return false from `fn` to stop.
  void forEach(const std::function<bool(const Entry&)>& fn) const;
  // Copies `s` into the map's arena: the view stays valid as long as the map (for values that
  // belong with the head but are not fields, e.g. a rewritten request target).
  std::string_view keep(std::string_view s) { return copy(s); }
  // The index-th live field (0 <= index < size()), in O(1): squeezes removed entries out first
  // when there are any, so a loop of at() without changes in between is linear overall. Views
  // stay valid (no bytes move); only entry positions do.
  const Entry& at(size_t index);
  // Drops removed entries now (entries() then holds live fields only, in order).
  void compact();
  // Direct access for encoders: entries with an empty name are removed ones; skip them.
  using Entries = absl::InlinedVector<Entry, 16>;
  const Entries& entries() const { return entries_; }

 private:
  std::string_view copy(std::string_view s);
  void push(std::string_view name, std::string_view value);
  // Drops removed entries once they outnumber live ones, then rebuilds the known slots.
  void maybeCompact();
  void reindex();

  // Inline for a typical head (no allocation per request; the head itself is block-cached).
  Entries entries_;
  // Index+1 into entries_ of the first live field of each known header (0: none). 32 bits: a
  // map that plugins keep adding to must not wrap an index.
  uint32_t known_first_[static_cast<size_t>(KnownHeader::kCount)] = {};
  uint32_t known_count_[static_cast<size_t>(KnownHeader::kCount)] = {};
  // Adopted head blocks and the arena blocks copies are carved from (a proxied head has one of
  // each: inline, no allocation for the list itself).
  absl::InlinedVector<std::unique_ptr<char[]>, 2> storage_;
  char* arena_pos_ = nullptr;
  size_t arena_left_ = 0;
  size_t live_ = 0;
  size_t bytes_ = 0;
};

// A request head, the same for every protocol: HTTP/2's pseudo-header fields, derived by the
// HTTP/1 codec from its request line. Made and freed at every request: the block comes from the
// per-thread cache.
struct RequestHead : BlockCached {
  std::string_view method;  // :method
  // :path: origin-form ("/p?q") or "*" (OPTIONS); empty for CONNECT, whose target is the
  // authority. (HTTP/1's parser stores the request-target as sent here; its codec then makes it
  // the :path: absolute-form becomes origin-form, CONNECT's authority-form the authority.)
  std::string_view path;
  // :scheme, "http" or "https": as an HTTP/2 client sent it; for HTTP/1 the absolute-form's, else
  // the connection's. Empty on heads no codec made (callouts).
  std::string_view scheme;
  // :protocol of an extended CONNECT (RFC 8441: "websocket"), else empty.
  std::string_view protocol;
  // HTTP/1 only: HTTP/1.<minor> as received (0 or 1). HTTP/2 heads say 1.
  uint8_t version_minor = 1;
  // :authority is the Host field, for every protocol (HTTP/2's codec stores :authority there):
  // one authority that routes, filters and an HTTP/1 upstream all read.
  HeaderMap headers;
  std::string_view authority() const {
    const HeaderMap::Entry* host = headers.get(KnownHeader::kHost);
    return host != nullptr ? host->value : std::string_view();
  }
};

struct ResponseHead : BlockCached {
  uint16_t status = 0;
  std::string_view reason;
  uint8_t version_minor = 1;
  HeaderMap headers;
};

}  // namespace sluice::http
