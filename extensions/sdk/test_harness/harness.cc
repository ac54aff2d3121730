// The harness's driver side: loading plugins, building chains (config parsed as sluice's loader
// parses it), and running streams through them on a fake clock. The sl_host_* functions the
// plugin calls back are in fake_host.cc.

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "extensions/sdk/test_harness/internal.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "source/config/loader.h"

namespace sluice::plugin_test {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool NameEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

namespace {

std::string View(sl_type_str s) {
  return s.data == nullptr ? std::string() : std::string(s.data, s.len);
}
sl_type_str Str(const std::string& s) { return sl_type_str{s.data(), s.size()}; }

std::string Concat(const std::deque<std::string>& chunks) {
  std::string out;
  for (const auto& c : chunks) out += c;
  return out;
}

template <typename T>
void Sym(void* handle, const char* name, T& out) {
  out = reinterpret_cast<T>(dlsym(handle, name));
}

// The loader's rules (source/plugin/loader.cc): the version handshake, the required hooks.
std::unique_ptr<Plugin> Open(void* handle, const std::string& path, const std::string& one_name,
                             std::string* error) {
  Hooks h;
  Sym(handle, "sl_on_abi_version", h.abi_version);
  if (h.abi_version == nullptr) {
    *error = path + ": not a sluice plugin (no sl_on_abi_version)";
    return nullptr;
  }
  const uint32_t v = h.abi_version();
  if ((v >> 16) != SL_ABI_VERSION_MAJOR || (v & 0xffff) > SL_ABI_VERSION_MINOR) {
    *error = absl::StrCat(path, ": plugin ABI ", v >> 16, ".", v & 0xffff,
                          " does not load into this host (ABI ", SL_ABI_VERSION_MAJOR, ".",
                          SL_ABI_VERSION_MINOR, ")");
    return nullptr;
  }
  Sym(handle, "sl_on_config_new", h.config_new);
  if (h.config_new == nullptr) {
    *error = path + ": no sl_on_config_new";
    return nullptr;
  }
  // The loader's own lookup: the same hooks of the same plugin as in sluice.
  sluice::plugin::LookupOptionalHooks(handle, v & 0xffff, h);
  auto impl = std::make_unique<Plugin::Impl>();
  impl->path = path;
  impl->version = v;
  impl->hooks = h;
  if (h.filter_names != nullptr) {
    for (const char* const* n = h.filter_names(); n != nullptr && *n != nullptr; ++n) {
      impl->filter_names.emplace_back(*n);
    }
  } else {
    impl->filter_names.push_back(one_name);
  }
  return std::make_unique<Plugin>(std::move(impl));
}

}  // namespace

// ----- Plugin -----

Plugin::Plugin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Plugin::~Plugin() = default;
const std::string& Plugin::path() const { return impl_->path; }
uint32_t Plugin::abiVersion() const { return impl_->version; }
const std::vector<std::string>& Plugin::filterNames() const { return impl_->filter_names; }

// ----- Host -----

Host::Host() : state_(std::make_unique<HostState>()) { SetLogHost(state_.get()); }
Host::~Host() { SetLogHost(nullptr); }

Plugin* Host::load(const std::string& path, std::string* error) {
  std::string local;
  if (error == nullptr) error = &local;
  // As sluice loads plugins: every symbol bound now, the plugin's own kept to itself.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    *error = absl::StrCat(path, ": ", e != nullptr ? e : "dlopen failed");
    return nullptr;
  }
  std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  if (base.rfind("lib", 0) == 0) base = base.substr(3);
  if (base.size() > 3 && base.compare(base.size() - 3, 3, ".so") == 0) {
    base.resize(base.size() - 3);
  }
  auto plugin = Open(handle, path, base, error);
  if (!plugin) return nullptr;
  state_->plugins.push_back(std::move(plugin));
  return state_->plugins.back().get();
}

Plugin* Host::linked(const std::string& filter_name, std::string* error) {
  std::string local;
  if (error == nullptr) error = &local;
  void* handle = dlopen(nullptr, RTLD_NOW);
  auto plugin = Open(handle, "(linked)", filter_name, error);
  if (!plugin) return nullptr;
  state_->plugins.push_back(std::move(plugin));
  return state_->plugins.back().get();
}

void Host::setClusters(std::vector<std::string> clusters) {
  state_->clusters = std::move(clusters);
}
void Host::setLogLevel(sl_type_log_level level) { state_->log_level = level; }
uint64_t Host::now() const { return state_->now; }

size_t Host::runPosts() {
  size_t ran = 0;
  for (;;) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      if (state_->posts.empty()) break;
      fn = std::move(state_->posts.front());
      state_->posts.pop_front();
    }
    fn();
    ++ran;
  }
  return ran;
}

