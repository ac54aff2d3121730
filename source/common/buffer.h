#pragma once

#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/types/span.h"

namespace sluice {

// Result of one read/write system call through a buffer.
//   rc > 0: bytes moved; rc == 0 on read: end of stream; rc < 0: failure, `error` is errno
//   (EAGAIN/EWOULDBLOCK means "not now").
struct IoResult {
  ssize_t rc = 0;
  int error = 0;
  bool wouldBlock() const { return rc < 0 && (error == EAGAIN || error == EWOULDBLOCK); }
};

// One contiguous block of bytes: [data, data + len) is readable content and the rest of the
// capacity after it is reservable space. Slices are owned by exactly one Buffer at a time and move
// between buffers by pointer: bytes are never copied when a whole slice changes hands.
class Slice {
 public:
  // Default capacity of a slice that a read allocates: large enough for a typical segment burst,
  // small enough that an idle connection's buffer is released quickly.
  static constexpr size_t kDefaultCapacity = 16 * 1024;

  // A slice with at least `min_capacity` bytes of room (rounded up to kDefaultCapacity multiples
  // only when larger than it).
  static std::unique_ptr<Slice> create(size_t min_capacity);
  ~Slice();
  // The header and its bytes are one allocation (see create()); this releases it.
  static void operator delete(void* p);
  Slice(const Slice&) = delete;
  Slice& operator=(const Slice&) = delete;

  const uint8_t* data() const { return base_ + start_; }
  uint8_t* data() { return base_ + start_; }
  size_t length() const { return end_ - start_; }
  // Room after the content that append()/reserve may use.
  size_t reservable() const { return capacity_ - end_; }
  // Room before the content (left by drain); prepend() reuses it.
  size_t headroom() const { return start_; }
  size_t capacity() const { return capacity_; }

  // Copies up to `n` bytes to the end; returns how many fit.
  size_t append(const void* p, size_t n);
  // Copies up to `n` bytes before the content (into headroom); returns how many fit, taken from
  // the END of [p, p+n).
  size_t prepend(const void* p, size_t n);
  // Drops `n` (<= length()) bytes from the front.
  void drain(size_t n);
  // Pointer to the reservable space and the commit that makes part of it content.
  uint8_t* reserveBase() { return base_ + end_; }
  void commit(size_t n);

 private:
  Slice(uint8_t* base, size_t capacity) : base_(base), capacity_(capacity) {}
  uint8_t* base_;
  size_t capacity_;
  size_t start_ = 0;
  size_t end_ = 0;
};
using SlicePtr = std::unique_ptr<Slice>;

// A double-ended queue of slice pointers that holds no heap memory while empty (an idle
// connection's buffers cost only their inline footprint) and keeps up to kInline pointers inline.
class SliceDeque {
 public:
  SliceDeque() = default;
  ~SliceDeque();
  SliceDeque(const SliceDeque&) = delete;
  SliceDeque& operator=(const SliceDeque&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Slice& front() { return *at(0); }
  Slice& back() { return *at(size_ - 1); }
  const Slice& operator[](size_t i) const { return *at(i); }
  Slice& operator[](size_t i) { return *at(i); }

  void pushBack(SlicePtr s);
  void pushFront(SlicePtr s);
  SlicePtr popFront();
  SlicePtr popBack();
  // Frees every slice and any heap array.
  void clear();
  // Exchanges contents (no slice is touched, no memory allocated).
  void swap(SliceDeque& other);

 private:
  // One slice inline covers most buffers (a read of up to 16 KiB, a small response); more grow
  // a heap ring. Kept small because every connection carries two buffers.
  static constexpr uint32_t kInline = 1;
  Slice*& at(size_t i) const { return ring_[(head_ + i) & (capacity_ - 1)]; }
  void grow();
  // Returns to the inline array, freeing any heap ring; requires size_ == 0.
  void releaseRing();

  Slice** ring_ = inline_;
  mutable Slice* inline_[kInline] = {};
  uint32_t capacity_ = kInline;  // always a power of two
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};

// A chain of slices: the buffer every connection, codec and filter moves bytes through.
// Appending data copies it into the tail slice's free room (or new slices); moving between
// buffers hands whole slices over; reads go straight into reserved slice space with readv(2) and
// writes come straight from the slices with writev(2).
//
// Not thread-safe: a buffer belongs to one worker.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t length() const { return length_; }
  bool empty() const { return length_ == 0; }
  size_t sliceCount() const { return slices_.size(); }

  // Copies `n` bytes to the end.
  void add(const void* data, size_t n);
  void add(std::string_view s) { add(s.data(), s.size()); }
  // Copies all of `other` to the end (slices have one owner: this is a copy, `other` keeps its
  // bytes).
  void addCopy(const Buffer& other);
  // Copies `n` bytes to the front.
  void prepend(std::string_view s);
  // Moves every slice of `other` to the end of this buffer (no byte copied); `other` ends empty.
  void move(Buffer& other);
  // Moves the first `n` bytes of `other` to the end of this buffer: whole slices by pointer, and
  // at most one partial slice by copy. `n` is clamped to other.length().
  void move(Buffer& other, size_t n);
  // Drops the first `n` bytes (clamped). Emptied slices are freed at once.
  void drain(size_t n);
  // Frees everything.
  void clear();

  // Copies bytes [start, start+n) into `out`; requires start + n <= length().
  void copyOut(size_t start, size_t n, void* out) const;
  // The whole content as a string (tests, logs; never on the hot path).
  std::string toString() const;
  // Fills up to `max` iovecs with the content, front first; returns how many were filled.
  size_t peek(struct iovec* iov, size_t max) const;

  // Room to write into at the end, without a copy: the tail slice's free room when it has at
  // least `min` bytes, else a new empty slice of at least `min` bytes appended. Fill some of it,
  // then commit() what was written (committing 0 is fine; an empty new slice is dropped then).
  absl::Span<uint8_t> reserve(size_t min);
  void commit(size_t n);

  // readv(2) from `fd` into reserved space of up to `max_length` bytes: the tail slice's room
  // plus new slices as needed. On EAGAIN/EOF/error nothing is allocated that stays allocated.
  IoResult readFrom(int fd, size_t max_length);
  // writev(2) as much content as the kernel takes (up to IOV_MAX slices per call) and drains it.
  IoResult writeTo(int fd);

 private:
  SliceDeque slices_;
  size_t length_ = 0;
};

}  // namespace sluice
