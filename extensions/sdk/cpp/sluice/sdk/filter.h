// The sluice C++ plugin SDK: a header-only layer over the C plugin ABI
// (sluice/plugin/v1/sluice_plugin.h). It knows nothing of sluice's internals; everything goes
// through the ABI's hooks and host functions.
//
//   #include "sluice/sdk/filter.h"
//
//   class AddHeader : public sluice::sdk::Filter {
//    public:
//     explicit AddHeader(const MyConfig& c) : c_(c) {}
//     sl_type_action onResponseHeaders(sluice::sdk::Stream& s, bool) override {
//       s.responseHeaders().add("x-hello", c_.value);
//       return SL_ACTION_CONTINUE;
//     }
//    private:
//     const MyConfig& c_;
//   };
//
//   class MyConfig : public sluice::sdk::FilterConfig {
//    public:
//     std::string value;
//     static std::unique_ptr<MyConfig> create(sluice::sdk::ConfigContext& ctx);  // nullptr +
//                                                                               // ctx.fail(...)
//     std::unique_ptr<sluice::sdk::Filter> newFilter(sluice::sdk::Stream&) override {
//       return std::make_unique<AddHeader>(*this);
//     }
//   };
//
//   SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<MyConfig>("add_header"));
//
// Exactly one source file of a plugin uses SLUICE_PLUGIN_FILTERS: it defines the exported hooks.
// An exception that escapes a filter's method is caught at the ABI boundary: the stream fails
// (500 while no response has reached the client — from a response hook too —, a reset once one
// has) and the host counts and logs it; the process goes on. Likewise for create() and
// newRouteConfig() (a config error with the exception's what()), newFilter() (500),
// onSelectRoute() (no route) and functions given to StreamRef::post(). Destructors must not
// throw: C++ makes that std::terminate, which the host reports as a crash (SIGABRT).

#ifndef SLUICE_SDK_FILTER_H_
#define SLUICE_SDK_FILTER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/plugin/v1/sluice_plugin.h"

namespace sluice::sdk {

inline sl_type_str Str(std::string_view s) { return sl_type_str{s.data(), s.size()}; }
inline std::string_view View(sl_type_str s) {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.len);
}

