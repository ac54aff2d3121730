#include "source/upstream/health_checker_impl.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/logging.h"
#include "source/network/connection.h"

namespace sluice::upstream {

namespace {

constexpr uint32_t kDefaultUnhealthyThreshold = 3;
constexpr uint32_t kDefaultHealthyThreshold = 2;
constexpr std::string_view kUserAgent = "sluice-health-check";
// A gRPC health response is a few bytes; a body beyond this is not one (and is not kept).
constexpr size_t kMaxKeptBody = 16 * 1024;

std::chrono::milliseconds Ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

uint32_t Threshold(bool has, uint32_t value, uint32_t fallback) {
  return has ? std::max<uint32_t>(1, value) : fallback;
}

// Protobuf's base-128 varints.
void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;  // truncated, or longer than ten bytes
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HostHealthTracker

bool HostHealthTracker::onSuccess() {
  failures_ = 0;
  if (host_.hasHealthFlag(Host::kPendingActiveHealthCheck)) {
    // The first result decides alone.
    host_.clearHealthFlag(Host::kPendingActiveHealthCheck);
    host_.clearHealthFlag(Host::kFailedActiveHealthCheck);
    successes_ = 0;
    return true;
  }
  if (!host_.hasHealthFlag(Host::kFailedActiveHealthCheck)) return false;
  if (++successes_ < healthy_threshold_) return false;
  host_.clearHealthFlag(Host::kFailedActiveHealthCheck);
  successes_ = 0;
  return true;
}

bool HostHealthTracker::onFailure() {
  successes_ = 0;
  if (host_.hasHealthFlag(Host::kPendingActiveHealthCheck)) {
    host_.setHealthFlag(Host::kFailedActiveHealthCheck);
    host_.clearHealthFlag(Host::kPendingActiveHealthCheck);
    failures_ = 0;
    return true;
  }
  if (host_.hasHealthFlag(Host::kFailedActiveHealthCheck)) return false;
  if (++failures_ < unhealthy_threshold_) return false;
  host_.setHealthFlag(Host::kFailedActiveHealthCheck);
  failures_ = 0;
  return true;
}

bool HostHealthTracker::healthy() const {
  return !host_.hasHealthFlag(Host::kPendingActiveHealthCheck) &&
         !host_.hasHealthFlag(Host::kFailedActiveHealthCheck);
}

// ---------------------------------------------------------------------------------------------
// gRPC health messages

namespace grpc_health {

std::string EncodeRequest(std::string_view service) {
  std::string out;
  if (service.empty()) return out;
  out.push_back(0x0a);  // field 1, wire type 2 (length-delimited)
  PutVarint(out, service.size());
  out.append(service);
  return out;
}

std::string Frame(std::string_view message) {
  std::string out(5, '\0');  // flag 0: not compressed
  const auto n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  out.append(message);
  return out;
}

absl::StatusOr<uint32_t> DecodeResponse(std::string_view in) {
  uint32_t status = kUnknown;
  while (!in.empty()) {
    uint64_t key;
    if (!GetVarint(in, key)) return absl::InvalidArgumentError("truncated field key");
    const uint64_t field = key >> 3;
    const uint32_t wire_type = key & 7;
    if (field == 0) return absl::InvalidArgumentError("field number 0");
    switch (wire_type) {
      case 0: {  // varint
        uint64_t v;
        if (!GetVarint(in, v)) return absl::InvalidArgumentError("truncated varint");
        // The last occurrence wins (protobuf's rule for a repeated scalar field).
        if (field == 1) status = static_cast<uint32_t>(v);
        break;
      }
      case 1:  // 64-bit
        if (in.size() < 8) return absl::InvalidArgumentError("truncated fixed64");
        in.remove_prefix(8);
        break;
      case 2: {  // length-delimited
        uint64_t n;
        if (!GetVarint(in, n) || n > in.size()) {
          return absl::InvalidArgumentError("truncated length-delimited field");
        }
        if (field == 1) return absl::InvalidArgumentError("status is not a varint");
        in.remove_prefix(n);
        break;
      }
      case 5:  // 32-bit
        if (in.size() < 4) return absl::InvalidArgumentError("truncated fixed32");
        in.remove_prefix(4);
        break;
      default:  // groups (3, 4) are not in proto3; 6 and 7 do not exist
        return absl::InvalidArgumentError(absl::StrCat("wire type ", wire_type));
    }
  }
  return status;
}

absl::StatusOr<std::string_view> Unframe(std::string_view body) {
  if (body.size() < 5) return absl::InvalidArgumentError("no whole gRPC message");
  if (body[0] != 0) return absl::InvalidArgumentError("compressed message (none was accepted)");
  const uint32_t n = (static_cast<uint32_t>(static_cast<uint8_t>(body[1])) << 24) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(body[2])) << 16) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(body[3])) << 8) |
                     static_cast<uint32_t>(static_cast<uint8_t>(body[4]));
  if (body.size() - 5 < n) return absl::InvalidArgumentError("truncated gRPC message");
  return body.substr(5, n);
}

}  // namespace grpc_health