void Host::advance(uint64_t ms) {
  const uint64_t target = state_->now + ms;
  runPosts();
  for (;;) {
    // The earliest timer due by `target` (ties: the one started first).
    sl_type_stream* due_filter = nullptr;
    uint64_t due_token = 0;
    Timer best{UINT64_MAX, UINT64_MAX};
    for (StreamState* s : state_->streams) {
      for (auto& f : s->filters) {
        for (const auto& [token, t] : f->timers) {
          if (t.due <= target && (t.due < best.due || (t.due == best.due && t.seq < best.seq))) {
            best = t;
            due_filter = f.get();
            due_token = token;
          }
        }
      }
    }
    if (due_filter == nullptr) break;
    state_->now = best.due;
    due_filter->timers.erase(due_token);
    const Hooks& h = due_filter->stream->chain->filters[due_filter->index]->plugin->impl().hooks;
    if (h.timer != nullptr && !due_filter->stream->completed) {
      h.timer(due_filter->instance, due_filter, due_token);
    }
    runPosts();
  }
  state_->now = target;
}

const std::map<std::string, Metric>& Host::metrics() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->metrics;
}

int64_t Host::metric(const std::string& full_name) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->metrics.find(full_name);
  return it == state_->metrics.end() ? 0 : it->second.value;
}

const std::vector<LogLine>& Host::logs() const { return state_->logs; }

bool Host::logged(const std::string& text) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  for (const auto& l : state_->logs) {
    if (l.message.find(text) != std::string::npos) return true;
  }
  return false;
}

// ----- Chain: config -----

namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;

// The message type `type` names: from the plugin's generated code (in the shared libprotobuf's
// pool) or its descriptor set, as sluice's loader finds it.
const google::protobuf::Message* Prototype(Plugin::Impl& p, const sl_type_config_type& type,
                                           std::string* error) {
  const std::string name = View(type.message_type);
  if (const Descriptor* d = DescriptorPool::generated_pool()->FindMessageTypeByName(name)) {
    return google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
  }
  if (type.descriptor_set.len == 0) {
    *error = absl::StrCat("config type ", name,
                          " is not registered by the plugin's generated code and the plugin "
                          "gives no descriptor set for it");
    return nullptr;
  }
  if (!p.pool) {
    google::protobuf::FileDescriptorSet set;
    if (!set.ParseFromArray(type.descriptor_set.data, static_cast<int>(type.descriptor_set.len))) {
      *error = "the plugin's descriptor set is not a serialized FileDescriptorSet";
      return nullptr;
    }
    auto pool = std::make_unique<DescriptorPool>(DescriptorPool::generated_pool());
    for (const auto& file : set.file()) {
      if (DescriptorPool::generated_pool()->FindFileByName(file.name()) != nullptr) continue;
      if (pool->BuildFile(file) == nullptr) {
        *error =
            absl::StrCat("the plugin's descriptor set does not build (file ", file.name(), ")");
        return nullptr;
      }
    }
    p.pool = std::move(pool);
    p.factory = std::make_unique<google::protobuf::DynamicMessageFactory>(p.pool.get());
  }
  const Descriptor* d = p.pool->FindMessageTypeByName(name);
  if (d == nullptr) {
    *error = absl::StrCat("config type ", name, " is not in the plugin's descriptor set");
    return nullptr;
  }
  return p.factory->GetPrototype(d);
}

// `value` (null: none given) as the bytes the plugin's config hook gets: the typed message
// serialized, or JSON text. `path` starts error messages.
bool ConfigBytes(Plugin::Impl& p, sl_type_result (*type_hook)(sl_type_str, sl_type_config_type*),
                 const std::string& filter, const google::protobuf::Value* value,
                 const std::string& path, std::string* out, std::string* error) {
  sl_type_config_type type{};
  type.size = sizeof(type);
  const bool typed =
      type_hook != nullptr && type_hook(Str(filter), &type) == SL_OK && type.message_type.len != 0;
  if (!typed) {
    if (value == nullptr) {
      *out = "{}";
      return true;
    }
    const auto status = google::protobuf::util::MessageToJsonString(*value, out);
    if (!status.ok()) *error = std::string(status.message());
    return status.ok();
  }
  const google::protobuf::Message* prototype = Prototype(p, type, error);
  if (prototype == nullptr) return false;
  std::unique_ptr<google::protobuf::Message> msg(prototype->New());
  if (value != nullptr) {
    const std::string type_name = View(type.message_type);
    if (value->kind_case() != google::protobuf::Value::kStructValue) {
      *error = absl::StrCat(path, ": expected a mapping (type.googleapis.com/", type_name, ")");
      return false;
    }
    // "@type" is optional in a test; when given it must name the filter's type.
    auto it = value->struct_value().fields().find("@type");
    if (it != value->struct_value().fields().end()) {
      const std::string& url = it->second.string_value();
      if (url.substr(url.rfind('/') == std::string::npos ? 0 : url.rfind('/') + 1) != type_name) {
        *error = absl::StrCat(path, ".@type: \"", url, "\" is not this filter's config type (",
                              "type.googleapis.com/", type_name, ")");
        return false;
      }
    }
    config::ValueSources sources;
    absl::Status s = sources.ParseValueInto(path, *value, *msg);
    if (!s.ok()) {
      *error = std::string(s.message());
      return false;
    }
  }
  if (!msg->SerializeToString(out)) {
    *error = "cannot serialize the config";
    return false;
  }
  return true;
}

}  // namespace

