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
  ~Cache() {
    for (Bin& b : bins) {
      while (b.head != nullptr) {
        FreeBlock* f = b.head;
        b.head = f->next;
        std::free(reinterpret_cast<char*>(f) - kHeader);
      }
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

}  // namespace

void* BlockCache::Allocate(size_t size) {
  const size_t rounded = (size + kGranule - 1) & ~(kGranule - 1);
  if (Bin* b = t_cache.find(rounded, /*claim=*/false); b != nullptr && b->head != nullptr) {
    FreeBlock* f = b->head;
    b->head = f->next;
    --b->count;
    return f;
  }
  void* raw = std::aligned_alloc(16, rounded + kHeader);
  if (raw == nullptr) throw std::bad_alloc();
  *static_cast<size_t*>(raw) = rounded;
  return static_cast<char*>(raw) + kHeader;
}

void BlockCache::Free(void* block) {
  if (block == nullptr) return;
  char* raw = static_cast<char*>(block) - kHeader;
  const size_t size = *reinterpret_cast<size_t*>(raw);
  Bin* b = t_cache.find(size, /*claim=*/true);
  if (b == nullptr || b->count >= kMaxBlocks) {
    std::free(raw);
    return;
  }
  auto* f = static_cast<FreeBlock*>(block);
  f->next = b->head;
  b->head = f;
  ++b->count;
}

}  // namespace sluice
