#include "source/server/server.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "re2/re2.h"
#include "source/common/access_log_writer.h"
#include "source/common/logging.h"
#include "source/common/sd_notify.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/client_codecs.h"
#include "source/network/listen_socket_registry.h"
#include "source/plugin/plugin.h"
#include "source/server/admin.h"
#include "source/server/admin_endpoints.h"
#include "source/server/control_frame.h"
#include "source/server/control_server.h"
#include "source/server/hot_restart.h"
#include "source/server/listener_config.h"
#include "source/server/worker.h"
#include "source/tls/ticket_keys.h"
#include "source/upstream/cluster.h"
#include "source/upstream/dns_cluster.h"
#include "source/upstream/health_checker.h"

namespace sluice::server {

namespace {

using google::protobuf::util::TimeUtil;

constexpr std::chrono::milliseconds kDefaultDrainTimeout{30000};

// Raises the soft open-file limit to the hard one (as nginx's worker_rlimit_nofile does) and
// returns the limit in force.
uint64_t RaiseFileLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = old;
  }
  return rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : rl.rlim_cur;
}

absl::Status WritePortsFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out.good()) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

// Whether two paths name the same file (however each is spelled).
bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return !a.empty() && !b.empty() && stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

std::string CurrentDirectory() {
  char buf[4096];
  return getcwd(buf, sizeof(buf)) != nullptr ? std::string(buf) : std::string();
}

