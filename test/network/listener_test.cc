// Accept path: batching ("multi accept"), pausing at a connection limit, EMFILE back-off, and the
// listen-socket registry (shared port for SO_REUSEPORT groups on port 0).

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"
#include "source/event/dispatcher.h"
#include "source/network/listen_socket_registry.h"
#include "source/network/listener_impl.h"
#include "source/network/socket.h"

namespace sluice::network {
namespace {

// Blocking client connects to loopback complete through the kernel backlog without the server
// accepting, so a test can queue N connections and then let the listener run.
int ConnectBlocking(const Address& address) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(0, connect(fd, address.sockaddr_ptr(), address.length())) << strerror(errno);
  return fd;
}

class TestCallbacks : public ListenerCallbacks {
 public:
  bool reserveConnection() override {
    if (limit >= 0 && active >= limit) return false;
    ++active;
    return true;
  }
  void unreserveConnection() override { --active; }
  void onAccept(int fd, const Address&) override {
    accepted.push_back(fd);
    if (on_accept) on_accept();
  }
  void onPaused() override {
    ++paused;
    if (on_paused) on_paused();
  }
  AtLimit onLimitReached(bool waiting) override {
    limit_reached.push_back(waiting);
    if (on_limit) return on_limit(waiting);
    return AtLimit::kPause;
  }
  bool onFdExhausted(bool may_free) override {
    ++fd_exhausted;
    if (on_fd_exhausted) on_fd_exhausted();
    return may_free && free_fds && free_fds();
  }
  ~TestCallbacks() override {
    for (int fd : accepted) close(fd);
  }

  int limit = -1;
  int active = 0;
  int paused = 0;
  int fd_exhausted = 0;
  std::vector<int> accepted;
  std::function<void()> on_accept;
  std::function<void()> on_paused;
  std::function<void()> on_fd_exhausted;
  // onLimitReached's answer (default kPause) and what it was told.
  std::function<AtLimit(bool waiting)> on_limit;
  std::vector<bool> limit_reached;
  // onFdExhausted(may_free = true): frees descriptors and says whether it did.
  std::function<bool()> free_fds;
};

class ListenerTest : public testing::Test {
 protected:
  void SetUp() override {
    dispatcher_ = event::CreateDispatcher("test");
    auto addr = Address::fromIpPort("127.0.0.1", 0);
    ASSERT_TRUE(addr.ok());
    auto fd = CreateListenSocket(*addr, ListenOptions{.reuse_port = false, .backlog = 128});
    ASSERT_TRUE(fd.ok()) << fd.status();
    listen_fd_ = *fd;
    address_ = *Address::localOf(listen_fd_);
  }
  void TearDown() override {
    for (int fd : clients_) close(fd);
    close(listen_fd_);
  }
  void queueClients(int n) {
    for (int i = 0; i < n; ++i) clients_.push_back(ConnectBlocking(address_));
  }

  event::DispatcherPtr dispatcher_;
  int listen_fd_ = -1;
  Address address_;
  std::vector<int> clients_;
};

TEST_F(ListenerTest, AcceptsInBatchesOfMaxAcceptsPerEvent) {
  queueClients(10);
  TestCallbacks cb;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 3);
  // Stop the loop after the first readiness event: posted work runs before the next I/O event.
  cb.on_accept = [&] {
    if (cb.accepted.size() % 3 == 1) dispatcher_->exit();
  };
  listener.enable();
  dispatcher_->run();
  EXPECT_EQ(3u, cb.accepted.size());
  dispatcher_->run();
  EXPECT_EQ(6u, cb.accepted.size());
  cb.on_accept = [&] {
    if (cb.accepted.size() == 10) dispatcher_->exit();
  };
  dispatcher_->run();
  EXPECT_EQ(10u, cb.accepted.size());
  for (int fd : cb.accepted) {
    // accept4 flags: non-blocking and close-on-exec.
    EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
}

TEST_F(ListenerTest, PausesAtTheLimitAndResumes) {
  queueClients(5);
  TestCallbacks cb;
  cb.limit = 2;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);
  cb.on_paused = [&] { dispatcher_->exit(); };
  listener.enable();
  dispatcher_->run();
  EXPECT_EQ(2u, cb.accepted.size());
  EXPECT_EQ(1, cb.paused);
  EXPECT_TRUE(listener.paused());