// Field checks for config time (the host refuses bad fields at run time, with
// SL_ERR_INVALID; checking them when the config is built reports them where they are written).
// RFC 9110 §5.6.2: a field name is a token.
inline bool IsValidFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum &&
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}
// RFC 9110 §5.5: no CR, LF or NUL (nor other controls but HTAB).
inline bool IsValidFieldValue(std::string_view value) {
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// Logging through the host (which adds time, level and thread).
inline bool LogEnabled(sl_type_log_level level) { return sl_host_log_enabled(level) != 0; }
inline void Log(sl_type_log_level level, std::string_view message) {
  sl_host_log(level, Str(message));
}

// One header map of a stream (a view; cheap to copy). Lookups are case-insensitive.
class Headers {
 public:
  Headers(sl_type_stream* stream, sl_type_header_map map) : stream_(stream), map_(map) {}

  // The first (or index-th) value of `name`; std::nullopt when absent. The view is valid until
  // the hook returns or this map changes.
  std::optional<std::string_view> get(std::string_view name, size_t index = 0) const {
    sl_type_str v{};
    if (sl_host_header_get(stream_, map_, Str(name), index, &v) != SL_OK) return std::nullopt;
    return View(v);
  }
  std::vector<std::string_view> getAll(std::string_view name) const {
    std::vector<std::string_view> out;
    for (size_t i = 0;; ++i) {
      auto v = get(name, i);
      if (!v) break;
      out.push_back(*v);
    }
    return out;
  }
  size_t size() const { return sl_host_header_count(stream_, map_); }
  // Calls fn(name, value) for every field in order: one host call (sl_host_header_list, ABI
  // 1.3) for up to 32 fields, two for more. `fn` must not change this map (the views would go).
  template <class Fn>
  void forEach(Fn&& fn) const {
    constexpr size_t kInline = 32;
    sl_type_header inline_fields[kInline];
    size_t n = 0;
    if (sl_host_header_list(stream_, map_, inline_fields, kInline, &n) != SL_OK) return;
    const sl_type_header* fields = inline_fields;
    std::vector<sl_type_header> more;
    if (n > kInline) {
      more.resize(n);
      if (sl_host_header_list(stream_, map_, more.data(), more.size(), &n) != SL_OK) return;
      n = std::min(n, more.size());
      fields = more.data();
    }
    for (size_t i = 0; i < n; ++i) fn(View(fields[i].name), View(fields[i].value));
  }
  // Every field in order (views valid until this map changes or the hook returns).
  std::vector<std::pair<std::string_view, std::string_view>> list() const {
    std::vector<std::pair<std::string_view, std::string_view>> out;
    forEach([&](std::string_view n, std::string_view v) { out.emplace_back(n, v); });
    return out;
  }
  sl_type_result set(std::string_view name, std::string_view value) {
    return sl_host_header_set(stream_, map_, Str(name), Str(value));
  }
  sl_type_result add(std::string_view name, std::string_view value) {
    return sl_host_header_add(stream_, map_, Str(name), Str(value));
  }
  size_t remove(std::string_view name) {
    size_t removed = 0;
    sl_host_header_remove(stream_, map_, Str(name), &removed);
    return removed;
  }

 private:
  sl_type_stream* stream_;
  sl_type_header_map map_;
};

// One direction's body as the host holds it (see sl_host_body_*): views, no copy.
class Body {
 public:
  Body(sl_type_stream* stream, sl_type_body which) : stream_(stream), which_(which) {}
  size_t length() const { return sl_host_body_length(stream_, which_); }
  std::vector<std::string_view> chunks() const {
    std::vector<sl_type_str> raw(sl_host_body_chunks(stream_, which_, nullptr, 0));
    const size_t n = sl_host_body_chunks(stream_, which_, raw.data(), raw.size());
    std::vector<std::string_view> out;
    out.reserve(n);
    for (size_t i = 0; i < n && i < raw.size(); ++i) out.push_back(View(raw[i]));
    return out;
  }
  // A copy of the whole body (for filters that need it contiguous).
  std::string toString() const {
    std::string s;
    s.reserve(length());
    for (std::string_view c : chunks()) s.append(c);
    return s;
  }
  sl_type_result append(std::string_view data) {
    return sl_host_body_append(stream_, which_, Str(data));
  }
  sl_type_result prepend(std::string_view data) {
    return sl_host_body_prepend(stream_, which_, Str(data));
  }
  sl_type_result drain(size_t n) { return sl_host_body_drain(stream_, which_, n); }
  sl_type_result replace(std::string_view data) {
    return sl_host_body_replace(stream_, which_, Str(data));
  }

 private:
  sl_type_stream* stream_;
  sl_type_body which_;
};

class RouteConfig;

// A filter's stream: what the host functions offer, as methods. A handle (cheap to copy),
// valid while the filter instance lives.
class Stream {
 public:
  explicit Stream(sl_type_stream* s) : s_(s) {}
  sl_type_stream* raw() const { return s_; }

  Headers requestHeaders() const { return Headers(s_, SL_HEADERS_REQUEST); }
  Headers responseHeaders() const { return Headers(s_, SL_HEADERS_RESPONSE); }
  Headers requestTrailers() const { return Headers(s_, SL_TRAILERS_REQUEST); }
  Headers responseTrailers() const { return Headers(s_, SL_TRAILERS_RESPONSE); }
  Body requestBody() const { return Body(s_, SL_BODY_REQUEST); }
  Body responseBody() const { return Body(s_, SL_BODY_RESPONSE); }

  // Trailers on a message that has none (ABI 1.3, see sl_host_trailers_add): from the last body
  // hook of that direction (end_stream). Call expect*Trailers() from that direction's headers
  // hook first so that HTTP/1 sends the body chunked (otherwise a Content-Length message drops
  // them, counted).
  sl_type_result addRequestTrailer(std::string_view name, std::string_view value) const {
    return sl_host_trailers_add(s_, SL_TRAILERS_REQUEST, Str(name), Str(value));
  }
  sl_type_result addResponseTrailer(std::string_view name, std::string_view value) const {
    return sl_host_trailers_add(s_, SL_TRAILERS_RESPONSE, Str(name), Str(value));
  }
  sl_type_result expectRequestTrailers() const {
    return sl_host_trailers_expect(s_, SL_TRAILERS_REQUEST);
  }
  sl_type_result expectResponseTrailers() const {
    return sl_host_trailers_expect(s_, SL_TRAILERS_RESPONSE);
  }

  sl_type_result continueRequest() const { return sl_host_continue_request(s_); }
  sl_type_result continueResponse() const { return sl_host_continue_response(s_); }
  sl_type_result sendResponse(uint32_t status, std::string_view body,
                              const std::vector<std::pair<std::string, std::string>>& headers = {},
                              std::string_view details = {}) const {
    std::vector<sl_type_header> h;
    h.reserve(headers.size());
    for (const auto& [n, v] : headers) h.push_back(sl_type_header{Str(n), Str(v)});
    return sl_host_send_response(s_, status, h.data(), h.size(), Str(body), Str(details));
  }
  void reset() const { sl_host_reset_stream(s_); }
  void fail(std::string_view reason) const { sl_host_fail_stream(s_, Str(reason)); }

  sl_type_result setMetadata(std::string_view key, std::string_view value) const {
    return sl_host_metadata_set(s_, Str(key), Str(value));
  }
  std::optional<std::string_view> metadata(std::string_view key) const {
    sl_type_str v{};
    if (sl_host_metadata_get(s_, Str(key), &v) != SL_OK) return std::nullopt;
    return View(v);
  }

  sl_type_stream_info info() const {
    sl_type_stream_info i;
    std::memset(&i, 0, sizeof(i));
    i.size = sizeof(i);
    sl_host_stream_info(s_, &i);
    return i;
  }

  // The terminal decision (see sl_host_set_upstream): after the request passed every filter,
  // the core sends it to a host of `cluster`. SL_ERR_NOT_FOUND: no such cluster.
  // `flags`: SL_UPSTREAM_* bits (e.g. SL_UPSTREAM_TERMINATE_CONNECT).
  sl_type_result setUpstream(std::string_view cluster, std::string_view route_name = {},
                             uint64_t timeout_ms = 0, uint64_t idle_timeout_ms = 0,
                             std::string_view hash_key = {}, uint32_t flags = 0) const {
    Upstream u;
    u.cluster = cluster;
    u.route_name = route_name;
    u.timeout_ms = timeout_ms;
    u.idle_timeout_ms = idle_timeout_ms;
    u.hash_key = hash_key;
    u.flags = flags;
    return setUpstream(u);
  }
  // Every field of sl_type_upstream_request (see there for each one's meaning).
  struct Upstream {
    std::string_view cluster;
    std::string_view route_name;
    uint64_t timeout_ms = 0;
    uint64_t response_headers_timeout_ms = 0;
    uint64_t idle_timeout_ms = 0;
    std::string_view hash_key;
    uint32_t flags = 0;
    uint64_t request_buffer_bytes = 0;
    // ABI 1.4: per attempt; 0 the cluster's default, SL_TIMEOUT_NONE none.
    uint64_t per_try_timeout_ms = 0;
    uint64_t connect_timeout_ms = 0;
    uint64_t send_timeout_ms = 0;
  };
  sl_type_result setUpstream(const Upstream& u) const {
    sl_type_upstream_request r;
    std::memset(&r, 0, sizeof(r));
    r.size = sizeof(r);
    r.cluster = Str(u.cluster);
    r.route_name = Str(u.route_name);
    r.timeout_ms = u.timeout_ms;
    r.response_headers_timeout_ms = u.response_headers_timeout_ms;
    r.idle_timeout_ms = u.idle_timeout_ms;
    r.hash_key = Str(u.hash_key);
    r.flags = u.flags;
    r.request_buffer_bytes = u.request_buffer_bytes;
    r.per_try_timeout_ms = u.per_try_timeout_ms;
    r.connect_timeout_ms = u.connect_timeout_ms;
    r.send_timeout_ms = u.send_timeout_ms;
    return sl_host_set_upstream(s_, &r);
  }

  // ABI 1.4: makes the stream retryable by this filter (see sl_host_upstream_retry_enable);
  // Filter::onUpstreamRetry then decides after each attempt.
  sl_type_result enableRetries(uint64_t per_try_timeout_ms = 0, uint64_t max_replay_bytes = 0,
                               uint32_t flags = 0) const {
    sl_type_retry_options o;
    std::memset(&o, 0, sizeof(o));
    o.size = sizeof(o);
    o.per_try_timeout_ms = per_try_timeout_ms;
    o.max_replay_bytes = max_replay_bytes;
    o.flags = flags;
    return sl_host_upstream_retry_enable(s_, &o);
  }

  // The stream's route (ABI 1.3, see ROUTES in sluice_plugin.h), chosen on first use.
  // This filter's per-route config (the object its FilterConfig::newRouteConfig made), or
  // nullptr when the route carries none for it (or there is no route).
  template <class T>
  const T* routeConfig() const {
    void* c = nullptr;
    if (sl_host_route_config(s_, &c) != SL_OK) return nullptr;
    return static_cast<const T*>(static_cast<const RouteConfig*>(c));
  }
  std::optional<std::string_view> routeMetadata(std::string_view key) const {
    sl_type_str v{};
    if (sl_host_route_metadata_get(s_, Str(key), &v) != SL_OK) return std::nullopt;
    return View(v);
  }
  // For the filter that defines the routes: the data it gave the stream's route.
  void* routeData() const {
    void* d = nullptr;
    return sl_host_route_data(s_, &d) == SL_OK ? d : nullptr;
  }
  // Forgets the route: the next question chooses again (after a rewrite routing depends on).
  void clearRoute() const { sl_host_route_clear(s_); }

  // Filter::onTimer(stream, token) after `delay_ms`.
  sl_type_result startTimer(uint64_t token, uint64_t delay_ms) const {
    return sl_host_timer_start(s_, token, delay_ms);
  }
  sl_type_result cancelTimer(uint64_t token) const { return sl_host_timer_cancel(s_, token); }

  // An HTTP request of the filter's own to a cluster of the config (see sl_host_callout):
  // Filter::onCalloutDone(stream, id, result) follows once, on this worker, with the id set in
  // *id — unless the stream ends first (then nothing follows). Errors as sl_host_callout's.
  struct CalloutRequest {
    std::string_view method = "GET";
    std::string_view path = "/";
    std::string_view authority;  // the Host field; empty: the cluster's name
    std::vector<std::pair<std::string, std::string>> headers;
    std::string_view body;
    uint64_t timeout_ms = 0;  // 0: SL_CALLOUT_DEFAULT_TIMEOUT_MS
  };
  sl_type_result callout(std::string_view cluster, const CalloutRequest& r,
                         uint64_t* id = nullptr) const {
    std::vector<sl_type_header> h;
    h.reserve(r.headers.size() + 3);
    h.push_back(sl_type_header{Str(":method"), Str(r.method)});
    h.push_back(sl_type_header{Str(":path"), Str(r.path)});
    if (!r.authority.empty()) h.push_back(sl_type_header{Str(":authority"), Str(r.authority)});
    for (const auto& [n, v] : r.headers) h.push_back(sl_type_header{Str(n), Str(v)});
    uint64_t ignored = 0;
    return sl_host_callout(s_, Str(cluster), h.data(), h.size(), Str(r.body), r.timeout_ms,
                           id != nullptr ? id : &ignored);
  }
  // Withdraws callout `id` (ABI 1.3): its onCalloutDone never comes. SL_ERR_NOT_FOUND when it
  // is not in flight.
  sl_type_result cancelCallout(uint64_t id) const { return sl_host_callout_cancel(s_, id); }

 private:
  sl_type_stream* s_;
};

// Reading an sl_type_callout_result (Filter::onCalloutDone): the first value of field `name`
// (case-insensitive), or nothing.
inline std::optional<std::string_view> CalloutHeader(const sl_type_callout_result& r,
                                                     std::string_view name) {
  for (size_t i = 0; i < r.header_count; ++i) {
    const std::string_view n = View(r.headers[i].name);
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t k = 0; k < n.size() && same; ++k) {
      auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
      same = lower(n[k]) == lower(name[k]);
    }
    if (same) return View(r.headers[i].value);
  }
  return std::nullopt;
}

