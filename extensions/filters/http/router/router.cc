// The router: virtual hosts by authority, routes matched in order (path, method, headers,
// query), and the action — send upstream to a cluster (or a weighted pick of clusters), with
// path and host rewrites and timeouts; redirect; direct response — plus field changes per
// virtual host and route. Policy only: the core carries the request upstream
// (sl_host_set_upstream). Written on the public ABI with the C++ SDK, like any plugin.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "extensions/filters/http/router/router.pb.h"
#include "re2/re2.h"
#include "sluice/sdk/filter.h"

namespace {

namespace pb = sluice::extensions::router::v1;
using sluice::sdk::ConfigContext;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Headers;
using sluice::sdk::Stream;

std::string Lower(std::string_view s) {
  std::string out(s);
  // ASCII only (host names): no locale lookup per byte as std::tolower would do.
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

uint64_t Ms(const google::protobuf::Duration& d) {
  return static_cast<uint64_t>(d.seconds()) * 1000 + static_cast<uint64_t>(d.nanos()) / 1000000;
}

using sluice::sdk::IsValidFieldName;
using sluice::sdk::IsValidFieldValue;

// Config checks. Every string of the config that reaches the wire (a field, a Location, a
// request target), a log line or a stat name is checked at load for what that place can carry,
// so that a value can never split a message, forge a log line or make the host refuse a field
// at run time (a refused Location would leave the request unanswered).

std::string Quoted(std::string_view s) {
  // Escaped so that the error itself stays one line whatever the value holds.
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Names for logs and the stream info (and stat tags): letters, digits, '_', '-', '.'.
bool IsValidName(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}
constexpr const char* kNameRule = "letters, digits, '_', '-' and '.' only";

// Printable ASCII without spaces: what a request target or a query may hold as sent.
bool IsTargetChars(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// An absolute path: '/' and then target characters (percent-escapes, sub-delims, ':' and '@'
// included; RFC 3986 §3.3). `query_ok`: '?' may start a query (a redirect's path may carry one).
bool IsValidPath(std::string_view s, bool query_ok) {
  if (s.empty() || s[0] != '/' || !IsTargetChars(s)) return false;
  if (s.find('#') != std::string_view::npos) return false;
  return query_ok || s.find('?') == std::string_view::npos;
}

// A host name as RFC 3986's reg-name is used for DNS (letters, digits, '-', '.', and '_' which
// real internal names carry), an IPv4 address, or an IPv6 literal in brackets.
bool IsValidHostName(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  if (s.front() == '[') {
    if (s.size() < 3 || s.back() != ']') return false;
    for (unsigned char c : s.substr(1, s.size() - 2)) {
      if (!std::isxdigit(c) && c != ':' && c != '.') return false;
    }
    return true;
  }
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

// uri-host [":" port] (RFC 3986 §3.2.2/§3.2.3), port 1..65535: a Host field or a redirect's host.
bool IsValidHostPort(std::string_view s) {
  std::string_view host = s;
  const size_t colon = s.rfind(':');
  const size_t bracket = s.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    const std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    uint32_t n = 0;
    for (unsigned char c : port) {
      if (!std::isdigit(c)) return false;
      n = n * 10 + (c - '0');
    }
    if (n == 0 || n > 65535) return false;
    host = s.substr(0, colon);
  }
  return IsValidHostName(host);
}

// A virtual host's domain: "*", "*.suffix", "prefix.*" or a host name (no port: ports are
// ignored when matching).
bool IsValidDomain(std::string_view d) {
  if (d == "*") return true;
  if (d.size() > 2 && d.substr(0, 2) == "*.") {
    d.remove_prefix(2);
  } else if (d.size() > 2 && d.substr(d.size() - 2) == ".*") {
    d.remove_suffix(2);
  }
  return IsValidHostName(d);
}

// A duration as whole milliseconds (what the core takes), or the reason it is not a timeout:
// negative, malformed, or between 0 and 1ms (which would become 0, i.e. no timeout at all).
bool TimeoutMs(const google::protobuf::Duration& d, uint64_t& ms, std::string& why) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() >= 1000000000 || d.seconds() > 315576000000) {
    why = "must be a duration from 0s up (\"0s\": none), got " + std::to_string(d.seconds()) +
          "s " + std::to_string(d.nanos()) + "ns";
    return false;
  }
  if (d.seconds() == 0 && d.nanos() > 0 && d.nanos() < 1000000) {
    why = "must be 0s (none) or at least 1ms (timeouts count whole milliseconds), got " +
          std::to_string(d.nanos()) + "ns";
    return false;
  }
  ms = Ms(d);
  return true;
}

// A compiled RE2, or the reason it did not compile.
std::unique_ptr<re2::RE2> Compile(const std::string& pattern, std::string& error) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(pattern, options);
  if (!re->ok()) {
    error = "invalid regex \"" + pattern + "\": " + re->error();
    return nullptr;
  }
  return re;
}

struct Mutations {
  std::vector<std::string> request_remove;
  std::vector<pb::HeaderValue> request_add;
  std::vector<std::string> response_remove;
  std::vector<pb::HeaderValue> response_add;

