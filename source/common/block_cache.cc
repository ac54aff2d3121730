#include "source/common/block_cache.h"

#include <cstdint>
#include <cstdlib>
#include <new>

namespace sluice {

namespace {

// Each block starts with a header holding its size class (rounded size), then the user's bytes.
constexpr size_t kHeader = 16;
constexpr size_t kGranule = 64;

struct FreeBlock {
  FreeBlock* next;
};

struct Bin {
  size_t size = 0;  // 0: unused
  FreeBlock* head = nullptr;
  size_t count = 0;
};

struct Cache {
  Bin bins[BlockCache::kSizes];
  ~Cache() { release(); }
  void release() {
    for (Bin& b : bins) {
      while (b.head != nullptr) {
        FreeBlock* f = b.head;
        b.head = f->next;
        ::operator delete(reinterpret_cast<char*>(f) - kHeader);
      }
      b.count = 0;
    }
  }
  Bin* find(size_t size, bool claim) {
    for (Bin& b : bins) {
      if (b.size == size) return &b;
    }
    if (!claim) return nullptr;
    for (Bin& b : bins) {
      if (b.size == 0) {
        b.size = size;
        return &b;
      }
    }
    return nullptr;
  }
};

thread_local Cache t_cache;
thread_local size_t t_released = 0;

}  // namespace

void* BlockCache::Allocate(size_t size) {
  const size_t rounded = (size + kGranule - 1) & ~(kGranule - 1);
  if (Bin* b = t_cache.find(rounded, /*claim=*/false); b != nullptr && b->head != nullptr) {
    FreeBlock* f = b->head;
    b->head = f->next;
    --b->count;
    return f;
  }
  // ::operator new is 16-byte aligned here (__STDCPP_DEFAULT_NEW_ALIGNMENT__) and visible to
  // allocation-counting tests.
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16);
  void* raw = ::operator new(rounded + kHeader);
  *static_cast<size_t*>(raw) = rounded;
  return static_cast<char*>(raw) + kHeader;
}

void BlockCache::Free(void* block) {
  if (block == nullptr) return;
  char* raw = static_cast<char*>(block) - kHeader;
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer every block goes back to the allocator, so that a use after free of
  // a cached object is caught instead of hidden by the block's reuse.
  ::operator delete(raw);
  return;
#endif
  const size_t size = *reinterpret_cast<size_t*>(raw);
  Bin* b = t_cache.find(size, /*claim=*/true);
  if (b == nullptr || b->count >= kMaxBlocks || (b->count + 1) * size > kMaxBytesPerSize) {
    t_released += size;
    ::operator delete(raw);
    return;
  }
  auto* f = static_cast<FreeBlock*>(block);
  f->next = b->head;
  b->head = f;
  ++b->count;
}

void BlockCache::ReleaseThreadCache() { t_cache.release(); }

size_t BlockCache::TakeReleasedBytes() {
  const size_t n = t_released;
  t_released = 0;
  return n;
}

}  // namespace sluice
