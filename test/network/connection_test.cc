// ConnectionImpl over a socketpair: read filters, half-close, close-after-flush, watermarks,
// counted read disabling, and client connects.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "source/event/dispatcher.h"
#include "source/network/connection_impl.h"
#include "source/network/socket.h"
#include "source/network/transport_socket.h"

namespace sluice::network {
namespace {

class RecordingFilter : public ReadFilter {
 public:
  void initializeReadFilterCallbacks(ReadFilterCallbacks& cb) override { callbacks = &cb; }
  FilterStatus onData(Buffer& data, bool end_stream) override {
    received += data.toString();
    data.drain(data.length());
    if (end_stream) saw_end = true;
    if (on_data) on_data();
    return FilterStatus::kContinue;
  }
  ReadFilterCallbacks* callbacks = nullptr;
  std::string received;
  bool saw_end = false;
  std::function<void()> on_data;
};

class RecordingCallbacks : public ConnectionCallbacks {
 public:
  void onEvent(ConnectionEvent e) override {
    events.push_back(e);
    if (on_event) on_event(e);
  }
  void onAboveWriteBufferHighWatermark() override {
    ++above;
    if (on_above) on_above();
  }
  void onBelowWriteBufferLowWatermark() override {
    ++below;
    if (on_below) on_below();
  }
  std::vector<ConnectionEvent> events;
  int above = 0;
  int below = 0;
  std::function<void(ConnectionEvent)> on_event;
  std::function<void()> on_above;
  std::function<void()> on_below;
};

class ConnectionTest : public testing::Test {
 protected:
  void SetUp() override {
    dispatcher_ = event::CreateDispatcher("test");
    int sv[2];
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    peer_ = sv[1];
    conn_ = std::make_unique<ConnectionImpl>(*dispatcher_, sv[0], nullptr, Address(), Address());
    auto filter = std::make_unique<RecordingFilter>();
    filter_ = filter.get();
    conn_->addReadFilter(std::move(filter));
    conn_->addConnectionCallbacks(callbacks_);
  }
  void TearDown() override {
    conn_.reset();
    if (peer_ >= 0) close(peer_);
  }
  // Runs the loop until `done` holds (checked after every event via a short poll timer), with a
  // generous bound so a broken build fails instead of hanging.
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
  std::string readPeer() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = read(peer_, buf, sizeof(buf))) > 0) out.append(buf, n);
    peer_eof_ = (n == 0);
    return out;
  }

  event::DispatcherPtr dispatcher_;
  std::unique_ptr<ConnectionImpl> conn_;
  RecordingFilter* filter_ = nullptr;
  RecordingCallbacks callbacks_;
  int peer_ = -1;
  bool peer_eof_ = false;
};

TEST_F(ConnectionTest, ReadsIntoFiltersAndWritesOut) {
  conn_->initializeReadFilters();
  ASSERT_EQ(5, write(peer_, "hello", 5));
  runUntil([&] { return filter_->received == "hello"; });
  Buffer out;
  out.add("world");
  conn_->write(out, false);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ("world", readPeer());
}

TEST_F(ConnectionTest, PeerFinClosesWithoutHalfClose) {
  conn_->initializeReadFilters();
  ASSERT_EQ(3, write(peer_, "abc", 3));
  shutdown(peer_, SHUT_WR);
  runUntil([&] { return conn_->state() == ConnectionState::kClosed; });
  EXPECT_EQ("abc", filter_->received);
  EXPECT_TRUE(filter_->saw_end);
  // An accepted connection reports its transport ready (plain TCP: at once), then its end.
  ASSERT_EQ(2u, callbacks_.events.size());
  EXPECT_EQ(ConnectionEvent::kConnected, callbacks_.events[0]);
  EXPECT_EQ(ConnectionEvent::kRemoteClose, callbacks_.events[1]);
}

