#include "source/upstream/conn_pool_impl.h"

#include <algorithm>
#include <iterator>

#include "source/common/logging.h"
#include "source/network/connection.h"

namespace sluice::upstream {

// A stream waiting for a connection.
struct ConnPoolImpl::Pending : public Cancellable {
  Pending(ConnPoolImpl& pool, http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
          uint64_t min_serial)
      : pool(pool), decoder(decoder), callbacks(callbacks), min_serial(min_serial) {}
  void cancel() override {
    ConnPoolImpl& p = pool;
    p.resources_.pending_requests.dec();
    p.stats_.rq_pending_active.dec();
    p.pending_.erase(self);  // destroys this
    p.checkDrained();
  }
  ConnPoolImpl& pool;
  http::ResponseDecoder& decoder;
  PoolCallbacks& callbacks;
  // Only on a connection with this serial or a later one (`fresh`: not one that carried a
  // stream before the request was made).
  const uint64_t min_serial;
  std::list<std::unique_ptr<Pending>>::iterator self;  // where it waits: O(1) withdrawal
};

// One upstream connection with its codec, made once the connection is up (ALPN decides it).
class ConnPoolImpl::ActiveClient : public event::DeferredDeletable,
                                   public network::ConnectionCallbacks,
                                   public network::ReadFilter,
                                   public http::ClientConnectionCallbacks {
 public:
  explicit ActiveClient(ConnPoolImpl& pool)
      : pool_(pool),
        serial_(pool.next_serial_++),
        expected_(pool.expectedStreamLimit()),
        connection_(network::CreateClientConnection(pool.dispatcher_, pool.host_->address(),
                                                    pool.settings_.transport_socket_factory)) {
    connection_->setBufferLimits(pool.settings_.buffer_limit);
    connection_->addConnectionCallbacks(*this);
    connection_->addReadFilter(std::make_unique<network::ForwardingReadFilter>(*this));
    timer_ = pool.dispatcher_.createTimer([this] { onTimer(); });
    timer_->enableTimer(pool.settings_.connect_timeout);
    connection_->connect();
  }
  ~ActiveClient() override {
    codec_.reset();  // before the connection it refers to
    if (connection_->state() != network::ConnectionState::kClosed) {
      connection_->removeConnectionCallbacks(*this);
      connection_->close(network::CloseType::kNoFlush);
    }
  }

  // Streams it may carry at once now.
  // Streams it may carry at once: what was expected until it connected, then what its codec
  // says (kept here: asked at every stream otherwise), updated when the peer changes it.
  uint32_t capacity() const { return capacity_; }
  bool hasRoom() const { return connected_ && !draining_ && streams_ < capacity(); }
  // Whether an idle connection can carry a next stream (PoolSettings::idle_check_after).
  // HTTP/1 only: an idle HTTP/2 connection receives frames (PING acks, SETTINGS) that are not a
  // sign of trouble, and an upstream closing it says so with GOAWAY first; a stream sent as it
  // closes is refused unprocessed and sent again.
  bool usable() {
    if (codec_->protocol() == http::Protocol::kHttp2) return true;
    if (pool_.dispatcher_.now() - idle_since_ < pool_.settings_.idle_check_after) return true;
    return connection_->idlePeerAlive();
  }
  void close() {
    if (closed_) return;
    connection_->close(network::CloseType::kNoFlush);  // onEvent follows, inside this call
  }
  // No new streams; closes once those in flight are done.
  void startDraining() {
    if (draining_) return;
    draining_ = true;
    if (codec_ != nullptr) codec_->goAway();
  }
  void enteredIdle() {
    idle_since_ = pool_.dispatcher_.now();
    if (pool_.settings_.idle_timeout.count() > 0) timer_->enableTimer(pool_.settings_.idle_timeout);
  }
  void leftIdle() { timer_->disableTimer(); }

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool) override {
    if (codec_ != nullptr) {
      codec_->dispatch(data);
    } else {
      data.clear();
    }
    return network::FilterStatus::kStopIteration;
  }

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::kConnected) {
      timer_->disableTimer();
      connected_ = true;
      codec_ = pool_.settings_.codec_factory->create(*connection_, *this, pool_.dispatcher_);
      capacity_ = codec_->streamLimit();
      pool_.onClientConnected(*this);
      return;
    }
    if (closed_) return;
    closed_ = true;
    timer_->disableTimer();
    PoolFailure failure = PoolFailure::kConnectFailure;
    if (!connected_) {
      const bool tls_failed = !connection_->transportFailureReason().empty();
      if (tls_failed) {
        SLUICE_LOG(kDebug, "[C%d] upstream %s: %s", connection_->id(), pool_.host_->addressString(),
                   connection_->transportFailureReason());
        failure = PoolFailure::kTlsFailure;
      }
      if (connect_timed_out_) {
        pool_.stats_.cx_connect_timeout.inc();
        failure = PoolFailure::kConnectTimeout;
      } else {
        pool_.stats_.cx_connect_fail.inc();
      }
      pool_.host_->stats().cx_connect_fail.inc();
    }
    // Streams in progress fail (or a close-delimited body ends) through their decoders; each
    // is reported done (onStreamDone) on a closed client.
    if (codec_ != nullptr) codec_->onConnectionClosed();
    pool_.onClientClosed(*this, connected_, failure);  // frees this after the event
  }
  void onAboveWriteBufferHighWatermark() override {
    if (codec_ != nullptr) codec_->onUnderlyingConnectionAboveWriteBufferHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() override {
    if (codec_ != nullptr) codec_->onUnderlyingConnectionBelowWriteBufferLowWatermark();
  }

  // http::ClientConnectionCallbacks
  void onStreamDone(bool reusable) override { pool_.onStreamDone(*this, reusable); }
  void onGoAway() override {
    pool_.stats_.goaway_received.inc();
    draining_ = true;  // the peer said it: nothing to send back
    capacity_ = 0;
    if (closed_) return;
    if (streams_ == 0) {
      close();
      return;
    }
    pool_.place(*this);
  }
  void onStreamLimitChanged() override {
    if (closed_) return;
    capacity_ = codec_->streamLimit();
    pool_.place(*this);
    pool_.serve(*this);
  }
  void onCodecFailed() override { close(); }

  ConnPoolImpl& pool_;
  const uint64_t serial_;    // in the order the pool opened them
  const uint32_t expected_;  // streams counted on while connecting
  network::ConnectionPtr connection_;
  http::ClientConnectionPtr codec_;
  event::TimerPtr timer_;  // connect timeout, then idle timeout
  std::chrono::steady_clock::time_point idle_since_;
  ClientList::iterator self_;
  ListId list_ = ListId::kConnecting;
  uint32_t capacity_ = expected_;
  uint32_t streams_ = 0;        // in flight now
  uint64_t total_streams_ = 0;  // carried, ever
  bool connected_ = false;
  bool connect_timed_out_ = false;
  bool draining_ = false;
  bool closed_ = false;

 private:
  void onTimer() {
    if (!connected_) {
      connect_timed_out_ = true;
      close();  // onEvent reports the failure
      return;
    }
    pool_.stats_.cx_idle_timeout.inc();
    close();
  }
};

