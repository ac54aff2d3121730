#include "source/config/redact.h"

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/sluice/config/v1/annotations.pb.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "source/config/loader.h"

namespace sluice::config {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49secret\n";
constexpr char kChainPem[] = "-----BEGIN CERTIFICATE-----\nMIIBpublic\n";

v1::Bootstrap Parse(std::string_view yaml) {
  v1::Bootstrap bootstrap;
  const absl::Status status = ParseInto(yaml, Format::kYaml, "test.yaml", bootstrap);
  EXPECT_TRUE(status.ok()) << status;
  return bootstrap;
}

std::string Json(const v1::Bootstrap& bootstrap) {
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(bootstrap, &out).ok());
  return out;
}

TEST(RedactTest, TheSecretFieldsAreAnnotated) {
  // The fields the dump must hide: if one loses its annotation, this says which.
  const auto* tls = v1::TlsCertificate::descriptor();
  EXPECT_TRUE(tls->FindFieldByName("private_key")->options().GetExtension(v1::sensitive));
  EXPECT_FALSE(tls->FindFieldByName("certificate_chain")->options().GetExtension(v1::sensitive));
  EXPECT_TRUE(v1::DownstreamTlsContext::descriptor()
                  ->FindFieldByName("session_ticket_keys")
                  ->options()
                  .GetExtension(v1::sensitive));
  EXPECT_TRUE(v1::Admin::descriptor()
                  ->FindFieldByName("bearer_token")
                  ->options()
                  .GetExtension(v1::sensitive));
  EXPECT_TRUE(v1::DataSource::descriptor()
                  ->FindFieldByName("filename")
                  ->options()
                  .GetExtension(v1::secret_location));
}

TEST(RedactTest, InlineSecretsAreRedactedEverywhereAndTheRestStays) {
  v1::Bootstrap bootstrap;
  auto* chain = bootstrap.add_listeners()->add_filter_chains();
  auto* common = chain->mutable_tls_context()->mutable_common_tls_context();
  auto* cert = common->add_tls_certificates();
  cert->mutable_certificate_chain()->set_inline_string(kChainPem);
  cert->mutable_private_key()->set_inline_string(kKeyPem);
  auto* cert2 = common->add_tls_certificates();
  cert2->mutable_certificate_chain()->set_filename("/etc/ssl/rsa.crt");
  cert2->mutable_private_key()->set_filename("/etc/ssl/rsa.key");
  common->mutable_validation_context()->mutable_trusted_ca()->set_inline_string(kChainPem);
  chain->mutable_tls_context()->add_session_ticket_keys()->set_inline_string("ticketkeybytes");
  chain->mutable_tls_context()->add_session_ticket_keys()->set_filename("/etc/ssl/ticket.key");
  chain->mutable_tls_context()->add_session_ticket_keys()->set_inline_string("");
  // Upstream TLS: a client certificate's key is just as secret.
  auto* cluster = bootstrap.add_clusters();
  cluster->set_name("c");
  cluster->mutable_tls_context()
      ->mutable_common_tls_context()
      ->add_tls_certificates()
      ->mutable_private_key()
      ->set_inline_string(kKeyPem);
  bootstrap.mutable_admin()->mutable_bearer_token()->set_inline_string("0123456789abcdef-token");

  v1::Bootstrap expected = bootstrap;
  expected.mutable_listeners(0)
      ->mutable_filter_chains(0)
      ->mutable_tls_context()
      ->mutable_common_tls_context()
      ->mutable_tls_certificates(0)
      ->mutable_private_key()
      ->set_inline_string(kRedacted);
  expected.mutable_listeners(0)
      ->mutable_filter_chains(0)
      ->mutable_tls_context()
      ->mutable_session_ticket_keys(0)
      ->set_inline_string(kRedacted);
  expected.mutable_clusters(0)
      ->mutable_tls_context()
      ->mutable_common_tls_context()
      ->mutable_tls_certificates(0)
      ->mutable_private_key()
      ->set_inline_string(kRedacted);
  expected.mutable_admin()->mutable_bearer_token()->set_inline_string(kRedacted);

  RedactSecrets(bootstrap);
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(expected, bootstrap)) << diff;
  const std::string json = Json(bootstrap);
  EXPECT_THAT(json, Not(HasSubstr("PRIVATE KEY")));
  EXPECT_THAT(json, Not(HasSubstr("ticketkeybytes")));
  EXPECT_THAT(json, Not(HasSubstr("-token")));
  // File names say where a key is: shown. Certificates are public: shown.
  EXPECT_THAT(json, HasSubstr("/etc/ssl/rsa.key"));
  EXPECT_THAT(json, HasSubstr("/etc/ssl/ticket.key"));
  EXPECT_THAT(json, HasSubstr("MIIBpublic"));
}

TEST(RedactTest, NothingSetNothingAdded) {
  // Redacting must not create the messages it walks past (an unset admin stays unset).
  v1::Bootstrap bootstrap = Parse(R"(
listeners:
- name: l
  address: {address: 127.0.0.1, port: 0}
  filters: [{tcp_proxy: {cluster: c}}]
clusters: [{name: c, endpoints: [{address: {address: 127.0.0.1, port: 1}}]}]
)");
  const v1::Bootstrap before = bootstrap;
  RedactSecrets(bootstrap);
  EXPECT_TRUE(MessageDifferencer::Equals(before, bootstrap));
  EXPECT_FALSE(bootstrap.has_admin());
}

TEST(RedactTest, AnnotationOnAnyNewFieldIsEnough) {
  // The walk is generic: every sensitive field of every message reachable from the root is
  // found. Check the claim over the whole schema: each sensitive field is a string, bytes or
  // message field (an annotated number would not be hidden).
  std::vector<const google::protobuf::Descriptor*> pending = {v1::Bootstrap::descriptor()};
  std::set<const google::protobuf::Descriptor*> seen;
  int sensitive = 0;
  while (!pending.empty()) {
    const auto* d = pending.back();
    pending.pop_back();
    if (!seen.insert(d).second) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const auto* f = d->field(i);
      if (f->options().GetExtension(v1::sensitive)) {
        ++sensitive;
        EXPECT_TRUE(f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING ||
                    f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE)
            << f->full_name();
      }
      if (f->message_type() != nullptr) pending.push_back(f->message_type());
    }
  }
  EXPECT_GE(sensitive, 3);
}

}  // namespace
}  // namespace sluice::config
