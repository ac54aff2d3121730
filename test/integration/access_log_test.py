"""Access logs (issue 16) against the real binary and a real origin (the harness's HttpOrigin):

- every field command, in the text format and in the JSON format, for known requests: proxied
  (a path rewritten by the route, a body each way, response trailers), refused by the codec
  (400, no stream), failed upstream (503 UF), HTTP/2 (h2c), and over TLS (version, cipher, SNI);
  a plugin's field through the stream's metadata (%DYNAMIC_METADATA%);
- escaping: CR, LF, ESC, quotes, backslashes and bytes that are not UTF-8 in values (a request
  field, and a plugin's metadata that can hold any byte) keep each request one line, and the
  JSON line parses back to the value;
- a FIFO nobody reads (never opened, and opened but never read): requests keep being served,
  dropped lines are counted (awaited on /stats), and what reaches the FIFO is whole lines;
- SIGUSR1 reopens the file after logrotate's rename;
- stdout mode, with every line of a finished request written at the exit (the flush interval
  being an hour);
- configs/access_log.yaml as it ships (paths and ports swapped);
- config errors name the field path.
"""

import datetime
import fcntl
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402
from harness import HttpClient, HttpOrigin, http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))

# Every field command, by a name the test uses for it.
FIELDS = [
    ("start", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(:PATH)%"),
    ("original_path", "%ORIGINAL_PATH%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("scheme", "%REQ(:SCHEME)%"),
    ("protocol", "%PROTOCOL%"),
    ("code", "%RESPONSE_CODE%"),
    ("flags", "%RESPONSE_FLAGS%"),
    ("details", "%RESPONSE_CODE_DETAILS%"),
    ("rx", "%BYTES_RECEIVED%"),
    ("tx", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    ("response_duration", "%RESPONSE_DURATION%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("service_time", "%UPSTREAM_SERVICE_TIME%"),
    ("cluster", "%UPSTREAM_CLUSTER%"),
    ("route", "%ROUTE_NAME%"),
    ("attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"),
    ("request_id", "%REQUEST_ID%"),
    ("x_request_id", "%REQ(X-REQUEST-ID)%"),
    ("tls_version", "%DOWNSTREAM_TLS_VERSION%"),
    ("tls_cipher", "%DOWNSTREAM_TLS_CIPHER%"),
    ("sni", "%REQUESTED_SERVER_NAME%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("ua_cut", "%REQ(USER-AGENT):7%"),
    ("ua_fallback", "%REQ(X-NONE?USER-AGENT)%"),
    ("remote", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("remote_ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
    ("local", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("local_ip", "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"),
    ("connection", "%CONNECTION_ID%"),
    ("stream", "%STREAM_ID%"),
    ("resp_header", "%RESP(X-ORIGIN)%"),
    ("resp_status", "%RESP(:STATUS)%"),
    ("trailer", "%TRAILER(x-checksum)%"),
    ("tenant", "%DYNAMIC_METADATA(tenant)%"),
    ("inject", "%DYNAMIC_METADATA(inject)%"),
    ("quote", "%REQ(X-QUOTE)%"),
]
NUMERIC = {"code", "rx", "tx", "duration", "response_duration", "service_time", "attempts",
           "connection", "stream"}
# A tab between fields: a value's own tab is escaped (\x09), so the split is exact.
TEXT_FORMAT = "\t".join(cmd for _, cmd in FIELDS)
JSON_FORMAT = {name: cmd for name, cmd in FIELDS}


def meta_set(key, header, percent_decode=False):
    fields = {"key": key, "header": header}
    if percent_decode:
        fields["percentDecode"] = True
    return {"plugin": {"filter": "meta_set", "plugin": "test_filters", "typedConfig": dict(
        {"@type": "type.googleapis.com/sluice.test.plugin.Metadata"}, **fields)}}


def router(routes):
    return {"plugin": {"filter": "router", "typedConfig": {
        "@type": harness.ROUTER_TYPE,
        "virtualHosts": [{"name": "v", "domains": ["*"], "routes": routes}]}}}


def parse_text_line(line):
    values = line.split("\t")
    assert len(values) == len(FIELDS), "%d fields in %r" % (len(values), line)
    return {name: value for (name, _), value in zip(FIELDS, values)}


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), "a partial last line in %s: %r" % (path, data[-200:])
    return data.decode("ascii").splitlines()


def parse_time(text):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class AccessLogTestCase(harness.SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.origin = self.server(HttpOrigin)

    def log_path(self, name):
        return os.path.join(self.tmpdir, name)

    def logs(self, **extra):
        """A text and a JSON access log of every field (flushed every 10 ms)."""
        text = dict({"path": self.log_path("text.log"), "name": "text", "format": TEXT_FORMAT,
                     "flushInterval": "0.01s"}, **extra)
        js = dict({"path": self.log_path("json.log"), "name": "json", "jsonFormat": JSON_FORMAT,
                   "flushInterval": "0.01s"}, **extra)
        return [text, js]

    def await_written(self, s, count, names=("text", "json")):
        return s.wait_stats(
            lambda st: all(st.get("access_log.%s.written" % n) == count for n in names),
            "%d lines written to %s" % (count, ", ".join(names)))

    def both(self):
        """The two logs' lines as dicts of values: (text, json), each line in both."""
        text = [parse_text_line(l) for l in read_lines(self.log_path("text.log"))]
        js = [json.loads(l) for l in read_lines(self.log_path("json.log"))]
        self.assertEqual(len(text), len(js))
        return text, js


class EveryFieldTest(AccessLogTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("al-root")
        cls.cert = cls.pki.server_cert(cls.root, ["al.test"])

    def config(self):
        dead = harness.unused_port()
        routes = [
            {"name": "api", "match": {"prefix": "/api/"},
             "route": {"cluster": "o", "prefixRewrite": "/v2/"}},
            {"name": "dead", "match": {"prefix": "/dead"}, "route": {"cluster": "dead"}},
            {"name": "rest", "match": {"prefix": "/"}, "route": {"cluster": "o"}},
        ]
        hcm = {"accessLog": self.logs(),
               "httpFilters": [meta_set("tenant", "x-tenant"),
                               meta_set("inject", "x-inject", percent_decode=True),
                               router(routes)]}
        tls = {"commonTlsContext": {"tlsCertificates": [
            {"certificateChain": {"filename": self.cert.chain},
             "privateKey": {"filename": self.cert.key}}]}}
        cfg = harness.http_config([
            harness.http_listener("web", filters=hcm["httpFilters"],
                                  hcm={"accessLog": hcm["accessLog"]}),
            {"name": "tls", "address": {"address": "127.0.0.1", "port": 0},
             "filterChains": [{"tlsContext": tls,
                               "filters": [{"httpConnectionManager": hcm}]}]},
        ], bootstrap_extra={"pluginDirs": [PLUGIN_DIR]})
        cfg["clusters"] = [
            {"name": "o", "endpoints": [{"address": {"address": "127.0.0.1",
                                                     "port": self.origin.addr[1]}}]},
            {"name": "dead", "endpoints": [{"address": {"address": "127.0.0.1", "port": dead}}]},
        ]
        return cfg, dead

    def test_every_field_in_both_formats(self):
        cfg, dead = self.config()
        s = self.start_sluice(cfg, concurrency=1)
        web = s.addr("web")
        t0 = time.time()
        c = HttpClient.connect(web)
        self.addCleanup(c.close)
        client = c.sock.getsockname()
        ua = "access-log-test/1.0"
        # 1. Routed with a rewrite; the path normalized on the way in.
        c.send(req("GET", "/api//things?x=1", host="al.test", headers=[
            ("User-Agent", ua), ("X-Request-ID", "rid-1"), ("X-Tenant", "acme"),
            ("X-Quote", 'say "hi" \\o/')]))
        r1 = c.read_response()
        self.assertEqual(r1.status, 200)
        # 2. A body each way.
        body = b"b" * 1000
        c.send(req("POST", "/echo", host="al.test", body=body,
                   headers=[("User-Agent", ua), ("X-Request-ID", "rid-2")]))
        r2 = c.read_response()
        self.assertEqual((r2.status, r2.body), (200, body))
        # 3. Response trailers.
        c.send(req("GET", "/gen?size=100&framing=chunked&trailers=x-checksum:abc", host="al.test",
                   headers=[("User-Agent", ua), ("X-Request-ID", "rid-3"), ("TE", "trailers")]))
        r3 = c.read_response()
        self.assertEqual((r3.status, len(r3.body)), (200, 100))
        # 4. The upstream refuses the connection.
        c.send(req("GET", "/dead", host="al.test",
                   headers=[("User-Agent", ua), ("X-Request-ID", "rid-4")]))
        r4 = c.read_response()
        self.assertEqual(r4.status, 503)
        # 5. HTTP/2 (h2c, prior knowledge).
        curl = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge",
             "-H", "X-Request-ID: rid-5", "-A", ua, "http://127.0.0.1:%d/h2" % web[1]],
            capture_output=True, text=True, timeout=harness.IO_TIMEOUT)
        self.assertEqual(curl.stdout, "200", curl.stderr)
        # 6. TLS, with SNI.
        ctx = ssl.create_default_context(cafile=self.root.cert)
        raw = socket.create_connection(s.addr("tls"), timeout=harness.IO_TIMEOUT)
        tls_sock = ctx.wrap_socket(raw, server_hostname="al.test")
        self.addCleanup(tls_sock.close)
        tls_version, tls_cipher = tls_sock.version(), tls_sock.cipher()[0]
        tc = HttpClient(tls_sock)
        tc.send(req("GET", "/tls", host="al.test",
                    headers=[("User-Agent", ua), ("X-Request-ID", "rid-6")]))
        self.assertEqual(tc.read_response().status, 200)
        # 7. A request the codec refuses (no stream, no head): logged as Envoy does, DPE.
        bad = HttpClient.connect(web)
        self.addCleanup(bad.close)
        bad.send(b"GET /x HTTP/1.1\r\nHost: al.test\r\nBad Name: v\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        self.await_written(s, 7)
        t1 = time.time()
        text, js = self.both()
        by_id_text = {l["request_id"]: l for l in text}
        by_id_json = {l["request_id"]: l for l in js}

        def check(rid, **expected):
            """Every field of request `rid`, in both formats: `expected` values (None: missing,
            printed "-" / null), numbers as numbers in JSON."""
            t, j = by_id_text[rid], by_id_json[rid]
            for name, _ in FIELDS:
                tv, jv = t[name], j[name]
                if name in NUMERIC and jv is not None:
                    self.assertIsInstance(jv, int, "%s %s" % (rid, name))
                    self.assertEqual(tv, str(jv), "%s %s" % (rid, name))
                elif jv is None:
                    self.assertEqual(tv, "-", "%s %s" % (rid, name))
                else:
                    self.assertIsInstance(jv, str, "%s %s" % (rid, name))
                    if name != "quote":
                        self.assertEqual(tv, jv, "%s %s" % (rid, name))
                if name in expected:
                    self.assertEqual(jv, expected[name], "%s %s: %r" % (rid, name, j))
            start = parse_time(j["start"])
            self.assertTrue(t0 - 5 <= start <= t1 + 5, (t0, start, t1))
            self.assertGreaterEqual(j["duration"], 0)
            if j["service_time"] is not None:
                self.assertLessEqual(j["service_time"], j["duration"])
                self.assertLessEqual(j["response_duration"], j["duration"])
            return j

        web_local = "127.0.0.1:%d" % web[1]
        origin_host = "127.0.0.1:%d" % self.origin.addr[1]
        common = dict(authority="al.test", scheme="http", protocol="HTTP/1.1",
                      tls_version=None, tls_cipher=None, sni=None, user_agent=ua,
                      ua_cut=ua[:7], ua_fallback=ua, remote="%s:%d" % client,
                      remote_ip="127.0.0.1", local=web_local, local_ip="127.0.0.1",
                      inject=None, attempts=1)
        j1 = check("rid-1", method="GET", path="/v2/things?x=1", original_path="/api//things?x=1",
                   code=200, flags=None, details=None, rx=0, tx=len(r1.body),
                   upstream_host=origin_host, cluster="o", route="api", x_request_id="rid-1",
                   resp_header="yes", resp_status="200", trailer=None, tenant="acme",
                   quote='say "hi" \\o/', **common)
        self.assertEqual(by_id_text["rid-1"]["quote"], "say \\x22hi\\x22 \\x5co/")
        self.assertIsInstance(j1["service_time"], int)
        j2 = check("rid-2", method="POST", path="/echo", original_path="/echo", code=200,
                   rx=1000, tx=1000, upstream_host=origin_host, cluster="o", route="rest",
                   tenant=None, trailer=None, **common)
        j3 = check("rid-3", code=200, tx=100, trailer="abc", route="rest", **common)
        j4 = check("rid-4", code=503, flags="UF", details="upstream_connect_failure",
                   upstream_host="127.0.0.1:%d" % dead, service_time=None,
                   response_duration=None, cluster="dead", route="dead", resp_header=None,
                   resp_status="503", **common)
        # One connection: one connection id, a stream id each.
        self.assertEqual(len({j["connection"] for j in (j1, j2, j3, j4)}), 1)
        self.assertEqual(len({j["stream"] for j in (j1, j2, j3, j4)}), 4)
        j5 = by_id_json["rid-5"]
        self.assertEqual((j5["protocol"], j5["method"], j5["path"], j5["code"], j5["scheme"]),
                         ("HTTP/2", "GET", "/h2", 200, "http"))
        check("rid-5", user_agent=ua, tls_version=None, sni=None, upstream_host=origin_host)
        tls_local = "127.0.0.1:%d" % s.addr("tls")[1]
        check("rid-6", protocol="HTTP/1.1", scheme="https", tls_version=tls_version,
              tls_cipher=tls_cipher, sni="al.test", local=tls_local, code=200,
              upstream_host=origin_host)
        self.assertEqual(tls_version, "TLSv1.3")
        refused = [j for j in js if j["code"] == 400]
        self.assertEqual(len(refused), 1)
        r = refused[0]
        self.assertEqual((r["method"], r["path"], r["flags"], r["upstream_host"], r["tx"]),
                         (None, None, "DPE", None, 0))
        self.assertTrue(r["details"])
        self.assertEqual(r["remote_ip"], "127.0.0.1")
        self.stop_sluice(s)


class EscapingTest(AccessLogTestCase):
    def test_injection_stays_one_line_and_parses(self):
        hcm = {"accessLog": self.logs()}
        filters = [meta_set("inject", "x-inject", percent_decode=True),
                   router([{"match": {"prefix": "/"}, "route": {"cluster": "o"}}])]
        cfg = harness.http_config([harness.http_listener("web", filters=filters, hcm=hcm)],
                                  bootstrap_extra={"pluginDirs": [PLUGIN_DIR]})
        cfg["clusters"] = [{"name": "o", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": self.origin.addr[1]}}]}]
        s = self.start_sluice(cfg, concurrency=1)
        c = HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        # What a plugin puts in the stream's metadata can be any byte: CR LF, ESC, quotes, a
        # backslash, bytes that are not UTF-8 (percent-decoded by the test plugin).
        injected = "%0D%0Aforged 200 line%0D%0A%1B[31m%22q%22%5C%FF%C3%28"
        # And what a request field may carry: quotes, a backslash, a tab, obs-text.
        quote = b'"quoted" \\ \t \xe9\xff'
        c.send(req("GET", "/x", headers=[("X-Inject", injected), ("X-Quote", quote),
                                         ("X-Request-ID", "inj"), ("User-Agent", '"ua"')]))
        self.assertEqual(c.read_response().status, 200)
        # CR, LF or ESC in a request field itself never gets that far: the codec refuses the
        # request (400), which is logged as one line too.
        bad = HttpClient.connect(s.addr("web"))
        self.addCleanup(bad.close)
        bad.send(b"GET /y HTTP/1.1\r\nHost: h\r\nX-Quote: a\x1bb\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        self.await_written(s, 2)
        with open(self.log_path("text.log"), "rb") as f:
            raw = f.read()
        self.assertEqual(raw.count(b"\n"), 2, raw)
        self.assertNotIn(b"\r", raw)
        self.assertNotIn(b"\x1b", raw)
        self.assertFalse(any(b >= 0x80 for b in raw), raw)
        text, js = self.both()
        t = next(l for l in text if l["request_id"] == "inj")
        self.assertEqual(t["inject"],
                         "\\x0d\\x0aforged 200 line\\x0d\\x0a\\x1b[31m\\x22q\\x22\\x5c\\xff\\xc3(")
        self.assertEqual(t["quote"], "\\x22quoted\\x22 \\x5c \\x09 \\xe9\\xff")
        self.assertEqual(t["user_agent"], "\\x22ua\\x22")
        j = next(l for l in js if l["request_id"] == "inj")
        # Valid JSON; bytes that are not UTF-8 read as Latin-1 (\u00NN): the octets survive.
        self.assertEqual(j["inject"], "\r\nforged 200 line\r\n\x1b[31m\"q\"\\\xff\xc3(")
        self.assertEqual(j["quote"], '"quoted" \\ \t \xe9\xff')
        with open(self.log_path("json.log"), "rb") as f:
            raw = f.read()
        raw.decode("utf-8")  # valid UTF-8 throughout
        self.assertEqual(raw.count(b"\n"), 2)
        self.stop_sluice(s)


class FifoTest(AccessLogTestCase):
    """A log file on a stalled disk: a FIFO."""

    def start(self, fifo):
        log = {"path": fifo, "name": "fifo", "jsonFormat": {"code": "%RESPONSE_CODE%",
                                                            "id": "%REQUEST_ID%"},
               "bufferSizeBytes": 4096, "flushInterval": "0.01s"}
        cfg = harness.http_config([harness.http_listener("web", hcm={"accessLog": [log]})])
        return self.start_sluice(cfg, concurrency=2)

    def serve_until_dropped(self, s):
        """Requests (bounded: 20,000 or 60 s) until lines are dropped; each one answered."""
        c = HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        deadline = time.monotonic() + 60
        for i in range(20000):
            c.send(req("GET", "/r", headers=[("X-Request-ID", "r%d" % i)]))
            self.assertEqual(c.read_response().status, 200)
            if i % 100 == 99:
                st = s.stats()
                if st.get("access_log.fifo.dropped", 0) > 0:
                    return i + 1, st
            self.assertLess(time.monotonic(), deadline, "no line dropped within 60 s")
        self.fail("no line dropped after 20,000 requests")

    def test_fifo_nobody_opens(self):
        fifo = self.log_path("never.fifo")
        os.mkfifo(fifo)
        s = self.start(fifo)
        served, st = self.serve_until_dropped(s)
        self.assertEqual(st.get("access_log.fifo.written"), 0)
        self.assertEqual(st.get("http.web.downstream_rq_2xx"), served)
        # The exit does not wait for a reader that never comes (bounded), and counts the rest.
        self.stop_sluice(s)

    def test_fifo_never_read(self):
        fifo = self.log_path("stalled.fifo")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        # The smallest pipe the kernel allows (a page): it fills at once.
        fcntl.fcntl(reader, 1031, 4096)  # F_SETPIPE_SZ
        s = self.start(fifo)
        served, st = self.serve_until_dropped(s)
        self.assertGreater(st.get("access_log.fifo.written"), 0)
        self.assertEqual(st.get("http.web.downstream_rq_2xx"), served)
        # What reached the pipe: whole lines (no line is ever split by the pipe being full).
        data = b""
        while True:
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        self.assertTrue(data.endswith(b"\n"), data[-200:])
        lines = [json.loads(l) for l in data.decode().splitlines()]
        self.assertTrue(all(l["code"] == 200 for l in lines))
        self.stop_sluice(s)


class ReopenTest(AccessLogTestCase):
    def test_sigusr1_reopens_after_rename(self):
        path = self.log_path("access.log")
        log = {"path": path, "format": "%REQUEST_ID% %RESPONSE_CODE%", "flushInterval": "0.01s"}
        cfg = harness.http_config([harness.http_listener("web", hcm={"accessLog": [log]})])
        s = self.start_sluice(cfg, concurrency=1)
        name = "access_log.%s" % path.lstrip("/").replace("/", "_")
        c = HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", headers=[("X-Request-ID", "one")]))
        self.assertEqual(c.read_response().status, 200)
        s.wait_stats(lambda st: st[name + ".written"] == 1, "the first line")
        os.rename(path, path + ".1")  # logrotate
        s.send_signal(signal.SIGUSR1)
        s.wait_stats(lambda st: st[name + ".reopens"] == 1, "the reopen")
        self.assertTrue(os.path.exists(path))
        c.send(req("GET", "/", headers=[("X-Request-ID", "two")]))
        self.assertEqual(c.read_response().status, 200)
        s.wait_stats(lambda st: st[name + ".written"] == 2, "the second line")
        self.assertEqual(read_lines(path + ".1"), ["one 200"])
        self.assertEqual(read_lines(path), ["two 200"])
        s.wait_log("SIGUSR1 received: reopening the access log files")
        self.stop_sluice(s)


class StdoutTest(AccessLogTestCase):
    def test_stdout_and_the_flush_at_exit(self):
        # Lines wait up to an hour: only the exit's flush writes them.
        log = {"stdout": True, "jsonFormat": {"id": "%REQUEST_ID%", "code": "%RESPONSE_CODE%",
                                              "method": "%REQ(:METHOD)%"},
               "flushInterval": "3600s"}
        cfg = harness.http_config([harness.http_listener("web", hcm={"accessLog": [log]})])
        s = self.start_sluice(cfg, concurrency=2)
        for i in range(20):
            c = HttpClient.connect(s.addr("web"))
            c.send(req("GET", "/", headers=[("X-Request-ID", "s%d" % i), ("Connection", "close")]))
            self.assertEqual(c.read_response().status, 200)
            c.close()
        self.assertEqual(s.stats()["access_log.stdout.written"], 0)
        self.stop_sluice(s)
        lines = [json.loads(l) for l in read_lines(s.stdout_path)]
        self.assertEqual(sorted(l["id"] for l in lines), sorted("s%d" % i for i in range(20)))
        self.assertTrue(all(l["code"] == 200 and l["method"] == "GET" for l in lines))


class ExampleConfigTest(AccessLogTestCase):
    """configs/access_log.yaml as it ships (its ports and its file's path swapped)."""

    def test_the_example_config(self):
        with open(os.path.join(harness.repo_root(), "configs", "access_log.yaml")) as f:
            text = f.read()
        path = self.log_path("access.log")
        swaps = [("port: 8000}", "port: 0}"), ("port: 9901}", "port: 0}"),
                 ("port: 8081}", "port: %d}" % self.origin.addr[1]),
                 ("/var/log/sluice/access.log", path)]
        for fixed, now in swaps:
            self.assertIn(fixed, text)
            text = text.replace(fixed, now)
        s = self.start_sluice(text, concurrency=1)
        c = HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/hello", host="example.test", headers=[("User-Agent", "ex/1")]))
        self.assertEqual(c.read_response().status, 200)
        self.stop_sluice(s)  # the exit writes what is queued
        lines = read_lines(path)
        self.assertEqual(len(lines), 1)
        m = re.fullmatch(r'\[\d{4}-\d\d-\d\dT[\d:.]+Z\] "GET /hello HTTP/1.1" 200 - 0 \d+ \d+ '
                         r'\d+ "127.0.0.1" "ex/1" "([^"]+)" "example.test" "127.0.0.1:%d"'
                         % self.origin.addr[1], lines[0])
        self.assertTrue(m, lines[0])
        out = [json.loads(l) for l in read_lines(s.stdout_path)]
        self.assertEqual(len(out), 1)
        self.assertEqual((out[0]["method"], out[0]["path"], out[0]["status"], out[0]["client"],
                          out[0]["request_id"], out[0]["upstream"]),
                         ("GET", "/hello", 200, "127.0.0.1", m.group(1),
                          "127.0.0.1:%d" % self.origin.addr[1]))


class ConfigErrorTest(harness.SluiceTestCase):
    def test_errors_name_the_field(self):
        bad = [
            ({"path": "/tmp/x", "format": "%REQ(:METHOD)% %BOGUS%"},
             "access_log[0].format: unknown command %BOGUS% at character 16"),
            ({"path": "/tmp/x", "jsonFormat": {"a": "%NOPE%"}},
             "access_log[0].json_format: key \"a\": unknown command %NOPE% at character 1"),
            ({"format": "%PROTOCOL%"}, "access_log[0]: required: path (a file) or stdout: true"),
            ({"path": "/tmp/x", "stdout": True}, "access_log[0]: path and stdout are both set"),
            ({"path": "/tmp/x", "format": "a", "jsonFormat": {"a": "b"}},
             "access_log[0]: format and json_format are both set"),
            ({"path": "/tmp/x", "bufferSizeBytes": 100},
             "access_log[0].buffer_size_bytes: must be 4096..67108864"),
            ({"path": "/tmp/x", "name": "a b"}, "access_log[0].name: \"a b\" is not a valid name"),
        ]
        for log, message in bad:
            cfg = harness.http_config([harness.http_listener("web", hcm={"accessLog": [log]})])
            path = harness.write_config(cfg, self.tmpdir, "bad.json")
            r = harness.run_cli(["--mode", "validate", "-c", path])
            self.assertEqual(r.returncode, 1, (log, r.stdout, r.stderr))
            self.assertIn("listeners[0].filters[0].http_connection_manager." + message,
                          r.stdout + r.stderr, log)
        # A file that cannot be opened fails the start, naming it.
        cfg = harness.http_config([harness.http_listener("web", hcm={"accessLog": [
            {"path": os.path.join(self.tmpdir, "no", "such", "dir.log")}]})])
        s = self.start_sluice(cfg, wait=False)
        rc = s.wait_exit()
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot open access log %s" % os.path.join(self.tmpdir, "no", "such",
                                                                 "dir.log"), s.log_text())


if __name__ == "__main__":
    harness.main()
