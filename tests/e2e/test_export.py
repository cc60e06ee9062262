"""test_export.py: the exporter end to end — a real target process (export_target), a real
Unix socket, and an independent CBOR client (atclient.py, python3-cbor2) written from
docs/protocol.md. Usage: /usr/bin/python3 test_export.py PATH/TO/export_target
"""
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

# Set by tests/e2e/meson.build in sanitizer builds.
SANITIZED = os.environ.get("AT_SANITIZED") == "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atclient  # noqa: E402
from atclient import Client, Closed, frame  # noqa: E402

TARGET = None
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))

# error codes of docs/protocol.md
BAD_FRAME, TOO_LARGE, PERMISSION, TOO_MANY = 1, 2, 4, 5
SLOW_CONSUMER, BAD_REQUEST, NO_SUCH_TASK, UNSUPPORTED = 9, 11, 12, 13


class Target(atclient.Program):
    """export_target.c: READY <socket path> <pid>."""

    def __init__(self, tmp, args=(), env=None, sock=None):
        e = dict(os.environ)
        e.pop("ASYNCTOP_SOCKET", None)
        e["XDG_RUNTIME_DIR"] = tmp
        if sock is not None:
            e["ASYNCTOP_SOCKET"] = sock
        e.update(env or {})
        super().__init__([TARGET] + list(args), e)
        self.path, pid = self.ready
        self.pid = int(pid)

    def cmd(self, line, timeout=30):
        return super().cmd(line, timeout)

    def quit(self, timeout=20):
        err = super().quit(timeout)
        assert not os.path.exists(self.path), "socket left behind: " + self.path
        return err


class TargetCase(unittest.TestCase):
    """A test with its own private directory, the targets and clients it made (killed and
    closed afterwards, as are the extra processes it lists in self.procs)."""
    PREFIX = "at-e2e-"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self.PREFIX)
        os.chmod(self.tmp, 0o700)
        self.targets, self.clients, self.procs = [], [], []

    def tearDown(self):
        for c in self.clients:
            c.close()
        for p in self.procs + [t.p for t in self.targets]:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def target(self, *args, **kw):
        t = Target(self.tmp, *args, **kw)
        self.targets.append(t)
        return t

    def client(self, path, **kw):
        c = Client(path, **kw)
        self.clients.append(c)
        return c

    def live_client(self, t, interval_ms=100):
        """A client subscribed at interval_ms, and its first (full) snapshot."""
        c = self.client(t.path)
        c.hello()
        c.subscribe(interval_ms)
        snap = c.recv_type("update")
        self.assertTrue(snap["full"])
        return c, snap

    def three_tasks(self):
        """A target running three tasks ("tasks 3"), a live client that has seen them (up to
        10 s), and the lowest task id."""
        t = self.target()
        t.cmd("tasks 3")
        c, _ = self.live_client(t)
        deadline = time.monotonic() + 10
        while len(c.tasks) < 3 and time.monotonic() < deadline:
            c.recv_type("update")
        return t, c, sorted(c.tasks)[0]


