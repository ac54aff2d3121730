#include "source/server/worker.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "source/common/block_cache.h"
#include "source/common/logging.h"
#include "source/network/connection_impl.h"
#include "source/network/listener_impl.h"
#include "source/network/transport_socket.h"

namespace sluice::server {

namespace {
// How often a worker checks whether it freed enough to give memory back, and how much is enough.
constexpr std::chrono::milliseconds kTrimInterval{5000};
constexpr size_t kTrimAfterBytes = 8 * 1024 * 1024;
}  // namespace

// A connection the worker owns, and its way back to the worker when it closes.
class Worker::ActiveConnection : public network::ConnectionCallbacks,
                                 public event::DeferredDeletable {
 public:
  ActiveConnection(Worker& worker, ActiveListener* listener, network::ConnectionPtr connection)
      : worker_(worker), listener_(listener), connection_(std::move(connection)) {
    connection_->addConnectionCallbacks(*this);
  }
  ~ActiveConnection() override {
    if (connection_) connection_->removeConnectionCallbacks(*this);
  }
  void onEvent(network::ConnectionEvent event) override {
    if (event != network::ConnectionEvent::kConnected) worker_.onConnectionClosed(*this);
  }
  network::Connection& connection() { return *connection_; }
  ActiveListener* listener() const { return listener_; }
  ActiveConnection* prev = nullptr;
  ActiveConnection* next = nullptr;

 private:
  Worker& worker_;
  ActiveListener* const listener_;  // null for adopted (closing upstream) connections
  network::ConnectionPtr connection_;
};

// One listener on this worker: accepts, enforces the limits, builds the filter chain.
class Worker::ActiveListener : public network::ListenerCallbacks {
 public:
  ActiveListener(Worker& worker, ListenerConfigPtr config, int fd)
      : worker_(worker),
        config_(std::move(config)),
        listener_(std::make_unique<network::TcpListenerImpl>(*worker.dispatcher_, fd, *this,
                                                             config_->max_accepts_per_event)) {}

  void enable() { listener_->enable(); }
  void disable() {
    listener_->disable();
    if (paused_) {
      paused_ = false;
      worker_.shared_.paused_listeners.fetch_sub(1);
    }
  }
  void resumeIfPaused() {
    if (!paused_) return;
    paused_ = false;
    worker_.shared_.paused_listeners.fetch_sub(1);
    listener_->enable();
  }
  void release() {
    config_->limit.release();
    worker_.shared_.global_limit.release();
  }
  const ListenerConfig& config() const { return *config_; }

  bool reserveConnection() override {
    if (!worker_.shared_.global_limit.tryAcquire()) {
      blocked_by_global_ = true;
      return false;
    }
    if (!config_->limit.tryAcquire()) {
      worker_.shared_.global_limit.release();
      blocked_by_global_ = false;
      return false;
    }
    return true;
  }
  void unreserveConnection() override { release(); }
  void onPaused() override {
    (blocked_by_global_ ? worker_.shared_.cx_overflow : config_->cx_overflow).inc();
    paused_ = true;
    worker_.shared_.paused_listeners.fetch_add(1);
    // A connection may have closed between the failed reservation and the pause: look again,
    // or nobody would wake us.
    if (worker_.shared_.global_limit.active() < worker_.shared_.global_limit.max() ||
        worker_.shared_.global_limit.max() == 0) {
      if (config_->limit.max() == 0 || config_->limit.active() < config_->limit.max()) {
        worker_.dispatcher_->post([this] { resumeIfPaused(); });
      }
    }
  }
  void onFdExhausted() override {
    worker_.shared_.fd_exhausted.inc();
    if (!logged_fd_exhausted_) {
      logged_fd_exhausted_ = true;
      SLUICE_LOG(kWarn,
                 "listener %s: out of file descriptors (EMFILE/ENFILE); pausing accepts briefly "
                 "(logged once; see server.accept_fd_exhausted)",
                 config_->name);
    }
  }
  void onAccept(int fd, const network::Address& remote) override;

