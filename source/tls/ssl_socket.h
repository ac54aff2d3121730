#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/network/listener.h"
#include "source/network/transport_socket.h"
#include "source/tls/context.h"

namespace sluice::tls {

// TLS over a connection's fd with BoringSSL, driven by the connection's level-triggered events.
//
// BoringSSL talks to a BIO of ours rather than to the fd: its reads come from `in_`, which one
// read(2) of up to 16 KiB fills (BoringSSL has no read-ahead: on the fd itself every record
// would cost two reads, header and body), and its writes go to `out_`, which the connection's
// write event drains with one writev — a whole handshake flight, or many records, per syscall.
// Plaintext is decrypted straight into the connection's read buffer and encrypted from its
// write buffer's slices (several small slices are first gathered into one record). `out_` is
// bounded: no more is encrypted while 64 KiB wait for the kernel.
class SslSocket : public network::TransportSocket,
                  public network::SslConnectionInfo,
                  private event::DeadlineCallbacks {
 public:
  // The context stays alive while this socket lives. options->handshake_slot (server), when
  // given, was acquired for this connection and is released when its handshake ends;
  // options->server_name (client) is the SNI.
  SslSocket(std::shared_ptr<const SslContext> context,
            const network::TransportSocketOptions* options);
  ~SslSocket() override;

  // TransportSocket
  void setTransportSocketCallbacks(network::TransportSocketCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  std::string_view protocol() const override { return "tls"; }
  std::string_view nextProtocol() const override { return alpn_; }
  network::IoOutcome doRead(Buffer& buffer, uint64_t max_bytes) override;
  network::IoOutcome doWrite(Buffer& buffer, bool end_stream) override;
  void onConnected() override;
  void closeSocket(network::ConnectionEvent event) override;
  bool hasPendingWrite() const override { return !out_.empty(); }
  bool hasBufferedInput() const override {
    return !in_.empty() || (state_ == State::kOpen && SSL_pending(ssl_.get()) > 0);
  }
  const network::SslConnectionInfo* ssl() const override { return this; }
  std::string_view failureReason() const override { return failure_; }
  void prependReadData(Buffer& data) override { in_.move(data); }

  // SslConnectionInfo
  std::string_view version() const override { return version_; }
  std::string_view cipher() const override { return cipher_; }
  std::string_view sni() const override { return sni_; }
  std::string_view alpn() const override { return alpn_; }
  bool sessionResumed() const override { return resumed_; }
  bool inEarlyData() const override { return ssl_ && SSL_in_early_data(ssl_.get()); }
  bool peerCertificatePresented() const override { return peer_ != nullptr; }
  bool peerCertificateValidated() const override { return peer_ != nullptr && peer_->validated; }
  const std::string& peerSubject() const override { return peer_ ? peer_->subject : empty_; }
  const std::vector<std::string>& peerSans() const override {
    return peer_ ? peer_->sans : no_sans_;
  }
  const std::string& peerFingerprintSha256() const override {
    return peer_ ? peer_->fingerprint : empty_;
  }

  // The most plaintext encrypted per record (TLS's maximum).
  static constexpr size_t kMaxRecord = 16 * 1024;
  // No more is encrypted while this much ciphertext waits for the kernel.
  static constexpr size_t kMaxPendingOut = 64 * 1024;

 private:
  enum class State { kHandshaking, kOpen, kShutdown, kFailed };
  static BIO_METHOD* Method();
  static int BioRead(BIO* bio, char* out, int len);
  static int BioWrite(BIO* bio, const char* in, int len);
  static long BioCtrl(BIO* bio, int cmd, long num, void* ptr);

  // Advances the handshake; false when it failed (the connection must close).
  bool doHandshake();
  void onHandshakeDone();
  void endHandshake();
  // Writes `out_` to the fd; false on a socket error.
  bool flushOut();
  void onDeadline(event::Deadline&) override;
  // Logs and counts why the handshake or a record failed.
  void logFailure(const char* where, int ssl_error);

  std::shared_ptr<const SslContext> context_;
  bssl::UniquePtr<SSL> ssl_;
  network::TransportSocketCallbacks* callbacks_ = nullptr;
  network::ConnectionLimit* handshake_slot_;
  Buffer in_;
  Buffer out_;
  State state_ = State::kHandshaking;
  bool read_eof_ = false;        // the BIO saw the fd's EOF
  bool socket_drained_ = false;  // a read in this event came back short
  int read_errno_ = 0;           // the BIO saw a socket error
  bool shutdown_sent_ = false;
  bool resumed_ = false;
  event::Deadline handshake_deadline_;
  // Views into BoringSSL's static names and the SSL's own storage (valid while ssl_ lives): no
  // allocation per connection.
  std::string_view version_;
  std::string_view cipher_;
  std::string_view sni_;
  std::string_view alpn_;
  // Only when the peer presented a certificate (mTLS): most connections pay a pointer.
  std::unique_ptr<PeerInfo> peer_;
  // Why the handshake failed, for the owner's error (an upstream's 503): empty while it has not.
  std::string failure_;
  static const std::string empty_;
  static const std::vector<std::string> no_sans_;
};

// Builds the server TLS sockets of one listener filter chain, and rebuilds its context from the
// files on a reload (SIGHUP, the admin's POST /certificates/reload).
//
// Each worker reads its own slot (TransportSocketOptions::worker); a reload builds the new
// context on the main thread and posts it to every worker, which swaps its slot: no lock on the
// accept path, and a connection keeps the context it started with (shared ownership).
class ServerSslSocketFactory : public network::TransportSocketFactory {
 public:
  // Builds the first context; fails as ServerContext::Create does.
  static absl::StatusOr<std::unique_ptr<ServerSslSocketFactory>> Create(
      const config::v1::DownstreamTlsContext& config, const std::string& path,
      std::vector<std::string> default_alpn, std::shared_ptr<SslStats> stats, size_t workers,
      std::vector<TicketKey> generated_keys = {});
  ~ServerSslSocketFactory() override;

  network::TransportSocketPtr createTransportSocket(
      const network::TransportSocketOptions* options = nullptr) const override;
  bool implementsSecureTransport() const override { return true; }

  // Main thread: a new context from the files as they are now (the old one stays in use if
  // this fails).
  absl::StatusOr<std::shared_ptr<const ServerContext>> rebuild() const;
  // On worker `worker`'s thread (or before the workers start): its connections use `context`
  // from now on.
  void setContext(size_t worker, std::shared_ptr<const ServerContext> context) const;
  const std::string& path() const { return path_; }

 private:
  ServerSslSocketFactory() = default;

  config::v1::DownstreamTlsContext config_;
  std::string path_;
  std::vector<std::string> default_alpn_;
  std::shared_ptr<SslStats> stats_;
  std::vector<TicketKey> generated_keys_;  // cleansed on destruction
  // One per worker, each touched only by its worker once they run; [workers] (the last) serves
  // callers with no worker (tests, the main thread).
  mutable std::vector<std::shared_ptr<const ServerContext>> slots_;
};

}  // namespace sluice::tls
