#pragma once

#include <chrono>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "source/common/block_cache.h"

#include "source/network/connection.h"
#include "source/network/transport_socket.h"

namespace sluice::network {

// A connection over a non-blocking fd, driven by level-triggered events: read interest while
// reads are enabled, write interest only while bytes (or a pending half-close) wait to be written.
class ConnectionImpl : public Connection,
                       private ReadFilterCallbacks,
                       private TransportSocketCallbacks {
 public:
  // An accepted connection (takes ownership of `fd`). A null `transport` means plain TCP. The
  // transport's onConnected runs in initializeReadFilters, once the filters are in place.
  // `initial_input`: bytes already read from `fd` (a ClientHello read to choose the filter
  // chain), handed to the transport to read first.
  ConnectionImpl(event::Dispatcher& dispatcher, int fd, TransportSocketPtr transport,
                 const Address& remote, const Address& local, Buffer* initial_input = nullptr);
  // A client connection to `remote`; call connect() to start it. Null `transport`: plain TCP.
  ConnectionImpl(event::Dispatcher& dispatcher, const Address& remote,
                 TransportSocketPtr transport);
  ~ConnectionImpl() override;

  uint64_t id() const override { return id_; }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void addReadFilter(ReadFilterPtr filter) override;
  void addConnectionCallbacks(ConnectionCallbacks& cb) override { callbacks_.push_back(&cb); }
  void removeConnectionCallbacks(ConnectionCallbacks& cb) override;
  void initializeReadFilters() override;
  void drain() override;
  void connect() override;
  void write(Buffer& data, bool end_stream) override;
  void close(CloseType type) override;
  void closeLingering(std::chrono::milliseconds idle, std::chrono::milliseconds total) override;
  ConnectionState state() const override { return state_; }
  void readDisable(bool disable) override;
  bool readEnabled() const override { return read_disable_count_ == 0; }
  void enableHalfClose(bool enabled) override { half_close_ = enabled; }
  void enableBatchedWrites() override { batched_writes_ = true; }
  void setBufferLimits(uint32_t limit) override { high_watermark_ = limit; }
  size_t writeBufferLength() const override { return buffers_ ? buffers_->write.length() : 0; }
  bool inputPending() const override;
  const Address& remoteAddress() const override { return remote_; }
  const Address& localAddress() const override { return local_; }
  std::string_view nextProtocol() const override { return transport_->nextProtocol(); }
  const SslConnectionInfo* ssl() const override { return transport_->ssl(); }
  std::string_view transportProtocol() const override { return transport_->protocol(); }
  std::string_view transportFailureReason() const override { return transport_->failureReason(); }
  // One non-blocking recv(MSG_PEEK); the event loop finds the same later, this finds it now.
  bool idlePeerAlive() const override;

  // How long close(kFlushWrite) may wait for the peer to take the buffered bytes.
  static constexpr std::chrono::milliseconds kFlushTimeout{5000};
  // Bytes read per readiness event at most, so one busy peer cannot starve the others.
  static constexpr uint64_t kMaxReadPerEvent = 256 * 1024;

 private:
  // What one non-blocking recv(MSG_PEEK) of a byte finds on the socket.
  enum class Peeked { kNothing, kData, kClosed };
  Peeked peekSocket() const;
  // ReadFilterCallbacks and TransportSocketCallbacks
  Connection& connection() override { return *this; }
  int fd() const override { return fd_; }
  void setTransportSocketIsReadable() override;
  void raiseEvent(ConnectionEvent event) override;
  // Bytes (ours or the transport's) or a half-close wait for the socket.
  bool wantsWrite() const {
    return writePending() || transport_->hasPendingWrite() || (write_end_ && !shutdown_sent_);
  }
  void onFileEvent(uint32_t ready);
  void onConnectDone();
  void onReadReady();
  void onWriteReady();
  void dispatchRead();
  void checkWatermarks();
  void updateEvents();
  void closeSocket(ConnectionEvent event);
  // Lingering close: reads and drops what the peer sends; closes at its EOF or error.
  void lingerRead();
  void armLingerTimer();
  void flushDeferred();
  static void FlushTrampoline(void* self) { static_cast<ConnectionImpl*>(self)->flushDeferred(); }

  const uint64_t id_;
  event::Dispatcher& dispatcher_;
  int fd_ = -1;
  // The transport in use: `owned_transport_`, or the embedded plain-TCP one (so that a plain
  // connection costs no allocation for it).
  TransportSocket* transport_;
  TransportSocketPtr owned_transport_;
  RawBufferSocket raw_transport_;
  Address remote_;
  Address local_;
  // Embedded: no allocation for the socket's readiness (connections exist by the ten thousand).
  event::EmbeddedFileEvent file_event_;
  event::TimerPtr timer_;  // connect failure report, flush or linger timeout; created on demand
  // Set only while a lingering close is under way (a pointer: idle connections pay 8 bytes).
  struct Linger {
    std::chrono::steady_clock::time_point end;
    std::chrono::milliseconds idle;
  };
  std::unique_ptr<Linger> linger_;
  // Both buffers exist only while the connection moves bytes: an idle connection holds none
  // (one small block per burst of activity instead of 80 bytes per idle connection). Made and
  // freed at every request, hence from the per-thread block cache.
  struct IoBuffers : BlockCached {
    Buffer read;
    Buffer write;
  };
  IoBuffers& buffers() {
    if (!buffers_) buffers_ = std::make_unique<IoBuffers>();
    return *buffers_;
  }
  bool writePending() const { return buffers_ && !buffers_->write.empty(); }
  void releaseIdleBuffers() {
    if (buffers_ && buffers_->read.empty() && buffers_->write.empty()) buffers_.reset();
  }
  std::unique_ptr<IoBuffers> buffers_;
  // Inline for the usual case (one filter; the owner and that filter as callbacks): no
  // allocation per connection.
  absl::InlinedVector<ReadFilterPtr, 1> filters_;
  absl::InlinedVector<ConnectionCallbacks*, 2> callbacks_;
  ConnectionState state_ = ConnectionState::kOpen;
  uint32_t read_disable_count_ = 0;
  uint8_t raise_depth_ = 0;
  uint32_t high_watermark_ = 0;
  bool above_high_ = false;
  bool connecting_ = false;
  bool transport_started_ = false;  // its onConnected ran
  bool half_close_ = false;
  bool read_end_ = false;          // the peer's FIN was seen
  bool write_end_ = false;         // end_stream was written into the buffer
  bool shutdown_sent_ = false;     // the transport's half-close is done
  bool in_event_ = false;          // inside onFileEvent: buffers may be referenced up the stack
  bool in_read_dispatch_ = false;  // read filters running: their writes are gathered
  bool batched_writes_ = false;    // enableBatchedWrites
  // A flush is queued for the end of the current event callback (another connection's): what
  // is written until then goes out in one writev.
  bool flush_deferred_ = false;
};

}  // namespace sluice::network
