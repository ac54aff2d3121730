# `cmake --install <build> [--prefix P]`: the binary, sluice's own plugins, and what plugin authors
# build against (the ABI header, the C++ SDK, sluice-plugin.pc).
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