// What a pool asks before it reuses an idle connection, answered before the loop has seen the
// peer's close or bytes (no event is run here).
TEST_F(ConnectionTest, IdlePeerAliveSeesACloseOrStrayBytesBeforeTheLoopDoes) {
  conn_->initializeReadFilters();
  EXPECT_TRUE(conn_->idlePeerAlive());
  ASSERT_EQ(1, write(peer_, "x", 1));
  EXPECT_FALSE(conn_->idlePeerAlive());  // bytes nobody asked for
  EXPECT_FALSE(conn_->idlePeerAlive());  // only peeked: still there
  runUntil([&] { return filter_->received == "x"; });
  EXPECT_TRUE(conn_->idlePeerAlive());
  shutdown(peer_, SHUT_WR);
  EXPECT_FALSE(conn_->idlePeerAlive());  // the peer's FIN
  conn_->close(CloseType::kNoFlush);
  EXPECT_FALSE(conn_->idlePeerAlive());
}

// Lingering close: the reply goes out and is followed by our FIN; what the peer still sends is
// read and dropped (no filter sees it, no RST); the peer's own close ends it.
TEST_F(ConnectionTest, LingeringCloseDrainsThePeerUntilItCloses) {
  conn_->initializeReadFilters();
  Buffer reply;
  reply.add("reply");
  conn_->write(reply, false);
  conn_->closeLingering(std::chrono::milliseconds(10000), std::chrono::milliseconds(30000));
  EXPECT_EQ(ConnectionState::kClosing, conn_->state());
  EXPECT_EQ("reply", readPeer());
  EXPECT_TRUE(peer_eof_);  // our FIN came right after the reply
  const std::string junk(100000, 'j');
  size_t sent = 0;
  // More than the socket buffers hold: only a reader on the other side lets it all through.
  runUntil([&] {
    const ssize_t n = write(peer_, junk.data(), junk.size());
    if (n > 0) sent += static_cast<size_t>(n);
    return sent >= 40 * junk.size();
  });
  shutdown(peer_, SHUT_WR);
  runUntil([&] { return conn_->state() == ConnectionState::kClosed; });
  EXPECT_EQ("", filter_->received);
  // An accepted connection reports its transport ready (plain TCP: at once), then its end.
  ASSERT_EQ(2u, callbacks_.events.size());
  EXPECT_EQ(ConnectionEvent::kConnected, callbacks_.events[0]);
  EXPECT_EQ(ConnectionEvent::kLocalClose, callbacks_.events[1]);
}

// A peer that goes silent without closing is let go after the idle bound.
TEST_F(ConnectionTest, LingeringCloseEndsWhenThePeerGoesSilent) {
  conn_->initializeReadFilters();
  ASSERT_EQ(3, write(peer_, "abc", 3));
  conn_->closeLingering(std::chrono::milliseconds(20), std::chrono::milliseconds(30000));
  runUntil([&] { return conn_->state() == ConnectionState::kClosed; });
  EXPECT_EQ("", readPeer());
  EXPECT_TRUE(peer_eof_);
}

TEST_F(ConnectionTest, HalfCloseKeepsWritingUntilBothSidesAreDone) {
  conn_->enableHalfClose(true);
  conn_->initializeReadFilters();
  shutdown(peer_, SHUT_WR);
  runUntil([&] { return filter_->saw_end; });
  EXPECT_EQ(ConnectionState::kOpen, conn_->state());
  Buffer out;
  out.add("late reply");
  conn_->write(out, /*end_stream=*/true);
  runUntil([&] { return conn_->state() == ConnectionState::kClosed; });
  EXPECT_EQ("late reply", readPeer());
  EXPECT_TRUE(peer_eof_);
  // An accepted connection reports its transport ready (plain TCP: at once), then its end.
  ASSERT_EQ(2u, callbacks_.events.size());
  EXPECT_EQ(ConnectionEvent::kConnected, callbacks_.events[0]);
  EXPECT_EQ(ConnectionEvent::kLocalClose, callbacks_.events[1]);
}

