"""`cmake --install` and an out-of-tree plugin: install into a temporary prefix, build a plugin
with only the installed files (pkg-config sluice-plugin: the ABI header and the C++ SDK), and
load it — and an installed first-party plugin — into the installed binary."""

import os
import shutil
import subprocess
import textwrap
import unittest

import harness
from harness import http_request as req

BUILD_DIR = os.environ.get("SLUICE_BUILD_DIR", os.path.join(harness.repo_root(), "build"))

PLUGIN_SOURCE = textwrap.dedent("""\
    // Built out of tree: nothing but the installed sluice-plugin files.
    #include "sluice/sdk/filter.h"

    namespace {
    class Hello : public sluice::sdk::Filter {
     public:
      sl_type_action onResponseHeaders(sluice::sdk::Stream& s, bool) override {
        s.responseHeaders().set("x-out-of-tree", "hello");
        return SL_ACTION_CONTINUE;
      }
    };
    class HelloConfig : public sluice::sdk::FilterConfig {
     public:
      static std::unique_ptr<HelloConfig> create(sluice::sdk::ConfigContext&) {
        return std::make_unique<HelloConfig>();
      }
      std::unique_ptr<sluice::sdk::Filter> newFilter(sluice::sdk::Stream&) override {
        return std::make_unique<Hello>();
      }
    };
    }  // namespace

    SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<HelloConfig>("hello"))
    """)


HARNESS_TEST_SOURCE = textwrap.dedent("""\
    // Built out of tree from the install prefix: the installed plugin test harness drives the
    // installed header_mutation plugin, no proxy running.
    #include <cstdio>

    #include "sluice/plugin_test/harness.h"

    int main() {
      sluice::plugin_test::Host host;
      std::string error;
      auto* plugin = host.load(PLUGIN_DIR "/header_mutation.so", &error);
      if (plugin == nullptr) {
        std::printf("load: %s\\n", error.c_str());
        return 1;
      }
      sluice::plugin_test::Chain chain(host);
      error = chain.add(plugin, "header_mutation", "request: {set: [{name: x-a, value: b}]}");
      if (!error.empty()) {
        std::printf("config: %s\\n", error.c_str());
        return 1;
      }
      auto stream = chain.newStream();
      stream->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}});
      std::printf("x-a=%s\\n", stream->requestHeader("x-a").c_str());
      return stream->requestHeader("x-a") == "b" ? 0 : 1;
    }
    """)

HARNESS_TEST_CMAKE = textwrap.dedent("""\
    cmake_minimum_required(VERSION 3.20)
    project(harness_user LANGUAGES CXX)
    find_package(SluicePlugin 1 REQUIRED COMPONENTS test_harness)
    add_executable(harness_user harness_user.cc)
    target_link_libraries(harness_user PRIVATE SluicePlugin::test_harness)
    target_compile_definitions(harness_user PRIVATE PLUGIN_DIR="${SluicePlugin_PLUGIN_DIR}")
    """)


class InstallTest(harness.SluiceTestCase):

    def run_ok(self, cmd, env=None):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
        self.assertEqual(0, p.returncode, "%s\n%s\n%s" % (" ".join(cmd), p.stdout, p.stderr))
        return p.stdout

    def test_install_then_build_and_load_a_plugin_out_of_tree(self):
        prefix = os.path.join(self.tmpdir, "prefix")
        self.run_ok(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
        sluice = os.path.join(prefix, "bin", "sluice")
        self.assertTrue(os.access(sluice, os.X_OK))
        pc_dirs = [os.path.join(root, d) for root, dirs, _ in os.walk(prefix) for d in dirs
                   if d == "pkgconfig"]
        self.assertEqual(1, len(pc_dirs), pc_dirs)
        env = dict(os.environ, PKG_CONFIG_PATH=pc_dirs[0])
        flags = self.run_ok(["pkg-config", "--cflags", "--libs", "sluice-plugin"], env=env).split()
        plugin_dir = self.run_ok(["pkg-config", "--variable=plugindir", "sluice-plugin"],
                                 env=env).strip()
        self.assertTrue(os.path.isfile(os.path.join(plugin_dir, "header_mutation.so")),
                        "first-party plugins not installed in %s" % plugin_dir)

        src = os.path.join(self.tmpdir, "hello.cc")
        with open(src, "w") as f:
            f.write(PLUGIN_SOURCE)
        out_dir = os.path.join(self.tmpdir, "my-plugins")
        os.mkdir(out_dir)
        so = os.path.join(out_dir, "hello.so")
        # C++17 on purpose: the SDK must not need what sluice itself is built with.
        self.run_ok(["c++", "-std=c++17", "-O1", "-Wall", "-Werror"] + flags +
                    ["-o", so, src], env=env)

        chain = [{"plugin": {"filter": "hello"}},
                 {"plugin": {"filter": "header_mutation", "typedConfig": {
                     "@type": "type.googleapis.com/"
                              "sluice.extensions.header_mutation.v1.HeaderMutation",
                     "response": {"set": [{"name": "x-installed", "value": "yes"}]}}}},
                 harness.direct_response_filter()]
        config = harness.http_config([harness.http_listener("web", filters=chain)],
                                     bootstrap_extra={"pluginDirs": [out_dir]})
        s = self.start_sluice(config, binary=sluice)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/"))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("hello", r.get("x-out-of-tree"))
        self.assertEqual("yes", r.get("x-installed"))
        # header_mutation came from the installed directory.
        self.assertIn(os.path.realpath(plugin_dir) + "/header_mutation.so loaded", s.logs())

    def test_plugin_test_harness_from_the_install_prefix(self):
        prefix = os.path.join(self.tmpdir, "prefix")
        self.run_ok(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
        self.assertEqual(1, len([f for _, _, files in os.walk(prefix) for f in files
                                 if f == "harness.h"]))
        src = os.path.join(self.tmpdir, "harness_user")
        os.mkdir(src)
        with open(os.path.join(src, "harness_user.cc"), "w") as f:
            f.write(HARNESS_TEST_SOURCE)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write(HARNESS_TEST_CMAKE)
        build = os.path.join(self.tmpdir, "harness_user_build")
        self.run_ok(["cmake", "-S", src, "-B", build, "-DCMAKE_PREFIX_PATH=" + prefix,
                     "-DCMAKE_CXX_FLAGS=-Wall -Werror"])
        self.run_ok(["cmake", "--build", build])
        out = self.run_ok([os.path.join(build, "harness_user")], env=harness.sanitizer_env())
        self.assertIn("x-a=b", out)


if __name__ == "__main__":
    harness.main()
