// A plugin linked into the test binary itself (its hooks exported from the executable) rather
// than loaded from a .so: Host::linked() finds its hooks in the process.

#include <cstring>

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {
sl_type_str S(const char* s) { return sl_type_str{s, std::strlen(s)}; }
}  // namespace

extern "C" {
SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }
SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str,
                                          sl_type_str config, void** config_out) {
  if (config.len != 2) {  // "{}": no config given
    sl_host_config_error(host, S("takes no config"));
    return SL_ERR_INVALID;
  }
  *config_out = nullptr;
  return SL_OK;
}
SL_EXPORT sl_type_action sl_on_request_headers(void*, sl_type_stream* stream, int) {
  sl_host_header_set(stream, SL_HEADERS_REQUEST, S("x-linked"), S("yes"));
  return SL_ACTION_CONTINUE;
}
}

namespace {

TEST(HarnessLinkedTest, HooksFromTheTestBinary) {
  sluice::plugin_test::Host host;
  std::string error;
  auto* plugin = host.linked("linked", &error);
  ASSERT_NE(nullptr, plugin) << error;
  EXPECT_EQ(SL_ABI_VERSION, plugin->abiVersion());
  sluice::plugin_test::Chain chain(host);
  ASSERT_EQ("", chain.add(plugin, "linked"));
  auto s = chain.newStream();
  s->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}});
  EXPECT_EQ("yes", s->requestHeader("x-linked"));

  sluice::plugin_test::Chain refused(host);
  EXPECT_NE(std::string::npos, refused.add(plugin, "linked", "a: 1").find("takes no config"));
}

}  // namespace
