#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "source/config/loader.h"

namespace sluice::server {

// What the command line adds to the config.
struct Options {
  // Worker threads; 0: Bootstrap.concurrency, else the number of cores.
  uint32_t concurrency = 0;
  // When set: after every socket is bound, write "<listener> <address>" lines (and "admin ...")
  // to this file, atomically, so that tests and scripts can use port 0.
  std::string ports_file;
  // The control socket's path (overrides Bootstrap.control_socket).
  std::string control_socket;
  // Hot restart: the running sluice's control socket. This process takes its listening sockets
  // (after its own config and plugins loaded), starts, then tells it to drain.
  std::string hot_restart_from;
  // `sluice reload`'s pipe: "ready <pid>" is written to it once this process serves (-1: none).
  int ready_fd = -1;
  // For the admin's /server_info: the config file, the whole command line, the version.
  std::string config_path;
  std::vector<std::string> command_line;
  std::string version;
};

// Runs the proxy until SIGTERM/SIGINT and a drain; returns OK for a clean exit. `sources` is
// where the config's free-form values came from (plugin configs' errors name lines).
absl::Status Run(const config::v1::Bootstrap& bootstrap, const config::ValueSources& sources,
                 const Options& options);

// Builds everything the config describes short of sockets and threads — clusters, listeners,
// filter chains, plugins loaded and their configs accepted — and reports the first problem.
// (`sluice --mode validate`.)
absl::Status Validate(const config::v1::Bootstrap& bootstrap, const config::ValueSources& sources);

}  // namespace sluice::server
