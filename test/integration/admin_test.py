"""The admin endpoint (docs/admin.md) against the real binary: every endpoint, the HTTP rules
(methods and 405 with Allow, 404 with the list, HEAD, query decoding, bounded heads and bodies,
the request timeout), the bearer token, the unix socket, and every refusal of the config.

Every wait is for an event (a log line, a stat, a closed connection) and bounded; nothing
sleeps for a fixed time, and nothing asserts on timing."""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402

EXPOSED_WARNING = "is exposed beyond this host"
TOKEN = "3f1c0b5e9a7d4c2e8b6a1f0d9c8e7b6a"  # 32 hex digits, as `openssl rand -hex 16` makes

READS = ["/stats", "/stats/prometheus", "/clusters", "/config_dump", "/listeners", "/ready",
         "/live", "/server_info", "/help"]
CHANGES = ["/healthcheck/fail", "/healthcheck/ok", "/drain_listeners", "/quitquitquit",
           "/certificates/reload"]
ALL_ENDPOINTS = READS + CHANGES + ["/logging"]

ROUTER_TYPE = harness.ROUTER_TYPE


def connect_unix(path, timeout=harness.IO_TIMEOUT):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return s


def admin_request(target, method="GET", path="/", headers=(), body=b"", raw=None, unix=None,
                  host="admin", timeout=harness.IO_TIMEOUT):
    """One request on a new admin connection (TCP address `target`, or the unix socket `unix`);
    returns the response, having checked that the admin closes the connection after it."""
    sock = connect_unix(unix, timeout) if unix else harness.connect(target, timeout=timeout)
    client = harness.HttpClient(sock) if not unix else _UnixClient(sock)
    try:
        client.send(raw if raw is not None else
                    harness.http_request(method, path, host=host, headers=headers, body=body))
        response = client.read_response(head_request=(method == "HEAD"), timeout=timeout,
                                        skip_interim=True)
        rest = client.expect_closed(timeout=timeout)
        if rest:
            raise AssertionError("admin: bytes after the response: %r" % rest[:200])
        return response
    finally:
        client.close()


class _UnixClient(harness.HttpClient):
    def __init__(self, sock):  # no TCP_NODELAY on a unix socket
        self.sock = sock
        self.buf = b""
        self.closed_how = None


class AdminCase(harness.SluiceTestCase):

    def req(self, s, method, path, **kw):
        return admin_request(s.addr("admin"), method, path, **kw)

    def get(self, s, path, **kw):
        return self.req(s, "GET", path, **kw)

    def post(self, s, path, **kw):
        return self.req(s, "POST", path, **kw)

    def get_json(self, s, path, **kw):
        r = self.get(s, path, **kw)
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("application/json", r.get("content-type"))
        return json.loads(r.body)

    def start_routed(self, origin, concurrency=1, extra_clusters=(), **kw):
        config = harness.routed_config(origin.addr[1], **kw)
        config["clusters"].extend(extra_clusters)
        return self.start_sluice(config, concurrency=concurrency)


