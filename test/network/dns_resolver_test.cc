// The c-ares resolver on a real dispatcher: answers arrive on the loop (never inside
// resolve()), IP literals come back as they are with the port asked for, a server that refuses
// is an UNAVAILABLE error, a cancelled query's callback never runs. (Answers from a real DNS
// server: test/integration/dns_cluster_test.py.)

#include "source/network/dns_resolver_impl.h"

#include <optional>

#include "gtest/gtest.h"

namespace sluice::network {
namespace {

class DnsResolverTest : public ::testing::Test {
 protected:
  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");

  DnsResolverPtr resolver(const std::vector<Address>& servers = {}) {
    auto r = CreateDnsResolver(*dispatcher_, servers);
    EXPECT_TRUE(r.ok()) << r.status();
    return std::move(*r);
  }

  // Resolves and runs the loop until the answer (bounded by c-ares's own timeouts).
  absl::StatusOr<DnsResponse> resolve(DnsResolver& r, const std::string& name,
                                      DnsLookupFamily family = DnsLookupFamily::kAll) {
    std::optional<absl::StatusOr<DnsResponse>> result;
    bool inside = true;
    r.resolve(name, 8080, family, [&](absl::StatusOr<DnsResponse> got) {
      EXPECT_FALSE(inside) << "the callback ran inside resolve()";
      result = std::move(got);
      dispatcher_->exit();
    });
    inside = false;
    dispatcher_->run();
    return std::move(*result);
  }
};

TEST_F(DnsResolverTest, IpLiteralsComeBackAsTheyAreWithThePort) {
  auto r = resolver();
  auto v4 = resolve(*r, "127.0.0.9");
  ASSERT_TRUE(v4.ok()) << v4.status();
  ASSERT_EQ(1u, v4->addresses.size());
  EXPECT_EQ("127.0.0.9:8080", v4->addresses[0].asString());
  auto v6 = resolve(*r, "::1");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ("[::1]:8080", v6->addresses.at(0).asString());
  // An IPv6 literal has no IPv4 address.
  EXPECT_TRUE(absl::IsNotFound(resolve(*r, "::1", DnsLookupFamily::kV4Only).status()));
}

TEST_F(DnsResolverTest, AServerThatRefusesIsUnavailable) {
  // Nothing listens on UDP port 1 of loopback: the kernel refuses at once.
  auto r = resolver({*Address::fromIpPort("127.0.0.1", 1)});
  auto got = resolve(*r, "name.invalid-tld-for-sluice-tests");
  EXPECT_FALSE(got.ok());
  EXPECT_FALSE(absl::IsNotFound(got.status())) << got.status();
}

TEST_F(DnsResolverTest, ACancelledQueryNeverCallsBack) {
  auto r = resolver();
  bool called = false;
  DnsQuery* q = r->resolve("127.0.0.1", 80, DnsLookupFamily::kAll,
                           [&](absl::StatusOr<DnsResponse>) { called = true; });
  q->cancel();
  // A second query after it: once it answered, the first one's turn has passed too.
  EXPECT_TRUE(resolve(*r, "127.0.0.2").ok());
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace sluice::network
