#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "api/sluice/config/v1/tls.pb.h"
#include "source/tls/context.h"

namespace sluice::tls {

// The session ticket keys sluice makes itself, for the filter chains whose config names no key
// files: one random key per chain, for the life of a hot-restart lineage's process, and the
// previous process's key beside it after a hot restart, so that tickets issued before the
// restart still resume (they come back with a new ticket under the new key). Each restart thus
// rotates the key: a ticket lives across one restart, not forever.
//
// Keys are per chain, as the chains' own SSL_CTXs are: sharing one key between chains would let
// a session made on one chain resume on another with other client-certificate rules. A chain is
// matched across processes by its identity (ChainIdentity) — its listener, its name or place,
// and a digest of its TLS settings without the certificates: a new certificate keeps the
// tickets (as a certificate reload does), new verification rules or protocol settings do not.
//
// Main thread only. Secrets: never logged; the memory is cleansed on destruction.
class GeneratedTicketKeys {
 public:
  GeneratedTicketKeys() = default;
  ~GeneratedTicketKeys();
  GeneratedTicketKeys(const GeneratedTicketKeys&) = delete;
  GeneratedTicketKeys& operator=(const GeneratedTicketKeys&) = delete;

  // The keys of the chain `identity`: its own (made on the first call; it encrypts), then the
  // predecessor's, if one was inherited.
  std::vector<TicketKey> keysFor(const std::string& identity);
  // The predecessor's key of chain `identity` (before keysFor is called for it).
  void inherit(const std::string& identity, const TicketKey& key);
  // Every chain's own key, for a successor.
  std::vector<std::pair<std::string, TicketKey>> own() const;
  size_t inherited() const { return inherited_.size(); }

  // A key as 80 bytes (name, HMAC key, AES key) and back; false if `bytes` is not one.
  static std::string Serialize(const TicketKey& key);
  static bool Parse(std::string_view bytes, TicketKey& key);

 private:
  std::map<std::string, TicketKey> own_;
  std::map<std::string, TicketKey> inherited_;
};

// "<listener>/<chain>/<digest>": `chain` is the chain's name, or its place when it has none
// ("filter_chains[2]", "default_filter_chain"); the digest covers `config` without its
// certificates (and without what does not touch sessions: handshake timeout, kTLS).
std::string ChainIdentity(const std::string& listener, const std::string& chain,
                          const config::v1::DownstreamTlsContext& config);

}  // namespace sluice::tls
