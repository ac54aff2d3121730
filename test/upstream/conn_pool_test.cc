// ConnPoolImpl driven directly on a real dispatcher, with the real client codecs (HTTP/1.1 and
// HTTP/2, from a cluster proto), against loopback origins that run in threads with blocking
// sockets: an HTTP/1.1 one and an HTTP/2 one (nghttp2's server side). Each test asserts on what
// the pool shows (streams, waiting requests, connections, its counters and the cluster's
// circuit-breaker counts) and on what the origin saw (which connection carried which request,
// resets, closes). Every wait runs the dispatcher until a predicate holds or a deadline passes;
// no timing is asserted. TearDown checks that every count returns to zero.

#include "source/upstream/conn_pool_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/sluice/config/v1/cluster.pb.h"
#include "gtest/gtest.h"
#include "source/http/client_codecs.h"
#include "source/upstream/resource_manager.h"
#include "test/network/loopback.h"

namespace sluice::upstream {
namespace {

using http::UpstreamFailure;

// ---------------------------------------------------------------------------------------------
// Origins

// What an origin saw of one request.
struct Seen {
  int conn = -1;       // the connection, in the order the origin accepted them (0, 1, ...)
  int32_t stream = 0;  // HTTP/2 stream id (0 for HTTP/1)
  std::string method;
  std::string path;
  std::string body;
  std::string trailers;  // "name=value;" for each request trailer (HTTP/2)
};

// A loopback listener whose connections are each served by a thread of their own (blocking
// sockets, short polls so that every thread notices the end). By path: "/hold/<tag>" is answered
// only once the test released <tag> (release()); other paths per subclass. Records every
// request, the connections accepted and those the peer closed.
class Origin {
 public:
  Origin() { fd_ = network::test::ListenOnLoopback(64, port_); }
  virtual ~Origin() { close(fd_); }

  uint16_t port() const { return port_; }
  std::vector<Seen> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  // The request for `path`, or a default one (conn -1) when it was not seen.
  Seen request(const std::string& path) {
    std::lock_guard<std::mutex> l(mu_);
    for (const Seen& s : requests_) {
      if (s.path == path) return s;
    }
    return Seen{};
  }
  // Paths of the requests connection `conn` carried, in order.
  std::vector<std::string> pathsOn(int conn) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    for (const Seen& s : requests_) {
      if (s.conn == conn) out.push_back(s.path);
    }
    return out;
  }
  int accepted() const { return accepted_; }
  int peerClosed() const { return peer_closed_; }
  void release(const std::string& tag) {
    std::lock_guard<std::mutex> l(mu_);
    released_.insert(tag);
  }

 protected:
  // Subclasses call start() at the end of their constructor and stop() first in their
  // destructor (the serving threads use their members).
  void start() {
    thread_ = std::thread([this] { acceptLoop(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& t : conns_) t.join();
    conns_.clear();
  }
  virtual void serve(int fd, int index) = 0;

  bool released(const std::string& tag) {
    std::lock_guard<std::mutex> l(mu_);
    return released_.count(tag) > 0;
  }
  static std::string holdTag(const std::string& path) {
    constexpr std::string_view kHold = "/hold/";
    return path.compare(0, kHold.size(), kHold) == 0 ? path.substr(kHold.size()) : std::string();
  }
  // Returns the index of the record, for updates (HTTP/2: the body comes later).
  size_t record(Seen s) {
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back(std::move(s));
    return requests_.size() - 1;
  }
  template <class F>
  void update(size_t index, F&& f) {
    std::lock_guard<std::mutex> l(mu_);
    f(requests_[index]);
  }
  // Writes all of it (blocking); false when the peer is gone.
  static bool writeAll(int fd, const uint8_t* data, size_t n) {
    while (n > 0) {
      const ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> peer_closed_{0};
  std::mutex mu_;

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const int index = accepted_++;
      conns_.emplace_back([this, c, index] {
        serve(c, index);
        close(c);
      });
    }
  }

  int fd_;
  uint16_t port_;
  std::thread thread_;
  std::vector<std::thread> conns_;  // only the accept thread adds; joined by stop()
  std::vector<Seen> requests_;
  std::set<std::string> released_;
  std::atomic<int> accepted_{0};
};

// HTTP/1.1, keep-alive: "/hold/<tag>" waits for its release; anything else is answered at once
// with 200 and the path as the body. Request bodies need a Content-Length.
class Http1Origin : public Origin {
 public:
  Http1Origin() { start(); }
  ~Http1Origin() override { stop(); }

 private:
  // One read (short polls); false when the peer closed or the origin stops.
  bool readSome(int c, std::string& in) {
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
      return true;
    }
    return false;
  }
  // Waits for `tag`, watching for the peer's close.
  bool waitRelease(int c, const std::string& tag, std::string& in) {
    while (!stop_ && !released(tag)) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(c, buf, sizeof(buf));
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
    }
    return !stop_;
  }
  void serve(int c, int index) override {
    std::string in;
    while (!stop_) {
      size_t end;
      bool open = true;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        if (!readSome(c, in)) {
          open = false;
          break;
        }
      }
      if (!open) break;
      const std::string head = in.substr(0, end + 4);
      in.erase(0, end + 4);
      size_t length = 0;
      if (auto at = head.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(head.substr(at + 16));
      }
      while (in.size() < length && open) open = readSome(c, in);
      if (!open) break;
      Seen s;
      s.conn = index;
      s.method = head.substr(0, head.find(' '));
      const size_t p0 = head.find(' ') + 1;
      s.path = head.substr(p0, head.find(' ', p0) - p0);
      s.body = in.substr(0, length);
      in.erase(0, length);
      const std::string path = s.path;
      record(std::move(s));
      const std::string tag = holdTag(path);
      if (!tag.empty() && !waitRelease(c, tag, in)) break;
      const std::string out =
          "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(path.size()) + "\r\n\r\n" + path;
      if (!writeAll(c, reinterpret_cast<const uint8_t*>(out.data()), out.size())) break;
    }
    if (!stop_) ++peer_closed_;
  }
};

// HTTP/2 with prior knowledge (nghttp2's server side). Paths: "/hold/<tag>" is answered once
// released; "/refuse" gets RST_STREAM(REFUSED_STREAM); "/trailers" a body and trailers;
// "/bad-frame" a DATA frame on stream 0 (a connection error); anything else 200 with the path as
// the body. Requests are answered once they ended. The test can send
// a GOAWAY or a SETTINGS on a connection (goAway, setMaxConcurrentStreams).
class Http2Origin : public Origin {
 public:
  // `max_concurrent_streams` 0: the SETTINGS does not say (unlimited).
  explicit Http2Origin(uint32_t max_concurrent_streams = 0)
      : max_concurrent_streams_(max_concurrent_streams) {
    start();
  }
  ~Http2Origin() override { stop(); }

  void goAway(int conn, int32_t last_stream_id) {
    std::lock_guard<std::mutex> l(mu_);
    commands_.push_back({conn, Command::kGoAway, static_cast<uint32_t>(last_stream_id)});
  }
  void setMaxConcurrentStreams(int conn, uint32_t n) {
    std::lock_guard<std::mutex> l(mu_);
    commands_.push_back({conn, Command::kSettings, n});
  }
  // SETTINGS acks received on `conn` (the client applied our SETTINGS).
  int settingsAcks(int conn) {
    std::lock_guard<std::mutex> l(mu_);
    return settings_acks_[conn];
  }
  // RST_STREAM frames received: "conn:stream:code".
  std::vector<std::string> resets() {
    std::lock_guard<std::mutex> l(mu_);
    return resets_;
  }
  // GOAWAY frames received from the client, per connection.
  int goAwaysFrom(int conn) {
    std::lock_guard<std::mutex> l(mu_);
    return goaways_from_[conn];
  }
  // Most streams open at once on any connection.
  int maxOpenStreams() const { return max_open_; }

