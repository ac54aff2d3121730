"""Plugins built out of tree, the way docs/plugins.md builds them: sluice is installed into a
prefix; the examples of docs/examples/plugins are built from that prefix alone — greeting (C++,
its own proto) with find_package(SluicePlugin) and sluice_add_plugin(), stamp (C) with
pkg-config — and the installed sluice runs them in front of a real origin with the example's own
greeting.yaml. Then what the package refuses: at configure time a protoc or libprotobuf of
another protobuf release than the host's, and after link a plugin with an undefined symbol or
OpenSSL's libssl.so.3.

Everything is built once (setUpClass) under <build>/out_of_tree_test, a fixed path so that ccache
hits on the next run (a temporary directory's name would be in every compile command)."""

import os
import re
import shutil
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

BUILD_DIR = os.environ.get("SLUICE_BUILD_DIR", os.path.join(harness.repo_root(), "build"))
EXAMPLES = os.path.join(harness.repo_root(), "docs", "examples", "plugins")
# Each command is bounded; a cold compile of the greeting plugin takes ~15 s on 2 cores.
COMMAND_TIMEOUT = 240


def run(cmd, env=None, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                          timeout=COMMAND_TIMEOUT, env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def run_ok(cmd, env=None, cwd=None):
    p = run(cmd, env=env, cwd=cwd)
    if p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                      p.stderr))
    return p.stdout


def cmake_configure(source, build, prefix, *extra):
    cmd = ["cmake", "-S", source, "-B", build, "-G", "Ninja",
           "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release",
           # The examples are the docs' code: keep them warning-free.
           "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror", "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror"]
    ccache = shutil.which("ccache")
    if ccache:
        cmd += ["-DCMAKE_C_COMPILER_LAUNCHER=" + ccache, "-DCMAKE_CXX_COMPILER_LAUNCHER=" + ccache]
    return run(cmd + list(extra))


