#include "source/tls/client_hello.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

// The TLS inspector's ClientHello parser: ClientHellos built here byte by byte (a small writer
// that records every length prefix, so that each can be corrupted), framed in one record or
// fragmented over many, every prefix of them, non-TLS starts, size limits; and the ClientHellos
// of a real client, openssl s_client, read from a loopback socket.

extern char** environ;

namespace sluice::tls {

void PrintTo(ParseResult result, std::ostream* os) { *os << ParseResultName(result); }

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Bytes = std::vector<uint8_t>;

// Where a length prefix sits in a built message, so that tests can corrupt each one.
struct LengthField {
  size_t offset;
  int width;  // bytes: 1, 2 or 3
};

// Appends big-endian integers and length-prefixed blocks, remembering every length prefix.
class Writer {
 public:
  void U8(uint32_t v) { bytes_.push_back(static_cast<uint8_t>(v)); }
  void U16(uint32_t v) {
    U8(v >> 8);
    U8(v);
  }
  void U24(uint32_t v) {
    U8(v >> 16);
    U16(v);
  }
  void Raw(const std::string& s) { bytes_.insert(bytes_.end(), s.begin(), s.end()); }

  // Writes `body` behind a `width`-byte length that covers exactly what it wrote.
  void Prefixed(int width, const std::function<void(Writer&)>& body) {
    const size_t at = bytes_.size();
    fields_.push_back({at, width});
    bytes_.insert(bytes_.end(), width, 0);
    body(*this);
    size_t size = bytes_.size() - at - width;
    for (int i = width - 1; i >= 0; --i, size >>= 8) bytes_[at + i] = static_cast<uint8_t>(size);
  }

  const Bytes& bytes() const { return bytes_; }
  const std::vector<LengthField>& fields() const { return fields_; }