 private:
  struct Command {
    enum Kind { kGoAway, kSettings };
    int conn;
    Kind kind;
    uint32_t value;
  };
  struct Stream {
    int32_t id = 0;
    size_t record = 0;
    std::string method;
    std::string path;
    bool in_trailers = false;
    bool ended = false;
    bool answered = false;
    std::string tag;
    std::string response;
    size_t sent = 0;
    bool response_trailers = false;
  };
  struct Conn {
    Http2Origin* origin;
    int index;
    int fd;
    nghttp2_session* session = nullptr;
    std::map<int32_t, Stream> streams;
    int open = 0;
  };

  static Conn& C(void* u) { return *static_cast<Conn*>(u); }
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* u) {
    Conn& c = C(u);
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      Stream& s = c.streams[f->hd.stream_id];
      s.id = f->hd.stream_id;
      ++c.open;
      int seen = c.origin->max_open_;
      while (c.open > seen && !c.origin->max_open_.compare_exchange_weak(seen, c.open)) {
      }
    } else if (auto it = c.streams.find(f->hd.stream_id); it != c.streams.end()) {
      it->second.in_trailers = true;
    }
    return 0;
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen,
                      const uint8_t* value, size_t vlen, uint8_t, void* u) {
    Conn& c = C(u);
    auto it = c.streams.find(f->hd.stream_id);
    if (it == c.streams.end()) return 0;
    Stream& s = it->second;
    const std::string n(reinterpret_cast<const char*>(name), nlen);
    const std::string v(reinterpret_cast<const char*>(value), vlen);
    if (s.in_trailers) {
      c.origin->update(s.record, [&](Seen& r) { r.trailers += n + "=" + v + ";"; });
    } else if (n == ":path") {
      s.path = v;
    } else if (n == ":method") {
      s.method = v;
    }
    return 0;
  }
  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                         void* u) {
    Conn& c = C(u);
    auto it = c.streams.find(id);
    if (it == c.streams.end()) return 0;
    const std::string chunk(reinterpret_cast<const char*>(data), len);
    c.origin->update(it->second.record, [&](Seen& r) { r.body += chunk; });
    return 0;
  }
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    Conn& c = C(u);
    Http2Origin& o = *c.origin;
    switch (f->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
          std::lock_guard<std::mutex> l(o.mu_);
          ++o.settings_acks_[c.index];
        }
        break;
      case NGHTTP2_RST_STREAM: {
        std::lock_guard<std::mutex> l(o.mu_);
        o.resets_.push_back(std::to_string(c.index) + ":" + std::to_string(f->hd.stream_id) + ":" +
                            std::to_string(f->rst_stream.error_code));
        break;
      }
      case NGHTTP2_GOAWAY: {
        std::lock_guard<std::mutex> l(o.mu_);
        ++o.goaways_from_[c.index];
        break;
      }
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA:
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
          // The whole head is in: recorded now (the test reads it from its thread).
          auto it = c.streams.find(f->hd.stream_id);
          if (it != c.streams.end()) {
            Seen r;
            r.conn = c.index;
            r.stream = it->second.id;
            r.method = it->second.method;
            r.path = it->second.path;
            it->second.record = o.record(std::move(r));
          }
        }
        if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
          auto it = c.streams.find(f->hd.stream_id);
          if (it != c.streams.end()) {
            it->second.ended = true;
            o.onRequestEnd(c, it->second);
          }
        }
        break;
      default:
        break;
    }
    return 0;
  }
  static int OnStreamClose(nghttp2_session*, int32_t id, uint32_t, void* u) {
    Conn& c = C(u);
    if (c.streams.erase(id) > 0) --c.open;
    return 0;
  }
  static ssize_t ReadBody(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    Stream& s = *static_cast<Stream*>(source->ptr);
    const size_t n = std::min(length, s.response.size() - s.sent);
    std::copy_n(s.response.data() + s.sent, n, buf);
    s.sent += n;
    if (s.sent == s.response.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s.response_trailers) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        const nghttp2_nv t[] = {Nv("x-trailer", "done")};
        nghttp2_submit_trailer(session, id, t, 1);
      }
    }
    return static_cast<ssize_t>(n);
  }
  static nghttp2_nv Nv(const char* n, const std::string& v) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
            reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), strlen(n), v.size(),
            NGHTTP2_NV_FLAG_NONE};
  }
  static nghttp2_nv Nv(const char* n, const char* v) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
            reinterpret_cast<uint8_t*>(const_cast<char*>(v)), strlen(n), strlen(v),
            NGHTTP2_NV_FLAG_NONE};
  }

  void onRequestEnd(Conn& c, Stream& s) {
    if (s.path == "/refuse") {
      nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_REFUSED_STREAM);
      s.answered = true;
      return;
    }
    if (s.path == "/bad-frame") {
      // DATA on stream 0: a connection error (RFC 9113 §6.1), written past nghttp2.
      if (!flush(c.fd, c.session)) return;
      static constexpr uint8_t kFrame[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 'x'};
      writeAll(c.fd, kFrame, sizeof(kFrame));
      s.answered = true;
      return;
    }
    s.tag = holdTag(s.path);
    if (s.tag.empty() || released(s.tag)) answer(c, s);
  }
  void answer(Conn& c, Stream& s) {
    s.answered = true;
    s.response = s.path;
    s.response_trailers = s.path == "/trailers";
    const std::string length = std::to_string(s.response.size());
    const nghttp2_nv h[] = {Nv(":status", "200"), Nv("content-length", length)};
    nghttp2_data_provider p;
    p.source.ptr = &s;
    p.read_callback = &ReadBody;
    nghttp2_submit_response(c.session, s.id, h, s.response_trailers ? 1 : 2, &p);
  }

  // Sends what nghttp2 has; false when the peer is gone.
  static bool flush(int fd, nghttp2_session* session) {
    for (int i = 0; i < 1000; ++i) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n < 0) return false;
      if (n == 0) return true;
      if (!writeAll(fd, data, static_cast<size_t>(n))) return false;
    }
    return true;
  }

  void serve(int fd, int index) override {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, &OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &OnDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &OnFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &OnStreamClose);
    Conn c{this, index, fd};
    nghttp2_session_server_new(&c.session, cb, &c);
    nghttp2_session_callbacks_del(cb);
    std::vector<nghttp2_settings_entry> iv;
    if (max_concurrent_streams_ != 0) {
      iv.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams_});
    }
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
    bool open = true;
    while (open && !stop_) {
      // The test's commands for this connection, and held streams released since.
      std::vector<Command> mine;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (auto it = commands_.begin(); it != commands_.end();) {
          if (it->conn == index) {
            mine.push_back(*it);
            it = commands_.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (const Command& cmd : mine) {
        if (cmd.kind == Command::kGoAway) {
          nghttp2_submit_goaway(c.session, NGHTTP2_FLAG_NONE, static_cast<int32_t>(cmd.value),
                                NGHTTP2_NO_ERROR, nullptr, 0);
        } else {
          const nghttp2_settings_entry e{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cmd.value};
          nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, &e, 1);
        }
      }
      for (auto& [id, s] : c.streams) {
        if (s.ended && !s.answered && !s.tag.empty() && released(s.tag)) answer(c, s);
      }
      if (!flush(fd, c.session)) break;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      uint8_t buf[16384];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) {
        open = false;
        break;
      }
      if (nghttp2_session_mem_recv(c.session, buf, static_cast<size_t>(n)) < 0) break;
      if (!flush(fd, c.session)) break;
    }
    nghttp2_session_del(c.session);
    if (!stop_) ++peer_closed_;
  }

  const uint32_t max_concurrent_streams_;
  std::vector<Command> commands_;
  std::map<int, int> settings_acks_;
  std::map<int, int> goaways_from_;
  std::vector<std::string> resets_;
  std::atomic<int> max_open_{0};
};

