"""A second process on a listener's port: refused unless the listener allows it
(reuse_port_with_other_processes), since with SO_REUSEPORT the kernel would split the connections
between the two processes."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HttpClient, http_config, http_listener, http_request  # noqa: E402


def config_answering(body, port=0, **listener_extra):
    """An HTTP listener "web" on 127.0.0.1:port whose every response body is `body`."""
    listener = http_listener(filters=[harness.direct_response_filter(body=body)],
                             listener_extra=listener_extra or None)
    listener["address"]["port"] = port
    return http_config(listeners=[listener])


class PortSharingTest(harness.SluiceTestCase):

    def get(self, addr):
        c = HttpClient.connect(addr)
        try:
            c.send(http_request("GET", "/", headers=[("Connection", "close")]))
            resp = c.read_response()
        finally:
            c.close()
        self.assertEqual(resp.status, 200)
        return resp.body

    def assert_refused(self, second, addr):
        rc = second.wait_exit()
        log = second.log_text()
        self.assertEqual(rc, 1, log)
        self.assertFalse(os.path.exists(second.ports_path), "the refused sluice wrote its ports")
        self.assertIn("listener web: another process is already listening on 127.0.0.1:%d" %
                      addr[1], log)
        self.assertIn("reuse_port_with_other_processes: true", log)

    def test_second_instance_on_the_same_port_is_refused(self):
        first = self.start_sluice(config_answering("first\n"), concurrency=2)
        addr = first.addr("web")
        second = self.start_sluice(config_answering("second\n", port=addr[1]), wait=False,
                                   concurrency=2)
        self.assert_refused(second, addr)
        # The first one keeps serving, every connection.
        for _ in range(20):
            self.assertEqual(self.get(addr), b"first\n")
        self.stop_sluice(first)

    def test_refused_with_a_shared_socket_too(self):
        first = self.start_sluice(config_answering("first\n"), concurrency=1)
        addr = first.addr("web")
        second = self.start_sluice(config_answering("second\n", port=addr[1], reusePort=False),
                                   wait=False, concurrency=1)
        self.assert_refused(second, addr)
        self.assertEqual(self.get(addr), b"first\n")
        self.stop_sluice(first)

    def test_sharing_allowed_when_the_listener_says_so(self):
        first = self.start_sluice(config_answering("first\n"), concurrency=1)
        addr = first.addr("web")
        second = self.start_sluice(
            config_answering("second\n", port=addr[1], reusePortWithOtherProcesses=True),
            concurrency=1)
        self.assertEqual(second.addr("web"), addr)
        self.assertIn("port shared with other processes allowed", second.log_text())
        # The kernel spreads new connections over both processes' sockets (by a hash of the
        # client's port): within a bounded number of connections both answer.
        seen = set()
        for _ in range(500):
            seen.add(self.get(addr))
            if len(seen) == 2:
                break
        self.assertEqual(seen, {b"first\n", b"second\n"})
        self.stop_sluice(second)
        self.stop_sluice(first)

    def test_port_of_a_draining_predecessor_can_be_taken(self):
        # The predecessor has closed its listener but still serves a connection: its port is
        # free for a new process (a restart while the old one drains).
        echo = self.server(harness.EchoServer)
        old = self.start_sluice(harness.tcp_proxy_config([echo.addr], drain_timeout="600s"),
                                concurrency=1)
        addr = old.addr("l")
        c = self.client(old)
        self.assertEqual(harness.echo_roundtrip(c, b"old"), b"old")
        old.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + harness.STATS_TIMEOUT
        while not harness.connect_refused(addr):
            self.assertLess(time.monotonic(), deadline, "the old listener is still open")
            time.sleep(harness.POLL_INTERVAL)
        config = harness.tcp_proxy_config([echo.addr])
        config["listeners"][0]["address"]["port"] = addr[1]
        new = self.start_sluice(config, concurrency=1)
        self.assertEqual(new.addr("l"), addr)
        c2 = self.client(new)
        self.assertEqual(harness.echo_roundtrip(c2, b"new"), b"new")
        self.assertEqual(harness.echo_roundtrip(c, b"old still"), b"old still")
        c.close()
        self.assertEqual(old.wait_exit(), 0)
        c2.close()
        self.stop_sluice(new)


if __name__ == "__main__":
    harness.main()
