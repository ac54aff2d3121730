"""The retry plugin (extensions/filters/http/retry) with sluice's attempt mechanism (plugin ABI
1.4), against fault-injecting origins over loopback (fault_origin.py; h2origin.py for refused
streams). Each fault ends, with and without retries, in the right status within its timeout;
counters say what happened (cluster.<c>.upstream_rq_retry*, upstream_rq_per_try_timeout and the
plugin's plugin.retry.*); a retry goes to another host; a POST is retried after a connect
failure but not once it may have been processed; bodies of several sizes and both framings are
replayed byte-exact, and one over max_replay_bytes is not retried; x-sluice-attempt-count
reaches the origin; Retry-After holds the retry back (seen in the order of the origin's
requests, not in time); a route's policy replaces the default; config errors name their field;
configs/retries.yaml loads and works. Bounded load: a brown-out (one host of three failing every
other request) leaves clients above 99.9% success, and in an outage the retry budget caps the
extra upstream load.

The response flags (URX, UF, UPT...) are read from the connection manager's counters
(http.web.downstream_rq_response_flag.<flag>) and, per stream, from the retry filter's debug line
("stream complete: attempts=N retries=M flags=... details=...")."""

import email.utils
import hashlib
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_origin  # noqa: E402
import harness  # noqa: E402
from harness import http_request as req, stat  # noqa: E402

RETRY = "type.googleapis.com/sluice.extensions.retry.v1.Retry"
POLICY = "type.googleapis.com/sluice.extensions.retry.v1.RetryPolicy"
C = "cluster.o."
P = "plugin.retry."
F = "http.web.downstream_rq_response_flag."


def sha(data):
    return hashlib.sha256(data).hexdigest()


def config(ports, policy=None, retry_filter=True, route=None, routes=None, cluster_extra=None,
           hcm=None):
    """One listener "web": the retry filter (its default `policy`, None: none) before the router,
    whose one catch-all route (with extra RouteAction fields `route`; or `routes`) goes to
    cluster "o" of the origins on `ports` (round robin)."""
    filters = []
    if retry_filter:
        typed = {"@type": RETRY}
        if policy is not None:
            typed["policy"] = policy
        filters.append({"plugin": {"filter": "retry", "typedConfig": typed}})
    if routes is None:
        routes = [{"route": dict({"cluster": "o"}, **(route or {}))}]
    filters.append({"plugin": {"filter": "router", "typedConfig": {
        "@type": harness.ROUTER_TYPE,
        "virtualHosts": [{"name": "v", "domains": ["*"], "routes": routes}]}}})
    cfg = harness.http_config([harness.http_listener("web", hcm=hcm, filters=filters)])
    cluster = {"name": "o", "connectTimeout": "5s",
               "endpoints": [{"address": {"address": "127.0.0.1", "port": p}} for p in ports]}
    cluster.update(cluster_extra or {})
    cfg["clusters"] = [cluster]
    return cfg


class RetryTestCase(harness.SluiceTestCase):

    def origins(self, n=3, **kw):
        """n FaultOrigins sharing self.script."""
        self.script = fault_origin.Script()
        self.hosts = [self.server(fault_origin.FaultOrigin, self.script, "o%d" % i, **kw)
                      for i in range(n)]
        return self.hosts

    def start(self, policy=None, ports=None, log_level=None, **kw):
        if ports is None:
            ports = [h.port for h in self.hosts]
        return self.start_sluice(config(ports, policy=policy, **kw), concurrency=1,
                                 log_level=log_level)

    def stream_ends(self, s, n=1):
        """The retry filter's "stream complete" debug lines (sluice started with log_level
        "debug"), once there are n: [(attempts, retries, set of flags, details)]."""
        pattern = re.compile(r"stream complete: attempts=(\d+) retries=(\d+) flags=(\S+) "
                             r"details=(\S+)")
        found = []

        def enough():
            found[:] = pattern.findall(s.log_text())
            return len(found) >= n

        harness.wait_until(enough, "%d stream complete lines in the log" % n)
        return [(int(a), int(r), set(f.split(",")) - {"-"}, d) for a, r, f, d in found]

    def client(self, s):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        return c

    def request(self, s, method="GET", path="/", headers=(), body=b"", timeout=60):
        c = self.client(s)
        c.send(req(method, path, headers=headers, body=body))
        return c.read_response(timeout=timeout)

    def expect(self, s, want, what=None):
        """Waits until every counter of `want` has its value (the worker writes them while they
        are read); returns the stats."""
        return s.wait_stats(lambda st: all(stat(st, k) == v for k, v in want.items()),
                            what or "stats %r" % want)

    def records(self):
        return self.script.snapshot()

    def assertCut(self, c, what):
        """The client got a 200 head and part of a body, then the connection closed: a response
        that broke after it started cannot be retried and must not look complete."""
        data, _ = harness.recv_until_closed(c.sock, deadline_s=60)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), (what, data[:80]))
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"content-length: %d" % fault_origin.BODY_ANNOUNCED, head.lower())
        self.assertLess(len(body), fault_origin.BODY_ANNOUNCED, what)