// ---------------------------------------------------------------------------------------------
// HealthCheckerImplBase

HealthCheckerImplBase::HealthCheckerImplBase(Cluster& cluster,
                                             const config::v1::HealthCheck& config,
                                             event::Dispatcher& dispatcher, stats::Store& store)
    : timeout_(Ms(config.timeout())),
      cluster_(cluster),
      dispatcher_(dispatcher),
      stats_{cluster.statsScope().child("health_check").counter("attempt"),
             cluster.statsScope().child("health_check").counter("success"),
             cluster.statsScope().child("health_check").counter("failure"),
             cluster.statsScope().child("health_check").counter("network_failure"),
             cluster.statsScope().child("health_check").counter("timeout"),
             cluster.statsScope().child("health_check").gauge("healthy")},
      interval_(Ms(config.interval())),
      interval_jitter_(Ms(config.interval_jitter())),
      initial_jitter_(Ms(config.initial_jitter())),
      unhealthy_threshold_(Threshold(config.has_unhealthy_threshold(),
                                     config.unhealthy_threshold().value(),
                                     kDefaultUnhealthyThreshold)),
      healthy_threshold_(Threshold(config.has_healthy_threshold(),
                                   config.healthy_threshold().value(), kDefaultHealthyThreshold)),
      random_(std::random_device{}()) {}

HealthCheckerImplBase::~HealthCheckerImplBase() {
  member_handle_.reset();
  // Each session closes its connection without its events (nothing is told any more).
  sessions_.clear();
}

void HealthCheckerImplBase::start() {
  if (started_) return;
  started_ = true;
  member_handle_ = cluster_.addMemberUpdateCallback([this] { onHostsChanged(); });
  onHostsChanged();
}

void HealthCheckerImplBase::onHostsChanged() {
  absl::flat_hash_set<const Host*> present;
  for (const HostSharedPtr& h : cluster_.hosts()->hosts()) {
    present.insert(h.get());
    if (sessions_.contains(h.get())) continue;
    auto session = createSession(h);
    session->schedule(jitter(initial_jitter_));
    sessions_.emplace(h.get(), std::move(session));
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (present.contains(it->first)) {
      ++it;
      continue;
    }
    // The host left: no more checks. A check in flight is dropped with the session, after the
    // current event (which may be one of its own).
    it->second->stop();
    dispatcher_.deferredDelete(std::move(it->second));
    sessions_.erase(it++);
  }
  onHealthChanged();
}

void HealthCheckerImplBase::onHealthChanged() {
  int64_t healthy = 0;
  for (const auto& [host, session] : sessions_) healthy += session->healthy() ? 1 : 0;
  stats_.healthy.set(healthy);
  cluster_.refreshHealth();
}

std::chrono::milliseconds HealthCheckerImplBase::jitter(std::chrono::milliseconds max) {
  if (max.count() <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(0, max.count())(random_));
}

HealthCheckerImplBase::Session::Session(HealthCheckerImplBase& parent, HostSharedPtr host)
    : parent_(parent),
      host_(std::move(host)),
      tracker_(*host_, parent.unhealthy_threshold_, parent.healthy_threshold_),
      interval_timer_(parent.dispatcher_.createTimer([this] { onIntervalTimer(); })),
      timeout_timer_(parent.dispatcher_.createTimer([this] { onTimeoutTimer(); })) {}

HealthCheckerImplBase::Session::~Session() = default;