// `sluice reload` waits on this pipe (--ready-fd): one line once this process serves (and, after
// a hot restart, has told its predecessor to drain); the end of the pipe without it means this
// process failed (its log says why).
void ReportReady(int fd) {
  if (fd < 0) return;
  const std::string line = absl::StrCat("ready ", getpid(), "\n");
  ssize_t n;
  do {
    n = ::write(fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  ::close(fd);
}

plugin::PluginManagerPtr PluginManagerFor(const config::v1::Bootstrap& bootstrap,
                                          const config::ValueSources& sources,
                                          stats::Store& store) {
  std::vector<std::string> clusters;
  for (const auto& c : bootstrap.clusters()) clusters.push_back(c.name());
  return plugin::CreatePluginManager(
      {bootstrap.plugin_dirs().begin(), bootstrap.plugin_dirs().end()}, std::move(clusters),
      sources, store);
}

// The main thread's part: config, sockets, workers, admin, signals, and the drain.
class Server : public AdminServer {
 public:
  Server(const config::v1::Bootstrap& bootstrap, const config::ValueSources& sources,
         const Options& options)
      : bootstrap_(bootstrap),
        sources_(sources),
        options_(options),
        main_(event::CreateDispatcher("main")) {}

  absl::Status run();

  // AdminServer
  const config::v1::Bootstrap& bootstrap() const override { return bootstrap_; }
  const upstream::ClusterManager& clusterManager() const override { return *clusters_; }
  std::vector<ListenerInfo> listenerInfo() const override {
    std::vector<ListenerInfo> out;
    for (const auto& l : listeners_) out.push_back({l->name, l->address.asString()});
    return out;
  }
  const Info& info() const override { return info_; }
  bool accepting() const override { return !listeners_stopped_; }
  void drainListeners() override;
  void quit() override { startDrain(); }
  // Re-reads every TLS chain's certificates, keys, staples and ticket keys (SIGHUP, the admin's
  // POST /certificates/reload). A chain whose files do not load keeps what it has. Returns
  // whether all loaded, and a report.
  std::pair<bool, std::string> reloadCertificates() override;

 private:
  void listenForOtherSignals();
  absl::Status reserveListenerAddress(ListenerConfig& listener);
  void startDrain();
  // Stops every worker's listeners (once) and closes the sockets once none polls them.
  void stopListening();
  // Closes the connections still open drain_timeout from now (once).
  void armDrainTimer();
  void onWorkerIdle();
  // Hot restart, the successor's side: connects to the predecessor and takes its state (ticket
  // keys, epoch), before any listener is built.
  absl::Status takeState();
  // Listens on the control socket (a successor: takes its path over).
  absl::Status startControl();
  // The control socket's path: the flag's, else the config's (empty: none).
  const std::string& controlPath() const {
    return !options_.control_socket.empty() ? options_.control_socket : bootstrap_.control_socket();
  }
  // Tells the predecessor to drain, once this process serves; takes its counters.
  void startPredecessorDrain();
  // The old side: every listening socket, in frames of at most kMaxFdsPerMessage descriptors.
  std::vector<ControlFrame> handOverSockets(pid_t successor);
  std::vector<ControlFrame> handOverState(bool stdio);
  std::vector<ControlFrame> onStartDrain(const sluice::control::v1::StartDrainRequest& request,
                                         pid_t successor);
  // The old side, after its workers stopped: what its counters gained while it drained, to the
  // successor.
  void sendDrainCounters();
  // A control socket request (control.proto), answered on this thread.
  std::vector<ControlFrame> onControl(const sluice::control::v1::Request& request, pid_t peer);
  void shutdown();

  const config::v1::Bootstrap& bootstrap_;
  const config::ValueSources& sources_;
  const Options& options_;
  event::DispatcherPtr main_;
  // Made once the worker count is known: its stats have one slot per worker.
  std::unique_ptr<stats::Store> store_;
  // Before the workers: filter factories the workers use point into it (its metrics).
  plugin::PluginManagerPtr plugins_;
  // The access logs' files and writer thread; stopped (every queued line written) once the
  // workers are gone.
  std::unique_ptr<access_log::Manager> access_logs_;
  std::unique_ptr<upstream::ClusterManager> clusters_;
  std::unique_ptr<upstream::DnsClusters> dns_clusters_;
  std::unique_ptr<upstream::HealthCheckers> health_checkers_;
  std::unique_ptr<WorkerShared> shared_;
  network::ListenSocketRegistry sockets_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<ListenerConfigPtr> listeners_;
  std::unique_ptr<Admin> admin_;
  std::unique_ptr<ControlServer> control_;
  // The predecessor's control socket (hot restart), open from takeState() to its drain.
  std::unique_ptr<PredecessorClient> predecessor_;
  // A successor whose control socket is its predecessor's (the same file however either path is
  // spelled): it takes the path over once its workers run. Known from takeState() on.
  bool take_over_control_ = false;
  // The same for the admin's unix socket.
  bool take_over_admin_unix_ = false;
  // The predecessor's admin sockets, from takeSockets() until the admin takes those of its
  // addresses; and the addresses it took (the predecessor stops accepting on them).
  InheritedAdminSockets inherited_admin_;
  std::vector<std::string> admin_taken_;
  // `sluice reload` started this process: its predecessor's standard output and error, which
  // become its own once it serves.
  std::vector<int> inherited_stdio_;
  // Ticket keys of the chains without key files (this process's, and the predecessor's).
  tls::GeneratedTicketKeys ticket_keys_;
  // Where relative paths of the command line (the config's) are resolved: `sluice reload`
  // starts the successor there.
  std::string working_directory_ = CurrentDirectory();
  // Hot restarts behind this process, and when its lineage's first process started.
  uint32_t restart_epoch_ = 0;
  std::chrono::system_clock::time_point lineage_start_ = std::chrono::system_clock::now();
  // The old side of a hot restart: its counters as its drain started, and where the successor
  // takes what they gained since.
  std::vector<std::pair<std::string, uint64_t>> drain_counters_;
  std::string successor_control_;
  bool handed_over_ = false;
  std::vector<event::SignalEventPtr> signals_;
  event::TimerPtr drain_timer_;
  // After a handoff: bounds the wait for the admin's last requests at exit.
  event::TimerPtr admin_exit_timer_;
  std::chrono::milliseconds drain_timeout_ = kDefaultDrainTimeout;
  size_t workers_stopped_ = 0;
  size_t workers_idle_ = 0;
  bool draining_ = false;
  bool listeners_stopped_ = false;
  Info info_;
};

absl::Status Server::run() {
  listenForOtherSignals();
  uint32_t concurrency =
      options_.concurrency != 0 ? options_.concurrency : bootstrap_.concurrency();
  if (concurrency == 0) concurrency = std::max(1u, std::thread::hardware_concurrency());
  if (bootstrap_.has_drain_timeout()) {
    drain_timeout_ =
        std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(bootstrap_.drain_timeout()));
  }

  store_ = std::make_unique<stats::Store>(concurrency);

  const uint64_t nofile = RaiseFileLimit();
  // Each proxied connection costs two descriptors; keep some for listeners, logs and admin
  // (128, or a quarter of a small limit).
  const uint64_t reserve = std::min<uint64_t>(128, nofile / 4);
  const uint64_t max_connections = bootstrap_.max_connections() != 0
                                       ? bootstrap_.max_connections()
                                       : std::max<uint64_t>(1, (nofile - reserve) / 2);
  shared_ =
      std::make_unique<WorkerShared>(max_connections, store_->counter("server.downstream_cx_total"),
                                     store_->gauge("server.downstream_cx_active"),
                                     store_->counter("server.downstream_cx_overflow"),
                                     store_->counter("server.accept_fd_exhausted"),
                                     store_->counter("server.downstream_cx_idle_reclaimed"));
  shared_->workers = concurrency;
  store_->gauge("server.concurrency").set(concurrency);
  store_->gauge("server.downstream_cx_limit").set(static_cast<int64_t>(max_connections));

  auto clusters =
      upstream::ClusterManager::create(bootstrap_, *store_, &http::CreateClientCodecFactory);
  if (!clusters.ok()) return clusters.status();
  clusters_ = std::move(*clusters);

  // Every change of what a cluster's load balancers use (DNS, health checks) reaches the
  // workers by posting; a worker made later takes the set of the moment.
  for (const auto& c : clusters_->clusters()) {
    c->setHostSetPublisher([this](const upstream::Cluster& cluster, upstream::HostSetPtr hosts) {
      for (auto& w : workers_) w->updateHosts(cluster, hosts);
    });
  }
  // STRICT_DNS clusters: looked up on this thread's loop. The listeners open once each has had
  // its first answer (or failed: c-ares's own timeouts bound the wait), so that the first
  // requests find hosts.
  dns_clusters_ = std::make_unique<upstream::DnsClusters>();
  if (auto s = dns_clusters_->init(*clusters_, *main_); !s.ok()) return s;
  if (!dns_clusters_->empty()) {
    dns_clusters_->start([this] { main_->exit(); });
    main_->run();
  }

  for (uint32_t i = 0; i < concurrency; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *shared_, *clusters_));
  }
  // Before the workers run: their first crossings post to this thread.
  clusters_->startOutlierDetection(*main_);

  plugins_ = PluginManagerFor(bootstrap_, sources_, *store_);
  access_logs_ = std::make_unique<access_log::Manager>(*store_);
  // Before the listeners are built: their TLS chains take the predecessor's ticket keys.
  if (!options_.hot_restart_from.empty()) {
    if (auto s = takeState(); !s.ok()) return s;
  }
  std::vector<ListenerConfigPtr> listeners;
  // Every listener's errors before giving up, as --mode validate reports them.
  std::vector<std::string> errors;
  for (int li = 0; li < bootstrap_.listeners_size(); ++li) {
    auto cfg = BuildListenerConfig(bootstrap_.listeners(li), *clusters_, *store_, concurrency,
                                   absl::StrCat("listeners[", li, "]"), plugins_.get(),
                                   access_logs_.get(), &ticket_keys_);
    if (!cfg.ok()) {
      errors.emplace_back(cfg.status().message());
      continue;
    }
    if ((*cfg)->reclaim_idle) shared_->reclaim_any = true;
    listeners.push_back(std::move(*cfg));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  if (predecessor_) {
    auto taken = predecessor_->takeSockets(sockets_, inherited_admin_);
    if (!taken.ok()) {
      return absl::Status(taken.status().code(),
                          absl::StrCat("hot restart: ", taken.status().message()));
    }
    SLUICE_LOG(kInfo, "hot restart: took %zu listening sockets and %zu of the admin's from %s",
               *taken, inherited_admin_.size(), options_.hot_restart_from);
  }
  // Every address is checked before this process binds any socket of its own, so that listeners
  // of this config on overlapping addresses (0.0.0.0:80 and 127.0.0.1:80) do not take each
  // other for another process.
  for (auto& cfg : listeners) {
    if (auto s = reserveListenerAddress(*cfg); !s.ok()) return s;
  }
  std::string ports;
  for (auto& cfg : listeners) {
    const size_t count = cfg->listen_options.reuse_port ? concurrency : 1;
    auto fds = sockets_.getOrCreate(cfg->address, cfg->listen_options, count);
    if (!fds.ok()) {
      return absl::Status(fds.status().code(),
                          absl::StrCat("listener ", cfg->name, ": ", fds.status().message()));
    }
    auto bound = network::Address::localOf(fds->front());
    if (!bound.ok()) return bound.status();
    cfg->address = *bound;
    if (!cfg->listen_options.reuse_port) {
      for (uint32_t i = 0; i < concurrency; ++i) workers_[i]->addListener(cfg, fds->front());
    } else {
      // One socket per worker; sockets inherited beyond the worker count (a predecessor with
      // more workers) are shared out too: the kernel still feeds every one of them, and one
      // nobody polled would hold its connections until they time out.
      for (size_t k = 0; k < fds->size(); ++k)
        workers_[k % concurrency]->addListener(cfg, (*fds)[k]);
    }
    SLUICE_LOG(
        kInfo, "listener %s on %s (%s, %u workers%s)", cfg->name, bound->asString(),
        cfg->listen_options.reuse_port ? "SO_REUSEPORT" : "shared socket", concurrency,
        cfg->reuse_port_with_other_processes ? ", port shared with other processes allowed" : "");
    absl::StrAppend(&ports, cfg->name, " ", bound->asString(), "\n");
  }
  // Our sockets listen now: another process's check fails on them from here on.
  sockets_.releaseReservations();
  if (const size_t closed = sockets_.closeUnclaimed(); closed != 0) {
    SLUICE_LOG(kInfo, "hot restart: closed %zu inherited sockets of addresses this config drops",
               closed);
  }
  listeners_ = listeners;

  info_ = Info{options_.version,
               options_.config_path,
               options_.command_line,
               concurrency,
               options_.ports_file,
               std::chrono::system_clock::now(),
               std::chrono::steady_clock::now()};
  if (bootstrap_.has_admin() &&
      (bootstrap_.admin().has_address() || bootstrap_.admin().has_unix_socket() ||
       bootstrap_.admin().has_probe_address())) {
    auto settings = AdminSettingsFrom(bootstrap_.admin());
    if (!settings.ok()) return settings.status();
    // A hot restart's successor: the predecessor's sockets of the same addresses (port 0 binds
    // afresh), and its unix socket's path.
    if (settings->address.has_value()) {
      settings->inherited_fd = inherited_admin_.take(*settings->address);
      if (settings->inherited_fd >= 0) admin_taken_.push_back(settings->address->asString());
    }
    if (settings->probe_address.has_value()) {
      settings->inherited_probe_fd = inherited_admin_.take(*settings->probe_address);
      if (settings->inherited_probe_fd >= 0) {
        admin_taken_.push_back(settings->probe_address->asString());
      }
    }
    settings->take_over_unix_path = take_over_admin_unix_;
    admin_ = std::make_unique<Admin>(*main_, *store_);
    AddServerEndpoints(*admin_, *this);
    auto bound = admin_->start(*settings);
    if (!bound.ok()) {
      return absl::Status(bound.status().code(), absl::StrCat("admin: ", bound.status().message()));
    }
    constexpr std::string_view kInherited = " (its predecessor's socket)";
    if (bound->has_value()) {
      SLUICE_LOG(kInfo, "admin on %s%s%s", (*bound)->asString(),
                 settings->bearer_token.empty() ? "" : " (bearer token required)",
                 settings->inherited_fd >= 0 ? kInherited : "");
      absl::StrAppend(&ports, "admin ", (*bound)->asString(), "\n");
    }
    if (!settings->unix_path.empty()) {
      SLUICE_LOG(
          kInfo, "admin on unix socket %s (mode %04o%s)", settings->unix_path, settings->unix_mode,
          take_over_admin_unix_ ? "; its predecessor's path, taken over once this serves" : "");
    }
    if (const auto& probe = admin_->probeAddress(); probe.has_value()) {
      SLUICE_LOG(kInfo, "admin probe listener on %s%s (/ready and /live only, no token)",
                 probe->asString(), settings->inherited_probe_fd >= 0 ? kInherited : "");
      absl::StrAppend(&ports, "admin_probe ", probe->asString(), "\n");
    }
  }
  // The predecessor's admin sockets no address of ours took: closed now, or they would outlive
  // it here, with nobody accepting on them. It keeps its own until it exits.
  if (const size_t closed = inherited_admin_.closeAll(); closed != 0) {
    SLUICE_LOG(kInfo,
               "hot restart: %zu admin sockets of the previous sluice are not this config's "
               "addresses: they close with it",
               closed);
  }

  // A hot restart's successor takes its predecessor's control path over once its workers run
  // (see below): a failure before then leaves the predecessor its path. Another path (a live
  // one is refused) is taken now, before this process serves anything.
  if (!take_over_control_) {
    if (auto s = startControl(); !s.ok()) return s;
  }

  shared_->resume_all = [this] {
    for (auto& w : workers_) w->resumePausedListeners();
  };
  shared_->reclaim_on = [this](size_t index, const ListenerConfig* listener, size_t hops) {
    workers_[index % workers_.size()]->reclaimForPeer(listener, hops);
  };
  // Before the ports file, which tells scripts and tests that sluice is up: a SIGTERM sent from
  // then on drains (it is handled once the loop runs, after the workers start).
  signals_.push_back(main_->listenForSignal(SIGTERM, [this] { startDrain(); }));
  signals_.push_back(main_->listenForSignal(SIGINT, [this] { startDrain(); }));

  if (!predecessor_ && !options_.ports_file.empty()) {
    if (auto s = WritePortsFile(options_.ports_file, ports); !s.ok()) return s;
  }

  access_logs_->start();
  for (auto& w : workers_) w->start();
  // Active health checks, on this thread's loop. Until a host's first check it is not healthy;
  // while too few are, the clusters balance over all their hosts (panic), so the first
  // requests are served.
  health_checkers_ = std::make_unique<upstream::HealthCheckers>(*clusters_, *main_, *store_);
  health_checkers_->start();
  if (admin_) admin_->setState(Admin::State::kLive);
  SLUICE_LOG(kInfo, "sluice started with %u workers", concurrency);
  if (predecessor_) {
    // Everything that could fail has succeeded but these two (a failure now leaves two
    // processes serving, the old one without its control path: said, and both keep serving).
    if (take_over_control_) {
      if (auto s = startControl(); !s.ok()) return s;
    }
    if (admin_) {
      if (auto s = admin_->takeOver(); !s.ok()) return s;
      if (take_over_admin_unix_) {
        SLUICE_LOG(kInfo, "hot restart: admin unix socket %s taken over",
                   bootstrap_.admin().unix_socket().path());
      }
    }
    if (!options_.ports_file.empty()) {
      if (auto s = WritePortsFile(options_.ports_file, ports); !s.ok()) return s;
    }
    startPredecessorDrain();
  }
  if (inherited_stdio_.size() == 2) {
    // `sluice reload` started this process: from here it logs where its predecessor did, and
    // the command's own output is let go (with the ready line, it sees the end of both).
    SLUICE_LOG(kInfo, "serving; logging continues in the previous process's output");
    dup2(inherited_stdio_[0], STDOUT_FILENO);
    dup2(inherited_stdio_[1], STDERR_FILENO);
    for (int fd : inherited_stdio_) ::close(fd);
    inherited_stdio_.clear();
  }
  ReportReady(options_.ready_fd);
  sd::Notify(absl::StrCat("READY=1\nMAINPID=", getpid(), "\nSTATUS=serving"));

  main_->run();

  // Join every worker before touching what they share: resume_all may be running on one.
  for (auto& w : workers_) w->stop();
  sendDrainCounters();
  shared_->resume_all = nullptr;
  shared_->reclaim_on = nullptr;
  admin_.reset();
  health_checkers_.reset();  // their verdicts post to the workers
  dns_clusters_.reset();     // its lookups post to the workers
  workers_.clear();
  // Every line of a finished stream (the workers' last ones included) reaches its file.
  access_logs_->stop();
  sockets_.closeAll();
  SLUICE_LOG(kInfo, "sluice exited cleanly");
  return absl::OkStatus();
}