class OutOfTreeTest(harness.SluiceTestCase):

    @classmethod
    def setUpClass(cls):
        cls.work = os.path.join(os.path.abspath(BUILD_DIR), "out_of_tree_test")
        shutil.rmtree(cls.work, ignore_errors=True)
        os.makedirs(cls.work)
        cls.prefix = os.path.join(cls.work, "prefix")
        run_ok(["cmake", "--install", BUILD_DIR, "--prefix", cls.prefix])
        cls.sluice = os.path.join(cls.prefix, "bin", "sluice")
        pc_dirs = [os.path.join(root, d) for root, dirs, _ in os.walk(cls.prefix) for d in dirs
                   if d == "pkgconfig"]
        assert len(pc_dirs) == 1, pc_dirs
        cls.pc_dir = pc_dirs[0]
        cls.installed_plugins = run_ok(["pkg-config", "--variable=plugindir", "sluice-plugin"],
                                       env=dict(os.environ, PKG_CONFIG_PATH=cls.pc_dir)).strip()
        package = [os.path.join(root, f) for root, _, files in os.walk(cls.prefix) for f in files
                   if f == "SluicePluginConfig.cmake"]
        assert len(package) == 1, package
        with open(package[0]) as f:
            text = f.read()
        cls.host_protobuf = re.search(r'set\(SluicePlugin_PROTOBUF_VERSION "([0-9.]+)"\)',
                                      text).group(1)

        # greeting: CMake, find_package(SluicePlugin), its own proto.
        cls.greeting_build = os.path.join(cls.work, "greeting")
        p = cmake_configure(os.path.join(EXAMPLES, "greeting"), cls.greeting_build, cls.prefix)
        assert p.returncode == 0, p.stdout + p.stderr
        run_ok(["cmake", "--build", cls.greeting_build, "-j", "2"])
        cls.greeting_dir = os.path.join(cls.greeting_build, "plugins")

        # stamp: C, its Makefile, pkg-config only.
        cls.stamp_dir = os.path.join(cls.work, "stamp")
        os.makedirs(cls.stamp_dir)
        env = dict(os.environ, PKG_CONFIG_PATH=cls.pc_dir)
        run_ok(["make", "-s", "-C", os.path.join(EXAMPLES, "stamp"), "OUT=" + cls.stamp_dir,
                "CFLAGS=-O2 -Wall -Wextra -Werror"], env=env)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def example_yaml(self, origin_port, **replace):
        """docs/examples/plugins/greeting/greeting.yaml as shipped, pointed at the plugins built
        here and the test's origin, its listener on port 0; `replace`: more (old, new) swaps."""
        with open(os.path.join(EXAMPLES, "greeting", "greeting.yaml")) as f:
            text = f.read()
        swaps = [("plugin_dirs: [build/plugins, ../stamp]",
                  "plugin_dirs: [%s, %s]" % (self.greeting_dir, self.stamp_dir)),
                 ("port: 8080", "port: 0"),
                 ("port: 8000", "port: %d" % origin_port)] + list(replace.values())
        for old, new in swaps:
            self.assertIn(old, text)
            text = text.replace(old, new)
        return text

    def validate(self, yaml_text):
        path = os.path.join(self.tmpdir, "validate.yaml")
        with open(path, "w") as f:
            f.write(yaml_text)
        return run([self.sluice, "--mode", "validate", "-c", path])

    def test_docs_show_the_example_files(self):
        """Every block of docs/plugins.md marked `<!-- example: path -->` is a verbatim part of
        that file, so that the walk-through shows the code built here."""
        with open(os.path.join(harness.repo_root(), "docs", "plugins.md")) as f:
            doc = f.read()
        blocks = re.findall(r"<!-- example: (\S+) -->\n```[a-z+]*\n(.*?)```", doc, re.S)
        self.assertGreaterEqual(len(blocks), 5)
        for path, block in blocks:
            with open(os.path.join(harness.repo_root(), path)) as f:
                self.assertIn(block, f.read(), "docs/plugins.md shows %s as:\n%s" % (path, block))

    def test_plugins_are_linked_as_promised(self):
        greeting = os.path.join(self.greeting_dir, "greeting.so")
        needed = run_ok(["readelf", "-d", greeting])
        self.assertRegex(needed, r"NEEDED.*\[libprotobuf\.so\.")
        for so in (greeting, os.path.join(self.stamp_dir, "stamp.so")):
            exported = run_ok(["nm", "-D", "--defined-only", so]).split("\n")
            names = [line.split()[-1] for line in exported if line.strip()]
            self.assertTrue(names, so)
            self.assertEqual([], [n for n in names if not n.startswith("sl_on_")], so)

    def test_examples_in_front_of_an_origin(self):
        origin = harness.HttpOrigin()
        self.addCleanup(origin.close)
        yaml_text = self.example_yaml(origin.addr[1])
        p = self.validate(yaml_text)
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        self.assertEqual("ok", p.stdout.strip())

        s = self.start_sluice(yaml_text, binary=self.sluice)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/a/b"))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("yes", r.get("x-origin"))
        self.assertEqual("hello from out of tree", r.get("x-greeting"))
        self.assertEqual(harness_abi_version(), r.get("x-stamp"))
        self.assertEqual(1, len(origin.requests))
        _, path, headers = origin.requests[0]
        self.assertEqual("/a/b", path)
        self.assertEqual("hello from out of tree", headers.get("x-greeting"))

        # reply_path: answered by the plugin itself, the origin never sees it.
        c.send(req("GET", "/hello"))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(b"hello from out of tree\n", r.body)
        self.assertEqual("hello from out of tree", r.get("x-greeting"))
        self.assertEqual(1, len(origin.requests))
        # The plugins were the ones built here, the router the installed one.
        logs = s.logs()
        for so in (os.path.join(self.greeting_dir, "greeting.so"),
                   os.path.join(self.stamp_dir, "stamp.so"),
                   os.path.join(self.installed_plugins, "router.so")):
            self.assertIn(os.path.realpath(so) + " loaded", logs)
        self.stop_sluice(s)

    def test_greeting_unit_test_through_the_installed_harness(self):
        """The docs' example test (greeting_test.cc): built from the install prefix with
        SluicePlugin::test_harness, and it passes — no proxy runs."""
        test = os.path.join(self.greeting_build, "greeting_test")
        self.assertTrue(os.access(test, os.X_OK),
                        "greeting_test not built: SluicePlugin::test_harness or GTest not found")
        out = run_ok([test], env=harness.sanitizer_env())
        self.assertIn("[  PASSED  ] 3 tests", out)

    def test_typed_config_errors(self):
        # The host checks the YAML against the type from the plugin's generated code...
        yaml_text = self.example_yaml(1, typo=("reply_path: /hello", "reply_pat: /hello"))
        line = yaml_text.split("\n").index("                  reply_pat: /hello") + 1
        p = self.validate(yaml_text)
        self.assertEqual(1, p.returncode, p.stdout + p.stderr)
        self.assertRegex(p.stdout + p.stderr,
                         r"plugin\.typed_config\.reply_pat: unknown field.* at line %d," % line)
        # ... and the plugin refuses what it cannot use, with the field path.
        p = self.validate(self.example_yaml(
            1, header=("reply_path: /hello", "header: \"bad header\"")))
        self.assertEqual(1, p.returncode, p.stdout + p.stderr)
        self.assertIn('header: "bad header" is not a field name', p.stdout + p.stderr)

    def configure_greeting(self, *extra):
        return cmake_configure(os.path.join(EXAMPLES, "greeting"),
                               os.path.join(self.tmpdir, "build"), self.prefix, *extra)

    def test_protobuf_of_another_release_is_refused_at_configure_time(self):
        major, minor, patch = (int(x) for x in self.host_protobuf.split("."))
        other = "%d.%d.%d" % (major, minor - 1 if minor > 0 else minor + 1, 0)

        # A protoc of another release (a script that says so: protoc is only asked its version
        # before the refusal).
        fake_protoc = os.path.join(self.tmpdir, "protoc")
        with open(fake_protoc, "w") as f:
            f.write("#!/bin/sh\necho 'libprotoc %s'\n" % other)
        os.chmod(fake_protoc, 0o755)
        p = self.configure_greeting("-DProtobuf_PROTOC_EXECUTABLE=" + fake_protoc)
        self.assertNotEqual(0, p.returncode, p.stdout + p.stderr)
        err = " ".join(p.stderr.split())
        self.assertIn("sluice_add_plugin(greeting): this protobuf cannot build a plugin", err)
        self.assertIn("protoc %s (%s)" % (other, fake_protoc), err)
        self.assertIn("was built with protobuf %s" % self.host_protobuf, err)
        self.assertIn("must both be protobuf %d.%d.x" % (major, minor), err)

        # libprotobuf headers of another release (FindProtobuf reads the version there).
        include = os.path.join(self.tmpdir, "include")
        os.makedirs(os.path.join(include, "google", "protobuf", "stubs"))
        with open(os.path.join(include, "google", "protobuf", "stubs", "common.h"), "w") as f:
            f.write("#define GOOGLE_PROTOBUF_VERSION %d%03d%03d\n" % tuple(
                int(x) for x in other.split(".")))
        shutil.rmtree(os.path.join(self.tmpdir, "build"))
        p = self.configure_greeting("-DProtobuf_INCLUDE_DIR=" + include)
        self.assertNotEqual(0, p.returncode, p.stdout + p.stderr)
        err = " ".join(p.stderr.split())
        self.assertIn("libprotobuf headers %s (%s)" % (other, include), err)

        # Another patch level of the same release is fine.
        with open(fake_protoc, "w") as f:
            f.write("#!/bin/sh\necho 'libprotoc %d.%d.%d'\n" % (major, minor, patch + 1))
        shutil.rmtree(os.path.join(self.tmpdir, "build"))
        p = self.configure_greeting("-DProtobuf_PROTOC_EXECUTABLE=" + fake_protoc)
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)

    def test_link_check_refuses_and_deletes(self):
        src = os.path.join(self.tmpdir, "src")
        os.makedirs(src)
        with open(os.path.join(src, "plugin.c"), "w") as f:
            f.write(textwrap.dedent("""\
                #include "sluice/plugin/v1/sluice_plugin.h"
                #ifdef CALL_MISSING
                void missing_function(void);
                #endif
                SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }
                SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host,
                                                          sl_type_str name, sl_type_str json,
                                                          void** out) {
                  (void)host; (void)name; (void)json;
                #ifdef CALL_MISSING
                  missing_function();
                #endif
                  *out = 0;
                  return SL_OK;
                }
                """))
        ssl = "/usr/lib/%s/libssl.so.3" % run_ok(["gcc", "-dumpmachine"]).strip()
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write(textwrap.dedent("""\
                cmake_minimum_required(VERSION 3.20)
                project(checks LANGUAGES C)
                find_package(SluicePlugin 1 REQUIRED)
                sluice_add_plugin(NAME fine SRCS plugin.c)
                sluice_add_plugin(NAME unresolved SRCS plugin.c)
                target_compile_definitions(unresolved PRIVATE CALL_MISSING)
                if(EXISTS "{ssl}")
                  sluice_add_plugin(NAME openssl SRCS plugin.c)
                  target_link_libraries(openssl PRIVATE -Wl,--no-as-needed "{ssl}")
                endif()
                """).replace("{ssl}", ssl))
        build = os.path.join(self.tmpdir, "build")
        p = cmake_configure(src, build, self.prefix)
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        p = run(["cmake", "--build", build, "-j", "2", "--", "-k", "0"])
        self.assertNotEqual(0, p.returncode, p.stdout + p.stderr)
        out = " ".join((p.stdout + p.stderr).split())
        plugins = os.path.join(build, "plugins")
        self.assertTrue(os.path.exists(os.path.join(plugins, "fine.so")), out)
        self.assertIn("plugin %s/unresolved.so would not load into sluice as built" % plugins, out)
        self.assertIn("1 undefined symbol(s) no linked library provides", out)
        self.assertIn("missing_function", out)
        self.assertFalse(os.path.exists(os.path.join(plugins, "unresolved.so")))
        if os.path.exists(ssl):
            self.assertIn("it loads OpenSSL's libssl.so.3", out)
            self.assertFalse(os.path.exists(os.path.join(plugins, "openssl.so")))


def harness_abi_version():
    """"<major>.<minor>" of the ABI header in this tree (what stamp.c stamps)."""
    header = os.path.join(harness.repo_root(), "api", "sluice", "plugin", "v1", "sluice_plugin.h")
    with open(header) as f:
        text = f.read()
    major = re.search(r"^#define SL_ABI_VERSION_MAJOR (\d+)", text, re.M).group(1)
    minor = re.search(r"^#define SL_ABI_VERSION_MINOR (\d+)", text, re.M).group(1)
    return "%s.%s" % (major, minor)


if __name__ == "__main__":
    harness.main()
