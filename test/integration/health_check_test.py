#!/usr/bin/env python3
"""Active health checks (issue 15) against real origins, and load balancing over the healthy
hosts:

- HTTP: three origins whose /healthz answer a test flips; one that reports unhealthy gets no
  request (counted at the origins) once health_check.healthy says so, on every worker; it
  comes back and gets traffic again. The check's request as the origin saw it (Host,
  User-Agent, the added field).
- TCP: a closed port is unhealthy (network_failure) and gets no request; send/receive.
- gRPC: grpc.health.v1.Health/Check against a real python3-grpcio server (the Health service
  written with generic handlers: Debian ships no grpc_health module): SERVING is healthy,
  NOT_SERVING and an unknown service (NOT_FOUND) are not.
- HTTP/2 (h2c) and TLS (HTTP/2 over TLS with SNI and verification) clusters are checked over
  their own protocol; a certificate that does not verify fails the check.
- Panic: with every host unhealthy, traffic still reaches all of them (lb_healthy_panic
  counts); with healthy_panic_threshold 0 it does not (503, no host).
- STRICT_DNS: a host that appears is checked, one that leaves is not any more.
- configs/health_checks.yaml as it ships (ports and interval swapped).

Intervals are short (50-100ms) so that the tests are quick, but every assertion waits for an
event (a stat, an origin's count); nothing asserts on timing. Right after the main thread
changes a cluster's host set it posts it to the workers and only then sets the gauges, and a
worker runs posted work before the socket events of the same loop iteration: a request sent
after a gauge read finds the new set.
"""

import base64
import http.server
import os
import socket
import socketserver
import sys
import threading
import unittest
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import h2origin  # noqa: E402
from harness import http_request as req, stat  # noqa: E402

try:
    import grpc
except ImportError:  # python3-grpcio (tools/deps)
    grpc = None

HC = "cluster.app.health_check."
HEALTH_PATH = "/healthz"


