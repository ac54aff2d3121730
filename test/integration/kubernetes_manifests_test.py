"""deploy/kubernetes: every manifest parsed (python3-yaml) and checked for what Kubernetes would
reject or silently get wrong — apiVersion/kind/name, selectors that match the pods' labels,
Service targetPorts that name real container ports, the HPA and PDB aimed at the Deployment,
container ports equal to the ports the embedded sluice config listens on, probes on paths the
probe listener serves, the security settings, a termination grace period longer than the
preStop drain can take — and then run: each embedded config (the Deployment's, the edge's, the
sidecar's) is validated and started with the real sluice (addresses on loopback, port 0, the
backend a local origin, the TLS files a test certificate), its probes answered 200 on its probe
listener, a request proxied, and its preStop command run against it as written (paths
swapped) to see it drain. `kubectl apply --dry-run=client` too, where kubectl works offline.

Every wait is for an event and bounded."""

import copy
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402
from admin_test import admin_request  # noqa: E402

K8S = os.path.join(harness.repo_root(), "deploy", "kubernetes")
MAIN_FILES = ["configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"]
EXAMPLES = ["examples/ingress-edge.yaml", "examples/sidecar.yaml"]
API_VERSIONS = {"ConfigMap": "v1", "Service": "v1", "Deployment": "apps/v1",
                "DaemonSet": "apps/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
                "PodDisruptionBudget": "policy/v1"}
WORKLOADS = ("Deployment", "DaemonSet")
CONFIG_PATH = "/etc/sluice/sluice.yaml"
BINARY = "/usr/bin/sluice"


def load(relpath):
    with open(os.path.join(K8S, relpath)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def manifest_sets():
    """{name: [objects]}: the main set (every top-level file together), and each example."""
    sets = {"main": [o for f in MAIN_FILES for o in load(f)]}
    for f in EXAMPLES:
        sets[f] = load(f)
    return sets


def seconds(text):
    """A duration of the config or the command line ("25s", "500ms", "1m") in seconds."""
    text = str(text)
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * factor
    return float(text)


def cpu(text):
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def of_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def sluice_container(workload):
    found = [c for c in pod_spec(workload)["containers"] if c["name"] == "sluice"]
    assert len(found) == 1, "one container named sluice in %s" % workload["metadata"]["name"]
    return found[0]


def config_map_of(objects, workload):
    """The ConfigMap whose sluice.yaml the workload's sluice reads at /etc/sluice."""
    mount = [m for m in sluice_container(workload)["volumeMounts"]
             if m["mountPath"] == os.path.dirname(CONFIG_PATH)]
    assert len(mount) == 1 and mount[0].get("readOnly"), "a read-only mount at /etc/sluice"
    volume = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount[0]["name"]][0]
    if "configMap" in volume:
        names = [volume["configMap"]["name"]]
    else:
        names = [s["configMap"]["name"] for s in volume["projected"]["sources"] if "configMap" in s]
    assert len(names) == 1, volume
    cms = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == names[0]]
    assert len(cms) == 1, "ConfigMap %s is in the same set" % names[0]
    return cms[0]


def sluice_config(objects, workload):
    return yaml.safe_load(config_map_of(objects, workload)["data"]["sluice.yaml"])


def pre_stop(container):
    return container["lifecycle"]["preStop"]["exec"]["command"]


def flag(command, name):
    assert command.count(name) == 1, (name, command)
    return command[command.index(name) + 1]