Chain::Chain(Host& host) : state_(std::make_unique<ChainState>()) { state_->host = &host; }

Chain::~Chain() {
  for (auto& f : state_->filters) {
    const Hooks& h = f->plugin->impl().hooks;
    for (void* rc : f->route_configs) {
      if (h.route_config_destroy != nullptr) h.route_config_destroy(rc);
    }
  }
  for (auto& f : state_->filters) {
    const Hooks& h = f->plugin->impl().hooks;
    if (f->has_config && h.config_destroy != nullptr) h.config_destroy(f->config);
  }
}

std::string Chain::add(Plugin* plugin, const std::string& filter, const std::string& config,
                       Format format, const std::string& name) {
  if (plugin == nullptr) return "no plugin";
  Plugin::Impl& p = plugin->impl();
  const std::string fname = name.empty() ? filter : name;
  const std::string where = absl::StrCat("filter \"", filter, "\": ");
  if (std::find(p.filter_names.begin(), p.filter_names.end(), filter) == p.filter_names.end()) {
    return absl::StrCat(where, "plugin ", p.path,
                        " provides no such filter (it has: ", absl::StrJoin(p.filter_names, ", "),
                        ")");
  }
  std::string bytes;
  std::string error;
  if (format == Format::kProtoBytes) {
    bytes = config;
  } else {
    google::protobuf::Value value;
    const bool given = !config.empty();
    if (given) {
      absl::Status s = config::ParseInto(
          config, format == Format::kYaml ? config::Format::kYaml : config::Format::kJson,
          "typed_config", value);
      if (!s.ok()) return where + std::string(s.message());
    }
    if (!ConfigBytes(p, p.hooks.config_type, filter, given ? &value : nullptr, "typed_config",
                     &bytes, &error)) {
      return where + error;
    }
  }
  auto f = std::make_unique<ChainFilter>();
  f->plugin = plugin;
  f->filter = filter;
  f->name = fname;
  sl_type_config_host host;
  host.host = &state_->host->state();
  host.filter_name = fname;
  host.routes = &f->routes;
  const sl_type_result r = p.hooks.config_new(&host, Str(filter), Str(bytes), &f->config);
  if (r != SL_OK) {
    return absl::StrCat(where, "the plugin rejected its config: ",
                        host.error.empty() ? "(no message)" : host.error);
  }
  f->has_config = true;
  ChainFilter* raw = f.get();
  state_->filters.push_back(std::move(f));
  if (!raw->routes.empty()) {
    if (p.hooks.route_select == nullptr) {
      return where + "the plugin defines routes but exports no sl_on_route_select";
    }
    if (state_->definer != nullptr) {
      return absl::StrCat(where,
                          "only one filter of an http_filters list may define routes, and \"",
                          state_->definer->name, "\" does already");
    }
    state_->definer = raw;
    for (auto& route : raw->routes) route->owner = raw;
  }
  return "";
}

std::string Chain::build() {
  if (state_->built) return "";
  state_->built = true;
  if (state_->definer == nullptr) return "";
  for (auto& route : state_->definer->routes) {
    for (const PendingRouteConfig& pending : route->pending) {
      const std::string where = absl::StrCat("filter \"", state_->definer->name,
                                             "\": typed_config.", pending.field_path, ": ");
      ChainFilter* target = nullptr;
      std::vector<std::string> names;
      for (auto& f : state_->filters) {
        names.push_back("\"" + f->name + "\"");
        if (f->name == pending.filter_name) target = f.get();
      }
      if (target == nullptr) {
        return absl::StrCat(where, "no plugin filter named \"", pending.filter_name,
                            "\" in this http_filters list (it has: ", absl::StrJoin(names, ", "),
                            ")");
      }
      Plugin::Impl& p = target->plugin->impl();
      if (p.hooks.route_config_new == nullptr) {
        return absl::StrCat(where, "filter \"", pending.filter_name,
                            "\" takes no per-route config (its plugin exports no "
                            "sl_on_route_config_new)");
      }
      google::protobuf::Value value;
      if (pending.format == SL_ROUTE_CONFIG_JSON) {
        const auto s = google::protobuf::util::JsonStringToMessage(pending.value, &value);
        if (!s.ok()) return where + "not JSON: " + std::string(s.message());
      } else if (!value.ParseFromString(pending.value)) {
        return where + "not a serialized google.protobuf.Value";
      }
      auto type_hook =
          p.hooks.route_config_type != nullptr ? p.hooks.route_config_type : p.hooks.config_type;
      std::string bytes, error;
      if (!ConfigBytes(p, type_hook, target->filter, &value, "typed_config." + pending.field_path,
                       &bytes, &error)) {
        return absl::StrCat("filter \"", state_->definer->name, "\": ", error);
      }
      sl_type_config_host host;
      host.host = &state_->host->state();
      host.filter_name = target->name;
      void* rc = nullptr;
      const sl_type_result r =
          p.hooks.route_config_new(&host, target->config, Str(target->filter), Str(bytes), &rc);
      if (r != SL_OK) {
        return absl::StrCat(
            where, "filter \"", pending.filter_name,
            "\" rejected its per-route config: ", host.error.empty() ? "(no message)" : host.error);
      }
      target->route_configs.push_back(rc);
      route->filter_configs.push_back({target, rc});
    }
  }
  return "";
}

