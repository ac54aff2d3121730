"""Hot restart (sluice --hot-restart-from CONTROL_SOCKET, and `sluice reload`): the successor
takes every listening socket of the running sluice, whatever either's worker count, the ticket
keys of its TLS chains and its counters, and the old one drains and exits.

The issue's proof is test_three_restarts_under_load_fail_nothing: HTTP/1.1 keep-alive clients,
HTTP/2 clients (h2c and over TLS), h2load runs and new TLS connections keep running through
three restarts — a
changed route, a new certificate, another worker count — and not one request or connection
fails; the new route and certificate answer afterwards, a TLS session from before a restart
resumes after it, and the last process's request counters equal what the clients sent. A
successor that cannot start (a bad config, a plugin of another ABI, a control socket path
another process holds) leaves the old one serving, and says why.

HotRestartAdminTest: the admin on fixed ports (its address, its probe listener) and on a unix
socket goes through restarts with readiness asked all along — never refused, never anything but
200 LIVE — and is answered by the successor afterwards; ExampleConfigTest reloads the shipped
example with its admin on a fixed port."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2client  # noqa: E402
import harness  # noqa: E402
import tls_pki  # noqa: E402
from control_socket_test import ControlClient  # noqa: E402
from harness import direct_response_filter, http_config, http_listener  # noqa: E402
from tls_features_test import https_request, tls_chain  # noqa: E402

ROUTER_TYPE = harness.ROUTER_TYPE
PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))
# Bounds of every load loop (the loops also stop when the test is done).
MAX_REQUESTS_PER_LOOP = 200000
MAX_H2LOAD_RUNS = 400


def simple_config(body, port, control):
    listener = http_listener(filters=[direct_response_filter(body=body)])
    listener["address"]["port"] = port
    c = http_config(listeners=[listener], drain_timeout="5s")
    c["controlSocket"] = control
    return c


def get(addr, path="/"):
    """One request on a new connection: the body, or an exception."""
    with socket.create_connection(addr, timeout=harness.IO_TIMEOUT) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError("response %r" % data[:200])
    return body


class Loop:
    """A client loop on a thread until stop() (bounded by MAX_REQUESTS_PER_LOOP): `step()`
    returns how many requests succeeded, raises on a failure (recorded, and the loop goes on)."""

    def __init__(self, name, step, setup=None, teardown=None):
        self.name, self.step, self.setup, self.teardown = name, step, setup, teardown
        self.ok, self.failures = 0, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        state = {}
        try:
            while not self.done.is_set() and self.ok + len(self.failures) < MAX_REQUESTS_PER_LOOP:
                try:
                    self.ok += self.step(state)
                except Exception as e:  # noqa: BLE001 - every failure counts, and is shown
                    self.failures.append("%s: %r" % (self.name, e))
                    if len(self.failures) > 50:
                        return
        finally:
            if self.teardown:
                self.teardown(state)

    def stop(self):
        self.done.set()
        self.thread.join(harness.IO_TIMEOUT * 4)


def h1_keepalive_step(addr):
    """One request on the loop's keep-alive connection; a new connection once the last response
    said "Connection: close" (the drain's notice)."""
    def step(state):
        c = state.get("conn")
        if c is None:
            c = state["conn"] = harness.HttpClient.connect(addr)
            state["used"] = 0
        try:
            c.send(harness.http_request(target="/gen?size=64"))
            r = c.read_response()
        except Exception as e:
            port = c.sock.getsockname()[1]
            c.close()
            state["conn"] = None
            raise AssertionError("request %d on its connection (from port %d): %r" % (
                state["used"] + 1, port, e))
        state["used"] += 1
        if r.status != 200 or len(r.body) != 64:
            raise AssertionError("status %d, %d bytes" % (r.status, len(r.body)))
        if r.has_token("connection", "close"):
            c.close()
            state["conn"] = None
        return 1
    return step


def h1_teardown(state):
    if state.get("conn") is not None:
        state["conn"].close()


def h2_step(addr, tls=False):
    """Four concurrent streams on the loop's HTTP/2 connection (h2c, or TLS with ALPN h2); a new
    connection once the server sent a GOAWAY (no stream is opened after it: what every HTTP/2
    client does)."""
    def step(state):
        m = state.get("mux")
        if m is None or m.goaways or m.closed is not None:
            if m is not None:
                m.close()
            m = state["mux"] = h2client.Mux.connect(*addr, tls=tls,
                                                    server_name="hr.test" if tls else None)
        streams = [m.request("GET", "/gen?size=64") for _ in range(4)]
        m.wait(*streams)
        for s in streams:
            if s.status != 200 or not s.ended or s.body_length != 64:
                raise AssertionError("stream %d: status %r ended %r reset %r, %d bytes" % (
                    s.id, s.status, s.ended, s.reset_code, s.body_length))
        return len(streams)
    return step


def h2_teardown(state):
    if state.get("mux") is not None:
        state["mux"].close()


H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout")
H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def h2load_step(url, unsent):
    """One bounded h2load run (2 connections, 4 streams each). h2load opens no new connection
    after a GOAWAY, and nghttp2's client session does not send the streams it had queued when
    any GOAWAY arrived — the drain's notice included — nor does h2load retry them: they show
    as "started" but not "succeeded", and are counted in `unsent`. That they never reached
    sluice is proven by the counters at the end (every request sluice saw is one a client
    counted as answered). What must hold here: no timeout, and nothing but 2xx."""
    def step(state):
        state["runs"] = state.get("runs", 0) + 1
        if state["runs"] > MAX_H2LOAD_RUNS:
            state["stop"] = True
            return 0
        out = subprocess.run(["h2load", "-n", "400", "-c", "2", "-m", "4", url],
                             capture_output=True, text=True, timeout=60).stdout
        m, st = H2LOAD_REQUESTS.search(out), H2LOAD_STATUS.search(out)
        if not m or not st:
            raise AssertionError("h2load said: %s" % out[-500:])
        _total, started, done, succeeded, _f, _e, timeouts = map(int, m.groups())
        other = sum(map(int, st.groups()[1:]))
        if succeeded != int(st.group(1)) or other or timeouts or done != started:
            raise AssertionError("h2load: %s; %s" % (m.group(0), st.group(0)))
        unsent[0] += started - succeeded
        return succeeded
    return step


class HotRestartUnderLoadTest(harness.SluiceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("hot-restart-root")
        cls.cert1 = cls.pki.server_cert(cls.root, ["hr.test"])
        cls.cert2 = cls.pki.server_cert(cls.root, ["hr.test"], cn="hr-second")

    def config(self, cluster, cert, ports, control):
        router = {"@type": ROUTER_TYPE, "virtualHosts": [
            {"name": "v", "domains": ["*"], "routes": [{"route": {"cluster": cluster}}]}]}
        hcm = {"httpFilters": [{"plugin": {"filter": "router", "typedConfig": router}}]}
        web = http_listener("web", hcm=hcm, filters=hcm["httpFilters"])
        web["address"]["port"] = ports[0]
        tls_ctx = {"commonTlsContext": {"tlsCertificates": [
            {"certificateChain": {"filename": cert.chain}, "privateKey": {"filename": cert.key}}]}}
        tls = {"name": "tls", "address": {"address": "127.0.0.1", "port": ports[1]},
               **tls_chain(tls_ctx, {"statPrefix": "tls", **hcm})}
        cfg = http_config(listeners=[web, tls], drain_timeout="20s")
        cfg["clusters"] = [
            {"name": "a", "endpoints": [{"address": {"address": "127.0.0.1",
                                                     "port": self.origin_a.addr[1]}}]},
            {"name": "b", "endpoints": [{"address": {"address": "127.0.0.1",
                                                     "port": self.origin_b.addr[1]}}]}]
        cfg["controlSocket"] = control
        return cfg

    def test_three_restarts_under_load_fail_nothing(self):
        self.origin_a = self.server(harness.HttpOrigin)
        self.origin_b = self.server(harness.HttpOrigin)
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(self.config("a", self.cert1, (0, 0), control), concurrency=2,
                              name="gen0")
        web, tls = s.addr("web"), s.addr("tls")
        ports = (web[1], tls[1])
        url = "http://%s:%d/gen?size=64" % web
        checks = {"web": 0, "tls": 0}  # requests this test sends itself, by listener

        def tls_step(state):
            r = https_request(tls[1], "hr.test", self.root.cert,
                              request=harness.http_request(target="/gen?size=64",
                                                           headers=[("Connection", "close")]))
            if r.status != 200:
                raise AssertionError("status %d" % r.status)
            return 1

        loops = [Loop("h1-keepalive-%d" % i, h1_keepalive_step(web), teardown=h1_teardown)
                 for i in range(2)]
        loops.append(Loop("h2", h2_step(web), teardown=h2_teardown))
        loops.append(Loop("h2-tls", h2_step(tls, tls=True), teardown=h2_teardown))
        h2load_unsent = [0]
        loops.append(Loop("h2load", h2load_step(url, h2load_unsent)))
        loops.append(Loop("tls", tls_step))
        for loop in loops:
            self.addCleanup(loop.stop)

        def progress(what, before):
            harness.wait_until(lambda: all(l.ok >= before[l.name] + 20 for l in loops) or
                               any(l.failures for l in loops), what, timeout=120)

        progress("every client under way", {l.name: 0 for l in loops})
        session = os.path.join(self.tmpdir, "before.sess")
        r = tls_pki.s_client(tls[1], servername="hr.test", cafile=self.root.cert,
                             sess_out=session)
        self.assertTrue(r.ok and not r.reused, r.describe())

        restarts = [
            ("route", "b", self.cert1, 2),   # the route now goes to origin b
            ("cert", "b", self.cert2, 1),    # a new certificate (and one worker)
            ("workers", "b", self.cert2, 3),  # three workers
        ]
        for i, (what, cluster, cert, workers) in enumerate(restarts, start=1):
            before = {l.name: l.ok for l in loops}
            nxt = self.start_sluice(self.config(cluster, cert, ports, control),
                                    concurrency=workers, name="gen%d" % i,
                                    args=("--hot-restart-from", control))
            self.assertEqual(0, s.wait_exit(), s.logs())
            progress("traffic after the %s restart" % what, before)
            self.assertEqual([], [f for l in loops for f in l.failures][:10])
            # Exactly one process serves: the new one, at the control socket too.
            c = ControlClient(control)
            self.addCleanup(c.close)
            st = c.call(status={}).status
            self.assertEqual((nxt.pid, "live", i), (st.pid, st.state, st.restart_epoch))
            # The TLS session from before this restart resumes (the old process's ticket key
            # decrypts it here), then a new one is kept for the next restart.
            r = tls_pki.s_client(tls[1], servername="hr.test", cafile=self.root.cert,
                                 sess_in=session)
            self.assertTrue(r.reused, "%s restart: %s" % (what, r.describe()))
            r = tls_pki.s_client(tls[1], servername="hr.test", cafile=self.root.cert,
                                 sess_out=session)
            self.assertTrue(r.ok, r.describe())
            s = nxt
            if what == "route":
                a_before = len(self.origin_a.requests)
                self.assertEqual(b"GET /after-route-change", get(web, "/after-route-change")[:23])
                checks["web"] += 1
                self.assertTrue(any(p == "/after-route-change" for _m, p, _h in
                                    self.origin_b.requests))
                self.assertEqual(a_before, len(self.origin_a.requests))
            if what == "cert":
                r = tls_pki.s_client(tls[1], servername="hr.test", cafile=self.root.cert)
                self.assertEqual(tls_pki.fingerprint_sha256(self.cert2), r.peer_fingerprint,
                                 r.describe())

        for loop in loops:
            loop.stop()
        self.assertEqual([], [f for l in loops for f in l.failures][:10])
        served = {l.name: l.ok for l in loops}
        self.assertTrue(all(n > 0 for n in served.values()), served)
        # Every request reached exactly one process, and the counters of all four add up in
        # the last one (snapshots at each drain's start, and what each counted while draining,
        # merged as it exited).
        web_sent = sum(l.ok for l in loops if l.name not in ("tls", "h2-tls")) + checks["web"]
        tls_sent = served["tls"] + served["h2-tls"] + checks["tls"]
        harness.wait_until(lambda: harness.stat(s.stats(), "http.web.downstream_rq_total") >=
                           web_sent, "the web requests counted")
        st = s.stats()
        self.assertEqual(web_sent, harness.stat(st, "http.web.downstream_rq_total"), served)
        self.assertEqual(tls_sent, harness.stat(st, "http.tls.downstream_rq_total"), served)
        # Two listeners: 2 sockets each from the 2-worker processes, then from the 1-worker one
        # (which polled both of each address's inherited sockets).
        self.assertIn("took 4 listening sockets", self._sluices[2].log_text())
        self.assertIn("took 4 listening sockets", self._sluices[3].log_text())
        # No error answered, no stream reset by sluice on any process (the last one's counts
        # are all of them).
        for name in ("http.web.downstream_rq_4xx", "http.web.downstream_rq_5xx",
                     "http.tls.downstream_rq_4xx", "http.tls.downstream_rq_5xx",
                     "http.web.downstream_rq_reset", "http.tls.downstream_rq_reset"):
            self.assertEqual(0, harness.stat(st, name), name)
        print("served %s; h2load's unsent streams: %d" % (served, h2load_unsent[0]),
              file=sys.stderr)


class HotRestartTest(harness.SluiceTestCase):
    def test_two_restarts_under_new_connections_fail_nothing(self):
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(simple_config("one\n", 0, control), concurrency=3, name="one")
        addr = s.addr("web")
        load = Loop("new-connections", lambda _state: len(get(addr)) and 1)
        self.addCleanup(load.stop)
        harness.wait_until(lambda: load.ok >= 50, "some requests before the first restart")
        # 3 workers -> 2 (the successor accepts on all 3 inherited sockets), then 2 -> 4.
        for body, workers in (("two\n", 2), ("three\n", 4)):
            before = load.ok
            nxt = self.start_sluice(simple_config(body, addr[1], control), concurrency=workers,
                                    name=body.strip(), args=("--hot-restart-from", control))
            self.assertEqual(0, s.wait_exit(), s.log_text())
            self.assertEqual(body.encode(), get(addr))
            harness.wait_until(lambda: load.ok >= before + 50, "requests after the restart")
            s = nxt
        load.stop()
        self.assertEqual([], load.failures[:5])
        self.assertGreater(load.ok, 150)
        self.assertIn("took 3 listening sockets", self._sluices[1].log_text())

    def assert_still_serves(self, s, addr, body=b"one\n"):
        self.assertEqual(body, get(addr))
        c = ControlClient(s.control)
        self.addCleanup(c.close)
        st = c.call(status={}).status
        self.assertEqual((s.pid, "live"), (st.pid, st.state))

    def start_first(self):
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(simple_config("one\n", 0, control), concurrency=1, name="one")
        s.control = control
        return s, s.addr("web")

    def test_a_successor_with_a_bad_config_leaves_the_old_one_serving(self):
        s, addr = self.start_first()
        bad = simple_config("two\n", addr[1], s.control)
        bad["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"] = [
            {"plugin": {"filter": "no_such_filter"}}]
        nxt = self.start_sluice(bad, wait=False, name="bad",
                                args=("--hot-restart-from", s.control))
        self.assertEqual(1, nxt.wait_exit())
        self.assertIn("no_such_filter", nxt.log_text())
        self.assert_still_serves(s, addr)
        # A successor that cannot reach a control socket says so, and changes nothing either.
        lost = self.start_sluice(simple_config("two\n", addr[1], s.control + ".x"), wait=False,
                                 name="lost", args=("--hot-restart-from", s.control + ".x"))
        self.assertEqual(1, lost.wait_exit())
        self.assertIn("cannot reach a running sluice", lost.log_text())
        self.assert_still_serves(s, addr)

    def test_a_successor_with_a_plugin_of_another_abi_leaves_the_old_one_serving(self):
        s, addr = self.start_first()
        bad = simple_config("two\n", addr[1], s.control)
        bad["pluginDirs"] = [PLUGIN_DIR]
        bad["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"] = [
            {"plugin": {"filter": "bad_version", "plugin": "bad_version"}},
            direct_response_filter(body="two\n")]
        nxt = self.start_sluice(bad, wait=False, name="abi",
                                args=("--hot-restart-from", s.control))
        self.assertEqual(1, nxt.wait_exit())
        self.assertIn("built for plugin ABI 2.0", nxt.log_text())
        self.assert_still_serves(s, addr)

    def test_a_control_socket_path_another_process_holds_leaves_the_old_one_serving(self):
        s, addr = self.start_first()
        taken = os.path.join(self.tmpdir, "taken.sock")
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(taken)
        holder.listen(1)
        nxt = self.start_sluice(simple_config("two\n", addr[1], taken), wait=False,
                                name="taken", args=("--hot-restart-from", s.control))
        self.assertEqual(1, nxt.wait_exit())
        self.assertIn(taken, nxt.log_text())
        self.assertIn("another process listens on this socket", nxt.log_text())
        self.assert_still_serves(s, addr)
        # Nothing of the successor is left: the old process was never told to drain, and its
        # own control socket is where it was.
        self.assertNotIn("draining", s.log_text())


def http_get(where, path):
    """GET `path` on a new connection to a TCP (host, port) or a unix socket path: (status, body).
    The admin answers with Connection: close, so the body is what comes until the end."""
    if isinstance(where, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(harness.IO_TIMEOUT)
        s.connect(where)
    else:
        s = socket.create_connection(where, timeout=harness.IO_TIMEOUT)
    with s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1.1 (\d+) ", head)
    if not m:
        raise AssertionError("response %r" % data[:200])
    return int(m.group(1)), body


def served_by(where):
    """The pid of the sluice whose admin answers at `where` (/server_info)."""
    status, body = http_get(where, "/server_info")
    if status != 200:
        raise AssertionError("/server_info: %d %r" % (status, body[:200]))
    return json.loads(body)["pid"]


class HotRestartAdminTest(harness.SluiceTestCase):
    """The admin's listening sockets through a hot restart: its TCP address and probe listener
    are handed over by address like the listeners' (a fixed admin port no longer makes the
    successor fail to bind), and its unix socket's path is taken over by a rename."""

    def admin_config(self, body, ports, control, unix):
        web, admin, probe = ports
        c = simple_config(body, web, control)
        c["admin"] = {"address": {"address": "127.0.0.1", "port": admin},
                      "probeAddress": {"address": "127.0.0.1", "port": probe},
                      "unixSocket": {"path": unix}}
        return c

    def test_a_fixed_admin_port_probe_listener_and_unix_socket_are_handed_over(self):
        control = os.path.join(self.tmpdir, "control.sock")
        unix = os.path.join(self.tmpdir, "admin.sock")
        # The first binds port 0; its successors get the ports it reported, fixed in their
        # configs (no race with another process for a port picked by the test).
        s = self.start_sluice(self.admin_config("one\n", (0, 0, 0), control, unix),
                              concurrency=2, name="one")
        web, admin, probe = s.addr("web"), s.addr("admin"), s.addr("admin_probe")
        ports = (web[1], admin[1], probe[1])
        self.assertEqual(s.pid, served_by(admin))
        self.assertEqual(s.pid, served_by(unix))

        # Readiness is asked all along, as a load balancer and an operator's script would: on
        # the probe listener, the admin's address and its unix socket. Not one connection may
        # be refused or answered with anything but 200 LIVE: at every moment exactly one
        # process accepts on each, and it is live.
        def ready_step(where):
            def step(_state):
                status, body = http_get(where, "/ready")
                if (status, body) != (200, b"LIVE\n"):
                    raise AssertionError("%r: %d %r" % (where, status, body))
                return 1
            return step
        loops = [Loop("probe", ready_step(probe)), Loop("admin", ready_step(admin)),
                 Loop("unix", ready_step(unix))]
        for loop in loops:
            self.addCleanup(loop.stop)
        harness.wait_until(lambda: all(l.ok >= 20 for l in loops), "readiness checks")

        for i, (body, workers) in enumerate((("two\n", 1), ("three\n", 3)), start=1):
            before = {l.name: l.ok for l in loops}
            nxt = self.start_sluice(self.admin_config(body, ports, control, unix),
                                    concurrency=workers, name=body.strip(),
                                    args=("--hot-restart-from", control))
            self.assertEqual(0, s.wait_exit(), s.log_text())
            # The same addresses, answered by the successor.
            self.assertEqual((web, admin, probe),
                             (nxt.addr("web"), nxt.addr("admin"), nxt.addr("admin_probe")))
            self.assertEqual(nxt.pid, served_by(admin))
            self.assertEqual(nxt.pid, served_by(unix))
            self.assertEqual((200, b"LIVE\n"), http_get(probe, "/ready"))
            self.assertEqual(body.encode(), get(web))
            log = nxt.log_text()
            self.assertIn("admin on 127.0.0.1:%d (its predecessor's socket)" % admin[1], log)
            self.assertIn("admin probe listener on 127.0.0.1:%d (its predecessor's socket)" %
                          probe[1], log)
            self.assertIn("hot restart: admin unix socket %s taken over" % unix, log)
            self.assertIn("stops accepting on 2 admin sockets (pid %d does)" % nxt.pid,
                          s.log_text())
            harness.wait_until(lambda: all(l.ok >= before[l.name] + 20 for l in loops) or
                               any(l.failures for l in loops), "readiness checks after %d" % i)
            c = ControlClient(control)
            self.addCleanup(c.close)
            self.assertEqual(i, c.call(status={}).status.restart_epoch)
            s = nxt
        for loop in loops:
            loop.stop()
        self.assertEqual([], [f for l in loops for f in l.failures][:10])
        # Nothing left beside the socket: no temporary name of a takeover.
        self.assertEqual(["admin.sock", "control.sock"],
                         sorted(n for n in os.listdir(self.tmpdir) if n.endswith(".sock") or
                                ".sock." in n))

    def test_an_admin_moved_elsewhere_binds_afresh_and_the_old_address_closes_with_the_old_one(self):
        control = os.path.join(self.tmpdir, "control.sock")
        unix = os.path.join(self.tmpdir, "admin.sock")
        s = self.start_sluice(self.admin_config("one\n", (0, 0, 0), control, unix),
                              concurrency=1, name="one")
        web, admin = s.addr("web"), s.addr("admin")
        # Port 0 is "any port": a new one, and so is another unix path.
        moved = os.path.join(self.tmpdir, "admin2.sock")
        nxt = self.start_sluice(self.admin_config("two\n", (web[1], 0, 0), control, moved),
                                concurrency=1, name="two", args=("--hot-restart-from", control))
        self.assertEqual(0, s.wait_exit(), s.log_text())
        self.assertNotEqual(admin, nxt.addr("admin"))
        self.assertEqual(nxt.pid, served_by(nxt.addr("admin")))
        self.assertEqual(nxt.pid, served_by(moved))
        self.assertEqual((200, b"LIVE\n"), http_get(nxt.addr("admin_probe"), "/ready"))
        self.assertNotIn("admin sockets (pid", s.log_text())
        self.assertIn("2 admin sockets of the previous sluice are not this config's addresses",
                      nxt.log_text())
        # The old addresses went with the old process.
        with self.assertRaises(OSError):
            http_get(admin, "/ready")
        self.assertFalse(os.path.exists(unix))

    def test_a_successor_failing_after_taking_the_sockets_leaves_the_old_admin_serving(self):
        control = os.path.join(self.tmpdir, "control.sock")
        unix = os.path.join(self.tmpdir, "admin.sock")
        s = self.start_sluice(self.admin_config("one\n", (0, 0, 0), control, unix),
                              concurrency=1, name="one")
        web, admin, probe = s.addr("web"), s.addr("admin"), s.addr("admin_probe")
        # The successor takes every socket, the admin's too, then fails: its admin's unix socket
        # would be a file that is not a socket.
        not_a_socket = os.path.join(self.tmpdir, "not-a-socket")
        open(not_a_socket, "w").close()
        nxt = self.start_sluice(self.admin_config("two\n", (web[1], admin[1], probe[1]), control,
                                                  not_a_socket),
                                wait=False, name="two", args=("--hot-restart-from", control))
        self.assertEqual(1, nxt.wait_exit())
        self.assertIn("exists and is not a socket", nxt.log_text())
        self.assertIn("took 1 listening sockets", nxt.log_text())
        self.assertEqual(s.pid, served_by(admin))
        self.assertEqual(s.pid, served_by(unix))
        self.assertEqual((200, b"LIVE\n"), http_get(probe, "/ready"))
        self.assertEqual(b"one\n", get(web))
        self.assertNotIn("draining", s.log_text())


class ReloadCommandTest(harness.SluiceTestCase):
    """`sluice reload`: the same command line, the binary on disk, one command."""

    def test_reload_starts_the_successor_and_waits_for_the_handoff(self):
        control = os.path.join(self.tmpdir, "control.sock")
        notify = os.path.join(self.tmpdir, "notify.sock")
        sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sd.close)
        sd.bind(notify)
        sd.settimeout(harness.IO_TIMEOUT)
        s = self.start_sluice(simple_config("one\n", 0, control), concurrency=2, name="one",
                              env={"NOTIFY_SOCKET": notify})
        addr = s.addr("web")
        # systemd's readiness protocol, as a Type=notify unit sees it.
        self.assertEqual("READY=1\nMAINPID=%d\nSTATUS=serving" % s.pid, sd.recv(4096).decode())
        # The successor reads its config from the same file: change it in place.
        harness.write_config(simple_config("two\n", addr[1], control), self.tmpdir,
                             os.path.basename(s.config_path))
        r = subprocess.run([harness.sluice_bin(), "reload", "--control-socket", control,
                            "--wait-exit"], capture_output=True, text=True,
                           timeout=harness.EXIT_TIMEOUT, env=dict(os.environ, NOTIFY_SOCKET=notify))
        self.assertEqual(0, r.returncode, r.stderr)
        m = re.search(r"pid (\d+) serves; pid %d drains" % s.pid, r.stderr)
        self.assertIsNotNone(m, r.stderr)
        successor = int(m.group(1))
        self.assertIn("pid %d exited" % s.pid, r.stderr)
        self.assertEqual(0, s.wait_exit())
        self.assertEqual(b"two\n", get(addr))
        # The successor says it is the service's main process now (NotifyAccess=all).
        self.assertEqual("READY=1\nMAINPID=%d\nSTATUS=serving" % successor,
                         sd.recv(4096).decode())
        c = ControlClient(control)
        self.addCleanup(c.close)
        st = c.call(status={}).status
        self.assertEqual((successor, 1), (st.pid, st.restart_epoch))
        # Same flags as the running one: two workers, and its ports file.
        self.assertEqual(2, st.concurrency)
        self.assertIn("--ports-file", list(st.command_line))
        # The successor is not this test's child: stopped through its control socket.
        c.call(drain={})
        harness.wait_until(lambda: not os.path.exists("/proc/%d" % successor) or
                           open("/proc/%d/stat" % successor).read().split()[2] == "Z",
                           "the successor's exit")

    def test_a_reload_that_fails_leaves_the_old_one_serving_and_says_why(self):
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(simple_config("one\n", 0, control), concurrency=1, name="one")
        addr = s.addr("web")
        # Named relative to the directory `sluice reload` runs in (another than the running
        # sluice's): the successor, which starts in the running one's, still finds it.
        elsewhere = os.path.join(self.tmpdir, "elsewhere")
        os.mkdir(elsewhere)
        with open(os.path.join(elsewhere, "broken.yaml"), "w") as f:
            f.write("listeners: [{name: web, address: {port: -1}}]\n")
        r = subprocess.run([harness.sluice_bin(), "reload", "--control-socket", control,
                            "-c", "broken.yaml"], capture_output=True, text=True, cwd=elsewhere,
                           timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(1, r.returncode, r.stderr)
        self.assertRegex(r.stderr, r"exited with status 1 before serving; pid %d still serves"
                         % s.pid)
        # The successor's own error, on our stderr: it read the file.
        self.assertIn("elsewhere/broken.yaml: listeners[0].address.port", r.stderr)
        self.assertEqual(b"one\n", get(addr))
        r = subprocess.run([harness.sluice_bin(), "reload", "--control-socket",
                            control + ".none"], capture_output=True, text=True,
                           timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(1, r.returncode)
        self.assertIn("cannot reach a running sluice", r.stderr)
        r = subprocess.run([harness.sluice_bin(), "reload"], capture_output=True, text=True,
                           timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(2, r.returncode)
        self.assertIn("--control-socket is required", r.stderr)
        self.assertEqual(b"one\n", get(addr))



class ExampleConfigTest(harness.SluiceTestCase):
    """configs/hot_restart.yaml as it ships (its control path swapped for the test's, and its
    fixed ports for ports the first process got), reloaded with `sluice reload` after its body
    changed: the successor's config names the admin's port as the shipped one does."""

    def test_the_example_config(self):
        with open(os.path.join(harness.repo_root(), "configs", "hot_restart.yaml")) as f:
            text = f.read()
        control = os.path.join(self.tmpdir, "control.sock")
        for fixed, new in (("port: 10000}", "port: 0}"), ("port: 9901}", "port: 0}"),
                           ("/tmp/sluice-control.sock", control)):
            self.assertIn(fixed, text)
            text = text.replace(fixed, new)
        s = self.start_sluice(text, concurrency=2)
        addr = s.addr("web")
        admin = s.addr("admin")
        self.assertEqual(b"served by the first generation\n", get(addr))
        self.assertEqual(s.pid, served_by(admin))
        # The next generation: same file, new body, the ports the first one got, fixed as the
        # shipped 10000 and 9901 are (a successor binding them itself would find them taken).
        text = text.replace("first generation", "second generation").replace(
            "port: 0}", "port: %d}" % addr[1], 1).replace("port: 0}", "port: %d}" % admin[1], 1)
        self.assertNotIn("port: 0}", text)
        with open(s.config_path, "w") as f:
            f.write(text)
        r = subprocess.run([harness.sluice_bin(), "reload", "--control-socket", control],
                           capture_output=True, text=True, timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertEqual(0, s.wait_exit())
        self.assertEqual(b"served by the second generation\n", get(addr))
        c = ControlClient(control)
        self.addCleanup(c.close)
        successor = c.call(status={}).status.pid
        self.assertEqual(successor, served_by(admin))
        c.call(drain={})
        harness.wait_until(lambda: not os.path.exists("/proc/%d" % successor) or
                           open("/proc/%d/stat" % successor).read().split()[2] == "Z",
                           "the successor's exit")



class SystemdUnitTest(harness.SluiceTestCase):
    """deploy/systemd/sluice.service: what makes hot restart work under systemd, and
    `systemd-analyze verify` on it (with this tree's binary for /usr/bin/sluice)."""

    def unit(self):
        with open(os.path.join(harness.repo_root(), "deploy", "systemd", "sluice.service")) as f:
            return f.read()

    def test_the_unit_reloads_by_hot_restart_and_follows_the_successor(self):
        text = self.unit()
        lines = dict(l.split("=", 1) for l in text.splitlines()
                     if "=" in l and not l.startswith("#"))
        self.assertEqual("notify", lines["Type"])
        self.assertEqual("all", lines["NotifyAccess"])  # the successor says MAINPID=
        start, reload = lines["ExecStart"].split(), lines["ExecReload"].split()
        control = start[start.index("--control-socket") + 1]
        self.assertEqual(["/usr/bin/sluice", "reload", "--control-socket", control], reload)
        self.assertTrue(control.startswith("/run/" + lines["RuntimeDirectory"] + "/"), control)
        self.assertIn("--mode validate", lines["ExecStartPre"])

    def test_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed (Debian's systemd package)")
        path = os.path.join(self.tmpdir, "sluice.service")
        with open(path, "w") as f:
            f.write(self.unit().replace("/usr/bin/sluice", harness.sluice_bin()))
        r = subprocess.run([analyze, "verify", path], capture_output=True, text=True,
                           timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertNotIn("sluice.service", r.stderr)  # no warning about the unit


if __name__ == "__main__":
    harness.main()
