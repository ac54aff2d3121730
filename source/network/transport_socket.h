#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/common/buffer.h"

namespace sluice::network {

class Connection;
class ConnectionLimit;
enum class ConnectionEvent;

enum class PostIoAction { kKeepOpen, kClose };

struct IoOutcome {
  PostIoAction action = PostIoAction::kKeepOpen;
  uint64_t bytes = 0;
  // doRead: the peer ended its side (FIN, or a TLS close_notify).
  // doWrite: the half-close asked for with `end_stream` is done (TLS: close_notify sent and
  // flushed, then the TCP FIN).
  bool end_stream = false;
};

// What a transport knows about its session. A plaintext connection has none (Connection::ssl()
// is null); TLS fills every field it has. Views and strings stay valid while the connection
// lives.
class SslConnectionInfo {
 public:
  virtual ~SslConnectionInfo() = default;
  // "TLSv1.3", "TLSv1.2".
  virtual std::string_view version() const = 0;
  // The IANA-style name BoringSSL reports, e.g. "TLS_AES_128_GCM_SHA256".
  virtual std::string_view cipher() const = 0;
  // The server name the client sent (server side) or asked for (client side); empty: none.
  virtual std::string_view sni() const = 0;
  // The protocol ALPN chose ("h2", "http/1.1"); empty: none.
  virtual std::string_view alpn() const = 0;
  virtual bool sessionResumed() const = 0;
  // Whether this connection's first bytes came as TLS 1.3 early data and the handshake has not
  // completed yet (requests read now may be replays).
  virtual bool inEarlyData() const = 0;
  // The verified peer certificate (mTLS downstream, the server upstream); false: none.
  virtual bool peerCertificatePresented() const = 0;
  virtual bool peerCertificateValidated() const = 0;
  // RFC 2253 subject, e.g. "CN=client,O=Acme".
  virtual const std::string& peerSubject() const = 0;
  // DNS and URI SANs, in certificate order.
  virtual const std::vector<std::string>& peerSans() const = 0;
  // SHA-256 of the DER certificate, lower-case hex.
  virtual const std::string& peerFingerprintSha256() const = 0;
};

// What a transport socket may ask of the connection it serves.
class TransportSocketCallbacks {
 public:
  virtual ~TransportSocketCallbacks() = default;
  virtual int fd() const = 0;
  virtual Connection& connection() = 0;
  // The transport holds input that no socket event will announce (plaintext left over after a
  // bounded read, a record already taken from the kernel): run the read path again soon, as if
  // the socket had become readable.
  virtual void setTransportSocketIsReadable() = 0;
  // Passes an event up: the transport raises kConnected once its handshake is done (a plain
  // socket at once).
  virtual void raiseEvent(ConnectionEvent event) = 0;
};

// The layer between a connection and its fd: plain TCP, or TLS (source/tls/). It reads into and
// writes from the connection's buffers; the connection owns the fd and the events, and never
// reads or writes the fd past it (a half-close included).
class TransportSocket {
 public:
  virtual ~TransportSocket() = default;
  // Called once, before any other call.
  virtual void setTransportSocketCallbacks(TransportSocketCallbacks& callbacks) = 0;
  // "tcp" or "tls", for logs.
  virtual std::string_view protocol() const = 0;
  // The application protocol ALPN chose; empty when none was (or plain TCP).
  virtual std::string_view nextProtocol() const { return {}; }
  // Reads what is available (bounded by `max_bytes` for fairness between connections).
  virtual IoOutcome doRead(Buffer& buffer, uint64_t max_bytes) = 0;
  // Writes as much of `buffer` as the kernel takes; with `end_stream`, half-closes once all of
  // it is out (outcome.end_stream says when that happened). Called with an empty buffer when
  // hasPendingWrite() says the transport has bytes of its own to send.
  virtual IoOutcome doWrite(Buffer& buffer, bool end_stream) = 0;
  // The TCP connect finished (client) or the connection was accepted and its filters are in
  // place (server). A plain socket raises kConnected here; TLS starts its handshake.
  virtual void onConnected() = 0;
  // The connection is about to close its fd: last words (a TLS close_notify, best effort).
  virtual void closeSocket(ConnectionEvent event) = 0;
  // Bytes of the transport's own wait for the socket to take them (a handshake flight, records
  // encrypted beyond what the kernel took): the connection keeps write interest while true.
  virtual bool hasPendingWrite() const { return false; }
  // Input already taken from the socket that the connection has not received yet (decrypted or
  // buffered records): re-enabling reads must not wait for a socket event that never comes.
  virtual bool hasBufferedInput() const { return false; }
  // Null for plaintext.
  virtual const SslConnectionInfo* ssl() const { return nullptr; }
  // Why the transport failed the connection (a TLS handshake refused: "TLS: certificate verify
  // failed (...)"); empty when it did not.
  virtual std::string_view failureReason() const { return {}; }
  // Bytes taken from the socket before this transport took over (a ClientHello read to choose
  // the listener's filter chain): they are read before anything from the socket.
  virtual void prependReadData(Buffer& data) = 0;
};
using TransportSocketPtr = std::unique_ptr<TransportSocket>;

// Per-connection choices for a client transport (from the cluster or the request).
struct TransportSocketOptions {
  // Client: SNI; empty: the factory's default.
  std::string server_name;
  // Server: a slot of the listener's handshake limit, taken for this connection; the transport
  // releases it when its handshake ends (done, failed or abandoned).
  ConnectionLimit* handshake_slot = nullptr;
  // The worker building the connection (factories keep per-worker state: no locks).
  size_t worker = SIZE_MAX;
};

// Builds the transport sockets of one listener filter chain or one cluster: immutable, shared by
// every worker (it only reads its config and shared contexts).
class TransportSocketFactory {
 public:
  virtual ~TransportSocketFactory() = default;
  virtual TransportSocketPtr createTransportSocket(
      const TransportSocketOptions* options = nullptr) const = 0;
  virtual bool implementsSecureTransport() const = 0;
};
using TransportSocketFactoryPtr = std::unique_ptr<TransportSocketFactory>;
using TransportSocketFactorySharedPtr = std::shared_ptr<const TransportSocketFactory>;

// Plain TCP. A connection given no transport embeds one (no allocation per plain connection).
class RawBufferSocket : public TransportSocket {
 public:
  void setTransportSocketCallbacks(TransportSocketCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  std::string_view protocol() const override { return "tcp"; }
  IoOutcome doRead(Buffer& buffer, uint64_t max_bytes) override;
  IoOutcome doWrite(Buffer& buffer, bool end_stream) override;
  void onConnected() override;
  void closeSocket(ConnectionEvent) override {}
  bool hasBufferedInput() const override { return initial_ != nullptr; }
  void prependReadData(Buffer& data) override;

 private:
  TransportSocketCallbacks* callbacks_ = nullptr;
  // prependReadData's bytes until the first read (rare: a pointer keeps the socket small).
  std::unique_ptr<Buffer> initial_;
};

// Plain TCP for every connection of a chain or cluster.
class RawBufferSocketFactory : public TransportSocketFactory {
 public:
  // Null: the connection uses its embedded raw socket.
  TransportSocketPtr createTransportSocket(const TransportSocketOptions* = nullptr) const override {
    return nullptr;
  }
  bool implementsSecureTransport() const override { return false; }
};

}  // namespace sluice::network
