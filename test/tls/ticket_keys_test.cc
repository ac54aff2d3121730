#include "source/tls/ticket_keys.h"

#include <cstring>

#include "gtest/gtest.h"

namespace sluice::tls {
namespace {

bool Same(const TicketKey& a, const TicketKey& b) {
  return a.key_len == b.key_len && std::memcmp(a.name, b.name, sizeof(a.name)) == 0 &&
         std::memcmp(a.hmac, b.hmac, sizeof(a.hmac)) == 0 &&
         std::memcmp(a.aes, b.aes, sizeof(a.aes)) == 0;
}

TEST(GeneratedTicketKeysTest, OneKeyPerChainMadeOnceAndKeptForTheProcess) {
  GeneratedTicketKeys keys;
  const auto a = keys.keysFor("web/a/1");
  const auto b = keys.keysFor("web/b/1");
  ASSERT_EQ(1u, a.size());
  ASSERT_EQ(1u, b.size());
  EXPECT_EQ(32u, a[0].key_len);
  EXPECT_FALSE(Same(a[0], b[0]));
  // A certificate reload builds the chain's context again: the same key.
  EXPECT_TRUE(Same(a[0], keys.keysFor("web/a/1")[0]));
  EXPECT_EQ(2u, keys.own().size());
}

TEST(GeneratedTicketKeysTest, AnInheritedKeyDecryptsAfterTheChainsOwn) {
  GeneratedTicketKeys old_process;
  const TicketKey old_key = old_process.keysFor("web/a/1")[0];
  old_process.keysFor("web/gone/1");

  GeneratedTicketKeys successor;
  for (const auto& [chain, key] : old_process.own()) {
    TicketKey parsed;
    ASSERT_TRUE(GeneratedTicketKeys::Parse(GeneratedTicketKeys::Serialize(key), parsed));
    successor.inherit(chain, parsed);
  }
  const auto keys = successor.keysFor("web/a/1");
  ASSERT_EQ(2u, keys.size());
  // A fresh key encrypts; the predecessor's still decrypts its tickets.
  EXPECT_FALSE(Same(keys[0], old_key));
  EXPECT_TRUE(Same(keys[1], old_key));
  // A chain of the successor only: its own key alone.
  EXPECT_EQ(1u, successor.keysFor("web/new/1").size());
  // Only its own keys go to the next successor: a ticket lives across one restart.
  for (const auto& [chain, key] : successor.own()) EXPECT_FALSE(Same(key, old_key)) << chain;
}

TEST(GeneratedTicketKeysTest, SerializedKeysAreEightyBytes) {
  GeneratedTicketKeys keys;
  const TicketKey k = keys.keysFor("x")[0];
  const std::string bytes = GeneratedTicketKeys::Serialize(k);
  EXPECT_EQ(80u, bytes.size());
  TicketKey back;
  ASSERT_TRUE(GeneratedTicketKeys::Parse(bytes, back));
  EXPECT_TRUE(Same(k, back));
  EXPECT_FALSE(GeneratedTicketKeys::Parse(bytes.substr(0, 48), back));
  EXPECT_FALSE(GeneratedTicketKeys::Parse(bytes + "x", back));
}

config::v1::DownstreamTlsContext Context(const std::string& cert) {
  config::v1::DownstreamTlsContext c;
  auto* certificate = c.mutable_common_tls_context()->add_tls_certificates();
  certificate->mutable_certificate_chain()->set_filename(cert);
  certificate->mutable_private_key()->set_filename(cert + ".key");
  return c;
}

TEST(ChainIdentityTest, ANewCertificateKeepsTheIdentityOtherSessionRulesDoNot) {
  const auto base = ChainIdentity("web", "filter_chains[0]", Context("a.pem"));
  EXPECT_EQ(0u, base.rfind("web/filter_chains[0]/", 0)) << base;
  // Deterministic, and blind to the certificate files, the handshake timeout and kTLS.
  auto other_cert = Context("b.pem");
  other_cert.mutable_handshake_timeout()->set_seconds(3);
  other_cert.set_enable_ktls(true);
  EXPECT_EQ(base, ChainIdentity("web", "filter_chains[0]", other_cert));
  // Client certificates now required: a session made without one must not resume.
  auto mtls = Context("a.pem");
  mtls.set_client_certificate(config::v1::DownstreamTlsContext::REQUIRE);
  EXPECT_NE(base, ChainIdentity("web", "filter_chains[0]", mtls));
  auto tls13 = Context("a.pem");
  tls13.mutable_common_tls_context()->mutable_tls_params()->set_tls_minimum_protocol_version(
      config::v1::TlsParameters::TLSv1_3);
  EXPECT_NE(base, ChainIdentity("web", "filter_chains[0]", tls13));
  EXPECT_NE(base, ChainIdentity("api", "filter_chains[0]", Context("a.pem")));
  EXPECT_NE(base, ChainIdentity("web", "filter_chains[1]", Context("a.pem")));
}

}  // namespace
}  // namespace sluice::tls