TEST_F(ConnectionTest, WriteEndStreamHalfClosesOurSide) {
  conn_->enableHalfClose(true);
  conn_->initializeReadFilters();
  Buffer out;
  out.add("bye");
  conn_->write(out, true);
  EXPECT_EQ("bye", readPeer());
  EXPECT_TRUE(peer_eof_);
  // Our read side is still open: the peer can keep sending.
  ASSERT_EQ(4, write(peer_, "more", 4));
  runUntil([&] { return filter_->received == "more"; });
  EXPECT_EQ(ConnectionState::kOpen, conn_->state());
}

TEST_F(ConnectionTest, WatermarksFireAboveHighAndBelowLow) {
  conn_->setBufferLimits(64 * 1024);
  conn_->initializeReadFilters();
  std::string big(2 * 1024 * 1024, 'x');
  Buffer out;
  out.add(big);
  conn_->write(out, false);
  EXPECT_EQ(1, callbacks_.above);
  EXPECT_EQ(0, callbacks_.below);
  EXPECT_GT(conn_->writeBufferLength(), 64u * 1024);
  // The peer drains; the connection flushes on writability and reports below-low once.
  std::string got;
  runUntil([&] {
    got += readPeer();
    return got.size() == big.size();
  });
  EXPECT_EQ(big, got);
  EXPECT_EQ(1, callbacks_.above);
  EXPECT_EQ(1, callbacks_.below);
  EXPECT_EQ(0u, conn_->writeBufferLength());
}

TEST_F(ConnectionTest, CloseFlushWriteDeliversEverythingThenCloses) {
  conn_->initializeReadFilters();
  std::string big(1024 * 1024, 'y');
  Buffer out;
  out.add(big);
  conn_->write(out, false);
  conn_->close(CloseType::kFlushWrite);
  EXPECT_EQ(ConnectionState::kClosing, conn_->state());
  std::string got;
  runUntil([&] {
    got += readPeer();
    return conn_->state() == ConnectionState::kClosed && peer_eof_;
  });
  EXPECT_EQ(big.size(), got.size());
  // An accepted connection reports its transport ready (plain TCP: at once), then its end.
  ASSERT_EQ(2u, callbacks_.events.size());
  EXPECT_EQ(ConnectionEvent::kConnected, callbacks_.events[0]);
  EXPECT_EQ(ConnectionEvent::kLocalClose, callbacks_.events[1]);
}

TEST_F(ConnectionTest, CloseNoFlushDropsPendingBytes) {
  conn_->initializeReadFilters();
  std::string big(4 * 1024 * 1024, 'z');
  Buffer out;
  out.add(big);
  conn_->write(out, false);
  conn_->close(CloseType::kNoFlush);
  EXPECT_EQ(ConnectionState::kClosed, conn_->state());
  EXPECT_LT(readPeer().size(), big.size());
  EXPECT_TRUE(peer_eof_);
  // Writes after close are dropped, never queued.
  Buffer more;
  more.add("x");
  conn_->write(more, false);
  EXPECT_TRUE(more.empty());
  EXPECT_EQ(0u, conn_->writeBufferLength());
}

TEST_F(ConnectionTest, ReadDisableIsCounted) {
  conn_->initializeReadFilters();
  conn_->readDisable(true);
  conn_->readDisable(true);
  ASSERT_EQ(2, write(peer_, "hi", 2));
  auto t = dispatcher_->createTimer([&] { dispatcher_->exit(); });
  t->enableTimer(std::chrono::milliseconds(20));
  dispatcher_->run();
  EXPECT_EQ("", filter_->received);
  conn_->readDisable(false);
  EXPECT_FALSE(conn_->readEnabled());
  conn_->readDisable(false);
  EXPECT_TRUE(conn_->readEnabled());
  runUntil([&] { return filter_->received == "hi"; });
}