void Server::listenForOtherSignals() {
  // main() ignores these until here; from now on they are handled on this loop (the workers
  // block them, see Worker::start) and never end the process.
  signals_.push_back(main_->listenForSignal(SIGHUP, [this] {
    // The config itself is not re-read (a change takes a hot restart, which comes later); the
    // files TLS reads are, as nginx's reload would.
    SLUICE_LOG(kInfo, "SIGHUP received: reloading TLS certificates and keys from their files");
    reloadCertificates();
  }));
  signals_.push_back(main_->listenForSignal(SIGUSR1, [this] {
    // As nginx and Envoy: log rotation. The access logs' files are reopened by their writer;
    // the process log is stderr (nothing to reopen).
    if (access_logs_ != nullptr && access_logs_->hasFiles()) {
      SLUICE_LOG(kInfo, "SIGUSR1 received: reopening the access log files");
      access_logs_->reopen();
    } else {
      SLUICE_LOG(kInfo,
                 "SIGUSR1 received (reopen log files): nothing to reopen, sluice logs to stderr "
                 "only");
    }
  }));
  signals_.push_back(main_->listenForSignal(SIGUSR2, [] {
    SLUICE_LOG(kInfo, "SIGUSR2 received and ignored: it has no meaning in sluice yet");
  }));
}

