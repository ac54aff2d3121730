"""Issue 15's proof, all parts together in the real binary: three real origins behind the retry
filter, outlier detection and an HTTP health check. One origin is killed mid-traffic: no client
request fails (the retries move them), the host is ejected after the configured gateway failures
and marked unhealthy by the health check, its traffic moves to the other two; it is started again
on the same port: the health check and the end of its ejection bring it back, and it gets traffic
again. Bounded: a fixed number of requests per phase, every wait on stats or origin counts."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402


def config(ports):
    endpoints = "".join(f"""
      - address: {{address: 127.0.0.1, port: {p}}}""" for p in ports)
    return f"""
listeners:
  - name: web
    address: {{address: 127.0.0.1, port: 0}}
    filters:
      - http_connection_manager:
          http_filters:
            - plugin:
                filter: retry
                typed_config:
                  "@type": type.googleapis.com/sluice.extensions.retry.v1.Retry
                  policy:
                    retry_on: [connect-failure, reset, 5xx]
                    num_retries: 2
                    backoff: {{base_interval: 0.001s, max_interval: 0.005s}}
                    retry_budget: {{budget_percent: 100, min_retry_concurrency: 10}}
            - plugin:
                filter: router
                typed_config:
                  "@type": type.googleapis.com/sluice.extensions.router.v1.Router
                  virtual_hosts:
                    - name: v
                      domains: ["*"]
                      routes:
                        - route: {{cluster: app}}
clusters:
  - name: app
    connect_timeout: 1s
    circuit_breakers: {{max_retries: 100}}
    outlier_detection:
      consecutive_gateway_failure: 3
      consecutive_5xx: 0
      interval: 0.05s
      base_ejection_time: 0.2s
      max_ejection_percent: 50
    health_checks:
      - timeout: 0.5s
        interval: 0.05s
        unhealthy_threshold: 2
        healthy_threshold: 1
        http_health_check: {{path: /healthz}}
    endpoints:{endpoints}
admin:
  address: {{address: 127.0.0.1, port: 0}}
"""


class ResilienceTest(harness.SluiceTestCase):

    def test_a_killed_host_is_routed_around_ejected_and_brought_back(self):
        origins = [harness.HttpOrigin(name="o%d" % i) for i in range(3)]
        for o in origins:
            self.addCleanup(lambda o=o: o.close())
        ports = [o.addr[1] for o in origins]
        s = self.start_sluice(config(ports), concurrency=1)
        c = "cluster.app."
        # Every host checked healthy first (hosts start pending with health checks configured).
        s.wait_stats(lambda st: st[c + "health_check.healthy"] == 3 and
                     st[c + "membership_healthy"] == 3, what="three healthy hosts")

        client = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(client.close)

        def run(n, tag):
            for i in range(n):
                client.send(req("GET", "/%s/%d" % (tag, i)))
                r = client.read_response()
                self.assertEqual(200, r.status, "%s %d: %r" % (tag, i, r.raw[:200]))

        def served(o, tag):
            with o.lock:
                return sum(1 for (_, path, _) in o.requests if path.startswith("/%s/" % tag))

        run(30, "before")
        self.assertTrue(all(served(o, "before") > 0 for o in origins))

        # Kill one: its port refuses connections from now on.
        victim = origins[1]
        victim.kill()
        run(60, "down")  # not one fails: the retries move them
        st = s.wait_stats(
            lambda st: st[c + "membership_healthy"] == 2 and
            st[c + "health_check.healthy"] == 2, what="the killed host out of balancing")
        # Taken out by whichever saw it first: outlier detection after 3 gateway failures in a
        # row (the requests' connect failures), or the health check after 2 failed checks.
        self.assertTrue(st[c + "outlier_detection.ejections_consecutive_gateway_failure"] >= 1 or
                        st[c + "health_check.failure"] >= 2, st)
        # Out: a new round goes to the two others only.
        run(30, "out")
        self.assertEqual(30, served(origins[0], "out") + served(origins[2], "out"))
        st = s.stats()
        self.assertGreater(st[c + "upstream_rq_retry"], 0)
        self.assertEqual(0, st["http.web.downstream_rq_5xx"])

        # Back on the same port: the health check (and the end of any ejection) return it.
        back = harness.HttpOrigin(name="back", port=ports[1])
        self.addCleanup(back.close)
        s.wait_stats(lambda st: st[c + "membership_healthy"] == 3 and
                     st[c + "health_check.healthy"] == 3, what="the host back in balancing")
        run(30, "after")
        self.assertGreater(served(back, "after"), 0)
        self.assertEqual(0, s.stats()["http.web.downstream_rq_5xx"])


if __name__ == "__main__":
    harness.main()
