#include "source/server/worker.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <list>

#include "absl/strings/str_cat.h"
#include "source/common/block_cache.h"
#include "source/common/crash_handler.h"
#include "source/common/logging.h"
#include "source/network/connection_impl.h"
#include "source/network/idle_connection_list.h"
#include "source/network/listener_impl.h"
#include "source/network/transport_socket.h"
#include "source/tls/client_hello.h"

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

// One listener on this worker: accepts, enforces the limits, builds the filter chain. It is its
// connections' filter context, so that they enter its idle list.
class Worker::ActiveListener : public network::ListenerCallbacks, public network::FilterContext {
 public:
  ActiveListener(Worker& worker, ListenerConfigPtr config, int fd)
      : worker_(worker),
        config_(std::move(config)),
        listener_(std::make_unique<network::TcpListenerImpl>(*worker.dispatcher_, fd, *this,
                                                             config_->max_accepts_per_event)),
        idle_(worker.idle_clock_),
        retry_timer_(worker.dispatcher_->createTimer([this] { resumeIfPaused(); })) {}

  void enable() { listener_->enable(); }
  void disable() {
    if (!listener_) return;
    listener_->disable();
    retry_timer_->disableTimer();
    if (paused_) {
      paused_ = false;
      worker_.shared_.paused_listeners.fetch_sub(1);
    }
  }
  void resumeIfPaused() {
    if (!listener_) return;  // stopped polling: a closure posted before the worker stopped
    retry_timer_->disableTimer();
    if (!paused_) return;
    paused_ = false;
    worker_.shared_.paused_listeners.fetch_sub(1);
    listener_->enable();
  }
  // At worker teardown, before the dispatcher goes: the socket's events and the timer are its.
  // The rest lives on while connections that have it as their context are destroyed (and
  // closures still posted to the loop run).
  void stopPolling() {
    listener_.reset();
    retry_timer_.reset();
  }
  void release() {
    config_->limit.release();
    worker_.shared_.global_limit.release();
  }
  const ListenerConfig& config() const { return *config_; }
  network::IdleConnectionList& idle() { return idle_; }
  const network::IdleConnectionList& idle() const { return idle_; }

  // network::FilterContext
  event::Dispatcher& dispatcher() override { return *worker_.dispatcher_; }
  upstream::WorkerClusters& clusters() override { return worker_.clusters_; }
  http::CalloutClient* calloutClient() override { return &worker_.callout_client_; }
  http::UpstreamFactory* upstreamFactory() override { return &worker_.upstream_factory_; }
  network::WorkerLocals* workerLocals() override { return &worker_.locals_; }
  void adoptClosingConnection(network::ConnectionPtr connection) override {
    worker_.adoptClosingConnection(std::move(connection));
  }
  network::IdleConnectionPool* idleConnections() override {
    return config_->reclaim_idle ? &idle_ : nullptr;
  }

