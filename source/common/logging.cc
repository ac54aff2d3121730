#include "source/common/logging.h"

#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "source/common/json_string.h"

namespace sluice::log {

namespace internal {
constinit std::atomic<Level> g_level{Level::kInfo};
static_assert(std::atomic<Level>::is_always_lock_free);
}  // namespace internal

namespace {
thread_local std::string t_thread_name = "main";
}  // namespace

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

void SetLevel(Level level) { internal::g_level.store(level, std::memory_order_relaxed); }
Level GetLevel() { return internal::g_level.load(std::memory_order_relaxed); }

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

namespace {
void WriteAll(const std::string& out) {
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

std::string Prefix(Level level) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  return absl::StrFormat("[%04d-%02d-%02dT%02d:%02d:%02d.%03dZ] [%s] [%s] ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         static_cast<int>(tv.tv_usec / 1000), LevelName(level), t_thread_name);
}

}  // namespace

std::string EscapeUntrusted(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  size_t i = 0;
  char esc[5];
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    std::string_view piece;
    size_t consumed = 1;
    if (c >= 0x20 && c < 0x7f) {
      piece = text.substr(i, 1);
    } else if (size_t n = c >= 0x80 ? json::Utf8SequenceLength(text.substr(i)) : 0; n != 0) {
      // U+0080..U+009F (C2 80..C2 9F) are C1 controls: CSI (U+009B) drives some terminals.
      if (n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0) {
        n = 0;
      } else {
        piece = text.substr(i, n);
        consumed = n;
      }
    }
    if (piece.empty()) {
      snprintf(esc, sizeof(esc), "\\x%02x", c);
      piece = esc;
    }
    if (out.size() + piece.size() > max_bytes) break;
    out.append(piece);
    i += consumed;
  }
  if (i < text.size()) absl::StrAppend(&out, "...[cut: ", text.size() - i, " more bytes]");
  return out;
}

void WriteTagged(Level level, std::string_view tag, std::string_view message) {
  std::string out = Prefix(level);
  out.append("[").append(tag).append("] ").append(message).append("\n");
  WriteAll(out);
}

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
  WriteAll(out);
}

}  // namespace sluice::log