ConnPoolImpl::ConnPoolImpl(event::Dispatcher& dispatcher, HostSharedPtr host,
                           const PoolSettings& settings, PoolStats& stats,
                           ResourceManager& resources)
    : dispatcher_(dispatcher),
      host_(std::move(host)),
      settings_(settings),
      stats_(stats),
      resources_(resources) {}

ConnPoolImpl::~ConnPoolImpl() {
  for (auto& p : pending_) {
    (void)p;
    resources_.pending_requests.dec();
    stats_.rq_pending_active.dec();
  }
  pending_.clear();
  // Worker teardown: the connections go without their events (nothing is told any more).
  for (ClientList& l : lists_) {
    for (auto& c : l) {
      resources_.connections.dec();
      stats_.cx_active.dec();
      host_->stats().cx_active.add(-1);
      for (uint32_t i = 0; i < c->streams_; ++i) {
        resources_.requests.dec();
        stats_.rq_active.dec();
        host_->stats().rq_active.add(-1);
      }
    }
    l.clear();
  }
}

size_t ConnPoolImpl::connectionCount() const {
  size_t n = 0;
  for (const ClientList& l : lists_) n += l.size();
  return n;
}

void ConnPoolImpl::place(ActiveClient& client) {
  ListId to;
  if (!client.connected_) {
    to = ListId::kConnecting;
  } else if (client.draining_) {
    to = ListId::kDraining;
  } else if (client.streams_ == 0) {
    to = ListId::kIdle;
  } else if (client.streams_ < client.capacity()) {
    to = ListId::kActive;
  } else {
    to = ListId::kBusy;
  }
  if (to == client.list_) return;
  const ListId from = client.list_;
  // Spliced between the lists: no node allocated per stream.
  list(to).splice(list(to).begin(), list(from), client.self_);
  client.list_ = to;
  if (from == ListId::kIdle) client.leftIdle();
  if (to == ListId::kIdle) client.enteredIdle();
}