# ------------------------------------------------------------------------------------------------
# One fault at a time


class DieTest(RetryTestCase):
    """The origin closes the connection on reading the request: nothing answered."""

    def test_without_retries_a_502(self):
        self.origins()
        self.script.plan("die")
        s = self.start()  # the filter with no policy: nothing is retried
        self.assertEqual(502, self.request(s).status)
        # Retries come before the client's answer: after it, the record is final.
        self.assertEqual(1, len(self.records()))
        self.expect(s, {C + "upstream_rq_retry": 0, P + "retries": 0})

    def test_with_retries_another_host_answers(self):
        self.origins()
        self.script.plan("die")
        s = self.start({"retryOn": ["reset"]}, log_level="debug")
        r = self.request(s)
        self.assertEqual(200, r.status, r)
        self.assertEqual([(2, 1, set(), "-")], self.stream_ends(s))
        self.expect(s, {F + "URX": 0, F + "UC": 0})
        first, second = self.records()
        self.assertEqual("die", first["action"])
        self.assertNotEqual(first["origin"], second["origin"])
        self.assertEqual(second["origin"], r.get("x-origin-name"))
        self.expect(s, {C + "upstream_rq_retry": 1, C + "upstream_rq_retry_success": 1,
                        P + "retries": 1, P + "retries_exhausted": 0})

    def test_a_post_is_not_retried_once_it_may_have_been_processed(self):
        self.origins()
        s = self.start({"retryOn": ["reset", "5xx"]})
        body = harness.pattern_bytes("post", 3000)
        self.script.plan("die_after_body")
        self.assertEqual(502, self.request(s, "POST", "/p", body=body).status)
        self.assertEqual(1, len(self.records()))
        self.assertEqual(sha(body), self.records()[0]["body_sha256"])
        self.expect(s, {P + "not_retried_non_idempotent": 1, C + "upstream_rq_retry": 0})
        # A 503 is an answer from the application: not retried for a POST either.
        self.script.plan(503)
        self.assertEqual(503, self.request(s, "POST", "/p", body=body).status)
        self.assertEqual(2, len(self.records()))
        self.expect(s, {P + "not_retried_non_idempotent": 2, C + "upstream_rq_retry": 0})
        # PUT is idempotent: sent again.
        self.script.plan("die_after_body")
        r = self.request(s, "PUT", "/p", body=body)
        self.assertEqual((200, sha(body)), (r.status, r.get("x-request-sha256")), r)
        self.expect(s, {C + "upstream_rq_retry": 1, P + "retries": 1})

    def test_retry_non_idempotent_retries_a_post(self):
        self.origins()
        s = self.start({"retryOn": ["reset"], "retryNonIdempotent": True})
        body = harness.pattern_bytes("post", 5000)
        self.script.plan("die_after_body")
        r = self.request(s, "POST", "/p", body=body)
        self.assertEqual((200, sha(body)), (r.status, r.get("x-request-sha256")), r)
        self.expect(s, {C + "upstream_rq_retry": 1, P + "not_retried_non_idempotent": 0})


