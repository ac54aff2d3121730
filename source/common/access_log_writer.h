#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "source/common/stats.h"

namespace sluice::access_log {

// Where access log lines go, and how they get there without a worker ever waiting for a disk.
//
// Each thread that writes to a file has its own bounded queue for it (a buffer behind a mutex
// that only that thread and the writer take: no lock is shared between workers). A line is
// appended whole or, when the queue is full, dropped and counted. One writer thread per process
// takes each queue's buffer by swapping it with an empty one (two buffers per queue, reused:
// nothing is allocated per line once warm) and writes the batch with writev(2): when a queue
// passes half its size (the thread that fills it wakes the writer) or every flush interval.
// Files are opened O_APPEND | O_NONBLOCK: a FIFO that nobody reads never blocks the writer
// either (it waits for POLLOUT while the queues fill and drop), and a FIFO without a reader yet
// is opened once one comes. As in Envoy's access log manager (a flush thread, a reopen flag)
// and nginx's `access_log ... buffer= flush=`, but bounded per worker rather than blocking.

struct FileOptions {
  // A file path, or empty for the standard output.
  std::string path;
  // The stats name: access_log.<name>.written / .dropped / .write_errors / .reopens.
  std::string name;
  // Bytes one thread may queue for the file before its lines are dropped.
  uint32_t buffer_bytes = 64 * 1024;
  // Longest a queued line waits.
  std::chrono::milliseconds flush_interval{1000};
};

class Manager;

// One log file, shared by every access log that names its path.
class LogFile {
 public:
  // Any thread: queues `line` (with its newline), or drops and counts it when this thread's
  // queue is full. Never blocks on I/O.
  void write(std::string_view line);
  const std::string& name() const { return options_.name; }
  const std::string& path() const { return options_.path; }
  ~LogFile();

 private:
  friend class Manager;
  struct Queue;
  // What the writer took from one queue and has not fully written yet.
  struct Batch {
    Queue* queue;
    size_t offset;
    uint32_t lines;
  };

  LogFile(Manager& manager, FileOptions options, int fd, stats::Store& store);
  Queue& threadQueue();
  // Writer thread: moves what the queues hold into `inflight_` (when it is empty).
  void collect();
  // Writer thread: writes as much of `inflight_` as the file takes now. True when all of it
  // went (or was lost to an error); false when the file would block (wait for POLLOUT).
  bool flush();
  // Writer thread: tries to open the file (a FIFO with no reader yet is opened later).
  bool ensureOpen();
  void reopen();
  // Counts what the writer holds / the queues hold as dropped, and forgets it.
  void dropInflight();
  void dropQueued();
  void noteKind();
  bool hasInflight() const { return !inflight_.empty(); }

  Manager& manager_;
  const FileOptions options_;
  const uint64_t id_;  // this file's index in each thread's queue table
  int fd_;
  const bool owns_fd_;
  stats::Counter& written_;
  stats::Counter& dropped_;
  stats::Counter& write_errors_;
  stats::Counter& reopens_;
  absl::Mutex queues_mu_;
  std::vector<std::unique_ptr<Queue>> queues_ ABSL_GUARDED_BY(queues_mu_);
  // Writer thread only.
  std::vector<Batch> inflight_;
  std::chrono::steady_clock::time_point next_flush_{};
  bool error_logged_ = false;
  bool fifo_ = false;  // writes of whole lines, PIPE_BUF at most
};

// The process's access log files and their writer thread. Main thread: files are made at
// config time, then start(); reopen() from the SIGUSR1 handler; stop() once the workers are
// gone.
class Manager {
 public:
  explicit Manager(stats::Store& store);
  // stop(), if start() was called.
  ~Manager();

  // The file for `options.path` (the standard output when empty), opened now so that a path
  // that cannot be written is an error at start-up, not a silent loss. An existing file of
  // that path is returned as it is (its first options stay).
  absl::StatusOr<LogFile*> file(const FileOptions& options);
  // Starts the writer thread (when there is a file).
  void start();
  bool hasFiles() const { return !files_.empty(); }
  // Any thread: every file is reopened at the writer's next turn (what was queued before goes
  // to the old file). The standard output is not.
  void reopen();
  // Writes every line queued so far, then stops the writer thread. Bounded by `timeout` for
  // files that do not take them (a FIFO nobody reads: those lines are counted as dropped); a
  // regular file's write(2) is waited for.
  void stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  // A queue passed half its size (any thread).
  void wake();

 private:
  void run();
  // One pass over every file: take what the queues hold (all of them when `all`, else the ones
  // whose flush interval has passed) and write it. Returns the fds that would block.
  void turn(bool all, std::vector<int>& blocked);

  stats::Store& store_;
  int wake_fd_ = -1;                             // eventfd
  std::vector<std::unique_ptr<LogFile>> files_;  // fixed once start() ran
  std::thread thread_;
  std::atomic<bool> reopen_{false};
  std::atomic<bool> stopping_{false};
  std::chrono::steady_clock::time_point stop_deadline_;
};

}  // namespace sluice::access_log