  bool load(const pb::HeaderMutations& m, const std::string& where, std::string& error) {
    for (const auto& n : m.request_remove()) request_remove.push_back(n);
    for (const auto& n : m.response_remove()) response_remove.push_back(n);
    for (const auto& h : m.request_add()) request_add.push_back(h);
    for (const auto& h : m.response_add()) response_add.push_back(h);
    for (const auto& [list, field] : {std::pair{&request_remove, ".request_remove"},
                                      std::pair{&response_remove, ".response_remove"}}) {
      for (size_t i = 0; i < list->size(); ++i) {
        if (!IsValidFieldName((*list)[i])) {
          error = where + field + "[" + std::to_string(i) + "]: " + Quoted((*list)[i]) +
                  " is not a field name";
          return false;
        }
      }
    }
    for (const auto& [list, field] :
         {std::pair{&request_add, ".request_add"}, std::pair{&response_add, ".response_add"}}) {
      for (size_t i = 0; i < list->size(); ++i) {
        const pb::HeaderValue& h = (*list)[i];
        const std::string at = where + field + "[" + std::to_string(i) + "]";
        if (!IsValidFieldName(h.name())) {
          error = at + ".name: " + Quoted(h.name()) + " is not a field name";
          return false;
        }
        if (!IsValidFieldValue(h.value())) {
          error = at + ".value: " + Quoted(h.value()) +
                  " must not contain CR, LF, NUL or other control characters";
          return false;
        }
      }
    }
    return true;
  }
  static void Apply(Headers h, const std::vector<std::string>& remove,
                    const std::vector<pb::HeaderValue>& add) {
    for (const auto& n : remove) h.remove(n);
    for (const auto& v : add) {
      if (v.append()) {
        h.add(v.name(), v.value());
      } else {
        h.set(v.name(), v.value());
      }
    }
  }
};

struct HeaderMatch {
  std::string name;
  enum class Kind { kExact, kPresent, kRegex } kind = Kind::kPresent;
  std::string exact;
  bool present = true;
  std::unique_ptr<re2::RE2> regex;
  bool invert = false;

  bool matches(const Headers& h) const {
    const auto v = h.get(name);
    bool r = false;
    switch (kind) {
      case Kind::kExact:
        r = v.has_value() && *v == exact;
        break;
      case Kind::kPresent:
        r = v.has_value() == present;
        break;
      case Kind::kRegex:
        r = v.has_value() && re2::RE2::FullMatch(re2::StringPiece(v->data(), v->size()), *regex);
        break;
    }
    return r != invert;
  }
};

struct QueryMatch {
  std::string name;
  std::optional<std::string> exact;  // unset: present
  bool present = true;

  bool matches(std::string_view query) const {
    std::optional<std::string_view> found;
    size_t pos = 0;
    while (pos <= query.size() && !query.empty()) {
      size_t amp = query.find('&', pos);
      if (amp == std::string_view::npos) amp = query.size();
      const std::string_view pair = query.substr(pos, amp - pos);
      const size_t eq = pair.find('=');
      if (pair.substr(0, eq) == name) {
        found = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        break;
      }
      pos = amp + 1;
    }
    if (exact) return found.has_value() && *found == *exact;
    return found.has_value() == present;
  }
};

struct VirtualHost;

struct Route {
  std::string name;
  // Match.
  enum class PathKind { kAny, kPrefix, kExact, kRegex } path_kind = PathKind::kAny;
  std::string path;
  std::unique_ptr<re2::RE2> path_regex;
  std::vector<std::string> methods;
  std::vector<HeaderMatch> headers;
  std::vector<QueryMatch> query;
  bool connect = false;
  // Action.
  enum class Action { kRoute, kRedirect, kDirect } action = Action::kRoute;
  std::vector<std::pair<std::string, uint32_t>> clusters;  // one, or weighted
  uint64_t total_weight = 0;
  std::string prefix_rewrite;
  std::unique_ptr<re2::RE2> rewrite_regex;
  std::string rewrite_substitution;
  std::string host_rewrite;
  uint64_t timeout_ms = 0;
  uint64_t response_headers_timeout_ms = 15000;
  uint64_t idle_timeout_ms = 0;  // the cluster's read_timeout
  uint64_t per_try_timeout_ms = 0;
  uint64_t connect_timeout_ms = 0;
  uint64_t send_timeout_ms = 0;
  uint64_t request_buffer_bytes = 64 * 1024;
  std::vector<pb::HashPolicy> hash_policies;
  bool terminate_connect = false;
  pb::RedirectAction redirect;
  pb::DirectResponseAction direct;
  Mutations mutations;
  // The host's handle for the route (sl_host_config_route_define) and its virtual host.
  const sl_type_route* handle = nullptr;
  const VirtualHost* vhost = nullptr;

