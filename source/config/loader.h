#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace sluice::config {

// On-disk formats, chosen by file extension.
enum class Format {
  kYaml,       // .yaml, .yml
  kJson,       // .json
  kTextProto,  // .pb.txt, .pbtxt, .textproto, .txtpb
};

// The format for `path`'s extension, or InvalidArgument naming the path and the known extensions.
absl::StatusOr<Format> FormatForPath(std::string_view path);

// Parses `content` into `msg` through the protobuf JSON mapping (YAML is first turned into JSON).
// Unknown fields, wrong types and invalid values are errors; every error message starts with
// `source` and names the field path, e.g.
//   "quickstart.yaml: listeners[0].address.port: expected an unsigned integer, got \"abc\"".
absl::Status ParseInto(std::string_view content, Format format, std::string_view source,
                       google::protobuf::Message& msg);

// Reads `path` and ParseInto()s it with the format its extension names.
absl::Status LoadFile(const std::string& path, google::protobuf::Message& msg);

}  // namespace sluice::config