void HealthCheckerImplBase::Session::schedule(std::chrono::milliseconds delay) {
  interval_timer_->enableTimer(delay);
}

void HealthCheckerImplBase::Session::stop() {
  checking_ = false;
  interval_timer_->disableTimer();
  timeout_timer_->disableTimer();
}

void HealthCheckerImplBase::Session::onIntervalTimer() {
  checking_ = true;
  parent_.stats_.attempt.inc();
  // The timeout covers the whole check: connecting, the TLS handshake, the answer.
  timeout_timer_->enableTimer(parent_.timeout_);
  startCheck();
}

void HealthCheckerImplBase::Session::onTimeoutTimer() {
  if (!checking_) return;
  fail(CheckFailure::kTimeout);
  abandonCheck();
}

void HealthCheckerImplBase::Session::finish() {
  checking_ = false;
  timeout_timer_->disableTimer();
  // The interval runs from the end of a check, so that a slow host is not checked ever more
  // often than configured.
  schedule(parent_.interval_ + parent_.jitter(parent_.interval_jitter_));
}

void HealthCheckerImplBase::Session::succeed() {
  if (!checking_) return;
  finish();
  parent_.stats_.success.inc();
  if (tracker_.onSuccess()) {
    SLUICE_LOG(kInfo, "cluster %s: health check: host %s is healthy", parent_.cluster_.name(),
               host_->addressString());
    parent_.onHealthChanged();
  }
}

