#!/usr/bin/env python3
"""Stats after known traffic, read back exactly: /stats (text) and /stats/prometheus (read by
Prometheus' own parser, python3-prometheus-client), through the real binary with two workers (each
counts in its own slot; the admin merges them), a real origin, and the router plugin.

What is checked: the listener's, the connection manager's, the cluster's, the host's and the
route's counts (requests by response class, connections, per-worker connection counts that sum
to the listener's), the request-time histograms (one sample per request, cumulative buckets),
the families and labels Prometheus sees (the tag values out of the names: a cluster named with
dots stays one label), and that every counter and gauge of the text format is one sample of the
exposition."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

CLUSTER = "back.end"  # dots in a name: one tag value, never split


class StatsTest(harness.SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)
        cfg = harness.routed_config(self.origin.addr[1], cluster=CLUSTER)
        self.s = self.start_sluice(cfg, concurrency=2)

    def traffic(self):
        """7 x 200, 1 x 302, 2 x 404, 3 x 503 over 5 connections, every response read."""
        plan = [200] * 7 + [302] + [404] * 2 + [503] * 3
        conns = [harness.HttpClient.connect(self.s.addr("web")) for _ in range(5)]
        for i, code in enumerate(plan):
            c = conns[i % len(conns)]
            c.send(req("GET", "/status/%d" % code))
            self.assertEqual(code, c.read_response().status)
        for c in conns:
            c.close()
        return plan, len(conns)

    def settled_traffic(self):
        """traffic(), then the stats once every request's end is counted and every connection
        closed: (connections, the origin's "ip:port", stats)."""
        plan, conns = self.traffic()
        st = self.s.wait_stats(
            lambda st: st.get("http.web.downstream_rq_time.count") == len(plan) and
            st.get("listener.web.downstream_cx_active") == 0,
            "every request's end counted and every connection closed")
        return conns, "%s:%d" % self.origin.addr, st

    def test_text_counts_are_exact(self):
        conns, host, st = self.settled_traffic()
        expect = {
            "http.web.downstream_rq_total": 13,
            "http.web.downstream_rq_2xx": 7,
            "http.web.downstream_rq_3xx": 1,
            "http.web.downstream_rq_4xx": 2,
            "http.web.downstream_rq_5xx": 3,
            "http.web.downstream_rq_active": 0,
            "listener.web.downstream_cx_total": conns,
            "cluster.back.end.upstream_rq_total": 13,
            "cluster.back.end.upstream_rq_2xx": 7,
            "cluster.back.end.upstream_rq_3xx": 1,
            "cluster.back.end.upstream_rq_4xx": 2,
            "cluster.back.end.upstream_rq_5xx": 3,
            "cluster.back.end.upstream_rq_time.count": 13,
            "cluster.back.end.host.%s.rq_total" % host: 13,
            "cluster.back.end.host.%s.rq_active" % host: 0,
            "cluster.back.end.host.%s.rq_error" % host: 0,
            "cluster.back.end.host.%s.cx_total" % host: self.origin.connections,
            # The router names its routes "<virtual host>/<route name or index>".
            "route.v/0.rq_total": 13,
            "route.v/0.rq_2xx": 7,
            "route.v/0.rq_3xx": 1,
            "route.v/0.rq_4xx": 2,
            "route.v/0.rq_5xx": 3,
            "route.v/0.rq_time.count": 13,
        }
        got = {k: st.get(k) for k in expect}
        self.assertEqual(expect, got, harness.format_stats(st))
        # Each worker counts its own accepts; they sum to the listener's.
        per_worker = [st.get("listener.web.worker.%d.downstream_cx_total" % w, 0) for w in (0, 1)]
        self.assertEqual(conns, sum(per_worker), harness.format_stats(st))

    def test_prometheus_families_and_labels(self):
        conns, host, st = self.settled_traffic()
        code, body = self.s.admin_get("/stats/prometheus")
        self.assertEqual(200, code)
        families = {f.name: f for f in harness.parse_prometheus(body.decode())}

        def sample(family, suffix="", **labels):
            f = families[family]
            found = [s.value for s in f.samples
                     if s.name == family + suffix and s.labels == labels]
            self.assertEqual(1, len(found), "%s%s%s in %s" % (family, suffix, labels, f.samples))
            return found[0]

        def counter(name, **labels):
            # The parser files a counter under its name without "_total" and names its
            # sample with it (OpenMetrics' rule), whether or not the exposition had it.
            family = name[:-len("_total")] if name.endswith("_total") else name
            self.assertEqual("counter", families[family].type, family)
            return sample(family, "_total", **labels)

        for klass, n in (("2", 7), ("3", 1), ("4", 2), ("5", 3)):
            self.assertEqual(n, counter("sluice_http_downstream_rq_xx",
                                        http_conn_manager_prefix="web", response_code_class=klass))
            self.assertEqual(n, counter("sluice_cluster_upstream_rq_xx", cluster_name=CLUSTER,
                                        response_code_class=klass))
            self.assertEqual(n, counter("sluice_route_rq_xx", route_name="v/0",
                                        response_code_class=klass))
        self.assertEqual(13, counter("sluice_cluster_host_rq_total", cluster_name=CLUSTER,
                                     host=host))
        self.assertEqual(conns, counter("sluice_listener_downstream_cx_total",
                                        listener_name="web"))
        self.assertEqual(conns, sum(
            counter("sluice_listener_worker_downstream_cx_total", listener_name="web",
                    worker_id=str(w)) for w in (0, 1)))
        self.assertEqual("gauge", families["sluice_cluster_host_rq_active"].type)
        # The histograms: one sample per request, cumulative buckets ending at +Inf == count.
        for family, labels in (("sluice_http_downstream_rq_time",
                                {"http_conn_manager_prefix": "web"}),
                               ("sluice_cluster_upstream_rq_time", {"cluster_name": CLUSTER})):
            f = families[family]
            self.assertEqual("histogram", f.type)
            self.assertEqual(13, sample(family, "_count", **labels))
            buckets = [(s.labels["le"], s.value) for s in f.samples
                       if s.name == family + "_bucket" and
                       {k: v for k, v in s.labels.items() if k != "le"} == labels]
            self.assertEqual("+Inf", buckets[-1][0])
            self.assertEqual(13, buckets[-1][1])
            values = [v for _, v in buckets]
            self.assertEqual(values, sorted(values))

        # Every counter and gauge of the text format is one sample of the exposition, and
        # nothing was left out for a name clash.
        text = self.s.stats()
        histograms = {f.documentation.replace(".", "_") for f in families.values()
                      if f.type == "histogram"}
        scalars = [k for k in text if not (k.split("{")[0].rsplit(".", 1)[-1] in
                                           ("count", "sum", "p50", "p90", "p99"))]
        samples = sum(len(f.samples) for f in families.values() if f.type in ("counter", "gauge"))
        self.assertEqual(len(scalars), samples)
        self.assertTrue(histograms)
        self.assertNotIn(b"# sluice:", body)
        self.assertEqual(text["http.web.downstream_rq_total"],
                         counter("sluice_http_downstream_rq_total",
                                 http_conn_manager_prefix="web"))
        self.assertEqual(st["cluster.back.end.upstream_rq_total"],
                         counter("sluice_cluster_upstream_rq_total", cluster_name=CLUSTER))


if __name__ == "__main__":
    harness.main()
