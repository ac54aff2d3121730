#include "source/common/buffer.h"

#include "source/common/block_cache.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

namespace sluice {

namespace {

// A slice smaller than this that would land behind a tail with room for it is copied there
// instead of handed over: copying a few hundred bytes is cheaper than the per-slice cost of a
// fragmented chain (more iovecs per writev, more pointer chasing in every walk).
constexpr size_t kCopyThreshold = 512;

// Smallest slice prepend() allocates: the content sits at its end, so the rest is headroom and a
// run of small prepends (frame headers, chunk sizes) shares one slice instead of one each.
constexpr size_t kMinPrependCapacity = 256;

// iovecs per writev(2). 64 default-size slices is already 1 MiB, more than a socket send buffer
// takes in one call, and keeps the array comfortably on the stack.
#ifdef IOV_MAX
constexpr size_t kMaxWriteIovecs = IOV_MAX < 64 ? IOV_MAX : 64;
#else
constexpr size_t kMaxWriteIovecs = 16;
#endif

// Copies [p, p+n) onto the end of `slices`: into the tail's free room first, then into one new
// slice big enough for the rest. Does not touch any length bookkeeping.
void appendBytes(SliceDeque& slices, const uint8_t* p, size_t n) {
  if (n == 0) {
    return;
  }
  if (!slices.empty()) {
    const size_t copied = slices.back().append(p, n);
    p += copied;
    n -= copied;
    if (n == 0) {
      return;
    }
  }
  SlicePtr slice = Slice::create(std::max(n, Slice::kDefaultCapacity));
  slice->append(p, n);
  slices.pushBack(std::move(slice));
}

// Puts a whole slice on the end of `slices`: by pointer, unless it is tiny and fits in the tail's
// room (see kCopyThreshold), in which case it is copied and freed.
void appendSlice(SliceDeque& slices, SlicePtr slice) {
  const size_t len = slice->length();
  if (len < kCopyThreshold && !slices.empty() && slices.back().reservable() >= len) {
    slices.back().append(slice->data(), len);
    return;
  }
  slices.pushBack(std::move(slice));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Slice

// The header and the bytes share one allocation: one malloc/free per slice instead of two, and
// the bytes sit right next to the header the hot path reads anyway.
static_assert(sizeof(Slice) % alignof(std::max_align_t) == 0,
              "slice bytes must start max-aligned after the header");

SlicePtr Slice::create(size_t min_capacity) {
  size_t capacity = min_capacity;
  if (capacity > kDefaultCapacity) {
    capacity = (capacity + kDefaultCapacity - 1) / kDefaultCapacity * kDefaultCapacity;
  }
  // Slices of the same few sizes come and go at every read: a per-thread cache keeps some
  // (4 KiB and up is past malloc's own per-thread cache, whose slow path showed in profiles).
  void* mem = BlockCache::Allocate(sizeof(Slice) + capacity);
  auto* base = static_cast<uint8_t*>(mem) + sizeof(Slice);
  return SlicePtr(new (mem) Slice(base, capacity));
}

Slice::~Slice() = default;

void Slice::operator delete(void* p) { BlockCache::Free(p); }

size_t Slice::append(const void* p, size_t n) {
  const size_t copied = std::min(n, reservable());
  if (copied != 0) {  // memcpy with a null source is undefined even for 0 bytes
    std::memcpy(base_ + end_, p, copied);
    end_ += copied;
  }
  return copied;
}

size_t Slice::prepend(const void* p, size_t n) {
  const size_t copied = std::min(n, start_);
  if (copied != 0) {
    start_ -= copied;
    std::memcpy(base_ + start_, static_cast<const uint8_t*>(p) + (n - copied), copied);
  }
  return copied;
}

void Slice::drain(size_t n) {
  assert(n <= length());
  start_ += n;
}

void Slice::commit(size_t n) {
  assert(n <= reservable());
  end_ += n;
}

// ---------------------------------------------------------------------------------------------
// SliceDeque

SliceDeque::~SliceDeque() { clear(); }

void SliceDeque::pushBack(SlicePtr s) {
  if (size_ == capacity_) {
    grow();
  }
  at(size_) = s.release();
  ++size_;
}

void SliceDeque::pushFront(SlicePtr s) {
  if (size_ == capacity_) {
    grow();
  }
  head_ = (head_ - 1) & (capacity_ - 1);
  ring_[head_] = s.release();
  ++size_;
}

SlicePtr SliceDeque::popFront() {
  assert(size_ > 0);
  SlicePtr s(ring_[head_]);
  head_ = (head_ + 1) & (capacity_ - 1);
  if (--size_ == 0) {
    releaseRing();
  }
  return s;
}

SlicePtr SliceDeque::popBack() {
  assert(size_ > 0);
  SlicePtr s(at(size_ - 1));
  if (--size_ == 0) {
    releaseRing();
  }
  return s;
}

void SliceDeque::clear() {
  for (size_t i = 0; i < size_; ++i) {
    delete at(i);
  }
  size_ = 0;
  releaseRing();
}

void SliceDeque::swap(SliceDeque& other) {
  const bool this_inline = ring_ == inline_;
  const bool other_inline = other.ring_ == other.inline_;
  for (uint32_t i = 0; i < kInline; ++i) std::swap(inline_[i], other.inline_[i]);
  std::swap(ring_, other.ring_);
  std::swap(capacity_, other.capacity_);
  std::swap(head_, other.head_);
  std::swap(size_, other.size_);
  // An inline ring's content moved with the inline arrays: point each at its own.
  if (this_inline) other.ring_ = other.inline_;
  if (other_inline) ring_ = inline_;
}

void SliceDeque::grow() {
  // Doubling keeps the capacity a power of two, so at() can mask instead of dividing.
  const size_t capacity = capacity_ * 2;
  Slice** ring = new Slice*[capacity];
  for (size_t i = 0; i < size_; ++i) {
    ring[i] = at(i);
  }
  if (ring_ != inline_) {
    delete[] ring_;
  }
  ring_ = ring;
  capacity_ = capacity;
  head_ = 0;
}

void SliceDeque::releaseRing() {
  // An empty deque goes back to its inline array so that an idle connection's buffers hold no
  // heap memory at all; a buffer that grows past kInline slices again pays one small allocation.
  if (ring_ != inline_) {
    delete[] ring_;
    ring_ = inline_;
    capacity_ = kInline;
  }
  head_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Buffer

void Buffer::add(const void* data, size_t n) {
  appendBytes(slices_, static_cast<const uint8_t*>(data), n);
  length_ += n;
}

void Buffer::prepend(std::string_view s) {
  if (s.empty()) {
    return;
  }
  if (slices_.empty()) {
    add(s);
    return;
  }
  length_ += s.size();
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  // Whatever fits in the front slice's headroom goes there (the end of `s`), the rest in front.
  const size_t n = s.size() - slices_.front().prepend(p, s.size());
  if (n == 0) {
    return;
  }
  SlicePtr slice = Slice::create(std::max(n, kMinPrependCapacity));
  // Mark the whole capacity as drained headroom so the bytes land at the end of the slice and
  // the space before them serves later prepends.
  slice->commit(slice->capacity());
  slice->drain(slice->capacity());
  slice->prepend(p, n);
  slices_.pushFront(std::move(slice));
}

void Buffer::move(Buffer& other) {
  if (&other == this) {
    return;
  }
  if (slices_.empty()) {
    // The common case (a read handed on whole): take the other's slice ring as it is.
    slices_.swap(other.slices_);
    length_ = other.length_;
    other.length_ = 0;
    return;
  }
  while (!other.slices_.empty()) {
    appendSlice(slices_, other.slices_.popFront());
  }
  length_ += other.length_;
  other.length_ = 0;
}

void Buffer::move(Buffer& other, size_t n) {
  if (&other == this) {
    return;
  }
  n = std::min(n, other.length_);
  other.length_ -= n;
  length_ += n;
  while (n != 0) {
    Slice& front = other.slices_.front();
    const size_t len = front.length();
    if (len <= n) {
      appendSlice(slices_, other.slices_.popFront());
      n -= len;
    } else {
      // The one partial slice: copy its head, leaving the rest where it is.
      appendBytes(slices_, front.data(), n);
      front.drain(n);
      break;
    }
  }
}

void Buffer::drain(size_t n) {
  n = std::min(n, length_);
  length_ -= n;
  while (n != 0) {
    Slice& front = slices_.front();
    const size_t len = front.length();
    if (len <= n) {
      slices_.popFront();  // the returned SlicePtr frees the slice right here
      n -= len;
    } else {
      front.drain(n);
      break;
    }
  }
}

void Buffer::clear() {
  slices_.clear();
  length_ = 0;
}

void Buffer::addCopy(const Buffer& other) {
  for (size_t i = 0; i < other.slices_.size(); ++i) {
    add(other.slices_[i].data(), other.slices_[i].length());
  }
}

void Buffer::copyOut(size_t start, size_t n, void* out) const {
  assert(start + n <= length_);
  auto* dst = static_cast<uint8_t*>(out);
  for (size_t i = 0; n != 0 && i < slices_.size(); ++i) {
    const Slice& slice = slices_[i];
    const size_t len = slice.length();
    if (start >= len) {
      start -= len;
      continue;
    }
    const size_t copied = std::min(len - start, n);
    std::memcpy(dst, slice.data() + start, copied);
    dst += copied;
    n -= copied;
    start = 0;
  }
}

std::string Buffer::toString() const {
  std::string out;
  out.reserve(length_);
  for (size_t i = 0; i < slices_.size(); ++i) {
    const Slice& slice = slices_[i];
    out.append(reinterpret_cast<const char*>(slice.data()), slice.length());
  }
  return out;
}

size_t Buffer::peek(struct iovec* iov, size_t max) const {
  const size_t count = std::min(max, slices_.size());
  for (size_t i = 0; i < count; ++i) {
    const Slice& slice = slices_[i];
    // iovec is shared with readv, hence non-const; nothing writes through these.
    iov[i].iov_base = const_cast<uint8_t*>(slice.data());
    iov[i].iov_len = slice.length();
  }
  return count;
}

namespace {
// Per-thread landing area for reads. Reading into it and then copying what arrived into a slice
// of the right size costs one memcpy, and saves allocating (and mostly freeing) 16 KiB slices
// on every read: thousands of connections each reading a 100-byte request would otherwise pin
// that much transient memory at once.
constexpr size_t kScratchSize = 64 * 1024;
uint8_t* ReadScratch() {
  thread_local std::unique_ptr<uint8_t[]> scratch(new uint8_t[kScratchSize]);
  return scratch.get();
}
}  // namespace

IoResult Buffer::readFrom(int fd, size_t max_length) {
  struct iovec iov[2];
  size_t iovcnt = 0;
  size_t remaining = max_length;

  // The tail's free room first: it costs no allocation and keeps the chain short.
  Slice* tail = nullptr;
  if (!slices_.empty() && slices_.back().reservable() != 0 && remaining != 0) {
    tail = &slices_.back();
    const size_t len = std::min(tail->reservable(), remaining);
    iov[iovcnt++] = {tail->reserveBase(), len};
    remaining -= len;
  }
  uint8_t* scratch = nullptr;
  if (remaining != 0) {
    scratch = ReadScratch();
    iov[iovcnt++] = {scratch, std::min(remaining, kScratchSize)};
  }

  // One area (the usual case: an empty buffer): read(2), which spares the kernel importing an
  // iovec array (readv costs measurably more per call on small socket reads).
  ssize_t rc;
  do {
    rc = iovcnt == 1 ? ::read(fd, iov[0].iov_base, iov[0].iov_len)
                     : ::readv(fd, iov, static_cast<int>(iovcnt));
  } while (rc < 0 && errno == EINTR);
  if (rc <= 0) {
    // EOF, EAGAIN or an error: nothing was allocated.
    return IoResult{rc, rc < 0 ? errno : 0};
  }

  size_t left = static_cast<size_t>(rc);
  if (tail != nullptr) {
    const size_t len = std::min(left, iov[0].iov_len);
    tail->commit(len);
    left -= len;
  }
  if (left != 0) {
    // One slice sized to what arrived (small reads get a small slice; at least 4 KiB so that
    // following appends have room).
    SlicePtr slice = Slice::create(std::max<size_t>(left, 4096));
    slice->append(scratch, left);
    slices_.pushBack(std::move(slice));
  }
  length_ += static_cast<size_t>(rc);
  return IoResult{rc, 0};
}

absl::Span<uint8_t> Buffer::reserve(size_t min) {
  if (!slices_.empty() && slices_.back().reservable() >= min && min != 0) {
    Slice& tail = slices_.back();
    return {tail.reserveBase(), tail.reservable()};
  }
  slices_.pushBack(Slice::create(std::max<size_t>(min, 4096)));
  Slice& tail = slices_.back();
  return {tail.reserveBase(), tail.reservable()};
}

void Buffer::commit(size_t n) {
  if (slices_.empty()) return;
  Slice& tail = slices_.back();
  tail.commit(n);
  length_ += n;
  if (tail.length() == 0) slices_.popBack();  // a reservation nothing was written into
}

IoResult Buffer::writeTo(int fd) {
  if (slices_.empty()) {
    return IoResult{0, 0};
  }
  struct iovec iov[kMaxWriteIovecs];
  const size_t iovcnt = peek(iov, kMaxWriteIovecs);
  // write/writev take no MSG_NOSIGNAL; the server ignores SIGPIPE process-wide, so a closed
  // peer comes back as EPIPE here instead of killing the process.
  ssize_t rc;
  do {
    rc = iovcnt == 1 ? ::write(fd, iov[0].iov_base, iov[0].iov_len)
                     : ::writev(fd, iov, static_cast<int>(iovcnt));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    return IoResult{rc, errno};
  }
  drain(static_cast<size_t>(rc));
  return IoResult{rc, 0};
}

}  // namespace sluice