  // network::ListenerCallbacks
  bool reserveConnection() override {
    // The listener's own limit first: when both are reached, closing one of its idle
    // connections makes room under both at once.
    if (!config_->limit.tryAcquire()) {
      blocked_by_global_ = false;
      return false;
    }
    if (!worker_.shared_.global_limit.tryAcquire()) {
      config_->limit.release();
      blocked_by_global_ = true;
      return false;
    }
    return true;
  }
  void unreserveConnection() override { release(); }
  AtLimit onLimitReached(bool waiting) override {
    // At the global limit any idle connection makes room; at the listener's own, only one of
    // its own.
    const ListenerConfig* scope = blocked_by_global_ ? nullptr : config_.get();
    if (!(scope != nullptr ? scope->reclaim_idle : worker_.shared_.reclaim_any)) {
      return AtLimit::kPause;  // nothing can ever be reclaimed for it: wait for a close
    }
    if (!waiting) return AtLimit::kWait;
    if (worker_.reclaimIdle(scope, 1) > 0) return AtLimit::kRetry;
    // None here (or none that could go): the other workers may have some.
    reclaim_elsewhere_ = true;
    return AtLimit::kPause;
  }
  void onPaused() override {
    // Once per stretch at the limit: polling again (a resume, a retry) to find the room taken
    // is the same overflow.
    if (!overflow_counted_) {
      overflow_counted_ = true;
      (blocked_by_global_ ? worker_.shared_.cx_overflow : config_->cx_overflow).inc();
    }
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
    if (reclaim_elsewhere_) {
      // A client waits. Another worker closing an idle connection wakes us (resume_all on every
      // close while a listener is paused). Look again after a while anyway: a connection busy
      // now may be idle then, and becoming idle wakes nobody.
      reclaim_elsewhere_ = false;
      worker_.askOthersToReclaim(blocked_by_global_ ? nullptr : config_.get());
      retry_timer_->enableTimer(kReclaimRetry);
    }
  }
  bool onFdExhausted(bool may_free) override {
    worker_.shared_.fd_exhausted.inc();
    if (!logged_fd_exhausted_) {
      logged_fd_exhausted_ = true;
      SLUICE_LOG(kWarn,
                 "listener %s: out of file descriptors (EMFILE/ENFILE); pausing accepts briefly "
                 "(logged once; see server.accept_fd_exhausted)",
                 config_->name);
    }
    if (!may_free || !worker_.shared_.reclaim_any) return false;
    // Descriptors are the whole process's (upstream connections need them too): free a batch,
    // as nginx does when it runs short — an eighth of the idle connections, 1 to 32.
    const size_t idle = worker_.idleCount(nullptr);
    if (idle > 0 &&
        worker_.reclaimIdle(nullptr, std::clamp<size_t>(idle / 8, 1, kMaxReclaimBatch)) > 0) {
      return true;
    }
    // None here: the listener backs off, and retries once another worker may have closed one.
    worker_.askOthersToReclaim(nullptr);
    return false;
  }
  void onAccept(int fd, const network::Address& remote) override;
  // Builds the connection of `chain` on an accepted `fd` (`initial`: bytes already read).
  void createConnection(int fd, const network::Address& remote, const FilterChain& chain,
                        Buffer* initial);
  // Chooses the chain once the ClientHello is known (null `hello`: none came, or not TLS).
  void onClientHello(int fd, const network::Address& remote, const tls::ClientHelloInfo* hello,
                     Buffer& initial);
  // An accepted fd that will not become a connection: closed, its reservation given back.
  void rejectAccepted(int fd);
  void closePending();
  bool hasPending() const { return !pending_.empty(); }

  class PendingHello;

  // How long a listener paused with a client waiting stays paused before it looks again for an
  // idle connection to close.
  static constexpr std::chrono::milliseconds kReclaimRetry{100};
  static constexpr size_t kMaxReclaimBatch = 32;

 private:
  Worker& worker_;
  ListenerConfigPtr config_;
  network::ListenerPtr listener_;
  network::IdleConnectionList idle_;
  event::TimerPtr retry_timer_;
  bool paused_ = false;
  bool blocked_by_global_ = false;
  bool logged_fd_exhausted_ = false;
  // onLimitReached found a client waiting and no idle connection here to close for it.
  bool reclaim_elsewhere_ = false;
  // This stretch at the limit is counted in *_overflow (until the next accept).
  bool overflow_counted_ = false;
  // Accepted connections whose chain waits for their ClientHello.
  std::list<std::unique_ptr<PendingHello>> pending_;
};

// An accepted connection whose filter chain is chosen by its TLS ClientHello (server names,
// ALPN): the hello is read — not peeked: the events are level-triggered, and a partial hello
// left in the socket would wake the loop until the rest came — and the bytes are handed to the
// chosen transport, which reads them first. Bounded in time (listener_filters_timeout) and size
// (kMaxClientHello). It holds its listener's connection reservation like a connection does.
class Worker::ActiveListener::PendingHello : public event::DeadlineCallbacks {
 public:
  PendingHello(ActiveListener& listener, int fd, const network::Address& remote)
      : listener_(listener), fd_(fd), remote_(remote) {}
  ~PendingHello() override {
    event_.reset();
    if (fd_ >= 0) listener_.rejectAccepted(fd_);
  }
  void start(std::list<std::unique_ptr<PendingHello>>::iterator self) {
    self_ = self;
    event::Dispatcher& dispatcher = *listener_.worker_.dispatcher_;
    event_.assign(dispatcher, fd_,
                  &event::EmbeddedFileEvent::Trampoline<PendingHello, &PendingHello::onReady>,
                  this);
    event_.setEnabled(event::kRead);
    dispatcher.armDeadline(deadline_, listener_.config_->listener_filters_timeout, *this);
  }

  // The largest ClientHello read (several records of one handshake message; post-quantum key
  // shares make them 2 KiB and more). Envoy's tls_inspector takes 16 KiB too.
  static constexpr size_t kMaxClientHello = 16 * 1024;