std::unique_ptr<Stream> Chain::newStream() {
  if (!state_->built) build();
  static uint64_t next_id = 1;
  auto s = std::make_unique<StreamState>();
  s->host = &state_->host->state();
  s->chain = state_.get();
  s->id = next_id++;
  const size_t n = state_->filters.size();
  for (Direction* d : {&s->req, &s->resp}) {
    d->held.assign(n, false);
    d->waiting.assign(n, {});
    d->buffering.assign(n, false);
    d->buffer.assign(n, {});
    d->buffer_end.assign(n, false);
  }
  s->resp.request = false;
  s->remote.size = sizeof(sl_type_address);
  s->remote.family = 4;
  s->remote.ip[0] = 127;
  s->remote.ip[3] = 1;
  s->remote.port = 40000;
  for (size_t i = 0; i < n; ++i) {
    auto f = std::make_unique<sl_type_stream>();
    f->stream = s.get();
    f->index = i;
    const ChainFilter& cf = *state_->filters[i];
    f->instance = cf.config;
    s->filters.push_back(std::move(f));
  }
  s->host->streams.push_back(s.get());
  StreamState* raw = s.get();
  auto stream = std::make_unique<Stream>(std::move(s));
  for (size_t i = 0; i < n; ++i) {
    const Hooks& h = state_->filters[i]->plugin->impl().hooks;
    if (h.filter_new != nullptr) {
      void* inst = h.filter_new(state_->filters[i]->config, raw->filters[i].get());
      raw->filters[i]->instance = inst;
      if (inst == nullptr) raw->fail(i, "sl_on_filter_new returned NULL");
    }
  }
  return stream;
}

// ----- Stream: driving -----

namespace {

size_t FilterAt(const StreamState& s, const Direction& d, size_t pos) {
  return d.request ? pos : s.filters.size() - 1 - pos;
}

void SetHead(HeadMap& m, const Headers& headers) {
  m.exists = true;
  m.fields.clear();
  m.pseudo.clear();
  for (const auto& h : headers) {
    if (!h.name.empty() && h.name[0] == ':') {
      if (h.name == ":authority") {
        m.fields.push_back({"host", h.value});
      } else {
        m.pseudo[h.name] = h.value;
      }
    } else {
      m.fields.push_back(h);
    }
  }
}

Headers GetHead(const HeadMap& m, bool request) {
  Headers out;
  if (!m.exists) return out;
  for (const char* p : {":method", ":path", ":authority", ":scheme", ":status"}) {
    if (std::string_view(p) == ":authority") {
      if (!request) continue;
      for (const auto& f : m.fields) {
        if (NameEquals(f.name, "host")) {
          out.push_back({p, f.value});
          break;
        }
      }
      continue;
    }
    auto it = m.pseudo.find(p);
    if (it != m.pseudo.end()) out.push_back({p, it->second});
  }
  for (const auto& f : m.fields) out.push_back(f);
  return out;
}

std::string First(const HeadMap& m, const std::string& name) {
  if (!name.empty() && name[0] == ':') {
    if (name == ":authority") return First(m, "host");
    auto it = m.pseudo.find(name);
    return it == m.pseudo.end() ? "" : it->second;
  }
  for (const auto& f : m.fields) {
    if (NameEquals(f.name, name)) return f.value;
  }
  return "";
}

bool Has(const HeadMap& m, const std::string& name) {
  if (!name.empty() && name[0] == ':') {
    if (name == ":authority") return Has(m, "host");
    return m.pseudo.count(name) != 0;
  }
  for (const auto& f : m.fields) {
    if (NameEquals(f.name, name)) return true;
  }
  return false;
}

bool Stopped(const StreamState& s, const Direction& d) {
  if (s.reset || !s.failure.empty() || s.completed) return true;
  return d.request && s.local_reply.has_value();
}

}  // namespace