class Filter;

// A per-route config object (ABI 1.3): what FilterConfig::newRouteConfig returns, and
// Stream::routeConfig<T>() gives back. Built on the main thread, read by every worker.
class RouteConfig {
 public:
  virtual ~RouteConfig() = default;
};

// A counted reference to a stream that other threads may hold (RAII; movable). post() runs a
// function on the stream's worker, soon, with the stream's filter and stream — or with nullptrs
// when the stream is gone by then (so what it captured can still be released). Create it on the
// worker (inside a hook); use and destroy it anywhere.
class StreamRef {
 public:
  explicit StreamRef(const Stream& stream) : ref_(sl_host_stream_ref(stream.raw())) {}
  ~StreamRef() {
    if (ref_ != nullptr) sl_host_stream_ref_release(ref_);
  }
  StreamRef(StreamRef&& other) noexcept : ref_(std::exchange(other.ref_, nullptr)) {}
  StreamRef& operator=(StreamRef&& other) noexcept {
    std::swap(ref_, other.ref_);
    return *this;
  }
  StreamRef(const StreamRef&) = delete;
  StreamRef& operator=(const StreamRef&) = delete;

  // fn(Filter* filter, Stream* stream): both nullptr if the stream ended meanwhile.
  template <class Fn>
  sl_type_result post(Fn fn) const {
    auto* box = new Fn(std::move(fn));
    const sl_type_result r = sl_host_post(ref_, &Run<Fn>, box);
    if (r != SL_OK) delete box;
    return r;
  }

