"""Outlier detection (passive health) against real origins, through the router plugin: a host
answering 503 is ejected after consecutive_5xx and its traffic goes to the others (counted at the
origins), and comes back once its ejection time is up; a host that refuses connections is ejected
by consecutive_gateway_failure; max_ejection_percent caps the ejections (ejections_overflow);
nginx's max_fails within fail_timeout ejects a host whose failures are not consecutive; and
configs/outlier_detection.yaml as it ships (its ports swapped).

Each test drives requests one at a time and waits for the stats the main thread writes; nothing
waits on a clock but the one ejection that must end (its base_ejection_time is 200ms)."""

import http.server
import os
import socketserver
import sys
import threading

import harness
from harness import http_request as req

TYPE = "type.googleapis.com/sluice.extensions.router.v1.Router"
OD = "cluster.pool.outlier_detection."


class SwitchOrigin:
    """A keep-alive HTTP/1.1 origin whose answers the test sets: the statuses in `pattern` in
    turn, one per request (e.g. [503] always fails, [503, 200] fails every other). Counts what
    it served."""

    def __init__(self, name, pattern=(200,)):
        self.name = name
        self.lock = threading.Lock()
        self.pattern = list(pattern)
        self.served = 0
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with origin.lock:
                    status = origin.pattern[origin.served % len(origin.pattern)]
                    origin.served += 1
                body = b"%s %d\n" % (origin.name.encode(), status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Origin-Name", origin.name)
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                if isinstance(sys.exc_info()[1], ConnectionError):
                    return  # the proxy closing a pooled connection is no error here
                super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.addr = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, *pattern):
        with self.lock:
            self.pattern = list(pattern)

    def count(self):
        with self.lock:
            return self.served

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class OutlierDetectionTest(harness.SluiceTestCase):

    def origin(self, name, pattern=(200,)):
        o = SwitchOrigin(name, pattern)
        self.addCleanup(o.close)
        return o

    def start(self, ports, outlier_detection):
        """sluice with one cluster "pool" (round robin) of 127.0.0.1:<port> for each port, with
        that outlier_detection, routed to from listener "web"; one worker."""
        router = {"@type": TYPE, "virtualHosts": [
            {"name": "v", "domains": ["*"], "routes": [{"route": {"cluster": "pool"}}]}]}
        cfg = harness.http_config([harness.http_listener(
            "web", hcm={"maxRequestsPerConnection": 100000},
            filters=[{"plugin": {"filter": "router", "typedConfig": router}}])])
        cfg["clusters"] = [{
            "name": "pool", "connectTimeout": "5s", "outlierDetection": outlier_detection,
            "endpoints": [{"address": {"address": "127.0.0.1", "port": p}} for p in ports]}]
        s = self.start_sluice(cfg, concurrency=1)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        return s, c

    def get(self, c):
        c.send(req("GET", "/"))
        return c.read_response()

    def drive(self, s, c, predicate, what, limit=200):
        """Sends requests one at a time until predicate(stats) holds (bounded); returns the
        statuses seen and the stats."""
        statuses = []
        for _ in range(limit):
            statuses.append(self.get(c).status)
            st = s.stats()
            if predicate(st):
                return statuses, st
        self.fail("%d requests did not lead to %s; stats:\n%s" % (
            limit, what, harness.format_stats(s.stats())))

    def assert_traffic_avoids(self, c, bad, good, n=30):
        """n requests all answered 200 by the `good` origins, none reaching `bad`."""
        bad_before = bad.count() if bad else 0
        good_before = sum(o.count() for o in good)
        for _ in range(n):
            r = self.get(c)
            self.assertEqual(200, r.status, r.raw)
        if bad:
            self.assertEqual(bad_before, bad.count())
        self.assertEqual(good_before + n, sum(o.count() for o in good))

    def test_consecutive_5xx_ejects_and_the_traffic_moves(self):
        a, b, bad = self.origin("a"), self.origin("b"), self.origin("c", [503])
        s, c = self.start([a.addr[1], b.addr[1], bad.addr[1]], {
            "consecutive5xx": 3, "interval": "100ms", "baseEjectionTime": "30s"})
        statuses, st = self.drive(s, c, lambda st: st[OD + "ejections_total"] == 1,
                                  "an ejection")
        self.assertIn(503, statuses)
        self.assertGreaterEqual(bad.count(), 3)
        self.assertEqual(1, st[OD + "ejections_consecutive_5xx"])
        self.assertEqual(1, st[OD + "ejections_active"])
        self.assertEqual(0, st[OD + "ejections_overflow"])
        # Every request now goes to a or b, half each (round robin over the two).
        a0, b0 = a.count(), b.count()
        self.assert_traffic_avoids(c, bad, [a, b])
        self.assertEqual((15, 15), (a.count() - a0, b.count() - b0))

    def test_an_ejected_host_comes_back_when_its_time_is_up(self):
        a, b, bad = self.origin("a"), self.origin("b"), self.origin("c", [503])
        s, c = self.start([a.addr[1], b.addr[1], bad.addr[1]], {
            "consecutive5xx": 2, "interval": "50ms", "baseEjectionTime": "200ms"})
        self.drive(s, c, lambda st: st[OD + "ejections_total"] == 1, "an ejection")
        bad.set(200)  # healthy again, while ejected (no request reaches it now)
        s.wait_stats(lambda st: st[OD + "ejections_active"] == 0, "the ejection to end")
        served = bad.count()
        for _ in range(10):
            r = self.get(c)
            self.assertEqual(200, r.status, r.raw)
            if bad.count() > served:
                break
        self.assertGreater(bad.count(), served, "the host did not get traffic back")
        st = s.stats()
        self.assertEqual(1, st[OD + "ejections_total"])

    def test_a_host_refusing_connections_is_ejected_by_consecutive_gateway_failure(self):
        a, b = self.origin("a"), self.origin("b")
        dead = harness.unused_port()
        s, c = self.start([a.addr[1], b.addr[1], dead], {
            "consecutive5xx": 0, "consecutiveGatewayFailure": 2, "baseEjectionTime": "30s"})
        statuses, st = self.drive(
            s, c, lambda st: st[OD + "ejections_consecutive_gateway_failure"] == 1,
            "a gateway-failure ejection")
        self.assertIn(503, statuses)  # the refused connects
        self.assertEqual(0, st[OD + "ejections_consecutive_5xx"])
        fails = st["cluster.pool.upstream_cx_connect_fail"]
        self.assertGreaterEqual(fails, 2)
        self.assert_traffic_avoids(c, None, [a, b])
        self.assertEqual(fails, s.stats()["cluster.pool.upstream_cx_connect_fail"])

    def test_max_ejection_percent_caps_the_ejections(self):
        a = self.origin("a")
        b, bad = self.origin("b", [503]), self.origin("c", [503])
        # 34% of three hosts: one ejected (33%), a second would make 67%.
        s, c = self.start([a.addr[1], b.addr[1], bad.addr[1]], {
            "consecutive5xx": 2, "maxEjectionPercent": 34, "baseEjectionTime": "30s"})
        _, st = self.drive(s, c, lambda st: st[OD + "ejections_overflow"] >= 1,
                           "an ejection over the limit")
        self.assertEqual(1, st[OD + "ejections_total"])
        self.assertEqual(1, st[OD + "ejections_active"])
        # The failing host that was not ejected still gets its share (every other request).
        statuses = [self.get(c).status for _ in range(10)]
        self.assertEqual(5, statuses.count(503), statuses)
        self.assertEqual(1, s.stats()[OD + "ejections_active"])

    def test_max_fails_within_fail_timeout(self):
        a, b = self.origin("a"), self.origin("b")
        flaky = self.origin("c", [503, 200])  # never two failures in a row
        s, c = self.start([a.addr[1], b.addr[1], flaky.addr[1]], {
            "consecutive5xx": 2, "consecutiveGatewayFailure": 2, "maxFails": 3,
            "failTimeout": "60s", "baseEjectionTime": "30s"})
        _, st = self.drive(s, c, lambda st: st[OD + "ejections_max_fails"] == 1,
                           "a max_fails ejection")
        self.assertGreaterEqual(flaky.count(), 5)  # 503, 200, 503, 200, 503
        self.assertEqual(0, st[OD + "ejections_consecutive_5xx"])
        self.assertEqual(0, st[OD + "ejections_consecutive_gateway_failure"])
        self.assert_traffic_avoids(c, flaky, [a, b])

    def test_the_example_config(self):
        """configs/outlier_detection.yaml as it ships, its ports swapped: the app cluster's third
        host refuses connections and is ejected (consecutive_gateway_failure: 3)."""
        a, b = self.origin("a"), self.origin("b")
        dead = harness.unused_port()
        with open(os.path.join(harness.repo_root(), "configs", "outlier_detection.yaml")) as f:
            text = f.read()
        for fixed, port in (("port: 8000}", 0), ("port: 9901}", 0), ("port: 8081}", a.addr[1]),
                            ("port: 8082}", b.addr[1]), ("port: 8083}", dead)):
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        for line in ("consecutive_gateway_failure: 3", "max_fails: 3"):
            self.assertIn(line, text)
        s = self.start_sluice(text, concurrency=1)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        app = "cluster.app.outlier_detection."
        self.drive(s, c, lambda st: st[app + "ejections_consecutive_gateway_failure"] == 1,
                   "the dead host's ejection")
        self.assert_traffic_avoids(c, None, [a, b], n=10)
        st = s.stats()
        self.assertEqual(1, st[app + "ejections_active"])
        self.assertEqual(0, st["cluster.legacy.outlier_detection.ejections_total"])


if __name__ == "__main__":
    harness.main()