 private:
  void onReady(uint32_t) {
    IoResult r = data_.readFrom(fd_, kMaxClientHello + 5 - data_.length());
    if (r.rc == 0 || (r.rc < 0 && !r.wouldBlock() && r.error != EINTR)) {
      // The client left before its hello was complete: nothing to serve.
      finish(nullptr, /*drop=*/true);
      return;
    }
    if (r.rc < 0) return;
    // One contiguous view: a single read slice almost always; copied when it spans several.
    struct iovec iov[1];
    data_.peek(iov, 1);
    std::string joined;
    absl::Span<const uint8_t> bytes(static_cast<const uint8_t*>(iov[0].iov_base), iov[0].iov_len);
    if (iov[0].iov_len != data_.length()) {
      joined = data_.toString();
      bytes =
          absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(joined.data()), joined.size());
    }
    tls::ClientHelloInfo info;
    switch (tls::ParseClientHello(bytes, &info, kMaxClientHello)) {
      case tls::ParseResult::kNeedMore:
        if (data_.length() < kMaxClientHello + 5) return;
        [[fallthrough]];
      case tls::ParseResult::kTooLarge:
      case tls::ParseResult::kInvalid:
        // Not a hello the chains can be chosen by: as a connection without one (the TLS stack,
        // if the chain has one, answers with an alert).
        listener_.config_->client_hello_invalid->inc();
        finish(nullptr, false);
        return;
      case tls::ParseResult::kNotTls:
        finish(nullptr, false);
        return;
      case tls::ParseResult::kDone:
        finish(&info, false);
        return;
    }
  }
  void onDeadline(event::Deadline&) override {
    listener_.config_->client_hello_timeout->inc();
    finish(nullptr, /*drop=*/true);
  }
  void finish(const tls::ClientHelloInfo* hello, bool drop) {
    event_.reset();
    deadline_.cancel();
    ActiveListener& listener = listener_;
    const int fd = fd_;
    fd_ = -1;
    Buffer data;
    data.move(data_);
    const network::Address remote = remote_;
    std::unique_ptr<PendingHello> self = std::move(*self_);
    listener.pending_.erase(self_);
    self.reset();  // `this` is gone from here on
    if (drop) {
      listener.rejectAccepted(fd);
      return;
    }
    listener.onClientHello(fd, remote, hello, data);
  }

  ActiveListener& listener_;
  int fd_;
  network::Address remote_;
  Buffer data_;
  event::EmbeddedFileEvent event_;
  event::Deadline deadline_;
  std::list<std::unique_ptr<PendingHello>>::iterator self_;
};

void Worker::ActiveListener::onAccept(int fd, const network::Address& remote) {
  const ListenerConfig& cfg = *config_;
  overflow_counted_ = false;
  if (cfg.tcp_nodelay) network::SetNoDelay(fd, true);
  if (cfg.keepalive) network::SetKeepalive(fd, *cfg.keepalive);
  const FilterChainSet& chains = *cfg.chains;
  if (chains.needsClientHello()) {
    auto it = pending_.insert(pending_.end(), std::make_unique<PendingHello>(*this, fd, remote));
    (*it)->start(it);
    return;
  }
  if (const FilterChain* only = chains.only(); only != nullptr) {
    createConnection(fd, remote, *only, nullptr);
    return;
  }
  Buffer none;
  onClientHello(fd, remote, nullptr, none);
}

void Worker::ActiveListener::onClientHello(int fd, const network::Address& remote,
                                           const tls::ClientHelloInfo* hello, Buffer& initial) {
  const ListenerConfig& cfg = *config_;
  ChainMatchInput input;
  input.source = &remote;
  if (cfg.chains->matchesDestinationPort()) {
    if (auto local = network::Address::localOf(fd); local.ok()) {
      input.destination_port = local->port();
    }
  }
  if (hello != nullptr) {
    input.server_name = hello->server_name;
    input.alpn = &hello->alpn;
  }
  const FilterChain* chain = cfg.chains->find(input);
  if (chain == nullptr) {
    cfg.cx_no_filter_chain->inc();
    SLUICE_LOG(kDebug,
               "listener %s: no filter chain for a connection from %s (server name "
               "\"%s\"); closed",
               cfg.name, remote.asString(), input.server_name);
    rejectAccepted(fd);
    return;
  }
  createConnection(fd, remote, *chain, &initial);
}

void Worker::ActiveListener::rejectAccepted(int fd) {
  ::close(fd);
  release();
  if (worker_.shared_.paused_listeners.load() > 0 && worker_.shared_.resume_all) {
    worker_.shared_.resume_all();
  }
  worker_.checkIdle();
}

void Worker::ActiveListener::closePending() {
  while (!pending_.empty()) pending_.pop_front();  // each gives its fd and reservation back
}

