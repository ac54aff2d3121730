# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P EmbedFile.cmake
# Writes a C file defining `const unsigned char NAME[]` and `const size_t NAME_size` with IN's
# bytes (no xxd needed).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n  " bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN}; do not edit. */\n#include <stddef.h>\n"
  "__attribute__((visibility(\"hidden\"))) const unsigned char ${NAME}[] = {\n  ${bytes}0};\n"
  "__attribute__((visibility(\"hidden\"))) const size_t ${NAME}_size = ${size};\n")