void HealthCheckerImplBase::Session::fail(CheckFailure failure) {
  if (!checking_) return;
  finish();
  parent_.stats_.failure.inc();
  if (failure == CheckFailure::kNetwork) parent_.stats_.network_failure.inc();
  if (failure == CheckFailure::kTimeout) parent_.stats_.timeout.inc();
  if (tracker_.onFailure()) {
    SLUICE_LOG(kInfo, "cluster %s: health check: host %s is unhealthy (%s)",
               parent_.cluster_.name(), host_->addressString(),
               failure == CheckFailure::kTimeout   ? "timeout"
               : failure == CheckFailure::kNetwork ? "connection failure"
                                                   : "unhealthy answer");
    parent_.onHealthChanged();
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP and gRPC

// One host's HTTP (or gRPC) checks, over one connection kept between checks.
class HttpHealthChecker::HttpSession : public HealthCheckerImplBase::Session,
                                       public network::ConnectionCallbacks,
                                       public network::ReadFilter,
                                       public http::ClientConnectionCallbacks,
                                       public http::ResponseDecoder {
 public:
  HttpSession(HttpHealthChecker& checker, HostSharedPtr host)
      : Session(checker, std::move(host)), checker_(checker) {}
  // Not inside any of the connection's events: it goes at once (at shutdown nothing is left
  // for the dispatcher to free after the cluster its codec belongs to).
  ~HttpSession() override { dropConnection(/*now=*/true); }

 private:
  // A connection and its codec, freed together after the event that closed them.
  struct Transport : public event::DeferredDeletable {
    ~Transport() override { codec.reset(); }  // before the connection it refers to
    network::ConnectionPtr connection;
    http::ClientConnectionPtr codec;
  };

  void startCheck() override {
    response_.reset();
    trailers_.reset();
    body_.clear();
    body_overflow_ = false;
    close_after_stream_ = false;
    if (transport_ != nullptr && transport_->codec != nullptr && !stream_open_ && !going_away_ &&
        (transport_->codec->protocol() == http::Protocol::kHttp2 ||
         transport_->connection->idlePeerAlive())) {
      // The connection of the last check (an HTTP/1 one the host closed since, which the event
      // loop may not have seen yet, is not: a check must not fail for a keep-alive race).
      sendRequest();
      return;
    }
    dropConnection();  // not usable (a stream of an abandoned check cannot be left on it)
    connect();
  }

  void abandonCheck() override { closeConnection(); }

  void connect() {
    const Cluster& cluster = parent_.cluster();
    transport_ = std::make_unique<Transport>();
    transport_->connection = network::CreateClientConnection(dispatcher(), host_->address(),
                                                             cluster.transportSocketFactory());
    network::Connection& c = *transport_->connection;
    c.setBufferLimits(cluster.bufferLimit());
    c.addConnectionCallbacks(*this);
    c.addReadFilter(std::make_unique<network::ForwardingReadFilter>(*this));
    going_away_ = false;
    c.connect();
  }

  void sendRequest() {
    stream_open_ = true;
    http::RequestEncoder& encoder = transport_->codec->newStream(*this);
    request_ = checker_.makeRequest();
    const std::string body = checker_.requestBody();
    encoder.encodeHeaders(*request_, body.empty());
    if (!body.empty()) {
      Buffer data;
      data.add(body);
      encoder.encodeData(data, true);
    }
  }

  // Closes the connection with its events (onEvent cleans up).
  void closeConnection() {
    if (transport_ != nullptr &&
        transport_->connection->state() != network::ConnectionState::kClosed) {
      transport_->connection->close(network::CloseType::kNoFlush);
    }
  }

  // Drops the connection without its events (this session is going away, or starts over);
  // `now`: not from inside one of its events, so it may be freed at once.
  void dropConnection(bool now = false) {
    if (transport_ == nullptr) return;
    transport_->codec.reset();
    if (transport_->connection->state() != network::ConnectionState::kClosed) {
      transport_->connection->removeConnectionCallbacks(*this);
      transport_->connection->close(network::CloseType::kNoFlush);
    }
    if (now) {
      transport_.reset();
    } else {
      dispatcher().deferredDelete(std::move(transport_));
    }
    stream_open_ = false;
  }

  void complete() {
    if (!checking() || response_ == nullptr) return;
    const bool healthy =
        !body_overflow_ && checker_.healthyResponse(*response_, trailers_.get(), body_);
    if (healthy) {
      succeed();
    } else {
      // A fresh connection for the next check: what made this one fail may be the connection's.
      close_after_stream_ = true;
      fail(CheckFailure::kUnhealthy);
    }
  }

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool) override {
    if (transport_ != nullptr && transport_->codec != nullptr) {
      transport_->codec->dispatch(data);
    } else {
      data.clear();
    }
    return network::FilterStatus::kStopIteration;
  }

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (transport_ == nullptr) return;
    if (event == network::ConnectionEvent::kConnected) {
      transport_->codec = parent_.cluster().poolSettings().codec_factory->create(
          *transport_->connection, *this, dispatcher());
      if (checking()) {
        sendRequest();
      } else {
        closeConnection();  // its check ended (it cannot: a timeout closes): nothing to send
      }
      return;
    }
    // No longer ours: what follows (the codec failing its stream) must not reach it again.
    std::unique_ptr<Transport> closed = std::move(transport_);
    stream_open_ = false;
    const std::string_view tls = closed->connection->transportFailureReason();
    if (!tls.empty() && checking()) {
      SLUICE_LOG(kDebug, "cluster %s: health check of %s: %s", parent_.cluster().name(),
                 host_->addressString(), tls);
    }
    // A stream in flight fails through its decoder (onUpstreamFailure).
    if (closed->codec != nullptr) closed->codec->onConnectionClosed();
    dispatcher().deferredDelete(std::move(closed));
    // Refused, unreachable, a failed handshake, or closed before the answer (nothing when no
    // check was waiting: an idle connection the host closed).
    fail(CheckFailure::kNetwork);
  }

  // http::ClientConnectionCallbacks
  void onStreamDone(bool reusable) override {
    stream_open_ = false;
    if (!reusable || close_after_stream_ || going_away_) closeConnection();
  }
  void onGoAway() override {
    going_away_ = true;
    if (!stream_open_) closeConnection();
  }
  void onCodecFailed() override { closeConnection(); }

  // http::ResponseDecoder
  void decodeHeaders(std::unique_ptr<http::ResponseHead> head, bool end_stream) override {
    if (!checking()) return;
    if (head->status < 200 && !end_stream) return;  // interim
    response_ = std::move(head);
    if (end_stream) complete();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    if (checking() && checker_.keepsBody() && response_ != nullptr) {
      if (body_.size() + data.length() > kMaxKeptBody) {
        body_overflow_ = true;
      } else {
        body_ += data.toString();
      }
    }
    data.drain(data.length());
    if (end_stream) complete();
  }
  void decodeTrailers(std::unique_ptr<http::HeaderMap> trailers) override {
    trailers_ = std::move(trailers);
    complete();
  }
  void onUpstreamFailure(http::UpstreamFailure, bool) override {
    close_after_stream_ = true;
    fail(CheckFailure::kNetwork);
  }

  HttpHealthChecker& checker_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<http::RequestHead> request_;  // kept while its stream may refer to it
  std::unique_ptr<http::ResponseHead> response_;
  std::unique_ptr<http::HeaderMap> trailers_;
  std::string body_;
  bool body_overflow_ = false;
  bool stream_open_ = false;
  bool going_away_ = false;
  bool close_after_stream_ = false;
};

