#include "source/http/header_map.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace sluice::http {

namespace {

constexpr size_t kKnownCount = static_cast<size_t>(KnownHeader::kCount);

constexpr std::string_view kKnownNames[kKnownCount] = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "expect",
    "te",
    "trailer",
    "date",
    "server",
    "content-type",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-client-cert",
    "user-agent",
    "x-request-id",
};

// ASCII lowercase by table: `c | 0x20` would also fold e.g. CR (0x0d) onto '-' (0x2d), so a name
// a plugin built with odd bytes could alias a known header.
constexpr std::array<uint8_t, 256> MakeLowerTable() {
  std::array<uint8_t, 256> t{};
  for (int i = 0; i < 256; ++i) {
    t[i] = static_cast<uint8_t>(i >= 'A' && i <= 'Z' ? i + ('a' - 'A') : i);
  }
  return t;
}
constexpr std::array<uint8_t, 256> kLower = MakeLowerTable();

inline uint8_t Lower(char c) { return kLower[static_cast<uint8_t>(c)]; }

// `name` equals the lowercase literal `lower` (same length assumed) ignoring ASCII case.
inline bool EqualsLower(std::string_view name, std::string_view lower) {
  for (size_t i = 0; i < lower.size(); ++i) {
    if (Lower(name[i]) != static_cast<uint8_t>(lower[i])) {
      return false;
    }
  }
  return true;
}

inline KnownHeader Match(std::string_view name, KnownHeader candidate) {
  return EqualsLower(name, kKnownNames[static_cast<size_t>(candidate)]) ? candidate
                                                                        : KnownHeader::kCount;
}

inline size_t Slot(KnownHeader h) { return static_cast<size_t>(h); }

// Copies go into arena blocks of this size; anything larger gets a block of its own so that one
// big value does not waste the rest of a block.
constexpr size_t kArenaBlock = 1024;
constexpr size_t kArenaOwnBlock = 256;

// Below this many entries removed ones are simply skipped; compaction is not worth it.
constexpr size_t kCompactMin = 16;

}  // namespace

std::string_view KnownHeaderName(KnownHeader h) {
  return Slot(h) < kKnownCount ? kKnownNames[Slot(h)] : std::string_view();
}

KnownHeader LookupKnownHeader(std::string_view name) {
  // Every header passes through here on add, so no hashing and no lowercase copy: the length
  // and the first byte leave at most one candidate, which one case-insensitive compare confirms.
  if (name.empty()) {
    return KnownHeader::kCount;
  }
  const uint8_t first = Lower(name[0]);
  switch (name.size()) {
    case 2:
      return first == 't' ? Match(name, KnownHeader::kTe) : KnownHeader::kCount;
    case 3:
      return first == 'v' ? Match(name, KnownHeader::kVia) : KnownHeader::kCount;
    case 4:
      if (first == 'h') return Match(name, KnownHeader::kHost);
      if (first == 'd') return Match(name, KnownHeader::kDate);
      return KnownHeader::kCount;
    case 6:
      if (first == 's') return Match(name, KnownHeader::kServer);
      if (first == 'e') return Match(name, KnownHeader::kExpect);
      return KnownHeader::kCount;
    case 7:
      if (first == 'u') return Match(name, KnownHeader::kUpgrade);
      if (first == 't') return Match(name, KnownHeader::kTrailer);
      return KnownHeader::kCount;
    case 10:
      if (first == 'c') return Match(name, KnownHeader::kConnection);
      if (first == 'k') return Match(name, KnownHeader::kKeepAlive);
      if (first == 'u') return Match(name, KnownHeader::kUserAgent);
      return KnownHeader::kCount;
    case 12:
      if (first == 'c') return Match(name, KnownHeader::kContentType);
      if (first == 'x') return Match(name, KnownHeader::kXRequestId);
      return KnownHeader::kCount;
    case 14:
      return first == 'c' ? Match(name, KnownHeader::kContentLength) : KnownHeader::kCount;
    case 15:
      return first == 'x' ? Match(name, KnownHeader::kXForwardedFor) : KnownHeader::kCount;
    case 16:
      return first == 'p' ? Match(name, KnownHeader::kProxyConnection) : KnownHeader::kCount;
    case 17:
      if (first == 't') return Match(name, KnownHeader::kTransferEncoding);
      if (first == 'x') return Match(name, KnownHeader::kXForwardedProto);
      return KnownHeader::kCount;
    case 23:
      return first == 'x' ? Match(name, KnownHeader::kXForwardedClientCert) : KnownHeader::kCount;
    default:
      return KnownHeader::kCount;
  }
}

