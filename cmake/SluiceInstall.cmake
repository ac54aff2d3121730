# `cmake --install <build> [--prefix P]`: the binary, sluice's own plugins, and what plugin authors
# build against (the ABI header, the C++ SDK, sluice-plugin.pc and the SluicePlugin CMake
# package).
include(GNUInstallDirs)

install(TARGETS sluice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/api/sluice/plugin/v1/sluice_plugin.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sluice/plugin/v1)
install(FILES ${PROJECT_SOURCE_DIR}/extensions/sdk/cpp/sluice/sdk/filter.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sluice/sdk)

file(STRINGS ${PROJECT_SOURCE_DIR}/api/sluice/plugin/v1/sluice_plugin.h abi_lines
     REGEX "^#define SL_ABI_VERSION_(MAJOR|MINOR) ")
string(REGEX MATCH "MAJOR ([0-9]+)" _ "${abi_lines}")
set(abi_major ${CMAKE_MATCH_1})
string(REGEX MATCH "MINOR ([0-9]+)" _ "${abi_lines}")
set(SLUICE_PLUGIN_ABI_VERSION "${abi_major}.${CMAKE_MATCH_1}")
file(RELATIVE_PATH SLUICE_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig"
     "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" SLUICE_PC_TO_PREFIX "${SLUICE_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/sluice-plugin.pc.in
               ${PROJECT_BINARY_DIR}/sluice-plugin.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sluice-plugin.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The CMake package for out-of-tree plugins: find_package(SluicePlugin) gives SluicePlugin::abi,
# SluicePlugin::sdk and sluice_add_plugin() (cmake/SluicePluginFunctions.cmake). Its version is
# the plugin ABI's (SameMajorVersion: find_package(SluicePlugin 1.2) accepts 1.3, not 2.0), since
# the ABI decides what loads; sluice's own version is SluicePlugin_SLUICE_VERSION.
include(CMakePackageConfigHelpers)
set(SLUICE_PLUGIN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/SluicePlugin)
set(SLUICE_PLUGIN_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/sluice/plugins)

# The protobuf this sluice runs on, recorded so that a plugin's build can refuse another one.
execute_process(COMMAND ${Protobuf_PROTOC_EXECUTABLE} --version OUTPUT_VARIABLE protoc_out
                ERROR_QUIET)
string(REGEX MATCH "[0-9]+\\.[0-9]+(\\.[0-9]+)?" SLUICE_HOST_PROTOC_VERSION "${protoc_out}")
set(SLUICE_HOST_PROTOBUF_VERSION ${Protobuf_VERSION})
set(SLUICE_HOST_PROTOBUF_SONAME "")
set(protobuf_lib "${Protobuf_LIBRARY_RELEASE}")
if(NOT protobuf_lib)
  set(protobuf_lib "${Protobuf_LIBRARY}")
endif()
if(CMAKE_OBJDUMP AND EXISTS "${protobuf_lib}")
  execute_process(COMMAND ${CMAKE_OBJDUMP} -p ${protobuf_lib} OUTPUT_VARIABLE dump ERROR_QUIET)
  if(dump MATCHES "SONAME +([^ \r\n]+)")
    set(SLUICE_HOST_PROTOBUF_SONAME ${CMAKE_MATCH_1})
  endif()
endif()
if(NOT SLUICE_HOST_PROTOBUF_SONAME MATCHES "^libprotobuf\\.so\\.")
  message(WARNING "cannot tell the SONAME of ${protobuf_lib}: the installed SluicePlugin package "
                  "will not check which libprotobuf a plugin links")
  set(SLUICE_HOST_PROTOBUF_SONAME "")
endif()

install(TARGETS sluice_plugin_abi sluice_plugin_sdk EXPORT SluicePluginTargets)
install(EXPORT SluicePluginTargets NAMESPACE SluicePlugin:: DESTINATION ${SLUICE_PLUGIN_CMAKE_DIR})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/SluicePluginConfig.cmake.in
  ${PROJECT_BINARY_DIR}/SluicePluginConfig.cmake
  INSTALL_DESTINATION ${SLUICE_PLUGIN_CMAKE_DIR}
  PATH_VARS SLUICE_PLUGIN_INSTALL_DIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/SluicePluginConfigVersion.cmake
                                 VERSION ${SLUICE_PLUGIN_ABI_VERSION}
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/SluicePluginConfig.cmake
              ${PROJECT_BINARY_DIR}/SluicePluginConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/SluicePluginFunctions.cmake
              ${PROJECT_SOURCE_DIR}/cmake/SluicePluginCheck.cmake
        DESTINATION ${SLUICE_PLUGIN_CMAKE_DIR})

# An optional part of the package (the hook for e.g. a plugin test harness library):
#
#   sluice_plugin_package_component(NAME c TARGETS t... [FILES f.cmake])
#
# installs the targets (their libraries into <libdir>; install their headers yourself) in an
# export set of their own, as SluicePlugin_<c>Targets.cmake beside SluicePluginConfig.cmake, and
# FILES (at most one: CMake functions of the part) as SluicePlugin_<c>.cmake.
# find_package(SluicePlugin COMPONENTS c) then loads both; one target is exported as
# SluicePlugin::<c> (EXPORT_NAME), several under their own EXPORT_NAMEs. The targets may link
# sluice_plugin_sdk / sluice_plugin_abi (exported as SluicePlugin::sdk / ::abi, loaded first).
# Call it after include(SluiceInstall).
function(sluice_plugin_package_component)
  cmake_parse_arguments(A "" "NAME" "TARGETS;FILES" ${ARGN})
  list(LENGTH A_TARGETS n)
  if(n EQUAL 1)
    set_target_properties(${A_TARGETS} PROPERTIES EXPORT_NAME ${A_NAME})
  endif()
  install(TARGETS ${A_TARGETS} EXPORT SluicePlugin_${A_NAME}Targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT SluicePlugin_${A_NAME}Targets NAMESPACE SluicePlugin::
          DESTINATION ${SLUICE_PLUGIN_CMAKE_DIR})
  if(A_FILES)
    install(FILES ${A_FILES} DESTINATION ${SLUICE_PLUGIN_CMAKE_DIR}
            RENAME SluicePlugin_${A_NAME}.cmake)
  endif()
endfunction()

# The plugin test harness: find_package(SluicePlugin COMPONENTS test_harness) gives
# SluicePlugin::test_harness (the library and sluice/plugin_test/harness.h).
sluice_plugin_package_component(NAME test_harness TARGETS sluice_plugin_test_harness)
install(FILES ${PROJECT_SOURCE_DIR}/extensions/sdk/test_harness/sluice/plugin_test/harness.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sluice/plugin_test)