 private:
  template <class Fn>
  static void Run(void* ctx, void* filter, sl_type_stream* stream);

  sl_type_stream_ref* ref_;
};

// Metric handles, declared at config time (ConfigContext), updated from any thread.
class Counter {
 public:
  Counter() = default;
  explicit Counter(sl_type_metric* m) : m_(m) {}
  void inc(uint64_t n = 1) const { sl_host_counter_add(m_, n); }

 private:
  sl_type_metric* m_ = nullptr;
};
class Gauge {
 public:
  Gauge() = default;
  explicit Gauge(sl_type_metric* m) : m_(m) {}
  void add(int64_t n) const { sl_host_gauge_add(m_, n); }
  void set(int64_t v) const { sl_host_gauge_set(m_, v); }

 private:
  sl_type_metric* m_ = nullptr;
};
class Histogram {
 public:
  Histogram() = default;
  explicit Histogram(sl_type_metric* m) : m_(m) {}
  void record(uint64_t v) const { sl_host_histogram_record(m_, v); }

 private:
  sl_type_metric* m_ = nullptr;
};

// What a config's create() gets: the filter's name, its config bytes, metric declaration and the
// error channel.
class ConfigContext {
 public:
  ConfigContext(sl_type_config_host* host, std::string_view filter_name, std::string_view bytes)
      : host_(host), filter_name_(filter_name), bytes_(bytes) {}

  std::string_view filterName() const { return filter_name_; }
  // The serialized protobuf message (typed filters) or the JSON text (untyped ones).
  std::string_view bytes() const { return bytes_; }
  // Parses the typed config into a generated message (anything with ParseFromArray).
  template <class Message>
  bool parse(Message& out) const {
    return out.ParseFromArray(bytes_.data(), static_cast<int>(bytes_.size()));
  }

  Counter counter(std::string_view name) { return Counter(define(SL_METRIC_COUNTER, name)); }
  Gauge gauge(std::string_view name) { return Gauge(define(SL_METRIC_GAUGE, name)); }
  Histogram histogram(std::string_view name) {
    return Histogram(define(SL_METRIC_HISTOGRAM, name));
  }
  // Labelled metrics (ABI 1.3, sl_host_metric_define_tagged): one per set of tag values.
  using Tags = std::vector<std::pair<std::string_view, std::string_view>>;
  Counter counter(std::string_view name, const Tags& tags) {
    return Counter(define(SL_METRIC_COUNTER, name, tags));
  }
  Gauge gauge(std::string_view name, const Tags& tags) {
    return Gauge(define(SL_METRIC_GAUGE, name, tags));
  }
  Histogram histogram(std::string_view name, const Tags& tags) {
    return Histogram(define(SL_METRIC_HISTOGRAM, name, tags));
  }

  // Refuses the config with this message (return nullptr from create() after it).
  void fail(std::string_view message) { sl_host_config_error(host_, Str(message)); }

  // The names of the config's clusters, in config order (ABI 1.2; views valid during create()).
  // For filters that name clusters: refuse an unknown one at load, with its field path.
  std::vector<std::string_view> clusters() const {
    std::vector<sl_type_str> raw(sl_host_config_clusters(host_, nullptr, 0));
    const size_t n = sl_host_config_clusters(host_, raw.data(), raw.size());
    std::vector<std::string_view> out;
    out.reserve(n);
    for (size_t i = 0; i < n && i < raw.size(); ++i) out.push_back(View(raw[i]));
    return out;
  }
  // Whether the config has a cluster named exactly `name` (ABI 1.2).
  bool hasCluster(std::string_view name) const {
    return sl_host_config_cluster_exists(host_, Str(name)) == SL_OK;
  }

