#include "source/tls/ticket_keys.h"

#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace sluice::tls {

GeneratedTicketKeys::~GeneratedTicketKeys() {
  for (auto* keys : {&own_, &inherited_}) {
    for (auto& [identity, key] : *keys) OPENSSL_cleanse(&key, sizeof(key));
  }
}

std::vector<TicketKey> GeneratedTicketKeys::keysFor(const std::string& identity) {
  auto [it, made] = own_.try_emplace(identity);
  if (made) {
    TicketKey& key = it->second;
    key.key_len = 32;
    RAND_bytes(key.name, sizeof(key.name));
    RAND_bytes(key.hmac, sizeof(key.hmac));
    RAND_bytes(key.aes, sizeof(key.aes));
  }
  std::vector<TicketKey> keys{it->second};
  if (auto p = inherited_.find(identity); p != inherited_.end()) keys.push_back(p->second);
  return keys;
}

void GeneratedTicketKeys::inherit(const std::string& identity, const TicketKey& key) {
  inherited_[identity] = key;
}

std::vector<std::pair<std::string, TicketKey>> GeneratedTicketKeys::own() const {
  return {own_.begin(), own_.end()};
}

std::string GeneratedTicketKeys::Serialize(const TicketKey& key) {
  std::string out(80, '\0');
  std::memcpy(out.data(), key.name, 16);
  std::memcpy(out.data() + 16, key.hmac, 32);
  std::memcpy(out.data() + 48, key.aes, 32);
  return out;
}

bool GeneratedTicketKeys::Parse(std::string_view bytes, TicketKey& key) {
  if (bytes.size() != 80) return false;
  std::memcpy(key.name, bytes.data(), 16);
  std::memcpy(key.hmac, bytes.data() + 16, 32);
  std::memcpy(key.aes, bytes.data() + 48, 32);
  key.key_len = 32;
  return true;
}

std::string ChainIdentity(const std::string& listener, const std::string& chain,
                          const config::v1::DownstreamTlsContext& config) {
  config::v1::DownstreamTlsContext sessions = config;
  sessions.mutable_common_tls_context()->clear_tls_certificates();
  sessions.clear_handshake_timeout();
  sessions.clear_enable_ktls();
  // Deterministic: both processes must make the same bytes from the same settings.
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    sessions.SerializeToCodedStream(&out);
  }
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), digest);
  return absl::StrCat(
      listener, "/", chain, "/",
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 16)));
}

}  // namespace sluice::tls
