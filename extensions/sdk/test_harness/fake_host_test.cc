// The fake host is complete: every sl_host_* function the ABI header declares is defined (and
// exported) by the harness library, in the header's order in fake_host.cc, so that a plugin
// calling a host function added to the header cannot load into the harness before the fake has
// it. Also: the harness exports nothing of sluice's own code.

#include <dlfcn.h>

#include <cctype>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Word(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Names of functions declared (or defined) at the start of a line: `<type> sl_host_x(`, the
// type made of words, spaces and stars. (By hand: GCC 12 warns inside <regex> under the
// sanitizers, and CI builds with -Werror.)
std::vector<std::string> HostFunctions(const std::string& text) {
  std::vector<std::string> names;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || !(std::isalpha(static_cast<unsigned char>(line[0])) || line[0] == '_')) {
      continue;
    }
    const size_t at = line.find("sl_host_");
    if (at == std::string::npos || at == 0 || Word(line[at - 1])) continue;
    bool type_only = true;
    for (size_t i = 0; i < at; ++i) {
      type_only = type_only && (Word(line[i]) || line[i] == ' ' || line[i] == '*');
    }
    size_t end = at;
    while (end < line.size() && Word(line[end])) ++end;
    if (type_only && end < line.size() && line[end] == '(') {
      names.push_back(line.substr(at, end - at));
    }
  }
  return names;
}

TEST(FakeHostTest, DefinesEveryHostFunctionOfTheHeaderInItsOrder) {
  const std::vector<std::string> declared = HostFunctions(Read(SLUICE_ABI_HEADER));
  ASSERT_GE(declared.size(), 40u);  // the parse found them
  void* lib = dlopen(SLUICE_HARNESS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(nullptr, lib) << dlerror();
  for (const std::string& name : declared) {
    EXPECT_NE(nullptr, dlsym(lib, name.c_str())) << "the harness does not define " << name;
  }
  EXPECT_EQ(declared, HostFunctions(Read(SLUICE_FAKE_HOST_SOURCE)))
      << "fake_host.cc should define the header's host functions, in the header's order";
}

TEST(FakeHostTest, ExportsOnlyHostFunctionsAndTheHarnessApi) {
  void* lib = dlopen(SLUICE_HARNESS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(nullptr, lib) << dlerror();
  // Symbols of sluice code linked inside (config parsing) stay local.
  EXPECT_EQ(nullptr,
            dlsym(lib,
                  "_ZN6sluice6config9ParseIntoESt17basic_string_viewIcSt11char_traitsIcEENS0_"
                  "6FormatES4_RN6google8protobuf7MessageEPNS0_12ValueSourcesE"));
  EXPECT_NE(nullptr, dlsym(lib, "sl_host_log"));
}

}  // namespace
