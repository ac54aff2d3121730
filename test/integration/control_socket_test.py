"""The control socket (api/sluice/control/v1/control.proto), spoken by a real client over a
unix socket: status, stats, drain; its file's mode and peer-credential check; a live socket path
refused, a stale one replaced; and what a foreign peer gets."""

import os
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import http_config  # noqa: E402


def load_control_pb2():
    """control_pb2 made from the tree's proto with the system protoc (nothing generated is
    kept in git)."""
    out = tempfile.mkdtemp(prefix="sluice-control-pb2-")
    api = os.path.join(harness.repo_root(), "api")
    subprocess.run(["protoc", "--python_out=" + out, "-I" + api,
                    os.path.join(api, "sluice/control/v1/control.proto")], check=True)
    sys.path.insert(0, out)
    from sluice.control.v1 import control_pb2  # noqa: E402
    return control_pb2


pb = load_control_pb2()


class ControlClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(harness.IO_TIMEOUT)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def read(self):
        """The next Response, or None at EOF."""
        head = self._exactly(4)
        if head is None:
            return None
        body = self._exactly(struct.unpack(">I", head)[0])
        r = pb.Response()
        r.ParseFromString(body)
        return r

    def call(self, **command):
        req = pb.Request(protocol=pb.PROTOCOL_VERSION, **command)
        body = req.SerializeToString()
        self.send_raw(struct.pack(">I", len(body)) + body)
        return self.read()

    def _exactly(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


class ControlSocketTest(harness.SluiceTestCase):
    def start(self, **kw):
        path = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(http_config(), args=("--control-socket", path), **kw)
        return s, path

    def client(self, path):
        c = ControlClient(path)
        self.addCleanup(c.close)
        return c

    def test_status_stats_and_drain(self):
        s, path = self.start(concurrency=2)
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)
        c = self.client(path)
        r = c.call(status=pb.StatusRequest())
        self.assertEqual("", r.error)
        self.assertEqual(s.pid, r.status.pid)
        self.assertEqual("live", r.status.state)
        self.assertEqual(2, r.status.concurrency)
        r = c.call(stats=pb.StatsRequest(filter=r"^server\.concurrency$"))
        self.assertEqual("server.concurrency 2\n", r.stats.text)
        r = c.call(stats=pb.StatsRequest(filter="("))
        self.assertIn("invalid stats filter", r.error)
        # Drain: sluice stops and exits cleanly, and removes its socket file.
        r = c.call(drain=pb.DrainRequest())
        self.assertEqual("", r.error)
        self.assertTrue(r.HasField("drain"))
        self.assertEqual(0, s.wait_exit())
        self.assertFalse(os.path.exists(path))

    def test_foreign_peers_get_an_error_and_the_end(self):
        s, path = self.start()
        future = pb.Request(protocol=2, status=pb.StatusRequest()).SerializeToString()
        for data in (struct.pack(">I", len(future)) + future,  # another major version
                     b"\x7f\x00\x00\x00",                     # a length no peer of ours sends
                     struct.pack(">I", 3) + b"\xff\xff\xff"):  # not a request
            c = self.client(path)
            c.send_raw(data)
            r = c.read()
            self.assertNotEqual("", r.error, data)
            self.assertIsNone(c.read())
        # Still serving.
        self.assertEqual("live", self.client(path).call(status=pb.StatusRequest()).status.state)

    def test_a_live_path_is_refused_and_a_stale_one_replaced(self):
        s, path = self.start()
        second = self.start_sluice(http_config(), wait=False, name="second",
                                   args=("--control-socket", path))
        self.assertEqual(1, second.wait_exit())
        self.assertIn("another process listens on this socket", second.log_text())
        self.assertEqual("live", self.client(path).call(status=pb.StatusRequest()).status.state)
        self.stop_sluice(s)
        # A socket file nobody listens on (a process that died): replaced.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        s3, _ = self.start()
        self.assertEqual(s3.pid, self.client(path).call(status=pb.StatusRequest()).status.pid)

    def test_other_users_are_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root, to connect as another user")
        s, path = self.start()
        # Past the file's mode (loosened here on purpose), the credentials still keep others out.
        os.chmod(self.tmpdir, 0o711)
        os.chmod(path, 0o666)
        pid = os.fork()
        if pid == 0:  # the child: nobody
            code = 1
            try:
                # The socket's directory is entered as root and named relative to it: only that
                # directory's own mode counts, not its parents' (a machine's /tmp may be 0700).
                os.chdir(os.path.dirname(path))
                os.setgid(65534)
                os.setuid(65534)
                # Refused at once: the answer comes without a request.
                r = ControlClient(os.path.basename(path)).read()
                code = 0 if r is not None and "permission denied" in r.error else 2
            except BaseException as e:  # said, then the exit code tells
                sys.stderr.write("child: %r\n" % e)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(0, os.waitstatus_to_exitcode(status))
        self.assertEqual("live", self.client(path).call(status=pb.StatusRequest()).status.state)


if __name__ == "__main__":
    harness.main()
