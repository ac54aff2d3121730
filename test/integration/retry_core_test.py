"""The core's attempt mechanism (issue 15) in the real binary, against scripted origins, driven
by a scripted retry policy (test/plugin/plugins/abi14_filters.cc, "retry_probe") so that what is
tested here is the mechanism and not a policy (the retry plugin has its own tests): the request
body kept and sent again byte for byte (many sizes, Content-Length and chunked), a body over the
replay bound not retried, a new attempt on another host, x-sluice-attempt-count, per-try
timeouts, retries used up (URX), the retry budget; the typed response flags and error kinds as a
plugin sees them ("flags"); and nginx's proxy_connect/read/send timeouts per route and cluster."""

import hashlib
import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))

SIZES = [0, 1, 1000, 16384, 65536, 300000]


class ScriptedOrigin(harness.UpstreamServer):
    """An HTTP/1.1 keep-alive origin that reads each request whole (Content-Length or chunked)
    and acts on the next entry of its script (then on `default`):
      "ok"       200 with X-Body-Sha256 and X-Body-Length of the request body it read
      "503"      503 "unavailable"
      "reset"    closes the connection without an answer
      "hang"     answers nothing until `release` is set (then closes)
      "nobody"   reads the head only, never the body, until `release` is set
    It records (path, headers dict (lowercase names), body length, body sha256) per request."""

    def __init__(self, script=(), default="ok"):
        self.script = list(script)
        self.default = default
        self.requests = []
        self.release = threading.Event()
        super().__init__()

    def next_action(self):
        with self.cond:
            return self.script.pop(0) if self.script else self.default

    def handle(self, conn):
        f = conn.makefile("rb")
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = f.readline()
                if not line:
                    return
                head += line
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    n, _, v = line.partition(":")
                    headers[n.strip().lower()] = v.strip()
            action = self.next_action()
            if action == "nobody":
                with self.cond:
                    self.requests.append((path, headers, None, None))
                    self.cond.notify_all()
                self.release.wait(harness.IO_TIMEOUT)
                return
            body = b""
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int(f.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        while f.readline() not in (b"\r\n", b""):
                            pass
                        break
                    body += f.read(size)
                    f.readline()
            elif "content-length" in headers:
                body = f.read(int(headers["content-length"]))
            digest = hashlib.sha256(body).hexdigest()
            with self.cond:
                self.requests.append((path, headers, len(body), digest))
                self.cond.notify_all()
            if action == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                return
            if action == "hang":
                self.release.wait(harness.IO_TIMEOUT)
                return
            if action == "503":
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\n\r\n"
                             b"unavailable\n")
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Body-Length: %d\r\nX-Body-Sha256: %s\r\n"
                         b"Content-Length: 3\r\n\r\nok\n" % (len(body), digest.encode()))


def config(clusters, route_extra="", cluster_extra="", lb="ROUND_ROBIN"):
    """One listener with the flags observer, the retry probe and the router; `clusters`:
    {name: [ports]}; routes /NAME... go to cluster NAME."""
    routes = "".join(
        f"""
                        - match: {{prefix: /{name}}}
                          route: {{cluster: {name}{route_extra}}}""" for name in clusters)
    cl = "".join(
        f"""
  - name: {name}
    lb_policy: {lb}
    connect_timeout: 2s{cluster_extra}
    endpoints:""" + "".join(f"""
      - address: {{address: 127.0.0.1, port: {p}}}""" for p in ports)
        for name, ports in clusters.items())
    return f"""
plugin_dirs: [{PLUGIN_DIR}]
listeners:
  - name: web
    address: {{address: 127.0.0.1, port: 0}}
    filters:
      - http_connection_manager:
          upgrade_types: [websocket]
          http_filters:
            - plugin: {{filter: flags, plugin: abi14_filters}}
            - plugin: {{filter: retry_probe, plugin: abi14_filters}}
            - plugin:
                filter: router
                typed_config:
                  "@type": type.googleapis.com/sluice.extensions.router.v1.Router
                  virtual_hosts:
                    - name: v
                      domains: ["*"]
                      routes:{routes}
clusters:{cl}
admin:
  address: {{address: 127.0.0.1, port: 0}}
"""