  // While paused, the listener does not poll: a timer fires with no accept in between.
  auto timer = dispatcher_->createTimer([&] { dispatcher_->exit(); });
  timer->enableTimer(std::chrono::milliseconds(50));
  dispatcher_->run();
  EXPECT_EQ(2u, cb.accepted.size());
  EXPECT_EQ(1, cb.paused);

  // Room again: resume, and the queued connections are accepted from the backlog.
  cb.limit = 5;
  cb.on_paused = nullptr;
  cb.on_accept = [&] {
    if (cb.accepted.size() == 5) dispatcher_->exit();
  };
  listener.enable();
  EXPECT_FALSE(listener.paused());
  dispatcher_->run();
  EXPECT_EQ(5u, cb.accepted.size());
}

TEST_F(ListenerTest, DisabledListenerAcceptsNothing) {
  queueClients(2);
  TestCallbacks cb;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);
  listener.enable();
  listener.disable();
  auto timer = dispatcher_->createTimer([&] { dispatcher_->exit(); });
  timer->enableTimer(std::chrono::milliseconds(20));
  dispatcher_->run();
  EXPECT_TRUE(cb.accepted.empty());
}

TEST_F(ListenerTest, BacksOffOnEmfileInsteadOfSpinning) {
  queueClients(1);
  TestCallbacks cb;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);

  // Leave no free descriptor: accept4 fails with EMFILE.
  struct rlimit saved;
  ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &saved));
  std::vector<int> fillers;
  struct rlimit low = saved;
  int probe = dup(0);
  ASSERT_GE(probe, 0);
  close(probe);
  low.rlim_cur = static_cast<rlim_t>(probe);  // the lowest free fd number: nothing above it
  ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));

  cb.on_fd_exhausted = [&] {
    if (cb.fd_exhausted == 1) {
      // Free descriptors again; the listener must come back by itself after its back-off.
      setrlimit(RLIMIT_NOFILE, &saved);
    }
  };
  cb.on_accept = [&] { dispatcher_->exit(); };
  listener.enable();
  dispatcher_->run();
  setrlimit(RLIMIT_NOFILE, &saved);
  // One failure, one back-off, then the accept: no busy loop of failures.
  EXPECT_EQ(1, cb.fd_exhausted);
  EXPECT_EQ(1u, cb.accepted.size());
  EXPECT_EQ(0, cb.active - 1);
}

// Leaves no free descriptor (accept4 fails with EMFILE) until the returned guard restores the
// limit (or restore() is called).
class NoFreeDescriptors {
 public:
  NoFreeDescriptors() {
    EXPECT_EQ(0, getrlimit(RLIMIT_NOFILE, &saved_));
    int probe = dup(0);
    EXPECT_GE(probe, 0);
    close(probe);
    struct rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(probe);  // the lowest free fd number: nothing above it
    EXPECT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
  }
  ~NoFreeDescriptors() { restore(); }
  void restore() { setrlimit(RLIMIT_NOFILE, &saved_); }

 private:
  struct rlimit saved_;
};

TEST_F(ListenerTest, EmfileAcceptsAgainAtOnceWhenDescriptorsWereFreed) {
  queueClients(1);
  TestCallbacks cb;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);
  NoFreeDescriptors no_fds;
  bool in_failed_event = false;
  cb.free_fds = [&] {
    no_fds.restore();  // as if idle connections had been closed
    in_failed_event = true;
    dispatcher_->post([&] { in_failed_event = false; });
    return true;
  };
  bool accepted_in_same_event = false;
  cb.on_accept = [&] {
    accepted_in_same_event = in_failed_event;
    dispatcher_->exit();
  };
  listener.enable();
  dispatcher_->run();
  EXPECT_EQ(1, cb.fd_exhausted);
  ASSERT_EQ(1u, cb.accepted.size());
  // No back-off: accepted within the readiness event that failed.
  EXPECT_TRUE(accepted_in_same_event);
}

