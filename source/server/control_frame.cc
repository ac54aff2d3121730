#include "source/server/control_frame.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::server::control {

std::string EncodeFrame(std::string_view message) {
  std::string out;
  out.reserve(kFrameHeaderBytes + message.size());
  const uint32_t n = static_cast<uint32_t>(message.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(message);
  return out;
}

absl::StatusOr<std::optional<std::string>> FrameDecoder::next() {
  if (buffered() < kFrameHeaderBytes) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(pending_.data() + consumed_);
  const size_t n = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
  if (n > kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat("control message of ", n,
                                                   " bytes: more than the ", kMaxMessageBytes,
                                                   " allowed (not a sluice control peer?)"));
  }
  if (buffered() < kFrameHeaderBytes + n) return std::nullopt;
  std::string message = pending_.substr(consumed_ + kFrameHeaderBytes, n);
  consumed_ += kFrameHeaderBytes + n;
  // Compact once what was handed out dominates, so that a long session does not grow.
  if (consumed_ == pending_.size()) {
    pending_.clear();
    consumed_ = 0;
  } else if (consumed_ > 64 * 1024 && consumed_ * 2 > pending_.size()) {
    pending_.erase(0, consumed_);
    consumed_ = 0;
  }
  return message;
}

absl::StatusOr<size_t> SendSome(int sock, std::string_view bytes, absl::Span<const int> fds,
                                bool wait) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("control socket: ", fds.size(), " fds, at most ", kMaxFdsPerMessage));
  }
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  while (true) {
    const ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (!wait && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return absl::UnavailableError(absl::StrCat("control socket: sendmsg: ", strerror(errno)));
  }
}

absl::Status SendWithFds(int sock, std::string_view bytes, absl::Span<const int> fds) {
  if (bytes.empty()) return absl::InvalidArgumentError("SendWithFds: no bytes to carry the fds");
  size_t sent = 0;
  while (sent < bytes.size()) {
    auto n = SendSome(sock, bytes.substr(sent), sent == 0 ? fds : absl::Span<const int>(),
                      /*wait=*/true);
    if (!n.ok()) return n.status();
    sent += *n;
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> RecvWithFds(int sock, size_t max, std::string& out, std::vector<int>& fds) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage));
  const size_t old = out.size();
  out.resize(old + max);
  iovec iov{out.data() + old, max};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    out.resize(old);
    return absl::UnavailableError(absl::StrCat("control socket: recvmsg: ", strerror(errno)));
  }
  out.resize(old + static_cast<size_t>(n));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const size_t at = fds.size();
    fds.resize(at + count);
    std::memcpy(fds.data() + at, CMSG_DATA(c), count * sizeof(int));
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    // Descriptors beyond our buffer were closed by the kernel: the handoff is incomplete.
    return absl::DataLossError("control socket: descriptors were cut (MSG_CTRUNC)");
  }
  return static_cast<size_t>(n);
}

absl::StatusOr<int> ConnectBlocking(const std::string& path, int timeout_seconds) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("bad control socket path \"", path, "\""));
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  std::memcpy(sun.sun_path, path.data(), path.size());
  timeval tv{timeout_seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot reach a running sluice at ", path, ": ", strerror(err)));
  }
  return fd;
}

absl::Status Exchange(int sock, std::string_view request, std::vector<int>& fds,
                      const std::function<absl::StatusOr<bool>(std::string_view)>& on_message) {
  if (auto s = SendWithFds(sock, EncodeFrame(request), {}); !s.ok()) return s;
  FrameDecoder decoder;
  std::string bytes;
  while (true) {
    auto m = decoder.next();
    if (!m.ok()) return m.status();
    if (m->has_value()) {
      auto more = on_message(**m);
      if (!more.ok()) return more.status();
      if (!*more) return absl::OkStatus();
      continue;
    }
    bytes.clear();
    auto n = RecvWithFds(sock, 65536, bytes, fds);
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::UnavailableError("control socket: closed by the running sluice");
    decoder.append(bytes);
  }
}

}  // namespace sluice::server::control