  bool matches(std::string_view method, std::string_view path_only, std::string_view query_str,
               const Headers& h) const {
    if (connect != (method == "CONNECT")) return false;
    switch (path_kind) {
      case PathKind::kAny:
        break;
      case PathKind::kPrefix:
        if (path_only.substr(0, path.size()) != path) return false;
        break;
      case PathKind::kExact:
        if (path_only != path) return false;
        break;
      case PathKind::kRegex:
        if (!re2::RE2::FullMatch(re2::StringPiece(path_only.data(), path_only.size()),
                                 *path_regex)) {
          return false;
        }
        break;
    }
    if (!methods.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
      return false;
    }
    for (const auto& m : headers) {
      if (!m.matches(h)) return false;
    }
    for (const auto& q : query) {
      if (!q.matches(query_str)) return false;
    }
    return true;
  }
};

struct VirtualHost {
  std::string name;
  std::vector<Route> routes;
  Mutations mutations;
};

class RouterConfig;

class RouterFilter : public Filter {
 public:
  explicit RouterFilter(const RouterConfig& config) : config_(config) {}
  const sl_type_route* onSelectRoute(Stream& s) override;
  sl_type_action onRequestHeaders(Stream& s, bool end_stream) override;
  sl_type_action onResponseHeaders(Stream& s, bool end_stream) override;

 private:
  const RouterConfig& config_;
  const Route* route_ = nullptr;
};

class RouterConfig : public FilterConfig {
 public:
  std::vector<VirtualHost> vhosts;
  // Domain lookup: exact names, then suffix ("*.x" -> ".x"), prefix ("x.*" -> "x."), "*".
  std::vector<std::pair<std::string, size_t>> exact, suffixes, prefixes;
  std::optional<size_t> any;
  sluice::sdk::Counter no_route;
  sluice::sdk::Counter rq_redirect;
  sluice::sdk::Counter rq_direct;
  mutable std::atomic<uint64_t> pick{0};

  static std::unique_ptr<RouterConfig> create(ConfigContext& ctx) {
    pb::Router proto;
    if (!ctx.parse(proto)) {
      ctx.fail("cannot decode the Router config");
      return nullptr;
    }
    auto c = std::make_unique<RouterConfig>();
    std::string error;
    if (!c->load(proto, ctx, error)) {
      ctx.fail(error);
      return nullptr;
    }
    c->no_route = ctx.counter("no_route");
    c->rq_redirect = ctx.counter("rq_redirect");
    c->rq_direct = ctx.counter("rq_direct_response");
    return c;
  }

  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<RouterFilter>(*this);
  }

