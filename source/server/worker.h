#pragma once

#include <signal.h>

#include <array>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "source/event/dispatcher.h"
#include "source/network/connection.h"
#include "source/network/filter_context.h"
#include "source/network/listener.h"
#include "source/router/callout_impl.h"
#include "source/router/router.h"
#include "source/server/listener_config.h"
#include "source/upstream/cluster.h"

namespace sluice::server {

// The signals the main loop handles (server.cc). Worker threads block them.
inline constexpr std::array<int, 5> kMainLoopSignals = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};

// Process-wide state the workers share: the global connection limit, its stats, and the hooks
// back to the main thread. Only atomics and immutable data.
struct WorkerShared {
  network::ConnectionLimit global_limit;
  stats::Counter& cx_total;
  stats::Gauge& cx_active;
  stats::Counter& cx_overflow;
  stats::Counter& fd_exhausted;
  // Idle connections closed to admit new ones (at a limit, or out of descriptors).
  stats::Counter& cx_idle_reclaimed;
  // Some listener's connections can be reclaimed (ListenerConfig::reclaim_idle). Set before the
  // workers start.
  bool reclaim_any = false;
  // Listeners paused at a limit, over all workers: a close anywhere must wake them.
  std::atomic<int> paused_listeners{0};
  // The first reclaim is logged, once per process.
  std::atomic<bool> reclaim_logged{false};
  // Posts "resume paused listeners" to every worker (set by the server).
  std::function<void()> resume_all;
  // Asks worker `index` (modulo the number of workers) to close one idle connection of
  // `listener` (null: of any listener) for a worker that has none; it passes the request on to
  // the next worker, up to `hops` workers in all, until one could (set by the server).
  std::function<void(size_t index, const ListenerConfig* listener, size_t hops)> reclaim_on;
  size_t workers = 1;

  WorkerShared(uint64_t max, stats::Counter& total, stats::Gauge& active, stats::Counter& overflow,
               stats::Counter& exhausted, stats::Counter& idle_reclaimed)
      : global_limit(max),
        cx_total(total),
        cx_active(active),
        cx_overflow(overflow),
        fd_exhausted(exhausted),
        cx_idle_reclaimed(idle_reclaimed) {}
};

// One event loop thread: it owns its listeners' polling, its connections and its load balancers.
// A connection lives and dies on one worker. Methods marked (any thread) post to the loop.
//
// Idle connections (an HTTP keep-alive connection between requests) sit in one LRU list per
// listener. When a listener cannot accept — at its own limit, at the global one, or when
// accept4 runs out of descriptors — the worker closes the least recently active idle connection
// that frees the room needed, one per waiting client (a batch when out of descriptors), instead of
// leaving new clients in the backlog. A worker with none of its own asks the others in turn.
class Worker {
 public:
  Worker(size_t index, WorkerShared& shared, const upstream::ClusterManager& clusters);
  ~Worker();

  // Before start(): poll `fd` for `config` (the fd stays owned by the socket registry).
  void addListener(ListenerConfigPtr config, int fd);
  void start();
  // (any thread) Stop polling every listener; `done` runs on the worker once it has.
  void stopListeners(std::function<void()> done);
  // (any thread) Call `on_idle` (on the worker) once it has no downstream connection left.
  void notifyWhenIdle(std::function<void()> on_idle);
  // (any thread) Close every connection now (drain timeout).
  void closeConnections();
  // (any thread) Wake listeners paused at a connection limit.
  void resumePausedListeners();
  // (any thread) Close one idle connection of `listener` (null: of any) for another worker that
  // is at a limit; if there is none here, pass the request on (WorkerShared::reclaim_on).
  void reclaimForPeer(const ListenerConfig* listener, size_t hops);
  // (any thread) A cluster's hosts changed (DNS): the worker takes the new set.
  void updateHosts(const upstream::Cluster& cluster, upstream::HostSetPtr hosts);
  // (any thread) Stop the loop and join the thread.
  void stop();
  // (any thread) Runs `fn` on the worker's loop.
  void post(std::function<void()> fn);

  size_t index() const { return index_; }

  // Takes a connection closed with kFlushWrite (FilterContext::adoptClosingConnection).
  void adoptClosingConnection(network::ConnectionPtr connection);

 private:
  class ActiveListener;
  class ActiveConnection;

  void onConnectionClosed(ActiveConnection& active);
  void checkIdle();
  void closeAllNow();
  // Closes up to `count` idle connections, least recently active first: of `only`'s listener,
  // or of any listener when null. Returns how many closed.
  size_t reclaimIdle(const ListenerConfig* only, size_t count);
  // Idle connections `reclaimIdle(only, ...)` could close.
  size_t idleCount(const ListenerConfig* only) const;
  // Asks the other workers, in turn, to close one idle connection (see reclaimForPeer).
  void askOthersToReclaim(const ListenerConfig* only);

  const size_t index_;
  WorkerShared& shared_;
  event::DispatcherPtr dispatcher_;
  // Returns memory freed by this worker to the system (see Worker::start).
  event::TimerPtr trim_timer_;
  void trimMemory();
  upstream::WorkerClusters clusters_;
  // Callouts of this worker's streams, on clusters_' pools (the streams own the callouts).
  router::CalloutClientImpl callout_client_{*dispatcher_, clusters_};
  // Carries this worker's HTTP streams to their clusters.
  router::UpstreamFactoryImpl upstream_factory_{*dispatcher_, clusters_};
  // Objects shared config keeps on this worker (a tracer's span batch); destroyed first.
  network::WorkerLocals locals_;
  std::vector<std::unique_ptr<ActiveListener>> listeners_;
  // Orders the idle lists of every listener of this worker together.
  uint64_t idle_clock_ = 0;
  // Owning intrusive lists (the links live in ActiveConnection: no list node per connection).
  struct ConnectionList {
    ActiveConnection* head = nullptr;
    size_t size = 0;
    void push(ActiveConnection* c);
    // Unlinks `c` and hands its ownership back.
    std::unique_ptr<ActiveConnection> remove(ActiveConnection* c);
    bool empty() const { return head == nullptr; }
    void collect(std::vector<network::Connection*>& out) const;
    void deleteAll();
  };
  ConnectionList connections_;
  ConnectionList closing_;  // adopted, flushing before close
  std::function<void()> on_idle_;
  // The listeners stopped (a drain): connections made from here on drain at once.
  bool draining_ = false;
  std::thread thread_;
};

}  // namespace sluice::server