class ConnectFailureTest(RetryTestCase):
    """One live origin and two ports nothing listens on."""

    def setUp(self):
        super().setUp()
        self.origins(1)
        self.ports = [self.hosts[0].port, harness.unused_port(), harness.unused_port()]

    def test_without_retries_a_503(self):
        s = self.start(ports=self.ports)
        # Round robin: each host once.
        statuses = sorted(self.request(s).status for _ in range(3))
        self.assertEqual([200, 503, 503], statuses)
        self.expect(s, {C + "upstream_rq_retry": 0})

    def test_with_retries_even_a_post_goes_to_the_live_host(self):
        # Nothing reached an application: any method may be sent again.
        s = self.start({"retryOn": ["connect-failure"], "numRetries": 2}, ports=self.ports)
        for i in range(4):
            body = harness.pattern_bytes("cf%d" % i, 1000 + i)
            r = self.request(s, "POST", "/p%d" % i, body=body)
            self.assertEqual((200, sha(body)), (r.status, r.get("x-request-sha256")), (i, r))
        st = s.stats()
        failures = stat(st, C + "upstream_cx_connect_fail")
        self.assertGreaterEqual(failures, 2, harness.format_stats(st))
        self.expect(s, {C + "upstream_rq_retry": failures, P + "retries": failures,
                        P + "not_retried_non_idempotent": 0})
        self.assertEqual(4, len(self.records()))  # the live host saw each request once

    def test_no_live_host_exhausts_the_retries(self):
        dead = [harness.unused_port() for _ in range(3)]
        s = self.start({"retryOn": ["connect-failure"], "numRetries": 2}, ports=dead,
                       log_level="debug")
        r = self.request(s)
        self.assertEqual(503, r.status, r)
        (attempts, retries, flags, _), = self.stream_ends(s)
        self.assertEqual((3, 2), (attempts, retries))
        self.assertLessEqual({"UF", "URX"}, flags)
        self.expect(s, {F + "UF": 1, F + "URX": 1})
        self.expect(s, {C + "upstream_rq_retry": 2, C + "upstream_rq_retry_limit_exceeded": 1,
                        P + "retries": 2, P + "retries_exhausted": 1,
                        C + "upstream_cx_connect_fail": 3})


class HangTest(RetryTestCase):
    """The origin reads the request and answers nothing: the per-try timeout ends the attempt."""

    def test_without_retries_the_routes_per_try_timeout_is_a_504(self):
        self.origins()
        self.script.plan("hang")
        s = self.start(route={"perTryTimeout": "0.3s"})
        r = self.request(s)
        self.assertEqual(504, r.status, r)
        self.assertEqual(1, len(self.records()))
        self.expect(s, {C + "upstream_rq_per_try_timeout": 1, C + "upstream_rq_retry": 0})

    def test_with_retries_the_next_attempt_goes_to_another_host(self):
        self.origins()
        self.script.plan("hang")
        s = self.start({"retryOn": ["per-try-timeout"], "perTryTimeout": "0.3s"})
        r = self.request(s)
        self.assertEqual(200, r.status, r)
        first, second = self.records()
        self.assertEqual("hang", first["action"])
        self.assertNotEqual(first["origin"], second["origin"])
        self.expect(s, {C + "upstream_rq_per_try_timeout": 1, C + "upstream_rq_retry": 1,
                        C + "upstream_rq_retry_success": 1, P + "retries": 1})

    def test_every_host_hanging_ends_in_a_504_with_the_retries_used_up(self):
        self.origins()
        self.script.plan("hang", "hang", "hang")
        s = self.start({"retryOn": ["5xx"], "perTryTimeout": "0.3s", "numRetries": 2},
                       log_level="debug")
        r = self.request(s)
        self.assertEqual(504, r.status, r)
        (attempts, retries, flags, _), = self.stream_ends(s)
        self.assertEqual((3, 2), (attempts, retries))
        self.assertLessEqual({"UPT", "URX"}, flags)
        self.expect(s, {F + "UPT": 1, F + "URX": 1})
        self.assertEqual(3, len({x["origin"] for x in self.records()}))
        self.expect(s, {C + "upstream_rq_per_try_timeout": 3, C + "upstream_rq_retry": 2,
                        C + "upstream_rq_retry_limit_exceeded": 1, P + "retries_exhausted": 1})

    def test_a_policy_without_the_condition_does_not_retry_it(self):
        self.origins()
        self.script.plan("hang")
        s = self.start({"retryOn": ["connect-failure"], "perTryTimeout": "0.3s"})
        self.assertEqual(504, self.request(s).status)
        self.assertEqual(1, len(self.records()))
        self.expect(s, {C + "upstream_rq_per_try_timeout": 1, C + "upstream_rq_retry": 0})


class MidResponseTest(RetryTestCase):
    """The response started, then broke: part of it may be on its way to the client, so it is
    never retried; the client sees a cut response."""

    POLICY = {"retryOn": ["5xx", "reset", "per-try-timeout"], "numRetries": 2,
              "perTryTimeout": "0.5s"}

    def test_hang_mid_body(self):
        for policy in (None, self.POLICY):
            with self.subTest(retries=policy is not None):
                self.origins()
                self.script.plan("hang_body")
                # idle_timeout: what ends a stalled body whatever the per-try timeout does once
                # the response started.
                s = self.start(policy, route={"idleTimeout": "0.5s"})
                c = self.client(s)
                c.send(req("GET", "/"))
                self.assertCut(c, "hang_body")
                self.assertEqual(1, len(self.records()))
                self.expect(s, {C + "upstream_rq_retry": 0, P + "retries": 0})

    def test_reset_mid_response(self):
        for policy in (None, self.POLICY):
            with self.subTest(retries=policy is not None):
                self.origins()
                self.script.plan("reset_mid")
                s = self.start(policy)
                c = self.client(s)
                c.send(req("GET", "/"))
                self.assertCut(c, "reset_mid")
                self.assertEqual(1, len(self.records()))
                self.expect(s, {C + "upstream_rq_retry": 0, P + "retries": 0})


