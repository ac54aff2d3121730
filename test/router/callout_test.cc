// CalloutClient against a real origin on loopback (a thread with blocking sockets): a whole
// response, a counted request body, keep-alive reuse, the timeout, a refused connection, a
// reset, a body over the bound, withdrawal (no callback, connection closed), an unknown
// cluster, and no completion inside send().

#include "source/router/callout_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/http/client_codecs.h"
#include "source/upstream/cluster.h"
#include "test/network/loopback.h"

namespace sluice::router {
namespace {

using http::CalloutCallbacks;
using http::CalloutOptions;
using http::CalloutOutcome;
using http::CalloutPtr;
using http::CalloutRequest;
using http::CalloutResponse;

// A loopback HTTP/1.1 origin. By path: /ok answers 200 with a body and a field, keeping the
// connection; /hang never answers; /close closes without answering; /big answers 4000 bytes.
// Records each request (head and body) and counts connections accepted and closed by the peer.
class Origin {
 public:
  Origin() {
    fd_ = network::test::ListenOnLoopback(16, port_);
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~Origin() {
    stop_ = true;
    thread_.join();
    for (auto& t : conns_) t.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  int accepted() const { return accepted_; }
  int peerClosed() const { return peer_closed_; }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepted_;
      conns_.emplace_back([this, c] { serve(c); });
    }
  }
  // Reads with a short poll so that the thread notices stop_.
  bool readSome(int c, std::string& in) {
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buf[4096];
      ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) return false;
      in.append(buf, n);
      return true;
    }
    return false;
  }
  void serve(int c) {
    std::string in;
    bool open = true;
    bool drop_next = false;
    while (open && !stop_) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        if (!readSome(c, in)) {
          open = false;
          break;
        }
      }
      if (!open) break;
      std::string head = in.substr(0, end + 4);
      in.erase(0, end + 4);
      size_t length = 0;
      for (std::string key : {"Content-Length: ", "content-length: "}) {
        if (auto at = head.find(key); at != std::string::npos) {
          length = std::stoul(head.substr(at + key.size()));
        }
      }
      while (in.size() < length && open) open = readSome(c, in);
      std::string body = in.substr(0, length);
      in.erase(0, length);
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(head + body);
      }
      const std::string path =
          head.substr(head.find(' ') + 1, head.find(' ', head.find(' ') + 1) - head.find(' ') - 1);
      std::string out;
      if (drop_next) break;  // closed as the request came: as at the end of a keep-alive timeout
      if (path == "/ok" || path == "/drop-next") {
        drop_next = path == "/drop-next";
        out = "HTTP/1.1 200 OK\r\nX-Origin: yes\r\nContent-Length: 5\r\n\r\nhello";
      } else if (path == "/big") {
        out = "HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n" + std::string(4000, 'b');
      } else if (path == "/garbage") {
        out = "NOT HTTP\r\n\r\n";
      } else if (path == "/close") {
        break;
      } else {  // /hang: wait for the peer to give up
        while (readSome(c, in)) {
        }
        break;
      }
      if (write(c, out.data(), out.size()) < 0) break;
    }
    if (!stop_) ++peer_closed_;
    close(c);
  }

  int fd_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;  // joined at the end (only the accept thread adds)
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::atomic<int> accepted_{0};
  std::atomic<int> peer_closed_{0};
};

struct Recorder : CalloutCallbacks {
  void onCalloutComplete(CalloutResponse& r) override {
    ++calls;
    outcome = r.outcome;
    status = r.status;
    body = r.body;
    if (const auto* e = r.headers.get("x-origin")) origin_field = std::string(e->value);
    if (then) then();
  }
  int calls = 0;
  std::optional<CalloutOutcome> outcome;
  uint16_t status = 0;
  std::string body;
  std::string origin_field;
  std::function<void()> then;
};

class CalloutTest : public ::testing::Test {
 protected:
  void build(uint16_t port) {
    config::v1::Bootstrap bootstrap;
    auto* c = bootstrap.add_clusters();
    c->set_name("auth");
    auto* ep = c->add_endpoints()->mutable_address();
    ep->set_address("127.0.0.1");
    ep->set_port(port);
    manager_ = std::move(
        *upstream::ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory));
    clusters_ = std::make_unique<upstream::WorkerClusters>(*manager_, 0);
    client_ = std::make_unique<CalloutClientImpl>(*dispatcher_, *clusters_);
  }
  void TearDown() override {
    if (clusters_) clusters_->releaseConnections();
  }
  void runUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    event::TimerPtr t;
    t = dispatcher_->createTimer([&] {
      if (done() || std::chrono::steady_clock::now() > deadline) {
        dispatcher_->exit();
      } else {
        t->enableTimer(std::chrono::milliseconds(1));
      }
    });
    t->enableTimer(std::chrono::milliseconds(0));
    dispatcher_->run();
    ASSERT_TRUE(done());
  }
  CalloutRequest get(std::string path) {
    CalloutRequest r;
    r.method = "GET";
    r.path = std::move(path);
    return r;
  }
  CalloutPtr send(CalloutRequest r, Recorder& rec, CalloutOptions options = {}) {
    auto c = client_->send("auth", std::move(r), options, rec);
    EXPECT_TRUE(c.ok()) << c.status();
    // Never inside send(): the caller holds no handle yet.
    EXPECT_EQ(0, rec.calls);
    return c.ok() ? std::move(*c) : nullptr;
  }

  stats::Store store_;
  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");
  std::unique_ptr<upstream::ClusterManager> manager_;
  std::unique_ptr<upstream::WorkerClusters> clusters_;
  std::unique_ptr<CalloutClientImpl> client_;
};

