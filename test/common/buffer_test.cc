#include "source/common/buffer.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/common/block_cache.h"

// Counting replacements of the global allocation functions, so tests can check that a code path
// allocates nothing (or frees everything it allocated). Slices and the deque's heap ring both come
// from ::operator new, so they are all seen here.
namespace {
std::atomic<int64_t> g_live_allocations{0};
std::atomic<int64_t> g_total_allocations{0};
}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  g_live_allocations.fetch_add(1, std::memory_order_relaxed);
  g_total_allocations.fetch_add(1, std::memory_order_relaxed);
  return p;
}
void* operator new[](size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept {
  if (p != nullptr) {
    g_live_allocations.fetch_sub(1, std::memory_order_relaxed);
    std::free(p);
  }
}
void operator delete[](void* p) noexcept { ::operator delete(p); }
void operator delete(void* p, size_t) noexcept { ::operator delete(p); }
void operator delete[](void* p, size_t) noexcept { ::operator delete(p); }

namespace sluice {
namespace {

constexpr size_t kSlice = Slice::kDefaultCapacity;

// Heap activity since construction: `allocations()` counts every allocation made, `live()` the
// net number still outstanding.
// Slices come through the per-thread BlockCache: it is emptied at construction and before
// every live() reading, so cached blocks count as freed and a new slice as an allocation.
class AllocationCounter {
 public:
  AllocationCounter() {
    BlockCache::ReleaseThreadCache();
    total_ = g_total_allocations.load();
    live_ = g_live_allocations.load();
  }
  int64_t allocations() const { return g_total_allocations.load() - total_; }
  int64_t live() const {
    BlockCache::ReleaseThreadCache();
    return g_live_allocations.load() - live_;
  }

 private:
  int64_t total_ = 0;
  int64_t live_ = 0;
};

// Deterministic, position-dependent bytes so that misordered or duplicated data shows up.
std::string pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

std::vector<iovec> slicesOf(const Buffer& b) {
  std::vector<iovec> iov(b.sliceCount() + 1);
  iov.resize(b.peek(iov.data(), iov.size()));
  return iov;
}

const void* sliceData(const Buffer& b, size_t i) { return slicesOf(b).at(i).iov_base; }

// The chain is consistent: no empty slice, lengths add up, and the content is `expected`.
void expectContent(const Buffer& b, const std::string& expected) {
  ASSERT_EQ(b.length(), expected.size());
  EXPECT_EQ(b.empty(), expected.empty());
  size_t sum = 0;
  for (const iovec& v : slicesOf(b)) {
    EXPECT_GT(v.iov_len, 0u) << "empty slice kept in the chain";
    sum += v.iov_len;
  }
  EXPECT_EQ(sum, b.length());
  EXPECT_TRUE(b.toString() == expected) << "content differs";
}

// A buffer of `count` full default-size slices: each add() after the first finds no room left.
std::string fillSlices(Buffer& b, size_t count, uint32_t seed = 7) {
  std::string all;
  for (size_t i = 0; i < count; ++i) {
    std::string part = pattern(kSlice, seed + static_cast<uint32_t>(i));
    b.add(part);
    all += part;
  }
  EXPECT_EQ(b.sliceCount(), count);
  return all;
}

// ---------------------------------------------------------------------------------------------
// Slice

TEST(SliceTest, CreateSmallIsNotRoundedUp) {
  SlicePtr s = Slice::create(100);
  EXPECT_EQ(s->capacity(), 100u);
  EXPECT_EQ(s->length(), 0u);
  EXPECT_EQ(s->headroom(), 0u);
  EXPECT_EQ(s->reservable(), 100u);
}

TEST(SliceTest, CreateLargeRoundsToDefaultMultiples) {
  EXPECT_EQ(Slice::create(kSlice)->capacity(), kSlice);
  EXPECT_EQ(Slice::create(kSlice + 1)->capacity(), 2 * kSlice);
  EXPECT_EQ(Slice::create(3 * kSlice)->capacity(), 3 * kSlice);
  EXPECT_EQ(Slice::create(0)->capacity(), 0u);
}

TEST(SliceTest, OneAllocationPerSliceAndFreedOnDestruction) {
  AllocationCounter counter;
  SlicePtr s = Slice::create(kSlice);
  EXPECT_EQ(counter.allocations(), 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s->data()) % alignof(std::max_align_t), 0u);
  s.reset();
  EXPECT_EQ(counter.live(), 0);
}

TEST(SliceTest, AppendCopiesWhatFits) {
  SlicePtr s = Slice::create(10);
  EXPECT_EQ(s->append("abcdef", 6), 6u);
  EXPECT_EQ(s->append("ghijklmn", 8), 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data()), s->length()), "abcdefghij");
  EXPECT_EQ(s->reservable(), 0u);
  EXPECT_EQ(s->append("x", 1), 0u);
  EXPECT_EQ(s->append(nullptr, 0), 0u);
}

TEST(SliceTest, DrainLeavesHeadroomThatPrependFillsFromTheEnd) {
  SlicePtr s = Slice::create(16);
  s->append("abcdef", 6);
  s->drain(3);
  EXPECT_EQ(s->headroom(), 3u);
  EXPECT_EQ(s->length(), 3u);
  // Only three bytes fit: they are taken from the end of the input.
  EXPECT_EQ(s->prepend("xyz12", 5), 3u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data()), s->length()), "z12def");
  EXPECT_EQ(s->headroom(), 0u);
  EXPECT_EQ(s->prepend("q", 1), 0u);
}

TEST(SliceTest, ReserveAndCommit) {
  SlicePtr s = Slice::create(8);
  s->append("ab", 2);
  uint8_t* room = s->reserveBase();
  EXPECT_EQ(room, s->data() + 2);
  std::memcpy(room, "cde", 3);
  s->commit(3);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data()), s->length()), "abcde");
  EXPECT_EQ(s->reservable(), 3u);
}

