"""sluice's Bazel macros: the same wrappers as cmake/SluiceBuild.cmake, so that each BUILD.bazel
mirrors the CMakeLists.txt beside it target for target (same names, same sources).

    sluice_cc_library(name, srcs, hdrs, deps)
    sluice_cc_binary(name, srcs, deps)
    sluice_cc_test(name, srcs, deps)          # GoogleTest, with gtest_main
    sluice_proto_library(name, protos)        # api/ protos, included as "api/sluice/..."
    sluice_plugin(name, srcs, protos, descriptor_sets, deps, file_name)
"""

# The warnings CMake turns on (CMakeLists.txt); -std=c++20 comes from .bazelrc (--cxxopt), so C
# sources (plugins written in C) are not given a C++ flag.
SLUICE_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

def sluice_cc_library(name, srcs = [], hdrs = [], deps = [], copts = [], **kwargs):
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        deps = deps,
        copts = SLUICE_COPTS + copts,
        **kwargs
    )

def sluice_cc_binary(name, srcs = [], deps = [], copts = [], **kwargs):
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps,
        copts = SLUICE_COPTS + copts,
        **kwargs
    )

def sluice_cc_test(name, srcs = [], deps = [], copts = [], size = "small", **kwargs):
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + ["@com_google_googletest_main//:gtest_main"],
        copts = SLUICE_COPTS + copts,
        size = size,
        **kwargs
    )

