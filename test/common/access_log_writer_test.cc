// The access log writer: per-thread bounded queues (a full one drops and counts, never blocks),
// the writer thread's batches, reopening after a rename, a FIFO nobody reads, and a clean stop
// that writes every queued line.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/common/access_log_writer.h"

namespace sluice::access_log {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sluice-accesslog-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Polls `done` (every millisecond, at most 20 s): for what the writer thread does on its own.
bool Await(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

FileOptions Options(const std::string& path, const std::string& name) {
  FileOptions o;
  o.path = path;
  o.name = name;
  return o;
}

TEST(AccessLogWriterTest, EveryLineOfEveryThreadIsWrittenWhole) {
  TempDir dir;
  stats::Store store;
  const std::string path = dir.file("a.log");
  {
    Manager manager(store);
    FileOptions o = Options(path, "a");
    o.buffer_bytes = 1 << 20;
    auto file = manager.file(o);
    ASSERT_TRUE(file.ok()) << file.status();
    manager.start();
    constexpr int kThreads = 4;
    constexpr int kLines = 5000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kLines; ++i) {
          (*file)->write("thread " + std::to_string(t) + " line " + std::to_string(i) + "\n");
        }
      });
    }
    for (auto& t : threads) t.join();
    manager.stop();
    EXPECT_EQ(store.valueOf("access_log.a.written"), kThreads * kLines);
    EXPECT_EQ(store.valueOf("access_log.a.dropped"), 0);
  }
  const auto lines = Lines(path);
  ASSERT_EQ(lines.size(), 4u * 5000u);
  // Each thread's lines in its order.
  std::vector<int> next(4, 0);
  for (const std::string& l : lines) {
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(l.c_str(), "thread %d line %d", &t, &i), 2) << l;
    ASSERT_GE(t, 0);
    ASSERT_LT(t, 4);
    EXPECT_EQ(i, next[t]++);
  }
}

TEST(AccessLogWriterTest, AFullQueueDropsAndCounts) {
  TempDir dir;
  stats::Store store;
  Manager manager(store);
  FileOptions o = Options(dir.file("b.log"), "b");
  o.buffer_bytes = 4096;
  auto file = manager.file(o);
  ASSERT_TRUE(file.ok());
  // No writer thread yet: the queue fills and the rest is dropped, at once.
  const std::string line(100, 'x');
  for (int i = 0; i < 100; ++i) (*file)->write(line + "\n");
  EXPECT_EQ(store.valueOf("access_log.b.dropped"), 100 - 4096 / 101);
  manager.start();
  manager.stop();
  EXPECT_EQ(store.valueOf("access_log.b.written"), 4096 / 101);
  EXPECT_EQ(Lines(dir.file("b.log")).size(), size_t{4096 / 101});
}

TEST(AccessLogWriterTest, ReopenAfterRename) {
  TempDir dir;
  stats::Store store;
  const std::string path = dir.file("c.log");
  Manager manager(store);
  FileOptions o = Options(path, "c");
  o.flush_interval = std::chrono::milliseconds(5);
  auto file = manager.file(o);
  ASSERT_TRUE(file.ok());
  manager.start();
  (*file)->write("before\n");
  ASSERT_TRUE(Await([&] { return store.valueOf("access_log.c.written") == 1; }));
  ASSERT_EQ(std::rename(path.c_str(), dir.file("c.log.1").c_str()), 0);
  (*file)->write("queued before the reopen\n");
  manager.reopen();
  ASSERT_TRUE(Await([&] { return store.valueOf("access_log.c.reopens") == 1; }));
  (*file)->write("after\n");
  manager.stop();
  EXPECT_EQ(Lines(dir.file("c.log.1")),
            (std::vector<std::string>{"before", "queued before the reopen"}));
  EXPECT_EQ(Lines(path), (std::vector<std::string>{"after"}));
}

TEST(AccessLogWriterTest, AFifoNobodyReadsNeverBlocksAWriter) {
  TempDir dir;
  stats::Store store;
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Manager manager(store);
  FileOptions o = Options(fifo, "f");
  o.buffer_bytes = 4096;
  o.flush_interval = std::chrono::milliseconds(1);
  auto file = manager.file(o);
  ASSERT_TRUE(file.ok()) << file.status();
  manager.start();
  // Nobody opened it for reading: nothing can be written, the queue fills, lines drop.
  const std::string line(99, 'y');
  for (int i = 0; i < 1000; ++i) (*file)->write(line + "\n");
  EXPECT_GE(store.valueOf("access_log.f.dropped"), 1000 - 2 * 4096 / 100);
  // A reader that never reads: the pipe fills, then the queues.
  const int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  for (int i = 0; i < 100000; ++i) (*file)->write(line + "\n");
  ASSERT_TRUE(Await([&] { return store.valueOf("access_log.f.written") > 0; }));
  const int64_t dropped = store.valueOf("access_log.f.dropped");
  EXPECT_GT(dropped, 1000 - 2 * 4096 / 100 + 90000);
  // stop() gives up on it in bounded time; what it could not write is counted.
  const auto t0 = std::chrono::steady_clock::now();
  manager.stop(std::chrono::milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(store.valueOf("access_log.f.written") + store.valueOf("access_log.f.dropped"), 101000);
  // Every line that reached the pipe is whole.
  std::string got;
  char buf[65536];
  ssize_t n;
  while ((n = read(reader, buf, sizeof(buf))) > 0) got.append(buf, n);
  close(reader);
  EXPECT_EQ(got.size() % 100, 0u);
  EXPECT_EQ(static_cast<int64_t>(got.size() / 100), store.valueOf("access_log.f.written"));
}

TEST(AccessLogWriterTest, SharedPathsAndBadPaths) {
  TempDir dir;
  stats::Store store;
  Manager manager(store);
  auto a = manager.file(Options(dir.file("d.log"), "d"));
  auto b = manager.file(Options(dir.file("d.log"), "other"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  auto clash = manager.file(Options(dir.file("e.log"), "d"));
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find("access log name \"d\" is already used by"),
            std::string::npos)
      << clash.status();
  auto missing = manager.file(Options(dir.file("no/such/dir.log"), "x"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot open access log"), std::string::npos)
      << missing.status();
}

}  // namespace
}  // namespace sluice::access_log
