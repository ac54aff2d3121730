#include "source/config/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

// How YAML (and JSON) becomes a message
// -------------------------------------
// yaml-cpp gives an untyped tree: every scalar is just text. Turning that tree into JSON blindly
// would make `address: 127.0.0.1` a string but `name: 123` a number and `name: yes` whatever the
// YAML 1.1 rules say, and protobuf's JSON parser would then reject the result with a message that
// names neither the file position nor the field path. So the tree is walked together with the
// target message's Descriptor: each scalar is checked against, and written as, the JSON type that
// the field it lands in wants. That walk is where nearly every error is reported, with the field
// path ("listeners[0].address.port") and the YAML line. The JSON it produces is then handed to
// protobuf's own JSON parser, which stays the final authority on what the message accepts.
//
// JSON files take the same route: JSON is (for every practical purpose) YAML 1.2 flow syntax, and
// going through the walker gives JSON files the same field paths, line numbers and duplicate-key
// checks as YAML ones.
//
// Conventions of the walk, beyond the protobuf JSON mapping:
//  - A null value (`key:`, `key: ~`, `key: null`) leaves the field unset, as in protobuf JSON.
//  - Duplicate keys in a mapping are errors (yaml-cpp keeps both silently; protobuf would let the
//    last one win). So is setting one field under both its proto name and its json_name, and
//    setting two members of one oneof.
//  - YAML merge keys (`<<: *anchor`) are expanded (yaml-cpp 0.7 does not), so shared blocks can be
//    written once with anchors; keys written in the mapping itself win over merged ones.
//  - google.protobuf.Duration accepts "10s", "1.5s", "-2s" (the protobuf JSON form) and also the
//    units ns, us, ms, m and h and compounds like "1h30m"; it is converted to seconds here. A bare
//    number ("10") is rejected: it is ambiguous, and protobuf JSON rejects it too.
//  - Wrapper types (BoolValue, UInt32Value, ...) are written as plain scalars; enums by value name
//    (or by number, when the number names a value).
//  - Numbers are range-checked for their field's type (-1 or 5000000000 for a uint32 is an error
//    here); ranges that the type does not imply (port <= 65535) are semantic validation's job.

namespace sluice::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::OneofDescriptor;

// Bounds that keep a hostile or broken file from exhausting memory or the stack. Aliases let a
// small YAML file expand exponentially ("billion laughs"), hence a budget on visited nodes and on
// the JSON produced, not only on the file size.
constexpr size_t kMaxFileBytes = 64 << 20;
constexpr int kMaxDepth = 64;  // protobuf's own JSON parser stops at 100.
constexpr size_t kMaxNodes = 1'000'000;
constexpr size_t kMaxJsonBytes = 64 << 20;
// A file with more problems than this is likely not a config at all; more lines would not help.
constexpr size_t kMaxErrors = 20;

// Protobuf's Duration range: +-10,000 years.
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;

// ---------------------------------------------------------------------------------------------
// Small helpers.

// Debian's abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// which std::string_view does not convert to implicitly. The interface speaks std::string_view;
// everything inside this file speaks absl's.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void AppendJsonString(absl::string_view s, std::string& out) {
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// A scalar quoted for an error message, shortened so that one line stays one line.
std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 60;
  if (s.size() > kMax) {
    return absl::StrCat("\"", absl::Utf8SafeCHexEscape(s.substr(0, kMax)), "...\"");
  }
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(s), "\"");
}

// What a node is, for "expected X, got Y".
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// A plain (unquoted, untagged) scalar: the only kind whose type YAML itself would resolve.
bool IsPlain(const YAML::Node& node) { return node.Tag() == "?"; }

bool IsDigits(absl::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// Decimal number syntax as JSON and YAML 1.2 share it (with a leading '+' and forms like "1." or
// ".5" allowed): [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
bool LooksLikeDecimalNumber(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t int_digits = 0;
  while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, ++int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!IsDigits(s.substr(i))) return false;
    return true;
  }
  return i == s.size();
}

// YAML 1.2 core schema booleans. YAML 1.1's yes/no/on/off are deliberately not booleans here: as
// strings they are valid values of string fields, and as booleans they surprise ("Norway").
std::optional<bool> ParseBool(absl::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// The protobuf JSON spelling of a YAML or JSON float special, if `s` is one.
std::optional<absl::string_view> FloatSpecial(absl::string_view s) {
  const std::string lower = absl::AsciiStrToLower(s);
  if (lower == ".inf" || lower == "+.inf" || lower == "infinity" || lower == "+infinity") {
    return "Infinity";
  }
  if (lower == "-.inf" || lower == "-infinity") return "-Infinity";
  if (lower == ".nan" || lower == "nan") return "NaN";
  return std::nullopt;
}

// Levenshtein distance, for "did you mean" on unknown fields. Field names are short.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Accepts the proto field name and its json_name (lowerCamel), as protobuf's JSON parser does.
const FieldDescriptor* FindField(const Descriptor* desc, const std::string& key) {
  if (const FieldDescriptor* field = desc->FindFieldByName(key)) return field;
  for (int i = 0; i < desc->field_count(); ++i) {
    if (desc->field(i)->json_name() == key) return desc->field(i);
  }
  return nullptr;
}

std::string UnknownFieldMessage(const Descriptor* desc, absl::string_view key) {
  const FieldDescriptor* best = nullptr;
  size_t best_distance = std::numeric_limits<size_t>::max();
  const std::string lower_key = absl::AsciiStrToLower(key);
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* field = desc->field(i);
    const size_t distance =
        std::min(EditDistance(lower_key, field->name()),
                 EditDistance(lower_key, absl::AsciiStrToLower(field->json_name())));
    if (distance < best_distance) {
      best_distance = distance;
      best = field;
    }
  }
  // A third of the name's length is about where suggestions stop looking related.
  const size_t max_distance = std::max<size_t>(2, key.size() / 3);
  if (best != nullptr && best_distance <= max_distance) {
    return absl::StrCat("unknown field (no such field in ", desc->full_name(), "; did you mean \"",
                        best->name(), "\"?)");
  }
  return absl::StrCat("unknown field (no such field in ", desc->full_name(), ")");
}