// ---------------------------------------------------------------------------------------------
// SliceDeque

std::vector<SlicePtr> makeSlices(size_t n) {
  std::vector<SlicePtr> v;
  for (size_t i = 0; i < n; ++i) {
    v.push_back(Slice::create(1));
  }
  return v;
}

TEST(SliceDequeTest, EmptyHoldsNoHeap) {
  AllocationCounter counter;
  {
    SliceDeque d;
    EXPECT_TRUE(d.empty());
    EXPECT_EQ(d.size(), 0u);
    d.clear();
  }
  EXPECT_EQ(counter.allocations(), 0);
}

TEST(SliceDequeTest, InlineSlotCyclesWithoutHeap) {
  // One slice pointer is kept inline: a buffer that holds one slice at a time (the common case
  // for a connection) never allocates a ring, however many slices pass through it.
  std::vector<SlicePtr> slices = makeSlices(64);
  std::vector<Slice*> raw;
  for (auto& s : slices) raw.push_back(s.get());
  std::vector<SlicePtr> popped;
  popped.reserve(slices.size());
  AllocationCounter counter;
  SliceDeque d;
  for (size_t i = 0; i < slices.size(); ++i) {
    if (i % 2 == 0) {
      d.pushBack(std::move(slices[i]));
    } else {
      d.pushFront(std::move(slices[i]));
    }
    ASSERT_EQ(d.size(), 1u);
    ASSERT_EQ(&d.front(), raw[i]);
    ASSERT_EQ(&d.back(), raw[i]);
    popped.push_back(i % 3 == 0 ? d.popFront() : d.popBack());
    ASSERT_EQ(popped.back().get(), raw[i]);
    ASSERT_TRUE(d.empty());
  }
  EXPECT_EQ(counter.allocations(), 0);
}