TEST_F(ListenerTest, EmfileFreesDescriptorsOncePerEventThenBacksOff) {
  queueClients(1);
  TestCallbacks cb;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);
  NoFreeDescriptors no_fds;
  int freed = 0;
  cb.free_fds = [&] {
    ++freed;  // says it freed some, but others took them: EMFILE again
    return true;
  };
  cb.on_fd_exhausted = [&] {
    if (cb.fd_exhausted == 2) no_fds.restore();
  };
  cb.on_accept = [&] { dispatcher_->exit(); };
  listener.enable();
  dispatcher_->run();
  // The second failure of the same event backed off instead of closing more.
  EXPECT_EQ(1, freed);
  EXPECT_EQ(2, cb.fd_exhausted);
  EXPECT_EQ(1u, cb.accepted.size());
}

TEST_F(ListenerTest, AtTheLimitRoomIsMadeOnlyForAConnectionKnownToWait) {
  queueClients(3);
  TestCallbacks cb;
  cb.limit = 1;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);
  int made_room = 0;
  cb.on_limit = [&](bool waiting) {
    if (!waiting) return ListenerCallbacks::AtLimit::kWait;
    --cb.active;  // as if an idle connection had been closed
    ++made_room;
    return ListenerCallbacks::AtLimit::kRetry;
  };
  cb.on_accept = [&] {
    if (cb.accepted.size() == 3) dispatcher_->exit();
  };
  listener.enable();
  dispatcher_->run();
  EXPECT_EQ(3u, cb.accepted.size());
  // Room for the 2nd and 3rd, each at the first accept of an event; never for nobody, and no
  // pause.
  EXPECT_EQ(2, made_room);
  EXPECT_EQ(0, cb.paused);
  EXPECT_FALSE(listener.paused());
  EXPECT_EQ((std::vector<bool>{false, true, false, true, false}), cb.limit_reached);
}

TEST_F(ListenerTest, RoomTakenBeforeTheRetryWaitsForTheNextEvent) {
  queueClients(2);
  TestCallbacks cb;
  cb.limit = 1;
  TcpListenerImpl listener(*dispatcher_, listen_fd_, cb, 64);
  int calls = 0;
  cb.on_limit = [&](bool waiting) {
    // 1: the first event's second accept (kWait). 2: the next event; another worker takes the
    // room made before the retry. 3: the event after, room is made (4: its second accept).
    if (++calls == 3) --cb.active;
    return waiting ? ListenerCallbacks::AtLimit::kRetry : ListenerCallbacks::AtLimit::kWait;
  };
  cb.on_accept = [&] {
    if (cb.accepted.size() == 2) dispatcher_->exit();
  };
  listener.enable();
  dispatcher_->run();
  EXPECT_EQ(2u, cb.accepted.size());
  EXPECT_EQ((std::vector<bool>{false, true, true, false}), cb.limit_reached);
  EXPECT_EQ(0, cb.paused);
}

TEST(ConnectionLimitTest, CountsAndCaps) {
  ConnectionLimit limit(2);
  EXPECT_TRUE(limit.tryAcquire());
  EXPECT_TRUE(limit.tryAcquire());
  EXPECT_FALSE(limit.tryAcquire());
  EXPECT_EQ(2u, limit.active());
  limit.release();
  EXPECT_TRUE(limit.tryAcquire());
  ConnectionLimit unlimited(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.tryAcquire());
  EXPECT_EQ(1000u, unlimited.active());
}