HttpHealthChecker::HttpHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                                     event::Dispatcher& dispatcher, stats::Store& store)
    : HttpHealthChecker(cluster, config, dispatcher, store,
                        config.http_health_check().host().empty()
                            ? cluster.name()
                            : config.http_health_check().host()) {}

HttpHealthChecker::HttpHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                                     event::Dispatcher& dispatcher, stats::Store& store,
                                     std::string authority)
    : HealthCheckerImplBase(cluster, config, dispatcher, store),
      http_(config.http_health_check()),
      authority_(std::move(authority)) {
  for (const auto& r : http_.expected_statuses()) expected_.emplace_back(r.start(), r.end());
  if (expected_.empty()) expected_.emplace_back(200, 300);
}

std::unique_ptr<HealthCheckerImplBase::Session> HttpHealthChecker::createSession(
    HostSharedPtr host) {
  return std::make_unique<HttpSession>(*this, std::move(host));
}

std::unique_ptr<http::RequestHead> HttpHealthChecker::makeRequest() const {
  auto head = std::make_unique<http::RequestHead>();
  head->method = "GET";
  head->path = http_.path();  // the checker's config outlives every request
  head->headers.add("host", authority_);
  head->headers.add("user-agent", kUserAgent);
  for (const auto& h : http_.request_headers_to_add()) head->headers.add(h.name(), h.value());
  return head;
}

bool HttpHealthChecker::healthyResponse(const http::ResponseHead& head, const http::HeaderMap*,
                                        std::string_view) const {
  for (const auto& [start, end] : expected_) {
    if (head.status >= start && head.status < end) return true;
  }
  return false;
}

GrpcHealthChecker::GrpcHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                                     event::Dispatcher& dispatcher, stats::Store& store)
    : HttpHealthChecker(cluster, config, dispatcher, store,
                        config.grpc_health_check().authority().empty()
                            ? cluster.name()
                            : config.grpc_health_check().authority()),
      frame_(grpc_health::Frame(
          grpc_health::EncodeRequest(config.grpc_health_check().service_name()))) {}

std::unique_ptr<http::RequestHead> GrpcHealthChecker::makeRequest() const {
  auto head = std::make_unique<http::RequestHead>();
  head->method = "POST";
  head->path = grpc_health::kCheckPath;
  head->headers.add("host", authority_);
  head->headers.add("content-type", "application/grpc");
  // gRPC servers refuse a call without it (it says the client understands trailers).
  head->headers.add("te", "trailers");
  head->headers.add("user-agent", kUserAgent);
  return head;
}

bool GrpcHealthChecker::healthyResponse(const http::ResponseHead& head,
                                        const http::HeaderMap* trailers,
                                        std::string_view body) const {
  if (head.status != 200) return false;
  // In the trailers; in the head of a trailers-only response (an error, without a message).
  const http::HeaderMap::Entry* status =
      trailers != nullptr ? trailers->get("grpc-status") : head.headers.get("grpc-status");
  if (status == nullptr || status->value != "0") return false;
  auto message = grpc_health::Unframe(body);
  if (!message.ok()) return false;
  auto serving = grpc_health::DecodeResponse(*message);
  return serving.ok() && *serving == grpc_health::kServing;
}

// ---------------------------------------------------------------------------------------------
// TCP