void Worker::ActiveListener::createConnection(int fd, const network::Address& remote,
                                              const FilterChain& chain, Buffer* initial) {
  ListenerConfig& cfg = *config_;
  network::TransportSocketPtr transport;
  if (chain.transport) {
    network::TransportSocketOptions options;
    options.worker = worker_.index_;
    if (chain.secure()) {
      // Past the cap a new handshake is refused at once: the ones in flight already hold the
      // CPU, and a client told no now retries sooner than one left waiting.
      if (!cfg.tls_handshakes.tryAcquire()) {
        cfg.cx_handshake_overflow->inc();
        rejectAccepted(fd);
        return;
      }
      options.handshake_slot = &cfg.tls_handshakes;
    }
    transport = chain.transport->createTransportSocket(&options);
  }
  auto connection = std::make_unique<network::ConnectionImpl>(
      *worker_.dispatcher_, fd, std::move(transport), remote, cfg.address, initial);
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
  for (const auto& factory : chain.filter_factories) factory(ref.connection(), *this);
  ref.connection().initializeReadFilters();
  // Accepted before the drain, its ClientHello read after: it drains like the others.
  if (worker_.draining_) ref.connection().drain();
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
  // What they hold (an export in flight) uses the pools and the dispatcher; streams closed
  // below find none and keep nothing.
  locals_.close();
  for (auto& l : listeners_) l->stopPolling();
  closeAllNow();
  // Closing a proxied connection may hand its upstream over to closing_: close those too.
  closeAllNow();
  connections_.deleteAll();
  closing_.deleteAll();
  // Pooled upstream connections go while their dispatcher (and its poller) still exists, and
  // before the deferred deletions their closing queues.
  clusters_.releaseConnections();
  dispatcher_.reset();
  // Last: the listeners are their connections' filter context, and the deferred deletions
  // above destroyed the last of those.
  listeners_.clear();
}

void Worker::closeAllNow() {
  for (auto& l : listeners_) l->closePending();
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
    // The OS's name for it (crash reports, top -H, gdb) and its alternate signal stack.
    crash::OnThreadStart(absl::StrCat("sluice-wrk-", index_).c_str());
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
    draining_ = true;
    // Connections still waiting for their ClientHello are kept: a client sent it (a closed
    // connection would fail its handshake — during a hot restart too); they drain once built.
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
  if (!on_idle_ || !connections_.empty()) return;
  for (const auto& l : listeners_) {
    if (l->hasPending()) return;
  }
  auto cb = std::move(on_idle_);
  on_idle_ = nullptr;
  cb();
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

void Worker::reclaimForPeer(const ListenerConfig* listener, size_t hops) {
  dispatcher_->post([this, listener, hops] {
    if (reclaimIdle(listener, 1) > 0 || hops <= 1 || !shared_.reclaim_on) return;
    shared_.reclaim_on(index_ + 1, listener, hops - 1);
  });
}

void Worker::askOthersToReclaim(const ListenerConfig* only) {
  if (shared_.workers > 1 && shared_.reclaim_on) {
    shared_.reclaim_on(index_ + 1, only, shared_.workers - 1);
  }
}

size_t Worker::idleCount(const ListenerConfig* only) const {
  size_t n = 0;
  for (const auto& l : listeners_) {
    if (only == nullptr || &l->config() == only) n += l->idle().size();
  }
  return n;
}

size_t Worker::reclaimIdle(const ListenerConfig* only, size_t count) {
  size_t closed = 0;
  // An entry that cannot go now (see ReclaimableFilter::reclaim) moves to the recent end: bound
  // the tries so that a list of such entries is not walked round and round.
  size_t tries = std::min(idleCount(only), 2 * count + 8);
  while (closed < count && tries-- > 0) {
    // The least recently active entry over the lists in scope: their heads, compared on the
    // worker's clock.
    ActiveListener* from = nullptr;
    for (auto& l : listeners_) {
      if (l->idle().empty() || (only != nullptr && &l->config() != only)) continue;
      if (from == nullptr || l->idle().oldestOrder() < from->idle().oldestOrder()) from = l.get();
    }
    if (from == nullptr) break;
    if (!from->idle().reclaimOldest()) continue;
    ++closed;
    from->config().cx_idle_reclaimed.inc();
    shared_.cx_idle_reclaimed.inc();
  }
  if (closed > 0 && !shared_.reclaim_logged.exchange(true, std::memory_order_relaxed)) {
    SLUICE_LOG(kWarn,
               "at a connection limit (or out of file descriptors): closing idle keep-alive "
               "connections, least recently active first, to admit new ones (logged once; see "
               "server.downstream_cx_idle_reclaimed)");
  }
  return closed;
}

void Worker::post(std::function<void()> fn) { dispatcher_->post(std::move(fn)); }

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
