// Choosing a listener's filter chain: each criterion, the specificity order between chains, the
// default chain, and the prefixes of both address families.

#include "source/server/filter_chain.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::server {
namespace {

config::v1::CidrRange Range(const std::string& prefix, uint32_t len) {
  config::v1::CidrRange r;
  r.set_address_prefix(prefix);
  r.set_prefix_len(len);
  return r;
}

network::Address Ip(const std::string& ip) { return *network::Address::fromIpPort(ip, 1234); }

std::unique_ptr<FilterChain> Chain(const std::string& name) {
  auto c = std::make_unique<FilterChain>();
  c->name = name;
  return c;
}

std::string Find(const FilterChainSet& set, std::string_view sni,
                 const std::vector<std::string>* alpn = nullptr,
                 const std::string& source = "127.0.0.1", uint16_t port = 443) {
  const network::Address src = Ip(source);
  ChainMatchInput in;
  in.server_name = sni;
  in.alpn = alpn;
  in.source = &src;
  in.destination_port = port;
  const FilterChain* c = set.find(in);
  return c == nullptr ? "(none)" : c->name;
}

TEST(CidrPrefixTest, MatchesBothFamiliesAndMappedAddresses) {
  auto v4 = CidrPrefix::Parse(Range("10.1.0.0", 16));
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->contains(Ip("10.1.200.3")));
  EXPECT_FALSE(v4->contains(Ip("10.2.0.1")));
  EXPECT_TRUE(v4->contains(Ip("::ffff:10.1.0.9")));  // a dual-stack listener's IPv4 client
  EXPECT_FALSE(v4->contains(Ip("::1")));

  auto odd = CidrPrefix::Parse(Range("192.168.0.0", 23));
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->contains(Ip("192.168.1.255")));
  EXPECT_FALSE(odd->contains(Ip("192.168.2.0")));

  auto v6 = CidrPrefix::Parse(Range("2001:db8::", 32));
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->contains(Ip("2001:db8:1::1")));
  EXPECT_FALSE(v6->contains(Ip("2001:db9::1")));
  EXPECT_FALSE(v6->contains(Ip("10.0.0.1")));

  auto all = CidrPrefix::Parse(Range("0.0.0.0", 0));
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->contains(Ip("203.0.113.7")));

  EXPECT_FALSE(CidrPrefix::Parse(Range("10.0.0.0", 33)).ok());
  EXPECT_FALSE(CidrPrefix::Parse(Range("::", 129)).ok());
  EXPECT_FALSE(CidrPrefix::Parse(Range("example.com", 8)).ok());
}

TEST(FilterChainSetTest, ExactBeatsWildcardBeatsNoNameAndTheDefaultTakesTheRest) {
  std::vector<std::unique_ptr<FilterChain>> chains;
  auto exact = Chain("exact");
  exact->exact_names = {"api.example.com"};
  auto wild = Chain("wild");
  wild->wildcard_suffixes = {".example.com"};
  auto deeper = Chain("deeper");
  deeper->wildcard_suffixes = {".eu.example.com"};
  auto alpn = Chain("alpn");
  alpn->alpn = {"h2"};
  chains.push_back(std::move(exact));
  chains.push_back(std::move(wild));
  chains.push_back(std::move(deeper));
  chains.push_back(std::move(alpn));
  auto set = FilterChainSet::Create(std::move(chains), Chain("default"), "listener");
  ASSERT_TRUE(set.ok()) << set.status();
  const FilterChainSet& s = **set;
  EXPECT_TRUE(s.needsClientHello());
  EXPECT_EQ(nullptr, s.only());

  EXPECT_EQ("exact", Find(s, "api.example.com"));
  EXPECT_EQ("wild", Find(s, "www.example.com"));
  EXPECT_EQ("wild", Find(s, "a.b.example.com"));     // a wildcard takes several labels
  EXPECT_EQ("deeper", Find(s, "x.eu.example.com"));  // the longest suffix wins
  EXPECT_EQ("default", Find(s, "example.com"));      // the bare domain is not "*.example.com"
  EXPECT_EQ("default", Find(s, "other.test"));
  EXPECT_EQ("default", Find(s, ""));
  const std::vector<std::string> h2 = {"http/1.1", "h2"};
  const std::vector<std::string> h1 = {"http/1.1"};
  EXPECT_EQ("alpn", Find(s, "", &h2));
  EXPECT_EQ("default", Find(s, "", &h1));
  // The server name is compared before ALPN.
  EXPECT_EQ("wild", Find(s, "www.example.com", &h2));
}

