#include "source/server/control_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::server {
namespace {

namespace cv1 = sluice::control::v1;

// A control server on a dispatcher of its own thread, and a blocking client.
class ControlServerTest : public testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/sluice-control-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/control.sock";
    dispatcher_ = event::CreateDispatcher("control-test");
  }
  void TearDown() override {
    if (thread_.joinable()) {
      dispatcher_->post([this] { server_.reset(); });
      dispatcher_->exit();
      thread_.join();
    }
    server_.reset();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  void start(ControlServer::Handler handler) {
    auto s = ControlServer::Start(*dispatcher_, path_, std::move(handler));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    thread_ = std::thread([this] { dispatcher_->run(); });
  }
  int connectClient() {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path_.c_str(), sizeof(sun.sun_path) - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0) << strerror(errno);
    timeval tv{10, 0};  // a bound on every read: a broken server fails the test, not hangs it
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }
  static void send(int fd, const std::string& bytes) {
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // The next response, with the descriptors that came with it; nullopt at EOF. (One decoder
  // per client: a read may take more than one response.)
  std::optional<cv1::Response> read(int fd, std::vector<int>* fds = nullptr) {
    std::vector<int> ignored;
    control::FrameDecoder& d = decoders_[fd];
    while (true) {
      auto m = d.next();
      EXPECT_TRUE(m.ok());
      if (!m.ok()) return std::nullopt;
      if (m->has_value()) {
        cv1::Response r;
        EXPECT_TRUE(r.ParseFromString(**m));
        return r;
      }
      std::string bytes;
      auto n = control::RecvWithFds(fd, 4096, bytes, fds != nullptr ? *fds : ignored);
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok() || *n == 0) return std::nullopt;
      d.append(bytes);
    }
  }
  static std::string request(const cv1::Request& r) {
    return control::EncodeFrame(r.SerializeAsString());
  }

  std::string dir_, path_;
  event::DispatcherPtr dispatcher_;
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
  std::map<int, control::FrameDecoder> decoders_;
};

cv1::Request StatusRequest() {
  cv1::Request r;
  r.set_protocol(cv1::PROTOCOL_VERSION);
  r.mutable_status();
  return r;
}

TEST_F(ControlServerTest, AnswersInOrderAndSeesThePeer) {
  start([](const cv1::Request& request, pid_t peer) {
    cv1::Response r;
    r.mutable_status()->set_pid(static_cast<uint32_t>(peer));
    r.mutable_status()->set_state(request.has_status() ? "live" : "?");
    return std::vector<ControlFrame>{ControlServer::Reply(r)};
  });
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const int fd = connectClient();
  // Two requests in one write: two answers, in order.
  send(fd, request(StatusRequest()) + request(StatusRequest()));
  for (int i = 0; i < 2; ++i) {
    auto r = read(fd);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->error(), "");
    EXPECT_EQ(r->protocol(), static_cast<uint32_t>(cv1::PROTOCOL_VERSION));
    EXPECT_EQ(r->status().pid(), static_cast<uint32_t>(getpid()));
    EXPECT_EQ(r->status().state(), "live");
  }
  ::close(fd);
}

TEST_F(ControlServerTest, BadInputGetsAnErrorAndTheEnd) {
  start([](const cv1::Request&, pid_t) {
    return std::vector<ControlFrame>{ControlServer::Reply(cv1::Response())};
  });
  cv1::Request future = StatusRequest();
  future.set_protocol(2);
  const std::string oversized("\x7f\x00\x00\x00", 4);
  const std::string garbage = control::EncodeFrame("\xff\xff\xff");
  for (const std::string& bytes : {request(future), oversized, garbage}) {
    const int fd = connectClient();
    send(fd, bytes);
    auto r = read(fd);
    ASSERT_TRUE(r.has_value());
    EXPECT_NE(r->error(), "");
    EXPECT_FALSE(read(fd).has_value());  // then the server closes
    ::close(fd);
    decoders_.erase(fd);
  }
}

TEST_F(ControlServerTest, FramesCarryDescriptors) {
  // Three frames of 150 descriptors each: the handoff's shape.
  std::vector<int> pipes;
  for (int i = 0; i < 450; ++i) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    ::close(p[1]);
    pipes.push_back(p[0]);
  }
  start([&pipes](const cv1::Request&, pid_t) {
    std::vector<ControlFrame> frames;
    for (int b = 0; b < 3; ++b) {
      cv1::Response r;
      r.mutable_take_sockets()->set_more(b < 2);
      ControlFrame f = ControlServer::Reply(r);
      f.fds.assign(pipes.begin() + 150 * b, pipes.begin() + 150 * (b + 1));
      frames.push_back(std::move(f));
    }
    return frames;
  });
  const int fd = connectClient();
  send(fd, request(StatusRequest()));
  std::vector<int> got;
  for (int b = 0; b < 3; ++b) {
    auto r = read(fd, &got);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->take_sockets().more(), b < 2);
  }
  ASSERT_EQ(got.size(), pipes.size());
  for (size_t i = 0; i < got.size(); ++i) {
    struct stat a, b;
    ASSERT_EQ(fstat(got[i], &a), 0);
    ASSERT_EQ(fstat(pipes[i], &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino) << i;
    ::close(got[i]);
  }
  ::close(fd);
  for (int p : pipes) ::close(p);
}

TEST_F(ControlServerTest, ALiveSocketPathIsNotTaken) {
  start([](const cv1::Request&, pid_t) { return std::vector<ControlFrame>{}; });
  auto second = ControlServer::Start(*dispatcher_, path_, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another process listens"), std::string::npos)
      << second.status();
}

}  // namespace
}  // namespace sluice::server