def flag(st, name):
    return st.get('plugin.flags.response_flag{flag="%s"}' % name, 0)


class RetryCoreTestCase(harness.SluiceTestCase):

    def origin(self, script=(), default="ok"):
        o = ScriptedOrigin(script, default)
        self.addCleanup(o.close)
        self.addCleanup(o.release.set)
        return o

    def start(self, clusters, **kw):
        return self.start_sluice(config(clusters, **kw), concurrency=1)

    def settled(self, s, streams):
        """The stats once `streams` streams have ended (their log phase ran: the counters a
        worker writes at a stream's end are in)."""
        return s.wait_stats(lambda st: st.get("plugin.flags.completed", 0) >= streams,
                            what="%d streams ended" % streams)

    def exchange(self, s, method, path, headers=(), body=b"", chunked=False):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        hs = list(headers)
        if chunked:
            hs.append(("Transfer-Encoding", "chunked"))
            payload = harness.chunked(*[body[i:i + 10000] for i in range(0, len(body), 10000)])
        else:
            payload = body
            if method in ("POST", "PUT"):
                hs.append(("Content-Length", str(len(body))))
        c.send(req(method, path, headers=hs, body=payload))
        return c.read_response()


class ReplayTest(RetryCoreTestCase):

    def test_the_body_is_sent_again_byte_for_byte(self):
        o = self.origin(default="ok")
        s = self.start({"a": [o.port]})
        n = 0
        for chunked in (False, True):
            for size in SIZES:
                with self.subTest(size=size, chunked=chunked):
                    with o.cond:
                        o.script = ["reset"]  # the first attempt dies after reading the body
                    body = harness.pattern_bytes("replay%d" % size, size)
                    r = self.exchange(s, "POST", "/a/up", headers=[("x-retries", "2")],
                                      body=body, chunked=chunked)
                    n += 1
                    self.assertEqual(200, r.status, r.raw[:300])
                    want = hashlib.sha256(body).hexdigest()
                    self.assertEqual(want, r.get("x-body-sha256"))
                    # Both attempts got the whole body.
                    self.assertEqual([(size, want)] * 2,
                                     [(b, d) for (_, _, b, d) in o.requests[-2:]])
        st = self.settled(s, n)
        self.assertEqual(n, st["cluster.a.upstream_rq_retry"])
        self.assertEqual(n, st["cluster.a.upstream_rq_retry_success"])
        self.assertEqual(n, st['plugin.retry_probe.decisions{verdict="yes"}'])
        self.assertEqual(n, st['plugin.flags.error_kind{kind="connection_closed"}'])

    def test_a_body_over_the_replay_bound_is_not_retried(self):
        o = self.origin(["reset"], default="ok")
        s = self.start({"a": [o.port]})
        body = harness.pattern_bytes("big", 5000)
        r = self.exchange(s, "POST", "/a/big", headers=[("x-retries", "2"),
                                                        ("x-max-replay", "1000")], body=body)
        self.assertEqual(502, r.status, r.raw[:300])
        self.assertEqual(1, len(o.requests))
        st = self.settled(s, 1)
        self.assertEqual(1, st["cluster.a.upstream_rq_retry_body_overflow"])
        self.assertEqual(0, st["cluster.a.upstream_rq_retry"])
        self.assertEqual(1, flag(st, "UC"))

    def test_without_retries_nothing_is_kept_or_retried(self):
        o = self.origin(["503"], default="ok")
        s = self.start({"a": [o.port]})
        r = self.exchange(s, "GET", "/a/x")
        self.assertEqual(503, r.status)
        self.assertEqual(b"unavailable\n", r.body)
        st = self.settled(s, 1)
        self.assertEqual(0, st["cluster.a.upstream_rq_retry"])
        self.assertEqual(0, st['plugin.retry_probe.decisions{verdict="yes"}'])