// A port that refuses connections: bound, never listening (held so that nobody else takes it).
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() { close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_;
};

// A port whose connects never complete: a listener with no room in its accept queue (Linux drops
// the SYNs then, and the client retransmits for seconds). Filled with connects of our own until
// one does not complete.
class BlackholePort {
 public:
  BlackholePort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 0);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    for (int i = 0; i < 8 && !full_; ++i) {
      const int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      fillers_.push_back(c);
      connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      pollfd p{c, POLLOUT, 0};
      if (poll(&p, 1, 200) == 0) full_ = true;  // this SYN was dropped: the queue is full
    }
  }
  ~BlackholePort() {
    for (int c : fillers_) close(c);
    close(fd_);
  }
  uint16_t port() const { return port_; }
  bool full() const { return full_; }

 private:
  int fd_;
  uint16_t port_;
  bool full_ = false;
  std::vector<int> fillers_;
};

// ---------------------------------------------------------------------------------------------
// A stream asked of the pool: the pool's callbacks and the response's decoder in one. It sends
// its request once ready, and checks that each stream ends exactly once.

struct TestStream : http::ResponseDecoder, PoolCallbacks {
  TestStream(std::string p, std::vector<std::string>& l) : path(std::move(p)), log(l) {}

  void onPoolReady(http::RequestEncoder& enc, const PoolStreamInfo& info) override {
    if (ready + failed > 0) ++violations;
    ++ready;
    encoder = &enc;
    reused = info.reused;
    protocol = info.protocol;
    log.push_back("ready " + path);
    http::RequestHead head;
    head.method = method;
    head.path = path;
    head.headers.add("Host", "origin");
    if (!body.empty()) head.headers.add("Content-Length", std::to_string(body.size()));
    const bool end_on_head = body.empty() && !trailers;
    enc.encodeHeaders(head, end_on_head);
    if (!body.empty()) {
      Buffer b;
      b.add(body);
      enc.encodeData(b, !trailers);
    }
    if (trailers) {
      http::HeaderMap t;
      t.add("x-request-trailer", "yes");
      enc.encodeTrailers(t);
    }
  }
  void onPoolFailure(PoolFailure f) override {
    if (ready + failed > 0) ++violations;
    ++failed;
    pool_failure = f;
    log.push_back("failed " + path);
  }

  void decodeHeaders(std::unique_ptr<http::ResponseHead> head, bool end_stream) override {
    if (ended() || status != 0) ++violations;
    status = head->status;
    if (end_stream) end();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    if (ended() || status == 0) ++violations;
    response += data.toString();
    data.clear();
    if (end_stream) end();
  }
  void decodeTrailers(std::unique_ptr<http::HeaderMap> t) override {
    if (ended() || status == 0) ++violations;
    if (const auto* e = t->get("x-trailer")) response_trailer = std::string(e->value);
    end();
  }
  void onUpstreamFailure(UpstreamFailure f, bool started) override {
    if (ended()) ++violations;
    failure = f;
    response_started = started;
    encoder = nullptr;
    if (on_failure) on_failure();
  }

  bool ended() const { return complete || failure.has_value(); }
  bool done() const { return ended() || failed > 0; }
  void end() {
    complete = true;
    encoder = nullptr;  // no longer valid
  }
  void reset() {
    ASSERT_NE(nullptr, encoder);
    http::RequestEncoder* e = encoder;
    encoder = nullptr;
    was_reset = true;
    e->resetStream();
  }

  // The request.
  std::string method = "GET";
  std::string path;
  std::string body;
  bool trailers = false;
  std::vector<std::string>& log;
  // Runs when the exchange failed (a retry, as the router makes one).
  std::function<void()> on_failure;
  // What happened.
  int ready = 0;
  int failed = 0;
  std::optional<PoolFailure> pool_failure;
  http::RequestEncoder* encoder = nullptr;
  bool reused = false;
  http::Protocol protocol = http::Protocol::kHttp10;
  uint16_t status = 0;
  std::string response;
  std::string response_trailer;
  bool complete = false;
  std::optional<UpstreamFailure> failure;
  bool response_started = false;
  bool was_reset = false;
  int violations = 0;  // a callback out of order or after the end
};

// ---------------------------------------------------------------------------------------------
// The fixture

struct Limits {
  uint64_t max_connections = Resource::kUnlimited;
  uint64_t max_pending = Resource::kUnlimited;
  uint64_t max_requests = Resource::kUnlimited;
};

class ConnPoolTest : public ::testing::Test {
 protected:
  // A pool to 127.0.0.1:`port` speaking `protocol`; `max_concurrent_streams` is our HTTP/2 cap
  // (0: the default, 100).
  void init(uint16_t port, config::v1::Cluster::UpstreamProtocol protocol, Limits limits = {},
            uint32_t max_concurrent_streams = 0) {
    config::v1::Cluster cluster;
    cluster.set_name("t");
    cluster.set_protocol(protocol);
    if (max_concurrent_streams != 0) {
      cluster.mutable_http2_protocol_options()->mutable_max_concurrent_streams()->set_value(
          max_concurrent_streams);
    }
    auto factory = http::CreateClientCodecFactory(
        cluster, stats::Scope(store_).tagged("cluster", "cluster_name", "t"));
    ASSERT_TRUE(factory.ok()) << factory.status();
    codec_factory_ = std::move(*factory);
    settings_.codec_factory = codec_factory_.get();
    resources_ = std::make_unique<ResourceManager>(
        limits.max_connections, limits.max_pending, limits.max_requests, Resource::kUnlimited,
        Resource::kUnlimited, &store_.gauge("cx_open"), &store_.gauge("rq_pending_open"),
        &store_.gauge("rq_open"), &store_.gauge("rq_retry_open"), &store_.gauge("cx_pool_open"));
    host_ = std::make_shared<Host>(*network::Address::fromIpPort("127.0.0.1", port), 1,
                                   stats::Scope(store_).tagged("cluster", "cluster_name", "t"));
    pool_ = makePool();
  }
  std::unique_ptr<ConnPoolImpl> makePool() {
    return std::make_unique<ConnPoolImpl>(*dispatcher_, host_, settings_, stats_, *resources_);
  }