 private:
  Bytes bytes_;
  std::vector<LengthField> fields_;
};

struct Extension {
  uint16_t type;
  std::function<void(Writer&)> data;
};

Extension Sni(std::vector<std::pair<uint8_t, std::string>> names) {
  return {0, [names](Writer& w) {
            w.Prefixed(2, [&](Writer& w) {
              for (const auto& [type, name] : names) {
                w.U8(type);
                w.Prefixed(2, [&](Writer& w) { w.Raw(name); });
              }
            });
          }};
}
Extension Sni(const std::string& host) { return Sni({{0, host}}); }

Extension Alpn(std::vector<std::string> protocols) {
  return {16, [protocols](Writer& w) {
            w.Prefixed(2, [&](Writer& w) {
              for (const auto& p : protocols) w.Prefixed(1, [&](Writer& w) { w.Raw(p); });
            });
          }};
}

Extension Versions(std::vector<uint16_t> versions) {
  return {43, [versions](Writer& w) {
            w.Prefixed(1, [&](Writer& w) {
              for (uint16_t v : versions) w.U16(v);
            });
          }};
}

Extension Opaque(uint16_t type, std::string data) {
  return {type, [data](Writer& w) { w.Raw(data); }};
}

struct Hello {
  uint16_t legacy_version = 0x0303;
  std::string session_id = std::string(32, 's');
  std::vector<uint16_t> cipher_suites = {0x1301, 0x1302, 0xc02f};
  std::string compression = std::string(1, '\0');
  bool has_extensions = true;  // false: the body ends after the compression methods
  std::vector<Extension> extensions;
};

Hello Typical() {
  Hello h;
  h.extensions = {
      Opaque(0x0a0a, ""),       Sni("foo.example.com"),     Opaque(23, ""),
      Alpn({"h2", "http/1.1"}), Versions({0x0304, 0x0303}), Opaque(51, std::string(36, 'k'))};
  return h;
}

// The handshake message (type, 24-bit length, body). fields[0] is the handshake length.
Writer Message(const Hello& h) {
  Writer w;
  w.U8(1);
  w.Prefixed(3, [&](Writer& w) {
    w.U16(h.legacy_version);
    w.Raw(std::string(32, 'r'));
    w.Prefixed(1, [&](Writer& w) { w.Raw(h.session_id); });
    w.Prefixed(2, [&](Writer& w) {
      for (uint16_t s : h.cipher_suites) w.U16(s);
    });
    w.Prefixed(1, [&](Writer& w) { w.Raw(h.compression); });
    if (!h.has_extensions) return;
    w.Prefixed(2, [&](Writer& w) {
      for (const auto& e : h.extensions) {
        w.U16(e.type);
        w.Prefixed(2, e.data);
      }
    });
  });
  return w;
}

// Frames a handshake message in handshake records of at most `fragment` bytes each.
Bytes Records(const Bytes& message, size_t fragment = 16384, uint16_t version = 0x0301) {
  Bytes out;
  for (size_t at = 0; at < message.size(); at += fragment) {
    const size_t n = std::min(fragment, message.size() - at);
    out.insert(out.end(), {22, static_cast<uint8_t>(version >> 8), static_cast<uint8_t>(version),
                           static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    out.insert(out.end(), message.begin() + at, message.begin() + at + n);
  }
  return out;
}

Bytes Wire(const Hello& h, size_t fragment = 16384) {
  return Records(Message(h).bytes(), fragment);
}

Bytes FromString(std::string_view s) { return Bytes(s.begin(), s.end()); }

ParseResult Parse(const Bytes& data, ClientHelloInfo* info = nullptr, size_t max = 16384) {
  ClientHelloInfo scratch;
  return ParseClientHello(data, info != nullptr ? info : &scratch, max);
}

// Every proper prefix needs more; the whole is `expected`.
void ExpectPrefixesNeedMore(const Bytes& data, ParseResult expected) {
  for (size_t n = 0; n < data.size(); ++n) {
    ASSERT_EQ(Parse(Bytes(data.begin(), data.begin() + n)), ParseResult::kNeedMore)
        << "prefix of " << n << " of " << data.size() << " bytes";
  }
  EXPECT_EQ(Parse(data), expected);
}

TEST(ClientHelloTest, SniAlpnAndVersions) {
  ClientHelloInfo info;
  ASSERT_EQ(Parse(Wire(Typical()), &info), ParseResult::kDone);
  EXPECT_TRUE(info.tls);
  EXPECT_EQ(info.server_name, "foo.example.com");
  EXPECT_THAT(info.alpn, ElementsAre("h2", "http/1.1"));
  EXPECT_EQ(info.legacy_version, 0x0303);
  EXPECT_TRUE(info.has_supported_versions_13);
}

TEST(ClientHelloTest, RecordVersionsOneToThree) {
  for (uint16_t version : {0x0301, 0x0302, 0x0303}) {
    EXPECT_EQ(Parse(Records(Message(Typical()).bytes(), 16384, version)), ParseResult::kDone);
  }
  for (uint16_t version : {0x0300, 0x0304, 0x03ff}) {
    ClientHelloInfo info;
    EXPECT_EQ(Parse(Records(Message(Typical()).bytes(), 16384, version), &info),
              ParseResult::kInvalid);
    EXPECT_TRUE(info.tls);
  }
}

TEST(ClientHelloTest, NoExtensions) {
  Hello h;
  h.has_extensions = false;
  h.legacy_version = 0x0301;
  h.session_id.clear();
  ClientHelloInfo info;
  ASSERT_EQ(Parse(Wire(h), &info), ParseResult::kDone);
  EXPECT_EQ(info.server_name, "");
  EXPECT_THAT(info.alpn, IsEmpty());
  EXPECT_EQ(info.legacy_version, 0x0301);
  EXPECT_FALSE(info.has_supported_versions_13);
}

TEST(ClientHelloTest, EmptyExtensionsBlock) {
  Hello h;
  ClientHelloInfo info;
  ASSERT_EQ(Parse(Wire(h), &info), ParseResult::kDone);
  EXPECT_EQ(info.server_name, "");
}

TEST(ClientHelloTest, WithoutTls13) {
  Hello h = Typical();
  h.extensions[4] = Versions({0x0303, 0x0302});
  ClientHelloInfo info;
  ASSERT_EQ(Parse(Wire(h), &info), ParseResult::kDone);
  EXPECT_FALSE(info.has_supported_versions_13);
}

TEST(ClientHelloTest, FragmentedAcrossRecords) {
  // Every fragment size from one byte (each length prefix and string straddles records) up to
  // one that splits the message in two.
  const Bytes message = Message(Typical()).bytes();
  for (size_t fragment = 1; fragment <= message.size(); ++fragment) {
    ClientHelloInfo info;
    ASSERT_EQ(Parse(Records(message, fragment), &info), ParseResult::kDone) << fragment;
    EXPECT_EQ(info.server_name, "foo.example.com") << fragment;
    EXPECT_THAT(info.alpn, ElementsAre("h2", "http/1.1")) << fragment;
    EXPECT_TRUE(info.has_supported_versions_13);
  }
}

TEST(ClientHelloTest, LargerThanOneRecord) {
  // A ClientHello past 2^14 bytes (a large post-quantum key share and padding) must be split.
  Hello h = Typical();
  h.extensions.push_back(Opaque(21, std::string(20000, '\0')));
  const Bytes wire = Wire(h);
  ASSERT_GT(wire.size(), 16384u);
  ClientHelloInfo info;
  EXPECT_EQ(Parse(wire, &info, 65536), ParseResult::kDone);
  EXPECT_EQ(info.server_name, "foo.example.com");
  EXPECT_EQ(Parse(wire, &info), ParseResult::kTooLarge);
}

TEST(ClientHelloTest, EveryPrefixNeedsMore) {
  ExpectPrefixesNeedMore(Wire(Typical()), ParseResult::kDone);
  ExpectPrefixesNeedMore(Wire(Typical(), 1), ParseResult::kDone);
  ExpectPrefixesNeedMore(Wire(Typical(), 50), ParseResult::kDone);
  Hello bare;
  bare.has_extensions = false;
  ExpectPrefixesNeedMore(Wire(bare), ParseResult::kDone);
}

TEST(ClientHelloTest, BytesAfterTheClientHelloAreNotLookedAt) {
  // The rest of the record, and the next record, are the TLS stack's business.
  Bytes message = Message(Typical()).bytes();
  const size_t size = message.size();
  message.insert(message.end(), {0xde, 0xad});
  Bytes wire = Records(message);
  wire.insert(wire.end(), {23, 3, 3, 0, 1, 0});
  ExpectPrefixesNeedMore(Bytes(wire.begin(), wire.begin() + 5 + size), ParseResult::kDone);
  EXPECT_EQ(Parse(wire), ParseResult::kDone);
}

TEST(ClientHelloTest, NotTls) {
  ClientHelloInfo info;
  EXPECT_EQ(Parse(FromString("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &info), ParseResult::kNotTls);
  EXPECT_FALSE(info.tls);
  // Decided on the first byte.
  EXPECT_EQ(Parse(FromString("G")), ParseResult::kNotTls);
  EXPECT_EQ(Parse(FromString("PRI * HTTP/2.0\r\n")), ParseResult::kNotTls);
  // An SSLv2-compatible ClientHello: a two-byte header with the top bit set, then type 1.
  EXPECT_EQ(Parse(Bytes{0x80, 0x2e, 0x01, 0x03, 0x01}), ParseResult::kNotTls);
  EXPECT_EQ(Parse(Bytes{0x80}), ParseResult::kNotTls);
  // Other TLS content types do not start a connection.
  EXPECT_EQ(Parse(Bytes{21, 3, 1, 0, 2, 2, 40}), ParseResult::kNotTls);
  EXPECT_EQ(Parse(Bytes{23}), ParseResult::kNotTls);
  // 22 followed by anything but a 3.x version is no TLS record either.
  EXPECT_EQ(Parse(Bytes{22, 'G'}), ParseResult::kNotTls);
  // Too early to tell.
  EXPECT_EQ(Parse(Bytes{}, &info), ParseResult::kNeedMore);
  EXPECT_FALSE(info.tls);
  EXPECT_EQ(Parse(Bytes{22}, &info), ParseResult::kNeedMore);
  EXPECT_FALSE(info.tls);
  EXPECT_EQ(Parse(Bytes{22, 3}, &info), ParseResult::kNeedMore);
  EXPECT_TRUE(info.tls);
}

TEST(ClientHelloTest, InvalidRecords) {
  const Bytes message = Message(Typical()).bytes();
  // Zero-length and oversized records.
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0, 0}), ParseResult::kInvalid);
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0x40, 0x01}), ParseResult::kInvalid);
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0x40, 0x00}), ParseResult::kNeedMore);
  // Not a ClientHello: decided on the handshake type byte.
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0, 4, 2}), ParseResult::kInvalid);
  // A second record of another content type, or a broken header, in the middle of the message.
  Bytes wire = Records(message, 40);
  for (const auto& [offset, value] :
       std::vector<std::pair<size_t, uint8_t>>{{45, 23}, {46, 2}, {47, 0}, {47, 4}, {48, 0x40}}) {
    Bytes bad = wire;
    bad[offset] = value;
    if (offset == 48) bad[49] = 1;
    EXPECT_EQ(Parse(bad), ParseResult::kInvalid) << offset;
    // Decided as soon as the broken byte is there.
    EXPECT_EQ(Parse(Bytes(bad.begin(), bad.begin() + offset + 1 + (offset == 48))),
              ParseResult::kInvalid)
        << offset;
  }
  Bytes zero = Records(Bytes(message.begin(), message.begin() + 40));
  zero.insert(zero.end(), {22, 3, 1, 0, 0});
  EXPECT_EQ(Parse(zero), ParseResult::kInvalid);
}

