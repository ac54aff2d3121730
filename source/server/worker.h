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
  // Listeners paused at a limit, over all workers: a close anywhere must wake them.
  std::atomic<int> paused_listeners{0};
  // Posts "resume paused listeners" to every worker (set by the server).
  std::function<void()> resume_all;

  WorkerShared(uint64_t max, stats::Counter& total, stats::Gauge& active, stats::Counter& overflow,
               stats::Counter& exhausted)
      : global_limit(max),
        cx_total(total),
        cx_active(active),
        cx_overflow(overflow),
        fd_exhausted(exhausted) {}
};

// One event loop thread: it owns its listeners' polling, its connections and its load balancers.
// A connection lives and dies on one worker. Methods marked (any thread) post to the loop.
class Worker : public network::FilterContext {
 public:
  Worker(size_t index, WorkerShared& shared, const upstream::ClusterManager& clusters);
  ~Worker() override;

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
  // (any thread) A cluster's hosts changed (DNS): the worker takes the new set.
  void updateHosts(const upstream::Cluster& cluster, upstream::HostSetPtr hosts);
  // (any thread) Stop the loop and join the thread.
  void stop();

  size_t index() const { return index_; }

  // network::FilterContext
  event::Dispatcher& dispatcher() override { return *dispatcher_; }
  upstream::WorkerClusters& clusters() override { return clusters_; }
  void adoptClosingConnection(network::ConnectionPtr connection) override;

 private:
  class ActiveListener;
  class ActiveConnection;

  void onConnectionClosed(ActiveConnection& active);
  void checkIdle();
  void closeAllNow();

  const size_t index_;
  WorkerShared& shared_;
  event::DispatcherPtr dispatcher_;
  // Returns memory freed by this worker to the system (see Worker::start).
  event::TimerPtr trim_timer_;
  void trimMemory();
  upstream::WorkerClusters clusters_;
  std::vector<std::unique_ptr<ActiveListener>> listeners_;
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
  std::thread thread_;
};

}  // namespace sluice::server