std::string EnumNames(const EnumDescriptor* desc) {
  constexpr int kMaxNames = 12;
  std::vector<std::string> names;
  for (int i = 0; i < desc->value_count() && i < kMaxNames; ++i) {
    names.push_back(desc->value(i)->name());
  }
  if (desc->value_count() > kMaxNames) names.push_back("...");
  return absl::StrJoin(names, ", ");
}

// Parses a duration as protobuf JSON writes it ("1.5s", "-2s") or with the units ns, us, ms, s,
// m, h, possibly compound ("1h30m"), into protobuf JSON's form: seconds with up to nine
// fractional digits and an "s". Returns the problem instead when `text` is not one.
bool DurationToJson(absl::string_view text, std::string& json, std::string& problem) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  const std::string examples = "like \"10s\", \"1.5s\", \"250ms\", \"5m\" or \"1h30m\"";
  if (LooksLikeDecimalNumber(s)) {
    problem = absl::StrCat("expected a duration with a unit, ", examples,
                           " (a bare number is ambiguous), got ", Quote(text));
    return false;
  }
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  // Exact arithmetic in nanoseconds: the Duration range (1e4 years) overflows int64 nanoseconds.
  __int128 total_nanos = 0;
  const __int128 max_nanos = static_cast<__int128>(kMaxDurationSeconds + 1) * 1'000'000'000;
  bool any = false;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && absl::ascii_isdigit(s[i])) ++i;
    absl::string_view int_part = s.substr(0, i);
    absl::string_view frac_part;
    if (i < s.size() && s[i] == '.') {
      const size_t start = ++i;
      while (i < s.size() && absl::ascii_isdigit(s[i])) ++i;
      frac_part = s.substr(start, i - start);
    }
    if (int_part.empty() && frac_part.empty()) break;
    size_t unit_len = 0;
    while (i + unit_len < s.size() && absl::ascii_isalpha(s[i + unit_len])) ++unit_len;
    const absl::string_view unit = s.substr(i, unit_len);
    int64_t unit_nanos = 0;
    if (unit == "ns") {
      unit_nanos = 1;
    } else if (unit == "us") {
      unit_nanos = 1'000;
    } else if (unit == "ms") {
      unit_nanos = 1'000'000;
    } else if (unit == "s") {
      unit_nanos = 1'000'000'000;
    } else if (unit == "m") {
      unit_nanos = 60'000'000'000;
    } else if (unit == "h") {
      unit_nanos = 3'600'000'000'000;
    } else {
      any = false;
      break;
    }
    // More digits than these cannot matter except to overflow: 13 integer digits of hours already
    // exceed the range, and 18 fractional digits of an hour resolve far below a nanosecond.
    if (int_part.size() > 13 || frac_part.size() > 18) {
      problem = absl::StrCat("duration out of range or too precise, got ", Quote(text));
      return false;
    }
    uint64_t int_value = 0;
    if (!int_part.empty() && !absl::SimpleAtoi(int_part, &int_value)) break;
    __int128 frac_value = 0;
    __int128 frac_scale = 1;
    for (char c : frac_part) {
      frac_value = frac_value * 10 + (c - '0');
      frac_scale *= 10;
    }
    const __int128 frac_nanos = frac_value * unit_nanos;
    if (frac_nanos % frac_scale != 0) {
      problem = absl::StrCat("duration is finer than a nanosecond, got ", Quote(text));
      return false;
    }
    total_nanos += static_cast<__int128>(int_value) * unit_nanos + frac_nanos / frac_scale;
    if (total_nanos >= max_nanos) {
      problem = absl::StrCat("duration out of range (at most ", kMaxDurationSeconds, "s), got ",
                             Quote(text));
      return false;
    }
    any = true;
    s.remove_prefix(i + unit_len);
  }
  if (!any || !s.empty()) {
    problem = absl::StrCat("expected a duration ", examples, ", got ", Quote(text));
    return false;
  }
  const auto seconds = static_cast<int64_t>(total_nanos / 1'000'000'000);
  const auto nanos = static_cast<int32_t>(total_nanos % 1'000'000'000);
  json = absl::StrCat("\"", negative && total_nanos != 0 ? "-" : "", seconds);
  if (nanos != 0) absl::StrAppendFormat(&json, ".%09d", nanos);
  json += "s\"";
  return true;
}

// Checks `text` as an integer of the given kind; `json` gets its canonical decimal form (no '+',
// no leading zeros, which JSON forbids).
bool IntegerToJson(absl::string_view text, bool is_signed, int bits, std::string& json,
                   std::string& problem) {
  const absl::string_view s = absl::StripAsciiWhitespace(text);
  absl::string_view digits = s;
  const bool negative = absl::StartsWith(s, "-");
  if (negative || absl::StartsWith(s, "+")) digits.remove_prefix(1);
  const char* kind = is_signed ? "an integer" : "an unsigned integer";
  if (!IsDigits(digits)) {
    problem = absl::StrCat("expected ", kind, ", got ", Quote(text));
    return false;
  }
  if (!is_signed) {
    uint64_t value = 0;
    if (negative && digits.find_first_not_of('0') != absl::string_view::npos) {
      problem = absl::StrCat("expected an unsigned integer, got ", Quote(text));
      return false;
    }
    if (!absl::SimpleAtoi(digits, &value) ||
        (bits == 32 && value > std::numeric_limits<uint32_t>::max())) {
      problem = absl::StrCat(
          "expected an unsigned ", bits, "-bit integer (0..",
          bits == 32 ? std::numeric_limits<uint32_t>::max() : std::numeric_limits<uint64_t>::max(),
          "), got ", Quote(text));
      return false;
    }
    json = absl::StrCat(value);
    return true;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(s, &value) ||
      (bits == 32 && (value < std::numeric_limits<int32_t>::min() ||
                      value > std::numeric_limits<int32_t>::max()))) {
    problem = absl::StrCat(
        "expected a ", bits, "-bit integer (",
        bits == 32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min(),
        "..",
        bits == 32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max(),
        "), got ", Quote(text));
    return false;
  }
  json = absl::StrCat(value);
  return true;
}

bool FloatToJson(absl::string_view text, bool is_float, std::string& json, std::string& problem) {
  const absl::string_view s = absl::StripAsciiWhitespace(text);
  if (std::optional<absl::string_view> special = FloatSpecial(s)) {
    json = absl::StrCat("\"", *special, "\"");
    return true;
  }
  double value = 0;
  if (!LooksLikeDecimalNumber(s) || !absl::SimpleAtod(s, &value)) {
    problem = absl::StrCat("expected a number, got ", Quote(text));
    return false;
  }
  if (!std::isfinite(value) || (is_float && std::fabs(value) > std::numeric_limits<float>::max())) {
    problem = absl::StrCat("number out of range for a ", is_float ? "float" : "double", ", got ",
                           Quote(text));
    return false;
  }
  json = absl::StrFormat("%.17g", value);
  return true;
}

// ---------------------------------------------------------------------------------------------
// The walker.

class YamlToJson {
 public:
  explicit YamlToJson(const google::protobuf::DescriptorPool* pool) : pool_(pool) {}

  // Free-form values met during the walk are recorded here by field path (see ValueSources).
  void RecordValuesTo(std::map<std::string, YAML::Node>* values) { values_ = values; }
  // Where each field and list element was written is recorded here by field path (proto
  // names), for errors found after the walk (semantic validation, plugins' own checks).
  void RecordPositionsTo(std::map<std::string, YAML::Mark>* positions) { positions_ = positions; }
  // Converts `node`, the value at field path `path` of an earlier walk, for a message of type
  // `desc`, skipping a top-level "@type" key. `marks`: the node has meaningful positions.
  void ConvertValue(const YAML::Node& node, const Descriptor* desc, absl::string_view path,
                    bool marks) {
    path_ = std::string(path);
    canon_path_ = path_;
    marks_ = marks;
    if (node.IsNull() || !node.IsDefined()) {
      json_ = "{}";
      return;
    }
    skip_type_key_ = true;
    MessageValue(node, desc);
  }

  // Converts `root` (a whole document) for a message of type `desc`. An empty document is an
  // empty message.
  void Convert(const YAML::Node& root, const Descriptor* desc) {
    if (root.IsNull() || !root.IsDefined()) {
      json_ = "{}";
      return;
    }
    MessageValue(root, desc);
  }

  const std::string& json() const { return json_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  using Entry = std::pair<YAML::Node, YAML::Node>;

  // Appends a segment to the field path for the lifetime of the scope.
  class PathScope {
   public:
    PathScope(std::string& path, absl::string_view field) : path_(path), size_(path.size()) {
      if (!path.empty()) path.push_back('.');
      path.append(field.data(), field.size());
    }
    PathScope(std::string& path, size_t index) : path_(path), size_(path.size()) {
      absl::StrAppend(&path, "[", index, "]");
    }
    struct MapKey {
      absl::string_view key;
    };
    PathScope(std::string& path, MapKey key) : path_(path), size_(path.size()) {
      absl::StrAppend(&path, "[", Quote(key.key), "]");
    }
    ~PathScope() { path_.resize(size_); }
    PathScope(const PathScope&) = delete;
    PathScope& operator=(const PathScope&) = delete;

   private:
    std::string& path_;
    size_t size_;
  };

  // Counts nesting and visited nodes; false (with the error recorded) when a budget is spent.
  class Budget {
   public:
    Budget(YamlToJson& walker, const YAML::Node& node) : walker_(walker) {
      ++walker_.depth_;
      ++walker_.nodes_;
      if (walker_.aborted_) {
        ok_ = false;
      } else if (walker_.depth_ > kMaxDepth) {
        walker_.Fatal(node, absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
        ok_ = false;
      } else if (walker_.nodes_ > kMaxNodes || walker_.json_.size() > kMaxJsonBytes) {
        walker_.Fatal(node, "document too large once aliases are expanded");
        ok_ = false;
      }
    }
    ~Budget() { --walker_.depth_; }
    Budget(const Budget&) = delete;
    Budget& operator=(const Budget&) = delete;
    bool ok() const { return ok_; }

   private:
    YamlToJson& walker_;
    bool ok_ = true;
  };

  std::string Where(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null() || !marks_) return "";
    return absl::StrCat(" at line ", mark.line + 1, ", column ", mark.column + 1);
  }

  void Error(const YAML::Node& at, absl::string_view problem) {
    if (aborted_) return;
    if (errors_.size() == kMaxErrors) {
      errors_.push_back(absl::StrCat("too many errors (more than ", kMaxErrors, "); stopping"));
      aborted_ = true;
      return;
    }
    errors_.push_back(absl::StrCat(path_, path_.empty() ? "" : ": ", problem, Where(at)));
  }

  void Fatal(const YAML::Node& at, absl::string_view problem) {
    Error(at, problem);
    aborted_ = true;
  }

  // The key/value pairs of a mapping, with duplicate keys reported and merge keys expanded.
  std::vector<Entry> Entries(const YAML::Node& map) {
    std::vector<Entry> entries;
    std::map<std::string, YAML::Node> seen;
    std::vector<YAML::Node> merges;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) {
        Error(key, absl::StrCat("mapping keys must be strings, got ", Describe(key)));
        continue;
      }
      if (IsPlain(key) && key.Scalar() == "<<") {
        merges.push_back(it->second);
        continue;
      }
      auto [first, inserted] = seen.emplace(key.Scalar(), key);
      if (!inserted) {
        PathScope scope(path_, key.Scalar());
        const std::string first_at = Where(first->second);
        Error(key, first_at.empty() ? "duplicate key"
                                    : absl::StrCat("duplicate key (first", first_at, ")"));
        continue;
      }
      entries.emplace_back(key, it->second);
    }
    // Merged keys come after the mapping's own, and never override them (YAML merge semantics).
    for (const YAML::Node& merge : merges) {
      std::vector<YAML::Node> sources;
      if (merge.IsSequence()) {
        for (const YAML::Node& source : merge) sources.push_back(source);
      } else {
        sources.push_back(merge);
      }
      for (const YAML::Node& source : sources) {
        if (!source.IsMap()) {
          PathScope scope(path_, "<<");
          Error(source, absl::StrCat("a merge key (<<) takes a mapping or a list of mappings, got ",
                                     Describe(source)));
          continue;
        }
        // Merged mappings may merge others in turn; the budget bounds that like any nesting.
        Budget budget(*this, source);
        if (!budget.ok()) break;
        for (Entry& entry : Entries(source)) {
          if (seen.emplace(entry.first.Scalar(), entry.first).second) {
            entries.push_back(std::move(entry));
          }
        }
      }
    }
    return entries;
  }

  // One value of a message type, dispatching on the well-known types whose JSON form is special.
  void MessageValue(const YAML::Node& node, const Descriptor* desc) {
    switch (desc->well_known_type()) {
      case Descriptor::WELLKNOWNTYPE_DOUBLEVALUE:
      case Descriptor::WELLKNOWNTYPE_FLOATVALUE:
      case Descriptor::WELLKNOWNTYPE_INT64VALUE:
      case Descriptor::WELLKNOWNTYPE_UINT64VALUE:
      case Descriptor::WELLKNOWNTYPE_INT32VALUE:
      case Descriptor::WELLKNOWNTYPE_UINT32VALUE:
      case Descriptor::WELLKNOWNTYPE_STRINGVALUE:
      case Descriptor::WELLKNOWNTYPE_BYTESVALUE:
      case Descriptor::WELLKNOWNTYPE_BOOLVALUE:
        // A wrapper is its `value` field written as a plain scalar.
        SingleValue(node, desc->FindFieldByNumber(1));
        return;
      case Descriptor::WELLKNOWNTYPE_DURATION:
        DurationValue(node);
        return;
      case Descriptor::WELLKNOWNTYPE_TIMESTAMP:
      case Descriptor::WELLKNOWNTYPE_FIELDMASK:
        // Strings ("2024-01-01T00:00:00Z", "a.b,c") whose syntax protobuf's parser checks.
        if (!node.IsScalar()) {
          Error(node,
                absl::StrCat("expected a string (", desc->full_name(), "), got ", Describe(node)));
          return;
        }
        AppendJsonString(node.Scalar(), json_);
        return;
      case Descriptor::WELLKNOWNTYPE_STRUCT:
        if (!node.IsMap()) {
          Error(node, absl::StrCat("expected a mapping, got ", Describe(node)));
          return;
        }
        GenericValue(node);
        return;
      case Descriptor::WELLKNOWNTYPE_LISTVALUE:
        if (!node.IsSequence()) {
          Error(node, absl::StrCat("expected a list, got ", Describe(node)));
          return;
        }
        GenericValue(node);
        return;
      case Descriptor::WELLKNOWNTYPE_VALUE:
        if (values_ != nullptr) (*values_)[canon_path_] = node;
        GenericValue(node);
        return;
      case Descriptor::WELLKNOWNTYPE_ANY:
        AnyValue(node);
        return;
      default:
        Message(node, desc, nullptr);
        return;
    }
  }

  // A message as a mapping of its fields. `any_type_url` is set when the mapping is the body of
  // a google.protobuf.Any: its "@type" key is then written first and not taken for a field.
  void Message(const YAML::Node& node, const Descriptor* desc, const std::string* any_type_url) {
    if (!node.IsMap()) {
      Error(node,
            absl::StrCat("expected a mapping (", desc->full_name(), "), got ", Describe(node)));
      return;
    }
    json_.push_back('{');
    bool first = true;
    // A plugin's typed_config names its type with "@type" beside the fields (as an Any would).
    const bool skip_type_key = std::exchange(skip_type_key_, false);
    if (any_type_url != nullptr) {
      json_ += "\"@type\":";
      AppendJsonString(*any_type_url, json_);
      first = false;
    }
    std::map<int, YAML::Node> set_fields;  // field number -> the key that set it
    std::map<const OneofDescriptor*, const FieldDescriptor*> set_oneofs;
    for (const auto& [key, value] : Entries(node)) {
      const std::string& name = key.Scalar();
      if ((any_type_url != nullptr || skip_type_key) && name == "@type") continue;
      PathScope scope(path_, name);
      const FieldDescriptor* field = FindField(desc, name);
      if (field == nullptr) {
        Error(key, UnknownFieldMessage(desc, name));
        continue;
      }
      PathScope canonical(canon_path_, field->name());
      if (auto [previous, inserted] = set_fields.emplace(field->number(), key); !inserted) {
        Error(key, absl::StrCat("field \"", field->name(), "\" is set twice (also as \"",
                                previous->second.Scalar(), "\"", Where(previous->second), ")"));
        continue;
      }
      // Null leaves the field unset, as in protobuf JSON; only google.protobuf.Value has a null.
      const bool is_value =
          field->message_type() != nullptr &&
          field->message_type()->well_known_type() == Descriptor::WELLKNOWNTYPE_VALUE &&
          !field->is_repeated();
      if (value.IsNull() && !is_value) continue;
      if (const OneofDescriptor* oneof = field->real_containing_oneof()) {
        if (auto [other, inserted] = set_oneofs.emplace(oneof, field); !inserted) {
          Error(key, absl::StrCat("\"", field->name(), "\" and \"", other->second->name(),
                                  "\" are both set, but only one of oneof \"", oneof->name(),
                                  "\" may be"));
          continue;
        }
      }
      if (!first) json_.push_back(',');
      first = false;
      AppendJsonString(field->name(), json_);
      json_.push_back(':');
      FieldValue(value, field);
    }
    json_.push_back('}');
  }

  void RecordPosition(const YAML::Node& node) {
    if (positions_ == nullptr || !marks_) return;
    const YAML::Mark mark = node.Mark();
    if (!mark.is_null()) positions_->emplace(canon_path_, mark);
  }

  // The value of one field: a list for a repeated field, a mapping for a map field.
  void FieldValue(const YAML::Node& node, const FieldDescriptor* field) {
    RecordPosition(node);
    if (field->is_map()) {
      MapValue(node, field);
      return;
    }
    if (!field->is_repeated()) {
      SingleValue(node, field);
      return;
    }
    if (!node.IsSequence()) {
      Error(node, absl::StrCat("expected a list, got ", Describe(node)));
      return;
    }
    json_.push_back('[');
    size_t index = 0;
    for (const YAML::Node& element : node) {
      PathScope scope(path_, index);
      PathScope canonical(canon_path_, index);
      RecordPosition(element);
      if (index++ > 0) json_.push_back(',');
      SingleValue(element, field);
    }
    json_.push_back(']');
  }

  void MapValue(const YAML::Node& node, const FieldDescriptor* field) {
    if (!node.IsMap()) {
      Error(node, absl::StrCat("expected a mapping, got ", Describe(node)));
      return;
    }
    const FieldDescriptor* key_field = field->message_type()->map_key();
    const FieldDescriptor* value_field = field->message_type()->map_value();
    json_.push_back('{');
    bool first = true;
    for (const auto& [key, value] : Entries(node)) {
      const std::string& text = key.Scalar();
      PathScope scope(path_, PathScope::MapKey{text});
      PathScope canonical(canon_path_, PathScope::MapKey{text});
      RecordPosition(value);
      // JSON object keys are strings; a non-string key type is checked and then quoted.
      std::string key_json;
      std::string problem;
      bool ok = true;
      switch (key_field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          AppendJsonString(text, key_json);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          if (std::optional<bool> b = ParseBool(text)) {
            key_json = *b ? "\"true\"" : "\"false\"";
          } else {
            problem = absl::StrCat("expected a boolean key (true or false), got ", Quote(text));
            ok = false;
          }
          break;
        default: {
          const bool is_signed = key_field->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                                 key_field->cpp_type() == FieldDescriptor::CPPTYPE_INT64;
          const bool is_64 = key_field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                             key_field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
          std::string number;
          ok = IntegerToJson(text, is_signed, is_64 ? 64 : 32, number, problem);
          if (ok) key_json = absl::StrCat("\"", number, "\"");
          break;
        }
      }
      if (!ok) {
        Error(key, problem);
        continue;
      }
      if (!first) json_.push_back(',');
      first = false;
      json_ += key_json;
      json_.push_back(':');
      SingleValue(value, value_field);
    }
    json_.push_back('}');
  }

  // One value of a field's type (one element, for a repeated field).
  void SingleValue(const YAML::Node& node, const FieldDescriptor* field) {
    Budget budget(*this, node);
    if (!budget.ok()) return;
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      MessageValue(node, field->message_type());
      return;
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      EnumValue(node, field->enum_type());
      return;
    }
    const char* expected = "a value";
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
        expected = "an integer";
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        expected = "an unsigned integer";
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE:
        expected = "a number";
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        expected = "a boolean (true or false)";
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        expected = field->type() == FieldDescriptor::TYPE_BYTES ? "a base64 string" : "a string";
        break;
      default:
        break;
    }
    if (!node.IsScalar()) {
      Error(node, absl::StrCat("expected ", expected, ", got ", Describe(node)));
      return;
    }
    const std::string& text = node.Scalar();
    std::string value;
    std::string problem;
    bool ok = true;
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        ok = IntegerToJson(text, /*is_signed=*/true, 32, value, problem);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        ok = IntegerToJson(text, /*is_signed=*/true, 64, value, problem);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        ok = IntegerToJson(text, /*is_signed=*/false, 32, value, problem);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        ok = IntegerToJson(text, /*is_signed=*/false, 64, value, problem);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        ok = FloatToJson(text, /*is_float=*/true, value, problem);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        ok = FloatToJson(text, /*is_float=*/false, value, problem);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        if (std::optional<bool> b = ParseBool(text)) {
          value = *b ? "true" : "false";
        } else {
          problem = absl::StrCat("expected a boolean (true or false), got ", Quote(text));
          ok = false;
        }
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        // Any scalar is a string's text as written: `name: 123` is "123", `name: yes` is "yes".
        AppendJsonString(text, value);
        break;
      default:
        problem = "unsupported field type";
        ok = false;
        break;
    }
    if (!ok) {
      Error(node, problem);
      return;
    }
    // 64-bit integers go as strings, as protobuf JSON writes them: a JSON number would lose
    // precision in any double-based reader.
    const bool is_64 = field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                       field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    if (is_64) {
      absl::StrAppend(&json_, "\"", value, "\"");
    } else {
      json_ += value;
    }
  }

  void EnumValue(const YAML::Node& node, const EnumDescriptor* desc) {
    const std::string expected =
        absl::StrCat("expected one of ", EnumNames(desc), " (enum ", desc->full_name(), ")");
    if (!node.IsScalar()) {
      Error(node, absl::StrCat(expected, ", got ", Describe(node)));
      return;
    }
    const std::string& text = node.Scalar();
    const EnumValueDescriptor* value = desc->FindValueByName(text);
    int32_t number = 0;
    if (value == nullptr && absl::SimpleAtoi(text, &number))
      value = desc->FindValueByNumber(number);
    if (value == nullptr) {
      Error(node, absl::StrCat(expected, ", got ", Quote(text)));
      return;
    }
    AppendJsonString(value->name(), json_);
  }

  void DurationValue(const YAML::Node& node) {
    if (!node.IsScalar()) {
      Error(node, absl::StrCat("expected a duration like \"10s\", got ", Describe(node)));
      return;
    }
    std::string value;
    std::string problem;
    if (!DurationToJson(node.Scalar(), value, problem)) {
      Error(node, problem);
      return;
    }
    json_ += value;
  }

  // google.protobuf.Value / Struct / ListValue: free-form data, typed the way YAML 1.2's core
  // schema types plain scalars; quoted scalars stay strings.
  void GenericValue(const YAML::Node& node) {
    Budget budget(*this, node);
    if (!budget.ok()) return;
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        json_ += "null";
        return;
      case YAML::NodeType::Scalar: {
        const std::string& text = node.Scalar();
        if (IsPlain(node)) {
          if (std::optional<bool> b = ParseBool(text)) {
            json_ += *b ? "true" : "false";
            return;
          }
          double number = 0;
          if (LooksLikeDecimalNumber(text) && absl::SimpleAtod(text, &number) &&
              std::isfinite(number)) {
            absl::StrAppendFormat(&json_, "%.17g", number);
            return;
          }
        }
        AppendJsonString(text, json_);
        return;
      }
      case YAML::NodeType::Sequence: {
        json_.push_back('[');
        size_t index = 0;
        for (const YAML::Node& element : node) {
          PathScope scope(path_, index);
          if (index++ > 0) json_.push_back(',');
          GenericValue(element);
        }
        json_.push_back(']');
        return;
      }
      case YAML::NodeType::Map: {
        json_.push_back('{');
        bool first = true;
        for (const auto& [key, value] : Entries(node)) {
          PathScope scope(path_, key.Scalar());
          if (!first) json_.push_back(',');
          first = false;
          AppendJsonString(key.Scalar(), json_);
          json_.push_back(':');
          GenericValue(value);
        }
        json_.push_back('}');
        return;
      }
    }
  }

  // google.protobuf.Any: {"@type": "type.googleapis.com/pkg.Message", ...fields}, or for a
  // well-known type with a special JSON form, {"@type": ..., "value": <that form>}.
  void AnyValue(const YAML::Node& node) {
    if (!node.IsMap()) {
      Error(node, absl::StrCat("expected a mapping with \"@type\" (google.protobuf.Any), got ",
                               Describe(node)));
      return;
    }
    YAML::Node type_node;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "@type") type_node = it->second;
    }
    if (!type_node.IsDefined() || !type_node.IsScalar()) {
      Error(node, "google.protobuf.Any needs \"@type\" (e.g. \"type.googleapis.com/pkg.Message\")");
      return;
    }
    const std::string& url = type_node.Scalar();
    const size_t slash = url.rfind('/');
    const std::string type_name = slash == std::string::npos ? url : url.substr(slash + 1);
    const Descriptor* type = pool_->FindMessageTypeByName(type_name);
    if (slash == std::string::npos || type == nullptr) {
      PathScope scope(path_, "@type");
      Error(type_node, absl::StrCat("unknown message type ", Quote(url),
                                    " (expected \"type.googleapis.com/<full message name>\")"));
      return;
    }
    if (type->well_known_type() == Descriptor::WELLKNOWNTYPE_UNSPECIFIED) {
      Message(node, type, &url);
      return;
    }
    json_ += "{\"@type\":";
    AppendJsonString(url, json_);
    bool has_value = false;
    for (const auto& [key, value] : Entries(node)) {
      if (key.Scalar() == "@type") continue;
      PathScope scope(path_, key.Scalar());
      PathScope canonical(canon_path_, key.Scalar());
      if (key.Scalar() != "value") {
        Error(key, absl::StrCat("unknown field (an Any holding ", type->full_name(),
                                " has only \"@type\" and \"value\")"));
        continue;
      }
      has_value = true;
      json_ += ",\"value\":";
      MessageValue(value, type);
    }
    if (!has_value) {
      Error(node, absl::StrCat("an Any holding ", type->full_name(), " needs \"value\""));
    }
    json_.push_back('}');
  }

  const google::protobuf::DescriptorPool* pool_;
  std::map<std::string, YAML::Node>* values_ = nullptr;
  std::map<std::string, YAML::Mark>* positions_ = nullptr;
  bool skip_type_key_ = false;
  bool marks_ = true;
  std::string json_;
  // The field path as written (json_name or proto name, for errors), and with proto field names
  // (the key free-form values are recorded under).
  std::string path_;
  std::string canon_path_;
  std::vector<std::string> errors_;
  int depth_ = 0;
  size_t nodes_ = 0;
  bool aborted_ = false;
};

