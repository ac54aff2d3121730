#include "source/network/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::network {

absl::StatusOr<std::unique_ptr<UnixListenSocket>> UnixListenSocket::Listen(const std::string& path,
                                                                           mode_t mode,
                                                                           int backlog) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path \"", path, "\" too long"));
  }
  memcpy(sun.sun_path, path.data(), path.size());
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket: not replaced"));
    }
    // A socket file: in use by a live process, or left behind by one that is gone.
    const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
    const bool live = connect(probe, reinterpret_cast<const sockaddr*>(&sun), len) == 0;
    const int err = errno;
    ::close(probe);
    if (live || err != ECONNREFUSED) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": another process listens on this socket",
                       live ? "" : absl::StrCat(" (or it cannot be probed: ", strerror(err), ")")));
    }
    ::unlink(path.c_str());
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  // The mode is set on the file before anyone can connect: bind under a umask that leaves no
  // permission to others, then chmod to what was asked.
  const mode_t old_umask = umask(0177);
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&sun), len);
  const int bind_errno = errno;
  umask(old_umask);
  if (rc != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("bind ", path, ": ", strerror(bind_errno)));
  }
  if (chmod(path.c_str(), mode) != 0 || listen(fd, backlog) != 0 || stat(path.c_str(), &st) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return absl::UnavailableError(absl::StrCat("listen on ", path, ": ", strerror(err)));
  }
  return std::unique_ptr<UnixListenSocket>(new UnixListenSocket(fd, path, st.st_ino));
}

absl::StatusOr<std::unique_ptr<UnixListenSocket>> UnixListenSocket::ListenReplacing(
    const std::string& path, mode_t mode, int backlog) {
  auto socket = ListenBeside(path, mode, backlog);
  if (!socket.ok()) return socket.status();
  if (auto s = (*socket)->takeOverPath(); !s.ok()) return s;
  return socket;
}

absl::StatusOr<std::unique_ptr<UnixListenSocket>> UnixListenSocket::ListenBeside(
    const std::string& path, mode_t mode, int backlog) {
  auto socket = Listen(absl::StrCat(path, ".", getpid()), mode, backlog);
  if (!socket.ok()) return socket.status();
  (*socket)->target_ = path;
  return socket;
}

absl::Status UnixListenSocket::takeOverPath() {
  if (target_.empty()) return absl::OkStatus();
  // rename(2) replaces the file in one step: a client finds either the old socket or ours,
  // never no file.
  if (rename(path_.c_str(), target_.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("rename ", path_, " to ", target_, ": ", strerror(errno)));
  }
  path_ = std::move(target_);
  target_.clear();
  return absl::OkStatus();
}

UnixListenSocket::~UnixListenSocket() {
  ::close(fd_);
  // Ours still (not replaced by another process meanwhile): remove it.
  struct stat st;
  if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode_) {
    ::unlink(path_.c_str());
  }
}

}  // namespace sluice::network
