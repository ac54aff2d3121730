#include "source/common/stats.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "re2/re2.h"
#include "source/common/json_string.h"

namespace sluice::stats {

namespace {
// absl::StrCat in this build takes absl::string_view, which is not std::string_view: these pass
// std::string_view through as one and everything else as it is.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline absl::string_view Av(const std::string& s) { return s; }
inline absl::string_view Av(const char* s) { return s; }
template <typename T>
inline const T& Av(const T& t) {
  return t;
}
template <typename... T>
std::string Cat(const T&... t) {
  return absl::StrCat(Av(t)...);
}
template <typename... T>
void Append(std::string* out, const T&... t) {
  absl::StrAppend(out, Av(t)...);
}
}  // namespace

void SetThreadSlot(uint32_t worker_index) {
  internal::t_slot = worker_index < kMaxThreadSlots - 1 ? worker_index + 1 : 0;
}

uint64_t Counter::value() const {
  uint64_t sum = 0;
  for (uint32_t s = 0; s < slots_; ++s) sum += cells_[s][offset_].load(std::memory_order_relaxed);
  return sum;
}

int64_t Gauge::deltas() const {
  uint64_t sum = 0;  // two's complement: wraps to the signed sum
  for (uint32_t s = 0; s < slots_; ++s) sum += cells_[s][offset_].load(std::memory_order_relaxed);
  return static_cast<int64_t>(sum);
}

// ---- histograms -------------------------------------------------------------------------------

Histogram::Histogram(MakeKey, uint32_t slots)
    : buckets_(new std::atomic<Buckets*>[slots]), slots_(slots) {
  for (uint32_t s = 0; s < slots; ++s) buckets_[s].store(nullptr, std::memory_order_relaxed);
}

Histogram::~Histogram() {
  for (uint32_t s = 0; s < slots_; ++s) delete buckets_[s].load(std::memory_order_relaxed);
}

Histogram::Buckets* Histogram::allocate(uint32_t slot) {
  // Slot 0 may be shared by several threads: the first to publish wins.
  auto* fresh = new Buckets();
  Buckets* expected = nullptr;
  if (buckets_[slot].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
    return fresh;
  }
  delete fresh;
  return expected;
}

size_t Histogram::BucketOf(uint64_t v) {
  if (v == 0) return 0;
  // Bucket 2k+1 holds [2^k, 1.5 * 2^k), bucket 2k+2 holds [1.5 * 2^k, 2^(k+1)).
  const int k = 63 - __builtin_clzll(v);
  const uint64_t half = k == 0 ? 0 : (v >> (k - 1)) & 1;
  return 1 + 2 * static_cast<size_t>(k) + half;
}

uint64_t Histogram::UpperBound(size_t b) {
  if (b == 0) return 0;
  const size_t k = (b - 1) / 2;
  const bool upper_half = (b - 1) % 2 == 1;
  if (k == 63) return upper_half ? UINT64_MAX : (uint64_t{3} << 62) - 1;
  const uint64_t base = uint64_t{1} << k;
  return upper_half ? 2 * base - 1 : base + base / 2 - (k == 0 ? 0 : 1);
}

void Histogram::bucketCounts(uint64_t (&out)[kBuckets]) const {
  for (size_t b = 0; b < kBuckets; ++b) out[b] = 0;
  for (uint32_t s = 0; s < slots_; ++s) {
    const Buckets* bs = buckets_[s].load(std::memory_order_acquire);
    if (bs == nullptr) continue;
    for (size_t b = 0; b < kBuckets; ++b) out[b] += bs->counts[b].load(std::memory_order_relaxed);
  }
}

uint64_t Histogram::count() const {
  uint64_t counts[kBuckets];
  bucketCounts(counts);
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

uint64_t Histogram::sum() const {
  uint64_t n = 0;
  for (uint32_t s = 0; s < slots_; ++s) {
    const Buckets* bs = buckets_[s].load(std::memory_order_acquire);
    if (bs != nullptr) n += bs->sum.load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t Histogram::quantile(double q) const {
  uint64_t merged[kBuckets];
  bucketCounts(merged);
  uint64_t total = 0;
  for (uint64_t c : merged) total += c;
  if (total == 0) return 0;
  // The smallest bucket whose cumulative count reaches ceil(q * total).
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total));
  if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += merged[b];
    if (seen >= rank) return UpperBound(b);
  }
  return UpperBound(kBuckets - 1);
}

// ---- names ------------------------------------------------------------------------------------

namespace {

void SortTags(Tags& tags) { std::sort(tags.begin(), tags.end()); }

// `{k="v",...}` for sorted tags, values escaped as Prometheus wants (\\, \", \n); "" for none.
std::string LabelText(const Tags& tags) {
  if (tags.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i != 0) out.push_back(',');
    Append(&out, tags[i].first, "=\"");
    for (char c : tags[i].second) {
      if (c == '\\' || c == '"') {
        out.push_back('\\');
        out.push_back(c);
      } else if (c == '\n') {
        out.append("\\n");
      } else {
        out.push_back(c);
      }
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

// A name splits into its base and its label text (which starts at the first '{': bases never
// hold one).
std::pair<std::string_view, std::string_view> SplitName(std::string_view name) {
  const size_t brace = name.find('{');
  if (brace == std::string_view::npos) return {name, {}};
  return {name.substr(0, brace), name.substr(brace)};
}

std::string PrometheusName(std::string_view family) {
  std::string out = "sluice_";
  out.append(family.data(), family.size());
  for (size_t i = 7; i < out.size(); ++i) {
    char& c = out[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == ':';
    if (!ok) c = '_';
  }
  return out;
}

}  // namespace

Scope::Scope(Store& store) : store_(&store), data_(store.root_) {}

Scope Scope::tagged(std::string_view segment, std::string_view tag_key,
                    std::string_view value) const {
  auto d = std::make_shared<Data>(*data_);
  Append(&d->prefix, segment, ".", value, ".");
  Append(&d->family_prefix, segment, ".");
  d->tags.emplace_back(std::string(tag_key), std::string(value));
  SortTags(d->tags);
  return Scope(*store_, std::move(d));
}

Scope Scope::child(std::string_view segment) const {
  auto d = std::make_shared<Data>(*data_);
  Append(&d->prefix, segment, ".");
  Append(&d->family_prefix, segment, ".");
  return Scope(*store_, std::move(d));
}

const std::string& Scope::prefix() const { return data_->prefix; }
const Tags& Scope::tags() const { return data_->tags; }

Counter& Scope::counter(std::string_view leaf) const {
  return *static_cast<Counter*>(
      store_->make(Store::Kind::kCounter, Cat(data_->prefix, leaf), data_, leaf, {}));
}
Gauge& Scope::gauge(std::string_view leaf) const {
  return *static_cast<Gauge*>(
      store_->make(Store::Kind::kGauge, Cat(data_->prefix, leaf), data_, leaf, {}));
}
Histogram& Scope::histogram(std::string_view leaf) const {
  return *static_cast<Histogram*>(
      store_->make(Store::Kind::kHistogram, Cat(data_->prefix, leaf), data_, leaf, {}));
}
Counter& Scope::counter(std::string_view leaf, std::string_view family_leaf, Tags leaf_tags) const {
  return *static_cast<Counter*>(store_->make(Store::Kind::kCounter, Cat(data_->prefix, leaf), data_,
                                             family_leaf, std::move(leaf_tags)));
}
// (The name is made before the labels move into the entry: argument order is unspecified.)
Counter& Scope::labelledCounter(std::string_view leaf, Tags labels) const {
  SortTags(labels);
  std::string name = Cat(data_->prefix, leaf, LabelText(labels));
  return *static_cast<Counter*>(
      store_->make(Store::Kind::kCounter, std::move(name), data_, leaf, std::move(labels)));
}
Gauge& Scope::labelledGauge(std::string_view leaf, Tags labels) const {
  SortTags(labels);
  std::string name = Cat(data_->prefix, leaf, LabelText(labels));
  return *static_cast<Gauge*>(
      store_->make(Store::Kind::kGauge, std::move(name), data_, leaf, std::move(labels)));
}
Histogram& Scope::labelledHistogram(std::string_view leaf, Tags labels) const {
  SortTags(labels);
  std::string name = Cat(data_->prefix, leaf, LabelText(labels));
  return *static_cast<Histogram*>(
      store_->make(Store::Kind::kHistogram, std::move(name), data_, leaf, std::move(labels)));
}

Counter& ResponseClassCounter(const Scope& scope, std::string_view prefix, int class_digit) {
  const std::string digit(1, static_cast<char>('0' + class_digit));
  return scope.counter(Cat(prefix, digit, "xx"), Cat(prefix, "xx"),
                       {{"response_code_class", digit}});
}

// ---- the store --------------------------------------------------------------------------------

Store::Store(uint32_t workers)
    : slots_(std::min<uint32_t>(workers, kMaxThreadSlots - 1) + 1),
      root_(std::make_shared<Scope::Data>()) {}

Store::~Store() = default;

Counter& Store::counter(const std::string& name) { return Scope(*this).counter(name); }
Gauge& Store::gauge(const std::string& name) { return Scope(*this).gauge(name); }
Histogram& Store::histogram(const std::string& name) { return Scope(*this).histogram(name); }
Counter& Store::counter(const std::string& name, Tags labels) {
  return Scope(*this).labelledCounter(name, std::move(labels));
}
Gauge& Store::gauge(const std::string& name, Tags labels) {
  return Scope(*this).labelledGauge(name, std::move(labels));
}
Histogram& Store::histogram(const std::string& name, Tags labels) {
  return Scope(*this).labelledHistogram(name, std::move(labels));
}

std::pair<std::atomic<uint64_t>* const*, uint32_t> Store::newCell() {
  if (cells_used_ == kChunkCells) {
    auto chunk = std::make_unique<internal::Chunk>();
    for (uint32_t s = 0; s < slots_; ++s) {
      cell_arrays_.push_back(std::make_unique<CellArray>());
      chunk->by_slot[s] = cell_arrays_.back()->cells;
    }
    for (uint32_t s = slots_; s < kMaxThreadSlots; ++s) chunk->by_slot[s] = chunk->by_slot[0];
    chunks_.push_back(std::move(chunk));
    cells_used_ = 0;
  }
  return {chunks_.back()->by_slot, cells_used_++};
}

void* Store::make(Kind kind, std::string name, const std::shared_ptr<const Scope::Data>& scope,
                  std::string_view family_leaf, Tags own_tags) {
  absl::MutexLock lock(&mu_);
  auto it = stats_.find(name);
  if (it != stats_.end()) {
    if (it->second.kind != kind) {
      std::fprintf(stderr, "sluice: stat %s made twice with different kinds\n", name.c_str());
      std::abort();
    }
    return it->second.stat;
  }
  void* stat = nullptr;
  switch (kind) {
    case Kind::kCounter: {
      auto [cells, offset] = newCell();
      stat = &counters_.emplace_back(MakeKey(), cells, offset, slots_);
      break;
    }
    case Kind::kGauge: {
      auto [cells, offset] = newCell();
      stat = &gauges_.emplace_back(MakeKey(), cells, offset, slots_);
      break;
    }
    case Kind::kHistogram:
      histograms_.push_back(std::make_unique<Histogram>(MakeKey(), slots_));
      stat = histograms_.back().get();
      break;
  }
  // Most stats' family leaf is their leaf (the name after the scope's prefix, before any
  // labels): kept empty then, not as a second copy.
  const std::string_view base = SplitName(name).first;
  const bool same =
      base.size() >= scope->prefix.size() && base.substr(scope->prefix.size()) == family_leaf;
  stats_.emplace(std::move(name),
                 Entry{kind, scope, same ? std::string() : std::string(family_leaf),
                       std::move(own_tags), stat});
  return stat;
}

size_t Store::size() const {
  absl::MutexLock lock(&mu_);
  return stats_.size();
}

namespace {
bool Keep(const re2::RE2* filter, std::string_view base) {
  return filter == nullptr || re2::RE2::PartialMatch(base, *filter);
}
}  // namespace

std::string Store::dumpText(const re2::RE2* filter) const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> lines;
  for (const auto& [name, e] : stats_) {
    const auto [base, labels] = SplitName(name);
    if (!Keep(filter, base)) continue;
    switch (e.kind) {
      case Kind::kCounter:
        lines[name] = Cat(static_cast<const Counter*>(e.stat)->value());
        break;
      case Kind::kGauge:
        lines[name] = Cat(static_cast<const Gauge*>(e.stat)->value());
        break;
      case Kind::kHistogram: {
        const auto* h = static_cast<const Histogram*>(e.stat);
        lines[Cat(base, ".count", labels)] = Cat(h->count());
        lines[Cat(base, ".sum", labels)] = Cat(h->sum());
        lines[Cat(base, ".p50", labels)] = Cat(h->quantile(0.5));
        lines[Cat(base, ".p90", labels)] = Cat(h->quantile(0.9));
        lines[Cat(base, ".p99", labels)] = Cat(h->quantile(0.99));
        break;
      }
    }
  }
  std::string out;
  for (const auto& [name, value] : lines) Append(&out, name, " ", value, "\n");
  return out;
}

std::string Store::dumpJson(const re2::RE2* filter) const {
  absl::MutexLock lock(&mu_);
  std::string out = "{\"stats\":[";
  bool first = true;
  for (const auto& [name, e] : stats_) {
    const auto [base, labels] = SplitName(name);
    if (!Keep(filter, base)) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append("\n{\"name\":");
    json::AppendString(out, name);
    Tags tags = e.scope->tags;
    tags.insert(tags.end(), e.own_tags.begin(), e.own_tags.end());
    SortTags(tags);
    switch (e.kind) {
      case Kind::kCounter:
        Append(&out,
               ",\"type\":\"counter\",\"value\":", static_cast<const Counter*>(e.stat)->value());
        break;
      case Kind::kGauge:
        Append(&out, ",\"type\":\"gauge\",\"value\":", static_cast<const Gauge*>(e.stat)->value());
        break;
      case Kind::kHistogram: {
        const auto* h = static_cast<const Histogram*>(e.stat);
        Append(&out, ",\"type\":\"histogram\",\"count\":", h->count(), ",\"sum\":", h->sum(),
               ",\"p50\":", h->quantile(0.5), ",\"p90\":", h->quantile(0.9),
               ",\"p99\":", h->quantile(0.99));
        break;
      }
    }
    if (!tags.empty()) {
      out.append(",\"tags\":{");
      for (size_t i = 0; i < tags.size(); ++i) {
        if (i != 0) out.push_back(',');
        json::AppendString(out, tags[i].first);
        out.push_back(':');
        json::AppendString(out, tags[i].second);
      }
      out.push_back('}');
    }
    out.push_back('}');
  }
  out.append("\n]}\n");
  return out;
}

std::string Store::dumpPrometheus(const re2::RE2* filter) const {
  // One family per exposed name: its type, its dotted family name for HELP, its samples.
  struct Family {
    const char* type = nullptr;
    std::string help;
    std::string samples;
  };
  std::map<std::string, Family> families;
  // Stats whose exposed name another family took ("a.b" and "a_b" both expose sluice_a_b, or a
  // counter and a gauge of one family): listed as comments instead of merged into a family that
  // is not theirs (a wrong TYPE, or two series with the same labels, which Prometheus rejects).
  std::set<std::string> clashes;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, e] : stats_) {
    const auto [base, unused] = SplitName(name);
    if (!Keep(filter, base)) continue;
    const std::string family_name =
        e.family_leaf.empty() ? Cat(e.scope->family_prefix, base.substr(e.scope->prefix.size()))
                              : Cat(e.scope->family_prefix, e.family_leaf);
    const std::string prom = PrometheusName(family_name);
    const char* type = e.kind == Kind::kCounter ? "counter"
                       : e.kind == Kind::kGauge ? "gauge"
                                                : "histogram";
    Family& f = families[prom];
    if (f.type == nullptr) {
      f.type = type;
      f.help = family_name;
    } else if (std::string_view(f.type) != type || f.help != family_name) {
      clashes.insert(Cat("# sluice: ", name, " (", type, ") is not exported: its name ", prom,
                         " is ", f.help, "'s\n"));
      continue;
    }
    Tags tags = e.scope->tags;
    tags.insert(tags.end(), e.own_tags.begin(), e.own_tags.end());
    SortTags(tags);
    const std::string labels = LabelText(tags);
    std::string& out = f.samples;
    if (e.kind == Kind::kCounter) {
      Append(&out, prom, labels, " ", static_cast<const Counter*>(e.stat)->value(), "\n");
      continue;
    }
    if (e.kind == Kind::kGauge) {
      Append(&out, prom, labels, " ", static_cast<const Gauge*>(e.stat)->value(), "\n");
      continue;
    }
    const auto* h = static_cast<const Histogram*>(e.stat);
    uint64_t counts[Histogram::kBuckets];
    h->bucketCounts(counts);
    size_t last = 0;
    uint64_t total = 0;
    for (size_t b = 0; b < Histogram::kBuckets; ++b) {
      if (counts[b] != 0) last = b;
      total += counts[b];
    }
    auto with_le = [&tags](std::string_view le) {
      Tags t = tags;
      t.emplace_back("le", std::string(le));
      return LabelText(t);  // "le" last: tags never use it
    };
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= last; ++b) {
      cumulative += counts[b];
      // Bucket 2 ([1.5, 2) of the first power) holds no integer: it would repeat le="1".
      if (b == 2) continue;
      Append(&out, prom, "_bucket", with_le(Cat(Histogram::UpperBound(b))), " ", cumulative, "\n");
    }
    Append(&out, prom, "_bucket", with_le("+Inf"), " ", total, "\n");
    Append(&out, prom, "_sum", labels, " ", h->sum(), "\n");
    Append(&out, prom, "_count", labels, " ", total, "\n");
  }
  std::string out;
  for (const auto& [prom, f] : families) {
    Append(&out, "# HELP ", prom, " ", f.help, "\n# TYPE ", prom, " ", f.type, "\n", f.samples);
  }
  for (const std::string& c : clashes) out += c;
  return out;
}

int64_t Store::valueOf(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = stats_.find(name);
  if (it == stats_.end()) return 0;
  if (it->second.kind == Kind::kCounter) {
    return static_cast<int64_t>(static_cast<const Counter*>(it->second.stat)->value());
  }
  if (it->second.kind == Kind::kGauge) return static_cast<const Gauge*>(it->second.stat)->value();
  return 0;
}

std::vector<std::pair<std::string, uint64_t>> Store::counterValues() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const auto& [name, e] : stats_) {
    if (e.kind == Kind::kCounter) {
      out.emplace_back(name, static_cast<const Counter*>(e.stat)->value());
    }
  }
  return out;
}

size_t Store::addToCounters(const std::vector<std::pair<std::string, uint64_t>>& values) {
  absl::MutexLock lock(&mu_);
  size_t added = 0;
  for (const auto& [name, n] : values) {
    auto it = stats_.find(name);
    if (it == stats_.end() || it->second.kind != Kind::kCounter) continue;
    static_cast<Counter*>(it->second.stat)->add(n);
    ++added;
  }
  return added;
}

}  // namespace sluice::stats
