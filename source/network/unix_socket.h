#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sluice::network {

// A listening unix-domain stream socket bound to a path (the admin's socket, the control
// socket). It owns the descriptor and, on destruction, removes the file if it is still the one
// it bound: a successor that replaced it (a hot restart binds the same path) keeps its own.
class UnixListenSocket {
 public:
  // Binds `path` with `mode` (set before anyone can connect: bound under a umask that allows
  // nothing to others, then chmod) and listens with `backlog`.
  //
  // A socket file already there is replaced only when nothing listens on it (a connect is
  // refused: left behind by a process that is gone); a live one is FailedPreconditionError
  // ("another process listens on this socket") and is left alone, as is a path that is not a
  // socket.
  static absl::StatusOr<std::unique_ptr<UnixListenSocket>> Listen(const std::string& path,
                                                                  mode_t mode, int backlog);
  // The same, taking the path over from a live process (hot restart: the successor's control
  // socket): bound at a temporary name beside it, then renamed over it, so that the path always
  // answers — the old process keeps its socket, unnamed, and does not remove ours.
  static absl::StatusOr<std::unique_ptr<UnixListenSocket>> ListenReplacing(const std::string& path,
                                                                           mode_t mode,
                                                                           int backlog);
  // ListenReplacing in two steps: listens at the temporary name now, and takes `path` over in
  // takeOverPath(). Between the two, the live process keeps the path, and this socket's end
  // removes only the temporary file (a hot restart's successor that fails before it serves).
  static absl::StatusOr<std::unique_ptr<UnixListenSocket>> ListenBeside(const std::string& path,
                                                                        mode_t mode, int backlog);
  // Renames the socket of ListenBeside() over its path (once; a no-op for the others).
  absl::Status takeOverPath();
  ~UnixListenSocket();
  UnixListenSocket(const UnixListenSocket&) = delete;
  UnixListenSocket& operator=(const UnixListenSocket&) = delete;

  // Non-blocking, close-on-exec.
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  UnixListenSocket(int fd, std::string path, uint64_t inode)
      : fd_(fd), path_(std::move(path)), inode_(inode) {}

  int fd_;
  std::string path_;
  uint64_t inode_;
  // ListenBeside(): the path takeOverPath() renames path_ over (empty once it did).
  std::string target_;
};

}  // namespace sluice::network