  const VirtualHost* findHost(std::string_view authority) const {
    // Port and case do not matter; IPv6 literals keep their brackets.
    std::string host = Lower(authority);
    if (!host.empty() && host[0] == '[') {
      const size_t close = host.find(']');
      if (close != std::string::npos) host.resize(close + 1);
    } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
      host.resize(colon);
    }
    for (const auto& [d, i] : exact) {
      if (d == host) return &vhosts[i];
    }
    const std::pair<std::string, size_t>* best = nullptr;
    for (const auto& s : suffixes) {
      if (host.size() > s.first.size() &&
          host.compare(host.size() - s.first.size(), s.first.size(), s.first) == 0 &&
          (best == nullptr || s.first.size() > best->first.size())) {
        best = &s;
      }
    }
    if (best != nullptr) return &vhosts[best->second];
    for (const auto& p : prefixes) {
      if (host.size() > p.first.size() && host.compare(0, p.first.size(), p.first) == 0 &&
          (best == nullptr || p.first.size() > best->first.size())) {
        best = &p;
      }
    }
    if (best != nullptr) return &vhosts[best->second];
    return any ? &vhosts[*any] : nullptr;
  }

  const std::string& pickCluster(const Route& r) const {
    if (r.clusters.size() == 1) return r.clusters[0].first;
    // A Weyl sequence (golden-ratio steps of a per-config counter): picks interleave (a 10/90
    // canary gets about every tenth request, not ten in a row) and the split over any window
    // of requests stays within a few of exact; deterministic and lock-free.
    const uint64_t step = pick.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ull;
    uint64_t n = static_cast<uint64_t>((static_cast<__uint128_t>(step) * r.total_weight) >> 64);
    for (const auto& [name, w] : r.clusters) {
      if (n < w) return name;
      n -= w;
    }
    return r.clusters.back().first;
  }

 private:
  bool load(const pb::Router& proto, const ConfigContext& ctx, std::string& error) {
    // Lower-cased domain -> the virtual host that has it; virtual host names -> index.
    std::map<std::string, int> domains;
    std::map<std::string, int> names;
    for (int vi = 0; vi < proto.virtual_hosts_size(); ++vi) {
      const auto& vp = proto.virtual_hosts(vi);
      const std::string where = "virtual_hosts[" + std::to_string(vi) + "]";
      VirtualHost vh;
      vh.name = vp.name();
      if (vh.name.empty()) {
        error = where + ".name: required (it names the virtual host in logs)";
        return false;
      }
      if (!IsValidName(vh.name)) {
        error = where + ".name: " + Quoted(vh.name) + " is not a valid name: " + kNameRule;
        return false;
      }
      if (auto [it, inserted] = names.emplace(vh.name, vi); !inserted) {
        error = where + ".name: duplicate virtual host name " + Quoted(vh.name) +
                " (also virtual_hosts[" + std::to_string(it->second) + "])";
        return false;
      }
      if (vp.domains_size() == 0) {
        error = where + ".domains: at least one is required";
        return false;
      }
      for (int di = 0; di < vp.domains_size(); ++di) {
        const std::string& d = vp.domains(di);
        const std::string dwhere = where + ".domains[" + std::to_string(di) + "]";
        const std::string l = Lower(d);
        if (!IsValidDomain(l)) {
          error = dwhere + ": " + Quoted(d) +
                  " is not a domain: a host name without port, \"*\", \"*.suffix\" or "
                  "\"prefix.*\"";
          return false;
        }
        // The same domain twice: only the first virtual host could ever get its requests.
        if (auto [it, inserted] = domains.emplace(l, vi); !inserted) {
          error = dwhere + ": duplicate domain " + Quoted(d) + " (also in virtual_hosts[" +
                  std::to_string(it->second) + "])";
          return false;
        }
        if (l == "*") {
          any = vhosts.size();
        } else if (l.compare(0, 2, "*.") == 0) {
          suffixes.emplace_back(l.substr(1), vhosts.size());
        } else if (l.size() > 2 && l.compare(l.size() - 2, 2, ".*") == 0) {
          prefixes.emplace_back(l.substr(0, l.size() - 1), vhosts.size());
        } else {
          exact.emplace_back(l, vhosts.size());
        }
      }
      if (!vh.mutations.load(vp.headers(), where + ".headers", error)) return false;
      std::map<std::string, int> route_names;
      for (int ri = 0; ri < vp.routes_size(); ++ri) {
        Route r;
        const std::string rwhere = where + ".routes[" + std::to_string(ri) + "]";
        if (!loadRoute(vp.routes(ri), rwhere, ctx, r, error)) return false;
        // Logs and the stream info name the route: two of one name would be told apart by
        // nothing. Names are optional; unnamed routes do not collide.
        if (!r.name.empty()) {
          if (auto [it, inserted] = route_names.emplace(r.name, ri); !inserted) {
            error = rwhere + ".name: duplicate route name " + Quoted(r.name) + " (also " + where +
                    ".routes[" + std::to_string(it->second) + "])";
            return false;
          }
        }
        vh.routes.push_back(std::move(r));
      }
      vhosts.push_back(std::move(vh));
    }
    // The routes are where they stay now: tell the host about each (its handle is what
    // onSelectRoute returns), with what it carries for other filters.
    for (size_t vi = 0; vi < vhosts.size(); ++vi) {
      const auto& vp = proto.virtual_hosts(static_cast<int>(vi));
      const std::string where = "virtual_hosts[" + std::to_string(vi) + "]";
      if (!CheckPerFilter(vp.typed_per_filter_config(), vp.metadata(), where, error)) return false;
      for (size_t ri = 0; ri < vhosts[vi].routes.size(); ++ri) {
        Route& r = vhosts[vi].routes[ri];
        const auto& rp = vp.routes(static_cast<int>(ri));
        const std::string rwhere = where + ".routes[" + std::to_string(ri) + "]";
        if (!CheckPerFilter(rp.typed_per_filter_config(), rp.metadata(), rwhere, error)) {
          return false;
        }
        r.vhost = &vhosts[vi];
        ConfigContext::RouteDefinition def;
        def.name = vhosts[vi].name + "/" + (r.name.empty() ? std::to_string(ri) : r.name);
        def.data = &r;
        // The route's own entries, then the virtual host's for filters the route leaves out.
        std::map<std::string, std::string> metadata(rp.metadata().begin(), rp.metadata().end());
        metadata.insert(vp.metadata().begin(), vp.metadata().end());
        def.metadata.assign(metadata.begin(), metadata.end());
        const std::map<std::string, google::protobuf::Value> own(
            rp.typed_per_filter_config().begin(), rp.typed_per_filter_config().end());
        const std::map<std::string, google::protobuf::Value> inherited(
            vp.typed_per_filter_config().begin(), vp.typed_per_filter_config().end());
        for (const auto& [filter, value] : own) {
          def.filter_configs.push_back({filter, value.SerializeAsString(),
                                        SL_ROUTE_CONFIG_PROTO_VALUE,
                                        rwhere + ".typed_per_filter_config[\"" + filter + "\"]"});
        }
        for (const auto& [filter, value] : inherited) {
          if (own.count(filter) != 0) continue;
          def.filter_configs.push_back({filter, value.SerializeAsString(),
                                        SL_ROUTE_CONFIG_PROTO_VALUE,
                                        where + ".typed_per_filter_config[\"" + filter + "\"]"});
        }
        r.handle = ctx.defineRoute(def);
        if (r.handle == nullptr) {
          error = rwhere + ": the host refused the route's definition";
          return false;
        }
      }
    }
    return true;
  }

  // typed_per_filter_config keys name filters; metadata keys are non-empty and values one line.
  static bool CheckPerFilter(
      const google::protobuf::Map<std::string, google::protobuf::Value>& per_filter,
      const google::protobuf::Map<std::string, std::string>& metadata, const std::string& where,
      std::string& error) {
    for (const auto& [filter, value] : per_filter) {
      if (!IsValidName(filter)) {
        error = where + ".typed_per_filter_config: " + Quoted(filter) +
                " is not a filter name: " + kNameRule;
        return false;
      }
    }
    for (const auto& [key, value] : metadata) {
      if (key.empty()) {
        error = where + ".metadata: an empty key";
        return false;
      }
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        error = where + ".metadata[\"" + key + "\"]: a value with CR, LF or NUL";
        return false;
      }
    }
    return true;
  }

  // `name`, at `where`, is a cluster of the config; otherwise the error lists the ones there are.
  static bool CheckCluster(const std::string& name, const std::string& where,
                           const ConfigContext& ctx, std::string& error) {
    if (name.empty()) {
      error = where + ": required (the name of a cluster)";
      return false;
    }
    if (ctx.hasCluster(name)) return true;
    const std::vector<std::string_view> clusters = ctx.clusters();
    std::string defined;
    constexpr size_t kMaxNames = 10;
    for (size_t i = 0; i < clusters.size() && i < kMaxNames; ++i) {
      if (i > 0) defined += ", ";
      defined += Quoted(clusters[i]);
    }
    if (clusters.size() > kMaxNames) defined += ", ...";
    error = where + ": unknown cluster " + Quoted(name) + " (" +
            (clusters.empty() ? "no clusters are defined" : "defined: " + defined) + ")";
    return false;
  }

  static bool loadRoute(const pb::Route& rp, const std::string& where, const ConfigContext& ctx,
                        Route& r, std::string& error) {
    r.name = rp.name();
    if (!r.name.empty() && !IsValidName(r.name)) {
      error = where + ".name: " + Quoted(r.name) + " is not a valid name: " + kNameRule;
      return false;
    }
    const auto& m = rp.match();
    switch (m.path_specifier_case()) {
      case pb::RouteMatch::kPrefix:
        r.path_kind = Route::PathKind::kPrefix;
        r.path = m.prefix();
        if (!IsValidPath(r.path, /*query_ok=*/false)) {
          error = where + ".match.prefix: " + Quoted(r.path) +
                  " is not a path prefix: it starts with '/' and has no spaces, controls, '?' "
                  "or '#' (it is matched against the path before any query)";
          return false;
        }
        break;
      case pb::RouteMatch::kPath:
        r.path_kind = Route::PathKind::kExact;
        r.path = m.path();
        if (!IsValidPath(r.path, /*query_ok=*/false)) {
          error = where + ".match.path: " + Quoted(r.path) +
                  " is not a path: it starts with '/' and has no spaces, controls, '?' or '#' "
                  "(it is matched against the path before any query)";
          return false;
        }
        break;
      case pb::RouteMatch::kRegex:
        r.path_kind = Route::PathKind::kRegex;
        r.path_regex = Compile(m.regex(), error);
        if (!r.path_regex) {
          error = where + ".match.regex: " + error;
          return false;
        }
        break;
      case pb::RouteMatch::PATH_SPECIFIER_NOT_SET:
        break;
    }
    r.connect = m.connect();
    if (r.connect && r.path_kind != Route::PathKind::kAny) {
      error = where + ".match.connect: a CONNECT target is not a path; no path specifier with it";
      return false;
    }
    for (int i = 0; i < m.methods_size(); ++i) {
      // A method is a token (RFC 9110 §9.1); anything else could never match.
      if (!IsValidFieldName(m.methods(i))) {
        error = where + ".match.methods[" + std::to_string(i) + "]: " + Quoted(m.methods(i)) +
                " is not a method (a token, e.g. \"GET\")";
        return false;
      }
      r.methods.push_back(m.methods(i));
    }
    for (int i = 0; i < m.headers_size(); ++i) {
      const auto& hp = m.headers(i);
      const std::string hwhere = where + ".match.headers[" + std::to_string(i) + "]";
      HeaderMatch hm;
      hm.name = hp.name();
      hm.invert = hp.invert();
      if (!IsValidFieldName(hm.name)) {
        error = hwhere + ".name: " + Quoted(hm.name) + " is not a field name";
        return false;
      }
      switch (hp.match_case()) {
        case pb::HeaderMatcher::kExact:
          hm.kind = HeaderMatch::Kind::kExact;
          hm.exact = hp.exact();
          if (!IsValidFieldValue(hm.exact)) {
            error = hwhere + ".exact: " + Quoted(hm.exact) +
                    " has CR, LF, NUL or another control character: no field value can match it";
            return false;
          }
          break;
        case pb::HeaderMatcher::kRegex:
          hm.kind = HeaderMatch::Kind::kRegex;
          hm.regex = Compile(hp.regex(), error);
          if (!hm.regex) {
            error = hwhere + ".regex: " + error;
            return false;
          }
          break;
        case pb::HeaderMatcher::kPresent:
          hm.present = hp.present();
          break;
        case pb::HeaderMatcher::MATCH_NOT_SET:
          break;
      }
      r.headers.push_back(std::move(hm));
    }
    for (int i = 0; i < m.query_parameters_size(); ++i) {
      const auto& qp = m.query_parameters(i);
      const std::string qwhere = where + ".match.query_parameters[" + std::to_string(i) + "]";
      // Compared with the raw query: a space or control could never be in it.
      if (qp.name().empty() || !IsTargetChars(qp.name())) {
        error = qwhere + ".name: " + Quoted(qp.name()) +
                " is not a query parameter name (required; no spaces or controls)";
        return false;
      }
      QueryMatch q;
      q.name = qp.name();
      if (qp.match_case() == pb::QueryParameterMatcher::kExact) {
        if (!IsTargetChars(qp.exact())) {
          error = qwhere + ".exact: " + Quoted(qp.exact()) +
                  " has spaces or controls: no raw query value can match it";
          return false;
        }
        q.exact = qp.exact();
      }
      if (qp.match_case() == pb::QueryParameterMatcher::kPresent) q.present = qp.present();
      r.query.push_back(std::move(q));
    }
    switch (rp.action_case()) {
      case pb::Route::kRoute: {
        const auto& a = rp.route();
        const std::string awhere = where + ".route";
        r.action = Route::Action::kRoute;
        if (a.cluster_specifier_case() == pb::RouteAction::kCluster) {
          if (!CheckCluster(a.cluster(), awhere + ".cluster", ctx, error)) return false;
          r.clusters.emplace_back(a.cluster(), 1);
        } else if (a.cluster_specifier_case() == pb::RouteAction::kWeightedClusters) {
          const auto& wcs = a.weighted_clusters().clusters();
          for (int i = 0; i < wcs.size(); ++i) {
            // Zero weights too: a typo there would surface when the weight is raised.
            if (!CheckCluster(
                    wcs[i].name(),
                    awhere + ".weighted_clusters.clusters[" + std::to_string(i) + "].name", ctx,
                    error)) {
              return false;
            }
            if (wcs[i].weight() == 0) continue;
            r.clusters.emplace_back(wcs[i].name(), wcs[i].weight());
          }
        }
        for (const auto& [n, w] : r.clusters) r.total_weight += w;
        if (r.clusters.empty() || r.total_weight == 0) {
          error = awhere + ": a cluster (or weighted clusters with a weight) is required";
          return false;
        }
        r.prefix_rewrite = a.prefix_rewrite();
        if (!r.prefix_rewrite.empty() && r.path_kind != Route::PathKind::kPrefix) {
          error = awhere + ".prefix_rewrite: only with a prefix match";
          return false;
        }
        if (!r.prefix_rewrite.empty() && !IsValidPath(r.prefix_rewrite, /*query_ok=*/false)) {
          error = awhere + ".prefix_rewrite: " + Quoted(r.prefix_rewrite) +
                  " is not a path prefix: it starts with '/' and has no spaces, controls, '?' "
                  "or '#'";
          return false;
        }
        if (a.has_regex_rewrite() && r.connect) {
          error = awhere + ".regex_rewrite: a CONNECT target is not a path";
          return false;
        }
        if (a.has_regex_rewrite()) {
          r.rewrite_regex = Compile(a.regex_rewrite().pattern(), error);
          if (!r.rewrite_regex) {
            error = awhere + ".regex_rewrite.pattern: " + error;
            return false;
          }
          r.rewrite_substitution = a.regex_rewrite().substitution();
          std::string why;
          if (!r.rewrite_regex->CheckRewriteString(r.rewrite_substitution, &why)) {
            error = awhere + ".regex_rewrite.substitution: " + why;
            return false;
          }
          // What it writes goes into the request target (the request line).
          if (!IsTargetChars(r.rewrite_substitution)) {
            error = awhere + ".regex_rewrite.substitution: " + Quoted(r.rewrite_substitution) +
                    " has spaces or control characters (it is written into the request target)";
            return false;
          }
        }
        r.host_rewrite = a.host_rewrite();
        if (!r.host_rewrite.empty() && !IsValidHostPort(r.host_rewrite)) {
          error = awhere + ".host_rewrite: " + Quoted(r.host_rewrite) +
                  " is not a host[:port] (a host name, IPv4 address or [IPv6] literal, and a "
                  "port 1..65535)";
          return false;
        }
        std::string why;
        if (a.has_timeout() && !TimeoutMs(a.timeout(), r.timeout_ms, why)) {
          error = awhere + ".timeout: " + why;
          return false;
        }
        if (a.has_idle_timeout()) {
          if (!TimeoutMs(a.idle_timeout(), r.idle_timeout_ms, why)) {
            error = awhere + ".idle_timeout: " + why;
            return false;
          }
          if (r.idle_timeout_ms == 0) r.idle_timeout_ms = SL_TIMEOUT_NONE;  // not the cluster's
        }
        if (a.has_per_try_timeout() && !TimeoutMs(a.per_try_timeout(), r.per_try_timeout_ms, why)) {
          error = awhere + ".per_try_timeout: " + why;
          return false;
        }
        if (a.has_connect_timeout() && !TimeoutMs(a.connect_timeout(), r.connect_timeout_ms, why)) {
          error = awhere + ".connect_timeout: " + why;
          return false;
        }
        if (a.has_send_timeout()) {
          if (!TimeoutMs(a.send_timeout(), r.send_timeout_ms, why)) {
            error = awhere + ".send_timeout: " + why;
            return false;
          }
          if (r.send_timeout_ms == 0) r.send_timeout_ms = SL_TIMEOUT_NONE;
        }
        if (a.has_request_buffer_max_bytes()) {
          r.request_buffer_bytes = a.request_buffer_max_bytes().value();
        }
        if (a.has_response_headers_timeout() &&
            !TimeoutMs(a.response_headers_timeout(), r.response_headers_timeout_ms, why)) {
          error = awhere + ".response_headers_timeout: " + why;
          return false;
        }
        for (int i = 0; i < a.hash_policy_size(); ++i) {
          const auto& hp = a.hash_policy(i);
          const std::string pwhere = awhere + ".hash_policy[" + std::to_string(i) + "]";
          if (hp.policy_specifier_case() == pb::HashPolicy::kHeader &&
              !IsValidFieldName(hp.header())) {
            error = pwhere + ".header: " + Quoted(hp.header()) + " is not a field name";
            return false;
          }
          // RFC 6265 §4.1.1: a cookie-name is a token.
          if (hp.policy_specifier_case() == pb::HashPolicy::kCookie &&
              !IsValidFieldName(hp.cookie())) {
            error = pwhere + ".cookie: " + Quoted(hp.cookie()) + " is not a cookie name (a token)";
            return false;
          }
          r.hash_policies.push_back(hp);
        }
        if (a.has_connect_config()) {
          if (!r.connect) {
            error = awhere + ".connect_config: only on a route with match.connect";
            return false;
          }
          r.terminate_connect = true;
        }
        break;
      }
      case pb::Route::kRedirect: {
        r.action = Route::Action::kRedirect;
        r.redirect = rp.redirect();
        const std::string rwhere = where + ".redirect";
        const uint32_t code = r.redirect.response_code();
        if (code != 0 && code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
          error = rwhere + ".response_code: 301, 302, 303, 307 or 308";
          return false;
        }
        // All three end up in the Location field: the host refuses a field with CR/LF, which
        // would leave the request unanswered.
        const std::string& host = r.redirect.host_redirect();
        if (!host.empty() && !IsValidHostPort(host)) {
          error = rwhere + ".host_redirect: " + Quoted(host) +
                  " is not a host[:port] (a host name, IPv4 address or [IPv6] literal, and a "
                  "port 1..65535)";
          return false;
        }
        const std::string& path = r.redirect.path_redirect();
        if (!path.empty() && !IsValidPath(path, /*query_ok=*/true)) {
          error = rwhere + ".path_redirect: " + Quoted(path) +
                  " is not a path: it starts with '/' and has no spaces, controls or '#'";
          return false;
        }
        const std::string& scheme = r.redirect.scheme_redirect();
        if (!scheme.empty() && scheme != "http" && scheme != "https") {
          error = rwhere + ".scheme_redirect: " + Quoted(scheme) + " is not \"http\" or \"https\"";
          return false;
        }
        break;
      }
      case pb::Route::kDirectResponse:
        r.action = Route::Action::kDirect;
        r.direct = rp.direct_response();
        if (r.direct.status() < 200 || r.direct.status() > 599) {
          error = where + ".direct_response.status: 200..599";
          return false;
        }
        break;
      case pb::Route::ACTION_NOT_SET:
        error = where + ": an action (route, redirect or direct_response) is required";
        return false;
    }
    return r.mutations.load(rp.headers(), where + ".headers", error);
  }
};

