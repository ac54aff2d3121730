#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace sluice::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

// The process-wide threshold: set at start-up (--log-level) and at run time (the admin's
// POST /logging?level=, on the main thread); every thread reads it with one relaxed atomic load
// per SLUICE_LOG, so a change reaches the workers at their next log statement.
void SetLevel(Level level);
Level GetLevel();
inline bool Enabled(Level level);
// "trace", "debug", "info", "warn", "error", "off".
bool ParseLevel(std::string_view name, Level* out);
const char* LevelName(Level level);

// A short name for this thread that every line carries ("main", "worker_0", ...).
void SetThreadName(std::string name);

// Writes one line to stderr with a single write(2), so lines of different threads never interleave.
void Write(Level level, const char* file, int line, std::string_view message);
// The same with a tag of the caller's in place of "file:line" ("[plugin:<filter>]").
void WriteTagged(Level level, std::string_view tag, std::string_view message);

// Text from outside sluice (a plugin's log message, config error or failure reason) made safe to
// reach a terminal or a log: printable ASCII and well-formed UTF-8 stay as they are; control
// characters (ESC, CR and LF included), DEL, C1 controls (U+0080..U+009F) and bytes that are not
// well-formed UTF-8 are written as \xNN, so that nothing the text holds can drive a terminal or
// forge a log line. (A backslash stays as it is: a message is read, not parsed back.) At most
// `max_bytes` bytes of output are kept, cut at a character boundary and marked "...[cut: N more
// bytes]".
std::string EscapeUntrusted(std::string_view text, size_t max_bytes);

namespace internal {
extern std::atomic<Level> g_level;
}
inline bool Enabled(Level level) {
  return level >= internal::g_level.load(std::memory_order_relaxed);
}

}  // namespace sluice::log

// SLUICE_LOG(kInfo, "listening on %s", address): the arguments are not evaluated below the level.
#define SLUICE_LOG(level, ...)                                              \
  do {                                                                      \
    if (::sluice::log::Enabled(::sluice::log::Level::level)) {              \
      ::sluice::log::Write(::sluice::log::Level::level, __FILE__, __LINE__, \
                           ::absl::StrFormat(__VA_ARGS__));                 \
    }                                                                       \
  } while (0)
