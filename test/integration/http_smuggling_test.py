"""Request smuggling and strict parsing, end to end over raw sockets.

Every input below is one that two HTTP implementations may read differently (the root of request
smuggling: a front end and a back end disagreeing on where a request ends) or that a strict
RFC 9112 parser must refuse. Each must get exactly one response with the exact status, carrying
`Connection: close`; then the connection closes, nothing sent after the bad request is ever
answered, and the per-status counter http.<listener>.downstream_rq_protocol_error_<status> counts
it once.

The table is the test: one generated test method per case (test_<name>). Cases on "web" are
refused at the head, before the direct_response filter could answer; cases on "sink" (no HTTP
filter, so the whole body is read before the 404) are refused while the body is decoded.
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

WAIT = 15.0
H = b"Host: h\r\n"
GET = b"GET / HTTP/1.1\r\n"
POST = b"POST / HTTP/1.1\r\n"
CHUNKED_POST = POST + H + b"Transfer-Encoding: chunked\r\n\r\n"
# A valid request sent right after a bad one: answering it would mean it was parsed, i.e. that
# an attacker's bytes were taken for a request of their own.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"

# (name, listener, request bytes, expected status, citation)
CASES = [
    # ---- Content-Length / Transfer-Encoding framing (RFC 9112 §6.3) ----
    ("cl_and_te", "web",
     POST + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400,
     "RFC 9112 §6.3 ¶3: CL and TE together; the CL.TE attack (Linhart et al. 2005, Kettle 2019)"),
    ("te_and_cl", "web",
     POST + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST", 400,
     "RFC 9112 §6.3 ¶3: the TE.CL attack (Kettle 2019)"),
    ("two_different_cl", "web",
     POST + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400,
     "RFC 9112 §6.3 ¶5 / RFC 9110 §8.6: differing Content-Length fields (CL.CL)"),
    ("cl_list_differs", "web",
     POST + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400,
     "RFC 9110 §8.6: a list of differing lengths is invalid"),
    ("cl_leading_zero_differs", "web",
     POST + H + b"Content-Length: 5\r\nContent-Length: 05\r\n\r\nhello", 400,
     "RFC 9110 §8.6: values must be identical to be taken as one (sluice: byte-identical)"),
    ("cl_plus_sign", "web", POST + H + b"Content-Length: +5\r\n\r\nhello", 400,
     "RFC 9110 §8.6: Content-Length = 1*DIGIT (strtol-style parsers accept a sign)"),
    ("cl_minus_sign", "web", POST + H + b"Content-Length: -5\r\n\r\nhello", 400,
     "RFC 9110 §8.6: 1*DIGIT; negative lengths (e.g. CVE-2013-2028-style size confusion)"),
    ("cl_inner_space", "web", POST + H + b"Content-Length: 1 0\r\n\r\nhello", 400,
     "RFC 9110 §8.6: 1*DIGIT; '1 0' is 1, 10 or an error depending on the parser"),
    ("cl_hex", "web", POST + H + b"Content-Length: 0x5\r\n\r\nhello", 400,
     "RFC 9110 §8.6: decimal only; '0x5' is 0 to atoi and 5 to strtol(base 0)"),
    ("cl_empty", "web", POST + H + b"Content-Length: \r\n\r\n", 400,
     "RFC 9110 §8.6: 1*DIGIT; an empty value is 0 to some parsers"),
    ("cl_overflow", "web", POST + H + b"Content-Length: 18446744073709551621\r\n\r\nhello", 400,
     "RFC 9110 §8.6 / RFC 9112 §6.3: 2^64+5 wraps to 5 in a 64-bit parser"),
    ("te_chunked_then_gzip", "web",
     POST + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400,
     "RFC 9112 §6.3 ¶4: chunked not the final coding: MUST respond 400 and close"),
    ("te_gzip", "web", POST + H + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 501,
     "RFC 9112 §6.1: a transfer coding the server does not understand: 501"),
    ("te_gzip_then_chunked", "web",
     POST + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     "RFC 9112 §6.1: unsupported coding before chunked: 501"),
    ("te_xchunked", "web", POST + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501,
     "TE.TE obfuscation (Kettle 2019): a near-miss of chunked is an unknown coding, not chunked"),
    ("te_chunked_twice", "web",
     POST + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "RFC 9112 §7: chunked MUST NOT be applied more than once"),
    ("te_on_http10", "web",
     b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "RFC 9112 §6.1: TE in an HTTP/1.0 message: framing is faulty, close"),
    ("te_space_before_colon", "web",
     POST + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400,
     "RFC 9112 §5.1: no whitespace between name and colon (CVE-2019-16276, Go net/http)"),
    ("te_vertical_tab", "web",
     POST + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400,
     "RFC 9110 §5.5: control characters in a value; TE obfuscation (Kettle 2019)"),
    ("te_obs_fold", "web",
     POST + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400,
     "RFC 9112 §5.2: obs-fold hiding Transfer-Encoding (Kettle 2019)"),
    # ---- head syntax (RFC 9112 §2-§5, RFC 9110 §5) ----
    ("obs_fold", "web", GET + H + b"X-A: a\r\n b\r\n\r\n", 400,
     "RFC 9112 §5.2: a server MUST reject obs-fold (or replace it), sluice rejects"),
    ("space_before_colon", "web", GET + b"Host : h\r\n\r\n", 400,
     "RFC 9112 §5.1: a server MUST reject whitespace between field name and colon with 400"),
    ("tab_before_colon", "web", GET + H + b"X-A\t: b\r\n\r\n", 400,
     "RFC 9112 §5.1: whitespace (HTAB) between field name and colon"),
    ("bare_cr_request_line", "web", b"GET / HTTP/1.1\rHost: h\r\n\r\n", 400,
     "RFC 9112 §2.2: a bare CR MUST be treated as invalid (or replaced by SP)"),
    ("bare_cr_in_value", "web", GET + H + b"X-A: a\rb\r\n\r\n", 400,
     "RFC 9112 §2.2 / RFC 9110 §5.5: bare CR in a field value"),
    ("bare_lf", "web", b"GET / HTTP/1.1\nHost: h\n\n", 400,
     "RFC 9112 §2.2: bare LF line endings (MAY be accepted; sluice is strict: front and back "
     "ends that disagree on line ends disagree on fields)"),
    ("bare_lf_in_fields", "web", GET + b"Host: h\nX-A: b\r\n\r\n", 400,
     "RFC 9112 §2.2: a bare LF inside the field section"),
    ("nul_in_value", "web", GET + H + b"X-A: a\x00b\r\n\r\n", 400,
     "RFC 9110 §5.5: NUL in a field value MUST be rejected or replaced"),
    ("ctl_in_name", "web", GET + H + b"X\x01A: b\r\n\r\n", 400,
     "RFC 9110 §5.1: a field name is a token"),
    ("space_in_name", "web", GET + H + b"X A: b\r\n\r\n", 400,
     "RFC 9110 §5.1: a field name is a token"),
    ("field_without_colon", "web", GET + H + b"X-A\r\n\r\n", 400,
     "RFC 9112 §5: field-line = field-name \":\" OWS field-value OWS"),
    ("empty_field_name", "web", GET + H + b": b\r\n\r\n", 400,
     "RFC 9110 §5.1: a field name is a non-empty token"),
    ("whitespace_before_first_field", "web", GET + b" Host: h\r\n\r\n", 400,
     "RFC 9112 §2.2: whitespace between the start line and the first field: reject"),
    ("missing_host", "web", GET + b"X-A: b\r\n\r\n", 400,
     "RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host"),
    ("two_hosts", "web", GET + H + b"Host: evil\r\n\r\n", 400,
     "RFC 9112 §3.2: more than one Host field: 400 (host-header confusion)"),
    ("host_with_userinfo", "web", GET + b"Host: h@evil\r\n\r\n", 400,
     "RFC 9110 §7.2 / §4.2.4: Host is uri-host [\":\" port]; no userinfo"),
    ("bad_method", "web", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9110 §9.1: method = token"),
    ("two_spaces_in_request_line", "web", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9112 §3: request-line = method SP request-target SP HTTP-version"),
    ("relative_target", "web", b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9112 §3.2: origin-form starts with '/'"),
    ("target_with_del", "web", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9112 §3.2 / RFC 3986: no controls in request-target"),
    ("target_with_userinfo", "web", b"GET http://u@h/ HTTP/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9110 §4.2.4: userinfo in an http(s) URI ought to be treated as an error"),
    ("asterisk_target_on_get", "web", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9112 §3.2.4: asterisk-form is for OPTIONS only"),
    ("lowercase_version", "web", b"GET / http/1.1\r\n" + H + b"\r\n", 400,
     "RFC 9112 §2.3: HTTP-name is case-sensitive \"HTTP\""),
    ("malformed_version", "web", b"GET / HTTP/1.1x\r\n" + H + b"\r\n", 400,
     "RFC 9112 §2.3: HTTP-version = HTTP-name \"/\" DIGIT \".\" DIGIT"),
    ("http2_version", "web", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505,
     "RFC 9110 §15.6.6: 505 HTTP Version Not Supported (major version 2 over HTTP/1 framing)"),
    ("http3_version", "web", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505,
     "RFC 9110 §15.6.6: 505 HTTP Version Not Supported"),
    ("http09_request", "web", b"GET /\r\n\r\n", 400,
     "RFC 9112 §2.3 / Appendix C.1: no HTTP/0.9 (a version-less request line)"),
    # ---- chunked body (RFC 9112 §7.1), refused while the body is decoded ----
    ("chunk_size_not_hex", "sink", CHUNKED_POST + b"zz\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1: chunk-size = 1*HEXDIG"),
    ("chunk_size_0x_prefix", "sink", CHUNKED_POST + b"0x5\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1: 1*HEXDIG; '0x5' is 0 (end of body) to a strict prefix parser"),
    ("chunk_size_negative", "sink", CHUNKED_POST + b"-5\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1: 1*HEXDIG; no sign"),
    ("chunk_size_leading_space", "sink", CHUNKED_POST + b" 5\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1: no whitespace before chunk-size"),
    ("chunk_size_overflow", "sink",
     CHUNKED_POST + b"10000000000000005\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1: a 17-digit size overflows 64 bits (to 5); CVE-2013-2028 (nginx)"),
    ("chunk_data_missing_crlf", "sink", CHUNKED_POST + b"5\r\nhelloX0\r\n\r\n", 400,
     "RFC 9112 §7.1: chunk = chunk-size CRLF chunk-data CRLF; data longer than its size"),
    ("chunk_data_bare_lf", "sink", CHUNKED_POST + b"5\r\nhello\n0\r\n\r\n", 400,
     "RFC 9112 §7.1 / §2.2: the CRLF after chunk-data; a bare LF there is read as a line end "
     "by some parsers and as data by others (Kettle 2019, chunk-parsing differentials)"),
    ("chunk_size_bare_lf", "sink", CHUNKED_POST + b"5\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1: CRLF after chunk-size (bare LF)"),
    ("chunk_extension_ctl", "sink", CHUNKED_POST + b"5;a\x01=b\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1.1: chunk-ext-name is a token"),
    ("chunk_extension_too_long", "sink",
     CHUNKED_POST + b"5;a=" + b"b" * 4096 + b"\r\nhello\r\n0\r\n\r\n", 400,
     "RFC 9112 §7.1.1: a server ought to limit extensions (unbounded ones: CVE-2023-39326)"),
    ("trailer_content_length", "sink",
     CHUNKED_POST + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", 400,
     "RFC 9110 §6.5.1: framing fields are not allowed in trailers"),
    ("trailer_obs_fold", "sink",
     CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400,
     "RFC 9112 §5.2 applied to the trailer section"),
]

# (name, listener, bad request, smuggled request after it, expected status, citation): the bytes
# after a refused request are never parsed as a request, whatever they are.
PIPELINED = [
    ("after_cl_and_te", "web",
     POST + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", SMUGGLED,
     400, "CL.TE with a complete smuggled request in the same packet (Kettle 2019)"),
    ("after_te_xchunked", "web",
     POST + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", SMUGGLED, 501,
     "TE.TE: the smuggled request follows an unknown coding"),
    ("after_obs_fold", "web", GET + H + b"X-A: a\r\n b\r\n\r\n", SMUGGLED, 400,
     "RFC 9112 §5.2: obs-fold, then a request"),
    ("after_bad_chunk_size", "sink", CHUNKED_POST + b"zz\r\n", SMUGGLED, 400,
     "RFC 9112 §7.1: an invalid chunk, then a request"),
    ("after_chunk_overflow", "sink", CHUNKED_POST + b"10000000000000005\r\nhello\r\n0\r\n\r\n",
     SMUGGLED, 400, "CVE-2013-2028: a wrapped chunk size, then a request"),
    ("after_http2_version", "web", b"GET / HTTP/2.0\r\n" + H + b"\r\n", SMUGGLED, 505,
     "RFC 9110 §15.6.6: after a refused version, nothing is parsed"),
]


class HttpSmugglingTest(harness.SluiceTestCase):

    @classmethod
    def setUpClass(cls):
        cls.class_tmpdir = tempfile.mkdtemp(prefix="sluice-it-smuggling-")
        config = harness.http_config([harness.http_listener("web"),
                                      harness.http_listener("sink", filters=[])])
        cls.sluice = harness.Sluice(config, cls.class_tmpdir, name="sluice", concurrency=1)
        try:
            cls.sluice.wait_ready()
        except BaseException:
            cls.sluice.kill()
            sys.stderr.write(cls.sluice.logs() + "\n")
            shutil.rmtree(cls.class_tmpdir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.sluice.stop()
            if rc != 0:
                raise AssertionError("sluice exited with %d after SIGTERM\n%s" %
                                     (rc, cls.sluice.logs()))
        finally:
            cls.sluice.kill()
            shutil.rmtree(cls.class_tmpdir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        if self.sluice.poll() is not None:
            self.fail("sluice exited (%s)\n%s" % (self.sluice.poll(), self.sluice.logs()))
        # SluiceTestCase.run prints these logs when a test fails.
        self._sluices = [self.sluice]

    def send_and_read(self, listener, data):
        """Sends data in one write; returns (responses, leftover bytes, how it closed)."""
        c = harness.HttpClient.connect(self.sluice.addr(listener))
        self.addCleanup(c.close)
        c.send(data)
        return c.read_until_closed(timeout=WAIT)

    def check_refused(self, listener, data, status, citation, before):
        """Exactly one response, `status`, Connection: close, then the close; its counter."""
        responses, rest, how = self.send_and_read(listener, data)
        what = "%s (%s): sent %r" % (self.id().rsplit(".", 1)[-1], citation, data[:300])
        self.assertEqual(len(responses), 1, "%s\nexpected exactly one response, got %r" %
                         (what, responses))
        self.assertEqual(rest, b"", "%s\nbytes after the response: %r" % (what, rest))
        resp = responses[0]
        self.assertEqual(resp.status, status, "%s\ngot %r" % (what, resp))
        self.assertTrue(resp.has_token("connection", "close"),
                        "%s\nno Connection: close in %r" % (what, resp))
        self.assertEqual(resp.all("server"), ["sluice"], resp)
        self.assertEqual(resp.all("content-length"), [str(len(resp.body))], resp)
        self.assertEqual(len(resp.all("date")), 1, resp)
        prefix = "http.%s." % listener
        name = "%sdownstream_rq_protocol_error_%d" % (prefix, status)
        after = self.sluice.wait_stats(
            lambda st: harness.stat(st, name) >= harness.stat(before, name) + 1 and
            st[prefix + "downstream_rq_active"] == 0,
            "%s counted (%s)" % (name, what), timeout=10.0)
        delta = harness.stats_delta(before, after, prefix)
        self.assertEqual(delta.get(name, 0), 1, "%s\n%r" % (what, delta))
        self.assertEqual(delta.get(prefix + "downstream_rq_protocol_error", 0), 1,
                         "%s\n%r" % (what, delta))
        self.assertEqual(delta.get(prefix + "downstream_rq_2xx", 0), 0, "%s\n%r" % (what, delta))
        self.assertLessEqual(delta.get(prefix + "downstream_rq_total", 0), 1,
                             "%s\n%r" % (what, delta))
        return delta

    def test_valid_requests_pass(self):
        # The baseline: the same shapes, well-formed, are served (the sink reads the body).
        for listener, data, status in [
                ("web", GET + H + b"\r\n", 200),
                ("web", POST + H + b"Content-Length: 5\r\n\r\nhello", 200),
                ("sink", POST + H + b"Content-Length: 5, 5\r\nConnection: close\r\n\r\nhello", 404),
                ("sink", CHUNKED_POST[:-2] + b"Connection: close\r\n\r\n" +
                 b"5;ext=\"q\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 404),
                ("web", b"\r\nGET / HTTP/1.1\r\nHost: h:8080\r\n\r\n", 200),
                ("web", b"GET http://h/x HTTP/1.1\r\n" + H + b"\r\n", 200),
                ("web", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", 200),
                ("web", b"GET / HTTP/1.0\r\n\r\n", 200)]:
            with self.subTest(data=data):
                c = harness.HttpClient.connect(self.sluice.addr(listener))
                self.addCleanup(c.close)
                c.send(data)
                resp = c.read_response(timeout=WAIT)
                self.assertEqual(resp.status, status, "%r -> %r" % (data, resp))


    def test_refused_after_a_served_request(self):
        # The same refusals on a keep-alive connection that already served a request: the
        # first answer, then the refusal with Connection: close, then the close; the request
        # smuggled after it is never answered.
        picks = ["cl_and_te", "te_gzip", "obs_fold", "missing_host", "bare_lf", "http2_version",
                 "chunk_size_not_hex", "chunk_data_missing_crlf"]
        table = {name: (listener, data, status, citation)
                 for name, listener, data, status, citation in CASES}
        for name in picks:
            listener, data, status, citation = table[name]
            with self.subTest(case=name):
                first = GET + H + b"\r\n"
                before = self.sluice.stats()
                responses, rest, how = self.send_and_read(listener, first + data + SMUGGLED)
                self.assertEqual(rest, b"")
                self.assertEqual([r.status for r in responses],
                                 [200 if listener == "web" else 404, status],
                                 "%s (%s): %r" % (name, citation, responses))
                self.assertTrue(responses[1].has_token("connection", "close"), responses[1])
                prefix = "http.%s." % listener
                counter = "%sdownstream_rq_protocol_error_%d" % (prefix, status)
                after = self.sluice.wait_stats(
                    lambda st: harness.stat(st, counter) >= harness.stat(before, counter) + 1 and
                    st[prefix + "downstream_rq_active"] == 0, counter, timeout=10.0)
                delta = harness.stats_delta(before, after, prefix)
                self.assertEqual(delta.get(counter), 1, delta)
                self.assertLessEqual(delta.get(prefix + "downstream_rq_total", 0), 2, delta)


def _make_case(listener, data, status, citation):
    def test(self):
        before = self.sluice.stats()
        self.check_refused(listener, data, status, citation, before)
    test.__doc__ = citation
    return test


def _make_pipelined(listener, bad, smuggled, status, citation):
    def test(self):
        # The bad request alone, then followed by a request in the same write: the answers
        # and the counters must be the same (the second request was never parsed).
        before = self.sluice.stats()
        alone = self.check_refused(listener, bad, status, citation, before)
        before = self.sluice.stats()
        with_tail = self.check_refused(listener, bad + smuggled, status, citation, before)
        prefix = "http.%s." % listener
        self.assertEqual(with_tail.get(prefix + "downstream_rq_total", 0),
                         alone.get(prefix + "downstream_rq_total", 0),
                         "the request after the refused one was counted: alone %r, with the "
                         "smuggled request %r" % (alone, with_tail))
        self.assertEqual(with_tail, alone)
    test.__doc__ = citation
    return test


for _name, _listener, _data, _status, _citation in CASES:
    assert not hasattr(HttpSmugglingTest, "test_" + _name), _name
    setattr(HttpSmugglingTest, "test_" + _name, _make_case(_listener, _data, _status, _citation))
for _name, _listener, _bad, _tail, _status, _citation in PIPELINED:
    assert not hasattr(HttpSmugglingTest, "test_pipelined_" + _name), _name
    setattr(HttpSmugglingTest, "test_pipelined_" + _name,
            _make_pipelined(_listener, _bad, _tail, _status, _citation))


if __name__ == "__main__":
    unittest.main(verbosity=2)
