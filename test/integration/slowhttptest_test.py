"""slowhttptest (Debian's) against sluice in front of a real origin whose cluster has a single
connection: a slow-body attack (R-U-Dead-Yet) takes no upstream connection, so other clients are
served throughout, and the slow bodies end with the request body timeout; a slow-read attack
leaves sluice's memory bounded. Each run is bounded by slowhttptest's own -l and a timeout."""

import shutil
import subprocess
import threading

import harness
from harness import http_request as req

CONNECTIONS = 200
# How long each attack runs (slowhttptest -l), and the bound on waiting for it.
LENGTH_S = 6


class SlowHttpTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        if shutil.which("slowhttptest") is None:
            self.fail("slowhttptest is missing (tools/deps installs it)")
        self.origin = harness.HttpOrigin("o")
        self.addCleanup(self.origin.close)

    def start(self, pool=None, **hcm):
        return self.start_sluice(harness.routed_config(
            self.origin.addr[1], hcm=hcm, pool=pool or {"maxConnections": 1}), concurrency=1)

    def attack(self, s, path, *args):
        host, port = s.addr("web")
        cmd = ["slowhttptest", "-c", str(CONNECTIONS), "-r", str(CONNECTIONS), "-l",
               str(LENGTH_S), "-p", "2", "-v", "0", "-u",
               "http://%s:%d%s" % (host, port, path)] + list(args)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def get(self, s, path):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", path))
        return c.read_response()

    def test_slow_bodies_hold_no_upstream_connection(self):
        s = self.start(requestBodyTimeout="2s")
        proc = self.attack(s, "/upload", "-B", "-i", "1", "-s", "8192", "-x", "10")
        s.wait_stats(lambda st: st["http.web.downstream_rq_active"] >= CONNECTIONS // 2,
                     "the slow bodies under way")
        # The cluster's one connection is free for everybody else meanwhile.
        for i in range(5):
            r = self.get(s, "/during/%d" % i)
            self.assertEqual(200, r.status, r.raw)
        proc.wait(LENGTH_S + 30)
        st = s.wait_stats(lambda st: st["http.web.downstream_rq_active"] == 0,
                          "the slow bodies ended")
        # None of the slow bodies reached the origin (they end when slowhttptest stops, or at the
        # body timeout); the other clients' requests did.
        # (slowhttptest's own probe is a GET of the same URL.)
        self.assertEqual([], [r for r in self.origin.requests if r[0] == "POST"])
        self.assertGreaterEqual(harness.stat(st, "cluster.o.upstream_rq_total"), 5)
        self.assertEqual(5, len([r for r in self.origin.requests if r[1].startswith("/during")]))

    def test_slow_reads_keep_memory_bounded(self):
        if harness.sanitized():
            self.skipTest("RSS says nothing under ASan")
        s = self.start(pool={"maxConnections": CONNECTIONS * 2})
        self.assertEqual(200, self.get(s, "/warm").status)
        baseline = s.rss_bytes()
        peak = [0]
        proc = self.attack(s, "/big/%d" % (8 * harness.MiB), "-X", "-w", "512", "-y", "1024",
                           "-n", "1", "-z", "32")
        stop = threading.Event()

        def sample():
            while not stop.wait(0.1):
                try:
                    peak[0] = max(peak[0], s.rss_bytes() - baseline)
                except (OSError, harness.SluiceError):
                    return

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        proc.wait(LENGTH_S + 30)
        stop.set()
        t.join(5)
        st = s.stats()
        print("slow read: peak RSS over baseline %.1f MiB for %d readers" %
              (peak[0] / harness.MiB, CONNECTIONS))
        # The attack did hold responses back: streams paused reading the origin.
        self.assertGreater(harness.stat(st, "http.web.upstream_flow_control_paused_reading_total"),
                           CONNECTIONS // 2)
        # A slow reader costs ~16 KiB (slow_readers_test); allow 64 KiB each here.
        self.assertLess(peak[0], CONNECTIONS * 64 * 1024)


if __name__ == "__main__":
    harness.main()