class SlowTest(RetryTestCase):

    def test_slow_within_the_per_try_timeout_is_not_retried(self):
        self.origins()
        self.script.plan(("slow", 0.3))
        s = self.start({"retryOn": ["per-try-timeout"], "perTryTimeout": "10s"})
        self.assertEqual(200, self.request(s).status)
        self.assertEqual(1, len(self.records()))
        self.expect(s, {C + "upstream_rq_per_try_timeout": 0, C + "upstream_rq_retry": 0})

    def test_slow_beyond_it_is_retried_elsewhere(self):
        self.origins()
        self.script.plan(("slow", 3.0))
        s = self.start({"retryOn": ["per-try-timeout"], "perTryTimeout": "0.3s"})
        r = self.request(s)
        self.assertEqual(200, r.status)
        first, second = self.records()
        self.assertNotEqual(first["origin"], second["origin"])
        self.assertEqual(second["origin"], r.get("x-origin-name"))
        self.expect(s, {C + "upstream_rq_per_try_timeout": 1, C + "upstream_rq_retry": 1})


class StatusTest(RetryTestCase):

    def test_a_503_without_retries_passes_through(self):
        self.origins()
        self.script.plan(503)
        s = self.start()
        r = self.request(s)
        self.assertEqual(503, r.status)
        self.assertTrue(r.body.startswith(b"status 503"), r)  # the origin's, not a local reply

    def test_retries_go_to_a_different_host_each_time(self):
        self.origins()
        self.script.plan(503, 502)
        s = self.start({"retryOn": ["gateway-error"], "numRetries": 2})
        r = self.request(s)
        self.assertEqual(200, r.status)
        self.assertEqual([1, 1, 1], [h.count() for h in self.hosts])
        self.expect(s, {C + "upstream_rq_retry": 2, C + "upstream_rq_retry_success": 1,
                        P + "retries": 2})

    def test_every_host_failing_exhausts_the_retries(self):
        self.origins()
        self.script.plan(503, 503, 503)
        s = self.start({"retryOn": ["5xx"], "numRetries": 2}, log_level="debug")
        r = self.request(s)
        self.assertEqual(503, r.status)
        (attempts, retries, flags, _), = self.stream_ends(s)
        self.assertEqual((3, 2, {"URX"}), (attempts, retries, flags))
        self.expect(s, {F + "URX": 1})
        self.assertTrue(r.body.startswith(b"status 503"), r)  # the last attempt's answer
        self.assertEqual([1, 1, 1], [h.count() for h in self.hosts])
        self.expect(s, {C + "upstream_rq_retry": 2, C + "upstream_rq_retry_limit_exceeded": 1,
                        P + "retries": 2, P + "retries_exhausted": 1})

    def test_retriable_status_codes_and_headers(self):
        self.origins()
        s = self.start({"retryOn": ["retriable-status-codes", "retriable-headers"],
                        "retriableStatusCodes": [409],
                        "retriableHeaders": [{"name": "X-Try-Again", "exact": "yes"}]})
        for plan, want_retry in ((409, True), (500, False),
                                 ((200, [("X-Try-Again", "yes")]), True),
                                 ((200, [("X-Try-Again", "no")]), False)):
            with self.subTest(plan=plan):
                before = len(self.records())
                self.script.plan(plan)
                r = self.request(s)
                records = self.records()[before:]
                self.assertEqual(2 if want_retry else 1, len(records), records)
                if want_retry:
                    self.assertEqual(("ok", 200), (records[-1]["action"], r.status))
        self.expect(s, {P + "retries": 2})

    def test_the_attempt_count_reaches_the_origin(self):
        self.origins()
        self.script.plan(503, 503)
        s = self.start({"retryOn": ["5xx"], "numRetries": 2, "attemptCountHeader": True})
        r = self.request(s)
        self.assertEqual("3", r.get("x-attempt-count"))
        self.assertEqual(["1", "2", "3"], [x["attempt"] for x in self.records()])

    def test_no_attempt_count_unless_asked(self):
        self.origins()
        self.script.plan(503)
        s = self.start({"retryOn": ["5xx"]})
        self.assertEqual("none", self.request(s).get("x-attempt-count"))
        self.assertEqual([None, None], [x["attempt"] for x in self.records()])


