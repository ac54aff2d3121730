#include <sys/socket.h>

#include "source/network/connection.h"
#include "source/network/transport_socket.h"

namespace sluice::network {

namespace {
// One readv per call at most this large: the tail slice plus a few new slices.
constexpr uint64_t kReadChunk = 64 * 1024;
}  // namespace

void RawBufferSocket::prependReadData(Buffer& data) {
  if (data.empty()) return;
  if (!initial_) initial_ = std::make_unique<Buffer>();
  initial_->move(data);
}

IoOutcome RawBufferSocket::doRead(Buffer& buffer, uint64_t max_bytes) {
  const int fd = callbacks_->fd();
  IoOutcome out;
  if (initial_) {
    out.bytes = initial_->length();
    buffer.move(*initial_);
    initial_.reset();
  }
  while (out.bytes < max_bytes) {
    const uint64_t want = std::min(kReadChunk, max_bytes - out.bytes);
    IoResult r = buffer.readFrom(fd, want);
    if (r.rc > 0) {
      out.bytes += static_cast<uint64_t>(r.rc);
      // A short read means the socket is (almost certainly) drained. Events are level-triggered,
      // so stopping here loses nothing and saves the read that would only return EAGAIN.
      if (static_cast<uint64_t>(r.rc) < want) break;
      continue;
    }
    if (r.rc == 0) {
      out.end_stream = true;
    } else if (!r.wouldBlock()) {
      out.action = PostIoAction::kClose;
    }
    break;
  }
  return out;
}

IoOutcome RawBufferSocket::doWrite(Buffer& buffer, bool end_stream) {
  const int fd = callbacks_->fd();
  IoOutcome out;
  while (!buffer.empty()) {
    IoResult r = buffer.writeTo(fd);
    if (r.rc > 0) {
      out.bytes += static_cast<uint64_t>(r.rc);
      continue;
    }
    if (!r.wouldBlock()) out.action = PostIoAction::kClose;
    break;
  }
  if (end_stream && buffer.empty() && out.action == PostIoAction::kKeepOpen) {
    ::shutdown(fd, SHUT_WR);
    out.end_stream = true;
  }
  return out;
}

void RawBufferSocket::onConnected() { callbacks_->raiseEvent(ConnectionEvent::kConnected); }

}  // namespace sluice::network
