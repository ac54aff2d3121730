"""Request ids and W3C tracing (issue 16) in the real binary: a real origin (harness.HttpOrigin)
records the traceparent, tracestate and request id it gets, and a small OTLP/HTTP collector
(OtlpCollector: Python's http.server on loopback, the tracing's collector cluster) parses every
export and checks its structure (resourceSpans -> scopeSpans -> spans, hex ids, unix-nano
times, typed attributes).

- Propagation: an incoming traceparent's trace id goes on with a new span id (ours), the exported
  span's parentSpanId is the incoming span id and the origin's parent is our span id; tracestate
  goes on as it came (joined when split over fields), and is dropped when invalid.
- Every kind of invalid traceparent starts a new trace (and drops tracestate).
- Sampling: 0% and 100% random sampling, an incoming sampled=0 at 100% and sampled=1 at 0%
  honoured (parent-based); the origin sees the decision in the flags.
- Request ids: generated (UUID v4), kept, replaced (keep_incoming false), echoed (local replies
  too) or not, another field name; the same id in the span.
- The span: name, kind, times, status ERROR for a 5xx, attributes, service.name.
- A collector that is down, or that never answers: every request is served, spans dropped and
  counted (awaited on /stats, bounded).
- HTTP/2 downstream (h2c, h2client.Mux) as HTTP/1.1.
- configs/tracing.yaml as it ships (ports swapped), and config validation's field paths.
"""

import http.server
import json
import os
import re
import socketserver
import sys
import threading

import harness
from harness import http_request as req

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2client  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SAMPLED = "00-%s-%s-01" % (TRACE, PARENT)
UNSAMPLED = "00-%s-%s-00" % (TRACE, PARENT)

STAT = "tracing.web."


class OtlpCollector:
    """An OTLP/HTTP JSON receiver on 127.0.0.1: POST /v1/traces. Every export is parsed and its
    structure checked (problems go to `errors`); its spans are appended to `spans` (dicts with
    the resource's service.name added as "_service"). mode "ok" answers 200 {}; "hang" reads the
    export and never answers (until close()); an int answers that status."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.spans = []
        self.exports = 0
        self.errors = []
        self.cond = threading.Condition()
        self.release = threading.Event()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                problems = []
                if self.path != "/v1/traces":
                    problems.append("path %r" % self.path)
                if self.headers.get("Content-Type") != "application/json":
                    problems.append("content-type %r" % self.headers.get("Content-Type"))
                spans = []
                try:
                    spans = collector.check_export(json.loads(body), problems)
                except ValueError as e:
                    problems.append("not JSON: %s: %r" % (e, body[:200]))
                with collector.cond:
                    collector.exports += 1
                    collector.errors.extend(problems)
                    collector.spans.extend(spans)
                    collector.cond.notify_all()
                if collector.mode == "hang":
                    collector.release.wait(120)
                    return
                status = 200 if collector.mode == "ok" else int(collector.mode)
                out = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                # sluice killed at a test's end resets its kept-alive export connection.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def check_export(doc, problems):
        spans = []
        rss = doc.get("resourceSpans")
        if not isinstance(rss, list) or not rss:
            problems.append("no resourceSpans list")
            return spans
        for rs in rss:
            attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            service = attrs.get("service.name", {}).get("stringValue")
            if not service:
                problems.append("no service.name")
            for ss in rs["scopeSpans"]:
                if ss.get("scope", {}).get("name") != "sluice":
                    problems.append("scope %r" % ss.get("scope"))
                for span in ss["spans"]:
                    OtlpCollector.check_span(span, problems)
                    span["_service"] = service
                    spans.append(span)
        return spans

    @staticmethod
    def check_span(span, problems):
        if not HEX32.match(span.get("traceId", "")):
            problems.append("traceId %r" % span.get("traceId"))
        if not HEX16.match(span.get("spanId", "")):
            problems.append("spanId %r" % span.get("spanId"))
        if "parentSpanId" in span and not HEX16.match(span["parentSpanId"]):
            problems.append("parentSpanId %r" % span["parentSpanId"])
        if span.get("kind") != 2:
            problems.append("kind %r (not SPAN_KIND_SERVER)" % span.get("kind"))
        if not isinstance(span.get("name"), str) or not span["name"]:
            problems.append("name %r" % span.get("name"))
        start, end = span.get("startTimeUnixNano"), span.get("endTimeUnixNano")
        if not (isinstance(start, str) and start.isdigit() and isinstance(end, str) and
                end.isdigit() and int(start) <= int(end)):
            problems.append("times %r %r" % (start, end))
        for a in span.get("attributes", []):
            v = a.get("value", {})
            if not isinstance(a.get("key"), str) or len(v) != 1 or \
                    next(iter(v)) not in ("stringValue", "intValue"):
                problems.append("attribute %r" % a)
            elif "intValue" in v and not str(v["intValue"]).isdigit():
                problems.append("attribute %r" % a)

    def wait_spans(self, predicate, what, timeout=harness.STATS_TIMEOUT):
        """Waits until predicate(spans) holds; returns the spans."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.spans), timeout):
                raise AssertionError("collector: no %s within %.0fs (spans: %r)" %
                                     (what, timeout, self.spans[-10:]))
            return list(self.spans)

    def wait_span(self, trace_id, timeout=harness.STATS_TIMEOUT):
        spans = self.wait_spans(lambda sp: any(s["traceId"] == trace_id for s in sp),
                                "span of trace %s" % trace_id, timeout)
        return next(s for s in spans if s["traceId"] == trace_id)

    def wait_exports(self, n, timeout=harness.STATS_TIMEOUT):
        with self.cond:
            if not self.cond.wait_for(lambda: self.exports >= n, timeout):
                raise AssertionError("collector: %d exports, not %d" % (self.exports, n))

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    out = {}
    for a in span["attributes"]:
        v = a["value"]
        out[a["key"]] = int(v["intValue"]) if "intValue" in v else v["stringValue"]
    return out


