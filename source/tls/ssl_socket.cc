#include "source/tls/ssl_socket.h"

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "source/common/logging.h"
#include "source/network/connection.h"
#include "source/tls/ktls.h"

namespace sluice::tls {

const std::string SslSocket::empty_;
const std::vector<std::string> SslSocket::no_sans_;

namespace {
// What one read(2) of the BIO asks for: a whole record and its header, so a record costs one
// syscall, and a burst of small ones one for several.
constexpr size_t kInputChunk = 16 * 1024 + 512;

SslSocket* SocketOf(BIO* bio) { return static_cast<SslSocket*>(BIO_get_data(bio)); }
}  // namespace

SslSocket::SslSocket(std::shared_ptr<const SslContext> context,
                     const network::TransportSocketOptions* options)
    : context_(std::move(context)),
      ssl_(context_->newSsl(options)),
      handshake_slot_(options != nullptr ? options->handshake_slot : nullptr) {
  if (ssl_) {
    BIO* bio = BIO_new(Method());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_.get(), bio, bio);  // the SSL owns the one BIO (both directions)
  }
}

SslSocket::~SslSocket() { endHandshake(); }

BIO_METHOD* SslSocket::Method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "sluice");
    BIO_meth_set_read(m, &SslSocket::BioRead);
    BIO_meth_set_write(m, &SslSocket::BioWrite);
    BIO_meth_set_ctrl(m, &SslSocket::BioCtrl);
    return m;
  }();
  return method;
}

int SslSocket::BioRead(BIO* bio, char* out, int len) {
  SslSocket& self = *SocketOf(bio);
  BIO_clear_retry_flags(bio);
  if (self.in_.empty()) {
    if (self.read_eof_) return 0;
    if (self.socket_drained_) {
      // This readiness event's read came back short: the socket is empty (events are
      // level-triggered; more data wakes us again). Saves the read(2) that would only EAGAIN.
      BIO_set_retry_read(bio);
      return -1;
    }
    const int fd = self.callbacks_->fd();
    IoResult r = self.in_.readFrom(fd, kInputChunk);
    if (r.rc == 0) {
      self.read_eof_ = true;
      return 0;
    }
    if (static_cast<size_t>(r.rc) > 0 && static_cast<size_t>(r.rc) < kInputChunk) {
      self.socket_drained_ = true;
    }
    if (r.rc < 0) {
      if (r.wouldBlock() || r.error == EINTR) {
        BIO_set_retry_read(bio);
      } else {
        self.read_errno_ = r.error;
      }
      return -1;
    }
  }
  const size_t n = std::min<size_t>(static_cast<size_t>(len), self.in_.length());
  self.in_.copyOut(0, n, out);
  self.in_.drain(n);
  return static_cast<int>(n);
}

int SslSocket::BioWrite(BIO* bio, const char* in, int len) {
  // Never blocks: doWrite bounds how much is encrypted ahead of the kernel.
  BIO_clear_retry_flags(bio);
  SocketOf(bio)->out_.add(in, static_cast<size_t>(len));
  return len;
}

