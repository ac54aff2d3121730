# Thin target wrappers, in the style of abseil's, so that a BUILD.bazel beside each CMakeLists.txt
# can mirror it one to one.
#
#   sluice_cc_library(NAME n SRCS ... HDRS ... DEPS ...)
#   sluice_cc_binary(NAME n SRCS ... DEPS ... [OUTPUT_NAME o])
#   sluice_cc_test(NAME n SRCS ... DEPS ...)        # GoogleTest, registered with ctest
#   sluice_proto_library(NAME n PROTOS ... DEPS ...)

function(sluice_cc_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  if(A_SRCS)
    add_library(${A_NAME} STATIC ${A_SRCS} ${A_HDRS})
    target_link_libraries(${A_NAME} PUBLIC ${A_DEPS})
  else()
    add_library(${A_NAME} INTERFACE)
    target_link_libraries(${A_NAME} INTERFACE ${A_DEPS})
  endif()
endfunction()

function(sluice_cc_binary)
  cmake_parse_arguments(A "" "NAME;OUTPUT_NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  if(A_OUTPUT_NAME)
    set_target_properties(${A_NAME} PROPERTIES OUTPUT_NAME ${A_OUTPUT_NAME})
  endif()
endfunction()

function(sluice_cc_test)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "unit;${A_LABELS}" TIMEOUT 120)
endfunction()

function(sluice_proto_library)
  cmake_parse_arguments(A "" "NAME" "PROTOS;DEPS" ${ARGN})
  set(srcs)
  set(hdrs)
  foreach(proto ${A_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE)
    # Import paths are relative to api/ ("sluice/config/v1/x.proto"), so the generated code lands
    # in <build>/api and our sources include it repo-root relative ("api/sluice/.../x.pb.h").
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/api ${abs})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(cc ${PROJECT_BINARY_DIR}/api/${base}.pb.cc)
    set(h ${PROJECT_BINARY_DIR}/api/${base}.pb.h)
    add_custom_command(
      OUTPUT ${cc} ${h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/api
      COMMAND protobuf::protoc --cpp_out=${PROJECT_BINARY_DIR}/api -I${PROJECT_SOURCE_DIR}/api
              -I${Protobuf_INCLUDE_DIR} ${rel}
      DEPENDS ${abs} protobuf::protoc
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/api
      COMMENT "protoc ${rel}")
    list(APPEND srcs ${cc})
    list(APPEND hdrs ${h})
  endforeach()
  add_library(${A_NAME} STATIC ${srcs} ${hdrs})
  target_link_libraries(${A_NAME} PUBLIC protobuf::libprotobuf ${A_DEPS})
  target_include_directories(${A_NAME} PUBLIC ${PROJECT_BINARY_DIR}/api)
  # Generated code is not ours to keep warning-free.
  target_compile_options(${A_NAME} PRIVATE -w)
endfunction()

# A plugin: a shared object loaded through the plugin ABI (api/sluice/plugin/v1/sluice_plugin.h).
#
#   sluice_plugin(NAME n SRCS ... [PROTOS ...] [DESCRIPTOR_SETS ...] [DEPS ...] [OUTPUT_DIR d]
#                 [FILE_NAME f])
#
# Built as "<OUTPUT_DIR>/<f>.so" (f defaults to n; OUTPUT_DIR to <build>/plugins, where sluice
# looks for its own plugins) with hidden visibility, so only the SL_EXPORT hooks are exported. It sees the ABI
# header and the C++ SDK the way an installed plugin does ("sluice/plugin/v1/sluice_plugin.h",
# "sluice/sdk/filter.h"). PROTOS are compiled into it (generated code registers its types in the
# shared libprotobuf, where the host finds the config type); their import root is the repo, so
# file names stay unique across plugins. DESCRIPTOR_SETS protos are instead embedded as a
# serialized FileDescriptorSet (with imports) in a generated C file defining
# `const unsigned char <stem>_descriptor_set[]` and `const size_t <stem>_descriptor_set_size`,
# for plugins that do not link protobuf.
function(sluice_plugin)
  cmake_parse_arguments(A "" "NAME;OUTPUT_DIR;FILE_NAME" "SRCS;PROTOS;DESCRIPTOR_SETS;DEPS" ${ARGN})
  if(NOT A_FILE_NAME)
    set(A_FILE_NAME ${A_NAME})
  endif()
  if(NOT A_OUTPUT_DIR)
    set(A_OUTPUT_DIR ${PROJECT_BINARY_DIR}/plugins)
  endif()
  set(gen_dir ${PROJECT_BINARY_DIR}/plugin_gen)
  set(generated)
  foreach(proto ${A_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${abs})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    add_custom_command(
      OUTPUT ${gen_dir}/${base}.pb.cc ${gen_dir}/${base}.pb.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${gen_dir}
      COMMAND protobuf::protoc --cpp_out=${gen_dir} -I${PROJECT_SOURCE_DIR}
              -I${Protobuf_INCLUDE_DIR} ${rel}
      DEPENDS ${abs} protobuf::protoc
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
      COMMENT "protoc ${rel} (plugin ${A_NAME})")
    list(APPEND generated ${gen_dir}/${base}.pb.cc)
  endforeach()
  foreach(proto ${A_DESCRIPTOR_SETS})
    get_filename_component(abs ${proto} ABSOLUTE)
    get_filename_component(stem ${proto} NAME_WE)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${abs})
    set(pb ${gen_dir}/${A_NAME}_${stem}.pb)
    set(c ${gen_dir}/${A_NAME}_${stem}_descriptor_set.c)
    add_custom_command(
      OUTPUT ${c}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${gen_dir}
      COMMAND protobuf::protoc --include_imports --descriptor_set_out=${pb} -I${PROJECT_SOURCE_DIR}
              -I${Protobuf_INCLUDE_DIR} ${rel}
      COMMAND ${CMAKE_COMMAND} -DIN=${pb} -DOUT=${c} -DNAME=${stem}_descriptor_set
              -P ${PROJECT_SOURCE_DIR}/cmake/EmbedFile.cmake
      DEPENDS ${abs} protobuf::protoc ${PROJECT_SOURCE_DIR}/cmake/EmbedFile.cmake
      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
      COMMENT "descriptor set of ${rel} (plugin ${A_NAME})")
    list(APPEND generated ${c})
  endforeach()
  add_library(${A_NAME} MODULE ${A_SRCS} ${generated})
  set_target_properties(${A_NAME} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${A_FILE_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${A_OUTPUT_DIR}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # The same targets an out-of-tree plugin gets as SluicePlugin::sdk (extensions/CMakeLists.txt).
  target_link_libraries(${A_NAME} PRIVATE sluice_plugin_sdk)
  target_include_directories(${A_NAME} PRIVATE ${gen_dir})
  if(A_PROTOS)
    target_link_libraries(${A_NAME} PRIVATE protobuf::libprotobuf)
  endif()
  if(generated)
    set_source_files_properties(${generated} PROPERTIES COMPILE_OPTIONS "-w")
  endif()
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  # sluice's own plugins (the default OUTPUT_DIR) are installed beside the binary's libdir.
  # (Test plugins, elsewhere, are sometimes wrong on purpose: they are not held to the rules.)
  if(NOT A_OUTPUT_DIR STREQUAL "${PROJECT_BINARY_DIR}/plugins")
    return()
  endif()
  # The rules sluice_add_plugin() (cmake/SluicePluginFunctions.cmake) applies to out-of-tree
  # plugins hold for ours too: only the hooks exported, and the loader's view checked after the
  # link (nothing undefined but sl_host_*, no OpenSSL). Not under the sanitizers, whose runtime
  # the executable provides (every plugin then has undefined __asan_/__ubsan_ symbols).
  set(exports "${PROJECT_BINARY_DIR}/sluice_plugin_exports.map")
  if(NOT EXISTS "${exports}")
    file(WRITE "${exports}" "{ global: sl_on_*; local: *; };\n")
  endif()
  target_link_options(${A_NAME} PRIVATE "LINKER:--version-script=${exports}")
  set_property(TARGET ${A_NAME} APPEND PROPERTY LINK_DEPENDS "${exports}")
  find_program(SLUICE_PLUGIN_LDD ldd)
  if(SLUICE_PLUGIN_LDD AND NOT SLUICE_SANITIZE AND NOT CMAKE_CROSSCOMPILING)
    add_custom_command(TARGET ${A_NAME} POST_BUILD
      COMMAND "${CMAKE_COMMAND}" "-DPLUGIN=$<TARGET_FILE:${A_NAME}>" "-DLDD=${SLUICE_PLUGIN_LDD}"
              -P "${PROJECT_SOURCE_DIR}/cmake/SluicePluginCheck.cmake"
      COMMENT "checking plugin ${A_NAME}: symbols and libraries"
      VERBATIM)
  endif()
  include(GNUInstallDirs)
  install(TARGETS ${A_NAME} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/sluice/plugins)
endfunction()

# The interpreter of the integration tests: Debian's, whose packages (python3-websockets, from
# tools/deps) the tests use, ahead of any other python3 on the PATH. Not needed without the tests
# (deploy/oci/Dockerfile builds with SLUICE_BUILD_TESTS=OFF and no python3).
if(SLUICE_BUILD_TESTS)
  find_program(SLUICE_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT SLUICE_PYTHON3)
    find_program(SLUICE_PYTHON3 NAMES python3 REQUIRED)
  endif()
endif()

# An integration test: a Python 3 script (the standard library and Debian's python3 packages,
# test/integration/harness.py on its path) that drives the real sluice binary. SERIAL: runs alone (it measures memory or opens
# hundreds of connections).
#
#   sluice_integration_test(NAME n SCRIPT path.py [SERIAL])
function(sluice_integration_test)
  cmake_parse_arguments(A "SERIAL" "NAME;SCRIPT" "" ${ARGN})
  set(env
    "SLUICE_BIN=$<TARGET_FILE:sluice>"
    "SLUICE_REPO_ROOT=${PROJECT_SOURCE_DIR}"
    "SLUICE_BUILD_DIR=${PROJECT_BINARY_DIR}"
    "SLUICE_PLUGIN_DIR=${PROJECT_BINARY_DIR}/plugins"
    "SLUICE_TEST_PLUGIN_DIR=${PROJECT_BINARY_DIR}/test/plugin/plugins"
    "PYTHONPATH=${PROJECT_SOURCE_DIR}/test/integration")
  if(SLUICE_SANITIZE)
    list(APPEND env "SLUICE_SANITIZE=1")
  endif()
  add_test(NAME integration_${A_NAME} COMMAND ${SLUICE_PYTHON3} ${A_SCRIPT})
  set_tests_properties(integration_${A_NAME} PROPERTIES
    ENVIRONMENT "${env}"
    LABELS integration
    TIMEOUT 300)
  if(A_SERIAL)
    set_tests_properties(integration_${A_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# A plugin's unit test through the plugin test harness (extensions/sdk/test_harness): a
# GoogleTest binary linking the harness (no sluice code), which loads the plugins it names from
# <build>/plugins (SLUICE_PLUGIN_DIR in the test's code).
#
#   sluice_plugin_unit_test(NAME n SRCS ... PLUGINS target...)
function(sluice_plugin_unit_test)
  cmake_parse_arguments(A "" "NAME" "SRCS;PLUGINS" ${ARGN})
  sluice_cc_test(NAME ${A_NAME} SRCS ${A_SRCS} DEPS sluice_plugin_test_harness)
  target_compile_definitions(${A_NAME} PRIVATE SLUICE_PLUGIN_DIR="${PROJECT_BINARY_DIR}/plugins")
  if(A_PLUGINS)
    add_dependencies(${A_NAME} ${A_PLUGINS})
  endif()
endfunction()
