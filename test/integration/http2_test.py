"""HTTP/2 downstream, end to end: real clients (curl --http2 / --http2-prior-knowledge, nghttp,
h2load, a raw frame client and a multiplexing one, h2client.py) talk HTTP/2 to sluice, which
proxies to real HTTP/1.1 origins (harness.HttpOrigin).

- Codec choice: h2 by ALPN on TLS, h2c by the prior-knowledge preface, HTTP/1.1 on the same
  listener; codec_type HTTP1 refusing a preface and HTTP2 refusing HTTP/1.
- SETTINGS as configured (and the defaults), as a raw client sees them, and what they enforce.
- Bodies of many sizes both ways (around the frame size, the windows, MiBs), both upstream
  framings of the request (Content-Length, chunked) and of the response, many streams at once;
  trailers both ways; the HTTP/1.1 request the origin gets (Host from :authority, cookies joined,
  no connection-specific field, X-Forwarded-Proto); Content-Length checked against DATA.
- Flow control: a stalled upload, or a response the client does not read, holds its own stream
  (boundedly), never the others on the connection.
- Drain (GOAWAY with the last stream id; streams in flight finish), idle and stream timeouts,
  max_requests_per_connection, PING keep-alive.
- Plugin filters (test/plugin/plugins/test_filters.cc) over HTTP/1.1 and HTTP/2 alike.

Where sluice does not do what it should, the test asserts the right behaviour and is marked
@known_bug (unittest.expectedFailure; its docstring says what happens instead);
SLUICE_SHOW_KNOWN_BUGS=1 runs those as ordinary tests.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import h2client  # noqa: E402
import h2frames as h2  # noqa: E402
import tls_pki  # noqa: E402
from harness import HttpOrigin, pattern_bytes, pattern_digest, stat  # noqa: E402

KiB = 1024
MiB = 1024 * 1024
# Around the default frame size (16384), the default client window (65535), sluice's default
# stream window (256 KiB), and several MiB.
SIZES = (0, 1, 16383, 16384, 16385, 65535, 65536, 65537, 262143, 262144, 262145, MiB,
         4 * MiB + 7)

CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
H2LOAD = shutil.which("h2load")
TOOL_TIMEOUT = 60

def known_bug(test):
    """unittest.expectedFailure (the test asserts what sluice should do, and its docstring
    says what it does instead), unless SLUICE_SHOW_KNOWN_BUGS is set: then an ordinary test,
    to see how it fails."""
    if os.environ.get("SLUICE_SHOW_KNOWN_BUGS", "") not in ("", "0"):
        return test
    return unittest.expectedFailure(test)


PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin",
                                         "plugins"))


# ------------------------------------------------------------------------------------------------
# Configs


def with_tls(config, tls_context, listener="web"):
    """The listener's connection manager moved into one TLS filter chain."""
    for l in config["listeners"]:
        if l["name"] == listener:
            hcm = l.pop("filters")[0]["httpConnectionManager"]
            l["filterChains"] = [{"tlsContext": tls_context,
                                  "filters": [{"httpConnectionManager": hcm}]}]
    return config


def hcm_of(config, listener="web"):
    for l in config["listeners"]:
        if l["name"] == listener:
            if "filters" in l:
                return l["filters"][0]["httpConnectionManager"]
            return l["filterChains"][0]["filters"][0]["httpConnectionManager"]
    raise KeyError(listener)


def proxy_config(origin_port, hcm=None, h2opts=None, tls_context=None, filters_before=(),
                 drain_timeout=None):
    """routed_config() to the origin, with `hcm` fields, http2ProtocolOptions `h2opts`, plugin
    filters before the router, and a TLS chain when tls_context is given."""
    hcm = dict(hcm or {})
    if h2opts:
        hcm["http2ProtocolOptions"] = h2opts
    cfg = harness.routed_config(origin_port, hcm=hcm)
    if filters_before:
        hcm_of(cfg)["httpFilters"][:0] = list(filters_before)
        cfg["pluginDirs"] = [PLUGIN_DIR]
    if drain_timeout:
        cfg["drainTimeout"] = drain_timeout
    if tls_context:
        with_tls(cfg, tls_context)
    return cfg


# ------------------------------------------------------------------------------------------------
# Real clients


class ToolResult:
    def __init__(self, args, proc):
        self.args = args
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr.decode(errors="replace")

    @property
    def text(self):
        return self.stdout.decode(errors="replace")

    def describe(self):
        return "$ %s\nrc=%d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.returncode, self.text[-4000:], self.stderr[-4000:])


def run_tool(args, input_bytes=None, timeout=TOOL_TIMEOUT):
    proc = subprocess.run(args, input=input_bytes, capture_output=True, timeout=timeout,
                          stdin=None if input_bytes is not None else subprocess.DEVNULL)
    return ToolResult(args, proc)


def curl(url, http="2-prior-knowledge", data=None, headers=(), extra=(), cafile=None,
         resolve=None, timeout=20):
    """curl URL; http: "2-prior-knowledge", "2" or "1.1". data: bytes to POST. Returns a
    tls_pki.CurlResult (status, http_version, headers, body, returncode, error)."""
    import json
    tmp = tempfile.mkdtemp(prefix="sluice-curl-")
    try:
        head_file = os.path.join(tmp, "headers")
        body_file = os.path.join(tmp, "body")
        args = [CURL, "-sS", "--max-time", str(timeout), "-D", head_file, "-o", body_file,
                "-w", "%{json}", "--http" + http]
        if cafile:
            args += ["--cacert", cafile]
        if resolve:
            args += ["--resolve", resolve]
        if data is not None:
            data_file = os.path.join(tmp, "data")
            with open(data_file, "wb") as f:
                f.write(data)
            args += ["--data-binary", "@" + data_file]
        for h in headers:
            args += ["-H", h]
        args += list(extra) + [url]
        r = run_tool(args, timeout=timeout + 10)
        res = tls_pki.CurlResult()
        res.args, res.returncode, res.stderr = args, r.returncode, r.stderr
        try:
            res.json = json.loads(r.text or "{}")
        except ValueError:
            res.json = {}
        res.status = int(res.json.get("http_code") or res.json.get("response_code") or 0)
        res.http_version = res.json.get("http_version") or None
        res.ssl_verify_result = res.json.get("ssl_verify_result")
        res.error = res.json.get("errormsg") or (r.stderr.strip() or None if r.returncode else
                                                 None)
        res.headers = []
        if os.path.exists(head_file):
            with open(head_file, "rb") as f:
                blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
            if blocks:
                for line in blocks[-1].split("\r\n")[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        res.headers.append((name.strip(), value.strip()))
        res.body = b""
        if os.path.exists(body_file):
            with open(body_file, "rb") as f:
                res.body = f.read()
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_NGHTTP_STAT = re.compile(r"^\s*(\d+)\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s+(\S+)\s+(\S+)\s*$")


def nghttp_codes(text):
    """The status codes of nghttp -s's per-request statistics lines."""
    return [int(m.group(2)) for m in map(_NGHTTP_STAT.match, text.splitlines()) if m]


_H2LOAD_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                              r"(\d+) failed, (\d+) errored, (\d+) timeout")
_H2LOAD_CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_H2LOAD_TRAFFIC = re.compile(r"traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers .*?, \S+ "
                             r"\((\d+)\) data")


def h2load(url, n, c, m, data_file=None, extra=(), timeout=TOOL_TIMEOUT):
    """h2load -n N -c C -m M URL; returns (ToolResult, dict of total, started, done, succeeded,
    failed, errored, timeout, 2xx, 3xx, 4xx, 5xx, data (response DATA bytes))."""
    args = [H2LOAD, "-n", str(n), "-c", str(c), "-m", str(m)]
    if data_file:
        args += ["-d", data_file]
    args += list(extra) + [url]
    r = run_tool(args, timeout=timeout)
    out = {}
    req = _H2LOAD_REQUESTS.search(r.text)
    codes = _H2LOAD_CODES.search(r.text)
    traffic = _H2LOAD_TRAFFIC.search(r.text)
    if req:
        out.update(zip(("total", "started", "done", "succeeded", "failed", "errored",
                        "timeout"), map(int, req.groups())))
    if codes:
        out.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups())))
    if traffic:
        out["data"] = int(traffic.group(3))
    return r, out


def sha(data):
    return hashlib.sha256(data).hexdigest()


def header_map(pairs):
    """{lower-case name: [values]} of (name, value) pairs."""
    out = {}
    for n, v in pairs:
        out.setdefault(n.lower(), []).append(v)
    return out


