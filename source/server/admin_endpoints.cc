#include "source/server/admin_endpoints.h"

#include <unistd.h>

#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "source/common/json_string.h"
#include "source/common/logging.h"
#include "source/config/bootstrap.h"
#include "source/config/redact.h"
#include "source/tls/context.h"
#include "source/tls/version.h"
#include "source/upstream/host.h"
#include "source/upstream/load_balancer.h"
#include "source/upstream/outlier_detection.h"

namespace sluice::server {

namespace {

const char* LbPolicyName(upstream::LbPolicy policy) {
  switch (policy) {
    case upstream::LbPolicy::kRoundRobin:
      return "ROUND_ROBIN";
    case upstream::LbPolicy::kLeastRequest:
      return "LEAST_REQUEST";
    case upstream::LbPolicy::kRandom:
      return "RANDOM";
    case upstream::LbPolicy::kMaglev:
      return "MAGLEV";
  }
  return "?";
}

// Envoy's names for a host's health flags.
struct FlagName {
  upstream::Host::HealthFlag flag;
  const char* name;
};
constexpr FlagName kHealthFlags[] = {
    {upstream::Host::kFailedActiveHealthCheck, "failed_active_hc"},
    {upstream::Host::kFailedOutlierCheck, "failed_outlier_check"},
    {upstream::Host::kPendingActiveHealthCheck, "pending_active_hc"},
};

// A host's counters, by name (as far as a Host keeps them).
std::vector<std::pair<const char*, int64_t>> HostCounters(const upstream::Host& host) {
  const upstream::HostStats& s = host.stats();
  std::vector<std::pair<const char*, int64_t>> out = {
      {"cx_total", static_cast<int64_t>(s.cx_total.value())},
      {"cx_active", s.cx_active.value()},
      {"cx_connect_fail", static_cast<int64_t>(s.cx_connect_fail.value())},
      {"rq_total", static_cast<int64_t>(s.rq_total.value())},
      {"rq_active", s.rq_active.value()},
      {"rq_error", static_cast<int64_t>(s.rq_error.value())},
  };
  if (const upstream::OutlierMonitor* m = host.outlier(); m != nullptr) {
    out.emplace_back("outlier.consecutive_5xx", m->consecutive5xx());
    out.emplace_back("outlier.consecutive_gateway_failure", m->consecutiveGatewayFailures());
  }
  return out;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

bool WantsJson(const AdminRequest& request, AdminResponse& error) {
  const std::string* format = request.param("format");
  if (format == nullptr || *format == "text") return false;
  if (*format == "json") return true;
  error = AdminResponse::Text(
      400, absl::StrCat("unknown format ", json::Quote(*format), ": text (the default) or json\n"));
  return false;
}

}  // namespace

absl::StatusOr<Admin::Settings> AdminSettingsFrom(const config::v1::Admin& config) {
  Admin::Settings settings;
  if (config.has_address()) {
    auto address =
        network::Address::fromIpPort(config.address().address(), config.address().port());
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin.address: ", address.status().message()));
    }
    settings.address = *address;
  }
  if (config.has_probe_address()) {
    auto address = network::Address::fromIpPort(config.probe_address().address(),
                                                config.probe_address().port());
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin.probe_address: ", address.status().message()));
    }
    settings.probe_address = *address;
  }
  if (config.has_unix_socket()) {
    settings.unix_path = config.unix_socket().path();
    if (!config.unix_socket().mode().empty()) {
      auto mode = config::ParseFileMode(config.unix_socket().mode());
      if (!mode.has_value()) {
        return absl::InvalidArgumentError("admin.unix_socket.mode: not an octal mode");
      }
      settings.unix_mode = *mode;
    }
  }
  if (config.has_bearer_token()) {
    auto token = tls::ReadDataSource(config.bearer_token(), "admin.bearer_token");
    if (!token.ok()) return token.status();
    std::string value = std::move(*token);
    if (config.bearer_token().has_filename()) {
      // A file made with `echo` or an editor ends with a newline: not part of the token.
      while (!value.empty() && absl::ascii_isspace(static_cast<unsigned char>(value.back()))) {
        value.pop_back();
      }
    }
    if (auto s = config::CheckBearerToken(value); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin.bearer_token",
                       config.bearer_token().has_filename()
                           ? absl::StrCat(".filename (", config.bearer_token().filename(), ")")
                           : std::string(".inline_string"),
                       ": ", s.message()));
    }
    settings.bearer_token = std::move(value);
  }
  return settings;
}

