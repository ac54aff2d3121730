#include "source/common/stats.h"

#include <algorithm>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace sluice::stats {

namespace {

// `{k="v",...}` for sorted tags, values escaped as Prometheus wants (\\, \", \n); "" for none.
std::string LabelText(Tags& tags) {
  if (tags.empty()) return "";
  std::sort(tags.begin(), tags.end());
  std::string out = "{";
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i != 0) out.push_back(',');
    absl::StrAppend(&out, tags[i].first, "=\"");
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

// A stored key splits into its name and its label text (which starts at the first '{': names
// never contain one).
// (absl::string_view: what absl::StrCat takes in this build.)
std::pair<absl::string_view, absl::string_view> SplitKey(absl::string_view key) {
  const size_t brace = key.find('{');
  if (brace == absl::string_view::npos) return {key, {}};
  return {key.substr(0, brace), key.substr(brace)};
}

std::string PrometheusName(absl::string_view name) {
  std::string out(name.data(), name.size());
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == ':';
    if (!ok) c = '_';
  }
  if (!out.empty() && out[0] >= '0' && out[0] <= '9') out.insert(out.begin(), '_');
  return out;
}

// `labels` (a stored label text, or "") with one more label appended.
std::string WithLabel(absl::string_view labels, absl::string_view extra) {
  if (labels.empty()) return absl::StrCat("{", extra, "}");
  return absl::StrCat(labels.substr(0, labels.size() - 1), ",", extra, "}");
}

}  // namespace

Counter& Store::counter(const std::string& name, Tags tags) {
  return counter(name + LabelText(tags));
}
Gauge& Store::gauge(const std::string& name, Tags tags) { return gauge(name + LabelText(tags)); }
Histogram& Store::histogram(const std::string& name, Tags tags) {
  return histogram(name + LabelText(tags));
}

void SetThreadSlot(uint32_t worker_index) { internal::t_slot = 1 + worker_index % (kMaxSlots - 1); }

Counter& Store::counter(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = counters_[name];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Store::gauge(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = gauges_[name];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Store::histogram(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = histograms_[name];
  if (!slot) slot = std::make_unique<Histogram>();
  return *slot;
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

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (const auto& s : slots_) {
    for (const auto& b : s.buckets) n += b.load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t Histogram::sum() const {
  uint64_t n = 0;
  for (const auto& s : slots_) n += s.sum.load(std::memory_order_relaxed);
  return n;
}

void Histogram::bucketCounts(uint64_t (&out)[kBuckets]) const {
  for (size_t b = 0; b < kBuckets; ++b) out[b] = 0;
  for (const auto& s : slots_) {
    for (size_t b = 0; b < kBuckets; ++b) out[b] += s.buckets[b].load(std::memory_order_relaxed);
  }
}

uint64_t Histogram::quantile(double q) const {
  uint64_t merged[kBuckets] = {};
  uint64_t total = 0;
  for (const auto& s : slots_) {
    for (size_t b = 0; b < kBuckets; ++b) {
      const uint64_t n = s.buckets[b].load(std::memory_order_relaxed);
      merged[b] += n;
      total += n;
    }
  }
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

std::string Store::dumpText() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> lines;
  for (const auto& [name, c] : counters_) lines[name] = absl::StrCat(c->value());
  for (const auto& [name, g] : gauges_) lines[name] = absl::StrCat(g->value());
  for (const auto& [key, h] : histograms_) {
    const auto [name, labels] = SplitKey(key);
    lines[absl::StrCat(name, ".count", labels)] = absl::StrCat(h->count());
    lines[absl::StrCat(name, ".sum", labels)] = absl::StrCat(h->sum());
    lines[absl::StrCat(name, ".p50", labels)] = absl::StrCat(h->quantile(0.5));
    lines[absl::StrCat(name, ".p90", labels)] = absl::StrCat(h->quantile(0.9));
    lines[absl::StrCat(name, ".p99", labels)] = absl::StrCat(h->quantile(0.99));
  }
  std::string out;
  for (const auto& [name, value] : lines) absl::StrAppend(&out, name, " ", value, "\n");
  return out;
}

std::string Store::dumpPrometheus() const {
  // One family per exposed name: its type, its stat name for HELP, and its sample lines.
  struct Family {
    const char* type = nullptr;
    std::string help;
    std::string samples;
  };
  std::map<std::string, Family> families;
  // Stats whose exposed name another stat took ("a.b" and "a_b" both expose a_b): listed as
  // comments instead of merged into a family that is not theirs (a wrong TYPE, or two series
  // with the same name and labels, which Prometheus rejects).
  std::set<std::string> clashes;
  absl::MutexLock lock(&mu_);
  auto family = [&](absl::string_view name, const char* type) -> Family* {
    Family& f = families[PrometheusName(name)];
    if (f.type == nullptr) {
      f.type = type;
      f.help.assign(name.data(), name.size());
    } else if (std::string_view(f.type) != type || f.help != name) {
      clashes.insert(absl::StrCat("# sluice: ", name, " (", type, ") is not exported: its name ",
                                  PrometheusName(name), " is ", f.help, "'s\n"));
      return nullptr;
    }
    return &f;
  };
  for (const auto& [key, c] : counters_) {
    const auto [name, labels] = SplitKey(key);
    if (Family* f = family(name, "counter")) {
      absl::StrAppend(&f->samples, PrometheusName(name), labels, " ", c->value(), "\n");
    }
  }
  for (const auto& [key, g] : gauges_) {
    const auto [name, labels] = SplitKey(key);
    if (Family* f = family(name, "gauge")) {
      absl::StrAppend(&f->samples, PrometheusName(name), labels, " ", g->value(), "\n");
    }
  }
  for (const auto& [key, h] : histograms_) {
    const auto [name, labels] = SplitKey(key);
    const std::string prom = PrometheusName(name);
    Family* f = family(name, "histogram");
    if (f == nullptr) continue;
    std::string& out = f->samples;
    uint64_t counts[Histogram::kBuckets];
    h->bucketCounts(counts);
    size_t last = 0;
    for (size_t b = 0; b < Histogram::kBuckets; ++b) {
      if (counts[b] != 0) last = b;
    }
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= last; ++b) {
      cumulative += counts[b];
      // Bucket 2 ([1.5, 2) of the first power) holds no integer: it would repeat le="1".
      if (b == 2) continue;
      absl::StrAppend(&out, prom, "_bucket",
                      WithLabel(labels, absl::StrCat("le=\"", Histogram::UpperBound(b), "\"")), " ",
                      cumulative, "\n");
    }
    const uint64_t total = h->count();
    absl::StrAppend(&out, prom, "_bucket", WithLabel(labels, "le=\"+Inf\""), " ", total, "\n");
    absl::StrAppend(&out, prom, "_sum", labels, " ", h->sum(), "\n");
    absl::StrAppend(&out, prom, "_count", labels, " ", total, "\n");
  }
  std::string out;
  for (const auto& [prom, f] : families) {
    absl::StrAppend(&out, "# HELP ", prom, " ", f.help, "\n# TYPE ", prom, " ", f.type, "\n",
                    f.samples);
  }
  for (const std::string& c : clashes) out += c;
  return out;
}

int64_t Store::valueOf(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  if (auto it = counters_.find(name); it != counters_.end()) {
    return static_cast<int64_t>(it->second->value());
  }
  if (auto it = gauges_.find(name); it != gauges_.end()) return it->second->value();
  return 0;
}

}  // namespace sluice::stats
