"""The plugin ABI 1.3 additions of issue 11 in the real binary, against real origins and raw
clients (test/plugin/plugins/abi13_filters.cc): the bulk header read (sl_host_header_list, and
header_at after a removal), trailers added to messages that had none (chunked when the filter
declared them, dropped and counted when the message is framed by Content-Length, appended when
the origin sent some), labelled metrics in /stats and GET /stats/prometheus (HELP/TYPE, labels,
histogram buckets), sl_on_upstream_attempt_done for a response, a connect failure, a reset and a
stream cancelled under way; the example configs configs/prometheus.yaml and
test/plugin/configs/abi13_observability.yaml."""

import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))


def config(app_port, dead_port):
    return f"""
plugin_dirs: [{PLUGIN_DIR}]
listeners:
  - name: web
    address: {{address: 127.0.0.1, port: 0}}
    filters:
      - http_connection_manager:
          http_filters:
            - plugin: {{filter: header_list, plugin: abi13_filters}}
            - plugin: {{filter: trailers, plugin: abi13_filters}}
            - plugin: {{filter: tagged_metrics, plugin: abi13_filters}}
            - plugin: {{filter: attempts, plugin: abi13_filters}}
            - plugin:
                filter: router
                typed_config:
                  "@type": type.googleapis.com/sluice.extensions.router.v1.Router
                  virtual_hosts:
                    - name: v
                      domains: ["*"]
                      routes:
                        - match: {{prefix: /dead}}
                          route: {{cluster: dead}}
                        - match: {{prefix: /raw}}
                          route: {{cluster: raw}}
                        - route: {{cluster: app}}
clusters:
  - name: app
    endpoints:
      - address: {{address: 127.0.0.1, port: {app_port}}}
  - name: dead
    endpoints:
      - address: {{address: 127.0.0.1, port: {dead_port}}}
  - name: raw
    endpoints:
      - address: {{address: 127.0.0.1, port: RAW_PORT}}
admin:
  address: {{address: 127.0.0.1, port: 0}}
"""