class HealthOrigin:
    """A keep-alive HTTP/1.1 origin (one thread per connection) whose HEALTH_PATH answers
    `health_status` (settable at any time); any other path answers 200 "name". It counts both
    kinds, and keeps the heads of the health checks."""

    def __init__(self, name, host="127.0.0.1", port=0, health_status=200):
        self.name = name
        self.health_status = health_status
        self.lock = threading.Lock()
        self.checks = 0
        self.check_heads = []
        self.traffic = 0
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = harness.IO_TIMEOUT  # bounds a connection thread that waits for a request

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == HEALTH_PATH:
                    with origin.lock:
                        origin.checks += 1
                        origin.check_heads.append(dict(
                            (k.lower(), v) for k, v in self.headers.items()))
                    status = origin.health_status
                else:
                    with origin.lock:
                        origin.traffic += 1
                    status = 200
                body = origin.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Origin-Name", origin.name)
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                # sluice closing a check's connection as it stops is no error of the origin's.
                if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
                    return
                super().handle_error(request, client_address)

        self.server = Server((host, port), Handler)
        self.addr = self.server.server_address[:2]
        self.port = self.addr[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def counts(self):
        with self.lock:
            return self.checks, self.traffic

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(harness.IO_TIMEOUT)


def router_config(cluster, listener_extra=None):
    """One HTTP listener "web" routing everything to `cluster` (a dict), plus admin."""
    router = {"@type": harness.ROUTER_TYPE, "virtualHosts": [{
        "name": "v", "domains": ["*"], "routes": [{"route": {"cluster": cluster["name"]}}]}]}
    cfg = harness.http_config([harness.http_listener("web", filters=[
        {"plugin": {"filter": "router", "typedConfig": router}}],
        listener_extra=listener_extra)])
    cfg["clusters"] = [cluster]
    return cfg


def http_check(path=HEALTH_PATH, interval="0.1s", **extra):
    hc = {"timeout": "5s", "interval": interval, "unhealthyThreshold": 2,
          "healthyThreshold": 2, "httpHealthCheck": {"path": path}}
    hc.update(extra)
    return hc


def endpoints(ports, host="127.0.0.1"):
    return [{"address": {"address": host, "port": p}} for p in ports]


class HealthCheckTestCase(harness.SluiceTestCase):

    def origins(self, names, **kw):
        out = []
        for n in names:
            o = HealthOrigin(n, **kw)
            self.addCleanup(o.close)
            out.append(o)
        return out

    def wait(self, s, name, value, cluster="app"):
        full = "cluster.%s.%s" % (cluster, name)
        return s.wait_stats(lambda st: st.get(full) == value, "%s == %d" % (full, value))

    def send(self, s, n, path="/traffic"):
        """n requests, each on a new connection (so that every worker gets some); returns
        their statuses."""
        statuses = []
        for i in range(n):
            c = harness.HttpClient.connect(s.addr("web"))
            try:
                c.send(req("GET", "%s/%d" % (path, i)))
                statuses.append(c.read_response().status)
            finally:
                c.close()
        return statuses

    def traffic(self, origins):
        return {o.name: o.counts()[1] for o in origins}

    def delta(self, before, origins):
        now = self.traffic(origins)
        return {k: now[k] - before[k] for k in now}


class HttpHealthCheckTest(HealthCheckTestCase):

    def test_unhealthy_host_gets_no_traffic_until_it_recovers(self):
        origins = self.origins("abc")
        a, b, c = origins
        hc = http_check(httpHealthCheck={"path": HEALTH_PATH, "host": "health.test",
                                         "requestHeadersToAdd": [{"name": "x-check",
                                                                  "value": "yes"}]})
        s = self.start_sluice(router_config({"name": "app", "endpoints": endpoints(
            [o.port for o in origins]), "healthChecks": [hc]}), concurrency=2)
        self.wait(s, "health_check.healthy", 3)
        self.wait(s, "membership_healthy", 3)
        before = self.traffic(origins)
        self.assertEqual([200] * 30, self.send(s, 30))
        self.assertTrue(all(v > 0 for v in self.delta(before, origins).values()),
                        self.delta(before, origins))

        # What a check looks like to the origin.
        head = a.check_heads[0]
        self.assertEqual("health.test", head.get("host"), head)
        self.assertEqual("sluice-health-check", head.get("user-agent"), head)
        self.assertEqual("yes", head.get("x-check"), head)

        # b fails its checks: out once the checker says so (two failures in a row).
        b.health_status = 503
        st = self.wait(s, "health_check.healthy", 2)
        self.assertGreaterEqual(stat(st, HC + "failure"), 2)
        self.assertEqual(0, stat(st, HC + "network_failure"))
        self.wait(s, "membership_healthy", 2)
        before = self.traffic(origins)
        self.assertEqual([200] * 30, self.send(s, 30))
        d = self.delta(before, origins)
        self.assertEqual(0, d["b"], d)
        self.assertEqual(30, d["a"] + d["c"], d)
        self.assertGreater(d["a"], 0, d)
        self.assertGreater(d["c"], 0, d)

        # b recovers (two successes in a row) and gets its share again.
        b.health_status = 200
        self.wait(s, "health_check.healthy", 3)
        self.wait(s, "membership_healthy", 3)
        before = self.traffic(origins)
        self.assertEqual([200] * 30, self.send(s, 30))
        self.assertGreater(self.delta(before, origins)["b"], 0)
        st = s.stats()
        # Every request came after the first checks: none was picked in panic.
        self.assertEqual(0, stat(st, "cluster.app.lb_healthy_panic"))
        self.assertGreaterEqual(stat(st, HC + "attempt"),
                                stat(st, HC + "success") + stat(st, HC + "failure"))
        self.stop_sluice(s)

    def test_all_unhealthy_is_panic_and_traffic_flows_to_all(self):
        origins = self.origins("abc", health_status=500)
        s = self.start_sluice(router_config({"name": "app", "endpoints": endpoints(
            [o.port for o in origins]), "healthChecks": [http_check()]}), concurrency=1)
        # Every host checked and failed (a host is unhealthy from its first failure on).
        harness.wait_until(lambda: all(o.counts()[0] >= 1 for o in origins),
                           "a check of every origin")
        st = s.wait_stats(lambda st: st.get(HC + "failure", 0) >= 3, "three failed checks")
        self.assertEqual(0, stat(st, HC + "healthy"))
        self.assertEqual(3, stat(st, "cluster.app.membership_healthy"))  # all, in panic
        before = self.traffic(origins)
        panic_before = stat(st, "cluster.app.lb_healthy_panic")
        self.assertEqual([200] * 30, self.send(s, 30))
        d = self.delta(before, origins)
        self.assertTrue(all(v > 0 for v in d.values()), d)
        st = s.wait_stats(lambda st: st["cluster.app.lb_healthy_panic"] >= panic_before + 30,
                          "30 requests picked in panic")
        self.stop_sluice(s)

    def test_panic_threshold_zero_turns_requests_away(self):
        origins = self.origins("ab", health_status=500)
        s = self.start_sluice(router_config({
            "name": "app", "endpoints": endpoints([o.port for o in origins]),
            "healthChecks": [http_check()],
            "commonLbConfig": {"healthyPanicThreshold": 0}}), concurrency=1)
        self.wait(s, "membership_healthy", 0)
        self.assertEqual([503] * 3, self.send(s, 3))
        self.assertEqual(0, sum(self.traffic(origins).values()))
        s.wait_stats(lambda st: st.get("cluster.app.upstream_rq_no_host", 0) >= 3, "no host x3")
        # One becomes healthy: it takes everything.
        origins[1].health_status = 200
        self.wait(s, "membership_healthy", 1)
        self.assertEqual([200] * 5, self.send(s, 5))
        self.assertEqual({"a": 0, "b": 5}, self.traffic(origins))
        self.stop_sluice(s)


class TcpHealthCheckTest(HealthCheckTestCase):

    def test_closed_port_is_unhealthy_and_gets_no_traffic(self):
        (a,) = self.origins("a")
        closed = harness.unused_port()
        s = self.start_sluice(router_config({
            "name": "app", "connectTimeout": "5s", "endpoints": endpoints([a.port, closed]),
            "healthChecks": [{"timeout": "5s", "interval": "0.1s", "tcpHealthCheck": {}}]}),
            concurrency=2)
        st = s.wait_stats(lambda st: st.get(HC + "healthy") == 1 and
                          st.get(HC + "network_failure", 0) >= 1 and
                          st.get("cluster.app.membership_healthy") == 1,
                          "the open port healthy, the closed one failed")
        self.assertEqual(0, stat(st, HC + "timeout"))
        self.assertEqual([200] * 20, self.send(s, 20))
        self.assertEqual(20, a.counts()[1])
        self.assertEqual(0, stat(s.stats(), "cluster.app.upstream_cx_connect_fail"))
        self.stop_sluice(s)

    def test_send_and_receive(self):
        # The HTTP origin as a TCP service: the check writes a request and expects its status.
        (a,) = self.origins("a")
        check = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        s = self.start_sluice(router_config({
            "name": "app", "endpoints": endpoints([a.port]),
            "healthChecks": [{"timeout": "1s", "interval": "0.1s", "tcpHealthCheck": {
                "send": base64.b64encode(check).decode(),
                "receive": base64.b64encode(b" 200 ").decode()}}]}), concurrency=1)
        self.wait(s, "health_check.healthy", 1)
        a.health_status = 503
        st = s.wait_stats(lambda st: st.get(HC + "timeout", 0) >= 3, "checks without the bytes")
        self.assertEqual(0, stat(st, HC + "healthy"))
        self.stop_sluice(s)


@unittest.skipIf(grpc is None, "python3-grpcio is not installed")
class GrpcHealthCheckTest(HealthCheckTestCase):
    """The Health service by hand: HealthCheckRequest {string service = 1} decoded, and
    HealthCheckResponse {ServingStatus status = 1} encoded, with grpcio's generic handlers."""

    class HealthServer:
        def __init__(self):
            self.statuses = {}  # service -> ServingStatus number (absent: NOT_FOUND)
            self.lock = threading.Lock()
            self.seen = []  # (service, metadata dict, authority)
            self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                      options=[("grpc.so_reuseport", 0)])
            handler = grpc.unary_unary_rpc_method_handler(self.check)
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health", {"Check": handler}),))
            self.port = self.server.add_insecure_port("127.0.0.1:0")
            self.server.start()

        @staticmethod
        def decode_service(data):
            # Field 1 (string) is the only one a HealthCheckRequest has; proto3 omits "".
            if not data:
                return ""
            assert data[0] == 0x0A, data
            n, i, shift = 0, 1, 0
            while True:
                b = data[i]
                n |= (b & 0x7F) << shift
                i += 1
                shift += 7
                if not b & 0x80:
                    break
            return data[i:i + n].decode()

        def check(self, request, context):
            service = self.decode_service(request)
            with self.lock:
                self.seen.append((service, dict(context.invocation_metadata())))
                status = self.statuses.get(service)
            if status is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "unknown service %r" % service)
            return bytes([0x08, status])

        def close(self):
            self.server.stop(grace=None).wait(10)

    def server(self, statuses):
        h = self.HealthServer()
        h.statuses.update(statuses)
        self.addCleanup(h.close)
        return h

    def test_serving_status_decides(self):
        serving = self.server({"svc": 1})
        not_serving = self.server({"svc": 2})
        unknown = self.server({"other": 1})
        cluster = {"name": "app", "protocol": "HTTP2",
                   "endpoints": endpoints([h.port for h in (serving, not_serving, unknown)]),
                   "healthChecks": [{"timeout": "5s", "interval": "0.1s",
                                     "unhealthyThreshold": 1, "healthyThreshold": 1,
                                     "grpcHealthCheck": {"serviceName": "svc",
                                                         "authority": "health.test"}}]}
        s = self.start_sluice(router_config(cluster), concurrency=1)
        harness.wait_until(lambda: all(h.seen for h in (serving, not_serving, unknown)),
                           "a check of every server")
        st = s.wait_stats(lambda st: st.get(HC + "healthy") == 1 and
                          st.get(HC + "failure", 0) >= 2, "one of three healthy")
        self.assertEqual(0, stat(st, HC + "network_failure"))
        service, metadata = serving.seen[0]
        self.assertEqual("svc", service)
        self.assertIn("sluice-health-check", metadata.get("user-agent", ""), metadata)
        # One of three healthy is below the panic threshold (50%): all three are used.
        self.assertEqual(3, stat(st, "cluster.app.membership_healthy"))
        # The unknown service comes to exist, NOT_SERVING turns SERVING.
        unknown.statuses["svc"] = 1
        not_serving.statuses["svc"] = 1
        self.wait(s, "health_check.healthy", 3)
        self.wait(s, "membership_healthy", 3)
        not_serving.statuses["svc"] = 2
        self.wait(s, "health_check.healthy", 2)
        self.wait(s, "membership_healthy", 2)
        self.stop_sluice(s)

    def test_empty_service_name_checks_the_server(self):
        h = self.server({"": 1})
        cluster = {"name": "app", "protocol": "HTTP2", "endpoints": endpoints([h.port]),
                   "healthChecks": [{"timeout": "5s", "interval": "0.1s",
                                     "grpcHealthCheck": {}}]}
        s = self.start_sluice(router_config(cluster), concurrency=1)
        self.wait(s, "health_check.healthy", 1)
        self.assertEqual("", h.seen[0][0])
        self.stop_sluice(s)