TEST(ListenSocketRegistryTest, ReusePortGroupSharesTheKernelChosenPort) {
  ListenSocketRegistry registry;
  auto addr = Address::fromIpPort("127.0.0.1", 0);
  ASSERT_TRUE(addr.ok());
  auto fds = registry.getOrCreate(*addr, ListenOptions{.reuse_port = true}, 3);
  ASSERT_TRUE(fds.ok()) << fds.status();
  ASSERT_EQ(3u, fds->size());
  const uint16_t port = Address::localOf((*fds)[0])->port();
  EXPECT_NE(0, port);
  for (int fd : *fds) EXPECT_EQ(port, Address::localOf(fd)->port());
  EXPECT_EQ(3u, registry.count());

  // A second port-0 group gets its own port and its own sockets.
  auto other = registry.getOrCreate(*addr, ListenOptions{.reuse_port = true}, 1);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(port, Address::localOf(other->front())->port());
  EXPECT_EQ(4u, registry.count());
  EXPECT_EQ(2u, registry.sockets().size());
}

TEST(ListenSocketRegistryTest, AdoptedSocketIsReusedNotRebound) {
  ListenSocketRegistry registry;
  auto addr = Address::fromIpPort("127.0.0.1", 0);
  auto fd = CreateListenSocket(*addr, ListenOptions{.reuse_port = false});
  ASSERT_TRUE(fd.ok());
  const Address bound = *Address::localOf(*fd);
  registry.adopt(bound.asString(), *fd);
  auto fds = registry.getOrCreate(bound, ListenOptions{.reuse_port = false}, 1);
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_EQ(*fd, fds->front());
}

TEST(ListenSocketRegistryTest, EveryAdoptedSocketIsReturnedWhateverTheCount) {
  // The old process ran 3 workers, the new one 2 (or 5): all 3 inherited sockets are handed
  // out, and new ones join the group on the same port up to the count.
  ListenSocketRegistry old_process;
  auto addr = Address::fromIpPort("127.0.0.1", 0);
  auto group = old_process.getOrCreate(*addr, ListenOptions{.reuse_port = true}, 3);
  ASSERT_TRUE(group.ok()) << group.status();
  const Address bound = *Address::localOf(group->front());
  for (size_t want : {size_t{2}, size_t{5}}) {
    ListenSocketRegistry registry;
    for (int fd : *group) registry.adopt(bound.asString(), dup(fd));
    auto fds = registry.getOrCreate(bound, ListenOptions{.reuse_port = true}, want);
    ASSERT_TRUE(fds.ok()) << fds.status();
    EXPECT_EQ(std::max<size_t>(3, want), fds->size());
    for (int fd : *fds) EXPECT_EQ(bound.port(), Address::localOf(fd)->port());
    EXPECT_EQ(fds->size(), registry.count());
  }
}

TEST(ListenSocketRegistryTest, BindConflictIsAClearError) {
  ListenSocketRegistry registry;
  auto addr = Address::fromIpPort("127.0.0.1", 0);
  auto fd = CreateListenSocket(*addr, ListenOptions{.reuse_port = false});
  ASSERT_TRUE(fd.ok());
  const Address bound = *Address::localOf(*fd);
  auto again = registry.getOrCreate(bound, ListenOptions{.reuse_port = false}, 1);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(std::string::npos, std::string(again.status().message()).find("bind"));
  EXPECT_NE(std::string::npos, std::string(again.status().message()).find(bound.asString()));
  close(*fd);
}

// Another process's SO_REUSEPORT listener, as far as this process can tell: a listening socket
// the registry did not create.
int ForeignReusePortListener(const Address& address) {
  auto fd = CreateListenSocket(address, ListenOptions{.reuse_port = true});
  EXPECT_TRUE(fd.ok()) << fd.status();
  return fd.ok() ? *fd : -1;
}