class AttemptTest(RetryCoreTestCase):

    def test_a_5xx_is_retried_and_the_attempt_count_goes_upstream(self):
        o = self.origin(["503", "503"], default="ok")
        s = self.start({"a": [o.port]})
        r = self.exchange(s, "GET", "/a/x", headers=[("x-retries", "3"),
                                                     ("x-attempt-header", "1")])
        self.assertEqual(200, r.status, r.raw[:300])
        self.assertEqual(["1", "2", "3"],
                         [h.get("x-sluice-attempt-count") for (_, h, _, _) in o.requests])
        st = self.settled(s, 1)
        self.assertEqual(2, st["cluster.a.upstream_rq_retry"])
        self.assertEqual(1, st["cluster.a.upstream_rq_retry_success"])
        self.assertEqual(3, st["plugin.flags.attempts"])
        self.assertEqual(1, flag(st, "none"))

    def test_retries_used_up_pass_the_last_response_on_with_urx(self):
        o = self.origin(default="503")
        s = self.start({"a": [o.port]})
        r = self.exchange(s, "GET", "/a/x", headers=[("x-retries", "2")])
        self.assertEqual(503, r.status)
        self.assertEqual(b"unavailable\n", r.body)  # the origin's own answer
        self.assertEqual(3, len(o.requests))
        st = self.settled(s, 1)
        self.assertEqual(1, st["cluster.a.upstream_rq_retry_limit_exceeded"])
        self.assertEqual(1, flag(st, "URX"))
        # The core counts the flags too.
        self.assertEqual(1, st["http.web.downstream_rq_response_flag.URX"])
        self.assertEqual(0, st["http.web.downstream_rq_response_flag.UF"])

    def test_a_retry_goes_to_another_host(self):
        bad = self.origin(default="503")
        good = self.origin(default="ok")
        # RANDOM: without the exclusion of the earlier attempt's host a retry would land on
        # the failing host half the time.
        s = self.start({"a": [bad.port, good.port]}, lb="RANDOM")
        for i in range(20):
            r = self.exchange(s, "GET", "/a/%d" % i, headers=[("x-retries", "1")])
            self.assertEqual(200, r.status, r.raw[:300])
        self.assertEqual(20, len(good.requests))
        st = self.settled(s, 20)
        self.assertEqual(len(bad.requests), st["cluster.a.upstream_rq_retry"])
        self.assertEqual(0, st["cluster.a.upstream_rq_retry_limit_exceeded"])

    def test_connect_failures_everywhere_end_503_uf_and_urx(self):
        dead = harness.unused_port()
        s = self.start({"a": [dead]})
        r = self.exchange(s, "GET", "/a/x", headers=[("x-retries", "2")])
        self.assertEqual(503, r.status)
        self.assertIn(b"upstream_connect_failure", r.body)
        st = self.settled(s, 1)
        self.assertEqual(2, st["cluster.a.upstream_rq_retry"])
        self.assertEqual(1, flag(st, "UF"))
        self.assertEqual(1, flag(st, "URX"))
        self.assertEqual(1, st["http.web.downstream_rq_response_flag.UF"])
        self.assertEqual(1, st["http.web.downstream_rq_response_flag.URX"])
        self.assertEqual(3, st['plugin.flags.error_kind{kind="connect_refused"}'])
        self.assertEqual(3, st['plugin.flags.safety{safety="safe"}'])

    def test_a_per_try_timeout_moves_on_to_the_next_attempt(self):
        o = self.origin(["hang"], default="ok")
        s = self.start({"a": [o.port]})
        r = self.exchange(s, "GET", "/a/x", headers=[("x-retries", "1"), ("x-per-try-ms", "200")])
        self.assertEqual(200, r.status, r.raw[:300])
        self.assertEqual(2, len(o.requests))
        st = self.settled(s, 1)
        self.assertEqual(1, st["cluster.a.upstream_rq_per_try_timeout"])
        self.assertEqual(1, st['plugin.flags.error_kind{kind="per_try_timeout"}'])

    def test_a_per_try_timeout_without_retries_is_a_504(self):
        o = self.origin(["hang"], default="ok")
        s = self.start({"a": [o.port]}, route_extra=", per_try_timeout: 0.2s")
        r = self.exchange(s, "GET", "/a/x")
        self.assertEqual(504, r.status)
        self.assertIn(b"upstream_per_try_timeout", r.body)
        st = self.settled(s, 1)
        self.assertEqual(1, flag(st, "UPT"))

    def test_the_budget_caps_retries(self):
        o = self.origin(default="503")
        s = self.start({"a": [o.port]})
        # A budget of 1% of one request in flight, with no minimum: no retry is allowed.
        r = self.exchange(s, "GET", "/a/x", headers=[("x-retries", "3"),
                                                     ("x-budget-percent", "1"),
                                                     ("x-budget-min", "0")])
        self.assertEqual(503, r.status)
        self.assertEqual(1, len(o.requests))
        st = self.settled(s, 1)
        self.assertEqual(1, st["cluster.a.upstream_rq_retry_overflow"])
        self.assertEqual(0, st["cluster.a.upstream_rq_retry"])

    def test_a_retry_after_a_delay(self):
        o = self.origin(["503"], default="ok")
        s = self.start({"a": [o.port]})
        r = self.exchange(s, "GET", "/a/x", headers=[("x-retries", "1"),
                                                     ("x-retry-delay-ms", "150")])
        self.assertEqual(200, r.status)
        self.assertEqual(2, len(o.requests))

    def test_a_tunnel_is_not_made_retryable(self):
        o = self.origin(default="ok")
        s = self.start({"a": [o.port]})
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/a/ws", headers=[("x-retries", "1"), ("Connection", "Upgrade"),
                                            ("Upgrade", "websocket")]))
        s.wait_stats(lambda st: st["plugin.retry_probe.enable_refused"] == 1,
                     what="the tunnel's enable refused")


