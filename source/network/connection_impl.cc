#include "source/network/connection_impl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "source/common/logging.h"
#include "source/network/socket.h"

namespace sluice::network {

namespace {
std::atomic<uint64_t> g_next_id{1};
}  // namespace

ConnectionImpl::ConnectionImpl(event::Dispatcher& dispatcher, int fd, TransportSocketPtr transport,
                               const Address& remote, const Address& local, Buffer* initial_input)
    : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      dispatcher_(dispatcher),
      fd_(fd),
      transport_(transport ? transport.get() : &raw_transport_),
      owned_transport_(std::move(transport)),
      remote_(remote),
      local_(local) {
  transport_->setTransportSocketCallbacks(*this);
  if (initial_input != nullptr) transport_->prependReadData(*initial_input);
  // No interest until initializeReadFilters(): filters must be in place before the first read.
  file_event_.assign(
      dispatcher_, fd_,
      &event::EmbeddedFileEvent::Trampoline<ConnectionImpl, &ConnectionImpl::onFileEvent>, this);
}

ConnectionImpl::ConnectionImpl(event::Dispatcher& dispatcher, const Address& remote,
                               TransportSocketPtr transport)
    : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      dispatcher_(dispatcher),
      transport_(transport ? transport.get() : &raw_transport_),
      owned_transport_(std::move(transport)),
      remote_(remote) {
  transport_->setTransportSocketCallbacks(*this);
}

ConnectionPtr CreateClientConnection(event::Dispatcher& dispatcher, const Address& remote,
                                     const TransportSocketFactory* factory,
                                     const TransportSocketOptions* options) {
  TransportSocketPtr transport;
  if (factory != nullptr) transport = factory->createTransportSocket(options);
  return std::make_unique<ConnectionImpl>(dispatcher, remote, std::move(transport));
}

ConnectionImpl::Peeked ConnectionImpl::peekSocket() const {
  char byte;
  const ssize_t rc = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (rc > 0) return Peeked::kData;
  if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return Peeked::kNothing;
  return Peeked::kClosed;  // EOF or an error
}

bool ConnectionImpl::idlePeerAlive() const {
  if (fd_ < 0 || state_ != ConnectionState::kOpen) return false;
  return peekSocket() == Peeked::kNothing;
}

bool ConnectionImpl::inputPending() const {
  if (buffers_ && !buffers_->read.empty()) return true;
  if (transport_->hasBufferedInput()) return true;
  if (fd_ < 0 || state_ != ConnectionState::kOpen || read_end_) return false;
  return peekSocket() == Peeked::kData;
}

ConnectionImpl::~ConnectionImpl() {
  // Owners close first; this is the safety net that never raises events.
  if (flush_deferred_) file_event_.cancelDeferred(this);
  file_event_.reset();
  if (fd_ >= 0) ::close(fd_);
}

void ConnectionImpl::addReadFilter(ReadFilterPtr filter) {
  filter->initializeReadFilterCallbacks(*this);
  filters_.push_back(std::move(filter));
}

void ConnectionImpl::removeConnectionCallbacks(ConnectionCallbacks& cb) {
  auto it = std::find(callbacks_.begin(), callbacks_.end(), &cb);
  if (it == callbacks_.end()) return;
  if (raise_depth_ > 0) {
    *it = nullptr;  // raiseEvent is iterating: it compacts when done
  } else {
    callbacks_.erase(it);
  }
}

void ConnectionImpl::initializeReadFilters() {
  for (auto& f : filters_) {
    if (f->onNewConnection() == FilterStatus::kStopIteration || state_ != ConnectionState::kOpen) {
      break;
    }
  }
  // An accepted connection's transport starts now (TLS waits for the ClientHello; a plain
  // socket reports kConnected), and reading with it.
  if (state_ == ConnectionState::kOpen && !connecting_ && fd_ >= 0 && !transport_started_) {
    transport_started_ = true;
    transport_->onConnected();
  }
  if (state_ == ConnectionState::kOpen) {
    updateEvents();
    // Bytes read before the connection existed announce themselves no more.
    if (transport_->hasBufferedInput()) setTransportSocketIsReadable();
  }
}

void ConnectionImpl::setTransportSocketIsReadable() {
  if (state_ != ConnectionState::kClosed) file_event_.activate(event::kRead);
}

void ConnectionImpl::drain() {
  for (size_t i = 0; i < filters_.size() && state_ == ConnectionState::kOpen; ++i) {
    filters_[i]->onDrain();
  }
}

void ConnectionImpl::connect() {
  auto fd = StartConnect(remote_);
  if (!fd.ok()) {
    SLUICE_LOG(kDebug, "[C%d] connect to %s failed: %s", id_, remote_.asString(),
               fd.status().message());
    // Report on the next loop iteration: the caller is still setting us up.
    timer_ = dispatcher_.createTimer([this] { closeSocket(ConnectionEvent::kRemoteClose); });
    timer_->enableTimer(std::chrono::milliseconds(0));
    return;
  }
  fd_ = *fd;
  connecting_ = true;
  file_event_.assign(
      dispatcher_, fd_,
      &event::EmbeddedFileEvent::Trampoline<ConnectionImpl, &ConnectionImpl::onFileEvent>, this);
  file_event_.setEnabled(event::kWrite);
}

void ConnectionImpl::onFileEvent(uint32_t ready) {
  in_event_ = true;
  if (connecting_) {
    if (ready & event::kWrite) onConnectDone();
  } else {
    if ((ready & event::kWrite) && state_ != ConnectionState::kClosed) onWriteReady();
    if ((ready & event::kRead) && state_ != ConnectionState::kClosed) onReadReady();
  }
  in_event_ = false;
  // Nothing of ours holds a reference to the buffers any more.
  if (state_ == ConnectionState::kClosed) {
    buffers_.reset();
  } else {
    releaseIdleBuffers();
  }
}

void ConnectionImpl::onConnectDone() {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    SLUICE_LOG(kDebug, "[C%d] connect to %s failed: %s", id_, remote_.asString(), strerror(err));
    closeSocket(ConnectionEvent::kRemoteClose);
    return;
  }
  connecting_ = false;
  transport_started_ = true;
  if (auto local = Address::localOf(fd_); local.ok()) local_ = *local;
  SetNoDelay(fd_, true);
  // Plain TCP raises kConnected now; TLS sends its ClientHello and raises it after the handshake.
  transport_->onConnected();
  if (state_ == ConnectionState::kClosed) return;
  if (wantsWrite()) {
    onWriteReady();
  } else {
    updateEvents();
  }
}

