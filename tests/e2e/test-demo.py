"""test-demo.py: the demo (examples/asynctop-demo) shows every asynctop screen populated
within 10 seconds of its start, `asynctop --demo` runs it and stops it on quit, refuses
without a terminal, and the demo shuts down cleanly with its close report."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from tui_harness import ASYNCTOP, Env, Tui, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.environ.get("ASYNCTOP_DEMO", os.path.join(HERE, "../../build/examples/asynctop-demo"))
# Everything must be on screen this long after the demo started (the promise);
# sanitizer builds run several times slower.
DEADLINE = 10.0 * (2 if os.environ.get("ASAN_OPTIONS") or os.environ.get("AT_E2E_TSAN") else 1)


@pytest.fixture
def env():
    e = Env()
    e.procs = []
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    e.close()


def start_demo(env, *args):
    p = subprocess.Popen([DEMO] + list(args), env=env.env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    env.procs.append(p)
    path = os.path.join(env.sock_dir(), "%d.sock" % p.pid)
    wait_until("demo socket %s" % path, lambda: os.path.exists(path))
    return p


def gone(pid):
    """True once pid has exited (a zombie whose new parent has not reaped it yet counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def demo_tui(env):
    """asynctop --demo in tmux, with the demo's log file inside the test's private dir."""
    return Tui(env, ["--demo"], 200, 30, extra_env={"TMPDIR": env.dir})


def demo_on_screen(tui):
    s = tui.wait(r"asynctop-demo\[\d+\]\s+live", DEADLINE)
    pid = int(re.search(r"asynctop-demo\[(\d+)\]", s).group(1))
    with open("/proc/%d/stat" % pid) as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open("/proc/%d/comm" % ppid) as f:
        assert f.read().strip() == "asynctop"  # the demo is asynctop's child
    return pid, ppid


def collect(tui, deadline, what, found):
    """Polls the screen until every regex of `what` has matched at least once (not
    necessarily on the same screen) or the deadline passes; returns the last screen."""
    screen = ""
    while True:
        screen = tui.screen()
        for rx in what:
            if rx not in found and re.search(rx, screen, re.M):
                found[rx] = screen
        if len(found) == len(what) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    missing = [rx for rx in what if rx not in found]
    assert not missing, "not on screen by the deadline: %r\n--- screen ---\n%s" % (missing, screen)
    return screen


def test_every_screen_populated(env):
    t0 = time.monotonic()
    demo = start_demo(env, "--quiet", "--stuck-every", "0")
    deadline = t0 + DEADLINE
    tui = Tui(env, [demo.pid], 120, 40)
    try:
        # header: the program, live, debug mode on (the demo turns it on)
        s = tui.wait(r"asynctop-demo\[%d\]\s+live" % demo.pid, DEADLINE)
        assert "debug on" in s

        # Tasks: the service's tasks, waiting on every kind of thing
        found = {}
        collect(tui, deadline, [
            r"^\s+1 app\s+waiting\s+event #", r"^\s+\d+ kv-server\s+waiting\s+(accept|read)",
            r"^\s+\d+ client-1 ", r"^\s+\d+ conn-\d+ ", r"^\s+\d+ ingest ",
            r"^\s+\d+ indexer ", r"^\s+\d+ audit-writer ", r"^\s+\d+ config-reader-1 ",
            r"^\s+\d+ metrics-flusher\s+waiting\s+event #",
            r"waiting\s+queue #", r"waiting\s+lock #", r"waiting\s+event #", r"waiting\s+sleep",
            r"waiting\s+future #", r"waiting\s+task #", r"waiting\s+read #",
            r"^\s+\d+ thumbnailer-\d\s+waiting\s+semaphore #",
        ], found)

        # Task detail: a task a few calls deep; its suspension stack reads like the code
        tui.keys("/")
        tui.text("pipeline")
        tui.wait(r"filter: pipeline")
        tui.keys("Enter")
        tui.wait(r"^\s+\d+ pipeline ")
        tui.keys("Enter")
        d = tui.wait(r"Task \d+\s+pipeline\s+\[waiting\]")
        d = tui.wait(r"#1\s+pipeline\s+asynctop-demo\.c:\d+")
        assert re.search(r"#0\s+join_all\s+asynctop-demo\.c:\d+", d), d
        children = re.search(r"children\s+3: (.*)", d)
        assert children, d
        assert sorted(re.findall(r"\d+ (\S+?),?(?:\s|$)", children.group(1))) == [
            "audit-writer", "indexer", "ingest"], d
        assert "parent     1 app" in d
        tui.keys("Escape")
        tui.keys("Escape")
        tui.wait(r"filter cleared")

        # Tree: app at the root, the services below it, connections below the server
        tui.keys("2")
        s = tui.wait(r"TASK TREE")
        s = tui.wait(r"│  ├─ conn-\d+|│  └─ conn-\d+")
        assert re.search(r"^\s+1 waiting\s+app", s, re.M), s
        for child in ("kv-server", "clients", "pipeline", "config", "thumbnails",
                      "metrics-flusher", "profile-service"):
            assert re.search(r"[├└]─ %s " % child, s), (child, s)
        assert re.search(r"│  [├└]─ client-1 ", s), s

        # Groups: tasks grouped by what they wait on, the config readers together
        tui.keys("3")
        s = tui.wait(r"groups of identical stacks")
        collect(tui, deadline, [r"waits on (lock|sleep)", r"waits on queue"], {})

        # Slow: the periodic slow callback, by name and call site
        tui.keys("4")
        s = collect(tui, deadline, [r"\d+ms rebuild_routing_table",
                                    r"rebuild_routing_table asynctop-demo\.c:\d+"], {})
        assert "BY CALL SITE" in s
        # its detail: the loop thread's stack sampled while it blocked, nested as in the code.
        # One sample may have caught it above our frames (clock_gettime, an ASan check) or
        # lost one: the newest of the first few events must read right.
        stack = re.compile(r"#\d+\s+hash_prefixes\s+asynctop-demo\.c:\d+\n"
                           r"\s+#\d+\s+recompute_routes\s+asynctop-demo\.c:\d+\n"
                           r"\s+#\d+\s+rebuild_routing_table\s+asynctop-demo\.c:\d+")
        for row in range(3):
            tui.keys("g", *["j"] * row, "Enter")
            d = tui.wait(r"Stack sampled while it was blocking")
            if "Slow callback rebuild_routing_table" in d and stack.search(d):
                break
            tui.keys("Escape")
            tui.wait(r"BY CALL SITE")
        assert stack.search(d) and "Scheduled from" in d, d
        tui.keys("Escape")

        # Exceptions: a task error and a future error nobody retrieved, a coroutine never
        # awaited, a wrong-thread call
        tui.keys("5")
        # (MESSAGE leads with the error itself, after its code)
        collect(tui, deadline, [r"never retrieved\s+error\s+E[A-Z]+ \(asynctop\): fetch avatar of",
                                r"never retrieved\s+error\s+ENOENT \(asynctop\): profile archive",
                                r"never awaited\s+\S+\s+coroutine 'warm_profile_cache'",
                                r"wrong thread"], {})
        # the task error's detail: where it was raised and where the task was created
        # (new events arrive at the top and shift the rows: retry until the row opened is it)
        for attempt in range(5):
            s = tui.wait(r"\(asynctop\): fetch avatar of")
            lines = s.split("\n")
            first = [i for i, l in enumerate(lines) if re.match(r"^\s+[\d.]+[a-z]+ ", l)]
            target = [i for i, l in enumerate(lines) if "(asynctop): fetch avatar of" in l]
            assert first and target, s
            tui.keys("g", *["j"] * (target[0] - first[0]), "Enter")
            d = tui.wait(r"> Exception")
            d = tui.wait(r"Raised at")
            if "Task exception was never retrieved" in d:
                break
            tui.keys("Escape")
            tui.wait(r"events:")
        assert "Task exception was never retrieved" in d, d
        assert re.search(r"#0\s+fetch_avatar\s+asynctop-demo\.c:\d+", d), d
        assert re.search(r"Created from\s+#0\s+profile_service\s+asynctop-demo\.c:\d+", d), d
        tui.keys("Escape")

        # Loop: numbers, not blanks
        tui.keys("6")
        s = tui.wait(r"Loop lag histogram")
        assert re.search(r"utilisation\s+\d+%", s), s
        m = re.search(r"callbacks (\d+)/s\s+iterations (\d+)\s+slow (\d+)\s+errors (\d+)", s)
        assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and int(m.group(3)) > 0, s

        # Help
        tui.keys("?")
        s = tui.wait(r"asynctop keys")
        assert "move the cursor up" in s and "Tasks screen" in s, s
        assert time.monotonic() < deadline + 5, "screens took too long"
    finally:
        tui.close()
    assert demo.poll() is None, "the demo exited while inspected"


def test_stuck_callback_shows_blocked(env):
    demo = start_demo(env, "--quiet", "--stuck-every", "3")
    tui = Tui(env, [demo.pid], 120, 40)
    try:
        # while the loop is stuck, the banner names the callback and counts up
        s = tui.wait(r"BLOCKED \d+(\.\d+)? s in flush_journal_sync", 2 * DEADLINE)
        s = tui.wait(r"BLOCKED [1-9]\d*(\.\d+)? s in flush_journal_sync", DEADLINE)
        # afterwards it is a slow callback of about 4 s, with where the loop was stuck
        tui.keys("4")
        s = tui.wait(r"\d(\.\d+)?s flush_journal_sync", 2 * DEADLINE)
    finally:
        tui.close()


def test_asynctop_demo_stops_the_demo_on_quit(env):
    tui = demo_tui(env)
    try:
        pid, _ = demo_on_screen(tui)
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            assert b"asynctop-demo" in f.read()
        tui.keys("q")
        s = tui.wait(r"\[asynctop exited 0\]")
        m = re.search(r"the demo \(pid %d\) is stopped; its output is in (\S+)" % pid, s)
        assert m and m.group(1).startswith(env.dir), s
        wait_until("demo %d gone" % pid, lambda: gone(pid), 5)
        with open(m.group(1)) as f:
            out = f.read()
        # it was stopped with SIGTERM and shut down cleanly, its reports in the log
        assert "Terminated, shutting down" in out and "loop closed" in out, out
        assert "Task exception was never retrieved" in out, out
    finally:
        tui.close()


def test_asynctop_demo_stops_the_demo_on_ctrl_c(env):
    tui = demo_tui(env)
    try:
        pid, _ = demo_on_screen(tui)
        tui.keys("C-c")
        s = tui.wait(r"\[asynctop exited 130\]")
        log = re.search(r"the demo \(pid %d\) is stopped; its output is in (\S+)" % pid, s)
        assert log and log.group(1).startswith(env.dir), s
        wait_until("demo %d gone" % pid, lambda: not os.path.exists("/proc/%d" % pid), 5)
    finally:
        tui.close()


def test_demo_does_not_outlive_a_killed_asynctop(env):
    tui = demo_tui(env)
    try:
        pid, asynctop = demo_on_screen(tui)
        os.kill(asynctop, signal.SIGKILL)  # no chance to clean up: PR_SET_PDEATHSIG does
        wait_until("demo %d gone" % pid, lambda: gone(pid), 10)
    finally:
        tui.close()


def test_asynctop_demo_needs_a_terminal(env):
    r = env.run("--demo", timeout=20)
    assert r.returncode == 1, r
    assert "needs a terminal" in r.stderr, r.stderr


def test_demo_closes_cleanly(env):
    demo = start_demo(env, "--seconds", "3", "--stuck-every", "0")
    out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, out
    assert re.search(r"attach with:\s+/\S+/inspector/asynctop %d\n" % demo.pid, out), out
    m = re.search(r"(\d+) tasks cancelled and joined; (\d+) requests served", out)
    assert m and int(m.group(1)) >= 18 and int(m.group(2)) > 0, out
    # the handle left open on purpose is reported, and nothing else is left behind
    assert "unclosed handle uv_timer_t" in out, out
    assert re.search(r"loop closed: 1 unclosed handle\(s\).*, 0 unretrieved error\(s\), "
                     r"0 dropped callback\(s\)", out), out


def test_demo_stops_on_sigterm(env):
    demo = start_demo(env, "--stuck-every", "0")
    time.sleep(1)
    demo.send_signal(signal.SIGTERM)
    out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, out
    assert "Terminated, shutting down" in out and "loop closed" in out, out


def test_demo_usage():
    r = subprocess.run([DEMO, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--seconds" in r.stdout and "asynctop PID" in r.stdout
    r = subprocess.run([DEMO, "--port", "x"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "bad argument '--port'" in r.stderr


def test_demo_port_in_use(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([DEMO, "--port", str(port)], capture_output=True, text=True,
                           timeout=30, env=env.env, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r
    assert "cannot listen on 127.0.0.1:%d: address already in use" % port in r.stderr, r.stderr


def one_tui_session(env):
    """A Tui opened, used and closed; nothing refers to it afterwards (as at a test's end)."""
    tui = Tui(env, ["--version"], 80, 10)  # raises CalledProcessError if new-session fails
    try:
        tui.wait(r"\[asynctop exited 0\]")
    finally:
        tui.close()


def test_tui_sessions_back_to_back(env):
    """Issue 14's flake: `tmux new-session` exited 1 in the test after one that closed its Tui
    ("server exited unexpectedly"). Each Tui must get a tmux server of its own, never one
    that is still shutting down: open and close many in a row, as consecutive tests do."""
    for _ in range(40):
        one_tui_session(env)