TEST(SliceDequeTest, PushFrontAndBackPastInlineThenBackToNoHeap) {
  std::vector<SlicePtr> s = makeSlices(4);
  Slice* p[4];
  for (int i = 0; i < 4; ++i) p[i] = s[i].get();
  AllocationCounter counter;
  SliceDeque d;
  d.pushBack(std::move(s[2]));
  d.pushFront(std::move(s[1]));
  d.pushBack(std::move(s[3]));
  d.pushFront(std::move(s[0]));
  ASSERT_EQ(d.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(&d[i], p[i]);
  EXPECT_EQ(&d.front(), p[0]);
  EXPECT_EQ(&d.back(), p[3]);
  EXPECT_GT(counter.allocations(), 0);  // past the inline slot: a heap ring
  const int64_t live_full = counter.live();
  SlicePtr a = d.popBack();
  SlicePtr b = d.popFront();
  EXPECT_EQ(a.get(), p[3]);
  EXPECT_EQ(b.get(), p[0]);
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(counter.live(), live_full);  // still holding the ring
  SlicePtr x = d.popFront();
  SlicePtr y = d.popFront();
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(counter.live(), live_full - 1);  // emptied: the ring is gone
}

TEST(SliceDequeTest, SwapInlineWithHeapRingBothWays) {
  std::vector<SlicePtr> s = makeSlices(4);
  Slice* p[4];
  for (int i = 0; i < 4; ++i) p[i] = s[i].get();
  SliceDeque one;    // inline
  SliceDeque three;  // heap ring
  one.pushBack(std::move(s[0]));
  for (int i = 1; i < 4; ++i) three.pushBack(std::move(s[i]));
  one.swap(three);
  ASSERT_EQ(one.size(), 3u);
  ASSERT_EQ(three.size(), 1u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(&one[i], p[i + 1]);
  EXPECT_EQ(&three.front(), p[0]);
  // Both keep working after the swap (the inline one must use its own inline slot).
  three.pushBack(one.popFront());
  EXPECT_EQ(&three.back(), p[1]);
  one.swap(three);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(&one.front(), p[0]);
  EXPECT_EQ(&one.back(), p[1]);
  ASSERT_EQ(three.size(), 2u);
  EXPECT_EQ(&three.front(), p[2]);
  SliceDeque empty;
  empty.swap(one);
  EXPECT_TRUE(one.empty());
  EXPECT_EQ(empty.size(), 2u);
}

TEST(SliceDequeTest, GrowsPastInlineKeepingOrder) {
  std::vector<SlicePtr> slices = makeSlices(100);
  std::vector<Slice*> raw;
  for (auto& s : slices) raw.push_back(s.get());
  SliceDeque d;
  // Interleave so that growth happens with the head in the middle of the ring.
  d.pushBack(std::move(slices[50]));
  for (int i = 1; i <= 49; ++i) {
    d.pushBack(std::move(slices[50 + i]));
    d.pushFront(std::move(slices[50 - i]));
  }
  d.pushFront(std::move(slices[0]));
  ASSERT_EQ(d.size(), 100u);
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(&d[i], raw[i]) << i;
}

TEST(SliceDequeTest, RandomOperationsMatchStdDeque) {
  std::mt19937 rng(42);
  SliceDeque d;
  std::deque<Slice*> model;
  for (int phase = 0; phase < 6; ++phase) {
    // Alternate between growing (push-biased) and shrinking (pop-biased) phases so the ring both
    // grows and wraps many times.
    const bool growing = phase % 2 == 0;
    for (int step = 0; step < 3000; ++step) {
      const int r = static_cast<int>(rng() % 100);
      const bool push = model.empty() || (growing ? r < 65 : r < 35);
      const bool front = rng() % 2 == 0;
      if (push) {
        SlicePtr s = Slice::create(1);
        Slice* raw = s.get();
        if (front) {
          d.pushFront(std::move(s));
          model.push_front(raw);
        } else {
          d.pushBack(std::move(s));
          model.push_back(raw);
        }
      } else if (front) {
        SlicePtr s = d.popFront();
        ASSERT_EQ(s.get(), model.front());
        model.pop_front();
      } else {
        SlicePtr s = d.popBack();
        ASSERT_EQ(s.get(), model.back());
        model.pop_back();
      }
      ASSERT_EQ(d.size(), model.size());
      if (!model.empty()) {
        ASSERT_EQ(&d.front(), model.front());
        ASSERT_EQ(&d.back(), model.back());
      }
      if (step % 97 == 0) {
        for (size_t i = 0; i < model.size(); ++i) ASSERT_EQ(&d[i], model[i]);
      }
    }
  }
}

TEST(SliceDequeTest, ClearFreesSlicesAndHeapRing) {
  AllocationCounter counter;
  SliceDeque d;
  for (int i = 0; i < 37; ++i) d.pushBack(Slice::create(8));
  EXPECT_GT(counter.live(), 37);  // slices plus the heap ring
  d.clear();
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(counter.live(), 0);
  // Usable again after clear().
  d.pushFront(Slice::create(8));
  d.pushFront(Slice::create(8));
  EXPECT_EQ(d.size(), 2u);
}

TEST(SliceDequeTest, PoppingToEmptyReleasesHeapRing) {
  AllocationCounter counter;
  SliceDeque d;
  for (int i = 0; i < 20; ++i) d.pushBack(Slice::create(8));
  while (!d.empty()) d.popFront();
  EXPECT_EQ(counter.live(), 0);
  for (int i = 0; i < 20; ++i) d.pushFront(Slice::create(8));
  while (!d.empty()) d.popBack();
  EXPECT_EQ(counter.live(), 0);
}

TEST(SliceDequeTest, DestructorFreesEverything) {
  AllocationCounter counter;
  {
    SliceDeque d;
    for (int i = 0; i < 9; ++i) d.pushFront(Slice::create(8));
  }
  EXPECT_EQ(counter.live(), 0);
}

// ---------------------------------------------------------------------------------------------
// Buffer: basics

TEST(BufferTest, AddCopyCopiesEverySliceAndLeavesTheSource) {
  Buffer src;
  std::string expected;
  for (int i = 0; i < 40; ++i) {  // many slices (more than an iovec batch)
    Buffer part;
    part.add(std::string(1000 + i, static_cast<char>('a' + i % 26)));
    expected += part.toString();
    src.move(part);
  }
  Buffer dst;
  dst.add("head:");
  dst.addCopy(src);
  EXPECT_EQ("head:" + expected, dst.toString());
  EXPECT_EQ(expected, src.toString());
  Buffer empty;
  dst.addCopy(empty);
  EXPECT_EQ("head:" + expected, dst.toString());
}

TEST(BufferTest, EmptyBufferOperations) {
  Buffer b;
  EXPECT_EQ(b.length(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(b.toString(), "");
  b.drain(0);
  b.drain(100);
  EXPECT_EQ(b.length(), 0u);
  iovec iov[4];
  EXPECT_EQ(b.peek(iov, 4), 0u);
  b.copyOut(0, 0, nullptr);
  b.clear();
  Buffer other;
  b.move(other);
  b.move(other, 100);
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(other.empty());
  b.add("", 0);
  b.add(nullptr, 0);
  b.prepend("");
  EXPECT_EQ(b.sliceCount(), 0u);
}

TEST(BufferTest, EmptyBufferAllocatesNothing) {
  AllocationCounter counter;
  {
    Buffer b;
    Buffer other;
    b.drain(0);
    b.drain(10);
    b.move(other);
    b.move(other, 10);
    b.add(nullptr, 0);
    b.prepend("");
    b.clear();
    iovec iov[2];
    b.peek(iov, 2);
  }
  EXPECT_EQ(counter.allocations(), 0);
}

TEST(BufferTest, BufferReturnsToNoHeapWhenEmptied) {
  AllocationCounter counter;
  Buffer b;
  fillSlices(b, 9);  // more slices than the deque keeps inline
  b.drain(b.length());
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(counter.live(), 0);
  fillSlices(b, 9);
  b.clear();
  EXPECT_EQ(counter.live(), 0);
}

TEST(BufferTest, SmallAddsShareOneSlice) {
  Buffer b;
  b.add("hello");
  b.add(std::string_view(" "));
  b.add("world", 5);
  expectContent(b, "hello world");
  EXPECT_EQ(b.sliceCount(), 1u);
}

TEST(BufferTest, AddAcrossSliceBoundary) {
  Buffer b;
  const std::string first = pattern(kSlice - 10, 1);
  const std::string second = pattern(100, 2);
  b.add(first);
  EXPECT_EQ(b.sliceCount(), 1u);
  b.add(second);
  // The tail's last 10 bytes are filled first, the other 90 go to a new slice.
  EXPECT_EQ(b.sliceCount(), 2u);
  std::vector<iovec> iov = slicesOf(b);
  EXPECT_EQ(iov[0].iov_len, kSlice);
  EXPECT_EQ(iov[1].iov_len, 90u);
  expectContent(b, first + second);
}

TEST(BufferTest, BigAddUsesOneLargeSlice) {
  Buffer b;
  const std::string big = pattern(5 * kSlice + 123, 3);
  b.add(big);
  EXPECT_EQ(b.sliceCount(), 1u);
  expectContent(b, big);

  Buffer c;
  c.add("abc");
  c.add(big);
  // Tail room filled first, the rest in one new slice.
  EXPECT_EQ(c.sliceCount(), 2u);
  EXPECT_EQ(slicesOf(c)[0].iov_len, kSlice);
  expectContent(c, "abc" + big);
}

TEST(BufferTest, DrainPartialAndClamped) {
  Buffer b;
  b.add("hello world");
  const void* before = sliceData(b, 0);
  b.drain(6);
  expectContent(b, "world");
  EXPECT_EQ(sliceData(b, 0), static_cast<const uint8_t*>(before) + 6);
  b.drain(0);
  expectContent(b, "world");
  b.drain(1000);
  expectContent(b, "");
  EXPECT_EQ(b.sliceCount(), 0u);
}

TEST(BufferTest, DrainFreesEmptiedSlices) {
  AllocationCounter counter;
  Buffer b;
  const std::string all = fillSlices(b, 3);
  const int64_t with_three = counter.live();
  b.drain(kSlice);
  EXPECT_EQ(b.sliceCount(), 2u);
  EXPECT_EQ(counter.live(), with_three - 1);
  expectContent(b, all.substr(kSlice));
  b.drain(kSlice + 10);
  EXPECT_EQ(b.sliceCount(), 1u);
  EXPECT_EQ(counter.live(), with_three - 2);
  expectContent(b, all.substr(2 * kSlice + 10));
  b.drain(kSlice - 10);
  EXPECT_EQ(b.sliceCount(), 0u);
  // The three slices and the heap ring of slice pointers are gone; only the test's own `all`
  // string remains.
  EXPECT_EQ(counter.live(), with_three - 4);
}

TEST(BufferTest, ClearFreesEverything) {
  AllocationCounter counter;
  Buffer b;
  fillSlices(b, 5);
  b.prepend("x");
  b.clear();
  EXPECT_EQ(b.length(), 0u);
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(counter.live(), 0);
  b.add("again");
  expectContent(b, "again");
}

// ---------------------------------------------------------------------------------------------
// Buffer: prepend

TEST(BufferTest, PrependToEmptyBehavesLikeAdd) {
  Buffer b;
  b.prepend("world");
  b.add("!");
  expectContent(b, "world!");
  EXPECT_EQ(b.sliceCount(), 1u);
}

TEST(BufferTest, PrependUsesHeadroom) {
  Buffer b;
  b.add("hello world");
  b.drain(6);
  const auto* before = static_cast<const uint8_t*>(sliceData(b, 0));
  b.prepend("HELLO ");
  expectContent(b, "HELLO world");
  EXPECT_EQ(b.sliceCount(), 1u);
  EXPECT_EQ(sliceData(b, 0), before - 6);
}

TEST(BufferTest, PrependWithoutHeadroomAddsFrontSlice) {
  Buffer b;
  b.add("world");
  b.prepend("hello ");
  expectContent(b, "hello world");
  EXPECT_EQ(b.sliceCount(), 2u);
  // The new front slice keeps room in front of its bytes for further small prepends.
  b.prepend("say: ");
  b.prepend("> ");
  expectContent(b, "> say: hello world");
  EXPECT_EQ(b.sliceCount(), 2u);
}

TEST(BufferTest, PrependSplitsAcrossPartialHeadroom) {
  Buffer b;
  b.add("abcdef");
  b.drain(2);  // two bytes of headroom
  b.prepend("0123");
  expectContent(b, "0123cdef");
  EXPECT_EQ(b.sliceCount(), 2u);
  EXPECT_EQ(slicesOf(b)[0].iov_len, 2u);
  EXPECT_EQ(slicesOf(b)[1].iov_len, 6u);
}

TEST(BufferTest, BigPrepend) {
  Buffer b;
  b.add("tail");
  const std::string big = pattern(3 * kSlice + 5, 4);
  b.prepend(big);
  expectContent(b, big + "tail");
  EXPECT_EQ(b.sliceCount(), 2u);
}

TEST(BufferTest, ManySmallPrepends) {
  Buffer b;
  b.add("end");
  std::string expected = "end";
  for (int i = 0; i < 1000; ++i) {
    const std::string piece = std::to_string(i) + ",";
    b.prepend(piece);
    expected = piece + expected;
  }
  expectContent(b, expected);
  // Each new front slice has headroom for many of these, so the chain stays short.
  EXPECT_LT(b.sliceCount(), 40u);
}

// ---------------------------------------------------------------------------------------------
// Buffer: move

TEST(BufferTest, MoveAllHandsOverSlicePointers) {
  Buffer src;
  const std::string all = fillSlices(src, 3);
  const std::vector<iovec> before = slicesOf(src);
  Buffer dst;
  dst.move(src);
  EXPECT_TRUE(src.empty());
  EXPECT_EQ(src.sliceCount(), 0u);
  ASSERT_EQ(dst.sliceCount(), 3u);
  const std::vector<iovec> after = slicesOf(dst);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(after[i].iov_base, before[i].iov_base) << i;
    EXPECT_EQ(after[i].iov_len, before[i].iov_len) << i;
  }
  expectContent(dst, all);
}

TEST(BufferTest, MoveAllOntoNonEmptyBufferDoesNotCopyLargeSlices) {
  Buffer src;
  const std::string all = fillSlices(src, 6);
  const std::vector<iovec> before = slicesOf(src);
  Buffer dst;
  dst.add("head");  // leaves plenty of room in dst's tail
  dst.move(src);
  ASSERT_EQ(dst.sliceCount(), 7u);
  const std::vector<iovec> after = slicesOf(dst);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(after[i + 1].iov_base, before[i].iov_base) << i;
  expectContent(dst, "head" + all);
  EXPECT_TRUE(src.empty());
}

TEST(BufferTest, MoveAllNoHeapActivityForLargeSlices) {
  Buffer src;
  fillSlices(src, 3);
  Buffer dst;
  AllocationCounter counter;
  dst.move(src);
  EXPECT_EQ(counter.allocations(), 0);
}

TEST(BufferTest, MoveCoalescesTinySliceIntoTailRoom) {
  Buffer src;
  src.add("def");
  Buffer dst;
  dst.add("abc");
  dst.move(src);
  expectContent(dst, "abcdef");
  EXPECT_EQ(dst.sliceCount(), 1u);
  EXPECT_TRUE(src.empty());
  EXPECT_EQ(src.sliceCount(), 0u);
}

TEST(BufferTest, MoveFromEmptyAndIntoEmpty) {
  Buffer a;
  Buffer b;
  a.move(b);
  EXPECT_TRUE(a.empty());
  b.add("xyz");
  a.move(b);
  expectContent(a, "xyz");
  expectContent(b, "");
  a.move(b);
  expectContent(a, "xyz");
}

TEST(BufferTest, MoveFromSelfIsNoOp) {
  Buffer b;
  b.add("abc");
  b.move(b);
  expectContent(b, "abc");
  b.move(b, 2);
  expectContent(b, "abc");
}

TEST(BufferTest, MovePartialZero) {
  Buffer src;
  const std::string all = fillSlices(src, 2);
  Buffer dst;
  dst.move(src, 0);
  EXPECT_TRUE(dst.empty());
  EXPECT_EQ(dst.sliceCount(), 0u);
  expectContent(src, all);
}

TEST(BufferTest, MovePartialInsideFirstSliceCopies) {
  Buffer src;
  const std::string all = fillSlices(src, 2);
  const void* first = sliceData(src, 0);
  Buffer dst;
  dst.move(src, 100);
  expectContent(dst, all.substr(0, 100));
  expectContent(src, all.substr(100));
  EXPECT_EQ(src.sliceCount(), 2u);
  EXPECT_EQ(sliceData(src, 0), static_cast<const uint8_t*>(first) + 100);
  EXPECT_NE(sliceData(dst, 0), first);
}

TEST(BufferTest, MovePartialExactlyAtSliceBoundaryMovesPointers) {
  Buffer src;
  const std::string all = fillSlices(src, 3);
  const std::vector<iovec> before = slicesOf(src);
  Buffer dst;
  dst.move(src, 2 * kSlice);
  ASSERT_EQ(dst.sliceCount(), 2u);
  EXPECT_EQ(sliceData(dst, 0), before[0].iov_base);
  EXPECT_EQ(sliceData(dst, 1), before[1].iov_base);
  ASSERT_EQ(src.sliceCount(), 1u);
  EXPECT_EQ(sliceData(src, 0), before[2].iov_base);
  expectContent(dst, all.substr(0, 2 * kSlice));
  expectContent(src, all.substr(2 * kSlice));
}

TEST(BufferTest, MovePartialSpanningSlices) {
  Buffer src;
  const std::string all = fillSlices(src, 3);
  const std::vector<iovec> before = slicesOf(src);
  Buffer dst;
  dst.move(src, kSlice + 100);
  // The whole first slice by pointer; the 100 bytes of the second by copy.
  ASSERT_EQ(dst.sliceCount(), 2u);
  EXPECT_EQ(sliceData(dst, 0), before[0].iov_base);
  EXPECT_NE(sliceData(dst, 1), before[1].iov_base);
  ASSERT_EQ(src.sliceCount(), 2u);
  EXPECT_EQ(sliceData(src, 0), static_cast<const uint8_t*>(before[1].iov_base) + 100);
  expectContent(dst, all.substr(0, kSlice + 100));
  expectContent(src, all.substr(kSlice + 100));
}

TEST(BufferTest, MovePartialMoreThanLengthIsClamped) {
  Buffer src;
  const std::string all = fillSlices(src, 2);
  const std::vector<iovec> before = slicesOf(src);
  Buffer dst;
  dst.move(src, 10 * kSlice);
  expectContent(dst, all);
  expectContent(src, "");
  EXPECT_EQ(src.sliceCount(), 0u);
  EXPECT_EQ(sliceData(dst, 0), before[0].iov_base);
  EXPECT_EQ(sliceData(dst, 1), before[1].iov_base);
}

TEST(BufferTest, MovePartialWholeBuffer) {
  Buffer src;
  src.add("abcdef");
  Buffer dst;
  dst.move(src, 6);
  expectContent(dst, "abcdef");
  expectContent(src, "");
  EXPECT_EQ(src.sliceCount(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Buffer: reading the content

TEST(BufferTest, CopyOutAcrossSlices) {
  Buffer b;
  std::string all = fillSlices(b, 3);
  b.prepend("0123456789");
  all = "0123456789" + all;
  const size_t starts[] = {0, 1, 9, 10, 11, kSlice, kSlice + 10, 2 * kSlice + 9, all.size() - 1};
  const size_t lengths[] = {0, 1, 5, kSlice, kSlice + 20, 2 * kSlice + 1};
  for (size_t start : starts) {
    for (size_t n : lengths) {
      if (start + n > all.size()) continue;
      std::string out(n, '\0');
      b.copyOut(start, n, out.data());
      EXPECT_TRUE(out == all.substr(start, n)) << "start " << start << " n " << n;
    }
  }
  std::string whole(all.size(), '\0');
  b.copyOut(0, all.size(), whole.data());
  EXPECT_TRUE(whole == all);
}

TEST(BufferTest, PeekFillsUpToMax) {
  Buffer b;
  const std::string all = fillSlices(b, 3);
  b.prepend("xy");
  iovec iov[8];
  EXPECT_EQ(b.peek(iov, 0), 0u);
  ASSERT_EQ(b.peek(iov, 2), 2u);
  EXPECT_EQ(iov[0].iov_len, 2u);
  EXPECT_EQ(std::string(static_cast<const char*>(iov[0].iov_base), 2), "xy");
  EXPECT_EQ(iov[1].iov_len, kSlice);
  ASSERT_EQ(b.peek(iov, 8), 4u);
  std::string joined;
  for (size_t i = 0; i < 4; ++i)
    joined.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  EXPECT_TRUE(joined == "xy" + all);
}

// Many random operations on two buffers checked against two strings.
TEST(BufferTest, RandomOperationsMatchStringModel) {
  std::mt19937 rng(1234);
  Buffer bufs[2];
  std::string models[2];
  auto randomSize = [&]() -> size_t {
    switch (rng() % 8) {
      case 0:
        return 0;
      case 1:
        return rng() % (3 * kSlice);
      case 2:
        return kSlice;
      default:
        return rng() % 700;
    }
  };
  for (int step = 0; step < 3000; ++step) {
    const int i = static_cast<int>(rng() % 2);
    Buffer& b = bufs[i];
    std::string& m = models[i];
    Buffer& o = bufs[1 - i];
    std::string& om = models[1 - i];
    switch (rng() % 7) {
      case 0:
      case 1: {
        const std::string s = pattern(randomSize(), static_cast<uint32_t>(step));
        b.add(s);
        m += s;
        break;
      }
      case 2: {
        const std::string s = pattern(randomSize() % 1000, static_cast<uint32_t>(step));
        b.prepend(s);
        m = s + m;
        break;
      }
      case 3: {
        const size_t n = randomSize();
        b.drain(n);
        m.erase(0, std::min(n, m.size()));
        break;
      }
      case 4: {
        const size_t n = randomSize();
        b.move(o, n);
        const size_t moved = std::min(n, om.size());
        m += om.substr(0, moved);
        om.erase(0, moved);
        break;
      }
      case 5:
        b.move(o);
        m += om;
        om.clear();
        break;
      case 6:
        if (rng() % 10 == 0) {
          b.clear();
          m.clear();
        }
        break;
    }
    for (int k = 0; k < 2; ++k) {
      ASSERT_NO_FATAL_FAILURE(expectContent(bufs[k], models[k])) << "step " << step;
    }
    if (!m.empty()) {
      const size_t start = rng() % m.size();
      const size_t n = rng() % (m.size() - start + 1);
      std::string out(n, '\0');
      b.copyOut(start, n, out.data());
      ASSERT_TRUE(out == m.substr(start, n)) << "step " << step;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Buffer: I/O

class FdPair {
 public:
  // A non-blocking pipe: read end `in`, write end `out`.
  static FdPair pipe(bool nonblocking = true) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)), 0);
    return FdPair(fds[0], fds[1]);
  }
  static FdPair socketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    return FdPair(fds[0], fds[1]);
  }
  FdPair(FdPair&& o) noexcept : in_(o.in_), out_(o.out_) { o.in_ = o.out_ = -1; }
  ~FdPair() {
    closeIn();
    closeOut();
  }
  int in() const { return in_; }
  int out() const { return out_; }
  void closeIn() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  void closeOut() {
    if (out_ >= 0) ::close(out_);
    out_ = -1;
  }

 private:
  FdPair(int in, int out) : in_(in), out_(out) {}
  int in_;
  int out_;
};

void writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t rc = ::write(fd, s.data() + off, s.size() - off);
    ASSERT_GT(rc, 0) << strerror(errno);
    off += static_cast<size_t>(rc);
  }
}

std::string readAvailable(int fd) {
  std::string out;
  char tmp[65536];
  for (;;) {
    const ssize_t rc = ::read(fd, tmp, sizeof(tmp));
    if (rc <= 0) break;
    out.append(tmp, static_cast<size_t>(rc));
  }
  return out;
}

TEST(BufferIoTest, ReadFromPipe) {
  FdPair p = FdPair::pipe();
  writeAll(p.out(), "hello");
  Buffer b;
  const IoResult r = b.readFrom(p.in(), 1 << 20);
  EXPECT_EQ(r.rc, 5);
  EXPECT_EQ(r.error, 0);
  EXPECT_FALSE(r.wouldBlock());
  expectContent(b, "hello");
  EXPECT_EQ(b.sliceCount(), 1u);
}

TEST(BufferIoTest, ReadFromFillsTailRoomFirst) {
  FdPair p = FdPair::pipe();
  Buffer b;
  b.add("abc");
  const void* tail = sliceData(b, 0);
  writeAll(p.out(), "defgh");
  AllocationCounter counter;
  EXPECT_EQ(b.readFrom(p.in(), 1 << 20).rc, 5);
  expectContent(b, "abcdefgh");
  EXPECT_EQ(b.sliceCount(), 1u);
  EXPECT_EQ(sliceData(b, 0), tail);
  // The speculative new slices that got nothing were freed again.
  EXPECT_EQ(counter.live(), 0);
}

TEST(BufferIoTest, ReadFromRespectsMaxLength) {
  FdPair p = FdPair::pipe();
  const std::string data = pattern(100);
  writeAll(p.out(), data);
  Buffer b;
  EXPECT_EQ(b.readFrom(p.in(), 10).rc, 10);
  expectContent(b, data.substr(0, 10));
  EXPECT_EQ(b.readFrom(p.in(), 30).rc, 30);
  expectContent(b, data.substr(0, 40));
  EXPECT_EQ(b.sliceCount(), 1u);
  EXPECT_EQ(b.readFrom(p.in(), 1000).rc, 60);
  expectContent(b, data);
}

TEST(BufferIoTest, ReadLandsInOneSliceSizedToWhatArrived) {
  FdPair p = FdPair::pipe();
  const std::string data = pattern(3 * kSlice, 9);
  writeAll(p.out(), data);  // fits in the default 64 KiB pipe
  Buffer b;
  const IoResult r = b.readFrom(p.in(), 1 << 20);
  ASSERT_GT(r.rc, static_cast<ssize_t>(kSlice));
  EXPECT_EQ(b.sliceCount(), 1u);
  expectContent(b, data.substr(0, static_cast<size_t>(r.rc)));
  while (b.length() < data.size()) {
    ASSERT_GT(b.readFrom(p.in(), 1 << 20).rc, 0);
  }
  expectContent(b, data);
}

TEST(BufferIoTest, SmallReadTakesASmallSlice) {
  // Thousands of connections each reading a short request must not each hold a 16 KiB slice.
  FdPair p = FdPair::pipe();
  writeAll(p.out(), "GET / HTTP/1.1\r\n\r\n");
  Buffer b;
  ASSERT_EQ(b.readFrom(p.in(), 1 << 20).rc, 18);
  ASSERT_EQ(b.sliceCount(), 1u);
  // The slice has a few KiB of room, not 16: 5000 more bytes no longer fit in it.
  b.add(std::string(5000, 'x'));
  EXPECT_EQ(b.sliceCount(), 2u);
  EXPECT_EQ(b.length(), 5018u);
}

TEST(BufferIoTest, ReadFromEofReturnsZeroAndKeepsNothing) {
  FdPair p = FdPair::pipe();
  p.closeOut();
  Buffer b;
  AllocationCounter counter;
  const IoResult r = b.readFrom(p.in(), 1 << 20);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.error, 0);
  EXPECT_FALSE(r.wouldBlock());
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(counter.live(), 0);
}

TEST(BufferIoTest, ReadFromEmptyNonBlockingPipeWouldBlock) {
  FdPair p = FdPair::pipe();
  Buffer b;
  AllocationCounter counter;
  IoResult r = b.readFrom(p.in(), 1 << 20);
  EXPECT_EQ(r.rc, -1);
  EXPECT_TRUE(r.wouldBlock());
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(counter.live(), 0);

  // Same with content whose tail slice is full: no new slice survives.
  fillSlices(b, 2);
  const int64_t live = counter.live();
  r = b.readFrom(p.in(), 1 << 20);
  EXPECT_TRUE(r.wouldBlock());
  EXPECT_EQ(b.sliceCount(), 2u);
  EXPECT_EQ(b.length(), 2 * kSlice);
  EXPECT_EQ(counter.live(), live);
}

TEST(BufferIoTest, ReadFromBadFdReportsError) {
  Buffer b;
  const IoResult r = b.readFrom(-1, 100);
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.error, EBADF);
  EXPECT_FALSE(r.wouldBlock());
  EXPECT_EQ(b.sliceCount(), 0u);
}

