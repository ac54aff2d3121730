# Checks a plugin just linked by sluice_add_plugin (a POST_BUILD step; installed with the
# SluicePlugin package):
#
#   cmake -DPLUGIN=path/n.so -DLDD=/usr/bin/ldd [-DPROTOBUF_SONAME=libprotobuf.so.32] \
#         -P SluicePluginCheck.cmake
#
# It asks the dynamic loader (ldd -r: load the plugin with its dependencies, bind every symbol)
# what sluice's dlopen(RTLD_NOW) would meet at start-up, and fails the build instead:
# - an undefined symbol other than the host's sl_host_* functions: a library the plugin uses
#   but does not link (it would load only by accident, when the host happens to have it);
# - a dependency that is not found;
# - OpenSSL's libssl.so.3 or libcrypto.so.3: sluice runs on BoringSSL and refuses both;
# - a libprotobuf other than the host's (PROTOBUF_SONAME): protobuf's ABI differs per release.
# A plugin that fails is deleted, so that no stale or broken file is left to be loaded.

if(NOT PLUGIN OR NOT LDD)
  message(FATAL_ERROR "usage: cmake -DPLUGIN=n.so -DLDD=ldd [-DPROTOBUF_SONAME=...] -P ${CMAKE_SCRIPT_MODE_FILE}")
endif()

execute_process(COMMAND "${LDD}" -r "${PLUGIN}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
string(APPEND out "\n${err}")
string(REPLACE "\n" ";" lines "${out}")

set(problems "")
set(undefined "")
foreach(line IN LISTS lines)
  if(line MATCHES "undefined symbol: ([^\t ,]+)")
    # (A failed MATCHES clears CMAKE_MATCH_1: keep it first.)
    set(symbol "${CMAKE_MATCH_1}")
    if(NOT symbol MATCHES "^sl_host_")
      list(APPEND undefined "${symbol}")
    endif()
  elseif(line MATCHES "^[ \t]*([^ \t]+) => not found")
    string(APPEND problems "\n  ${CMAKE_MATCH_1} is not found")
  elseif(line MATCHES "^[ \t]*(lib(ssl|crypto)\\.so\\.3) ")
    string(APPEND problems "\n  it loads OpenSSL's ${CMAKE_MATCH_1}; sluice uses BoringSSL and "
                           "refuses a plugin that brings OpenSSL into the process")
  elseif(line MATCHES "^[ \t]*(libprotobuf\\.so\\.[^ \t]+) ")
    set(soname "${CMAKE_MATCH_1}")
    if(PROTOBUF_SONAME AND NOT soname STREQUAL PROTOBUF_SONAME)
      string(APPEND problems "\n  it loads ${soname}, but sluice runs on ${PROTOBUF_SONAME}: "
                             "link the protobuf sluice was built with")
    endif()
  endif()
endforeach()
if(undefined)
  list(REMOVE_DUPLICATES undefined)
  list(LENGTH undefined n)
  list(SUBLIST undefined 0 10 shown)
  find_program(CXXFILT c++filt)
  if(CXXFILT)
    execute_process(COMMAND "${CXXFILT}" ${shown} OUTPUT_VARIABLE demangled
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE filt_rc)
    if(filt_rc EQUAL 0)
      string(REPLACE "\n" ";" shown "${demangled}")
    endif()
  endif()
  string(REPLACE ";" ", " shown "${shown}")
  if(n GREATER 10)
    string(APPEND shown ", ...")
  endif()
  string(APPEND problems "\n  ${n} undefined symbol(s) no linked library provides, only sl_host_* "
                         "may be (sluice provides those): ${shown}. Link the libraries the "
                         "plugin uses (target_link_libraries)")
endif()
if(NOT rc EQUAL 0 AND NOT problems)
  string(APPEND problems "\n  ldd -r failed (exit ${rc}): ${out}")
endif()

if(problems)
  file(REMOVE "${PLUGIN}")
  message(FATAL_ERROR "plugin ${PLUGIN} would not load into sluice as built:${problems}\n"
                      "(the file is deleted)")
endif()