class H2AndTlsHealthCheckTest(HealthCheckTestCase):
    """Checks over the cluster's own protocol: h2c with prior knowledge, and HTTP/2 over TLS
    (ALPN h2, SNI, the certificate verified against the cluster's trusted CA)."""

    def h2_origin(self, name, health, **kw):
        def app(request):
            if request.path == HEALTH_PATH:
                return {"status": health[0], "headers": [], "body": b"h"}
            return None
        o = h2origin.H2Origin(name=name, app=app, **kw)
        self.addCleanup(o.close)
        return o

    def h2_checks(self, o):
        with o.cond:
            return [r for r in o.requests if r.path == HEALTH_PATH]

    def run_cluster(self, o, health, extra):
        cluster = {"name": "app", "protocol": "HTTP2", "endpoints": endpoints([o.port]),
                   "healthChecks": [http_check(unhealthyThreshold=1, healthyThreshold=1)]}
        cluster.update(extra)
        s = self.start_sluice(router_config(cluster), concurrency=1)
        self.wait(s, "health_check.healthy", 1)
        checks = self.h2_checks(o)
        self.assertTrue(checks)
        self.assertTrue(all(r.protocol == "h2" for r in checks), checks)
        self.assertEqual("app", checks[0].authority)  # the cluster's name by default
        # Checks share one connection while they pass.
        harness.wait_until(lambda: len(self.h2_checks(o)) >= 3, "three checks")
        self.assertEqual(1, len({r.conn for r in self.h2_checks(o)[:3]}))
        self.assertEqual([200] * 3, self.send(s, 3))
        health[0] = 503
        self.wait(s, "health_check.healthy", 0)
        health[0] = 200
        self.wait(s, "health_check.healthy", 1)
        return s

    def test_h2c(self):
        health = [200]
        o = self.h2_origin("h2c", health)
        s = self.run_cluster(o, health, {})
        self.stop_sluice(s)

    def test_tls_with_sni_and_verification(self):
        root, cert = h2origin.tls_origin_cert()
        health = [200]
        o = self.h2_origin("tls", health, tls=cert)
        tls = {"sni": "h2.test",
               "commonTlsContext": {"validationContext": {"trustedCa": {"filename": root.cert}}}}
        s = self.run_cluster(o, health, {"tlsContext": tls})
        self.assertTrue(all(c.alpn == "h2" for c in o.conns), o.conns)
        self.stop_sluice(s)

    def test_certificate_that_does_not_verify_fails_the_check(self):
        _, cert = h2origin.tls_origin_cert()
        import tls_pki
        other_root = tls_pki.shared_pki().ca("hc-other-root")
        health = [200]
        o = self.h2_origin("tls", health, tls=cert)
        cluster = {"name": "app", "protocol": "HTTP2", "endpoints": endpoints([o.port]),
                   "healthChecks": [http_check()],
                   "tlsContext": {"sni": "h2.test", "commonTlsContext": {"validationContext": {
                       "trustedCa": {"filename": other_root.cert}}}}}
        s = self.start_sluice(router_config(cluster), concurrency=1)
        st = s.wait_stats(lambda st: st.get(HC + "network_failure", 0) >= 2,
                          "checks failing the handshake")
        self.assertEqual(0, stat(st, HC + "success"))
        self.assertEqual(0, stat(st, HC + "healthy"))
        self.assertEqual([], self.h2_checks(o))
        self.stop_sluice(s)


