"""h2spec's "hpack" cases: RFC 7541 (8 cases)."""

import h2frames as h2

from .core import R_DECODING, Group, case
from .verifier import verify_connection_error


HPACK = Group("hpack", "", "HPACK: Header Compression for HTTP/2")
p2 = Group("hpack", "2", "Compression Process Overview", HPACK)
p2_3 = Group("hpack", "2.3", "Indexing Tables", p2)
p2_3_3 = Group("hpack", "2.3.3", "Index Address Space", p2_3)


def _decoding_error(group, desc, rep, prepend=False):
    @case(group, desc, R_DECODING)
    def _(c, conn):
        conn.spec_handshake()
        block = conn.encode(c.common_headers())
        r = rep(conn) if callable(rep) else rep
        block = r + block if prepend else block + r
        conn.write_headers(1, block, end_stream=True)
        verify_connection_error(conn, h2.COMPRESSION_ERROR)


_decoding_error(p2_3_3, "Sends a indexed header field representation with invalid index",
                b"\xc6")  # index 70
_decoding_error(p2_3_3, "Sends a literal header field representation with invalid index",
                b"\x7f\x07\x00")  # incremental indexing, name index 70, empty value

p4 = Group("hpack", "4", "Dynamic Table Management", HPACK)
p4_2 = Group("hpack", "4.2", "Maximum Table Size", p4)
_decoding_error(p4_2, "Sends a dynamic table size update at the end of header block",
                b"\x21")  # update to 1

p5 = Group("hpack", "5", "Primitive Type Representations", HPACK)
p5_2 = Group("hpack", "5.2", "String Literal Representation", p5)
_decoding_error(p5_2, "Sends a Huffman-encoded string literal representation with padding longer "
                "than 7 bits", b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff")
_decoding_error(p5_2, "Sends a Huffman-encoded string literal representation padded by zero",
                b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90")
_decoding_error(p5_2, "Sends a Huffman-encoded string literal representation containing the EOS "
                "symbol", b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f")

p6 = Group("hpack", "6", "Binary Format", HPACK)
p6_1 = Group("hpack", "6.1", "Indexed Header Field Representation", p6)
_decoding_error(p6_1, "Sends a indexed header field representation with index 0", b"\x80")

p6_3 = Group("hpack", "6.3", "Dynamic Table Size Update", p6)
_decoding_error(p6_3, "Sends a dynamic table size update larger than the value of "
                "SETTINGS_HEADER_TABLE_SIZE",
                lambda conn: h2.hpack_table_size_update(
                    conn.server_settings.get(h2.SETTINGS_HEADER_TABLE_SIZE, 4096) + 1),
                prepend=True)