long SslSocket::BioCtrl(BIO*, int cmd, long, void*) {
  // BoringSSL flushes after each flight; out_ is written by the connection's write path.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

void SslSocket::onConnected() {
  if (!ssl_) {
    callbacks_->connection().close(network::CloseType::kNoFlush);
    return;
  }
  // A stalled handshake is closed like a slow request (nginx's client_header_timeout covers it
  // there). A client's is bounded by its owner's connect timeout.
  if (context_->handshakeTimeout().count() > 0) {
    callbacks_->connection().dispatcher().armDeadline(handshake_deadline_,
                                                      context_->handshakeTimeout(), *this);
  }
  // A client speaks first: its ClientHello goes out with the connection's write event.
  if (!context_->isServer() && !doHandshake()) {
    callbacks_->connection().close(network::CloseType::kNoFlush);
  }
}

void SslSocket::onDeadline(event::Deadline&) {
  context_->stats().handshake_timeout.inc();
  SLUICE_LOG(kDebug, "[C%d] TLS handshake timed out", callbacks_->connection().id());
  state_ = State::kFailed;
  endHandshake();
  callbacks_->connection().close(network::CloseType::kNoFlush);
}

void SslSocket::endHandshake() {
  handshake_deadline_.cancel();
  if (handshake_slot_ != nullptr) {
    handshake_slot_->release();
    handshake_slot_ = nullptr;
  }
}

void SslSocket::logFailure(const char* where, int ssl_error) {
  if (failure_.empty()) {
    // The reason without BoringSSL's "error:1000007d:SSL routines:OPENSSL_internal:" prefix,
    // and for a refused certificate the verifier's own words.
    const uint32_t e = ERR_peek_error();
    const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
    failure_ = absl::StrCat("TLS ", where, ": ",
                            reason != nullptr  ? reason
                            : read_errno_ != 0 ? std::strerror(read_errno_)
                            : read_eof_        ? "connection closed by the peer"
                                               : "error");
    const long verify = SSL_get_verify_result(ssl_.get());
    if (verify != X509_V_OK) {
      absl::StrAppend(&failure_, " (", X509_verify_cert_error_string(verify), ")");
    }
  }
  if (log::Enabled(log::Level::kDebug)) {
    char reason[256] = "";
    if (uint32_t e = ERR_peek_error(); e != 0) ERR_error_string_n(e, reason, sizeof(reason));
    SLUICE_LOG(kDebug, "[C%d] TLS %s failed: ssl error %d, %s%s%s", callbacks_->connection().id(),
               where, ssl_error, reason, read_errno_ != 0 ? " " : "",
               read_errno_ != 0 ? std::strerror(read_errno_) : "");
  }
  ERR_clear_error();
}

bool SslSocket::doHandshake() {
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    onHandshakeDone();
    return true;
  }
  const int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
  // A failed handshake (a bad ClientHello, no shared cipher, the peer's alert or EOF): the alert
  // BoringSSL wrote, if any, is in out_ and goes out with the close.
  state_ = State::kFailed;
  context_->stats().connection_error.inc();
  if (const uint32_t e = ERR_peek_error();
      ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    context_->stats().fail_verify_no_cert.inc();
  }
  logFailure("handshake", err);
  endHandshake();
  return false;
}

void SslSocket::onHandshakeDone() {
  state_ = State::kOpen;
  endHandshake();
  SSL* ssl = ssl_.get();
  version_ = SSL_get_version(ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl); c != nullptr) {
    cipher_ = SSL_CIPHER_standard_name(c);
  }
  if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name); name != nullptr) {
    sni_ = name;
  }
  const uint8_t* proto = nullptr;
  unsigned proto_len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &proto_len);
  if (proto_len > 0) alpn_ = std::string_view(reinterpret_cast<const char*>(proto), proto_len);
  resumed_ = SSL_session_reused(ssl) == 1;
  if (PeerInfo peer = PeerInfo::Of(ssl); peer.presented) {
    peer_ = std::make_unique<PeerInfo>(std::move(peer));
  }
  // TLS 1.3 session tickets wait in BoringSSL until the next write: send them now, so that a
  // client that reads before it writes (or leaves) can still resume.
  if (SSL_version(ssl) == TLS1_3_VERSION) SSL_write(ssl, "", 0);
  SslStats& stats = context_->stats();
  stats.handshake.inc();
  if (resumed_) stats.session_reused.inc();
  (SSL_version(ssl) == TLS1_3_VERSION ? stats.tls_v1_3 : stats.tls_v1_2).inc();
  if (context_->isServer() && static_cast<const ServerContext&>(*context_).ktlsRequested()) {
    stats.ktls_unavailable.inc();
  }
  callbacks_->raiseEvent(network::ConnectionEvent::kConnected);
}

bool SslSocket::flushOut() {
  const int fd = callbacks_->fd();
  while (!out_.empty()) {
    IoResult r = out_.writeTo(fd);
    if (r.rc > 0) continue;
    return r.wouldBlock() || r.error == EINTR;
  }
  return true;
}