std::string Prefixed(absl::string_view source, const std::vector<std::string>& lines) {
  return absl::StrJoin(lines, "\n", [source](std::string* out, const std::string& line) {
    absl::StrAppend(out, source, ": ", line);
  });
}

// The end of every walk: the walker's errors, else protobuf's JSON parser (the final authority)
// fills `msg` from the walker's JSON; its errors start with `source` and `prefix`.
absl::Status Finish(const YamlToJson& walker, absl::string_view source, absl::string_view prefix,
                    google::protobuf::Message& msg) {
  if (!walker.errors().empty()) {
    return absl::InvalidArgumentError(Prefixed(source, walker.errors()));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(walker.json(), &msg, options);
  if (!status.ok()) {
    msg.Clear();
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", prefix, std::string(status.message())));
  }
  return absl::OkStatus();
}

absl::Status ParseYamlInto(absl::string_view content, absl::string_view source,
                           google::protobuf::Message& msg,
                           std::map<std::string, YAML::Node>* values,
                           std::map<std::string, YAML::Mark>* positions) {
  const Descriptor* desc = msg.GetDescriptor();
  YamlToJson walker(desc->file()->pool());
  walker.RecordValuesTo(values);
  walker.RecordPositionsTo(positions);
  // yaml-cpp reports errors by throwing; this is the only place exceptions are caught, and none
  // leaves it. The walk is inside too: yaml-cpp's accessors may throw on malformed trees.
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(std::string(content));
    for (size_t i = 1; i < documents.size(); ++i) {
      // A trailing "---" with nothing after it is harmless; a second document is not (it is also
      // what yaml-cpp makes of some indentation mistakes).
      if (documents[i].IsNull()) continue;
      const YAML::Mark mark = documents[i].Mark();
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", mark.line + 1, ":", mark.column + 1,
          ": a second YAML document starts here (a config file holds one; is the indentation "
          "off?)"));
    }
    walker.Convert(documents.empty() ? YAML::Node() : documents[0], desc);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.msg));
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    // E.g. std::bad_alloc from a huge document: still an error for this file, not a crash.
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  if (absl::Status status = Finish(walker, source, "", msg); !status.ok()) return status;
  return absl::OkStatus();
}

class TextErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit TextErrorCollector(absl::string_view source) : source_(source) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (errors_.size() >= kMaxErrors) return;
    if (line < 0) {
      errors_.push_back(absl::StrCat(source_, ": ", message));
    } else {
      errors_.push_back(absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message));
    }
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

absl::Status ParseTextProtoInto(absl::string_view content, absl::string_view source,
                                google::protobuf::Message& msg) {
  TextErrorCollector collector(source);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  if (!parser.ParseFromString(std::string(content), &msg)) {
    msg.Clear();
    if (collector.errors().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": invalid text proto"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(collector.errors(), "\n"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    close(fd);
    return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot stat"));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a config file"));
  }
  std::string content;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      close(fd);
      return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot read"));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > kMaxFileBytes) {
      close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", kMaxFileBytes >> 20, " MiB; not a config file?"));
    }
  }
  close(fd);
  return content;
}

}  // namespace

absl::StatusOr<Format> FormatForPath(std::string_view std_path) {
  const absl::string_view path = Absl(std_path);
  // Case-insensitive: "CONFIG.YAML" is as clear as "config.yaml".
  const std::string lower = absl::AsciiStrToLower(path);
  if (absl::EndsWith(lower, ".yaml") || absl::EndsWith(lower, ".yml")) return Format::kYaml;
  if (absl::EndsWith(lower, ".json")) return Format::kJson;
  if (absl::EndsWith(lower, ".pb.txt") || absl::EndsWith(lower, ".pbtxt") ||
      absl::EndsWith(lower, ".textproto") || absl::EndsWith(lower, ".txtpb")) {
    return Format::kTextProto;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path,
                   ": unknown config file extension (expected .yaml, .yml, .json, .pb.txt, "
                   ".pbtxt, .textproto or .txtpb)"));
}