  void TearDown() override {
    // Nothing in flight at the end of a test: the counts say so, then (the pool gone) nothing is
    // held at all.
    if (pool_ != nullptr) {
      EXPECT_EQ(0u, pool_->activeStreams());
      EXPECT_EQ(0u, pool_->pendingStreams());
      EXPECT_EQ(pool_->connectionCount(), resources_->connections.count());
      EXPECT_EQ(static_cast<int64_t>(pool_->connectionCount()), stats_.cx_active.value());
    }
    if (resources_ != nullptr) {
      EXPECT_EQ(0u, resources_->requests.count());
      EXPECT_EQ(0u, resources_->pending_requests.count());
    }
    EXPECT_EQ(0, stats_.rq_active.value());
    EXPECT_EQ(0, stats_.rq_pending_active.value());
    pool_.reset();
    // The deferred deletions (connections, codec streams) run.
    dispatcher_->exit();
    dispatcher_->run();
    if (resources_ != nullptr) {
      EXPECT_EQ(0u, resources_->connections.count());
    }
    EXPECT_EQ(0, stats_.cx_active.value());
    if (host_ != nullptr) {
      EXPECT_EQ(0, host_->stats().cx_active.value());
      EXPECT_EQ(0, host_->stats().rq_active.value());
    }
    for (const auto& s : streams_) EXPECT_EQ(0, s->violations) << s->path;
  }

  TestStream& stream(const std::string& path) {
    streams_.push_back(std::make_unique<TestStream>(path, log_));
    return *streams_.back();
  }
  // Asks the pool for `s`; returns the handle (null when answered at once).
  Cancellable* ask(TestStream& s, bool fresh = false, ConnPoolImpl* pool = nullptr) {
    return (pool != nullptr ? pool : pool_.get())->newStream(s, s, fresh);
  }
  // Runs the dispatcher until `done` or 10 s.
  bool runUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
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
    return done();
  }
  uint64_t counter(const std::string& name) { return store_.counter(name).value(); }

  stats::Store store_;
  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");
  PoolStats stats_{store_.counter("cx_total"),
                   store_.gauge("cx_active"),
                   store_.counter("cx_connect_fail"),
                   store_.counter("cx_connect_timeout"),
                   store_.counter("rq_total"),
                   store_.counter("rq_reused"),
                   store_.counter("rq_pending_overflow"),
                   store_.counter("cx_overflow"),
                   store_.counter("cx_idle_timeout"),
                   store_.counter("cx_stale_closed"),
                   store_.gauge("rq_active"),
                   store_.gauge("rq_pending_active"),
                   store_.counter("goaway_received"),
                   store_.counter("cx_max_requests")};
  std::unique_ptr<http::ClientCodecFactory> codec_factory_;
  PoolSettings settings_;
  std::unique_ptr<ResourceManager> resources_;
  HostSharedPtr host_;
  std::unique_ptr<ConnPoolImpl> pool_;
  std::vector<std::string> log_;  // "ready <path>" / "failed <path>", in order
  std::deque<std::unique_ptr<TestStream>> streams_;
};

constexpr auto kHttp1 = config::v1::Cluster::HTTP1;
constexpr auto kHttp2 = config::v1::Cluster::HTTP2;

// ---------------------------------------------------------------------------------------------
// HTTP/1.1

TEST_F(ConnPoolTest, Http1CarriesOneStreamPerConnection) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/hold/b");
  EXPECT_NE(nullptr, ask(a));
  EXPECT_NE(nullptr, ask(b));
  EXPECT_EQ(2u, pool_->pendingStreams());
  EXPECT_EQ(2u, pool_->connectionCount());  // one each, opened at once
  EXPECT_EQ(2u, resources_->pending_requests.count());
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 2; }));
  EXPECT_EQ(2u, pool_->activeStreams());
  EXPECT_EQ(0u, pool_->pendingStreams());
  EXPECT_EQ(2u, resources_->requests.count());
  EXPECT_EQ(2u, resources_->connections.count());
  EXPECT_EQ(2, origin.accepted());
  EXPECT_NE(origin.request("/hold/a").conn, origin.request("/hold/b").conn);
  EXPECT_EQ(http::Protocol::kHttp11, a.protocol);
  EXPECT_FALSE(a.reused);
  origin.release("a");
  origin.release("b");
  ASSERT_TRUE(runUntil([&] { return a.complete && b.complete; }));
  EXPECT_EQ(200, a.status);
  EXPECT_EQ("/hold/a", a.response);
  EXPECT_EQ(0u, pool_->activeStreams());
  EXPECT_EQ(2u, pool_->connectionCount());  // both idle, kept
  EXPECT_EQ(2u, counter("cx_total"));
  EXPECT_EQ(2u, counter("rq_total"));
  EXPECT_EQ(0u, counter("rq_reused"));
  EXPECT_EQ(2u, host_->stats().rq_total.value());
}

TEST_F(ConnPoolTest, Http1ReusesTheMostRecentlyUsedIdleConnection) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  for (const char* first : {"a", "b"}) {
    SCOPED_TRACE(first);
    const std::string tag_first = first;
    const std::string tag_last = tag_first == "a" ? "b" : "a";
    const std::string round = tag_first == "a" ? "1" : "2";
    TestStream& a = stream("/hold/a" + round);
    TestStream& b = stream("/hold/b" + round);
    ask(a);
    ask(b);
    ASSERT_TRUE(runUntil([&] { return a.ready + b.ready == 2; }));
    // Released one after the other: the last one freed is the most recently used.
    origin.release(tag_first + round);
    TestStream& freed_first = tag_first == "a" ? a : b;
    TestStream& freed_last = tag_first == "a" ? b : a;
    ASSERT_TRUE(runUntil([&] { return freed_first.complete; }));
    origin.release(tag_last + round);
    ASSERT_TRUE(runUntil([&] { return freed_last.complete; }));
    TestStream& c = stream("/c" + round);
    EXPECT_EQ(nullptr, ask(c));  // an idle connection: ready at once
    EXPECT_EQ(1, c.ready);
    EXPECT_TRUE(c.reused);
    ASSERT_TRUE(runUntil([&] { return c.complete; }));
    EXPECT_EQ(origin.request(freed_last.path).conn, origin.request(c.path).conn);
  }
  EXPECT_EQ(2, origin.accepted());
  EXPECT_EQ(2u, pool_->connectionCount());
  // Round 1: only "c" reused a connection; round 2: all three did.
  EXPECT_EQ(4u, counter("rq_reused"));
}

TEST_F(ConnPoolTest, Http1PendingStreamsAreServedInOrderAsConnectionsFreeUp) {
  Http1Origin origin;
  settings_.max_connections = 1;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 1; }));
  TestStream& b = stream("/hold/b");
  TestStream& c = stream("/c");
  TestStream& d = stream("/d");
  EXPECT_NE(nullptr, ask(b));
  EXPECT_NE(nullptr, ask(c));
  EXPECT_NE(nullptr, ask(d));
  EXPECT_EQ(3u, pool_->pendingStreams());
  EXPECT_EQ(1u, pool_->activeStreams());
  EXPECT_EQ(1u, pool_->connectionCount());  // the limit: no second connection
  EXPECT_EQ(3, stats_.rq_pending_active.value());
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return b.ready == 1; }));
  EXPECT_EQ(0, c.ready);
  EXPECT_EQ(2u, pool_->pendingStreams());
  origin.release("b");
  ASSERT_TRUE(runUntil([&] { return d.complete; }));
  EXPECT_EQ((std::vector<std::string>{"ready /hold/a", "ready /hold/b", "ready /c", "ready /d"}),
            log_);
  EXPECT_EQ((std::vector<std::string>{"/hold/a", "/hold/b", "/c", "/d"}), origin.pathsOn(0));
  EXPECT_EQ(1, origin.accepted());
  EXPECT_EQ(3u, counter("rq_reused"));
  EXPECT_TRUE(d.reused);
}

