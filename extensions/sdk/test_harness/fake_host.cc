// The fake host: every sl_host_* function of api/sluice/plugin/v1/sluice_plugin.h, in the
// header's order (fake_host_test checks both that none is missing and the order). Argument
// checks are the real host's (source/plugin/host_checks.h); what the real host does on the wire
// is recorded on the StreamState instead.

#include <algorithm>
#include <cstring>

#include "extensions/sdk/test_harness/internal.h"
#include "source/plugin/host_checks.h"

using sluice::plugin_test::HeadMap;
using sluice::plugin_test::HostState;
using sluice::plugin_test::Metric;
using sluice::plugin_test::NameEquals;
using sluice::plugin_test::StreamState;
namespace checks = sluice::plugin::checks;
using checks::Valid;
using checks::View;

namespace {

sl_type_str Str(const std::string& s) { return sl_type_str{s.data(), s.size()}; }

HeadMap* MapOf(StreamState& s, sl_type_header_map map) {
  if (map > SL_TRAILERS_RESPONSE) return nullptr;
  HeadMap& m = s.maps[map];
  return m.exists ? &m : nullptr;
}

// Once the stream is over nothing can be changed (the log phase only reads).
bool MayChange(const StreamState& s) { return !s.completed; }

void UpdateMetric(sl_type_metric* m, int64_t delta, bool set, uint64_t sample, bool record) {
  if (m == nullptr) return;
  std::lock_guard<std::mutex> lock(m->host->mu);
  Metric& metric = m->host->metrics[m->name];
  if (record) {
    metric.samples.push_back(sample);
  } else if (set) {
    metric.value = delta;
  } else {
    metric.value += delta;
  }
}

sl_type_result GetPseudo(StreamState& s, sl_type_header_map map, std::string_view name,
                         sl_type_str* value) {
  if (map == SL_HEADERS_REQUEST) {
    HeadMap& m = s.maps[SL_HEADERS_REQUEST];
    if (!m.exists) return SL_ERR_STATE;
    if (name == ":authority") {
      for (const auto& f : m.fields) {
        if (NameEquals(f.name, "host")) {
          *value = Str(f.value);
          return SL_OK;
        }
      }
      return SL_ERR_NOT_FOUND;
    }
    if (name == ":scheme" && m.pseudo.count(":scheme") == 0) m.pseudo[":scheme"] = "http";
    if (name != ":method" && name != ":path" && name != ":scheme") return SL_ERR_NOT_FOUND;
    auto it = m.pseudo.find(std::string(name));
    if (it == m.pseudo.end()) return SL_ERR_NOT_FOUND;
    *value = Str(it->second);
    return SL_OK;
  }
  if (map == SL_HEADERS_RESPONSE && name == ":status") {
    HeadMap& m = s.maps[SL_HEADERS_RESPONSE];
    if (!m.exists) return SL_ERR_STATE;
    auto it = m.pseudo.find(":status");
    if (it == m.pseudo.end()) return SL_ERR_NOT_FOUND;
    *value = Str(it->second);
    return SL_OK;
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result SetPseudo(StreamState& s, sl_type_header_map map, std::string_view name,
                         std::string_view value) {
  if (map == SL_HEADERS_REQUEST) {
    HeadMap& m = s.maps[SL_HEADERS_REQUEST];
    if (!m.exists) return SL_ERR_STATE;
    if (name == ":method") {
      if (!checks::Method(value)) return SL_ERR_INVALID;
    } else if (name == ":path") {
      if (!checks::Path(value)) return SL_ERR_INVALID;
    } else if (name == ":authority") {
      if (!checks::Authority(value)) return SL_ERR_INVALID;
      for (auto it = m.fields.begin(); it != m.fields.end(); ++it) {
        if (NameEquals(it->name, "host")) {
          it->value.assign(value);
          m.fields.erase(std::remove_if(it + 1, m.fields.end(),
                                        [](const auto& f) { return NameEquals(f.name, "host"); }),
                         m.fields.end());
          return SL_OK;
        }
      }
      m.fields.push_back({"Host", std::string(value)});
      return SL_OK;
    } else {
      return SL_ERR_INVALID;  // :scheme and unknown pseudo-headers are not settable
    }
    m.pseudo[std::string(name)].assign(value);
    return SL_OK;
  }
  if (map == SL_HEADERS_RESPONSE && name == ":status") {
    HeadMap& m = s.maps[SL_HEADERS_RESPONSE];
    if (!m.exists) return SL_ERR_STATE;
    uint16_t status = 0;
    if (!checks::Status(value, &status)) return SL_ERR_INVALID;
    m.pseudo[":status"] = std::to_string(status);
    return SL_OK;
  }
  return SL_ERR_INVALID;
}

std::deque<std::string>* Body(sl_type_stream* f, sl_type_body body) {
  if (body > SL_BODY_RESPONSE) return nullptr;
  if (f->current_body[body] != nullptr) return f->current_body[body];
  // Outside the body hook: what STOP_AND_BUFFER kept at this filter.
  StreamState& s = *f->stream;
  auto& d = body == SL_BODY_REQUEST ? s.req : s.resp;
  const size_t pos = body == SL_BODY_REQUEST ? f->index : s.filters.size() - 1 - f->index;
  return d.buffering[pos] ? &d.buffer[pos] : nullptr;
}

void Log(HostState* host, sl_type_log_level level, std::string message) {
  std::lock_guard<std::mutex> lock(host->mu);
  host->logs.push_back({level, std::move(message)});
}

}  // namespace

extern "C" {

// ----- config time -----

void sl_host_config_error(sl_type_config_host* host, sl_type_str message) {
  if (host == nullptr || !Valid(message)) return;
  host->error.assign(View(message));
}

sl_type_result sl_host_metric_define(sl_type_config_host* host, sl_type_metric_kind kind,
                                     sl_type_str name, sl_type_metric** metric_out) {
  if (host == nullptr || metric_out == nullptr || !Valid(name)) return SL_ERR_INVALID;
  if (!checks::MetricKind(kind) || !checks::MetricName(View(name))) return SL_ERR_INVALID;
  const std::string full = "plugin." + host->filter_name + "." + std::string(View(name));
  HostState* h = host->host;
  std::lock_guard<std::mutex> lock(h->mu);
  auto& slot = h->metric_slots[full];
  if (slot) {
    if (slot->kind != kind) return SL_ERR_INVALID;  // same name, other kind
  } else {
    slot = std::make_unique<sl_type_metric>(sl_type_metric{h, full, kind});
    h->metrics[full].kind = kind;
  }
  *metric_out = slot.get();
  return SL_OK;
}

sl_type_result sl_host_metric_define_tagged(sl_type_config_host* host, sl_type_metric_kind kind,
                                            sl_type_str name, const sl_type_header* tags,
                                            size_t tag_count, sl_type_metric** metric_out) {
  if (host == nullptr || metric_out == nullptr || !Valid(name) ||
      (tags == nullptr && tag_count != 0) || tag_count > checks::kMaxMetricTags) {
    return SL_ERR_INVALID;
  }
  std::vector<std::pair<std::string, std::string>> t;
  for (size_t i = 0; i < tag_count; ++i) {
    if (!Valid(tags[i].name) || !Valid(tags[i].value)) return SL_ERR_INVALID;
    if (!checks::MetricTagKey(View(tags[i].name)) || !checks::MetricTagValue(View(tags[i].value))) {
      return SL_ERR_INVALID;
    }
    t.emplace_back(View(tags[i].name), View(tags[i].value));
  }
  std::sort(t.begin(), t.end());
  for (size_t i = 1; i < t.size(); ++i) {
    if (t[i].first == t[i - 1].first) return SL_ERR_INVALID;  // a key twice
  }
  if (!checks::MetricKind(kind) || !checks::MetricName(View(name))) return SL_ERR_INVALID;
  // Recorded as sluice's /stats shows it: name{key="value",...}, keys sorted.
  const std::string base = "plugin." + host->filter_name + "." + std::string(View(name));
  std::string full = base;
  if (!t.empty()) {
    full += "{";
    for (size_t i = 0; i < t.size(); ++i) {
      full += (i ? "," : "") + t[i].first + "=\"" + t[i].second + "\"";
    }
    full += "}";
  }
  HostState* h = host->host;
  std::lock_guard<std::mutex> lock(h->mu);
  // One name has one kind whatever its tags.
  for (const auto& [n, slot] : h->metric_slots) {
    if ((n == base || n.rfind(base + "{", 0) == 0) && slot->kind != kind) return SL_ERR_INVALID;
  }
  auto& slot = h->metric_slots[full];
  if (!slot) {
    slot = std::make_unique<sl_type_metric>(sl_type_metric{h, full, kind});
    h->metrics[full].kind = kind;
  }
  *metric_out = slot.get();
  return SL_OK;
}

size_t sl_host_config_clusters(sl_type_config_host* host, sl_type_str* names, size_t cap) {
  if (host == nullptr) return 0;
  const std::vector<std::string>& clusters = host->host->clusters;
  for (size_t i = 0; names != nullptr && i < cap && i < clusters.size(); ++i) {
    names[i] = Str(clusters[i]);
  }
  return clusters.size();
}

sl_type_result sl_host_config_cluster_exists(sl_type_config_host* host, sl_type_str name) {
  if (host == nullptr || !Valid(name)) return SL_ERR_INVALID;
  for (const std::string& c : host->host->clusters) {
    if (c == View(name)) return SL_OK;
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_config_route_define(sl_type_config_host* host, const sl_type_route_def* def,
                                           const sl_type_route** route_out) {
  if (host == nullptr || def == nullptr || route_out == nullptr || def->size < sizeof(uint32_t)) {
    return SL_ERR_INVALID;
  }
  if (host->routes == nullptr) return SL_ERR_STATE;  // outside sl_on_config_new
  sl_type_route_def d;
  std::memset(&d, 0, sizeof(d));
  std::memcpy(&d, def, std::min<size_t>(def->size, sizeof(d)));
  if (!Valid(d.name) || (d.metadata == nullptr && d.metadata_count != 0) ||
      (d.filter_configs == nullptr && d.filter_config_count != 0)) {
    return SL_ERR_INVALID;
  }
  auto route = std::make_unique<sl_type_route>();
  route->name.assign(View(d.name));
  route->data = d.data;
  for (size_t i = 0; i < d.metadata_count; ++i) {
    const sl_type_header& m = d.metadata[i];
    if (!Valid(m.name) || !Valid(m.value) || m.name.len == 0) return SL_ERR_INVALID;
    if (!checks::RouteMetadataValue(View(m.value))) return SL_ERR_INVALID;
    route->metadata.emplace_back(View(m.name), View(m.value));
  }
  for (size_t i = 0; i < d.filter_config_count; ++i) {
    sl_type_route_filter_config c;
    std::memset(&c, 0, sizeof(c));
    if (d.filter_configs[i].size < sizeof(uint32_t)) return SL_ERR_INVALID;
    std::memcpy(&c, &d.filter_configs[i], std::min<size_t>(d.filter_configs[i].size, sizeof(c)));
    if (!Valid(c.filter_name) || c.filter_name.len == 0 || !Valid(c.value) ||
        !Valid(c.field_path) || !checks::RouteConfigFormat(c.format)) {
      return SL_ERR_INVALID;
    }
    for (const auto& p : route->pending) {
      if (p.filter_name == View(c.filter_name)) return SL_ERR_INVALID;  // one per filter
    }
    route->pending.push_back({std::string(View(c.filter_name)), std::string(View(c.value)),
                              c.format, std::string(View(c.field_path))});
  }
  *route_out = route.get();
  host->routes->push_back(std::move(route));
  return SL_OK;
}

// ----- any thread -----

void sl_host_counter_add(sl_type_metric* m, uint64_t delta) {
  if (m != nullptr && m->kind == SL_METRIC_COUNTER) {
    UpdateMetric(m, static_cast<int64_t>(delta), false, 0, false);
  }
}
void sl_host_gauge_add(sl_type_metric* m, int64_t delta) {
  if (m != nullptr && m->kind == SL_METRIC_GAUGE) UpdateMetric(m, delta, false, 0, false);
}
void sl_host_gauge_set(sl_type_metric* m, int64_t value) {
  if (m != nullptr && m->kind == SL_METRIC_GAUGE) UpdateMetric(m, value, true, 0, false);
}
void sl_host_histogram_record(sl_type_metric* m, uint64_t value) {
  if (m != nullptr && m->kind == SL_METRIC_HISTOGRAM) UpdateMetric(m, 0, false, value, true);
}

namespace {
// The host all log lines go to: the one most recently made (a test has one).
HostState* g_log_host = nullptr;
}  // namespace

int sl_host_log_enabled(sl_type_log_level level) {
  return g_log_host == nullptr || level >= g_log_host->log_level ? 1 : 0;
}

void sl_host_log(sl_type_log_level level, sl_type_str message) {
  if (!Valid(message) || g_log_host == nullptr || level < g_log_host->log_level) return;
  Log(g_log_host, level, std::string(View(message)));
}

sl_type_result sl_host_post(sl_type_stream_ref* ref,
                            void (*fn)(void* ctx, void* filter, sl_type_stream* stream),
                            void* ctx) {
  if (ref == nullptr || fn == nullptr || ref->host == nullptr) return SL_ERR_INVALID;
  ref->refs.fetch_add(1, std::memory_order_relaxed);
  HostState* host = ref->host;
  std::lock_guard<std::mutex> lock(host->mu);
  host->posts.push_back([ref, fn, ctx] {
    StreamState* s = ref->stream;
    if (s != nullptr && !s->completed) {
      sl_type_stream* f = s->filters[ref->index].get();
      fn(ctx, f->instance, f);
    } else {
      fn(ctx, nullptr, nullptr);
    }
    ref->release();
  });
  return SL_OK;
}

void sl_host_stream_ref_release(sl_type_stream_ref* ref) {
  if (ref != nullptr) ref->release();
}

// ----- per stream -----

sl_type_stream_ref* sl_host_stream_ref(sl_type_stream* stream) {
  if (stream == nullptr) return nullptr;
  StreamState& s = *stream->stream;
  auto* ref = new sl_type_stream_ref();
  ref->stream = &s;
  ref->host = s.host;
  ref->index = stream->index;
  ref->refs.fetch_add(1, std::memory_order_relaxed);  // the stream's own, dropped when it goes
  s.refs.push_back(ref);
  return ref;
}

void sl_host_stream_info(sl_type_stream* stream, sl_type_stream_info* out) {
  if (stream == nullptr || out == nullptr || out->size == 0) return;
  StreamState& s = *stream->stream;
  sl_type_stream_info info;
  std::memset(&info, 0, sizeof(info));
  info.size = sizeof(info);
  info.stream_id = s.id;
  info.connection_id = s.id;
  info.protocol = s.protocol;
  info.downstream_remote = s.remote;
  info.downstream_local.size = sizeof(sl_type_address);
  info.downstream_local.family = 4;
  info.downstream_local.ip[0] = 127;
  info.downstream_local.ip[3] = 1;
  info.downstream_local.port = 8080;
  info.filter_name = Str(s.chain->filters[stream->index]->name);
  if (s.upstream) {
    info.route_name = Str(s.upstream->route_name);
    info.cluster_name = Str(s.upstream->cluster);
  }
  const uint32_t their_size = out->size;
  std::memcpy(out, &info, std::min<size_t>(out->size, sizeof(info)));
  out->size = their_size;
}

sl_type_result sl_host_header_get(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  size_t index, sl_type_str* value) {
  if (stream == nullptr || value == nullptr || !Valid(name)) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  const std::string_view n = View(name);
  if (checks::IsPseudo(n)) {
    if (index != 0) return SL_ERR_NOT_FOUND;
    return GetPseudo(s, map, n, value);
  }
  HeadMap* m = MapOf(s, map);
  if (m == nullptr) return SL_ERR_STATE;
  size_t seen = 0;
  for (const auto& f : m->fields) {
    if (!NameEquals(f.name, n)) continue;
    if (seen++ == index) {
      *value = Str(f.value);
      return SL_OK;
    }
  }
  return SL_ERR_NOT_FOUND;
}

size_t sl_host_header_count(sl_type_stream* stream, sl_type_header_map map) {
  if (stream == nullptr) return 0;
  HeadMap* m = MapOf(*stream->stream, map);
  return m == nullptr ? 0 : m->fields.size();
}

sl_type_result sl_host_header_at(sl_type_stream* stream, sl_type_header_map map, size_t index,
                                 sl_type_str* name, sl_type_str* value) {
  if (stream == nullptr || name == nullptr || value == nullptr) return SL_ERR_INVALID;
  HeadMap* m = MapOf(*stream->stream, map);
  if (m == nullptr) return SL_ERR_STATE;
  if (index >= m->fields.size()) return SL_ERR_NOT_FOUND;
  *name = Str(m->fields[index].name);
  *value = Str(m->fields[index].value);
  return SL_OK;
}

sl_type_result sl_host_header_list(sl_type_stream* stream, sl_type_header_map map,
                                   sl_type_header* out, size_t cap, size_t* count) {
  if (count != nullptr) *count = 0;
  if (stream == nullptr || count == nullptr || (out == nullptr && cap != 0)) return SL_ERR_INVALID;
  HeadMap* m = MapOf(*stream->stream, map);
  if (m == nullptr) return SL_ERR_STATE;
  for (size_t i = 0; i < cap && i < m->fields.size(); ++i) {
    out[i] = sl_type_header{Str(m->fields[i].name), Str(m->fields[i].value)};
  }
  *count = m->fields.size();
  return SL_OK;
}

sl_type_result sl_host_header_set(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  sl_type_str value) {
  if (stream == nullptr || !Valid(name) || !Valid(value)) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (!MayChange(s)) return s.rejectedCall(SL_ERR_STATE);
  const std::string_view n = View(name), v = View(value);
  if (checks::IsPseudo(n)) {
    const sl_type_result r = SetPseudo(s, map, n, v);
    return r == SL_OK ? r : s.rejectedCall(r);
  }
  if (!checks::HeaderName(n) || !checks::HeaderValue(v)) return s.rejectedCall(SL_ERR_INVALID);
  HeadMap* m = MapOf(s, map);
  if (m == nullptr) return s.rejectedCall(SL_ERR_STATE);
  auto first = std::find_if(m->fields.begin(), m->fields.end(),
                            [n](const auto& f) { return NameEquals(f.name, n); });
  if (first == m->fields.end()) {
    m->fields.push_back({std::string(n), std::string(v)});
    return SL_OK;
  }
  first->name.assign(n);
  first->value.assign(v);
  m->fields.erase(std::remove_if(first + 1, m->fields.end(),
                                 [n](const auto& f) { return NameEquals(f.name, n); }),
                  m->fields.end());
  return SL_OK;
}

sl_type_result sl_host_header_add(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  sl_type_str value) {
  if (stream == nullptr || !Valid(name) || !Valid(value)) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (!MayChange(s)) return s.rejectedCall(SL_ERR_STATE);
  const std::string_view n = View(name), v = View(value);
  if (!checks::HeaderName(n) || !checks::HeaderValue(v)) return s.rejectedCall(SL_ERR_INVALID);
  HeadMap* m = MapOf(s, map);
  if (m == nullptr) return s.rejectedCall(SL_ERR_STATE);
  m->fields.push_back({std::string(n), std::string(v)});
  return SL_OK;
}

sl_type_result sl_host_header_remove(sl_type_stream* stream, sl_type_header_map map,
                                     sl_type_str name, size_t* removed) {
  if (removed != nullptr) *removed = 0;
  if (stream == nullptr || !Valid(name)) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (!MayChange(s)) return s.rejectedCall(SL_ERR_STATE);
  const std::string_view n = View(name);
  if (checks::IsPseudo(n)) return s.rejectedCall(SL_ERR_INVALID);
  HeadMap* m = MapOf(s, map);
  if (m == nullptr) return s.rejectedCall(SL_ERR_STATE);
  const size_t before = m->fields.size();
  m->fields.erase(std::remove_if(m->fields.begin(), m->fields.end(),
                                 [n](const auto& f) { return NameEquals(f.name, n); }),
                  m->fields.end());
  if (removed != nullptr) *removed = before - m->fields.size();
  return SL_OK;
}

sl_type_result sl_host_trailers_add(sl_type_stream* stream, sl_type_header_map which,
                                    sl_type_str name, sl_type_str value) {
  if (stream == nullptr || !Valid(name) || !Valid(value) ||
      (which != SL_TRAILERS_REQUEST && which != SL_TRAILERS_RESPONSE)) {
    return SL_ERR_INVALID;
  }
  StreamState& s = *stream->stream;
  if (!MayChange(s)) return s.rejectedCall(SL_ERR_STATE);
  const std::string_view n = View(name), v = View(value);
  if (!checks::HeaderName(n) || !checks::HeaderValue(v)) return s.rejectedCall(SL_ERR_INVALID);
  HeadMap& m = s.maps[which];
  if (!m.exists) {
    // None yet: only from this filter's last body hook of that direction.
    const int dir = which == SL_TRAILERS_REQUEST ? 1 : 2;
    if (stream->in_hook != dir || !stream->in_last_body_hook) return s.rejectedCall(SL_ERR_STATE);
    m.exists = true;
    stream->made_trailers = true;
  }
  m.fields.push_back({std::string(n), std::string(v)});
  return SL_OK;
}

sl_type_result sl_host_trailers_expect(sl_type_stream* stream, sl_type_header_map which) {
  if (stream == nullptr || (which != SL_TRAILERS_REQUEST && which != SL_TRAILERS_RESPONSE)) {
    return SL_ERR_INVALID;
  }
  StreamState& s = *stream->stream;
  const bool request = which == SL_TRAILERS_REQUEST;
  if (!MayChange(s) || stream->in_hook != (request ? 1 : 2) || !stream->in_headers_hook ||
      stream->headers_end) {
    return s.rejectedCall(SL_ERR_STATE);
  }
  // The host removes Content-Length so that HTTP/1 frames the body chunked (trailers need it).
  auto& fields = s.maps[request ? SL_HEADERS_REQUEST : SL_HEADERS_RESPONSE].fields;
  fields.erase(std::remove_if(fields.begin(), fields.end(),
                              [](const auto& f) { return NameEquals(f.name, "content-length"); }),
               fields.end());
  return SL_OK;
}

size_t sl_host_body_length(sl_type_stream* stream, sl_type_body body) {
  if (stream == nullptr) return 0;
  const std::deque<std::string>* b = Body(stream, body);
  size_t n = 0;
  if (b != nullptr) {
    for (const auto& c : *b) n += c.size();
  }
  return n;
}

size_t sl_host_body_chunks(sl_type_stream* stream, sl_type_body body, sl_type_str* chunks,
                           size_t cap) {
  if (stream == nullptr) return 0;
  const std::deque<std::string>* b = Body(stream, body);
  if (b == nullptr) return 0;
  for (size_t i = 0; chunks != nullptr && i < cap && i < b->size(); ++i) chunks[i] = Str((*b)[i]);
  return b->size();
}

namespace {
std::deque<std::string>* MutableBody(sl_type_stream* stream, sl_type_body body) {
  if (body > SL_BODY_RESPONSE || !MayChange(*stream->stream)) return nullptr;
  return Body(stream, body);
}
}  // namespace

sl_type_result sl_host_body_append(sl_type_stream* stream, sl_type_body body, sl_type_str data) {
  if (stream == nullptr || !Valid(data)) return SL_ERR_INVALID;
  auto* b = MutableBody(stream, body);
  if (b == nullptr) return stream->stream->rejectedCall(SL_ERR_STATE);
  if (data.len != 0) b->emplace_back(View(data));
  return SL_OK;
}

sl_type_result sl_host_body_prepend(sl_type_stream* stream, sl_type_body body, sl_type_str data) {
  if (stream == nullptr || !Valid(data)) return SL_ERR_INVALID;
  auto* b = MutableBody(stream, body);
  if (b == nullptr) return stream->stream->rejectedCall(SL_ERR_STATE);
  if (data.len != 0) b->emplace_front(View(data));
  return SL_OK;
}

sl_type_result sl_host_body_drain(sl_type_stream* stream, sl_type_body body, size_t len) {
  if (stream == nullptr) return SL_ERR_INVALID;
  auto* b = MutableBody(stream, body);
  if (b == nullptr) return stream->stream->rejectedCall(SL_ERR_STATE);
  while (len > 0 && !b->empty()) {
    std::string& front = b->front();
    if (front.size() <= len) {
      len -= front.size();
      b->pop_front();
    } else {
      front.erase(0, len);
      len = 0;
    }
  }
  return SL_OK;
}

sl_type_result sl_host_body_replace(sl_type_stream* stream, sl_type_body body, sl_type_str data) {
  if (stream == nullptr || !Valid(data)) return SL_ERR_INVALID;
  auto* b = MutableBody(stream, body);
  if (b == nullptr) return stream->stream->rejectedCall(SL_ERR_STATE);
  b->clear();
  if (data.len != 0) b->emplace_back(View(data));
  return SL_OK;
}

namespace {
sl_type_result Continue(sl_type_stream* stream, bool request) {
  if (stream == nullptr) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (s.completed) return s.rejectedCall(SL_ERR_STATE);
  if (stream->in_hook == (request ? 1 : 2)) {
    // The real host ends the stream once the hook returns; recorded, and failed here.
    s.misuses.push_back("misuse_continue_inside_hook");
    s.fail(stream->index, "misuse_continue_inside_hook");
    return SL_OK;
  }
  auto& d = request ? s.req : s.resp;
  const size_t pos = request ? stream->index : s.filters.size() - 1 - stream->index;
  if (!d.held[pos] && !d.buffering[pos]) return s.rejectedCall(SL_ERR_STATE);
  s.resume(d, stream->index);
  return SL_OK;
}
}  // namespace

sl_type_result sl_host_continue_request(sl_type_stream* stream) { return Continue(stream, true); }

sl_type_result sl_host_continue_response(sl_type_stream* stream) { return Continue(stream, false); }

sl_type_result sl_host_send_response(sl_type_stream* stream, uint32_t status,
                                     const sl_type_header* headers, size_t header_count,
                                     sl_type_str body, sl_type_str details) {
  if (stream == nullptr || !Valid(body) || !Valid(details) ||
      (headers == nullptr && header_count != 0)) {
    return SL_ERR_INVALID;
  }
  StreamState& s = *stream->stream;
  if (s.completed || s.local_reply) return s.rejectedCall(SL_ERR_STATE);
  if (s.maps[SL_HEADERS_RESPONSE].exists) {
    s.misuses.push_back("misuse_refused_reply");
    s.reset = true;  // from a response hook the real host resets the stream
    return s.rejectedCall(SL_ERR_STATE);
  }
  if (!checks::LocalReplyStatus(status)) return s.rejectedCall(SL_ERR_INVALID);
  for (size_t i = 0; i < header_count; ++i) {
    if (!Valid(headers[i].name) || !Valid(headers[i].value) ||
        !checks::HeaderName(View(headers[i].name)) ||
        !checks::HeaderValue(View(headers[i].value))) {
      return s.rejectedCall(SL_ERR_INVALID);
    }
  }
  sluice::plugin_test::LocalReply reply;
  reply.status = status;
  for (size_t i = 0; i < header_count; ++i) {
    if (checks::IsFramingHeader(View(headers[i].name))) continue;
    reply.headers.push_back(
        {std::string(View(headers[i].name)), std::string(View(headers[i].value))});
  }
  reply.body.assign(View(body));
  reply.details.assign(View(details));
  reply.filter = stream->index;
  s.sendLocalReply(stream->index, std::move(reply));
  return SL_OK;
}

void sl_host_reset_stream(sl_type_stream* stream) {
  if (stream == nullptr || stream->stream->completed) return;
  stream->stream->reset = true;
}

void sl_host_fail_stream(sl_type_stream* stream, sl_type_str reason) {
  if (stream == nullptr || stream->stream->completed) return;
  stream->stream->fail(stream->index,
                       Valid(reason) ? std::string(View(reason)) : std::string("(no reason)"));
}

sl_type_result sl_host_metadata_set(sl_type_stream* stream, sl_type_str key, sl_type_str value) {
  if (stream == nullptr || !checks::StreamMetadataKey(key) || !Valid(value)) return SL_ERR_INVALID;
  stream->stream->metadata[std::string(View(key))].assign(View(value));
  return SL_OK;
}

sl_type_result sl_host_metadata_get(sl_type_stream* stream, sl_type_str key, sl_type_str* value) {
  if (stream == nullptr || !Valid(key) || value == nullptr) return SL_ERR_INVALID;
  auto& md = stream->stream->metadata;
  auto it = md.find(std::string(View(key)));
  if (it == md.end()) return SL_ERR_NOT_FOUND;
  *value = Str(it->second);
  return SL_OK;
}

sl_type_result sl_host_timer_start(sl_type_stream* stream, uint64_t token, uint64_t delay_ms) {
  if (stream == nullptr) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (s.completed) return s.rejectedCall(SL_ERR_STATE);
  stream->timers[token] = {s.host->now + delay_ms, ++s.host->timer_seq};
  return SL_OK;
}

sl_type_result sl_host_timer_cancel(sl_type_stream* stream, uint64_t token) {
  if (stream == nullptr) return SL_ERR_INVALID;
  return stream->timers.erase(token) != 0 ? SL_OK : SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_callout(sl_type_stream* stream, sl_type_str cluster,
                               const sl_type_header* headers, size_t header_count, sl_type_str body,
                               uint64_t timeout_ms, uint64_t* callout_id) {
  if (callout_id != nullptr) *callout_id = 0;
  if (stream == nullptr || callout_id == nullptr || !Valid(cluster) || !Valid(body) ||
      (headers == nullptr && header_count != 0)) {
    return SL_ERR_INVALID;
  }
  StreamState& s = *stream->stream;
  // As the host (source/plugin/filter_callout.cc): a completion needs somewhere to go; at most
  // SL_CALLOUT_MAX_IN_FLIGHT per filter; no CONNECT; an unknown cluster is NOT_FOUND, uncounted.
  if (s.completed ||
      s.chain->filters[stream->index]->plugin->impl().hooks.callout_done == nullptr) {
    return s.rejectedCall(SL_ERR_STATE);
  }
  const size_t in_flight = std::count_if(
      s.callouts.begin(), s.callouts.end(),
      [&](const sluice::plugin_test::Callout& c) { return c.filter == stream->index; });
  if (in_flight >= SL_CALLOUT_MAX_IN_FLIGHT) return s.rejectedCall(SL_ERR_LIMIT);
  sluice::plugin_test::Callout c;
  bool method = false, path = false;
  for (size_t i = 0; i < header_count; ++i) {
    if (!Valid(headers[i].name) || !Valid(headers[i].value)) return s.rejectedCall(SL_ERR_INVALID);
    const std::string_view n = View(headers[i].name), v = View(headers[i].value);
    if (n == ":method") {
      method = checks::Method(v) && v != "CONNECT";
      if (!method) return s.rejectedCall(SL_ERR_INVALID);
    } else if (n == ":path") {
      path = checks::Path(v);
      if (!path) return s.rejectedCall(SL_ERR_INVALID);
    } else if (n == ":authority") {
      if (!checks::Authority(v)) return s.rejectedCall(SL_ERR_INVALID);
    } else if (!checks::HeaderName(n) || !checks::HeaderValue(v)) {
      return s.rejectedCall(SL_ERR_INVALID);
    }
    c.headers.push_back({std::string(n), std::string(v)});
  }
  if (!method || !path) return s.rejectedCall(SL_ERR_INVALID);
  const auto& clusters = s.host->clusters;
  if (std::find(clusters.begin(), clusters.end(), View(cluster)) == clusters.end()) {
    return SL_ERR_NOT_FOUND;
  }
  c.id = s.next_callout++;
  c.filter = stream->index;
  c.cluster.assign(View(cluster));
  c.body.assign(View(body));
  c.timeout_ms = timeout_ms != 0 ? timeout_ms : SL_CALLOUT_DEFAULT_TIMEOUT_MS;
  s.callouts.push_back(c);
  *callout_id = c.id;
  return SL_OK;
}

sl_type_result sl_host_callout_cancel(sl_type_stream* stream, uint64_t callout_id) {
  if (stream == nullptr) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  auto it = std::find_if(s.callouts.begin(), s.callouts.end(),
                         [&](const sluice::plugin_test::Callout& c) {
                           return c.id == callout_id && c.filter == stream->index;
                         });
  if (it == s.callouts.end()) return SL_ERR_NOT_FOUND;
  s.callouts.erase(it);
  return SL_OK;
}

sl_type_result sl_host_route_config(sl_type_stream* stream, void** route_config) {
  if (stream == nullptr || route_config == nullptr) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (!s.maps[SL_HEADERS_REQUEST].exists) return s.rejectedCall(SL_ERR_STATE);
  const sl_type_route* route = s.chooseRoute();
  if (route == nullptr) return SL_ERR_NOT_FOUND;
  const auto* self = s.chain->filters[stream->index].get();
  for (const auto& c : route->filter_configs) {
    if (c.filter == self) {
      *route_config = c.config;
      return SL_OK;
    }
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_route_metadata_get(sl_type_stream* stream, sl_type_str key,
                                          sl_type_str* value) {
  if (stream == nullptr || !Valid(key) || value == nullptr) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (!s.maps[SL_HEADERS_REQUEST].exists) return s.rejectedCall(SL_ERR_STATE);
  const sl_type_route* route = s.chooseRoute();
  if (route == nullptr) return SL_ERR_NOT_FOUND;
  for (const auto& [k, v] : route->metadata) {
    if (k == View(key)) {
      *value = Str(v);
      return SL_OK;
    }
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_route_data(sl_type_stream* stream, void** data) {
  if (stream == nullptr || data == nullptr) return SL_ERR_INVALID;
  StreamState& s = *stream->stream;
  if (!s.maps[SL_HEADERS_REQUEST].exists) return s.rejectedCall(SL_ERR_STATE);
  const sl_type_route* route = s.chooseRoute();
  if (route == nullptr || route->owner != s.chain->filters[stream->index].get()) {
    return SL_ERR_NOT_FOUND;
  }
  *data = route->data;
  return SL_OK;
}

sl_type_result sl_host_route_clear(sl_type_stream* stream) {
  if (stream == nullptr) return SL_ERR_INVALID;
  stream->stream->route_chosen = false;
  stream->stream->route = nullptr;
  return SL_OK;
}

sl_type_result sl_host_set_upstream(sl_type_stream* stream,
                                    const sl_type_upstream_request* request) {
  if (stream == nullptr || request == nullptr || request->size < sizeof(uint32_t) ||
      !Valid(request->cluster)) {
    return SL_ERR_INVALID;
  }
  StreamState& s = *stream->stream;
  if (s.completed || s.maps[SL_HEADERS_RESPONSE].exists || s.local_reply) {
    return s.rejectedCall(SL_ERR_STATE);
  }
  sl_type_upstream_request r;
  std::memset(&r, 0, sizeof(r));
  std::memcpy(&r, request, std::min<size_t>(request->size, sizeof(r)));
  if (!Valid(r.route_name) || !Valid(r.hash_key)) return s.rejectedCall(SL_ERR_INVALID);
  const auto& clusters = s.host->clusters;
  if (std::find(clusters.begin(), clusters.end(), View(r.cluster)) == clusters.end()) {
    return SL_ERR_NOT_FOUND;
  }
  sluice::plugin_test::Upstream u;
  u.cluster.assign(View(r.cluster));
  u.route_name.assign(View(r.route_name));
  u.timeout_ms = r.timeout_ms;
  u.per_try_timeout_ms = r.per_try_timeout_ms;
  u.idle_timeout_ms = r.idle_timeout_ms;
  u.hash_key.assign(View(r.hash_key));
  u.flags = r.flags;
  u.response_headers_timeout_ms = r.response_headers_timeout_ms;
  u.request_buffer_bytes = r.request_buffer_bytes;
  u.connect_timeout_ms = r.connect_timeout_ms;
  u.send_timeout_ms = r.send_timeout_ms;
  s.upstream = std::move(u);
  return SL_OK;
}

sl_type_result sl_host_upstream_retry_enable(sl_type_stream* stream,
                                             const sl_type_retry_options* options) {
  if (stream == nullptr || options == nullptr || options->size < sizeof(uint32_t)) {
    return SL_ERR_INVALID;
  }
  StreamState& s = *stream->stream;
  const auto& hooks = s.chain->filters[stream->index]->plugin->impl().hooks;
  if (s.completed || s.maps[SL_HEADERS_RESPONSE].exists || s.local_reply || s.retry.has_value() ||
      hooks.upstream_retry == nullptr) {
    return s.rejectedCall(SL_ERR_STATE);
  }
  sl_type_retry_options o;
  std::memset(&o, 0, sizeof(o));
  std::memcpy(&o, options, std::min<size_t>(options->size, sizeof(o)));
  sluice::plugin_test::RetryOptions r;
  r.per_try_timeout_ms = o.per_try_timeout_ms;
  r.max_replay_bytes = o.max_replay_bytes;
  r.flags = o.flags;
  r.filter = stream->index;
  s.retry = r;
  return SL_OK;
}

}  // extern "C"

namespace sluice::plugin_test {
// Log lines go to the host made last (sl_host_log has no handle to say which).
void SetLogHost(HostState* host) { g_log_host = host; }
}  // namespace sluice::plugin_test