class DnsHealthCheckTest(HealthCheckTestCase):
    """A STRICT_DNS cluster: hosts that appear are checked, hosts that leave are not."""

    NAME = "svc.sluice.test"

    def test_hosts_follow_the_dns(self):
        dns = harness.DnsServer()
        self.addCleanup(dns.close)
        for _ in range(20):
            (a,) = self.origins("a", host="127.0.0.2")
            try:
                b = HealthOrigin("b", host="127.0.0.3", port=a.port)
                self.addCleanup(b.close)
                break
            except OSError:
                pass
        else:
            self.fail("no port free on both 127.0.0.2 and 127.0.0.3")
        dns.set(self.NAME, ["127.0.0.2"])
        cluster = {"name": "app", "type": "STRICT_DNS", "dnsRefreshRate": "0.1s",
                   "dnsLookupFamily": "V4_ONLY",
                   "dnsResolvers": [{"address": "127.0.0.1", "port": dns.addr[1]}],
                   "endpoints": [{"address": {"address": self.NAME, "port": a.port}}],
                   "healthChecks": [http_check(interval="0.05s")]}
        s = self.start_sluice(router_config(cluster), concurrency=1)
        self.wait(s, "health_check.healthy", 1)
        self.assertEqual(0, b.counts()[0])
        dns.set(self.NAME, ["127.0.0.2", "127.0.0.3"])
        self.wait(s, "health_check.healthy", 2)
        self.assertGreater(b.counts()[0], 0)
        dns.set(self.NAME, ["127.0.0.3"])
        s.wait_stats(lambda st: st.get("cluster.app.membership_total") == 1 and
                     st.get(HC + "healthy") == 1, "one host left")
        # A check of a sent just before it left may still arrive; none after that.
        left_at = a.counts()[0]
        b_at = b.counts()[0]
        harness.wait_until(lambda: b.counts()[0] >= b_at + 5, "five more checks of b")
        self.assertLessEqual(a.counts()[0], left_at + 1)
        self.assertEqual(["b"] * 4, [self.get_name(s) for _ in range(4)])
        self.stop_sluice(s)

    def get_name(self, s):
        c = harness.HttpClient.connect(s.addr("web"))
        try:
            c.send(req("GET", "/n"))
            return c.read_response().get("x-origin-name")
        finally:
            c.close()