std::string ClustersText(const upstream::ClusterManager& clusters) {
  std::string out;
  for (const auto& cluster : clusters.clusters()) {
    const std::string& c = cluster->name();
    const upstream::HostSetPtr& hosts = cluster->hosts();
    const upstream::HostSetPtr& lb = cluster->lbHosts();
    absl::StrAppend(&out, c, "::type::", cluster->dns() != nullptr ? "STRICT_DNS" : "STATIC", "\n",
                    c, "::lb_policy::", LbPolicyName(cluster->lbPolicy()), "\n", c,
                    "::hosts::", hosts ? hosts->size() : 0, "\n", c,
                    "::panic::", lb && lb->panic() ? "true" : "false", "\n");
    if (!hosts) continue;
    for (const upstream::HostSharedPtr& host : hosts->hosts()) {
      const std::string prefix = absl::StrCat(c, "::", host->addressString(), "::");
      std::string flags;
      for (const FlagName& f : kHealthFlags) {
        if (host->hasHealthFlag(f.flag)) absl::StrAppend(&flags, "/", f.name);
      }
      absl::StrAppend(&out, prefix, "hostname::", host->hostname(), "\n", prefix,
                      "weight::", host->weight(), "\n", prefix,
                      "health_flags::", flags.empty() ? "healthy" : flags, "\n");
      for (const auto& [name, value] : HostCounters(*host)) {
        absl::StrAppend(&out, prefix, name, "::", value, "\n");
      }
    }
  }
  return out;
}

