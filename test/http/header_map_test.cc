#include "source/http/header_map.h"

#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::http {
namespace {

using ::testing::Test;

std::vector<std::pair<std::string, std::string>> Dump(const HeaderMap& map) {
  std::vector<std::pair<std::string, std::string>> out;
  map.forEach([&](const HeaderMap::Entry& e) {
    out.emplace_back(std::string(e.name), std::string(e.value));
    return true;
  });
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(KnownHeaderTest, NamesRoundTrip) {
  for (size_t i = 0; i < static_cast<size_t>(KnownHeader::kCount); ++i) {
    const auto h = static_cast<KnownHeader>(i);
    const std::string_view name = KnownHeaderName(h);
    ASSERT_FALSE(name.empty());
    EXPECT_EQ(LookupKnownHeader(name), h) << name;
    std::string upper(name);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(LookupKnownHeader(upper), h) << upper;
    // One byte off anywhere: not a match.
    for (size_t k = 0; k < name.size(); ++k) {
      std::string off(name);
      off[k] = off[k] == 'z' ? 'y' : static_cast<char>(off[k] + 1);
      EXPECT_EQ(LookupKnownHeader(off), KnownHeader::kCount) << off;
    }
    EXPECT_EQ(LookupKnownHeader(std::string(name) + "x"), KnownHeader::kCount);
    EXPECT_EQ(LookupKnownHeader(name.substr(1)), KnownHeader::kCount);
  }
  EXPECT_EQ(KnownHeaderName(KnownHeader::kCount), "");
}

TEST(KnownHeaderTest, MixedCaseAndLookalikes) {
  EXPECT_EQ(LookupKnownHeader("Content-Length"), KnownHeader::kContentLength);
  EXPECT_EQ(LookupKnownHeader("cOnTeNt-LeNgTh"), KnownHeader::kContentLength);
  EXPECT_EQ(LookupKnownHeader("TE"), KnownHeader::kTe);
  EXPECT_EQ(LookupKnownHeader("X-Forwarded-Proto"), KnownHeader::kXForwardedProto);
  EXPECT_EQ(LookupKnownHeader("Transfer-Encoding"), KnownHeader::kTransferEncoding);
  EXPECT_EQ(LookupKnownHeader(""), KnownHeader::kCount);
  EXPECT_EQ(LookupKnownHeader("x"), KnownHeader::kCount);
  // Case folding must be ASCII letters only: CR | 0x20 == '-', which a sloppy fold would accept.
  EXPECT_EQ(LookupKnownHeader("content\rlength"), KnownHeader::kCount);
  EXPECT_EQ(LookupKnownHeader("content\x0dlength"), KnownHeader::kCount);
  EXPECT_EQ(LookupKnownHeader("keep\ralive"), KnownHeader::kCount);
  // 0xC8 ('H' | 0x80) must not fold to 'h'.
  EXPECT_EQ(LookupKnownHeader("\xC8ost"), KnownHeader::kCount);
  EXPECT_EQ(LookupKnownHeader("content_length"), KnownHeader::kCount);
}

TEST(HeaderNameEqualsTest, Basics) {
  EXPECT_TRUE(HeaderNameEquals("X-Foo", "x-foo"));
  EXPECT_TRUE(HeaderNameEquals("", ""));
  EXPECT_FALSE(HeaderNameEquals("x-foo", "x-fo"));
  EXPECT_FALSE(HeaderNameEquals("x-foo", "x_foo"));
  EXPECT_FALSE(HeaderNameEquals("a\r", "a-"));
  EXPECT_FALSE(HeaderNameEquals("\xC1", "\xE1"));
}

TEST(HeaderMapTest, AddGetCount) {
  HeaderMap map;
  EXPECT_TRUE(map.empty());
  map.add("Host", "example.com");
  map.add("X-Foo", "1");
  map.add("x-foo", "2");
  map.add("Content-Length", "5");
  EXPECT_EQ(map.size(), 4u);
  EXPECT_FALSE(map.empty());
  ASSERT_NE(map.get("host"), nullptr);
  EXPECT_EQ(map.get("HOST")->value, "example.com");
  EXPECT_EQ(map.get("HOST")->name, "Host");  // the case it arrived in
  EXPECT_EQ(map.get(KnownHeader::kHost)->value, "example.com");
  EXPECT_EQ(map.get(KnownHeader::kHost)->known, KnownHeader::kHost);
  EXPECT_EQ(map.get("X-FOO")->value, "1");
  EXPECT_EQ(map.get("x-foo")->known, KnownHeader::kCount);
  EXPECT_EQ(map.count("X-Foo"), 2u);
  EXPECT_EQ(map.count(KnownHeader::kContentLength), 1u);
  EXPECT_EQ(map.count("content-length"), 1u);
  EXPECT_EQ(map.count(KnownHeader::kTransferEncoding), 0u);
  EXPECT_EQ(map.get(KnownHeader::kTransferEncoding), nullptr);
  EXPECT_EQ(map.get("missing"), nullptr);
  EXPECT_EQ(map.count("missing"), 0u);
  EXPECT_EQ(map.getAll("x-foo"), (std::vector<std::string_view>{"1", "2"}));
  EXPECT_EQ(map.getAll("missing"), std::vector<std::string_view>{});
  EXPECT_EQ(map.byteSize(), 4u + 11 + 5 + 1 + 5 + 1 + 14 + 1);
  EXPECT_EQ(
      Dump(map),
      (Fields{{"Host", "example.com"}, {"X-Foo", "1"}, {"x-foo", "2"}, {"Content-Length", "5"}}));
}

TEST(HeaderMapTest, AddCopies) {
  HeaderMap map;
  std::string name = "X-Name";
  std::string value = "value";
  map.add(name, value);
  name.assign("garbage");
  value.assign("GARBAGE");
  EXPECT_EQ(map.get("x-name")->value, "value");
  EXPECT_EQ(Dump(map), (Fields{{"X-Name", "value"}}));
  // Large values get their own block; many small ones share blocks.
  const std::string big(5000, 'b');
  map.add("X-Big", big);
  for (int i = 0; i < 500; ++i) {
    map.add("X-" + std::to_string(i), std::to_string(i * 7));
  }
  EXPECT_EQ(map.get("x-big")->value, big);
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(map.get("x-" + std::to_string(i))->value, std::to_string(i * 7));
  }
}

TEST(HeaderMapTest, EmptyNameIgnoredEmptyValueKept) {
  HeaderMap map;
  map.add("", "x");
  map.addReference("", "y");
  map.set("", "z");
  EXPECT_TRUE(map.empty());
  map.add("X-Empty", "");
  EXPECT_EQ(map.size(), 1u);
  ASSERT_NE(map.get("x-empty"), nullptr);
  EXPECT_EQ(map.get("x-empty")->value, "");
}

TEST(HeaderMapTest, SetReplacesAtFirstPosition) {
  HeaderMap map;
  map.add("A", "1");
  map.add("X-Dup", "first");
  map.add("B", "2");
  map.add("x-dup", "second");
  map.add("C", "3");
  map.set("X-DUP", "only");
  EXPECT_EQ(Dump(map), (Fields{{"A", "1"}, {"X-DUP", "only"}, {"B", "2"}, {"C", "3"}}));
  EXPECT_EQ(map.count("x-dup"), 1u);
  EXPECT_EQ(map.size(), 4u);
  map.set("D", "4");  // absent: appended
  EXPECT_EQ(Dump(map).back(), (std::pair<std::string, std::string>{"D", "4"}));
  EXPECT_EQ(map.byteSize(), 2u + 2 + 2 + 2 + 5 + 4);
}

TEST(HeaderMapTest, SetKnownHeader) {
  HeaderMap map;
  map.add("X-A", "a");
  map.add("Content-Length", "1");
  map.add("X-B", "b");
  map.add("content-length", "2");
  map.set("CONTENT-LENGTH", "3");
  EXPECT_EQ(map.count(KnownHeader::kContentLength), 1u);
  EXPECT_EQ(map.get(KnownHeader::kContentLength)->value, "3");
  EXPECT_EQ(Dump(map), (Fields{{"X-A", "a"}, {"CONTENT-LENGTH", "3"}, {"X-B", "b"}}));
  map.set("Via", "1.1 sluice");
  EXPECT_EQ(map.get(KnownHeader::kVia)->value, "1.1 sluice");
  EXPECT_EQ(map.count(KnownHeader::kVia), 1u);
}

TEST(HeaderMapTest, SetFromOwnValue) {
  HeaderMap map;
  map.add("X-A", "hello");
  map.add("X-A", "world");
  const std::string_view v = map.get("x-a")->value;  // view into the map's arena
  map.set("x-a", v);
  EXPECT_EQ(map.get("x-a")->value, "hello");
  EXPECT_EQ(map.count("x-a"), 1u);
}

TEST(HeaderMapTest, Remove) {
  HeaderMap map;
  map.add("A", "1");
  map.add("Connection", "close");
  map.add("X-Foo", "a");
  map.add("connection", "keep-alive");
  map.add("x-foo", "b");
  EXPECT_EQ(map.remove("X-FOO"), 2u);
  EXPECT_EQ(map.remove("x-foo"), 0u);
  EXPECT_EQ(map.remove(KnownHeader::kConnection), 2u);
  EXPECT_EQ(map.remove(KnownHeader::kConnection), 0u);
  EXPECT_EQ(map.remove("nothing"), 0u);
  EXPECT_EQ(Dump(map), (Fields{{"A", "1"}}));
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(map.byteSize(), 2u);
  EXPECT_EQ(map.get(KnownHeader::kConnection), nullptr);
  EXPECT_EQ(map.count(KnownHeader::kConnection), 0u);
  // Entries keep holes: encoders skip them.
  size_t live = 0;
  for (const auto& e : map.entries()) {
    if (!e.name.empty()) ++live;
  }
  EXPECT_EQ(live, 1u);
  // Re-adding after a remove puts the new field at the end and its slot at it.
  map.add("Connection", "upgrade");
  EXPECT_EQ(map.get(KnownHeader::kConnection)->value, "upgrade");
  EXPECT_EQ(Dump(map), (Fields{{"A", "1"}, {"Connection", "upgrade"}}));
  EXPECT_EQ(map.remove("connection"), 1u);  // by name: goes through the slot
}

TEST(HeaderMapTest, Clear) {
  HeaderMap map;
  map.add("Host", "h");
  map.add("X", "y");
  map.clear();
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.byteSize(), 0u);
  EXPECT_EQ(map.get(KnownHeader::kHost), nullptr);
  EXPECT_EQ(map.count(KnownHeader::kHost), 0u);
  EXPECT_TRUE(map.entries().empty());
  map.add("Host", "again");
  EXPECT_EQ(map.get(KnownHeader::kHost)->value, "again");
}

