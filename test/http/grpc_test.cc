// The gRPC helpers: what is a gRPC request, grpc-timeout's grammar and rounding, the status a
// local reply maps to, grpc-message's encoding.

#include "source/http/grpc.h"

#include "gtest/gtest.h"

namespace sluice::http::grpc {
namespace {

HeaderMap WithContentType(std::string_view ct) {
  HeaderMap h;
  h.add("Content-Type", ct);
  return h;
}

TEST(GrpcTest, IsGrpcRequest) {
  EXPECT_TRUE(IsGrpcRequest(WithContentType("application/grpc")));
  EXPECT_TRUE(IsGrpcRequest(WithContentType("application/grpc+proto")));
  EXPECT_TRUE(IsGrpcRequest(WithContentType("Application/GRPC+json")));
  EXPECT_TRUE(IsGrpcRequest(WithContentType("application/grpc; charset=utf-8")));
  EXPECT_FALSE(IsGrpcRequest(WithContentType("application/grpc-web")));
  EXPECT_FALSE(IsGrpcRequest(WithContentType("application/grpcx")));
  EXPECT_FALSE(IsGrpcRequest(WithContentType("application/json")));
  EXPECT_FALSE(IsGrpcRequest(WithContentType("")));
  EXPECT_FALSE(IsGrpcRequest(HeaderMap()));
}

TEST(GrpcTest, TimeoutUnitsAndRounding) {
  using std::chrono::milliseconds;
  EXPECT_EQ(milliseconds(2 * 3600 * 1000), ParseTimeout("2H"));
  EXPECT_EQ(milliseconds(3 * 60 * 1000), ParseTimeout("3M"));
  EXPECT_EQ(milliseconds(5000), ParseTimeout("5S"));
  EXPECT_EQ(milliseconds(250), ParseTimeout("250m"));
  // Below a millisecond: rounded up, never shorter than asked.
  EXPECT_EQ(milliseconds(2), ParseTimeout("1001u"));
  EXPECT_EQ(milliseconds(1), ParseTimeout("1n"));
  EXPECT_EQ(milliseconds(0), ParseTimeout("0m"));
  // Eight digits at most, of any unit (no overflow with hours).
  EXPECT_EQ(milliseconds(uint64_t{99999999} * 3600 * 1000), ParseTimeout("99999999H"));
  for (std::string_view bad : {"", "m", "1", "123456789S", "1s", "-1S", "1.5S", " 1S", "1 S"}) {
    EXPECT_FALSE(ParseTimeout(bad).has_value()) << bad;
  }
}

TEST(GrpcTest, StatusFromHttp) {
  EXPECT_EQ(13u, StatusFromHttp(400));
  EXPECT_EQ(16u, StatusFromHttp(401));
  EXPECT_EQ(7u, StatusFromHttp(403));
  EXPECT_EQ(12u, StatusFromHttp(404));
  EXPECT_EQ(14u, StatusFromHttp(429));
  EXPECT_EQ(14u, StatusFromHttp(502));
  EXPECT_EQ(14u, StatusFromHttp(503));
  EXPECT_EQ(4u, StatusFromHttp(504));
  EXPECT_EQ(2u, StatusFromHttp(500));
  EXPECT_EQ(2u, StatusFromHttp(413));
}

TEST(GrpcTest, MessageIsPercentEncoded) {
  EXPECT_EQ("upstream_overflow", EncodeMessage("upstream_overflow"));
  EXPECT_EQ("50%25 off%0A", EncodeMessage("50% off\n"));
  EXPECT_EQ("caf%C3%A9", EncodeMessage("caf\xc3\xa9"));
  EXPECT_EQ("", EncodeMessage(""));
}

}  // namespace
}  // namespace sluice::http::grpc