std::pair<bool, std::string> Server::reloadCertificates() {
  size_t reloaded = 0;
  std::vector<std::string> errors;
  for (const ListenerConfigPtr& listener : listeners_) {
    for (tls::ServerSslSocketFactory* factory : listener->tls_factories) {
      auto context = factory->rebuild();
      if (!context.ok()) {
        store_->counter("server.tls_reload_failure").inc();
        errors.push_back(absl::StrCat(context.status().message(), " (", factory->path(),
                                      " keeps its current certificates)"));
        SLUICE_LOG(kError, "certificate reload: %s", errors.back());
        continue;
      }
      // Each worker swaps its own slot; connections keep the context they started with.
      for (size_t i = 0; i < workers_.size(); ++i) {
        workers_[i]->post(
            [listener, factory, i, context = *context] { factory->setContext(i, context); });
      }
      factory->setContext(workers_.size(), *context);
      store_->counter("server.tls_reload_success").inc();
      ++reloaded;
    }
  }
  std::string report = absl::StrCat("reloaded ", reloaded, " TLS context(s)");
  if (!errors.empty()) absl::StrAppend(&report, "; failed: ", absl::StrJoin(errors, "; "));
  if (errors.empty()) {
    SLUICE_LOG(kInfo, "certificate reload: %s", report);
  } else {
    SLUICE_LOG(kWarn, "certificate reload: %s", report);
  }
  return {errors.empty(), report + "\n"};
}