TEST(ClientHelloTest, HandshakeLength) {
  Writer w = Message(Typical());
  Bytes message = w.bytes();
  // One byte longer than the record: the rest would come in the next record.
  message[3] += 1;
  Bytes wire = Records(message);
  EXPECT_EQ(Parse(wire), ParseResult::kNeedMore);
  Bytes next = wire;
  next.insert(next.end(), {22, 3, 1, 0, 1, 0});
  EXPECT_EQ(Parse(next), ParseResult::kInvalid);  // the trailing 0 breaks the extensions
  next = wire;
  next.insert(next.end(), {23, 3, 3, 0, 1, 0});
  EXPECT_EQ(Parse(next), ParseResult::kInvalid);
  // One byte shorter: the extensions overrun the message.
  message[3] -= 2;
  EXPECT_EQ(Parse(Records(message)), ParseResult::kInvalid);
  // Too short for any ClientHello.
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0, 4, 1, 0, 0, 0}), ParseResult::kInvalid);
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0, 6, 1, 0, 0, 2, 3, 3}), ParseResult::kInvalid);
}

TEST(ClientHelloTest, EveryLengthFieldOffByOne) {
  // Each length prefix inside the message (all but the handshake length, fields[0]), one more
  // and one less than the truth, in one record and fragmented: never accepted, never a crash.
  const Writer w = Message(Typical());
  ASSERT_GT(w.fields().size(), 15u);
  for (size_t i = 1; i < w.fields().size(); ++i) {
    const auto [offset, width] = w.fields()[i];
    for (int delta : {1, -1}) {
      Bytes message = w.bytes();
      uint32_t value = 0;
      for (int b = 0; b < width; ++b) value = (value << 8) | message[offset + b];
      value += delta;
      for (int b = width - 1; b >= 0; --b, value >>= 8) {
        message[offset + b] = static_cast<uint8_t>(value);
      }
      ClientHelloInfo info;
      EXPECT_EQ(Parse(Records(message), &info), ParseResult::kInvalid)
          << "field " << i << " at " << offset << " delta " << delta;
      EXPECT_EQ(Parse(Records(message, 7), &info), ParseResult::kInvalid)
          << "field " << i << " at " << offset << " delta " << delta;
      // A rejected ClientHello leaves nothing half-filled behind.
      EXPECT_EQ(info.server_name, "");
      EXPECT_THAT(info.alpn, IsEmpty());
      EXPECT_TRUE(info.tls);
    }
  }
}