TEST_F(ConnectionTest, FilterMayUseItsDataAfterClosingTheConnection) {
  // A filter that closes the connection from inside onData still holds `data`: the connection
  // must not free its buffers under it (ASan would catch the use).
  class CloseThenRead : public ReadFilter {
   public:
    void initializeReadFilterCallbacks(ReadFilterCallbacks& cb) override { cb_ = &cb; }
    FilterStatus onData(Buffer& data, bool) override {
      cb_->connection().close(CloseType::kNoFlush);
      seen = data.toString();
      data.drain(data.length());
      return FilterStatus::kStopIteration;
    }
    std::string seen;

   private:
    ReadFilterCallbacks* cb_ = nullptr;
  };
  int sv[2];
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
  ConnectionImpl conn(*dispatcher_, sv[0], nullptr, Address(), Address());
  auto filter = std::make_unique<CloseThenRead>();
  CloseThenRead* f = filter.get();
  conn.addReadFilter(std::move(filter));
  conn.initializeReadFilters();
  ASSERT_EQ(4, write(sv[1], "data", 4));
  runUntil([&] { return conn.state() == ConnectionState::kClosed; });
  EXPECT_EQ("data", f->seen);
  close(sv[1]);
}

TEST(ClientConnectionTest, ConnectsAndReportsFailure) {
  auto dispatcher = event::CreateDispatcher("test");
  auto any = Address::fromIpPort("127.0.0.1", 0);
  auto lfd = CreateListenSocket(*any, ListenOptions{.reuse_port = false});
  ASSERT_TRUE(lfd.ok());
  const Address bound = *Address::localOf(*lfd);

  RecordingCallbacks ok_cb;
  ConnectionImpl ok(*dispatcher, bound, std::make_unique<RawBufferSocket>());
  ok.addConnectionCallbacks(ok_cb);
  ok_cb.on_event = [&](ConnectionEvent) { dispatcher->exit(); };
  ok.connect();
  dispatcher->run();
  ASSERT_EQ(1u, ok_cb.events.size());
  EXPECT_EQ(ConnectionEvent::kConnected, ok_cb.events[0]);
  EXPECT_EQ(bound.port(), ok.remoteAddress().port());
  ok_cb.on_event = nullptr;
  ok.close(CloseType::kNoFlush);

  // Nothing listens on a closed socket's port: the connect fails with kRemoteClose.
  close(*lfd);
  RecordingCallbacks fail_cb;
  ConnectionImpl fail(*dispatcher, bound, std::make_unique<RawBufferSocket>());
  fail.addConnectionCallbacks(fail_cb);
  fail_cb.on_event = [&](ConnectionEvent) { dispatcher->exit(); };
  fail.connect();
  dispatcher->run();
  ASSERT_EQ(1u, fail_cb.events.size());
  EXPECT_EQ(ConnectionEvent::kRemoteClose, fail_cb.events[0]);
  EXPECT_EQ(ConnectionState::kClosed, fail.state());
}

// Bytes read before the connection existed (a ClientHello read to choose the filter chain) reach
// the filters first, though no socket event announces them, and then the socket's own.
TEST(ConnectionInitialInputTest, ReadFirstWithoutASocketEvent) {
  auto dispatcher = event::CreateDispatcher("test");
  int sv[2];
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
  Buffer initial;
  initial.add("first ");
  auto conn =
      std::make_unique<ConnectionImpl>(*dispatcher, sv[0], nullptr, Address(), Address(), &initial);
  EXPECT_TRUE(initial.empty());
  auto filter = std::make_unique<RecordingFilter>();
  RecordingFilter& f = *filter;
  conn->addReadFilter(std::move(filter));
  EXPECT_TRUE(conn->inputPending());
  f.on_data = [&] {
    if (f.received == "first ") {
      ASSERT_EQ(6, write(sv[1], "second", 6));
    } else if (f.received == "first second") {
      dispatcher->exit();
    }
  };
  conn->initializeReadFilters();
  auto guard = dispatcher->createTimer([&] { dispatcher->exit(); });
  guard->enableTimer(std::chrono::seconds(10));
  dispatcher->run();
  EXPECT_EQ("first second", f.received);
  conn->close(CloseType::kNoFlush);
  close(sv[1]);
}

}  // namespace
}  // namespace sluice::network