void StreamState::fail(size_t filter, std::string reason) {
  if (!failure.empty() || completed) return;
  failure = reason.empty() ? "(no reason)" : std::move(reason);
  std::lock_guard<std::mutex> lock(host->mu);
  host->logs.push_back(
      {SL_LOG_ERROR, "plugin filter \"" + chain->filters[filter]->name + "\" failed: " + failure});
  auto& m = host->metrics["plugin." + chain->filters[filter]->name + ".failures"];
  m.kind = SL_METRIC_COUNTER;
  ++m.value;
}

const sl_type_route* StreamState::chooseRoute() {
  if (route_chosen) return route;
  route_chosen = true;
  route = nullptr;
  ChainFilter* definer = chain->definer;
  if (definer == nullptr) return nullptr;
  size_t idx = 0;
  while (chain->filters[idx].get() != definer) ++idx;
  ++route_selections;
  route = definer->plugin->impl().hooks.route_select(filters[idx]->instance, filters[idx].get());
  return route;
}

void StreamState::sendLocalReply(size_t filter, LocalReply reply) {
  local_reply = reply;
  req.flow = Flow::kEnded;
  Headers head{{":status", std::to_string(reply.status)}};
  for (const auto& h : reply.headers) head.push_back(h);
  SetHead(maps[SL_HEADERS_RESPONSE], head);
  // Through every filter's response hooks, as sluice (and Envoy) run a local reply.
  const size_t start = 0;
  deliver(resp, start, Event{Event::kHeaders, "", reply.body.empty()});
  if (!reply.body.empty()) deliver(resp, start, Event{Event::kData, reply.body, true});
  // Recorded as it left them (a filter may still hold part of it paused).
  if (local_reply) {
    local_reply->headers = maps[SL_HEADERS_RESPONSE].fields;
    local_reply->body = resp.forwarded;
  }
}