TEST(ClientHelloTest, InvalidFields) {
  auto invalid = [](const Hello& h) {
    EXPECT_EQ(Parse(Wire(h)), ParseResult::kInvalid);
    EXPECT_EQ(Parse(Wire(h, 3)), ParseResult::kInvalid);
  };
  Hello h = Typical();
  h.session_id = std::string(33, 's');
  invalid(h);
  h = Typical();
  h.cipher_suites.clear();
  invalid(h);
  h = Typical();
  h.compression.clear();
  invalid(h);
  for (const Extension& ext :
       {Alpn({}), Alpn({"h2", ""}), Alpn({std::string(256, 'x')}), Versions({}),
        Opaque(43, std::string(1, '\0')), Opaque(43, std::string("\x03\x03\x04\x03", 4)),
        Opaque(0, ""), Opaque(16, ""), Sni(std::vector<std::pair<uint8_t, std::string>>{}),
        Sni({{1, ""}})}) {
    h = Typical();
    h.extensions.push_back(ext);
    // Replace the extension of the same type rather than duplicate it.
    h.extensions.erase(std::find_if(h.extensions.begin(), h.extensions.end(),
                                    [&](const Extension& e) { return e.type == ext.type; }));
    invalid(h);
  }
}

TEST(ClientHelloTest, DuplicateExtensions) {
  for (const Extension& ext : {Sni("foo.example.com"), Alpn({"h2"}), Versions({0x0304}),
                               Opaque(23, ""), Opaque(0x0a0a, "")}) {
    Hello h = Typical();
    h.extensions.push_back(ext);
    EXPECT_EQ(Parse(Wire(h)), ParseResult::kInvalid) << ext.type;
  }
  // The same type again, far apart, after many others.
  Hello h = Typical();
  for (uint16_t t = 100; t < 1100; ++t) h.extensions.push_back(Opaque(t, ""));
  ASSERT_EQ(Parse(Wire(h)), ParseResult::kDone);
  h.extensions.push_back(Opaque(65535, ""));
  ASSERT_EQ(Parse(Wire(h)), ParseResult::kDone);
  h.extensions.push_back(Opaque(100, ""));
  EXPECT_EQ(Parse(Wire(h)), ParseResult::kInvalid);
}

