#pragma once

// A network::Connection without a socket, for codec tests and fuzzers: what is written is
// collected, bytes are fed to the read filters by receive(), close raises the events.

#include <string>
#include <string_view>
#include <vector>

#include "source/event/dispatcher.h"
#include "source/network/connection.h"

namespace sluice::network::test {

// A connection without a socket: what is written is collected; close raises the events.
class FakeConnection : public Connection, private ReadFilterCallbacks {
 public:
  explicit FakeConnection(event::Dispatcher& d) : dispatcher_(d) {}
  uint64_t id() const override { return 1; }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void addReadFilter(ReadFilterPtr filter) override {
    filter->initializeReadFilterCallbacks(*this);
    filters_.push_back(std::move(filter));
  }
  void addConnectionCallbacks(ConnectionCallbacks& cb) override { callbacks_.push_back(&cb); }
  void removeConnectionCallbacks(ConnectionCallbacks& cb) override {
    for (auto*& c : callbacks_) {
      if (c == &cb) c = nullptr;
    }
  }
  void initializeReadFilters() override {
    for (auto& f : filters_) f->onNewConnection();
  }
  void drain() override {
    for (auto& f : filters_) f->onDrain();
  }
  void connect() override {}
  void write(Buffer& data, bool end_stream) override {
    if (state_ == ConnectionState::kOpen) out_ += data.toString();
    data.clear();
  }
  void close(CloseType) override {
    if (state_ == ConnectionState::kClosed) return;
    state_ = ConnectionState::kClosed;
    for (size_t i = 0; i < callbacks_.size(); ++i) {
      if (callbacks_[i] != nullptr) callbacks_[i]->onEvent(ConnectionEvent::kLocalClose);
    }
  }
  void closeLingering(std::chrono::milliseconds, std::chrono::milliseconds) override {
    lingered_ = true;
    close(CloseType::kFlushWrite);
  }
  bool lingered() const { return lingered_; }
  ConnectionState state() const override { return state_; }
  void readDisable(bool disable) override { disabled_ += disable ? 1 : -1; }
  bool readEnabled() const override { return disabled_ == 0; }
  void enableHalfClose(bool) override {}
  void setBufferLimits(uint32_t) override {}
  size_t writeBufferLength() const override { return 0; }
  bool inputPending() const override { return false; }
  bool idlePeerAlive() const override { return state_ == ConnectionState::kOpen; }
  std::string_view nextProtocol() const override { return {}; }
  const SslConnectionInfo* ssl() const override { return nullptr; }
  std::string_view transportProtocol() const override { return "tcp"; }
  std::string_view transportFailureReason() const override { return {}; }
  const Address& remoteAddress() const override { return address_; }
  const Address& localAddress() const override { return address_; }

  // Feeds `bytes` to the read filters as the socket would.
  void receive(std::string_view bytes) {
    if (state_ != ConnectionState::kOpen) return;
    Buffer b;
    b.add(bytes);
    for (auto& f : filters_) {
      if (f->onData(b, false) == FilterStatus::kStopIteration || state_ != ConnectionState::kOpen) {
        break;
      }
    }
  }
  const std::string& output() const { return out_; }

 private:
  Connection& connection() override { return *this; }

  event::Dispatcher& dispatcher_;
  std::vector<ReadFilterPtr> filters_;
  std::vector<ConnectionCallbacks*> callbacks_;
  ConnectionState state_ = ConnectionState::kOpen;
  bool lingered_ = false;
  int disabled_ = 0;
  Address address_;
  std::string out_;
};

}  // namespace sluice::network::test