class TcpHealthChecker::TcpSession : public HealthCheckerImplBase::Session,
                                     public network::ConnectionCallbacks,
                                     public network::ReadFilter {
 public:
  TcpSession(TcpHealthChecker& checker, HostSharedPtr host)
      : Session(checker, std::move(host)), checker_(checker) {}
  ~TcpSession() override { dropConnection(/*now=*/true); }

 private:
  void startCheck() override {
    // A connection of the previous check may still be flushing its close: it is not ours any
    // more.
    dropConnection();
    received_.clear();
    const Cluster& cluster = parent_.cluster();
    connection_ = network::CreateClientConnection(dispatcher(), host_->address(),
                                                  cluster.transportSocketFactory());
    connection_->setBufferLimits(cluster.bufferLimit());
    connection_->addConnectionCallbacks(*this);
    connection_->addReadFilter(std::make_unique<network::ForwardingReadFilter>(*this));
    connection_->connect();
  }

  void abandonCheck() override { dropConnection(); }

  // `now`: not from inside one of the connection's events (see HttpSession).
  void dropConnection(bool now = false) {
    if (connection_ == nullptr) return;
    if (connection_->state() != network::ConnectionState::kClosed) {
      connection_->removeConnectionCallbacks(*this);
      connection_->close(network::CloseType::kNoFlush);
    }
    if (now) {
      connection_.reset();
    } else {
      dispatcher().deferredDelete(std::move(connection_));
    }
  }

  // The check passed: the connection closes (what was sent still goes out first).
  void pass() {
    succeed();
    if (connection_ != nullptr) connection_->close(network::CloseType::kFlushWrite);
  }

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (connection_ == nullptr) return;
    if (event == network::ConnectionEvent::kConnected) {
      if (!checking()) {
        dropConnection();
        return;
      }
      if (!checker_.send_.empty()) {
        Buffer data;
        data.add(checker_.send_);
        connection_->write(data, false);
      }
      if (checker_.receive_.empty()) pass();
      return;
    }
    dispatcher().deferredDelete(std::move(connection_));
    // Refused, a failed handshake, or closed before what was expected came.
    fail(CheckFailure::kNetwork);
  }

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool) override {
    if (!checking()) {
      data.clear();
      return network::FilterStatus::kStopIteration;
    }
    received_ += data.toString();
    data.clear();
    const std::string& want = checker_.receive_;
    if (received_.find(want) != std::string::npos) {
      pass();
      return network::FilterStatus::kStopIteration;
    }
    // Only a tail shorter than what is wanted can still be the start of a match.
    if (received_.size() >= want.size()) {
      received_.erase(0, received_.size() - want.size() + (want.empty() ? 0 : 1));
    }
    return network::FilterStatus::kStopIteration;
  }

  TcpHealthChecker& checker_;
  network::ConnectionPtr connection_;
  std::string received_;
};

TcpHealthChecker::TcpHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                                   event::Dispatcher& dispatcher, stats::Store& store)
    : HealthCheckerImplBase(cluster, config, dispatcher, store),
      send_(config.tcp_health_check().send()),
      receive_(config.tcp_health_check().receive()) {}

std::unique_ptr<HealthCheckerImplBase::Session> TcpHealthChecker::createSession(
    HostSharedPtr host) {
  return std::make_unique<TcpSession>(*this, std::move(host));
}

// ---------------------------------------------------------------------------------------------

HealthCheckerPtr CreateHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                                     event::Dispatcher& dispatcher, stats::Store& store) {
  switch (config.health_checker_case()) {
    case config::v1::HealthCheck::kHttpHealthCheck:
      return std::make_unique<HttpHealthChecker>(cluster, config, dispatcher, store);
    case config::v1::HealthCheck::kGrpcHealthCheck:
      return std::make_unique<GrpcHealthChecker>(cluster, config, dispatcher, store);
    case config::v1::HealthCheck::kTcpHealthCheck:
      return std::make_unique<TcpHealthChecker>(cluster, config, dispatcher, store);
    case config::v1::HealthCheck::HEALTH_CHECKER_NOT_SET:
      break;
  }
  return nullptr;  // validation refuses it
}

HealthCheckers::HealthCheckers(ClusterManager& manager, event::Dispatcher& dispatcher,
                               stats::Store& store) {
  for (const auto& c : manager.clusters()) {
    // Validation allows at most one per cluster.
    if (c->healthChecks().empty()) continue;
    if (auto checker = CreateHealthChecker(*c, c->healthChecks().front(), dispatcher, store)) {
      checkers_.push_back(std::move(checker));
    }
  }
}

void HealthCheckers::start() {
  for (auto& c : checkers_) c->start();
}

}  // namespace sluice::upstream