ParseResult ParseWithSni(Extension sni, ClientHelloInfo* info) {
  Hello h = Typical();
  h.extensions[1] = std::move(sni);
  return Parse(Wire(h), info);
}

TEST(ClientHelloTest, ServerNameLowerCased) {
  ClientHelloInfo info;
  ASSERT_EQ(ParseWithSni(Sni("Foo.EXAMPLE.Com"), &info), ParseResult::kDone);
  EXPECT_EQ(info.server_name, "foo.example.com");
}

TEST(ClientHelloTest, ServerNames) {
  ClientHelloInfo info;
  for (const std::string& ok :
       {std::string("a"), std::string("x-1_2.example"), std::string("127.0.0.1"),
        // 255 bytes, labels of 63.
        std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
            std::string(63, 'd')}) {
    ASSERT_EQ(ParseWithSni(Sni(ok), &info), ParseResult::kDone) << ok;
    EXPECT_EQ(info.server_name, ok);
  }
  for (const std::string& bad :
       {std::string(""), std::string(256, 'a'), std::string(".a"), std::string("a."),
        std::string("a..b"), std::string("."), std::string("a b"), std::string("a\0b", 3),
        std::string("a:b"), std::string("[::1]"), std::string("a/b"), std::string("\xc3\xa9"),
        std::string("a\nb")}) {
    EXPECT_EQ(ParseWithSni(Sni(bad), &info), ParseResult::kInvalid) << bad;
    EXPECT_EQ(info.server_name, "");
  }
}

TEST(ClientHelloTest, ServerNameTypes) {
  ClientHelloInfo info;
  // An unknown name type first: skipped, the host_name after it taken.
  ASSERT_EQ(ParseWithSni(Sni({{7, "opaque"}, {0, "b.example"}}), &info), ParseResult::kDone);
  EXPECT_EQ(info.server_name, "b.example");
  // Only an unknown name type: no server name.
  ASSERT_EQ(ParseWithSni(Sni({{7, "opaque"}}), &info), ParseResult::kDone);
  EXPECT_EQ(info.server_name, "");
  // Two host_names (RFC 6066: at most one name per type).
  EXPECT_EQ(ParseWithSni(Sni({{0, "a.example"}, {0, "b.example"}}), &info), ParseResult::kInvalid);
}