network::IoOutcome SslSocket::doRead(Buffer& buffer, uint64_t max_bytes) {
  network::IoOutcome out;
  socket_drained_ = false;  // a new readiness event (or an activation): the socket may have more
  // What BoringSSL writes meanwhile (a handshake flight, session tickets, a KeyUpdate answer)
  // waits in out_: the connection writes it after this event's filters ran, together with what
  // they wrote (a full handshake's tickets and first response in one writev).
  if (state_ == State::kHandshaking) {
    const bool ok = doHandshake();
    if (!ok) {
      out.action = network::PostIoAction::kClose;
      return out;
    }
    if (state_ != State::kOpen) return out;
    // A closed connection (a kConnected observer) reads no more.
    if (callbacks_->connection().state() == network::ConnectionState::kClosed) return out;
  }
  if (state_ == State::kFailed) {
    out.action = network::PostIoAction::kClose;
    return out;
  }
  while (out.bytes < max_bytes) {
    const size_t want = std::min<uint64_t>(kMaxRecord, max_bytes - out.bytes);
    absl::Span<uint8_t> room = buffer.reserve(std::min<size_t>(want, 4096));
    const int n =
        SSL_read(ssl_.get(), room.data(), static_cast<int>(std::min<size_t>(room.size(), want)));
    if (n > 0) {
      buffer.commit(static_cast<size_t>(n));
      out.bytes += static_cast<uint64_t>(n);
      continue;
    }
    buffer.commit(0);
    const int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      // close_notify: the peer's orderly end of its side.
      out.end_stream = true;
      break;
    }
    if (err == SSL_ERROR_SYSCALL && read_eof_ && read_errno_ == 0) {
      // A FIN without close_notify. HTTP frames its messages itself (a truncated body is caught
      // by its framing), so this reads as the end of the stream, as nginx and Envoy take it.
      out.end_stream = true;
      break;
    }
    logFailure("read", err);
    context_->stats().connection_error.inc();
    state_ = State::kFailed;
    out.action = network::PostIoAction::kClose;
    return out;
  }
  // Plaintext BoringSSL decrypted but we did not take (the read was bounded), or records
  // already in in_: no socket event will tell.
  if (!out.end_stream && out.bytes >= max_bytes && hasBufferedInput()) {
    callbacks_->setTransportSocketIsReadable();
  }
  return out;
}

network::IoOutcome SslSocket::doWrite(Buffer& buffer, bool end_stream) {
  network::IoOutcome out;
  if (state_ == State::kFailed) {
    out.action = network::PostIoAction::kClose;
    return out;
  }
  if (state_ == State::kHandshaking) {
    // Application bytes wait for the handshake; its own flight goes out.
    if (!flushOut()) out.action = network::PostIoAction::kClose;
    return out;
  }
  uint8_t gather[kMaxRecord];
  while (!buffer.empty() && out_.length() < kMaxPendingOut && state_ == State::kOpen) {
    // One record per slice, or several small slices gathered into one record (a response head
    // and a short body written apart make one record, not two).
    struct iovec iov[1];
    buffer.peek(iov, 1);
    const uint8_t* data = static_cast<const uint8_t*>(iov[0].iov_base);
    size_t len = std::min(iov[0].iov_len, kMaxRecord);
    if (len < kMaxRecord && buffer.length() > len) {
      len = std::min(buffer.length(), kMaxRecord);
      buffer.copyOut(0, len, gather);
      data = gather;
    }
    const int n = SSL_write(ssl_.get(), data, static_cast<int>(len));
    if (n <= 0) {
      logFailure("write", SSL_get_error(ssl_.get(), n));
      context_->stats().connection_error.inc();
      state_ = State::kFailed;
      out.action = network::PostIoAction::kClose;
      return out;
    }
    buffer.drain(static_cast<size_t>(n));
    out.bytes += static_cast<uint64_t>(n);
  }
  if (end_stream && buffer.empty() && !shutdown_sent_) {
    // close_notify first (RFC 8446 6.1), then the FIN once it is out.
    SSL_shutdown(ssl_.get());
    shutdown_sent_ = true;
  }
  if (!flushOut()) {
    out.action = network::PostIoAction::kClose;
    return out;
  }
  if (shutdown_sent_ && out_.empty() && end_stream) {
    ::shutdown(callbacks_->fd(), SHUT_WR);
    out.end_stream = true;
  }
  return out;
}

