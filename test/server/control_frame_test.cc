#include "source/server/control_frame.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "api/sluice/control/v1/control.pb.h"
#include "gtest/gtest.h"

namespace sluice::server::control {
namespace {

TEST(ControlFrameTest, MessagesSurviveAnySplit) {
  sluice::control::v1::Request request;
  request.set_protocol(sluice::control::v1::PROTOCOL_VERSION);
  request.mutable_stats()->set_filter("^cluster\\.");
  const std::string one = EncodeFrame(request.SerializeAsString());
  const std::string stream = one + EncodeFrame("") + one;
  // Every way of cutting the stream in two gives the same three messages.
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameDecoder d;
    std::vector<std::string> got;
    for (std::string_view part :
         {std::string_view(stream).substr(0, cut), std::string_view(stream).substr(cut)}) {
      d.append(part);
      while (true) {
        auto m = d.next();
        ASSERT_TRUE(m.ok()) << m.status();
        if (!m->has_value()) break;
        got.push_back(**m);
      }
    }
    ASSERT_EQ(got.size(), 3u) << cut;
    sluice::control::v1::Request parsed;
    ASSERT_TRUE(parsed.ParseFromString(got[0]));
    EXPECT_EQ(parsed.stats().filter(), "^cluster\\.");
    EXPECT_EQ(got[1], "");
    EXPECT_EQ(got[2], got[0]);
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(ControlFrameTest, AnOversizedLengthIsAnError) {
  FrameDecoder d;
  d.append(std::string("\x01\x00\x00\x01", 4));  // 16 MiB + 1
  auto m = d.next();
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("more than"), std::string::npos) << m.status();
}

TEST(ControlFrameTest, DescriptorsTravelInBatches) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  // 450 descriptors (three batches, over the kernel's 253 per message) of distinct files.
  std::vector<int> sent;
  std::vector<ino_t> inodes;
  for (int i = 0; i < 450; ++i) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    struct stat st;
    ASSERT_EQ(fstat(p[0], &st), 0);
    sent.push_back(p[0]);
    inodes.push_back(st.st_ino);
  }
  std::vector<int> received;
  std::string bytes;
  for (size_t at = 0; at < sent.size(); at += kMaxFdsPerMessage) {
    const size_t n = std::min(kMaxFdsPerMessage, sent.size() - at);
    const std::string frame = EncodeFrame(std::to_string(at));
    ASSERT_TRUE(SendWithFds(sv[0], frame, absl::MakeConstSpan(sent).subspan(at, n)).ok());
    // Read exactly this frame (a stream may merge messages; the fds stay with their bytes).
    size_t got = 0;
    while (got < frame.size()) {
      auto r = RecvWithFds(sv[1], frame.size() - got, bytes, received);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_GT(*r, 0u);
      got += *r;
    }
  }
  ASSERT_EQ(received.size(), sent.size());
  for (size_t i = 0; i < received.size(); ++i) {
    struct stat st;
    ASSERT_EQ(fstat(received[i], &st), 0);
    EXPECT_EQ(st.st_ino, inodes[i]) << i;
    EXPECT_EQ(fcntl(received[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC) << i;
    close(received[i]);
    close(sent[i]);
  }
  EXPECT_FALSE(SendWithFds(sv[0], "", {}).ok());
  close(sv[0]);
  close(sv[1]);
}

TEST(ControlFrameTest, ExchangeReadsMessagesUntilTheHandlerIsDone) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  // The peer's answers are already there, split across a descriptor batch.
  const std::string answers = EncodeFrame("one") + EncodeFrame("two");
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null, 0);
  const int passed[] = {null};
  ASSERT_TRUE(SendWithFds(sv[1], answers.substr(0, 5), passed).ok());
  ::close(null);
  ASSERT_EQ(::send(sv[1], answers.data() + 5, answers.size() - 5, 0),
            static_cast<ssize_t>(answers.size() - 5));
  std::vector<std::string> got;
  std::vector<int> fds;
  auto s = Exchange(sv[0], "request", fds, [&](std::string_view m) -> absl::StatusOr<bool> {
    got.emplace_back(m);
    return got.size() < 2;
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ((std::vector<std::string>{"one", "two"}), got);
  EXPECT_EQ(1u, fds.size());
  // The request went out framed.
  std::string request(EncodeFrame("request").size(), '\0');
  ASSERT_EQ(::recv(sv[1], request.data(), request.size(), MSG_WAITALL),
            static_cast<ssize_t>(request.size()));
  EXPECT_EQ(EncodeFrame("request"), request);
  // A handler's error ends the exchange with it; the peer's close is an error too.
  const std::string three = EncodeFrame("three");
  ASSERT_EQ(::send(sv[1], three.data(), three.size(), 0), static_cast<ssize_t>(three.size()));
  s = Exchange(sv[0], "again", fds, [](std::string_view) -> absl::StatusOr<bool> {
    return absl::DataLossError("not ours");
  });
  EXPECT_EQ("not ours", s.message());
  ::close(sv[1]);
  s = Exchange(sv[0], "last", fds, [](std::string_view) -> absl::StatusOr<bool> { return true; });
  EXPECT_FALSE(s.ok());
  for (int fd : fds) ::close(fd);
  ::close(sv[0]);
}

TEST(ControlFrameTest, ConnectBlockingSaysWhyItCannot) {
  auto fd = ConnectBlocking("/nonexistent/sluice-control.sock", 1);
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(std::string::npos,
            fd.status().message().find("cannot reach a running sluice at /nonexistent/"))
      << fd.status();
  EXPECT_FALSE(ConnectBlocking(std::string(200, 'x'), 1).ok());
}

}  // namespace
}  // namespace sluice::server::control
