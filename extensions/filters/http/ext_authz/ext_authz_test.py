"""ext_authz against the real binary, a real authorization service (Python, loopback) and a real
origin: allow (the request reaches the origin with the service's fields), deny (the client gets
the service's status, body and allowed fields; the origin sees nothing), timeout, service down
(connection refused), failure_mode_allow, the client gone while the check is in flight (no
crash, the callout withdrawn and counted, the service's connection closed), the example config
configs/ext_authz.yaml, and config errors."""

import http.server
import os
import select
import socketserver
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..",
                                "test", "integration"))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

TYPE = "type.googleapis.com/sluice.extensions.ext_authz.v1.ExtAuthz"
ROUTER = "type.googleapis.com/sluice.extensions.router.v1.Router"


class AuthService:
    """By the Authorization field: "Bearer good" -> 200 with x-user (and x-other, which is not
    allowed upstream); "Bearer wait" -> no answer: waits until sluice closes the connection
    (recorded in `closed`); anything else -> 401 with www-authenticate, x-reason, x-secret and a
    body. Records each check (method, path, headers)."""

    def __init__(self):
        self.checks = []
        self.closed = 0
        self.waiting = threading.Event()  # a "wait" check arrived
        self.lock = threading.Lock()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                with service.lock:
                    service.checks.append((self.command, self.path, self.headers))
                auth = self.headers.get("Authorization", "")
                if getattr(self, "drop_next", False):
                    # Closed as the check came, unanswered: a keep-alive timeout's race.
                    self.close_connection = True
                    return
                if auth == "Bearer drop-next":
                    self.drop_next = True
                    auth = "Bearer good"
                if auth == "Bearer good":
                    self.send_response(200)
                    self.send_header("x-user", "alice")
                    self.send_header("x-other", "no")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if auth == "Bearer wait":
                    service.waiting.set()
                    # Until the peer closes (a timeout or a withdrawn callout); bounded.
                    select.select([self.connection], [], [], 30)
                    if self.connection.recv(1) == b"":
                        with service.lock:
                            service.closed += 1
                    self.close_connection = True
                    return
                body = b"denied\n"
                self.send_response(401)
                self.send_header("www-authenticate", "Bearer realm=\"test\"")
                self.send_header("x-reason", "missing")
                self.send_header("x-secret", "s")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = answer

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def config(origin_port, authz_port, drain_timeout="5s", **authz):
    cfg = {"@type": TYPE, "cluster": "authz", "pathPrefix": "/check",
           "allowedUpstreamHeaders": ["x-user"]}
    cfg.update(authz)
    router = {"@type": ROUTER,
              "virtualHosts": [{"name": "v", "domains": ["*"], "routes": [{"route": {"cluster": "o"}}]}]}
    c = harness.http_config([harness.http_listener("web", filters=[
        {"plugin": {"filter": "ext_authz", "typedConfig": cfg}},
        {"plugin": {"filter": "router", "typedConfig": router}}])], drain_timeout=drain_timeout)
    c["clusters"] = [
        {"name": "o", "endpoints": [{"address": {"address": "127.0.0.1", "port": origin_port}}]},
        {"name": "authz", "connectTimeout": "1s",
         "endpoints": [{"address": {"address": "127.0.0.1", "port": authz_port}}]}]
    return c


class ExtAuthzTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)
        self.authz = AuthService()
        self.addCleanup(self.authz.close)

    def request(self, s, method="GET", path="/", headers=(), body=b""):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req(method, path, host="app.test", headers=headers, body=body))
        return c.read_response()

    def test_allow_adds_the_services_fields(self):
        s = self.start_sluice(config(self.origin.addr[1], self.authz.port))
        r = self.request(s, "POST", "/a?b=1", body=b"payload",
                         headers=[("Authorization", "Bearer good"), ("x-client", "c")])
        self.assertEqual(200, r.status, r.raw)
        # The body waited (buffered) during the check and then went on whole.
        self.assertIn(b"POST /a?b=1", r.body)
        self.assertIn(b"body=7:payload", r.body)
        method, path, headers = self.origin.requests[-1]
        self.assertEqual("alice", headers.get("x-user"))
        self.assertNotIn("x-other", headers)
        self.assertEqual("Bearer good", headers.get("Authorization"))
        # The check: same method, the prefixed path, Host and Authorization only.
        method, path, headers = self.authz.checks[-1]
        self.assertEqual(("POST", "/check/a?b=1"), (method, path))
        self.assertEqual("app.test", headers.get("Host"))
        self.assertEqual("Bearer good", headers.get("Authorization"))
        self.assertNotIn("x-client", headers)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.ok"))
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.callouts_started"))
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.callouts_ok"))

    def test_deny_answers_with_the_services_answer(self):
        s = self.start_sluice(config(self.origin.addr[1], self.authz.port,
                                     allowedClientHeaders=["www-authenticate", "x-reason"]))
        r = self.request(s, "GET", "/private")
        self.assertEqual(401, r.status, r.raw)
        self.assertEqual(b"denied\n", r.body)
        self.assertEqual("Bearer realm=\"test\"", r.get("www-authenticate"))
        self.assertEqual("missing", r.get("x-reason"))
        self.assertIsNone(r.get("x-secret"))
        self.assertEqual([], self.origin.requests)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.denied"))
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.callouts_ok"))
        # Without allowed_client_headers every field of the answer goes to the client.
        s2 = self.start_sluice(config(self.origin.addr[1], self.authz.port))
        r = self.request(s2, "GET", "/private")
        self.assertEqual(401, r.status, r.raw)
        self.assertEqual("s", r.get("x-secret"))
        self.assertEqual([], self.origin.requests)

    def test_timeout_is_an_error(self):
        s = self.start_sluice(config(self.origin.addr[1], self.authz.port, timeout="0.2s"))
        r = self.request(s, headers=[("Authorization", "Bearer wait")])
        self.assertEqual(403, r.status, r.raw)  # status_on_error's default, as Envoy's
        self.assertEqual([], self.origin.requests)
        # The check's connection was closed, not left to the service.
        harness.wait_until(lambda: self.authz.closed == 1, "the service to see its connection closed")
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.callouts_timeout"))
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.error"))

    def test_service_down(self):
        down = harness.unused_port()
        s = self.start_sluice(config(self.origin.addr[1], down, statusOnError=503))
        r = self.request(s, headers=[("Authorization", "Bearer good")])
        self.assertEqual(503, r.status, r.raw)
        self.assertEqual([], self.origin.requests)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.callouts_failed"))
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.error"))

    def test_failure_mode_allow(self):
        down = harness.unused_port()
        s = self.start_sluice(config(self.origin.addr[1], down, failureModeAllow=True))
        r = self.request(s, "GET", "/through", headers=[("Authorization", "Bearer good")])
        self.assertEqual(200, r.status, r.raw)
        method, path, headers = self.origin.requests[-1]
        self.assertEqual("/through", path)
        self.assertEqual("true", headers.get("x-sluice-auth-failure-mode-allowed"))
        self.assertNotIn("x-user", headers)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.failure_mode_allowed"))
        # A denial is still a denial.
        s2 = self.start_sluice(config(self.origin.addr[1], self.authz.port, failureModeAllow=True))
        r = self.request(s2, "GET", "/no")
        self.assertEqual(401, r.status, r.raw)
        self.assertEqual(1, len(self.origin.requests))

    def test_client_gone_while_checking(self):
        s = self.start_sluice(config(self.origin.addr[1], self.authz.port, timeout="20s"))
        c = harness.HttpClient.connect(s.addr("web"))
        c.send(req("GET", "/", host="app.test", headers=[("Authorization", "Bearer wait")]))
        self.assertTrue(self.authz.waiting.wait(10), "the check never reached the service")
        c.close()
        s.wait_stats(lambda st: st["plugin.ext_authz.callouts_cancelled"] == 1,
                     "the callout to be withdrawn")
        # Its connection closed (not left to the 20s timeout), and sluice still serves.
        harness.wait_until(lambda: self.authz.closed == 1, "the service to see its connection closed")
        r = self.request(s, headers=[("Authorization", "Bearer good")])
        self.assertEqual(200, r.status, r.raw)
        st = s.stats()
        self.assertEqual(0, harness.stat(st, "plugin.ext_authz.callouts_timeout"))
        self.assertEqual(2, harness.stat(st, "plugin.ext_authz.callouts_started"))
        self.assertEqual(1, len(self.origin.requests))

    def test_a_check_reset_by_the_service_is_sent_once_more(self):
        s = self.start_sluice(config(self.origin.addr[1], self.authz.port), concurrency=1)
        r = self.request(s, "POST", "/1", headers=[("Authorization", "Bearer drop-next")])
        self.assertEqual(200, r.status, r.raw)
        # The kept-alive connection to the service takes this POST's check and closes: the host
        # does not send a POST again, the filter does (a check has no effect).
        r = self.request(s, "POST", "/2", headers=[("Authorization", "Bearer good")])
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(["/1", "/2"], [p for (_, p, _) in self.origin.requests])
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.ext_authz.retried"))
        self.assertEqual(2, harness.stat(st, "plugin.ext_authz.ok"))
        self.assertEqual(0, harness.stat(st, "plugin.ext_authz.error"))

    def test_shutdown_with_a_check_in_flight(self):
        s = self.start_sluice(config(self.origin.addr[1], self.authz.port, timeout="30s",
                                     drain_timeout="0.5s"))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", host="app.test", headers=[("Authorization", "Bearer wait")]))
        self.assertTrue(self.authz.waiting.wait(10), "the check never reached the service")
        # The drain ends with the check still waiting: the stream and its callout go with the
        # worker, cleanly (exit 0; sanitizer builds would report a leak or a use after free).
        self.stop_sluice(s)
        harness.wait_until(lambda: self.authz.closed == 1, "the service to see its connection closed")
        self.assertEqual([], self.origin.requests)

    def test_the_example_config(self):
        with open(os.path.join(harness.repo_root(), "configs", "ext_authz.yaml")) as f:
            text = f.read()
        for fixed, port in (("port: 8000}", 0), ("port: 9901}", 0),
                            ("port: 8080}", self.origin.addr[1]), ("port: 9001}", self.authz.port)):
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        s = self.start_sluice(text, concurrency=1)
        r = self.request(s, "GET", "/x")
        self.assertEqual(401, r.status, r.raw)
        self.assertEqual("missing", r.get("x-reason"))
        self.assertIsNone(r.get("x-secret"))
        r = self.request(s, "GET", "/x", headers=[("Authorization", "Bearer good")])
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("alice", self.origin.requests[-1][2].get("x-user"))
        self.assertEqual("/check/x", self.authz.checks[-1][1])

    def test_config_errors(self):
        for authz, message in (
                ({"cluster": "nope"}, "cluster: no cluster named \"nope\" in the config"),
                ({"pathPrefix": "check"}, "path_prefix: must start with \"/\""),
                ({"timeout": "0s"}, "timeout: must be at least 1ms"),
                ({"statusOnError": 99}, "status_on_error: must be 200-599, got 99"),
                ({"allowedUpstreamHeaders": ["bad name"]},
                 "allowed_upstream_headers[0]: \"bad name\" is not a field name")):
            with self.subTest(message=message):
                path = harness.write_config(config(1, 2, **authz), self.tmpdir, "bad.json")
                r = harness.run_cli(["--mode", "validate", "-c", path])
                self.assertEqual(1, r.returncode, r.stdout)
                self.assertIn(message, r.stderr)


if __name__ == "__main__":
    harness.main()