TEST_F(CalloutTest, WholeResponseAndConnectionBackToThePool) {
  Origin origin;
  build(origin.port());
  Recorder first;
  CalloutRequest r = get("/ok");
  r.authority = "auth.local";
  r.headers.add("x-user", "alice");
  r.headers.add("Transfer-Encoding", "chunked");  // the client's: dropped
  CalloutPtr c = send(std::move(r), first);
  runUntil([&] { return first.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kResponse, *first.outcome);
  EXPECT_EQ(200, first.status);
  EXPECT_EQ("hello", first.body);
  EXPECT_EQ("yes", first.origin_field);
  ASSERT_EQ(1u, origin.requests().size());
  const std::string req = origin.requests()[0];
  EXPECT_EQ(0u, req.find("GET /ok HTTP/1.1\r\n")) << req;
  EXPECT_NE(std::string::npos, req.find("Host: auth.local\r\n")) << req;
  EXPECT_NE(std::string::npos, req.find("x-user: alice\r\n")) << req;
  EXPECT_EQ(std::string::npos, req.find("chunked")) << req;

  // A POST with a counted body, on the same (kept-alive) connection.
  Recorder second;
  CalloutRequest p;
  p.method = "POST";
  p.path = "/ok";
  p.body = "payload";
  CalloutPtr c2 = send(std::move(p), second);
  runUntil([&] { return second.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kResponse, *second.outcome);
  ASSERT_EQ(2u, origin.requests().size());
  const std::string post = origin.requests()[1];
  EXPECT_NE(std::string::npos, post.find("Host: auth\r\n")) << post;  // the cluster's name
  EXPECT_NE(std::string::npos, post.find("Content-Length: 7\r\n\r\npayload")) << post;
  EXPECT_EQ(1, origin.accepted());
  EXPECT_EQ(2u, store_.counter("cluster.auth.upstream_rq_total").value());
  EXPECT_EQ(1u, store_.counter("cluster.auth.upstream_rq_reused").value());
}

TEST_F(CalloutTest, ACalloutFromACompletionReusesTheConnection) {
  Origin origin;
  build(origin.port());
  Recorder first, second;
  CalloutPtr c2;
  first.then = [&] { c2 = send(get("/ok"), second); };
  CalloutPtr c1 = send(get("/ok"), first);
  runUntil([&] { return second.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kResponse, *second.outcome);
  EXPECT_EQ(1, origin.accepted());
  dispatcher_->deferredDelete(std::move(c1));
}

TEST_F(CalloutTest, AReusedConnectionClosedUnderTheRequestIsRetriedOnce) {
  Origin origin;
  build(origin.port());
  Recorder first;
  CalloutPtr c1 = send(get("/drop-next"), first);
  runUntil([&] { return first.calls == 1; });
  // The kept-alive connection takes the next GET and closes without an answer: sent again on a
  // new connection.
  Recorder second;
  CalloutPtr c2 = send(get("/ok"), second);
  runUntil([&] { return second.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kResponse, *second.outcome);
  EXPECT_EQ(2, origin.accepted());
  EXPECT_EQ(1u, store_.counter("cluster.auth.upstream_rq_retry_stale_connection").value());
  // Not a POST: it may have had an effect.
  Recorder third, fourth;
  CalloutPtr c3 = send(get("/drop-next"), third);
  runUntil([&] { return third.calls == 1; });
  CalloutRequest post = get("/ok");
  post.method = "POST";
  CalloutPtr c4 = send(std::move(post), fourth);
  runUntil([&] { return fourth.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kReset, *fourth.outcome);
}

TEST_F(CalloutTest, TimeoutClosesTheConnection) {
  Origin origin;
  build(origin.port());
  Recorder rec;
  CalloutOptions o;
  o.timeout = std::chrono::milliseconds(50);
  CalloutPtr c = send(get("/hang"), rec, o);
  runUntil([&] { return rec.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kTimeout, *rec.outcome);
  EXPECT_EQ(0, rec.status);
  // The origin sees the connection go (it was mid-exchange: not reusable).
  runUntil([&] { return origin.peerClosed() == 1; });
}

TEST_F(CalloutTest, RefusedConnectionIsAConnectFailure) {
  uint16_t port;
  {
    Origin gone;  // a port that was just free: nothing listens there now
    port = gone.port();
  }
  build(port);
  Recorder rec;
  CalloutPtr c = send(get("/ok"), rec);
  runUntil([&] { return rec.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kConnectFailure, *rec.outcome);
  EXPECT_EQ(0, rec.status);
}

TEST_F(CalloutTest, CloseBeforeAResponseIsAReset) {
  Origin origin;
  build(origin.port());
  Recorder rec;
  CalloutPtr c = send(get("/close"), rec);
  runUntil([&] { return rec.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kReset, *rec.outcome);
}

TEST_F(CalloutTest, NotAnHttpResponseIsAProtocolError) {
  Origin origin;
  build(origin.port());
  Recorder rec;
  CalloutPtr c = send(get("/garbage"), rec);
  runUntil([&] { return rec.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kProtocolError, *rec.outcome);
  EXPECT_EQ(0, rec.status);
}

TEST_F(CalloutTest, BodyOverTheBoundIsAnOverflowAndIsNotKept) {
  Origin origin;
  build(origin.port());
  Recorder rec;
  CalloutOptions o;
  o.max_response_bytes = 1000;
  CalloutPtr c = send(get("/big"), rec, o);
  runUntil([&] { return rec.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kOverflow, *rec.outcome);
  EXPECT_EQ(200, rec.status);
  EXPECT_TRUE(rec.body.empty());
  // The same bound with room: the whole body.
  Recorder ok;
  o.max_response_bytes = 4000;
  CalloutPtr c2 = send(get("/big"), ok, o);
  runUntil([&] { return ok.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kResponse, *ok.outcome);
  EXPECT_EQ(4000u, ok.body.size());
}

TEST_F(CalloutTest, DestroyedCalloutIsQuietAndClosesItsConnection) {
  Origin origin;
  build(origin.port());
  Recorder rec;
  CalloutPtr c = send(get("/hang"), rec);
  runUntil([&] { return origin.requests().size() == 1; });
  c.reset();
  runUntil([&] { return origin.peerClosed() == 1; });
  EXPECT_EQ(0, rec.calls);
  // Withdrawn while still waiting for its connection: nothing reaches the origin.
  Recorder early;
  CalloutPtr c2 = send(get("/ok"), early);
  c2->cancel();
  c2.reset();
  Recorder after;
  CalloutPtr c3 = send(get("/ok"), after);
  runUntil([&] { return after.calls == 1; });
  EXPECT_EQ(0, early.calls);
  EXPECT_EQ(2u, origin.requests().size());
}

TEST_F(CalloutTest, FailureKnownAtSendIsToldLater) {
  // The pool refuses at once (no room in its queue): still not inside send().
  config::v1::Bootstrap bootstrap;
  auto* cl = bootstrap.add_clusters();
  cl->set_name("auth");
  cl->mutable_http_pool()->set_max_pending_requests(1);
  cl->mutable_http_pool()->set_max_connections(1);
  Origin origin;
  auto* ep = cl->add_endpoints()->mutable_address();
  ep->set_address("127.0.0.1");
  ep->set_port(origin.port());
  manager_ = std::move(
      *upstream::ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory));
  clusters_ = std::make_unique<upstream::WorkerClusters>(*manager_, 0);
  client_ = std::make_unique<CalloutClientImpl>(*dispatcher_, *clusters_);
  Recorder a, b;
  CalloutPtr ca = send(get("/ok"), a);
  CalloutPtr cb = send(get("/ok"), b);  // the queue holds one: overflow
  runUntil([&] { return a.calls == 1 && b.calls == 1; });
  EXPECT_EQ(CalloutOutcome::kResponse, *a.outcome);
  EXPECT_EQ(CalloutOutcome::kOverflow, *b.outcome);
  EXPECT_EQ(0, b.status);
}

TEST_F(CalloutTest, RefusedAtSend) {
  Origin origin;
  build(origin.port());
  Recorder rec;
  EXPECT_EQ(absl::StatusCode::kNotFound,
            client_->send("nope", get("/ok"), {}, rec).status().code());
  EXPECT_EQ(absl::StatusCode::kInvalidArgument,
            client_->send("auth", get(""), {}, rec).status().code());
  CalloutRequest connect = get("/x");
  connect.method = "CONNECT";
  EXPECT_EQ(absl::StatusCode::kInvalidArgument,
            client_->send("auth", std::move(connect), {}, rec).status().code());
  EXPECT_TRUE(client_->hasCluster("auth"));
  EXPECT_FALSE(client_->hasCluster("nope"));
  EXPECT_EQ(0, rec.calls);
  EXPECT_EQ(0, origin.accepted());
}

}  // namespace
}  // namespace sluice::router