TEST(HeaderMapTest, ForEachStops) {
  HeaderMap map;
  map.add("A", "1");
  map.add("B", "2");
  map.add("C", "3");
  map.remove("B");
  std::vector<std::string> seen;
  map.forEach([&](const HeaderMap::Entry& e) {
    seen.emplace_back(e.name);
    return false;
  });
  EXPECT_EQ(seen, std::vector<std::string>{"A"});
}

TEST(HeaderMapTest, AdoptStorageViews) {
  const std::string block = "Host: example.com\r\nX-Trace: abc\r\n";
  auto storage = std::make_unique<char[]>(block.size());
  std::memcpy(storage.get(), block.data(), block.size());
  const char* base = storage.get();
  HeaderMap map;
  map.adoptStorage(std::move(storage));
  map.addReference(std::string_view(base, 4), std::string_view(base + 6, 11));
  map.addReference(std::string_view(base + 19, 7), std::string_view(base + 28, 3));
  EXPECT_EQ(map.get(KnownHeader::kHost)->value, "example.com");
  EXPECT_EQ(map.get(KnownHeader::kHost)->value.data(), base + 6);  // no copy
  EXPECT_EQ(map.get("x-trace")->name.data(), base + 19);
  EXPECT_EQ(map.byteSize(), 4u + 11 + 7 + 3);

  // Moving the map moves the storage with it; the views stay valid and the source is empty.
  HeaderMap moved(std::move(map));
  EXPECT_EQ(moved.get(KnownHeader::kHost)->value.data(), base + 6);
  EXPECT_EQ(moved.get("X-Trace")->value, "abc");
  EXPECT_TRUE(map.empty());  // NOLINT(bugprone-use-after-move): defined to be empty
  EXPECT_EQ(map.get(KnownHeader::kHost), nullptr);
  EXPECT_EQ(map.byteSize(), 0u);
  map.add("Host", "reused");  // a moved-from map is reusable
  EXPECT_EQ(map.get(KnownHeader::kHost)->value, "reused");
  EXPECT_EQ(moved.get(KnownHeader::kHost)->value, "example.com");

  HeaderMap assigned;
  assigned.add("X-Old", "gone");
  assigned = std::move(moved);
  EXPECT_EQ(assigned.get("x-old"), nullptr);
  EXPECT_EQ(assigned.get(KnownHeader::kHost)->value.data(), base + 6);
  EXPECT_TRUE(moved.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(HeaderMapTest, MovedMapArenaNotShared) {
  HeaderMap a;
  a.add("X-A", "aaaa");  // arena block with room left
  HeaderMap b(std::move(a));
  a.add("X-B", "bbbb");  // must not write into b's block
  b.add("X-C", "cccc");
  EXPECT_EQ(a.get("x-b")->value, "bbbb");
  EXPECT_EQ(b.get("x-a")->value, "aaaa");
  EXPECT_EQ(b.get("x-c")->value, "cccc");
}

TEST(HeaderMapTest, CompactionKeepsOrderAndSlots) {
  HeaderMap map;
  for (int i = 0; i < 100; ++i) {
    map.add("X-Tmp", std::to_string(i));
    if (i % 2 == 0) {
      // (std::to_string appended, not "h" + ...: GCC 12 warns falsely on that with -O3.)
      std::string value = "h";
      value += std::to_string(i);
      map.add("Host", value);
    }
  }
  map.add("X-Keep", "k");
  EXPECT_EQ(map.remove("x-tmp"), 100u);
  // The holes outnumber the live entries, so the vector was compacted.
  EXPECT_EQ(map.entries().size(), map.size());
  EXPECT_EQ(map.count(KnownHeader::kHost), 50u);
  EXPECT_EQ(map.get(KnownHeader::kHost)->value, "h0");
  map.set("host", "one");
  EXPECT_EQ(map.count(KnownHeader::kHost), 1u);
  EXPECT_EQ(Dump(map), (Fields{{"host", "one"}, {"X-Keep", "k"}}));
}

// A naive model: a vector of (name, value), searched linearly with a lowercase compare.
class NaiveMap {
 public:
  static std::string Lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  }
  void add(std::string_view n, std::string_view v) { fields_.emplace_back(n, v); }
  void set(std::string_view n, std::string_view v) {
    const std::string key = Lower(n);
    bool done = false;
    Fields out;
    for (auto& f : fields_) {
      if (Lower(f.first) != key) {
        out.push_back(f);
      } else if (!done) {
        out.emplace_back(n, v);
        done = true;
      }
    }
    if (!done) out.emplace_back(n, v);
    fields_ = std::move(out);
  }
  size_t remove(std::string_view n) {
    const std::string key = Lower(n);
    const size_t before = fields_.size();
    std::erase_if(fields_, [&](const auto& f) { return Lower(f.first) == key; });
    return before - fields_.size();
  }
  const std::pair<std::string, std::string>* get(std::string_view n) const {
    const std::string key = Lower(n);
    for (const auto& f : fields_) {
      if (Lower(f.first) == key) return &f;
    }
    return nullptr;
  }
  std::vector<std::string> getAll(std::string_view n) const {
    std::vector<std::string> out;
    for (const auto& f : fields_) {
      if (Lower(f.first) == Lower(n)) out.push_back(f.second);
    }
    return out;
  }
  size_t bytes() const {
    size_t n = 0;
    for (const auto& f : fields_) n += f.first.size() + f.second.size();
    return n;
  }
  const Fields& fields() const { return fields_; }
  void clear() { fields_.clear(); }

 private:
  Fields fields_;
};

TEST(HeaderMapTest, RandomizedAgainstNaiveModel) {
  const std::vector<std::string> names = {"Host",
                                          "host",
                                          "HOST",
                                          "Content-Length",
                                          "content-length",
                                          "Transfer-Encoding",
                                          "TE",
                                          "te",
                                          "Connection",
                                          "X-Forwarded-For",
                                          "x-forwarded-for",
                                          "Via",
                                          "X-Custom",
                                          "x-custom",
                                          "X-Other",
                                          "Cookie",
                                          "Date",
                                          "Server",
                                          "Trailer",
                                          "Upgrade",
                                          "Keep-Alive",
                                          "Proxy-Connection",
                                          "Expect",
                                          "Content-Type",
                                          "X-Forwarded-Proto"};
  std::mt19937 rng(12345);
  for (int round = 0; round < 40; ++round) {
    HeaderMap map;
    NaiveMap model;
    for (int step = 0; step < 400; ++step) {
      const std::string& name = names[rng() % names.size()];
      const std::string value = "v" + std::to_string(rng() % 1000);
      switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
        case 3:
          map.add(name, value);
          model.add(name, value);
          break;
        case 4:
        case 5:
          map.set(name, value);
          model.set(name, value);
          break;
        case 6:
        case 7: {
          const KnownHeader known = LookupKnownHeader(name);
          const size_t removed =
              (known != KnownHeader::kCount && rng() % 2) ? map.remove(known) : map.remove(name);
          ASSERT_EQ(removed, model.remove(name));
          break;
        }
        case 8:
          if (rng() % 20 == 0) {
            map.clear();
            model.clear();
          }
          break;
        default: {
          HeaderMap moved(std::move(map));
          map = std::move(moved);
          break;
        }
      }
      ASSERT_EQ(map.size(), model.fields().size());
      ASSERT_EQ(map.byteSize(), model.bytes());
      ASSERT_EQ(Dump(map), model.fields());
      for (const std::string& n : names) {
        const auto* expected = model.get(n);
        const auto* got = map.get(n);
        ASSERT_EQ(got == nullptr, expected == nullptr) << n;
        if (got != nullptr) {
          ASSERT_EQ(got->value, expected->second) << n;
          ASSERT_EQ(got->name, expected->first) << n;
        }
        const auto all = model.getAll(n);
        ASSERT_EQ(map.count(n), all.size()) << n;
        const auto got_all = map.getAll(n);
        ASSERT_EQ(std::vector<std::string>(got_all.begin(), got_all.end()), all) << n;
        const KnownHeader known = LookupKnownHeader(n);
        if (known != KnownHeader::kCount) {
          ASSERT_EQ(map.count(known), all.size()) << n;
          const auto* by_slot = map.get(known);
          ASSERT_EQ(by_slot == nullptr, expected == nullptr);
          if (by_slot != nullptr) {
            ASSERT_EQ(by_slot->value, expected->second);
          }
        }
      }
    }
  }
}

TEST(HeaderMapTest, AtIndexesLiveFieldsAfterRemovals) {
  HeaderMap map;
  map.add("a", "1");
  map.add("Host", "h");
  map.add("b", "2");
  map.add("c", "3");
  map.add("b", "4");
  const std::string_view c_value = map.get("c")->value;
  EXPECT_EQ(map.remove("b"), 2u);
  ASSERT_EQ(map.size(), 3u);
  // Holes are squeezed out on the first at(): indexes are field positions, views still valid.
  EXPECT_EQ(map.at(0).name, "a");
  EXPECT_EQ(map.at(1).name, "Host");
  EXPECT_EQ(map.at(2).name, "c");
  EXPECT_EQ(map.entries().size(), 3u);
  EXPECT_EQ(c_value, "3");
  // Known-header slots follow the compaction.
  ASSERT_NE(map.get(KnownHeader::kHost), nullptr);
  EXPECT_EQ(map.get(KnownHeader::kHost)->value, "h");
  map.set("Host", "h2");
  EXPECT_EQ(map.at(1).value, "h2");
  map.add("d", "5");
  EXPECT_EQ(map.at(3).name, "d");
}

}  // namespace
}  // namespace sluice::http
