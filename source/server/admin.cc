#include "source/server/admin.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "re2/re2.h"
#include "source/common/json_string.h"
#include "source/common/logging.h"
#include "source/http/http1/parser.h"
#include "source/network/connection_impl.h"
#include "source/network/listener_impl.h"
#include "source/network/socket.h"
#include "source/network/transport_socket.h"

namespace sluice::server {

namespace {

// Debian's abseil has its own string_view: views cross over through this.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Sha256(std::string_view s) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(s.data()), s.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view MethodsAllowed(Admin::Methods methods) {
  switch (methods) {
    case Admin::Methods::kRead:
      return "GET, HEAD";
    case Admin::Methods::kChange:
      return "POST";
    case Admin::Methods::kReadAndChange:
      return "GET, HEAD, POST";
  }
  return "";
}

}  // namespace

const std::string* AdminRequest::param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

AdminResponse AdminResponse::Text(uint16_t status, std::string body) {
  AdminResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

AdminResponse AdminResponse::Json(std::string body) {
  AdminResponse r;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

std::optional<std::string> DecodeQueryComponent(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    auto name = DecodeQueryComponent(part.substr(0, eq));
    auto value = DecodeQueryComponent(eq == std::string_view::npos ? std::string_view()
                                                                   : part.substr(eq + 1));
    if (!name.has_value() || !value.has_value()) return std::nullopt;
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

// One admin connection: reads one request, answers it, closes.
class Admin::AdminConnection : public network::ReadFilter,
                               public network::ConnectionCallbacks,
                               public event::DeferredDeletable {
 public:
  AdminConnection(Admin& admin, network::ConnectionPtr connection, Source source)
      : admin_(admin), connection_(std::move(connection)), source_(source) {
    connection_->addConnectionCallbacks(*this);
    timer_ = admin_.dispatcher_.createTimer([this] {
      // Too slow: tell the client (nginx and Envoy answer 408 too), then close.
      respond(AdminResponse::Text(408, "request timeout: the request must arrive within " +
                                           std::to_string(kRequestTimeout.count() / 1000) + "s\n"),
              /*head_only=*/false);
    });
    timer_->enableTimer(kRequestTimeout);
  }
  ~AdminConnection() override { connection_->removeConnectionCallbacks(*this); }

  network::Connection& connection() { return *connection_; }
  Source source() const { return source_; }
  std::list<std::unique_ptr<AdminConnection>>::iterator position;

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool end_stream) override {
    if (responded_) {
      data.clear();
      return network::FilterStatus::kStopIteration;
    }
    input_.move(data);
    process(end_stream);
    return network::FilterStatus::kStopIteration;
  }
  void onEvent(network::ConnectionEvent event) override {
    if (event != network::ConnectionEvent::kConnected) admin_.remove(*this);
  }

 private:
  void process(bool end_stream) {
    if (!head_done_) {
      http::http1::Limits limits;
      limits.max_request_line = kMaxRequestLine;
      limits.max_header_bytes = kMaxRequestHead;
      limits.max_headers = 64;
      switch (scanner_.scan(input_, limits, /*is_request=*/true)) {
        case http::http1::HeadScanner::Result::kNeedMore:
          if (end_stream) close();
          return;
        case http::http1::HeadScanner::Result::kRequestLineTooLong:
          return fail(414, "request line too long");
        case http::http1::HeadScanner::Result::kHeadTooLarge:
          return fail(431, absl::StrCat("request head larger than ", kMaxRequestHead, " bytes"));
        case http::http1::HeadScanner::Result::kBadLineEnding:
          return fail(400, "bad line ending (lines end with CRLF)");
        case http::http1::HeadScanner::Result::kComplete:
          break;
      }
      const size_t length = scanner_.headLength();
      auto storage = std::make_unique<char[]>(length);
      input_.copyOut(0, length, storage.get());
      input_.drain(length);
      if (auto error = http::http1::ParseRequestHead(std::move(storage), length, limits, head_);
          error.has_value()) {
        return fail(error->status, error->reason);
      }
      if (auto error = http::http1::RequestFraming(head_, framing_); error.has_value()) {
        return fail(error->status, error->reason);
      }
      head_done_ = true;
      using Kind = http::http1::BodyFraming::Kind;
      if (framing_.kind == Kind::kContentLength && framing_.content_length > kMaxRequestBody) {
        return fail(413, absl::StrCat("request body larger than ", kMaxRequestBody,
                                      " bytes (admin parameters go in the query string)"));
      }
      const bool has_body = framing_.kind == Kind::kChunked ||
                            (framing_.kind == Kind::kContentLength && framing_.content_length > 0);
      const auto* expect = head_.headers.get("expect");
      if (has_body && expect != nullptr &&
          absl::EqualsIgnoreCase(A(expect->value), "100-continue")) {
        Buffer out;
        out.add("HTTP/1.1 100 Continue\r\n\r\n");
        connection_->write(out, false);
      }
    }
    // The body: read (so that closing does not reset the answer away) and ignored.
    using Kind = http::http1::BodyFraming::Kind;
    if (framing_.kind == Kind::kContentLength) {
      const size_t take = std::min<uint64_t>(input_.length(), framing_.content_length - body_);
      input_.drain(take);
      body_ += take;
      if (body_ < framing_.content_length) {
        if (end_stream) close();
        return;
      }
    } else if (framing_.kind == Kind::kChunked) {
      Buffer discard;
      http::http1::Limits limits;
      const auto result = chunked_.decode(input_, discard, limits);
      body_ += discard.length();
      if (result == http::http1::ChunkedDecoder::Result::kError) {
        return fail(chunked_.error().status, chunked_.error().reason);
      }
      if (body_ > kMaxRequestBody) {
        return fail(413, absl::StrCat("request body larger than ", kMaxRequestBody, " bytes"));
      }
      if (result == http::http1::ChunkedDecoder::Result::kNeedMore) {
        if (end_stream) close();
        return;
      }
    }
    const auto* authorization = head_.headers.get("authorization");
    AdminResponse response =
        admin_.handle(head_.method, head_.path,
                      authorization != nullptr ? authorization->value : std::string_view(),
                      head_.headers.count("authorization"), source_);
    SLUICE_LOG(kDebug, "admin%s: %s %s -> %d", source_ == kProbe ? " (probe listener)" : "",
               head_.method, log::EscapeUntrusted(head_.path, 256), response.status);
    respond(std::move(response), head_.method == "HEAD");
  }

  void fail(uint16_t status, std::string_view reason) {
    respond(AdminResponse::Text(status, absl::StrCat(A(reason), "\n")), /*head_only=*/false);
  }

  void respond(AdminResponse response, bool head_only) {
    if (responded_) return;
    responded_ = true;
    timer_->disableTimer();
    std::string reason(http::http1::ReasonPhrase(response.status));
    std::string out = absl::StrCat(
        "HTTP/1.1 ", response.status, " ", reason, "\r\nContent-Type: ", response.content_type,
        "\r\nContent-Length: ", response.body.size(),
        "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff");
    for (const auto& [name, value] : response.headers) {
      absl::StrAppend(&out, "\r\n", name, ": ", value);
    }
    absl::StrAppend(&out, "\r\nConnection: close\r\n\r\n");
    if (!head_only) out += response.body;
    Buffer buffer;
    buffer.add(out);
    connection_->write(buffer, false);
    connection_->close(network::CloseType::kFlushWrite);
    if (response.after) admin_.dispatcher_.post(std::move(response.after));
  }

  void close() {
    responded_ = true;
    connection_->close(network::CloseType::kNoFlush);
  }

  Admin& admin_;
  network::ConnectionPtr connection_;
  const Source source_;
  event::TimerPtr timer_;
  Buffer input_;
  http::http1::HeadScanner scanner_;
  http::RequestHead head_;
  http::http1::BodyFraming framing_;
  http::http1::ChunkedDecoder chunked_;
  uint64_t body_ = 0;
  bool head_done_ = false;
  bool responded_ = false;
};

Admin::Admin(event::Dispatcher& dispatcher, stats::Store& store)
    : dispatcher_(dispatcher), store_(store) {
  addBuiltinEndpoints();
}

Admin::~Admin() { stop(); }

void Admin::addEndpoint(Endpoint endpoint) { endpoints_.push_back(std::move(endpoint)); }

std::string_view Admin::stateName(State state) const {
  if (health_check_failed_ && state == State::kLive) return "HEALTH_CHECK_FAILED";
  switch (state) {
    case State::kStarting:
      return "STARTING";
    case State::kLive:
      return "LIVE";
    case State::kDraining:
      return "DRAINING";
  }
  return "";
}

void Admin::setHealthCheckFailed(bool failed) {
  if (failed != health_check_failed_) {
    SLUICE_LOG(kInfo, failed ? "health check set to fail: /ready answers 503"
                             : "health check set to pass again");
  }
  health_check_failed_ = failed;
}

void Admin::addBuiltinEndpoints() {
  // A filter for the stats dumps: ?filter=REGEX (RE2, partial match on the stat's name).
  auto stats_filter = [](const AdminRequest& request, std::unique_ptr<RE2>& out,
                         AdminResponse& error) {
    const std::string* filter = request.param("filter");
    if (filter == nullptr) return true;
    RE2::Options options;
    options.set_log_errors(false);
    out = std::make_unique<RE2>(*filter, options);
    if (!out->ok()) {
      error = AdminResponse::Text(
          400, absl::StrCat("invalid filter regex ", json::Quote(*filter), ": ", out->error(),
                            " (RE2 syntax: https://github.com/google/re2/wiki/Syntax)\n"));
      return false;
    }
    return true;
  };
  addEndpoint({"/stats",
               Methods::kRead,
               {"format", "filter"},
               "the stats, sorted by name: `name value` lines; ?format=json; ?filter=REGEX "
               "keeps the names it matches (RE2, anywhere in the name)",
               [this, stats_filter](const AdminRequest& request) {
                 AdminResponse error;
                 std::unique_ptr<RE2> filter;
                 if (!stats_filter(request, filter, error)) return error;
                 const std::string* format = request.param("format");
                 if (format != nullptr && *format == "json") {
                   return AdminResponse::Json(store_.dumpJson(filter.get()));
                 }
                 if (format != nullptr && *format != "text") {
                   return AdminResponse::Text(400,
                                              absl::StrCat("unknown format ", json::Quote(*format),
                                                           ": text (the default) or json\n"));
                 }
                 return AdminResponse::Text(200, store_.dumpText(filter.get()));
               }});
  addEndpoint({"/stats/prometheus",
               Methods::kRead,
               {"filter"},
               "the stats in Prometheus' text exposition format (0.0.4); ?filter=REGEX as for "
               "/stats (on the stat's /stats name)",
               [this, stats_filter](const AdminRequest& request) {
                 AdminResponse error;
                 std::unique_ptr<RE2> filter;
                 if (!stats_filter(request, filter, error)) return error;
                 AdminResponse r = AdminResponse::Text(200, store_.dumpPrometheus(filter.get()));
                 r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                 return r;
               }});
  addEndpoint({"/ready",
               Methods::kRead,
               {},
               "200 LIVE while the workers serve; 503 before (STARTING), while draining "
               "(DRAINING) and after POST /healthcheck/fail (HEALTH_CHECK_FAILED)",
               [this](const AdminRequest& request) {
                 const bool ready = request.state == State::kLive && !health_check_failed_;
                 return AdminResponse::Text(ready ? 200 : 503,
                                            absl::StrCat(A(stateName(request.state)), "\n"));
               }});
  // Liveness, apart from readiness: a draining or health-check-failed proxy is alive, and a
  // liveness probe that failed on those would have it restarted in the middle of its drain.
  // Answered from the main loop, so a wedged loop fails it (no answer).
  addEndpoint({"/live",
               Methods::kRead,
               {},
               "200 and the state (LIVE, STARTING, DRAINING, HEALTH_CHECK_FAILED) while the "
               "process runs its main loop, whatever the state",
               [this](const AdminRequest& request) {
                 return AdminResponse::Text(200, absl::StrCat(A(stateName(request.state)), "\n"));
               }});
  addEndpoint({"/healthcheck/fail",
               Methods::kChange,
               {},
               "make /ready answer 503 (take this proxy out of a load balancer's rotation); "
               "serving goes on",
               [this](const AdminRequest&) {
                 setHealthCheckFailed(true);
                 return AdminResponse::Text(200, "OK\n");
               }});
  addEndpoint({"/healthcheck/ok",
               Methods::kChange,
               {},
               "undo /healthcheck/fail",
               [this](const AdminRequest&) {
                 setHealthCheckFailed(false);
                 return AdminResponse::Text(200, "OK\n");
               }});
  addEndpoint(
      {"/logging",
       Methods::kReadAndChange,
       {"level"},
       "GET: the log level; POST ?level=trace|debug|info|warn|error|off changes it at "
       "once, for every thread",
       [](const AdminRequest& request) {
         const std::string* level = request.param("level");
         const log::Level current = log::GetLevel();
         if (request.method != "POST") {
           if (level != nullptr) {
             AdminResponse r =
                 AdminResponse::Text(405, "changing the log level takes POST /logging?level=...\n");
             r.headers.emplace_back("Allow", "POST");
             return r;
           }
           return AdminResponse::Text(200, absl::StrCat("level: ", log::LevelName(current), "\n"));
         }
         log::Level parsed;
         if (level == nullptr || !log::ParseLevel(*level, &parsed)) {
           return AdminResponse::Text(
               400, absl::StrCat(level == nullptr ? "missing ?level="
                                                  : "unknown level " + json::Quote(*level),
                                 ": trace, debug, info, warn, error or off\n"));
         }
         // Written whatever the threshold (at the less verbose of the two levels, at
         // most error): the log says when and how its own verbosity changed.
         if (current != log::Level::kOff || parsed != log::Level::kOff) {
           const log::Level say = std::min(std::max(current, parsed), log::Level::kError);
           log::Write(say, __FILE__, __LINE__,
                      absl::StrCat("admin: log level changed from ", log::LevelName(current),
                                   " to ", log::LevelName(parsed)));
         }
         log::SetLevel(parsed);
         return AdminResponse::Text(200, absl::StrCat("level: ", log::LevelName(parsed), " (was ",
                                                      log::LevelName(current), ")\n"));
       }});
  addEndpoint({"/help", Methods::kRead, {}, "this list", [this](const AdminRequest&) {
                 AdminResponse r = notFound("/help");
                 r.status = 200;
                 return r;
               }});
}

AdminResponse Admin::notFound(std::string_view path) const {
  std::string body;
  if (path != "/help") {
    body = absl::StrCat("no endpoint ", json::Quote(path), "; the endpoints are:\n");
  } else {
    body = "sluice admin endpoints:\n";
  }
  for (const Endpoint& e : endpoints_) {
    absl::StrAppend(&body, "  ", e.methods == Methods::kRead ? "GET " : "",
                    e.methods == Methods::kChange ? "POST " : "",
                    e.methods == Methods::kReadAndChange ? "GET|POST " : "", e.path, ": ", e.help,
                    "\n");
  }
  return AdminResponse::Text(404, std::move(body));
}

bool Admin::authorized(std::string_view authorization, size_t count) const {
  if (token_digest_.empty()) return true;
  if (count != 1) return false;
  // "Bearer" is case-insensitive (RFC 9110 11.1), followed by one or more spaces.
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(A(authorization.substr(0, kScheme.size())), A(kScheme)) ||
      authorization[kScheme.size()] != ' ') {
    return false;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  // Digests of equal length compared in constant time: neither the token's bytes nor its
  // length show in the time taken.
  const std::string digest = Sha256(token);
  return CRYPTO_memcmp(digest.data(), token_digest_.data(), digest.size()) == 0;
}

AdminResponse Admin::handle(std::string_view method, std::string_view target,
                            std::string_view authorization, size_t authorization_count,
                            Source source) {
  const bool probe = source == kProbe;
  if (!probe && !authorized(authorization, authorization_count)) {
    AdminResponse r = AdminResponse::Text(
        401, "unauthorized: this admin endpoint needs `Authorization: Bearer <token>`\n");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice admin\"");
    return r;
  }
  // Absolute-form ("http://host/path"): the path is what follows the authority.
  if (!target.empty() && target.front() != '/') {
    const size_t scheme = target.find("://");
    if (scheme == std::string_view::npos) return AdminResponse::Text(404, "no such endpoint\n");
    const size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  const size_t q = target.find('?');
  AdminRequest request;
  request.method = std::string(method);
  request.path = std::string(target.substr(0, q));
  request.state = handed_over_[source] ? handed_over_state_ : state_;
  if (q != std::string_view::npos) {
    auto params = ParseQuery(target.substr(q + 1));
    if (!params.has_value()) {
      return AdminResponse::Text(400,
                                 "malformed query string (a % not followed by two hex "
                                 "digits)\n");
    }
    request.params = std::move(*params);
  }
  const Endpoint* endpoint = nullptr;
  for (const Endpoint& e : endpoints_) {
    if (e.path == request.path) {
      endpoint = &e;
      break;
    }
  }
  if (probe) {
    // A fixed list, not a flag on endpoints: nothing added to the admin later can leak here.
    // Nor does a 404 list the endpoints (the admin's does, to those holding the token).
    bool served = false;
    for (std::string_view p : kProbePaths) served = served || request.path == p;
    if (!served || endpoint == nullptr) {
      return AdminResponse::Text(404, "not found: this address serves only /ready and /live\n");
    }
  }
  if (endpoint == nullptr) return notFound(request.path);
  const bool read = method == "GET" || method == "HEAD";
  const bool allowed = (read && endpoint->methods != Methods::kChange) ||
                       (method == "POST" && endpoint->methods != Methods::kRead);
  if (!allowed) {
    AdminResponse r = AdminResponse::Text(
        405, absl::StrCat(request.path, " takes ", A(MethodsAllowed(endpoint->methods)),
                          endpoint->methods == Methods::kChange
                              ? " (it changes the proxy's state: a GET must not)"
                              : "",
                          "\n"));
    r.headers.emplace_back("Allow", std::string(MethodsAllowed(endpoint->methods)));
    return r;
  }
  for (const auto& [name, value] : request.params) {
    bool known = false;
    for (const std::string& p : endpoint->params) known = known || p == name;
    if (!known) {
      return AdminResponse::Text(
          400, absl::StrCat(
                   "unknown query parameter ", json::Quote(name), " for ", request.path,
                   endpoint->params.empty()
                       ? std::string(" (it takes none)")
                       : absl::StrCat(" (it takes: ", absl::StrJoin(endpoint->params, ", "), ")"),
                   "\n"));
    }
  }
  return endpoint->handler(request);
}

absl::StatusOr<std::optional<network::Address>> Admin::start(const Settings& settings) {
  // Owned from here on (closed by stop()), whatever this returns.
  fd_ = settings.inherited_fd;
  probe_fd_ = settings.inherited_probe_fd;
  if (!settings.bearer_token.empty()) token_digest_ = Sha256(settings.bearer_token);
  std::optional<network::Address> bound;
  if (settings.address.has_value()) {
    if (fd_ < 0) {
      auto fd = network::CreateListenSocket(*settings.address,
                                            network::ListenOptions{.reuse_port = false});
      if (!fd.ok()) return fd.status();
      fd_ = *fd;
    }
    auto local = network::Address::localOf(fd_);
    if (!local.ok()) return local.status();
    address_ = *local;
    bound = address_;
    if (!address_.isLoopback() && token_digest_.empty()) {
      SLUICE_LOG(kWarn,
                 "admin endpoint on %s is exposed beyond this host (not a loopback address) with "
                 "no authentication (allow_unauthenticated_remote): anyone who can reach that "
                 "address can read the config and every stat, and drain or stop the proxy. Bind "
                 "it to 127.0.0.1 or ::1, set admin.bearer_token, or firewall the port.",
                 address_.asString());
    }
    listener_ = std::make_unique<network::TcpListenerImpl>(dispatcher_, fd_, acceptors_[kTcp], 16);
    if (settings.inherited_fd < 0) listener_->enable();
  }
  if (settings.probe_address.has_value()) {
    if (probe_fd_ < 0) {
      auto fd = network::CreateListenSocket(*settings.probe_address,
                                            network::ListenOptions{.reuse_port = false});
      if (!fd.ok()) {
        return absl::Status(fd.status().code(),
                            absl::StrCat("probe_address: ", fd.status().message()));
      }
      probe_fd_ = *fd;
    }
    auto local = network::Address::localOf(probe_fd_);
    if (!local.ok()) return local.status();
    probe_address_ = *local;
    probe_listener_ =
        std::make_unique<network::TcpListenerImpl>(dispatcher_, probe_fd_, acceptors_[kProbe], 16);
    if (settings.inherited_probe_fd < 0) probe_listener_->enable();
  }
  if (!settings.unix_path.empty()) {
    auto unix_socket =
        settings.take_over_unix_path
            ? network::UnixListenSocket::ListenBeside(settings.unix_path, settings.unix_mode,
                                                      /*backlog=*/16)
            : network::UnixListenSocket::Listen(settings.unix_path, settings.unix_mode,
                                                /*backlog=*/16);
    if (!unix_socket.ok()) return unix_socket.status();
    unix_socket_ = std::move(*unix_socket);
    unix_listener_ = std::make_unique<network::TcpListenerImpl>(dispatcher_, unix_socket_->fd(),
                                                                acceptors_[kUnix], 16);
    // Beside the path, nobody connects to it until the rename.
    unix_listener_->enable();
  }
  return bound;
}

absl::Status Admin::takeOver() {
  if (unix_socket_) {
    if (auto s = unix_socket_->takeOverPath(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("admin unix socket: ", s.message()));
    }
  }
  // enable() on a listener that accepts already changes nothing.
  if (listener_) listener_->enable();
  if (probe_listener_) probe_listener_->enable();
  return absl::OkStatus();
}

std::vector<std::pair<std::string, int>> Admin::listeningSockets() const {
  std::vector<std::pair<std::string, int>> out;
  if (listener_ && fd_ >= 0) out.emplace_back(address_.asString(), fd_);
  if (probe_listener_ && probe_fd_ >= 0) out.emplace_back(probe_address_->asString(), probe_fd_);
  return out;
}

size_t Admin::handOver(const std::vector<std::string>& addresses, bool unix_path) {
  auto named = [&](const std::string& address) {
    return std::find(addresses.begin(), addresses.end(), address) != addresses.end();
  };
  // The state their requests were sent in: the successor serves the address from now on.
  handed_over_state_ = state_;
  size_t stopped = 0;
  // Its copy closed, the socket lives on in the successor: nothing queued on it is lost.
  if (listener_ && fd_ >= 0 && named(address_.asString())) {
    listener_.reset();
    ::close(fd_);
    fd_ = -1;
    handed_over_[kTcp] = true;
    ++stopped;
  }
  if (probe_listener_ && probe_fd_ >= 0 && named(probe_address_->asString())) {
    probe_listener_.reset();
    ::close(probe_fd_);
    probe_fd_ = -1;
    handed_over_[kProbe] = true;
    ++stopped;
  }
  // Nobody can connect to the unix socket any more (its path is the successor's): what is
  // still queued on it is accepted and answered as usual.
  if (unix_socket_ && unix_path) handed_over_[kUnix] = true;
  return stopped;
}

void Admin::stopAccepting() {
  listener_.reset();
  unix_listener_.reset();
  probe_listener_.reset();
}

void Admin::notifyWhenIdle(std::function<void()> idle) {
  on_idle_ = std::move(idle);
  if (connections_.empty()) dispatcher_.post(std::exchange(on_idle_, nullptr));
}

void Admin::stop() {
  on_idle_ = nullptr;
  listener_.reset();
  unix_listener_.reset();
  probe_listener_.reset();
  std::vector<network::Connection*> all;
  for (auto& c : connections_) all.push_back(&c->connection());
  for (auto* c : all) c->close(network::CloseType::kNoFlush);
  connections_.clear();
  probe_connections_ = 0;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (probe_fd_ >= 0) {
    ::close(probe_fd_);
    probe_fd_ = -1;
  }
  unix_socket_.reset();
}

void Admin::accept(int fd, const network::Address& remote, Source source) {
  auto connection = std::make_unique<network::ConnectionImpl>(
      dispatcher_, fd, nullptr, remote, source == kProbe ? *probe_address_ : address_);
  auto* raw = connection.get();
  auto active = std::make_unique<AdminConnection>(*this, std::move(connection), source);
  if (source == kProbe) ++probe_connections_;
  AdminConnection& ref = *active;
  connections_.push_front(std::move(active));
  ref.position = connections_.begin();
  // The connection owns its read filters; the AdminConnection is owned here.
  raw->addReadFilter(std::make_unique<network::ForwardingReadFilter>(ref));
  raw->initializeReadFilters();
}

void Admin::remove(AdminConnection& c) {
  std::unique_ptr<AdminConnection> owned = std::move(*c.position);
  connections_.erase(c.position);
  if (owned->source() == kProbe) --probe_connections_;
  dispatcher_.deferredDelete(std::move(owned));
  // A listener paused at kMaxConnections takes connections again.
  if (listener_ && listener_->paused()) listener_->enable();
  if (unix_listener_ && unix_listener_->paused()) unix_listener_->enable();
  if (probe_listener_ && probe_listener_->paused()) probe_listener_->enable();
  if (connections_.empty() && on_idle_) dispatcher_.post(std::exchange(on_idle_, nullptr));
}

}  // namespace sluice::server