class ExportTest(TargetCase):

    # ---------------------------------------------------------------------------------------
    def test_socket_path_and_modes(self):
        t = self.target()
        d = os.path.join(self.tmp, "asynctop")
        self.assertEqual(t.path, os.path.join(d, "%d.sock" % t.pid))
        st = os.lstat(d)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        st = os.lstat(t.path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        t.quit()  # and the socket is removed

    def test_handshake_snapshot_deltas(self):
        t = self.target()
        t.cmd("tasks 50")
        c = self.client(t.path)
        h = c.hello()
        self.assertEqual(h["pid"], t.pid)
        for k in ("program", "argv", "runtime", "start_time_ns", "now_ns", "config", "caps"):
            self.assertIn(k, h)
        self.assertIn("slow_ns", h["config"])
        self.assertEqual(h["program"], "export_target")
        self.assertEqual(h["argv"][0], TARGET)
        # the loop runs on the main thread; then (optional elements) the thread's name, what
        # loop it is (no task provider here: unknown) and the uv_loop_t's address
        self.assertEqual(len(h["loops"]), 1)
        self.assertEqual(h["loops"][0][:5], [0, "main", t.pid, "export_target", None])
        self.assertGreater(h["loops"][0][5], 0)
        for cap in ("tasks", "slow", "loop", "stacks", "set_config", "loop_stack", "cancel"):
            self.assertIn(cap, h["caps"])
        c.subscribe(100)
        snap = c.recv_type("update")
        self.assertTrue(snap["full"])
        self.assertEqual(snap["seq"], 0)
        # the provider's tasks arrive (a resync when the exporter met the attachment)
        deadline = time.monotonic() + 10
        while len(c.tasks) < 50 and time.monotonic() < deadline:
            c.recv_type("update")
        self.assertEqual(len(c.tasks), 50)
        # every update lists the process's loops with their counters (the loop picker's data):
        # this loop's row agrees with its stats, and counts the 50 waiting tasks as pending
        u = c.recv_type("update")
        self.assertEqual(len(u["loops"]), 1)
        lr = u["loops"][0]
        self.assertEqual(len(lr), 12)
        self.assertEqual(lr[:3], [0, "main", t.pid])
        self.assertEqual(lr[10], 50)
        self.assertGreater(lr[8], 0)  # callbacks
        self.assertLessEqual(lr[8], u["stats"]["callbacks"] + 1000)
        self.assertNotIn("loop_gone", u)
        row = next(iter(c.tasks.values()))
        self.assertEqual(len(row), 13)
        self.assertTrue(row[1].startswith("worker-"))
        self.assertEqual(row[2], 2)  # waiting
        self.assertIn(row[11], c.sites)
        self.assertEqual(c.sites[row[11]]["func"], "task_entry")
        # deltas: changed rows, new tasks, gone tasks; seq counts up
        t.cmd("finish 2")  # the two newest of the 50
        t.cmd("tasks 5")
        seqs, added, gone, changed = [], 0, [], 0
        deadline = time.monotonic() + 10
        while (added < 5 or len(gone) < 2 or changed == 0) and time.monotonic() < deadline:
            u = c.recv_type("update")
            self.assertFalse(u["full"])
            seqs.append(u["seq"])
            added += len(u.get("tasks_new", []))
            gone += u.get("tasks_gone", [])
            changed += len(u.get("tasks_changed", []))
            self.assertIn("stats", u)
            self.assertEqual(len(u["stats"]["tasks"]), 6)
        self.assertEqual(added, 5)
        self.assertEqual(len(gone), 2)
        self.assertGreater(changed, 0)
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(len(c.tasks), 53)
        # site statistics for the timer callback
        u = c.recv_type("update")
        names = {c.sites[s[0]]["func"] for s in u.get("site_stats", []) if s[0] in c.sites}
        self.assertIn("on_tick", names)
        t.quit()

    def test_threshold_change_shows_in_slow_events(self):
        t = self.target()
        c, _ = self.live_client(t)
        rid = c.request("set_config", config={"slow_ns": 300_000_000})
        r = c.response(rid)
        self.assertEqual(r["status"], 0)
        self.assertEqual(r["config"]["slow_ns"], 300_000_000)
        t.cmd("slow 120")  # under 300 ms: not slow
        rid = c.request("set_config", config={"slow_ns": 50_000_000})
        r = c.response(rid)
        self.assertEqual(r["config"]["slow_ns"], 50_000_000)
        t.cmd("slow 120")  # now it is
        slow = []
        deadline = time.monotonic() + 10
        while not slow and time.monotonic() < deadline:
            u = c.recv_type("update")
            self.assertEqual(u["config"]["slow_ns"], 50_000_000)
            slow += u.get("slow", [])
        self.assertEqual(len(slow), 1, slow)
        self.assertGreaterEqual(slow[0]["dur_ns"], 120_000_000)
        self.assertEqual(slow[0]["kind"], 2)  # io: the stdin read callback
        self.assertEqual(slow[0].get("name"), "on_command")
        # a bad value is refused with a reason, and the connection stays up
        rid = c.request("set_config", config={"slow_ns": 5})
        r = c.response(rid)
        self.assertEqual(r["status"], BAD_REQUEST)
        self.assertIn("slow_ns", r["reason"])
        c.recv_type("update")
        # the range is ASYNCTOP_SLOW_MS's (1 to 86400000 ms, loopmon-config test_env): its two
        # ends are taken, one ns beyond either is refused
        for ns, ok in ((999_999, False), (1_000_000, True), (86_400_000_000_000, True),
                       (86_400_000_000_001, False)):
            r = c.response(c.request("set_config", config={"slow_ns": ns}))
            self.assertEqual(r["status"], 0 if ok else BAD_REQUEST, (ns, r))
            if ok:
                self.assertEqual(r["config"]["slow_ns"], ns)
        t.quit()

    def test_blocked_loop_reported_live_with_stack(self):
        t = self.target()
        c, _ = self.live_client(t)
        rid = c.request("set_config", config={"slow_ns": 100_000_000})
        c.response(rid)
        t0 = time.monotonic()
        t.send("spin 5000")
        blocked = None
        while time.monotonic() - t0 < 4.0:
            u = c.recv_type("update")
            run = u.get("running")
            if run and u["ts_ns"] - run["since_ns"] > 1_000_000_000 and run.get("stack"):
                blocked = (u, run)
                break
        self.assertIsNotNone(blocked, "no live BLOCKED state with a stack within 4 s")
        self.assertLess(time.monotonic() - t0, 5.0, "reported only after the callback returned")
        u, run = blocked
        self.assertEqual(run["name"], "on_command")
        if os.environ.get("AT_E2E_TSAN"):
            # ThreadSanitizer defers signals to its own safe points: the sampled stack is its
            # runtime's, not the program's. Everything else is checked.
            t.p.kill()
            return
        funcs = c.stack_funcs(run["stack"])
        self.assertIn("parse_request", funcs, funcs)
        # (gcc may name a clone "handle_command.constprop.0")
        funcs = [f.split(".")[0] for f in funcs]
        self.assertIn("handle_command", funcs, funcs)
        self.assertLess(funcs.index("parse_request"), funcs.index("handle_command"))
        # a loop_stack request is answered while the loop is stuck (signal, not the loop)
        rid = c.request("loop_stack")
        r = c.response(rid)
        self.assertEqual(r["status"], 0)
        self.assertIn("parse_request", [f[1] for f in r["stack"]])
        self.assertTrue(r["running"])
        # a request that needs the loop thread says "loop busy" instead of waiting
        tid = next(iter(c.tasks), 1)
        rid = c.request("task_detail", task=tid)
        r = c.response(rid)
        self.assertNotEqual(r["status"], 0)
        self.assertIn("busy", r["reason"])
        # after it returns: the slow event carries the stack sampled while it blocked
        slow = []
        deadline = time.monotonic() + 15
        while not slow and time.monotonic() < deadline:
            slow += c.recv_type("update").get("slow", [])
        self.assertEqual(len(slow), 1)
        self.assertGreaterEqual(slow[0]["dur_ns"], 5_000_000_000)
        # (a profile's heaviest stack, of which the one seen while it ran was one)
        self.assertEqual(slow[0].get("stack"), slow[0]["profile"]["stacks"][0][0])
        self.assertIn(run["stack"], [sid for sid, _ in slow[0]["profile"]["stacks"]])
        t.cmd("tasks 1")
        t.quit()

    def blocked_in_syscall(self, command, func, tag):
        """`command` blocks the loop thread in one system call in `func` for 2 s; it is reported
        live as blocked with its stack, and the sampling does not cut the call short (a
        signal would: nanosleep and poll with a timeout are never restarted after a handler,
        SA_RESTART or not). The target prints `tag rc=.. errno=.. elapsed_ns=..`."""
        t = self.target()
        c, _ = self.live_client(t)
        rid = c.request("set_config", config={"slow_ns": 100_000_000})
        c.response(rid)
        t0 = time.monotonic()
        t.send(command)
        blocked = None
        while time.monotonic() - t0 < 1.9:
            u = c.recv_type("update")
            run = u.get("running")
            if run and u["ts_ns"] - run["since_ns"] > 300_000_000 and run.get("stack"):
                blocked = (u, run)
                break
        if blocked is None:
            t.send("quit")
            out, _ = t.p.communicate(timeout=20)
            self.fail("no live BLOCKED state with a stack while it slept: %r" % out)
        u, run = blocked
        self.assertEqual(run["name"], "on_command")
        funcs = [f.split(".")[0] for f in c.stack_funcs(run["stack"])]
        if SANITIZED:
            # ASan's frames (realigned, with redzones and fake-stack bookkeeping) leave stale
            # frame records that the scan from the syscall's sp can take for live ones: there
            # the stack must still reach the callback that runs the command, but the exact
            # innermost frames are proven by the plain build only (docs/exporter.md).
            self.assertIn("on_read", funcs, funcs)
        else:
            self.assertIn(func, funcs, funcs)
            self.assertIn("handle_command", funcs, funcs)
            self.assertLess(funcs.index(func), funcs.index("handle_command"))
        # a loop_stack request while it sleeps: answered, and still no signal
        rid = c.request("loop_stack")
        r = c.response(rid)
        self.assertEqual(r["status"], 0)
        if not SANITIZED:
            self.assertIn(func, [f[1].split(".")[0] for f in r["stack"]])
        word = command.split()[0]
        out = []
        while not out or not out[-1].startswith("OK " + word):
            out.append(t.p.stdout.readline().decode())
            self.assertNotEqual(out[-1], "", "target died: " + "".join(t.stderr))
        line = [ln for ln in out if ln.startswith(tag + " ")]
        self.assertEqual(len(line), 1, out)
        kv = dict(w.split("=") for w in line[0].split()[1:])
        self.assertEqual(kv["rc"], "0", "cut short by the sampler: " + line[0])
        self.assertGreaterEqual(int(kv["elapsed_ns"]), 1_990_000_000, line[0])
        # after it returns: the slow event carries the stack sampled while it slept
        slow = []
        deadline = time.monotonic() + 15
        while not slow and time.monotonic() < deadline:
            slow += [s for s in c.recv_type("update").get("slow", [])
                     if s["dur_ns"] >= 1_990_000_000]
        self.assertEqual(len(slow), 1)
        # (a profile's heaviest stack, of which the one seen while it ran was one)
        self.assertEqual(slow[0].get("stack"), slow[0]["profile"]["stacks"][0][0])
        self.assertIn(run["stack"], [sid for sid, _ in slow[0]["profile"]["stacks"]])
        t.quit()

    def test_blocked_in_syscall_sampled_without_a_signal(self):
        self.blocked_in_syscall("nap 2000", "wait_for_disk", "NAP")

    def test_blocked_in_poll_sampled_without_a_signal(self):
        self.blocked_in_syscall("pollnap 2000", "wait_for_peer", "POLL")

    def test_frames_carry_their_modules_build_id(self):
        """Sites (the stacks table), task_detail's and loop_stack's frames carry the GNU
        build-id of the module that holds them: as readelf -n says for the target, and for the
        loop's stack one of the build-ids of the files the process maps."""
        def build_id(path):
            out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
            m = re.search(r"Build ID: ([0-9a-f]+)", out)
            return m.group(1) if m else None
        bid = build_id(TARGET)
        self.assertTrue(bid)
        t, c, tid = self.three_tasks()
        site = c.sites[c.tasks[tid][11]]
        self.assertEqual((site["func"], site["build_id"]), ("task_entry", bid))
        r = c.response(c.request("task_detail", task=tid))
        self.assertEqual(r["status"], 0, r)
        create = [f for f in r["detail"]["create"] if f[1] == "spawn_tasks"]
        self.assertTrue(create, r["detail"]["create"])
        self.assertEqual([f[4] for f in create], [bid] * len(create))
        r = c.response(c.request("loop_stack"))
        self.assertEqual(r["status"], 0, r)
        mapped = set()
        with open("/proc/%d/maps" % t.p.pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith("/") and os.path.isfile(parts[5]):
                    mapped.add(parts[5])
        mapped_ids = {build_id(p) for p in mapped} - {None}
        self.assertIn(bid, mapped_ids)
        self.assertTrue(r["stack"])
        for f in r["stack"]:
            self.assertGreater(len(f), 4, f)
            self.assertIn(f[4], mapped_ids, f)

    def test_requests_good_and_bad(self):
        t, c, tid = self.three_tasks()
        r = c.response(c.request("task_detail", task=tid))
        self.assertEqual(r["status"], 0, r)
        d = r["detail"]
        self.assertEqual(d["task"][0], tid)
        self.assertIn("sleep", d["wait_desc"])
        self.assertIn("spawn_tasks", [f[1] for f in d["create"]])
        r = c.response(c.request("task_detail", task=999999))
        self.assertEqual(r["status"], NO_SUCH_TASK)
        r = c.response(c.request("task_detail"))
        self.assertEqual(r["status"], BAD_REQUEST)
        r = c.response(c.request("cancel", task=tid))
        self.assertEqual(r["status"], 0)
        deadline = time.monotonic() + 10
        while c.tasks[tid][2] != 4 and time.monotonic() < deadline:
            c.recv_type("update")
        self.assertEqual(c.tasks[tid][2], 4)  # cancelled
        r = c.response(c.request("frobnicate"))
        self.assertEqual(r["status"], UNSUPPORTED)
        self.assertEqual(r["op"], "frobnicate")
        self.assertIn("frobnicate", r["reason"])
        r = c.response(c.request("loop_stack"))
        self.assertEqual(r["status"], 0)
        # debug mode on and off
        r = c.response(c.request("set_config", config={"debug": True}))
        self.assertTrue(r["config"]["debug"])
        r = c.response(c.request("set_config", config={"debug": False}))
        self.assertFalse(r["config"]["debug"])
        # pause: no updates; resume: a fresh snapshot
        r = c.response(c.request("pause"))
        self.assertEqual(r["status"], 0)
        c.buf = b""
        time.sleep(0.2)
        while True:  # drain what was in flight
            try:
                c.recv(0.3)
            except TimeoutError:
                break
        with self.assertRaises(TimeoutError):
            c.recv_type("update", timeout=0.6)
        c.request("resume")
        u = c.recv_type("update")
        self.assertTrue(u["full"])
        t.quit()

    def test_other_uid_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run a client as nobody")
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            self.skipTest("no setpriv")
        t = self.target()
        # nobody must be able to read the client itself: the source tree may sit
        # under a 0700 home directory (a clone in /root), so run a copy from our
        # own temporary directory, from /.
        client = os.path.join(self.tmp, "atclient.py")
        shutil.copyfile(os.path.join(HERE, "atclient.py"), client)
        os.chmod(client, 0o644)
        as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", PY, client,
                     t.path]
        os.chmod(self.tmp, 0o755)
        run_nobody = lambda: subprocess.run(as_nobody, capture_output=True, timeout=30, text=True,
                                            cwd="/")
        # the file system refuses first: the directory is 0700
        res = run_nobody()
        out = res.stdout
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("CONNECT-ERROR", out)
        # with the directory and socket opened up, SO_PEERCRED still refuses
        os.chmod(os.path.dirname(t.path), 0o755)
        os.chmod(t.path, 0o666)
        out = run_nobody().stdout
        self.assertIn("MSG error %d True" % PERMISSION, out)
        self.assertIn("uid 65534", out)
        self.assertIn("CLOSED", out)
        self.assertNotIn("MSG hello", out)
        # the owner still gets in
        c, _ = self.live_client(t)
        os.chmod(os.path.dirname(t.path), 0o700)
        t.quit()

    def test_malformed_and_oversized_cost_only_that_client(self):
        t = self.target()
        good, _ = self.live_client(t)
        bad = self.client(t.path)
        bad.hello()
        # garbage inside a well-formed frame: an error, the connection stays
        bad.send_raw(struct.pack(">I", 5) + b"\xff\xfe\xfd\xfc\xfb")
        e = bad.recv_type("error")
        self.assertEqual(e["code"], BAD_FRAME)
        self.assertFalse(e["fatal"])
        # a frame that is not a map, and the 2 GiB array header of libcbor 0.8's bug
        bad.send_raw(frame([1, 2, 3]))
        self.assertEqual(bad.recv_type("error")["code"], BAD_FRAME)
        bad.send_raw(struct.pack(">I", 6) + bytes.fromhex("9a1000000001"))
        self.assertEqual(bad.recv_type("error")["code"], BAD_FRAME)
        bad.subscribe(100)
        self.assertTrue(bad.recv_type("update")["full"])
        # oversized: refused on the length alone, then closed
        bad.send_raw(struct.pack(">I", 1 << 30) + b"\0" * 100)
        e = bad.recv_type("error")
        self.assertEqual(e["code"], TOO_LARGE)
        self.assertTrue(e["fatal"])
        with self.assertRaises(Closed):
            while True:
                bad.recv(5)
        # an unsupported protocol version is refused with its own code, then closed
        other = self.client(t.path)
        other.hello()
        other.send_raw(frame({"t": "subscribe", "v": 99, "interval_ms": 100}))
        e = other.recv_type("error")
        self.assertEqual(e["code"], 3)
        self.assertTrue(e["fatal"])
        # the other client kept receiving updates throughout
        s0 = good.recv_type("update")["seq"]
        s1 = good.recv_type("update")["seq"]
        self.assertEqual(s1, s0 + 1)
        t.quit()

    def test_warnings_and_dropped_counters(self):
        t = self.target()
        c, snap = self.live_client(t)
        self.assertEqual(sorted(n for n, _ in snap["dropped"]), ["error", "lagged", "slow", "task", "warning"])
        t.cmd("warn 7")
        exc = []
        deadline = time.monotonic() + 10
        while not exc and time.monotonic() < deadline:
            exc += c.recv_type("update").get("exc", [])
        self.assertEqual(len(exc), 1)
        self.assertEqual(exc[0]["kind"], 4)  # unclosed resource
        self.assertEqual(exc[0]["message"], "unclosed tcp handle (test 7)")
        funcs = [f.split(".")[0] for f in c.stack_funcs(exc[0]["create_stack"])]
        self.assertIn("handle_command", funcs)
        # a new client gets recent events in its snapshot
        c2, snap2 = self.live_client(t)
        self.assertEqual([e["message"] for e in snap2.get("exc", [])],
                         ["unclosed tcp handle (test 7)"])
        t.quit()

    def test_subscribe_what(self):
        t = self.target()
        t.cmd("tasks 3")
        c = self.client(t.path)
        c.hello()
        c.subscribe(100, what=["slow"])
        for _ in range(3):
            u = c.recv_type("update")
            for k in ("tasks_new", "tasks_changed", "stats", "site_stats", "running"):
                self.assertNotIn(k, u)
        t.quit()

    def test_64_clients(self):
        t = self.target(env={"ASYNCTOP_MAX_CLIENTS": "64"})
        cs = [self.client(t.path) for _ in range(64)]
        for c in cs:
            c.hello()
            c.subscribe(200)
        for c in cs:
            self.assertTrue(c.recv_type("update")["full"])
        extra = self.client(t.path)
        e = extra.recv_type("error")
        self.assertEqual(e["code"], TOO_MANY)
        self.assertIn("64", e["reason"])
        for c in cs:
            self.assertFalse(c.recv_type("update")["full"])
        # one leaves, one more gets in
        cs[0].close()
        time.sleep(0.3)
        again = self.client(t.path)
        again.hello()
        t.quit()

    def test_default_client_limit_is_16(self):
        t = self.target()
        cs = [self.client(t.path) for _ in range(16)]
        for c in cs:  # live: a newcomer takes only the place of one still in the handshake
            c.hello()
            c.subscribe(1000)
            c.recv_type("update")
        e = self.client(t.path).recv_type("error")
        self.assertEqual(e["code"], TOO_MANY)
        t.quit()

    def test_emfile_backs_off(self):
        t = self.target(("--nofile", "32"), env={"ASYNCTOP_MAX_CLIENTS": "100"})
        tids = os.listdir("/proc/%d/task" % t.pid)

        def export_ticks():
            for tid in tids:
                base = "/proc/%d/task/%s/" % (t.pid, tid)
                with open(base + "comm") as f:
                    if f.read().strip() == "asynctop-export":
                        with open(base + "stat") as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                        return int(fields[11]) + int(fields[12])
            raise AssertionError("no exporter thread")

        cs = [self.client(t.path) for _ in range(40)]  # more than the fds the target has
        deadline = time.monotonic() + 5
        while not any("pausing accepts" in l for l in t.stderr):
            self.assertLess(time.monotonic(), deadline, "".join(t.stderr))
            time.sleep(0.05)
        # out of descriptors for 2 s: the exporter sleeps, it does not spin on the listener
        t0 = export_ticks()
        time.sleep(2)
        self.assertLess(export_ticks() - t0, 50)  # < 0.5 s of CPU in 2 s (ticks are 10 ms)
        for c in cs:
            c.close()
        self.clients.clear()
        time.sleep(1.5)
        c, _ = self.live_client(t)  # served again once descriptors are free
        t.quit()

    def test_client_that_never_reads(self):
        t = self.target(("--out-max", "262144", "--stall-ms", "3000"))
        t.cmd("tasks 20000")
        lazy = self.client(t.path)
        lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.subscribe(100)  # and never read again
        good, _ = self.live_client(t)
        t0 = time.monotonic()
        seqs = []
        while time.monotonic() - t0 < 6:
            seqs.append(good.recv_type("update")["seq"])
            t.cmd("finish 100")
            t.cmd("tasks 100")
        self.assertGreater(len(seqs), 20)  # the good one was served all along
        # the lazy one was cut off with a reason (in the log), not buffered forever
        self.assertTrue(any("not reading" in l or "read nothing" in l for l in t.stderr),
                        "".join(t.stderr))
        lazy.sock.settimeout(5)
        with self.assertRaises((Closed, ConnectionResetError)):
            while True:
                lazy.recv(5)
        t.quit()

    def test_client_killed_mid_frame(self):
        t = self.target()
        good, _ = self.live_client(t)
        code = ("import socket,struct,os,signal,sys\n"
                "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.recv(65536)\n"
                "s.sendall(struct.pack('>I',100)+b'\\xa2\\x61t')\n"
                "os.kill(os.getpid(), signal.SIGKILL)\n")
        p = subprocess.run([PY, "-c", code, t.path], timeout=30)
        self.assertEqual(p.returncode, -signal.SIGKILL)
        time.sleep(0.3)
        s0 = good.recv_type("update")["seq"]
        self.assertEqual(good.recv_type("update")["seq"], s0 + 1)
        self.assertTrue(any("middle of a frame" in l for l in t.stderr), "".join(t.stderr))
        # a client that disappears with output queued does not SIGPIPE the target
        t.cmd("tasks 5000")
        for _ in range(5):
            c = self.client(t.path)
            c.subscribe(100)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        time.sleep(0.5)
        self.assertIsNone(t.p.poll())
        good.recv_type("update")
        t.quit()

    def test_handshake_timeout(self):
        t = self.target(("--handshake-ms", "500"))
        c = self.client(t.path)
        c.hello()
        e = c.recv_type("error", timeout=5)
        self.assertEqual(e["code"], 6)
        t.quit()

    def test_stale_socket_cleaned(self):
        d = os.path.join(self.tmp, "asynctop")
        os.mkdir(d, 0o700)
        p = subprocess.Popen(["true"])
        p.wait()
        stale = os.path.join(d, "%d.sock" % p.pid)
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        keep = os.path.join(d, "notes.txt")
        open(keep, "w").close()
        t = self.target()
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(keep))
        deadline = time.monotonic() + 5  # the log line is written by loopmon's logger thread
        while not any("removed 1 stale socket" in l for l in t.stderr):
            self.assertLess(time.monotonic(), deadline, "".join(t.stderr))
            time.sleep(0.05)
        t.quit()

    def test_unsafe_directory_refused(self):
        d = os.path.join(self.tmp, "asynctop")
        os.mkdir(d, 0o700)
        os.chmod(d, 0o777)
        e = dict(os.environ, XDG_RUNTIME_DIR=self.tmp)
        e.pop("ASYNCTOP_SOCKET", None)
        p = subprocess.run([TARGET], input=b"", capture_output=True, env=e, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"refusing to start", p.stderr)
        self.assertIn(b"0777", p.stderr)
        os.chmod(d, 0o700)
        os.rmdir(d)
        os.symlink(self.tmp, d)
        p = subprocess.run([TARGET], input=b"", capture_output=True, env=e, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"symlink", p.stderr)

    def test_socket_off_and_override(self):
        t = self.target(sock="off")
        self.assertEqual(t.path, "off")
        t.p.stdin.close()
        t.p.wait(timeout=20)
        path = os.path.join(self.tmp, "custom.sock")
        t = self.target(sock=path)
        self.assertEqual(t.path, path)
        c, _ = self.live_client(t)
        t.quit()

    def test_exit_removes_socket_and_fork_child(self):
        t = self.target()
        c, _ = self.live_client(t)
        out = t.cmd("fork")
        # the child inherited no exporter, started its own on its own pid's socket, stopped it
        line = [l for l in out.splitlines() if l.startswith("CHILD")][0]
        self.assertIn("inherited=0 started=0", line)
        child_path = line.split("path=")[1]
        self.assertNotEqual(child_path, t.path)
        self.assertFalse(os.path.exists(child_path))
        # the parent's exporter is unharmed and its socket still there
        self.assertTrue(os.path.exists(t.path))
        s0 = c.recv_type("update")["seq"]
        self.assertEqual(c.recv_type("update")["seq"], s0 + 1)
        # a plain exit() (no stop) still removes the socket, and says bye to nobody
        t.send("exit")
        t.p.wait(timeout=20)
        self.assertEqual(t.p.returncode, 0)
        self.assertFalse(os.path.exists(t.path))

    def test_fork_storm_no_child_hangs(self):
        """Children forked from a busy loop callback while the exporter serves a client each
        create a monitored, attached loop and start their own exporter: none may hang on a lock
        a parent thread (the exporter's) held at the fork. 1,000 forks; 300 under TSan (a
        child costs eight times as much there: 1,000 take 25 s)."""
        t = self.target()
        c, _ = self.live_client(t)
        t.cmd("tasks 2000")  # the storm changes them: the exporter drains, under its locks
        n = 300 if os.environ.get("AT_E2E_TSAN") else 1000
        guard = 60 if SANITIZED else 30  # seconds: a hang guard, never reached by a live child
        out = t.cmd("forks %d %d" % (n, guard), timeout=600)
        line = [l for l in out.splitlines() if l.startswith("FORKS")][0]
        self.assertIn("n=%d ok=%d hung=0 failed=0 " % (n, n), line)
        # the parent's exporter served on throughout and still does
        s0 = c.recv_type("update")["seq"]
        self.assertEqual(c.recv_type("update")["seq"], s0 + 1)
        t.quit()