  // For a filter that defines routes (ABI 1.3, see ROUTES in sluice_plugin.h): one route, its
  // metadata and the config it carries for other filters of the chain. Returns the handle
  // Filter::onSelectRoute returns for it, or nullptr (refused: an invalid definition).
  struct RouteFilterConfig {
    std::string filter;  // a filter name of the chain
    std::string value;   // a serialized google.protobuf.Value, or JSON text
    uint32_t format = SL_ROUTE_CONFIG_PROTO_VALUE;
    std::string field_path;  // where it is in this filter's config, for errors
  };
  struct RouteDefinition {
    std::string name;
    void* data = nullptr;
    std::vector<std::pair<std::string, std::string>> metadata;
    std::vector<RouteFilterConfig> filter_configs;
  };
  const sl_type_route* defineRoute(const RouteDefinition& d) const {
    std::vector<sl_type_header> md;
    md.reserve(d.metadata.size());
    for (const auto& [k, v] : d.metadata) md.push_back(sl_type_header{Str(k), Str(v)});
    std::vector<sl_type_route_filter_config> fc;
    fc.reserve(d.filter_configs.size());
    for (const auto& c : d.filter_configs) {
      sl_type_route_filter_config r;
      std::memset(&r, 0, sizeof(r));
      r.size = sizeof(r);
      r.filter_name = Str(c.filter);
      r.value = Str(c.value);
      r.format = c.format;
      r.field_path = Str(c.field_path);
      fc.push_back(r);
    }
    sl_type_route_def def;
    std::memset(&def, 0, sizeof(def));
    def.size = sizeof(def);
    def.name = Str(d.name);
    def.data = d.data;
    def.metadata = md.data();
    def.metadata_count = md.size();
    def.filter_configs = fc.data();
    def.filter_config_count = fc.size();
    const sl_type_route* route = nullptr;
    if (sl_host_config_route_define(host_, &def, &route) != SL_OK) return nullptr;
    return route;
  }
  sl_type_config_host* raw() const { return host_; }

 private:
  sl_type_metric* define(sl_type_metric_kind kind, std::string_view name) {
    sl_type_metric* m = nullptr;
    if (sl_host_metric_define(host_, kind, Str(name), &m) != SL_OK) return nullptr;
    return m;
  }
  sl_type_metric* define(sl_type_metric_kind kind, std::string_view name, const Tags& tags) {
    std::vector<sl_type_header> t;
    t.reserve(tags.size());
    for (const auto& [k, v] : tags) t.push_back(sl_type_header{Str(k), Str(v)});
    sl_type_metric* m = nullptr;
    if (sl_host_metric_define_tagged(host_, kind, Str(name), t.data(), t.size(), &m) != SL_OK) {
      return nullptr;
    }
    return m;
  }

  sl_type_config_host* host_;
  std::string_view filter_name_;
  std::string_view bytes_;
};

// A filter instance: one per stream. Every hook defaults to "touch nothing, go on"; the body and
// trailers defaults return SL_ACTION_DEFAULT, so that a filter which paused its headers (STOP
// from onRequestHeaders, continueRequest() later) keeps the body waiting too without writing a
// body hook. Override a body hook and return SL_ACTION_CONTINUE to pass data while paused.
class Filter {
 public:
  virtual ~Filter() = default;
  virtual sl_type_action onRequestHeaders(Stream&, bool /*end_stream*/) {
    return SL_ACTION_CONTINUE;
  }
  virtual sl_type_action onRequestBody(Stream&, bool /*end_stream*/) { return SL_ACTION_DEFAULT; }
  virtual sl_type_action onRequestTrailers(Stream&) { return SL_ACTION_DEFAULT; }
  virtual sl_type_action onResponseHeaders(Stream&, bool /*end_stream*/) {
    return SL_ACTION_CONTINUE;
  }
  virtual sl_type_action onResponseBody(Stream&, bool /*end_stream*/) { return SL_ACTION_DEFAULT; }
  virtual sl_type_action onResponseTrailers(Stream&) { return SL_ACTION_DEFAULT; }
  virtual void onStreamComplete(Stream&) {}
  virtual void onTimer(Stream&, uint64_t /*token*/) {}
  // A callout this filter started (Stream::callout) ended; `result` (views) is valid during the
  // call. Never called once the stream is over.
  virtual void onCalloutDone(Stream&, uint64_t /*id*/, const sl_type_callout_result&) {}
  // Called (ABI 1.3) after each upstream attempt only in a plugin that defines
  // SLUICE_SDK_OBSERVE_UPSTREAM_ATTEMPTS before including this header: otherwise the plugin does
  // not export sl_on_upstream_attempt_done, and its streams cost the core nothing to measure.
  // Observe-only until retries land: the return value is ignored.
  virtual bool onUpstreamAttemptDone(Stream&, const sl_type_attempt_result&,
                                     uint64_t* /*retry_after_ms*/) {
    return false;
  }
  // ABI 1.4, for the filter that enabled retries (Stream::enableRetries): an attempt ended (a
  // response head not passed on yet, or a failure). Return SL_RETRY_YES with `decision`
  // filled for another attempt, SL_RETRY_NO or SL_RETRY_LIMIT_EXCEEDED to let it stand.
  virtual int onUpstreamRetry(Stream&, const sl_type_attempt_result&,
                              sl_type_retry_decision& /*decision*/) {
    return SL_RETRY_NO;
  }
  // For a filter whose config defines routes (ABI 1.3): the stream's route (a handle from
  // ConfigContext::defineRoute), or nullptr when none matches. Only reads the request.
  virtual const sl_type_route* onSelectRoute(Stream&) { return nullptr; }

 private:
  friend struct FilterAccess;
  bool shared_ = false;  // returned by FilterConfig::sharedFilter(): never deleted per stream
};