class ExampleConfigTest(HealthCheckTestCase):
    """configs/health_checks.yaml as it ships (its ports, and its check interval, swapped for
    the test's)."""

    def test_the_example_config(self):
        origins = self.origins("abc")
        with open(os.path.join(harness.repo_root(), "configs", "health_checks.yaml")) as f:
            text = f.read()
        swaps = [("port: 8000}", 0), ("port: 9901}", 0)]
        swaps += [("port: %d}" % (8081 + i), o.port) for i, o in enumerate(origins)]
        for fixed, port in swaps:
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        for fixed, now in (("interval: 5s", "interval: 0.1s"),
                           ("interval_jitter: 1s", "interval_jitter: 0.05s")):
            self.assertIn(fixed, text)
            text = text.replace(fixed, now)
        origins[2].health_status = 503
        s = self.start_sluice(text, concurrency=1)
        st = s.wait_stats(lambda st: st.get(HC + "healthy") == 2 and
                          st.get("cluster.app.membership_healthy") == 2, "two healthy hosts")
        self.assertEqual(3, stat(st, "cluster.app.membership_total"))
        before = self.traffic(origins)
        self.assertEqual([200] * 10, self.send(s, 10))
        self.assertEqual({"a": 5, "b": 5, "c": 0}, self.delta(before, origins))
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