TEST_F(ConnPoolTest, CancelWithdrawsAPendingStream) {
  Http1Origin origin;
  settings_.max_connections = 1;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/b");
  TestStream& c = stream("/c");
  ask(a);
  Cancellable* pb = ask(b);
  ask(c);
  ASSERT_NE(nullptr, pb);
  EXPECT_EQ(3u, pool_->pendingStreams());  // a too: its connection is being opened
  pb->cancel();
  EXPECT_EQ(2u, pool_->pendingStreams());
  EXPECT_EQ(2u, resources_->pending_requests.count());
  EXPECT_EQ(2, stats_.rq_pending_active.value());
  ASSERT_TRUE(runUntil([&] { return a.ready == 1; }));
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return c.complete; }));
  EXPECT_EQ(0, b.ready + b.failed);
  EXPECT_EQ((std::vector<std::string>{"/hold/a", "/c"}), origin.pathsOn(0));
}

TEST_F(ConnPoolTest, CancelWhileTheConnectionIsOpenedLeavesItIdle) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/a");
  Cancellable* pa = ask(a);
  ASSERT_NE(nullptr, pa);
  EXPECT_EQ(1u, pool_->connectionCount());
  pa->cancel();
  EXPECT_EQ(0u, pool_->pendingStreams());
  ASSERT_TRUE(runUntil([&] { return origin.accepted() == 1; }));
  // The connection comes up with nobody to serve (idle), or is still coming up: either way the
  // next stream takes it, and no other is opened.
  TestStream& b = stream("/b");
  ask(b);
  EXPECT_EQ(1u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_EQ(0, a.ready + a.failed);
  EXPECT_EQ(1, origin.accepted());
  EXPECT_EQ((std::vector<std::string>{"/b"}), origin.pathsOn(0));
}

TEST_F(ConnPoolTest, Http1ResetStreamClosesTheConnection) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 1; }));
  a.reset();
  EXPECT_EQ(0u, pool_->activeStreams());
  EXPECT_EQ(0u, pool_->connectionCount());  // not reusable: closed at once
  ASSERT_TRUE(runUntil([&] { return origin.peerClosed() == 1; }));
  TestStream& b = stream("/b");
  ask(b);
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_EQ(2, origin.accepted());
  EXPECT_FALSE(b.reused);
  EXPECT_FALSE(a.complete);
  EXPECT_FALSE(a.failure.has_value());  // nothing reaches a reset stream's decoder
}

TEST_F(ConnPoolTest, MaxRequestsPerConnectionClosesItAfterItsLast) {
  Http1Origin origin;
  settings_.max_requests_per_connection = 2;
  init(origin.port(), kHttp1);
  for (const char* path : {"/1", "/2", "/3"}) {
    TestStream& s = stream(path);
    ask(s);
    ASSERT_TRUE(runUntil([&] { return s.complete; }));
  }
  EXPECT_EQ(2, origin.accepted());
  EXPECT_EQ((std::vector<std::string>{"/1", "/2"}), origin.pathsOn(0));
  EXPECT_EQ(1u, counter("cx_max_requests"));
  ASSERT_TRUE(runUntil([&] { return origin.peerClosed() == 1; }));
  EXPECT_EQ(1u, pool_->connectionCount());
}

TEST_F(ConnPoolTest, FreshNeverLandsOnAConnectionThatCarriedAStream) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  EXPECT_EQ(1u, pool_->connectionCount());  // idle
  TestStream& b = stream("/b");
  EXPECT_NE(nullptr, ask(b, /*fresh=*/true));
  EXPECT_EQ(2u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_FALSE(b.reused);
  EXPECT_EQ(2, origin.accepted());
  EXPECT_EQ((std::vector<std::string>{"/b"}), origin.pathsOn(1));
  // Two fresh streams at once: each on a connection opened after it was asked for (the second
  // one may take the one opened for the first: it carried nothing before either).
  TestStream& c = stream("/hold/c");
  TestStream& d = stream("/d");
  ask(c, /*fresh=*/true);
  EXPECT_EQ(3u, pool_->connectionCount());
  ask(d, /*fresh=*/true);
  EXPECT_EQ(4u, pool_->connectionCount());
  // (c's request is on its way once c is ready: the origin's thread may not have read it yet.)
  ASSERT_TRUE(
      runUntil([&] { return c.ready == 1 && d.complete && origin.request("/hold/c").conn >= 0; }));
  EXPECT_FALSE(c.reused);
  EXPECT_FALSE(d.reused);
  EXPECT_EQ(4, origin.accepted());
  EXPECT_GE(origin.request("/hold/c").conn, 2);
  EXPECT_GE(origin.request("/d").conn, 2);
  EXPECT_EQ(1u, origin.pathsOn(origin.request("/d").conn).size());
  origin.release("c");
  ASSERT_TRUE(runUntil([&] { return c.complete; }));
}

// A fresh stream waits behind the pool's max_connections (idle ones do not count against it):
// once the busy connection goes idle, there is room for a new one.
// A regression test: a fresh stream that waited for room was skipped by the connection that then
// went idle (it had carried a stream), and nothing opened another: it waited until that idle
// connection's idle_timeout (60 s by default) closed it. Now the idle connection closes for it.
TEST_F(ConnPoolTest, FreshStreamWaitingForRoomGetsANewConnectionOnceTheBusyOneIsIdle) {
  Http1Origin origin;
  settings_.max_connections = 1;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 1; }));
  TestStream& f = stream("/f");
  EXPECT_NE(nullptr, ask(f, /*fresh=*/true));
  EXPECT_EQ(1u, pool_->connectionCount());
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  // The first connection is idle now, and f may not take it.
  EXPECT_TRUE(runUntil([&] { return f.complete; }))
      << "pending " << pool_->pendingStreams() << ", connections " << pool_->connectionCount();
  if (!f.complete) {
    pool_.reset();  // what waits goes with it (TearDown then checks the counts)
    return;
  }
  EXPECT_FALSE(f.reused);
  EXPECT_EQ(2, origin.accepted());
}

// The same under the cluster's max_connections: the idle connection holds the cluster's only
// slot, which the fresh stream cannot use.
// A regression test: a fresh stream that waited for room was skipped by the connection that then
// went idle (it had carried a stream), and nothing opened another: it waited until that idle
// connection's idle_timeout (60 s by default) closed it. Now the idle connection closes for it.
TEST_F(ConnPoolTest, FreshStreamUnderTheClusterConnectionLimitIsNotLeftWaitingBehindAnIdleOne) {
  Http1Origin origin;
  init(origin.port(), kHttp1, Limits{.max_connections = 1});
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 1; }));
  TestStream& f = stream("/f");
  EXPECT_NE(nullptr, ask(f, /*fresh=*/true));
  EXPECT_EQ(1u, counter("cx_overflow"));
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  EXPECT_TRUE(runUntil([&] { return f.complete; }))
      << "pending " << pool_->pendingStreams() << ", connections " << pool_->connectionCount();
  if (!f.complete) {
    pool_.reset();
    return;
  }
  EXPECT_EQ(2, origin.accepted());
}

