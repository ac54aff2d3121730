# sluice_add_plugin(): a sluice plugin built out of tree, against an installed sluice. Installed
# with the SluicePlugin CMake package and loaded by find_package(SluicePlugin); needs CMake 3.20.
#
#   sluice_add_plugin(NAME n SRCS ... [PROTOS ...] [PROTO_IMPORT_DIRS ...] [OUTPUT_DIR d])
#
# Builds the target n as "<d>/n.so" (d defaults to <build>/plugins), a MODULE library like
# sluice's own plugins: hidden visibility and a version script, so that only the hooks (sl_on_*)
# are exported, linked to SluicePlugin::sdk (and so ::abi). Add libraries with
# target_link_libraries(n PRIVATE ...) as for any target.
#
# PROTOS are compiled with protoc into <current build dir>/n_protos and linked with libprotobuf:
# the generated code registers the config types in the process's one libprotobuf, where sluice
# finds them (sl_on_config_type). Each proto is named by its path below the first of
# PROTO_IMPORT_DIRS (default: the current source dir) that holds it — "acme/greeting/v1/x.proto",
# included as "acme/greeting/v1/x.pb.h" — and that name must be unique in the process, so give it
# your own prefix. PROTO_IMPORT_DIRS are also the import path (with protobuf's own protos).
#
# Refused at configure time: a protoc or libprotobuf of another protobuf release than the host's
# (see _sluice_plugin_require_protobuf). Checked after every link (SluicePluginCheck.cmake,
# skipped when cross-compiling): every undefined symbol but the host's sl_host_* functions is
# provided by a library the plugin links, libprotobuf is the host's, and OpenSSL's libssl.so.3 /
# libcrypto.so.3 are not pulled in. A plugin that fails the check is deleted.