def sluice_proto_library(name, protos):
    """The api/ protos, compiled as CMake compiles them (cmake/SluiceBuild.cmake).

    Their import root is api/ ("sluice/config/v1/x.proto"), while sluice's sources include the
    generated headers repo-root relative ("api/sluice/config/v1/x.pb.h"). Bazel's native
    cc_proto_library puts a header at its import path, so it would be "sluice/config/v1/x.pb.h"
    only: the code is generated here by protoc instead, into bazel-bin/api, where both names
    resolve. A proto_library of the same files serves the proto graph (other languages, tools).
    """
    native.proto_library(
        name = name + "_proto",
        srcs = protos,
        strip_import_prefix = "/api",
        deps = [
            "@com_google_protobuf//:duration_proto",
            "@com_google_protobuf//:struct_proto",
            "@com_google_protobuf//:wrappers_proto",
            "@com_google_protobuf//:descriptor_proto",
        ],
    )
    outs = []
    for p in protos:
        base = p[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
    native.genrule(
        name = name + "_gen",
        srcs = protos + ["@com_google_protobuf//:well_known_protos"],
        outs = outs,
        tools = ["@com_google_protobuf//:protoc"],
        # $(RULEDIR) is bazel-bin/api; the .proto files are named from api/, their import root.
        cmd = "$(execpath @com_google_protobuf//:protoc) --cpp_out=$(RULEDIR) -Iapi " +
              "-Iexternal/com_google_protobuf/include " +
              " ".join(["api/" + p for p in protos]),
        message = "protoc (sluice api) " + name,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        # The generated .pb.cc includes its header by import path ("sluice/config/v1/x.pb.h").
        includes = ["."],
        # Generated code is not ours to keep warning-free.
        copts = ["-w"],
        deps = ["@com_google_protobuf//:protobuf"],
    )

def _embed_descriptor_set(name, proto, stem):
    """A C file with the FileDescriptorSet of `proto` (with its imports) as
    `const unsigned char <stem>_descriptor_set[]` and `<stem>_descriptor_set_size`, as
    cmake/EmbedFile.cmake writes it (od, not xxd: coreutils only)."""
    out = name + "_" + stem + "_descriptor_set.c"
    sym = stem + "_descriptor_set"
    native.genrule(
        name = name + "_" + stem + "_embed",
        srcs = [proto, "@com_google_protobuf//:well_known_protos"],
        outs = [out],
        tools = ["@com_google_protobuf//:protoc"],
        cmd = ("$(execpath @com_google_protobuf//:protoc) --include_imports " +
               "--descriptor_set_out=$@.pb -I. " +
               "-Iexternal/com_google_protobuf/include " +
               "$(execpath {proto}) && " +
               "{{ printf '/* Generated from {proto}; do not edit. */\\n#include <stddef.h>\\n'; " +
               "printf '__attribute__((visibility(\"hidden\"))) const unsigned char {sym}[] = {{\\n'; " +
               "od -An -v -tx1 $@.pb | sed -e 's/ *\\([0-9a-f][0-9a-f]\\)/0x\\1,/g'; " +
               "printf '0}};\\n__attribute__((visibility(\"hidden\"))) const size_t {sym}_size = %d;\\n' " +
               "$$(wc -c < $@.pb); }} > $@ && rm $@.pb").format(proto = proto, sym = sym),
    )
    return out

def sluice_plugin(name, srcs, protos = [], descriptor_sets = [], deps = [], file_name = None,
                  defines = [], visibility = None, exports_checked = True):
    """A plugin: `<file_name or name>.so`, loaded through the plugin ABI.

    As sluice_plugin() in CMake: hidden visibility and a version script exporting only the
    hooks (sl_on_*); the ABI header and the C++ SDK seen as an installed plugin sees them
    ("sluice/plugin/v1/sluice_plugin.h", "sluice/sdk/filter.h"); PROTOS compiled in with the
    repo as their import root ("extensions/filters/http/router/router.pb.h"), through the native
    cc_proto_library and the system protoc.
    """
    plugin_deps = ["//extensions:sluice_plugin_sdk"] + deps
    if protos:
        native.proto_library(
            name = name + "_proto",
            srcs = protos,
            deps = [
                "@com_google_protobuf//:duration_proto",
                "@com_google_protobuf//:struct_proto",
                "@com_google_protobuf//:wrappers_proto",
            ],
        )
        native.cc_proto_library(name = name + "_cc_proto", deps = [name + "_proto"])
        plugin_deps.append(name + "_cc_proto")
    generated = [_embed_descriptor_set(name, p, p.split("/")[-1][:-len(".proto")]) for p in descriptor_sets]
    linkopts = []
    additional = []
    if exports_checked:
        linkopts = ["-Wl,--version-script=$(location //bazel:plugin_exports.map)"]
        additional = ["//bazel:plugin_exports.map"]
    native.cc_binary(
        name = (file_name or name) + ".so",
        srcs = srcs + generated,
        deps = plugin_deps,
        linkshared = True,
        copts = SLUICE_COPTS + ["-fvisibility=hidden"] + (
            # A C++ flag (gcc warns of it for C, which -Werror in CI refuses).
            ["-fvisibility-inlines-hidden"] if [s for s in srcs if s.endswith(".cc")] else []
        ),
        local_defines = defines,
        linkopts = linkopts,
        additional_linker_inputs = additional,
        visibility = visibility,
    )
    native.alias(name = name, actual = (file_name or name) + ".so", visibility = visibility)

def sluice_plugin_layout(name, plugins):
    """Copies plugins (labels of `<n>.so` targets) into `plugins/`, beside a binary of this
    package: where sluice looks for its own plugins (<dir of the binary>/plugins), as the CMake
    build puts them in build/plugins beside build/sluice."""
    outs = []
    cmds = []
    for p in plugins:
        out = "plugins/" + p.split(":")[-1]
        outs.append(out)
        cmds.append("cp $(location %s) $(location %s)" % (p, out))
    native.genrule(
        name = name,
        srcs = plugins,
        outs = outs,
        cmd = " && ".join(cmds),
        message = "sluice's plugins into plugins/",
    )

def sluice_plugin_unit_test(name, srcs, plugins = [], copts = [], linkopts = [], data = [],
                            local_defines = [], **kwargs):
    """A plugin's unit test through the plugin test harness (extensions/sdk/test_harness): a
    GoogleTest binary linking the harness (no sluice code), which loads sluice's plugins from
    SLUICE_PLUGIN_DIR (runfiles-relative; the test runs at the runfiles root)."""
    sluice_cc_test(
        name = name,
        srcs = srcs,
        deps = ["//extensions/sdk/test_harness:sluice_plugin_test_harness"],
        data = ["//source/exe:plugins"] + plugins + data,
        local_defines = ['SLUICE_PLUGIN_DIR=\\"source/exe/plugins\\"'] + local_defines,
        copts = copts,
        linkopts = linkopts,
        **kwargs
    )

def sluice_test_plugins(table):
    """Test plugins, `plugins/<n>.so` in the calling package, from {n: sluice_plugin attrs}.
    Some are wrong on purpose, so the export rules are not applied to them (as in CMake)."""
    for n, attrs in table.items():
        sluice_plugin(
            name = "test_plugin_" + n,
            file_name = "plugins/" + n,
            exports_checked = False,
            **attrs
        )

def sluice_integration_test(name, script, serial = False, data = []):
    """An integration test (test/integration/harness.py): a Python 3 script driving the Bazel-built
    sluice over loopback, as CMake's sluice_integration_test() does with build/sluice.

    Tagged "integration" (tools/bazel-test runs them with --integration) and "local": the
    scripts use the machine's clients (curl, openssl, nghttp, h2load, Debian's python3 modules)
    and read files across the tree (configs/, docs/, deploy/), as they do under CMake, so they
    run outside the sandbox, with the tree found through the runfiles. "exclusive" for the
    SERIAL ones (they measure memory or open hundreds of connections).
    """
    tags = ["integration", "local"] + (["exclusive"] if serial else [])
    native.sh_test(
        name = name,
        size = "large",
        srcs = ["//test/integration:run_integration_test.sh"],
        args = ["$(location %s)" % script],
        data = [
            script,
            "//:WORKSPACE",
            "//source/exe:sluice",
            "//source/exe:plugins",
            "//test/integration:harness",
            "//test/plugin:test_plugins",
        ] + data,
        tags = tags,
    )
