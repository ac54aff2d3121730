#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>

#include "source/upstream/conn_pool.h"
#include "source/upstream/resource_manager.h"

namespace sluice::upstream {

// The connection pool of one host on one worker, for every HTTP protocol: the codec of each
// connection (ClientCodecFactory) says how many streams it carries. A stream goes to a
// connection with room (one already carrying streams first, then the most recently used idle
// one, so that the rest can time out), or waits in FIFO order (bounded) while connections are
// opened for those waiting. The cluster's circuit breakers (ResourceManager) are checked as
// Envoy does: requests and pending requests refuse at once; a connection over the cluster's
// limit is not opened (unless this pool has none at all) and the request waits instead.
//
// A connection is in exactly one list: connecting, idle (no stream), active (streams, room for
// more), busy (full) or draining (no new streams: GOAWAY, its request maximum, the host left).
class ConnPoolImpl : public ConnPool, public event::DeferredDeletable {
 public:
  ConnPoolImpl(event::Dispatcher& dispatcher, HostSharedPtr host, const PoolSettings& settings,
               PoolStats& stats, ResourceManager& resources);
  ~ConnPoolImpl() override;
  ConnPoolImpl(const ConnPoolImpl&) = delete;
  ConnPoolImpl& operator=(const ConnPoolImpl&) = delete;

  Cancellable* newStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                         bool fresh = false) override;
  const Host& host() const override { return *host_; }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void drain(std::function<void()> drained) override;
  size_t activeStreams() const override { return active_streams_; }
  size_t pendingStreams() const override { return pending_.size(); }

  size_t connectionCount() const;

 private:
  class ActiveClient;
  struct Pending;
  friend class ActiveClient;
  enum class ListId : uint8_t { kConnecting, kIdle, kActive, kBusy, kDraining };
  using ClientList = std::list<std::unique_ptr<ActiveClient>>;

  ClientList& list(ListId id) { return lists_[static_cast<size_t>(id)]; }
  const ClientList& list(ListId id) const { return lists_[static_cast<size_t>(id)]; }
  // Moves a client to the list its state calls for (at the front: most recently used).
  void place(ActiveClient& client);
  // Opens connections while those on their way cannot carry every waiting stream.
  void maybeCreateClients();
  bool createClient();
  void attach(ActiveClient& client, http::ResponseDecoder& decoder, PoolCallbacks& callbacks);
  // Gives waiting streams to `client` while it has room.
  void serve(ActiveClient& client);
  void onClientConnected(ActiveClient& client);
  void onStreamDone(ActiveClient& client, bool reusable);
  void onClientClosed(ActiveClient& client, bool connected, PoolFailure failure);
  void failOnePending(PoolFailure failure);
  void checkDrained();
  // Over max_idle: the least recently used idle connection goes.
  void trimIdle();
  // What a connection being opened is counted on to carry.
  uint32_t expectedStreamLimit() const;
  static constexpr uint32_t kUnknownStreamLimit = 1u << 20;

  event::Dispatcher& dispatcher_;
  const HostSharedPtr host_;
  const PoolSettings& settings_;
  PoolStats& stats_;
  ResourceManager& resources_;
  // By ListId. Idle: the front is the most recently used.
  ClientList lists_[5];
  ClientList& connecting_ = lists_[static_cast<size_t>(ListId::kConnecting)];
  ClientList& idle_ = lists_[static_cast<size_t>(ListId::kIdle)];
  ClientList& active_ = lists_[static_cast<size_t>(ListId::kActive)];
  ClientList& busy_ = lists_[static_cast<size_t>(ListId::kBusy)];
  ClientList& draining_ = lists_[static_cast<size_t>(ListId::kDraining)];
  std::list<std::unique_ptr<Pending>> pending_;
  // Streams the connections being opened are expected to carry (ClientCodecFactory).
  uint64_t connecting_capacity_ = 0;
  size_t active_streams_ = 0;
  uint64_t next_serial_ = 0;
  // Streams the last connection that came up could carry (its protocol known): what the next
  // ones are counted on for. 0: none came up yet.
  uint32_t learned_limit_ = 0;
  std::function<void()> drained_;  // set while draining
  bool draining_host_ = false;
};

}  // namespace sluice::upstream