// What the router does with a refused HTTP/2 stream: at once (inside the failure), a retry on a
// connection that carried none. With one connection allowed, that is a new one once the first
// has no stream left.
// A regression test: a fresh stream that waited for room was skipped by the connection that then
// went idle (it had carried a stream), and nothing opened another: it waited until that idle
// connection's idle_timeout (60 s by default) closed it. Now the idle connection closes for it.
TEST_F(ConnPoolTest, Http2RefusedStreamRetriedFreshUnderMaxConnections) {
  Http2Origin origin;
  settings_.max_connections = 1;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/refuse");
  TestStream& retry = stream("/retry");
  a.on_failure = [&] { ask(retry, /*fresh=*/true); };
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.failure.has_value(); }));
  EXPECT_TRUE(runUntil([&] { return retry.complete; }))
      << "pending " << pool_->pendingStreams() << ", connections " << pool_->connectionCount();
  if (!retry.complete) {
    pool_.reset();
    return;
  }
  EXPECT_EQ(2, origin.accepted());
}

TEST_F(ConnPoolTest, ConnectFailureFailsThePendingStreams) {
  RefusingPort port;
  init(port.port(), kHttp1);
  TestStream& a = stream("/a");
  TestStream& b = stream("/b");
  TestStream& c = stream("/c");
  ask(a);
  ask(b);
  ask(c);
  EXPECT_EQ(3u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return a.failed + b.failed + c.failed == 3; }));
  for (TestStream* s : {&a, &b, &c}) {
    EXPECT_EQ(PoolFailure::kConnectFailure, *s->pool_failure);
    EXPECT_EQ(0, s->ready);
  }
  EXPECT_EQ(0u, pool_->connectionCount());
  EXPECT_EQ(3u, counter("cx_connect_fail"));
  EXPECT_EQ(0u, counter("cx_connect_timeout"));
  EXPECT_EQ(3u, host_->stats().cx_connect_fail.value());
}

TEST_F(ConnPoolTest, Http2ConnectFailureFailsEveryStreamItWasOpenedFor) {
  RefusingPort port;
  init(port.port(), kHttp2);
  TestStream& a = stream("/a");
  TestStream& b = stream("/b");
  TestStream& c = stream("/c");
  ask(a);
  ask(b);
  ask(c);
  EXPECT_EQ(1u, pool_->connectionCount());  // one carries all three
  ASSERT_TRUE(runUntil([&] { return a.failed + b.failed + c.failed == 3; }));
  for (TestStream* s : {&a, &b, &c}) EXPECT_EQ(PoolFailure::kConnectFailure, *s->pool_failure);
  EXPECT_EQ((std::vector<std::string>{"failed /a", "failed /b", "failed /c"}), log_);
  EXPECT_EQ(1u, counter("cx_connect_fail"));
}

TEST_F(ConnPoolTest, ConnectTimeout) {
  BlackholePort port;
  if (!port.full()) GTEST_SKIP() << "could not fill the accept queue";
  settings_.connect_timeout = std::chrono::milliseconds(50);
  init(port.port(), kHttp1);
  TestStream& a = stream("/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.failed == 1; }));
  EXPECT_EQ(PoolFailure::kConnectTimeout, *a.pool_failure);
  EXPECT_EQ(1u, counter("cx_connect_timeout"));
  EXPECT_EQ(0u, counter("cx_connect_fail"));
  EXPECT_EQ(1u, host_->stats().cx_connect_fail.value());
  EXPECT_EQ(0u, pool_->connectionCount());
}

// ---------------------------------------------------------------------------------------------
// Circuit breakers

TEST_F(ConnPoolTest, MaxRequestsZeroOverflowsAtOnce) {
  Http1Origin origin;
  init(origin.port(), kHttp1, Limits{.max_requests = 0});
  TestStream& a = stream("/a");
  EXPECT_EQ(nullptr, ask(a));
  EXPECT_EQ(1, a.failed);
  EXPECT_EQ(PoolFailure::kOverflow, *a.pool_failure);
  EXPECT_EQ(0u, pool_->connectionCount());
  EXPECT_EQ(1u, counter("rq_total"));
  EXPECT_EQ(1u, counter("rq_pending_overflow"));
  EXPECT_EQ(1, store_.gauge("rq_open").value());
  EXPECT_EQ(0, origin.accepted());
}

TEST_F(ConnPoolTest, MaxRequestsOnAConnectionWithRoomAndAgainWhenAWaitingStreamIsServed) {
  Http2Origin origin;
  init(origin.port(), kHttp2, Limits{.max_requests = 1});
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/b");
  ask(a);
  ask(b);  // both admitted while no request was open
  EXPECT_EQ(2u, pool_->pendingStreams());
  ASSERT_TRUE(runUntil([&] { return a.ready + b.failed == 2; }));
  EXPECT_EQ(PoolFailure::kOverflow, *b.pool_failure);
  EXPECT_EQ(1u, counter("rq_pending_overflow"));
  // The connection has room for more streams, the cluster does not.
  TestStream& c = stream("/c");
  EXPECT_EQ(nullptr, ask(c));
  EXPECT_EQ(PoolFailure::kOverflow, *c.pool_failure);
  EXPECT_EQ(2u, counter("rq_pending_overflow"));
  EXPECT_EQ(1, store_.gauge("rq_open").value());
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  EXPECT_EQ(0, store_.gauge("rq_open").value());
  TestStream& d = stream("/d");
  EXPECT_EQ(nullptr, ask(d));
  EXPECT_EQ(1, d.ready);
  ASSERT_TRUE(runUntil([&] { return d.complete; }));
}

TEST_F(ConnPoolTest, MaxPendingRequests) {
  Http1Origin origin;
  init(origin.port(), kHttp1, Limits{.max_pending = 1});
  TestStream& a = stream("/a");
  TestStream& b = stream("/b");
  EXPECT_NE(nullptr, ask(a));
  EXPECT_EQ(1, store_.gauge("rq_pending_open").value());
  EXPECT_EQ(nullptr, ask(b));
  EXPECT_EQ(PoolFailure::kOverflow, *b.pool_failure);
  EXPECT_EQ(1u, counter("rq_pending_overflow"));
  EXPECT_EQ(1u, pool_->connectionCount());  // none opened for the refused one
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  EXPECT_EQ(0, store_.gauge("rq_pending_open").value());
}

TEST_F(ConnPoolTest, ThePoolsOwnQueueBound) {
  Http1Origin origin;
  settings_.max_pending = 1;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/a");
  TestStream& b = stream("/b");
  EXPECT_NE(nullptr, ask(a));
  EXPECT_EQ(nullptr, ask(b));
  EXPECT_EQ(PoolFailure::kOverflow, *b.pool_failure);
  EXPECT_EQ(1u, counter("rq_pending_overflow"));
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
}

TEST_F(ConnPoolTest, MaxConnectionsMakesStreamsWaitForTheConnectionsThereAre) {
  Http1Origin origin;
  init(origin.port(), kHttp1, Limits{.max_connections = 1});
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/b");
  ask(a);
  ask(b);
  EXPECT_EQ(1u, pool_->connectionCount());
  EXPECT_EQ(1u, counter("cx_overflow"));
  EXPECT_EQ(1, store_.gauge("cx_open").value());
  ASSERT_TRUE(runUntil([&] { return a.ready == 1; }));
  EXPECT_EQ(1u, pool_->pendingStreams());
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_TRUE(b.reused);
  EXPECT_EQ(1, origin.accepted());
  EXPECT_EQ((std::vector<std::string>{"/hold/a", "/b"}), origin.pathsOn(0));
  EXPECT_EQ(1u, resources_->connections.count());
}

TEST_F(ConnPoolTest, APoolWithNoConnectionOpensOneOverTheClusterLimit) {
  Http1Origin origin;
  init(origin.port(), kHttp1, Limits{.max_connections = 1});
  std::unique_ptr<ConnPoolImpl> other = makePool();  // another worker's pool to the same host
  TestStream& a = stream("/hold/a");
  ask(a, false, other.get());
  EXPECT_EQ(1u, resources_->connections.count());
  TestStream& b = stream("/b");
  ask(b);
  EXPECT_EQ(1u, pool_->connectionCount());  // over the limit, but it had none
  EXPECT_EQ(2u, resources_->connections.count());
  EXPECT_EQ(0u, counter("cx_overflow"));
  ASSERT_TRUE(runUntil([&] { return b.complete && a.ready == 1; }));
  // With one, the next waits for it instead.
  TestStream& c = stream("/hold/c");
  TestStream& d = stream("/d");
  ask(c);
  EXPECT_EQ(1, c.ready);  // the idle one
  ask(d);
  EXPECT_EQ(1u, pool_->pendingStreams());
  EXPECT_EQ(1u, counter("cx_overflow"));
  EXPECT_EQ(1u, pool_->connectionCount());
  origin.release("a");
  origin.release("c");
  ASSERT_TRUE(runUntil([&] { return a.complete && c.complete && d.complete; }));
  EXPECT_EQ(2, origin.accepted());
  other.reset();
  EXPECT_EQ(1u, resources_->connections.count());
}

// ---------------------------------------------------------------------------------------------
// Drain

TEST_F(ConnPoolTest, DrainClosesIdleConnectionsNowAndTheOthersWhenTheirStreamsEnd) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/hold/b");
  ask(a);
  ask(b);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 2; }));
  origin.release("b");
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_EQ(2u, pool_->connectionCount());
  int drained = 0;
  pool_->drain([&] { ++drained; });
  EXPECT_EQ(1u, pool_->connectionCount());  // the idle one closed
  EXPECT_EQ(0, drained);
  ASSERT_TRUE(runUntil([&] { return origin.peerClosed() == 1; }));
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return drained == 1; }));
  EXPECT_TRUE(a.complete);
  EXPECT_EQ(0u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return origin.peerClosed() == 2; }));
  EXPECT_EQ(1, drained);
}