class ProxyTimeoutTest(RetryCoreTestCase):

    def test_the_clusters_read_timeout(self):
        o = self.origin(["hang"], default="ok")
        s = self.start({"a": [o.port]}, cluster_extra="\n    read_timeout: 0.2s")
        r = self.exchange(s, "GET", "/a/x")
        self.assertEqual(504, r.status)
        self.assertIn(b"upstream_idle_timeout", r.body)
        # The log phase counts after the response went out: awaited.
        s.wait_stats(lambda st: flag(st, "UT") == 1, what="the UT flag counted")

    def test_a_route_idle_timeout_of_zero_overrides_the_cluster(self):
        o = self.origin(["hang"], default="ok")
        s = self.start({"a": [o.port]}, cluster_extra="\n    read_timeout: 0.2s",
                       route_extra=", idle_timeout: 0s, timeout: 1s")
        r = self.exchange(s, "GET", "/a/x")
        self.assertEqual(504, r.status)
        self.assertIn(b"upstream_request_timeout", r.body)  # the whole timeout, not the read one

    def test_the_routes_connect_timeout(self):
        hole = harness.BlackholeServer()
        self.addCleanup(hole.close)
        if not hole.works:
            self.skipTest("this machine answers connects to a full accept queue")
        s = self.start({"a": [hole.port]}, route_extra=", connect_timeout: 0.2s")
        r = self.exchange(s, "GET", "/a/x")
        self.assertEqual(503, r.status)
        self.assertIn(b"upstream_connect_timeout", r.body)
        st = self.settled(s, 1)
        self.assertEqual(1, st["cluster.a.upstream_rq_connect_timeout"])
        self.assertEqual(1, flag(st, "UF"))

    def test_the_send_timeout(self):
        o = self.origin(["nobody"], default="ok")
        s = self.start({"a": [o.port]}, cluster_extra="\n    send_timeout: 0.3s\n"
                       "    per_connection_buffer_limit_bytes: 16384")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        size = 64 << 20  # far more than the socket buffers hold
        c.send(req("POST", "/a/up", headers=[("Content-Length", str(size))]))
        chunk = b"x" * 65536
        sock = c.sock
        sock.settimeout(0.05)
        sent = 0
        # Send until sluice stops reading (its upstream does not take the body), bounded.
        for _ in range(size // len(chunk)):
            try:
                sock.sendall(chunk)
                sent += len(chunk)
            except (socket.timeout, BlockingIOError):
                break
            except OSError:
                break
        sock.settimeout(harness.IO_TIMEOUT)
        r = c.read_response()
        self.assertEqual(504, r.status)
        self.assertIn(b"upstream_send_timeout", r.body)
        self.assertEqual(1, self.settled(s, 1)["cluster.a.upstream_rq_send_timeout"])


if __name__ == "__main__":
    harness.main()
