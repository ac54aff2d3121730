#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace sluice::config {

// On-disk formats, chosen by file extension.
enum class Format {
  kYaml,       // .yaml, .yml
  kJson,       // .json
  kTextProto,  // .pb.txt, .pbtxt, .textproto, .txtpb
};

// The format for `path`'s extension, or InvalidArgument naming the path and the known extensions.
absl::StatusOr<Format> FormatForPath(std::string_view path);

// Where the free-form values of a config (google.protobuf.Value fields, e.g. a plugin filter's
// `typed_config`) came from. ParseInto keeps them so that a later stage can check one against a
// message type known only then (the type a plugin names), with the same field paths and line
// numbers in its errors as the rest of the file.
class ValueSources {
 public:
  ValueSources();
  ~ValueSources();
  ValueSources(const ValueSources&) = delete;
  ValueSources& operator=(const ValueSources&) = delete;

  // Parses the value that was at field path `path` (with proto field names, whichever spelling
  // the file used, e.g.
  // "listeners[0].filters[0].http_connection_manager.http_filters[1].plugin.typed_config") into
  // `msg`, with the same rules as ParseInto, skipping a top-level "@type" key. Errors start with
  // the source and the full field path. When no source was kept for `path` (text-proto files,
  // or a value built in code), `parsed` (the value as parsed) is used, without line numbers.
  absl::Status ParseValueInto(std::string_view path, const google::protobuf::Value& parsed,
                              google::protobuf::Message& msg) const;
  // The file (or other source name) the values came from; "" before any ParseInto.
  const std::string& source() const;
  // " at line N, column M" (as parse errors end) for where field path `path` (proto field names,
  // e.g. "clusters[0].connect_timeout") was written in the file, or else its closest ancestor
  // that was (a required field that is missing points at its parent); "" when none was (a
  // text-proto file, a value built in code). Covers every field of the file, and the fields of
  // free-form values once ParseValueInto has parsed them.
  // Ancestors shorter than `floor` (a path prefix of `path`) are not tried.
  std::string WhereIs(std::string_view path, std::string_view floor = {}) const;

 private:
  friend struct ValueSourcesAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses `content` into `msg` through the protobuf JSON mapping (YAML is first turned into JSON).
// Unknown fields, wrong types and invalid values are errors; every error message starts with
// `source` and names the field path, e.g.
//   "quickstart.yaml: listeners[0].address.port: expected an unsigned integer, got \"abc\"".
// `sources`, when given, keeps where each free-form value came from (see ValueSources).
absl::Status ParseInto(std::string_view content, Format format, std::string_view source,
                       google::protobuf::Message& msg, ValueSources* sources = nullptr);

// Reads `path` and ParseInto()s it with the format its extension names.
absl::Status LoadFile(const std::string& path, google::protobuf::Message& msg,
                      ValueSources* sources = nullptr);

}  // namespace sluice::config
