#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "source/http/header_map.h"

// What both HTTP/2 codecs (server and client side) use of nghttp2.
namespace sluice::http::http2 {

// Lower-case copies of field names (HTTP/2 requires them, RFC 9113 §8.2.1; HTTP/1 peers and
// filters write any case), made in one per-thread buffer per head: sized for all of them first,
// so that views into it stay valid while the head is submitted (nghttp2 copies them then).
class NameLowering {
 public:
  void prepare(const HeaderMap& headers) {
    size_t need = 0;
    for (const HeaderMap::Entry& e : headers.entries()) need += e.name.size();
    if (buf_.size() < need) buf_.resize(need);
    used_ = 0;
  }
  std::string_view lower(std::string_view name) {
    bool upper = false;
    for (char c : name) upper |= c >= 'A' && c <= 'Z';
    if (!upper) return name;
    char* out = buf_.data() + used_;
    for (size_t i = 0; i < name.size(); ++i) {
      const char c = name[i];
      out[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    used_ += name.size();
    return std::string_view(out, name.size());
  }

 private:
  std::string buf_;
  size_t used_ = 0;
};

// nghttp2's allocator for sessions that live and die on one thread (nghttp2_util.cc).
nghttp2_mem* SessionAllocator();

inline nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace sluice::http::http2