class RawOrigin(harness.UpstreamServer):
    """An HTTP/1.1 origin that keeps every request as it arrived on the wire: head, de-chunked
    body, and the trailer lines of a chunked body. /raw/chunked answers "hello" chunked with a
    trailer of its own; anything else "ok" with a Content-Length."""

    def __init__(self):
        self.requests = []  # (head bytes, body bytes, [trailer lines])
        super().__init__()

    def handle(self, conn):
        f = conn.makefile("rb")
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = f.readline()
                if not line:
                    return
                head += line
            lower = head.lower()
            body, trailers = b"", []
            if b"transfer-encoding: chunked" in lower:
                while True:
                    size = int(f.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        while True:
                            line = f.readline()
                            if line in (b"\r\n", b""):
                                break
                            trailers.append(line.rstrip(b"\r\n").decode("latin-1"))
                        break
                    body += f.read(size)
                    f.readline()
            else:
                m = re.search(rb"content-length: *(\d+)", lower)
                if m:
                    body = f.read(int(m.group(1)))
            with self.cond:
                self.requests.append((head, body, trailers))
                self.cond.notify_all()
            path = head.split(b" ")[1]
            if path.startswith(b"/raw/chunked"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\nx-origin-trailer: 1\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def trailers_of(raw):
    """The trailer fields of a chunked response's raw bytes, [(lowercase name, value)]."""
    _, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep
    while True:  # walk the chunks to the last one
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        rest = rest[size + 2:]
    out = []
    for line in rest.split(b"\r\n"):
        if line:
            n, _, v = line.decode("latin-1").partition(":")
            out.append((n.strip().lower(), v.strip()))
    return out


class PluginAbi13Test(harness.SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)
        self.raw = RawOrigin()
        self.addCleanup(self.raw.close)
        text = config(self.origin.addr[1], harness.unused_port()).replace(
            "RAW_PORT", str(self.raw.port))
        self.s = self.start_sluice(text, concurrency=1)

    def client(self):
        c = harness.HttpClient.connect(self.s.addr("web"))
        self.addCleanup(c.close)
        return c

    def origin_headers(self):
        with self.origin.lock:
            return self.origin.requests[-1][2]

    # ----- bulk header read -----

    def test_header_list_and_at_agree_after_a_removal(self):
        c = self.client()
        c.send(req("GET", "/h", headers=[("X-A", "1"), ("X-Remove-Me", "z"), ("X-B", "2"),
                                         ("x-a", "3")]))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        h = self.origin_headers()
        self.assertEqual("Host,X-A,X-B,x-a", h["x-list-names"])
        self.assertEqual("4", h["x-list-count"])
        self.assertEqual("yes", h["x-list-same"])

    def test_header_list_beyond_the_sdk_inline_array(self):
        headers = [("X-H%02d" % i, str(i)) for i in range(40)]
        c = self.client()
        c.send(req("GET", "/many", headers=headers))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        h = self.origin_headers()
        self.assertEqual("41", h["x-list-count"])
        self.assertEqual("yes", h["x-list-same"])
        self.assertEqual(["Host"] + [n for n, _ in headers], h["x-list-names"].split(","))

    # ----- trailers -----

    def test_response_trailers_declared_go_out_chunked(self):
        c = self.client()
        c.send(req("GET", "/t", headers=[("x-rs-trailers", "expect")]))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertTrue(r.chunked, r.raw)
        self.assertIsNone(r.get("content-length"), r.raw)
        self.assertEqual("0", r.get("x-expect-rs"))
        self.assertEqual("-3", r.get("x-early-add"))  # SL_ERR_STATE from the headers hook
        self.assertTrue(r.body.startswith(b"GET /t "), r.body)
        self.assertEqual([("grpc-status", "0"), ("x-rs-added", "yes")], trailers_of(r.raw))
        # The connection goes on.
        c.send(req("GET", "/again"))
        self.assertEqual(200, c.read_response().status)
        self.assertEqual(0, self.s.stats()["http.web.downstream_rs_trailers_dropped"])

    def test_response_trailers_undeclared_on_a_counted_body_are_dropped_and_counted(self):
        c = self.client()
        c.send(req("GET", "/t", headers=[("x-rs-trailers", "1")]))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertFalse(r.chunked)
        self.assertEqual(str(len(r.body)), r.get("content-length"))
        self.assertTrue(r.body.startswith(b"GET /t "), r.body)
        self.assertNotIn(b"grpc-status", r.raw)
        c.send(req("GET", "/again"))
        self.assertEqual(200, c.read_response().status)
        self.s.wait_stats(lambda st: st["http.web.downstream_rs_trailers_dropped"] == 1,
                          "the dropped response trailers counted")

    def test_response_trailers_from_the_origin_get_one_more(self):
        c = self.client()
        c.send(req("GET", "/raw/chunked", headers=[("x-rs-trailers", "1")]))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(b"hello", r.body)
        self.assertEqual([("x-origin-trailer", "1"), ("x-added-existing", "yes")],
                         trailers_of(r.raw))

    def wait_raw_requests(self, n):
        with self.raw.cond:
            self.assertTrue(self.raw.cond.wait_for(lambda: len(self.raw.requests) >= n,
                                                   timeout=harness.IO_TIMEOUT))
            return list(self.raw.requests)

    def test_request_trailers_declared_go_upstream_chunked(self):
        c = self.client()
        c.send(req("POST", "/raw/up", headers=[("x-req-trailers", "expect")], body=b"payload"))
        self.assertEqual(200, c.read_response().status)
        head, body, trailers = self.wait_raw_requests(1)[0]
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertNotIn(b"\r\ncontent-length:", head.lower())
        self.assertIn(b"x-req-expect-result: 0", head.lower())
        self.assertEqual(b"payload", body)
        self.assertEqual(["x-req-added: yes"], trailers)

    def test_request_trailers_undeclared_on_a_counted_body_are_dropped_and_counted(self):
        c = self.client()
        c.send(req("POST", "/raw/up", headers=[("x-req-trailers", "1")], body=b"payload"))
        self.assertEqual(200, c.read_response().status)
        head, body, trailers = self.wait_raw_requests(1)[0]
        self.assertIn(b"content-length: 7", head.lower())
        self.assertEqual(b"payload", body)
        self.assertEqual([], trailers)
        self.s.wait_stats(lambda st: st["http.web.upstream_rq_trailers_dropped"] == 1,
                          "the dropped request trailers counted")

    # ----- labelled metrics -----

    def test_tagged_metrics_in_stats_and_prometheus(self):
        c = self.client()
        for method in ("GET", "GET", "POST", "PUT"):
            c.send(req(method, "/m", body=b"x" if method != "GET" else b""))
            self.assertEqual(200, c.read_response().status)
        st = self.s.wait_stats(
            lambda st: st['plugin.tagged_metrics.requests{listener="web",method="GET"}'] == 2,
            "the labelled request counters")
        self.assertEqual(1, st['plugin.tagged_metrics.requests{listener="web",method="POST"}'])
        self.assertEqual(1, st['plugin.tagged_metrics.requests{listener="web",method="other"}'])
        self.assertEqual(6, st["plugin.tagged_metrics.invalid_refused"])
        self.assertEqual(4, st['plugin.tagged_metrics.body_bytes.count{dir="rs"}'])

        status, headers, body, sock = self.s.stats_response(path="/stats/prometheus")
        sock.close()
        self.assertEqual("HTTP/1.1 200 OK", status)
        self.assertIn("version=0.0.4", headers["content-type"])
        text = body.decode()
        lines = text.splitlines()
        # A plugin's metric is in the family sluice_plugin_<name>, its filter the label "plugin".
        self.assertIn("# TYPE sluice_plugin_requests counter", lines)
        self.assertIn("# HELP sluice_plugin_requests plugin.requests", lines)
        self.assertIn('sluice_plugin_requests{listener="web",method="GET",plugin="tagged_metrics"} 2',
                      lines)
        self.assertIn("# TYPE sluice_plugin_invalid_refused gauge", lines)
        self.assertIn('sluice_plugin_invalid_refused{plugin="tagged_metrics"} 6', lines)
        self.assertIn("# TYPE sluice_http_downstream_rq_total counter", lines)
        # One TYPE per family.
        types = [ln for ln in lines if ln.startswith("# TYPE ")]
        self.assertEqual(len(types), len(set(types)))
        # Prometheus' own parser takes it whole.
        families = {f.name: f for f in harness.parse_prometheus(text)}
        self.assertEqual("histogram", families["sluice_plugin_body_bytes"].type)
        # The histogram: cumulative buckets on the documented bounds, then +Inf, sum, count.
        self.assertIn("# TYPE sluice_plugin_body_bytes histogram", lines)
        buckets = [(m.group(1), int(m.group(2))) for m in re.finditer(
            r'^sluice_plugin_body_bytes_bucket\{dir="rs",plugin="tagged_metrics",le="([^"]+)"\} '
            r'(\d+)$', text, re.M)]
        self.assertEqual("+Inf", buckets[-1][0])
        self.assertEqual(4, buckets[-1][1])
        bounds = [int(le) for le, _ in buckets[:-1]]
        expected = [0, 1] + [b for k in range(1, 64) for b in ((1 << k) + (1 << (k - 1)) - 1,
                                                                  (1 << (k + 1)) - 1)]
        self.assertEqual(expected[:len(bounds)], bounds)
        counts = [n for _, n in buckets]
        self.assertEqual(counts, sorted(counts))
        m = re.search(r'^sluice_plugin_body_bytes_sum\{dir="rs",plugin="tagged_metrics"\} (\d+)$',
                      text, re.M)
        self.assertIsNotNone(m, text)
        self.assertEqual(st['plugin.tagged_metrics.body_bytes.sum{dir="rs"}'], int(m.group(1)))
        self.assertIn('sluice_plugin_body_bytes_count{dir="rs",plugin="tagged_metrics"} 4', lines)

    # ----- upstream attempts -----

    def test_attempt_done_for_a_response(self):
        c = self.client()
        c.send(req("GET", "/a"))
        r = c.read_response()
        self.assertEqual(200, r.status)
        st = self.s.wait_stats(lambda st: st["plugin.attempts.before_complete"] == 1,
                               "the attempt reported before the stream completed")
        self.assertEqual(1, st['plugin.attempts.attempts{outcome="response"}'])
        self.assertEqual(1, st['plugin.attempts.status{code="200"}'])
        self.assertEqual(1, st["plugin.attempts.with_host"])
        self.assertEqual(len(r.body), st["plugin.attempts.bytes_received"])
        self.assertEqual(1, st["plugin.attempts.duration_us.count"])
        self.assertEqual(0, st["plugin.attempts.after_complete"])
        self.assertEqual(1, st["plugin.attempts.changes_refused"])

    def test_attempt_done_for_a_connect_failure(self):
        c = self.client()
        c.send(req("GET", "/dead"))
        self.assertEqual(503, c.read_response().status)
        st = self.s.wait_stats(lambda st: st["plugin.attempts.before_complete"] == 1,
                               "the failed attempt reported")
        self.assertEqual(1, st['plugin.attempts.attempts{outcome="connect_failure"}'])
        self.assertEqual(0, st['plugin.attempts.attempts{outcome="response"}'])
        self.assertEqual(0, st["plugin.attempts.with_host"])

    def test_attempt_done_for_a_reset(self):
        c = self.client()
        c.send(req("POST", "/reset", body=b"x"))  # not idempotent: no retry of its own
        self.assertEqual(502, c.read_response().status)
        st = self.s.wait_stats(lambda st: st["plugin.attempts.before_complete"] == 1,
                               "the reset attempt reported")
        self.assertEqual(1, st['plugin.attempts.attempts{outcome="reset"}'])

    def test_attempt_cancelled_when_the_client_leaves(self):
        c = self.client()
        c.send(req("GET", "/slow"))
        # Wait until the origin has the request, then leave.
        def arrived():
            with self.origin.lock:
                return any(p == "/slow" for _, p, _ in self.origin.requests)

        self.s.wait_stats(lambda st: arrived(), "the request at the origin")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        st = self.s.wait_stats(
            lambda st: st['plugin.attempts.attempts{outcome="cancelled"}'] == 1,
            "the attempt cancelled with its stream")
        self.assertEqual(0, st['plugin.attempts.attempts{outcome="response"}'])
        self.assertEqual(0, st["plugin.attempts.after_complete"])


class ExampleConfigTest(harness.SluiceTestCase):
    def load(self, path, replacements):
        with open(path) as f:
            text = f.read()
        for fixed, value in replacements:
            self.assertIn(fixed, text)
            text = text.replace(fixed, value)
        return self.start_sluice(text, concurrency=1)

    def get(self, s):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/"))
        self.assertEqual(200, c.read_response().status)

    def test_the_prometheus_example_config(self):
        origin = harness.HttpOrigin()
        self.addCleanup(origin.close)
        s = self.load(os.path.join(harness.repo_root(), "configs", "prometheus.yaml"),
                      (("port: 8000}", "port: 0}"), ("port: 9901}", "port: 0}"),
                       ("port: 8080}", "port: %d}" % origin.addr[1])))
        self.get(s)
        s.wait_stats(lambda st: st["http.web.downstream_rq_2xx"] == 1, "the request counted")
        code, body = s.admin_get("/stats/prometheus")
        self.assertEqual(200, code)
        lines = body.decode().splitlines()
        self.assertIn("# HELP sluice_http_downstream_rq_xx http.downstream_rq_xx", lines)
        self.assertIn("# TYPE sluice_http_downstream_rq_xx counter", lines)
        self.assertIn('sluice_http_downstream_rq_xx{http_conn_manager_prefix="web",'
                      'response_code_class="2"} 1', lines)

    def test_the_abi13_observability_config(self):
        origin = harness.HttpOrigin()
        self.addCleanup(origin.close)
        s = self.load(os.path.join(harness.repo_root(), "test", "plugin", "configs",
                                   "abi13_observability.yaml"),
                      (("port: 8000}", "port: 0}"), ("port: 9901}", "port: 0}"),
                       ("port: 8080}", "port: %d}" % origin.addr[1]),
                       ("[build/test/plugin/plugins]", "[%s]" % PLUGIN_DIR)))
        self.get(s)
        st = s.wait_stats(lambda st: st['plugin.attempts.attempts{outcome="response"}'] == 1,
                          "the attempt observed")
        self.assertEqual(1, st['plugin.tagged_metrics.requests{listener="web",method="GET"}'])
        code, body = s.admin_get("/stats/prometheus")
        self.assertEqual(200, code)
        self.assertIn(b'sluice_plugin_attempts{outcome="response",plugin="attempts"} 1', body)
        self.assertIn(b"# TYPE sluice_plugin_duration_us histogram", body)


if __name__ == "__main__":
    harness.main()
