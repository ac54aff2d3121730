#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/network/address.h"
#include "source/network/transport_socket.h"

namespace sluice::network {

enum class ConnectionEvent {
  kConnected,    // the transport is ready: TCP connected (and, for TLS, the handshake done)
  kRemoteClose,  // the peer closed or reset, or an I/O error
  kLocalClose,   // close() was called on this side
};

enum class CloseType {
  kFlushWrite,  // send what is buffered, then close (bounded by a flush timeout)
  kNoFlush,     // close now, dropping buffered data
  kReset,       // close now with an RST (SO_LINGER 0)
};

// Observers of a connection's life and of its write-buffer watermarks.
class ConnectionCallbacks {
 public:
  virtual ~ConnectionCallbacks() = default;
  virtual void onEvent(ConnectionEvent event) = 0;
  // The write buffer went above the high watermark: stop producing for this connection.
  virtual void onAboveWriteBufferHighWatermark() {}
  // ... and drained below the low watermark again.
  virtual void onBelowWriteBufferLowWatermark() {}
};

enum class FilterStatus { kContinue, kStopIteration };

class Connection;

// What a read filter may do with its connection.
class ReadFilterCallbacks {
 public:
  virtual ~ReadFilterCallbacks() = default;
  virtual Connection& connection() = 0;
};

// A network filter on the read path, run in chain order.
class ReadFilter {
 public:
  virtual ~ReadFilter() = default;
  virtual void initializeReadFilterCallbacks(ReadFilterCallbacks& callbacks) = 0;
  // Called once when the connection is ready (accepted and set up).
  virtual FilterStatus onNewConnection() { return FilterStatus::kContinue; }
  // Bytes read from the peer. The filter consumes (drains or moves) what it takes; bytes left
  // stay buffered for the next call. `end_stream`: the peer half-closed.
  virtual FilterStatus onData(Buffer& data, bool end_stream) = 0;
  // The server is draining: finish what is in progress, then close (HTTP: "Connection: close"
  // on the current response; an idle keep-alive connection closes at once).
  virtual void onDrain() {}
};
using ReadFilterPtr = std::unique_ptr<ReadFilter>;

// A read filter that forwards to one the connection does not own (an object whose lifetime its
// owner manages, e.g. a proxy's upstream side or the admin's request reader).
class ForwardingReadFilter : public ReadFilter {
 public:
  explicit ForwardingReadFilter(ReadFilter& target) : target_(target) {}
  void initializeReadFilterCallbacks(ReadFilterCallbacks& cb) override {
    target_.initializeReadFilterCallbacks(cb);
  }
  FilterStatus onData(Buffer& data, bool end_stream) override {
    return target_.onData(data, end_stream);
  }

 private:
  ReadFilter& target_;
};

enum class ConnectionState { kOpen, kClosing, kClosed };

// A TCP connection on one worker: a transport socket, read filters, bounded write buffer.
class Connection : public event::DeferredDeletable {
 public:
  ~Connection() override = default;

  virtual uint64_t id() const = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual void addReadFilter(ReadFilterPtr filter) = 0;
  virtual void addConnectionCallbacks(ConnectionCallbacks& cb) = 0;
  virtual void removeConnectionCallbacks(ConnectionCallbacks& cb) = 0;
  // Runs the read filters' onNewConnection and starts reading.
  virtual void initializeReadFilters() = 0;
  // Tells every read filter that the server drains (see ReadFilter::onDrain).
  virtual void drain() = 0;
  // Client side: begin the non-blocking connect; kConnected or kRemoteClose follows.
  virtual void connect() = 0;

  // Moves all of `data` into the write buffer and writes what the kernel takes now.
  // `end_stream`: half-close once everything is written (through the transport: TLS sends its
  // close_notify before the FIN).
  virtual void write(Buffer& data, bool end_stream) = 0;
  virtual void close(CloseType type) = 0;
  // Lingering close (nginx's lingering_close): sends what is buffered, half-closes, then reads
  // and drops whatever the peer still sends until it closes, `idle` passes with nothing read, or
  // `total` passes. A reply sent while the peer was still sending (a 413 during an upload) is
  // then not destroyed by the RST that closing a socket with unread input makes the kernel send.
  // `idle` of 0: close(kFlushWrite). No read filter sees anything from here on.
  virtual void closeLingering(std::chrono::milliseconds idle, std::chrono::milliseconds total) = 0;
  virtual ConnectionState state() const = 0;

  // Counted: reads resume when every disable has been matched by an enable.
  virtual void readDisable(bool disable) = 0;
  virtual bool readEnabled() const = 0;
  // With half-close on, a peer's FIN is passed up as end_stream and the connection stays open for
  // writing; it closes once both directions are done. Off (default): a FIN closes the connection.
  virtual void enableHalfClose(bool enabled) = 0;
  // Writes made from other connections' events are gathered until the end of the whole batch
  // of events the worker is handling, rather than of each event: for a connection that carries
  // many streams (HTTP/2), whose responses arrive on as many upstream connections.
  virtual void enableBatchedWrites() {}
  // The connection's buffer bound: reads take at most this much per event, and the write buffer
  // is "above its high watermark" once more than half of it waits there, "below its low
  // watermark" again once it is empty. 0: unlimited.
  virtual void setBufferLimits(uint32_t limit) = 0;
  virtual size_t writeBufferLength() const = 0;
  // Bytes from the peer that no read filter has consumed yet: left in the read buffer, or
  // waiting in the socket (one non-blocking recv(MSG_PEEK)). For a connection believed idle,
  // true means the client's next request is already on its way.
  virtual bool inputPending() const = 0;
  // For a connection that has been idle (nothing expected from the peer): false when the peer
  // closed it or sent bytes nobody asked for — either way it cannot carry a next exchange.
  virtual bool idlePeerAlive() const = 0;

  virtual const Address& remoteAddress() const = 0;
  virtual const Address& localAddress() const = 0;
  // The application protocol the transport negotiated (ALPN); empty: none.
  virtual std::string_view nextProtocol() const = 0;
  // The TLS session; null for a plaintext connection.
  virtual const SslConnectionInfo* ssl() const = 0;
  // "tcp" or "tls".
  virtual std::string_view transportProtocol() const = 0;
  // Why the transport failed the connection (TransportSocket::failureReason); empty: it did not.
  virtual std::string_view transportFailureReason() const = 0;
};
using ConnectionPtr = std::unique_ptr<Connection>;

// Builds a client (upstream) connection to `remote`; call connect() to start it. Every client
// connection is built here — pools, tunnels, the TCP proxy, callouts — so that the transport is
// chosen in one place: `factory`'s (the cluster's), plain TCP when null.
ConnectionPtr CreateClientConnection(event::Dispatcher& dispatcher, const Address& remote,
                                     const TransportSocketFactory* factory,
                                     const TransportSocketOptions* options = nullptr);

}  // namespace sluice::network