Cancellable* ConnPoolImpl::newStream(http::ResponseDecoder& decoder, PoolCallbacks& callbacks,
                                     bool fresh) {
  stats_.rq_total.inc();
  if (!resources_.requests.canCreate()) {
    // The cluster's max_requests: at once, never queued.
    stats_.rq_pending_overflow.inc();
    callbacks.onPoolFailure(PoolFailure::kOverflow);
    return nullptr;
  }
  if (!fresh) {
    // A connection already carrying streams first (HTTP/2): idle ones can then time out.
    if (!active_.empty()) {
      attach(*active_.front(), decoder, callbacks);
      return nullptr;
    }
    // The upstream may have closed an idle connection since its last event: those go first.
    while (!idle_.empty() && !idle_.front()->usable()) {
      stats_.cx_stale_closed.inc();
      idle_.front()->close();  // removes it from the list (onClientClosed)
    }
    if (!idle_.empty()) {
      // Most recently used first: it is the likeliest to be alive, and the others may time out.
      attach(*idle_.front(), decoder, callbacks);
      return nullptr;
    }
  }
  if (pending_.size() >= settings_.max_pending || !resources_.pending_requests.canCreate()) {
    stats_.rq_pending_overflow.inc();
    callbacks.onPoolFailure(PoolFailure::kOverflow);
    return nullptr;
  }
  // Fresh: a connection that carried no stream before now, i.e. one still connecting (the
  // oldest is the last of the list) or a later one.
  uint64_t min_serial = 0;
  if (fresh) min_serial = connecting_.empty() ? next_serial_ : connecting_.back()->serial_;
  pending_.push_back(std::make_unique<Pending>(*this, decoder, callbacks, min_serial));
  Pending* p = pending_.back().get();
  p->self = std::prev(pending_.end());
  resources_.pending_requests.inc();
  stats_.rq_pending_active.inc();
  maybeCreateClients();
  return p;
}

void ConnPoolImpl::maybeCreateClients() {
  // Enough connections on their way for those waiting, within the limits.
  while (pending_.size() > connecting_capacity_) {
    if (!createClient()) break;
  }
}

bool ConnPoolImpl::createClient() {
  const size_t in_use = connectionCount() - idle_.size();
  if (in_use >= settings_.max_connections) return false;
  // Over the cluster's limit (other pools hold the connections): not opened, the request waits
  // for one of this pool's. A pool without any connection opens one all the same, or what waits
  // here could only time out (Envoy does the same).
  if (!resources_.connections.canCreate() && connectionCount() != 0) {
    stats_.cx_overflow.inc();
    return false;
  }
  resources_.connections.inc();
  stats_.cx_total.inc();
  stats_.cx_active.inc();
  host_->stats().cx_total.inc();
  host_->stats().cx_active.add(1);
  connecting_.push_front(std::make_unique<ActiveClient>(*this));
  ActiveClient& c = *connecting_.front();
  c.self_ = connecting_.begin();
  connecting_capacity_ += c.expected_;
  return true;
}

void ConnPoolImpl::attach(ActiveClient& client, http::ResponseDecoder& decoder,
                          PoolCallbacks& callbacks) {
  ++client.streams_;
  ++client.total_streams_;
  ++active_streams_;
  resources_.requests.inc();
  stats_.rq_active.inc();
  host_->stats().rq_total.inc();
  host_->stats().rq_active.add(1);
  const bool reused = client.total_streams_ > 1;
  if (reused) stats_.rq_reused.inc();
  place(client);
  http::RequestEncoder& encoder = client.codec_->newStream(decoder);
  callbacks.onPoolReady(encoder, PoolStreamInfo{*host_, reused, client.codec_->protocol()});
}

void ConnPoolImpl::serve(ActiveClient& client) {
  auto it = pending_.begin();
  while (it != pending_.end() && client.hasRoom() && !client.closed_) {
    Pending& p = **it;
    if (client.serial_ < p.min_serial) {
      ++it;
      continue;
    }
    std::unique_ptr<Pending> owned = std::move(*it);
    it = pending_.erase(it);
    resources_.pending_requests.dec();
    stats_.rq_pending_active.dec();
    if (!resources_.requests.canCreate()) {
      // Admitted while there was room; the cluster's max_requests filled up since.
      stats_.rq_pending_overflow.inc();
      owned->callbacks.onPoolFailure(PoolFailure::kOverflow);
      continue;
    }
    attach(client, owned->decoder, owned->callbacks);
    // onPoolReady may have changed the pending list (a stream withdrew or was added): start
    // over from its front.
    it = pending_.begin();
  }
}