void SslSocket::closeSocket(network::ConnectionEvent) {
  endHandshake();
  // A close_notify before the FIN tells the peer the stream was not truncated. Best effort: one
  // write, whatever the kernel takes (nginx does the same with SSL_shutdown on close). Not when
  // the peer has closed already — its close_notify read and its FIN after it — as nginx does
  // not: nobody would read ours, and the write is a tenth of a resumption's cost.
  const bool peer_gone = read_eof_ && (SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) != 0;
  if (state_ == State::kOpen && !shutdown_sent_ && !peer_gone) {
    SSL_shutdown(ssl_.get());
    shutdown_sent_ = true;
  }
  if (state_ != State::kHandshaking) flushOut();
  state_ = State::kFailed;
}

absl::StatusOr<std::unique_ptr<ServerSslSocketFactory>> ServerSslSocketFactory::Create(
    const config::v1::DownstreamTlsContext& config, const std::string& path,
    std::vector<std::string> default_alpn, std::shared_ptr<SslStats> stats, size_t workers,
    std::vector<TicketKey> generated_keys) {
  std::unique_ptr<ServerSslSocketFactory> f(new ServerSslSocketFactory());
  f->config_ = config;
  f->path_ = path;
  f->default_alpn_ = std::move(default_alpn);
  f->stats_ = std::move(stats);
  // Without key files, random keys for the life of the process (the server's
  // GeneratedTicketKeys: one of its own, and its hot-restart predecessor's): tickets survive
  // certificate reloads (BoringSSL's own keys would not: they live in the SSL_CTX a reload
  // replaces) and one hot restart. Key files give rotation and sharing between hosts.
  f->generated_keys_ = std::move(generated_keys);
  if (f->generated_keys_.empty()) {
    TicketKey& key = f->generated_keys_.emplace_back();
    key.key_len = 32;
    RAND_bytes(key.name, sizeof(key.name));
    RAND_bytes(key.hmac, sizeof(key.hmac));
    RAND_bytes(key.aes, sizeof(key.aes));
  }
  auto context = f->rebuild();
  if (!context.ok()) return context.status();
  if (config.enable_ktls()) {
    if (KernelTlsAvailable()) {
      SLUICE_LOG(kWarn,
                 "%s.enable_ktls: the kernel has the TLS ULP, but this build does not offload "
                 "records to it yet; TLS stays in user space (counted in ssl.ktls_unavailable)",
                 path);
    } else {
      SLUICE_LOG(kInfo,
                 "%s.enable_ktls: this kernel has no TLS ULP (CONFIG_TLS, `modprobe tls`); TLS "
                 "stays in user space (counted in ssl.ktls_unavailable)",
                 path);
    }
  }
  f->slots_.assign(workers + 1, *context);
  return f;
}

absl::StatusOr<std::shared_ptr<const ServerContext>> ServerSslSocketFactory::rebuild() const {
  return ServerContext::Create(config_, path_, default_alpn_, stats_, &generated_keys_);
}

ServerSslSocketFactory::~ServerSslSocketFactory() {
  if (!generated_keys_.empty()) {
    OPENSSL_cleanse(generated_keys_.data(), generated_keys_.size() * sizeof(TicketKey));
  }
}

void ServerSslSocketFactory::setContext(size_t worker,
                                        std::shared_ptr<const ServerContext> context) const {
  if (worker < slots_.size()) slots_[worker] = std::move(context);
}

network::TransportSocketPtr ServerSslSocketFactory::createTransportSocket(
    const network::TransportSocketOptions* options) const {
  const size_t slot = options != nullptr && options->worker < slots_.size() - 1 ? options->worker
                                                                                : slots_.size() - 1;
  return std::make_unique<SslSocket>(slots_[slot], options);
}

}  // namespace sluice::tls