absl::Status Server::reserveListenerAddress(ListenerConfig& listener) {
  if (listener.reuse_port_with_other_processes) return absl::OkStatus();
  auto reserved = sockets_.reserve(listener.address);
  if (absl::IsAlreadyExists(reserved.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "listener ", listener.name, ": another process is already listening on ",
        listener.address.asString(),
        " (or on an address overlapping it: the same port on the wildcard address, or a "
        "specific address under this wildcard). sluice does not share a port with another "
        "process, since the kernel would split new connections between the two (SO_REUSEPORT). "
        "Stop the other process or choose another port; to share the port on purpose, set "
        "reuse_port_with_other_processes: true on listener ",
        listener.name, "."));
  }
  if (!reserved.ok()) {
    return absl::Status(reserved.status().code(), absl::StrCat("listener ", listener.name, ": ",
                                                               reserved.status().message()));
  }
  // Port 0: our sockets take the port the kernel chose for the reservation.
  listener.address = *reserved;
  return absl::OkStatus();
}

std::vector<ControlFrame> Server::onControl(const sluice::control::v1::Request& request,
                                            pid_t peer) {
  sluice::control::v1::Response r;
  switch (request.command_case()) {
    case sluice::control::v1::Request::kStatus: {
      auto* s = r.mutable_status();
      s->set_pid(static_cast<uint32_t>(getpid()));
      s->set_version(info_.version);
      // A drain of the listeners alone (keep_process) drains too: nothing is accepted.
      s->set_state(draining_ || listeners_stopped_ ? "draining" : "live");
      s->set_concurrency(info_.concurrency);
      s->set_config_path(info_.config_path);
      const auto up = std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::steady_clock::now() - info_.start);
      s->set_uptime_seconds(static_cast<uint64_t>(up.count()));
      s->set_lineage_uptime_seconds(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now() - lineage_start_)
                                    .count()));
      s->set_restart_epoch(restart_epoch_);
      for (const auto& arg : info_.command_line) s->add_command_line(arg);
      s->set_working_directory(working_directory_);
      s->set_downstream_connections_active(
          static_cast<uint64_t>(store_->gauge("server.downstream_cx_active").value()));
      break;
    }
    case sluice::control::v1::Request::kStats: {
      std::unique_ptr<re2::RE2> filter;
      if (!request.stats().filter().empty()) {
        filter = std::make_unique<re2::RE2>(request.stats().filter(), re2::RE2::Quiet);
        if (!filter->ok()) {
          return {ControlServer::Error(absl::StrCat("invalid stats filter: ", filter->error()))};
        }
      }
      r.mutable_stats()->set_text(store_->dumpText(filter.get()));
      break;
    }
    case sluice::control::v1::Request::kDrain:
      r.mutable_drain()->set_drain_timeout_ms(static_cast<uint64_t>(drain_timeout_.count()));
      if (request.drain().keep_process()) {
        SLUICE_LOG(kInfo, "control socket: drain of the listeners asked by pid %d",
                   static_cast<int>(peer));
        drainListeners();
      } else {
        SLUICE_LOG(kInfo, "control socket: drain asked by pid %d", static_cast<int>(peer));
        startDrain();
      }
      break;
    case sluice::control::v1::Request::kSetHealth:
      if (!admin_) {
        return {ControlServer::Error(
            "this sluice has no admin endpoint, so no readiness to fail (set admin.address, "
            "admin.unix_socket or admin.probe_address)")};
      }
      SLUICE_LOG(kInfo, "control socket: health check set to %s by pid %d",
                 request.set_health().failing() ? "fail" : "pass", static_cast<int>(peer));
      admin_->setHealthCheckFailed(request.set_health().failing());
      r.mutable_set_health();
      break;
    case sluice::control::v1::Request::kReloadCertificates: {
      auto [ok, report] = reloadCertificates();
      if (!ok) return {ControlServer::Error(report)};
      for (absl::string_view line : absl::StrSplit(report, '\n', absl::SkipEmpty())) {
        r.mutable_reload_certificates()->add_reloaded(std::string(line));
      }
      break;
    }
    case sluice::control::v1::Request::kTakeSockets:
      return handOverSockets(peer);
    case sluice::control::v1::Request::kTakeState:
      return handOverState(request.take_state().stdio());
    case sluice::control::v1::Request::kStartDrain:
      return onStartDrain(request.start_drain(), peer);
    case sluice::control::v1::Request::kMergeCounters: {
      std::vector<std::pair<std::string, uint64_t>> values(
          request.merge_counters().counters().begin(), request.merge_counters().counters().end());
      const size_t merged = store_->addToCounters(values);
      SLUICE_LOG(kInfo, "hot restart: %zu counters of pid %u's drain merged", merged,
                 request.merge_counters().pid());
      r.mutable_merge_counters()->set_merged(static_cast<uint32_t>(merged));
      break;
    }
    default:
      return {ControlServer::Error("unknown control command")};
  }
  return {ControlServer::Reply(std::move(r))};
}