struct ValueSources::Impl {
  std::string source;
  // Field path -> the node it was parsed from (nodes share their document: it stays alive).
  std::map<std::string, YAML::Node> values;
  // Field path -> where it was written: the file's fields, and those of the free-form values
  // parsed later (ParseValueInto adds them, under the value's path).
  std::map<std::string, YAML::Mark> positions;
};

ValueSources::ValueSources() : impl_(std::make_unique<Impl>()) {}
ValueSources::~ValueSources() = default;
const std::string& ValueSources::source() const { return impl_->source; }

std::string ValueSources::WhereIs(std::string_view std_path, std::string_view floor) const {
  std::string path(std_path);
  while (!path.empty() && path.size() >= floor.size()) {
    if (auto it = impl_->positions.find(path); it != impl_->positions.end()) {
      return absl::StrCat(" at line ", it->second.line + 1, ", column ", it->second.column + 1);
    }
    // The closest ancestor: drop the last ".field" or "[index]".
    const size_t cut = path.find_last_of(".[");
    if (cut == std::string::npos) break;
    path.resize(cut);
  }
  return "";
}

struct ValueSourcesAccess {
  static auto& Of(ValueSources& s) { return *s.impl_; }
};

absl::Status ValueSources::ParseValueInto(std::string_view std_path,
                                          const google::protobuf::Value& parsed,
                                          google::protobuf::Message& msg) const {
  const absl::string_view path = Absl(std_path);
  msg.Clear();
  const Descriptor* desc = msg.GetDescriptor();
  YamlToJson walker(desc->file()->pool());
  std::string source = impl_->source;
  // Same contract as ParseYamlInto: yaml-cpp may throw; nothing leaves this function.
  try {
    auto it = impl_->values.find(std::string(path));
    if (it != impl_->values.end()) {
      // Positions inside the value are added too, so that errors a plugin finds in its own
      // config can be located (WhereIs).
      walker.RecordPositionsTo(&impl_->positions);
      // And free-form values inside it, for a later stage to parse in turn (a route's config
      // for another filter, inside the router's config).
      walker.RecordValuesTo(&impl_->values);
      const YAML::Node node = it->second;
      walker.ConvertValue(node, desc, path, /*marks=*/true);
    } else {
      // No YAML kept for it: walk the parsed value's JSON form (positions would point into
      // that text, not the file, so none are reported).
      std::string json;
      const auto status = google::protobuf::util::MessageToJsonString(parsed, &json);
      if (!status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(source, source.empty() ? "" : ": ", path,
                                                       ": ", std::string(status.message())));
      }
      walker.ConvertValue(YAML::Load(json), desc, path, /*marks=*/false);
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, source.empty() ? "" : ": ", path, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, source.empty() ? "" : ": ", path, ": ", e.what()));
  }
  if (source.empty()) source = "config";
  return Finish(walker, source, absl::StrCat(path, ": "), msg);
}