TEST(FilterChainSetTest, PortThenNameThenAlpnThenTheLongestSourcePrefix) {
  std::vector<std::unique_ptr<FilterChain>> chains;
  auto port = Chain("port");
  port->destination_port = 8443;
  auto port_name = Chain("port_name");
  port_name->destination_port = 8443;
  port_name->exact_names = {"a.test"};
  auto wide = Chain("wide");
  wide->source_prefixes = {*CidrPrefix::Parse(Range("10.0.0.0", 8))};
  auto narrow = Chain("narrow");
  narrow->source_prefixes = {*CidrPrefix::Parse(Range("10.1.0.0", 16)),
                             *CidrPrefix::Parse(Range("192.0.2.0", 24))};
  chains.push_back(std::move(port));
  chains.push_back(std::move(port_name));
  chains.push_back(std::move(wide));
  chains.push_back(std::move(narrow));
  auto set = FilterChainSet::Create(std::move(chains), nullptr, "listener");
  ASSERT_TRUE(set.ok()) << set.status();
  const FilterChainSet& s = **set;
  EXPECT_TRUE(s.matchesDestinationPort());
  EXPECT_EQ("port_name", Find(s, "a.test", nullptr, "10.1.2.3", 8443));
  EXPECT_EQ("port", Find(s, "b.test", nullptr, "10.1.2.3", 8443));
  EXPECT_EQ("narrow", Find(s, "a.test", nullptr, "10.1.2.3", 443));
  EXPECT_EQ("wide", Find(s, "", nullptr, "10.2.0.1", 443));
  EXPECT_EQ("narrow", Find(s, "", nullptr, "192.0.2.77", 443));
  // No default: a connection nothing matches has no chain.
  EXPECT_EQ("(none)", Find(s, "", nullptr, "172.16.0.1", 443));
}

TEST(FilterChainSetTest, TwoChainsWithTheSameMatchAreAConfigError) {
  std::vector<std::unique_ptr<FilterChain>> chains;
  auto a = Chain("a");
  a->exact_names = {"x.test", "y.test"};
  auto b = Chain("b");
  b->exact_names = {"y.test", "x.test"};  // the same set in another order
  chains.push_back(std::move(a));
  chains.push_back(std::move(b));
  auto set = FilterChainSet::Create(std::move(chains), nullptr, "listeners[0]");
  ASSERT_FALSE(set.ok());
  EXPECT_NE(std::string::npos, set.status().message().find("listeners[0].filter_chains[1]"))
      << set.status();
}

TEST(FilterChainSetTest, OneChainWithoutCriteriaNeedsNoChoice) {
  std::vector<std::unique_ptr<FilterChain>> chains;
  chains.push_back(Chain("only"));
  auto set = FilterChainSet::Create(std::move(chains), nullptr, "listener");
  ASSERT_TRUE(set.ok());
  ASSERT_NE(nullptr, (*set)->only());
  EXPECT_EQ("only", (*set)->only()->name);
  EXPECT_FALSE((*set)->needsClientHello());

  auto legacy = FilterChainSet::Create({}, Chain("default"), "listener");
  ASSERT_TRUE(legacy.ok());
  ASSERT_NE(nullptr, (*legacy)->only());
  EXPECT_EQ("default", (*legacy)->only()->name);
}

}  // namespace
}  // namespace sluice::server