class RetryAfterTest(RetryTestCase):

    def test_retry_after_holds_the_retry_back(self):
        self.origins()
        self.script.plan((503, [("Retry-After", "2")]))
        s = self.start({"retryOn": ["5xx"]})
        a = self.client(s)
        a.send(req("GET", "/a"))
        # The 503 went out; while A waits out its Retry-After, B goes through.
        self.script.wait_answered(1)
        b = self.client(s)
        b.send(req("GET", "/b"))
        self.assertEqual(200, b.read_response().status)
        self.assertEqual(200, a.read_response().status)
        self.assertEqual(["/a", "/b", "/a"], [x["path"] for x in self.records()])
        self.expect(s, {P + "retry_after_honoured": 1, P + "retries": 1})

    def test_an_http_date(self):
        self.origins()
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        self.script.plan((503, [("Retry-After", when)]))
        s = self.start({"retryOn": ["5xx"]})
        self.assertEqual(200, self.request(s).status)
        self.assertEqual(2, len(self.records()))
        self.expect(s, {P + "retry_after_honoured": 1, P + "retry_after_too_long": 0})

    def test_too_long_is_not_retried(self):
        self.origins()
        self.script.plan((503, [("Retry-After", "3600")]))
        s = self.start({"retryOn": ["5xx"], "maxRetryAfter": "5s"})
        r = self.request(s)
        self.assertEqual((503, "3600"), (r.status, r.get("retry-after")))
        self.assertEqual(1, len(self.records()))
        self.expect(s, {P + "retry_after_too_long": 1, P + "retries": 0,
                        C + "upstream_rq_retry": 0})

    def test_a_429_with_retriable_status_codes(self):
        self.origins()
        self.script.plan((429, [("Retry-After", "1")]))
        s = self.start({"retryOn": ["retriable-status-codes"], "retriableStatusCodes": [429]})
        self.assertEqual(200, self.request(s).status)
        self.expect(s, {P + "retry_after_honoured": 1, P + "retries": 1})

    def test_garbage_falls_back_to_the_backoff(self):
        self.origins()
        self.script.plan((503, [("Retry-After", "soon")]))
        s = self.start({"retryOn": ["5xx"]})
        self.assertEqual(200, self.request(s).status)
        self.expect(s, {P + "retry_after_honoured": 0, P + "retries": 1})


class ReplayTest(RetryTestCase):
    """The request body is kept until the response starts and sent again whole."""

    SIZES = (0, 1, 4096, 65537, 300000)

    def test_bodies_are_replayed_byte_exact(self):
        self.origins()
        s = self.start({"retryOn": ["5xx", "reset"]})
        retries = 0
        for fault in (503, "die_mid_body"):
            for size in self.SIZES:
                for framing in ("cl", "chunked"):
                    with self.subTest(fault=fault, size=size, framing=framing):
                        body = harness.pattern_bytes("replay-%d" % size, size)
                        if framing == "chunked":
                            pieces = [body[i:i + 7000] for i in range(0, len(body), 7000)]
                            raw = req("PUT", "/r", headers=[("Transfer-Encoding", "chunked")],
                                      body=harness.chunked(*pieces))
                        else:
                            raw = req("PUT", "/r", headers=[("Content-Length", str(size))],
                                      body=body)
                        before = len(self.records())
                        self.script.plan(fault)
                        c = self.client(s)
                        c.send(raw)
                        r = c.read_response(timeout=60)
                        self.assertEqual((200, sha(body), str(size)),
                                         (r.status, r.get("x-request-sha256"),
                                          r.get("x-request-length")), r)
                        records = self.records()[before:]
                        self.assertEqual([fault, "ok"], [x["action"] for x in records])
                        if fault == 503:
                            # The first attempt got it all too.
                            self.assertEqual(sha(body), records[0]["body_sha256"])
                        retries += 1
        self.expect(s, {C + "upstream_rq_retry": retries, C + "upstream_rq_retry_body_overflow": 0})

    def test_a_body_over_max_replay_bytes_is_not_retried(self):
        self.origins()
        s = self.start({"retryOn": ["5xx"], "maxReplayBytes": "65536"})
        big = harness.pattern_bytes("big", 200000)
        self.script.plan(503)
        r = self.request(s, "PUT", "/big", body=big)
        self.assertEqual(503, r.status)
        self.assertEqual(1, len(self.records()))
        self.expect(s, {C + "upstream_rq_retry_body_overflow": 1, C + "upstream_rq_retry": 0})
        # Within the bound: retried.
        small = harness.pattern_bytes("small", 60000)
        self.script.plan(503)
        r = self.request(s, "PUT", "/small", body=small)
        self.assertEqual((200, sha(small)), (r.status, r.get("x-request-sha256")))
        self.expect(s, {C + "upstream_rq_retry_body_overflow": 1, C + "upstream_rq_retry": 1})


