#include "source/http/http2/nghttp2_util.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace sluice::http::http2 {

namespace {

// nghttp2 allocates and frees many small blocks per stream (its stream, outbound items, header
// buffers): from per-thread free lists by size class here, not malloc's general path (a session
// lives and dies on its worker's thread). Bounded per class; larger blocks go to malloc.
class SmallBlocks {
 public:
  static constexpr size_t kHeader = 16;  // keeps blocks 16-byte aligned
  static constexpr size_t kGranule = 32;
  static constexpr size_t kClasses = 32;  // up to 1 KiB
  static constexpr size_t kMaxPerClass = 512;

  static void* Malloc(size_t size, void*) {
    if (size == 0) size = 1;
    const size_t cls = (size + kGranule - 1) / kGranule;  // 1-based
    if (cls > kClasses) return Tag(std::malloc(size + kHeader), 0);
    Lists& l = lists();
    if (Node* n = l.head[cls - 1]) {
      l.head[cls - 1] = n->next;
      --l.count[cls - 1];
      return Tag(n, cls);
    }
    return Tag(std::malloc(cls * kGranule + kHeader), cls);
  }
  static void Free(void* p, void*) {
    if (p == nullptr) return;
    char* raw = static_cast<char*>(p) - kHeader;
    size_t cls;
    std::memcpy(&cls, raw, sizeof(cls));
    Lists& l = lists();
    if (cls == 0 || l.count[cls - 1] >= kMaxPerClass) {
      std::free(raw);
      return;
    }
    Node* n = reinterpret_cast<Node*>(raw);
    n->next = l.head[cls - 1];
    l.head[cls - 1] = n;
    ++l.count[cls - 1];
  }
  static void* Calloc(size_t n, size_t size, void* u) {
    if (size != 0 && n > SIZE_MAX / size) return nullptr;
    void* p = Malloc(n * size, u);
    if (p != nullptr) std::memset(p, 0, n * size);
    return p;
  }
  static void* Realloc(void* p, size_t size, void* u) {
    if (p == nullptr) return Malloc(size, u);
    char* raw = static_cast<char*>(p) - kHeader;
    size_t cls;
    std::memcpy(&cls, raw, sizeof(cls));
    if (cls == 0) return Tag(std::realloc(raw, size + kHeader), 0);
    if (size <= cls * kGranule) return p;
    void* q = Malloc(size, u);
    if (q != nullptr) std::memcpy(q, p, cls * kGranule);
    Free(p, u);
    return q;
  }
  static nghttp2_mem* Mem() {
    static nghttp2_mem mem = {nullptr, &Malloc, &Free, &Calloc, &Realloc};
    return &mem;
  }

 private:
  struct Node {
    Node* next;
  };
  struct Lists {
    Node* head[kClasses] = {};
    uint32_t count[kClasses] = {};
    ~Lists() {
      for (Node*& h : head) {
        while (h != nullptr) {
          Node* next = h->next;
          std::free(h);
          h = next;
        }
      }
    }
  };
  static Lists& lists() {
    thread_local Lists l;
    return l;
  }
  static void* Tag(void* raw, size_t cls) {
    if (raw == nullptr) return nullptr;
    std::memcpy(raw, &cls, sizeof(cls));
    return static_cast<char*>(raw) + kHeader;
  }
};

}  // namespace

nghttp2_mem* SessionAllocator() { return SmallBlocks::Mem(); }

}  // namespace sluice::http::http2