void StreamState::deliver(Direction& d, size_t pos, Event ev) {
  if (Stopped(*this, d)) return;
  const size_t n = filters.size();
  if (pos >= n) {
    if (ev.kind == Event::kHeaders) d.headers_through = true;
    if (ev.kind == Event::kData) d.forwarded += ev.data;
    if (ev.end || ev.kind == Event::kTrailers) d.ended = true;
    return;
  }
  const size_t idx = FilterAt(*this, d, pos);
  sl_type_stream* f = filters[idx].get();
  const Hooks& h = chain->filters[idx]->plugin->impl().hooks;
  const int dir = d.request ? 1 : 2;
  auto call = [&](auto hook, auto... args) -> sl_type_action {
    f->in_hook = dir;
    const sl_type_action a = hook(f->instance, f, args...);
    f->in_hook = 0;
    return a;
  };
  auto misuse = [&](const char* what) {
    misuses.push_back(what);
    fail(idx, what);
  };
  auto flush = [&]() {
    // Held events go on in order: heads and data, the buffered body, then trailers.
    std::deque<Event> events = std::move(d.waiting[pos]);
    d.waiting[pos].clear();
    std::deque<Event> trailers;
    for (auto& e : events) {
      if (e.kind == Event::kTrailers) {
        trailers.push_back(std::move(e));
      } else {
        deliver(d, pos + 1, std::move(e));
      }
    }
    if (d.buffering[pos]) {
      d.buffering[pos] = false;
      std::string body = Concat(d.buffer[pos]);
      d.buffer[pos].clear();
      deliver(d, pos + 1, Event{Event::kData, std::move(body), d.buffer_end[pos]});
    }
    for (auto& e : trailers) deliver(d, pos + 1, std::move(e));
  };
  const bool pending_before = d.held[pos];
  switch (ev.kind) {
    case Event::kHeaders: {
      auto hook = d.request ? h.request_headers : h.response_headers;
      sl_type_action a = SL_ACTION_CONTINUE;
      if (hook != nullptr) {
        f->in_headers_hook = true;
        f->headers_end = ev.end;
        a = call(hook, ev.end ? 1 : 0);
        f->in_headers_hook = false;
      }
      if (Stopped(*this, d)) return;
      if (a == SL_ACTION_STOP) {
        d.held[pos] = true;
        d.waiting[pos].push_back(std::move(ev));
        return;
      }
      if (a != SL_ACTION_CONTINUE) {
        misuse(a == SL_ACTION_STOP_AND_BUFFER ? "misuse_buffer_from_headers"
                                              : "misuse_unknown_action");
        return;
      }
      deliver(d, pos + 1, std::move(ev));
      return;
    }
    case Event::kData: {
      auto hook = d.request ? h.request_body : h.response_body;
      std::deque<std::string> chunk;
      std::deque<std::string>* view = &chunk;
      if (d.buffering[pos]) {
        d.buffer[pos].push_back(std::move(ev.data));
        d.buffer_end[pos] = ev.end;
        view = &d.buffer[pos];
      } else {
        chunk.push_back(std::move(ev.data));
      }
      sl_type_action a = SL_ACTION_DEFAULT;
      if (hook != nullptr) {
        f->current_body[d.request ? 0 : 1] = view;
        f->in_last_body_hook = ev.end;
        a = call(hook, ev.end ? 1 : 0);
        f->in_last_body_hook = false;
        f->current_body[d.request ? 0 : 1] = nullptr;
      }
      if (Stopped(*this, d)) return;
      // Trailers this hook made (sl_host_trailers_add): the body no longer ends the message;
      // they follow it, from the next filter on.
      const bool made = f->made_trailers;
      f->made_trailers = false;
      if (made) {
        ev.end = false;
        d.buffer_end[pos] = false;
      }
      auto trailers_after = [&]() {
        if (made) deliver(d, pos + 1, Event{Event::kTrailers, "", true});
      };
      if (a > SL_ACTION_DEFAULT) {
        misuse("misuse_unknown_action");
        return;
      }
      if (a == SL_ACTION_STOP_AND_BUFFER) {
        if (!d.buffering[pos]) {
          d.buffering[pos] = true;
          d.buffer[pos] = std::move(chunk);
          d.buffer_end[pos] = ev.end;
        }
        d.held[pos] = true;
        if (made) d.waiting[pos].push_back(Event{Event::kTrailers, "", true});
        return;
      }
      if (d.buffering[pos]) {
        // The hook saw the whole buffer and let it go (CONTINUE), or looked (DEFAULT/STOP).
        if (made) d.waiting[pos].push_back(Event{Event::kTrailers, "", true});
        if (a == SL_ACTION_CONTINUE) {
          d.held[pos] = false;
          flush();
        }
        return;
      }
      Event out{Event::kData, Concat(chunk), ev.end};
      if (a == SL_ACTION_CONTINUE) {
        // As in Envoy: CONTINUE from a body hook releases headers this filter paused.
        d.held[pos] = false;
        d.waiting[pos].push_back(std::move(out));
        if (made) d.waiting[pos].push_back(Event{Event::kTrailers, "", true});
        flush();
      } else if (a == SL_ACTION_STOP || pending_before) {
        d.held[pos] = true;
        d.waiting[pos].push_back(std::move(out));
        if (made) d.waiting[pos].push_back(Event{Event::kTrailers, "", true});
      } else {
        deliver(d, pos + 1, std::move(out));
        trailers_after();
      }
      return;
    }
    case Event::kTrailers: {
      auto hook = d.request ? h.request_trailers : h.response_trailers;
      sl_type_action a = SL_ACTION_DEFAULT;
      if (hook != nullptr) a = call(hook);
      if (Stopped(*this, d)) return;
      if (a != SL_ACTION_CONTINUE && a != SL_ACTION_STOP && a != SL_ACTION_DEFAULT) {
        misuse("misuse_unknown_action");
        return;
      }
      if (a == SL_ACTION_CONTINUE) {
        d.held[pos] = false;
        d.waiting[pos].push_back(std::move(ev));
        flush();
      } else if (a == SL_ACTION_STOP || d.held[pos] || d.buffering[pos]) {
        d.held[pos] = true;
        d.waiting[pos].push_back(std::move(ev));
      } else {
        deliver(d, pos + 1, std::move(ev));
      }
      return;
    }
  }
}

void StreamState::resume(Direction& d, size_t idx) {
  const size_t pos = d.request ? idx : filters.size() - 1 - idx;
  d.held[pos] = false;
  std::deque<Event> events = std::move(d.waiting[pos]);
  d.waiting[pos].clear();
  std::deque<Event> trailers;
  for (auto& e : events) {
    if (e.kind == Event::kTrailers) {
      trailers.push_back(std::move(e));
    } else {
      deliver(d, pos + 1, std::move(e));
    }
  }
  if (d.buffering[pos]) {
    d.buffering[pos] = false;
    std::string body = Concat(d.buffer[pos]);
    d.buffer[pos].clear();
    deliver(d, pos + 1, Event{Event::kData, std::move(body), d.buffer_end[pos]});
  }
  for (auto& e : trailers) deliver(d, pos + 1, std::move(e));
}

Stream::Stream(std::unique_ptr<StreamState> state) : state_(std::move(state)) {}

Stream::~Stream() {
  StreamState& s = *state_;
  if (!s.completed) complete();
  for (size_t i = 0; i < s.filters.size(); ++i) {
    const Hooks& h = s.chain->filters[i]->plugin->impl().hooks;
    if (h.filter_new != nullptr && h.filter_destroy != nullptr && s.filters[i]->instance) {
      h.filter_destroy(s.filters[i]->instance);
    }
  }
  // Posts still queued for this stream see (NULL, NULL): refs outlive it.
  for (sl_type_stream_ref* ref : s.refs) {
    ref->stream = nullptr;
    ref->release();
  }
  auto& streams = s.host->streams;
  streams.erase(std::remove(streams.begin(), streams.end(), &s), streams.end());
}