uint32_t ConnPoolImpl::expectedStreamLimit() const {
  if (learned_limit_ != 0) return learned_limit_;
  const uint32_t expected = settings_.codec_factory->expectedStreamLimit();
  // Not known before a handshake (ALPN): the first connection is counted on for everything that
  // waits, and the next ones open once it says what it carries (one TLS handshake, not one per
  // waiting request, when the answer is HTTP/2).
  return expected != 0 ? expected : kUnknownStreamLimit;
}

void ConnPoolImpl::onClientConnected(ActiveClient& client) {
  connecting_capacity_ -= client.expected_;
  learned_limit_ = std::max<uint32_t>(1, client.codec_->streamLimit());
  place(client);
  serve(client);
  if (client.closed_) return;
  if (draining_host_ && client.streams_ == 0) {
    client.close();  // the host left: no reuse (onClientClosed follows)
    return;
  }
  // The codec may carry fewer streams than expected (ALPN chose HTTP/1): more connections.
  maybeCreateClients();
  trimIdle();
}

void ConnPoolImpl::onStreamDone(ActiveClient& client, bool reusable) {
  --client.streams_;
  --active_streams_;
  resources_.requests.dec();
  stats_.rq_active.dec();
  host_->stats().rq_active.add(-1);
  if (client.closed_) return;  // its close event does the rest
  if (!reusable) {
    client.close();
    return;
  }
  const uint32_t max = settings_.max_requests_per_connection;
  if (max != 0 && client.total_streams_ >= max && !client.draining_) {
    stats_.cx_max_requests.inc();
    client.startDraining();
  }
  if (client.draining_) {
    if (client.streams_ == 0) {
      client.close();
    } else {
      place(client);
    }
    return;
  }
  serve(client);
  if (client.closed_) return;
  if (draining_host_ && client.streams_ == 0) {
    client.close();  // the host left: no reuse
    return;
  }
  if (!pending_.empty()) {
    // What still waits could not take this connection: it asked for a fresh one.
    if (client.streams_ == 0) {
      // Idle, it would hold a place under the limits that a new connection needs: it closes
      // (onClientClosed opens what the waiting streams need).
      client.close();
      return;
    }
    maybeCreateClients();
  }
  place(client);
  trimIdle();
}

void ConnPoolImpl::trimIdle() {
  // Over the cap: the least recently used goes (the likeliest to have been closed by the
  // upstream's own idle timeout anyway). Closing removes it from the list.
  if (idle_.size() > settings_.max_idle) idle_.back()->close();
}

void ConnPoolImpl::onClientClosed(ActiveClient& client, bool connected, PoolFailure failure) {
  if (!connected) connecting_capacity_ -= client.expected_;
  resources_.connections.dec();
  stats_.cx_active.dec();
  host_->stats().cx_active.add(-1);
  ClientList& l = list(client.list_);
  std::unique_ptr<ActiveClient> owned = std::move(*client.self_);
  l.erase(client.self_);
  // We are inside the connection's own event: free it after.
  dispatcher_.deferredDelete(std::move(owned));
  if (!connected) {
    // A connect failed while streams wait. Fail those it was to carry rather than retrying in a
    // loop against a host that refuses: the stream, and a retry policy above it, decide what
    // comes next.
    while (pending_.size() > connecting_capacity_) failOnePending(failure);
  } else {
    maybeCreateClients();
  }
  checkDrained();
}

void ConnPoolImpl::failOnePending(PoolFailure failure) {
  if (pending_.empty()) return;
  std::unique_ptr<Pending> p = std::move(pending_.front());
  pending_.pop_front();
  resources_.pending_requests.dec();
  stats_.rq_pending_active.dec();
  p->callbacks.onPoolFailure(failure);
}

void ConnPoolImpl::drain(std::function<void()> drained) {
  drained_ = std::move(drained);
  draining_host_ = true;
  // Closing removes each from its list (onClientClosed). The others close as their streams
  // end, once no stream waits.
  while (!idle_.empty()) idle_.front()->close();
  checkDrained();
}

void ConnPoolImpl::checkDrained() {
  if (drained_ && connectionCount() == 0 && pending_.empty()) {
    std::function<void()> done = std::move(drained_);
    drained_ = nullptr;
    done();
  }
}

}  // namespace sluice::upstream