 private:
  Worker& worker_;
  ListenerConfigPtr config_;
  network::ListenerPtr listener_;
  bool paused_ = false;
  bool blocked_by_global_ = false;
  bool logged_fd_exhausted_ = false;
};

void Worker::ActiveListener::onAccept(int fd, const network::Address& remote) {
  const ListenerConfig& cfg = *config_;
  if (cfg.tcp_nodelay) network::SetNoDelay(fd, true);
  if (cfg.keepalive) network::SetKeepalive(fd, *cfg.keepalive);
  auto connection = std::make_unique<network::ConnectionImpl>(*worker_.dispatcher_, fd, nullptr,
                                                              remote, cfg.address);
  connection->setBufferLimits(cfg.buffer_limit);
  cfg.cx_total.inc();
  cfg.cx_active.inc();
  cfg.worker_cx_total[worker_.index_]->inc();
  worker_.shared_.cx_total.inc();
  worker_.shared_.cx_active.inc();

  auto* active = new ActiveConnection(worker_, this, std::move(connection));
  ActiveConnection& ref = *active;
  worker_.connections_.push(active);
  SLUICE_LOG(kTrace, "[C%d] accepted from %s on %s", ref.connection().id(), remote.asString(),
             cfg.name);
  for (const auto& factory : cfg.filter_factories) factory(ref.connection(), worker_);
  ref.connection().initializeReadFilters();
}

Worker::Worker(size_t index, WorkerShared& shared, const upstream::ClusterManager& clusters)
    : index_(index),
      shared_(shared),
      dispatcher_(event::CreateDispatcher(absl::StrCat("worker_", index))),
      clusters_(clusters, index) {}

Worker::~Worker() {
  // stop() joined the thread; what is left is torn down here, on the owner's thread, with the
  // loop no longer running.
  on_idle_ = nullptr;
  listeners_.clear();
  closeAllNow();
  // Closing a proxied connection may hand its upstream over to closing_: close those too.
  closeAllNow();
  connections_.deleteAll();
  closing_.deleteAll();
  // Pooled upstream connections go while their dispatcher (and its poller) still exists, and
  // before the deferred deletions their closing queues.
  clusters_.releaseConnections();
  dispatcher_.reset();
}

void Worker::closeAllNow() {
  // Closing raises events that unlink connections from the lists: walk a snapshot.
  std::vector<network::Connection*> all;
  connections_.collect(all);
  closing_.collect(all);
  for (auto* c : all) c->close(network::CloseType::kNoFlush);
}

void Worker::addListener(ListenerConfigPtr config, int fd) {
  listeners_.push_back(std::make_unique<ActiveListener>(*this, std::move(config), fd));
}

void Worker::start() {
  // The process's signals are the main loop's (server.cc listens for them through libevent). A
  // worker blocks them so that the kernel delivers them to the main thread: libevent's handler
  // would pass them on from any thread, but a worker that took one would see its epoll_wait
  // interrupted for nothing. The thread inherits the mask it is created with, so it never has a
  // moment without it.
  sigset_t block;
  sigemptyset(&block);
  for (int sig : kMainLoopSignals) sigaddset(&block, sig);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  thread_ = std::thread([this] {
    log::SetThreadName(absl::StrCat("worker_", index_));
    stats::SetThreadSlot(index_);
    for (auto& l : listeners_) l->enable();
    trim_timer_ = dispatcher_->createTimer([this] { trimMemory(); });
    trim_timer_->enableTimer(kTrimInterval);
    dispatcher_->run();
    trim_timer_.reset();
  });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void Worker::trimMemory() {
  // After a burst (thousands of slow clients gone, a flood of uploads), glibc keeps the freed
  // chunks in this thread's arena: RSS would stay at the peak. Once enough was freed, hand the
  // free pages back (madvise, arena by arena). Rare, so its cost — it walks the arenas, taking
  // each one's lock briefly — stays off the request path.
  if (BlockCache::TakeReleasedBytes() >= kTrimAfterBytes) malloc_trim(0);
  trim_timer_->enableTimer(kTrimInterval);
}

void Worker::stopListeners(std::function<void()> done) {
  dispatcher_->post([this, done = std::move(done)] {
    for (auto& l : listeners_) l->disable();
    // Let protocols wind down politely (HTTP: "Connection: close", idle keep-alives closed).
    std::vector<network::Connection*> all;
    connections_.collect(all);
    for (auto* c : all) c->drain();
    done();
  });
}

void Worker::notifyWhenIdle(std::function<void()> on_idle) {
  dispatcher_->post([this, on_idle = std::move(on_idle)] {
    on_idle_ = on_idle;
    checkIdle();
  });
}

void Worker::checkIdle() {
  if (on_idle_ && connections_.empty()) {
    auto cb = std::move(on_idle_);
    on_idle_ = nullptr;
    cb();
  }
}

void Worker::updateHosts(const upstream::Cluster& cluster, upstream::HostSetPtr hosts) {
  dispatcher_->post([this, &cluster, hosts = std::move(hosts)]() mutable {
    clusters_.updateHosts(cluster, std::move(hosts));
  });
}

void Worker::closeConnections() {
  dispatcher_->post([this] { closeAllNow(); });
}

void Worker::resumePausedListeners() {
  dispatcher_->post([this] {
    for (auto& l : listeners_) l->resumeIfPaused();
  });
}

void Worker::stop() {
  dispatcher_->exit();
  if (thread_.joinable()) thread_.join();
}

void Worker::ConnectionList::push(ActiveConnection* c) {
  c->prev = nullptr;
  c->next = head;
  if (head != nullptr) head->prev = c;
  head = c;
  ++size;
}

std::unique_ptr<Worker::ActiveConnection> Worker::ConnectionList::remove(ActiveConnection* c) {
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (head == c) head = c->next;
  c->prev = c->next = nullptr;
  --size;
  return std::unique_ptr<ActiveConnection>(c);
}

void Worker::ConnectionList::collect(std::vector<network::Connection*>& out) const {
  for (ActiveConnection* c = head; c != nullptr; c = c->next) out.push_back(&c->connection());
}

void Worker::ConnectionList::deleteAll() {
  while (head != nullptr) remove(head);  // the returned owner deletes each
}

void Worker::adoptClosingConnection(network::ConnectionPtr connection) {
  closing_.push(new ActiveConnection(*this, nullptr, std::move(connection)));
}

void Worker::onConnectionClosed(ActiveConnection& active) {
  ActiveListener* listener = active.listener();
  auto& list = listener != nullptr ? connections_ : closing_;
  std::unique_ptr<ActiveConnection> owned = list.remove(&active);
  if (listener != nullptr) {
    listener->config().cx_active.dec();
    shared_.cx_active.dec();
    listener->release();
    if (shared_.paused_listeners.load() > 0 && shared_.resume_all) shared_.resume_all();
  }
  // We are inside the connection's own callback: destroy it after this event.
  dispatcher_->deferredDelete(std::move(owned));
  checkIdle();
}

}  // namespace sluice::server
