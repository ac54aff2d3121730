#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/access_log.pb.h"
#include "source/common/access_log_writer.h"
#include "source/http/access_log_format.h"
#include "source/http/filter.h"
#include "source/http/header_map.h"

namespace sluice::http {

// What a finished stream offers its access logs.
struct AccessLogContext {
  const StreamInfo& info;
  const RequestHead* request = nullptr;  // nullptr: none (rejected before a head was whole)
  const ResponseHead* response = nullptr;
  const HeaderMap* response_trailers = nullptr;
  // The request target as received (before normalization and filters' rewrites).
  std::string_view original_path;
  uint64_t stream_id = 0;
  uint64_t connection_id = 0;
  // The stream's end (the dispatcher's clock), for %DURATION%.
  std::chrono::steady_clock::time_point end;
};

class AccessLogLine;  // access_log.cc

// One access log of a connection manager (config::v1::AccessLog): a format (text or JSON) and
// the file its lines go to. Immutable, shared by the workers.
class AccessLog {
 public:
  // `file` may be null (config validation, tests): lines are formatted, not written.
  AccessLog(LogFormat format, access_log::LogFile* file);
  AccessLog(JsonLogFormat format, access_log::LogFile* file);

  // Formats the stream's line (on its worker, into a per-thread buffer) and queues it.
  void log(const AccessLogContext& context) const;
  // The line, newline included, appended to `out`.
  void format(const AccessLogContext& context, std::string& out) const;
  access_log::LogFile* file() const { return file_; }

 private:
  void formatInto(const AccessLogContext& context, AccessLogLine& out) const;

  const bool json_;
  LogFormat text_;
  JsonLogFormat json_format_;
  // Each key's `{"key":` / `,"key":`, made once.
  std::vector<std::string> json_prefixes_;
  access_log::LogFile* const file_;
};

// Builds an access log from its config (checked by config validation already; errors name
// `path`). `manager` opens (or shares) its file; null: no file (validation, tests).
absl::StatusOr<std::unique_ptr<AccessLog>> BuildAccessLog(const config::v1::AccessLog& proto,
                                                          access_log::Manager* manager,
                                                          const std::string& path);

// The stats name of an access log with no `name`: "stdout", or its path with every character
// other than letters, digits, '_', '-' and '.' turned into '_', leading '_' dropped.
std::string DefaultAccessLogName(const config::v1::AccessLog& proto);

}  // namespace sluice::http