void ConnectionImpl::onReadReady() {
  if (linger_) {
    lingerRead();
    return;
  }
  if (read_disable_count_ > 0 || read_end_) return;
  // Never more at once than the connection may buffer: what is read goes on to the other side's
  // write buffer, whose bound is only kept if a read cannot overshoot it by much.
  const uint64_t limit = high_watermark_ != 0
                             ? std::min<uint64_t>(kMaxReadPerEvent, high_watermark_)
                             : kMaxReadPerEvent;
  IoOutcome out = transport_->doRead(buffers().read, limit);
  if (out.action == PostIoAction::kClose) {
    closeSocket(ConnectionEvent::kRemoteClose);
    return;
  }
  // A handshake finishing inside the read may have closed us (a kConnected observer).
  if (state_ == ConnectionState::kClosed) return;
  if (out.end_stream) read_end_ = true;
  if (out.bytes > 0 || out.end_stream) dispatchRead();
  if (state_ == ConnectionState::kClosed) return;
  // What the filters wrote during this event goes out now, in one writev (a response head and
  // body written separately still cost one syscall); so does what the transport produced (a
  // handshake flight).
  if (wantsWrite()) {
    onWriteReady();
    if (state_ == ConnectionState::kClosed) return;
  }
  if (read_end_) {
    if (!half_close_ || shutdown_sent_) {
      closeSocket(ConnectionEvent::kRemoteClose);
      return;
    }
  }
  updateEvents();
}

void ConnectionImpl::dispatchRead() {
  if (state_ != ConnectionState::kOpen) {
    buffers().read.clear();
    return;
  }
  Buffer& read = buffers().read;
  in_read_dispatch_ = true;
  for (auto& f : filters_) {
    if (f->onData(read, read_end_) == FilterStatus::kStopIteration ||
        state_ != ConnectionState::kOpen) {
      break;
    }
  }
  in_read_dispatch_ = false;
}