namespace {
Flow FlowOf(const StreamState& s, const Direction& d) {
  if (s.reset || !s.failure.empty()) return Flow::kEnded;
  if (d.request && s.local_reply) return Flow::kEnded;
  for (size_t i = 0; i < d.held.size(); ++i) {
    if (d.held[i] || d.buffering[i]) return Flow::kPaused;
  }
  return Flow::kContinued;
}
}  // namespace

Flow Stream::requestHeaders(const Headers& headers, bool end_stream) {
  SetHead(state_->maps[SL_HEADERS_REQUEST], headers);
  state_->deliver(state_->req, 0, Event{Event::kHeaders, "", end_stream});
  return requestFlow();
}

Flow Stream::requestBody(const std::string& data, bool end_stream) {
  state_->deliver(state_->req, 0, Event{Event::kData, data, end_stream});
  return requestFlow();
}

Flow Stream::requestBodyChunked(const std::string& data, size_t chunk, bool end_stream) {
  if (chunk == 0) chunk = data.size() == 0 ? 1 : data.size();
  size_t off = 0;
  do {
    const size_t len = std::min(chunk, data.size() - off);
    requestBody(data.substr(off, len), end_stream && off + len == data.size());
    off += len;
  } while (off < data.size());
  return requestFlow();
}

Flow Stream::requestTrailers(const Headers& trailers) {
  SetHead(state_->maps[SL_TRAILERS_REQUEST], trailers);
  state_->deliver(state_->req, 0, Event{Event::kTrailers, "", true});
  return requestFlow();
}

Flow Stream::responseHeaders(const Headers& headers, bool end_stream) {
  // A local reply is the response: no upstream one follows it.
  if (state_->local_reply) return Flow::kEnded;
  SetHead(state_->maps[SL_HEADERS_RESPONSE], headers);
  state_->deliver(state_->resp, 0, Event{Event::kHeaders, "", end_stream});
  return responseFlow();
}

Flow Stream::responseBody(const std::string& data, bool end_stream) {
  if (state_->local_reply) return Flow::kEnded;
  state_->deliver(state_->resp, 0, Event{Event::kData, data, end_stream});
  return responseFlow();
}

Flow Stream::responseBodyChunked(const std::string& data, size_t chunk, bool end_stream) {
  if (chunk == 0) chunk = data.size() == 0 ? 1 : data.size();
  size_t off = 0;
  do {
    const size_t len = std::min(chunk, data.size() - off);
    responseBody(data.substr(off, len), end_stream && off + len == data.size());
    off += len;
  } while (off < data.size());
  return responseFlow();
}

Flow Stream::responseTrailers(const Headers& trailers) {
  if (state_->local_reply) return Flow::kEnded;
  SetHead(state_->maps[SL_TRAILERS_RESPONSE], trailers);
  state_->deliver(state_->resp, 0, Event{Event::kTrailers, "", true});
  return responseFlow();
}

void Stream::complete() {
  StreamState& s = *state_;
  if (s.completed) return;
  s.completed = true;
  for (auto& f : s.filters) f->timers.clear();
  s.callouts.clear();
  for (size_t i = 0; i < s.filters.size(); ++i) {
    const Hooks& h = s.chain->filters[i]->plugin->impl().hooks;
    if (h.stream_complete != nullptr) h.stream_complete(s.filters[i]->instance, s.filters[i].get());
  }
}

bool Stream::completeCallout(uint64_t id, uint32_t status, const Headers& headers,
                             const std::string& body, sl_type_attempt_outcome outcome) {
  StreamState& s = *state_;
  auto it = std::find_if(s.callouts.begin(), s.callouts.end(),
                         [id](const Callout& c) { return c.id == id; });
  if (it == s.callouts.end() || s.completed) return false;
  const Callout c = *it;
  s.callouts.erase(it);
  std::vector<sl_type_header> views;
  for (const auto& h : headers) views.push_back({Str(h.name), Str(h.value)});
  sl_type_callout_result r{};
  r.size = sizeof(r);
  r.status = status;
  r.outcome = outcome;
  r.headers = views.data();
  r.header_count = views.size();
  r.body = Str(body);
  const Hooks& h = s.chain->filters[c.filter]->plugin->impl().hooks;
  if (h.callout_done != nullptr) {
    h.callout_done(s.filters[c.filter]->instance, s.filters[c.filter].get(), id, &r);
  }
  return true;
}

