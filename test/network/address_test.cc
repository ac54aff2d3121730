// Address: which addresses count as loopback (the admin endpoint warns about any other).

#include "source/network/address.h"

#include "gtest/gtest.h"

namespace sluice::network {
namespace {

bool Loopback(const char* ip) {
  auto address = Address::fromIpPort(ip, 80);
  EXPECT_TRUE(address.ok()) << ip;
  return address.ok() && address->isLoopback();
}

TEST(AddressTest, LoopbackIsAllOf127Slash8AndIpv6Loopback) {
  EXPECT_TRUE(Loopback("127.0.0.1"));
  EXPECT_TRUE(Loopback("127.0.0.2"));
  EXPECT_TRUE(Loopback("127.255.255.254"));
  EXPECT_TRUE(Loopback("::1"));
  EXPECT_TRUE(Loopback("::ffff:127.0.0.1"));
}

TEST(AddressTest, WildcardAndOtherAddressesAreNotLoopback) {
  EXPECT_FALSE(Loopback("0.0.0.0"));
  EXPECT_FALSE(Loopback("::"));
  EXPECT_FALSE(Loopback("126.255.255.255"));
  EXPECT_FALSE(Loopback("128.0.0.1"));
  EXPECT_FALSE(Loopback("10.0.0.1"));
  EXPECT_FALSE(Loopback("192.168.1.1"));
  EXPECT_FALSE(Loopback("::2"));
  EXPECT_FALSE(Loopback("fe80::1"));
  EXPECT_FALSE(Loopback("::ffff:10.0.0.1"));
  // An IPv4-compatible (deprecated) ::127.0.0.1 is not the loopback address.
  EXPECT_FALSE(Loopback("::127.0.0.1"));
}

}  // namespace
}  // namespace sluice::network
