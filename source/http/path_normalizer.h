#pragma once

#include <string>
#include <string_view>

namespace sluice::http {

// How a request's path is put in canonical form before any filter routes on it, so that an
// access rule written for "/admin" also holds for "/x/../admin", "/%61dmin", "//admin" and
// "http://host/admin" — the ways a path is spelled differently but read the same by an origin.
// RFC 3986 §6.2.2 (syntax-based normalization) plus what Envoy's normalize_path, merge_slashes
// and path_with_escaped_slashes_action do.
struct PathNormalization {
  // Percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) decoded, other percent-encodings
  // written with uppercase hex, '\' read as '/' (as browsers and Windows origins read it),
  // "." and ".." segments removed (RFC 3986 §5.2.4). A '%' not followed by two hex digits is
  // rejected (400): an origin could read it either way.
  bool normalize = true;
  // Runs of '/' become one.
  bool merge_slashes = true;
  // %2F and %5C: an origin may or may not read them as separators, so a route cannot know which
  // path it matched.
  enum class EscapedSlashes {
    kKeep,                 // left encoded (uppercase); routes see them as ordinary characters
    kReject,               // 400
    kUnescapeAndRedirect,  // decoded and normalized again; the client is sent there (307)
    kUnescapeAndForward,   // decoded and normalized again; the request goes on
  } escaped_slashes = EscapedSlashes::kUnescapeAndRedirect;
};

enum class PathResult {
  kUnchanged,   // `out` left empty: the target is canonical already
  kNormalized,  // `out` holds the canonical target
  kRedirect,    // `out` holds the canonical target; answer 307 with it as Location
  kReject,      // `reason` says why; answer 400
};

// Normalizes the path of an origin-form target ("/p?q"); the query is kept byte for byte.
// Targets that do not start with '/' (asterisk-form, authority-form) are left alone. Cheap when
// nothing needs doing: one pass over the path, no allocation.
PathResult NormalizePath(std::string_view target, const PathNormalization& options,
                         std::string& out, const char*& reason);

// An absolute-form target ("http://host:port/p?q", validated by the parser) split into its
// authority and the origin-form target it stands for ("/p?q"; "/" or "/?q" when the path is
// empty). False when `target` is not absolute-form.
bool SplitAbsoluteForm(std::string_view target, std::string_view& authority,
                       std::string& origin_form);

}  // namespace sluice::http