std::string ClustersJson(const upstream::ClusterManager& clusters) {
  std::string out = "{\"clusters\":[";
  bool first_cluster = true;
  for (const auto& cluster : clusters.clusters()) {
    const upstream::HostSetPtr& hosts = cluster->hosts();
    const upstream::HostSetPtr& lb = cluster->lbHosts();
    absl::StrAppend(&out, first_cluster ? "" : ",", "{\"name\":", json::Quote(cluster->name()),
                    ",\"type\":\"", cluster->dns() != nullptr ? "STRICT_DNS" : "STATIC",
                    "\",\"lb_policy\":\"", LbPolicyName(cluster->lbPolicy()),
                    "\",\"healthy_panic_threshold\":", cluster->healthyPanicThreshold(),
                    ",\"panic\":", lb && lb->panic() ? "true" : "false", ",\"hosts\":[");
    first_cluster = false;
    bool first_host = true;
    if (hosts) {
      for (const upstream::HostSharedPtr& host : hosts->hosts()) {
        std::vector<std::string> flags;
        for (const FlagName& f : kHealthFlags) {
          if (host->hasHealthFlag(f.flag)) flags.push_back(absl::StrCat("\"", f.name, "\""));
        }
        absl::StrAppend(
            &out, first_host ? "" : ",", "{\"address\":", json::Quote(host->addressString()),
            ",\"hostname\":", json::Quote(host->hostname()), ",\"weight\":", host->weight(),
            ",\"healthy\":", host->healthy() ? "true" : "false", ",\"health_flags\":[",
            absl::StrJoin(flags, ","), "],\"stats\":{");
        first_host = false;
        bool first_stat = true;
        for (const auto& [name, value] : HostCounters(*host)) {
          absl::StrAppend(&out, first_stat ? "" : ",", "\"", name, "\":", value);
          first_stat = false;
        }
        out += "}}";
      }
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

std::string ConfigDumpJson(const config::v1::Bootstrap& bootstrap) {
  config::v1::Bootstrap copy = bootstrap;
  config::RedactSecrets(copy);
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(copy, &json, options);
  if (!status.ok()) {
    return absl::StrCat("{\"error\":", json::Quote(std::string(status.message())), "}\n");
  }
  return absl::StrCat("{\"bootstrap\": ", json, "}\n");
}

void AddServerEndpoints(Admin& admin, AdminServer& server) {
  using Methods = Admin::Methods;
  admin.addEndpoint(
      {"/clusters",
       Methods::kRead,
       {"format"},
       "every cluster and its hosts: address, weight, health flags (healthy, failed_active_hc, "
       "failed_outlier_check, pending_active_hc), counters; ?format=json",
       [&server](const AdminRequest& request) {
         AdminResponse error;
         const bool json = WantsJson(request, error);
         if (error.status != 200) return error;
         if (json) return AdminResponse::Json(ClustersJson(server.clusterManager()));
         return AdminResponse::Text(200, ClustersText(server.clusterManager()));
       }});
  admin.addEndpoint({"/config_dump",
                     Methods::kRead,
                     {},
                     "the config as loaded, as JSON, with secrets (private keys, ticket keys, "
                     "the bearer token) shown as \"[redacted]\"",
                     [&server](const AdminRequest&) {
                       return AdminResponse::Json(ConfigDumpJson(server.bootstrap()));
                     }});
  admin.addEndpoint({"/listeners",
                     Methods::kRead,
                     {"format"},
                     "every listener and its bound address (`name::address`); ?format=json",
                     [&server](const AdminRequest& request) {
                       AdminResponse error;
                       const bool json = WantsJson(request, error);
                       if (error.status != 200) return error;
                       const bool accepting = server.accepting();
                       std::string out = json ? "{\"listeners\":[" : "";
                       bool first = true;
                       for (const auto& l : server.listenerInfo()) {
                         if (json) {
                           absl::StrAppend(&out, first ? "" : ",",
                                           "{\"name\":", json::Quote(l.name),
                                           ",\"address\":", json::Quote(l.address),
                                           ",\"accepting\":", accepting ? "true" : "false", "}");
                         } else {
                           absl::StrAppend(&out, l.name, "::", l.address, "\n");
                         }
                         first = false;
                       }
                       if (json) return AdminResponse::Json(out + "]}\n");
                       return AdminResponse::Text(200, std::move(out));
                     }});
  admin.addEndpoint(
      {"/server_info",
       Methods::kRead,
       {},
       "version, state, uptime, concurrency, command line and config path, as JSON",
       [&server, &admin](const AdminRequest& request) {
         const AdminServer::Info& info = server.info();
         const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now() - info.start)
                                 .count();
         std::vector<std::string> argv;
         for (const std::string& a : info.command_line) argv.push_back(json::Quote(a));
         return AdminResponse::Json(absl::StrCat(
             "{\"version\":", json::Quote(info.version),
             ",\"tls_library\":", json::Quote(tls::LibraryVersion()), ",\"state\":\"",
             std::string(admin.stateName(request.state)),
             "\",\"accepting\":", server.accepting() ? "true" : "false",
             ",\"uptime_seconds\":", uptime, ",\"start_time\":\"", Rfc3339(info.start_time),
             "\",\"pid\":", getpid(), ",\"concurrency\":", info.concurrency, ",\"log_level\":\"",
             log::LevelName(log::GetLevel()), "\",\"config_path\":", json::Quote(info.config_path),
             ",\"command_line_options\":{\"config\":", json::Quote(info.config_path),
             ",\"concurrency\":", info.concurrency,
             ",\"ports_file\":", json::Quote(info.ports_file), "},\"command_line\":[",
             absl::StrJoin(argv, ","), "]}\n"));
       }});
  admin.addEndpoint(
      {"/drain_listeners",
       Methods::kChange,
       {},
       "stop accepting on every listener and drain the open connections (up to drain_timeout); "
       "the process stays up, /ready answers 503",
       [&server](const AdminRequest&) {
         const bool was = server.accepting();
         server.drainListeners();
         return AdminResponse::Text(200, was ? "OK: listeners stopped, connections draining\n"
                                             : "OK: the listeners had stopped already\n");
       }});
  admin.addEndpoint({"/quitquitquit",
                     Methods::kChange,
                     {},
                     "drain as SIGTERM does, then exit 0",
                     [&server](const AdminRequest&) {
                       AdminResponse r = AdminResponse::Text(200, "OK: draining, then exiting\n");
                       r.after = [&server] { server.quit(); };
                       return r;
                     }});
  admin.addEndpoint({"/certificates/reload",
                     Methods::kChange,
                     {},
                     "re-read every TLS certificate, key, OCSP staple and ticket key from its "
                     "file (as SIGHUP does); 500 when one failed (it keeps what it had)",
                     [&server](const AdminRequest&) {
                       auto [ok, report] = server.reloadCertificates();
                       return AdminResponse::Text(ok ? 200 : 500, std::move(report));
                     }});
}

}  // namespace sluice::server