// The first hash policy that yields a key.
std::string HashKey(const Route& r, Stream& s, const Headers& h) {
  for (const auto& p : r.hash_policies) {
    switch (p.policy_specifier_case()) {
      case pb::HashPolicy::kHeader:
        if (auto v = h.get(p.header())) return std::string(*v);
        break;
      case pb::HashPolicy::kCookie: {
        // Cookie: a=1; b=2 (RFC 6265 §4.2.1), in any of the Cookie fields.
        for (std::string_view line : h.getAll("cookie")) {
          size_t pos = 0;
          while (pos < line.size()) {
            size_t end = line.find(';', pos);
            if (end == std::string_view::npos) end = line.size();
            std::string_view pair = line.substr(pos, end - pos);
            while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
            const size_t eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == p.cookie()) {
              return std::string(pair.substr(eq + 1));
            }
            pos = end + 1;
          }
        }
        break;
      }
      case pb::HashPolicy::kSourceIp: {
        if (!p.source_ip()) break;
        const sl_type_stream_info info = s.info();
        const auto& a = info.downstream_remote;
        if (a.family == 4) return std::string(reinterpret_cast<const char*>(a.ip), 4);
        if (a.family == 6) return std::string(reinterpret_cast<const char*>(a.ip), 16);
        break;
      }
      case pb::HashPolicy::POLICY_SPECIFIER_NOT_SET:
        break;
    }
  }
  return {};
}

