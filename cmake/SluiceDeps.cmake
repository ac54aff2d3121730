# Every dependency comes from a Debian package; nothing is downloaded at build time.

find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(absl REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(PkgConfig REQUIRED)

# libevent: core + pthreads only. Never libevent_openssl (it links OpenSSL's libssl.so.3).
find_path(LIBEVENT_INCLUDE_DIR event2/event.h REQUIRED)
find_library(LIBEVENT_CORE_LIB NAMES event_core REQUIRED)
find_library(LIBEVENT_PTHREADS_LIB NAMES event_pthreads REQUIRED)
add_library(sluice_libevent INTERFACE)
target_include_directories(sluice_libevent SYSTEM INTERFACE ${LIBEVENT_INCLUDE_DIR})
target_link_libraries(sluice_libevent INTERFACE ${LIBEVENT_CORE_LIB} ${LIBEVENT_PTHREADS_LIB}
                                                Threads::Threads)

pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
# RE2 (libre2-dev): linear-time regular expressions for the router's matchers.
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
# c-ares (libc-ares-dev): asynchronous DNS for STRICT_DNS clusters, on the main thread's loop.
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)

# BoringSSL from android-libboringssl-dev: headers under <include>/android, libraries under
# <libdir>/android with SONAMEs libssl.so.0 / libcrypto.so.0. The include dir must come before
# /usr/include, where OpenSSL's headers may also live; the rpath lets the loader find the libraries.
find_path(BORINGSSL_INCLUDE_DIR openssl/base.h PATHS /usr/include/android NO_DEFAULT_PATH REQUIRED)
find_library(BORINGSSL_SSL_LIB NAMES ssl PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android
             NO_DEFAULT_PATH REQUIRED)
find_library(BORINGSSL_CRYPTO_LIB NAMES crypto PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android
             NO_DEFAULT_PATH REQUIRED)
get_filename_component(BORINGSSL_LIB_DIR ${BORINGSSL_SSL_LIB} DIRECTORY)
add_library(sluice_boringssl INTERFACE)
target_include_directories(sluice_boringssl SYSTEM BEFORE INTERFACE ${BORINGSSL_INCLUDE_DIR})
target_link_libraries(sluice_boringssl INTERFACE ${BORINGSSL_SSL_LIB} ${BORINGSSL_CRYPTO_LIB})
target_link_options(sluice_boringssl INTERFACE "LINKER:-rpath,${BORINGSSL_LIB_DIR}")

if(SLUICE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
