#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "source/server/admin.h"
#include "source/upstream/cluster.h"

namespace sluice::server {

// What the admin's server endpoints need of the running server (server.cc implements it).
// Main thread only.
class AdminServer {
 public:
  virtual ~AdminServer() = default;

  struct ListenerInfo {
    std::string name;
    std::string address;  // bound: "127.0.0.1:8080" (port 0 resolved)
  };
  // Facts for /server_info.
  struct Info {
    std::string version;
    std::string config_path;
    std::vector<std::string> command_line;  // argv
    uint32_t concurrency = 0;
    std::string ports_file;
    std::chrono::system_clock::time_point start_time;
    std::chrono::steady_clock::time_point start;
  };

  virtual const config::v1::Bootstrap& bootstrap() const = 0;
  virtual const upstream::ClusterManager& clusterManager() const = 0;
  virtual std::vector<ListenerInfo> listenerInfo() const = 0;
  virtual const Info& info() const = 0;
  // False once the listeners stopped accepting (POST /drain_listeners, a drain).
  virtual bool accepting() const = 0;
  // Stop accepting on every listener and drain the open connections (they finish what they
  // carry, keep-alive connections are closed; after drain_timeout the rest are closed). The
  // process stays up.
  virtual void drainListeners() = 0;
  // The drain SIGTERM starts, then exit 0.
  virtual void quit() = 0;
  // Re-reads every TLS chain's files: (all loaded, a report).
  virtual std::pair<bool, std::string> reloadCertificates() = 0;
};

// The admin's settings from its config: the TCP address, the probe address, the unix socket and
// its mode, the bearer token (read from its file, trailing whitespace dropped, and checked). Errors
// name the field ("admin.bearer_token.filename: ...").
absl::StatusOr<Admin::Settings> AdminSettingsFrom(const config::v1::Admin& config);

// Adds /clusters, /config_dump, /listeners, /server_info, /drain_listeners, /quitquitquit and
// /certificates/reload to `admin`.
void AddServerEndpoints(Admin& admin, AdminServer& server);

// The bodies, for tests: /clusters as text (Envoy's `cluster::host::field::value` lines) or
// JSON, /config_dump (the bootstrap with its secrets redacted, as JSON).
std::string ClustersText(const upstream::ClusterManager& clusters);
std::string ClustersJson(const upstream::ClusterManager& clusters);
std::string ConfigDumpJson(const config::v1::Bootstrap& bootstrap);

}  // namespace sluice::server
