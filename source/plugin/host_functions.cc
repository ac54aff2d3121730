// The host functions of the plugin ABI (sl_host_*), exported from the sluice executable for
// plugins to call. Each checks its arguments: a plugin's mistake is an error code and a
// counter (plugin.<name>.rejected_calls), never a crash of the process or a malformed message
// on the wire.

#include <arpa/inet.h>

#include <array>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "source/common/crash_handler.h"
#include "source/common/logging.h"
#include "source/http/http1/parser.h"
#include "source/plugin/filter.h"
#include "source/plugin/host_checks.h"
#include "source/plugin/host_types.h"
#include "source/plugin/metrics.h"

using sluice::plugin::PluginFilter;

namespace {

namespace checks = sluice::plugin::checks;
using checks::Valid;
using checks::View;
sl_type_str Str(std::string_view s) { return sl_type_str{s.data(), s.size()}; }

sluice::log::Level LogLevel(sl_type_log_level level) {
  switch (level) {
    case SL_LOG_TRACE:
      return sluice::log::Level::kTrace;
    case SL_LOG_DEBUG:
      return sluice::log::Level::kDebug;
    case SL_LOG_INFO:
      return sluice::log::Level::kInfo;
    case SL_LOG_WARN:
      return sluice::log::Level::kWarn;
    default:
      return sluice::log::Level::kError;
  }
}

void FillAddress(const sluice::network::Address& a, sl_type_address& out) {
  out.family = 0;
  out.port = 0;
  std::memset(out.ip, 0, sizeof(out.ip));
  const sockaddr* sa = a.sockaddr_ptr();
  if (a.length() == 0) return;
  if (sa->sa_family == AF_INET) {
    out.family = 4;
    std::memcpy(out.ip, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    out.family = 6;
    std::memcpy(out.ip, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
  }
  out.port = a.port();
}

// The map `map` names for this filter, or nullptr (SL_ERR_STATE) when it does not exist yet.
sluice::http::HeaderMap* MapOf(PluginFilter& f, sl_type_header_map map) {
  switch (map) {
    case SL_HEADERS_REQUEST:
      return f.requestHead() != nullptr ? &f.requestHead()->headers : nullptr;
    case SL_HEADERS_RESPONSE:
      return f.responseHead() != nullptr ? &f.responseHead()->headers : nullptr;
    case SL_TRAILERS_REQUEST:
      return f.requestTrailers();
    case SL_TRAILERS_RESPONSE:
      return f.responseTrailers();
    default:
      return nullptr;
  }
}

using checks::IsPseudo;

// Reads a pseudo-header: SL_OK, SL_ERR_NOT_FOUND (no such pseudo-header for this map) or
// SL_ERR_STATE.
sl_type_result GetPseudo(PluginFilter& f, sl_type_header_map map, std::string_view name,
                         std::string_view& value) {
  if (map == SL_HEADERS_REQUEST) {
    sluice::http::RequestHead* head = f.requestHead();
    if (head == nullptr) return SL_ERR_STATE;
    if (name == ":method") {
      value = head->method;
    } else if (name == ":path") {
      value = head->path;
    } else if (name == ":scheme") {
      value = !head->scheme.empty() ? head->scheme : f.decoder().streamInfo().scheme();
    } else if (name == ":authority") {
      value = head->authority();
      if (value.empty()) return SL_ERR_NOT_FOUND;
    } else {
      return SL_ERR_NOT_FOUND;
    }
    return SL_OK;
  }
  if (map == SL_HEADERS_RESPONSE && name == ":status") {
    sluice::http::ResponseHead* head = f.responseHead();
    if (head == nullptr) return SL_ERR_STATE;
    // Three digits from a static table: a view that outlives the hook, no allocation.
    static const auto* const kCodes = [] {
      auto* t = new std::array<char[4], 1000>();
      for (int i = 0; i < 1000; ++i) std::snprintf((*t)[i], 4, "%03d", i);
      return t;
    }();
    value = std::string_view((*kCodes)[head->status % 1000], 3);
    return SL_OK;
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result SetPseudo(PluginFilter& f, sl_type_header_map map, std::string_view name,
                         std::string_view value) {
  if (map == SL_HEADERS_REQUEST) {
    sluice::http::RequestHead* head = f.requestHead();
    if (head == nullptr) return SL_ERR_STATE;
    if (name == ":method") {
      if (!checks::Method(value)) return SL_ERR_INVALID;
      head->method = head->headers.keep(value);
    } else if (name == ":path") {
      if (!checks::Path(value)) return SL_ERR_INVALID;
      head->path = head->headers.keep(value);
    } else if (name == ":authority") {
      if (!checks::Authority(value)) return SL_ERR_INVALID;
      head->headers.set("Host", value);
    } else {
      return SL_ERR_INVALID;  // :scheme and unknown pseudo-headers are not settable
    }
    return SL_OK;
  }
  if (map == SL_HEADERS_RESPONSE && name == ":status") {
    sluice::http::ResponseHead* head = f.responseHead();
    if (head == nullptr) return SL_ERR_STATE;
    uint16_t status = 0;
    if (!checks::Status(value, &status)) return SL_ERR_INVALID;
    head->status = status;
    head->reason = {};
    return SL_OK;
  }
  return SL_ERR_INVALID;
}

bool MayChange(PluginFilter& f) { return !f.completed() && !f.observing(); }

}  // namespace

extern "C" {

// ----- config time -----

void sl_host_config_error(sl_type_config_host* host, sl_type_str message) {
  if (host == nullptr || !Valid(message)) return;
  // Bounded and escaped: it is printed (validate, start-up) as it stands.
  host->error = sluice::log::EscapeUntrusted(View(message), sluice::plugin::kMaxConfigErrorBytes);
}

sl_type_result sl_host_metric_define(sl_type_config_host* host, sl_type_metric_kind kind,
                                     sl_type_str name, sl_type_metric** metric_out) {
  if (host == nullptr || metric_out == nullptr || !Valid(name) || host->metrics == nullptr) {
    return SL_ERR_INVALID;
  }
  return host->metrics->define(host->filter_name, kind, View(name), {}, metric_out);
}

sl_type_result sl_host_metric_define_tagged(sl_type_config_host* host, sl_type_metric_kind kind,
                                            sl_type_str name, const sl_type_header* tags,
                                            size_t tag_count, sl_type_metric** metric_out) {
  if (host == nullptr || metric_out == nullptr || !Valid(name) || host->metrics == nullptr ||
      (tags == nullptr && tag_count != 0) || tag_count > sluice::plugin::kMaxMetricTags) {
    return SL_ERR_INVALID;
  }
  sluice::stats::Tags t;
  t.reserve(tag_count);
  for (size_t i = 0; i < tag_count; ++i) {
    if (!Valid(tags[i].name) || !Valid(tags[i].value)) return SL_ERR_INVALID;
    t.emplace_back(View(tags[i].name), View(tags[i].value));
  }
  return host->metrics->define(host->filter_name, kind, View(name), std::move(t), metric_out);
}

size_t sl_host_config_clusters(sl_type_config_host* host, sl_type_str* names, size_t cap) {
  if (host == nullptr || host->clusters == nullptr) return 0;
  const std::vector<std::string>& clusters = *host->clusters;
  for (size_t i = 0; names != nullptr && i < cap && i < clusters.size(); ++i) {
    names[i] = Str(clusters[i]);
  }
  return clusters.size();
}

sl_type_result sl_host_config_cluster_exists(sl_type_config_host* host, sl_type_str name) {
  if (host == nullptr || !Valid(name)) return SL_ERR_INVALID;
  if (host->clusters == nullptr) return SL_ERR_NOT_FOUND;
  for (const std::string& cluster : *host->clusters) {
    if (cluster == View(name)) return SL_OK;
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_config_route_define(sl_type_config_host* host, const sl_type_route_def* def,
                                           const sl_type_route** route_out) {
  if (host == nullptr || def == nullptr || route_out == nullptr || def->size < sizeof(uint32_t)) {
    return SL_ERR_INVALID;
  }
  if (host->routes == nullptr || host->route_configs == nullptr) return SL_ERR_STATE;
  // Read only what the plugin's struct has (a later minor may grow it).
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
    std::string_view value = View(m.value);
    if (!checks::RouteMetadataValue(value)) return SL_ERR_INVALID;
    route->metadata.emplace_back(View(m.name), value);
  }
  std::vector<sluice::plugin::PendingRouteConfig> pending;
  for (size_t i = 0; i < d.filter_config_count; ++i) {
    sl_type_route_filter_config c;
    std::memset(&c, 0, sizeof(c));
    if (d.filter_configs[i].size < sizeof(uint32_t)) return SL_ERR_INVALID;
    std::memcpy(&c, &d.filter_configs[i], std::min<size_t>(d.filter_configs[i].size, sizeof(c)));
    if (!Valid(c.filter_name) || c.filter_name.len == 0 || !Valid(c.value) ||
        !Valid(c.field_path) || !checks::RouteConfigFormat(c.format)) {
      return SL_ERR_INVALID;
    }
    for (const auto& p : pending) {
      if (p.filter_name == View(c.filter_name)) return SL_ERR_INVALID;  // one per filter
    }
    pending.push_back({route.get(), std::string(View(c.filter_name)), std::string(View(c.value)),
                       c.format, std::string(View(c.field_path))});
  }
  if (host->metrics != nullptr && !route->name.empty()) {
    // "route.<name>.*", tagged route_name (the router's names are "<virtual host>/<route>").
    namespace stats = sluice::stats;
    const stats::Scope scope =
        stats::Scope(host->metrics->store()).tagged("route", "route_name", route->name);
    route->owned_stats.reset(
        new sl_type_route::Stats{scope.counter("rq_total"),
                                 {&stats::ResponseClassCounter(scope, "rq_", 1),
                                  &stats::ResponseClassCounter(scope, "rq_", 2),
                                  &stats::ResponseClassCounter(scope, "rq_", 3),
                                  &stats::ResponseClassCounter(scope, "rq_", 4),
                                  &stats::ResponseClassCounter(scope, "rq_", 5)},
                                 scope.histogram("rq_time")});
    route->stats = route->owned_stats.get();
  }
  *route_out = route.get();
  host->routes->push_back(std::move(route));
  for (auto& p : pending) host->route_configs->push_back(std::move(p));
  return SL_OK;
}

// ----- any thread -----

void sl_host_counter_add(sl_type_metric* m, uint64_t delta) {
  if (m != nullptr && m->counter != nullptr) m->counter->add(delta);
}
void sl_host_gauge_add(sl_type_metric* m, int64_t delta) {
  if (m != nullptr && m->gauge != nullptr) m->gauge->add(delta);
}
void sl_host_gauge_set(sl_type_metric* m, int64_t value) {
  if (m != nullptr && m->gauge != nullptr) m->gauge->set(value);
}
void sl_host_histogram_record(sl_type_metric* m, uint64_t value) {
  if (m != nullptr && m->histogram != nullptr) m->histogram->record(value);
}

int sl_host_log_enabled(sl_type_log_level level) {
  return sluice::log::Enabled(LogLevel(level)) ? 1 : 0;
}

void sl_host_log(sl_type_log_level level, sl_type_str message) {
  if (!Valid(message)) return;
  const sluice::log::Level l = LogLevel(level);
  if (!sluice::log::Enabled(l)) return;
  // Tagged with the filter whose code is running on this thread (a plugin's own thread: none).
  const char* filter = sluice::crash::t_plugin_call.filter;
  sluice::log::WriteTagged(
      l, filter != nullptr ? absl::StrCat("plugin:", filter) : std::string("plugin"),
      sluice::log::EscapeUntrusted(View(message), sluice::plugin::kMaxLogMessageBytes));
}

sl_type_result sl_host_post(sl_type_stream_ref* ref,
                            void (*fn)(void* ctx, void* filter, sl_type_stream* stream),
                            void* ctx) {
  if (ref == nullptr || fn == nullptr) return SL_ERR_INVALID;
  ref->refs.fetch_add(1, std::memory_order_relaxed);
  ref->dispatcher->post([ref, fn, ctx] {
    PluginFilter* f = ref->filter;  // read on the worker, where it is cleared
    sluice::crash::PluginCallScope call(ref->filter_name, "a function given to sl_host_post");
    if (f != nullptr && !f->completed()) {
      fn(ctx, f->pluginFilter(), f);
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
  return PluginFilter::From(stream).ref();
}

void sl_host_stream_info(sl_type_stream* stream, sl_type_stream_info* out) {
  if (stream == nullptr || out == nullptr || out->size == 0) return;
  PluginFilter& f = PluginFilter::From(stream);
  // Written into a full struct, then copied out as far as both sides know it.
  sl_type_stream_info info;
  std::memset(&info, 0, sizeof(info));
  info.size = sizeof(info);
  const sluice::http::StreamInfo& si = f.decoder().streamInfo();
  info.stream_id = f.decoder().streamId();
  info.connection_id = f.decoder().connectionId();
  switch (si.protocol) {
    case sluice::http::Protocol::kHttp10:
      info.protocol = SL_PROTOCOL_HTTP10;
      break;
    case sluice::http::Protocol::kHttp11:
      info.protocol = SL_PROTOCOL_HTTP11;
      break;
    case sluice::http::Protocol::kHttp2:
      info.protocol = SL_PROTOCOL_HTTP2;
      break;
  }
  info.downstream_remote.size = sizeof(sl_type_address);
  info.downstream_local.size = sizeof(sl_type_address);
  FillAddress(si.downstream_remote, info.downstream_remote);
  FillAddress(si.downstream_local, info.downstream_local);
  info.filter_name = Str(f.config().name());
  info.route_name = Str(si.route_name);
  info.cluster_name = Str(si.cluster_name);
  if (const sluice::network::SslConnectionInfo* ssl = si.downstream_ssl; ssl != nullptr) {
    info.tls = 1;
    info.tls_sni = Str(ssl->sni());
    info.tls_alpn = Str(ssl->alpn());
    info.tls_peer_subject = Str(ssl->peerSubject());
  }
  info.response_flags = si.response_flags;
  info.response_details = Str(si.response_details);
  info.upstream_attempts = si.upstream_attempts;
  const size_t n = std::min<size_t>(out->size, sizeof(info));
  const uint32_t their_size = out->size;
  std::memcpy(out, &info, n);
  out->size = their_size;
}

sl_type_result sl_host_header_get(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  size_t index, sl_type_str* value) {
  if (stream == nullptr || value == nullptr || !Valid(name)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  const std::string_view n = View(name);
  if (IsPseudo(n)) {
    if (index != 0) return SL_ERR_NOT_FOUND;
    std::string_view v;
    const sl_type_result r = GetPseudo(f, map, n, v);
    if (r == SL_OK) *value = Str(v);
    return r;
  }
  sluice::http::HeaderMap* m = MapOf(f, map);
  if (m == nullptr) return SL_ERR_STATE;
  size_t seen = 0;
  for (const auto& e : m->entries()) {
    if (e.name.empty() || !sluice::http::HeaderNameEquals(e.name, n)) continue;
    if (seen++ == index) {
      *value = Str(e.value);
      return SL_OK;
    }
  }
  return SL_ERR_NOT_FOUND;
}

size_t sl_host_header_count(sl_type_stream* stream, sl_type_header_map map) {
  if (stream == nullptr) return 0;
  sluice::http::HeaderMap* m = MapOf(PluginFilter::From(stream), map);
  return m == nullptr ? 0 : m->size();
}

sl_type_result sl_host_header_at(sl_type_stream* stream, sl_type_header_map map, size_t index,
                                 sl_type_str* name, sl_type_str* value) {
  if (stream == nullptr || name == nullptr || value == nullptr) return SL_ERR_INVALID;
  sluice::http::HeaderMap* m = MapOf(PluginFilter::From(stream), map);
  if (m == nullptr) return SL_ERR_STATE;
  if (index >= m->size()) return SL_ERR_NOT_FOUND;
  // O(1): at() squeezes out removed entries first (only after a change), then indexes.
  const sluice::http::HeaderMap::Entry& e = m->at(index);
  *name = Str(e.name);
  *value = Str(e.value);
  return SL_OK;
}

sl_type_result sl_host_header_list(sl_type_stream* stream, sl_type_header_map map,
                                   sl_type_header* out, size_t cap, size_t* count) {
  if (count != nullptr) *count = 0;
  if (stream == nullptr || count == nullptr || (out == nullptr && cap != 0)) return SL_ERR_INVALID;
  sluice::http::HeaderMap* m = MapOf(PluginFilter::From(stream), map);
  if (m == nullptr) return SL_ERR_STATE;
  size_t i = 0;
  for (const auto& e : m->entries()) {
    if (i >= cap) break;
    if (e.name.empty()) continue;  // removed
    out[i++] = sl_type_header{Str(e.name), Str(e.value)};
  }
  *count = m->size();
  return SL_OK;
}

sl_type_result sl_host_trailers_add(sl_type_stream* stream, sl_type_header_map which,
                                    sl_type_str name, sl_type_str value) {
  if (stream == nullptr || !Valid(name) || !Valid(value) ||
      (which != SL_TRAILERS_REQUEST && which != SL_TRAILERS_RESPONSE)) {
    return SL_ERR_INVALID;
  }
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  const std::string_view n = View(name), v = View(value);
  if (!checks::HeaderName(n) || !checks::HeaderValue(v)) {
    return f.rejected(SL_ERR_INVALID);
  }
  sluice::http::HeaderMap* m = MapOf(f, which);
  // None yet: only from this filter's last body hook of that direction.
  if (m == nullptr) m = f.addTrailers(which == SL_TRAILERS_REQUEST);
  if (m == nullptr) return f.rejected(SL_ERR_STATE);
  m->add(n, v);
  return SL_OK;
}

sl_type_result sl_host_trailers_expect(sl_type_stream* stream, sl_type_header_map which) {
  if (stream == nullptr || (which != SL_TRAILERS_REQUEST && which != SL_TRAILERS_RESPONSE)) {
    return SL_ERR_INVALID;
  }
  PluginFilter& f = PluginFilter::From(stream);
  const bool request = which == SL_TRAILERS_REQUEST;
  if (!MayChange(f) || !f.inHeadersHook(request)) return f.rejected(SL_ERR_STATE);
  // Without a Content-Length the HTTP/1 codecs frame the body chunked, and chunked framing
  // carries trailers.
  sluice::http::HeaderMap* m = MapOf(f, request ? SL_HEADERS_REQUEST : SL_HEADERS_RESPONSE);
  if (m == nullptr) return f.rejected(SL_ERR_STATE);
  m->remove(sluice::http::KnownHeader::kContentLength);
  return SL_OK;
}

sl_type_result sl_host_header_set(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  sl_type_str value) {
  if (stream == nullptr || !Valid(name) || !Valid(value)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  const std::string_view n = View(name), v = View(value);
  if (IsPseudo(n)) {
    const sl_type_result r = SetPseudo(f, map, n, v);
    return r == SL_OK ? r : f.rejected(r);
  }
  if (!checks::HeaderName(n) || !checks::HeaderValue(v)) {
    return f.rejected(SL_ERR_INVALID);
  }
  sluice::http::HeaderMap* m = MapOf(f, map);
  if (m == nullptr) return f.rejected(SL_ERR_STATE);
  m->set(n, v);
  return SL_OK;
}

sl_type_result sl_host_header_add(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  sl_type_str value) {
  if (stream == nullptr || !Valid(name) || !Valid(value)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  const std::string_view n = View(name), v = View(value);
  if (!checks::HeaderName(n) || !checks::HeaderValue(v)) {
    return f.rejected(SL_ERR_INVALID);  // pseudo-headers included: they cannot be added
  }
  sluice::http::HeaderMap* m = MapOf(f, map);
  if (m == nullptr) return f.rejected(SL_ERR_STATE);
  m->add(n, v);
  return SL_OK;
}

sl_type_result sl_host_header_remove(sl_type_stream* stream, sl_type_header_map map,
                                     sl_type_str name, size_t* removed) {
  if (removed != nullptr) *removed = 0;
  if (stream == nullptr || !Valid(name)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  if (IsPseudo(View(name))) return f.rejected(SL_ERR_INVALID);
  sluice::http::HeaderMap* m = MapOf(f, map);
  if (m == nullptr) return f.rejected(SL_ERR_STATE);
  const size_t n = m->remove(View(name));
  if (removed != nullptr) *removed = n;
  return SL_OK;
}

size_t sl_host_body_length(sl_type_stream* stream, sl_type_body body) {
  if (stream == nullptr || body > SL_BODY_RESPONSE) return 0;
  sluice::Buffer* b = PluginFilter::From(stream).body(body == SL_BODY_REQUEST);
  return b == nullptr ? 0 : b->length();
}

size_t sl_host_body_chunks(sl_type_stream* stream, sl_type_body body, sl_type_str* chunks,
                           size_t cap) {
  if (stream == nullptr || body > SL_BODY_RESPONSE) return 0;
  sluice::Buffer* b = PluginFilter::From(stream).body(body == SL_BODY_REQUEST);
  if (b == nullptr) return 0;
  const size_t total = b->sliceCount();
  if (chunks == nullptr || cap == 0) return total;
  // peek() fills iovecs; convert in place-sized batches to keep this allocation-free.
  constexpr size_t kBatch = 16;
  struct iovec iov[kBatch];
  if (cap <= kBatch) {
    const size_t n = b->peek(iov, cap);
    for (size_t i = 0; i < n; ++i) {
      chunks[i] = sl_type_str{static_cast<const char*>(iov[i].iov_base), iov[i].iov_len};
    }
    return total;
  }
  std::vector<struct iovec> all(std::min(cap, total));
  const size_t n = b->peek(all.data(), all.size());
  for (size_t i = 0; i < n; ++i) {
    chunks[i] = sl_type_str{static_cast<const char*>(all[i].iov_base), all[i].iov_len};
  }
  return total;
}

namespace {
sluice::Buffer* MutableBody(PluginFilter& f, sl_type_body body) {
  if (body > SL_BODY_RESPONSE || !MayChange(f)) return nullptr;
  return f.body(body == SL_BODY_REQUEST);
}
}  // namespace

sl_type_result sl_host_body_append(sl_type_stream* stream, sl_type_body body, sl_type_str data) {
  if (stream == nullptr || !Valid(data)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  sluice::Buffer* b = MutableBody(f, body);
  if (b == nullptr) return f.rejected(SL_ERR_STATE);
  b->add(View(data));
  return SL_OK;
}

sl_type_result sl_host_body_prepend(sl_type_stream* stream, sl_type_body body, sl_type_str data) {
  if (stream == nullptr || !Valid(data)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  sluice::Buffer* b = MutableBody(f, body);
  if (b == nullptr) return f.rejected(SL_ERR_STATE);
  b->prepend(View(data));
  return SL_OK;
}

sl_type_result sl_host_body_drain(sl_type_stream* stream, sl_type_body body, size_t len) {
  if (stream == nullptr) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  sluice::Buffer* b = MutableBody(f, body);
  if (b == nullptr) return f.rejected(SL_ERR_STATE);
  b->drain(std::min(len, b->length()));
  return SL_OK;
}

sl_type_result sl_host_body_replace(sl_type_stream* stream, sl_type_body body, sl_type_str data) {
  if (stream == nullptr || !Valid(data)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  sluice::Buffer* b = MutableBody(f, body);
  if (b == nullptr) return f.rejected(SL_ERR_STATE);
  b->clear();
  b->add(View(data));
  return SL_OK;
}

sl_type_result sl_host_continue_request(sl_type_stream* stream) {
  if (stream == nullptr) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  return f.continueRequest() ? SL_OK : f.rejected(SL_ERR_STATE);
}

sl_type_result sl_host_continue_response(sl_type_stream* stream) {
  if (stream == nullptr) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  return f.continueResponse() ? SL_OK : f.rejected(SL_ERR_STATE);
}

sl_type_result sl_host_send_response(sl_type_stream* stream, uint32_t status,
                                     const sl_type_header* headers, size_t header_count,
                                     sl_type_str body, sl_type_str details) {
  if (stream == nullptr || !Valid(body) || !Valid(details) ||
      (headers == nullptr && header_count != 0)) {
    return SL_ERR_INVALID;
  }
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return f.rejected(SL_ERR_STATE);
  if (f.responseHead() != nullptr) {
    f.onRefusedReply();  // from a response hook: the stream ends once the hook returns
    return f.rejected(SL_ERR_STATE);
  }
  if (!checks::LocalReplyStatus(status)) return f.rejected(SL_ERR_INVALID);
  for (size_t i = 0; i < header_count; ++i) {
    if (!Valid(headers[i].name) || !Valid(headers[i].value) ||
        !checks::HeaderName(View(headers[i].name)) ||
        !checks::HeaderValue(View(headers[i].value))) {
      return f.rejected(SL_ERR_INVALID);
    }
  }
  if (details.len != 0) {
    auto& info = f.decoder().streamInfo();
    if (info.response_details.empty()) {
      info.response_details =
          sluice::log::EscapeUntrusted(View(details), sluice::plugin::kMaxDetailsBytes);
    }
  }
  f.decoder().sendLocalReply(static_cast<uint16_t>(status), View(body),
                             [headers, header_count](sluice::http::HeaderMap& m) {
                               for (size_t i = 0; i < header_count; ++i) {
                                 // The host's own framing fields stay the host's.
                                 const std::string_view n = View(headers[i].name);
                                 if (checks::IsFramingHeader(n)) continue;
                                 m.set(n, View(headers[i].value));
                               }
                             });
  return SL_OK;
}

void sl_host_reset_stream(sl_type_stream* stream) {
  if (stream == nullptr) return;
  PluginFilter& f = PluginFilter::From(stream);
  if (MayChange(f)) f.decoder().resetStream();
}

void sl_host_fail_stream(sl_type_stream* stream, sl_type_str reason) {
  if (stream == nullptr) return;
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f)) return;
  f.fail(Valid(reason)
             ? sluice::log::EscapeUntrusted(View(reason), sluice::plugin::kMaxFailReasonBytes)
             : std::string("(no reason)"));
}

sl_type_result sl_host_metadata_set(sl_type_stream* stream, sl_type_str key, sl_type_str value) {
  if (stream == nullptr || !checks::StreamMetadataKey(key) || !Valid(value)) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  auto& md = f.decoder().streamInfo().metadata;
  md[std::string(View(key))].assign(View(value));
  return SL_OK;
}

sl_type_result sl_host_metadata_get(sl_type_stream* stream, sl_type_str key, sl_type_str* value) {
  if (stream == nullptr || !Valid(key) || value == nullptr) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  const auto& md = f.decoder().streamInfo().metadata;
  auto it = md.find(std::string(View(key)));
  if (it == md.end()) return SL_ERR_NOT_FOUND;
  *value = Str(it->second);
  return SL_OK;
}

sl_type_result sl_host_timer_start(sl_type_stream* stream, uint64_t token, uint64_t delay_ms) {
  if (stream == nullptr) return SL_ERR_INVALID;
  return PluginFilter::From(stream).startTimer(token, delay_ms);
}

sl_type_result sl_host_timer_cancel(sl_type_stream* stream, uint64_t token) {
  if (stream == nullptr) return SL_ERR_INVALID;
  return PluginFilter::From(stream).cancelTimer(token);
}

sl_type_result sl_host_callout(sl_type_stream* stream, sl_type_str cluster,
                               const sl_type_header* headers, size_t header_count, sl_type_str body,
                               uint64_t timeout_ms, uint64_t* callout_id) {
  if (stream == nullptr) {
    if (callout_id != nullptr) *callout_id = 0;
    return SL_ERR_INVALID;
  }
  return PluginFilter::From(stream).startCallout(cluster, headers, header_count, body, timeout_ms,
                                                 callout_id);
}

sl_type_result sl_host_callout_cancel(sl_type_stream* stream, uint64_t callout_id) {
  if (stream == nullptr) return SL_ERR_INVALID;
  return PluginFilter::From(stream).cancelCallout(callout_id) ? SL_OK : SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_route_config(sl_type_stream* stream, void** route_config) {
  if (stream == nullptr || route_config == nullptr) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (f.requestHead() == nullptr) return f.rejected(SL_ERR_STATE);
  const sl_type_route* route = f.route();
  if (route == nullptr) return SL_ERR_NOT_FOUND;
  for (const auto& c : route->filter_configs) {
    if (c.filter == &f.config()) {
      *route_config = c.config;
      return SL_OK;
    }
  }
  return SL_ERR_NOT_FOUND;
}

sl_type_result sl_host_route_metadata_get(sl_type_stream* stream, sl_type_str key,
                                          sl_type_str* value) {
  if (stream == nullptr || !Valid(key) || value == nullptr) return SL_ERR_INVALID;
  PluginFilter& f = PluginFilter::From(stream);
  if (f.requestHead() == nullptr) return f.rejected(SL_ERR_STATE);
  const sl_type_route* route = f.route();
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
  PluginFilter& f = PluginFilter::From(stream);
  if (f.requestHead() == nullptr) return f.rejected(SL_ERR_STATE);
  const sl_type_route* route = f.route();
  if (route == nullptr || route->owner != &f.config()) return SL_ERR_NOT_FOUND;
  *data = route->data;
  return SL_OK;
}

sl_type_result sl_host_route_clear(sl_type_stream* stream) {
  if (stream == nullptr) return SL_ERR_INVALID;
  PluginFilter::From(stream).clearRoute();
  return SL_OK;
}

sl_type_result sl_host_set_upstream(sl_type_stream* stream,
                                    const sl_type_upstream_request* request) {
  if (stream == nullptr || request == nullptr || request->size < sizeof(uint32_t) ||
      !Valid(request->cluster)) {
    return SL_ERR_INVALID;
  }
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f) || f.responseHead() != nullptr) return f.rejected(SL_ERR_STATE);
  // Read only the fields the plugin's struct has (it may be from an older minor version).
  sl_type_upstream_request r;
  std::memset(&r, 0, sizeof(r));
  std::memcpy(&r, request, std::min<size_t>(request->size, sizeof(r)));
  if (!Valid(r.route_name) || !Valid(r.hash_key)) return f.rejected(SL_ERR_INVALID);
  sluice::http::UpstreamSpec spec;
  spec.cluster = View(r.cluster);
  spec.route_name = View(r.route_name);
  spec.timeout = std::chrono::milliseconds(r.timeout_ms);
  spec.response_headers_timeout = std::chrono::milliseconds(r.response_headers_timeout_ms);
  // 0: the cluster's; SL_TIMEOUT_NONE: none (since 1.4).
  auto timeout = [](uint64_t ms) {
    if (ms == SL_TIMEOUT_NONE) return sluice::http::UpstreamSpec::kNoTimeout;
    return std::chrono::milliseconds(std::min<uint64_t>(ms, INT64_MAX / 1000000));
  };
  spec.idle_timeout = timeout(r.idle_timeout_ms);
  spec.per_try_timeout = timeout(r.per_try_timeout_ms);
  spec.connect_timeout = timeout(r.connect_timeout_ms);
  spec.send_timeout = timeout(r.send_timeout_ms);
  spec.hash_key = View(r.hash_key);
  spec.terminate_connect = (r.flags & SL_UPSTREAM_TERMINATE_CONNECT) != 0;
  spec.request_buffer_bytes = r.request_buffer_bytes;
  if (!f.decoder().setUpstream(spec)) return SL_ERR_NOT_FOUND;
  return SL_OK;
}

sl_type_result sl_host_upstream_retry_enable(sl_type_stream* stream,
                                             const sl_type_retry_options* options) {
  if (stream == nullptr || options == nullptr || options->size < sizeof(uint32_t)) {
    return SL_ERR_INVALID;
  }
  PluginFilter& f = PluginFilter::From(stream);
  if (!MayChange(f) || f.responseHead() != nullptr || f.requestHead() == nullptr ||
      f.config().hooks().upstream_retry == nullptr) {
    return f.rejected(SL_ERR_STATE);
  }
  sl_type_retry_options o;
  std::memset(&o, 0, sizeof(o));
  std::memcpy(&o, options, std::min<size_t>(options->size, sizeof(o)));
  sluice::http::RetryOptions ro;
  ro.per_try_timeout =
      std::chrono::milliseconds(std::min<uint64_t>(o.per_try_timeout_ms, INT32_MAX));
  ro.max_replay_bytes = o.max_replay_bytes;
  ro.attempt_count_header = (o.flags & SL_RETRY_ATTEMPT_COUNT_HEADER) != 0;
  if (!f.decoder().enableRetries(ro)) return f.rejected(SL_ERR_STATE);
  return SL_OK;
}

}  // extern "C"

namespace sluice::plugin {
// Referenced by the plugin manager so that the linker keeps this object file (and with it every
// sl_host_* symbol) in any binary that can load plugins.
void LinkHostFunctions() {}
}  // namespace sluice::plugin
