#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace sluice::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

// The process-wide threshold. Set once at start-up (before workers run); reads are relaxed.
void SetLevel(Level level);
Level GetLevel();
inline bool Enabled(Level level);
// "trace", "debug", "info", "warn", "error", "off".
bool ParseLevel(std::string_view name, Level* out);

// A short name for this thread that every line carries ("main", "worker_0", ...).
void SetThreadName(std::string name);

// Writes one line to stderr with a single write(2), so lines of different threads never interleave.
void Write(Level level, const char* file, int line, std::string_view message);

namespace internal {
extern Level g_level;
}
inline bool Enabled(Level level) { return level >= internal::g_level; }

}  // namespace sluice::log

// SLUICE_LOG(kInfo, "listening on %s", address): the arguments are not evaluated below the level.
#define SLUICE_LOG(level, ...)                                              \
  do {                                                                      \
    if (::sluice::log::Enabled(::sluice::log::Level::level)) {              \
      ::sluice::log::Write(::sluice::log::Level::level, __FILE__, __LINE__, \
                           ::absl::StrFormat(__VA_ARGS__));                 \
    }                                                                       \
  } while (0)