std::vector<ControlFrame> Server::handOverSockets(pid_t successor) {
  std::vector<ControlFrame> frames;
  sluice::control::v1::Response batch;
  std::vector<int> fds;
  auto flush = [&](bool more) {
    batch.mutable_take_sockets()->set_more(more);
    ControlFrame f = ControlServer::Reply(std::move(batch));
    f.fds = std::move(fds);
    frames.push_back(std::move(f));
    batch = {};
    fds.clear();
  };
  auto add = [&](const std::string& address, int fd, bool admin) {
    if (fds.size() == control::kMaxFdsPerMessage) flush(/*more=*/true);
    auto* s = batch.mutable_take_sockets()->add_sockets();
    s->set_address(address);
    s->set_index(static_cast<uint32_t>(fds.size()));
    s->set_admin(admin);
    fds.push_back(fd);
  };
  for (const auto& [address, group] : sockets_.sockets()) {
    for (int fd : group) add(address, fd, /*admin=*/false);
  }
  std::vector<std::pair<std::string, int>> admin;
  if (admin_) admin = admin_->listeningSockets();
  for (const auto& [address, fd] : admin) add(address, fd, /*admin=*/true);
  flush(/*more=*/false);
  SLUICE_LOG(kInfo, "hot restart: %zu listening sockets and %zu of the admin's handed to pid %d",
             sockets_.count(), admin.size(), static_cast<int>(successor));
  return frames;
}