absl::Status ParseInto(std::string_view std_content, Format format, std::string_view std_source,
                       google::protobuf::Message& msg, ValueSources* sources) {
  const absl::string_view content = Absl(std_content);
  const absl::string_view source = Absl(std_source);
  std::map<std::string, YAML::Node>* values = nullptr;
  std::map<std::string, YAML::Mark>* positions = nullptr;
  if (sources != nullptr) {
    auto& impl = ValueSourcesAccess::Of(*sources);
    impl.source = std::string(source);
    impl.values.clear();
    impl.positions.clear();
    values = &impl.values;
    positions = &impl.positions;
  }
  // The message is replaced, not merged into; after an error it is left empty rather than half
  // filled.
  msg.Clear();
  switch (format) {
    case Format::kYaml:
    case Format::kJson:
      return ParseYamlInto(content, source, msg, values, positions);
    case Format::kTextProto:
      return ParseTextProtoInto(content, source, msg);
  }
  return absl::InvalidArgumentError(absl::StrCat(source, ": unknown format"));
}

absl::Status LoadFile(const std::string& path, google::protobuf::Message& msg,
                      ValueSources* sources) {
  absl::StatusOr<Format> format = FormatForPath(path);
  if (!format.ok()) return format.status();
  absl::StatusOr<std::string> content = ReadFile(path);
  if (!content.ok()) return content.status();
  return ParseInto(*content, *format, path, msg, sources);
}

}  // namespace sluice::config
