// The upstream HTTP/1.1 codec: request framing it owns, strict response parsing (fed whole and
// split at every byte), keep-alive decisions, interim responses, failures.

#include "source/http/http1/client_codec.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "test/network/fake_connection.h"

namespace sluice::http::http1 {
namespace {

struct Recorder : ResponseDecoder, ClientConnectionCallbacks {
  std::vector<std::string> events;
  std::string body;
  int complete = 0;
  bool reusable = false;
  bool failed = false;

  void decodeHeaders(std::unique_ptr<ResponseHead> head, bool end) override {
    std::string e = "headers " + std::to_string(head->status);
    head->headers.forEach([&](const HeaderMap::Entry& f) {
      e.append(" ").append(f.name).append("=").append(f.value);
      return true;
    });
    if (end) e.append(" end");
    events.push_back(e);
  }
  void decodeData(Buffer& data, bool end) override {
    body += data.toString();
    data.clear();
    if (end) events.push_back("end");
  }
  void decodeTrailers(std::unique_ptr<HeaderMap> t) override {
    std::string e = "trailers";
    t->forEach([&](const HeaderMap::Entry& f) {
      e.append(" ").append(f.name).append("=").append(f.value);
      return true;
    });
    events.push_back(e);
  }
  void onUpstreamFailure(UpstreamFailure f, bool started) override {
    std::string e = f == UpstreamFailure::kProtocolError ? "protocol" : "closed";
    e.append(started ? " after head" : " before head");
    events.push_back(e);
    failure_seen = true;
  }
  // A failed stream is reported done too, its connection not reusable: counted as `failed`.
  void onStreamDone(bool r) override {
    if (failure_seen) {
      failed = failed || !r;
      return;
    }
    ++complete;
    reusable = r;
  }
  bool failure_seen = false;
  void onCodecFailed() override { failed = true; }
};

class ClientCodecTest : public ::testing::Test {
 protected:
  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");
  network::test::FakeConnection conn_{*dispatcher_};
  Limits limits_;

  // Sends `method` `target` (with `body` if any), then feeds `response` split at `split` (0:
  // whole).
  Recorder exchange(const std::string& method, const std::string& response, size_t split = 0,
                    const std::string& body = "", bool counted = true) {
    Recorder r;
    ClientConnectionImpl codec(conn_, r, limits_);
    RequestHead head;
    head.method = method;
    head.path = "/x";
    head.headers.add("Host", "h");
    if (!body.empty() && counted) head.headers.add("Content-Length", std::to_string(body.size()));
    RequestEncoder& enc = codec.newStream(r);
    enc.encodeHeaders(head, body.empty());
    if (!body.empty()) {
      Buffer b;
      b.add(body);
      enc.encodeData(b, true);
    }
    feed(codec, response, split);
    return r;
  }
  // Starts `method` `target` on `codec` (Host: h, `upgrade` as an Upgrade field), for tests
  // that drive the rest by hand.
  static RequestEncoder& start(ClientConnectionImpl& codec, Recorder& r, const char* method = "GET",
                               const char* target = "/", bool end_stream = true,
                               const char* upgrade = nullptr) {
    RequestHead head;
    head.method = method;
    head.path = target;
    head.headers.add("Host", "h");
    if (upgrade != nullptr) head.headers.add("Upgrade", upgrade);
    RequestEncoder& enc = codec.newStream(r);
    enc.encodeHeaders(head, end_stream);
    return enc;
  }
  void feed(ClientConnectionImpl& codec, const std::string& bytes, size_t split) {
    if (split == 0 || split >= bytes.size()) {
      Buffer b;
      b.add(bytes);
      codec.dispatch(b);
      return;
    }
    Buffer a, b;
    a.add(bytes.substr(0, split));
    b.add(bytes.substr(split));
    codec.dispatch(a);
    codec.dispatch(b);
  }
};

TEST_F(ClientCodecTest, ContentLengthResponseAtEverySplit) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
  for (size_t split = 0; split < resp.size(); ++split) {
    SCOPED_TRACE(split);
    Recorder r = exchange("GET", resp, split);
    ASSERT_EQ(2u, r.events.size());
    EXPECT_EQ("headers 200 Content-Length=5 X-A=b", r.events[0]);
    EXPECT_EQ("end", r.events[1]);
    EXPECT_EQ("hello", r.body);
    EXPECT_EQ(1, r.complete);
    EXPECT_TRUE(r.reusable);
  }
  EXPECT_EQ(0u, conn_.output().find("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"));
}

// An origin that answers before it has the whole body (a 401 or 413) still expects the rest:
// its next bytes would be read as the body, so the connection is never reused. Once the body
// was all sent first, it is.
TEST_F(ClientCodecTest, AResponseBeforeTheWholeRequestWasSentEndsTheConnection) {
  const std::string resp = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno";
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked);
    Recorder r;
    ClientConnectionImpl codec(conn_, r, limits_);
    RequestHead head;
    head.method = "POST";
    head.path = "/";
    head.headers.add("Host", "h");
    if (!chunked) head.headers.add("Content-Length", "10");
    RequestEncoder& enc = codec.newStream(r);
    enc.encodeHeaders(head, false);
    Buffer part;
    part.add("12345");
    enc.encodeData(part, false);
    feed(codec, resp, 0);
    EXPECT_EQ(1, r.complete);
    EXPECT_FALSE(r.reusable);
  }
  Recorder done = exchange("POST", resp, 0, "0123456789");
  EXPECT_EQ(1, done.complete);
  EXPECT_TRUE(done.reusable);
}