bool Stream::upstreamAttemptDone(const sl_type_attempt_result& result, uint64_t* retry_after_ms) {
  StreamState& s = *state_;
  bool retry = false;
  for (size_t i = 0; i < s.filters.size(); ++i) {
    const Hooks& h = s.chain->filters[i]->plugin->impl().hooks;
    uint64_t after = 0;
    if (h.upstream_attempt_done != nullptr &&
        h.upstream_attempt_done(s.filters[i]->instance, s.filters[i].get(), &result, &after) != 0) {
      retry = true;
      if (retry_after_ms != nullptr) *retry_after_ms = after;
    }
  }
  return retry;
}

int Stream::upstreamRetry(const sl_type_attempt_result& result, sl_type_retry_decision* decision) {
  StreamState& s = *state_;
  sl_type_retry_decision d;
  std::memset(&d, 0, sizeof(d));
  d.size = sizeof(d);
  int verdict = SL_RETRY_NO;
  if (s.retry.has_value() && !s.completed) {
    const size_t i = s.retry->filter;
    const Hooks& h = s.chain->filters[i]->plugin->impl().hooks;
    if (h.upstream_retry != nullptr) {
      verdict = h.upstream_retry(s.filters[i]->instance, s.filters[i].get(), &result, &d);
    }
  }
  if (decision != nullptr) *decision = d;
  return verdict;
}

const std::optional<RetryOptions>& Stream::retryOptions() const { return state_->retry; }

void Stream::setProtocol(sl_type_protocol protocol) { state_->protocol = protocol; }
void Stream::setDownstreamRemote(const std::string& ipv4, uint16_t port) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (std::sscanf(ipv4.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) == 4) {
    state_->remote.family = 4;
    state_->remote.ip[0] = static_cast<uint8_t>(a);
    state_->remote.ip[1] = static_cast<uint8_t>(b);
    state_->remote.ip[2] = static_cast<uint8_t>(c);
    state_->remote.ip[3] = static_cast<uint8_t>(d);
  }
  state_->remote.port = port;
}

Flow Stream::requestFlow() const { return FlowOf(*state_, state_->req); }
Flow Stream::responseFlow() const { return FlowOf(*state_, state_->resp); }
Headers Stream::requestHeaders() const { return GetHead(state_->maps[SL_HEADERS_REQUEST], true); }
std::string Stream::requestHeader(const std::string& name) const {
  return First(state_->maps[SL_HEADERS_REQUEST], name);
}
bool Stream::hasRequestHeader(const std::string& name) const {
  return Has(state_->maps[SL_HEADERS_REQUEST], name);
}
Headers Stream::responseHeaders() const {
  return GetHead(state_->maps[SL_HEADERS_RESPONSE], false);
}
std::string Stream::responseHeader(const std::string& name) const {
  return First(state_->maps[SL_HEADERS_RESPONSE], name);
}
bool Stream::hasResponseHeader(const std::string& name) const {
  return Has(state_->maps[SL_HEADERS_RESPONSE], name);
}
Headers Stream::requestTrailers() const { return state_->maps[SL_TRAILERS_REQUEST].fields; }
Headers Stream::responseTrailers() const { return state_->maps[SL_TRAILERS_RESPONSE].fields; }
const std::string& Stream::forwardedRequestBody() const { return state_->req.forwarded; }
const std::string& Stream::forwardedResponseBody() const { return state_->resp.forwarded; }
bool Stream::requestEnded() const { return state_->req.ended; }
bool Stream::responseEnded() const { return state_->resp.ended; }
const std::optional<LocalReply>& Stream::localReply() const { return state_->local_reply; }
const std::optional<Upstream>& Stream::upstream() const { return state_->upstream; }
bool Stream::wasReset() const { return state_->reset; }
const std::string& Stream::failure() const { return state_->failure; }
const std::vector<std::string>& Stream::misuses() const { return state_->misuses; }
uint64_t Stream::rejectedCalls() const { return state_->rejected; }
std::string Stream::routeName() const {
  return state_->route_chosen && state_->route != nullptr ? state_->route->name : "";
}
size_t Stream::routeSelections() const { return state_->route_selections; }
std::vector<Callout> Stream::pendingCallouts() const { return state_->callouts; }
std::optional<std::string> Stream::metadata(const std::string& key) const {
  auto it = state_->metadata.find(key);
  if (it == state_->metadata.end()) return std::nullopt;
  return it->second;
}
std::map<uint64_t, uint64_t> Stream::timers(size_t filter) const {
  std::map<uint64_t, uint64_t> out;
  if (filter >= state_->filters.size()) return out;
  for (const auto& [token, t] : state_->filters[filter]->timers) out[token] = t.due;
  return out;
}
void* Stream::filterInstance(size_t filter) const {
  return filter < state_->filters.size() ? state_->filters[filter]->instance : nullptr;
}

}  // namespace sluice::plugin_test