void ConnectionImpl::write(Buffer& data, bool end_stream) {
  if (state_ != ConnectionState::kOpen || write_end_) {
    data.clear();  // Nothing may follow a close or a half-close.
    return;
  }
  buffers().write.move(data);
  if (end_stream) write_end_ = true;
  if (connecting_ || fd_ < 0) return;  // Flushed once connected.
  // Inside our own read event the filters may write several times (head, body, ...): gather it
  // all and write once when the event's filters are done (onReadReady).
  if (in_read_dispatch_ || flush_deferred_) return;
  // Inside another connection's event (a proxied response arriving from the upstream): the same,
  // once that event's callback returns.
  if (batched_writes_ ? file_event_.deferToEndOfBatch(&ConnectionImpl::FlushTrampoline, this)
                      : file_event_.deferToEndOfCallback(&ConnectionImpl::FlushTrampoline, this)) {
    flush_deferred_ = true;
    return;
  }
  onWriteReady();
  // Called from outside our own event handling (another connection's event, a timer): nothing
  // of ours is on the stack, so an emptied buffer pair can go now.
  if (!in_event_) releaseIdleBuffers();
}

void ConnectionImpl::flushDeferred() {
  flush_deferred_ = false;
  if (state_ == ConnectionState::kClosed || fd_ < 0 || connecting_) return;
  if (wantsWrite() || state_ == ConnectionState::kClosing) {
    onWriteReady();
  }
  if (state_ != ConnectionState::kClosed && !in_event_) releaseIdleBuffers();
}

void ConnectionImpl::onWriteReady() {
  // A lingering close half-closes once the reply is out, as end_stream does.
  const bool end = (write_end_ || linger_ != nullptr) && !shutdown_sent_;
  bool shut_now = false;
  if (writePending() || transport_->hasPendingWrite() || end) {
    IoOutcome out = transport_->doWrite(buffers().write, end);
    if (out.action == PostIoAction::kClose) {
      closeSocket(ConnectionEvent::kRemoteClose);
      return;
    }
    if (out.end_stream && end) shutdown_sent_ = shut_now = true;
  }
  if (!writePending() && !transport_->hasPendingWrite()) {
    if (linger_) {
      // Everything is out and our FIN follows it; the peer's bytes are read until its own.
      if (shut_now) armLingerTimer();
      if (read_end_) {
        closeSocket(ConnectionEvent::kLocalClose);
        return;
      }
      updateEvents();
      return;
    }
    if (state_ == ConnectionState::kClosing) {
      closeSocket(ConnectionEvent::kLocalClose);
      return;
    }
    if (shut_now && read_end_) {  // Both directions are done.
      closeSocket(ConnectionEvent::kLocalClose);
      return;
    }
  }
  checkWatermarks();
  if (state_ != ConnectionState::kClosed) updateEvents();
}

void ConnectionImpl::checkWatermarks() {
  if (high_watermark_ == 0) return;
  const size_t len = writeBufferLength();
  if (!above_high_ && len > high_watermark_ / 2) {
    above_high_ = true;
    for (size_t i = 0; i < callbacks_.size() && state_ != ConnectionState::kClosed; ++i) {
      if (callbacks_[i] != nullptr) callbacks_[i]->onAboveWriteBufferHighWatermark();
    }
  } else if (above_high_ && len == 0) {
    above_high_ = false;
    for (size_t i = 0; i < callbacks_.size() && state_ != ConnectionState::kClosed; ++i) {
      if (callbacks_[i] != nullptr) callbacks_[i]->onBelowWriteBufferLowWatermark();
    }
  }
}

void ConnectionImpl::readDisable(bool disable) {
  if (disable) {
    if (++read_disable_count_ == 1 && state_ == ConnectionState::kOpen) updateEvents();
  } else if (read_disable_count_ > 0) {
    if (--read_disable_count_ == 0 && state_ == ConnectionState::kOpen) {
      updateEvents();
      // Input the transport already took from the kernel announces itself no more.
      if (transport_->hasBufferedInput()) setTransportSocketIsReadable();
    }
  }
}

void ConnectionImpl::updateEvents() {
  if (!file_event_.assigned()) return;
  uint32_t mask = 0;
  if (connecting_) {
    mask = event::kWrite;
  } else {
    if ((state_ == ConnectionState::kOpen && read_disable_count_ == 0 && !read_end_) ||
        (linger_ && !read_end_)) {
      mask |= event::kRead;
    }
    if (wantsWrite()) mask |= event::kWrite;
  }
  file_event_.setEnabled(mask);
}