TEST(ClientHelloTest, AlpnBytesKeptAsSent) {
  Hello h = Typical();
  h.extensions[3] = Alpn({"h3", std::string("\0\xff", 2), std::string(255, 'p')});
  ClientHelloInfo info;
  ASSERT_EQ(Parse(Wire(h), &info), ParseResult::kDone);
  EXPECT_THAT(info.alpn, ElementsAre("h3", std::string("\0\xff", 2), std::string(255, 'p')));
}

TEST(ClientHelloTest, TooLarge) {
  const Bytes wire = Wire(Typical());
  // Exactly max_size bytes fit; one fewer does not.
  EXPECT_EQ(Parse(wire, nullptr, wire.size()), ParseResult::kDone);
  ClientHelloInfo info;
  EXPECT_EQ(Parse(wire, &info, wire.size() - 1), ParseResult::kTooLarge);
  EXPECT_TRUE(info.tls);
  // Decided from the handshake header alone, before the body arrives.
  EXPECT_EQ(Parse(Bytes(wire.begin(), wire.begin() + 9), nullptr, wire.size() - 1),
            ParseResult::kTooLarge);
  EXPECT_EQ(Parse(Bytes(wire.begin(), wire.begin() + 8), nullptr, wire.size() - 1),
            ParseResult::kNeedMore);
  // Record headers count: fragmented, the same message needs more room.
  const Bytes fragmented = Wire(Typical(), 10);
  EXPECT_EQ(Parse(fragmented, nullptr, fragmented.size()), ParseResult::kDone);
  EXPECT_EQ(Parse(fragmented, nullptr, fragmented.size() - 1), ParseResult::kTooLarge);
  // A 16 MiB handshake length against the default limit.
  EXPECT_EQ(Parse(Bytes{22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff}), ParseResult::kTooLarge);
}

TEST(ClientHelloTest, NeverNeedsMoreThanMaxSize) {
  // Whatever the fragmentation, once max_size bytes are in, the answer is final: a caller that
  // buffers max_size bytes never waits for more.
  Hello h = Typical();
  h.extensions.push_back(Opaque(21, std::string(3000, '\0')));
  const Bytes message = Message(h).bytes();
  for (size_t fragment : {1, 2, 5, 100, 4096}) {
    const Bytes wire = Records(message, fragment);
    for (size_t max : {size_t{1}, size_t{5}, size_t{9}, size_t{100}, size_t{1000}, wire.size() - 1,
                       wire.size()}) {
      const ParseResult r = Parse(Bytes(wire.begin(), wire.begin() + max), nullptr, max);
      EXPECT_NE(r, ParseResult::kNeedMore) << fragment << " " << max;
      EXPECT_EQ(r, max == wire.size() ? ParseResult::kDone : ParseResult::kTooLarge)
          << fragment << " " << max;
    }
  }
}

// --- A real client's ClientHello -------------------------------------------------------------

constexpr char kOpenssl[] = "/usr/bin/openssl";

// An openssl s_client process and the sockets it talks to; the destructor closes the sockets
// and kills and reaps the child, whatever the test did.
class SClient {
 public:
  ~SClient() {
    if (conn_ >= 0) close(conn_);
    if (listener_ >= 0) close(listener_);
    if (pid_ > 0) {
      // The child may be waiting for a ServerHello that never comes; it has not been reaped,
      // so the pid is still ours to signal.
      kill(pid_, SIGKILL);
      int status;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }

  // Listens on 127.0.0.1, port 0, and starts s_client against it with `args`.
  void Start(const std::vector<std::string>& args) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(listen(listener_, 1), 0);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);