bool HeaderNameEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return true;
}

HeaderMap::HeaderMap(HeaderMap&& other) noexcept { *this = std::move(other); }

HeaderMap& HeaderMap::operator=(HeaderMap&& other) noexcept {
  if (this == &other) {
    return *this;
  }
  entries_ = std::move(other.entries_);
  storage_ = std::move(other.storage_);
  std::memcpy(known_first_, other.known_first_, sizeof(known_first_));
  std::memcpy(known_count_, other.known_count_, sizeof(known_count_));
  arena_pos_ = other.arena_pos_;
  arena_left_ = other.arena_left_;
  live_ = other.live_;
  bytes_ = other.bytes_;
  other.clear();
  return *this;
}

void HeaderMap::adoptStorage(std::unique_ptr<char[]> storage) {
  if (storage != nullptr) {
    storage_.push_back(std::move(storage));
  }
}

std::string_view HeaderMap::copy(std::string_view s) {
  if (s.empty()) {
    return std::string_view();
  }
  if (s.size() > arena_left_) {
    if (s.size() >= kArenaOwnBlock) {
      auto block = std::make_unique_for_overwrite<char[]>(s.size());
      std::memcpy(block.get(), s.data(), s.size());
      std::string_view out(block.get(), s.size());
      storage_.push_back(std::move(block));
      return out;
    }
    auto block = std::make_unique_for_overwrite<char[]>(kArenaBlock);
    arena_pos_ = block.get();
    arena_left_ = kArenaBlock;
    storage_.push_back(std::move(block));
  }
  std::memcpy(arena_pos_, s.data(), s.size());
  std::string_view out(arena_pos_, s.size());
  arena_pos_ += s.size();
  arena_left_ -= s.size();
  return out;
}

void HeaderMap::push(std::string_view name, std::string_view value) {
  if (name.empty()) {
    return;
  }
  const KnownHeader known = LookupKnownHeader(name);
  entries_.push_back(Entry{name, value, known});
  if (known != KnownHeader::kCount) {
    const size_t slot = Slot(known);
    if (known_count_[slot]++ == 0) {
      known_first_[slot] = static_cast<uint32_t>(entries_.size());
    }
  }
  ++live_;
  bytes_ += name.size() + value.size();
}

void HeaderMap::addReference(std::string_view name, std::string_view value) { push(name, value); }

void HeaderMap::add(std::string_view name, std::string_view value) {
  if (name.empty()) {
    return;
  }
  // Copy both before push: `value` may itself be a view into this map's storage, which copying
  // never moves, so the order only matters for clarity.
  const std::string_view n = copy(name);
  const std::string_view v = copy(value);
  push(n, v);
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  if (name.empty()) {
    return;
  }
  const KnownHeader known = LookupKnownHeader(name);
  size_t first = entries_.size();
  if (known != KnownHeader::kCount) {
    if (known_count_[Slot(known)] != 0) {
      first = known_first_[Slot(known)] - 1;
    }
  } else {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (!entries_[i].name.empty() && HeaderNameEquals(entries_[i].name, name)) {
        first = i;
        break;
      }
    }
  }
  if (first == entries_.size()) {
    add(name, value);
    return;
  }
  // Copy before touching entries: `value` may be a view of one of the fields being replaced
  // (its bytes stay valid; only the entry is rewritten).
  const std::string_view n = copy(name);
  const std::string_view v = copy(value);
  Entry& e = entries_[first];
  bytes_ -= e.name.size() + e.value.size();
  e.name = n;
  e.value = v;
  bytes_ += n.size() + v.size();
  for (size_t i = first + 1; i < entries_.size(); ++i) {
    Entry& other = entries_[i];
    if (other.name.empty() || other.known != known ||
        (known == KnownHeader::kCount && !HeaderNameEquals(other.name, name))) {
      continue;
    }
    bytes_ -= other.name.size() + other.value.size();
    other = Entry{{}, {}, KnownHeader::kCount};
    --live_;
  }
  if (known != KnownHeader::kCount) {
    known_count_[Slot(known)] = 1;
  }
  maybeCompact();
}

size_t HeaderMap::remove(std::string_view name) {
  const KnownHeader known = LookupKnownHeader(name);
  if (known != KnownHeader::kCount) {
    return remove(known);
  }
  size_t removed = 0;
  for (Entry& e : entries_) {
    if (!e.name.empty() && e.known == KnownHeader::kCount && HeaderNameEquals(e.name, name)) {
      bytes_ -= e.name.size() + e.value.size();
      e = Entry{{}, {}, KnownHeader::kCount};
      ++removed;
    }
  }
  live_ -= removed;
  if (removed != 0) {
    maybeCompact();
  }
  return removed;
}

