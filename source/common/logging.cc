#include "source/common/logging.h"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace sluice::log {

namespace internal {
Level g_level = Level::kInfo;
}

namespace {
thread_local std::string t_thread_name = "main";

const char* LevelName(Level level) {
  switch (level) {
    case Level::kTrace:
      return "trace";
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "?";
}
}  // namespace

void SetLevel(Level level) { internal::g_level = level; }
Level GetLevel() { return internal::g_level; }

bool ParseLevel(std::string_view name, Level* out) {
  for (Level l :
       {Level::kTrace, Level::kDebug, Level::kInfo, Level::kWarn, Level::kError, Level::kOff}) {
    if (name == LevelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void SetThreadName(std::string name) { t_thread_name = std::move(name); }

void Write(Level level, const char* file, int line, std::string_view message) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  const char* base = strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string out = absl::StrFormat("[%04d-%02d-%02dT%02d:%02d:%02d.%03dZ] [%s] [%s] [%s:%d] %s\n",
                                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                    tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000),
                                    LevelName(level), t_thread_name, base, line, message);
  // One write per line: stderr is unbuffered and shared by every thread.
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::write(STDERR_FILENO, out.data() + off, out.size() - off);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    off += static_cast<size_t>(n);
  }
}

}  // namespace sluice::log