TEST(ListenSocketRegistryTest, ReserveRefusesAnAddressAnotherSocketListensOn) {
  const int foreign = ForeignReusePortListener(*Address::fromIpPort("127.0.0.1", 0));
  const Address taken = *Address::localOf(foreign);
  ListenSocketRegistry registry;
  auto same = registry.reserve(taken);
  EXPECT_TRUE(absl::IsAlreadyExists(same.status())) << same.status();
  EXPECT_NE(std::string::npos, std::string(same.status().message()).find(taken.asString()));
  // The wildcard address overlaps it: connections to 127.0.0.1 would be split as well.
  auto wildcard = registry.reserve(*Address::fromIpPort("0.0.0.0", taken.port()));
  EXPECT_TRUE(absl::IsAlreadyExists(wildcard.status())) << wildcard.status();
  // Without the check, the kernel lets a SO_REUSEPORT group join: what the check is for.
  auto joined = registry.getOrCreate(taken, ListenOptions{.reuse_port = true}, 1);
  EXPECT_TRUE(joined.ok()) << joined.status();
  close(foreign);
}

TEST(ListenSocketRegistryTest, ReservationHoldsThePortForOurOwnReusePortGroup) {
  ListenSocketRegistry registry;
  auto reserved = registry.reserve(*Address::fromIpPort("127.0.0.1", 0));
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  ASSERT_NE(0, reserved->port());
  // Our own sockets bind to the reserved port while the reservation is held.
  auto fds = registry.getOrCreate(*reserved, ListenOptions{.reuse_port = true}, 3);
  ASSERT_TRUE(fds.ok()) << fds.status();
  for (int fd : *fds) EXPECT_EQ(reserved->port(), Address::localOf(fd)->port());
  registry.releaseReservations();
  EXPECT_EQ(3u, registry.count());
  // Now that they listen, another process's check fails on them.
  ListenSocketRegistry other;
  EXPECT_TRUE(absl::IsAlreadyExists(other.reserve(*reserved).status()));
}

TEST(ListenSocketRegistryTest, OverlappingAddressesOfOneProcessReserveTogether) {
  // All reservations come before any socket listens, so 0.0.0.0:P and 127.0.0.1:P of one config
  // do not refuse each other.
  ListenSocketRegistry registry;
  auto any = registry.reserve(*Address::fromIpPort("0.0.0.0", 0));
  ASSERT_TRUE(any.ok()) << any.status();
  auto local = registry.reserve(*Address::fromIpPort("127.0.0.1", any->port()));
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(registry.getOrCreate(*any, ListenOptions{.reuse_port = true}, 2).ok());
  EXPECT_TRUE(registry.getOrCreate(*local, ListenOptions{.reuse_port = true}, 2).ok());
  registry.releaseReservations();
}

TEST(ListenSocketRegistryTest, ConnectionsOfAClosedListenerDoNotHoldItsPort) {
  // A predecessor that is draining has closed its listeners but still serves connections
  // accepted on the port: a new process may take the port.
  const int listener = ForeignReusePortListener(*Address::fromIpPort("127.0.0.1", 0));
  const Address address = *Address::localOf(listener);
  const int client = ConnectBlocking(address);
  const int served = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(served, 0) << strerror(errno);
  close(listener);
  ListenSocketRegistry registry;
  auto reserved = registry.reserve(address);
  EXPECT_TRUE(reserved.ok()) << reserved.status();
  close(served);
  close(client);
}

TEST(ListenSocketRegistryTest, AdoptedAddressIsNotChecked) {
  // Inherited sockets (hot restart) listen on the address, and they are ours.
  auto fd = CreateListenSocket(*Address::fromIpPort("127.0.0.1", 0), ListenOptions{});
  ASSERT_TRUE(fd.ok());
  const Address bound = *Address::localOf(*fd);
  ListenSocketRegistry registry;
  registry.adopt(bound.asString(), *fd);
  auto reserved = registry.reserve(bound);
  ASSERT_TRUE(reserved.ok()) << reserved.status();
  EXPECT_EQ(bound.asString(), reserved->asString());
}

}  // namespace
}  // namespace sluice::network