// A filter's config: built once per http_filters entry (main thread), shared by every worker's
// streams (read it only).
class FilterConfig {
 public:
  virtual ~FilterConfig() = default;
  // A filter instance for a new stream.
  virtual std::unique_ptr<Filter> newFilter(Stream& stream) = 0;
  // For filters with no per-stream state: one filter, owned by the config, that every stream of
  // every worker shares (its methods must then be safe to call concurrently: read-only). When
  // this returns non-null, newFilter is not called and no allocation happens per stream.
  virtual Filter* sharedFilter() { return nullptr; }
  // Per-route config for this filter (ABI 1.3): `ctx.bytes()` is a route's value, parsed as the
  // registration's route config type. Return nullptr after ctx.fail() to refuse it. The default
  // refuses: the filter takes no per-route config.
  virtual std::unique_ptr<RouteConfig> newRouteConfig(ConfigContext& ctx) {
    ctx.fail("this filter takes no per-route config");
    return nullptr;
  }
};

// The SDK's access to Filter internals.
struct FilterAccess {
  static void markShared(Filter& f) { f.shared_ = true; }
  static bool shared(const Filter& f) { return f.shared_; }
};

// One filter a plugin provides: its name, its config type (empty: JSON), and how to build its
// config.
struct FilterRegistration {
  const char* name;
  const char* config_type;          // full protobuf message name, or "" for JSON
  std::string_view descriptor_set;  // serialized FileDescriptorSet, or empty
  std::unique_ptr<FilterConfig> (*create)(ConfigContext&);
  // The per-route config's message type (ABI 1.3): nullptr means the config's own type, ""
  // JSON.
  const char* route_config_type = nullptr;
};

// Register<MyConfig>("name"[, "pkg.Message"[, descriptor_set[, "pkg.PerRouteMessage"]]]):
// MyConfig derives from FilterConfig and has
// `static std::unique_ptr<MyConfig> create(ConfigContext&)`.
template <class Config>
constexpr FilterRegistration Register(const char* name, const char* config_type = "",
                                      std::string_view descriptor_set = {},
                                      const char* route_config_type = nullptr) {
  return FilterRegistration{
      name, config_type, descriptor_set,
      [](ConfigContext& ctx) -> std::unique_ptr<FilterConfig> { return Config::create(ctx); },
      route_config_type};
}

namespace internal {

// "exception: <what>" in a fixed buffer: reporting an exception must not throw (a bad_alloc
// from building a std::string would escape into the host's C frames).
class ExceptionText {
 public:
  explicit ExceptionText(const char* what) noexcept {
    const int n = std::snprintf(buf_, sizeof(buf_), "exception: %s", what != nullptr ? what : "");
    len_ =
        n < 0 ? 0
              : (static_cast<size_t>(n) < sizeof(buf_) ? static_cast<size_t>(n) : sizeof(buf_) - 1);
  }
  sl_type_str str() const noexcept { return sl_type_str{buf_, len_}; }

 private:
  char buf_[512];
  size_t len_ = 0;
};

// Fails the stream for the exception being handled (call only inside a catch block).
inline void FailForCurrentException(sl_type_stream* s) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    sl_host_fail_stream(s, ExceptionText(e.what()).str());
  } catch (...) {
    sl_host_fail_stream(s, Str("exception of unknown type"));
  }
}

// Logs the exception being handled where no stream can be failed (call only inside a catch).
inline void LogCurrentException(const char* where) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    char buf[600];
    const int n = std::snprintf(buf, sizeof(buf), "%s: exception: %s", where, e.what());
    if (n > 0) {
      sl_host_log(SL_LOG_ERROR,
                  sl_type_str{buf, static_cast<size_t>(n) < sizeof(buf) ? static_cast<size_t>(n)
                                                                        : sizeof(buf) - 1});
    }
  } catch (...) {
    sl_host_log(SL_LOG_ERROR, Str("exception of unknown type"));
  }
}

// Runs `fn`; an escaping exception fails the stream: the host answers 500 when no response has
// reached the client yet (even from a response hook), resets the stream otherwise, counts it in
// plugin.<filter>.failures and logs the exception's what().
template <class Fn>
sl_type_action Guard(sl_type_stream* s, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (...) {
    FailForCurrentException(s);
  }
  return SL_ACTION_STOP;
}

}  // namespace internal

template <class Fn>
void StreamRef::Run(void* ctx, void* filter, sl_type_stream* stream) {
  std::unique_ptr<Fn> fn(static_cast<Fn*>(ctx));
  if (stream == nullptr) {
    // The stream is gone: nothing to fail, but the exception must not reach the host's frames.
    try {
      (*fn)(static_cast<Filter*>(nullptr), static_cast<Stream*>(nullptr));
    } catch (...) {
      internal::LogCurrentException("a function posted to a gone stream");
    }
    return;
  }
  Stream s(stream);
  try {
    (*fn)(static_cast<Filter*>(filter), &s);
  } catch (...) {
    internal::FailForCurrentException(stream);
  }
}

namespace internal {

struct ConfigHolder {
  const FilterRegistration* registration;
  std::unique_ptr<FilterConfig> config;
};

inline Filter* AsFilter(void* f) { return static_cast<Filter*>(f); }

}  // namespace internal
}  // namespace sluice::sdk

