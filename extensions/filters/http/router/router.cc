// The router: virtual hosts by authority, routes matched in order (path, method, headers,
// query), and the action — send upstream to a cluster (or a weighted pick of clusters), with
// path and host rewrites and timeouts; redirect; direct response — plus field changes per
// virtual host and route. Policy only: the core carries the request upstream
// (sl_host_set_upstream). Written on the public ABI with the C++ SDK, like any plugin.

#include <algorithm>
#include <atomic>
#include <cctype>
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
    for (const auto* list : {&request_add, &response_add}) {
      for (const auto& h : *list) {
        if (!IsValidFieldName(h.name())) {
          error = where + ": \"" + h.name() + "\" is not a field name";
          return false;
        }
        if (!sluice::sdk::IsValidFieldValue(h.value())) {
          error = where + ": the value of " + h.name() + " has CR, LF, NUL or another control";
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
  uint64_t idle_timeout_ms = 60000;
  std::vector<pb::HashPolicy> hash_policies;
  bool terminate_connect = false;
  pb::RedirectAction redirect;
  pb::DirectResponseAction direct;
  Mutations mutations;

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
  sl_type_action onRequestHeaders(Stream& s, bool end_stream) override;
  sl_type_action onResponseHeaders(Stream& s, bool end_stream) override;

 private:
  const RouterConfig& config_;
  const VirtualHost* vhost_ = nullptr;
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
    if (!c->load(proto, error)) {
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
  bool load(const pb::Router& proto, std::string& error) {
    for (int vi = 0; vi < proto.virtual_hosts_size(); ++vi) {
      const auto& vp = proto.virtual_hosts(vi);
      const std::string where = "virtual_hosts[" + std::to_string(vi) + "]";
      VirtualHost vh;
      vh.name = vp.name();
      if (vp.domains_size() == 0) {
        error = where + ".domains: at least one is required";
        return false;
      }
      for (const auto& d : vp.domains()) {
        const std::string l = Lower(d);
        if (l == "*") {
          any = vhosts.size();
        } else if (l.size() > 2 && l.compare(0, 2, "*.") == 0) {
          suffixes.emplace_back(l.substr(1), vhosts.size());
        } else if (l.size() > 2 && l.compare(l.size() - 2, 2, ".*") == 0) {
          prefixes.emplace_back(l.substr(0, l.size() - 1), vhosts.size());
        } else if (l.find('*') != std::string::npos) {
          error = where + ".domains: \"" + d +
                  "\": a wildcard only as \"*\", \"*.suffix\" or "
                  "\"prefix.*\"";
          return false;
        } else {
          exact.emplace_back(l, vhosts.size());
        }
      }
      if (!vh.mutations.load(vp.headers(), where + ".headers", error)) return false;
      for (int ri = 0; ri < vp.routes_size(); ++ri) {
        Route r;
        if (!loadRoute(vp.routes(ri), where + ".routes[" + std::to_string(ri) + "]", r, error)) {
          return false;
        }
        vh.routes.push_back(std::move(r));
      }
      vhosts.push_back(std::move(vh));
    }
    return true;
  }

  static bool loadRoute(const pb::Route& rp, const std::string& where, Route& r,
                        std::string& error) {
    r.name = rp.name();
    const auto& m = rp.match();
    switch (m.path_specifier_case()) {
      case pb::RouteMatch::kPrefix:
        r.path_kind = Route::PathKind::kPrefix;
        r.path = m.prefix();
        break;
      case pb::RouteMatch::kPath:
        r.path_kind = Route::PathKind::kExact;
        r.path = m.path();
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
    for (const auto& meth : m.methods()) r.methods.push_back(meth);
    for (int i = 0; i < m.headers_size(); ++i) {
      const auto& hp = m.headers(i);
      HeaderMatch hm;
      hm.name = hp.name();
      hm.invert = hp.invert();
      if (!IsValidFieldName(hm.name)) {
        error = where + ".match.headers[" + std::to_string(i) + "].name: not a field name";
        return false;
      }
      switch (hp.match_case()) {
        case pb::HeaderMatcher::kExact:
          hm.kind = HeaderMatch::Kind::kExact;
          hm.exact = hp.exact();
          break;
        case pb::HeaderMatcher::kRegex:
          hm.kind = HeaderMatch::Kind::kRegex;
          hm.regex = Compile(hp.regex(), error);
          if (!hm.regex) {
            error = where + ".match.headers[" + std::to_string(i) + "].regex: " + error;
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
    for (const auto& qp : m.query_parameters()) {
      QueryMatch q;
      q.name = qp.name();
      if (qp.match_case() == pb::QueryParameterMatcher::kExact) q.exact = qp.exact();
      if (qp.match_case() == pb::QueryParameterMatcher::kPresent) q.present = qp.present();
      r.query.push_back(std::move(q));
    }
    switch (rp.action_case()) {
      case pb::Route::kRoute: {
        const auto& a = rp.route();
        r.action = Route::Action::kRoute;
        if (a.cluster_specifier_case() == pb::RouteAction::kCluster) {
          r.clusters.emplace_back(a.cluster(), 1);
        } else if (a.cluster_specifier_case() == pb::RouteAction::kWeightedClusters) {
          for (const auto& wc : a.weighted_clusters().clusters()) {
            if (wc.weight() == 0) continue;
            r.clusters.emplace_back(wc.name(), wc.weight());
          }
        }
        for (const auto& [n, w] : r.clusters) r.total_weight += w;
        if (r.clusters.empty() || r.total_weight == 0) {
          error = where + ".route: a cluster (or weighted clusters with a weight) is required";
          return false;
        }
        r.prefix_rewrite = a.prefix_rewrite();
        if (!r.prefix_rewrite.empty() && r.path_kind != Route::PathKind::kPrefix) {
          error = where + ".route.prefix_rewrite: only with a prefix match";
          return false;
        }
        if (a.has_regex_rewrite() && r.connect) {
          error = where + ".route.regex_rewrite: a CONNECT target is not a path";
          return false;
        }
        if (a.has_regex_rewrite()) {
          r.rewrite_regex = Compile(a.regex_rewrite().pattern(), error);
          if (!r.rewrite_regex) {
            error = where + ".route.regex_rewrite.pattern: " + error;
            return false;
          }
          r.rewrite_substitution = a.regex_rewrite().substitution();
          std::string why;
          if (!r.rewrite_regex->CheckRewriteString(r.rewrite_substitution, &why)) {
            error = where + ".route.regex_rewrite.substitution: " + why;
            return false;
          }
        }
        r.host_rewrite = a.host_rewrite();
        if (a.has_timeout()) r.timeout_ms = Ms(a.timeout());
        if (a.has_idle_timeout()) r.idle_timeout_ms = Ms(a.idle_timeout());
        if (a.has_response_headers_timeout()) {
          r.response_headers_timeout_ms = Ms(a.response_headers_timeout());
        }
        for (const auto& hp : a.hash_policy()) r.hash_policies.push_back(hp);
        if (a.has_connect_config()) {
          if (!r.connect) {
            error = where + ".route.connect_config: only on a route with match.connect";
            return false;
          }
          r.terminate_connect = true;
        }
        break;
      }
      case pb::Route::kRedirect: {
        r.action = Route::Action::kRedirect;
        r.redirect = rp.redirect();
        const uint32_t code = r.redirect.response_code();
        if (code != 0 && code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
          error = where + ".redirect.response_code: 301, 302, 303, 307 or 308";
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

sl_type_action RouterFilter::onRequestHeaders(Stream& s, bool) {
  Headers h = s.requestHeaders();
  const std::string_view authority = h.get(":authority").value_or("");
  const std::string_view target = h.get(":path").value_or("/");
  const std::string_view method = h.get(":method").value_or("");
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query =
      q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  vhost_ = config_.findHost(authority);
  if (vhost_ != nullptr) {
    for (const Route& r : vhost_->routes) {
      if (r.matches(method, path, query, h)) {
        route_ = &r;
        break;
      }
    }
  }
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
  if (!r.prefix_rewrite.empty()) {
    std::string rewritten = r.prefix_rewrite + std::string(target.substr(r.path.size()));
    h.set(":path", rewritten);
  } else if (r.rewrite_regex) {
    std::string p(path);
    re2::RE2::GlobalReplace(&p, *r.rewrite_regex, r.rewrite_substitution);
    if (q != std::string_view::npos) p.append(target.substr(q));
    h.set(":path", p);
  }
  if (!r.host_rewrite.empty()) h.set(":authority", r.host_rewrite);
  Mutations::Apply(h, vhost_->mutations.request_remove, vhost_->mutations.request_add);
  Mutations::Apply(h, r.mutations.request_remove, r.mutations.request_add);
  const std::string& cluster = config_.pickCluster(r);
  const std::string key = HashKey(r, s, h);
  Stream::Upstream u;
  u.cluster = cluster;
  u.route_name = r.name;
  u.timeout_ms = r.timeout_ms;
  u.response_headers_timeout_ms = r.response_headers_timeout_ms;
  u.idle_timeout_ms = r.idle_timeout_ms;
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
  Mutations::Apply(h, vhost_->mutations.response_remove, vhost_->mutations.response_add);
  return SL_ACTION_CONTINUE;
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<RouterConfig>("router",
                                                          "sluice.extensions.router.v1.Router"))