TEST_F(ClientCodecTest, ChunkedResponseWithTrailersAtEverySplit) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nt: "
      "v\r\n\r\n";
  for (size_t split = 0; split < resp.size(); ++split) {
    SCOPED_TRACE(split);
    Recorder r = exchange("GET", resp, split);
    ASSERT_FALSE(r.events.empty());
    EXPECT_EQ("headers 200", r.events[0]);  // Transfer-Encoding is the hop's
    EXPECT_EQ("trailers t=v", r.events.back());
    EXPECT_EQ("abcde", r.body);
    EXPECT_TRUE(r.reusable);
  }
}

TEST_F(ClientCodecTest, KeepAliveDecisions) {
  EXPECT_FALSE(exchange("GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                   .reusable);
  EXPECT_FALSE(exchange("GET", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").reusable);
  EXPECT_TRUE(exchange("GET", "HTTP/1.1 204 No Content\r\n\r\n").reusable);
  // HEAD: a length but no body.
  Recorder head = exchange("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
  EXPECT_EQ(1, head.complete);
  EXPECT_TRUE(head.reusable);
}

TEST_F(ClientCodecTest, CloseDelimitedBodyEndsWithTheConnection) {
  Recorder r;
  ClientConnectionImpl codec(conn_, r, limits_);
  start(codec, r);
  feed(codec, "HTTP/1.0 200 OK\r\n\r\nsome bytes", 0);
  EXPECT_EQ(0, r.complete);
  codec.onConnectionClosed();
  EXPECT_EQ("some bytes", r.body);
  EXPECT_EQ(1, r.complete);
  EXPECT_FALSE(r.reusable);
}

TEST_F(ClientCodecTest, UpgradeAndConnectBecomeTunnelsOnlyWhenTheResponseOpensThem) {
  struct Case {
    const char* method;
    bool upgrade;
    const char* response;
    bool tunnel;
  };
  const std::vector<Case> cases = {
      {"GET", true,
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
       true},
      {"CONNECT", false, "HTTP/1.1 200 Connection Established\r\n\r\n", true},
      // Framing fields on a 2xx to CONNECT mean nothing (RFC 9110 §9.3.6): still a tunnel.
      {"CONNECT", false, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true},
      // Refused: an ordinary response, and the connection is not reused.
      {"GET", true, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno", false},
      {"CONNECT", false, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.response);
    network::test::FakeConnection conn(*dispatcher_);
    Recorder r;
    ClientConnectionImpl codec(conn, r, limits_);
    RequestEncoder& enc = start(codec, r, c.method, c.upgrade ? "/ws" : "example.test:443",
                                /*end_stream=*/false, c.upgrade ? "websocket" : nullptr);
    // No framing of its own: what follows is the tunnel's.
    EXPECT_EQ(std::string::npos, conn.output().find("Transfer-Encoding"));
    EXPECT_EQ(std::string::npos, conn.output().find("Content-Length"));
    EXPECT_EQ(c.upgrade, conn.output().find("Connection: upgrade") != std::string::npos);
    feed(codec, std::string(c.response) + (c.tunnel ? "from upstream" : ""), 0);
    ASSERT_FALSE(r.events.empty());
    if (!c.tunnel) {
      EXPECT_EQ(1, r.complete);
      EXPECT_FALSE(r.reusable);
      continue;
    }
    EXPECT_EQ("from upstream", r.body);
    const size_t before = conn.output().size();
    Buffer up;
    up.add("from client");
    enc.encodeData(up, false);
    EXPECT_EQ("from client", conn.output().substr(before));  // raw: no chunk framing
    EXPECT_EQ(0, r.complete);
    codec.onConnectionClosed();  // the tunnel ends with the upstream's close
    EXPECT_EQ("end", r.events.back());
    EXPECT_EQ(1, r.complete);
    EXPECT_FALSE(r.reusable);
  }
}

TEST_F(ClientCodecTest, A101NobodyAskedForFailsTheExchange) {
  for (const char* method : {"GET", "CONNECT"}) {
    Recorder r;
    ClientConnectionImpl codec(conn_, r, limits_);
    start(codec, r, method, "/", /*end_stream=*/std::string_view(method) == "GET");
    feed(codec, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0);
    ASSERT_EQ(1u, r.events.size());
    EXPECT_EQ("protocol before head", r.events[0]);
    EXPECT_TRUE(r.failed);
  }
}

TEST_F(ClientCodecTest, InterimResponsesAreSkipped) {
  Recorder r = exchange("POST",
                        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
                        "\r\nok",
                        0, "data");
  ASSERT_EQ(2u, r.events.size());
  EXPECT_EQ("headers 201 Content-Length=2", r.events[0]);
  EXPECT_EQ("ok", r.body);
}

TEST_F(ClientCodecTest, AmbiguousOrBrokenResponsesFailTheExchange) {
  const std::vector<std::string> bad = {
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "NOT HTTP\r\n\r\n",
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b);
    Recorder r = exchange("GET", b);
    ASSERT_FALSE(r.events.empty());
    EXPECT_NE(std::string::npos, r.events.back().find("protocol")) << r.events.back();
    EXPECT_TRUE(r.failed);
    EXPECT_EQ(0, r.complete);
  }
}

TEST_F(ClientCodecTest, CloseBeforeTheEndFailsTheExchange) {
  Recorder r;
  ClientConnectionImpl codec(conn_, r, limits_);
  start(codec, r);
  feed(codec, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0);
  codec.onConnectionClosed();
  ASSERT_EQ(2u, r.events.size());
  EXPECT_EQ("closed after head", r.events[1]);
  EXPECT_TRUE(r.failed);
}

TEST_F(ClientCodecTest, RequestFramingIsTheCodecs) {
  // A counted body: never more than announced.
  exchange("POST", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, "0123456789");
  EXPECT_NE(std::string::npos, conn_.output().find("Content-Length: 10\r\n\r\n0123456789"));
  // No length: chunked.
  network::test::FakeConnection other(*dispatcher_);
  Recorder r;
  ClientConnectionImpl codec(other, r, limits_);
  RequestHead head;
  head.method = "PUT";
  head.path = "/";
  head.headers.add("Host", "h");
  head.headers.add("Transfer-Encoding", "gzip");  // a filter's: not the codec's framing
  RequestEncoder& enc = codec.newStream(r);
  enc.encodeHeaders(head, false);
  Buffer b;
  b.add("abc");
  enc.encodeData(b, true);
  EXPECT_EQ("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            other.output());
}

TEST_F(ClientCodecTest, BytesWithNoRequestOutstandingFailTheConnection) {
  Recorder r;
  ClientConnectionImpl codec(conn_, r, limits_);
  feed(codec, "HTTP/1.1 200 OK\r\n\r\n", 0);  // no exchange started
  EXPECT_TRUE(r.failed);
}

}  // namespace
}  // namespace sluice::http::http1