// Defines the plugin's exported hooks for the filters listed (FilterRegistration values).
// Use once per plugin, at namespace scope.
#define SLUICE_PLUGIN_FILTERS(...)                                                                 \
  namespace sluice_sdk_plugin {                                                                    \
  static const ::sluice::sdk::FilterRegistration kFilters[] = {__VA_ARGS__};                       \
  static constexpr size_t kFilterCount = sizeof(kFilters) / sizeof(kFilters[0]);                   \
  static const ::sluice::sdk::FilterRegistration* Find(sl_type_str name) {                         \
    for (const auto& r : kFilters) {                                                               \
      if (::sluice::sdk::View(name) == r.name) return &r;                                          \
    }                                                                                              \
    return nullptr;                                                                                \
  }                                                                                                \
  }                                                                                                \
  extern "C" {                                                                                     \
  SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }                            \
  SL_EXPORT const char* const* sl_on_filter_names(void) {                                          \
    static const char* names[sluice_sdk_plugin::kFilterCount + 1] = {};                            \
    for (size_t i = 0; i < sluice_sdk_plugin::kFilterCount; ++i) {                                 \
      names[i] = sluice_sdk_plugin::kFilters[i].name;                                              \
    }                                                                                              \
    return names;                                                                                  \
  }                                                                                                \
  SL_EXPORT sl_type_result sl_on_config_type(sl_type_str name, sl_type_config_type* out) {         \
    const auto* r = sluice_sdk_plugin::Find(name);                                                 \
    if (r == nullptr || r->config_type[0] == '\0') return SL_ERR_NOT_FOUND;                        \
    out->message_type = ::sluice::sdk::Str(r->config_type);                                        \
    if (out->size >= offsetof(sl_type_config_type, descriptor_set) + sizeof(sl_type_str)) {        \
      out->descriptor_set = ::sluice::sdk::Str(r->descriptor_set);                                 \
    }                                                                                              \
    return SL_OK;                                                                                  \
  }                                                                                                \
  SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,           \
                                            sl_type_str config, void** out) {                      \
    const auto* r = sluice_sdk_plugin::Find(name);                                                 \
    ::sluice::sdk::ConfigContext ctx(host, ::sluice::sdk::View(name),                              \
                                     ::sluice::sdk::View(config));                                 \
    if (r == nullptr) {                                                                            \
      ctx.fail("no such filter in this plugin");                                                   \
      return SL_ERR_NOT_FOUND;                                                                     \
    }                                                                                              \
    try {                                                                                          \
      auto c = r->create(ctx);                                                                     \
      if (!c) return SL_ERR_INVALID;                                                               \
      /* Marked here, on the main thread, not by the workers that hand it out. */                  \
      if (::sluice::sdk::Filter* shared = c->sharedFilter()) {                                     \
        ::sluice::sdk::FilterAccess::markShared(*shared);                                          \
      }                                                                                            \
      *out = new ::sluice::sdk::internal::ConfigHolder{r, std::move(c)};                           \
      return SL_OK;                                                                                \
    } catch (const std::exception& e) {                                                            \
      sl_host_config_error(host, ::sluice::sdk::internal::ExceptionText(e.what()).str());          \
    } catch (...) {                                                                                \
      ctx.fail("exception of unknown type");                                                       \
    }                                                                                              \
    return SL_ERR_INVALID;                                                                         \
  }                                                                                                \
  SL_EXPORT void sl_on_config_destroy(void* config) {                                              \
    delete static_cast<::sluice::sdk::internal::ConfigHolder*>(config);                            \
  }                                                                                                \
  SL_EXPORT void* sl_on_filter_new(void* config, sl_type_stream* s) {                              \
    try {                                                                                          \
      auto* holder = static_cast<::sluice::sdk::internal::ConfigHolder*>(config);                  \
      if (::sluice::sdk::Filter* shared = holder->config->sharedFilter()) return shared;           \
      ::sluice::sdk::Stream stream(s);                                                             \
      return holder->config->newFilter(stream).release();                                          \
    } catch (...) {                                                                                \
      ::sluice::sdk::internal::LogCurrentException("newFilter");                                   \
      return nullptr; /* the host fails the stream (500) and counts it */                          \
    }                                                                                              \
  }                                                                                                \
  SL_EXPORT void sl_on_filter_destroy(void* f) {                                                   \
    ::sluice::sdk::Filter* filter = ::sluice::sdk::internal::AsFilter(f);                          \
    if (!::sluice::sdk::FilterAccess::shared(*filter)) delete filter;                              \
  }                                                                                                \
  SL_EXPORT sl_type_action sl_on_request_headers(void* f, sl_type_stream* s, int end) {            \
    return ::sluice::sdk::internal::Guard(s, [&] {                                                 \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onRequestHeaders(st, end != 0);                 \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT sl_type_action sl_on_request_body(void* f, sl_type_stream* s, int end) {               \
    return ::sluice::sdk::internal::Guard(s, [&] {                                                 \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onRequestBody(st, end != 0);                    \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT sl_type_action sl_on_request_trailers(void* f, sl_type_stream* s) {                    \
    return ::sluice::sdk::internal::Guard(s, [&] {                                                 \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onRequestTrailers(st);                          \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT sl_type_action sl_on_response_headers(void* f, sl_type_stream* s, int end) {           \
    return ::sluice::sdk::internal::Guard(s, [&] {                                                 \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onResponseHeaders(st, end != 0);                \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT sl_type_action sl_on_response_body(void* f, sl_type_stream* s, int end) {              \
    return ::sluice::sdk::internal::Guard(s, [&] {                                                 \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onResponseBody(st, end != 0);                   \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT sl_type_action sl_on_response_trailers(void* f, sl_type_stream* s) {                   \
    return ::sluice::sdk::internal::Guard(s, [&] {                                                 \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onResponseTrailers(st);                         \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT void sl_on_stream_complete(void* f, sl_type_stream* s) {                               \
    ::sluice::sdk::internal::Guard(s, [&] {                                                        \
      ::sluice::sdk::Stream st(s);                                                                 \
      ::sluice::sdk::internal::AsFilter(f)->onStreamComplete(st);                                  \
      return SL_ACTION_CONTINUE;                                                                   \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT void sl_on_timer(void* f, sl_type_stream* s, uint64_t token) {                         \
    ::sluice::sdk::internal::Guard(s, [&] {                                                        \
      ::sluice::sdk::Stream st(s);                                                                 \
      ::sluice::sdk::internal::AsFilter(f)->onTimer(st, token);                                    \
      return SL_ACTION_CONTINUE;                                                                   \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT void sl_on_callout_done(void* f, sl_type_stream* s, uint64_t id,                       \
                                    const sl_type_callout_result* r) {                             \
    ::sluice::sdk::internal::Guard(s, [&] {                                                        \
      ::sluice::sdk::Stream st(s);                                                                 \
      ::sluice::sdk::internal::AsFilter(f)->onCalloutDone(st, id, *r);                             \
      return SL_ACTION_CONTINUE;                                                                   \
    });                                                                                            \
  }                                                                                                \
  SL_EXPORT sl_type_result sl_on_route_config_type(sl_type_str name, sl_type_config_type* out) {   \
    const auto* r = sluice_sdk_plugin::Find(name);                                                 \
    if (r == nullptr) return SL_ERR_NOT_FOUND;                                                     \
    const char* type = r->route_config_type != nullptr ? r->route_config_type : r->config_type;    \
    if (type[0] == '\0') return SL_ERR_NOT_FOUND;                                                  \
    out->message_type = ::sluice::sdk::Str(type);                                                  \
    if (out->size >= offsetof(sl_type_config_type, descriptor_set) + sizeof(sl_type_str)) {        \
      out->descriptor_set = ::sluice::sdk::Str(r->descriptor_set);                                 \
    }                                                                                              \
    return SL_OK;                                                                                  \
  }                                                                                                \
  SL_EXPORT sl_type_result sl_on_route_config_new(sl_type_config_host* host, void* config,         \
                                                  sl_type_str name, sl_type_str bytes,             \
                                                  void** out) {                                    \
    ::sluice::sdk::ConfigContext ctx(host, ::sluice::sdk::View(name), ::sluice::sdk::View(bytes)); \
    try {                                                                                          \
      auto* holder = static_cast<::sluice::sdk::internal::ConfigHolder*>(config);                  \
      auto c = holder->config->newRouteConfig(ctx);                                                \
      if (!c) return SL_ERR_INVALID;                                                               \
      *out = c.release();                                                                          \
      return SL_OK;                                                                                \
    } catch (const std::exception& e) {                                                            \
      sl_host_config_error(host, ::sluice::sdk::internal::ExceptionText(e.what()).str());          \
    } catch (...) {                                                                                \
      ctx.fail("exception of unknown type");                                                       \
    }                                                                                              \
    return SL_ERR_INVALID;                                                                         \
  }                                                                                                \
  SL_EXPORT void sl_on_route_config_destroy(void* c) {                                             \
    delete static_cast<::sluice::sdk::RouteConfig*>(c);                                            \
  }                                                                                                \
  SL_EXPORT const sl_type_route* sl_on_route_select(void* f, sl_type_stream* s) {                  \
    try {                                                                                          \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onSelectRoute(st);                              \
    } catch (...) {                                                                                \
      ::sluice::sdk::internal::LogCurrentException("onSelectRoute");                               \
      return nullptr; /* no route: the router answers 404 */                                       \
    }                                                                                              \
  }                                                                                                \
  SL_EXPORT int sl_on_upstream_retry(void* f, sl_type_stream* s, const sl_type_attempt_result* r,  \
                                     sl_type_retry_decision* d) {                                  \
    try {                                                                                          \
      ::sluice::sdk::Stream st(s);                                                                 \
      return ::sluice::sdk::internal::AsFilter(f)->onUpstreamRetry(st, *r, *d);                    \
    } catch (...) {                                                                                \
      ::sluice::sdk::internal::LogCurrentException("onUpstreamRetry");                             \
      return SL_RETRY_NO; /* the outcome stands */                                                 \
    }                                                                                              \
  }                                                                                                \
  SLUICE_SDK_INTERNAL_ATTEMPT_HOOK                                                                 \
  } /* extern "C" */

// sl_on_upstream_attempt_done, exported only on request (see Filter::onUpstreamAttemptDone).
#ifdef SLUICE_SDK_OBSERVE_UPSTREAM_ATTEMPTS
#define SLUICE_SDK_INTERNAL_ATTEMPT_HOOK                                                        \
  SL_EXPORT int sl_on_upstream_attempt_done(void* f, sl_type_stream* s,                         \
                                            const sl_type_attempt_result* r, uint64_t* delay) { \
    bool retry = false;                                                                         \
    try {                                                                                       \
      ::sluice::sdk::Stream st(s);                                                              \
      retry = ::sluice::sdk::internal::AsFilter(f)->onUpstreamAttemptDone(st, *r, delay);       \
    } catch (...) {                                                                             \
      /* observe-only: nothing to fail, but said */                                             \
      ::sluice::sdk::internal::LogCurrentException("onUpstreamAttemptDone");                    \
    }                                                                                           \
    return retry ? 1 : 0;                                                                       \
  }
#else
#define SLUICE_SDK_INTERNAL_ATTEMPT_HOOK
#endif

#endif  // SLUICE_SDK_FILTER_H_