TEST_F(ConnPoolTest, DrainStillServesWhatWaits) {
  Http1Origin origin;
  settings_.max_connections = 1;
  init(origin.port(), kHttp1);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/b");
  ask(a);
  ask(b);
  int drained = 0;
  pool_->drain([&] { ++drained; });
  EXPECT_EQ(0, drained);
  ASSERT_TRUE(runUntil([&] { return a.ready == 1; }));
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return drained == 1; }));
  EXPECT_TRUE(b.complete);
  EXPECT_EQ((std::vector<std::string>{"/hold/a", "/b"}), origin.pathsOn(0));
  EXPECT_EQ(0u, pool_->connectionCount());
}

TEST_F(ConnPoolTest, DrainOfAnEmptyPoolCallsBackAtOnce) {
  Http1Origin origin;
  init(origin.port(), kHttp1);
  int drained = 0;
  pool_->drain([&] { ++drained; });
  EXPECT_EQ(1, drained);
}

TEST_F(ConnPoolTest, Http2DrainWaitsForTheStreamsOfAConnection) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/hold/b");
  ask(a);
  ask(b);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 2; }));
  int drained = 0;
  pool_->drain([&] { ++drained; });
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  EXPECT_EQ(0, drained);
  EXPECT_EQ(1u, pool_->connectionCount());
  origin.release("b");
  ASSERT_TRUE(runUntil([&] { return drained == 1; }));
  EXPECT_TRUE(b.complete);
  EXPECT_EQ(0u, pool_->connectionCount());
}

// ---------------------------------------------------------------------------------------------
// HTTP/2

TEST_F(ConnPoolTest, Http2CarriesStreamsOnOneConnectionUpToOurCapThenOpensAnother) {
  Http2Origin origin;
  init(origin.port(), kHttp2, {}, /*max_concurrent_streams=*/3);
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.ready == 1; }));
  EXPECT_EQ(http::Protocol::kHttp2, a.protocol);
  TestStream& b = stream("/hold/b");
  TestStream& c = stream("/hold/c");
  EXPECT_EQ(nullptr, ask(b));  // room on the connection: at once
  EXPECT_EQ(nullptr, ask(c));
  EXPECT_TRUE(c.reused);
  EXPECT_EQ(3u, pool_->activeStreams());
  EXPECT_EQ(1u, pool_->connectionCount());
  TestStream& d = stream("/hold/d");
  EXPECT_NE(nullptr, ask(d));  // full: a second connection
  EXPECT_EQ(2u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 4; }));
  EXPECT_EQ((std::vector<std::string>{"/hold/a", "/hold/b", "/hold/c"}), origin.pathsOn(0));
  EXPECT_EQ((std::vector<std::string>{"/hold/d"}), origin.pathsOn(1));
  // A stream ends on the full connection: the next one goes there, not to the new one's idle...
  origin.release("b");
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  TestStream& e = stream("/hold/e");
  EXPECT_EQ(nullptr, ask(e));
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 5; }));
  const int e_conn = origin.request("/hold/e").conn;
  EXPECT_TRUE(e_conn == 0 || e_conn == 1);  // either has room; never a third connection
  EXPECT_EQ(2, origin.accepted());
  for (const char* t : {"a", "c", "d", "e"}) origin.release(t);
  ASSERT_TRUE(runUntil([&] { return a.complete && c.complete && d.complete && e.complete; }));
  EXPECT_EQ(3, origin.maxOpenStreams());
  EXPECT_EQ(2u, pool_->connectionCount());
}

TEST_F(ConnPoolTest, Http2StreamsThatWaitAreSplitAcrossConnectionsAtTheCap) {
  Http2Origin origin;
  init(origin.port(), kHttp2, {}, /*max_concurrent_streams=*/3);
  std::vector<TestStream*> s;
  for (int i = 0; i < 5; ++i) {
    s.push_back(&stream("/hold/" + std::to_string(i)));
    ask(*s.back());
  }
  EXPECT_EQ(5u, pool_->pendingStreams());
  EXPECT_EQ(2u, pool_->connectionCount());  // 3 + 2
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 5; }));
  // Whichever connection came up first took the first three, in order.
  const int first = origin.request("/hold/0").conn;
  EXPECT_EQ((std::vector<std::string>{"/hold/0", "/hold/1", "/hold/2"}), origin.pathsOn(first));
  EXPECT_EQ((std::vector<std::string>{"/hold/3", "/hold/4"}), origin.pathsOn(1 - first));
  for (int i = 0; i < 5; ++i) origin.release(std::to_string(i));
  ASSERT_TRUE(runUntil([&] {
    for (TestStream* t : s) {
      if (!t->complete) return false;
    }
    return true;
  }));
}

TEST_F(ConnPoolTest, Http2PeerLimitLowerThanOursIsHonoured) {
  Http2Origin origin(/*max_concurrent_streams=*/2);
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  ask(a);
  // Once the client acknowledged the origin's SETTINGS, the pool knows the limit.
  ASSERT_TRUE(runUntil([&] { return a.ready == 1 && origin.settingsAcks(0) >= 1; }));
  TestStream& b = stream("/hold/b");
  EXPECT_EQ(nullptr, ask(b));
  TestStream& c = stream("/hold/c");
  EXPECT_NE(nullptr, ask(c));  // the connection is full at the peer's 2
  EXPECT_EQ(2u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 3; }));
  EXPECT_EQ((std::vector<std::string>{"/hold/a", "/hold/b"}), origin.pathsOn(0));
  EXPECT_EQ((std::vector<std::string>{"/hold/c"}), origin.pathsOn(1));
  for (const char* t : {"a", "b", "c"}) origin.release(t);
  ASSERT_TRUE(runUntil([&] { return a.complete && b.complete && c.complete; }));
  EXPECT_TRUE(origin.resets().empty());
  EXPECT_EQ(2, origin.maxOpenStreams());
}