void ConnectionImpl::close(CloseType type) {
  if (state_ == ConnectionState::kClosed) return;
  if (type == CloseType::kFlushWrite && (writePending() || transport_->hasPendingWrite()) &&
      !connecting_ && fd_ >= 0) {
    if (state_ == ConnectionState::kClosing) return;
    state_ = ConnectionState::kClosing;
    // Unread input is dropped (a filter inside onData keeps its `data` until it returns).
    if (!in_event_) buffers_->read.clear();
    timer_ = dispatcher_.createTimer([this] {
      SLUICE_LOG(kDebug, "[C%d] flush timeout; closing", id_);
      closeSocket(ConnectionEvent::kLocalClose);
    });
    timer_->enableTimer(kFlushTimeout);
    updateEvents();
    return;
  }
  if (type == CloseType::kReset && fd_ >= 0) {
    struct linger lg = {1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  closeSocket(ConnectionEvent::kLocalClose);
}

void ConnectionImpl::closeLingering(std::chrono::milliseconds idle,
                                    std::chrono::milliseconds total) {
  if (state_ == ConnectionState::kClosed) return;
  if (idle.count() <= 0 || total.count() <= 0 || connecting_ || fd_ < 0 || read_end_ ||
      state_ == ConnectionState::kClosing) {
    close(CloseType::kFlushWrite);
    return;
  }
  SLUICE_LOG(kDebug, "[C%d] lingering close", id_);
  state_ = ConnectionState::kClosing;
  linger_ = std::make_unique<Linger>();
  linger_->end = dispatcher_.now() + total;
  linger_->idle = idle;
  // Unread input is dropped (a filter inside onData keeps its `data` until it returns).
  if (!in_event_ && buffers_) buffers_->read.clear();
  if (!timer_)
    timer_ = dispatcher_.createTimer([this] {
      SLUICE_LOG(kDebug, "[C%d] flush or linger timeout; closing", id_);
      closeSocket(ConnectionEvent::kLocalClose);
    });
  if (writePending() || transport_->hasPendingWrite()) {
    // The reply goes out first, bounded as any flush is.
    timer_->enableTimer(std::min(kFlushTimeout, total));
    updateEvents();
    return;
  }
  onWriteReady();  // half-closes now and starts reading
}

void ConnectionImpl::armLingerTimer() {
  const auto now = dispatcher_.now();
  if (now >= linger_->end) {
    timer_->enableTimer(std::chrono::milliseconds(0));
    return;
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(linger_->end - now);
  timer_->enableTimer(std::min(linger_->idle, left));
}

void ConnectionImpl::lingerRead() {
  // Raw bytes, dropped: nothing of them is parsed or kept (a TLS peer's records included).
  char scratch[16 * 1024];
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = ::recv(fd_, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    read_end_ = true;  // EOF or an error: the peer is done
    break;
  }
  if (read_end_ && !writePending()) {
    closeSocket(ConnectionEvent::kLocalClose);
    return;
  }
  if (shutdown_sent_) armLingerTimer();  // it is still sending: wait for more, bounded
  updateEvents();
}

void ConnectionImpl::closeSocket(ConnectionEvent event) {
  if (state_ == ConnectionState::kClosed) return;
  state_ = ConnectionState::kClosed;
  connecting_ = false;
  if (flush_deferred_) {
    file_event_.cancelDeferred(this);
    flush_deferred_ = false;
  }
  file_event_.reset();
  if (timer_) timer_->disableTimer();
  if (fd_ >= 0) {
    // Its last words (TLS: close_notify, best effort) unless the socket is to be reset.
    if (transport_started_) transport_->closeSocket(event);
    ::close(fd_);
    fd_ = -1;
  }
  if (buffers_ && in_event_) {
    // Our own event handler may still hold a reference to a buffer up the stack (a filter
    // inside onData): drop what was never sent, keep what was read, free both when it returns.
    buffers_->write.clear();
  } else {
    buffers_.reset();
  }
  raiseEvent(event);
}

void ConnectionImpl::raiseEvent(ConnectionEvent event) {
  // Index loop: callbacks may add or remove callbacks (removal leaves a null) while we iterate,
  // and a callback may raise another event (a close from inside kConnected): only the outermost
  // loop compacts, so no loop ever sees its indices shift.
  ++raise_depth_;
  for (size_t i = 0; i < callbacks_.size(); ++i) {
    if (callbacks_[i] != nullptr) callbacks_[i]->onEvent(event);
    if (event != ConnectionEvent::kConnected) continue;
    if (state_ == ConnectionState::kClosed) break;
  }
  if (--raise_depth_ == 0) {
    callbacks_.erase(std::remove(callbacks_.begin(), callbacks_.end(), nullptr), callbacks_.end());
  }
}

}  // namespace sluice::network