class ManifestTest(harness.SluiceTestCase):
    """The manifests as Kubernetes would take them (no cluster needed)."""

    def setUp(self):
        super().setUp()
        self.sets = manifest_sets()

    def test_every_object_has_its_api_version_kind_and_name(self):
        for name, objects in self.sets.items():
            self.assertTrue(objects, name)
            for o in objects:
                with self.subTest(set=name, kind=o.get("kind")):
                    self.assertIn(o.get("kind"), API_VERSIONS)
                    self.assertEqual(API_VERSIONS[o["kind"]], o.get("apiVersion"))
                    self.assertTrue(o.get("metadata", {}).get("name"))
        kinds = {f: [o["kind"] for o in load(f)] for f in MAIN_FILES}
        self.assertEqual({"configmap.yaml": ["ConfigMap"], "deployment.yaml": ["Deployment"],
                          "service.yaml": ["Service"], "hpa.yaml": ["HorizontalPodAutoscaler"],
                          "pdb.yaml": ["PodDisruptionBudget"]}, kinds)
        self.assertEqual(["ConfigMap", "DaemonSet", "Service"],
                         sorted(o["kind"] for o in self.sets[EXAMPLES[0]]))
        self.assertEqual(["ConfigMap", "Deployment", "Service"],
                         sorted(o["kind"] for o in self.sets[EXAMPLES[1]]))

    def test_selectors_match_the_pods_and_target_ports_name_container_ports(self):
        for name, objects in self.sets.items():
            workloads = [o for o in objects if o["kind"] in WORKLOADS]
            self.assertEqual(1, len(workloads), name)
            w = workloads[0]
            labels = w["spec"]["template"]["metadata"]["labels"]
            self.assertTrue(matches(w["spec"]["selector"]["matchLabels"], labels), name)
            ports = {p["name"]: p["containerPort"]
                     for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
            for svc in of_kind(objects, "Service"):
                self.assertTrue(matches(svc["spec"]["selector"], labels), (name, svc))
                for p in svc["spec"]["ports"]:
                    self.assertIn(p["targetPort"], ports, (name, p))
                    # The probe port is the kubelet's, never a Service's.
                    self.assertNotEqual("probe", p["targetPort"])
            for pdb in of_kind(objects, "PodDisruptionBudget"):
                self.assertTrue(matches(pdb["spec"]["selector"]["matchLabels"], labels))
            for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
                ref = hpa["spec"]["scaleTargetRef"]
                self.assertEqual((w["apiVersion"], w["kind"], w["metadata"]["name"]),
                                 (ref["apiVersion"], ref["kind"], ref["name"]))
                self.assertNotIn("replicas", w["spec"], "the HPA owns the replica count")
                self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
                self.assertEqual("cpu", hpa["spec"]["metrics"][0]["resource"]["name"])
            anti = pod_spec(w).get("affinity", {}).get("podAntiAffinity", {})
            for term in anti.get("preferredDuringSchedulingIgnoredDuringExecution", []):
                t = term["podAffinityTerm"]
                self.assertEqual("kubernetes.io/hostname", t["topologyKey"])
                self.assertTrue(matches(t["labelSelector"]["matchLabels"], labels))
        main = self.sets["main"]
        self.assertTrue(of_kind(main, "HorizontalPodAutoscaler") and
                        of_kind(main, "PodDisruptionBudget"))
        self.assertTrue(pod_spec(of_kind(main, "Deployment")[0])["affinity"]["podAntiAffinity"]
                        ["preferredDuringSchedulingIgnoredDuringExecution"])

    def test_container_ports_and_probes_match_the_embedded_config(self):
        for name, objects in self.sets.items():
            w = [o for o in objects if o["kind"] in WORKLOADS][0]
            c = sluice_container(w)
            config = sluice_config(objects, w)
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            listening = {l["address"]["port"] for l in config["listeners"]}
            self.assertEqual(listening | {config["admin"]["probe_address"]["port"]},
                             set(ports.values()), name)
            for l in config["listeners"]:
                self.assertEqual("0.0.0.0", l["address"]["address"], (name, l["name"]))
            # The admin on loopback (kubectl port-forward reaches it), the probes beyond it.
            self.assertEqual("127.0.0.1", config["admin"]["address"]["address"])
            self.assertEqual("0.0.0.0", config["admin"]["probe_address"]["address"])
            self.assertEqual(config["admin"]["probe_address"]["port"], ports["probe"])
            expected = {"readinessProbe": "/ready", "livenessProbe": "/live",
                        "startupProbe": "/live"}
            for probe, path in expected.items():
                self.assertIn(probe, c, name)
                get = c[probe]["httpGet"]
                self.assertEqual((path, "probe"), (get["path"], get["port"]), (name, probe))
                self.assertNotIn("httpHeaders", get)  # no token: the probe listener needs none

    def test_security_resources_and_termination(self):
        for name, objects in self.sets.items():
            w = [o for o in objects if o["kind"] in WORKLOADS][0]
            spec, c = pod_spec(w), sluice_container(w)
            config = sluice_config(objects, w)
            self.assertTrue(spec["securityContext"]["runAsNonRoot"])
            self.assertEqual(65532, spec["securityContext"]["runAsUser"])  # the image's user
            sc = c["securityContext"]
            self.assertEqual((False, True, ["ALL"]),
                             (sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"],
                              sc["capabilities"]["drop"]), name)
            self.assertEqual("sluice:latest", c["image"])
            self.assertEqual("IfNotPresent", c["imagePullPolicy"])
            self.assertEqual([BINARY], c["command"])
            self.assertEqual(["-c", CONFIG_PATH], c["args"])
            for kind in ("requests", "limits"):
                self.assertIn("cpu", c["resources"][kind], (name, kind))
                self.assertIn("memory", c["resources"][kind], (name, kind))
            # One worker per CPU of the limit, not per CPU of the node.
            self.assertEqual(config["concurrency"], int(cpu(c["resources"]["limits"]["cpu"])))
            # The control socket's directory is a writable emptyDir (the root is read-only).
            control_dir = os.path.dirname(config["control_socket"])
            run = [m for m in c["volumeMounts"] if m["mountPath"] == control_dir]
            self.assertEqual(1, len(run), name)
            volume = [v for v in spec["volumes"] if v["name"] == run[0]["name"]][0]
            self.assertIn("emptyDir", volume)
            self.assertFalse(run[0].get("readOnly", False))
            # preStop: sluice drain on that socket; the grace period outlasts all it can take.
            command = pre_stop(c)
            self.assertEqual([BINARY, "drain"], command[:2])
            self.assertEqual(config["control_socket"], flag(command, "--control-socket"))
            delay = seconds(flag(command, "--readiness-delay"))
            drain = (seconds(flag(command, "--timeout")) if "--timeout" in command
                     else seconds(config["drain_timeout"]) + 1)
            self.assertLessEqual(drain, seconds(config["drain_timeout"]) + 1)
            grace = spec["terminationGracePeriodSeconds"]
            self.assertGreater(grace, delay + seconds(config["drain_timeout"]) + 1, name)
            self.assertGreaterEqual(grace - (delay + drain), 5, "a margin for the exit")
            if w["kind"] == "Deployment" and name == "main":
                roll = w["spec"]["strategy"]["rollingUpdate"]
                self.assertEqual((1, 0), (roll["maxSurge"], roll["maxUnavailable"]))
        # The sidecar's application outlives sluice's drain (its preStop only waits).
        side = self.sets[EXAMPLES[1]]
        w = of_kind(side, "Deployment")[0]
        app = [c for c in pod_spec(w)["containers"] if c["name"] != "sluice"][0]
        config = sluice_config(side, w)
        delay = seconds(flag(pre_stop(sluice_container(w)), "--readiness-delay"))
        self.assertGreater(app["lifecycle"]["preStop"]["sleep"]["seconds"],
                           delay + seconds(config["drain_timeout"]) + 1)
        self.assertGreater(pod_spec(w)["terminationGracePeriodSeconds"],
                           app["lifecycle"]["preStop"]["sleep"]["seconds"])
        # The edge: the client's address is kept, and the certificate comes from a Secret.
        edge = self.sets[EXAMPLES[0]]
        svc = of_kind(edge, "Service")[0]
        self.assertEqual(("LoadBalancer", "Local"),
                         (svc["spec"]["type"], svc["spec"]["externalTrafficPolicy"]))
        volumes = pod_spec(of_kind(edge, "DaemonSet")[0])["volumes"]
        secrets = [s["secret"] for v in volumes for s in v.get("projected", {}).get("sources", [])
                   if "secret" in s]
        self.assertEqual(["tls.crt", "tls.key"], sorted(i["key"] for i in secrets[0]["items"]))

    def test_kubectl_dry_run(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed")
        # Never a real cluster: a kubeconfig whose server is a closed loopback port.
        kubeconfig = os.path.join(self.tmpdir, "kubeconfig")
        with open(kubeconfig, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "none",
                            "clusters": [{"name": "none", "cluster": {
                                "server": "http://127.0.0.1:%d" % harness.unused_port()}}],
                            "contexts": [{"name": "none",
                                          "context": {"cluster": "none", "user": "none"}}],
                            "users": [{"name": "none", "user": {}}]}, f)
        env = dict(os.environ, KUBECONFIG=kubeconfig)
        for f in MAIN_FILES + EXAMPLES:
            r = subprocess.run([kubectl, "apply", "--dry-run=client", "--validate=false",
                                "--request-timeout=5s", "-f", os.path.join(K8S, f)],
                               capture_output=True, text=True, timeout=60, env=env)
            if r.returncode != 0 and ("connection refused" in r.stderr or
                                      "unable to recognize" in r.stderr):
                # kubectl maps kinds to resources through the API server's discovery, even for
                # a client-side dry run.
                self.skipTest("kubectl apply --dry-run=client needs an API server for its "
                              "discovery here: %s" % r.stderr.strip().splitlines()[-1])
            self.assertEqual(0, r.returncode, (f, r.stderr))


class EmbeddedConfigTest(harness.SluiceTestCase):
    """Each embedded config, run by the real sluice."""

    def setUp(self):
        super().setUp()
        self.sets = manifest_sets()

    def local_config(self, config, origin):
        """The config with every address on loopback (port 0), its backend the origin, the
        control socket in the test's directory and the TLS files a test certificate."""
        config = copy.deepcopy(config)
        for l in config["listeners"]:
            l["address"] = {"address": "127.0.0.1", "port": 0}
            chain = l.get("default_filter_chain", {}).get("tls_context")
            if chain:
                pki = tls_pki.shared_pki()
                self.root = pki.ca("k8s-root")
                leaf = pki.server_cert(self.root, ["edge.test"])
                cert = chain["common_tls_context"]["tls_certificates"][0]
                self.assertTrue(cert["certificate_chain"]["filename"].startswith("/etc/sluice/"))
                cert["certificate_chain"]["filename"] = leaf.chain
                cert["private_key"]["filename"] = leaf.key
        for c in config["clusters"]:
            for e in c["endpoints"]:
                e["address"] = {"address": "127.0.0.1", "port": origin.addr[1]}
        config["admin"]["address"] = {"address": "127.0.0.1", "port": 0}
        config["admin"]["probe_address"] = {"address": "127.0.0.1", "port": 0}
        config["control_socket"] = os.path.join(self.tmpdir, "control.sock")
        return config

    def get(self, s, listener, path, tls=False):
        sock = s.connect(listener)
        if tls:
            context = ssl.create_default_context(cafile=self.root.cert)
            sock = context.wrap_socket(sock, server_hostname="edge.test")
        client = harness.HttpClient(sock)
        try:
            client.send(harness.http_request("GET", path, host="edge.test"))
            return client.read_response()
        finally:
            client.close()

    def run_config(self, name, check_traffic):
        objects = self.sets[name]
        w = [o for o in objects if o["kind"] in WORKLOADS][0]
        original = sluice_config(objects, w)
        origin = self.server(harness.HttpOrigin)
        config = self.local_config(original, origin)
        path = harness.write_config(yaml.safe_dump(config), self.tmpdir, "k8s.yaml")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual((0, "ok\n"), (r.returncode, r.stdout), r.stderr)
        s = self.start_sluice(yaml.safe_dump(config), concurrency=1)
        for l in config["listeners"]:
            self.assertIn(l["name"], s.ports)
        c = sluice_container(w)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            r = admin_request(s.addr("admin_probe"), "GET", c[probe]["httpGet"]["path"])
            self.assertEqual((200, b"LIVE\n"), (r.status, r.body), (name, probe))
        check_traffic(s)
        # The preStop command as written, but for this build's binary and this test's socket
        # (and the examples' readiness delays cut short: the Deployment's is run as it is).
        command = list(pre_stop(c))
        command[0] = harness.sluice_bin()
        command[command.index("--control-socket") + 1] = config["control_socket"]
        if name != "main":
            command[command.index("--readiness-delay") + 1] = "0s"
        r = subprocess.run(command, capture_output=True, text=True, timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn("readiness failed", r.stderr)
        self.assertIn("drained", r.stderr)
        r = admin_request(s.addr("admin_probe"), "GET", "/ready")
        self.assertEqual((503, b"DRAINING\n"), (r.status, r.body))
        for l in config["listeners"]:
            self.assertTrue(harness.connect_refused(s.addr(l["name"])), l["name"])
        # kubelet's SIGTERM: out at once, cleanly.
        s.send_signal(signal.SIGTERM)
        self.assertEqual(0, s.wait_exit())
        # And the config as shipped passes validation where it needs no file of the pod.
        if name != EXAMPLES[0]:
            path = harness.write_config(yaml.safe_dump(original), self.tmpdir, "shipped.yaml")
            r = harness.run_cli(["--mode", "validate", "-c", path])
            self.assertEqual((0, "ok\n"), (r.returncode, r.stdout), r.stderr)

    def test_the_deployment_config(self):
        def traffic(s):
            r = self.get(s, "http", "/hello")
            self.assertEqual(200, r.status)
            self.assertIn(b"GET /hello", r.body)
            self.assertTrue(r.get("x-request-id"))
        self.run_config("main", traffic)

    def test_the_edge_config(self):
        def traffic(s):
            r = self.get(s, "https", "/hello", tls=True)
            self.assertEqual(200, r.status)
            self.assertIn(b"GET /hello", r.body)
            r = self.get(s, "http", "/x?y=1")
            self.assertEqual(308, r.status)
            self.assertEqual("https://edge.test/x?y=1", r.get("location"))
        self.run_config(EXAMPLES[0], traffic)

    def test_the_sidecar_config(self):
        def traffic(s):
            r = self.get(s, "http", "/app")
            self.assertEqual(200, r.status)
            self.assertIn(b"GET /app", r.body)
        self.run_config(EXAMPLES[1], traffic)


if __name__ == "__main__":
    harness.main()
