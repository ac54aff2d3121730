"""STRICT_DNS clusters against a real DNS server on loopback (harness.DnsServer, asked through
the cluster's dns_resolvers) and real origins on 127.0.0.2 and 127.0.0.3 sharing a port: hosts
follow the DNS, requests in flight to a host that left finish, failed lookups keep the hosts,
a name without an answer at startup leaves the cluster empty (503) until it resolves."""

import harness
from harness import http_request as req

ROUTER = "type.googleapis.com/sluice.extensions.router.v1.Router"
NAME = "svc.sluice.test"


class DnsClusterTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.dns = harness.DnsServer()
        self.addCleanup(self.dns.close)
        # Two origins on one port, at two loopback addresses: only the DNS tells them apart.
        for _ in range(20):
            a = harness.HttpOrigin("a", host="127.0.0.2")
            try:
                b = harness.HttpOrigin("b", host="127.0.0.3", port=a.addr[1])
                break
            except OSError:
                a.close()
        else:
            self.fail("no port free on both 127.0.0.2 and 127.0.0.3")
        self.a, self.b = a, b
        self.addCleanup(a.close)
        self.addCleanup(b.close)

    def start(self, cluster_extra=None):
        router = {"@type": ROUTER, "virtualHosts": [{"name": "v", "domains": ["*"], "routes": [
            {"route": {"cluster": "svc", "timeout": "10s"}}]}]}
        listener = harness.http_listener(
            "web", filters=[{"plugin": {"filter": "router", "typedConfig": router}}])
        cfg = harness.http_config([listener])
        # The TCP proxy picks from the same host set.
        cfg["listeners"].append({"name": "tcp", "address": {"address": "127.0.0.1", "port": 0},
                                 "filters": [{"tcpProxy": {"cluster": "svc"}}]})
        cluster = {"name": "svc", "type": "STRICT_DNS", "dnsRefreshRate": "0.1s",
                   "dnsLookupFamily": "V4_ONLY",
                   "dnsResolvers": [{"address": "127.0.0.1", "port": self.dns.addr[1]}],
                   "endpoints": [{"address": {"address": NAME, "port": self.a.addr[1]}}]}
        cluster.update(cluster_extra or {})
        cfg["clusters"] = [cluster]
        return self.start_sluice(cfg, concurrency=2)

    def get(self, s, path="/"):
        c = harness.HttpClient.connect(s.addr("web"))
        try:
            c.send(req("GET", path))
            return c.read_response()
        finally:
            c.close()

    def served_by(self, s, n=8):
        names = set()
        for i in range(n):
            r = self.get(s, "/n/%d" % i)
            self.assertEqual(200, r.status, r.raw)
            names.add(r.get("x-origin-name"))
        return names

    def wait_hosts(self, s, changes, total):
        s.wait_stats(lambda st: st.get("cluster.svc.membership_change") == changes and
                     st.get("cluster.svc.membership_total") == total,
                     "%d host set changes, %d hosts" % (changes, total))

    def test_hosts_follow_the_dns(self):
        self.dns.set(NAME, ["127.0.0.2"])
        s = self.start()
        # The listeners opened after the first answer: no request finds the cluster empty.
        self.assertEqual({"a"}, self.served_by(s))
        self.dns.set(NAME, ["127.0.0.3"])
        self.wait_hosts(s, 2, 1)
        self.assertEqual({"b"}, self.served_by(s))
        self.dns.set(NAME, ["127.0.0.3", "127.0.0.2"])
        self.wait_hosts(s, 3, 2)
        self.assertEqual({"a", "b"}, self.served_by(s))
        stats = s.stats()
        self.assertEqual(0, harness.stat(stats, "cluster.svc.update_failure"))
        self.assertEqual(0, harness.stat(stats, "cluster.svc.upstream_rq_no_host"))

    def test_a_request_in_flight_to_a_host_that_left_finishes(self):
        self.dns.set(NAME, ["127.0.0.2"])
        s = self.start()
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/slow/1"))  # a answers after 2 s
        self.dns.set(NAME, ["127.0.0.3"])
        self.wait_hosts(s, 2, 1)
        r = c.read_response()
        self.assertEqual(200, r.status)
        self.assertEqual("a", r.get("x-origin-name"))
        self.assertEqual({"b"}, self.served_by(s))

    def test_failed_lookups_keep_the_hosts(self):
        self.dns.set(NAME, ["127.0.0.2"])
        s = self.start()
        before = s.stats()["cluster.svc.update_failure"]
        self.dns.mode = "servfail"
        s.wait_stats(lambda st: st["cluster.svc.update_failure"] >= before + 2,
                     "failed lookups counted")
        self.assertEqual({"a"}, self.served_by(s))
        self.assertEqual(1, s.stats()["cluster.svc.membership_total"])
        self.dns.mode = "answer"
        self.dns.set(NAME, ["127.0.0.3"])
        self.wait_hosts(s, 2, 1)
        self.assertEqual({"b"}, self.served_by(s))

    def test_no_answer_at_startup_then_recovery(self):
        # NXDOMAIN: sluice starts anyway, the cluster empty; its requests get 503.
        s = self.start()
        r = self.get(s)
        self.assertEqual(503, r.status)
        self.assertIn(b"no_healthy_upstream", r.body)
        self.assertEqual(1, s.stats()["cluster.svc.upstream_rq_no_host"])
        self.dns.set(NAME, ["127.0.0.2"])
        self.wait_hosts(s, 1, 1)
        self.assertEqual({"a"}, self.served_by(s))

    def tcp_get(self, s):
        c = harness.HttpClient.connect(s.addr("tcp"))
        try:
            c.send(req("GET", "/tcp", headers=[("Connection", "close")]))
            responses, _, _ = c.read_until_closed()
            return responses
        finally:
            c.close()

    def test_the_tcp_proxy_follows_the_dns_too(self):
        s = self.start()
        # No hosts yet: the connection is closed at once, nothing sent.
        self.assertEqual([], self.tcp_get(s))
        self.dns.set(NAME, ["127.0.0.3"])
        self.wait_hosts(s, 1, 1)
        [r] = self.tcp_get(s)
        self.assertEqual("b", r.get("x-origin-name"))

    def test_a_name_that_stops_existing_empties_the_cluster(self):
        self.dns.set(NAME, ["127.0.0.2"])
        s = self.start()
        self.assertEqual({"a"}, self.served_by(s))
        self.dns.set(NAME, None)
        self.wait_hosts(s, 2, 0)
        self.assertEqual(503, self.get(s).status)

    def test_respect_dns_ttl_looks_up_less_often(self):
        self.dns.set(NAME, ["127.0.0.2"])
        self.dns.ttl = 3600
        s = self.start({"respectDnsTtl": True})
        queries = self.dns.queries
        # With the 0.1 s refresh rate there would be dozens of lookups in the time these
        # requests take; with the TTL, none.
        self.assertEqual({"a"}, self.served_by(s, n=20))
        self.assertEqual(1, s.stats()["cluster.svc.update_attempt"])
        self.assertEqual(queries, self.dns.queries)

    def test_config_errors(self):
        cases = [
            ({"endpoints": [{"address": {"address": "bad_name!", "port": 80}}]},
             "clusters[0].endpoints[0].address.address"),
            ({"endpoints": [{"address": {"address": NAME, "port": 0}}]},
             "clusters[0].endpoints[0].address.port"),
            ({"dnsRefreshRate": "0.001s"}, "clusters[0].dns_refresh_rate"),
            ({"type": "STATIC"}, "clusters[0].type"),  # dns_* settings on a static cluster
        ]
        for extra, where in cases:
            with self.subTest(where=where):
                cluster = {"name": "svc", "type": "STRICT_DNS",
                           "dnsResolvers": [{"address": "127.0.0.1", "port": 53}],
                           "endpoints": [{"address": {"address": NAME, "port": 80}}]}
                cluster.update(extra)
                cfg = harness.http_config([harness.http_listener(
                    "web", filters=[harness.direct_response_filter()])])
                cfg["clusters"] = [cluster]
                path = harness.write_config(cfg, self.tmpdir)
                out = harness.run_cli(["--mode", "validate", "-c", path])
                self.assertNotEqual(0, out.returncode)
                self.assertIn(where, out.stderr)


if __name__ == "__main__":
    harness.main()