void Server::startDrain() {
  if (draining_) {
    SLUICE_LOG(kWarn, "second signal during drain: closing every connection now");
    for (auto& w : workers_) w->closeConnections();
    return;
  }
  draining_ = true;
  // systemd: the service stops — unless a successor took over (it is the main process now).
  if (!handed_over_) sd::Notify("STOPPING=1\nSTATUS=draining");
  if (admin_) admin_->setState(Admin::State::kDraining);
  SLUICE_LOG(kInfo, "draining: no new connections; open ones have up to %dms to finish",
             static_cast<int>(drain_timeout_.count()));
  armDrainTimer();
  stopListening();
  for (auto& w : workers_) {
    w->notifyWhenIdle([this] { main_->post([this] { onWorkerIdle(); }); });
  }
}

void Server::drainListeners() {
  if (listeners_stopped_) return;
  if (admin_) admin_->setState(Admin::State::kDraining);
  SLUICE_LOG(kInfo,
             "draining listeners: no new connections; open ones have up to %dms to "
             "finish; the process stays up",
             static_cast<int>(drain_timeout_.count()));
  armDrainTimer();
  stopListening();
}

void Server::armDrainTimer() {
  if (drain_timer_) return;
  drain_timer_ = main_->createTimer([this] {
    SLUICE_LOG(kInfo, "drain timeout: closing the remaining connections");
    for (auto& w : workers_) w->closeConnections();
  });
  drain_timer_->enableTimer(drain_timeout_);
}

absl::Status Server::takeState() {
  auto client = PredecessorClient::Connect(options_.hot_restart_from);
  if (!client.ok())
    return absl::UnavailableError(absl::StrCat("hot restart: ", client.status().message()));
  auto state = (*client)->takeState(/*stdio=*/options_.ready_fd >= 0, inherited_stdio_);
  if (!state.ok()) {
    return absl::Status(state.status().code(),
                        absl::StrCat("hot restart: ", state.status().message()));
  }
  for (const auto& k : state->session_ticket_keys()) {
    tls::TicketKey key;
    if (!tls::GeneratedTicketKeys::Parse(k.key(), key)) {
      return absl::DataLossError("hot restart: a session ticket key is not 80 bytes");
    }
    ticket_keys_.inherit(k.chain(), key);
  }
  restart_epoch_ = state->restart_epoch() + 1;
  if (state->lineage_start_unix_seconds() != 0) {
    lineage_start_ = std::chrono::system_clock::time_point(
        std::chrono::seconds(state->lineage_start_unix_seconds()));
  }
  SLUICE_LOG(kInfo, "hot restart: epoch %u; session ticket keys of %d TLS chains taken over",
             restart_epoch_, state->session_ticket_keys_size());
  predecessor_ = std::move(*client);
  take_over_control_ = SameFile(controlPath(), options_.hot_restart_from);
  take_over_admin_unix_ =
      bootstrap_.has_admin() && bootstrap_.admin().has_unix_socket() &&
      SameFile(bootstrap_.admin().unix_socket().path(), state->admin_unix_socket());
  return absl::OkStatus();
}

void Server::startPredecessorDrain() {
  // Absolute: the predecessor may run in another directory.
  std::string control = controlPath();
  if (!control.empty() && control[0] != '/') control = working_directory_ + "/" + control;
  auto r = predecessor_->startDrain(control, admin_taken_, take_over_admin_unix_);
  predecessor_.reset();
  if (!r.ok()) {
    // This process serves already, beside the old one: say so, and go on.
    SLUICE_LOG(kError, "hot restart: %s (the previous sluice was not told to drain)",
               r.status().message());
    return;
  }
  std::vector<std::pair<std::string, uint64_t>> counters(r->counters().begin(),
                                                         r->counters().end());
  const size_t merged = store_->addToCounters(counters);
  SLUICE_LOG(kInfo,
             "hot restart: the previous sluice drains (up to %llums); %zu of its %zu "
             "counters continue here",
             static_cast<unsigned long long>(r->drain_timeout_ms()), merged, counters.size());
}

absl::Status Server::startControl() {
  const std::string& path = controlPath();
  if (path.empty()) return absl::OkStatus();
  auto control = ControlServer::Start(
      *main_, path,
      [this](const sluice::control::v1::Request& request, pid_t peer) {
        return onControl(request, peer);
      },
      /*take_over=*/take_over_control_);
  if (!control.ok()) return control.status();
  control_ = std::move(*control);
  SLUICE_LOG(kInfo, "control socket on %s", path);
  return absl::OkStatus();
}

