#!/usr/bin/python3
"""Runs h2spec.py against reference HTTP/2 servers on loopback, to check the judge itself.

Each peer runs from a temporary directory of its own (its config, logs, pid file, a self-signed
certificate made by the openssl CLI, and a small index.html), on ports the kernel picked, as the
current user, and is stopped (by its process id) afterwards:

- nghttpd (Debian nghttp2-server): `nghttpd --no-tls PORT` (h2c) and `nghttpd PORT KEY CERT`.
- nginx 1.22 (Debian nginx): `listen PORT http2;` (h2c) and `listen PORT ssl http2;`, serving
  the static page; one more plain HTTP/1.1 listener is haproxy's backend.
- haproxy 2.6 (Debian haproxy): `bind PORT proto h2` and `bind PORT ssl crt FILE alpn h2`, in
  front of that nginx HTTP/1.1 listener (a backend makes haproxy read the whole request before
  the response, as a proxy does; `http-request return` would answer before the frames under
  test arrive).

    python3 test/integration/h2spec_peers.py [--peers nghttpd,nginx,haproxy] [--json FILE]
    python3 test/integration/h2spec_peers.py --unittest -v     # compare with EXPECTED_FAILURES

Peers whose program is not installed are skipped.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2spec  # noqa: E402

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# What each peer fails, with the reasons investigated in H2SPEC.md (the same over h2c and TLS).
EXPECTED_FAILURES = {
    "nghttpd": {
        "http2/5.1.1/2",
    },
    "haproxy": set(),
    "nginx": {
        "http2/4.2/2", "http2/4.2/3",
        "http2/5.1/1", "http2/5.1/2", "http2/5.1/3", "http2/5.1/5", "http2/5.1/8",
        "http2/5.1/11",
        "http2/6.1/2", "http2/6.4/2", "http2/6.9.1/3",
        "http2/8.1.2.1/1", "http2/8.1.2.1/2", "http2/8.1.2.1/4",
        "http2/8.1.2.2/1", "http2/8.1.2.2/2",
        "http2/8.1.2.3/1", "http2/8.1.2.3/2", "http2/8.1.2.3/3", "http2/8.1.2.3/4",
        "http2/8.1.2.3/5", "http2/8.1.2.3/6", "http2/8.1.2.3/7",
        "http2/8.1.2.6/1", "http2/8.1.2.6/2",
        "hpack/4.2/1", "hpack/5.2/1",
    },
}

INDEX_HTML = b"""<!DOCTYPE html>
<html>
<head><title>h2spec</title></head>
<body><h1>It works</h1><p>A page of a few hundred octets, so that the flow-control cases of
h2spec have a response body to send one octet at a time.</p></body>
</html>
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=READY_TIMEOUT):
    """Polls until 127.0.0.1:port accepts a connection (bounded), or the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("exited with status %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d not listening after %.0fs" % (port, timeout))


class Peers:
    """The reference servers, started on demand in one temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="h2spec-peers-")
        self.procs = []
        os.makedirs(os.path.join(self.dir, "www"))
        with open(os.path.join(self.dir, "www", "index.html"), "wb") as f:
            f.write(INDEX_HTML)
        self.key = os.path.join(self.dir, "key.pem")
        self.cert = os.path.join(self.dir, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        self.both = os.path.join(self.dir, "both.pem")
        with open(self.both, "w") as out:
            for path in (self.cert, self.key):
                with open(path) as f:
                    out.write(f.read())
        self.nginx_h1_port = None

    def _spawn(self, name, args, ports, cwd=None):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd or self.dir)
        log.close()
        self.procs.append(proc)
        for port in ports:
            wait_listening(port, proc)
        return proc

    def nghttpd(self):
        """(h2c port, TLS port)."""
        h2c, tls = free_port(), free_port()
        www = os.path.join(self.dir, "www")
        self._spawn("nghttpd-h2c", ["nghttpd", "--no-tls", "-d", www, str(h2c)], [h2c])
        self._spawn("nghttpd-tls", ["nghttpd", "-d", www, str(tls), self.key, self.cert], [tls])
        return h2c, tls

    def nginx(self):
        if self.nginx_h1_port is not None:
            return self._nginx_ports
        h2c, tls, h1 = free_port(), free_port(), free_port()
        prefix = os.path.join(self.dir, "nginx")
        os.makedirs(os.path.join(prefix, "logs"))
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
master_process off;
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log logs/access.log;
    client_body_temp_path tmp_body;
    proxy_temp_path tmp_proxy;
    fastcgi_temp_path tmp_fastcgi;
    uwsgi_temp_path tmp_uwsgi;
    scgi_temp_path tmp_scgi;
    server {
        listen 127.0.0.1:%d http2;
        listen 127.0.0.1:%d ssl http2;
        listen 127.0.0.1:%d;
        ssl_certificate %s;
        ssl_certificate_key %s;
        root %s;
        location / { index index.html; }
    }
}
""" % (h2c, tls, h1, self.cert, self.key, os.path.join(self.dir, "www")))
        self._spawn("nginx", ["nginx", "-p", prefix, "-c", conf, "-e",
                              os.path.join(prefix, "logs", "error.log")], [h2c, tls, h1])
        self.nginx_h1_port = h1
        self._nginx_ports = (h2c, tls)
        return h2c, tls

    def haproxy(self):
        self.nginx()
        h2c, tls = free_port(), free_port()
        conf = os.path.join(self.dir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("""global
    maxconn 1000
defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%d proto h2
    bind 127.0.0.1:%d ssl crt %s alpn h2
    default_backend be
backend be
    server nginx 127.0.0.1:%d
""" % (h2c, tls, self.both, self.nginx_h1_port))
        self._spawn("haproxy", ["haproxy", "-db", "-f", conf], [h2c, tls])
        return h2c, tls

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


PROGRAMS = {"nghttpd": "nghttpd", "nginx": "nginx", "haproxy": "haproxy"}


def available(peer):
    return shutil.which(PROGRAMS[peer]) is not None and shutil.which("openssl") is not None


def run_peer(peers, peer, timeout=h2spec.DEFAULT_TIMEOUT, out=None, profile="master"):
    """{"h2c": [Result], "tls": [Result]} for one peer."""
    h2c, tls = getattr(peers, peer)()
    results = {}
    for transport, port in (("h2c", h2c), ("tls", tls)):
        config = h2spec.Config("127.0.0.1", port, tls=transport == "tls", timeout=timeout,
                               profile=profile)
        start = time.monotonic()
        results[transport] = h2spec.run(config)
        if out is not None:
            out.write("%-8s %-4s %s (%.1fs)\n" % (peer, transport,
                                                  h2spec.summary(results[transport]),
                                                  time.monotonic() - start))
            for r in results[transport]:
                if not r.passed:
                    out.write("    %s %s: %s\n" % (r.status, r.id, r.reason))
            out.flush()
    return results


class H2specReferenceTest(unittest.TestCase):
    """The judge agrees with what these servers are known to do (EXPECTED_FAILURES)."""

    @classmethod
    def setUpClass(cls):
        cls.peers = Peers()

    @classmethod
    def tearDownClass(cls):
        cls.peers.stop()

    def check(self, peer):
        if not available(peer):
            self.skipTest("%s is not installed" % peer)
        for transport, results in run_peer(self.peers, peer).items():
            with self.subTest(transport=transport):
                self.assertEqual(len(results), 146)
                failed = {r.id for r in results if not r.passed}
                self.assertEqual(failed, EXPECTED_FAILURES[peer],
                                 "\n".join("%s: %s" % (r.id, r.reason) for r in results
                                           if not r.passed))

    def test_nghttpd(self):
        self.check("nghttpd")

    def test_haproxy(self):
        self.check("haproxy")

    def test_nginx(self):
        self.check("nginx")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", default="nghttpd,nginx,haproxy")
    parser.add_argument("--timeout", type=float, default=h2spec.DEFAULT_TIMEOUT)
    parser.add_argument("--profile", choices=h2spec.PROFILES, default="master")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--unittest", action="store_true",
                        help="run H2specReferenceTest (remaining arguments go to unittest)")
    args, rest = parser.parse_known_args()
    if args.unittest:
        unittest.main(argv=[sys.argv[0]] + rest)
        return 0
    peers = Peers()
    table = {}
    try:
        for peer in args.peers.split(","):
            if not available(peer):
                print("%s: not installed, skipped" % peer)
                continue
            table[peer] = run_peer(peers, peer, args.timeout, out=sys.stdout,
                                   profile=args.profile)
    finally:
        peers.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({peer: {t: [r.to_dict() for r in rs] for t, rs in by.items()}
                       for peer, by in table.items()}, f, indent=2)
    mismatch = False
    for peer, by in table.items() if args.profile == "master" else ():
        for transport, results in by.items():
            failed = {r.id for r in results if not r.passed}
            if failed != EXPECTED_FAILURES[peer]:
                mismatch = True
                print("%s %s differs from EXPECTED_FAILURES: new %s, gone %s" % (
                    peer, transport, sorted(failed - EXPECTED_FAILURES[peer]),
                    sorted(EXPECTED_FAILURES[peer] - failed)))
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