class HttpRulesTest(AdminCase):
    """How the admin speaks HTTP: methods, 404, HEAD, the query string, the limits."""

    def test_unknown_path_is_404_listing_every_endpoint(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        for path in ["/readyz", "/", "/stats/", "/STATS"]:
            r = self.get(s, path)
            self.assertEqual(404, r.status, path)
            text = r.body.decode()
            for endpoint in ALL_ENDPOINTS:
                self.assertRegex(text, r"(GET|POST|GET\|POST) %s: " % re.escape(endpoint))
        help_page = self.get(s, "/help")
        self.assertEqual(200, help_page.status)
        self.assertIn("POST /quitquitquit: ", help_page.body.decode())
        self.stop_sluice(s)

    def test_changes_take_post_and_a_get_of_one_is_405_with_allow(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        for path in CHANGES:
            with self.subTest(path=path):
                for method in ("GET", "HEAD", "PUT", "DELETE"):
                    r = self.req(s, method, path)
                    self.assertEqual(405, r.status, (method, r.raw))
                    self.assertEqual("POST", r.get("allow"))
        # None of them acted: still serving, ready, accepting, and alive.
        self.assertEqual(200, self.get(s, "/ready").status)
        self.assertTrue(self.get_json(s, "/listeners?format=json")["listeners"][0]["accepting"])
        r = self.get(s, "/logging?level=debug")
        self.assertEqual(405, r.status)
        self.assertEqual("POST", r.get("allow"))
        self.assertEqual(b"level: info\n", self.get(s, "/logging").body)
        self.assertIsNone(s.poll())
        self.stop_sluice(s)

    def test_reads_take_get_and_head_not_post(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        for path in READS:
            with self.subTest(path=path):
                for method in ("POST", "PUT", "PATCH"):
                    r = self.req(s, method, path)
                    self.assertEqual(405, r.status, (method, r.raw))
                    self.assertEqual("GET, HEAD", r.get("allow"))
                self.assertEqual(200, self.get(s, path).status)
        self.assertEqual("GET, HEAD, POST", self.req(s, "PUT", "/logging").get("allow"))
        self.stop_sluice(s)

    def test_head_answers_the_get_head_without_a_body(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        for path in ["/ready", "/listeners", "/config_dump", "/nope"]:
            with self.subTest(path=path):
                got = self.get(s, path)
                head = self.req(s, "HEAD", path)
                self.assertEqual(got.status, head.status)
                self.assertEqual(b"", head.body)
                self.assertEqual(got.get("content-length"), head.get("content-length"))
                self.assertEqual(got.get("content-type"), head.get("content-type"))
        self.stop_sluice(s)

    def test_every_answer_closes_and_is_not_cached(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        r = self.get(s, "/stats")
        self.assertTrue(r.has_token("connection", "close"))
        self.assertEqual("no-store", r.get("cache-control"))
        self.assertEqual("nosniff", r.get("x-content-type-options"))
        self.stop_sluice(s)

    def test_query_strings_are_decoded_and_checked(self):
        s = self.start_sluice(harness.http_config(), concurrency=3)
        # ^server\.concurrency$ percent-encoded: exactly one stat.
        r = self.get(s, "/stats?filter=%5Eserver%5C.concurrency%24")
        self.assertEqual(b"server.concurrency 3\n", r.body)
        # "+" is a space; an empty parameter and stray "&" are fine.
        r = self.post(s, "/logging?&level=%64ebug&")
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(b"level: debug\n", self.get(s, "/logging").body)
        r = self.post(s, "/logging?level=de+bug")
        self.assertEqual(400, r.status)
        self.assertIn(b'"de bug"', r.body)
        for path in ["/stats?filter=%zz", "/stats?filter=%4", "/ready?%"]:
            r = self.get(s, path)
            self.assertEqual(400, r.status, path)
            self.assertIn(b"malformed query string", r.body)
        r = self.get(s, "/stats?filer=server")
        self.assertEqual(400, r.status)
        self.assertIn(b'unknown query parameter "filer"', r.body)
        self.assertIn(b"format, filter", r.body)
        r = self.get(s, "/ready?verbose")
        self.assertEqual(400, r.status)
        self.assertIn(b"it takes none", r.body)
        self.stop_sluice(s)

    def test_request_heads_and_bodies_are_bounded(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        addr = s.addr("admin")
        big = harness.http_request("GET", "/stats", host="admin",
                                   headers=[("x-pad", "a" * 9000)])
        self.assertEqual(431, admin_request(addr, raw=big).status)
        long_line = harness.http_request("GET", "/stats?filter=" + "a" * 5000, host="admin")
        self.assertEqual(414, admin_request(addr, raw=long_line).status)
        self.assertEqual(400, admin_request(addr, raw=b"GET /stats HTTP/1.1\nHost: a\n\n").status)
        self.assertEqual(400, admin_request(addr, raw=b"GET /stats HTTP/1.1\r\n\r\n").status)
        self.assertEqual(505, admin_request(addr, raw=b"GET /ready HTTP/2.0\r\nHost: a\r\n\r\n")
                         .status)
        # HTTP/1.0 needs no Host.
        r = admin_request(addr, raw=b"GET /ready HTTP/1.0\r\n\r\n")
        self.assertEqual((200, b"LIVE\n"), (r.status, r.body))
        # A body is read and ignored, up to 64 KiB, by length or chunked; more is 413.
        r = self.post(s, "/healthcheck/fail", body=b"x" * 1000)
        self.assertEqual(200, r.status, r.raw)
        r = admin_request(addr, raw=harness.http_request(
            "POST", "/healthcheck/ok", host="admin", headers=[("transfer-encoding", "chunked")],
            body=harness.chunked(b"abc", b"defg")))
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(200, self.get(s, "/ready").status)
        r = admin_request(addr, raw=harness.http_request(
            "POST", "/healthcheck/fail", host="admin", headers=[("content-length", "70000")]))
        self.assertEqual(413, r.status)
        self.assertEqual(200, self.get(s, "/ready").status)  # not acted on
        # Expect: 100-continue gets its interim answer, then the response.
        c = harness.HttpClient.connect(addr)
        self.addCleanup(c.close)
        c.send(harness.http_request("POST", "/healthcheck/ok", host="admin",
                                    headers=[("expect", "100-continue"),
                                             ("content-length", "5")]))
        self.assertEqual(100, c.read_response().status)
        c.send(b"hello")
        self.assertEqual(200, c.read_response().status)
        self.stop_sluice(s)

    def test_an_incomplete_request_gets_408_and_the_close(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        c = harness.HttpClient.connect(s.addr("admin"))
        self.addCleanup(c.close)
        c.send(b"GET /stats HTTP/1.1\r\nHost: a\r\n")  # the head never ends
        r = c.read_response(timeout=harness.IO_TIMEOUT)  # the admin's own 10s timeout
        self.assertEqual(408, r.status)
        self.assertEqual(b"", c.expect_closed())
        self.stop_sluice(s)

    def test_connections_beyond_the_limit_wait_for_room(self):
        # 64 connections at once; the 65th is served once one of them goes.
        s = self.start_sluice(harness.http_config(), concurrency=1)
        held = []
        for _ in range(64):
            c = harness.HttpClient.connect(s.addr("admin"))
            self.addCleanup(c.close)
            held.append(c)
        # The admin has accepted them all once it answers on the last one... which it cannot
        # until room is made: ask on a 65th, then close one.
        extra = harness.HttpClient.connect(s.addr("admin"))
        self.addCleanup(extra.close)
        extra.send(harness.http_request("GET", "/ready", host="admin"))
        held[0].close()
        r = extra.read_response()
        self.assertEqual(200, r.status)
        for c in held[1:]:
            c.send(harness.http_request("GET", "/ready", host="admin"))
            self.assertEqual(200, c.read_response().status)
        self.stop_sluice(s)


class EndpointsTest(AdminCase):

    def test_ready_while_serving_and_503_while_draining(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="600s")
        s = self.start_sluice(config, concurrency=2)
        # The admin answers once the main loop runs, after the workers started: at once 200.
        self.assertEqual(s.admin_get("/ready"), (200, b"LIVE\n"))
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"hold"), b"hold")

        s.send_signal(signal.SIGTERM)
        s.wait_log("draining")
        # The drain is held open by the connection: /ready says so until the exit, /stats works.
        self.assertEqual(s.admin_get("/ready"), (503, b"DRAINING\n"))
        self.assertIn("listener.l.downstream_cx_active", s.stats())
        self.assertEqual(harness.echo_roundtrip(c, b"still"), b"still")
        self.assertEqual(self.get_json(s, "/server_info")["state"], "DRAINING")
        self.assertEqual(s.admin_get("/ready"), (503, b"DRAINING\n"))
        c.close()
        self.assertEqual(s.wait_exit(), 0)

    def test_stats_text_json_and_filter(self):
        echo = self.server(harness.EchoServer)
        s = self.start_sluice(harness.tcp_proxy_config([echo.addr]), concurrency=2)
        for i in range(3):
            c = s.connect("l")
            self.assertEqual(harness.echo_roundtrip(c, b"x%d" % i), b"x%d" % i)
            c.close()
        s.wait_stats(lambda st: st["listener.l.downstream_cx_total"] == 3 and
                     st["listener.l.downstream_cx_active"] == 0, "3 connections done")
        text = harness.parse_stats(self.get(s, "/stats").body)
        doc = self.get_json(s, "/stats?format=json")
        values = {e["name"]: e["value"] for e in doc["stats"] if "value" in e}
        self.assertEqual(3, values["listener.l.downstream_cx_total"])
        self.assertEqual("counter", [e for e in doc["stats"]
                                     if e["name"] == "listener.l.downstream_cx_total"][0]["type"])
        # The same stats as the text: histograms there as name.count, .sum and quantiles.
        histograms = [e["name"] for e in doc["stats"] if e.get("type") == "histogram"]
        self.assertEqual(set(text), set(values) | {
            h + suffix for h in histograms for suffix in (".count", ".sum", ".p50", ".p90", ".p99")})
        # The filter: a partial match on the name, RE2 syntax, in both formats.
        filtered = harness.parse_stats(self.get(s, r"/stats?filter=^listener\.l\.").body)
        self.assertTrue(filtered)
        self.assertTrue(all(n.startswith("listener.l.") for n in filtered), filtered)
        self.assertEqual({n for n in text if n.startswith("listener.l.")}, set(filtered))
        doc = self.get_json(s, "/stats?format=json&filter=downstream_cx_total$")
        names = {e["name"] for e in doc["stats"]}
        self.assertIn("listener.l.downstream_cx_total", names)
        self.assertTrue(all(n.endswith("downstream_cx_total") for n in names), names)
        self.assertEqual(b"", self.get(s, "/stats?filter=no_such_stat_anywhere").body)
        # A bad regex is the client's error, said with RE2's reason.
        for bad in ["(", "a**", "[z-a]"]:
            r = self.get(s, "/stats?filter=" + bad)
            self.assertEqual(400, r.status, bad)
            self.assertIn(b"invalid filter regex", r.body)
        r = self.get(s, "/stats?filter=(")
        self.assertIn(b"missing )", r.body)
        r = self.get(s, "/stats?format=xml")
        self.assertEqual(400, r.status)
        self.stop_sluice(s)

    def test_prometheus_and_its_filter(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        r = self.get(s, "/stats/prometheus")
        self.assertEqual(200, r.status)
        self.assertEqual("text/plain; version=0.0.4; charset=utf-8", r.get("content-type"))
        everything = r.body.decode()
        self.assertIn("# TYPE ", everything)
        r = self.get(s, r"/stats/prometheus?filter=^server\.")
        self.assertEqual(200, r.status)
        samples = [l for l in r.body.decode().splitlines() if l and not l.startswith("#")]
        self.assertTrue(samples)
        for line in samples:
            self.assertRegex(line, r"^(sluice_)?server_", line)
        self.assertLess(len(r.body), len(everything))
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            text_string_to_metric_families = None
        if text_string_to_metric_families is not None:
            families = list(text_string_to_metric_families(r.body.decode()))
            self.assertTrue(families)
        r = self.get(s, "/stats/prometheus?filter=(")
        self.assertEqual(400, r.status)
        self.assertIn(b"invalid filter regex", r.body)
        self.stop_sluice(s)

    def test_clusters_hosts_weights_health_flags_and_counters(self):
        origin = self.server(harness.HttpOrigin)
        dead = harness.unused_port()
        checked_dead = harness.unused_port()
        router = {"@type": ROUTER_TYPE, "virtualHosts": [
            {"name": "v", "domains": ["*"], "routes": [{"route": {"cluster": "pool"}}]}]}
        config = harness.http_config([harness.http_listener(
            "web", hcm={"maxRequestsPerConnection": 100000},
            filters=[{"plugin": {"filter": "router", "typedConfig": router}}])])
        config["clusters"] = [
            {"name": "pool", "connectTimeout": "5s",
             "outlierDetection": {"consecutive5xx": 0, "consecutiveGatewayFailure": 1,
                                  "baseEjectionTime": "300s"},
             "endpoints": [{"address": {"address": "127.0.0.1", "port": origin.addr[1]},
                            "weight": 3},
                           {"address": {"address": "127.0.0.1", "port": dead}}]},
            {"name": "checked", "connectTimeout": "1s",
             "healthChecks": [{"timeout": "1s", "interval": "100ms",
                               "unhealthyThreshold": 1, "healthyThreshold": 1,
                               "tcpHealthCheck": {}}],
             "endpoints": [{"address": {"address": "127.0.0.1", "port": checked_dead}}]},
        ]
        s = self.start_sluice(config, concurrency=1)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        pool_dead = "127.0.0.1:%d" % dead
        pool_good = "127.0.0.1:%d" % origin.addr[1]

        def host(doc, cluster, address):
            cl = [x for x in doc["clusters"] if x["name"] == cluster][0]
            return [h for h in cl["hosts"] if h["address"] == address][0]

        # Requests until the dead host is ejected (one refused connect does it).
        for _ in range(50):
            c.send(harness.http_request("GET", "/"))
            c.read_response()
            doc = self.get_json(s, "/clusters?format=json")
            if not host(doc, "pool", pool_dead)["healthy"]:
                break
        else:
            self.fail("the dead host was never ejected: %r" % doc)
        h = host(doc, "pool", pool_dead)
        self.assertEqual(["failed_outlier_check"], h["health_flags"])
        self.assertGreaterEqual(h["stats"]["cx_connect_fail"], 1)
        good = host(doc, "pool", pool_good)
        self.assertEqual((3, True, []), (good["weight"], good["healthy"], good["health_flags"]))
        # Known traffic, now all to the good host: its counters move by exactly that.
        before = good["stats"]["rq_total"]
        for _ in range(7):
            c.send(harness.http_request("GET", "/"))
            self.assertEqual(200, c.read_response().status)
        doc = self.get_json(s, "/clusters?format=json")
        self.assertEqual(before + 7, host(doc, "pool", pool_good)["stats"]["rq_total"])
        self.assertEqual(0, host(doc, "pool", pool_good)["stats"]["rq_active"])
        self.assertIn("outlier.consecutive_gateway_failure", h["stats"])
        pool = [x for x in doc["clusters"] if x["name"] == "pool"][0]
        self.assertEqual(("STATIC", "ROUND_ROBIN"), (pool["type"], pool["lb_policy"]))
        # The health-checked cluster: its host fails its first check.
        harness.wait_until(
            lambda: host(self.get_json(s, "/clusters?format=json"), "checked",
                         "127.0.0.1:%d" % checked_dead)["health_flags"] == ["failed_active_hc"],
            "the checked host to fail its health check")
        # The text form: Envoy's cluster::host::field::value lines.
        text = self.get(s, "/clusters").body.decode()
        self.assertIn("pool::%s::weight::3\n" % pool_good, text)
        self.assertIn("pool::%s::health_flags::healthy\n" % pool_good, text)
        self.assertIn("pool::%s::health_flags::/failed_outlier_check\n" % pool_dead, text)
        self.assertIn("checked::127.0.0.1:%d::health_flags::/failed_active_hc\n" % checked_dead,
                      text)
        self.assertRegex(text, r"pool::%s::rq_total::%d\n" % (re.escape(pool_good), before + 7))
        self.assertIn("pool::hosts::2\n", text)
        self.assertEqual(400, self.get(s, "/clusters?format=yaml").status)
        self.stop_sluice(s)

    def test_listeners_text_and_json(self):
        config = harness.http_config([harness.http_listener("web"), harness.http_listener("api")])
        s = self.start_sluice(config, concurrency=1)
        text = self.get(s, "/listeners").body.decode()
        for name in ("web", "api"):
            self.assertIn("%s::127.0.0.1:%d\n" % (name, s.addr(name)[1]), text)
        doc = self.get_json(s, "/listeners?format=json")
        self.assertEqual(
            [{"name": n, "address": "127.0.0.1:%d" % s.addr(n)[1], "accepting": True}
             for n in ("web", "api")], doc["listeners"])
        self.stop_sluice(s)

    def test_server_info(self):
        s = self.start_sluice(harness.http_config(), concurrency=2)
        info = self.get_json(s, "/server_info")
        version = harness.run_cli(["--version"]).stdout.split()[1]
        self.assertEqual(version, info["version"])
        self.assertEqual("LIVE", info["state"])
        self.assertEqual(2, info["concurrency"])
        self.assertEqual(s.config_path, info["config_path"])
        self.assertEqual(s.cmd, info["command_line"])
        self.assertEqual({"config": s.config_path, "concurrency": 2, "ports_file": s.ports_path},
                         info["command_line_options"])
        self.assertEqual(s.pid, info["pid"])
        self.assertEqual("info", info["log_level"])
        self.assertGreaterEqual(info["uptime_seconds"], 0)
        self.assertRegex(info["start_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertTrue(info["accepting"])
        self.stop_sluice(s)

    def test_healthcheck_fail_and_ok(self):
        echo = self.server(harness.EchoServer)
        s = self.start_sluice(harness.tcp_proxy_config([echo.addr]), concurrency=1)
        self.assertEqual((200, b"LIVE\n"), s.admin_get("/ready"))
        r = self.post(s, "/healthcheck/fail")
        self.assertEqual((200, b"OK\n"), (r.status, r.body))
        self.assertEqual((503, b"HEALTH_CHECK_FAILED\n"), s.admin_get("/ready"))
        self.assertEqual("HEALTH_CHECK_FAILED", self.get_json(s, "/server_info")["state"])
        # Only the answer to the load balancer changes: traffic is served as before.
        c = self.client(s)
        self.assertEqual(b"ping", harness.echo_roundtrip(c, b"ping"))
        self.assertEqual(200, self.post(s, "/healthcheck/fail").status)  # twice is fine
        self.assertEqual(200, self.post(s, "/healthcheck/ok").status)
        self.assertEqual((200, b"LIVE\n"), s.admin_get("/ready"))
        s.wait_log("health check set to fail")
        s.wait_log("health check set to pass again")
        self.stop_sluice(s)

    def test_drain_listeners_closes_keepalive_connections_and_the_process_stays_up(self):
        s = self.start_sluice(harness.http_config(drain_timeout="600s"), concurrency=2)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", "/"))
        r = c.read_response()
        self.assertEqual(200, r.status)
        self.assertFalse(r.has_token("connection", "close"))
        r = self.post(s, "/drain_listeners")
        self.assertEqual((200, b"OK: listeners stopped, connections draining\n"),
                         (r.status, r.body))
        # The idle keep-alive connection is closed, politely (no reset, nothing sent).
        self.assertEqual(b"", c.expect_closed())
        self.assertEqual("eof", c.closed_how)
        # New connections are refused once every worker has stopped polling.
        harness.wait_until(lambda: harness.connect_refused(s.addr("web")),
                           "the listener to refuse connections")
        self.assertEqual((503, b"DRAINING\n"), s.admin_get("/ready"))
        self.assertFalse(self.get_json(s, "/listeners?format=json")["listeners"][0]["accepting"])
        self.assertFalse(self.get_json(s, "/server_info")["accepting"])
        s.wait_stats(lambda st: st["listener.web.downstream_cx_active"] == 0,
                     "the connection to be gone")
        self.assertIsNone(s.poll())
        r = self.post(s, "/drain_listeners")
        self.assertEqual(b"OK: the listeners had stopped already\n", r.body)
        # The process is up until told to stop; then it exits as usual.
        self.assertIsNone(s.poll())
        self.stop_sluice(s)

    def test_quitquitquit_drains_and_exits_0(self):
        s = self.start_sluice(harness.http_config(), concurrency=2)
        self.assertEqual(405, self.get(s, "/quitquitquit").status)
        self.assertIsNone(s.poll())
        r = self.post(s, "/quitquitquit")
        self.assertEqual((200, b"OK: draining, then exiting\n"), (r.status, r.body))
        self.assertEqual(0, s.wait_exit())
        self.assertIn("draining: no new connections", s.log_text())
        self.assertIn("sluice exited cleanly", s.log_text())

    def test_logging_level_changes_what_the_process_logs(self):
        s = self.start_sluice(harness.http_config(), concurrency=2, log_level="info")
        bad_request = b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n"

        def bad_on_worker():
            c = harness.HttpClient.connect(s.addr("web"))
            try:
                c.send(bad_request)
                self.assertEqual(400, c.read_response().status)
            finally:
                c.close()

        self.assertEqual(b"level: info\n", self.get(s, "/logging").body)
        # At info: neither the admin's request lines nor a worker's debug lines.
        self.get(s, "/stats?filter=marker_one")
        bad_on_worker()
        r = self.post(s, "/logging?level=debug")
        self.assertEqual((200, b"level: debug (was info)\n"), (r.status, r.body))
        at = s.wait_log("admin: log level changed from info to debug")
        # The admin logs each request at debug, before it answers: the line is there now.
        self.get(s, "/stats?filter=marker_two")
        s.wait_log("admin: GET /stats?filter=marker_two -> 200", after=at)
        # The workers see the new level (their protocol errors are debug lines).
        bad_on_worker()
        s.wait_log("HTTP/1 protocol error 400", after=at)
        self.assertEqual("debug", self.get_json(s, "/server_info")["log_level"])
        # Down to warn: the next admin request is not logged; the change back is (at warn).
        self.post(s, "/logging?level=warn")
        self.get(s, "/stats?filter=marker_three")
        self.post(s, "/logging?level=info")
        s.wait_log("admin: log level changed from warn to info")
        text = s.log_text()
        self.assertNotIn("marker_one", text)
        self.assertNotIn("marker_three", text)
        self.assertEqual(1, text.count("HTTP/1 protocol error 400"))
        # Refusals.
        for path, why in [("/logging?level=loud", b'unknown level "loud"'),
                          ("/logging", b"missing ?level="),
                          ("/logging?lvl=debug", b"unknown query parameter")]:
            r = self.post(s, path)
            self.assertEqual(400, r.status, path)
            self.assertIn(why, r.body)
        self.assertEqual(b"level: info\n", self.get(s, "/logging").body)
        self.stop_sluice(s)

    def test_certificates_reload(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        self.assertEqual(405, self.get(s, "/certificates/reload").status)
        r = self.post(s, "/certificates/reload")
        self.assertEqual((200, b"reloaded 0 TLS context(s)\n"), (r.status, r.body))
        self.stop_sluice(s)


class ConfigDumpTest(AdminCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("admin-root")
        cls.inline_cert = cls.pki.server_cert(cls.root, ["inline.test"])
        cls.file_cert = cls.pki.server_cert(cls.root, ["file.test"], key="rsa")

    def test_config_dump_shows_the_config_with_its_secrets_redacted(self):
        with open(self.inline_cert.key) as f:
            inline_key = f.read()
        with open(self.inline_cert.chain) as f:
            inline_chain = f.read()
        with open(self.file_cert.key) as f:
            file_key = f.read()
        ticket_key = "T" * 40 + "K" * 40  # 80 bytes: name, HMAC and AES keys
        hcm = {"httpFilters": [harness.direct_response_filter()]}
        config = harness.http_config()
        listener = config["listeners"][0]
        listener.pop("filters")
        listener["filterChains"] = [{
            "tlsContext": {
                "commonTlsContext": {"tlsCertificates": [
                    {"certificateChain": {"inlineString": inline_chain},
                     "privateKey": {"inlineString": inline_key}},
                    {"certificateChain": {"filename": self.file_cert.chain},
                     "privateKey": {"filename": self.file_cert.key}}]},
                "sessionTicketKeys": [{"inlineString": ticket_key}]},
            "filters": [{"httpConnectionManager": hcm}]}]
        config["admin"]["bearerToken"] = {"inlineString": TOKEN}
        s = self.start_sluice(config, concurrency=1)
        auth = [("authorization", "Bearer " + TOKEN)]
        r = self.get(s, "/config_dump", headers=auth)
        self.assertEqual(200, r.status, r.raw)
        body = r.body.decode()
        # No secret in any form: not the PEM keys (inline or the file's), nor any line of them,
        # not the ticket key, not the token.
        key_lines = [l for l in (inline_key + file_key).splitlines()
                     if l and not l.startswith("-----")]
        self.assertTrue(key_lines)
        for secret in [inline_key, file_key, "PRIVATE KEY", ticket_key, TOKEN] + key_lines:
            self.assertNotIn(secret, body)
        doc = json.loads(body)["bootstrap"]
        chain = doc["listeners"][0]["filter_chains"][0]["tls_context"]
        certs = chain["common_tls_context"]["tls_certificates"]
        self.assertEqual({"inline_string": "[redacted]"}, certs[0]["private_key"])
        self.assertEqual({"inline_string": inline_chain}, certs[0]["certificate_chain"])
        # A file name says where a key is: shown.
        self.assertEqual({"filename": self.file_cert.key}, certs[1]["private_key"])
        self.assertEqual([{"inline_string": "[redacted]"}], chain["session_ticket_keys"])
        self.assertEqual({"inline_string": "[redacted]"}, doc["admin"]["bearer_token"])
        # The rest is the config as loaded (snake_case, as a YAML config writes it).
        self.assertEqual("web", doc["listeners"][0]["name"])
        self.assertEqual("5s", doc["drain_timeout"])
        self.stop_sluice(s)


class AccessTest(AdminCase):
    """The bearer token, the unix socket, and what the config refuses."""

    def token_config(self, token=None, **admin):
        config = harness.http_config()
        config["admin"].update(admin)
        if token is not None:
            config["admin"]["bearerToken"] = {"inlineString": token}
        return config

    def test_a_bearer_token_is_required_on_every_request(self):
        s = self.start_sluice(self.token_config(TOKEN), concurrency=1)
        self.assertIn("(bearer token required)", s.log_text())
        for headers in [(), [("authorization", "Bearer wrong-token-0123456789")],
                        [("authorization", "Bearer " + TOKEN[:-1])],
                        [("authorization", "Bearer " + TOKEN + "0")],
                        [("authorization", "Basic " + TOKEN)],
                        [("authorization", TOKEN)],
                        [("authorization", "Bearer")],
                        [("authorization", "Bearer " + TOKEN), ("authorization", "Bearer " + TOKEN)]]:
            for method, path in [("GET", "/stats"), ("GET", "/ready"), ("GET", "/nope"),
                                 ("POST", "/quitquitquit"), ("POST", "/healthcheck/fail")]:
                r = self.req(s, method, path, headers=headers)
                self.assertEqual(401, r.status, (headers, path))
                self.assertEqual('Bearer realm="sluice admin"', r.get("www-authenticate"))
                self.assertNotIn(b"/stats", r.body)  # no list of endpoints for strangers
        self.assertIsNone(s.poll())
        for scheme in ("Bearer", "bearer", "BEARER"):
            r = self.get(s, "/ready", headers=[("authorization", "%s %s" % (scheme, TOKEN))])
            self.assertEqual((200, b"LIVE\n"), (r.status, r.body))
        r = self.post(s, "/quitquitquit", headers=[("authorization", "Bearer " + TOKEN)])
        self.assertEqual(200, r.status)
        self.assertEqual(0, s.wait_exit())

    def test_a_bearer_token_from_a_file(self):
        path = os.path.join(self.tmpdir, "admin.token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")  # as `echo` writes it
        config = harness.http_config()
        config["admin"]["bearerToken"] = {"filename": path}
        s = self.start_sluice(config, concurrency=1)
        self.assertEqual(401, self.get(s, "/ready").status)
        r = self.get(s, "/ready", headers=[("authorization", "Bearer " + TOKEN)])
        self.assertEqual(200, r.status)
        dump = self.get(s, "/config_dump", headers=[("authorization", "Bearer " + TOKEN)])
        self.assertIn(path.encode(), dump.body)
        self.assertNotIn(TOKEN.encode(), dump.body)
        self.stop_sluice(s)

    def validate(self, config):
        path = harness.write_config(config, self.tmpdir, "validate.json")
        return harness.run_cli(["--mode", "validate", "-c", path])

    def assert_refused(self, config, *needles):
        r = self.validate(config)
        self.assertEqual(1, r.returncode, r.stdout + r.stderr)
        for needle in needles:
            self.assertIn(needle, r.stderr)
        # And a start is refused the same way.
        s = self.start_sluice(config, wait=False, concurrency=1)
        self.assertEqual(1, s.wait_exit())
        for needle in needles:
            self.assertIn(needle, s.log_text())

    def test_bad_tokens_are_refused(self):
        self.assert_refused(self.token_config("short-token"), "admin.bearer_token.inline_string",
                            "at least 16 characters")
        self.assert_refused(self.token_config("has space in the middle of it"),
                            "admin.bearer_token.inline_string", "RFC 6750")
        self.assert_refused(self.token_config("=" * 20), "admin.bearer_token.inline_string")
        path = os.path.join(self.tmpdir, "short.token")
        with open(path, "w") as f:
            f.write("abc\n")
        config = harness.http_config()
        config["admin"]["bearerToken"] = {"filename": path}
        self.assert_refused(config, "admin.bearer_token.filename (%s)" % path,
                            "at least 16 characters")
        config["admin"]["bearerToken"] = {"filename": os.path.join(self.tmpdir, "missing")}
        self.assert_refused(config, "admin.bearer_token: cannot open")
        # base64 with padding is a token.
        r = self.validate(self.token_config("dGhpcyBpcyBhIHRva2Vu/+.~_-=="))
        self.assertEqual(0, r.returncode, r.stderr)

    def test_beyond_loopback_needs_a_token_or_an_explicit_allowance(self):
        address = {"address": "0.0.0.0", "port": 0}
        self.assert_refused(self.token_config(address=address), "admin.address",
                            "not a loopback address", "allow_unauthenticated_remote")
        self.assert_refused(self.token_config(address={"address": "::", "port": 0}),
                            "not a loopback address")
        for ok in [self.token_config(TOKEN, address=address),
                   self.token_config(address=address, allowUnauthenticatedRemote=True),
                   self.token_config(address={"address": "127.0.0.2", "port": 0}),
                   self.token_config(address={"address": "::1", "port": 0})]:
            r = self.validate(ok)
            self.assertEqual(0, r.returncode, r.stderr)
        self.assert_refused({"listeners": [harness.http_listener()],
                             "admin": {"allowUnauthenticatedRemote": True}},
                            "allow_unauthenticated_remote", "has no meaning without")

    def start_with_admin_on(self, host, **admin):
        config = harness.http_config()
        config["admin"] = dict({"address": {"address": host, "port": 0}}, **admin)
        s = self.start_sluice(config, concurrency=1)
        self.assertEqual(s.addr("admin")[0], host)
        return s

    def test_admin_beyond_loopback_without_a_token_warns(self):
        # The wildcard address: only listening (port 0), nothing is sent off this host.
        s = self.start_with_admin_on("0.0.0.0", allowUnauthenticatedRemote=True)
        line = [l for l in s.log_text().splitlines() if EXPOSED_WARNING in l][0]
        self.assertIn("0.0.0.0:%d" % s.addr("admin")[1], line)
        self.assertIn("no authentication", line)
        self.stop_sluice(s)
        # With a token, no warning.
        s = self.start_with_admin_on("0.0.0.0", bearerToken={"inlineString": TOKEN})
        self.assertNotIn(EXPOSED_WARNING, s.log_text())
        self.stop_sluice(s)

    def test_admin_on_loopback_does_not_warn(self):
        hosts = ["127.0.0.1", "127.0.0.2"]  # all of 127.0.0.0/8 is loopback
        if harness.have_ipv6_loopback():
            hosts.append("::1")
        for host in hosts:
            with self.subTest(host=host):
                s = self.start_with_admin_on(host)
                self.assertEqual(s.admin_get("/ready")[0], 200)
                self.stop_sluice(s)
                self.assertIn("admin on", s.log_text())
                self.assertNotIn(EXPOSED_WARNING, s.log_text())

    def unix_config(self, path, mode=None, token=None):
        config = harness.http_config()
        config["admin"] = {"unixSocket": {"path": path}}
        if mode is not None:
            config["admin"]["unixSocket"]["mode"] = mode
        if token is not None:
            config["admin"]["bearerToken"] = {"inlineString": token}
        return config

    def curl_unix(self, path, target, *args):
        r = subprocess.run(["curl", "-sS", "-i", "--max-time", "30", "--unix-socket", path]
                           + list(args) + ["http://admin" + target],
                           capture_output=True, timeout=harness.IO_TIMEOUT + 5)
        self.assertEqual(0, r.returncode, r.stderr)
        return r.stdout

    def test_unix_socket(self):
        path = os.path.join(self.tmpdir, "admin.sock")
        s = self.start_sluice(self.unix_config(path), concurrency=1)
        self.assertNotIn("admin", s.ports)  # no TCP address
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        self.assertEqual(0o600, stat.S_IMODE(os.lstat(path).st_mode))
        out = self.curl_unix(path, "/ready")
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        self.assertTrue(out.endswith(b"\r\n\r\nLIVE\n"), out)
        out = self.curl_unix(path, "/stats?filter=server.concurrency")
        self.assertTrue(out.endswith(b"\r\n\r\nserver.concurrency 1\n"), out)
        out = self.curl_unix(path, "/healthcheck/fail", "-X", "POST")
        self.assertIn(b" 200 OK", out)
        self.assertEqual(503, admin_request(None, "GET", "/ready", unix=path).status)
        self.assertIn(b" 405 ", self.curl_unix(path, "/quitquitquit"))
        self.stop_sluice(s)
        self.assertFalse(os.path.exists(path), "the socket file is removed at exit")

    def test_unix_socket_mode_token_and_stale_file(self):
        path = os.path.join(self.tmpdir, "a.sock")
        # A stale socket file, left by a process that is gone: replaced.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        s = self.start_sluice(self.unix_config(path, mode="0660", token=TOKEN), concurrency=1)
        self.assertEqual(0o660, stat.S_IMODE(os.lstat(path).st_mode))
        self.assertIn(b" 401 ", self.curl_unix(path, "/ready"))
        out = self.curl_unix(path, "/ready", "-H", "Authorization: Bearer " + TOKEN)
        self.assertIn(b" 200 OK", out)
        # A second process on the same path: refused, and the first keeps its socket.
        other = self.start_sluice(self.unix_config(path), wait=False, concurrency=1)
        self.assertEqual(1, other.wait_exit())
        self.assertIn("another process listens on this socket", other.log_text())
        self.assertIn(b" 200 OK", self.curl_unix(path, "/ready", "-H",
                                                 "Authorization: Bearer " + TOKEN))
        self.stop_sluice(s)
        # Not a socket: never replaced.
        with open(path, "w") as f:
            f.write("precious")
        other = self.start_sluice(self.unix_config(path), wait=False, concurrency=1)
        self.assertEqual(1, other.wait_exit())
        self.assertIn("exists and is not a socket", other.log_text())
        with open(path) as f:
            self.assertEqual("precious", f.read())

    def test_unix_socket_config_refusals(self):
        self.assert_refused(self.unix_config(""), "admin.unix_socket.path", "required")
        self.assert_refused(self.unix_config("/tmp/" + "x" * 120), "admin.unix_socket.path",
                            "must be shorter than 108")
        self.assert_refused(self.unix_config("@abstract"), "abstract sockets")
        for mode in ["0800", "rw-------", "01777", "9"]:
            self.assert_refused(self.unix_config(os.path.join(self.tmpdir, "m.sock"), mode=mode),
                                "admin.unix_socket.mode")

    def test_the_example_config(self):
        # configs/admin.yaml with its ports, paths and token file made local.
        with open(os.path.join(harness.repo_root(), "configs", "admin.yaml")) as f:
            text = f.read()
        sock = os.path.join(self.tmpdir, "admin.sock")
        token_file = os.path.join(self.tmpdir, "admin.token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        for old, new in [("port: 8000", "port: 0"), ("port: 9901", "port: 0"),
                         ("/run/sluice/admin.sock", sock),
                         ("filename: admin.token", "filename: " + token_file)]:
            self.assertIn(old, text)
            text = text.replace(old, new)
        s = self.start_sluice(text, concurrency=1)
        auth = [("authorization", "Bearer " + TOKEN)]
        self.assertEqual(401, self.get(s, "/ready").status)
        self.assertEqual(200, self.get(s, "/ready", headers=auth).status)
        r = admin_request(None, "GET", "/ready", unix=sock, headers=auth)
        self.assertEqual((200, b"LIVE\n"), (r.status, r.body))
        self.assertEqual(0o660, stat.S_IMODE(os.lstat(sock).st_mode))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", "/"))
        self.assertEqual(200, c.read_response().status)
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
