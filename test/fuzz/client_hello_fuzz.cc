// libFuzzer target: the TLS inspector's ClientHello parser over the first bytes of a connection.
// Besides memory safety (ASan), it checks the promises of source/tls/client_hello.h and aborts
// when one is broken, so the fuzzer reports it as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "source/tls/client_hello.h"

namespace {

using sluice::tls::ClientHelloInfo;
using sluice::tls::ParseClientHello;
using sluice::tls::ParseResult;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "client_hello_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

bool ValidServerName(const std::string& name) {
  if (name.size() > 255) return false;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return name.empty() || (name.front() != '.' && name.back() != '.');
}

}  // namespace

extern "C" int SluiceFuzzClientHello(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> bytes(data, size);
  ClientHelloInfo info;
  const ParseResult result = ParseClientHello(bytes, &info);

  Check((result == ParseResult::kNotTls) == !info.tls || result == ParseResult::kNeedMore,
        "tls is set exactly when the bytes are a TLS record");
  if (result == ParseResult::kDone) {
    Check(ValidServerName(info.server_name), "server name lower-cased, 1..255, no edge dots");
    for (const std::string& protocol : info.alpn) {
      Check(!protocol.empty() && protocol.size() <= 255, "ALPN protocol of 1..255 bytes");
    }
  } else {
    Check(info.server_name.empty() && info.alpn.empty(), "nothing filled in without kDone");
  }
  Check(size < 16384 || result != ParseResult::kNeedMore, "max_size bytes always decide");

  // Decisions depend only on the bytes so far: a prefix needs more or says the same.
  for (const size_t prefix : {size / 2, size > 0 ? size - 1 : 0}) {
    ClientHelloInfo partial;
    const ParseResult r = ParseClientHello(bytes.first(prefix), &partial);
    Check(r == ParseResult::kNeedMore || r == result, "a prefix needs more or agrees");
    Check(r != ParseResult::kDone ||
              (partial.server_name == info.server_name && partial.alpn == info.alpn),
          "a prefix that is done agrees on the fields");
  }
  // A smaller limit changes nothing but may make the answer kTooLarge (earlier). And with a limit
  // of L, L bytes always decide, and nothing past them matters: the first L bytes give the same
  // answer as the whole input.
  const size_t small = size / 3 + 9;
  ClientHelloInfo limited;
  const ParseResult r = ParseClientHello(bytes, &limited, small);
  Check(r == result || r == ParseResult::kTooLarge, "a smaller limit only adds kTooLarge");
  if (size >= small) {
    Check(r != ParseResult::kNeedMore, "max_size bytes always decide");
    ClientHelloInfo head;
    Check(ParseClientHello(bytes.first(small), &head, small) == r,
          "nothing past max_size bytes matters");
    Check(head.server_name == limited.server_name && head.alpn == limited.alpn,
          "nothing past max_size bytes matters (fields)");
  }
  return 0;
}

#ifndef SLUICE_FUZZ_REPLAY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return SluiceFuzzClientHello(data, size);
}
#endif