class PerRouteTest(RetryTestCase):

    def test_a_routes_policy_replaces_the_default(self):
        self.origins()
        routes = [
            {"match": {"prefix": "/retry/"}, "route": {"cluster": "o"},
             "typedPerFilterConfig": {"retry": {"@type": POLICY, "retryOn": ["5xx"],
                                                "numRetries": 2}}},
            {"match": {"prefix": "/never/"}, "route": {"cluster": "o"},
             "typedPerFilterConfig": {"retry": {"@type": POLICY, "retryOn": ["5xx"],
                                                "numRetries": 0}}},
            {"route": {"cluster": "o"}},
        ]
        # The default retries only connect failures.
        s = self.start({"retryOn": ["connect-failure"]}, routes=routes)
        for path, plan, status, attempts in (("/retry/x", (503, 503), 200, 3),
                                             ("/never/x", (503,), 503, 1),
                                             ("/other", (503,), 503, 1)):
            with self.subTest(path=path):
                before = len(self.records())
                self.script.plan(*plan)
                self.assertEqual(status, self.request(s, path=path).status)
                self.assertEqual(attempts, len(self.records()) - before)
        self.expect(s, {P + "retries": 2})

    def test_no_default_policy(self):
        self.origins()
        routes = [{"match": {"prefix": "/retry/"}, "route": {"cluster": "o"},
                   "typedPerFilterConfig": {"retry": {"@type": POLICY, "retryOn": ["5xx"]}}},
                  {"route": {"cluster": "o"}}]
        s = self.start(None, routes=routes)
        self.script.plan(503)
        self.assertEqual(503, self.request(s, path="/plain").status)
        self.script.plan(503)
        self.assertEqual(200, self.request(s, path="/retry/x").status)


class RefusedStreamTest(RetryTestCase):
    """HTTP/2: a stream the origin refused was never processed. The core sends it again once by
    itself; a second refusal is the retry policy's."""

    def h2(self):
        import h2origin
        o = h2origin.H2Origin()
        self.addCleanup(o.close)
        return o

    def test_refused_twice(self):
        for policy in (None, {"retryOn": ["refused-stream"]}):
            with self.subTest(retries=policy is not None):
                o = self.h2()
                o.refuse_next(2)
                s = self.start_sluice(config([o.port], policy=policy,
                                             cluster_extra={"protocol": "HTTP2"}),
                                      concurrency=1)
                body = harness.pattern_bytes("refused", 5000)
                # A POST too: a refused stream reached no application.
                r = self.request(s, "POST", "/echo", body=body)
                if policy is None:
                    self.assertTrue(500 <= r.status < 600, r)
                    self.expect(s, {C + "upstream_rq_refused_stream": 2,
                                    C + "upstream_rq_retry_refused": 1,
                                    C + "upstream_rq_retry": 0})
                else:
                    self.assertEqual((200, sha(body)), (r.status, r.get("x-request-sha256")), r)
                    self.expect(s, {C + "upstream_rq_refused_stream": 2,
                                    C + "upstream_rq_retry_refused": 1,
                                    C + "upstream_rq_retry": 1, P + "retries": 1})
                with o.cond:
                    states = [q.state for q in o.requests]
                self.assertEqual(2, states.count("refused"), states)