# Fields RFC 9113 §8.2.2 calls connection-specific (plus HTTP2-Settings, meaningless past h2c).
CONNECTION_SPECIFIC = ("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                       "upgrade", "te", "http2-settings")


# ------------------------------------------------------------------------------------------------
# Base


class H2TestCase(harness.SluiceTestCase):
    """An origin per test; start() runs sluice in front of it; mux() opens an HTTP/2 client
    connection (TLS when the listener is TLS)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("h2-root")
        cls.cert = cls.pki.server_cert(cls.root, ["h2.test", "localhost", "127.0.0.1"])

    def setUp(self):
        super().setUp()
        self.origin = self.server(HttpOrigin)

    def tls_context(self, alpn=None):
        common = {"tlsCertificates": [{"certificateChain": {"filename": self.cert.chain},
                                       "privateKey": {"filename": self.cert.key}}]}
        if alpn is not None:
            common["alpnProtocols"] = list(alpn)
        return {"commonTlsContext": common}

    def start(self, hcm=None, h2opts=None, tls=False, filters_before=(), drain_timeout=None,
              **kw):
        cfg = proxy_config(self.origin.addr[1], hcm=hcm, h2opts=h2opts,
                           tls_context=self.tls_context() if tls else None,
                           filters_before=filters_before, drain_timeout=drain_timeout)
        s = self.start_sluice(cfg, **kw)
        s.tls = tls
        return s

    def mux(self, s, listener="web", **kw):
        host, port = s.addr(listener)
        kw.setdefault("tls", getattr(s, "tls", False))
        m = h2client.Mux.connect(host, port, **kw)
        self.addCleanup(m.close)
        return m

    def raw(self, s, listener="web", handshake=True, **kw):
        """An h2frames connection (for what no well-behaved client sends)."""
        host, port = s.addr(listener)
        kw.setdefault("tls", getattr(s, "tls", False))
        kw.setdefault("timeout", 5.0)
        conn = h2.H2Conn(host, port, **kw)
        conn.connect()
        self.addCleanup(conn.close)
        if handshake:
            conn.handshake()
        return conn

    def url(self, s, path, listener="web"):
        host, port = s.addr(listener)
        return "%s://%s:%d%s" % ("https" if getattr(s, "tls", False) else "http", host, port,
                                 path)

    def curl_tls(self, s, path, http="2", **kw):
        port = s.addr("web")[1]
        return curl("https://h2.test:%d%s" % (port, path), http=http, cafile=self.root.cert,
                    resolve="h2.test:%d:127.0.0.1" % port, **kw)

    def exchanges(self, path):
        with self.origin.lock:
            return [e for e in self.origin.exchanges if e["path"] == path]

    def requests_for(self, path):
        with self.origin.lock:
            return [r for r in self.origin.requests if r[1] == path]


def needs(*tools):
    missing = [t for t, path in (("curl", CURL), ("nghttp", NGHTTP), ("h2load", H2LOAD))
               if t in tools and path is None]
    return unittest.skipIf(missing, "not installed: %s" % ", ".join(missing))


# ------------------------------------------------------------------------------------------------
# Which codec


class CodecSelectionTest(H2TestCase):

    @needs("curl", "nghttp")
    def test_h2_over_tls_is_chosen_by_alpn_and_http11_stays_on_the_same_listener(self):
        s = self.start(tls=True)
        port = s.addr("web")[1]
        r = self.curl_tls(s, "/gen?size=20000", http="2")
        self.assertEqual((r.status, r.http_version), (200, "2"), r.describe())
        self.assertEqual(pattern_digest("gen", 20000), sha(r.body))
        r = self.curl_tls(s, "/gen?size=20000", http="1.1")
        self.assertEqual((r.status, r.http_version), (200, "1.1"), r.describe())
        self.assertEqual(pattern_digest("gen", 20000), sha(r.body))
        # nghttp (h2 only) over TLS.
        n = run_tool([NGHTTP, "-n", "-s", "https://127.0.0.1:%d/gen?size=100" % port])
        self.assertEqual(0, n.returncode, n.describe())
        self.assertEqual([200], nghttp_codes(n.text), n.describe())
        # What ALPN selects for a raw client: h2 when offered (first or not), http/1.1 else.
        for offer, chosen in ((("h2", "http/1.1"), "h2"), (("http/1.1", "h2"), "h2"),
                              (("http/1.1",), "http/1.1")):
            with self.subTest(offer=offer):
                conn = h2.H2Conn("127.0.0.1", port, tls=True, alpn=offer)
                conn.connect()
                self.addCleanup(conn.close)
                self.assertEqual(chosen, conn.alpn_protocol)
                if chosen == "h2":
                    conn.handshake()
                    conn.request(1, h2.request_headers("h2.test", tls=True, path="/alpn"))
                    self.assertEqual("200", conn.read_response(1).status)
                if chosen == "http/1.1":
                    conn.send(harness.http_request("GET", "/h1-over-tls",
                                                   headers=[("Connection", "close")]))
                    data, _ = harness.recv_until_closed(conn.sock)
                    resp = harness.parse_response(data, at_eof=True)[0]
                    self.assertEqual(200, resp.status, data[:300])
                    self.assertTrue(resp.body.startswith(b"GET /h1-over-tls"), resp.body)
        st = s.stats()
        self.assertEqual(4, stat(st, "http.web.downstream_cx_http2_total"))
        self.assertEqual(2, stat(st, "http.web.downstream_cx_http1_total"))

    @needs("curl", "nghttp")
    def test_h2c_prior_knowledge_and_http11_share_a_cleartext_listener(self):
        s = self.start()
        addr = s.addr("web")
        r = curl(self.url(s, "/gen?size=70000&framing=chunked"), http="2-prior-knowledge")
        self.assertEqual((r.status, r.http_version), (200, "2"), r.describe())
        self.assertEqual(pattern_digest("gen", 70000), sha(r.body))
        n = run_tool([NGHTTP, "-n", "-s", self.url(s, "/gen?size=70000")])
        self.assertEqual(0, n.returncode, n.describe())
        self.assertEqual([200], nghttp_codes(n.text), n.describe())
        # HTTP/1.1 on the same port, including methods that start like the preface ("P").
        for method in ("GET", "POST", "PUT", "PATCH"):
            with self.subTest(method=method):
                c = harness.HttpClient.connect(addr)
                self.addCleanup(c.close)
                c.send(harness.http_request(method, "/h1", body=b"abc"))
                resp = c.read_response()
                self.assertEqual(200, resp.status, resp.raw)
                self.assertEqual(b"%s /h1 xff=127.0.0.1 xfp=http via= body=3:abc" %
                                 method.encode(), resp.body)
        st = s.stats()
        self.assertEqual(2, stat(st, "http.web.downstream_cx_http2_total"))
        self.assertEqual(4, stat(st, "http.web.downstream_cx_http1_total"))

    def test_a_preface_arriving_byte_by_byte_is_still_http2(self):
        s = self.start()
        conn = self.raw(s, handshake=False)
        for b in h2.PREFACE:
            self.assertTrue(conn.send(bytes([b])))
        conn.handshake(send_preface=False)
        conn.request(1, h2.request_headers("h2.test", path="/split"))
        resp = conn.read_response(1)
        self.assertTrue(resp.complete, resp)
        self.assertEqual("200", resp.status)
        self.assertTrue(resp.body.startswith(b"GET /split"), resp.body)

    @needs("curl")
    def test_an_h2c_upgrade_request_is_answered_over_http11(self):
        # No "Upgrade: h2c" (RFC 9113 dropped it): curl --http2 on cleartext asks for it, and
        # gets its answer over HTTP/1.1.
        s = self.start()
        r = curl(self.url(s, "/upgrade?x=1"), http="2")
        self.assertEqual((r.status, r.http_version), (200, "1.1"), r.describe())
        self.assertTrue(r.body.startswith(b"GET /upgrade?x=1"), r.body)
        _, _, headers = self.requests_for("/upgrade?x=1")[0]
        names = {k.lower() for k in headers}
        self.assertFalse(names & {"upgrade", "http2-settings", "connection"}, headers)

    def test_codec_http1_refuses_the_preface(self):
        s = self.start(hcm={"codecType": "HTTP1"})
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(h2.PREFACE + h2.settings_frame())
        resp = c.read_response()
        # Refused (the exact status: test_codec_http1_answers_the_preface_400).
        self.assertIn(resp.status, (400, 505), resp.raw)
        self.assertTrue(resp.has_token("connection", "close"), resp.raw)
        c.expect_closed()
        st = s.stats()
        self.assertEqual(1, stat(st, "http.web.downstream_rq_protocol_error"))
        self.assertEqual(0, stat(st, "http.web.downstream_cx_http2_total"))
        self.assertEqual([], self.origin.requests)
        # HTTP/1.1 is served.
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", "/h1"))
        self.assertEqual(200, c.read_response().status)

    def test_codec_http1_answers_the_preface_505(self):
        """On an HTTP/1-only listener the preface's request line "PRI * HTTP/2.0" is a request
        of a version the listener does not speak: 505 HTTP Version Not Supported (RFC 9110
        §15.6.6), then the connection closes."""
        s = self.start(hcm={"codecType": "HTTP1"})
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(h2.PREFACE)
        self.assertEqual(505, c.read_response().status)

    @needs("curl")
    def test_codec_http1_tls_chain_does_not_offer_h2(self):
        s = self.start(hcm={"codecType": "HTTP1"}, tls=True)
        r = self.curl_tls(s, "/gen?size=10", http="2")
        self.assertEqual((r.status, r.http_version), (200, "1.1"), r.describe())
        conn = h2.H2Conn("127.0.0.1", s.addr("web")[1], tls=True, alpn=("h2", "http/1.1"))
        conn.connect()
        self.addCleanup(conn.close)
        self.assertEqual("http/1.1", conn.alpn_protocol)

    def test_codec_http2_refuses_http1(self):
        s = self.start(hcm={"codecType": "HTTP2"})
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", "/h1"))
        data = c.expect_closed()
        # What comes back is HTTP/2 (the server preface, a GOAWAY PROTOCOL_ERROR), never an
        # HTTP/1 response.
        self.assertFalse(data.startswith(b"HTTP/"), data)
        frames = parse_frames(data)
        goaways = [f for f in frames if f.type == h2.GOAWAY]
        self.assertEqual([h2.PROTOCOL_ERROR], [f.error_code for f in goaways], frames)
        st = s.stats()
        self.assertEqual(1, stat(st, "http.web.http2.rx_protocol_error"))
        self.assertEqual([], self.origin.requests)
        # h2c prior knowledge is served.
        m = self.mux(s)
        r = m.wait(m.request("GET", "/h2"))
        self.assertEqual(200, r.status)

    @needs("curl")
    def test_codec_http2_over_tls(self):
        s = self.start(hcm={"codecType": "HTTP2"}, tls=True)
        r = self.curl_tls(s, "/gen?size=10", http="2")
        self.assertEqual((r.status, r.http_version), (200, "2"), r.describe())
        # ALPN never selects http/1.1 here, and a client that speaks only HTTP/1.1 gets no
        # HTTP/1 answer (the handshake completes without ALPN; what follows is HTTP/2's
        # GOAWAY, which curl reports as "HTTP/0.9").
        conn = h2.H2Conn("127.0.0.1", s.addr("web")[1], tls=True, alpn=("h2", "http/1.1"))
        conn.connect()
        self.addCleanup(conn.close)
        self.assertEqual("h2", conn.alpn_protocol)
        r = self.curl_tls(s, "/gen?size=10", http="1.1")
        self.assertNotEqual(200, r.status, r.describe())
        self.assertEqual(1, len(self.requests_for("/gen?size=10")))


def parse_frames(data):
    """The whole frames in `data` (bytes a server sent), as h2frames.Frame objects."""
    frames = []
    pos = 0
    while len(data) - pos >= h2.FRAME_HEADER_LEN:
        length = int.from_bytes(data[pos:pos + 3], "big")
        if len(data) - pos - 9 < length:
            break
        ftype, flags, sid = data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5:pos + 9],
                                                                          "big")
        frames.append(h2.Frame(ftype, flags, sid & 0x7fffffff, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return frames


# ------------------------------------------------------------------------------------------------
# SETTINGS


class SettingsTest(H2TestCase):

    def first_window_update(self, conn):
        """The connection-level WINDOW_UPDATE the server sends after its SETTINGS (or None)."""
        res = conn.wait_for(h2.is_frame(h2.WINDOW_UPDATE, stream_id=0), timeout=1.0)
        return res.event.frame.window_increment if res else None

    def test_defaults(self):
        s = self.start()
        conn = self.raw(s, handshake=False)
        settings = conn.handshake()
        self.assertEqual({h2.SETTINGS_MAX_CONCURRENT_STREAMS: 100,
                          h2.SETTINGS_INITIAL_WINDOW_SIZE: 256 * KiB,
                          h2.SETTINGS_MAX_FRAME_SIZE: 16384,
                          h2.SETTINGS_MAX_HEADER_LIST_SIZE: 60 * KiB,
                          h2.SETTINGS_HEADER_TABLE_SIZE: 4096}, settings)
        # The connection window: 1 MiB.
        m = self.mux(s)
        self.assertEqual(MiB, m.conn_send_window)

    def test_settings_from_config(self):
        s = self.start(h2opts={"maxConcurrentStreams": 7, "initialStreamWindowSize": 100000,
                               "initialConnectionWindowSize": 2 * MiB, "maxFrameSize": 32768,
                               "maxHeaderListSize": 8192, "hpackTableSize": 8192})
        conn = self.raw(s)
        self.assertEqual({h2.SETTINGS_MAX_CONCURRENT_STREAMS: 7,
                          h2.SETTINGS_INITIAL_WINDOW_SIZE: 100000,
                          h2.SETTINGS_MAX_FRAME_SIZE: 32768,
                          h2.SETTINGS_MAX_HEADER_LIST_SIZE: 8192,
                          h2.SETTINGS_HEADER_TABLE_SIZE: 8192}, conn.server_settings)
        m = self.mux(s)
        self.assertEqual(2 * MiB, m.conn_send_window)
        self.assertEqual(100000, m.peer_initial_window)
        # What they allow: a 32768-octet DATA frame is taken...
        body = pattern_bytes("frame", 32768)
        conn.request(1, h2.request_headers("h2.test", method="POST", path="/echo"), body=body,
                     end_stream=True)
        resp = conn.read_response(1)
        self.assertTrue(resp.complete, resp)
        self.assertEqual(sha(body), resp.header("x-request-sha256"))
        # ... a header list over 8192 octets is answered 431 (on its stream only)...
        big = [("x-big-%d" % i, "v" * 100) for i in range(80)]
        conn.request(3, h2.request_headers("h2.test", path="/big-headers", extra=big))
        resp = conn.read_response(3)
        self.assertEqual("431", resp.status, resp)
        self.assertEqual([], self.requests_for("/big-headers"))
        # ... and the connection goes on.
        conn.request(5, h2.request_headers("h2.test", path="/after"))
        resp = conn.read_response(5)
        self.assertEqual("200", resp.status, resp)
        self.assertEqual(1, stat(s.stats(), "http.web.http2.header_overflow"))

    def test_streams_over_the_limit_before_the_client_saw_it_are_refused(self):
        # The client opens streams before our SETTINGS reach it: those over the limit are
        # refused (REFUSED_STREAM: never processed, safe to retry), the others served.
        s = self.start(h2opts={"maxConcurrentStreams": 2})
        conn = self.raw(s, handshake=False)
        conn.write_preface()
        conn.write_settings([])
        for sid in (1, 3, 5, 7, 9):
            conn.write_headers(sid, conn.encode_headers(
                h2.request_headers("h2.test", path="/burst/%d" % sid)), end_stream=True)
        ends = {}

        def end(ev):
            if ev.kind != h2.FRAME:
                return False
            f = ev.frame
            if f.type == h2.HEADERS:
                conn.decode_headers(f.block_fragment)  # keeps the HPACK table in step
            if f.end_stream or f.type == h2.RST_STREAM:
                ends[f.stream_id] = f
            return len(ends) == 5

        res = conn.wait_for(end, timeout=10)
        self.assertTrue(res, res.events)
        self.assertEqual({1: True, 3: True}, {sid: f.end_stream for sid, f in ends.items()
                                              if sid in (1, 3)})
        self.assertEqual({5: h2.REFUSED_STREAM, 7: h2.REFUSED_STREAM, 9: h2.REFUSED_STREAM},
                         {sid: f.error_code for sid, f in ends.items() if sid > 3})
        self.assertEqual(["/burst/1", "/burst/3"], sorted(p for _, p, _ in self.origin.requests))
        # The connection goes on.
        conn.request(11, h2.request_headers("h2.test", path="/after"))
        resp = conn.read_response(11)
        self.assertEqual("200", resp.status, resp.events)
        st = s.stats()
        self.assertEqual(3, stat(st, "http.web.http2.stream_refused"))
        self.assertEqual(3, stat(st, "http.web.http2.tx_reset"))

    @known_bug
    def test_a_stream_over_the_limit_is_refused_alone(self):
        """Once the client acknowledged SETTINGS_MAX_CONCURRENT_STREAMS, a stream over it is
        refused alone (RFC 9113 §5.1.2: a stream error, PROTOCOL_ERROR or REFUSED_STREAM; nginx
        and Envoy send REFUSED_STREAM), and the streams in flight finish.

        FAILS: nghttp2 ends the whole connection (GOAWAY PROTOCOL_ERROR, "request HEADERS: max
        concurrent streams exceeded"; the RFC allows that escalation), so the two streams
        waiting on their upstream die with it and the refusal is not counted. (The same bug as
        http2_protections_test's test_streams_over_max_concurrent_are_refused, seen from
        streams whose upstream is in flight.)"""
        s = self.start(h2opts={"maxConcurrentStreams": 2})
        m = self.mux(s)
        a = m.request("GET", "/gate/a")
        b = m.request("GET", "/gate/b")
        self.origin.wait_request(lambda _m, p, _h: p == "/gate/b")
        c = m.request("GET", "/over-the-limit")
        m.pump(lambda: c.done or m.closed is not None, timeout=10, raise_on_close=False)
        self.assertIn(c.reset_code, (h2.REFUSED_STREAM, h2.PROTOCOL_ERROR), m.frames[-4:])
        self.origin.gate("a").set()
        self.origin.gate("b").set()
        m.wait(a, b)
        self.assertEqual((200, 200), (a.status, b.status))
        self.assertEqual([], self.requests_for("/over-the-limit"))
        self.assertEqual(1, stat(s.stats(), "http.web.http2.stream_refused"))



# ------------------------------------------------------------------------------------------------
# Bodies


class BodyTest(H2TestCase):
    """Request and response bodies through the proxy (h2c; BodyTlsTest runs them over TLS)."""

    tls = False

    def proxy(self, **kw):
        return self.start(tls=self.tls, **kw)

    def test_request_bodies_of_many_sizes_reach_the_origin_in_both_framings(self):
        s = self.proxy()
        m = self.mux(s)
        cases = []
        for size in SIZES:
            body = pattern_bytes("req", size)
            # With content-length the origin gets a Content-Length body, without it a chunked
            # one (a body whose length the proxy cannot know in advance).
            for framing, cl in (("cl", True), ("chunked", False)):
                path = "/echo?size=%d&up=%s" % (size, framing)
                cases.append((size, framing, path, body,
                              m.request("POST", path, body=body, content_length=cl,
                                        keep_body=False)))
        # A request without a body at all (END_STREAM on HEADERS) next to one whose body is an
        # empty DATA frame.
        bare = m.request("POST", "/echo?bare", body=None)
        m.wait(*[c[4] for c in cases] + [bare])
        for size, framing, path, body, r in cases:
            with self.subTest(size=size, framing=framing):
                self.assertTrue(r.complete, r)
                self.assertEqual(200, r.status)
                self.assertEqual(str(size), r.header("x-request-length"))
                self.assertEqual(sha(body), r.header("x-request-sha256"))
                self.assertEqual(sha(body), r.sha256)  # echoed back whole
                ex = self.exchanges(path)
                self.assertEqual(1, len(ex), path)
                self.assertTrue(ex[0]["complete"])
                self.assertEqual(size, ex[0]["body_length"])
                headers = header_map(ex[0]["headers"])
                if framing == "cl":
                    self.assertEqual([str(size)], headers.get("content-length"), headers)
                    self.assertFalse(ex[0]["chunked"])
                elif size > 0:
                    self.assertTrue(ex[0]["chunked"], headers)
                    self.assertNotIn("content-length", headers)
        self.assertEqual("0", bare.header("x-request-length"))
        st = s.stats()
        self.assertEqual(len(cases) + 1, stat(st, "http.web.downstream_rq_2xx"))
        self.assertEqual(0, stat(st, "http.web.downstream_rq_reset"))

    def test_response_bodies_of_many_sizes_in_both_upstream_framings(self):
        s = self.proxy()
        m = self.mux(s)
        cases = []
        for size in SIZES:
            for framing in ("cl", "chunked"):
                # Sent by the origin in odd pieces: 1000 bytes, or 16385 (one byte past a frame).
                for piece in (1000, 16385):
                    path = "/gen?size=%d&framing=%s&chunk=%d&seed=r%d" % (size, framing, piece,
                                                                        size)
                    cases.append((size, framing, piece,
                                  m.request("GET", path, keep_body=False)))
        m.wait(*[c[3] for c in cases], timeout=120)
        for size, framing, piece, r in cases:
            with self.subTest(size=size, framing=framing, piece=piece):
                self.assertTrue(r.complete, r)
                self.assertEqual(200, r.status)
                self.assertEqual(size, r.body_length)
                self.assertEqual(pattern_digest("r%d" % size, size), r.sha256)
                # Content-Length framing is announced to the client; a chunked body is not.
                self.assertEqual(str(size) if framing == "cl" else None,
                                 r.header("content-length"))
                self.assertIsNone(r.header("transfer-encoding"))

    def test_bodies_both_ways_at_once(self):
        s = self.proxy()
        m = self.mux(s)
        streams = []
        for size in (65537, MiB, 4 * MiB + 3):
            body = pattern_bytes("both", size)
            for up in (True, False):
                for down in ("cl", "chunked"):
                    streams.append((body, m.request("POST", "/echo?framing=" + down, body=body,
                                                    content_length=up, keep_body=False)))
        m.wait(*[r for _, r in streams], timeout=120)
        for body, r in streams:
            self.assertTrue(r.complete, r)
            self.assertEqual((len(body), sha(body)), (r.body_length, r.sha256))

    def test_tiny_and_padded_data_frames(self):
        # Padding counts against flow control: with a 65535 window, 1000 padded frames carrying
        # 1 byte and 200 bytes of padding each need their padding credited back.
        s = self.proxy(h2opts={"initialStreamWindowSize": 65535,
                               "initialConnectionWindowSize": 65535})
        m = self.mux(s)
        body = pattern_bytes("tiny", 1000)
        r = m.request("POST", "/echo", body=b"", end_stream=False, content_length=1000)
        for i in range(1000):
            m.send_data(r, body[i:i + 1], end_stream=i == 999)
        m.wait(r)
        self.assertEqual((200, sha(body)), (r.status, r.header("x-request-sha256")))
        padded = m.request("POST", "/echo", body=body, pad=200, frame_size=1)
        m.wait(padded, timeout=60)
        self.assertEqual((200, sha(body)), (padded.status, padded.header("x-request-sha256")))

    def test_a_response_is_streamed_and_a_slow_one_holds_nobody(self):
        s = self.proxy()
        m = self.mux(s)
        slow = m.request("GET", "/gate/slow")  # no answer until its gate opens
        streamed = m.request("GET", "/gate/streamed?head=1")
        # The head and the first chunk reach the client while the origin still holds the rest.
        m.pump(lambda: streamed.body == b"head\n", timeout=20, what="the first chunk")
        self.assertEqual(200, streamed.status)
        self.assertFalse(streamed.done)
        # Meanwhile other streams come and go.
        others = [m.request("GET", "/gen?size=%d" % n, keep_body=False) for n in (0, 1, 70000)]
        m.wait(*others)
        self.assertEqual([200] * 3, [o.status for o in others])
        self.assertFalse(slow.done or streamed.done)
        self.origin.gate("streamed").set()
        m.wait(streamed)
        self.assertEqual(b"head\ntail\n", streamed.body)
        self.origin.gate("slow").set()
        self.assertEqual(200, m.wait(slow).status)

    def test_head_and_expect_100_continue(self):
        s = self.proxy()
        m = self.mux(s)
        head = m.wait(m.request("HEAD", "/gen?size=12345"))
        self.assertTrue(head.complete, head)
        self.assertEqual((200, "12345", 0), (head.status, head.header("content-length"),
                                              head.body_length))
        # The client waits for 100 before its body (RFC 9110 §10.1.1): it must come.
        body = pattern_bytes("expect", 70000)
        r = m.request("POST", "/echo", headers=[("expect", "100-continue")], body=b"",
                      end_stream=False, content_length=len(body))
        m.pump(lambda: r.informational or r.done, timeout=10, what="100 Continue")
        self.assertEqual(["100"], [dict(h)[":status"] for h in r.informational], r)
        m.send_data(r, body, end_stream=True)
        m.wait(r)
        self.assertEqual((200, sha(body)), (r.status, r.sha256))
        # The origin never saw the Expect field: the proxy answered it.
        ex = self.exchanges("/echo")
        self.assertNotIn("expect", header_map(ex[-1]["headers"]))

    def test_statuses_without_a_body(self):
        s = self.proxy()
        m = self.mux(s)
        for code, length in ((204, None), (304, "1234"), (200, "11"), (404, "11")):
            with self.subTest(code=code):
                r = m.wait(m.request("GET", "/status/%d" % code))
                self.assertTrue(r.complete, r)
                self.assertEqual((code, length), (r.status, r.header("content-length")))
                frames = [f for f in m.frames if f.stream_id == r.id]
                if code in (204, 304):
                    # The head ends the stream: no DATA frame at all (a 304's Content-Length is
                    # the representation's, RFC 9110 §8.6).
                    self.assertEqual([(h2.HEADERS, True)], [(f.type, f.end_stream)
                                                            for f in frames])
                else:
                    self.assertEqual(b"status %d\n" % code, r.body)

    @needs("curl")
    def test_curl_uploads_and_downloads(self):
        s = self.proxy()
        for size in (0, 16384, 65537, MiB + 1):
            body = pattern_bytes("curl", size)
            with self.subTest(size=size):
                for framing in ("cl", "chunked"):
                    path = "/echo?framing=%s" % framing
                    if self.tls:
                        r = self.curl_tls(s, path, data=body)
                    else:
                        r = curl(self.url(s, path), data=body)
                    self.assertEqual((r.status, r.http_version), (200, "2"), r.describe())
                    self.assertEqual(sha(body), sha(r.body))
                    path = "/gen?size=%d&framing=%s&seed=curl" % (size, framing)
                    r = self.curl_tls(s, path) if self.tls else curl(self.url(s, path))
                    self.assertEqual((r.status, r.http_version), (200, "2"), r.describe())
                    self.assertEqual(sha(body), sha(r.body))

    @needs("nghttp")
    def test_nghttp_uploads_and_multiplexes(self):
        s = self.proxy()
        body = pattern_bytes("nghttp", 300000)
        data = os.path.join(self.tmpdir, "upload")
        with open(data, "wb") as f:
            f.write(body)
        for framing in ("cl", "chunked"):
            r = run_tool([NGHTTP, "-d", data, self.url(s, "/echo?framing=" + framing)])
            self.assertEqual(0, r.returncode, r.describe())
            self.assertEqual(sha(body), sha(r.stdout))
        # -m: the same request 20 times at once on one connection.
        r = run_tool([NGHTTP, "-n", "-s", "-m", "20", self.url(s, "/gen?size=100000")])
        self.assertEqual(0, r.returncode, r.describe())
        self.assertEqual([200] * 20, nghttp_codes(r.text), r.describe())
        r = run_tool([NGHTTP, "-n", "-s", "-m", "10", "-d", data, self.url(s, "/echo")])
        self.assertEqual(0, r.returncode, r.describe())
        self.assertEqual([200] * 10, nghttp_codes(r.text), r.describe())
        st = s.stats()
        self.assertEqual(4, stat(st, "http.web.downstream_cx_http2_total"))
        self.assertEqual(32, stat(st, "http.web.downstream_rq_2xx"))

    @needs("h2load")
    def test_h2load_many_streams_on_few_connections(self):
        s = self.proxy()
        data = os.path.join(self.tmpdir, "upload")
        with open(data, "wb") as f:
            f.write(pattern_bytes("h2load", 20000))
        runs = (("/gen?size=0", None, 0), ("/gen?size=16385&framing=chunked", None, 16385),
                ("/gen?size=100000", None, 100000), ("/echo", data, 20000),
                ("/echo?framing=chunked", data, 20000))
        total = 0
        for path, upload, size in runs:
            with self.subTest(path=path, upload=bool(upload)):
                r, out = h2load(self.url(s, path), n=300, c=3, m=20, data_file=upload)
                self.assertEqual(0, r.returncode, r.describe())
                self.assertEqual((300, 0, 0, 0, 300), (out.get("succeeded"), out.get("failed"),
                                                       out.get("errored"), out.get("timeout"),
                                                       out.get("2xx")), r.describe())
                self.assertEqual(300 * size, out.get("data"), r.describe())
                total += 300
        st = s.stats()
        self.assertEqual(total, stat(st, "http.web.downstream_rq_2xx"))
        self.assertEqual(3 * len(runs), stat(st, "http.web.downstream_cx_http2_total"))
        self.assertEqual(0, stat(st, "http.web.downstream_rq_reset"))


class BodyTlsTest(BodyTest):
    tls = True


# ------------------------------------------------------------------------------------------------
# Trailers


class TrailersTest(H2TestCase):

    def test_request_trailers_reach_the_origin_on_a_chunked_request(self):
        s = self.start()
        m = self.mux(s)
        streams = []
        for size in (0, 1, 16385, 65536, MiB):
            body = pattern_bytes("rt", size)
            path = "/echo?trailers=%d" % size
            streams.append((path, body, m.request(
                "POST", path, body=body, trailers=[("x-checksum", sha(body)), ("x-t2", "two")],
                keep_body=False)))
        m.wait(*[r for _, _, r in streams])
        for path, body, r in streams:
            with self.subTest(size=len(body)):
                self.assertEqual(200, r.status)
                self.assertEqual(sha(body), r.header("x-request-sha256"))
                ex = self.exchanges(path)[0]
                self.assertTrue(ex["chunked"] and ex["complete"], ex)
                self.assertEqual([("x-checksum", sha(body)), ("x-t2", "two")], ex["trailers"])
                self.assertEqual("x-checksum=%s; x-t2=two" % sha(body),
                                 r.header("x-request-trailers"))
        self.assertEqual(0, stat(s.stats(), "http.web.upstream_rq_trailers_dropped"))

    def test_request_trailers_after_a_content_length_body_are_dropped_and_counted(self):
        # HTTP/1.1 has no place for them after a Content-Length body.
        s = self.start()
        m = self.mux(s)
        body = pattern_bytes("rt", 20000)
        r = m.wait(m.request("POST", "/echo?cl-trailers", body=body, content_length=True,
                             trailers=[("x-t", "1")]))
        self.assertEqual((200, sha(body)), (r.status, r.header("x-request-sha256")))
        ex = self.exchanges("/echo?cl-trailers")[0]
        self.assertEqual((False, [], True), (ex["chunked"], ex["trailers"], ex["complete"]))
        self.assertEqual(1, stat(s.stats(), "http.web.upstream_rq_trailers_dropped"))

    def test_response_trailers_from_a_chunked_origin_reach_the_client(self):
        s = self.start()
        m = self.mux(s)
        streams = []
        for size in (0, 1, 16384, 16385, 65537, MiB):
            path = "/gen?size=%d&framing=chunked&trailers=x-sum:%d,grpc-status:0" % (size, size)
            streams.append((size, m.request("GET", path, headers=[("te", "trailers")],
                                            keep_body=False)))
        m.wait(*[r for _, r in streams])
        for size, r in streams:
            with self.subTest(size=size):
                self.assertTrue(r.complete, r)
                self.assertEqual(pattern_digest("gen", size), r.sha256)
                self.assertEqual([("x-sum", str(size)), ("grpc-status", "0")], r.trailers)
                # The trailers end the stream: a HEADERS frame with END_STREAM, after the DATA.
        frames = [f for f in m.frames if f.stream_id == streams[-1][1].id]
        self.assertEqual((h2.HEADERS, True), (frames[-1].type, frames[-1].end_stream))
        self.assertTrue(all(f.type == h2.DATA and not f.end_stream for f in frames[1:-1]))


# ------------------------------------------------------------------------------------------------
# Translation to HTTP/1.1


class TranslationTest(H2TestCase):

    def check_translated(self, s, scheme):
        m = self.mux(s)
        port = s.addr("web")[1]
        authority = "h2.test:%d" % port
        r = m.wait(m.request("GET", "/t?q=1&r=%20x", authority=authority, headers=[
            ("cookie", "a=1"), ("x-custom", "Value, With Comma"), ("cookie", "b=2"),
            ("te", "trailers"), ("cookie", "c=3"), ("x-forwarded-for", "10.0.0.1"),
            ("accept", "*/*")]))
        self.assertEqual(200, r.status, r)
        ex = self.exchanges("/t?q=1&r=%20x")[0]
        headers = header_map(ex["headers"])
        # Host from :authority, alone.
        self.assertEqual([authority], headers.get("host"))
        # The cookie crumbs joined into one field (RFC 9113 §8.2.3), in order.
        self.assertEqual(["a=1; b=2; c=3"], headers.get("cookie"))
        self.assertEqual(["Value, With Comma"], headers.get("x-custom"))
        self.assertEqual(["*/*"], headers.get("accept"))
        # No connection-specific field, no pseudo-field.
        for name in CONNECTION_SPECIFIC:
            self.assertNotIn(name, headers)
        self.assertFalse([n for n in headers if n.startswith(":")], headers)
        self.assertEqual(["10.0.0.1, 127.0.0.1"], headers.get("x-forwarded-for"))
        self.assertEqual([scheme], headers.get("x-forwarded-proto"))
        self.assertEqual("GET", ex["method"])
        # A request with a body: Content-Length as the client announced it.
        r = m.wait(m.request("PUT", "/t-put", body=b"hello", content_length=True,
                             authority=authority))
        self.assertEqual(200, r.status)
        ex = self.exchanges("/t-put")[0]
        self.assertEqual(["5"], header_map(ex["headers"]).get("content-length"))
        self.assertEqual(("PUT", b"hello"), (ex["method"], ex["body_head"]))

    def test_the_origin_gets_http11_h2c(self):
        self.check_translated(self.start(), "http")

    def test_the_origin_gets_http11_tls(self):
        self.check_translated(self.start(tls=True), "https")

    def test_forwarded_proto_is_the_connections_not_the_clients_scheme(self):
        # An h2c client claiming :scheme https does not make the origin believe in TLS.
        s = self.start()
        m = self.mux(s)
        self.assertEqual(200, m.wait(m.request("GET", "/claims-https", scheme="https")).status)
        headers = header_map(self.exchanges("/claims-https")[0]["headers"])
        self.assertEqual(["http"], headers.get("x-forwarded-proto"))

    def test_options_asterisk(self):
        s = self.start()
        m = self.mux(s)
        r = m.wait(m.request(None, None, pseudo=[(":method", "OPTIONS"), (":scheme", "http"),
                                                 (":path", "*"), (":authority", "a.test")]))
        self.assertEqual((200, b"OPTIONS * "), (r.status, r.body[:10]))
        self.assertEqual(["a.test"], header_map(self.exchanges("*")[0]["headers"]).get("host"))

    def test_framing_and_routing_fields_in_request_trailers_never_reach_the_origin(self):
        """Request trailers carrying Content-Length or Host are refused, as sluice's HTTP/1
        side refuses them ("framing or routing field in trailers", 400): an origin that merges
        trailers into the head would reframe or reroute the request (RFC 9110 §6.5.1)."""
        s = self.start()
        m = self.mux(s)
        for name, value in (("content-length", "5"), ("host", "evil.test")):
            with self.subTest(trailer=name):
                path = "/echo?trailer-" + name
                r = m.wait(m.request("POST", path, body=b"hello",
                                     trailers=[(name, value), ("x-ok", "1")]))
                forwarded = [t for e in self.exchanges(path) for t in e["trailers"]
                             if t[0].lower() == name]
                self.assertEqual([], forwarded, r)

    def test_host_without_authority_and_authority_over_host(self):
        s = self.start()
        m = self.mux(s)
        # No :authority (allowed for a request with a Host field): Host goes on as it is.
        r = m.wait(m.request(None, None, pseudo=[(":method", "GET"), (":scheme", "http"),
                                                 (":path", "/no-authority")],
                             headers=[("host", "from-host.test")]))
        self.assertEqual(200, r.status, r)
        self.assertEqual(["from-host.test"], header_map(
            self.exchanges("/no-authority")[0]["headers"]).get("host"))
        # Both: :authority wins (RFC 9113 §8.3.1), and only one Host reaches the origin.
        r = m.wait(m.request("GET", "/both", authority="authority.test",
                             headers=[("host", "other.test")]))
        self.assertEqual(200, r.status, r)
        self.assertEqual(["authority.test"], header_map(
            self.exchanges("/both")[0]["headers"]).get("host"))

    def test_connection_specific_request_fields_are_refused(self):
        s = self.start()
        m = self.mux(s)
        refused = [("connection", "keep-alive"), ("keep-alive", "timeout=5"),
                   ("proxy-connection", "keep-alive"), ("transfer-encoding", "chunked"),
                   ("upgrade", "websocket"), ("te", "gzip"), ("te", "trailers, gzip")]
        for name, value in refused:
            with self.subTest(field=name, value=value):
                r = m.wait(m.request("GET", "/refused-%s" % name, headers=[(name, value)]))
                # A malformed request (RFC 9113 §8.2.2, §8.1.1): a stream error.
                self.assertEqual(h2.PROTOCOL_ERROR, r.reset_code, r)
                self.assertIsNone(r.status)
        # "te: trailers" is the one allowed, and goes no further than the proxy.
        r = m.wait(m.request("GET", "/te-trailers", headers=[("te", "trailers")]))
        self.assertEqual(200, r.status)
        self.assertNotIn("te", header_map(self.exchanges("/te-trailers")[0]["headers"]))
        self.assertEqual([], [p for _, p, _ in self.origin.requests if p.startswith("/refused")])
        st = s.stats()
        self.assertEqual(len(refused), stat(st, "http.web.http2.rx_messaging_error"))
        self.assertEqual(len(refused), stat(st, "http.web.http2.tx_reset"))
        self.assertIsNone(m.closed)

    def test_connection_specific_response_fields_are_removed(self):
        s = self.start()
        m = self.mux(s)
        r = m.wait(m.request("GET", "/hop"))
        self.assertEqual((200, b"hop\n"), (r.status, r.body))
        names = [n for n, _ in r.headers]
        for name in CONNECTION_SPECIFIC + ("x-hop",):
            self.assertNotIn(name, names)
        self.assertEqual("yes", r.header("x-end-to-end"))
        # Every field name is lower case (RFC 9113 §8.2.1), whatever the origin's case.
        self.assertEqual(names, [n.lower() for n in names])

    def test_repeated_response_fields_stay_separate(self):
        # Set-Cookie cannot be joined (RFC 9110 §5.3): three fields in, three out, in order.
        s = self.start()
        m = self.mux(s)
        for name in ("Set-Cookie", "X-Repeated"):
            with self.subTest(name=name):
                r = m.wait(m.request("GET", "/fields?n=0&dup=" + name))
                self.assertEqual(["a=1; Path=/", "b=2, c=3", "d=4"],
                                 r.headers_all(name.lower()))

    def test_content_length_must_match_the_data(self):
        s = self.start()
        m = self.mux(s)
        cases = (("short", 10, b"abcde"), ("long", 5, b"abcdefghij"),
                 ("short-in-frames", 70000, pattern_bytes("cl", 65536)),
                 ("long-in-frames", 65536, pattern_bytes("cl", 70000)))
        for name, declared, body in cases:
            with self.subTest(case=name):
                r = m.wait(m.request("POST", "/echo?cl-" + name, body=body,
                                     content_length=declared))
                # RFC 9113 §8.1.1: malformed, a stream error of type PROTOCOL_ERROR.
                self.assertEqual(h2.PROTOCOL_ERROR, r.reset_code, r)
                self.assertIsNone(r.status, r)
                # Nothing whole reached the origin.
                self.assertFalse([e for e in self.exchanges("/echo?cl-" + name) if e["complete"]])
        # The connection is fine, and a body that matches goes through.
        body = pattern_bytes("cl", 70000)
        r = m.wait(m.request("POST", "/echo?cl-ok", body=body, content_length=70000))
        self.assertEqual((200, sha(body)), (r.status, r.header("x-request-sha256")))
        self.assertIsNone(m.closed)
        self.assertEqual(len(cases), stat(s.stats(), "http.web.http2.rx_messaging_error"))


    def test_response_field_names_arrive_lower_case_and_intact(self):
        # HTTP/1 origins write names in any case; HTTP/2 wants them lower case (RFC 9113
        # §8.2.1), so the proxy lowers them. Heads with more and more such names (short ones
        # and long ones), on one worker, must all arrive byte for byte.
        s = self.start(concurrency=1)
        m = self.mux(s)
        for n, prefix in ((1, "X-S-"), (3, "X-S-"), (7, "X-Long-Field-Name-"), (20, "X-S-"),
                          (40, "X-Long-Field-Name-"), (90, "X-S-")):
            with self.subTest(n=n, prefix=prefix):
                r = m.wait(m.request("GET", "/fields?n=%d&prefix=%s" % (n, prefix)))
                self.assertEqual(200, r.status, r)
                want = [("%s%03d" % (prefix.lower(), i), "value-%d" % i) for i in range(n)]
                self.assertEqual(want, [(k, v) for k, v in r.headers if k.startswith("x-")])
                self.assertEqual([":status", "server", "date"],
                                 [k for k, _ in r.headers if not k.startswith("x-")][:3])
                self.assertTrue(r.header("server").startswith("BaseHTTP"), r.headers)


# ------------------------------------------------------------------------------------------------
# Flow control


class FlowControlTest(H2TestCase):
    """A stream whose upstream does not read, or whose client does not read, is held by its own
    window: the other streams on the connection go on, and what is buffered stays bounded."""

    TOTAL = 64 * MiB
    # Loopback socket buffers (the kernel's autotuning: several MiB each way) plus sluice's own
    # buffers (1 MiB per direction by default) plus one window: far below TOTAL.
    BOUND = 24 * MiB

    def others(self, m):
        """Streams that must complete while one is stalled: a download, an upload, both
        framings, an empty body."""
        body = pattern_bytes("other", 200000)
        streams = [(None, m.request("GET", "/gen?size=%d&seed=o1" % MiB, keep_body=False)),
                   (None, m.request("GET", "/gen?size=70000&framing=chunked&seed=o2",
                                    keep_body=False)),
                   (body, m.request("POST", "/echo", body=body, content_length=True,
                                    keep_body=False)),
                   (body, m.request("POST", "/echo?framing=chunked", body=body,
                                    keep_body=False)),
                   (b"", m.request("GET", "/gen?size=0"))]
        return streams

    def check_others(self, streams):
        digests = [pattern_digest("o1", MiB), pattern_digest("o2", 70000)]
        for i, (body, r) in enumerate(streams):
            self.assertTrue(r.complete, r)
            self.assertEqual(200, r.status)
            if body is None:
                self.assertEqual(digests[i], r.sha256)
            else:
                self.assertEqual(sha(body), r.sha256)

    def test_a_stalled_upload_holds_only_its_own_stream(self):
        s = self.start(h2opts={"initialStreamWindowSize": 65535})
        m = self.mux(s)
        body = pattern_bytes("upload", self.TOTAL)
        rss_before = s.rss_bytes()
        # /sink reads nothing until its gate opens.
        stalled = m.request("POST", "/sink", body=body, content_length=True)
        # Held: its window is spent and no credit comes (1 s without any).
        def held():
            return (stalled.pending_send > 0 and stalled.send_window <= 0 and
                    time.monotonic() - stalled.last_credit > 1.0)

        m.pump(held, timeout=60, what="the upload to stall")
        self.assertLess(stalled.sent, self.BOUND)
        # Everything else on the connection goes on meanwhile.
        others = self.others(m)
        m.wait(*[r for _, r in others], timeout=60)
        self.check_others(others)
        self.assertFalse(stalled.done)
        # Still held, and still bounded (a slow moment may have looked like a stall before).
        m.pump(held, timeout=60, what="the upload to stall again")
        self.assertLess(stalled.sent, self.BOUND)
        self.assertLess(s.rss_bytes() - rss_before, self.BOUND)
        self.assertEqual(0, self.origin.sink_received)
        st = s.stats()
        self.assertGreaterEqual(stat(st, "http.web.downstream_flow_control_paused_reading_total"),
                                1)
        # The upstream reads: the upload resumes and arrives whole.
        self.origin.sink_gate.set()
        m.wait(stalled, timeout=120)
        self.assertEqual((200, b"received %d" % self.TOTAL), (stalled.status, stalled.body))
        self.assertEqual(sha(body), self.origin.sink_digest)

    def test_an_unread_response_holds_only_its_own_stream(self):
        s = self.start()
        m = self.mux(s)
        rss_before = s.rss_bytes()
        # The client credits nothing on this stream (65535 octets, its initial window).
        held = m.request("GET", "/gen?size=%d&tag=held&chunk=262144" % self.TOTAL, hold=True,
                         keep_body=False)
        send = self.origin.wait_send("held")
        # The origin finds its sends blocked (sluice stopped reading it).
        m.pump(lambda: send.stalled.is_set(), timeout=60, what="the origin to stall")
        self.assertLess(send.sent_at_stall, self.BOUND)
        self.assertLessEqual(held.body_length, 65535)
        self.assertLess(s.rss_bytes() - rss_before, self.BOUND)
        others = self.others(m)
        m.wait(*[r for _, r in others], timeout=60)
        self.check_others(others)
        self.assertFalse(held.done)
        self.assertLess(send.sent, self.BOUND, "the origin kept sending")
        st = s.stats()
        self.assertGreaterEqual(stat(st, "http.web.http2.pending_send_bytes_paused"), 1)
        self.assertGreaterEqual(stat(st, "http.web.upstream_flow_control_paused_reading_total"),
                                1)
        # The client reads: the rest flows, whole.
        m.release(held)
        m.wait(held, timeout=120)
        self.assertTrue(held.complete, held)
        self.assertEqual(pattern_digest("gen", self.TOTAL), held.sha256)
        self.assertTrue(send.done.is_set())

    def test_many_unread_responses_stay_bounded_in_memory(self):
        # Eight streams whose client reads nothing of them, 16 MiB each: sluice holds about its
        # buffer limit per stream (1 MiB) and the windows, not the responses.
        s = self.start()
        m = self.mux(s)
        rss_before = s.rss_bytes()
        size = 16 * MiB
        held = [m.request("GET", "/gen?size=%d&tag=h%d&seed=h%d" % (size, i, i), hold=True,
                          keep_body=False) for i in range(8)]
        sends = [self.origin.wait_send("h%d" % i) for i in range(8)]
        m.pump(lambda: all(x.stalled.is_set() for x in sends), timeout=60,
               what="every origin to stall")
        grown = s.rss_bytes() - rss_before
        self.assertLess(grown, 48 * MiB, "sluice's RSS grew by %d bytes" % grown)
        others = self.others(m)
        m.wait(*[r for _, r in others], timeout=60)
        self.check_others(others)
        for h in held:
            m.release(h)
        m.wait(*held, timeout=120)
        for i, h in enumerate(held):
            self.assertEqual(pattern_digest("h%d" % i, size), h.sha256)

    def test_a_client_that_reads_nothing_at_all_holds_only_its_own_connection(self):
        # Not even the connection's window is credited: every stream of that connection waits,
        # a second connection does not.
        s = self.start()
        stuck = self.mux(s, conn_window=65535)
        held = [stuck.request("GET", "/gen?size=%d&seed=s%d" % (4 * MiB, i), hold=True,
                              keep_body=False) for i in range(3)]
        stuck.pump(lambda: sum(h.body_length for h in held) >= 65535, timeout=30,
                   what="the connection window to fill")
        m = self.mux(s)
        others = self.others(m)
        m.wait(*[r for _, r in others], timeout=60)
        self.check_others(others)
        for h in held:
            stuck.release(h)
        stuck.conn.write_window_update(0, 64 * MiB)
        stuck.wait(*held, timeout=120)
        for i, h in enumerate(held):
            self.assertEqual(pattern_digest("s%d" % i, 4 * MiB), h.sha256)


# ------------------------------------------------------------------------------------------------
# Failures on one stream


class StreamFailureTest(H2TestCase):
    """What goes wrong on one stream (its upstream fails, its client gives up) ends that stream
    only: the others, and the connection, go on."""

    def test_upstream_failures_end_only_their_stream(self):
        s = self.start()
        m = self.mux(s)
        bystander = m.request("GET", "/gate/bystander?head=1")
        reset = m.request("GET", "/reset")
        bad = m.request("GET", "/bad")
        # Bodies cut short of their framing: the client must not take them for whole ones.
        cut_cl = m.request("GET", "/gen?size=100000&cut=30000", keep_body=False)
        cut_chunked = m.request("GET", "/gen?size=100000&framing=chunked&cut=30000",
                                keep_body=False)
        m.wait(reset, bad, cut_cl, cut_chunked)
        # Nothing of the response had gone out: a response of the proxy's own.
        self.assertEqual((502, b"upstream_reset\n"), (reset.status, reset.body))
        self.assertEqual((502, b"upstream_protocol_error\n"), (bad.status, bad.body))
        # Part of it had: the stream is reset, never ended.
        for r in (cut_cl, cut_chunked):
            self.assertEqual(200, r.status)
            self.assertFalse(r.ended, r)
            self.assertIsNotNone(r.reset_code, r)
            self.assertLessEqual(r.body_length, 30000)
        self.assertFalse(bystander.done)
        self.origin.gate("bystander").set()
        m.wait(bystander)
        self.assertEqual((200, b"head\ntail\n"), (bystander.status, bystander.body))
        self.assertEqual(200, m.wait(m.request("GET", "/after")).status)
        self.assertEqual([], m.goaways)

    def test_a_client_cancelling_a_download_ends_its_upstream_exchange(self):
        s = self.start()
        m = self.mux(s)
        r = m.request("GET", "/gen?size=%d&tag=cancel" % (64 * MiB), hold=True)
        send = self.origin.wait_send("cancel")
        m.pump(lambda: send.stalled.is_set(), timeout=60, what="the origin to stall")
        m.reset(r, h2.CANCEL)
        # The upstream exchange is abandoned: the origin's connection is closed under it.
        m.pump(lambda: send.failed.is_set(), timeout=30, what="the origin's send to fail")
        self.assertFalse(send.done.is_set())
        self.assertEqual(200, m.wait(m.request("GET", "/gen?size=5")).status)
        st = s.wait_stats(lambda st: st["http.web.downstream_rq_active"] == 0,
                          "no stream active")
        self.assertEqual(1, stat(st, "http.web.http2.rx_reset"))
        self.assertEqual(1, stat(st, "http.web.downstream_rq_reset"))

    def test_a_client_cancelling_an_upload_leaves_the_origin_an_incomplete_request(self):
        s = self.start()
        m = self.mux(s)
        body = pattern_bytes("cancel", 200000)
        # Past the router's request buffering (64 KiB): the upload streams to the origin.
        sent = 100000
        for framing, cl in (("cl", True), ("chunked", False)):
            with self.subTest(framing=framing):
                path = "/echo?cancelled-" + framing
                r = m.request("POST", path, body=body[:sent], end_stream=False,
                              content_length=len(body) if cl else None)
                self.origin.wait_request(lambda _m, p, _h: p == path)
                m.pump(lambda: r.pending_send == 0, timeout=20, what="the first part out")
                m.reset(r, h2.CANCEL)
                ex = self.origin.wait_exchange(lambda e: e["path"] == path)
                self.assertFalse(ex["complete"], ex)
                self.assertLessEqual(ex["body_length"], sent)
        self.assertEqual(200, m.wait(m.request("GET", "/gen?size=5")).status)

    def test_in_flight_streams_finish_after_the_clients_goaway(self):
        s = self.start()
        m = self.mux(s)
        r = m.request("GET", "/gate/client-goaway")
        self.origin.wait_request(lambda _m, p, _h: p == "/gate/client-goaway")
        m.conn.write_goaway(0, h2.NO_ERROR)
        self.origin.gate("client-goaway").set()
        m.wait(r)
        self.assertTrue(r.complete, r)
        self.assertEqual(200, r.status)


# ------------------------------------------------------------------------------------------------
# Drain, timeouts, connection limits


class LifecycleTest(H2TestCase):

    def test_drain_sends_goaway_with_the_last_stream_id_and_in_flight_streams_finish(self):
        s = self.start(drain_timeout="60s", concurrency=1)
        busy = self.mux(s)
        idle = self.mux(s)
        self.assertEqual(200, idle.wait(idle.request("GET", "/gen?size=10")).status)
        done = busy.wait(busy.request("GET", "/gen?size=10"))
        in_flight = busy.request("GET", "/gate/drain")
        upload = busy.request("POST", "/echo?drain", body=b"", end_stream=False,
                              content_length=100000)
        self.origin.wait_request(lambda _m, p, _h: p == "/gate/drain")
        s.wait_stats(lambda st: st["http.web.downstream_rq_active"] == 2, "two streams active")
        s.send_signal(signal.SIGTERM)
        goaway = busy.wait_goaway()
        self.assertEqual(h2.NO_ERROR, goaway.error_code)
        # The last stream the server processed: the upload (5), opened after the gated one.
        self.assertEqual(upload.id, goaway.last_stream_id)
        # The idle connection is told too, and closed.
        g = idle.wait_goaway()
        self.assertEqual((h2.NO_ERROR, 1), (g.error_code, g.last_stream_id))
        idle.wait_closed(timeout=10)
        # A stream opened after the GOAWAY is not processed.
        late = busy.request("GET", "/late")
        # Those below the last stream id finish.
        body = pattern_bytes("drain", 100000)
        busy.send_data(upload, body, end_stream=True)
        self.origin.gate("drain").set()
        busy.wait(in_flight, upload)
        self.assertTrue(in_flight.complete and upload.complete, (in_flight, upload))
        self.assertEqual((200, sha(body)), (upload.status, upload.header("x-request-sha256")))
        self.assertEqual(200, done.status)
        busy.wait_closed(timeout=30)
        self.assertFalse(late.complete, late)
        self.assertEqual([], self.requests_for("/late"))
        self.assertEqual(0, s.wait_exit())

    def test_drain_serves_streams_sent_before_the_client_saw_the_notice(self):
        # RFC 9113 §6.8: the first GOAWAY (2^31-1) is a notice; a stream the client opens before
        # it has read it (here: before it answers the PING that follows) is still served, and
        # the final GOAWAY, after the PING's ack, names it as the last.
        s = self.start(drain_timeout="60s", concurrency=1,
                       hcm={"drainTimeout": "60s"})
        m = self.mux(s, answer_pings=False)
        self.assertEqual(200, m.wait(m.request("GET", "/gen?size=10")).status)
        s.send_signal(signal.SIGTERM)
        notice = m.wait_goaway(notice=True)
        self.assertEqual((h2.NO_ERROR, h2client.NOTICE_STREAM_ID),
                         (notice.error_code, notice.last_stream_id))
        m.pump(lambda: bool(m.pings), what="the drain's PING")
        crossing = m.request("GET", "/gen?size=1000")
        m.wait(crossing)
        self.assertEqual((200, 1000), (crossing.status, len(crossing.body)))
        self.assertEqual([notice], m.goaways)
        m.conn.write_ping(m.pings[0].payload, ack=True)
        g = m.wait_goaway()
        self.assertEqual((h2.NO_ERROR, crossing.id), (g.error_code, g.last_stream_id))
        m.wait_closed(timeout=30)
        self.assertEqual(0, s.wait_exit())

    def test_drain_timeout_bounds_the_wait_for_the_ping_ack(self):
        # A client that never answers the PING gets the final GOAWAY after the manager's
        # drain_timeout, and an idle connection is then closed.
        s = self.start(drain_timeout="60s", concurrency=1, hcm={"drainTimeout": "1s"})
        m = self.mux(s, answer_pings=False)
        r = m.wait(m.request("GET", "/gen?size=10"))
        s.send_signal(signal.SIGTERM)
        m.wait_goaway(notice=True)
        g = m.wait_goaway(timeout=30)
        self.assertEqual((h2.NO_ERROR, r.id), (g.error_code, g.last_stream_id))
        m.wait_closed(timeout=30)
        self.assertEqual(0, s.wait_exit())

    def test_drain_timeout_ends_a_stream_that_never_finishes(self):
        s = self.start(drain_timeout="1s")
        m = self.mux(s)
        r = m.request("GET", "/gate/forever")
        self.origin.wait_request(lambda _m, p, _h: p == "/gate/forever")
        s.send_signal(signal.SIGTERM)
        g = m.wait_goaway()
        self.assertEqual(r.id, g.last_stream_id)
        m.wait_closed(timeout=30)
        self.assertFalse(r.complete)
        self.assertEqual(0, s.wait_exit())

    def test_idle_timeout_sends_goaway_then_closes(self):
        s = self.start(hcm={"idleTimeout": "0.5s"})
        m = self.mux(s)
        r = m.wait(m.request("GET", "/gen?size=10"))
        self.assertEqual(200, r.status)
        g = m.wait_goaway(timeout=20)
        self.assertEqual((h2.NO_ERROR, r.id), (g.error_code, g.last_stream_id))
        self.assertEqual(h2.CLOSED, m.wait_closed(timeout=20).kind)
        self.assertEqual(1, stat(s.stats(), "http.web.downstream_cx_idle_timeout"))

    def test_idle_timeout_waits_for_streams_in_progress(self):
        s = self.start(hcm={"idleTimeout": "0.5s"})
        m = self.mux(s)
        r = m.request("GET", "/gate/idle")
        self.origin.wait_request(lambda _m, p, _h: p == "/gate/idle")
        # Well past the idle timeout: a stream in progress keeps the connection.
        m.poll(1.5)
        self.assertEqual([], m.goaways)
        self.origin.gate("idle").set()
        m.wait(r)
        self.assertEqual(200, r.status)
        m.wait_goaway(timeout=20)
        m.wait_closed(timeout=20)

    def test_a_connection_that_opens_no_stream_is_closed(self):
        s = self.start(hcm={"requestHeadersTimeout": "0.5s"})
        m = self.mux(s)
        g = m.wait_goaway(timeout=20)
        self.assertEqual((h2.NO_ERROR, 0), (g.error_code, g.last_stream_id))
        m.wait_closed(timeout=20)

    def test_stream_idle_timeout_ends_only_the_silent_stream(self):
        s = self.start(hcm={"streamIdleTimeout": "1s"})
        m = self.mux(s)
        # Silent upstream, nothing sent yet: answered 408.
        no_response = m.request("GET", "/gate/silent")
        # Silent upstream after the head and a first chunk: the stream is reset (the client
        # must not take the cut body for a whole one).
        cut = m.request("GET", "/gate/silent-body?head=1")
        # Silent client (its body never comes): 408.
        no_body = m.request("POST", "/echo?silent-client", body=b"abc", end_stream=False,
                            content_length=10)
        m.wait(no_response, cut, no_body, timeout=30)
        self.assertEqual((408, True), (no_response.status, no_response.complete))
        self.assertEqual(b"head\n", cut.body)
        self.assertEqual(200, cut.status)
        self.assertFalse(cut.ended)
        self.assertIsNotNone(cut.reset_code)
        self.assertEqual(408, no_body.status)
        # The connection is fine.
        self.assertEqual([], m.goaways)
        r = m.wait(m.request("GET", "/gen?size=100"))
        self.assertEqual(200, r.status)
        self.assertEqual(3, stat(s.stats(), "http.web.downstream_rq_stream_idle_timeout"))

    def test_request_body_timeout_on_one_stream(self):
        s = self.start(hcm={"requestBodyTimeout": "0.5s", "streamIdleTimeout": "60s"})
        m = self.mux(s)
        slow = m.request("POST", "/echo?slow-body", body=b"x", end_stream=False,
                         content_length=5)
        fine = m.request("POST", "/echo?fine", body=b"12345", content_length=True)
        m.wait(slow, fine, timeout=30)
        self.assertEqual(408, slow.status)
        self.assertEqual((200, "5"), (fine.status, fine.header("x-request-length")))
        self.assertEqual(1, stat(s.stats(), "http.web.downstream_rq_body_timeout"))
        self.assertEqual([], m.goaways)

    def test_max_requests_per_connection_sends_goaway(self):
        s = self.start(hcm={"maxRequestsPerConnection": 3})
        m = self.mux(s)
        first = [m.request("GET", "/gen?size=%d" % n) for n in (1, 2)]
        third = m.request("GET", "/gate/third")
        g = m.wait_goaway()
        # Sent once the third stream arrived: it is the last one.
        self.assertEqual((h2.NO_ERROR, third.id), (g.error_code, g.last_stream_id))
        late = m.request("GET", "/gen?size=4")
        self.origin.gate("third").set()
        m.wait(*first + [third])
        self.assertEqual([200, 200, 200], [r.status for r in first + [third]])
        m.wait_closed(timeout=20)
        self.assertFalse(late.complete)
        self.assertEqual([], self.requests_for("/gen?size=4"))
        self.assertEqual(1, stat(s.stats(), "http.web.downstream_cx_max_requests_reached"))

    def test_keepalive_ping(self):
        s = self.start(h2opts={"keepaliveInterval": "0.3s", "keepaliveTimeout": "2s"},
                       hcm={"idleTimeout": "0s"})
        # A client that answers: pinged, and kept.
        alive = self.mux(s)
        alive.pump(lambda: len(alive.pings) >= 3, timeout=20, what="three PINGs")
        self.assertIsNone(alive.closed)
        self.assertEqual([], alive.goaways)
        self.assertEqual(200, alive.wait(alive.request("GET", "/gen?size=1")).status)
        # One that does not: GOAWAY, closed, counted; the first one lives on meanwhile.
        dead = self.mux(s, answer_pings=False)
        deadline = time.monotonic() + 20
        while dead.closed is None and time.monotonic() < deadline:
            alive.poll(0.05)
            dead.poll(0.05)
        self.assertEqual(h2.CLOSED, dead.closed.kind if dead.closed else None)
        self.assertEqual(1, len(dead.goaways))
        self.assertGreaterEqual(len(dead.pings), 1)
        self.assertEqual(1, stat(s.stats(), "http.web.http2.keepalive_timeout"))
        self.assertTrue(alive.poll(0.5))
        self.assertEqual([], alive.goaways)

    def test_no_keepalive_ping_by_default(self):
        s = self.start(hcm={"idleTimeout": "2s"})
        m = self.mux(s)
        m.wait_goaway(timeout=20)
        self.assertEqual([], m.pings)



# ------------------------------------------------------------------------------------------------
# Plugin filters over both protocols


def plugin(filter_name, plugin_name="test_filters", typed=None, name=None):
    """An httpFilters entry for a filter of the test plugins (as plugin_test.py's)."""
    entry = {"plugin": {"filter": filter_name, "plugin": plugin_name}}
    if isinstance(typed, tuple):
        message, fields = typed
        config = {"@type": "type.googleapis.com/" + message}
        config.update(fields)
        entry["plugin"]["typedConfig"] = config
    elif typed is not None:
        entry["plugin"]["typedConfig"] = typed
    if name:
        entry["name"] = name
    return entry


def headers_filter(**fields):
    return plugin("headers", typed=("sluice.test.plugin.HeaderMutation", fields))


class Answer:
    """One response, whichever protocol carried it: status, header(name) (any case), body,
    trailers, reset (the stream was reset / the connection cut)."""

    def __init__(self, status, headers, body, trailers=None, reset=False, raw=None):
        self.status = status
        self.headers = [(n.lower(), v) for n, v in headers]
        self.body = body
        self.trailers = trailers
        self.reset = reset
        self.raw = raw

    def header(self, name):
        name = name.lower()
        return next((v for n, v in self.headers if n == name), None)

    def __repr__(self):
        return "Answer(%s, %r, body=%r, reset=%s)" % (self.status, self.headers[:12],
                                                     self.body[:80], self.reset)


class PluginTest(H2TestCase):
    """The representative plugin filters of plugin_test.py, each over HTTP/1.1 and HTTP/2 (h2c):
    the filters see the same request and act the same whatever the protocol; what differs is
    only what the protocol makes differ (the protocol a filter is told, a reset instead of a
    closed connection)."""

    PROTOCOLS = ("http1", "h2")

    def direct_config(self, chain, **hcm):
        listener = harness.http_listener("web", filters=chain, hcm=hcm or None)
        return harness.http_config([listener], bootstrap_extra={"pluginDirs": [PLUGIN_DIR]})

    def ask(self, proto, s, method="GET", path="/", headers=(), body=b"", trailers=None,
            mux=None):
        """One request over a new connection (or `mux`, an h2 connection to reuse)."""
        if proto == "http1":
            c = harness.HttpClient.connect(s.addr("web"))
            self.addCleanup(c.close)
            hdrs = list(headers)
            if trailers is not None:
                hdrs.append(("Transfer-Encoding", "chunked"))
                data = harness.chunked(*[body[i:i + 7000] for i in range(0, len(body), 7000)],
                                       trailers=[(n.encode(), v.encode()) for n, v in trailers])
            else:
                data = body
            c.send(harness.http_request(method, path, headers=hdrs, body=data))
            try:
                r = c.read_response(head_request=method == "HEAD")
            except EOFError:
                return Answer(None, [], c.buf, reset=True, raw=c.buf)
            return Answer(r.status, r.headers, r.body, raw=r.raw)
        m = mux or self.mux(s)
        st = m.wait(m.request(method, path, headers=[(n.lower(), v) for n, v in headers],
                              body=body if body or trailers is not None else None,
                              trailers=trailers))
        return Answer(st.status, st.headers or [], st.body, st.trailers,
                      reset=st.reset_code is not None and not st.complete, raw=st)

    def test_header_changes_metadata_and_metrics(self):
        chain = [
            plugin("meta_set", typed=("sluice.test.plugin.Metadata", {"key": "who",
                                                                       "header": "x-who"})),
            headers_filter(requestSet=[{"name": "x-echo", "value": "set-by-plugin"}],
                           responseSet=[{"name": "x-plugin", "value": "headers"}],
                           responseRemove=["x-test"]),
            plugin("count", name="counting"),
            plugin("meta_get", typed=("sluice.test.plugin.Metadata", {"key": "who",
                                                                       "header": "x-meta"})),
            harness.direct_response_filter(),
        ]
        s = self.start_sluice(self.direct_config(chain))
        for n, proto in enumerate(self.PROTOCOLS, 1):
            with self.subTest(proto=proto):
                r = self.ask(proto, s, path="/some/path",
                             headers=[("x-who", "alice"), ("x-echo", "from-client")])
                self.assertEqual(200, r.status, r)
                self.assertEqual(harness.DIRECT_BODY, r.body)
                self.assertEqual("headers", r.header("x-plugin"))
                self.assertIsNone(r.header("x-test"))
                self.assertEqual("set-by-plugin", r.header("x-echoed"))
                self.assertEqual("/some/path", r.header("x-path"))
                self.assertEqual("alice", r.header("x-meta"))
                self.assertEqual("(none)", self.ask(proto, s).header("x-meta"))
                s.wait_stats(lambda st: stat(st, "plugin.counting.requests") == 2 * n,
                             "plugin.counting.requests == %d" % (2 * n))
        s.wait_stats(lambda st: stat(st, "plugin.counting.active") == 0,
                     "plugin.counting.active == 0")

    def test_pause_and_resume_from_a_timer_on_many_streams_at_once(self):
        chain = [plugin("pause", typed=("sluice.test.plugin.Pause", {"delay": "0.05s"})),
                 headers_filter(), harness.direct_response_filter()]
        s = self.start_sluice(self.direct_config(chain))
        r = self.ask("http1", s)
        self.assertEqual(("timer", harness.DIRECT_BODY), (r.header("x-resumed-by"), r.body))
        m = self.mux(s)
        streams = [m.request("POST" if i % 2 else "GET", "/p%d" % i,
                             body=b"x" * 5000 if i % 2 else None) for i in range(20)]
        m.wait(*streams)
        for st in streams:
            self.assertEqual((200, "timer", harness.DIRECT_BODY),
                             (st.status, st.header("x-resumed-by"), st.body), st)
        self.assertEqual(21, stat(s.stats(), "plugin.pause.rejected_calls"))

    def test_local_reply_from_a_plugin(self):
        chain = [headers_filter(responseSet=[{"name": "x-plugin", "value": "headers"}]),
                 plugin("deny", typed=("sluice.test.plugin.Deny", {"header": "x-deny",
                                                                   "status": 403,
                                                                   "body": "denied\n"})),
                 harness.direct_response_filter()]
        s = self.start_sluice(self.direct_config(chain))
        for proto in self.PROTOCOLS:
            with self.subTest(proto=proto):
                r = self.ask(proto, s, headers=[("x-deny", "1")])
                self.assertEqual((403, b"denied\n", "7", "deny", "headers"),
                                 (r.status, r.body, r.header("content-length"),
                                  r.header("x-denied-by"), r.header("x-plugin")), r)
                self.assertIsNotNone(r.header("date"))
                # Refused with its body still coming: the answer does not wait for it.
                r = self.ask(proto, s, method="POST", headers=[("x-deny", "1")],
                             body=b"b" * 100000)
                self.assertEqual(403, r.status, r)
        m = self.mux(s)
        denied = m.request("POST", "/", headers=[("x-deny", "1")], body=b"", end_stream=False)
        m.wait(denied)
        self.assertEqual(403, denied.status)
        # The connection goes on.
        self.assertEqual(200, self.ask("h2", s, mux=m).status)

    def test_response_body_rewritten_with_its_length(self):
        chain = [plugin("uppercase"), harness.direct_response_filter(body="hello plugin\n")]
        s = self.start_sluice(self.direct_config(chain))
        for proto in self.PROTOCOLS:
            with self.subTest(proto=proto):
                r = self.ask(proto, s, path="/a")
                self.assertEqual((200, b"HELLO PLUGIN\n(rewritten)\n"), (r.status, r.body), r)
                self.assertEqual(str(len(r.body)), r.header("content-length"))

    def test_inspect_sees_the_protocol_stream_and_body(self):
        s = self.start_sluice(self.direct_config([plugin("inspect"), headers_filter()]))
        for proto, protocol in (("http1", "1"), ("h2", "2")):
            with self.subTest(proto=proto):
                body = (bytes(range(65, 91)) * 3000)[:70000]
                r = self.ask(proto, s, method="POST", path="/insp", body=body,
                             headers=[("x-multi", "a"), ("x-multi", "b")])
                self.assertEqual(404, r.status, r)  # no terminal filter
                self.assertEqual(protocol, r.header("x-protocol"))
                self.assertEqual("http", r.header("x-scheme"))
                self.assertEqual("a|b", r.header("x-multi-all"))
                self.assertEqual(("70000", body[:8].decode()),
                                 (r.header("x-body-length"), r.header("x-body-head")))
                r = self.ask(proto, s, method="POST", path="/insp", body=b"abcdefg",
                             trailers=[("t", "v")])
                self.assertEqual(("v", "7"), (r.header("x-trailer-t"),
                                              r.header("x-body-length")), r)
        # Many streams of one HTTP/2 connection: one connection id, a stream id each, and each
        # filter created for its own stream.
        m = self.mux(s)
        streams = [m.request("GET", "/s%d" % i, authority="a%d.test" % i) for i in range(10)]
        m.wait(*streams)
        ids = [st.header("x-ids").split("/") for st in streams]
        self.assertEqual(1, len({c for c, _ in ids}), ids)
        self.assertEqual(10, len({sid for _, sid in ids}), ids)
        for st, (_, sid) in zip(streams, ids):
            self.assertEqual(sid, st.header("x-created-for"))
        self.assertEqual(["a%d.test" % i for i in range(10)],
                         [st.header("x-authority") for st in streams])

    def test_inspect_over_tls_sees_h2(self):
        cfg = with_tls(self.direct_config([plugin("inspect"), headers_filter()]),
                       self.tls_context())
        s = self.start_sluice(cfg)
        s.tls = True
        m = self.mux(s, server_name="h2.test")
        r = m.wait(m.request("GET", "/tls", authority="h2.test"))
        self.assertEqual(("2", "1", "h2", "https", "h2.test"),
                         (r.header("x-protocol"), r.header("x-tls"), r.header("x-tls-alpn"),
                          r.header("x-scheme"), r.header("x-tls-sni")), r.headers)

    def test_buffering_both_ways_through_a_real_origin(self):
        # inspect holds the request body whole before the router sends anything upstream;
        # uppercase holds the response body whole and rewrites it.
        s = self.start(filters_before=[plugin("inspect"), plugin("uppercase")])
        m = self.mux(s)
        for size in (1, 16385, 65536, 300000, 900000):
            body = pattern_bytes("buf", size).translate(bytes.maketrans(
                bytes(range(256)), bytes(97 + b % 26 for b in range(256))))  # lower-case text
            for proto in self.PROTOCOLS:
                for framing in ("cl", "chunked"):
                    with self.subTest(size=size, proto=proto, framing=framing):
                        path = "/echo?framing=%s&size=%d&p=%s" % (framing, size, proto)
                        r = self.ask(proto, s, method="POST", path=path, body=body,
                                     mux=m if proto == "h2" else None)
                        self.assertEqual(200, r.status, r)
                        self.assertEqual(str(size), r.header("x-body-length"))
                        self.assertEqual(body.upper() + b"(rewritten)\n", r.body)
                        self.assertEqual(str(len(r.body)), r.header("content-length"))
                        ex = self.exchanges(path)[0]
                        self.assertEqual((size, sha(body)), (ex["body_length"],
                                                             ex["body_sha256"]))

    def test_over_the_buffer_limit_both_ways(self):
        s = self.start(filters_before=[plugin("inspect"), plugin("uppercase")],
                       hcm={"bufferLimitBytes": 100000})
        for proto in self.PROTOCOLS:
            with self.subTest(proto=proto, direction="request"):
                r = self.ask(proto, s, method="POST", path="/echo?too-big-%s" % proto,
                             body=b"r" * 300000)
                self.assertEqual(413, r.status, r)
                # (The head may have gone upstream already: inspect holds only the body.)
                self.assertEqual([], [e for e in self.exchanges("/echo?too-big-%s" % proto)
                                      if e["complete"]])
            with self.subTest(proto=proto, direction="response"):
                r = self.ask(proto, s, path="/gen?size=300000&p=%s" % proto)
                self.assertEqual(500, r.status, r)
        st = s.stats()
        self.assertEqual(2, stat(st, "http.web.downstream_rq_too_large"))
        self.assertEqual(2, stat(st, "http.web.downstream_rs_too_large"))

    def test_an_exception_in_a_hook(self):
        s = self.start(filters_before=[plugin("throw")])
        for proto in self.PROTOCOLS:
            with self.subTest(proto=proto, where="request headers"):
                r = self.ask(proto, s, headers=[("x-throw", "1")])
                self.assertEqual(500, r.status, r)
            with self.subTest(proto=proto, where="response headers"):
                r = self.ask(proto, s, path="/answered", headers=[("x-throw",
                                                                   "response-headers")])
                self.assertEqual((500, b"internal error\n"), (r.status, r.body), r)
        # Once the head is out: HTTP/2 resets the one stream, the connection lives on.
        m = self.mux(s)
        cut = m.request("GET", "/big/1000000", headers=[("x-throw", "response-body")])
        ok = m.request("GET", "/gen?size=100000")
        m.wait(cut, ok)
        self.assertIsNotNone(cut.reset_code, cut)
        self.assertFalse(cut.ended)
        self.assertLess(cut.body_length, 1000000)
        self.assertEqual((200, 100000), (ok.status, ok.body_length))
        self.assertEqual(200, m.wait(m.request("GET", "/after")).status)
        self.assertIsNone(m.closed)
        s.wait_stats(lambda st: stat(st, "plugin.throw.failures") == 5, "five failures")


if __name__ == "__main__":
    harness.main()