def header(headers, name):
    """A field of an origin's recorded request (a dict as received), case-insensitively."""
    values = [v for k, v in headers.items() if k.lower() == name]
    return values[0] if values else None


def config(origin_port, collector_port, tracing=None, request_id=None, routes=None):
    hcm = {}
    if tracing is not False:
        t = {"collectorCluster": "otel", "flushInterval": "0.01s"}
        t.update(tracing or {})
        hcm["tracing"] = t
    if request_id is not None:
        hcm["requestId"] = request_id
    if routes is None:
        routes = [{"match": {"prefix": "/api/"}, "name": "api",
                   "route": {"cluster": "o", "prefixRewrite": "/"}},
                  {"match": {"prefix": "/nowhere"}, "directResponse": {"status": 404}},
                  {"route": {"cluster": "o"}}]
    cfg = harness.routed_config(origin_port, routes=routes, hcm=hcm)
    cfg["clusters"].append({"name": "otel", "connectTimeout": "1s", "endpoints": [
        {"address": {"address": "127.0.0.1", "port": collector_port}}]})
    return cfg


class TracingTestCase(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = self.server(harness.HttpOrigin)

    def collector(self, mode="ok"):
        c = OtlpCollector(mode)
        self.addCleanup(c.close)
        return c

    def start(self, collector_port, **kw):
        return self.start_sluice(config(self.origin.addr[1], collector_port, **kw),
                                 concurrency=1)

    def get(self, s, path="/", headers=(), method="GET"):
        c = harness.HttpClient.connect(s.addr("web"))
        try:
            c.send(req(method, path, headers=headers))
            return c.read_response(head_request=method == "HEAD")
        finally:
            c.close()

    def origin_got(self, path):
        """The headers the origin got with the request for `path` (the last such)."""
        _, _, headers = self.origin.wait_request(lambda m, p, h: p == path, what=path)
        return [h for m, p, h in self.origin.requests if p == path][-1]

    def assertNoCollectorErrors(self, collector):
        self.assertEqual([], collector.errors)


class PropagationTest(TracingTestCase):

    def test_incoming_trace_goes_on_with_our_span(self):
        col = self.collector()
        s = self.start(col.port)
        r = self.get(s, "/p?x=1", headers=[("traceparent", SAMPLED),
                                           ("tracestate", "rojo=00f067aa0ba902b7"),
                                           ("tracestate", "congo=t61rcWkgMzE"),
                                           ("user-agent", "tracer-test/1")])
        self.assertEqual(200, r.status, r.raw)
        got = self.origin_got("/p?x=1")
        m = TRACEPARENT.match(header(got, "traceparent") or "")
        self.assertIsNotNone(m, got)
        self.assertEqual(TRACE, m.group(1))  # the same trace
        self.assertNotEqual(PARENT, m.group(2))  # a new span id: ours
        self.assertEqual("01", m.group(3))
        self.assertEqual("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", header(got, "tracestate"))
        span = col.wait_span(TRACE)
        self.assertEqual(m.group(2), span["spanId"])  # the origin's parent is our span
        self.assertEqual(PARENT, span["parentSpanId"])  # our parent is the caller's span
        self.assertEqual("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", span["traceState"])
        self.assertEqual("GET /p", span["name"])
        self.assertEqual("sluice", span["_service"])
        self.assertNotIn("status", span)
        a = attrs(span)
        self.assertEqual("GET", a["http.request.method"])
        self.assertEqual("/p", a["url.path"])
        self.assertEqual("http", a["url.scheme"])
        self.assertEqual(200, a["http.response.status_code"])
        self.assertEqual("tracer-test/1", a["user_agent.original"])
        self.assertEqual("127.0.0.1", a["client.address"])
        self.assertEqual("1.1", a["network.protocol.version"])
        self.assertEqual("o", a["sluice.upstream.cluster"])
        self.assertEqual("127.0.0.1:%d" % self.origin.addr[1], a["sluice.upstream.host"])
        self.assertNotIn("sluice.request_id", a)  # request ids not configured
        self.assertNotIn("sluice.response_flags", a)
        self.assertNoCollectorErrors(col)
        st = s.wait_stats(lambda st: st.get(STAT + "spans_exported") == 1, "one span exported")
        self.assertEqual(1, harness.stat(st, STAT + "spans_sampled"))
        self.assertEqual(0, harness.stat(st, STAT + "spans_dropped"))
        self.assertEqual(0, harness.stat(st, STAT + "export_failures"))
        # Prometheus: one family per counter, the manager's prefix a label.
        code, body = s.admin_get("/stats/prometheus")
        self.assertEqual(200, code)
        families = {f.name: f for f in harness.parse_prometheus(body.decode())}
        for name, value in (("spans_sampled", 1), ("spans_exported", 1), ("spans_dropped", 0),
                            ("export_failures", 0)):
            f = families["sluice_tracing_" + name]
            self.assertEqual("counter", f.type)
            self.assertEqual([({"http_conn_manager_prefix": "web"}, value)],
                             [(x.labels, x.value) for x in f.samples], name)

    def test_route_name_error_status_and_response_flags(self):
        col = self.collector()
        s = self.start(col.port)
        self.assertEqual(503, self.get(s, "/api/status/503",
                                       headers=[("traceparent", SAMPLED)]).status)
        span = col.wait_span(TRACE)
        self.assertEqual("GET api", span["name"])  # the route's name when it has one
        self.assertEqual(2, span["status"]["code"])  # STATUS_CODE_ERROR
        self.assertEqual(503, attrs(span)["http.response.status_code"])
        # A client error leaves the status unset; a failure of ours sets its flags and details.
        other = "0af7651916cd43dd8448eb211c80319c"
        self.assertEqual(404, self.get(s, "/status/404", headers=[
            ("traceparent", "00-%s-b7ad6b7169203331-01" % other)]).status)
        self.assertNotIn("status", col.wait_span(other))
        down = "11111111111111111111111111111111"
        s2 = self.start_sluice(config(harness.unused_port(), col.port), concurrency=1)
        r = self.get(s2, "/x", headers=[("traceparent", "00-%s-b7ad6b7169203331-01" % down)])
        self.assertEqual(503, r.status)
        span = col.wait_span(down)
        self.assertEqual(2, span["status"]["code"])
        self.assertIn("UF", attrs(span)["sluice.response_flags"])
        self.assertTrue(span["status"].get("message"))
        self.assertNoCollectorErrors(col)

    def test_invalid_traceparents_start_a_new_trace(self):
        col = self.collector()
        s = self.start(col.port)
        bad = {
            "uppercase": "00-%s-%s-01" % (TRACE.upper(), PARENT),
            "version-ff": "ff-%s-%s-01" % (TRACE, PARENT),
            "zero-trace": "00-%s-%s-01" % ("0" * 32, PARENT),
            "zero-parent": "00-%s-%s-01" % (TRACE, "0" * 16),
            "short": "00-%s-%s-1" % (TRACE, PARENT),
            "long-00": SAMPLED + "-extra",
            "not-hex": "00-%s-%s-0g" % (TRACE, PARENT),
            "separator": "00_%s-%s-01" % (TRACE, PARENT),
            "later-version-bad-tail": "01-%s-%s-01x" % (TRACE, PARENT),
        }
        for name, value in bad.items():
            with self.subTest(name):
                path = "/inv/" + name
                r = self.get(s, path, headers=[("traceparent", value),
                                               ("tracestate", "rojo=1")])
                self.assertEqual(200, r.status)
                got = self.origin_got(path)
                m = TRACEPARENT.match(header(got, "traceparent") or "")
                self.assertIsNotNone(m, got)
                self.assertNotEqual(TRACE, m.group(1))
                self.assertEqual("01", m.group(3))  # random_sampling 100 by default
                self.assertIsNone(header(got, "tracestate"))
                span = col.wait_span(m.group(1))
                self.assertNotIn("parentSpanId", span)
                self.assertNotIn("traceState", span)
                self.assertEqual(m.group(2), span["spanId"])
        # Two traceparent fields are invalid too.
        r = self.get(s, "/inv/two", headers=[("traceparent", SAMPLED), ("traceparent", SAMPLED)])
        self.assertEqual(200, r.status)
        got = self.origin_got("/inv/two")
        self.assertNotEqual(TRACE, TRACEPARENT.match(header(got, "traceparent")).group(1))
        # A later version is parsed by the 00 rules (what follows a '-' ignored), sent as 00.
        r = self.get(s, "/later", headers=[("traceparent", "cc-%s-%s-01-future" % (TRACE, PARENT))])
        m = TRACEPARENT.match(header(self.origin_got("/later"), "traceparent"))
        self.assertEqual(TRACE, m.group(1))
        self.assertEqual(PARENT, col.wait_span(TRACE)["parentSpanId"])
        # An invalid tracestate is dropped, the traceparent kept.
        other = "0af7651916cd43dd8448eb211c80319c"
        self.get(s, "/badstate", headers=[("traceparent", "00-%s-%s-01" % (other, PARENT)),
                                          ("tracestate", "Not A Key=1")])
        got = self.origin_got("/badstate")
        self.assertEqual(other, TRACEPARENT.match(header(got, "traceparent")).group(1))
        self.assertIsNone(header(got, "tracestate"))
        self.assertNoCollectorErrors(col)


class SamplingTest(TracingTestCase):

    def test_zero_percent_and_a_sampled_parent(self):
        col = self.collector()
        s = self.start(col.port, tracing={"randomSampling": 0})
        self.assertEqual(200, self.get(s, "/none").status)
        m = TRACEPARENT.match(header(self.origin_got("/none"), "traceparent"))
        self.assertEqual("00", m.group(3))  # not sampled, still propagated
        unsampled_trace = m.group(1)
        # The caller sampled: honoured at 0%.
        self.assertEqual(200, self.get(s, "/yes", headers=[("traceparent", SAMPLED)]).status)
        self.assertEqual("01", TRACEPARENT.match(
            header(self.origin_got("/yes"), "traceparent")).group(3))
        col.wait_span(TRACE)
        st = s.wait_stats(lambda st: st.get(STAT + "spans_exported") == 1, "one export")
        self.assertEqual(1, harness.stat(st, STAT + "spans_sampled"))
        # The same worker exports in order: the first request's span would have come first.
        self.assertEqual([TRACE], [sp["traceId"] for sp in col.spans])
        self.assertNotEqual(unsampled_trace, TRACE)

    def test_hundred_percent_and_an_unsampled_parent(self):
        col = self.collector()
        s = self.start(col.port, tracing={"randomSampling": 100})
        self.assertEqual(200, self.get(s, "/no", headers=[("traceparent", UNSAMPLED),
                                                          ("tracestate", "rojo=1")]).status)
        got = self.origin_got("/no")
        m = TRACEPARENT.match(header(got, "traceparent"))
        self.assertEqual((TRACE, "00"), (m.group(1), m.group(3)))
        self.assertNotEqual(PARENT, m.group(2))
        self.assertEqual("rojo=1", header(got, "tracestate"))
        self.assertEqual(200, self.get(s, "/fresh").status)
        fresh = TRACEPARENT.match(header(self.origin_got("/fresh"), "traceparent"))
        self.assertEqual("01", fresh.group(3))
        col.wait_span(fresh.group(1))
        s.wait_stats(lambda st: st.get(STAT + "spans_exported") == 1, "one export")
        self.assertEqual([fresh.group(1)], [sp["traceId"] for sp in col.spans])

    def test_no_tracing_configured_leaves_the_fields_alone(self):
        s = self.start(harness.unused_port(), tracing=False)
        self.get(s, "/plain", headers=[("traceparent", "whatever"), ("tracestate", "Bad=")])
        got = self.origin_got("/plain")
        self.assertEqual("whatever", header(got, "traceparent"))
        self.assertEqual("Bad=", header(got, "tracestate"))
        self.assertIsNone(header(got, "x-request-id"))
        self.assertNotIn(STAT + "spans_sampled", s.stats())


class RequestIdTest(TracingTestCase):

    def test_generated_kept_and_echoed(self):
        col = self.collector()
        s = self.start(col.port, request_id={})
        r = self.get(s, "/gen", headers=[("traceparent", SAMPLED)])
        rid = r.get("x-request-id")
        self.assertRegex(rid or "", UUID4)
        self.assertEqual(rid, header(self.origin_got("/gen"), "x-request-id"))
        self.assertEqual(rid, attrs(col.wait_span(TRACE))["sluice.request_id"])
        r = self.get(s, "/keep", headers=[("X-Request-Id", "client-id-1")])
        self.assertEqual("client-id-1", r.get("x-request-id"))
        self.assertEqual("client-id-1", header(self.origin_got("/keep"), "x-request-id"))
        # Local replies carry it too.
        r = self.get(s, "/nowhere")
        self.assertEqual(404, r.status)
        self.assertRegex(r.get("x-request-id") or "", UUID4)
        ids = set()
        for i in range(20):
            ids.add(self.get(s, "/n%d" % i).get("x-request-id"))
        self.assertEqual(20, len(ids))

    def test_replaced_not_echoed_other_field(self):
        s = self.start(harness.unused_port(), tracing=False, request_id={
            "headerName": "x-correlation-id", "keepIncoming": False, "echoOnResponse": False})
        r = self.get(s, "/r", headers=[("x-correlation-id", "forged"),
                                       ("x-request-id", "untouched")])
        self.assertEqual(200, r.status)
        self.assertIsNone(r.get("x-correlation-id"))
        got = self.origin_got("/r")
        self.assertRegex(header(got, "x-correlation-id"), UUID4)
        self.assertEqual("untouched", header(got, "x-request-id"))


class CollectorTroubleTest(TracingTestCase):

    def test_collector_down(self):
        s = self.start(harness.unused_port(), tracing={"maxBatch": 4})
        for i in range(10):
            self.assertEqual(200, self.get(s, "/d%d" % i).status)
        st = s.wait_stats(lambda st: st.get(STAT + "spans_dropped") == 10,
                          "every span dropped")
        self.assertEqual(10, harness.stat(st, STAT + "spans_sampled"))
        self.assertEqual(0, harness.stat(st, STAT + "spans_exported"))
        self.assertGreaterEqual(harness.stat(st, STAT + "export_failures"), 3)

    def test_collector_never_answers(self):
        col = self.collector("hang")
        s = self.start(col.port, tracing={"maxBatch": 2, "exportTimeout": "120s"})
        self.assertEqual(200, self.get(s, "/first").status)
        col.wait_exports(1)  # in flight, and it stays so
        for i in range(10):
            self.assertEqual(200, self.get(s, "/h%d" % i).status)
        # The batch holds two; the rest is dropped while the export hangs.
        st = s.wait_stats(lambda st: st.get(STAT + "spans_sampled") == 11 and
                          st.get(STAT + "spans_dropped") == 8, "eight spans dropped")
        self.assertEqual(0, harness.stat(st, STAT + "spans_exported"))
        self.assertEqual(1, col.exports)

    def test_collector_refuses(self):
        col = self.collector(500)
        s = self.start(col.port)
        self.assertEqual(200, self.get(s, "/refused").status)
        st = s.wait_stats(lambda st: st.get(STAT + "export_failures") == 1, "a failed export")
        self.assertEqual(1, harness.stat(st, STAT + "spans_dropped"))
        self.assertNoCollectorErrors(col)


class Http2Test(TracingTestCase):

    def test_h2_downstream(self):
        col = self.collector()
        s = self.start(col.port, request_id={})
        host, port = s.addr("web")
        m = h2client.Mux.connect(host, port)
        self.addCleanup(m.close)
        streams = []
        for i in range(3):
            tp = "00-%032x-%s-01" % (i + 1, PARENT)
            streams.append((tp, m.request("GET", "/h2/%d" % i, headers=[("traceparent", tp)])))
        for i, (tp, st) in enumerate(streams):
            m.wait(st)
            self.assertEqual(200, st.status)
            rid = st.header("x-request-id")
            self.assertRegex(rid or "", UUID4)
            got = self.origin_got("/h2/%d" % i)
            self.assertEqual(rid, header(got, "x-request-id"))
            sent = TRACEPARENT.match(header(got, "traceparent"))
            self.assertEqual("%032x" % (i + 1), sent.group(1))
            span = col.wait_span("%032x" % (i + 1))
            self.assertEqual(sent.group(2), span["spanId"])
            self.assertEqual(PARENT, span["parentSpanId"])
            a = attrs(span)
            self.assertEqual("2", a["network.protocol.version"])
            self.assertEqual(rid, a["sluice.request_id"])
            self.assertEqual("/h2/%d" % i, a["url.path"])
        self.assertNoCollectorErrors(col)


class ConfigTest(TracingTestCase):

    def test_example_config(self):
        """configs/tracing.yaml as it ships, its ports swapped."""
        col = self.collector()
        with open(os.path.join(harness.repo_root(), "configs", "tracing.yaml")) as f:
            text = f.read()
        swaps = [("port: 8000}", "port: 0}"), ("port: 9901}", "port: 0}"),
                 ("port: 8080}", "port: %d}" % self.origin.addr[1]),
                 ("port: 4318}", "port: %d}" % col.port),
                 ("flush_interval: 1s", "flush_interval: 0.01s")]
        for fixed, now in swaps:
            self.assertIn(fixed, text)
            text = text.replace(fixed, now)
        s = self.start_sluice(text, concurrency=1)
        r = self.get(s, "/hello", headers=[("traceparent", SAMPLED)])
        self.assertEqual(200, r.status)
        self.assertRegex(r.get("x-request-id") or "", UUID4)
        span = col.wait_span(TRACE)
        self.assertEqual("my-edge", span["_service"])
        self.assertEqual(r.get("x-request-id"), attrs(span)["sluice.request_id"])
        self.assertNoCollectorErrors(col)
        self.stop_sluice(s)

    def test_validation_names_the_fields(self):
        cfg = config(1, 2, tracing={"collectorCluster": "nope", "randomSampling": 150,
                                    "collectorPath": "v1 traces", "maxBatch": 100000,
                                    "flushInterval": "0s"},
                     request_id={"headerName": "content-length"})
        path = harness.write_config(cfg, self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual(1, r.returncode, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        hcm = "listeners[0].filters[0].http_connection_manager."
        for field, why in (("tracing.collector_cluster", "unknown cluster \"nope\""),
                           ("tracing.random_sampling", "0..100"),
                           ("tracing.collector_path", "not a request path"),
                           ("tracing.max_batch", "1..65536"),
                           ("tracing.flush_interval", "must be positive"),
                           ("request_id.header_name", "a field the proxy owns")):
            self.assertRegex(out, re.escape(hcm + field) + r": .*" + re.escape(why), out)
        cfg = config(1, 2, tracing={"collectorCluster": ""})
        r = harness.run_cli(["--mode", "validate", "-c", harness.write_config(cfg, self.tmpdir)])
        self.assertIn(hcm + "tracing.collector_cluster: required", r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