class ConfigTest(harness.SluiceTestCase):

    def validate(self, cfg):
        path = harness.write_config(cfg, self.tmpdir, "bad.json")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        out = "exit %d\n%s\n%s" % (r.returncode, r.stdout, r.stderr)
        return r.returncode, r.stdout + r.stderr, out

    def test_errors_name_the_field(self):
        cases = [
            ({"retryOn": ["5xx", "5xxx"]},
             'policy.retry_on[1]: "5xxx" is not a retry condition (one of: 5xx, gateway-error'),
            ({"retryOn": ["5xx"], "backoff": {"baseInterval": "0s"}},
             "policy.backoff.base_interval: must be at least 1ms"),
            ({"retryOn": ["5xx"], "backoff": {"baseInterval": "1s", "maxInterval": "0.5s"}},
             "policy.backoff.max_interval: must be at least base_interval (1000ms), got 500ms"),
            ({"retryOn": ["retriable-status-codes"]},
             'policy.retry_on: "retriable-status-codes" needs retriable_status_codes'),
            ({"retryOn": ["5xx"], "retriableStatusCodes": [503]},
             'policy.retriable_status_codes: given, but retry_on lacks "retriable-status-codes"'),
            ({"retryOn": ["retriable-headers"], "retriableHeaders": [{"name": "a b"}]},
             'policy.retriable_headers[0].name: "a b" is not a field name'),
            ({"retryOn": ["5xx"], "retryBudget": {"budgetPercent": 150}},
             "policy.retry_budget.budget_percent: must be from 0 to 100, got 150"),
        ]
        for policy, needle in cases:
            with self.subTest(needle=needle):
                rc, text, out = self.validate(config([1], policy=policy))
                self.assertEqual(1, rc, out)
                self.assertIn(needle, text, out)

    def test_a_routes_error_names_its_path(self):
        routes = [{"route": {"cluster": "o"}, "typedPerFilterConfig": {
            "retry": {"@type": POLICY, "retryOn": ["sometimes"]}}}]
        rc, text, out = self.validate(config([1], routes=routes))
        self.assertEqual(1, rc, out)
        self.assertIn('typed_per_filter_config["retry"]', text, out)
        self.assertIn('retry_on[0]: "sometimes" is not a retry condition', text, out)

    def test_a_valid_config(self):
        rc, text, out = self.validate(config([1], policy={
            "retryOn": ["5xx", "gateway-error", "connect-failure", "reset", "refused-stream",
                        "retriable-status-codes", "retriable-headers", "per-try-timeout"],
            "numRetries": 3, "perTryTimeout": "1s", "retriableStatusCodes": [409],
            "retriableHeaders": [{"name": "x-a"}, {"name": "x-b", "exact": "1"},
                                 {"name": "x-c", "present": False}],
            "backoff": {"baseInterval": "0.01s", "maxInterval": "1s"},
            "maxRetryAfter": "30s", "retryBudget": {"budgetPercent": 0, "minRetryConcurrency": 10},
            "retryNonIdempotent": True, "attemptCountHeader": True, "maxReplayBytes": "1048576"}))
        self.assertEqual(0, rc, out)


class ExampleConfigTest(RetryTestCase):
    """configs/retries.yaml as it ships, its ports swapped for the test's."""

    def test_the_example_config(self):
        self.origins()
        with open(os.path.join(harness.repo_root(), "configs", "retries.yaml")) as f:
            text = f.read()
        swaps = [("port: 8000}", 0), ("port: 9901}", 0)]
        swaps += [("port: %d}" % (8081 + i), h.port) for i, h in enumerate(self.hosts)]
        for fixed, port in swaps:
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        s = self.start_sluice(text, concurrency=1)
        self.script.plan(503)
        r = self.request(s, path="/api/items")
        self.assertEqual(200, r.status, r)
        self.assertEqual(2, len(self.records()))
        # The upload route replaces the default: no retries there, even for a PUT.
        self.script.plan(503)
        self.assertEqual(503, self.request(s, "PUT", "/upload/x", body=b"data").status)
        self.assertEqual(3, len(self.records()))
        st = self.expect(s, {"cluster.app.upstream_rq_retry": 1, P + "retries": 1})
        self.assertEqual(0, stat(st, P + "retries_exhausted"))


# ------------------------------------------------------------------------------------------------
# Bounded load


def run_clients(addr, threads, per_thread, path="/", deadline_s=120.0):
    """`threads` keep-alive clients, each sending `per_thread` GETs one after the other; returns
    the statuses (None for a request that got no response)."""
    statuses = []
    lock = threading.Lock()
    deadline = time.monotonic() + deadline_s

    def client(k):
        c = None
        mine = []
        try:
            for i in range(per_thread):
                if time.monotonic() > deadline:
                    mine += [None] * (per_thread - i)
                    break
                try:
                    if c is None:
                        c = harness.HttpClient.connect(addr)
                    c.send(req("GET", "%s%d/%d" % (path, k, i)))
                    r = c.read_response(timeout=max(1.0, deadline - time.monotonic()))
                    mine.append(r.status)
                    if r.has_token("connection", "close"):
                        c.close()
                        c = None
                except (OSError, EOFError, TimeoutError, harness.HttpParseError):
                    mine.append(None)
                    if c is not None:
                        c.close()
                    c = None
        finally:
            if c is not None:
                c.close()
            with lock:
                statuses.extend(mine)

    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(deadline_s + 30)
    return statuses


