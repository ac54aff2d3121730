"""sluice's OCI image (deploy/oci): built offline by deploy/oci/build-image (debootstrap from the
machine's apt mirror + buildah from scratch, no registry), then run with podman, read-only and as
uid 65532: it serves a real request to a local origin, validates its default config, shows no
missing library and no OpenSSL libssl.so.3, and drains and exits 0 on `podman stop`. The same
image's root is also run without a container runtime (chroot in a private mount namespace, root
file system read-only, as uid 65532), so that a machine where podman cannot start containers still
checks what the image holds. deploy/oci/Dockerfile is checked to say the same user, entrypoint,
cmd, port and paths.

Skipped, with the reason printed, where the machine cannot build the image: not root, debootstrap,
buildah or podman missing, no apt mirror reachable and no cached root file system (build-image
exits 77 and says which), and in the sanitized suite (the image is the Release build's). The
podman tests are skipped, with podman's own error, where podman cannot run a container here (after
trying runc where crun refuses the machine's cgroups, and lower rlimits where podman's defaults
are refused); the chroot tests run anyway.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness

ROOT = harness.repo_root()
OCI_DIR = os.path.join(ROOT, "deploy", "oci")
BUILD_DIR = os.environ.get("SLUICE_BUILD_DIR", os.path.join(ROOT, "build"))

# What both images say (build-image's `buildah config`, the Dockerfile's last stage).
USER = "65532:65532"
UID = 65532
ENTRYPOINT = ["/usr/bin/sluice"]
CMD = ["-c", "/etc/sluice/sluice.yaml"]
PORTS = ["8080/tcp", "9902/tcp"]
PATHS = ["/usr/bin/sluice", "/usr/lib/sluice/plugins/", "/etc/sluice/sluice.yaml"]

# A cold build-image downloads and unpacks about a hundred packages; it may also wait for the
# build lock while another build runs (SLUICE_OCI_LOCK_WAIT bounds that wait).
LOCK_WAIT = 900
BUILD_TIMEOUT = 1500
RUN_TIMEOUT = 60


def log(msg):
    sys.stderr.write("oci_image_test: %s\n" % msg)
    sys.stderr.flush()


def run(cmd, timeout=RUN_TIMEOUT, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def dockerfile_stages(path):
    """The Dockerfile as a list of stages, each a list of (INSTRUCTION, argument text), with
    continuation lines joined and comments dropped."""
    stages = []
    logical = ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not logical and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                logical += line[:-1] + " "
                continue
            logical += line
            word, _, rest = logical.strip().partition(" ")
            logical = ""
            word = word.upper()
            if word == "FROM":
                stages.append([])
            stages[-1].append((word, rest.strip()))
    return stages


def deps_packages():
    """The packages tools/deps installs."""
    with open(os.path.join(ROOT, "tools", "deps")) as f:
        text = f.read()
    body = re.search(r"packages=\((.*?)\n\)", text, re.S).group(1)
    words = []
    for line in body.splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


def runtime_packages():
    with open(os.path.join(OCI_DIR, "runtime-packages")) as f:
        return {l.split("#", 1)[0].strip() for l in f} - {""}


class DockerfileTest(unittest.TestCase):
    """deploy/oci/Dockerfile (for machines with a registry) makes the layout build-image makes.
    Needs nothing but the files."""

    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile_stages(os.path.join(OCI_DIR, "Dockerfile"))

    def last(self, word):
        values = [arg for (w, arg) in self.stages[-1] if w == word]
        self.assertTrue(values, "no %s in the Dockerfile's last stage" % word)
        return values[-1]

    def test_two_stages_from_debian_bookworm(self):
        self.assertEqual(2, len(self.stages))
        self.assertRegex(self.stages[0][0][1], r"^debian:bookworm\s+AS\s+build$")
        self.assertEqual("debian:bookworm-slim", self.stages[1][0][1])

    def test_user_entrypoint_cmd_port_as_build_image_makes_them(self):
        self.assertEqual(USER, self.last("USER"))
        self.assertEqual(ENTRYPOINT, json.loads(self.last("ENTRYPOINT")))
        self.assertEqual(CMD, json.loads(self.last("CMD")))
        self.assertEqual(PORTS, [p if "/" in p else p + "/tcp" for p in self.last("EXPOSE").split()])
        self.assertEqual("/", self.last("WORKDIR"))
        self.assertEqual("SIGTERM", self.last("STOPSIGNAL"))

    def test_same_paths_user_and_packages(self):
        copies = [arg.split()[-1] for (w, arg) in self.stages[-1] if w == "COPY"]
        for p in PATHS:
            self.assertIn(p, copies)
        runs = " ".join(arg for (w, arg) in self.stages[-1] if w == "RUN")
        self.assertIn("/tmp/runtime-packages", runs)
        self.assertIn("deploy/oci/runtime-packages /tmp/runtime-packages",
                      " ".join(arg for (w, arg) in self.stages[-1] if w == "COPY"))
        self.assertRegex(runs, r"groupadd --gid %d sluice" % UID)
        self.assertRegex(runs, r"useradd .*--uid %d --gid %d .*--shell /usr/sbin/nologin" %
                         (UID, UID))
        self.assertRegex(runs, r"install -d -o %d -g %d -m 0700 /run/sluice" % (UID, UID))
        # build-image says the same (its buildah config and its root).
        with open(os.path.join(OCI_DIR, "build-image")) as f:
            script = f.read()
        for needle in ["uid=%d" % UID, "--user \"$uid:$uid\"",
                       "--entrypoint '%s'" % json.dumps(ENTRYPOINT, separators=(",", ":")),
                       "--cmd '%s'" % json.dumps(CMD, separators=(",", ":")),
                       "--port %s" % PORTS[0], "--port %s" % PORTS[1], "--workingdir /", "/usr/lib/sluice/plugins",
                       "/etc/sluice/sluice.yaml", "-m 0700 \"$img/run/sluice\""]:
            self.assertIn(needle, script)

    def test_build_stage_installs_tools_deps_build_packages(self):
        runs = " ".join(arg for (w, arg) in self.stages[0] if w == "RUN")
        installed = set(re.search(r"--no-install-recommends (.*?)&&", runs).group(1).split())
        deps = deps_packages()
        self.assertLessEqual(installed, deps, "the Dockerfile installs what tools/deps does not")
        # Every library's -dev package but the tests' (GoogleTest: the tests are not built).
        wanted = {p for p in deps if p.endswith("-dev") and not p.startswith(("libgtest",
                                                                              "libgmock"))}
        self.assertLessEqual(wanted, installed)
        self.assertIn("-DSLUICE_BUILD_TESTS=OFF", runs)
        self.assertIn("-DCMAKE_INSTALL_LIBDIR=lib", runs)

    def test_default_config_validates(self):
        p = harness.run_cli(["--mode", "validate", "-c", os.path.join(OCI_DIR, "sluice.yaml")])
        self.assertEqual(0, p.returncode, p)


class ImageFixture:
    """The image built once for the tests below, its podman run options (found by trying), and
    its root mounted by buildah for the chroot tests."""

    tag = "localhost/sluice-oci-test:%d" % os.getpid()
    skip_reason = None      # the image could not be built here
    podman_reason = None    # podman cannot run it here
    podman_opts = []
    root = None             # the image's root (buildah mount)
    container = None
    build_seconds = None

    @classmethod
    def build(cls):
        if harness.sanitized():
            cls.skip_reason = ("the image holds the plain Release build (an ASan binary would "
                               "need the sanitizer runtimes in it): run with build/")
            return
        if os.geteuid() != 0:
            cls.skip_reason = "needs root (debootstrap, chroot, buildah's root storage)"
            return
        for tool in ("buildah", "podman", "debootstrap", "unshare", "chroot"):
            if not shutil.which(tool):
                cls.skip_reason = "%s is not installed (tools/deps installs it)" % tool
                return
        env = dict(os.environ, SLUICE_OCI_LOCK_WAIT=str(LOCK_WAIT))
        start = time.monotonic()
        # timeout(1) sends SIGTERM first, so that build-image cleans up (its mounts, its
        # buildah container) before the test gives up.
        p = run(["timeout", "--kill-after=30", str(BUILD_TIMEOUT),
                 os.path.join(OCI_DIR, "build-image"), "--build-dir", BUILD_DIR,
                 "--tag", cls.tag], timeout=BUILD_TIMEOUT + 60, env=env)
        cls.build_seconds = time.monotonic() - start
        sys.stderr.write(p.stderr)
        if p.returncode == 77:
            lines = [l for l in p.stderr.splitlines() if "cannot build" in l]
            cls.skip_reason = lines[-1] if lines else p.stderr.strip()
            return
        if p.returncode != 0:
            raise AssertionError("deploy/oci/build-image failed (%d%s):\n%s" % (
                p.returncode, ", timed out after %ds" % BUILD_TIMEOUT if p.returncode == 124 else "",
                p.stderr))
        log("image %s built in %.0fs" % (cls.tag, cls.build_seconds))
        cls.find_podman_options()
        ctr = run(["buildah", "from", "--quiet", cls.tag])
        if ctr.returncode != 0:
            raise AssertionError("buildah from %s: %s" % (cls.tag, ctr.stderr))
        cls.container = ctr.stdout.strip()
        mnt = run(["buildah", "mount", cls.container])
        if mnt.returncode != 0:
            raise AssertionError("buildah mount: %s" % mnt.stderr)
        cls.root = mnt.stdout.strip()

    @classmethod
    def find_podman_options(cls):
        """Runs `sluice --version` in the image, adding what this machine turns out to need:
        runc where crun refuses the machine's cgroups, explicit limits where podman's default
        rlimits exceed what the machine lets it set. Anything else: podman cannot run it here."""
        opts = []
        for _ in range(4):
            p = run(["podman", "run", "--rm"] + opts + [cls.tag, "--version"])
            if p.returncode == 0 and p.stdout.startswith("sluice "):
                if opts:
                    log("podman runs the image with %s" % " ".join(opts))
                cls.podman_opts = opts
                return
            err = (p.stderr or p.stdout).strip()
            if "rlimit" in err.lower() and "--ulimit" not in opts:
                # Rootful podman asks for nofile 1048576 (and a large nproc); a machine without
                # CAP_SYS_RESOURCE or with lower hard limits refuses. Stay within ours.
                nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                log("podman: %s -> trying --ulimit nofile=%d, nproc=4096" % (err, nofile))
                opts += ["--ulimit", "nofile=%d:%d" % (nofile, nofile),
                         "--ulimit", "nproc=4096:4096"]
            elif "--runtime" not in opts and shutil.which("runc"):
                # The default runtime failed: crun, for one, refuses cgroup v1+v2 "hybrid" hosts
                # whose v2 hierarchy has a controller ("cgroups in hybrid mode not supported").
                log("podman: %s -> trying --runtime runc" % err)
                opts += ["--runtime", "runc"]
            else:
                cls.podman_reason = "podman cannot run a container here: %s" % err
                log(cls.podman_reason)
                return
        cls.podman_reason = "podman cannot run a container here: %s" % err
        log(cls.podman_reason)

    @classmethod
    def remove(cls):
        if cls.container:
            run(["buildah", "rm", cls.container])
            cls.container = None
        if cls.skip_reason is None:
            run(["podman", "rmi", "--force", cls.tag], timeout=120)


def setUpModule():
    if os.path.exists(harness.sluice_bin()):
        ImageFixture.build()


def tearDownModule():
    ImageFixture.remove()


class ImageTestCase(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        if ImageFixture.skip_reason:
            self.skipTest(ImageFixture.skip_reason)

    def origin_config(self, origin):
        """A config with one listener (127.0.0.1, port 0) routed to `origin`, admin and the
        health probe listener on 127.0.0.1 port 0, and the control socket where the image's
        default has it."""
        cfg = harness.routed_config(origin.addr[1])
        cfg["controlSocket"] = "/run/sluice/control.sock"
        cfg["admin"]["probeAddress"] = {"address": "127.0.0.1", "port": 0}
        return cfg

    def workdir(self):
        """config/ (read by sluice) and out/ (its ports file; writable by uid 65532)."""
        config_dir = os.path.join(self.tmpdir, "config")
        out_dir = os.path.join(self.tmpdir, "out")
        os.makedirs(config_dir)
        os.makedirs(out_dir)
        os.chmod(self.tmpdir, 0o755)
        os.chmod(config_dir, 0o755)
        os.chown(out_dir, UID, UID)
        return config_dir, out_dir

    def wait_ports(self, path, alive, logs):
        deadline = time.monotonic() + harness.READY_TIMEOUT
        while not os.path.exists(path):
            if not alive():
                self.fail("sluice exited before writing its ports file:\n%s" % logs())
            if time.monotonic() > deadline:
                self.fail("no ports file after %.0fs:\n%s" % (harness.READY_TIMEOUT, logs()))
            time.sleep(harness.POLL_INTERVAL)
        ports = {}
        with open(path) as f:
            for line in f.read().splitlines():
                name, hostport = line.split()
                host, _, port = hostport.rpartition(":")
                ports[name] = (host, int(port))
        return ports

    def check_ldd(self, out):
        self.assertNotIn("not found", out)
        self.assertNotIn("libssl.so.3", out)
        self.assertRegex(out, r"libssl\.so\.0 => /usr/lib/[^/]+/android/libssl\.so\.0")
        self.assertIn("/usr/lib/sluice/plugins/router.so:", out)

    def request_through(self, ports, origin, path="/via-image"):
        c = harness.HttpClient.connect(ports["web"])
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", path))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertTrue(r.body.startswith(b"GET " + path.encode()), r.raw)
        origin.wait_request(lambda m, p, h: p == path)
        # And the health probe the image's default config has too.
        probe = harness.HttpClient.connect(ports["admin_probe"])
        self.addCleanup(probe.close)
        probe.send(harness.http_request("GET", "/ready"))
        r = probe.read_response()
        self.assertEqual(200, r.status, r.raw)
        return c


class PodmanTest(ImageTestCase):
    """The image run by podman: --read-only, host network (loopback only), uid 65532."""

    def setUp(self):
        super().setUp()
        if ImageFixture.podman_reason:
            self.skipTest(ImageFixture.podman_reason)

    def podman_run(self, args, timeout=RUN_TIMEOUT):
        return run(["podman", "run", "--rm"] + ImageFixture.podman_opts + args,
                   timeout=timeout)

    def test_image_config(self):
        p = run(["podman", "image", "inspect", ImageFixture.tag])
        self.assertEqual(0, p.returncode, p.stderr)
        config = json.loads(p.stdout)[0]["Config"]
        self.assertEqual(USER, config["User"])
        self.assertEqual(ENTRYPOINT, config["Entrypoint"])
        self.assertEqual(CMD, config["Cmd"])
        self.assertEqual(PORTS, sorted(config["ExposedPorts"]))
        self.assertEqual("/", config["WorkingDir"])
        self.assertEqual("SIGTERM", config["StopSignal"])

    def test_ldd_in_the_container(self):
        p = self.podman_run(["--read-only", "--entrypoint", "/bin/sh", ImageFixture.tag, "-c",
                             "ldd /usr/bin/sluice /usr/lib/sluice/plugins/*.so"])
        self.assertEqual(0, p.returncode, p.stderr)
        self.check_ldd(p.stdout)

    def test_default_config_validates_in_the_container(self):
        p = self.podman_run(["--read-only", ImageFixture.tag, "--mode", "validate", "-c",
                             "/etc/sluice/sluice.yaml"])
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        self.assertEqual("ok", p.stdout.strip())

    def test_serves_read_only_as_uid_65532_and_drains_on_stop(self):
        origin = self.server(harness.HttpOrigin)
        config_dir, out_dir = self.workdir()
        harness.write_config(self.origin_config(origin), config_dir, "sluice.json")
        name = "sluice-oci-test-%d" % os.getpid()
        self.addCleanup(run, ["podman", "rm", "--force", "--time", "0", name])
        # As deploy/oci/README.md says: read-only, /run/sluice a tmpfs owned by the image's user.
        p = run(["podman", "run", "--detach", "--name", name] + ImageFixture.podman_opts +
                ["--read-only", "--tmpfs", "/run/sluice:U", "--network", "host",
                 "-v", "%s:/config:ro" % config_dir, "-v", "%s:/out" % out_dir,
                 ImageFixture.tag, "-c", "/config/sluice.json", "--ports-file", "/out/ports"])
        self.assertEqual(0, p.returncode, p.stderr)

        def state(field):
            s = run(["podman", "inspect", "--format", "{{.State.%s}}" % field, name])
            return s.stdout.strip()

        def logs():
            return run(["podman", "logs", name]).stderr[-20000:]

        ports = self.wait_ports(os.path.join(out_dir, "ports"),
                                lambda: state("Running") == "true", logs)

        # The process itself, seen from the host: uid and gid 65532 (real, effective, saved,
        # file system), root mounted read-only.
        pid = int(state("Pid"))
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        for field in ("Uid", "Gid"):
            ids = re.search(r"^%s:\s+(.*)$" % field, status, re.M).group(1).split()
            self.assertEqual([str(UID)] * 4, ids, field)
        with open("/proc/%d/mountinfo" % pid) as f:
            root_mount = [l for l in f if l.split()[4] == "/"][0]
        self.assertIn("ro", root_mount.split()[5].split(","), root_mount)
        w = run(["podman", "exec", "--user", "0", name, "touch", "/etc/sluice/written"])
        self.assertNotEqual(0, w.returncode)
        self.assertIn("Read-only file system", w.stderr)

        # A real request through sluice to the origin on the host's loopback, then one left in
        # flight at the origin while `podman stop` (SIGTERM) starts the drain: it completes, and
        # sluice exits 0.
        self.request_through(ports, origin)
        gate = origin.gate("stop")
        c = harness.HttpClient.connect(ports["web"])
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", "/gate/stop"))
        origin.wait_request(lambda m, p, h: p == "/gate/stop")
        started = time.monotonic()
        stop = subprocess.Popen(["podman", "stop", "--time", "30", name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(stop.kill)
        harness.wait_until(lambda: "draining" in logs(), "sluice draining after podman stop")
        gate.set()
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertTrue(r.has_token("connection", "close"), r.raw)
        out, err = stop.communicate(timeout=60)
        self.assertEqual(0, stop.returncode, err)
        elapsed = time.monotonic() - started
        self.assertEqual("0", state("ExitCode"), logs())
        self.assertIn("exited cleanly", logs())
        # The drain ended with its last connection, well before podman's 30 s and SIGKILL.
        self.assertLess(elapsed, 20, logs())


class ChrootTest(ImageTestCase):
    """The image's root without a container runtime: chroot in a private mount namespace (the
    root bind-mounted read-only, a fresh /proc, tmpfs on /run/sluice), as uid 65532."""

    def in_image(self, command, binds=(), popen=False, **kw):
        root = ImageFixture.root
        script = ["set -e", 'mount --bind "$R" "$R"', 'mount -o remount,bind,ro "$R"',
                  'mount -t proc proc "$R/proc"', 'mount -t tmpfs -o mode=0755 tmpfs "$R/dev"',
                  'touch "$R/dev/null" && mount --bind /dev/null "$R/dev/null"',
                  'mount -t tmpfs -o mode=0700,uid=%d,gid=%d tmpfs "$R/run/sluice"' % (UID, UID)]
        for i, (src, dst) in enumerate(binds):
            script.append('mount --bind "$B%d" "$R%s"' % (i, dst))
        script.append('exec chroot --userspec=%d:%d "$R" "$@"' % (UID, UID))
        env = dict(os.environ, R=root)
        for i, (src, _) in enumerate(binds):
            env["B%d" % i] = src
        # No --fork: the mount namespace is this process's, and `exec` keeps its pid down to
        # sluice, which gets the signals sent to it.
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
               "\n".join(script), "sh"] + list(command)
        if popen:
            return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, **kw)
        return run(cmd, env=env)

    def test_ldd_and_validate_in_the_root(self):
        p = self.in_image(["/bin/sh", "-c", "ldd /usr/bin/sluice /usr/lib/sluice/plugins/*.so"])
        self.assertEqual(0, p.returncode, p.stderr)
        self.check_ldd(p.stdout)
        p = self.in_image(["/usr/bin/sluice", "--mode", "validate", "-c",
                           "/etc/sluice/sluice.yaml"])
        self.assertEqual(0, p.returncode, p.stdout + p.stderr)
        self.assertEqual("ok", p.stdout.strip())
        p = self.in_image(["/bin/sh", "-c", "id -u; touch /etc/sluice/x 2>&1; echo $?"])
        self.assertEqual(str(UID), p.stdout.split()[0])
        self.assertIn("Read-only file system", p.stdout)

    def test_serves_from_the_read_only_root_and_drains(self):
        origin = self.server(harness.HttpOrigin)
        config_dir, out_dir = self.workdir()
        harness.write_config(self.origin_config(origin), config_dir, "sluice.json")
        stderr_path = os.path.join(self.tmpdir, "stderr")
        with open(stderr_path, "wb") as stderr:
            proc = self.in_image(["/usr/bin/sluice", "-c", "/mnt/sluice.json",
                                  "--ports-file", "/tmp/ports"],
                                 binds=[(config_dir, "/mnt"), (out_dir, "/tmp")], popen=True,
                                 stdout=stderr, stderr=stderr)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait(10)))

        def logs():
            with open(stderr_path, errors="replace") as f:
                return f.read()[-20000:]

        ports = self.wait_ports(os.path.join(out_dir, "ports"), lambda: proc.poll() is None,
                                logs)
        with open("/proc/%d/status" % proc.pid) as f:
            self.assertRegex(f.read(), r"(?m)^Uid:\s+%d\s+%d\s+%d\s+%d$" % ((UID,) * 4))
        self.request_through(ports, origin)
        proc.terminate()
        self.assertEqual(0, proc.wait(harness.EXIT_TIMEOUT), logs())
        self.assertIn("exited cleanly", logs())


if __name__ == "__main__":
    harness.main()