// The route is chosen here, when a filter of the stream first needs it (the host caches the
// answer): the router's own request hook, or an earlier filter reading its per-route config.
const sl_type_route* RouterFilter::onSelectRoute(Stream& s) {
  Headers h = s.requestHeaders();
  const std::string_view authority = h.get(":authority").value_or("");
  const std::string_view target = h.get(":path").value_or("/");
  const std::string_view method = h.get(":method").value_or("");
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  const VirtualHost* vhost = config_.findHost(authority);
  if (vhost == nullptr) return nullptr;
  for (const Route& r : vhost->routes) {
    if (r.matches(method, path, query, h)) return r.handle;
  }
  return nullptr;
}

sl_type_action RouterFilter::onRequestHeaders(Stream& s, bool) {
  Headers h = s.requestHeaders();
  // The route was matched in onSelectRoute; the target is read again only by the actions that
  // rewrite it (each header read is a host call).
  route_ = static_cast<const Route*>(s.routeData());
  if (route_ == nullptr) {
    config_.no_route.inc();
    s.sendResponse(404, "no route\n", {}, "no_route");
    return SL_ACTION_STOP;
  }
  const Route& r = *route_;
  if (r.action == Route::Action::kDirect) {
    config_.rq_direct.inc();
    s.sendResponse(r.direct.status(), r.direct.body(), {}, "direct_response");
    return SL_ACTION_STOP;
  }
  if (r.action == Route::Action::kRedirect) {
    config_.rq_redirect.inc();
    const std::string_view authority = h.get(":authority").value_or("");
    const std::string_view target = h.get(":path").value_or("/");
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const auto& rd = r.redirect;
    std::string location = rd.scheme_redirect().empty() ? "http" : rd.scheme_redirect();
    location += "://";
    location += rd.host_redirect().empty() ? std::string(authority) : rd.host_redirect();
    location += rd.path_redirect().empty() ? std::string(path) : rd.path_redirect();
    if (!rd.strip_query() && q != std::string_view::npos) location.append(target.substr(q));
    s.sendResponse(rd.response_code() != 0 ? rd.response_code() : 301, "", {{"Location", location}},
                   "redirect");
    return SL_ACTION_STOP;
  }
  // Rewrites, then field changes (virtual host first, then route), then the decision.
  if (!r.prefix_rewrite.empty() || r.rewrite_regex) {
    const std::string_view target = h.get(":path").value_or("/");
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    if (!r.prefix_rewrite.empty()) {
      std::string rewritten = r.prefix_rewrite + std::string(target.substr(r.path.size()));
      h.set(":path", rewritten);
    } else {
      std::string p(path);
      re2::RE2::GlobalReplace(&p, *r.rewrite_regex, r.rewrite_substitution);
      if (q != std::string_view::npos) p.append(target.substr(q));
      h.set(":path", p);
    }
  }
  if (!r.host_rewrite.empty()) h.set(":authority", r.host_rewrite);
  Mutations::Apply(h, r.vhost->mutations.request_remove, r.vhost->mutations.request_add);
  Mutations::Apply(h, r.mutations.request_remove, r.mutations.request_add);
  const std::string& cluster = config_.pickCluster(r);
  const std::string key = HashKey(r, s, h);
  Stream::Upstream u;
  u.cluster = cluster;
  u.route_name = r.name;
  u.timeout_ms = r.timeout_ms;
  u.response_headers_timeout_ms = r.response_headers_timeout_ms;
  u.idle_timeout_ms = r.idle_timeout_ms;
  u.per_try_timeout_ms = r.per_try_timeout_ms;
  u.connect_timeout_ms = r.connect_timeout_ms;
  u.send_timeout_ms = r.send_timeout_ms;
  u.request_buffer_bytes = r.request_buffer_bytes;
  u.hash_key = key;
  u.flags = r.terminate_connect ? SL_UPSTREAM_TERMINATE_CONNECT : 0;
  if (s.setUpstream(u) != SL_OK) {
    s.sendResponse(503, "no such cluster\n", {}, "no_cluster");
    return SL_ACTION_STOP;
  }
  return SL_ACTION_CONTINUE;
}

sl_type_action RouterFilter::onResponseHeaders(Stream& s, bool) {
  if (route_ == nullptr) return SL_ACTION_CONTINUE;
  Headers h = s.responseHeaders();
  Mutations::Apply(h, route_->mutations.response_remove, route_->mutations.response_add);
  Mutations::Apply(h, route_->vhost->mutations.response_remove,
                   route_->vhost->mutations.response_add);
  return SL_ACTION_CONTINUE;
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<RouterConfig>("router",
                                                          "sluice.extensions.router.v1.Router"))