TEST_F(ConnPoolTest, Http2LowerPeerLimitSentLaterIsHonouredAtOnce) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/hold/b");
  ask(a);
  ask(b);
  ASSERT_TRUE(
      runUntil([&] { return origin.requests().size() == 2 && origin.settingsAcks(0) >= 1; }));
  origin.setMaxConcurrentStreams(0, 1);
  ASSERT_TRUE(runUntil([&] { return origin.settingsAcks(0) >= 2; }));
  TestStream& c = stream("/hold/c");
  EXPECT_NE(nullptr, ask(c));  // two open, one allowed: full
  EXPECT_EQ(2u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return c.ready == 1 && origin.requests().size() == 3; }));
  EXPECT_EQ(1, origin.request("/hold/c").conn);
  // One of the two ends: still one open, still full.
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  TestStream& d = stream("/d");
  EXPECT_EQ(nullptr, ask(d));
  ASSERT_TRUE(runUntil([&] { return d.complete; }));
  EXPECT_EQ(1, origin.request("/d").conn);
  for (const char* t : {"b", "c"}) origin.release(t);
  ASSERT_TRUE(runUntil([&] { return b.complete && c.complete; }));
}

TEST_F(ConnPoolTest, Http2ResetStreamKeepsTheConnectionForTheOthers) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/hold/b");
  ask(a);
  ask(b);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 2; }));
  const int32_t a_id = origin.request("/hold/a").stream;
  a.reset();
  ASSERT_TRUE(runUntil([&] { return !origin.resets().empty() && pool_->activeStreams() == 1; }));
  EXPECT_EQ((std::vector<std::string>{"0:" + std::to_string(a_id) + ":8"}), origin.resets());
  EXPECT_EQ(1u, pool_->connectionCount());
  EXPECT_EQ(1u, counter("cluster.t.http2.tx_reset"));
  origin.release("b");
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  TestStream& c = stream("/c");
  EXPECT_EQ(nullptr, ask(c));
  ASSERT_TRUE(runUntil([&] { return c.complete; }));
  EXPECT_EQ(1, origin.accepted());
  EXPECT_EQ(0, origin.peerClosed());
  EXPECT_FALSE(a.complete);
  EXPECT_FALSE(a.failure.has_value());
}

TEST_F(ConnPoolTest, Http2GoAwayDrainsTheConnectionAndRefusesStreamsAboveItsLastId) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  TestStream& b = stream("/hold/b");
  ask(a);
  ask(b);
  ASSERT_TRUE(runUntil([&] { return origin.requests().size() == 2; }));
  const int32_t a_id = origin.request("/hold/a").stream;
  ASSERT_LT(a_id, origin.request("/hold/b").stream);
  origin.goAway(0, a_id);
  ASSERT_TRUE(runUntil([&] { return b.failure.has_value(); }));
  EXPECT_EQ(UpstreamFailure::kRefusedStream, *b.failure);
  EXPECT_FALSE(b.response_started);
  EXPECT_EQ(1u, counter("goaway_received"));
  EXPECT_EQ(1u, pool_->activeStreams());
  EXPECT_EQ(1u, pool_->connectionCount());  // draining
  // New streams go to a new connection.
  TestStream& c = stream("/c");
  EXPECT_NE(nullptr, ask(c));
  EXPECT_EQ(2u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return c.complete; }));
  EXPECT_EQ((std::vector<std::string>{"/c"}), origin.pathsOn(1));
  // The stream at the last id finishes; then the connection closes.
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete && pool_->connectionCount() == 1; }));
  EXPECT_EQ(200, a.status);
  ASSERT_TRUE(runUntil([&] { return origin.peerClosed() == 1; }));
}

TEST_F(ConnPoolTest, Http2GoAwayOnAnIdleConnectionClosesIt) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  origin.goAway(0, origin.request("/a").stream);
  ASSERT_TRUE(runUntil([&] { return pool_->connectionCount() == 0; }));
  EXPECT_EQ(1u, counter("goaway_received"));
  TestStream& b = stream("/b");
  ask(b);
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_EQ(2, origin.accepted());
}

TEST_F(ConnPoolTest, Http2RefusedStreamFailsItAndTheConnectionStays) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/refuse");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.failure.has_value(); }));
  EXPECT_EQ(UpstreamFailure::kRefusedStream, *a.failure);
  EXPECT_EQ(1u, pool_->connectionCount());
  TestStream& b = stream("/b");
  EXPECT_EQ(nullptr, ask(b));
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_EQ(1, origin.accepted());
  EXPECT_EQ(1u, counter("cluster.t.http2.rx_reset"));
}

// A regression test (test/http/http2_client_codec_test.cc has the codec-level one):
// An upstream's connection error that nghttp2 handles itself (here
// DATA on stream 0) leaves the codec's streams open and the pool uninformed: the streams wait
// until the upstream closes the connection, and the connection still takes new streams.
TEST_F(ConnPoolTest, Http2ConnectionErrorOfTheUpstreamFailsItsStreamsAndClosesIt) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.ready == 1 && origin.requests().size() == 1; }));
  TestStream& b = stream("/bad-frame");
  EXPECT_EQ(nullptr, ask(b));
  EXPECT_TRUE(runUntil([&] { return a.failure.has_value() && b.failure.has_value(); }));
  if (!a.failure.has_value() || !b.failure.has_value()) {
    pool_.reset();
    return;
  }
  EXPECT_EQ(UpstreamFailure::kProtocolError, *a.failure);
  EXPECT_EQ(UpstreamFailure::kProtocolError, *b.failure);
  EXPECT_EQ(0u, pool_->connectionCount());
  TestStream& c = stream("/c");
  ask(c);
  ASSERT_TRUE(runUntil([&] { return c.complete; }));
  EXPECT_EQ(2, origin.accepted());
}

TEST_F(ConnPoolTest, Http2FreshStreamTakesANewConnection) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/hold/a");
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.ready == 1; }));
  TestStream& b = stream("/b");
  EXPECT_NE(nullptr, ask(b, /*fresh=*/true));  // not next to a, though there is room
  EXPECT_EQ(2u, pool_->connectionCount());
  ASSERT_TRUE(runUntil([&] { return b.complete; }));
  EXPECT_FALSE(b.reused);
  EXPECT_EQ((std::vector<std::string>{"/b"}), origin.pathsOn(1));
  origin.release("a");
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
}

TEST_F(ConnPoolTest, Http2BodiesAndTrailersBothWays) {
  Http2Origin origin;
  init(origin.port(), kHttp2);
  TestStream& a = stream("/trailers");
  a.method = "POST";
  a.body = "request body";
  a.trailers = true;
  ask(a);
  ASSERT_TRUE(runUntil([&] { return a.complete; }));
  const Seen seen = origin.request("/trailers");
  EXPECT_EQ("POST", seen.method);
  EXPECT_EQ("request body", seen.body);
  EXPECT_EQ("x-request-trailer=yes;", seen.trailers);
  EXPECT_EQ(200, a.status);
  EXPECT_EQ("/trailers", a.response);
  EXPECT_EQ("done", a.response_trailer);
}

}  // namespace
}  // namespace sluice::upstream
