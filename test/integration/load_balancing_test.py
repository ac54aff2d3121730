"""Load balancing across real origins, through the router plugin: smooth weighted round robin
(exact counts), random by weight and least request (shares within tolerance over many
requests), and Maglev consistent hashing on a header (a key always lands on the same host; keys
spread over all hosts; no key: spread)."""

import harness
from harness import http_request as req

TYPE = "type.googleapis.com/sluice.extensions.router.v1.Router"


class LoadBalancingTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origins = [harness.HttpOrigin(n) for n in ("a", "b", "c")]
        for o in self.origins:
            self.addCleanup(o.close)

    def start(self, policy, weights=(1, 1, 1), hash_policy=None):
        route = {"cluster": "pool"}
        if hash_policy:
            route["hashPolicy"] = hash_policy
        router = {"@type": TYPE, "virtualHosts": [
            {"name": "v", "domains": ["*"], "routes": [{"route": route}]}]}
        cfg = harness.http_config([harness.http_listener(
            "web", hcm={"maxRequestsPerConnection": 100000},
            filters=[{"plugin": {"filter": "router", "typedConfig": router}}])])
        cfg["clusters"] = [{"name": "pool", "lbPolicy": policy, "endpoints": [
            {"address": {"address": "127.0.0.1", "port": o.addr[1]}, "weight": w}
            for o, w in zip(self.origins, weights)]}]
        return self.start_sluice(cfg, concurrency=1)

    def count(self, s, n, headers_for=lambda i: ()):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        seen = {"a": 0, "b": 0, "c": 0}
        picks = []
        for i in range(n):
            c.send(req("GET", "/", headers=headers_for(i)))
            name = c.read_response().get("x-origin-name")
            seen[name] += 1
            picks.append(name)
        return seen, picks

    def test_round_robin_is_exact_and_smooth(self):
        s = self.start("ROUND_ROBIN", weights=(2, 1, 1))
        seen, picks = self.count(s, 400)
        self.assertEqual({"a": 200, "b": 100, "c": 100}, seen)
        # Smooth: the heavy host never gets more than two in a row.
        self.assertNotIn("a,a,a", ",".join(picks))

    def test_random_follows_the_weights(self):
        s = self.start("RANDOM", weights=(1, 1, 2))
        seen, _ = self.count(s, 2000)
        for name, share in (("a", 0.25), ("b", 0.25), ("c", 0.5)):
            self.assertAlmostEqual(share, seen[name] / 2000, delta=0.05, msg=seen)

    def test_least_request_spreads_idle_load(self):
        s = self.start("LEAST_REQUEST")
        seen, _ = self.count(s, 900)
        for name in "abc":
            self.assertGreater(seen[name], 200, seen)

    def test_maglev_keeps_a_key_on_one_host_and_spreads_keys(self):
        s = self.start("MAGLEV", hash_policy=[{"header": "x-user"}])
        users = ["user-%d" % u for u in range(60)]
        _, picks = self.count(s, 300, lambda i: [("x-user", users[i % 60])])
        by_user = {}
        for i, name in enumerate(picks):
            by_user.setdefault(users[i % 60], set()).add(name)
        self.assertTrue(all(len(v) == 1 for v in by_user.values()), by_user)
        hosts = {next(iter(v)) for v in by_user.values()}
        self.assertEqual({"a", "b", "c"}, hosts)
        # Without a key: spread at random.
        seen, _ = self.count(s, 300)
        self.assertTrue(all(v > 50 for v in seen.values()), seen)


if __name__ == "__main__":
    harness.main()