size_t HeaderMap::remove(KnownHeader h) {
  if (Slot(h) >= kKnownCount || known_count_[Slot(h)] == 0) {
    return 0;
  }
  size_t removed = 0;
  for (size_t i = known_first_[Slot(h)] - 1; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (e.known == h && !e.name.empty()) {
      bytes_ -= e.name.size() + e.value.size();
      e = Entry{{}, {}, KnownHeader::kCount};
      ++removed;
    }
  }
  known_count_[Slot(h)] = 0;
  known_first_[Slot(h)] = 0;
  live_ -= removed;
  maybeCompact();
  return removed;
}

void HeaderMap::clear() {
  entries_.clear();
  storage_.clear();
  std::memset(known_first_, 0, sizeof(known_first_));
  std::memset(known_count_, 0, sizeof(known_count_));
  arena_pos_ = nullptr;
  arena_left_ = 0;
  live_ = 0;
  bytes_ = 0;
}

const HeaderMap::Entry* HeaderMap::get(std::string_view name) const {
  const KnownHeader known = LookupKnownHeader(name);
  if (known != KnownHeader::kCount) {
    return get(known);
  }
  for (const Entry& e : entries_) {
    if (!e.name.empty() && e.known == KnownHeader::kCount && HeaderNameEquals(e.name, name)) {
      return &e;
    }
  }
  return nullptr;
}

const HeaderMap::Entry* HeaderMap::get(KnownHeader h) const {
  if (Slot(h) >= kKnownCount || known_count_[Slot(h)] == 0) {
    return nullptr;
  }
  return &entries_[known_first_[Slot(h)] - 1];
}

std::vector<std::string_view> HeaderMap::getAll(std::string_view name) const {
  std::vector<std::string_view> out;
  const KnownHeader known = LookupKnownHeader(name);
  if (known != KnownHeader::kCount) {
    const size_t n = known_count_[Slot(known)];
    if (n == 0) {
      return out;
    }
    out.reserve(n);
    for (size_t i = known_first_[Slot(known)] - 1; i < entries_.size() && out.size() < n; ++i) {
      if (entries_[i].known == known && !entries_[i].name.empty()) {
        out.push_back(entries_[i].value);
      }
    }
    return out;
  }
  for (const Entry& e : entries_) {
    if (!e.name.empty() && e.known == KnownHeader::kCount && HeaderNameEquals(e.name, name)) {
      out.push_back(e.value);
    }
  }
  return out;
}

size_t HeaderMap::count(std::string_view name) const {
  const KnownHeader known = LookupKnownHeader(name);
  if (known != KnownHeader::kCount) {
    return count(known);
  }
  size_t n = 0;
  for (const Entry& e : entries_) {
    if (!e.name.empty() && e.known == KnownHeader::kCount && HeaderNameEquals(e.name, name)) {
      ++n;
    }
  }
  return n;
}

size_t HeaderMap::count(KnownHeader h) const {
  return Slot(h) < kKnownCount ? known_count_[Slot(h)] : 0;
}

void HeaderMap::forEach(const std::function<bool(const Entry&)>& fn) const {
  for (const Entry& e : entries_) {
    if (!e.name.empty() && !fn(e)) {
      return;
    }
  }
}

const HeaderMap::Entry& HeaderMap::at(size_t index) {
  if (entries_.size() != live_) compact();
  return entries_[index];
}

void HeaderMap::compact() {
  if (entries_.size() == live_) return;
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const Entry& e) { return e.name.empty(); }),
                 entries_.end());
  reindex();
}

void HeaderMap::maybeCompact() {
  // Removal leaves holes so that it never shifts the vector; a map that filters keep editing
  // would otherwise grow without bound, so squeeze the holes out once they dominate.
  const size_t holes = entries_.size() - live_;
  if (entries_.size() < kCompactMin || holes <= live_) {
    return;
  }
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const Entry& e) { return e.name.empty(); }),
                 entries_.end());
  reindex();
}

void HeaderMap::reindex() {
  std::memset(known_first_, 0, sizeof(known_first_));
  std::memset(known_count_, 0, sizeof(known_count_));
  for (size_t i = 0; i < entries_.size(); ++i) {
    const KnownHeader known = entries_[i].known;
    if (entries_[i].name.empty() || known == KnownHeader::kCount) {
      continue;
    }
    if (known_count_[Slot(known)]++ == 0) {
      known_first_[Slot(known)] = static_cast<uint32_t>(i + 1);
    }
  }
}

}  // namespace sluice::http