class ProfileTest(TargetCase):
    """A stall is profiled (issue 16): while a callback runs past the threshold the loop
    thread's stack is sampled every few ms; the slow event and `running` carry the samples per
    stack, heaviest first, checked against the program's own clock."""

    TSAN = bool(os.environ.get("AT_E2E_TSAN"))

    def stalled(self, t, c, command, warm=True):
        """Sends `command` (a stall); returns (the last running profile seen, the slow event,
        the command's output). With `warm`, a short stall first: the process's first samples
        load the modules' unwind tables and symbols on the exporter thread (tens of ms, more
        on a loaded machine), time in which the stall measured would get no samples."""
        c.response(c.request("set_config", config={"slow_ns": 20_000_000}))
        if warm:
            self.stalled(t, c, "spin 200", warm=False)
        t.send(command)
        last_run, slow = None, []
        deadline = time.monotonic() + 60
        while not slow and time.monotonic() < deadline:
            u = c.recv_type("update")
            run = u.get("running")
            if run and run.get("name") == "on_command" and run.get("profile"):
                last_run = run["profile"]
            slow += [e for e in u.get("slow", []) if e.get("name") == "on_command"]
        self.assertEqual(len(slow), 1, slow)
        out = ""
        while "OK " + command.split()[0] not in out:
            out += t.p.stdout.readline().decode()
        return last_run, slow[0], out

    def profile_funcs(self, c, prof):
        """[(count, [innermost function first...])] of a profile, heaviest first."""
        return [(n, [f.split(".")[0] for f in c.stack_funcs(sid)]) for sid, n in prof["stacks"]]

    def test_stall_profile_shares_match_the_clock(self):
        t = self.target()
        c, _ = self.live_client(t)
        run, ev, out = self.stalled(t, c, "profile 600 400")
        m = re.search(r"PROFILE scan_ns=(\d+) build_ns=(\d+)", out)
        a_ns, b_ns = int(m.group(1)), int(m.group(2))
        prof = ev.get("profile")
        self.assertIsNotNone(prof, ev)
        self.assertEqual(prof["interval_ns"], 5_000_000)
        counts = [n for _, n in prof["stacks"]]
        self.assertEqual(counts, sorted(counts, reverse=True), "not heaviest first")
        self.assertEqual(prof["samples"], sum(counts) + prof.get("other", 0))
        # samples stop when the callback returns: no more than its duration allows
        self.assertLessEqual(prof["samples"], ev["dur_ns"] // prof["interval_ns"] + 2, prof)
        self.assertGreaterEqual(prof["samples"], 10, prof)
        # the running callback carried the profile so far; the event has at least as many
        self.assertIsNotNone(run, "no profile on the running callback")
        self.assertLessEqual(run["samples"], prof["samples"])
        # `stack` (for clients without profiles) is the heaviest stack
        self.assertEqual(ev.get("stack"), prof["stacks"][0][0])
        # after the return: no running profile any more
        for _ in range(3):
            r = c.recv_type("update").get("running")
            self.assertFalse(r and r.get("profile"), r)
        if self.TSAN:
            # ThreadSanitizer defers signals to its own safe points: the samples are its
            # runtime's frames, not the program's. The counting is checked above.
            t.quit()
            return
        stacks = self.profile_funcs(c, prof)
        top2 = sorted(f[0] for _, f in stacks[:2])
        self.assertEqual(top2, ["build_reply", "scan_headers"], stacks)
        for _, f in stacks[:2]:
            self.assertIn("serve_request", f, f)
            self.assertIn("handle_command", f, f)
            self.assertLess(f.index("serve_request"), f.index("handle_command"))
        # shares of the two, against the program's own clock (samples of either function)
        n_a = sum(n for n, f in stacks if f[0] == "scan_headers")
        n_b = sum(n for n, f in stacks if f[0] == "build_reply")
        share = n_a / (n_a + n_b)
        want = a_ns / (a_ns + b_ns)
        print("profile: %d samples in %.0f ms, scan_headers %.2f of the two by samples, %.2f by"
              " the clock" % (prof["samples"], ev["dur_ns"] / 1e6, share, want), file=sys.stderr)
        self.assertLess(abs(share - want), 0.20, (share, want, stacks))
        t.quit()

    def test_stall_profile_is_bounded(self):
        t = self.target()
        c, _ = self.live_client(t)
        run, ev, out = self.stalled(t, c, "fanout 48 40")
        prof = ev.get("profile")
        self.assertIsNotNone(prof, ev)
        self.assertLessEqual(len(prof["stacks"]), 32)
        counts = sum(n for _, n in prof["stacks"])
        self.assertEqual(prof["samples"], counts + prof.get("other", 0))
        if not self.TSAN:
            # 48 distinct stacks (one per recursion depth) for a table of 32: the rest fold
            self.assertEqual(len(prof["stacks"]), 32, prof)
            self.assertGreater(prof.get("other", 0), 0, prof)
            self.assertEqual(len({sid for sid, _ in prof["stacks"]}), 32)  # 32 distinct ones
            for _, f in self.profile_funcs(c, prof):
                self.assertIn("descend", f, f)
                self.assertIn("fan_out", f, f)
        t.quit()

    def test_profile_interval_from_environment(self):
        t = self.target(env={"ASYNCTOP_PROFILE_MS": "20"})
        c, _ = self.live_client(t)
        _, ev, _ = self.stalled(t, c, "profile 300 200", warm=False)
        prof = ev["profile"]
        self.assertEqual(prof["interval_ns"], 20_000_000)
        self.assertLessEqual(prof["samples"], ev["dur_ns"] // 20_000_000 + 2, prof)
        t.quit()
        t = self.target(env={"ASYNCTOP_PROFILE_MS": "soon"})
        err = t.quit()
        self.assertIn("ASYNCTOP_PROFILE_MS='soon'", err)


def main():
    global TARGET
    TARGET = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