class BrownOutTest(RetryTestCase):
    """Three hosts, one failing every other request it gets with a 503."""

    N = 2001
    CLIENTS = 3

    def test_clients_barely_notice(self):
        script = fault_origin.Script()
        self.script = script
        flaky_count = [0]

        def flaky(origin, record):
            flaky_count[0] += 1
            return 503 if flaky_count[0] % 2 == 1 else "ok"

        self.hosts = [
            self.server(fault_origin.FaultOrigin, script, "flaky", decide=flaky, keep_alive=True),
            self.server(fault_origin.FaultOrigin, script, "good1", decide=lambda o, r: "ok",
                        keep_alive=True),
            self.server(fault_origin.FaultOrigin, script, "good2", decide=lambda o, r: "ok",
                        keep_alive=True)]
        s = self.start({"retryOn": ["5xx"], "numRetries": 2})
        statuses = run_clients(s.addr("web"), self.CLIENTS, self.N // self.CLIENTS, "/b/")
        n = len(statuses)
        self.assertEqual(self.N // self.CLIENTS * self.CLIENTS, n)
        ok = statuses.count(200)
        self.assertGreater(ok / n, 0.999, "success %d of %d: %r" % (
            ok, n, {x: statuses.count(x) for x in set(statuses)}))
        st = s.wait_stats(lambda st: stat(st, C + "upstream_rq_total") >= n and
                          stat(st, "http.web.downstream_rq_active") == 0, "the load to end")
        extra = stat(st, C + "upstream_rq_total") - n
        retries = stat(st, C + "upstream_rq_retry")
        failures = sum(1 for r in script.snapshot() if r["action"] == 503)
        # Every extra upstream request is a retry (none of the core's own), each caused by one
        # 503 of the flaky host; with at most three requests in flight, the budget's floor
        # (min_retry_concurrency 3) lets each through, so none overflowed.
        self.assertEqual(retries + stat(st, C + "upstream_rq_retry_stale_connection"), extra,
                         harness.format_stats(st))
        self.assertLessEqual(retries, failures)
        self.assertEqual(0, stat(st, C + "upstream_rq_retry_overflow"))
        # One host of three failing half of its share: about one request in five is sent twice
        # (retries take their turn on the hosts too); far from a retry storm.
        self.assertLess(extra, 0.25 * n, "extra upstream requests: %d for %d" % (extra, n))


class BudgetTest(RetryTestCase):
    """An outage: every host answers 503. Without a budget each request is sent 1 + num_retries
    times; with one, retries in flight stay under a share of the requests in flight, and the
    extra upstream load collapses while it lasts."""

    N = 200
    CLIENTS = 10

    def outage(self, budget):
        self.script = fault_origin.Script()
        self.hosts = [self.server(fault_origin.FaultOrigin, self.script, "down%d" % i,
                                  decide=lambda o, r: 503, keep_alive=True) for i in range(3)]
        # circuit_breakers.max_retries far out of the way: the budget is what is measured.
        s = self.start({"retryOn": ["5xx"], "numRetries": 3, "retryBudget": budget},
                       cluster_extra={"circuitBreakers": {"maxRetries": 100000}})
        statuses = run_clients(s.addr("web"), self.CLIENTS, self.N // self.CLIENTS, "/o/")
        self.assertEqual([503] * self.N, statuses)
        st = s.wait_stats(lambda st: stat(st, C + "upstream_rq_total") >= self.N and
                          stat(st, "http.web.downstream_rq_active") == 0, "the load to end")
        return st, stat(st, C + "upstream_rq_total") - self.N

    def test_without_a_budget_every_retry_is_made(self):
        st, extra = self.outage({"budgetPercent": 0})
        self.assertEqual(3 * self.N, extra, harness.format_stats(st))
        self.assertEqual(0, stat(st, C + "upstream_rq_retry_overflow"))
        self.assertEqual(self.N, stat(st, C + "upstream_rq_retry_limit_exceeded"))

    def test_the_budget_caps_the_extra_load(self):
        st, extra = self.outage({"budgetPercent": 20, "minRetryConcurrency": 1})
        self.assertGreater(stat(st, C + "upstream_rq_retry_overflow"), 0, harness.format_stats(st))
        self.assertEqual(extra, stat(st, C + "upstream_rq_retry"))
        # At most one or two of the ten clients' requests retrying at a time: well under one
        # retry per request on average, against three without the budget.
        self.assertLess(extra, self.N, harness.format_stats(st))


if __name__ == "__main__":
    harness.main()