    std::vector<std::string> argv_strings = {kOpenssl, "s_client", "-connect",
                                             "127.0.0.1:" + std::to_string(ntohs(addr.sin_port))};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    // stdin, stdout and stderr on /dev/null: no terminal to wait on, nothing in the test log.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, kOpenssl, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0);
  }

  // Accepts the client's connection and reads until the parser gives an answer or the
  // deadline passes (then fails).
  void Capture(ClientHelloInfo* info, ParseResult* result, Bytes* bytes) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto wait = [&](int fd) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      return left.count() > 0 && poll(&p, 1, static_cast<int>(left.count())) == 1;
    };
    ASSERT_TRUE(wait(listener_)) << "s_client did not connect";
    conn_ = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn_, 0);
    *result = ParseResult::kNeedMore;
    while (*result == ParseResult::kNeedMore) {
      ASSERT_TRUE(wait(conn_)) << "no complete ClientHello in time after " << bytes->size();
      uint8_t buf[4096];
      const ssize_t n = read(conn_, buf, sizeof(buf));
      ASSERT_GT(n, 0) << "connection closed after " << bytes->size() << " bytes";
      bytes->insert(bytes->end(), buf, buf + n);
      *result = ParseClientHello(*bytes, info);
    }
  }

 private:
  int listener_ = -1;
  int conn_ = -1;
  pid_t pid_ = -1;
};

// Takes the handshake message out of a captured first flight.
Bytes MessageOf(const Bytes& wire) {
  Bytes message;
  size_t pos = 0;
  while (pos + 5 <= wire.size()) {
    const size_t n = (size_t{wire[pos + 3]} << 8) | wire[pos + 4];
    message.insert(message.end(), wire.begin() + pos + 5,
                   wire.begin() + std::min(wire.size(), pos + 5 + n));
    pos += 5 + n;
  }
  const size_t size = 4 + ((size_t{message[1]} << 16) | (size_t{message[2]} << 8) | message[3]);
  message.resize(std::min(size, message.size()));
  return message;
}

TEST(ClientHelloTest, OpensslSClient) {
  if (access(kOpenssl, X_OK) != 0) GTEST_SKIP() << kOpenssl << " is missing";
  SClient client;
  ASSERT_NO_FATAL_FAILURE(client.Start({"-servername", "foo.example.com", "-alpn", "h2,http/1.1"}));
  ClientHelloInfo info;
  ParseResult result;
  Bytes bytes;
  ASSERT_NO_FATAL_FAILURE(client.Capture(&info, &result, &bytes));
  ASSERT_EQ(result, ParseResult::kDone);
  EXPECT_TRUE(info.tls);
  EXPECT_EQ(info.server_name, "foo.example.com");
  EXPECT_THAT(info.alpn, ElementsAre("h2", "http/1.1"));
  EXPECT_EQ(info.legacy_version, 0x0303);
  EXPECT_TRUE(info.has_supported_versions_13);

  // The same ClientHello fragmented, and every prefix of it.
  const Bytes message = MessageOf(bytes);
  for (size_t fragment : {1, 2, 3, 100}) {
    ClientHelloInfo again;
    ASSERT_EQ(Parse(Records(message, fragment), &again), ParseResult::kDone) << fragment;
    EXPECT_EQ(again.server_name, "foo.example.com");
    EXPECT_THAT(again.alpn, ElementsAre("h2", "http/1.1"));
  }
  ExpectPrefixesNeedMore(Records(message), ParseResult::kDone);
}

TEST(ClientHelloTest, OpensslSClientTls12WithoutAlpn) {
  if (access(kOpenssl, X_OK) != 0) GTEST_SKIP() << kOpenssl << " is missing";
  SClient client;
  ASSERT_NO_FATAL_FAILURE(client.Start({"-servername", "Bar.Example.NET", "-tls1_2"}));
  ClientHelloInfo info;
  ParseResult result;
  Bytes bytes;
  ASSERT_NO_FATAL_FAILURE(client.Capture(&info, &result, &bytes));
  ASSERT_EQ(result, ParseResult::kDone);
  EXPECT_EQ(info.server_name, "bar.example.net");
  EXPECT_THAT(info.alpn, IsEmpty());
  EXPECT_FALSE(info.has_supported_versions_13);
}

}  // namespace
}  // namespace sluice::tls
