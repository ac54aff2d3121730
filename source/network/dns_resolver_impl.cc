#include "source/network/dns_resolver_impl.h"

#include <ares.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "source/common/logging.h"

namespace sluice::network {
namespace {

// c-ares: 2 s per try, 2 tries per server. A lookup against servers that do not answer ends in
// seconds, not minutes (its defaults: 5 s and 4 tries).
constexpr int kTimeoutMs = 2000;
constexpr int kTries = 2;

class DnsResolverImpl;

class Query : public DnsQuery {
 public:
  Query(DnsResolverImpl& resolver, uint16_t port, DnsLookupFamily family,
        DnsResolver::Callback callback)
      : resolver(resolver), port(port), family(family), callback(std::move(callback)) {}
  void cancel() override { cancelled = true; }

  DnsResolverImpl& resolver;
  const uint16_t port;
  const DnsLookupFamily family;
  DnsResolver::Callback callback;
  bool cancelled = false;
};

class DnsResolverImpl : public DnsResolver {
 public:
  explicit DnsResolverImpl(event::Dispatcher& dispatcher)
      : dispatcher_(dispatcher), timer_(dispatcher.createTimer([this] { onTimer(); })) {}

  ~DnsResolverImpl() override {
    destroying_ = true;
    // Stop watching c-ares's sockets while they are still open (it closes them next).
    events_.clear();
    retired_.clear();
    // Ends every query in progress (their callbacks see ARES_EDESTRUCTION and free them).
    if (channel_ != nullptr) ares_destroy(channel_);
    timer_->disableTimer();
  }

  absl::Status init(const std::vector<Address>& servers) {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
    ares_options options{};
    options.sock_state_cb = &DnsResolverImpl::OnSocketState;
    options.sock_state_cb_data = this;
    options.timeout = kTimeoutMs;
    options.tries = kTries;
    const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    if (int rc = ares_init_options(&channel_, &options, mask); rc != ARES_SUCCESS) {
      channel_ = nullptr;
      return absl::InternalError(absl::StrCat("c-ares: ", ares_strerror(rc)));
    }
    if (!servers.empty()) {
      std::string csv;
      for (const Address& a : servers) {
        if (!csv.empty()) csv.append(",");
        csv.append(a.asString());  // "1.2.3.4:53", "[::1]:53": the form c-ares reads
      }
      if (int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS) {
        return absl::InvalidArgumentError(
            absl::StrCat("DNS servers \"", csv, "\": ", ares_strerror(rc)));
      }
    }
    return absl::OkStatus();
  }

  DnsQuery* resolve(const std::string& name, uint16_t port, DnsLookupFamily family,
                    Callback callback) override {
    auto* query = new Query(*this, port, family, std::move(callback));
    ares_addrinfo_hints hints{};
    hints.ai_family = family == DnsLookupFamily::kV4Only   ? AF_INET
                      : family == DnsLookupFamily::kV6Only ? AF_INET6
                                                           : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // No RFC 6724 sorting (it probes routes with connect()); the caller sorts.
    hints.ai_flags = ARES_AI_NOSORT;
    in_resolve_ = true;
    ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, &DnsResolverImpl::OnAddrInfo, query);
    in_resolve_ = false;
    updateTimer();
    return query;
  }

 private:
  static void OnSocketState(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<DnsResolverImpl*>(data)->onSocketState(fd, readable != 0, writable != 0);
  }

  void onSocketState(ares_socket_t fd, bool readable, bool writable) {
    if (destroying_) return;
    auto it = events_.find(fd);
    if (!readable && !writable) {
      if (it != events_.end()) {
        // c-ares closes the socket: stop watching it. We may be inside this event's own
        // callback, so the event object goes at the next call from the loop.
        it->second->setEnabled(0);
        retired_.push_back(std::move(it->second));
        events_.erase(it);
      }
      return;
    }
    uint32_t mask = 0;
    if (readable) mask |= event::kRead;
    if (writable) mask |= event::kWrite;
    if (it != events_.end()) {
      it->second->setEnabled(mask);
      return;
    }
    events_[fd] = dispatcher_.createFileEvent(
        fd, [this, fd](uint32_t ready) { onSocketReady(fd, ready); }, mask);
  }

