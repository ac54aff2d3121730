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