std::vector<ControlFrame> Server::handOverState(bool stdio) {
  sluice::control::v1::Response r;
  auto* state = r.mutable_take_state();
  for (const auto& [chain, key] : ticket_keys_.own()) {
    auto* k = state->add_session_ticket_keys();
    k->set_chain(chain);
    k->set_key(tls::GeneratedTicketKeys::Serialize(key));
  }
  state->set_restart_epoch(restart_epoch_);
  state->set_lineage_start_unix_seconds(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(lineage_start_.time_since_epoch()).count()));
  if (admin_ && bootstrap_.admin().has_unix_socket()) {
    // Absolute: the successor may run in another directory.
    std::string path = bootstrap_.admin().unix_socket().path();
    if (!path.empty() && path[0] != '/') path = working_directory_ + "/" + path;
    state->set_admin_unix_socket(path);
  }
  ControlFrame frame = ControlServer::Reply(std::move(r));
  if (stdio) frame.fds = {STDOUT_FILENO, STDERR_FILENO};
  return {std::move(frame)};
}

std::vector<ControlFrame> Server::onStartDrain(
    const sluice::control::v1::StartDrainRequest& request, pid_t successor) {
  if (draining_) return {ControlServer::Error("this sluice drains already")};
  SLUICE_LOG(kInfo, "hot restart: pid %d serves; draining", static_cast<int>(successor));
  sluice::control::v1::Response r;
  r.mutable_start_drain()->set_drain_timeout_ms(static_cast<uint64_t>(drain_timeout_.count()));
  drain_counters_ = store_->counterValues();
  for (const auto& [name, value] : drain_counters_) {
    if (value != 0) (*r.mutable_start_drain()->mutable_counters())[name] = value;
  }
  successor_control_ = request.control_socket();
  handed_over_ = true;
  if (admin_) {
    const std::vector<std::string> addresses(request.admin_addresses().begin(),
                                             request.admin_addresses().end());
    if (const size_t stopped = admin_->handOver(addresses, request.admin_unix_socket());
        stopped != 0) {
      SLUICE_LOG(kInfo, "hot restart: stops accepting on %zu admin sockets (pid %d does)", stopped,
                 static_cast<int>(successor));
    }
  }
  startDrain();
  return {ControlServer::Reply(std::move(r))};
}

void Server::sendDrainCounters() {
  if (successor_control_.empty()) return;
  auto s = SendDrainCounters(successor_control_, drain_counters_, store_->counterValues());
  if (!s.ok()) {
    SLUICE_LOG(kWarn, "hot restart: the counts of this drain did not reach the successor: %s",
               s.message());
  }
}

void Server::stopListening() {
  if (listeners_stopped_) return;
  listeners_stopped_ = true;
  for (auto& w : workers_) {
    w->stopListeners([this] {
      main_->post([this] {
        // Once no worker polls them, the sockets can close: new connects are refused from here.
        if (++workers_stopped_ == workers_.size()) sockets_.closeAll();
      });
    });
  }
}

void Server::onWorkerIdle() {
  if (++workers_idle_ == workers_.size()) shutdown();
}

void Server::shutdown() {
  if (drain_timer_) drain_timer_->disableTimer();
  // After a handoff, the admin requests this process accepted were sent to the service, which
  // goes on: they are answered before it exits (each within the admin's request timeout, which
  // bounds the wait). After SIGTERM they end with the service, as before.
  if (handed_over_ && admin_ && admin_->connections() != 0) {
    admin_->stopAccepting();
    admin_exit_timer_ = main_->createTimer([this] { main_->exit(); });
    admin_exit_timer_->enableTimer(Admin::kRequestTimeout + std::chrono::seconds(1));
    admin_->notifyWhenIdle([this] { main_->exit(); });
    return;
  }
  main_->exit();
}

}  // namespace

absl::Status Run(const config::v1::Bootstrap& bootstrap, const config::ValueSources& sources,
                 const Options& options) {
  Server server(bootstrap, sources, options);
  return server.run();
}

absl::Status Validate(const config::v1::Bootstrap& bootstrap, const config::ValueSources& sources) {
  stats::Store store;
  auto clusters =
      upstream::ClusterManager::create(bootstrap, store, &http::CreateClientCodecFactory);
  if (!clusters.ok()) return clusters.status();
  plugin::PluginManagerPtr plugins = PluginManagerFor(bootstrap, sources, store);
  // Every listener's errors (each reports every plugin filter's), not just the first.
  std::vector<std::string> errors;
  for (int li = 0; li < bootstrap.listeners_size(); ++li) {
    auto cfg = BuildListenerConfig(bootstrap.listeners(li), **clusters, store, 1,
                                   absl::StrCat("listeners[", li, "]"), plugins.get());
    if (!cfg.ok()) errors.emplace_back(cfg.status().message());
  }
  if (bootstrap.has_admin()) {
    // The bearer token's file is read and checked as at start.
    if (auto settings = AdminSettingsFrom(bootstrap.admin()); !settings.ok()) {
      errors.emplace_back(settings.status().message());
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return absl::OkStatus();
}

}  // namespace sluice::server