  void onSocketReady(ares_socket_t fd, uint32_t ready) {
    retired_.clear();
    ares_process_fd(channel_, (ready & event::kRead) != 0 ? fd : ARES_SOCKET_BAD,
                    (ready & event::kWrite) != 0 ? fd : ARES_SOCKET_BAD);
    updateTimer();
  }

  void onTimer() {
    retired_.clear();
    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retransmits, timeouts
    updateTimer();
  }

  void updateTimer() {
    timeval tv{};
    if (ares_timeout(channel_, nullptr, &tv) != nullptr) {
      timer_->enableTimer(std::chrono::milliseconds(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000));
    } else {
      timer_->disableTimer();
    }
  }

  static void OnAddrInfo(void* arg, int status, int, ares_addrinfo* info) {
    std::unique_ptr<Query> query(static_cast<Query*>(arg));
    absl::StatusOr<DnsResponse> result = ToResult(*query, status, info);
    if (info != nullptr) ares_freeaddrinfo(info);
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
    DnsResolverImpl& self = query->resolver;
    if (self.in_resolve_) {
      // Answered at once (an IP literal, /etc/hosts, a bad name): promised to be asynchronous.
      Query* q = query.release();
      self.dispatcher_.post([q, result = std::move(result)]() mutable {
        std::unique_ptr<Query> owned(q);
        if (!owned->cancelled) owned->callback(std::move(result));
      });
      return;
    }
    if (!query->cancelled) query->callback(std::move(result));
  }

  static absl::StatusOr<DnsResponse> ToResult(const Query& query, int status,
                                              const ares_addrinfo* info) {
    if (status != ARES_SUCCESS) {
      const std::string why = ares_strerror(status);
      if (status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_ENONAME) {
        return absl::NotFoundError(why);
      }
      return absl::UnavailableError(why);
    }
    DnsResponse response;
    std::vector<Address> v4, v6;
    int min_ttl = -1;
    for (const ares_addrinfo_node* n = info != nullptr ? info->nodes : nullptr; n != nullptr;
         n = n->ai_next) {
      if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
      Address a = Address::fromSockaddr(n->ai_addr, n->ai_addrlen).withPort(query.port);
      (n->ai_family == AF_INET ? v4 : v6).push_back(a);
      if (n->ai_ttl > 0 && (min_ttl < 0 || n->ai_ttl < min_ttl)) min_ttl = n->ai_ttl;
    }
    switch (query.family) {
      case DnsLookupFamily::kV4Preferred:
        response.addresses = v4.empty() ? std::move(v6) : std::move(v4);
        break;
      case DnsLookupFamily::kV4Only:
        response.addresses = std::move(v4);
        break;
      case DnsLookupFamily::kV6Only:
        response.addresses = std::move(v6);
        break;
      case DnsLookupFamily::kAll:
        response.addresses = std::move(v4);
        response.addresses.insert(response.addresses.end(), v6.begin(), v6.end());
        break;
    }
    if (response.addresses.empty()) return absl::NotFoundError("no address of the family");
    auto by_text = [](const Address& a, const Address& b) { return a.asString() < b.asString(); };
    auto same = [](const Address& a, const Address& b) { return a.asString() == b.asString(); };
    std::sort(response.addresses.begin(), response.addresses.end(), by_text);
    response.addresses.erase(
        std::unique(response.addresses.begin(), response.addresses.end(), same),
        response.addresses.end());
    response.ttl = std::chrono::seconds(std::max(min_ttl, 0));
    return response;
  }

  event::Dispatcher& dispatcher_;
  event::TimerPtr timer_;
  ares_channel channel_ = nullptr;
  absl::flat_hash_map<ares_socket_t, event::FileEventPtr> events_;
  std::vector<event::FileEventPtr> retired_;
  bool in_resolve_ = false;
  bool destroying_ = false;
};

}  // namespace

absl::StatusOr<DnsResolverPtr> CreateDnsResolver(event::Dispatcher& dispatcher,
                                                 const std::vector<Address>& servers) {
  auto resolver = std::make_unique<DnsResolverImpl>(dispatcher);
  if (auto status = resolver->init(servers); !status.ok()) return status;
  return resolver;
}

}  // namespace sluice::network