TEST(BufferIoTest, WriteToPipe) {
  FdPair p = FdPair::pipe();
  Buffer b;
  b.add("world");
  b.prepend("hello ");
  const IoResult r = b.writeTo(p.out());
  EXPECT_EQ(r.rc, 11);
  EXPECT_EQ(r.error, 0);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.sliceCount(), 0u);
  EXPECT_EQ(readAvailable(p.in()), "hello world");
}

TEST(BufferIoTest, WriteToEmptyBufferWritesNothing) {
  FdPair p = FdPair::pipe();
  Buffer b;
  const IoResult r = b.writeTo(p.out());
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(readAvailable(p.in()), "");
}

TEST(BufferIoTest, WriteToManySlicesPartialThenWouldBlock) {
  FdPair p = FdPair::pipe();
  const int pipe_size = ::fcntl(p.out(), F_GETPIPE_SZ);
  ASSERT_GT(pipe_size, 0);
  Buffer b;
  // More slices than one writev takes, and more bytes than the pipe holds.
  std::string all;
  while (all.size() < static_cast<size_t>(pipe_size) * 2) {
    const std::string part = pattern(1000 + all.size() % 7, static_cast<uint32_t>(all.size()));
    Buffer piece;
    piece.add(part);
    b.move(piece);
    all += part;
  }
  const size_t total = b.length();
  IoResult r = b.writeTo(p.out());
  ASSERT_GT(r.rc, 0);
  EXPECT_LE(r.rc, pipe_size);
  EXPECT_EQ(b.length(), total - static_cast<size_t>(r.rc));
  size_t written = static_cast<size_t>(r.rc);
  while ((r = b.writeTo(p.out())).rc > 0) written += static_cast<size_t>(r.rc);
  EXPECT_TRUE(r.wouldBlock());
  EXPECT_EQ(b.length(), total - written);
  expectContent(b, all.substr(written));
  // Drain the pipe and finish.
  std::string received = readAvailable(p.in());
  while (!b.empty()) {
    r = b.writeTo(p.out());
    ASSERT_TRUE(r.rc > 0 || r.wouldBlock());
    received += readAvailable(p.in());
  }
  received += readAvailable(p.in());
  EXPECT_TRUE(received == all);
}