# How a protobuf version maps to a release, the unit of compatibility: "3.21.12" -> "3.21"
# (protoc and runtime of 3.x); from protobuf 22 on, the runtime is "4.22.5" (5.26.x, ...) and
# protoc says "22.5", both -> "22".
function(_sluice_protobuf_release out version)
  if(version MATCHES "^([0-9]+)\\.([0-9]+)\\.[0-9]+")
    if(CMAKE_MATCH_1 LESS_EQUAL 3)
      set(release "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
    else()
      set(release "${CMAKE_MATCH_2}")
    endif()
  elseif(version MATCHES "^([0-9]+)\\.[0-9]+$")
    set(release "${CMAKE_MATCH_1}")
  else()
    set(release "")
  endif()
  set(${out} "${release}" PARENT_SCOPE)
endfunction()

# Finds protoc and libprotobuf (CMake's FindProtobuf: Protobuf_PROTOC_EXECUTABLE,
# Protobuf_INCLUDE_DIR and Protobuf_LIBRARY choose another installation) and refuses, with the
# versions found and the host's, any the host cannot load. What is compatible:
#
# - A plugin shares the host's libprotobuf: it is already in the process when the plugin is
#   dlopen()ed, and the plugin's references to protobuf resolve to it (the global scope comes
#   first), which is also what puts the plugin's config types in the pool where sluice looks them
#   up. protobuf's C++ ABI changes with every release (hence one SONAME per release:
#   libprotobuf.so.32 is 3.21), and its symbols carry no version, so code compiled against other
#   headers would call the host's functions with other layouts. So the headers must be of the
#   host's release; the patch level may differ (same SONAME; protobuf keeps patch releases ABI
#   compatible and its version checks accept any patch of the release).
# - The generated code must suit those headers: a .pb.h refuses to compile with headers older
#   than its protoc's release, or newer than the headers accept from that protoc (protobuf's
#   PROTOBUF_VERSION / PROTOBUF_MIN_PROTOC_VERSION checks). So protoc must be of the same release
#   too — checked here so that the error says why, before any compiler does.
# - The library linked must be the host's SONAME (checked here when objdump can tell, and on the
#   linked plugin after every link).
function(_sluice_plugin_require_protobuf plugin)
  if(NOT DEFINED SluicePlugin_PROTOBUF_VERSION)
    message(FATAL_ERROR "sluice_add_plugin(${plugin}): call find_package(SluicePlugin) in this "
                        "directory or a parent first")
  endif()
  if(NOT TARGET protobuf::libprotobuf OR NOT TARGET protobuf::protoc OR NOT Protobuf_VERSION)
    find_package(Protobuf QUIET)
  endif()
  string(CONCAT host "sluice ${SluicePlugin_SLUICE_VERSION} was built with protobuf "
                "${SluicePlugin_PROTOBUF_VERSION} (protoc ${SluicePlugin_PROTOC_VERSION}, "
                "${SluicePlugin_PROTOBUF_SONAME})")
  _sluice_protobuf_release(host_release "${SluicePlugin_PROTOBUF_VERSION}")
  if(NOT TARGET protobuf::libprotobuf OR NOT Protobuf_PROTOC_EXECUTABLE)
    message(FATAL_ERROR "sluice_add_plugin(${plugin}): PROTOS need protoc and libprotobuf "
                        "${host_release}.x, and no protobuf was found; ${host}. On Debian: "
                        "apt install protobuf-compiler libprotobuf-dev")
  endif()

  execute_process(COMMAND "${Protobuf_PROTOC_EXECUTABLE}" --version
                  OUTPUT_VARIABLE protoc_out ERROR_VARIABLE protoc_out RESULT_VARIABLE rc)
  string(REGEX MATCH "[0-9]+\\.[0-9]+(\\.[0-9]+)?" protoc_version "${protoc_out}")
  if(NOT rc EQUAL 0)
    set(protoc_version "")
  endif()
  _sluice_protobuf_release(protoc_release "${protoc_version}")
  _sluice_protobuf_release(lib_release "${Protobuf_VERSION}")

  # The SONAME of the libprotobuf found, when objdump can read it.
  set(lib_soname "")
  set(lib "${Protobuf_LIBRARY_RELEASE}")
  if(NOT lib)
    set(lib "${Protobuf_LIBRARY}")
  endif()
  if(CMAKE_OBJDUMP AND EXISTS "${lib}")
    execute_process(COMMAND "${CMAKE_OBJDUMP}" -p "${lib}" OUTPUT_VARIABLE dump ERROR_QUIET)
    if(dump MATCHES "SONAME +([^ \r\n]+)")
      set(lib_soname "${CMAKE_MATCH_1}")
    endif()
  endif()

  set(problems "")
  if(NOT lib_release STREQUAL host_release)
    string(APPEND problems "\n  libprotobuf headers ${Protobuf_VERSION} (${Protobuf_INCLUDE_DIR})")
  endif()
  if(NOT protoc_release STREQUAL host_release)
    if(protoc_version)
      string(APPEND problems "\n  protoc ${protoc_version} (${Protobuf_PROTOC_EXECUTABLE})")
    else()
      string(APPEND problems "\n  protoc of unknown version (${Protobuf_PROTOC_EXECUTABLE} "
                             "--version says: ${protoc_out})")
    endif()
  endif()
  if(lib_soname AND SluicePlugin_PROTOBUF_SONAME AND
     NOT lib_soname STREQUAL SluicePlugin_PROTOBUF_SONAME)
    string(APPEND problems "\n  libprotobuf ${lib_soname} (${lib})")
  endif()
  if(problems)
    message(FATAL_ERROR
      "sluice_add_plugin(${plugin}): this protobuf cannot build a plugin that this sluice loads:"
      "${problems}\n"
      "but ${host}. The plugin's generated code runs on the host's libprotobuf, and protobuf's C++ "
      "ABI and generated code change with every release, so protoc and libprotobuf must both be "
      "protobuf ${host_release}.x (any patch level) and link ${SluicePlugin_PROTOBUF_SONAME}. "
      "Point Protobuf_PROTOC_EXECUTABLE, Protobuf_INCLUDE_DIR and Protobuf_LIBRARY at protobuf "
      "${host_release} (on Debian 12: apt install protobuf-compiler libprotobuf-dev), or build "
      "sluice with the protobuf the plugin needs.")
  endif()
endfunction()

function(sluice_add_plugin)
  cmake_parse_arguments(PARSE_ARGV 0 A "" "NAME;OUTPUT_DIR" "SRCS;PROTOS;PROTO_IMPORT_DIRS")
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "sluice_add_plugin: unknown arguments: ${A_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT A_NAME OR NOT A_SRCS)
    message(FATAL_ERROR "sluice_add_plugin: NAME and SRCS are required")
  endif()
  if(NOT A_OUTPUT_DIR)
    set(A_OUTPUT_DIR "${CMAKE_BINARY_DIR}/plugins")
  endif()
  get_filename_component(A_OUTPUT_DIR "${A_OUTPUT_DIR}" ABSOLUTE
                         BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")

  set(generated "")
  set(gen_dir "${CMAKE_CURRENT_BINARY_DIR}/${A_NAME}_protos")
  if(A_PROTOS)
    _sluice_plugin_require_protobuf(${A_NAME})
    if(NOT A_PROTO_IMPORT_DIRS)
      set(A_PROTO_IMPORT_DIRS "${CMAKE_CURRENT_SOURCE_DIR}")
    endif()
    set(import_flags "")
    set(import_dirs "")
    foreach(dir IN LISTS A_PROTO_IMPORT_DIRS)
      # protoc maps a file to its name by a textual prefix: absolute, normalized paths only.
      get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
      list(APPEND import_dirs "${dir}")
      list(APPEND import_flags "-I${dir}")
    endforeach()
    foreach(proto IN LISTS A_PROTOS)
      get_filename_component(abs "${proto}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
      set(rel "")
      foreach(dir IN LISTS import_dirs)
        file(RELATIVE_PATH candidate "${dir}" "${abs}")
        if(NOT candidate MATCHES "^\\.\\./")
          set(rel "${candidate}")
          break()
        endif()
      endforeach()
      if(NOT rel)
        message(FATAL_ERROR "sluice_add_plugin(${A_NAME}): ${abs} is in none of "
                            "PROTO_IMPORT_DIRS (${import_dirs})")
      endif()
      string(REGEX REPLACE "\\.proto$" "" base "${rel}")
      set(cc "${gen_dir}/${base}.pb.cc")
      set(h "${gen_dir}/${base}.pb.h")
      set(dep "${gen_dir}/${base}.pb.d")
      add_custom_command(
        OUTPUT "${cc}" "${h}"
        COMMAND "${CMAKE_COMMAND}" -E make_directory "${gen_dir}"
        COMMAND protobuf::protoc "--cpp_out=${gen_dir}" "--dependency_out=${dep}" ${import_flags}
                "-I${Protobuf_INCLUDE_DIR}" "${abs}"
        # The protos it imports, so that changing one regenerates this one.
        DEPFILE "${dep}"
        DEPENDS "${abs}" protobuf::protoc
        COMMENT "protoc ${rel} (plugin ${A_NAME})"
        VERBATIM)
      list(APPEND generated "${cc}")
    endforeach()
  endif()

  add_library(${A_NAME} MODULE ${A_SRCS} ${generated})
  set_target_properties(${A_NAME} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY "${A_OUTPUT_DIR}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${A_NAME} PRIVATE SluicePlugin::sdk)
  # Hidden visibility leaves out what headers declare with default visibility (libstdc++'s
  # template instances): the version script exports the hooks and nothing else.
  set(exports "${CMAKE_BINARY_DIR}/sluice_plugin_exports.map")
  if(NOT EXISTS "${exports}")
    file(WRITE "${exports}" "{ global: sl_on_*; local: *; };\n")
  endif()
  target_link_options(${A_NAME} PRIVATE "LINKER:--version-script=${exports}")
  set_property(TARGET ${A_NAME} APPEND PROPERTY LINK_DEPENDS "${exports}")
  if(A_PROTOS)
    # Linked for real, so that the plugin names libprotobuf as a dependency instead of working by
    # accident through the host's copy (the check below insists).
    target_link_libraries(${A_NAME} PRIVATE protobuf::libprotobuf)
    target_include_directories(${A_NAME} PRIVATE "${gen_dir}")
    # Generated code is not the plugin author's to keep warning-free.
    set_source_files_properties(${generated} PROPERTIES COMPILE_OPTIONS "-w")
  endif()

  # -Wl,--no-undefined cannot be used: the sl_host_* functions must stay undefined (the sluice
  # executable provides them) and GNU ld has no allowlist. The loader's own view after the link
  # (ldd -r) says the same thing more exactly: what would not resolve, and what gets loaded.
  if(CMAKE_CROSSCOMPILING)
    return()
  endif()
  find_program(SLUICE_PLUGIN_LDD ldd)
  if(NOT SLUICE_PLUGIN_LDD)
    message(WARNING "sluice_add_plugin(${A_NAME}): no ldd; the plugin is not checked after link")
    return()
  endif()
  add_custom_command(TARGET ${A_NAME} POST_BUILD
    COMMAND "${CMAKE_COMMAND}" "-DPLUGIN=$<TARGET_FILE:${A_NAME}>" "-DLDD=${SLUICE_PLUGIN_LDD}"
            "-DPROTOBUF_SONAME=${SluicePlugin_PROTOBUF_SONAME}"
            -P "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/SluicePluginCheck.cmake"
    COMMENT "checking plugin ${A_NAME}: symbols and libraries"
    VERBATIM)
endfunction()
