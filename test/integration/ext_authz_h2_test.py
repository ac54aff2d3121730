#!/usr/bin/env python3
"""The ext_authz example plugin (extensions/filters/http/ext_authz) with its authorization
service behind an HTTP/2 cluster (issue 14: `protocol: HTTP2`, h2c): the plugin's callouts
(plugin ABI 1.3, sl_host_callout) go over HTTP/2 like any upstream request. The service is an
h2origin.H2Origin with an app that decides by the Authorization field; the protected origin is
an HTTP/1.1 harness.HttpOrigin.

Checked: allow (the request reaches the origin with the service's x-user), deny (the client gets
the service's status, body and allowed fields; the origin sees nothing), that the service really
got each check over HTTP/2 (its method, the prefixed :path, :authority from the client's Host,
Authorization), that concurrent checks share one HTTP/2 connection (one worker), and HTTP/1.1
and HTTP/2 clients alike. The HTTP/1.1-service cases are ext_authz_test.py's.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import h2client  # noqa: E402
import h2origin  # noqa: E402
from harness import http_request as req, stat  # noqa: E402

TYPE = "type.googleapis.com/sluice.extensions.ext_authz.v1.ExtAuthz"


def config(origin_port, authz_port, **authz):
    cfg = {"@type": TYPE, "cluster": "authz", "pathPrefix": "/check", "timeout": "10s",
           "allowedUpstreamHeaders": ["x-user"],
           "allowedClientHeaders": ["www-authenticate", "x-reason"]}
    cfg.update(authz)
    router = {"@type": harness.ROUTER_TYPE,
              "virtualHosts": [{"name": "v", "domains": ["*"],
                                "routes": [{"route": {"cluster": "o"}}]}]}
    c = harness.http_config([harness.http_listener("web", filters=[
        {"plugin": {"filter": "ext_authz", "typedConfig": cfg}},
        {"plugin": {"filter": "router", "typedConfig": router}}])])
    c["clusters"] = [
        {"name": "o", "endpoints": [{"address": {"address": "127.0.0.1", "port": origin_port}}]},
        {"name": "authz", "connectTimeout": "1s", "protocol": "HTTP2",
         "endpoints": [{"address": {"address": "127.0.0.1", "port": authz_port}}]}]
    return c


class ExtAuthzOverHttp2Test(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)
        self.authz = h2origin.H2Origin(name="authz", app=self.decide)
        self.addCleanup(self.authz.close)
        self.s = self.start_sluice(config(self.origin.addr[1], self.authz.port), concurrency=1)

    def decide(self, check):
        """The authorization service: "Bearer good" (or "Bearer hold", once gate "hold" opens)
        -> 200 with x-user; anything else -> 401 with www-authenticate, x-reason, x-secret and
        a body."""
        auth = check.header("authorization")
        if auth in ("Bearer good", "Bearer hold"):
            return {"status": 200, "headers": [("x-user", "alice"), ("x-other", "no")],
                    "gate": self.authz.gate("hold") if auth == "Bearer hold" else None}
        return {"status": 401, "body": b"denied\n",
                "headers": [("www-authenticate", 'Bearer realm="test"'),
                            ("x-reason", "missing"), ("x-secret", "s"),
                            ("content-length", "7")]}

    def request(self, method="GET", path="/", headers=(), body=b""):
        c = harness.HttpClient.connect(self.s.addr("web"))
        self.addCleanup(c.close)
        c.send(req(method, path, host="app.test", headers=headers, body=body))
        return c.read_response()

    def test_allow(self):
        r = self.request("POST", "/a?b=1", body=b"payload",
                         headers=[("Authorization", "Bearer good"), ("x-client", "c")])
        self.assertEqual(200, r.status, r.raw)
        self.assertIn(b"POST /a?b=1", r.body)
        self.assertIn(b"body=7:payload", r.body)
        _, _, headers = self.origin.requests[-1]
        self.assertEqual("alice", headers.get("x-user"))
        self.assertNotIn("x-other", headers)
        # The check, as the service got it: over HTTP/2.
        check = self.authz.wait_request(lambda q: q.path == "/check/a?b=1")
        self.assertEqual(("h2", "POST", "app.test", "Bearer good"),
                         (check.protocol, check.method, check.authority,
                          check.header("authorization")))
        self.assertIsNone(check.header("x-client"))
        self.assertEqual("h2", self.authz.conns[0].protocol)
        self.assertEqual([], self.authz.protocol_errors)
        st = self.s.stats()
        self.assertEqual(1, stat(st, "plugin.ext_authz.ok"))
        self.assertEqual(1, stat(st, "plugin.ext_authz.callouts_ok"))
        self.assertEqual(1, stat(st, "cluster.authz.upstream_rq_total"))

    def test_deny(self):
        r = self.request("GET", "/private")
        self.assertEqual(401, r.status, r.raw)
        self.assertEqual(b"denied\n", r.body)
        self.assertEqual('Bearer realm="test"', r.get("www-authenticate"))
        self.assertEqual("missing", r.get("x-reason"))
        self.assertIsNone(r.get("x-secret"))
        self.assertEqual([], self.origin.requests)
        check = self.authz.wait_request(lambda q: q.path == "/check/private")
        self.assertEqual(("h2", "GET"), (check.protocol, check.method))
        self.assertEqual(1, stat(self.s.stats(), "plugin.ext_authz.denied"))

    def test_concurrent_checks_share_one_http2_connection(self):
        n = 6
        clients = []
        for i in range(n):
            c = harness.HttpClient.connect(self.s.addr("web"))
            self.addCleanup(c.close)
            c.send(req("GET", "/held/%d" % i, host="app.test",
                       headers=[("Authorization", "Bearer hold")]))
            clients.append(c)
        # Every check is in flight at once, as streams of one connection.
        self.authz.wait_open_streams(0, n)
        self.assertEqual(1, self.authz.connections)
        self.authz.gate("hold").set()
        for c in clients:
            self.assertEqual(200, c.read_response().status)
        self.assertEqual([n], self.authz.requests_per_connection())
        self.assertEqual(n, len(self.origin.requests))
        st = self.s.stats()
        self.assertEqual(n, stat(st, "plugin.ext_authz.ok"))
        self.assertEqual(1, stat(st, "cluster.authz.upstream_cx_total"))

    def test_an_http2_client(self):
        m = h2client.Mux.connect(*self.s.addr("web"))
        self.addCleanup(m.close)
        good = m.request("GET", "/h2-ok", authority="app.test",
                         headers=[("authorization", "Bearer good")])
        bad = m.request("GET", "/h2-no", authority="app.test")
        m.wait(good, bad)
        self.assertEqual(200, good.status, good)
        self.assertEqual((401, b"denied\n"), (bad.status, bad.body))
        self.assertEqual(["/h2-ok"], [p for _, p, _ in self.origin.requests])
        self.assertEqual({"/check/h2-ok", "/check/h2-no"},
                         {q.path for q in self.authz.requests})


if __name__ == "__main__":
    harness.main()