TEST(BufferIoTest, WriteToFullPipeWouldBlockAndKeepsContent) {
  FdPair p = FdPair::pipe();
  // Fill the pipe completely.
  const std::string filler(1 << 16, 'f');
  while (::write(p.out(), filler.data(), filler.size()) > 0) {
  }
  while (::write(p.out(), filler.data(), 1) > 0) {
  }
  Buffer b;
  b.add("pending");
  const IoResult r = b.writeTo(p.out());
  EXPECT_EQ(r.rc, -1);
  EXPECT_TRUE(r.wouldBlock());
  expectContent(b, "pending");
}

TEST(BufferIoTest, WriteToClosedPeerReportsEpipe) {
  // The server ignores SIGPIPE process-wide; do the same here.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old = {};
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old), 0);
  FdPair p = FdPair::socketPair();
  p.closeIn();
  Buffer b;
  b.add("data");
  const IoResult r = b.writeTo(p.out());
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.error, EPIPE);
  EXPECT_FALSE(r.wouldBlock());
  expectContent(b, "data");
  ::sigaction(SIGPIPE, &old, nullptr);
}

// Installs a do-nothing handler without SA_RESTART, so a blocked syscall in this thread fails
// with EINTR when the signal arrives.
class InterruptingSignal {
 public:
  InterruptingSignal() {
    struct sigaction sa = {};
    sa.sa_handler = [](int) { hits.fetch_add(1); };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    EXPECT_EQ(::sigaction(SIGUSR1, &sa, &old_), 0);
  }
  ~InterruptingSignal() { ::sigaction(SIGUSR1, &old_, nullptr); }
  static inline std::atomic<int> hits{0};

