#include "source/common/access_log_writer.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "source/common/crash_handler.h"
#include "source/common/logging.h"

namespace sluice::access_log {

namespace {

// Each file's index in every thread's table of its queues (never reused, so a table entry of a
// file that is gone — a test's earlier manager — is never looked at again).
std::atomic<uint64_t> g_next_file_id{0};
thread_local std::vector<void*> t_queues;

constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK;

// Opens `path` for appending; -1 with errno set when it cannot be.
int OpenLog(const std::string& path) {
  const std::string& p = path.empty() ? std::string("/dev/stdout") : path;
  int fd;
  do {
    fd = open(p.c_str(), kOpenFlags, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

bool IsFifo(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

}  // namespace

// One thread's queue for one file: `active` is filled by the thread under `mu`; the writer
// swaps it with `spare` (its own while it writes it) under the same mutex.
// (A std::mutex: its uncontended lock and unlock are a few instructions, absl::Mutex's ~360 a
// line here; the only other taker, the writer, holds it for a swap.)
struct LogFile::Queue {
  std::mutex mu;
  std::string active;  // guarded by mu
  uint32_t lines = 0;  // guarded by mu
  // The writer was woken for this batch already (guarded by mu).
  bool woke = false;
  std::string spare;  // writer thread only
};

LogFile::LogFile(Manager& manager, FileOptions options, int fd, stats::Store& store)
    : manager_(manager),
      options_(std::move(options)),
      id_(g_next_file_id.fetch_add(1, std::memory_order_relaxed)),
      fd_(fd),
      owns_fd_(true),
      written_(store.counter(absl::StrCat("access_log.", options_.name, ".written"))),
      dropped_(store.counter(absl::StrCat("access_log.", options_.name, ".dropped"))),
      write_errors_(store.counter(absl::StrCat("access_log.", options_.name, ".write_errors"))),
      reopens_(store.counter(absl::StrCat("access_log.", options_.name, ".reopens"))) {
  noteKind();
  // A FIFO nobody reads yet (not open): known by its path.
  if (fd_ < 0) fifo_ = IsFifo(options_.path);
}

LogFile::~LogFile() {
  if (owns_fd_ && fd_ >= 0) close(fd_);
}

LogFile::Queue& LogFile::threadQueue() {
  if (id_ < t_queues.size() && t_queues[id_] != nullptr) {
    return *static_cast<Queue*>(t_queues[id_]);
  }
  // This thread's first line for this file: its queue is made once.
  auto queue = std::make_unique<Queue>();
  Queue* q = queue.get();
  {
    absl::MutexLock lock(&queues_mu_);
    queues_.push_back(std::move(queue));
  }
  if (t_queues.size() <= id_) t_queues.resize(id_ + 1, nullptr);
  t_queues[id_] = q;
  return *q;
}

void LogFile::write(std::string_view line) {
  Queue& q = threadQueue();
  bool wake = false;
  bool full;
  {
    std::lock_guard<std::mutex> lock(q.mu);
    full = q.active.size() + line.size() > options_.buffer_bytes;
    if (!full) {
      if (q.active.capacity() < options_.buffer_bytes) q.active.reserve(options_.buffer_bytes);
      q.active.append(line);
      ++q.lines;
      if (!q.woke && q.active.size() >= options_.buffer_bytes / 2) {
        q.woke = true;
        wake = true;
      }
    }
  }
  if (full) {
    dropped_.inc();
    return;
  }
  if (wake) manager_.wake();
}

void LogFile::collect() {
  if (!inflight_.empty()) return;  // the file has not taken the last batch yet
  absl::MutexLock registry(&queues_mu_);
  for (auto& queue : queues_) {
    Queue& q = *queue;
    uint32_t lines;
    {
      std::lock_guard<std::mutex> lock(q.mu);
      if (q.active.empty()) continue;
      q.spare.clear();
      q.active.swap(q.spare);
      lines = q.lines;
      q.lines = 0;
      q.woke = false;
    }
    inflight_.push_back(Batch{&q, 0, lines});
  }
}

bool LogFile::ensureOpen() {
  if (fd_ >= 0) return true;
  fd_ = OpenLog(options_.path);
  if (fd_ < 0) return false;
  noteKind();
  return true;
}

void LogFile::noteKind() {
  struct stat st;
  fifo_ = fd_ >= 0 && fstat(fd_, &st) == 0 && S_ISFIFO(st.st_mode);
}

void LogFile::dropInflight() {
  for (const Batch& b : inflight_) {
    dropped_.add(b.lines);
    b.queue->spare.clear();
  }
  inflight_.clear();
}

bool LogFile::flush() {
  if (inflight_.empty()) return true;
  if (!ensureOpen()) {
    // A FIFO without a reader (ENXIO): the lines wait, bounded by the queues, until one comes.
    return false;
  }
  while (!inflight_.empty()) {
    struct iovec iov[64];
    int n = 0;
    if (fifo_) {
      // A pipe takes a write of at most PIPE_BUF bytes whole or not at all: whole lines only,
      // so that a reader never sees part of one (a longer line goes alone).
      const Batch& b = inflight_.front();
      const char* data = b.queue->spare.data() + b.offset;
      size_t len = b.queue->spare.size() - b.offset;
      if (len > PIPE_BUF) {
        const void* nl = memrchr(data, '\n', PIPE_BUF);
        if (nl == nullptr) nl = memchr(data, '\n', len);
        if (nl != nullptr) len = static_cast<const char*>(nl) - data + 1;
      }
      iov[n++] = {const_cast<char*>(data), len};
    } else {
      for (const Batch& b : inflight_) {
        if (n == 64) break;
        iov[n].iov_base = b.queue->spare.data() + b.offset;
        iov[n].iov_len = b.queue->spare.size() - b.offset;
        ++n;
      }
    }
    const ssize_t rc = writev(fd_, iov, n);
    if (rc < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;  // wait for POLLOUT
      const int err = errno;
      write_errors_.inc();
      if (!error_logged_) {
        error_logged_ = true;
        SLUICE_LOG(kError, "access log %s (%s): write failed: %s; its lines are dropped",
                   options_.name, options_.path.empty() ? "stdout" : options_.path,
                   std::strerror(err));
      }
      dropInflight();
      if (err == EPIPE && fifo_) {
        // The FIFO's reader went away: open it again when another comes.
        close(fd_);
        fd_ = -1;
      }
      return true;
    }
    error_logged_ = false;
    // Lines are counted as their newline goes out.
    size_t left = static_cast<size_t>(rc);
    size_t done = 0;
    for (Batch& b : inflight_) {
      if (left == 0) break;
      const size_t size = b.queue->spare.size() - b.offset;
      const size_t take = std::min(left, size);
      const char* p = b.queue->spare.data() + b.offset;
      uint32_t lines = 0;
      for (const char* end = p + take; (p = static_cast<const char*>(memchr(p, '\n', end - p)));
           ++p) {
        ++lines;
      }
      written_.add(lines);
      b.lines -= std::min(b.lines, lines);
      b.offset += take;
      left -= take;
      if (b.offset == b.queue->spare.size()) {
        b.queue->spare.clear();
        ++done;
      }
    }
    inflight_.erase(inflight_.begin(), inflight_.begin() + static_cast<ptrdiff_t>(done));
  }
  return true;
}

void LogFile::dropQueued() {
  absl::MutexLock registry(&queues_mu_);
  for (auto& queue : queues_) {
    std::lock_guard<std::mutex> lock(queue->mu);
    dropped_.add(queue->lines);
    queue->lines = 0;
    queue->active.clear();
  }
}

void LogFile::reopen() {
  if (options_.path.empty()) return;  // the standard output stays
  reopens_.inc();
  if (fd_ >= 0 && owns_fd_) close(fd_);
  fd_ = -1;
  // What could not be written to the old file goes to the new one.
  if (!ensureOpen() && !(errno == ENXIO && IsFifo(options_.path))) {
    write_errors_.inc();
    SLUICE_LOG(kError, "access log %s: cannot reopen %s: %s (trying again at each flush)",
               options_.name, options_.path, std::strerror(errno));
  }
}

// ---------------------------------------------------------------------------------------------

Manager::Manager(stats::Store& store) : store_(store) {}

Manager::~Manager() {
  stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::StatusOr<LogFile*> Manager::file(const FileOptions& options) {
  for (auto& f : files_) {
    if (f->path() == options.path) return f.get();
  }
  for (auto& f : files_) {
    if (f->name() == options.name) {
      return absl::InvalidArgumentError(
          absl::StrCat("access log name \"", options.name, "\" is already used by ",
                       f->path().empty() ? std::string("stdout") : f->path(),
                       " (give one of them another `name`)"));
    }
  }
  int fd = OpenLog(options.path);
  if (fd < 0 && options.path.empty()) {
    // The standard output is a socket (systemd's journal): /dev/stdout cannot be opened anew
    // (with a non-blocking description of our own); the writer then writes to it as it is,
    // and may wait on it (the workers still never do).
    fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  }
  if (fd < 0) {
    const int err = errno;
    // A FIFO nobody reads yet: opened by the writer once a reader comes.
    if (!(err == ENXIO && IsFifo(options.path))) {
      return absl::UnavailableError(absl::StrCat(
          "cannot open access log ", options.path.empty() ? "/dev/stdout" : options.path,
          " for appending: ", std::strerror(err)));
    }
  }
  files_.push_back(std::unique_ptr<LogFile>(new LogFile(*this, options, fd, store_)));
  return files_.back().get();
}

void Manager::wake() {
  if (wake_fd_ < 0) return;  // no writer yet: it takes what is queued when it starts
  const uint64_t one = 1;
  // EAGAIN: the counter is already set (the writer has a wake-up pending).
  [[maybe_unused]] ssize_t rc = ::write(wake_fd_, &one, sizeof(one));
}

void Manager::reopen() {
  reopen_.store(true, std::memory_order_release);
  wake();
}

void Manager::start() {
  // Nothing at all (not even a descriptor) without an access log.
  if (thread_.joinable() || files_.empty()) return;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    SLUICE_LOG(kError, "access logs: eventfd: %s (the writer flushes on its interval only)",
               std::strerror(errno));
  }
  // Signals are for the main thread's loop (as the workers do).
  sigset_t block;
  sigemptyset(&block);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE}) sigaddset(&block, sig);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  thread_ = std::thread([this] {
    log::SetThreadName("access_log");
    crash::OnThreadStart("sluice-accesslog");
    run();
  });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void Manager::stop(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return;
  stop_deadline_ = std::chrono::steady_clock::now() + timeout;
  stopping_.store(true, std::memory_order_release);
  wake();
  thread_.join();
}

void Manager::turn(bool all, std::vector<int>& blocked) {
  const auto now = std::chrono::steady_clock::now();
  for (auto& f : files_) {
    if (!all && now < f->next_flush_ && !f->hasInflight()) continue;
    f->next_flush_ = now + f->options_.flush_interval;
    f->collect();
    if (!f->flush() && f->fd_ >= 0) blocked.push_back(f->fd_);
  }
}

void Manager::run() {
  std::vector<int> blocked;
  std::vector<pollfd> fds;
  while (true) {
    const bool stopping = stopping_.load(std::memory_order_acquire);
    if (reopen_.exchange(false, std::memory_order_acq_rel)) {
      // What was queued before the signal goes to the old file.
      blocked.clear();
      turn(/*all=*/true, blocked);
      for (auto& f : files_) f->reopen();
      SLUICE_LOG(kInfo, "access logs reopened");
    }
    blocked.clear();
    turn(/*all=*/stopping, blocked);
    if (stopping) {
      bool pending = false;
      for (auto& f : files_) pending = pending || f->hasInflight();
      // (A queue may have gained lines since the turn only from a worker still running:
      // stop() is called after the workers are gone.)
      const auto now = std::chrono::steady_clock::now();
      if (!pending) break;
      if (now >= stop_deadline_) {
        // What the files did not take in time (a FIFO nobody reads) is counted as dropped.
        for (auto& f : files_) {
          f->dropInflight();
          f->dropQueued();
        }
        break;
      }
    }
    // Sleep until the next file is due, a queue fills, a signal, or a blocked file can take
    // more.
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto& f : files_) next = std::min(next, f->next_flush_);
    const auto now = std::chrono::steady_clock::now();
    int timeout_ms = 0;
    if (next > now) {
      timeout_ms = static_cast<int>(std::min<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1, 60000));
    }
    if (stopping) timeout_ms = std::min(timeout_ms, 10);
    if (wake_fd_ < 0) timeout_ms = std::min(timeout_ms, 100);  // no eventfd: poll instead
    fds.clear();
    fds.push_back(pollfd{wake_fd_, POLLIN, 0});
    for (int fd : blocked) fds.push_back(pollfd{fd, POLLOUT, 0});
    const int rc = poll(fds.data(), fds.size(), timeout_ms);
    if (rc > 0 && (fds[0].revents & POLLIN) != 0) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof(count));
      // Woken: a queue is half full (or a signal, or stop): every file takes its queues now.
      blocked.clear();
      turn(/*all=*/true, blocked);
    }
  }
}

}  // namespace sluice::access_log
