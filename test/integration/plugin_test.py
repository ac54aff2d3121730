"""HTTP filters from plugins (the plugin ABI) in the real binary, with real clients: every part of
the ABI the plugins under test/plugin/plugins use — header changes on both paths, a pause resumed
from a timer, a local reply, a response body rewritten, metadata passed from one plugin to the
next, metrics in /stats, an exception caught at the boundary (500, counted, process alive), a
plugin that cannot create its filter, a typed config from a descriptor set, and the config
errors `--mode validate` and start-up report."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))


def plugin(filter_name, plugin_name="test_filters", typed=None, name=None):
    """An httpFilters entry for a plugin filter; `typed` is (message, fields) or a JSON value."""
    entry = {"plugin": {"filter": filter_name, "plugin": plugin_name}}
    if isinstance(typed, tuple):
        message, fields = typed
        config = {"@type": "type.googleapis.com/" + message}
        config.update(fields)
        entry["plugin"]["typedConfig"] = config
    elif typed is not None:
        entry["plugin"]["typedConfig"] = typed
    if name:
        entry["name"] = name
    return entry


def headers_filter(**fields):
    return plugin("headers", typed=("sluice.test.plugin.HeaderMutation", fields))


DIRECT = harness.direct_response_filter()


def config(listeners):
    return harness.http_config([harness.http_listener(n, filters=f) for (n, f) in listeners],
                               bootstrap_extra={"pluginDirs": [PLUGIN_DIR]})



def abi_minor():
    """The minor ABI version the header in this tree declares."""
    header = os.path.join(harness.repo_root(), "api", "sluice", "plugin", "v1", "sluice_plugin.h")
    with open(header) as f:
        for line in f:
            if line.startswith("#define SL_ABI_VERSION_MINOR "):
                return int(line.split()[2])
    raise AssertionError("no SL_ABI_VERSION_MINOR in " + header)

class PluginTest(harness.SluiceTestCase):

    def get(self, s, listener, headers=(), target="/", method="GET", body=b""):
        c = harness.HttpClient.connect(s.addr(listener))
        self.addCleanup(c.close)
        c.send(req(method, target, headers=headers, body=body))
        return c.read_response(head_request=(method == "HEAD"))

    def test_a_chain_of_plugins_changes_headers_passes_metadata_and_counts(self):
        chain = [
            plugin("meta_set", typed=("sluice.test.plugin.Metadata", {"key": "who",
                                                                       "header": "x-who"})),
            headers_filter(requestSet=[{"name": "x-echo", "value": "set-by-plugin"}],
                           responseSet=[{"name": "x-plugin", "value": "headers"}],
                           responseRemove=["x-test"]),
            plugin("count", name="counting"),
            plugin("meta_get", typed=("sluice.test.plugin.Metadata", {"key": "who",
                                                                       "header": "x-meta"})),
            DIRECT,
        ]
        s = self.start_sluice(config([("web", chain)]))
        r = self.get(s, "web", headers=[("x-who", "alice"), ("x-echo", "from-client")],
                     target="/some/path")
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(harness.DIRECT_BODY, r.body)
        self.assertEqual("headers", r.get("x-plugin"))
        self.assertIsNone(r.get("x-test"), "response_remove did not remove x-test")
        # The request header the plugin set replaced the client's (seen on the response path).
        self.assertEqual("set-by-plugin", r.get("x-echoed"))
        self.assertEqual("/some/path", r.get("x-path"))
        # Metadata written by the first plugin, read by a later one.
        self.assertEqual("alice", r.get("x-meta"))
        r2 = self.get(s, "web")
        self.assertEqual("(none)", r2.get("x-meta"))
        # Metrics the plugin declared, under the filter's name.
        st = s.wait_stats(lambda st: harness.stat(st, "plugin.counting.requests") == 2,
                          "plugin.counting.requests == 2")
        self.assertEqual(2, harness.stat(st, "plugin.counting.path_length.count"))
        self.assertEqual(len("/some/path") + 1, harness.stat(st, "plugin.counting.path_length.sum"))
        # Every stream's filter is gone once its stream is: the gauge comes back to 0.
        s.wait_stats(lambda st: harness.stat(st, "plugin.counting.active") == 0,
                     "plugin.counting.active == 0")

    def test_pause_and_resume_from_a_timer(self):
        chain = [plugin("pause", typed=("sluice.test.plugin.Pause", {"delay": "0.05s"})),
                 headers_filter(), DIRECT]
        s = self.start_sluice(config([("web", chain)]))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        for _ in range(3):  # keep-alive: every request pauses and resumes
            c.send(req("GET", "/"))
            r = c.read_response()
            self.assertEqual(200, r.status, r.raw)
            self.assertEqual("timer", r.get("x-resumed-by"))
            # continue_response while the response is not paused: SL_ERR_STATE (-3), counted.
            self.assertEqual("-3", r.get("x-continue-unpaused"))
            self.assertEqual(harness.DIRECT_BODY, r.body)
        self.assertEqual(3, s.stats().get("plugin.pause.rejected_calls"))

    def test_a_paused_request_holds_its_body_until_the_plugin_continues(self):
        # The pause plugin has no body hook: the body must wait with the headers (it must not
        # release them early), then reach the next filter whole.
        chain = [plugin("pause", typed=("sluice.test.plugin.Pause", {"delay": "0.05s"})),
                 plugin("uppercase"), DIRECT]
        s = self.start_sluice(config([("web", chain)]))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("POST", "/", body=b"x" * 5000))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("timer", r.get("x-resumed-by"))
        c.send(req("POST", "/", headers=[("Transfer-Encoding", "chunked")],
                   body=harness.chunked(b"abc", b"def", trailers=[(b"x-t", b"1")])))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("timer", r.get("x-resumed-by"))

    def test_local_reply_from_a_plugin(self):
        chain = [headers_filter(responseSet=[{"name": "x-plugin", "value": "headers"}]),
                 plugin("deny", typed=("sluice.test.plugin.Deny", {"header": "x-deny",
                                                                   "status": 403,
                                                                   "body": "denied\n"})),
                 DIRECT]
        s = self.start_sluice(config([("web", chain)]))
        r = self.get(s, "web", headers=[("x-deny", "1")])
        self.assertEqual(403, r.status, r.raw)
        self.assertEqual(b"denied\n", r.body)
        self.assertEqual("deny", r.get("x-denied-by"))
        self.assertEqual("7", r.get("content-length"))
        self.assertIsNotNone(r.get("date"))
        # The reply went back through the filters before the one that sent it.
        self.assertEqual("headers", r.get("x-plugin"))
        ok = self.get(s, "web")
        self.assertEqual(200, ok.status)
        s.wait_stats(lambda st: harness.stat(st, "http.web.downstream_rq_4xx") == 1 and
                     harness.stat(st, "http.web.downstream_rq_2xx") == 1, "one 403, one 200")

    def test_response_body_rewritten_with_its_length(self):
        chain = [plugin("uppercase"),
                 harness.direct_response_filter(body="hello plugin\n")]
        s = self.start_sluice(config([("web", chain)]))
        for target in ("/a", "/b"):
            r = self.get(s, "web", target=target)
            self.assertEqual(200, r.status, r.raw)
            self.assertEqual(b"HELLO PLUGIN\n(rewritten)\n", r.body)
            self.assertEqual(str(len(r.body)), r.get("content-length"))
        head = self.get(s, "web", method="HEAD")
        self.assertEqual(200, head.status)

    def test_an_exception_in_a_hook_is_a_500_and_a_counter_not_a_crash(self):
        s = self.start_sluice(config([("web", [plugin("throw"), DIRECT]),
                                      ("nofilter", [plugin("fail_new"), DIRECT])]))
        r = self.get(s, "web", headers=[("x-throw", "1")])
        self.assertEqual(500, r.status, r.raw)
        ok = self.get(s, "web")
        self.assertEqual(200, ok.status)
        self.assertEqual(harness.DIRECT_BODY, ok.body)
        # A filter that cannot be created (sl_on_filter_new returns NULL) fails its stream too.
        r2 = self.get(s, "nofilter")
        self.assertEqual(500, r2.status, r2.raw)
        st = s.wait_stats(lambda st: harness.stat(st, "plugin.throw.failures") == 1 and
                          harness.stat(st, "plugin.fail_new.failures") == 1,
                          "one failure counted per plugin")
        self.assertEqual(0, harness.stat(st, "plugin.throw.rejected_calls"))
        self.assertIn("asked to throw", s.logs())
        self.assertIsNone(s.poll(), "sluice exited")

    def test_c_plugins_typed_by_a_descriptor_set_and_stateless(self):
        tag = plugin("tag", "described", typed=("sluice.test.described.Tag",
                                                {"header": "x-tag", "value": "from-c"}))
        noops = [plugin("noop", "noop") for _ in range(10)]
        s = self.start_sluice(config([("web", [tag] + noops + [DIRECT])]))
        r = self.get(s, "web")
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("from-c", r.get("x-tag"))


class PluginHostFunctionsTest(harness.SluiceTestCase):
    """The "inspect" test filter reports what the host functions gave it in response fields.
    No terminal filter: every request is read to its end and answered 404 by the manager."""

    def setUp(self):
        super().setUp()
        self.s = self.start_sluice(config([("web", [plugin("inspect"), headers_filter()])]))

    def exchange(self, data):
        c = harness.HttpClient.connect(self.s.addr("web"))
        self.addCleanup(c.close)
        c.send(data)
        return c, c.read_response()

    def test_headers_multi_values_stream_info_and_path_rewrite(self):
        c, r = self.exchange(req("GET", "/old", headers=[("x-multi", "a"), ("x-other", "o"),
                                                          ("x-multi", "b"),
                                                          ("x-rewrite", "/new?q=1")]))
        self.assertEqual(404, r.status, r.raw)
        self.assertEqual("a|b", r.get("x-multi-all"))
        self.assertEqual("5", r.get("x-request-fields"))  # Host, x-multi x2, x-other, x-rewrite
        self.assertEqual(str(c.sock.getsockname()[1]), r.get("x-downstream-port"))
        self.assertEqual("inspect", r.get("x-filter-name"))
        self.assertEqual("/new?q=1", r.get("x-path"))  # the next filter saw the rewritten :path
        # Connection and stream ids: a second request on the same connection keeps the first,
        # not the second.
        c.send(req("GET", "/"))
        r2 = c.read_response()
        conn1, stream1 = r.get("x-ids").split("/")
        self.assertEqual(stream1, r.get("x-created-for"))  # filter_new saw its stream
        conn2, stream2 = r2.get("x-ids").split("/")
        self.assertEqual(conn1, conn2)
        self.assertNotEqual(stream1, stream2)
        self.assertNotEqual("0", conn1)

    def test_request_body_and_trailers(self):
        body = bytes(range(65, 91)) * 400
        _, r = self.exchange(req("POST", "/", body=body))
        self.assertEqual(str(len(body)), r.get("x-body-length"))
        self.assertEqual(body[:8].decode(), r.get("x-body-head"))
        _, r = self.exchange(req("POST", "/", headers=[("Transfer-Encoding", "chunked")],
                                 body=harness.chunked(b"abc", b"defg", trailers=[(b"t", b"v")])))
        self.assertEqual("v", r.get("x-trailer-t"))
        self.assertEqual("7", r.get("x-body-length"))

    def test_an_invalid_header_value_is_refused_and_counted(self):
        _, r = self.exchange(req("GET", "/", headers=[("x-bad-header", "1")]))
        self.assertEqual("-2", r.get("x-bad-header-result"))  # SL_ERR_INVALID
        self.assertIsNone(r.get("x-evil"))
        self.s.wait_stats(lambda st: harness.stat(st, "plugin.inspect.rejected_calls") == 1,
                          "plugin.inspect.rejected_calls == 1")

    def test_plugin_log_lines_go_to_sluices_log_at_their_level(self):
        _, r = self.exchange(req("GET", "/", headers=[("x-log", "hello-from-the-plugin")]))
        self.assertEqual("info", r.get("x-log-enabled"))  # sluice runs at --log-level info
        # Written (one write(2)) inside the hook, before the response existed.
        self.assertIn("[warn]", [l for l in self.s.logs().splitlines()
                                 if "inspect says hello-from-the-plugin" in l][0])

    def test_a_post_from_another_thread_resumes_the_stream(self):
        for _ in range(5):
            _, r = self.exchange(req("GET", "/", headers=[("x-post", "1")]))
            self.assertEqual(404, r.status, r.raw)
            self.assertEqual("worker", r.get("x-posted"))


class PluginConfigErrorTest(harness.SluiceTestCase):

    def validate(self, cfg):
        path = harness.write_config(cfg, self.tmpdir, "config.json")
        return path, harness.run_cli(["--mode", "validate", "-c", path])

    def test_validate_runs_the_plugins_config_checks(self):
        good = config([("web", [headers_filter(responseSet=[{"name": "a", "value": "b"}]),
                                DIRECT])])
        _, r = self.validate(good)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertEqual("ok\n", r.stdout)

        # A field the plugin's type does not have: file, full field path, line.
        bad = config([("web", [headers_filter(responseSett=[]), DIRECT])])
        path, r = self.validate(bad)
        self.assertEqual(1, r.returncode, r.stdout)
        self.assertIn(path + ": listeners[0].filters[0].http_connection_manager.http_filters[0]"
                      ".plugin.typed_config.responseSett: unknown field", r.stderr)
        self.assertIn("at line", r.stderr)

        # The plugin's own config_new refuses it.
        refused = config([("web", [headers_filter(responseSet=[{"name": "forbidden",
                                                                 "value": "x"}]), DIRECT])])
        _, r = self.validate(refused)
        self.assertEqual(1, r.returncode)
        self.assertIn("filter \"headers\": the plugin rejected its config", r.stderr)

    def test_every_plugin_config_error_is_reported_not_just_the_first(self):
        # Three refusals in two listeners, and a plugin that does not exist: each is reported,
        # by --mode validate and at start-up alike.
        cfg = config([
            ("web", [plugin("loud", "loud", typed="bad one", name="first"),
                     headers_filter(responseSet=[{"name": "forbidden", "value": "x"}]),
                     DIRECT]),
            ("api", [plugin("nope", "no_such_plugin"),
                     plugin("loud", "loud", typed="bad two", name="second"), DIRECT]),
        ])
        path, r = self.validate(cfg)
        self.assertEqual(1, r.returncode, r.stdout)
        for needle in ("listeners[0].filters[0].http_connection_manager.http_filters[0]: "
                       "filter \"loud\": the plugin rejected its config",
                       "listeners[0].filters[0].http_connection_manager.http_filters[1]: "
                       "filter \"headers\": the plugin rejected its config",
                       "listeners[1].filters[0].http_connection_manager.http_filters[0]: "
                       "filter \"nope\": plugin \"no_such_plugin\" not found",
                       "listeners[1].filters[0].http_connection_manager.http_filters[1]: "
                       "filter \"loud\": the plugin rejected its config"):
            self.assertIn(needle, r.stderr)
        s = self.start_sluice(cfg, wait=False)
        self.assertEqual(1, s.wait_exit())
        logs = s.logs()
        self.assertEqual(2, logs.count("filter \"loud\": the plugin rejected its config"), logs)
        self.assertIn("filter \"headers\": the plugin rejected its config", logs)
        self.assertIn("plugin \"no_such_plugin\" not found", logs)

    def test_a_plugins_config_error_is_escaped_and_bounded(self):
        # loud's error holds an ESC sequence, CR LF and invalid UTF-8, and is 10 000 bytes long.
        _, r = self.validate(config([("web", [plugin("loud", "loud", typed="bad"), DIRECT])]))
        self.assertEqual(1, r.returncode)
        raw = r.stderr
        self.assertNotIn("\x1b", raw)
        self.assertNotIn("\r", raw)
        self.assertIn(r"loud says \x1b[31mred\x1b[0m\x0d\x0a[2026-01-01T00:00:00.000Z] [error] "
                      r"[main] forged \xff\xfe end", raw)
        self.assertRegex(raw, r"xxx\.\.\.\[cut: \d+ more bytes\]")
        self.assertLess(len(raw), 4096 + 1000, "the error was not bounded")

    def test_startup_refuses_a_plugin_of_another_abi_version(self):
        cfg = config([("web", [plugin("bad_version", "bad_version"), DIRECT])])
        _, r = self.validate(cfg)
        self.assertEqual(1, r.returncode)
        self.assertIn("bad_version.so: built for plugin ABI 2.0, but this sluice implements "
                      "plugin ABI 1.%d" % abi_minor(), r.stderr)
        s = self.start_sluice(cfg, wait=False)
        self.assertEqual(1, s.wait_exit())
        self.assertIn("built for plugin ABI 2.0", s.logs())



class PluginMisuseTest(harness.SluiceTestCase):
    """ABI misuses end their stream at once — 500 while no response has reached the client, a
    reset after —
    are counted by reason and logged with the plugin and the hook; none leaves a stream hanging
    until the stream idle timeout."""

    def test_each_misuse_ends_the_stream_and_is_counted(self):
        # stream_idle_timeout far beyond the test's socket timeout: a hang would fail it.
        listener = harness.http_listener("web", filters=[plugin("misuse"), DIRECT],
                                         hcm={"streamIdleTimeout": "600s"})
        s = self.start_sluice(harness.http_config(
            [listener], bootstrap_extra={"pluginDirs": [PLUGIN_DIR]}), concurrency=1)
        request_side = (("unknown-action", "misuse_unknown_action"),
                        ("buffer-from-headers", "misuse_buffer_from_headers"),
                        ("continue-inside", "misuse_continue_inside_hook"),
                        ("unknown-body-action", "misuse_unknown_action"))
        for how, counter in request_side:
            with self.subTest(misuse=how):
                before = harness.stat(s.stats(), "plugin.misuse." + counter)
                c = harness.HttpClient.connect(s.addr("web"))
                self.addCleanup(c.close)
                c.send(req("POST", "/", headers=[("x-misuse", how)], body=b"body"))
                r = c.read_response()
                self.assertEqual(500, r.status, r.raw)
                self.assertEqual(before + 1,
                                 harness.stat(s.stats(), "plugin.misuse." + counter))
        # In the response headers hook nothing has reached the client yet: still a 500, in place
        # of the response the filters were passing on.
        for how, counter in (("refused-reply", "misuse_refused_reply"),
                             ("continue-response-inside", "misuse_continue_inside_hook")):
            with self.subTest(misuse=how):
                before = harness.stat(s.stats(), "plugin.misuse." + counter)
                c = harness.HttpClient.connect(s.addr("web"))
                self.addCleanup(c.close)
                c.send(req("GET", "/", headers=[("x-misuse", how)]))
                r = c.read_response()
                self.assertEqual(500, r.status, r.raw)
                self.assertIsNone(r.get("x-test"), "the abandoned response's fields leaked")
                self.assertEqual(before + 1,
                                 harness.stat(s.stats(), "plugin.misuse." + counter))
        # In the response body hook the head has reached the client: the stream is reset.
        before = harness.stat(s.stats(), "plugin.misuse.misuse_refused_reply")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", headers=[("x-misuse", "refused-reply-in-body")]))
        # (What of the head was still buffered when the connection was cut, the client may
        # never see: an abortive close discards it.)
        data, how_closed = harness.recv_until_closed(c.sock)
        self.assertFalse(data.endswith(harness.DIRECT_BODY), data)
        self.assertNotIn(b" 403 ", data)
        self.assertEqual(before + 1, harness.stat(s.stats(), "plugin.misuse.misuse_refused_reply"))
        logs = s.logs()
        self.assertIn("plugin filter misuse misused the plugin ABI in sl_on_request_headers: "
                      "an unknown action", logs)
        self.assertIn("in sl_on_response_headers: sl_host_send_response after the response "
                      "started", logs)
        # A well-behaved request on the same listener is untouched.
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/"))
        self.assertEqual(200, c.read_response().status)

class PluginTextTest(harness.SluiceTestCase):
    """What a plugin hands the host for the log (messages, failure reasons) is tagged with the
    filter's name, escaped and bounded (test/plugin/plugins/loud.c)."""

    def setUp(self):
        super().setUp()
        self.s = self.start_sluice(config([("web", [plugin("loud", "loud", name="loudly"),
                                                    DIRECT])]), concurrency=1)

    def send(self, how):
        c = harness.HttpClient.connect(self.s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", headers=[("x-loud", how)]))
        return c.read_response()

    def stderr_bytes(self):
        with open(self.s.stderr_path, "rb") as f:
            return f.read()

    def test_a_log_line_with_terminal_escapes_is_escaped_and_tagged(self):
        self.assertEqual(200, self.send("log").status)
        raw = self.stderr_bytes()
        self.assertNotIn(b"\x1b", raw)
        self.assertNotIn(b"\r", raw)
        self.assertNotIn(b"\xff", raw)
        lines = [l for l in raw.decode().splitlines() if "loud says" in l]
        self.assertEqual(1, len(lines), raw)
        # One line: the forged one stays inside it, visibly.
        self.assertIn("[warn] [worker_0] [plugin:loudly] loud says \\x1b[31mred\\x1b[0m"
                      "\\x0d\\x0a[2026-01-01T00:00:00.000Z] [error] [main] forged \\xff\\xfe end",
                      lines[0])

    def test_a_huge_log_message_is_cut(self):
        self.assertEqual(200, self.send("huge").status)
        lines = [l for l in self.stderr_bytes().decode().splitlines() if "huge:" in l]
        self.assertEqual(1, len(lines))
        self.assertIn("hhh...[cut: ", lines[0])
        self.assertLess(len(lines[0]), 1024 + 200, "the message was not bounded")

    def test_a_failure_reason_is_escaped(self):
        r = self.send("fail")
        self.assertEqual(500, r.status, r.raw)
        raw = self.stderr_bytes()
        self.assertNotIn(b"\x1b", raw)
        self.assertIn(b"plugin filter loudly failed stream 1: loud says \\x1b[31mred", raw)


class PluginExceptionTest(harness.SluiceTestCase):
    """An exception escaping an SDK filter's response hook, with a real origin: a 500 while the
    response head has not reached the client (the origin's response is dropped), a reset once it
    has; counted and logged either way, and the process goes on."""

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)
        cfg = harness.routed_config(self.origin.addr[1])
        cfg["pluginDirs"] = [PLUGIN_DIR]
        hcm = cfg["listeners"][0]["filters"][0]["httpConnectionManager"]
        hcm["httpFilters"].insert(0, plugin("throw"))
        self.s = self.start_sluice(cfg, concurrency=1)

    def test_an_exception_in_the_response_headers_hook_is_a_500(self):
        c = harness.HttpClient.connect(self.s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/answered", headers=[("x-throw", "response-headers")]))
        r = c.read_response()
        self.assertEqual(500, r.status, r.raw)
        self.assertEqual(b"internal error\n", r.body)
        self.assertEqual(1, len(self.origin.requests), "the origin was asked and answered")
        # Nothing of the origin's response reached the client, and the connection lives on.
        self.assertNotIn(b"GET /answered", r.raw)
        c.send(req("GET", "/next"))
        ok = c.read_response()
        self.assertEqual(200, ok.status, ok.raw)
        self.assertTrue(ok.body.startswith(b"GET /next"), ok.body)
        self.s.wait_stats(lambda st: harness.stat(st, "plugin.throw.failures") == 1,
                          "plugin.throw.failures == 1")
        self.assertIn("exception: asked to throw in onResponseHeaders", self.s.logs())

    def test_an_exception_once_the_response_head_is_out_resets_the_stream(self):
        c = harness.HttpClient.connect(self.s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/big/1000000", headers=[("x-throw", "response-body")]))
        # Closed (an abortive close may discard what was still buffered), and never a 500 after
        # the head of a 200.
        data, _ = harness.recv_until_closed(c.sock)
        self.assertLess(len(data), 1000000, "the whole body went through")
        self.assertNotIn(b"HTTP/1.1 500", data)
        self.s.wait_stats(lambda st: harness.stat(st, "plugin.throw.failures") == 1,
                          "plugin.throw.failures == 1")
        self.assertIn("exception: asked to throw in onResponseBody", self.s.logs())
        self.assertIsNone(self.s.poll(), "sluice exited")


if __name__ == "__main__":
    harness.main()