 private:
  struct sigaction old_ = {};
};

TEST(BufferIoTest, ReadFromRetriesOnEintr) {
  InterruptingSignal signal;
  FdPair p = FdPair::pipe(/*nonblocking=*/false);
  const pthread_t reader = ::pthread_self();
  const int hits_before = InterruptingSignal::hits.load();
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::pthread_kill(reader, SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    writeAll(p.out(), "late");
  });
  Buffer b;
  const IoResult r = b.readFrom(p.in(), 100);  // blocks until the writer writes
  writer.join();
  EXPECT_EQ(r.rc, 4);
  EXPECT_EQ(InterruptingSignal::hits.load(), hits_before + 1);
  expectContent(b, "late");
}

TEST(BufferIoTest, WriteToRetriesOnEintr) {
  InterruptingSignal signal;
  FdPair p = FdPair::pipe(/*nonblocking=*/false);
  const int pipe_size = ::fcntl(p.out(), F_GETPIPE_SZ);
  ASSERT_GT(pipe_size, 0);
  writeAll(p.out(), std::string(static_cast<size_t>(pipe_size), 'f'));  // now full
  const pthread_t writer_thread = ::pthread_self();
  std::string drained;
  std::thread reader([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::pthread_kill(writer_thread, SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    char tmp[4096];
    size_t want = static_cast<size_t>(pipe_size) + 5;
    while (drained.size() < want) {
      const ssize_t rc = ::read(p.in(), tmp, sizeof(tmp));
      if (rc <= 0) break;
      drained.append(tmp, static_cast<size_t>(rc));
    }
  });
  Buffer b;
  b.add("hello");
  const IoResult r = b.writeTo(p.out());  // blocks until the reader makes room
  reader.join();
  EXPECT_EQ(r.rc, 5);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(drained.substr(static_cast<size_t>(pipe_size)), "hello");
}

// Pumps `data` from one end of a socketpair to the other with non-blocking I/O: the sender's
// buffer writes, the receiver's buffer reads, and in between a proxy buffer takes the received
// bytes over with move() (whole and partial) and writes them on through a second socketpair.
TEST(BufferIoTest, LargeTransferRoundTripsByteIdentical) {
  const std::string data = pattern(6 * 1024 * 1024 + 17, 99);
  FdPair first = FdPair::socketPair();
  FdPair second = FdPair::socketPair();
  Buffer sending;
  sending.add(data);
  Buffer proxy_in;
  Buffer proxy_out;
  Buffer received;
  bool first_eof = false;
  bool second_eof = false;
  std::mt19937 rng(5);
  int idle_rounds = 0;
  while (!second_eof) {
    bool progress = false;
    if (!sending.empty()) {
      const IoResult r = sending.writeTo(first.out());
      ASSERT_TRUE(r.rc > 0 || r.wouldBlock()) << strerror(r.error);
      progress |= r.rc > 0;
      if (sending.empty()) ::shutdown(first.out(), SHUT_WR);
    }
    if (!first_eof) {
      const IoResult r = proxy_in.readFrom(first.in(), 256 * 1024);
      ASSERT_TRUE(r.rc >= 0 || r.wouldBlock()) << strerror(r.error);
      first_eof = r.rc == 0;
      progress |= r.rc > 0;
    }
    // Alternate whole and partial moves so both paths carry real traffic.
    if (rng() % 2 == 0) {
      proxy_out.move(proxy_in);
    } else {
      proxy_out.move(proxy_in, rng() % (3 * kSlice));
    }
    if (!proxy_out.empty()) {
      const IoResult r = proxy_out.writeTo(second.out());
      ASSERT_TRUE(r.rc > 0 || r.wouldBlock()) << strerror(r.error);
      progress |= r.rc > 0;
    }
    if (first_eof && proxy_in.empty() && proxy_out.empty()) ::shutdown(second.out(), SHUT_WR);
    const IoResult r = received.readFrom(second.in(), 1 << 20);
    ASSERT_TRUE(r.rc >= 0 || r.wouldBlock()) << strerror(r.error);
    second_eof = r.rc == 0;
    progress |= r.rc > 0;
    if (!progress) {
      ASSERT_LT(++idle_rounds, 100000) << "transfer stalled";
      pollfd fds[2] = {{first.in(), POLLIN, 0}, {second.in(), POLLIN, 0}};
      ::poll(fds, 2, 10);
    }
  }
  ASSERT_EQ(received.length(), data.size());
  EXPECT_TRUE(received.toString() == data);
  EXPECT_TRUE(sending.empty());
  EXPECT_TRUE(proxy_in.empty());
  EXPECT_TRUE(proxy_out.empty());
}

// reserve()/commit(): writing in place at the end (TLS decrypts into it).
TEST(BufferTest, ReserveAndCommitWriteInPlace) {
  Buffer b;
  absl::Span<uint8_t> room = b.reserve(10);
  ASSERT_GE(room.size(), 10u);
  std::memcpy(room.data(), "hello", 5);
  b.commit(5);
  EXPECT_EQ("hello", b.toString());
  EXPECT_EQ(1u, b.sliceCount());
  // The tail's free room is reused while it is large enough.
  room = b.reserve(3);
  std::memcpy(room.data(), "abc", 3);
  b.commit(3);
  EXPECT_EQ("helloabc", b.toString());
  EXPECT_EQ(1u, b.sliceCount());
  // More than the tail has: a new slice.
  const size_t left = b.reserve(1).size();
  b.commit(0);
  room = b.reserve(left + 1);
  ASSERT_GE(room.size(), left + 1);
  room[0] = 'z';
  b.commit(1);
  EXPECT_EQ("helloabcz", b.toString());
  EXPECT_EQ(2u, b.sliceCount());
  // A reservation nothing was written into leaves no empty slice behind.
  b.reserve(1 << 20);
  b.commit(0);
  EXPECT_EQ(2u, b.sliceCount());
  EXPECT_EQ(9u, b.length());
}

}  // namespace
}  // namespace sluice
