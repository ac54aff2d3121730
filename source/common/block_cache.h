#pragma once

#include <cstddef>

namespace sluice {

// Per-thread free lists of same-sized memory blocks, for objects made and destroyed at a high
// rate whose size is only known at run time, e.g. an HTTP stream allocated together with its
// filter chain. Reusing a block is a few instructions; malloc of a block larger than glibc's
// per-thread cache (about 1 KiB) takes its slow, consolidating path instead, which profiles
// showed as the largest user-space cost of a stream with ten filters.
//
// Bounded: each thread keeps, per size (a few sizes), at most kMaxBlocks blocks and at most
// kMaxBytesPerSize bytes; beyond that blocks go back to malloc. Sized for HTTP/2, where one
// worker has hundreds of streams in flight (h2load -c16 -m32: 512) rather than one per
// connection: a cache smaller than that misses on every stream. A block may be freed on another
// thread than the one that allocated it (it then joins that thread's lists). Blocks are 16-byte
// aligned.
class BlockCache {
 public:
  static constexpr size_t kMaxBlocks = 1024;
  static constexpr size_t kMaxBytesPerSize = 1024 * 1024;
  static constexpr size_t kSizes = 12;

  static void* Allocate(size_t size);
  static void Free(void* block);
  // Returns this thread's cached blocks to the allocator (e.g. a worker going idle for long;
  // tests that count allocations).
  static void ReleaseThreadCache();
  // Bytes this thread has handed back to malloc since the last call (blocks the cache would not
  // keep), for deciding when to return freed memory to the system (malloc_trim).
  static size_t TakeReleasedBytes();
};

// A base for objects made and freed at a high rate (per request): `new` takes their block from
// BlockCache. No members, no virtuals: empty-base optimized away.
struct BlockCached {
  static void* operator new(size_t size) { return BlockCache::Allocate(size); }
  static void operator delete(void* p) { BlockCache::Free(p); }
};

}  // namespace sluice
